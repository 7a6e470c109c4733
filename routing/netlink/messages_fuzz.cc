// Fuzz target over the rtnetlink decoders: any byte string, read as a
// stream of netlink messages the way the monitor reads a datagram, must
// decode without reading out of bounds (ASan) and give results that hold
// together. Invariant violations trap.

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "routing/netlink/messages.h"

namespace {

using ::anylb::routing::netlink::DecodeNeighbor;
using ::anylb::routing::netlink::DecodeResult;
using ::anylb::routing::netlink::DecodeRoute;
using ::anylb::routing::netlink::DecodeStats;
using ::anylb::routing::netlink::NeighborMessage;
using ::anylb::routing::netlink::RouteKind;
using ::anylb::routing::netlink::RouteMessage;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> rest(data, size);
  DecodeStats stats;
  while (rest.size() >= sizeof(nlmsghdr)) {
    uint32_t length;
    std::memcpy(&length, rest.data(), sizeof(length));
    NeighborMessage neighbor;
    if (DecodeNeighbor(rest, &neighbor, &stats) == DecodeResult::kOk) {
      Check(neighbor.ifindex > 0);
    }
    RouteMessage route;
    if (DecodeRoute(rest, &route, &stats) == DecodeResult::kOk) {
      Check(route.destination.length() <=
            route.destination.address().bit_length());
      Check(route.kind == RouteKind::kUnicast || route.next_hops.empty());
      for (const auto& hop : route.next_hops) {
        Check(hop.weight >= 1 && hop.weight <= 256);
      }
    }
    // In size_t: NLMSG_ALIGN of a length near 2^32 wraps to 0 in 32 bits.
    const size_t step = (size_t{length} + 3) & ~size_t{3};
    if (length < sizeof(nlmsghdr) || step >= rest.size()) break;
    rest = rest.subspan(step);
  }
  return 0;
}
