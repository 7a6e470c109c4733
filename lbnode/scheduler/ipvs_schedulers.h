// The IPVS schedulers other than mh (which is Maglev, maglev_scheduler.h):
// rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf and twos, each with
// the selection rule of its Linux module (net/netfilter/ipvs/ip_vs_<name>.c).
//
// What "usable" means. IPVS gives no new connection to a destination whose
// weight is 0 (quiesced) or that has IP_VS_DEST_F_OVERLOAD (its -x upper
// threshold was reached). Here a backend can also be unreachable from this
// node only (`available == false`, see SchedBackend): the schedulers treat it
// like an overloaded one, i.e. SchedBackend::CanTakeNewFlow() is IPVS's
// "weight > 0 and not overloaded" test. The hashing schedulers (dh, sh) walk
// past an unreachable backend instead, as the fleet still counts it up (see
// DestinationHashScheduler, SourceHashScheduler).
//
// Connection counts. lc, wlc, sed, nq, lblc, lblcr, ovf and twos read
// SchedBackend::active / inactive, which the worker that owns the flows
// keeps: they balance this worker's flows, not the fleet's (lb.v1
// Scheduler). They never write the counts.
//
// Order. Backends come in canonical order (sorted by endpoint), not in
// IPVS's insertion order. Where IPVS's result depends on list order (ties go
// to the first destination; rr/wrr visit order; the dh/sh bucket tables) it
// depends here on the sorted order instead, so dh and sh tables are a
// function of the set alone, the same on every node: a deliberate, harmless
// deviation.
//
// Every scheduler here validates the order in Create() and Reset()
// (strictly increasing endpoints, else INVALID_ARGUMENT). Pick() is given
// the span last passed to Reset() (with fresh counts and flags); a span of
// another length is a caller bug and gets kNoBackend rather than an
// out-of-bounds read.
//
// Ownership and threading (all of them): one scheduler per service per
// worker, used by that worker's thread only. Create() and Reset() run on the
// control path and may allocate; Pick() never allocates, locks or throws.

#ifndef ANYLB_LBNODE_SCHEDULER_IPVS_SCHEDULERS_H_
#define ANYLB_LBNODE_SCHEDULER_IPVS_SCHEDULERS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/internal/lru_hash_map.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::scheduler {

// CreateIpvsScheduler makes the scheduler of `config.kind` for `backends`
// (canonical order), for every kind but kMh (INVALID_ARGUMENT: mh is
// CreateMaglevScheduler). It does not police the -b flags (`fallback`,
// `port`), which only sh reads here: CreateScheduler() rejects them for
// other kinds.
absl::StatusOr<std::unique_ptr<Scheduler>> CreateIpvsScheduler(
    const SchedulerConfig& config, std::span<const SchedBackend> backends);

// IpvsScheduler is the common part of the schedulers below: the endpoints
// of the current set, which Reset() uses to carry per-backend state (rr
// position, cached choices) over to the new set by endpoint.
class IpvsScheduler : public Scheduler {
 public:
  // Reset validates `backends` (canonical order), adopts them and carries
  // the scheduler's state over (see each scheduler). On error nothing
  // changes.
  absl::Status Reset(std::span<const SchedBackend> backends) final;

  SchedulerKind kind() const final { return kind_; }

  // size is the number of backends of the current set.
  size_t size() const { return endpoints_.size(); }

 protected:
  explicit IpvsScheduler(SchedulerKind kind) : kind_(kind) {}

  // Adopt is what Reset() does once `backends` is validated: `old` holds the
  // previous set's endpoints (empty on the first call, from Create()).
  virtual void Adopt(std::span<const Endpoint> old,
                     std::span<const SchedBackend> backends) = 0;

  // IndexOf returns the index of `endpoint` in the current set, or
  // kNoBackend (binary search: canonical order).
  int IndexOf(const Endpoint& endpoint) const;

  // endpoint_at is the endpoint of backend `index` of the current set.
  const Endpoint& endpoint_at(int index) const { return endpoints_[index]; }

  // Matches is the Pick() guard: `backends` has the current set's length.
  bool Matches(std::span<const SchedBackend> backends) const {
    return backends.size() == endpoints_.size();
  }

 private:
  SchedulerKind kind_;
  std::vector<Endpoint> endpoints_;
};

// RoundRobinScheduler is rr (ip_vs_rr.c): the next usable backend after the
// last one picked, circularly.
//
// Reset keeps the position by endpoint: if the last-picked backend is still
// there the next pick follows it; if it was removed, the next pick is the
// first backend after it in canonical order (IPVS steps back to the removed
// destination's predecessor, ip_vs_rr_del_dest).
class RoundRobinScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<RoundRobinScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  RoundRobinScheduler() : IpvsScheduler(SchedulerKind::kRr) {}
  void Adopt(std::span<const Endpoint> old,
             std::span<const SchedBackend> backends) override;

  int last_ = -1;  // last pick, -1 before the first (IPVS: the list head)
};

// WeightedRoundRobinScheduler is wrr (ip_vs_wrr.c): with mw the largest
// weight, di the gcd of the positive weights and cw a current weight that
// starts at mw - (di - 1) and steps down by di (back to the top after the
// pass at 1), each pass over the list picks, in order, the usable backends
// whose weight is >= cw. Weights 4, 3, 2 give A A B A B C A B C, repeating.
//
// Reset follows ip_vs_wrr_dest_changed: the position returns to the start of
// the list, mw and di are recomputed, and cw is kept (snapped to the new
// step: cw = (cw / di) * di + 1 when di > 1; mw if cw exceeds it).
//
// Pick costs O(n) even when many passes find nothing (weights much larger
// than those of the usable backends): passes whose cw is above every usable
// weight are skipped, as they could pick nothing.
class WeightedRoundRobinScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<WeightedRoundRobinScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  WeightedRoundRobinScheduler() : IpvsScheduler(SchedulerKind::kWrr) {}
  void Adopt(std::span<const Endpoint> old,
             std::span<const SchedBackend> backends) override;

  int last_ = -1;   // IPVS mark->cl: last pick, -1 for the list head
  int64_t cw_ = 0;  // current weight
  int64_t mw_ = 0;  // max weight - (di - 1)
  int64_t di_ = 1;  // gcd of the positive weights
};

// LeastConnectionScheduler is lc (ip_vs_lc.c): the usable backend with the
// least overhead, active * 256 + inactive (ip_vs_dest_conn_overhead); ties
// go to the first.
class LeastConnectionScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<LeastConnectionScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  LeastConnectionScheduler() : IpvsScheduler(SchedulerKind::kLc) {}
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
};

// WeightedLeastConnectionScheduler is wlc (ip_vs_wlc.c): the usable backend
// with the least overhead / weight, compared as loh * dw > doh * lw (no
// division); ties go to the first.
class WeightedLeastConnectionScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<WeightedLeastConnectionScheduler>>
  Create(std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  WeightedLeastConnectionScheduler() : IpvsScheduler(SchedulerKind::kWlc) {}
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
};

// ShortestExpectedDelayScheduler is sed (ip_vs_sed.c; Weinrib and Shenker,
// "Greed is not enough", INFOCOM'88): as wlc with overhead = active + 1,
// the expected delay of the new flow on that backend.
class ShortestExpectedDelayScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<ShortestExpectedDelayScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  ShortestExpectedDelayScheduler() : IpvsScheduler(SchedulerKind::kSed) {}
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
};

// NeverQueueScheduler is nq (ip_vs_nq.c): the first usable backend with no
// active flow, whatever its weight; if every one is busy, sed's choice.
class NeverQueueScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<NeverQueueScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  NeverQueueScheduler() : IpvsScheduler(SchedulerKind::kNq) {}
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
};

// WeightedFailoverScheduler is fo (ip_vs_fo.c): the usable backend with the
// highest weight; ties go to the first.
class WeightedFailoverScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<WeightedFailoverScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  WeightedFailoverScheduler() : IpvsScheduler(SchedulerKind::kFo) {}
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
};

// OverflowScheduler is ovf (ip_vs_ovf.c): the usable backend with the
// highest weight among those whose active flows do not exceed their weight
// (active <= weight: the weight is the number of active flows a backend
// takes before the next one gets the overflow); ties go to the first.
class OverflowScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<OverflowScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  OverflowScheduler() : IpvsScheduler(SchedulerKind::kOvf) {}
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
};

// TwoChoicesScheduler is twos (ip_vs_twos.c; Mitzenmacher, "The Power of Two
// Choices in Randomized Load Balancing"): two random points r1, r2 in
// [0, W] where W is the total weight of the usable backends; each selects
// the first usable backend whose cumulative weight reaches it; the second
// wins only if strictly less loaded (w2 * overhead1 > w1 * overhead2).
// As in IPVS the range is inclusive of W, which gives the first usable
// backend one extra chance in W + 1.
//
// The random stream is SplitMix64 (Steele et al., OOPSLA 2014) seeded from
// config.seed: deterministic for a given seed and sequence of picks, no
// global state, no allocation.
class TwoChoicesScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<TwoChoicesScheduler>> Create(
      const SchedulerConfig& config, std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

 private:
  explicit TwoChoicesScheduler(uint64_t seed);
  void Adopt(std::span<const Endpoint>,
             std::span<const SchedBackend>) override {}
  uint64_t NextRandom();

  uint64_t state_;
};

// DestinationHashScheduler is dh (ip_vs_dh.c): a 256-bucket table whose
// buckets are given to the backends in turn (0, 1, ..., n-1, 0, ...; the
// weight plays no part), indexed by hash_32 of the flow's destination
// address (IPv6 folded into 32 bits by XOR of its four words; see
// DhBucket). The bucket's backend gets the flow if it can take new flows;
// otherwise kNoBackend — IPVS's dh has no fallback.
//
// Deviation for the fleet: a bucket owner that only this node cannot reach
// (`available == false`) is walked past, to the owners of the following
// buckets (b+1, b+2, ... wrapping) until a reachable one, which then gets
// the flow if it can take new flows (else kNoBackend), as other nodes, which
// reach the owner, still deliver to it. The table never changes for this.
//
// Reset rebuilds the table from the new set (ip_vs_dh_reassign).
class DestinationHashScheduler final : public IpvsScheduler {
 public:
  static constexpr int kTableSize = 256;  // IP_VS_DH_TAB_SIZE

  static absl::StatusOr<std::unique_ptr<DestinationHashScheduler>> Create(
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

  // table is the bucket -> backend index table (kNoBackend when empty).
  const std::array<int32_t, kTableSize>& table() const { return table_; }

 private:
  DestinationHashScheduler() : IpvsScheduler(SchedulerKind::kDh) {}
  void Adopt(std::span<const Endpoint> old,
             std::span<const SchedBackend> backends) override;

  std::array<int32_t, kTableSize> table_;
};

// SourceHashScheduler is sh (ip_vs_sh.c): a 256-bucket table where each
// backend in turn gets `weight` consecutive buckets (a weight-0 backend
// still gets one, as in ip_vs_sh_reassign, and never takes a flow), indexed
// by ShBucket(source address [+ source port with sh-port]).
//
//   - The bucket's backend gets the flow if it can take new flows.
//   - With sh-fallback (config.fallback), if it cannot, the buckets
//     ip_vs_sh_get_fallback tries are walked — (2 * b + k) mod 256 for
//     k = 0..255, b the first bucket — to the first backend that can.
//   - Without it, the flow gets kNoBackend, except that a backend only this
//     node cannot reach (`available == false`) is walked past along the
//     same buckets to the first reachable one, which then gets the flow if
//     it can take new flows (the fleet deviation described at
//     DestinationHashScheduler; MaglevScheduler does the same).
//
// sh-port (config.port) adds the source port of TCP, UDP and SCTP flows to
// the hash (ip_vs_sh_get_port); other protocols hash with port 0.
//
// Reset rebuilds the table from the new set and weights.
class SourceHashScheduler final : public IpvsScheduler {
 public:
  static constexpr int kTableSize = 256;  // IP_VS_SH_TAB_SIZE

  static absl::StatusOr<std::unique_ptr<SourceHashScheduler>> Create(
      const SchedulerConfig& config, std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

  const std::array<int32_t, kTableSize>& table() const { return table_; }

 private:
  SourceHashScheduler(bool fallback, bool port)
      : IpvsScheduler(SchedulerKind::kSh), fallback_(fallback), port_(port) {}
  void Adopt(std::span<const Endpoint> old,
             std::span<const SchedBackend> backends) override;

  bool fallback_;
  bool port_;
  std::array<int32_t, kTableSize> table_;
};

// DhBucket is ip_vs_dh_hashkey: hash_32(fold(address), 8) with hash_32(x, 8)
// = (x * 0x61C88647) >> 24 (GOLDEN_RATIO_32, include/linux/hash.h), fold =
// the IPv4 address in host order, or the XOR of an IPv6 address's four
// 32-bit words.
int DhBucket(const IpAddress& address);

// ShBucket is ip_vs_sh_hashkey with offset 0: hash_32(port + fold(address),
// 8), the port in host order (0 without sh-port).
int ShBucket(const IpAddress& address, uint16_t port);

// LocalityCacheStats counts what an lblc/lblcr cache did.
struct LocalityCacheStats {
  uint64_t hits = 0;         // cached choice used
  uint64_t misses = 0;       // no entry: scheduled by wlc and cached
  uint64_t reschedules = 0;  // entry there but unusable: wlc, re-cached
  uint64_t expired = 0;      // entries dropped unused for lblc_expiration
  uint64_t evictions = 0;    // live entries dropped because the cache was full
  uint64_t set_shrinks = 0;  // lblcr: most loaded member dropped
  uint64_t set_overflows = 0;  // lblcr: full set, most loaded member replaced
};

// LblcScheduler is lblc (ip_vs_lblc.c), locality-based least connection: a
// cache maps a destination address to the backend that served it. A flow
// goes to the cached backend unless that one has weight 0, is unreachable
// from here, or is overloaded by lblc's rule (its active flows exceed its
// weight while some backend has fewer active flows than half its weight);
// then, and on a miss, the wlc choice is taken and cached. As in IPVS the
// cached backend's -x overload flag is not consulted (only wlc's choice
// honours it).
//
// The cache is fixed: config.locality_cache_entries entries allocated by
// Create(), so Pick() never allocates. An entry unused for
// config.lblc_expiration (IPVS: 24h) is expired — dropped when next seen,
// or reclaimed first when room is needed; when the cache is full of live
// entries the least recently used one is evicted. Both are counted
// (stats()). IPVS has no hard limit (it garbage-collects entries unused for
// 6 minutes once over 16384); a fixed cache is the deviation.
//
// Reset keeps entries whose backend is still in the set (by endpoint) and
// drops the others.
class LblcScheduler final : public IpvsScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<LblcScheduler>> Create(
      const SchedulerConfig& config, std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

  const LocalityCacheStats& stats() const { return stats_; }
  uint32_t cache_size() const { return cache_.size(); }

  // CachedBackend is the endpoint cached for `destination`, if any (expired
  // or not); for tests and introspection.
  std::optional<Endpoint> CachedBackend(const IpAddress& destination) const;

 private:
  struct Entry {
    int32_t backend = kNoBackend;
    absl::Time last_use;
  };
  struct KeyHasher {
    uint64_t operator()(const IpAddress& address, uint64_t seed) const;
  };

  explicit LblcScheduler(const SchedulerConfig& config)
      : IpvsScheduler(SchedulerKind::kLblc),
        expiration_(config.lblc_expiration) {}
  void Adopt(std::span<const Endpoint> old,
             std::span<const SchedBackend> backends) override;

  absl::Duration expiration_;
  internal::LruHashMap<IpAddress, Entry, KeyHasher> cache_;
  LocalityCacheStats stats_;
};

// LblcrScheduler is lblcr (ip_vs_lblcr.c), locality-based least connection
// with replication: the cache maps a destination address to a SET of
// backends.
//
//   - Hit: the set's usable member with the least overhead / weight (newest
//     member first on ties) is the candidate. If the set has more than one
//     member and has not changed for more than config.lblcr_expiration, its
//     most loaded member (by overhead / weight, among weight > 0) is dropped.
//     The candidate gets the flow unless there is none or it is overloaded
//     by lblc's rule; then the wlc choice over all backends gets it and
//     joins the set.
//   - Miss: the wlc choice gets the flow and a new one-member set.
//
// Each set holds at most kMaxSetSize members (preallocated); joining a full
// set replaces its most loaded member (counted as set_overflows). IPVS's
// sets are unbounded. Entry lifetime, eviction and Reset are as for
// LblcScheduler (entries expire after config.lblc_expiration unused; a
// member no longer in the set leaves, an emptied entry goes).
//
// Note: IPVS has one sysctl, lblcr_expiration (default 24h), for both the
// entry lifetime and the set shrink; SchedulerConfig separates them
// (lblc_expiration, default 24h; lblcr_expiration, default 6 min).
class LblcrScheduler final : public IpvsScheduler {
 public:
  static constexpr int kMaxSetSize = 8;

  static absl::StatusOr<std::unique_ptr<LblcrScheduler>> Create(
      const SchedulerConfig& config, std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

  const LocalityCacheStats& stats() const { return stats_; }
  uint32_t cache_size() const { return cache_.size(); }

  // CachedSet is the set cached for `destination`, newest member first;
  // empty if none. For tests and introspection (allocates).
  std::vector<Endpoint> CachedSet(const IpAddress& destination) const;

 private:
  struct Entry {
    // members[0..count) oldest to newest.
    std::array<int32_t, kMaxSetSize> members{};
    int32_t count = 0;
    absl::Time last_use;
    absl::Time last_modified;
  };
  struct KeyHasher {
    uint64_t operator()(const IpAddress& address, uint64_t seed) const;
  };

  explicit LblcrScheduler(const SchedulerConfig& config)
      : IpvsScheduler(SchedulerKind::kLblcr),
        expiration_(config.lblc_expiration),
        shrink_after_(config.lblcr_expiration) {}
  void Adopt(std::span<const Endpoint> old,
             std::span<const SchedBackend> backends) override;

  absl::Duration expiration_;
  absl::Duration shrink_after_;
  internal::LruHashMap<IpAddress, Entry, KeyHasher> cache_;
  LocalityCacheStats stats_;
};

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_IPVS_SCHEDULERS_H_
