#include "lbnode/dataplane/config.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace anylb::dataplane {
namespace {

std::string Describe(const ServiceConfig& s) {
  return absl::StrCat("service ", s.vip.ToString(), ":", s.port, "/",
                      s.protocol == 6 ? "tcp" : "udp");
}

absl::Status ValidateService(const NodeConfig& node, ServiceConfig& s) {
  const bool nat =
      s.mode == ForwardingMode::kNat || s.mode == ForwardingMode::kFullNat;
  if (!nat && s.mode != ForwardingMode::kDr && s.mode != ForwardingMode::kTun) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(s), ": unknown forwarding mode"));
  }
  if (s.protocol != 6 && s.protocol != 17) {
    return absl::InvalidArgumentError(
        absl::StrCat("service ", s.vip.ToString(), ":", s.port, ": protocol ",
                     s.protocol, " is not TCP (6) or UDP (17)"));
  }
  if (s.mode == ForwardingMode::kTun && s.tunnel == TunnelType::kGue &&
      s.gue_port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(s), ": GUE port 0"));
  }
  std::sort(s.backends.begin(), s.backends.end(),
            [](const BackendConfig& a, const BackendConfig& b) {
              return a.endpoint < b.endpoint;
            });
  for (size_t i = 0; i < s.backends.size(); ++i) {
    const BackendConfig& b = s.backends[i];
    const std::string where =
        absl::StrCat(Describe(s), " backend ", b.endpoint.ToString());
    if (i > 0 && s.backends[i - 1].endpoint == b.endpoint) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate"));
    }
    const IpFamily bf = b.endpoint.address().family();
    if (nat) {
      if (bf != s.vip.family()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where,
                         ": NAT and FULLNAT backends must have the VIP's "
                         "family (no NAT64)"));
      }
      if (s.mode == ForwardingMode::kFullNat &&
          std::none_of(node.local_addresses.begin(), node.local_addresses.end(),
                       [bf](const IpAddress& a) { return a.family() == bf; })) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": FULLNAT needs a local address of the backend's family ",
            bf == IpFamily::kV4 ? "(IPv4)" : "(IPv6)", " in local_addresses"));
      }
      continue;  // Port mapping allowed; the rules below are DR/TUN's.
    }
    if (b.endpoint.port() != s.port) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": DR and TUN cannot map ports; backend port ",
          b.endpoint.port(), " differs from the service port ", s.port));
    }
    if (s.mode == ForwardingMode::kDr && bf != s.vip.family()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": DR backend family differs from the VIP's"));
    }
    if (s.mode == ForwardingMode::kTun) {
      if (s.tunnel == TunnelType::kIpip && bf != s.vip.family()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": IPIP carries IPv4 in IPv4 and IPv6 in IPv6 only; use GUE for "
            "mixed families"));
      }
      // An IPv6 client cannot lower its path MTU below 1280 (RFC 8200 §5),
      // so the tunnel must carry 1280-byte inner packets.
      const size_t overhead = (bf == IpFamily::kV4 ? 20 : 40) +
                              (s.tunnel == TunnelType::kGue ? 8 : 0);
      if (s.vip.is_v6() && node.mtu < 1280 + overhead) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": MTU ", node.mtu, " minus the tunnel overhead ", overhead,
            " is below IPv6's minimum link MTU 1280 (RFC 8200 §5)"));
      }
      if (bf == IpFamily::kV4 && !node.has_tunnel_source_v4) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": no IPv4 tunnel source on this node"));
      }
      if (bf == IpFamily::kV6 && !node.has_tunnel_source_v6) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": no IPv6 tunnel source on this node"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const EngineSnapshot>> EngineSnapshot::Create(
    NodeConfig node, std::vector<ServiceConfig> services) {
  if (node.has_tunnel_source_v4 && !node.tunnel_source_v4.is_v4()) {
    return absl::InvalidArgumentError("tunnel_source_v4 is not IPv4");
  }
  if (node.has_tunnel_source_v6 && !node.tunnel_source_v6.is_v6()) {
    return absl::InvalidArgumentError("tunnel_source_v6 is not IPv6");
  }
  if (node.mtu < 576 || node.mtu > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("MTU ", node.mtu, " outside [576, 65535]"));
  }
  if (node.outer_ttl == 0) {
    return absl::InvalidArgumentError("outer TTL 0");
  }
  if (node.local_port_min == 0 || node.local_port_min > node.local_port_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local_port_min ", node.local_port_min, " / local_port_max ",
        node.local_port_max, ": need 1 <= local_port_min <= local_port_max"));
  }
  std::shared_ptr<EngineSnapshot> snap(new EngineSnapshot());
  for (const IpAddress& a : node.local_addresses) {
    if (!snap->locals_.insert(a).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("local_addresses: duplicate ", a.ToString()));
    }
  }
  for (size_t i = 0; i < services.size(); ++i) {
    ServiceConfig& s = services[i];
    if (absl::Status st = ValidateService(node, s); !st.ok()) return st;
    if (s.vip.is_v6() && node.mtu < 1280) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(s), ": MTU ", node.mtu, " below IPv6's 1280 (RFC 8200 §5)"));
    }
    ServiceKey key = MakeServiceKey(s.vip.bytes().data(), s.vip.family(),
                                    s.port, s.protocol);
    if (!snap->index_.emplace(key, static_cast<int>(i)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(s), ": duplicate service"));
    }
    snap->vips_.insert(s.vip);
    if (snap->locals_.contains(s.vip)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(s), ": the VIP is also in local_addresses"));
    }
    if (s.mode == ForwardingMode::kNat || s.mode == ForwardingMode::kFullNat) {
      snap->uses_nat_ = true;
    }
    if (s.mode == ForwardingMode::kNat) {
      for (const BackendConfig& b : s.backends) {
        const IpAddress& a = b.endpoint.address();
        snap->nat_sources_.insert(MakeServiceKey(
            a.bytes().data(), a.family(), b.endpoint.port(), s.protocol));
        snap->nat_hosts_.insert(
            MakeServiceKey(a.bytes().data(), a.family(), 0, s.protocol));
      }
    }
  }
  snap->node_ = std::move(node);
  snap->services_ = std::move(services);
  return std::shared_ptr<const EngineSnapshot>(std::move(snap));
}

bool EngineSnapshot::IsNatBackendSource(const uint8_t* address, IpFamily family,
                                        uint16_t port, uint8_t protocol) const {
  if (nat_sources_.empty()) return false;
  ServiceKey key = MakeServiceKey(address, family, port, protocol);
  if (nat_sources_.contains(key)) return true;
  key.port = 0;
  return nat_sources_.contains(key);
}

bool EngineSnapshot::IsNatBackendHost(const uint8_t* address, IpFamily family,
                                      uint8_t protocol) const {
  if (nat_hosts_.empty()) return false;
  return nat_hosts_.contains(MakeServiceKey(address, family, 0, protocol));
}

int EngineSnapshot::Find(const ServiceKey& key) const {
  auto it = index_.find(key);
  if (it != index_.end()) return it->second;
  if (key.port != 0) {
    ServiceKey any = key;
    any.port = 0;
    it = index_.find(any);
    if (it != index_.end()) return it->second;
  }
  return -1;
}

}  // namespace anylb::dataplane
