#include "lbnode/daemon/health_wiring.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/config/normalize.h"
#include "common/json.h"
#include "google/protobuf/util/time_util.h"
#include "lbnode/scheduler/maglev.h"

namespace anylb::lbnode {
namespace {

const char* Bool(bool b) { return b ? "true" : "false"; }

std::optional<uint16_t> PortOf(uint32_t port) {
  if (port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

// FleetIndex: `config`'s backend_health verdicts by backend, for lookups
// by effective port.
class FleetIndex {
 public:
  explicit FleetIndex(const lb::v1::ConfigSnapshot& config) {
    for (const lb::v1::BackendHealth& h : config.backend_health()) {
      absl::StatusOr<IpAddress> address =
          IpAddress::Parse(h.backend().address());
      std::optional<uint16_t> port = PortOf(h.backend().port());
      if (!address.ok() || !port) continue;
      states_[{h.backend().service_name(), Endpoint(*address, *port)}] =
          h.state();
    }
  }

  // State: the verdict for the backend at `endpoint` (effective port) of
  // `service`, named by that port or, at the service's port, by port 0.
  lb::v1::HealthState State(const std::string& service,
                            const Endpoint& endpoint,
                            uint16_t service_port) const {
    if (states_.empty()) return lb::v1::HEALTH_STATE_UNSPECIFIED;
    auto it = states_.find({service, endpoint});
    if (it == states_.end() && endpoint.port() == service_port) {
      it = states_.find({service, Endpoint(endpoint.address(), 0)});
    }
    return it == states_.end() ? lb::v1::HEALTH_STATE_UNSPECIFIED : it->second;
  }

 private:
  std::map<agent::BackendId, lb::v1::HealthState> states_;
};

// LocalIndex: this node's statuses by backend (port as configured).
class LocalIndex {
 public:
  explicit LocalIndex(const std::vector<health::BackendHealthStatus>& all) {
    for (const health::BackendHealthStatus& s : all) {
      statuses_[{s.key.service, s.key.backend}] = &s;
    }
  }

  // Status of the backend at `endpoint` (effective port) of `service`, if
  // it is checked.
  const health::BackendHealthStatus* Status(const std::string& service,
                                            const Endpoint& endpoint,
                                            uint16_t service_port) const {
    auto it = statuses_.find({service, endpoint});
    if (it == statuses_.end() && endpoint.port() == service_port) {
      it = statuses_.find({service, Endpoint(endpoint.address(), 0)});
    }
    return it == statuses_.end() ? nullptr : it->second;
  }

 private:
  std::map<agent::BackendId, const health::BackendHealthStatus*> statuses_;
};

}  // namespace

std::vector<health::CheckTarget> CheckTargetsOf(
    const lb::v1::ConfigSnapshot& config, std::vector<std::string>* skipped) {
  std::vector<health::CheckTarget> targets;
  for (const lb::v1::Service& s : config.services()) {
    if (!s.has_health_check() ||
        s.health_check().check_case() == lb::v1::HealthCheck::CHECK_NOT_SET) {
      continue;
    }
    const std::string name = agent::ServiceNameOf(s);
    std::optional<uint16_t> service_port = PortOf(s.port());
    if (name.empty() || !service_port) continue;
    const bool exec = s.health_check().has_exec();
    for (const lb::v1::Backend& b : s.backends()) {
      if (b.state() == lb::v1::BACKEND_STATE_DISABLED) continue;
      absl::StatusOr<IpAddress> address = IpAddress::Parse(b.address());
      std::optional<uint16_t> port = PortOf(b.port());
      if (!address.ok() || !port) continue;
      IpAddress connect_address = *address;
      if (!b.health_check_address().empty()) {
        absl::StatusOr<IpAddress> a =
            IpAddress::Parse(b.health_check_address());
        if (!a.ok()) continue;
        connect_address = *a;
      }
      uint16_t connect_port = *port != 0 ? *port : *service_port;
      if (b.health_check_port() != 0) {
        std::optional<uint16_t> p = PortOf(b.health_check_port());
        if (!p) continue;
        connect_port = *p;
      }
      if (connect_port == 0 && !exec) {
        if (skipped != nullptr) {
          skipped->push_back(absl::StrCat(
              "service \"", name, "\" backend ", b.address(),
              ": an all-ports service has no port to check; set the "
              "backend's health_check_port (or use an exec check)"));
        }
        continue;
      }
      health::CheckTarget t;
      t.key.service = name;
      t.key.backend = Endpoint(*address, *port);
      t.connect = Endpoint(connect_address, connect_port);
      t.check = s.health_check();
      targets.push_back(std::move(t));
    }
  }
  return targets;
}

std::vector<agent::LocalVerdict> LocalVerdictsOf(
    const std::vector<health::BackendHealthStatus>& statuses) {
  std::vector<agent::LocalVerdict> out;
  out.reserve(statuses.size());
  for (const health::BackendHealthStatus& s : statuses) {
    out.push_back({agent::BackendId{s.key.service, s.key.backend}, s.state,
                   s.dynamic_weight});
  }
  return out;
}

std::set<agent::BackendId> LocalDownOf(
    const std::vector<agent::LocalVerdict>& verdicts) {
  std::set<agent::BackendId> down;
  for (const agent::LocalVerdict& v : verdicts) {
    if (v.state == lb::v1::HEALTH_STATE_DOWN) down.insert(v.id);
  }
  return down;
}

void AddHealthReports(const std::vector<health::BackendHealthStatus>& statuses,
                      lb::v1::NodeStatus* status) {
  for (const health::BackendHealthStatus& s : statuses) {
    lb::v1::HealthReport* r = status->add_health_reports();
    r->mutable_backend()->set_service_name(s.key.service);
    r->mutable_backend()->set_address(s.key.backend.address().ToString());
    r->mutable_backend()->set_port(s.key.backend.port());
    r->set_state(s.state);
    if (s.last_change != absl::InfinitePast()) {
      *r->mutable_last_change() =
          google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
              absl::ToUnixNanos(s.last_change));
    }
    r->set_last_error(s.last_error);
    if (s.dynamic_weight.has_value()) r->set_dynamic_weight(*s.dynamic_weight);
  }
}

const char* FleetStateName(lb::v1::HealthState state) {
  return state == lb::v1::HEALTH_STATE_DOWN ? "down" : "up";
}

const char* HealthStateName(lb::v1::HealthState state) {
  switch (state) {
    case lb::v1::HEALTH_STATE_UP:
      return "up";
    case lb::v1::HEALTH_STATE_DOWN:
      return "down";
    default:
      return "unknown";
  }
}

std::string HealthJson(const std::vector<health::BackendHealthStatus>& statuses,
                       const lb::v1::ConfigSnapshot& config) {
  std::map<std::string, uint16_t> service_ports;
  for (const lb::v1::Service& s : config.services()) {
    if (std::optional<uint16_t> p = PortOf(s.port())) {
      service_ports[agent::ServiceNameOf(s)] = *p;
    }
  }
  std::vector<const health::BackendHealthStatus*> sorted;
  for (const health::BackendHealthStatus& s : statuses) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->key < b->key; });
  std::string out = "[";
  for (size_t i = 0; i < sorted.size(); ++i) {
    const health::BackendHealthStatus& s = *sorted[i];
    Endpoint backend = s.key.backend;
    if (backend.port() == 0) {
      auto it = service_ports.find(s.key.service);
      if (it != service_ports.end()) {
        backend = Endpoint(backend.address(), it->second);
      }
    }
    absl::StrAppend(
        &out, i == 0 ? "" : ",", "\n{\"service\":", JsonString(s.key.service),
        ",\"backend\":", JsonString(backend.ToString()),
        ",\"state\":", JsonString(HealthStateName(s.state)),
        ",\"last_change\":",
        JsonString(s.last_change == absl::InfinitePast()
                       ? ""
                       : absl::FormatTime(absl::RFC3339_full, s.last_change,
                                          absl::UTCTimeZone())),
        ",\"last_error\":", JsonString(s.last_error), ",\"dynamic_weight\":",
        s.dynamic_weight.has_value() ? absl::StrCat(*s.dynamic_weight)
                                     : std::string("null"),
        ",\"probes\":", s.probes, ",\"failures\":", s.failures, "}");
  }
  out += "]\n";
  return out;
}

std::string TableDigest(const dataplane::ServiceConfig& service) {
  if (service.scheduler.kind != scheduler::SchedulerKind::kMh) return "";
  // As the mh scheduler builds it (maglev_scheduler.cc): every backend at
  // its effective weight; all quiesced: the empty table.
  std::vector<scheduler::MaglevBackend> input;
  bool any_weight = false;
  for (const dataplane::BackendConfig& b : service.backends) {
    input.push_back({b.endpoint, b.weight});
    any_weight = any_weight || b.weight > 0;
  }
  if (!any_weight) input.clear();
  absl::StatusOr<std::shared_ptr<const scheduler::MaglevTable>> table =
      scheduler::MaglevTable::Build(input, service.scheduler.maglev_table_size,
                                    service.scheduler.seed);
  if (!table.ok()) return "";
  return absl::StrFormat("%016x", (*table)->Digest());
}

std::string ServicesJson(
    const agent::EngineConfig& engine, const lb::v1::ConfigSnapshot& effective,
    const std::vector<health::BackendHealthStatus>& statuses) {
  const FleetIndex fleet(effective);
  const LocalIndex local_index(statuses);
  std::string out = "[";
  const auto& services = engine.snapshot->services();
  for (size_t i = 0; i < services.size(); ++i) {
    const dataplane::ServiceConfig& s = services[i];
    const agent::ServiceNames& names = (*engine.names)[i];
    const lb::v1::Service* proto =
        i < static_cast<size_t>(effective.services_size())
            ? &effective.services(static_cast<int>(i))
            : nullptr;
    const bool sorry_active = names.sorry_active;
    std::string backends;
    for (size_t j = 0; j < s.backends.size(); ++j) {
      const dataplane::BackendConfig& b = s.backends[j];
      const bool is_sorry =
          sorry_active && names.sorry_backend == b.endpoint.ToString();
      const health::BackendHealthStatus* local =
          local_index.Status(names.name, b.endpoint, s.port);
      absl::StrAppend(
          &backends, j == 0 ? "" : ",",
          "{\"address\":", JsonString(b.endpoint.address().ToString()),
          ",\"port\":", b.endpoint.port(), ",\"weight\":", b.weight,
          ",\"available\":", Bool(b.available), ",\"fleet_state\":",
          JsonString(
              FleetStateName(fleet.State(names.name, b.endpoint, s.port))),
          ",\"local_state\":",
          JsonString(local == nullptr ? "unchecked"
                                      : HealthStateName(local->state)),
          is_sorry ? ",\"sorry\":true" : "", "}");
    }
    // Backends the fleet's verdict removed (on_failure: remove) are not in
    // the engine; list them too, at weight 0.
    if (proto != nullptr) {
      for (const lb::v1::Backend& pb : proto->backends()) {
        if (pb.state() == lb::v1::BACKEND_STATE_DISABLED) continue;
        absl::StatusOr<IpAddress> a = IpAddress::Parse(pb.address());
        std::optional<uint16_t> p = PortOf(pb.port());
        if (!a.ok() || !p) continue;
        const Endpoint endpoint(*a, *p != 0 ? *p : s.port);
        if (std::any_of(s.backends.begin(), s.backends.end(),
                        [&](const dataplane::BackendConfig& b) {
                          return b.endpoint == endpoint;
                        })) {
          continue;
        }
        const health::BackendHealthStatus* local =
            local_index.Status(names.name, endpoint, s.port);
        absl::StrAppend(
            &backends, backends.empty() ? "" : ",",
            "{\"address\":", JsonString(endpoint.address().ToString()),
            ",\"port\":", endpoint.port(),
            ",\"weight\":0,\"available\":false,\"fleet_state\":",
            JsonString(
                FleetStateName(fleet.State(names.name, endpoint, s.port))),
            ",\"local_state\":",
            JsonString(local == nullptr ? "unchecked"
                                        : HealthStateName(local->state)),
            ",\"removed\":true}");
      }
    }
    absl::StrAppend(
        &out, i == 0 ? "" : ",", "\n{\"name\":", JsonString(names.name),
        ",\"vip\":", JsonString(names.vip), ",\"port\":", names.port,
        ",\"protocol\":", JsonString(names.protocol), ",\"scheduler\":",
        JsonString(proto != nullptr ? config::SchedulerName(proto->scheduler())
                                    : "?"),
        ",\"table_digest\":", JsonString(TableDigest(s)),
        ",\"sorry_active\":", Bool(sorry_active), ",\"backends\":[", backends,
        "]}");
  }
  out += "]\n";
  return out;
}

void HealthQuorum::Set(std::set<Key> unhealthy) {
  absl::MutexLock lock(&mu_);
  unhealthy_ = std::move(unhealthy);
}

bool HealthQuorum::IsHealthy(
    const std::string& service,
    const routing::announce::AnnounceBackend& backend) const {
  absl::MutexLock lock(&mu_);
  return !unhealthy_.contains(Key{service, backend.address, backend.port});
}

std::set<HealthQuorum::Key> UnhealthyOf(
    const lb::v1::ConfigSnapshot& configured,
    const lb::v1::ConfigSnapshot& effective,
    const std::set<agent::BackendId>& local_down) {
  const FleetIndex fleet(effective);
  std::set<HealthQuorum::Key> out;
  for (const lb::v1::Service& s : configured.services()) {
    const std::string name = agent::ServiceNameOf(s);
    std::optional<uint16_t> service_port = PortOf(s.port());
    if (name.empty() || !service_port) continue;
    for (const lb::v1::Backend& b : s.backends()) {
      absl::StatusOr<IpAddress> address = IpAddress::Parse(b.address());
      std::optional<uint16_t> port = PortOf(b.port());
      if (!address.ok() || !port) continue;
      const Endpoint endpoint(*address, *port != 0 ? *port : *service_port);
      const bool fleet_down = fleet.State(name, endpoint, *service_port) ==
                              lb::v1::HEALTH_STATE_DOWN;
      const bool local =
          local_down.contains({name, Endpoint(*address, *port)}) ||
          local_down.contains({name, endpoint}) ||
          (endpoint.port() == *service_port &&
           local_down.contains({name, Endpoint(*address, 0)}));
      if (fleet_down || local) out.insert({name, b.address(), b.port()});
    }
  }
  return out;
}

void ApplyEffectiveWeights(const agent::EngineConfig& engine,
                           routing::announce::AnnounceConfig* announce) {
  const auto& services = engine.snapshot->services();
  const size_t n = std::min(services.size(), announce->services.size());
  for (size_t i = 0; i < n; ++i) {
    const dataplane::ServiceConfig& s = services[i];
    routing::announce::AnnounceService& a = announce->services[i];
    a.name = (*engine.names)[i].name;
    for (routing::announce::AnnounceBackend& b : a.backends) {
      absl::StatusOr<IpAddress> address = IpAddress::Parse(b.address);
      std::optional<uint16_t> port = PortOf(b.port);
      uint32_t weight = 0;
      if (address.ok() && port) {
        const Endpoint endpoint(*address, *port != 0 ? *port : s.port);
        for (const dataplane::BackendConfig& e : s.backends) {
          if (e.endpoint == endpoint) weight = e.weight;
        }
      }
      b.weight = weight;
    }
  }
}

CoalescingWorker::CoalescingWorker(std::function<void()> work)
    : work_(std::move(work)), thread_([this] { Loop(); }) {}

CoalescingWorker::~CoalescingWorker() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void CoalescingWorker::Notify() {
  absl::MutexLock lock(&mu_);
  pending_ = true;
}

uint64_t CoalescingWorker::runs() const {
  absl::MutexLock lock(&mu_);
  return runs_;
}

void CoalescingWorker::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || pending_;
      };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      pending_ = false;
    }
    work_();
    absl::MutexLock lock(&mu_);
    ++runs_;
  }
}

}  // namespace anylb::lbnode
