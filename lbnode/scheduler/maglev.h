// MaglevTable: Maglev consistent hashing with weights.
//
// Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI'16, §3.4. Each backend has a permutation of the M table
// slots, (offset + j * skip) mod M, from two hashes of its endpoint; backends
// take turns claiming their next free preferred slot until every slot has an
// owner. A flow goes to the owner of slot(hash(flow)).
//
// Weights (the paper's "adjusting the relative frequency of the backends'
// turns"): backend i takes its k-th turn in pass ceil(k * max_weight /
// weight_i), i.e. it earns weight_i credit per pass and spends max_weight
// per turn, the credit scheme of Katran's MaglevHashV2. Its share of the
// turns, and so of the slots, is weight_i / sum(weights) to within two
// slots. With equal weights every backend takes one turn per pass in
// canonical order, and the table is exactly the paper's (maglev_test checks
// it byte for byte against internal/maglev_reference.h), so its evenness and
// disruption are the paper's. (Pass numbers scale with the largest weight:
// removing the only backend of the largest weight renumbers every pass, yet
// measured disruption stays like that of other removals.)
//
// Determinism: the table depends only on the SET of (endpoint, weight), the
// table size and the seed. Build() sorts its input by endpoint (canonical
// order, see SchedBackend); owner indices refer to that order. Offsets and
// skips come from HashEndpoint() with two seeds derived from the service's
// seed; no per-process hashing is involved, so every node, process and run
// computes byte-identical tables (Digest() summarises one).
//
// Limits (checked by Build(), INVALID_ARGUMENT naming the value and a fix):
//   table size M     prime, kMinTableSize (2) <= M <= kMaxTableSize
//                    (16777213, the largest prime below 2^24: a 32 MiB
//                    table), and M >= the number of backends. Keep
//                    M >= 100 x backends for a load within 1%.
//   backends         at most kMaxBackends (65535): owners are uint16_t,
//                    with 0xffff reserved while building; no endpoint twice.
//   weight           0 (quiesced: owns no slot) to kMaxWeight (65535); a
//                    non-empty set needs one weight > 0. An empty set
//                    builds an empty table (Lookup: kNoBackend).

#ifndef ANYLB_LBNODE_SCHEDULER_MAGLEV_H_
#define ANYLB_LBNODE_SCHEDULER_MAGLEV_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "lbnode/scheduler/backend.h"

namespace anylb::scheduler {

// MaglevBackend is one backend as the table sees it: identity and weight.
struct MaglevBackend {
  Endpoint endpoint;
  uint32_t weight = 1;

  friend bool operator==(const MaglevBackend&, const MaglevBackend&) = default;
};

// MaglevPermutation is a backend's preference list over the slots: slot
// (offset + j * skip) mod M for j = 0, 1, ... (NSDI'16 §3.4). M prime and
// 1 <= skip < M make it a permutation.
struct MaglevPermutation {
  uint32_t offset = 0;
  uint32_t skip = 1;
};

// MaglevPermutationFor is `endpoint`'s permutation in a table of `table_size`
// (prime, >= 2) slots with `seed`: offset = h1 mod M, skip = h2 mod (M-1) + 1,
// where h1 and h2 are HashEndpoint() with seeds derived from `seed`.
MaglevPermutation MaglevPermutationFor(const Endpoint& endpoint,
                                       uint32_t table_size, uint64_t seed);

// MaglevBalance is how evenly a table spreads slots over weight: for each
// backend of weight > 0, slots / weight, divided by the mean
// table_size / sum(weights). 1.0 and 1.0 is perfect.
struct MaglevBalance {
  double max_over_mean = 0;
  double min_over_mean = 0;
};

// MaglevTable is an immutable Maglev lookup table: M slots, each owned by a
// backend (an index into backends(), canonical order).
//
// Ownership and threading: Build() runs on the control path and returns a
// shared_ptr<const MaglevTable>. Nothing changes it afterwards, so any number
// of worker threads may share one table without locks; the last owner to
// drop it frees it. Tables reach up to 32 MiB, so they are shared, not
// copied per worker. Lookup() and LookupWithFallback() never allocate, lock
// or throw.
class MaglevTable {
 public:
  static constexpr uint32_t kDefaultTableSize = 65537;
  static constexpr uint32_t kMinTableSize = 2;
  static constexpr uint32_t kMaxTableSize = 16777213;
  static constexpr size_t kMaxBackends = 65535;
  static constexpr uint32_t kMaxWeight = 65535;

  // Build makes the table of `backends` (any order) with `table_size` slots
  // and `seed`. See the file comment for the limits.
  static absl::StatusOr<std::shared_ptr<const MaglevTable>> Build(
      std::span<const MaglevBackend> backends,
      uint32_t table_size = kDefaultTableSize, uint64_t seed = 0);

  // CheckTableSize is Build()'s check of `table_size` for `num_backends`
  // backends: OK, or INVALID_ARGUMENT such as "maglev table size 65536 is
  // not prime; nearest primes: 65521, 65537".
  static absl::Status CheckTableSize(uint32_t table_size, size_t num_backends);

  // IsPrime is a deterministic primality test (trial division; n < 2^32).
  static bool IsPrime(uint32_t n);

  MaglevTable(const MaglevTable&) = delete;
  MaglevTable& operator=(const MaglevTable&) = delete;

  // SlotOf maps a 64-bit flow hash to a slot with Lemire's multiply-shift
  // reduction, floor(hash * M / 2^64): one multiplication instead of a
  // division, using all 64 bits (bias at most M / 2^64), and pure integer
  // arithmetic, so the same on every node.
  uint32_t SlotOf(uint64_t hash) const {
    return static_cast<uint32_t>(
        (static_cast<unsigned __int128>(hash) * size_) >> 64);
  }

  // Lookup returns the index (into backends()) of the owner of hash's slot,
  // or kNoBackend when the table is empty.
  int Lookup(uint64_t hash) const {
    if (ABSL_PREDICT_FALSE(owners_.empty())) return kNoBackend;
    return owners_[SlotOf(hash)];
  }

  // LookupWithFallback is Lookup(), but passes over owners that
  // `usable(int index) -> bool` rejects, walking to the owner of slot+1,
  // slot+2, ... (wrapping), as IPVS's ip_vs_mh_get_fallback() does. The
  // table is unchanged, so flows of usable backends keep their backends.
  // Returns kNoBackend when the table is empty, no backend that owns slots
  // is usable, or after M slots. Cost: a few probes while most backends are
  // usable; after kQuickWalk unusable slots, one O(N) check that a usable
  // owner exists before the (then bounded by M) rest of the walk.
  template <typename Usable>
  int LookupWithFallback(uint64_t hash, Usable&& usable) const;

  // Owner returns the owner of `slot` (< size()), or kNoBackend when empty.
  int Owner(uint32_t slot) const {
    return owners_.empty() ? kNoBackend : owners_[slot];
  }

  // size is M, the number of slots (also of an empty table).
  uint32_t size() const { return size_; }
  // empty: no backends, every lookup is kNoBackend.
  bool empty() const { return owners_.empty(); }
  uint64_t seed() const { return seed_; }

  // backends is the input in canonical order (weight 0 included).
  std::span<const MaglevBackend> backends() const { return backends_; }

  // owners is the M slot owners (empty for an empty table).
  std::span<const uint16_t> owners() const { return owners_; }

  // slot_counts is, per backend of backends(), the slots it owns.
  std::span<const uint32_t> slot_counts() const { return slot_counts_; }

  // Balance is the spread of slots per unit weight (see MaglevBalance).
  MaglevBalance Balance() const;

  // Digest is a deterministic hash of the table: its size and each slot's
  // owner as an endpoint (HashEndpoint), so equal for equal tables whatever
  // order they were built from, and comparable across nodes. O(M); not
  // cached.
  uint64_t Digest() const;

  // ChangedSlots returns the slots whose owner ENDPOINT differs between
  // `before` and `after` (indices shift when membership changes, endpoints
  // do not), in increasing order. A slot with an owner on one side only
  // counts as changed. When the sizes differ every slot of `after` is
  // changed: a flow's slot itself moves.
  static std::vector<uint32_t> ChangedSlots(const MaglevTable& before,
                                            const MaglevTable& after);

  // CountChangedSlots is ChangedSlots(before, after).size() without the
  // vector.
  static size_t CountChangedSlots(const MaglevTable& before,
                                  const MaglevTable& after);

  // kQuickWalk is how many unusable slots LookupWithFallback() walks before
  // it checks that a usable backend exists at all.
  static constexpr uint32_t kQuickWalk = 32;

 private:
  MaglevTable() = default;

  // AnyUsable: does a backend that owns slots pass `usable`?
  template <typename Usable>
  bool AnyUsable(Usable& usable) const {
    return std::any_of(owning_.begin(), owning_.end(), [&](uint16_t index) {
      return usable(static_cast<int>(index));
    });
  }

  // MapIndices returns, for each of before's backends, the index of the same
  // endpoint in after's backends, or -1.
  static std::vector<int> MapIndices(const MaglevTable& before,
                                     const MaglevTable& after);

  uint32_t size_ = kDefaultTableSize;
  uint64_t seed_ = 0;
  std::vector<MaglevBackend> backends_;
  std::vector<uint16_t> owners_;
  std::vector<uint32_t> slot_counts_;
  // Indices of the backends that own at least one slot.
  std::vector<uint16_t> owning_;
};

template <typename Usable>
int MaglevTable::LookupWithFallback(uint64_t hash, Usable&& usable) const {
  if (ABSL_PREDICT_FALSE(owners_.empty())) return kNoBackend;
  uint32_t slot = SlotOf(hash);
  for (uint32_t step = 0; step < size_; ++step) {
    const int owner = owners_[slot];
    if (usable(owner)) return owner;
    if (++slot == size_) slot = 0;
    if (ABSL_PREDICT_FALSE(step == kQuickWalk) && !AnyUsable(usable)) {
      return kNoBackend;
    }
  }
  return kNoBackend;
}

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_MAGLEV_H_
