// AnnounceConfigFromProto: the one place where the node's config
// (lb.v1.ConfigSnapshot: node settings and services) becomes the
// Announcer's plain AnnounceConfig.
//
//   node.weight         → link bandwidth (0 means 1; capped at 25600 Mbit/s)
//   node.drain_period   → drain period (unset: 30 s)
//   node.admin_state    → drained (NODE_ADMIN_STATE_DRAINED)
//   node.local_addresses → local_addresses (prefixes as configured)
//   services[].quorum, backends (weight, unset = 1; state ENABLED or
//   unspecified counts), bgp_communities (AA:NN or well-known names)
//
// Pure; any thread.

#ifndef ANYLB_ROUTING_ANNOUNCE_ANNOUNCE_CONFIG_H_
#define ANYLB_ROUTING_ANNOUNCE_ANNOUNCE_CONFIG_H_

#include "absl/status/statusor.h"
#include "lb/v1/config.pb.h"
#include "routing/announce/announcer.h"

namespace anylb::routing::announce {

// AnnounceConfigFromProto: see the file comment. INVALID_ARGUMENT names the
// field ("services[2].bgp_communities[0]: ...").
absl::StatusOr<AnnounceConfig> AnnounceConfigFromProto(
    const lb::v1::ConfigSnapshot& snapshot);

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_ANNOUNCE_CONFIG_H_
