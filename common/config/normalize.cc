#include "common/config/normalize.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config/error_list.h"

namespace anylb::config {
namespace {

// lb.v1.HealthCheck's defaults (health.proto; the HealthMonitor applies
// them).
constexpr absl::Duration kDefaultHealthCheckInterval = absl::Seconds(5);
constexpr absl::Duration kDefaultHealthCheckTimeout = absl::Seconds(2);

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CEscape(std::string(text)), "\"");
}

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string DescribeForwarding(const NormalForwarding& f) {
  std::string text(ForwardingName(f.mode));
  if (f.mode == lb::v1::FORWARDING_MODE_TUN) {
    absl::StrAppend(&text,
                    f.tunnel == lb::v1::TUNNEL_TYPE_GUE ? "/GUE" : "/IPIP");
    if (f.tunnel == lb::v1::TUNNEL_TYPE_GUE) {
      absl::StrAppend(&text, ":", f.gue_port);
    }
  }
  return text;
}

// One backend_health entry, parsed.
struct HealthEntry {
  size_t index = 0;
  IpAddress address;
  uint32_t port = 0;
  const lb::v1::BackendHealth* proto = nullptr;
  bool used = false;
};

class Normalizer {
 public:
  Normalizer(const lb::v1::ConfigSnapshot& config,
             const NormalizeOptions& options)
      : config_(config), options_(options), errors_(kMaxConfigErrors) {}

  absl::StatusOr<NormalConfig> Run() {
    out_.revision = config_.revision();
    NormalizeNode();
    IndexHealth();
    for (int i = 0; i < config_.services_size(); ++i) {
      NormalizeService(static_cast<size_t>(i), config_.services(i));
    }
    for (const auto& [service, entries] : health_) {
      for (const HealthEntry& e : entries) {
        if (e.used) continue;
        Error(absl::StrCat("backend_health[", e.index, "]"),
              absl::StrCat(": no backend ", e.proto->backend().address(),
                           e.port != 0 ? absl::StrCat(":", e.port) : "",
                           " in service ", Quote(service)));
      }
    }
    if (absl::Status status = errors_.ToStatus(); !status.ok()) return status;
    return std::move(out_);
  }

 private:
  // Error records "<where> <message>", or "<where>: ..." when `message`
  // starts with a colon: "backends[1].weight 70000: outside 0..65535",
  // "node.local_addresses[0]: bad prefix ...".
  void Error(const std::string& where, const std::string& message) {
    errors_.Add(
        absl::StrCat(where, message.starts_with(':') ? "" : " ", message));
  }

  void NormalizeNode() {
    const lb::v1::NodeSettings& node = config_.node();
    NormalNode& out = out_.node;
    out.name = node.node_name();
    out.weight = node.weight() == 0 ? 1 : node.weight();
    if (node.weight() > kMaxNodeWeight) {
      Error("node.weight",
            absl::StrCat(node.weight(), ": outside 0..", kMaxNodeWeight));
    }
    std::vector<IpPrefix> prefixes;
    uint64_t total = 0;
    for (int i = 0; i < node.local_addresses_size(); ++i) {
      const std::string where = absl::StrCat("node.local_addresses[", i, "]");
      const std::string& text = node.local_addresses(i);
      absl::StatusOr<IpPrefix> prefix = IpPrefix::Parse(text);
      if (!prefix.ok()) {
        Error(where, absl::StrCat(": ", prefix.status().message()));
        continue;
      }
      const int host_bits = prefix->address().bit_length() - prefix->length();
      const uint64_t count =
          host_bits >= 32 ? uint64_t{1} << 32 : uint64_t{1} << host_bits;
      total += count;
      if (total > kMaxLocalAddresses) {
        Error(where,
              absl::StrCat(Quote(text), ": more than ", kMaxLocalAddresses,
                           " local addresses in all; use longer prefixes"));
        continue;
      }
      bool overlaps = false;
      for (const IpPrefix& other : prefixes) {
        if (other.Contains(*prefix) || prefix->Contains(other)) {
          Error(where,
                absl::StrCat(Quote(text), ": overlaps ", other.ToString()));
          overlaps = true;
        }
      }
      if (overlaps) continue;
      prefixes.push_back(*prefix);
      // Every address of the prefix: they are routed to this node, not
      // hosts on a shared segment, so network and broadcast are usable.
      const auto base = prefix->address().bytes();
      for (uint64_t k = 0; k < count; ++k) {
        std::array<uint8_t, 16> bytes{};
        std::memcpy(bytes.data(), base.data(), base.size());
        uint64_t carry = k;
        for (size_t b = base.size(); b-- > 0 && carry != 0;) {
          const uint64_t sum = bytes[b] + (carry & 0xff);
          bytes[b] = static_cast<uint8_t>(sum);
          carry = (carry >> 8) + (sum >> 8);
        }
        out.local_addresses.insert(
            prefix->is_v4() ? IpAddress::FromV4Bytes(
                                  std::span<const uint8_t, 4>(bytes.data(), 4))
                            : IpAddress::FromV6Bytes(bytes));
      }
    }
    for (const IpAddress& a : out.local_addresses) {
      (a.is_v4() ? out.has_local_v4 : out.has_local_v6) = true;
    }
  }

  void IndexHealth() {
    for (int i = 0; i < config_.backend_health_size(); ++i) {
      const lb::v1::BackendHealth& h = config_.backend_health(i);
      const std::string where = absl::StrCat("backend_health[", i, "]");
      absl::StatusOr<IpAddress> address =
          IpAddress::Parse(h.backend().address());
      if (!address.ok()) {
        Error(where + ".backend.address",
              absl::StrCat(": ", address.status().message()));
        continue;
      }
      if (h.state() != lb::v1::HEALTH_STATE_UNSPECIFIED &&
          h.state() != lb::v1::HEALTH_STATE_UP &&
          h.state() != lb::v1::HEALTH_STATE_DOWN) {
        Error(where + ".state", absl::StrCat(h.state(), ": unknown value"));
        continue;
      }
      if (h.dynamic_weight() > kMaxBackendWeight) {
        Error(where + ".dynamic_weight",
              absl::StrCat(h.dynamic_weight(), ": outside 0..",
                           kMaxBackendWeight));
        continue;
      }
      health_[h.backend().service_name()].push_back(
          {static_cast<size_t>(i), *address, h.backend().port(), &h, false});
    }
  }

  // NormalizeForwarding checks `f` (at `where`) and fills in defaults;
  // `inherited` is the mode used when f's is unspecified.
  std::optional<NormalForwarding> NormalizeForwarding(
      const std::string& where, const lb::v1::Forwarding& f,
      std::optional<lb::v1::ForwardingMode> inherited) {
    NormalForwarding n;
    bool ok = true;
    switch (f.mode()) {
      case lb::v1::FORWARDING_MODE_DR:
      case lb::v1::FORWARDING_MODE_TUN:
      case lb::v1::FORWARDING_MODE_NAT:
      case lb::v1::FORWARDING_MODE_FULLNAT:
        n.mode = f.mode();
        break;
      case lb::v1::FORWARDING_MODE_UNSPECIFIED:
        if (inherited) {
          n.mode = *inherited;
          break;
        }
        Error(
            where + ".mode",
            "is required: one of dr, tun, nat, fullnat (set it on the service "
            "or on every backend)");
        return std::nullopt;
      default:
        Error(where + ".mode", absl::StrCat(f.mode(), ": unknown value"));
        return std::nullopt;
    }
    switch (f.tunnel_type()) {
      case lb::v1::TUNNEL_TYPE_UNSPECIFIED:
      case lb::v1::TUNNEL_TYPE_IPIP:
        n.tunnel = lb::v1::TUNNEL_TYPE_IPIP;
        break;
      case lb::v1::TUNNEL_TYPE_GUE:
        n.tunnel = lb::v1::TUNNEL_TYPE_GUE;
        break;
      default:
        Error(where + ".tunnel_type",
              absl::StrCat(f.tunnel_type(), ": unknown value"));
        ok = false;
    }
    if (f.tunnel_type() != lb::v1::TUNNEL_TYPE_UNSPECIFIED &&
        n.mode != lb::v1::FORWARDING_MODE_TUN) {
      Error(where + ".tunnel_type",
            absl::StrCat("is only for mode TUN, not ", ForwardingName(n.mode)));
      ok = false;
    }
    if (f.gue_port() != 0) {
      if (n.mode != lb::v1::FORWARDING_MODE_TUN ||
          n.tunnel != lb::v1::TUNNEL_TYPE_GUE) {
        Error(where + ".gue_port",
              absl::StrCat(f.gue_port(),
                           ": only for mode TUN with tunnel_type GUE"));
        ok = false;
      } else if (f.gue_port() > 65535) {
        Error(where + ".gue_port",
              absl::StrCat(f.gue_port(), ": outside 1..65535"));
        ok = false;
      } else {
        n.gue_port = static_cast<uint16_t>(f.gue_port());
      }
    }
    if (!ok) return std::nullopt;
    return n;
  }

  void NormalizeService(size_t index, const lb::v1::Service& s) {
    const int errors_before = errors_.count();
    NormalService out;

    // Identity: VIP, port, protocol, name.
    absl::StatusOr<IpAddress> vip = IpAddress::Parse(s.vip());
    uint8_t protocol = 0;
    if (s.protocol() == lb::v1::PROTOCOL_TCP) protocol = 6;
    if (s.protocol() == lb::v1::PROTOCOL_UDP) protocol = 17;
    const std::string vip_text = s.vip().find(':') != std::string::npos
                                     ? absl::StrCat("[", s.vip(), "]")
                                     : s.vip();
    std::string name = s.name();
    if (name.empty() && vip.ok() && protocol != 0 && s.port() <= 65535) {
      name =
          DefaultServiceName(*vip, static_cast<uint16_t>(s.port()), protocol);
    }
    const std::string where = absl::StrCat(
        name.empty() ? absl::StrCat("services[", index, "]")
                     : absl::StrCat("service ", Quote(name)),
        " (", vip_text, ":", s.port(), "/", ProtocolName(protocol), ")");
    auto error = [&](const std::string& field, const std::string& message) {
      Error(absl::StrCat(where, ": ", field), message);
    };

    if (!vip.ok()) {
      error("vip",
            absl::StrCat(Quote(s.vip()), ": not an IPv4 or IPv6 address"));
    }
    if (s.port() > 65535) {
      error("port", absl::StrCat(s.port(), ": outside 0..65535"));
    }
    if (s.protocol() == lb::v1::PROTOCOL_UNSPECIFIED) {
      error("protocol", "is required: tcp or udp");
    } else if (protocol == 0) {
      error("protocol", absl::StrCat(s.protocol(), ": unknown value"));
    }
    if (!s.name().empty() && !IsValidServiceName(s.name())) {
      error("name", absl::StrCat(Quote(s.name()),
                                 ": 1..63 characters of [a-z0-9._:-]"));
    }
    if (!name.empty()) {
      auto [it, inserted] = names_.emplace(name, index);
      if (!inserted) {
        error("name", absl::StrCat(Quote(name), " is services[", it->second,
                                   "]'s name too"));
      }
    }
    const uint16_t port =
        static_cast<uint16_t>(std::min<uint32_t>(s.port(), 65535));
    if (vip.ok() && protocol != 0 && s.port() <= 65535) {
      const std::string key =
          absl::StrCat(vip->ToString(), "|", port, "|", protocol);
      auto [it, inserted] = virtual_addresses_.emplace(key, where);
      if (!inserted) {
        Error(where,
              absl::StrCat(": same VIP, port and protocol as ", it->second));
      }
    }

    // Scheduling.
    const std::string scheduler_name = SchedulerName(s.scheduler());
    const bool known_scheduler = scheduler_name != "?";
    if (s.scheduler() == lb::v1::SCHEDULER_UNSPECIFIED) {
      error(
          "scheduler",
          "is required: one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, "
          "fo, ovf, mh, twos (mh is the fleet's consistent hash)");
    } else if (!known_scheduler) {
      error("scheduler", absl::StrCat(s.scheduler(), ": unknown value"));
    }
    const bool is_mh = s.scheduler() == lb::v1::SCHEDULER_MH;
    if (known_scheduler) {
      out.scheduler = s.scheduler();
      const bool hashing = s.scheduler() == lb::v1::SCHEDULER_SH || is_mh;
      if (!hashing && s.scheduler_flags().fallback()) {
        error("scheduler_flags.fallback",
              absl::StrCat("is only for sh and mh (ipvsadm -b sh-fallback), "
                           "not for ",
                           scheduler_name));
      }
      if (!hashing && s.scheduler_flags().port()) {
        error(
            "scheduler_flags.port",
            absl::StrCat("is only for sh and mh (ipvsadm -b sh-port), not for ",
                         scheduler_name));
      }
      out.scheduler_fallback = s.scheduler_flags().fallback();
      out.scheduler_port = s.scheduler_flags().port();
      if (!is_mh) {
        if (s.hash_inputs() != lb::v1::HASH_INPUTS_UNSPECIFIED) {
          error("hash_inputs",
                absl::StrCat("is only for mh, not for ", scheduler_name));
        }
        if (s.maglev_table_size() != 0) {
          error("maglev_table_size",
                absl::StrCat("is only for mh, not for ", scheduler_name));
        }
      }
    }
    switch (s.hash_inputs()) {
      case lb::v1::HASH_INPUTS_UNSPECIFIED:
        out.hash_inputs = s.scheduler_flags().port()
                              ? lb::v1::HASH_INPUTS_SOURCE_IP_PORT
                              : lb::v1::HASH_INPUTS_FIVE_TUPLE;
        break;
      case lb::v1::HASH_INPUTS_FIVE_TUPLE:
      case lb::v1::HASH_INPUTS_THREE_TUPLE:
      case lb::v1::HASH_INPUTS_SOURCE_IP:
      case lb::v1::HASH_INPUTS_SOURCE_IP_PORT:
        out.hash_inputs = s.hash_inputs();
        break;
      default:
        error("hash_inputs", absl::StrCat(s.hash_inputs(), ": unknown value"));
    }
    out.maglev_table_size = s.maglev_table_size() != 0
                                ? s.maglev_table_size()
                                : kDefaultMaglevTableSize;
    if (s.maglev_table_size() != 0 &&
        (s.maglev_table_size() > kMaxMaglevTableSize ||
         !IsPrime(s.maglev_table_size()))) {
      error("maglev_table_size",
            absl::StrCat(s.maglev_table_size(),
                         ": not a prime in 2..16777213 (e.g. 251, 65537, "
                         "655373)"));
    }
    out.hash_seed = s.hash_seed();

    // Forwarding: the service's, which every backend override must equal.
    // A service without one takes its first backend's (checked against
    // the others below).
    const lb::v1::Forwarding* service_forwarding = &s.forwarding();
    std::string forwarding_field = "forwarding";
    if (s.forwarding().mode() == lb::v1::FORWARDING_MODE_UNSPECIFIED &&
        s.backends_size() > 0 && s.backends(0).has_forwarding() &&
        s.backends(0).forwarding().mode() !=
            lb::v1::FORWARDING_MODE_UNSPECIFIED) {
      service_forwarding = &s.backends(0).forwarding();
      forwarding_field = "backends[0].forwarding";
    }
    std::optional<NormalForwarding> forwarding =
        NormalizeForwarding(absl::StrCat(where, ": ", forwarding_field),
                            *service_forwarding, std::nullopt);
    if (forwarding) out.forwarding = *forwarding;

    // Persistence.
    const absl::Duration timeout = ToDuration(s.persistence().timeout());
    if (absl::Status st = ValidatePersistence(
            s.port(), timeout,
            static_cast<int>(s.persistence().ipv4_prefix_length()),
            static_cast<int>(s.persistence().ipv6_prefix_length()));
        !st.ok()) {
      error("persistence", absl::StrCat(": ", st.message()));
    } else {
      out.persistence_timeout = timeout;
      out.persistence_ipv4_prefix =
          static_cast<int>(s.persistence().ipv4_prefix_length());
      out.persistence_ipv6_prefix =
          static_cast<int>(s.persistence().ipv6_prefix_length());
    }

    if (s.has_health_check()) NormalizeHealthCheck(s.health_check(), error);

    // Backends.
    std::map<Endpoint, int> endpoints;
    std::vector<HealthEntry>* health = nullptr;
    if (auto it = health_.find(name); it != health_.end()) {
      health = &it->second;
    }
    const lb::v1::FailureAction on_failure = s.health_check().on_failure();
    for (int j = 0; j < s.backends_size(); ++j) {
      NormalizeBackend(j, absl::StrCat("backends[", j, "]"), s.backends(j),
                       where, port, vip, forwarding, on_failure, health,
                       endpoints, &out.backends);
    }
    // The sorry server (keepalived's sorry_server): checked like a backend
    // whatever the health, used only while no backend takes new flows.
    std::vector<NormalBackend> sorry;
    if (s.has_sorry_backend()) {
      const lb::v1::Backend& b = s.sorry_backend();
      if (b.has_weight() && b.weight() == 0) {
        error("sorry_backend.weight",
              "0: a sorry server of weight 0 would take no flows; leave the "
              "weight unset (1)");
      }
      if (!b.health_check_address().empty() || b.health_check_port() != 0) {
        error("sorry_backend",
              ": health_check_address/port are for checked backends; the "
              "sorry server is not checked");
      }
      NormalizeBackend(-1, "sorry_backend", b, where, port, vip, forwarding,
                       on_failure, nullptr, endpoints, &sorry);
    }
    const size_t table_backends = out.backends.size() + sorry.size();
    if (is_mh && table_backends > out.maglev_table_size) {
      error("maglev_table_size",
            absl::StrCat(out.maglev_table_size, ": smaller than the ",
                         table_backends,
                         " backends; use a prime >= 100 x backends"));
    }
    const bool any_up =
        std::any_of(out.backends.begin(), out.backends.end(),
                    [](const NormalBackend& b) { return b.weight > 0; });
    if (!any_up && !sorry.empty() && sorry[0].weight > 0) {
      out.backends.push_back(sorry[0]);
      out.sorry_active = true;
    }

    if (errors_.count() != errors_before || !vip.ok()) return;
    out.name = name;
    out.vip = *vip;
    out.port = port;
    out.protocol = protocol;
    out_.services.push_back(std::move(out));
  }

  // NormalizeHealthCheck checks what the node's HealthMonitor would refuse
  // (so the controller never stores a check no node can run). A check with
  // no kind set checks nothing (it may carry on_failure alone).
  template <typename ErrorFn>
  void NormalizeHealthCheck(const lb::v1::HealthCheck& h, ErrorFn& error) {
    // Unset or zero: the default.
    absl::Duration interval = ToDuration(h.interval());
    if (interval == absl::ZeroDuration()) {
      interval = kDefaultHealthCheckInterval;
    }
    absl::Duration timeout = ToDuration(h.timeout());
    if (timeout == absl::ZeroDuration()) timeout = kDefaultHealthCheckTimeout;
    if (interval < absl::Milliseconds(10)) {
      error("health_check.interval",
            absl::StrCat(absl::FormatDuration(interval),
                         ": at least 10ms (default 5s)"));
    } else if (timeout < absl::ZeroDuration() || timeout >= interval) {
      error("health_check.timeout",
            absl::StrCat(absl::FormatDuration(timeout),
                         ": must be positive and shorter than the interval ",
                         absl::FormatDuration(interval),
                         " (defaults: interval 5s, timeout 2s)"));
    }
    switch (h.on_failure()) {
      case lb::v1::FAILURE_ACTION_UNSPECIFIED:
      case lb::v1::FAILURE_ACTION_INHIBIT:
      case lb::v1::FAILURE_ACTION_REMOVE:
        break;
      default:
        error("health_check.on_failure",
              absl::StrCat(h.on_failure(), ": unknown value"));
    }
    auto command =
        [&](const std::string& field,
            const google::protobuf::RepeatedPtrField<std::string>& argv,
            bool required) {
          if (argv.empty()) {
            if (required) {
              error(field,
                    "is empty: give the command as [/absolute/path, args]");
            }
            return;
          }
          if (!argv[0].starts_with('/')) {
            error(
                absl::StrCat(field, "[0]"),
                absl::StrCat(Quote(argv[0]),
                             ": must be an absolute path (commands run without "
                             "a shell or PATH search)"));
          }
        };
    if (h.has_exec()) command("health_check.exec.argv", h.exec().argv(), true);
    command("health_check.notify_up", h.notify_up(), false);
    command("health_check.notify_down", h.notify_down(), false);
    if (h.has_http()) {
      for (int i = 0; i < h.http().expected_statuses_size(); ++i) {
        const lb::v1::StatusRange& r = h.http().expected_statuses(i);
        if (r.min() < 100 || r.max() > 599 || r.min() > r.max()) {
          error(absl::StrCat("health_check.http.expected_statuses[", i, "]"),
                absl::StrCat(r.min(), "-", r.max(),
                             ": want 100 <= min <= max <= 599"));
        }
      }
    }
  }

  // NormalizeBackend checks backends[j] (or, with j < 0, the sorry
  // backend), named `field` in messages, and appends it to `into` unless it
  // is left out (disabled, or down with FAILURE_ACTION_REMOVE).
  void NormalizeBackend(int j, const std::string& field,
                        const lb::v1::Backend& b, const std::string& where,
                        uint16_t port, const absl::StatusOr<IpAddress>& vip,
                        const std::optional<NormalForwarding>& forwarding,
                        lb::v1::FailureAction on_failure,
                        std::vector<HealthEntry>* health,
                        std::map<Endpoint, int>& endpoints,
                        std::vector<NormalBackend>* into) {
    auto error = [&](const std::string& field, const std::string& message) {
      Error(absl::StrCat(where, ": ", field), message);
    };
    absl::StatusOr<IpAddress> address = IpAddress::Parse(b.address());
    if (!address.ok()) {
      error(field + ".address",
            absl::StrCat(Quote(b.address()), ": not an IPv4 or IPv6 address"));
    }
    if (b.port() > 65535) {
      error(field + ".port", absl::StrCat(b.port(), ": outside 0..65535"));
    }
    const uint16_t backend_port =
        b.port() == 0
            ? port
            : static_cast<uint16_t>(std::min<uint32_t>(b.port(), 65535));
    if (b.weight() > kMaxBackendWeight) {
      error(field + ".weight",
            absl::StrCat(b.weight(), ": outside 0..", kMaxBackendWeight,
                         " (ipvsadm -w)"));
    }
    if (b.upper_threshold() != 0 && b.lower_threshold() > b.upper_threshold()) {
      error(field + ".lower_threshold",
            absl::StrCat(b.lower_threshold(), ": above upper_threshold ",
                         b.upper_threshold()));
    }
    if (!b.health_check_address().empty() &&
        !IpAddress::Parse(b.health_check_address()).ok()) {
      error(field + ".health_check_address",
            absl::StrCat(Quote(b.health_check_address()),
                         ": not an IPv4 or IPv6 address"));
    }
    if (b.health_check_port() > 65535) {
      error(field + ".health_check_port",
            absl::StrCat(b.health_check_port(), ": outside 0..65535"));
    }
    if (b.has_forwarding() && forwarding) {
      std::optional<NormalForwarding> own =
          NormalizeForwarding(absl::StrCat(where, ": ", field, ".forwarding"),
                              b.forwarding(), forwarding->mode);
      if (own && !(*own == *forwarding)) {
        error(field + ".forwarding",
              absl::StrCat(DescribeForwarding(*own), " differs from the ",
                           "service's ", DescribeForwarding(*forwarding),
                           "; the engine keeps one forwarding mode per "
                           "service: put these backends in a service of "
                           "their own"));
      }
    }
    bool enabled = true;
    bool quiesced = false;
    switch (b.state()) {
      case lb::v1::BACKEND_STATE_UNSPECIFIED:
      case lb::v1::BACKEND_STATE_ENABLED:
        break;
      case lb::v1::BACKEND_STATE_DRAINING:
        quiesced = true;
        break;
      case lb::v1::BACKEND_STATE_DISABLED:
        enabled = false;
        break;
      default:
        error(field + ".state", absl::StrCat(b.state(), ": unknown value"));
    }
    if (!address.ok()) return;
    const lb::v1::ForwardingMode mode =
        forwarding ? forwarding->mode : lb::v1::FORWARDING_MODE_UNSPECIFIED;
    if (vip.ok() && address->family() != vip->family() && forwarding &&
        !(mode == lb::v1::FORWARDING_MODE_TUN &&
          forwarding->tunnel == lb::v1::TUNNEL_TYPE_GUE)) {
      error(field + ".address",
            absl::StrCat(Quote(b.address()), ": ",
                         address->is_v6() ? "IPv6" : "IPv4", " backend of an ",
                         vip->is_v6() ? "IPv6" : "IPv4",
                         " VIP; only TUN with tunnel_type GUE carries the "
                         "other family"));
    }
    if (forwarding && b.port() <= 65535 && backend_port != port &&
        (mode == lb::v1::FORWARDING_MODE_DR ||
         mode == lb::v1::FORWARDING_MODE_TUN)) {
      error(field + ".port",
            absl::StrCat(b.port(), ": ", ForwardingName(mode),
                         " cannot map ports; use 0 or the VIP's port ", port,
                         " (or NAT / FULLNAT)"));
    }
    if (options_.check_local_addresses && forwarding &&
        mode == lb::v1::FORWARDING_MODE_FULLNAT &&
        !(address->is_v4() ? out_.node.has_local_v4 : out_.node.has_local_v6)) {
      error(field + ".address",
            absl::StrCat(Quote(b.address()),
                         ": FULLNAT needs node.local_addresses "
                         "of the backend's family (",
                         address->is_v4() ? "IPv4" : "IPv6",
                         "); there are none"));
    }
    const Endpoint endpoint(*address, backend_port);
    if (auto [it, inserted] = endpoints.emplace(endpoint, j); !inserted) {
      error(field, absl::StrCat(": ", endpoint.ToString(), " is backends[",
                                it->second, "] too",
                                j < 0 ? " (the sorry server must be another "
                                        "real server)"
                                      : ""));
      return;
    }

    // Fleet health.
    uint32_t weight = b.has_weight() ? b.weight() : 1;
    if (health != nullptr) {
      for (HealthEntry& h : *health) {
        const uint16_t ref_port =
            h.port == 0 ? port : static_cast<uint16_t>(h.port);
        if (h.address != *address || ref_port != backend_port) continue;
        h.used = true;
        if (h.proto->state() == lb::v1::HEALTH_STATE_DOWN) {
          if (on_failure == lb::v1::FAILURE_ACTION_REMOVE) {
            enabled = false;
          } else {
            quiesced = true;
          }
        } else if (h.proto->has_dynamic_weight()) {
          weight = h.proto->dynamic_weight();
        }
      }
    }
    if (!enabled) return;
    if (quiesced) weight = 0;
    if (j < 0 && weight == 0) return;  // A sorry server that takes nothing.
    NormalBackend backend;
    backend.address = *address;
    backend.port = backend_port;
    backend.weight = std::min(weight, kMaxBackendWeight);
    backend.upper_threshold = b.upper_threshold();
    backend.lower_threshold = b.lower_threshold();
    into->push_back(backend);
  }

  const lb::v1::ConfigSnapshot& config_;
  const NormalizeOptions& options_;
  ErrorList errors_;
  NormalConfig out_;
  std::map<std::string, std::vector<HealthEntry>> health_;
  std::map<std::string, size_t> names_;
  std::map<std::string, std::string> virtual_addresses_;
};

}  // namespace

const char* SchedulerName(lb::v1::Scheduler scheduler) {
  switch (scheduler) {
    case lb::v1::SCHEDULER_RR:
      return "rr";
    case lb::v1::SCHEDULER_WRR:
      return "wrr";
    case lb::v1::SCHEDULER_LC:
      return "lc";
    case lb::v1::SCHEDULER_WLC:
      return "wlc";
    case lb::v1::SCHEDULER_LBLC:
      return "lblc";
    case lb::v1::SCHEDULER_LBLCR:
      return "lblcr";
    case lb::v1::SCHEDULER_DH:
      return "dh";
    case lb::v1::SCHEDULER_SH:
      return "sh";
    case lb::v1::SCHEDULER_SED:
      return "sed";
    case lb::v1::SCHEDULER_NQ:
      return "nq";
    case lb::v1::SCHEDULER_FO:
      return "fo";
    case lb::v1::SCHEDULER_OVF:
      return "ovf";
    case lb::v1::SCHEDULER_MH:
      return "mh";
    case lb::v1::SCHEDULER_TWOS:
      return "twos";
    default:
      return "?";
  }
}

const char* ForwardingName(lb::v1::ForwardingMode mode) {
  switch (mode) {
    case lb::v1::FORWARDING_MODE_DR:
      return "DR";
    case lb::v1::FORWARDING_MODE_TUN:
      return "TUN";
    case lb::v1::FORWARDING_MODE_NAT:
      return "NAT";
    case lb::v1::FORWARDING_MODE_FULLNAT:
      return "FULLNAT";
    default:
      return "?";
  }
}

absl::StatusOr<NormalConfig> NormalizeConfig(
    const lb::v1::ConfigSnapshot& config, const NormalizeOptions& options) {
  return Normalizer(config, options).Run();
}

}  // namespace anylb::config
