// Decoders for FPM frame payloads: the netlink encoding that zebra's
// dplane_fpm_nl sends (RTM_NEWROUTE / RTM_DELROUTE, IPv4 and IPv6,
// RTA_MULTIPATH, RTA_NH_ID; RTM_NEWNEXTHOP / RTM_DELNEXTHOP when zebra uses
// next-hop groups, the default of FRR 8.4's `fpm use-next-hop-groups`) and
// the protobuf encoding of FRR's fpm.proto (proto/fpm/fpm.proto).
//
// Route bodies go through routing/netlink's DecodeRoute (the same rules as
// for the kernel's routes: main table, unicast and reject types); this file
// adds RTA_NH_ID, next-hop objects and the protobuf messages.
//
// Strictness: a payload is decoded whole before anything is applied. Any
// malformed part — a netlink length that runs past the frame, a broken
// attribute chain, an attribute of the wrong size, a route without a
// destination, a next-hop object without an id, a protobuf message that
// does not parse or lacks what its type needs — fails the whole frame with
// INVALID_ARGUMENT naming it, and nothing of the frame is returned: the
// stream is corrupt past that point, and the server closes the connection.
// Well-formed messages that are not for us (other tables and VRFs, other
// route types, neighbour or link messages, multicast) are skipped and
// counted.
//
// Threading: no state; DecoderStats belongs to the caller.

#ifndef ANYLB_ROUTING_FPM_DECODER_H_
#define ANYLB_ROUTING_FPM_DECODER_H_

#include <cstdint>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "common/ip_address.h"
#include "routing/fpm/frame.h"
#include "routing/netlink/messages.h"

namespace anylb::routing::fpm {

// RouteUpdate adds/replaces (or deletes) the route to `prefix`.
struct RouteUpdate {
  bool deleted = false;
  IpPrefix prefix;
  netlink::RouteKind kind = netlink::RouteKind::kUnicast;
  uint32_t priority = 0;
  // Explicit next hops (RTA_OIF/RTA_GATEWAY, RTA_MULTIPATH, protobuf), or
  // none when the route names a next-hop object (nh_id != 0).
  std::vector<netlink::RouteNextHop> next_hops;
  uint32_t nh_id = 0;  // RTA_NH_ID.

  friend bool operator==(const RouteUpdate& a, const RouteUpdate& b);
};

// NextHopGroupMember is one entry of a group: a single next-hop object and
// its weight (struct nexthop_grp's weight + 1, so 1..256).
struct NextHopGroupMember {
  uint32_t id = 0;
  uint32_t weight = 1;

  friend bool operator==(const NextHopGroupMember&,
                         const NextHopGroupMember&) = default;
};

// NextHopObject is a kernel-style next-hop object (linux/nexthop.h): a
// single next hop (ifindex, optional gateway), a blackhole, or a group of
// single ones.
struct NextHopObject {
  uint32_t id = 0;
  bool blackhole = false;
  int ifindex = 0;
  bool has_gateway = false;
  IpAddress gateway;
  std::vector<NextHopGroupMember> group;  // Non-empty for a group.

  friend bool operator==(const NextHopObject&, const NextHopObject&) = default;
};

// NextHopUpdate adds/replaces (or deletes) next-hop object `object.id`.
struct NextHopUpdate {
  bool deleted = false;
  NextHopObject object;

  friend bool operator==(const NextHopUpdate&, const NextHopUpdate&) = default;
};

using FibUpdate = std::variant<RouteUpdate, NextHopUpdate>;

// DecoderStats counts what the decoders skipped.
struct DecoderStats {
  uint64_t ignored_messages = 0;   // Well-formed, not for us.
  uint64_t ignored_next_hops = 0;  // Protobuf next hops we cannot use.
};

// DecodeNetlinkPayload decodes one netlink frame's payload (one or more
// nlmsghdr-framed messages) and appends its updates to `out`. On error
// (INVALID_ARGUMENT) `out` is left as it was.
absl::Status DecodeNetlinkPayload(std::span<const uint8_t> payload,
                                  std::vector<FibUpdate>* out,
                                  DecoderStats* stats);

// DecodeProtobufPayload decodes one serialised anylb.fpm.Message. vrf_id
// other than 0 and sub-address families other than UNICAST are ignored.
// Next hops identified by interface name only are looked up in the calling
// thread's namespace (if_nametoindex); unknown names are skipped and
// counted. On error `out` is left as it was.
absl::Status DecodeProtobufPayload(std::span<const uint8_t> payload,
                                   std::vector<FibUpdate>* out,
                                   DecoderStats* stats);

// DecodeFrame dispatches on the frame type; on error also sets `*error`
// (kBadNetlink or kBadProtobuf).
absl::Status DecodeFrame(const Frame& frame, std::vector<FibUpdate>* out,
                         DecoderStats* stats, FpmError* error);

}  // namespace anylb::routing::fpm

#endif  // ANYLB_ROUTING_FPM_DECODER_H_
