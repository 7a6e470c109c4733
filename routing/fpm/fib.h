// Fib: the forwarding table zebra feeds over FPM — routes by prefix and
// next-hop objects by id — and its immutable RouteTable for the dataplane.
//
// Semantics:
//  * Replace: a route to a prefix replaces whatever route that prefix had
//    (zebra sends one selected route per prefix; its metric is kept but
//    not part of the key). A delete removes the prefix, whatever its
//    metric. Next-hop objects are replaced by id likewise.
//  * Next-hop objects (zebra's `fpm use-next-hop-groups`, FRR 8.4's
//    default): a route naming one (nh_id) is resolved when the table is
//    built, so replacing a group re-points every route using it. A single
//    object gives one next hop; a group gives its members (single objects)
//    with the group's weights; a blackhole object makes the route reject.
//    A route whose object is unknown, or whose group has no known member,
//    is left out of the table (the kernel would refuse it as well) and
//    counted in `unresolved_routes`.
//  * Resync (a new zebra connection): BeginResync() starts a new epoch;
//    everything zebra sends afterwards is stamped with it. SweepStale()
//    removes what the new connection did not send again — routes and
//    objects of older epochs. The server decides when (FpmServer: once the
//    new connection has been quiet for `resync_quiet`). Until then the
//    old entries stay and keep forwarding.
//
// Threading: not thread-safe; owned by the FPM server's thread. The tables
// it builds are immutable and shared.

#ifndef ANYLB_ROUTING_FPM_FIB_H_
#define ANYLB_ROUTING_FPM_FIB_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/ip_address.h"
#include "routing/fpm/decoder.h"
#include "routing/netlink/tables.h"

namespace anylb::routing::fpm {

// FibSweep says what SweepStale removed.
struct FibSweep {
  size_t routes = 0;
  size_t next_hops = 0;
};

class Fib {
 public:
  Fib() = default;

  // Apply applies one update (see the file comment); returns whether the
  // FIB changed (a delete of something absent does not).
  bool Apply(const FibUpdate& update);

  // BeginResync starts a new epoch (a new connection).
  void BeginResync() { ++epoch_; }

  // SweepStale removes routes and next-hop objects not added or replaced
  // since the last BeginResync().
  FibSweep SweepStale();

  // Routes returns the resolved routes (see the file comment), sorted by
  // prefix; `unresolved` (if not null) gets the number left out.
  std::vector<netlink::Route> Routes(size_t* unresolved = nullptr) const;

  // BuildTable returns Routes() as a RouteTable for the dataplane.
  std::shared_ptr<const netlink::RouteTable> BuildTable(
      size_t* unresolved = nullptr) const;

  size_t route_count() const { return routes_.size(); }
  size_t next_hop_count() const { return next_hops_.size(); }

 private:
  template <typename T>
  struct Stamped {
    T value;
    uint64_t epoch = 0;
  };

  bool Resolve(const RouteUpdate& route, netlink::Route* out) const;

  uint64_t epoch_ = 1;
  absl::flat_hash_map<IpPrefix, Stamped<RouteUpdate>> routes_;
  absl::flat_hash_map<uint32_t, Stamped<NextHopObject>> next_hops_;
};

}  // namespace anylb::routing::fpm

#endif  // ANYLB_ROUTING_FPM_FIB_H_
