#include "lbnode/agent/snapshot_builder.h"

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config/normalize.h"
#include "common/config/rules.h"
#include "common/status_macros.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/persistence.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::agent {
namespace {

using dataplane::ForwardingMode;
using dataplane::TunnelType;
using scheduler::HashInputs;
using scheduler::SchedulerKind;

constexpr uint64_t kSeedOfSeeds = 0x6d61676c65762d31;  // "maglev-1"

std::optional<SchedulerKind> ToSchedulerKind(lb::v1::Scheduler s) {
  switch (s) {
    case lb::v1::SCHEDULER_RR:
      return SchedulerKind::kRr;
    case lb::v1::SCHEDULER_WRR:
      return SchedulerKind::kWrr;
    case lb::v1::SCHEDULER_LC:
      return SchedulerKind::kLc;
    case lb::v1::SCHEDULER_WLC:
      return SchedulerKind::kWlc;
    case lb::v1::SCHEDULER_LBLC:
      return SchedulerKind::kLblc;
    case lb::v1::SCHEDULER_LBLCR:
      return SchedulerKind::kLblcr;
    case lb::v1::SCHEDULER_DH:
      return SchedulerKind::kDh;
    case lb::v1::SCHEDULER_SH:
      return SchedulerKind::kSh;
    case lb::v1::SCHEDULER_SED:
      return SchedulerKind::kSed;
    case lb::v1::SCHEDULER_NQ:
      return SchedulerKind::kNq;
    case lb::v1::SCHEDULER_FO:
      return SchedulerKind::kFo;
    case lb::v1::SCHEDULER_OVF:
      return SchedulerKind::kOvf;
    case lb::v1::SCHEDULER_MH:
      return SchedulerKind::kMh;
    case lb::v1::SCHEDULER_TWOS:
      return SchedulerKind::kTwos;
    default:
      return std::nullopt;
  }
}

HashInputs ToHashInputs(lb::v1::HashInputs h) {
  switch (h) {
    case lb::v1::HASH_INPUTS_THREE_TUPLE:
      return HashInputs::kThreeTuple;
    case lb::v1::HASH_INPUTS_SOURCE_IP:
      return HashInputs::kSourceIp;
    case lb::v1::HASH_INPUTS_SOURCE_IP_PORT:
      return HashInputs::kSourceIpPort;
    default:  // FIVE_TUPLE; normalization resolved UNSPECIFIED
      return HashInputs::kFiveTuple;
  }
}

ForwardingMode ToMode(lb::v1::ForwardingMode mode) {
  switch (mode) {
    case lb::v1::FORWARDING_MODE_TUN:
      return ForwardingMode::kTun;
    case lb::v1::FORWARDING_MODE_NAT:
      return ForwardingMode::kNat;
    case lb::v1::FORWARDING_MODE_FULLNAT:
      return ForwardingMode::kFullNat;
    default:  // DR; normalization rejects UNSPECIFIED and unknown values
      return ForwardingMode::kDr;
  }
}

// Contains: `ids` holds the backend `endpoint` (effective port) of
// `service`, by its effective port or, at the service's port, by port 0.
bool Contains(const std::set<BackendId>& ids, const std::string& service,
              const Endpoint& endpoint, uint16_t service_port) {
  if (ids.empty()) return false;
  if (ids.contains(BackendId{service, endpoint})) return true;
  return endpoint.port() == service_port &&
         ids.contains(BackendId{service, Endpoint(endpoint.address(), 0)});
}

// FleetDown: the backends the snapshot's backend_health holds DOWN.
std::set<BackendId> FleetDown(const lb::v1::ConfigSnapshot& config) {
  std::set<BackendId> down;
  for (const lb::v1::BackendHealth& h : config.backend_health()) {
    if (h.state() != lb::v1::HEALTH_STATE_DOWN) continue;
    absl::StatusOr<IpAddress> address = IpAddress::Parse(h.backend().address());
    if (!address.ok() || h.backend().port() > 65535) continue;
    down.insert(
        {h.backend().service_name(),
         Endpoint(*address, static_cast<uint16_t>(h.backend().port()))});
  }
  return down;
}

class Builder {
 public:
  Builder(const lb::v1::ConfigSnapshot& config, const NodeIdentity& identity,
          const std::set<BackendId>& local_down)
      : config_(config), identity_(identity), local_down_(local_down) {}

  absl::StatusOr<EngineConfig> Build() {
    ASSIGN_OR_RETURN(config::NormalConfig normal,
                     config::NormalizeConfig(config_));
    const std::set<BackendId> fleet_down =
        local_down_.empty() ? std::set<BackendId>() : FleetDown(config_);

    dataplane::NodeConfig node;
    node.mac = identity_.mac;
    if (identity_.tunnel_source_v4) {
      node.tunnel_source_v4 = *identity_.tunnel_source_v4;
      node.has_tunnel_source_v4 = true;
    }
    if (identity_.tunnel_source_v6) {
      node.tunnel_source_v6 = *identity_.tunnel_source_v6;
      node.has_tunnel_source_v6 = true;
    }
    node.mtu = identity_.mtu;
    node.outer_ttl = identity_.outer_ttl;
    node.local_addresses.assign(normal.node.local_addresses.begin(),
                                normal.node.local_addresses.end());

    EngineConfig out;
    std::vector<dataplane::ServiceConfig> services;
    for (const config::NormalService& s : normal.services) {
      ASSIGN_OR_RETURN(dataplane::ServiceConfig service,
                       ToEngine(s, fleet_down, local_down_));
      if (service.mode == ForwardingMode::kNat) {
        for (const dataplane::BackendConfig& b : service.backends) {
          out.nat_backends.insert({b.endpoint, s.protocol});
        }
      }
      services.push_back(std::move(service));
    }

    out.revision = normal.revision;
    ASSIGN_OR_RETURN(out.snapshot, dataplane::EngineSnapshot::Create(
                                       std::move(node), std::move(services)));
    out.local_addresses = std::move(normal.node.local_addresses);
    auto names = std::make_shared<NameTable>();
    for (size_t i = 0; i < out.snapshot->services().size(); ++i) {
      const dataplane::ServiceConfig& s = out.snapshot->services()[i];
      out.vips.insert({s.vip, s.port, s.protocol});
      ServiceNames n;
      n.name = normal.services[i].name;
      n.vip = s.vip.ToString();
      n.port = s.port;
      n.protocol = config::ProtocolName(s.protocol);
      for (const dataplane::BackendConfig& b : s.backends) {
        n.backends.push_back(b.endpoint.ToString());
      }
      const config::NormalService& normal_service = normal.services[i];
      if (normal_service.sorry_active) {
        const config::NormalBackend& sorry = normal_service.backends.back();
        n.sorry_active = true;
        n.sorry_backend = Endpoint(sorry.address, sorry.port).ToString();
      }
      names->push_back(std::move(n));
    }
    out.names = std::move(names);
    return out;
  }

 private:
  // ToEngine maps a normalized (already checked) service to the engine's
  // plain struct.
  static absl::StatusOr<dataplane::ServiceConfig> ToEngine(
      const config::NormalService& s, const std::set<BackendId>& fleet_down,
      const std::set<BackendId>& local_down) {
    dataplane::ServiceConfig out;
    out.vip = s.vip;
    out.port = s.port;
    out.protocol = s.protocol;
    std::optional<SchedulerKind> kind = ToSchedulerKind(s.scheduler);
    if (!kind) {
      return absl::InternalError(
          absl::StrCat("service \"", s.name, "\": scheduler ", s.scheduler,
                       " passed the config rules but has no engine scheduler"));
    }
    out.scheduler.kind = *kind;
    out.scheduler.fallback = s.scheduler_fallback;
    out.scheduler.port = s.scheduler_port;
    out.scheduler.hash_inputs = ToHashInputs(s.hash_inputs);
    out.scheduler.maglev_table_size = s.maglev_table_size;
    out.scheduler.seed = s.hash_seed != 0
                             ? s.hash_seed
                             : DeriveHashSeed(s.vip, s.port, s.protocol);
    out.mode = ToMode(s.forwarding.mode);
    out.tunnel = s.forwarding.tunnel == lb::v1::TUNNEL_TYPE_GUE
                     ? TunnelType::kGue
                     : TunnelType::kIpip;
    out.gue_port = s.forwarding.gue_port;
    if (s.persistence_timeout > absl::ZeroDuration()) {
      ASSIGN_OR_RETURN(out.persistence, scheduler::PersistencePolicy::Create(
                                            s.port, s.persistence_timeout,
                                            s.persistence_ipv4_prefix,
                                            s.persistence_ipv6_prefix));
    }
    for (size_t i = 0; i < s.backends.size(); ++i) {
      const config::NormalBackend& b = s.backends[i];
      dataplane::BackendConfig backend;
      backend.endpoint = Endpoint(b.address, b.port);
      backend.weight = b.weight;
      backend.upper_threshold = b.upper_threshold;
      backend.lower_threshold = b.lower_threshold;
      // Down here only: the fleet keeps it (and its slots), this node's new
      // flows fall back past it. The sorry server is never checked.
      const bool sorry = s.sorry_active && i + 1 == s.backends.size();
      backend.available =
          sorry || !Contains(local_down, s.name, backend.endpoint, s.port) ||
          Contains(fleet_down, s.name, backend.endpoint, s.port);
      out.backends.push_back(backend);
    }
    return out;
  }

  const lb::v1::ConfigSnapshot& config_;
  const NodeIdentity& identity_;
  const std::set<BackendId>& local_down_;
};

}  // namespace

uint64_t DeriveHashSeed(const IpAddress& vip, uint16_t port, uint8_t protocol) {
  // family, 16 address bytes (IPv4 zero-padded), port (big endian), protocol.
  std::array<uint8_t, 20> bytes{};
  bytes[0] = vip.is_v4() ? 4 : 6;
  std::memcpy(bytes.data() + 1, vip.bytes().data(), vip.bytes().size());
  bytes[17] = static_cast<uint8_t>(port >> 8);
  bytes[18] = static_cast<uint8_t>(port);
  bytes[19] = protocol;
  const uint64_t seed = scheduler::Hash64(bytes, kSeedOfSeeds);
  return seed != 0 ? seed : 1;  // 0 means "derive"; never hand it out.
}

absl::StatusOr<EngineConfig> BuildEngineConfig(
    const lb::v1::ConfigSnapshot& config, const NodeIdentity& identity,
    const std::set<BackendId>& local_down) {
  return Builder(config, identity, local_down).Build();
}

std::string ServiceNameOf(const lb::v1::Service& service) {
  if (!service.name().empty()) return service.name();
  absl::StatusOr<IpAddress> vip = IpAddress::Parse(service.vip());
  uint8_t protocol = 0;
  if (service.protocol() == lb::v1::PROTOCOL_TCP) protocol = 6;
  if (service.protocol() == lb::v1::PROTOCOL_UDP) protocol = 17;
  if (!vip.ok() || protocol == 0 || service.port() > 65535) return "";
  return config::DefaultServiceName(*vip, static_cast<uint16_t>(service.port()),
                                    protocol);
}

lb::v1::ConfigSnapshot OverlayLocalHealth(
    const lb::v1::ConfigSnapshot& config,
    const std::vector<LocalVerdict>& verdicts) {
  // The config's backends by id at their effective port.
  std::set<BackendId> known;
  std::map<std::string, uint16_t> service_ports;
  for (const lb::v1::Service& s : config.services()) {
    const std::string name = ServiceNameOf(s);
    if (name.empty()) continue;
    const uint16_t port = static_cast<uint16_t>(s.port());
    service_ports[name] = port;
    for (const lb::v1::Backend& b : s.backends()) {
      absl::StatusOr<IpAddress> address = IpAddress::Parse(b.address());
      if (!address.ok() || b.port() > 65535) continue;
      known.insert(
          {name,
           Endpoint(*address,
                    b.port() == 0 ? port : static_cast<uint16_t>(b.port()))});
    }
  }
  auto effective = [&](const std::string& service,
                       const Endpoint& e) -> std::optional<BackendId> {
    auto it = service_ports.find(service);
    if (it == service_ports.end()) return std::nullopt;
    BackendId id{service,
                 Endpoint(e.address(), e.port() == 0 ? it->second : e.port())};
    if (!known.contains(id)) return std::nullopt;
    return id;
  };
  std::map<BackendId, const LocalVerdict*> local;
  for (const LocalVerdict& v : verdicts) {
    if (v.state != lb::v1::HEALTH_STATE_UP &&
        v.state != lb::v1::HEALTH_STATE_DOWN) {
      continue;
    }
    if (std::optional<BackendId> id = effective(v.id.service, v.id.backend)) {
      local[*id] = &v;
    }
  }
  lb::v1::ConfigSnapshot out = config;
  if (local.empty()) return out;
  out.clear_backend_health();
  for (const lb::v1::BackendHealth& h : config.backend_health()) {
    absl::StatusOr<IpAddress> address = IpAddress::Parse(h.backend().address());
    if (address.ok() && h.backend().port() <= 65535) {
      std::optional<BackendId> id = effective(
          h.backend().service_name(),
          Endpoint(*address, static_cast<uint16_t>(h.backend().port())));
      if (id && local.contains(*id)) continue;  // Replaced below.
    }
    *out.add_backend_health() = h;
  }
  for (const auto& [id, v] : local) {
    lb::v1::BackendHealth* h = out.add_backend_health();
    h->mutable_backend()->set_service_name(id.service);
    h->mutable_backend()->set_address(id.backend.address().ToString());
    h->mutable_backend()->set_port(id.backend.port());
    h->set_state(v->state);
    if (v->dynamic_weight.has_value()) {
      h->set_dynamic_weight(*v->dynamic_weight);
    }
  }
  return out;
}

}  // namespace anylb::agent
