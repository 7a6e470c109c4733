#include "routing/announce/announce_config.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/ip_address.h"
#include "routing/announce/frr_config.h"

namespace anylb::routing::announce {

absl::StatusOr<AnnounceConfig> AnnounceConfigFromProto(
    const lb::v1::ConfigSnapshot& snapshot) {
  AnnounceConfig out;
  const lb::v1::NodeSettings& node = snapshot.node();
  out.weight = node.weight() == 0 ? 1 : node.weight();
  if (node.has_drain_period()) {
    absl::Duration d = absl::Seconds(node.drain_period().seconds()) +
                       absl::Nanoseconds(node.drain_period().nanos());
    if (d < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "node.drain_period: must not be negative");
    }
    out.drain_period = d;
  }
  out.drained = node.admin_state() == lb::v1::NODE_ADMIN_STATE_DRAINED;
  for (int i = 0; i < node.local_addresses_size(); ++i) {
    absl::StatusOr<IpPrefix> prefix = IpPrefix::Parse(node.local_addresses(i));
    if (!prefix.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "node.local_addresses[", i, "]: ", prefix.status().message()));
    }
    out.local_addresses.push_back(*prefix);
  }
  for (int i = 0; i < snapshot.services_size(); ++i) {
    const lb::v1::Service& s = snapshot.services(i);
    const std::string where = absl::StrCat("services[", i, "]");
    AnnounceService service;
    absl::StatusOr<IpAddress> vip = IpAddress::Parse(s.vip());
    if (!vip.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".vip: \"", s.vip(), "\": ", vip.status().message()));
    }
    service.vip = *vip;
    service.name =
        s.name().empty() ? absl::StrCat(s.vip(), ":", s.port()) : s.name();
    service.quorum_min_weight = s.quorum().min_weight();
    service.quorum_hysteresis = s.quorum().hysteresis();
    for (const lb::v1::Backend& b : s.backends()) {
      AnnounceBackend backend;
      backend.address = b.address();
      backend.port = b.port();
      backend.weight = b.has_weight() ? b.weight() : 1;
      backend.enabled = b.state() == lb::v1::BACKEND_STATE_UNSPECIFIED ||
                        b.state() == lb::v1::BACKEND_STATE_ENABLED;
      service.backends.push_back(std::move(backend));
    }
    for (int j = 0; j < s.bgp_communities_size(); ++j) {
      absl::StatusOr<uint32_t> c = ParseCommunity(s.bgp_communities(j));
      if (!c.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".bgp_communities[", j, "]: ", c.status().message()));
      }
      service.communities.push_back(*c);
    }
    out.services.push_back(std::move(service));
  }
  return out;
}

}  // namespace anylb::routing::announce
