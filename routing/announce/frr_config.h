// lbnode's part of FRR's configuration, as text: what it wants (Desired),
// what a daemon runs (ParseOwnedConfig over `show running-config`), and the
// vtysh commands that turn one into the other in place (DiffCommands).
//
// lbnode owns, in each routing daemon it configures:
//   bgpd   route-map ANYLB-BGP: one entry per VIP that has communities
//          (seq 100..9999, matching the VIP's prefix-list ANYLB-V4-<vip> /
//          ANYLB-V6-<vip> and the TUN device) and the catch-all entry 10000
//          (every route on the TUN device), each setting the link-bandwidth
//          extended community (the drain bandwidth while drained, plus
//          GSHUT 65535:0 when the intent asks for it).
//   ospfd, ospf6d
//          route-map ANYLB-OSPF: entry 10000 (routes on the TUN device);
//          drained: `set metric 16777214`.
// Anything else in frr.conf is the operator's and is never touched. The
// catch-all entry is never deleted (a route-map that redistribution names
// but that does not exist denies everything: a withdraw of every VIP), and
// entries are changed line by line, never re-created.
//
// Pure functions, no I/O; any thread.

#ifndef ANYLB_ROUTING_ANNOUNCE_FRR_CONFIG_H_
#define ANYLB_ROUTING_ANNOUNCE_FRR_CONFIG_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ip_address.h"

namespace anylb::routing::announce {

// RoutingProtocol is a protocol lbnode fills a route-map for.
enum class RoutingProtocol : uint8_t { kBgp, kOspf, kOspf6 };

// ParseProtocols parses "bgp,ospf" (also "ospf6"); INVALID_ARGUMENT names
// the bad word.
absl::StatusOr<std::vector<RoutingProtocol>> ParseProtocols(
    std::string_view text);
// DaemonOf is the FRR daemon of a protocol ("bgpd", "ospfd", "ospf6d").
std::string DaemonOf(RoutingProtocol protocol);

// kBgpRouteMap / kOspfRouteMap are the route-maps of the contract.
inline constexpr char kBgpRouteMap[] = "ANYLB-BGP";
inline constexpr char kOspfRouteMap[] = "ANYLB-OSPF";
// kCatchAllSeq is the entry matching every route on the TUN device.
inline constexpr int kCatchAllSeq = 10000;
// Per-VIP entries take sequence numbers in [kFirstVipSeq, kCatchAllSeq).
inline constexpr int kFirstVipSeq = 100;
// kMaxBandwidthMbps: `set extcommunity bandwidth` takes 1..25600 (Mbit/s)
// in FRR 8.4; 0 is refused.
inline constexpr uint32_t kMaxBandwidthMbps = 25600;
// kDrainBandwidthMbps: the lowest bandwidth FRR can set (see README: a
// zero or missing link-bandwidth would make receivers fall back to ECMP).
inline constexpr uint32_t kDrainBandwidthMbps = 1;
// kOspfDrainMetric: the largest OSPF external metric (LSInfinity - 1).
inline constexpr uint32_t kOspfDrainMetric = 16777214;
// kGracefulShutdown is the GSHUT community (RFC 8326), as a number.
inline constexpr uint32_t kGracefulShutdown = 0xFFFF0000;

// BandwidthForWeight maps a node weight (0 means 1) to the link bandwidth
// in Mbit/s: the weight itself, capped at kMaxBandwidthMbps.
uint32_t BandwidthForWeight(uint32_t weight);

// ParseCommunity accepts "AA:NN" (each 0..65535) and FRR's well-known names
// (graceful-shutdown, no-export, no-advertise, local-AS, blackhole, no-peer)
// and returns the 32-bit value; INVALID_ARGUMENT otherwise.
absl::StatusOr<uint32_t> ParseCommunity(std::string_view text);

// FrrIntent is what lbnode wants FRR to announce about its VIPs (which
// VIPs is the TUN device's business: the route-maps match the device).
struct FrrIntent {
  std::string device = "anylb0";
  uint32_t bandwidth_mbps = 1;  // Used unless drained.
  bool drained = false;
  // While drained, also tag routes with GSHUT (65535:0, RFC 8326).
  bool drain_gshut = false;
  // Standard communities per VIP, only for VIPs that have some; values as
  // ParseCommunity returns them.
  std::map<IpAddress, std::vector<uint32_t>> communities;

  friend bool operator==(const FrrIntent&, const FrrIntent&) = default;
};

// OwnedConfig is lbnode's part of one daemon's configuration, in the form
// `show running-config` prints it.
struct OwnedConfig {
  // "ip prefix-list ANYLB-V4-192.0.2.10 seq 5 permit 192.0.2.10/32".
  std::set<std::string> prefix_list_lines;
  // "route-map ANYLB-BGP permit 100" → its lines, canonical (see
  // CanonicalLine), indentation stripped.
  std::map<std::string, std::set<std::string>> route_map_entries;

  friend bool operator==(const OwnedConfig&, const OwnedConfig&) = default;
};

// ParseOwnedConfig picks lbnode's part (prefix-lists and route-map entries
// whose names start with "ANYLB-") out of `show running-config` text.
OwnedConfig ParseOwnedConfig(std::string_view running_config);

// CanonicalLine rewrites a route-map line so that equal meanings compare
// equal: `set community` values become sorted numbers ("graceful-shutdown"
// → 65535:0). Other lines are returned unchanged (trimmed).
std::string CanonicalLine(std::string_view line);

// DesiredConfig is what `protocol`'s daemon should run for `intent`.
// `running` (that daemon's current OwnedConfig) is used to keep the
// sequence number each VIP's entry already has; new VIPs get the lowest
// free one. RESOURCE_EXHAUSTED if more VIPs have communities than there are
// sequence numbers.
absl::StatusOr<OwnedConfig> DesiredConfig(const FrrIntent& intent,
                                          RoutingProtocol protocol,
                                          const OwnedConfig& running);

// DiffCommands returns the configuration commands (to run after
// "configure terminal") that turn `running` into `desired`, for the
// route-maps `maps` (other ANYLB- maps are left alone): new prefix-lists,
// then entries created or changed line by line (match lines first; a
// changed `set` is replaced, not removed first), then entries that are no
// longer wanted deleted (never the catch-all), then old prefix-lists.
// Empty when nothing differs.
std::vector<std::string> DiffCommands(const OwnedConfig& running,
                                      const OwnedConfig& desired,
                                      const std::set<std::string>& maps);

// MapsOf names the route-maps `protocol`'s daemon gets from lbnode.
std::set<std::string> MapsOf(RoutingProtocol protocol);

// PrefixListName is the prefix-list of one VIP: "ANYLB-V4-192.0.2.10",
// "ANYLB-V6-2001-db8--10" (':' → '-').
std::string PrefixListName(const IpAddress& vip);

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_FRR_CONFIG_H_
