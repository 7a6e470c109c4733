// Decoders for the rtnetlink messages we read: neighbours (RTM_NEWNEIGH,
// RTM_DELNEIGH) and routes (RTM_NEWROUTE, RTM_DELROUTE), and encoders for
// the requests we send (dumps, NTF_USE resolution).
//
// The decoders are pure functions over bytes, so they are tested with
// hand-built messages (messages_test.cc) including malformed ones. They
// trust nothing: every length is checked against the message. A malformed
// attribute (wrong payload size for its type, or a length that runs past the
// message) is skipped and counted in DecodeStats; a message that lacks what
// it must carry (a neighbour without NDA_DST) is rejected and counted. They
// never crash and never read past `message`.
//
// Threading: no state; DecodeStats belongs to the caller.

#ifndef ANYLB_ROUTING_NETLINK_MESSAGES_H_
#define ANYLB_ROUTING_NETLINK_MESSAGES_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/ip_address.h"

namespace anylb::routing::netlink {

// MacAddress is an Ethernet address in wire order (the same type as
// anylb::dataplane::Mac, without depending on the dataplane).
using MacAddress = std::array<uint8_t, 6>;

// FormatMac returns "02:00:00:00:00:01".
std::string FormatMac(const MacAddress& mac);

// kMainTable is RT_TABLE_MAIN, the only routing table we read.
inline constexpr uint32_t kMainTable = 254;

// DecodeStats counts what the decoders met besides good messages.
struct DecodeStats {
  uint64_t malformed_messages = 0;    // Rejected: header or required field.
  uint64_t malformed_attributes = 0;  // Skipped: bad size or broken chain.
  uint64_t ignored_messages = 0;      // Well-formed but not for us.
};

// DecodeResult says what a decoder made of a message.
enum class DecodeResult : uint8_t {
  kOk,         // `*out` holds the message.
  kIgnored,    // Well-formed, not for us (other family, table, type, ...).
  kMalformed,  // Rejected (counted in DecodeStats::malformed_messages).
};

// NeighborMessage is one neighbour entry (struct ndmsg + NDA_* attributes).
struct NeighborMessage {
  bool deleted = false;  // RTM_DELNEIGH.
  int ifindex = 0;
  IpAddress address;
  bool has_lladdr = false;
  MacAddress lladdr{};
  uint16_t state = 0;  // NUD_* bits.
  uint8_t flags = 0;   // NTF_* bits.
};

// IsUsableNeighborState returns whether a neighbour in NUD state `state`
// has a link-layer address we may send to: REACHABLE, STALE, DELAY, PROBE,
// PERMANENT or NOARP. INCOMPLETE, FAILED and NONE are not.
bool IsUsableNeighborState(uint16_t state);

// NeighborStateName returns "REACHABLE", "STALE|...", ... for messages.
std::string NeighborStateName(uint16_t state);

// DecodeNeighbor decodes an RTM_NEWNEIGH or RTM_DELNEIGH message (netlink
// header included). Only AF_INET and AF_INET6 entries that are not proxy
// entries (NTF_PROXY) are kOk; bridge FDB entries (AF_BRIDGE) and others are
// kIgnored. NDA_LLADDR is taken only when it is 6 bytes long (Ethernet);
// another length leaves has_lladdr false (not an error).
DecodeResult DecodeNeighbor(std::span<const uint8_t> message,
                            NeighborMessage* out, DecodeStats* stats);

// RouteNextHop is one next hop of a route.
struct RouteNextHop {
  int ifindex = 0;
  bool has_gateway = false;
  IpAddress gateway;    // Valid when has_gateway (RTA_GATEWAY or RTA_VIA).
  uint32_t weight = 1;  // rtnh_hops + 1; 1 for a single-path route.
};

// RouteKind is what a route does with a packet.
enum class RouteKind : uint8_t {
  kUnicast,  // Forward via next_hops.
  kReject,   // Blackhole, unreachable, prohibit: no next hop (stops LPM).
};

// RouteMessage is one route of the main table (struct rtmsg + RTA_*).
struct RouteMessage {
  bool deleted = false;  // RTM_DELROUTE.
  IpPrefix destination;
  uint32_t priority = 0;  // RTA_PRIORITY (the metric); lower wins.
  RouteKind kind = RouteKind::kUnicast;
  // One entry for a single-path route; one per usable RTA_MULTIPATH entry
  // (entries flagged RTNH_F_DEAD or RTNH_F_LINKDOWN are left out).
  std::vector<RouteNextHop> next_hops;
};

// DecodeRoute decodes an RTM_NEWROUTE or RTM_DELROUTE message. kOk only for
// AF_INET/AF_INET6 routes of the main table (RTA_TABLE, else rtm_table) of
// type unicast (kind kUnicast) or blackhole/unreachable/prohibit (kReject);
// cloned (RTM_F_CLONED) routes, other tables and other types are kIgnored.
// A unicast route left with no usable next hop (every multipath entry dead)
// is kOk with empty next_hops. RTA_NH_ID (nexthop objects) is ignored: the
// kernel also expands the next hops into the route unless
// net.ipv4.nexthop_compat_mode is 0.
DecodeResult DecodeRoute(std::span<const uint8_t> message, RouteMessage* out,
                         DecodeStats* stats);

// EncodeDumpRequest writes an RTM_GETNEIGH or RTM_GETROUTE dump request for
// `family` (AF_INET, AF_INET6, AF_UNSPEC) into `buffer` (which must be at
// least 64 bytes) and returns its length. seq is set by NetlinkSocket.
size_t EncodeDumpRequest(uint16_t type, uint8_t family,
                         std::span<uint8_t> buffer);

// EncodeResolveRequest writes an RTM_NEWNEIGH request with NTF_USE for
// (`ifindex`, `address`) into `buffer` (at least 64 bytes) and returns its
// length: NLM_F_CREATE | NLM_F_REPLACE, state NUD_NONE. The kernel
// (neigh_add → neigh_event_send) creates the entry if needed and starts ARP
// or ND for it, as `ip neigh replace ADDR dev DEV use` does; an entry that
// is already usable is left alone, a STALE one is re-probed.
size_t EncodeResolveRequest(int ifindex, const IpAddress& address,
                            std::span<uint8_t> buffer);

}  // namespace anylb::routing::netlink

#endif  // ANYLB_ROUTING_NETLINK_MESSAGES_H_
