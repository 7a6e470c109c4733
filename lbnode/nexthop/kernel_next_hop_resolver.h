// KernelNextHopResolver: the dataplane's NextHopResolver over the kernel's
// neighbour and route tables (routing/netlink NextHopReader).
//
// Resolve(dst): longest-prefix route for dst → its gateway, or dst itself
// on a connected route → the neighbour's MAC. A missing or unusable
// neighbour returns false and asks the control thread to resolve it
// (KernelNextHops sends NTF_USE; the kernel runs ARP/ND). With an egress
// interface set, only next hops out of that interface count: a route out
// of another one returns false and is counted (the worker can only
// transmit on its own TX interface).
//
// ECMP: among a multipath route's next hops the pick is by a hash of dst
// (RouteTable::SelectNextHop), so one backend's tunnel always leaves
// through the same next hop and different backends spread over them.
//
// Ownership and threading: one per worker thread, owning that worker's
// NextHopReader. The worker calls Refresh() once per batch; when it
// returns true the tables changed (a neighbour may have been resolved) and
// frames waiting for a next hop are worth retrying. Resolve() never
// blocks, locks or allocates.

#ifndef ANYLB_LBNODE_NEXTHOP_KERNEL_NEXT_HOP_RESOLVER_H_
#define ANYLB_LBNODE_NEXTHOP_KERNEL_NEXT_HOP_RESOLVER_H_

#include <cstdint>
#include <memory>

#include "common/ip_address.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "routing/netlink/kernel_next_hops.h"

namespace anylb::nexthop {

// KernelNextHopResolverOptions configure one worker's resolver.
struct KernelNextHopResolverOptions {
  // The worker's TX interface; 0 accepts next hops out of any interface.
  int egress_ifindex = 0;
};

// KernelNextHopResolverStats count Resolve()'s answers.
struct KernelNextHopResolverStats {
  uint64_t resolved = 0;
  uint64_t no_route = 0;         // No route, or a reject route.
  uint64_t no_neighbor = 0;      // Resolution requested (or pending).
  uint64_t wrong_interface = 0;  // Only next hops out of other interfaces.
};

class KernelNextHopResolver : public dataplane::NextHopResolver {
 public:
  KernelNextHopResolver(std::unique_ptr<routing::netlink::NextHopReader> reader,
                        const KernelNextHopResolverOptions& options = {});

  // Refresh takes the latest tables; true when they changed. Once per batch.
  bool Refresh() { return reader_->Refresh(); }

  // generation is the generation of the tables in use.
  uint64_t generation() const { return reader_->generation(); }

  // Resolve: see the file comment.
  bool Resolve(const IpAddress& dst, dataplane::Mac* mac) override;

  const KernelNextHopResolverStats& stats() const { return stats_; }
  const routing::netlink::NextHopReader& reader() const { return *reader_; }

 private:
  std::unique_ptr<routing::netlink::NextHopReader> reader_;
  const KernelNextHopResolverOptions options_;
  KernelNextHopResolverStats stats_;
};

}  // namespace anylb::nexthop

#endif  // ANYLB_LBNODE_NEXTHOP_KERNEL_NEXT_HOP_RESOLVER_H_
