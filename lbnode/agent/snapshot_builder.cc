#include "lbnode/agent/snapshot_builder.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "lbnode/agent/config_file.h"
#include "lbnode/agent/error_list.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/maglev.h"
#include "lbnode/scheduler/persistence.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::agent {
namespace {

using dataplane::ForwardingMode;
using dataplane::TunnelType;
using scheduler::HashInputs;
using scheduler::SchedulerKind;

constexpr uint32_t kMaxWeight = 65535;          // ipvsadm -w
constexpr uint32_t kMaxNodeWeight = 1000000;    // NodeSettings.weight
constexpr uint32_t kDefaultMaglevSize = 65537;  // Service.maglev_table_size
constexpr uint64_t kSeedOfSeeds = 0x6d61676c65762d31;  // "maglev-1"

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CEscape(std::string(text)), "\"");
}

const char* ProtocolName(uint8_t protocol) {
  return protocol == 6 ? "tcp" : protocol == 17 ? "udp" : "?";
}

const char* ModeName(ForwardingMode mode) {
  switch (mode) {
    case ForwardingMode::kDr:
      return "DR";
    case ForwardingMode::kTun:
      return "TUN";
    case ForwardingMode::kNat:
      return "NAT";
    case ForwardingMode::kFullNat:
      return "FULLNAT";
  }
  return "?";
}

bool ValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

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

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Forwarding, checked and with its defaults filled in.
struct NormalForwarding {
  ForwardingMode mode = ForwardingMode::kDr;
  TunnelType tunnel = TunnelType::kIpip;
  uint16_t gue_port = dataplane::kDefaultGuePort;
  friend bool operator==(const NormalForwarding&,
                         const NormalForwarding&) = default;
};

std::string DescribeForwarding(const NormalForwarding& f) {
  std::string text(ModeName(f.mode));
  if (f.mode == ForwardingMode::kTun) {
    absl::StrAppend(&text, f.tunnel == TunnelType::kGue ? "/GUE" : "/IPIP");
    if (f.tunnel == TunnelType::kGue) absl::StrAppend(&text, ":", f.gue_port);
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

class Builder {
 public:
  Builder(const lb::v1::ConfigSnapshot& config, const NodeIdentity& identity)
      : config_(config), identity_(identity), errors_(kMaxConfigErrors) {}

  absl::StatusOr<EngineConfig> Build() {
    BuildNode();
    IndexHealth();
    for (int i = 0; i < config_.services_size(); ++i) {
      BuildService(static_cast<size_t>(i), config_.services(i));
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
    RETURN_IF_ERROR(errors_.ToStatus());

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
    node.local_addresses.assign(local_addresses_.begin(),
                                local_addresses_.end());

    EngineConfig out;
    out.revision = config_.revision();
    ASSIGN_OR_RETURN(out.snapshot, dataplane::EngineSnapshot::Create(
                                       std::move(node), std::move(services_)));
    out.local_addresses = std::move(local_addresses_);
    out.nat_backends = std::move(nat_backends_);
    auto names = std::make_shared<NameTable>();
    for (size_t i = 0; i < out.snapshot->services().size(); ++i) {
      const dataplane::ServiceConfig& s = out.snapshot->services()[i];
      out.vips.insert({s.vip, s.port, s.protocol});
      ServiceNames n;
      n.name = service_names_[i];
      n.vip = s.vip.ToString();
      n.port = s.port;
      n.protocol = std::string(ProtocolName(s.protocol));
      for (const dataplane::BackendConfig& b : s.backends) {
        n.backends.push_back(b.endpoint.ToString());
      }
      names->push_back(std::move(n));
    }
    out.names = std::move(names);
    return out;
  }

 private:
  // Error records "<where> <message>", or "<where>: ..." when `message`
  // starts with a colon: "backends[1].weight 70000: outside 0..65535",
  // "node.local_addresses[0]: bad prefix ...".
  void Error(const std::string& where, const std::string& message) {
    errors_.Add(
        absl::StrCat(where, message.starts_with(':') ? "" : " ", message));
  }

  void BuildNode() {
    const lb::v1::NodeSettings& node = config_.node();
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
        local_addresses_.insert(
            prefix->is_v4() ? IpAddress::FromV4Bytes(
                                  std::span<const uint8_t, 4>(bytes.data(), 4))
                            : IpAddress::FromV6Bytes(bytes));
      }
    }
    for (const IpAddress& a : local_addresses_) {
      (a.is_v4() ? has_local_v4_ : has_local_v6_) = true;
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
      if (h.dynamic_weight() > kMaxWeight) {
        Error(where + ".dynamic_weight",
              absl::StrCat(h.dynamic_weight(), ": outside 0..", kMaxWeight));
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
      std::optional<ForwardingMode> inherited) {
    NormalForwarding n;
    bool ok = true;
    switch (f.mode()) {
      case lb::v1::FORWARDING_MODE_DR:
        n.mode = ForwardingMode::kDr;
        break;
      case lb::v1::FORWARDING_MODE_TUN:
        n.mode = ForwardingMode::kTun;
        break;
      case lb::v1::FORWARDING_MODE_NAT:
        n.mode = ForwardingMode::kNat;
        break;
      case lb::v1::FORWARDING_MODE_FULLNAT:
        n.mode = ForwardingMode::kFullNat;
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
        n.tunnel = TunnelType::kIpip;
        break;
      case lb::v1::TUNNEL_TYPE_GUE:
        n.tunnel = TunnelType::kGue;
        break;
      default:
        Error(where + ".tunnel_type",
              absl::StrCat(f.tunnel_type(), ": unknown value"));
        ok = false;
    }
    if (f.tunnel_type() != lb::v1::TUNNEL_TYPE_UNSPECIFIED &&
        n.mode != ForwardingMode::kTun) {
      Error(where + ".tunnel_type",
            absl::StrCat("is only for mode TUN, not ", ModeName(n.mode)));
      ok = false;
    }
    if (f.gue_port() != 0) {
      if (n.mode != ForwardingMode::kTun || n.tunnel != TunnelType::kGue) {
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

  void BuildService(size_t index, const lb::v1::Service& s) {
    const int errors_before = errors_.count();
    dataplane::ServiceConfig out;

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
    if (!s.name().empty() && !ValidServiceName(s.name())) {
      error("name",
            absl::StrCat(Quote(s.name()), ": 1..63 characters of [a-z0-9._-]"));
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
    std::optional<SchedulerKind> kind = ToSchedulerKind(s.scheduler());
    if (s.scheduler() == lb::v1::SCHEDULER_UNSPECIFIED) {
      error(
          "scheduler",
          "is required: one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, "
          "fo, ovf, mh, twos (mh is the fleet's consistent hash)");
    } else if (!kind) {
      error("scheduler", absl::StrCat(s.scheduler(), ": unknown value"));
    }
    if (kind) {
      out.scheduler.kind = *kind;
      const std::string kind_name(scheduler::SchedulerKindName(*kind));
      const bool hashing =
          *kind == SchedulerKind::kSh || *kind == SchedulerKind::kMh;
      if (!hashing && s.scheduler_flags().fallback()) {
        error("scheduler_flags.fallback",
              absl::StrCat("is only for sh and mh (ipvsadm -b sh-fallback), "
                           "not for ",
                           kind_name));
      }
      if (!hashing && s.scheduler_flags().port()) {
        error(
            "scheduler_flags.port",
            absl::StrCat("is only for sh and mh (ipvsadm -b sh-port), not for ",
                         kind_name));
      }
      out.scheduler.fallback = s.scheduler_flags().fallback();
      out.scheduler.port = s.scheduler_flags().port();
      if (*kind != SchedulerKind::kMh) {
        if (s.hash_inputs() != lb::v1::HASH_INPUTS_UNSPECIFIED) {
          error("hash_inputs",
                absl::StrCat("is only for mh, not for ", kind_name));
        }
        if (s.maglev_table_size() != 0) {
          error("maglev_table_size",
                absl::StrCat("is only for mh, not for ", kind_name));
        }
      }
    }
    switch (s.hash_inputs()) {
      case lb::v1::HASH_INPUTS_UNSPECIFIED:
        out.scheduler.hash_inputs = s.scheduler_flags().port()
                                        ? HashInputs::kSourceIpPort
                                        : HashInputs::kFiveTuple;
        break;
      case lb::v1::HASH_INPUTS_FIVE_TUPLE:
        out.scheduler.hash_inputs = HashInputs::kFiveTuple;
        break;
      case lb::v1::HASH_INPUTS_THREE_TUPLE:
        out.scheduler.hash_inputs = HashInputs::kThreeTuple;
        break;
      case lb::v1::HASH_INPUTS_SOURCE_IP:
        out.scheduler.hash_inputs = HashInputs::kSourceIp;
        break;
      case lb::v1::HASH_INPUTS_SOURCE_IP_PORT:
        out.scheduler.hash_inputs = HashInputs::kSourceIpPort;
        break;
      default:
        error("hash_inputs", absl::StrCat(s.hash_inputs(), ": unknown value"));
    }
    out.scheduler.maglev_table_size =
        s.maglev_table_size() != 0 ? s.maglev_table_size() : kDefaultMaglevSize;
    if (s.maglev_table_size() != 0 &&
        (s.maglev_table_size() > scheduler::MaglevTable::kMaxTableSize ||
         !scheduler::MaglevTable::IsPrime(s.maglev_table_size()))) {
      error("maglev_table_size",
            absl::StrCat(s.maglev_table_size(),
                         ": not a prime in 2..16777213 (e.g. 251, 65537, "
                         "655373)"));
    }
    if (vip.ok()) {
      out.scheduler.seed = s.hash_seed() != 0
                               ? s.hash_seed()
                               : DeriveHashSeed(*vip, port, protocol);
    }

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
    if (forwarding) {
      out.mode = forwarding->mode;
      out.tunnel = forwarding->tunnel;
      out.gue_port = forwarding->gue_port;
    }

    // Persistence.
    const absl::Duration timeout = ToDuration(s.persistence().timeout());
    if (absl::Status st = scheduler::ValidatePersistence(
            s.port(), timeout,
            static_cast<int>(s.persistence().ipv4_prefix_length()),
            static_cast<int>(s.persistence().ipv6_prefix_length()));
        !st.ok()) {
      error("persistence", absl::StrCat(": ", st.message()));
    } else if (timeout > absl::ZeroDuration()) {
      absl::StatusOr<scheduler::PersistencePolicy> policy =
          scheduler::PersistencePolicy::Create(
              s.port(), timeout,
              static_cast<int>(s.persistence().ipv4_prefix_length()),
              static_cast<int>(s.persistence().ipv6_prefix_length()));
      if (policy.ok()) {
        out.persistence = *policy;
      } else {
        error("persistence", absl::StrCat(": ", policy.status().message()));
      }
    }

    if (s.has_sorry_backend()) {
      error("sorry_backend",
            "is not supported by the dataplane yet; remove it (new flows with "
            "no backend up are dropped and counted as no_backend)");
    }

    // Backends.
    std::map<Endpoint, size_t> endpoints;
    std::vector<HealthEntry>* health = nullptr;
    if (auto it = health_.find(name); it != health_.end()) {
      health = &it->second;
    }
    const lb::v1::FailureAction on_failure = s.health_check().on_failure();
    for (int j = 0; j < s.backends_size(); ++j) {
      const lb::v1::Backend& b = s.backends(j);
      const std::string field = absl::StrCat("backends[", j, "]");
      absl::StatusOr<IpAddress> address = IpAddress::Parse(b.address());
      if (!address.ok()) {
        error(
            field + ".address",
            absl::StrCat(Quote(b.address()), ": not an IPv4 or IPv6 address"));
      }
      if (b.port() > 65535) {
        error(field + ".port", absl::StrCat(b.port(), ": outside 0..65535"));
      }
      const uint16_t backend_port =
          b.port() == 0
              ? port
              : static_cast<uint16_t>(std::min<uint32_t>(b.port(), 65535));
      if (b.weight() > kMaxWeight) {
        error(field + ".weight", absl::StrCat(b.weight(), ": outside 0..",
                                              kMaxWeight, " (ipvsadm -w)"));
      }
      if (b.upper_threshold() != 0 &&
          b.lower_threshold() > b.upper_threshold()) {
        error(field + ".lower_threshold",
              absl::StrCat(b.lower_threshold(), ": above upper_threshold ",
                           b.upper_threshold()));
      }
      if (!b.health_check_address().empty()) {
        if (absl::StatusOr<IpAddress> a =
                IpAddress::Parse(b.health_check_address());
            !a.ok()) {
          error(field + ".health_check_address",
                absl::StrCat(Quote(b.health_check_address()),
                             ": not an IPv4 or IPv6 address"));
        }
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
                absl::StrCat(DescribeForwarding(*own),
                             " differs from the "
                             "service's ",
                             DescribeForwarding(*forwarding),
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
      if (!address.ok()) continue;
      if (vip.ok() && address->family() != vip->family() && forwarding &&
          !(forwarding->mode == ForwardingMode::kTun &&
            forwarding->tunnel == TunnelType::kGue)) {
        error(field + ".address",
              absl::StrCat(Quote(b.address()), ": ",
                           address->is_v6() ? "IPv6" : "IPv4",
                           " backend of an ", vip->is_v6() ? "IPv6" : "IPv4",
                           " VIP; only TUN with tunnel_type GUE carries the "
                           "other family"));
      }
      if (forwarding && b.port() <= 65535 && backend_port != port &&
          (forwarding->mode == ForwardingMode::kDr ||
           forwarding->mode == ForwardingMode::kTun)) {
        error(field + ".port",
              absl::StrCat(b.port(), ": ", ModeName(forwarding->mode),
                           " cannot map ports; use 0 or the VIP's port ", port,
                           " (or NAT / FULLNAT)"));
      }
      if (forwarding && forwarding->mode == ForwardingMode::kFullNat &&
          !(address->is_v4() ? has_local_v4_ : has_local_v6_)) {
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
                                  it->second, "] too"));
        continue;
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
          } else if (h.proto->dynamic_weight() != 0) {
            weight = h.proto->dynamic_weight();
          }
        }
      }
      if (!enabled) continue;
      if (quiesced) weight = 0;

      dataplane::BackendConfig backend;
      backend.endpoint = endpoint;
      backend.weight = std::min(weight, kMaxWeight);
      backend.upper_threshold = b.upper_threshold();
      backend.lower_threshold = b.lower_threshold();
      out.backends.push_back(backend);
      if (forwarding && forwarding->mode == ForwardingMode::kNat) {
        nat_backends_.insert({endpoint, protocol});
      }
    }
    if (kind == SchedulerKind::kMh &&
        out.backends.size() > out.scheduler.maglev_table_size) {
      error("maglev_table_size",
            absl::StrCat(out.scheduler.maglev_table_size, ": smaller than the ",
                         out.backends.size(),
                         " backends; use a prime >= 100 x backends"));
    }

    if (errors_.count() != errors_before || !vip.ok()) return;
    out.vip = *vip;
    out.port = port;
    out.protocol = protocol;
    services_.push_back(std::move(out));
    service_names_.push_back(name);
  }

  const lb::v1::ConfigSnapshot& config_;
  const NodeIdentity& identity_;
  ErrorList errors_;
  std::set<IpAddress> local_addresses_;
  bool has_local_v4_ = false;
  bool has_local_v6_ = false;
  std::map<std::string, std::vector<HealthEntry>> health_;
  std::map<std::string, size_t> names_;
  std::map<std::string, std::string> virtual_addresses_;
  std::vector<dataplane::ServiceConfig> services_;
  std::vector<std::string> service_names_;
  std::set<dataplane::bpf::SteerNatBackend> nat_backends_;
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

std::string DefaultServiceName(const IpAddress& vip, uint16_t port,
                               uint8_t protocol) {
  return absl::StrCat(ProtocolName(protocol), "-", vip.ToString(), "-", port);
}

absl::StatusOr<EngineConfig> BuildEngineConfig(
    const lb::v1::ConfigSnapshot& config, const NodeIdentity& identity) {
  return Builder(config, identity).Build();
}

}  // namespace anylb::agent
