// SchedBackend: what a scheduler sees of one real server.

#ifndef ANYLB_LBNODE_SCHEDULER_BACKEND_H_
#define ANYLB_LBNODE_SCHEDULER_BACKEND_H_

#include <cstdint>

#include "common/ip_address.h"

namespace anylb::scheduler {

// SchedBackend is one real server of a service as the schedulers see it:
// its identity, its effective weight, and this worker's view of its load.
//
// Order: a service's backends are always in canonical order, sorted by
// endpoint (family, address, port), in every snapshot on every node. Indices
// into that order are what schedulers return and what Maglev tables store,
// so nodes given the same set in different orders agree.
//
// Ownership: the worker that owns the service's flow-table shard owns the
// array and updates `active`/`inactive`/`overloaded` as its flows start,
// become established, and end. Connection-counting schedulers therefore see
// this worker's flows only (each worker, and so each node, balances its own
// share of the traffic; see lb.v1 Scheduler).
struct SchedBackend {
  Endpoint endpoint;
  // Effective weight: configured, or from a dynamic-weight health check.
  // 0 quiesces: no new flows; established ones continue.
  uint32_t weight = 0;
  // Established flows of this worker on the backend (IPVS's activeconns).
  uint32_t active = 0;
  // Other flows: half-open, closing, UDP (IPVS's inactconns).
  uint32_t inactive = 0;
  // Above its connection threshold (IPVS's IP_VS_DEST_F_OVERLOAD); set and
  // cleared with hysteresis by UpdateOverload().
  bool overloaded = false;
  // False when this node cannot reach the backend though the fleet counts it
  // up (health seen from here only): hashing schedulers fall back past it
  // without changing their tables; others skip it.
  bool available = true;
  // ipvsadm -x / -y; 0 means no limit / three quarters of upper.
  uint32_t upper_threshold = 0;
  uint32_t lower_threshold = 0;

  // Overhead is IPVS's ip_vs_dest_conn_overhead(): active flows weigh 256
  // times an inactive one.
  uint64_t Overhead() const { return uint64_t{active} * 256 + inactive; }

  // CanTakeNewFlow: weight > 0, not overloaded, and reachable from here.
  bool CanTakeNewFlow() const { return weight > 0 && !overloaded && available; }

  // UpdateOverload applies IPVS's -x/-y hysteresis (ip_vs_bind_dest /
  // ip_vs_unbind_dest) after the counts changed: overloaded once active +
  // inactive reaches upper_threshold; free again once below lower_threshold,
  // or below three quarters of upper_threshold when lower is unset.
  void UpdateOverload() {
    if (upper_threshold == 0 && lower_threshold == 0) {
      overloaded = false;
      return;
    }
    const uint64_t conns = uint64_t{active} + inactive;
    if (upper_threshold != 0 && conns >= upper_threshold) {
      overloaded = true;
    } else if (lower_threshold != 0) {
      if (conns < lower_threshold) overloaded = false;
    } else if (conns * 4 < uint64_t{upper_threshold} * 3) {
      overloaded = false;
    }
  }
};

// kNoBackend is what a scheduler returns when no backend can take the flow.
inline constexpr int kNoBackend = -1;

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_BACKEND_H_
