#include "controller/lbctl/format.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "controller/lbctl/names.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace anylb::lbctl {
namespace {

using lb::v1::Backend;
using lb::v1::BackendStats;
using lb::v1::Counters;
using lb::v1::Service;
using lb::v1::ServiceStats;

// SortKey of an address: parsed when possible so 192.0.2.9 < 192.0.2.10.
std::tuple<bool, IpAddress, std::string> AddressKey(const std::string& text) {
  auto parsed = IpAddress::Parse(text);
  if (parsed.ok()) return {false, *parsed, ""};
  return {true, IpAddress(), text};
}

// LargeNumber is ipvsadm's print_largenum: width 9, K/M/G/T past 10^8
// unless --exact.
std::string LargeNumber(uint64_t value, bool exact) {
  if (exact) {
    std::string digits = absl::StrCat(value);
    int width = digits.size() <= 8 ? 9 : static_cast<int>(digits.size()) + 1;
    return absl::StrFormat("%*s", width, digits);
  }
  if (value < 100000000ULL) return absl::StrFormat("%9u", value);
  if (value < 1000000000ULL) return absl::StrFormat("%8uK", value / 1000);
  if (value < 100000000000ULL) {
    return absl::StrFormat("%8uM", value / 1000000);
  }
  if (value < 100000000000000ULL) {
    return absl::StrFormat("%8uG", value / 1000000000ULL);
  }
  return absl::StrFormat("%8uT", value / 1000000000000ULL);
}

std::string CounterColumns(const Counters& c, bool exact) {
  return absl::StrCat(
      LargeNumber(c.connections(), exact), LargeNumber(c.packets_in(), exact),
      LargeNumber(c.packets_out(), exact), LargeNumber(c.bytes_in(), exact),
      LargeNumber(c.bytes_out(), exact));
}

// Netmask text of -L ("mask 255.255.255.0") and -S ("-M ..."): empty for
// a single host.
std::string MaskText(const Service& service) {
  bool v6 = service.vip().find(':') != std::string::npos;
  const lb::v1::Persistence& p = service.persistence();
  uint32_t length = v6 ? p.ipv6_prefix_length() : p.ipv4_prefix_length();
  if (length == 0 || length == (v6 ? 128u : 32u)) return "";
  if (v6) return absl::StrCat(length);
  uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
  return IpAddress::FromV4(mask).ToString();
}

bool Persistent(const Service& service) {
  return service.has_persistence() &&
         (service.persistence().timeout().seconds() > 0 ||
          service.persistence().timeout().nanos() > 0);
}

std::string StateSuffix(const Backend& backend) {
  switch (backend.state()) {
    case lb::v1::BACKEND_STATE_DRAINING:
      return " draining";
    case lb::v1::BACKEND_STATE_DISABLED:
      return " disabled";
    default:
      return "";
  }
}

// ServiceName: ipvsadm's "TCP  192.0.2.1:80".
std::string ServiceColumn(const Service& service) {
  return absl::StrCat(ProtocolLabel(service.protocol()), "  ",
                      HostPort(service.vip(), service.port()));
}

struct StatsIndex {
  std::map<std::string, const ServiceStats*> services;
  std::map<std::tuple<std::string, std::string, uint32_t>, const BackendStats*>
      backends;

  explicit StatsIndex(const lb::v1::GetStatsResponse& stats) {
    for (const ServiceStats& s : stats.services()) {
      services[s.service_name()] = &s;
      for (const BackendStats& b : s.backends()) {
        backends[{s.service_name(), b.backend().address(),
                  b.backend().port()}] = &b;
      }
    }
  }

  const ServiceStats& Service(const lb::v1::Service& service) const {
    auto it = services.find(service.name());
    return it == services.end() ? ServiceStats::default_instance()
                                : *it->second;
  }

  const BackendStats& Backend(const lb::v1::Service& service,
                              const lb::v1::Backend& backend) const {
    // Nodes report the port they use; look for it and for the stored one.
    for (uint32_t port : {EffectivePort(service, backend), backend.port()}) {
      auto it = backends.find({service.name(), backend.address(), port});
      if (it != backends.end()) return *it->second;
    }
    return BackendStats::default_instance();
  }
};

uint64_t PerSecond(uint64_t before, uint64_t after, double seconds) {
  uint64_t delta = after >= before ? after - before : after;
  return static_cast<uint64_t>(static_cast<double>(delta) / seconds + 0.5);
}

Counters RateCounters(const Counters& before, const Counters& after,
                      double seconds) {
  Counters rate;
  rate.set_connections(
      PerSecond(before.connections(), after.connections(), seconds));
  rate.set_packets_in(
      PerSecond(before.packets_in(), after.packets_in(), seconds));
  rate.set_packets_out(
      PerSecond(before.packets_out(), after.packets_out(), seconds));
  rate.set_bytes_in(PerSecond(before.bytes_in(), after.bytes_in(), seconds));
  rate.set_bytes_out(PerSecond(before.bytes_out(), after.bytes_out(), seconds));
  return rate;
}

// Table prints left-aligned columns separated by two spaces.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        line += row[i];
      } else {
        line += row[i];
        line.append(widths[i] - row[i].size() + 2, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string AdminStateName(lb::v1::NodeAdminState state) {
  return state == lb::v1::NODE_ADMIN_STATE_DRAINED ? "drained" : "active";
}

std::string DataplaneName(const lb::v1::Node& node) {
  if (!node.has_status()) return "-";
  switch (node.status().dataplane()) {
    case lb::v1::DATAPLANE_STATE_LIVE:
      return "live";
    case lb::v1::DATAPLANE_STATE_STALLED:
      return "stalled";
    case lb::v1::DATAPLANE_STATE_DOWN:
      return "down";
    default:
      return "-";
  }
}

// AnnouncedText: how many of the services a node reports it announces
// ("2 of 3"; "-" before a report with services).
std::string AnnouncedText(const lb::v1::Node& node) {
  const auto& stats = node.status().service_stats();
  if (stats.empty()) return "-";
  const auto announced = std::count_if(
      stats.begin(), stats.end(),
      [](const lb::v1::ServiceStats& s) { return s.announced(); });
  return absl::StrCat(announced, " of ", stats.size());
}

std::string TimestampText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

// HealthIndex finds a real server's view by its configured or effective
// port.
struct HealthIndex {
  std::map<std::tuple<std::string, std::string, uint32_t>,
           const lb::v1::BackendHealthView*>
      views;
  bool any = false;

  explicit HealthIndex(const lb::v1::GetHealthResponse& health) {
    for (const lb::v1::BackendHealthView& v : health.backends()) {
      views[{v.backend().service_name(), v.backend().address(),
             v.backend().port()}] = &v;
      if (v.state() != lb::v1::HEALTH_STATE_UNSPECIFIED || v.nodes_size() > 0) {
        any = true;
      }
    }
  }

  const lb::v1::BackendHealthView& View(const lb::v1::Service& service,
                                        const lb::v1::Backend& backend) const {
    for (uint32_t port : {backend.port(), EffectivePort(service, backend)}) {
      auto it = views.find({service.name(), backend.address(), port});
      if (it != views.end()) return *it->second;
    }
    return lb::v1::BackendHealthView::default_instance();
  }
};

std::string Ago(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  const int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrCat(s, "s ago");
  if (s < 3600) return absl::StrCat(s / 60, "m ago");
  if (s < 86400) return absl::StrCat(s / 3600, "h ago");
  return absl::StrCat(s / 86400, "d ago");
}

}  // namespace

std::string HealthText(const lb::v1::BackendHealthView& view, absl::Time now) {
  switch (view.state()) {
    case lb::v1::HEALTH_STATE_UP:
      return view.has_dynamic_weight()
                 ? absl::StrCat("up (dynamic weight ", view.dynamic_weight(),
                                ")")
                 : "up";
    case lb::v1::HEALTH_STATE_DOWN:
      break;
    default:
      return "-";
  }
  std::string text = "down";
  if (view.has_last_change()) {
    const absl::Time at = absl::FromUnixSeconds(view.last_change().seconds());
    absl::StrAppend(
        &text, " since ",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", at, absl::UTCTimeZone()));
    if (now != absl::InfinitePast()) {
      absl::StrAppend(&text, " (", Ago(now - at), ")");
    }
  }
  const std::string& why =
      view.last_error().empty() ? view.reason() : view.last_error();
  if (!why.empty()) absl::StrAppend(&text, ": ", why);
  return text;
}

std::string WithHealth(const std::string& json,
                       const lb::v1::GetHealthResponse& health) {
  google::protobuf::Struct object;
  if (!google::protobuf::util::JsonStringToMessage(json, &object).ok()) {
    return json;
  }
  google::protobuf::Struct health_object;
  if (!google::protobuf::util::JsonStringToMessage(ToJson(health),
                                                   &health_object)
           .ok()) {
    return json;
  }
  *(*object.mutable_fields())["health"].mutable_struct_value() =
      std::move(health_object);
  return ToJson(object);
}

void SortServices(std::vector<Service>* services) {
  for (Service& service : *services) {
    auto* backends = service.mutable_backends();
    std::sort(backends->begin(), backends->end(),
              [&](const Backend& a, const Backend& b) {
                return std::make_tuple(AddressKey(a.address()),
                                       EffectivePort(service, a)) <
                       std::make_tuple(AddressKey(b.address()),
                                       EffectivePort(service, b));
              });
  }
  std::sort(services->begin(), services->end(),
            [](const Service& a, const Service& b) {
              return std::make_tuple(static_cast<int>(a.protocol()),
                                     AddressKey(a.vip()), a.port()) <
                     std::make_tuple(static_cast<int>(b.protocol()),
                                     AddressKey(b.vip()), b.port());
            });
}

std::string FormatList(std::vector<Service> services,
                       const lb::v1::GetStatsResponse& stats,
                       const ListOptions& options, uint64_t revision,
                       bool title, const lb::v1::GetHealthResponse& health,
                       absl::Time now) {
  SortServices(&services);
  StatsIndex index(stats);
  HealthIndex health_index(health);
  const bool health_column = health_index.any;
  std::string out;
  if (title) {
    absl::StrAppend(&out, "anylb controller revision ", revision,
                    " (services=", services.size(), ")\n");
  }
  switch (options.columns) {
    case ListColumns::kStats:
      absl::StrAppend(
          &out,
          absl::StrFormat("%-33s %8s %8s %8s %8s %8s", "Prot LocalAddress:Port",
                          "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"),
          health_column ? " Health\n" : "\n", "  -> RemoteAddress:Port\n");
      break;
    case ListColumns::kRate:
      absl::StrAppend(
          &out,
          absl::StrFormat("%-33s %8s %8s %8s %8s %8s", "Prot LocalAddress:Port",
                          "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"),
          health_column ? " Health\n" : "\n", "  -> RemoteAddress:Port\n");
      break;
    case ListColumns::kThresholds:
      absl::StrAppend(&out,
                      absl::StrFormat("%-33s %-10s %-10s %-10s %-10s",
                                      "Prot LocalAddress:Port", "Uthreshold",
                                      "Lthreshold", "ActiveConn", "InActConn"),
                      health_column ? " Health\n" : "\n",
                      "  -> RemoteAddress:Port\n");
      break;
    case ListColumns::kDefault:
      absl::StrAppend(&out,
                      "Prot LocalAddress:Port Scheduler Flags\n"
                      "  -> RemoteAddress:Port           Forward Weight "
                      "ActiveConn InActConn",
                      health_column ? " Health\n" : "\n");
      break;
  }
  for (const Service& service : services) {
    std::string name = ServiceColumn(service);
    const ServiceStats& service_stats = index.Service(service);
    switch (options.columns) {
      case ListColumns::kStats:
      case ListColumns::kRate:
        absl::StrAppend(&out, absl::StrFormat("%-33s", name),
                        CounterColumns(service_stats.counters(), options.exact),
                        "\n");
        break;
      case ListColumns::kThresholds:
        absl::StrAppend(&out, name, "\n");
        break;
      case ListColumns::kDefault: {
        absl::StrAppend(&out, name, " ", SchedulerName(service.scheduler()));
        std::string flags =
            SchedulerFlagsText(service.scheduler(), service.scheduler_flags());
        if (!flags.empty()) absl::StrAppend(&out, " (", flags, ")");
        if (Persistent(service)) {
          absl::StrAppend(&out, " persistent ",
                          service.persistence().timeout().seconds());
          std::string mask = MaskText(service);
          if (!mask.empty()) absl::StrAppend(&out, " mask ", mask);
        }
        absl::StrAppend(&out, "\n");
        break;
      }
    }
    for (const Backend& backend : service.backends()) {
      std::string dname =
          HostPort(backend.address(), EffectivePort(service, backend));
      const BackendStats& b = index.Backend(service, backend);
      // The Health column, or (without one) the state as before.
      std::string tail = StateSuffix(backend);
      if (health_column) {
        std::string text = HealthText(health_index.View(service, backend), now);
        const size_t word = text.find(' ');
        // "down draining since ...": the state right after the word.
        tail = word == std::string::npos
                   ? absl::StrCat(" ", text, StateSuffix(backend))
                   : absl::StrCat(" ", text.substr(0, word),
                                  StateSuffix(backend), text.substr(word));
      }
      switch (options.columns) {
        case ListColumns::kStats:
          absl::StrAppend(&out, absl::StrFormat("  -> %-28s", dname),
                          CounterColumns(b.counters(), options.exact),
                          health_column ? tail : "", "\n");
          break;
        case ListColumns::kRate:
          absl::StrAppend(&out,
                          absl::StrFormat("  -> %-28s %8u %8u %8u", dname,
                                          b.counters().connections(),
                                          b.counters().packets_in(),
                                          b.counters().packets_out()),
                          LargeNumber(b.counters().bytes_in(), options.exact),
                          LargeNumber(b.counters().bytes_out(), options.exact),
                          health_column ? tail : "", "\n");
          break;
        case ListColumns::kThresholds:
          absl::StrAppend(
              &out,
              absl::StrFormat("  -> %-28s %-10u %-10u %-10u %-10u", dname,
                              backend.upper_threshold(),
                              backend.lower_threshold(), b.active_connections(),
                              b.inactive_connections()),
              health_column ? tail : "", "\n");
          break;
        case ListColumns::kDefault:
          absl::StrAppend(
              &out,
              absl::StrFormat(
                  "  -> %-28s %-7s %-6u %-10u %-10u", dname,
                  ForwardName(EffectiveForwarding(service, backend)),
                  EffectiveWeight(backend), b.active_connections(),
                  b.inactive_connections()),
              health_column ? tail.substr(1) : tail, "\n");
          break;
      }
    }
  }
  return out;
}

std::string FormatSave(std::vector<Service> services) {
  SortServices(&services);
  std::string out;
  for (const Service& service : services) {
    std::string svc = absl::StrCat(ProtocolSwitch(service.protocol()), " ",
                                   HostPort(service.vip(), service.port()));
    absl::StrAppend(&out, "-A ", svc, " -s ",
                    SchedulerName(service.scheduler()));
    if (Persistent(service)) {
      absl::StrAppend(&out, " -p ", service.persistence().timeout().seconds());
      std::string mask = MaskText(service);
      if (!mask.empty()) absl::StrAppend(&out, " -M ", mask);
    }
    std::string flags =
        SchedulerFlagsText(service.scheduler(), service.scheduler_flags());
    if (!flags.empty()) absl::StrAppend(&out, " -b ", flags);
    // ipvsadm's -A has no forwarding; ours says it when it is not -g.
    if (service.forwarding().mode() != lb::v1::FORWARDING_MODE_DR &&
        service.forwarding().mode() != lb::v1::FORWARDING_MODE_UNSPECIFIED) {
      absl::StrAppend(&out, " ", ForwardSwitches(service.forwarding()));
    }
    absl::StrAppend(&out, "\n");
    for (const Backend& backend : service.backends()) {
      absl::StrAppend(
          &out, "-a ", svc, " -r ",
          HostPort(backend.address(), EffectivePort(service, backend)), " ",
          ForwardSwitches(EffectiveForwarding(service, backend)), " -w ",
          EffectiveWeight(backend));
      if (backend.upper_threshold() != 0) {
        absl::StrAppend(&out, " -x ", backend.upper_threshold());
      }
      if (backend.lower_threshold() != 0) {
        absl::StrAppend(&out, " -y ", backend.lower_threshold());
      }
      absl::StrAppend(&out, "\n");
    }
  }
  return out;
}

lb::v1::GetStatsResponse RateOf(const lb::v1::GetStatsResponse& before,
                                const lb::v1::GetStatsResponse& after,
                                absl::Duration elapsed) {
  double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-3);
  StatsIndex old(before);
  lb::v1::GetStatsResponse rates;
  for (const ServiceStats& s : after.services()) {
    ServiceStats* r = rates.add_services();
    r->set_service_name(s.service_name());
    r->set_announced(s.announced());
    auto it = old.services.find(s.service_name());
    const Counters& prior = it == old.services.end()
                                ? Counters::default_instance()
                                : it->second->counters();
    *r->mutable_counters() = RateCounters(prior, s.counters(), seconds);
    for (const BackendStats& b : s.backends()) {
      BackendStats* rb = r->add_backends();
      *rb->mutable_backend() = b.backend();
      rb->set_active_connections(b.active_connections());
      rb->set_inactive_connections(b.inactive_connections());
      auto bit = old.backends.find(
          {s.service_name(), b.backend().address(), b.backend().port()});
      const Counters& bprior = bit == old.backends.end()
                                   ? Counters::default_instance()
                                   : bit->second->counters();
      *rb->mutable_counters() = RateCounters(bprior, b.counters(), seconds);
    }
  }
  return rates;
}

std::string FormatDiff(const lb::v1::ApplyServicesResponse& response,
                       bool dry_run) {
  std::string out;
  int unchanged = 0;
  int changed = 0;
  for (const lb::v1::ServiceChange& change : response.changes()) {
    const char* mark = "?";
    const char* what = "?";
    switch (change.kind()) {
      case lb::v1::ServiceChange::KIND_CREATE:
        mark = "+";
        what = "create";
        break;
      case lb::v1::ServiceChange::KIND_UPDATE:
        mark = "~";
        what = "update";
        break;
      case lb::v1::ServiceChange::KIND_DELETE:
        mark = "-";
        what = "delete";
        break;
      case lb::v1::ServiceChange::KIND_UNCHANGED:
        ++unchanged;
        continue;
      default:
        break;
    }
    ++changed;
    absl::StrAppend(&out, mark, " ", change.service_name(), " (", what, ")\n");
    for (const std::string& detail : change.details()) {
      absl::StrAppend(&out, "    ", detail, "\n");
    }
  }
  if (unchanged > 0) {
    absl::StrAppend(&out, "  ", unchanged, " service",
                    unchanged == 1 ? "" : "s", " unchanged\n");
  }
  if (dry_run) {
    absl::StrAppend(&out, "dry run: ", changed,
                    changed == 1 ? " change" : " changes",
                    ", nothing stored (revision ", response.revision(), ")\n");
  } else if (changed == 0) {
    absl::StrAppend(&out, "no change (revision ", response.revision(), ")\n");
  } else {
    absl::StrAppend(&out, "applied ", changed,
                    changed == 1 ? " change" : " changes", ": revision ",
                    response.revision(), "\n");
  }
  return out;
}

std::string FormatNodes(const lb::v1::ListNodesResponse& response) {
  std::vector<lb::v1::Node> nodes(response.nodes().begin(),
                                  response.nodes().end());
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.settings().node_name() < b.settings().node_name();
  });
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "ADMIN", "WEIGHT", "CONNECTED", "DATAPLANE", "REVISION",
       "VERSION", "LOCAL ADDRESSES"}};
  for (const lb::v1::Node& node : nodes) {
    const auto& s = node.settings();
    rows.push_back(
        {s.node_name(), AdminStateName(s.admin_state()),
         absl::StrCat(s.weight() == 0 ? 1 : s.weight()),
         node.connected() ? "yes" : "no", DataplaneName(node),
         node.has_status() ? absl::StrCat(node.status().applied_revision())
                           : "-",
         node.status().version().empty() ? "-" : node.status().version(),
         s.local_addresses().empty()
             ? "-"
             : absl::StrJoin(s.local_addresses(), ",")});
  }
  return Table(rows);
}

std::string FormatStatus(const lb::v1::ListNodesResponse& response) {
  std::vector<lb::v1::Node> nodes(response.nodes().begin(),
                                  response.nodes().end());
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.settings().node_name() < b.settings().node_name();
  });
  std::string out =
      absl::StrCat("controller revision ", response.revision(), "\n");
  if (nodes.empty()) return absl::StrCat(out, "no nodes registered\n");
  std::vector<std::vector<std::string>> rows = {{"NODE", "REVISION", "IN SYNC",
                                                 "DATAPLANE", "ANNOUNCED",
                                                 "ADMIN", "REPORTED"}};
  int in_sync = 0;
  for (const lb::v1::Node& node : nodes) {
    bool reported = node.has_status();
    bool synced =
        reported && node.status().applied_revision() == response.revision();
    if (synced) ++in_sync;
    rows.push_back(
        {node.settings().node_name(),
         reported ? absl::StrCat(node.status().applied_revision()) : "-",
         !reported ? "-" : (synced ? "yes" : "no"), DataplaneName(node),
         AnnouncedText(node), AdminStateName(node.settings().admin_state()),
         TimestampText(node.status().reported_at())});
  }
  absl::StrAppend(&out, Table(rows), in_sync, " of ", nodes.size(),
                  " nodes at revision ", response.revision(), "\n");
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok())
    return absl::StrCat("{\"error\": \"", status.ToString(), "\"}\n");
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

}  // namespace anylb::lbctl
