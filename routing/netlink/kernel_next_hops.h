// KernelNextHops: the kernel's neighbour table and main routing table,
// mirrored over rtnetlink into immutable snapshots for the workers, with
// active neighbour resolution. NextHopReader: a worker's lock-free view.
//
// Ownership and threading:
//  * KernelNextHops owns two netlink sockets (a monitor subscribed to
//    RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK
//    and RTNLGRP_IPV{4,6}_IFADDR, and a request socket for dumps and
//    NTF_USE requests) and one control thread
//    that alone reads the kernel, builds tables and publishes snapshots.
//    Create() makes the sockets in the calling thread's network namespace,
//    dumps both tables, publishes generation 1 and starts the thread.
//  * Route source: by default (RouteSource::kKernel) routes come from the
//    kernel's main table as described below. With RouteSource::kExternal
//    (lbnode --route_source=fpm) the kernel is asked for neighbours only
//    (no route dumps, no route/link/address subscriptions) and routes come
//    from SetRoutes(): the FPM server publishes each new RouteTable there,
//    and the control thread publishes it with the current neighbours.
//    Until the first SetRoutes() the route table is empty.
//  * The control thread applies neighbour notifications one by one; a
//    route notification makes it re-dump that family's main table (routes
//    change rarely here and IPv6 multipath notifications may carry only
//    the changed next hop; FPM replaces this source later). A link or
//    address change re-dumps both families: the kernel removes IPv4 routes
//    of a downed interface without telling. Changes within
//    `publish_delay` are batched into one snapshot. ENOBUFS on the monitor
//    (lost notifications) → a full resync (both dumps).
//  * Publishing stores a new std::shared_ptr<const NextHopSnapshot>
//    (atomic) and then bumps an atomic generation counter. The control
//    thread keeps replaced snapshots until no reader holds them, so a
//    snapshot is never freed on a worker thread.
//  * A NextHopReader belongs to one worker thread. Refresh() (once per
//    batch) compares the generation with its cached one — one atomic load
//    when nothing changed — and takes the new snapshot only when it moved.
//    Lookup() uses the cached snapshot: no lock, no allocation.
//  * Resolution: a Lookup whose neighbour is missing or unusable pushes
//    (ifindex, address) into the reader's bounded SPSC ResolveQueue (full →
//    dropped and counted), at most once per `resolve_retry_interval` per
//    address (RecentRequests), and kicks the control thread through an
//    eventfd (a non-blocking write). The control thread sends RTM_NEWNEIGH
//    with NTF_USE (see EncodeResolveRequest); the kernel runs ARP/ND and
//    its notification (REACHABLE) reaches the monitor, which republishes:
//    the generation moves, and the worker retries its waiting frames. A
//    STALE hit is usable and also asks (once per interval) for a re-probe,
//    since AF_XDP traffic never confirms the entry to the kernel.

#ifndef ANYLB_ROUTING_NETLINK_KERNEL_NEXT_HOPS_H_
#define ANYLB_ROUTING_NETLINK_KERNEL_NEXT_HOPS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "routing/netlink/messages.h"
#include "routing/netlink/netlink_socket.h"
#include "routing/netlink/resolve_queue.h"
#include "routing/netlink/tables.h"

namespace anylb::routing::netlink {

// RouteSource says where KernelNextHops takes routes from.
enum class RouteSource : uint8_t {
  kKernel,    // The kernel's main table (dumps + monitor).
  kExternal,  // SetRoutes() (the FPM server's FIB); neighbours still from
              // the kernel.
};

// KernelNextHopsOptions tune the control thread.
struct KernelNextHopsOptions {
  // Where routes come from (see the file comment).
  RouteSource route_source = RouteSource::kKernel;
  // Changes arriving within this time of the first are published together.
  absl::Duration publish_delay = absl::Milliseconds(2);
  // A reader asks again for the same neighbour only after this long.
  absl::Duration resolve_retry_interval = absl::Seconds(1);
  // Requests each reader can have waiting; more are dropped and counted.
  size_t resolve_queue_capacity = 256;
  // SO_RCVBUF of the monitor socket: how big a burst it absorbs before
  // ENOBUFS forces a resync.
  int monitor_receive_buffer_bytes = 4 << 20;
};

// KernelNextHopsStats are the control thread's counters.
struct KernelNextHopsStats {
  uint64_t publishes = 0;
  uint64_t full_resyncs = 0;   // Initial dump included.
  uint64_t route_redumps = 0;  // One family's routes.
  uint64_t monitor_overruns = 0;
  uint64_t neighbor_updates = 0;
  uint64_t resolve_requests_sent = 0;
  uint64_t resolve_requests_failed = 0;
  uint64_t resolve_requests_dropped = 0;  // Readers' full queues.
  uint64_t external_route_tables = 0;     // Taken from SetRoutes().
  uint64_t errors = 0;                    // Failed dumps or reads.
  absl::Status last_error;                // The latest of those.
  DecodeStats decode;
};

// NextHop is a Lookup's answer.
struct NextHop {
  enum class Result : uint8_t {
    kOk,              // mac is the next hop's address.
    kNoRoute,         // No route to the destination.
    kRejected,        // Blackhole/unreachable/prohibit route, or no next hop.
    kNoNeighbor,      // Route found; neighbour missing or unusable.
    kWrongInterface,  // Route found, but no next hop out of only_ifindex.
  };
  Result result = Result::kNoRoute;
  int ifindex = 0;    // Egress interface (valid unless kNoRoute/kRejected).
  IpAddress address;  // The gateway, or the destination if connected.
  MacAddress mac{};   // Valid when kOk.

  bool ok() const { return result == Result::kOk; }
};

// NextHopReaderStats are one reader's counters (its worker's thread).
struct NextHopReaderStats {
  uint64_t lookups = 0;
  uint64_t hits = 0;
  uint64_t no_route = 0;
  uint64_t rejected = 0;
  uint64_t no_neighbor = 0;
  uint64_t wrong_interface = 0;
  uint64_t resolve_requested = 0;   // Pushed to the control thread.
  uint64_t resolve_suppressed = 0;  // Asked for within the interval.
  uint64_t resolve_dropped = 0;     // Queue full.
  uint64_t refreshes = 0;           // Snapshot changes taken.
};

class NextHopReader;

namespace internal {
// Publication is what KernelNextHops and its readers share (a reader may
// outlive nothing, but shared ownership keeps this simple and safe).
struct Publication;
}  // namespace internal

class KernelNextHops {
 public:
  // Create: see the file comment. Fails (with the netlink error) when the
  // sockets cannot be opened or the initial dumps fail.
  static absl::StatusOr<std::unique_ptr<KernelNextHops>> Create(
      const KernelNextHopsOptions& options = {});

  KernelNextHops(const KernelNextHops&) = delete;
  KernelNextHops& operator=(const KernelNextHops&) = delete;
  // Stops and joins the control thread.
  ~KernelNextHops();

  // NewReader makes a reader for one worker (call from any thread, then
  // use the reader only on that worker's thread).
  std::unique_ptr<NextHopReader> NewReader();

  // generation is the number of the latest published snapshot.
  uint64_t generation() const;

  // snapshot returns the latest published snapshot (any thread).
  std::shared_ptr<const NextHopSnapshot> snapshot() const;

  // stats returns a copy of the control thread's counters.
  KernelNextHopsStats stats() const;

  // SetRoutes hands a new route table to the control thread, which
  // publishes it with the current neighbours shortly after (any thread;
  // only the latest of several pending tables is published).
  // FAILED_PRECONDITION unless created with RouteSource::kExternal.
  absl::Status SetRoutes(std::shared_ptr<const RouteTable> routes);

 private:
  KernelNextHops(const KernelNextHopsOptions& options,
                 std::unique_ptr<NetlinkSocket> monitor,
                 std::unique_ptr<NetlinkSocket> request,
                 std::shared_ptr<internal::Publication> publication);

  void Run();
  absl::Status FullResync();
  absl::Status DumpNeighbors();
  absl::Status DumpRoutes(uint8_t family);
  void OnNotification(std::span<const uint8_t> message);
  void DrainResolveQueues();
  void Publish();
  void RecordError(const absl::Status& status);
  bool TakeExternalRoutes();

  const KernelNextHopsOptions options_;
  std::unique_ptr<NetlinkSocket> monitor_;
  std::unique_ptr<NetlinkSocket> request_;
  std::shared_ptr<internal::Publication> publication_;

  // Control-thread state (also touched by Create() before the thread runs).
  NeighborTable::Map neighbors_;
  std::vector<Route> v4_routes_;
  std::vector<Route> v6_routes_;
  bool neighbors_dirty_ = false;
  bool routes_dirty_ = false;
  bool redump_v4_ = false;
  bool redump_v6_ = false;
  std::shared_ptr<const NeighborTable> neighbor_table_;
  std::shared_ptr<const RouteTable> route_table_;
  std::vector<std::shared_ptr<const NextHopSnapshot>> retired_;
  std::vector<uint8_t> request_buffer_;
  std::vector<std::shared_ptr<ResolveQueue>> draining_;  // Reused.

  absl::Mutex external_mu_;
  std::shared_ptr<const RouteTable> external_routes_
      ABSL_GUARDED_BY(external_mu_);

  mutable absl::Mutex stats_mu_;
  KernelNextHopsStats stats_ ABSL_GUARDED_BY(stats_mu_);

  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// NextHopReader: see the file comment. One per worker thread.
class NextHopReader {
 public:
  NextHopReader(const NextHopReader&) = delete;
  NextHopReader& operator=(const NextHopReader&) = delete;
  // Closes the resolve queue (the control thread then forgets it).
  ~NextHopReader();

  // ForFixedSnapshot makes a reader over `snapshot` alone, with no control
  // thread: for tests and benchmarks of code built on readers. Its
  // resolution requests are queued (and counted) but never sent.
  static std::unique_ptr<NextHopReader> ForFixedSnapshot(
      std::shared_ptr<const NextHopSnapshot> snapshot,
      size_t resolve_queue_capacity = 256);

  // Refresh takes the latest snapshot if the generation moved; returns
  // whether it did. Call once per batch. Also reads the (coarse) clock that
  // request de-duplication uses.
  bool Refresh();

  // generation is the generation of the snapshot in use.
  uint64_t generation() const { return generation_; }

  // Lookup finds the next hop for `destination`: the longest-prefix route,
  // one of its next hops by `flow_hash` (RouteTable::SelectNextHop), then
  // the neighbour for the gateway (or for `destination` on a connected
  // route). A missing/unusable neighbour is kNoNeighbor and requests
  // resolution. With `only_ifindex` != 0, only next hops out of that
  // interface count (a worker can transmit on its own interface only): a
  // route with none is kWrongInterface and asks nothing. Never blocks,
  // locks or allocates.
  NextHop Lookup(const IpAddress& destination, uint64_t flow_hash = 0,
                 int only_ifindex = 0);

  const NextHopReaderStats& stats() const { return stats_; }

 private:
  friend class KernelNextHops;
  NextHopReader(std::shared_ptr<internal::Publication> publication,
                std::shared_ptr<ResolveQueue> queue, int64_t retry_ns);

  void RequestResolution(int ifindex, const IpAddress& address);

  std::shared_ptr<internal::Publication> publication_;
  std::shared_ptr<ResolveQueue> queue_;
  std::shared_ptr<const NextHopSnapshot> snapshot_;
  const NeighborTable* neighbors_ = nullptr;
  const RouteTable* routes_ = nullptr;
  uint64_t generation_ = ~uint64_t{0};  // None yet: Refresh() loads.
  int64_t now_ns_ = 0;
  RecentRequests recent_;
  NextHopReaderStats stats_;
};

}  // namespace anylb::routing::netlink

#endif  // ANYLB_ROUTING_NETLINK_KERNEL_NEXT_HOPS_H_
