#include "lbnode/scheduler/maglev.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/config/rules.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {
namespace {

// Salts of the two seeds derived from a service's seed ("offset", "skip",
// "digest" in ASCII): fixed forever, or nodes of different versions would
// build different tables.
constexpr uint64_t kOffsetSalt = 0x6f66667365740000ULL;
constexpr uint64_t kSkipSalt = 0x736b697000000000ULL;
constexpr uint64_t kDigestSeed = 0x6469676573740000ULL;

// kFree marks a slot without an owner while building.
constexpr uint16_t kFree = 0xffff;

// NearestPrimes returns the largest prime below `n` (0 if none) and the
// smallest prime above it.
std::pair<uint32_t, uint64_t> NearestPrimes(uint32_t n) {
  uint32_t below = 0;
  for (uint32_t p = n; p-- > 2;) {
    if (MaglevTable::IsPrime(p)) {
      below = p;
      break;
    }
  }
  uint64_t above = uint64_t{n} + 1;
  while (above <= UINT32_MAX &&
         !MaglevTable::IsPrime(static_cast<uint32_t>(above))) {
    ++above;
  }
  return {below, above};
}

// SmallestPrimeAtLeast returns the smallest prime >= n (n small enough).
uint64_t SmallestPrimeAtLeast(uint64_t n) {
  if (n < 2) return 2;
  while (!MaglevTable::IsPrime(static_cast<uint32_t>(n))) ++n;
  return n;
}

// ModInverse returns x^-1 mod m (m prime, 0 < x < m), by extended Euclid.
uint32_t ModInverse(uint32_t x, uint32_t m) {
  int64_t t = 0;
  int64_t new_t = 1;
  int64_t r = m;
  int64_t new_r = x;
  while (new_r != 0) {
    const int64_t q = r / new_r;
    t -= q * new_t;
    std::swap(t, new_t);
    r -= q * new_r;
    std::swap(r, new_r);
  }
  return static_cast<uint32_t>(t < 0 ? t + m : t);
}

// kNil ends a Turn list.
constexpr uint32_t kNil = UINT32_MAX;

// Turn is one backend's state in the population loop, kept in one flat
// array: its permutation (next preferred slot, step, and the step's inverse
// mod M, 0 until the end game needs it) and its place in the weighted
// schedule (see Populate).
struct Turn {
  uint32_t next;
  uint32_t skip;
  uint32_t inverse_skip;
  uint32_t weight;
  // Schedule: max_weight = quotient * weight + remainder; excess =
  // ceil(k * max_weight / weight) * weight - k * max_weight after k turns;
  // link to the next Turn of the same pass.
  uint32_t quotient;
  uint32_t remainder;
  uint32_t excess;
  uint32_t link;
  uint16_t index;  // into the canonical backends
};

// Populator fills `owners` (M entries) by NSDI'16 Pseudocode 1: each Take()
// gives a backend the first free slot of its permutation from its `next`.
//
// Speed (the paper builds N=1000, M=65537 in 1.8 ms): the permutation is
// stepped by conditional subtraction instead of `%`; free slots are a bitmap
// (M/8 bytes, in L1/L2); and once few slots are free, probing a permutation
// for them costs ~M/free steps a turn, so the end game instead scans the
// list of free slots for the one nearest in the backend's permutation:
// distance((c - next) * skip^-1 mod M), unique per slot. Both find the same
// slot; the switch saves about half of the M ln M probes.
class Populator {
 public:
  Populator(uint32_t size, uint16_t* owners, uint32_t* counts)
      : size_(size),
        owners_(owners),
        counts_(counts),
        taken_((size + 63) / 64, 0),
        free_left_(size),
        end_game_(EndGameSize(size)),
        barrett_(~uint64_t{0} / size) {
    if (free_left_ <= end_game_) ListFree();
  }

  // EndGameSize is the number of free slots at which scanning them beats
  // probing: about sqrt(M), tuned by maglev_benchmark.
  static uint32_t EndGameSize(uint32_t size) {
    uint32_t r = 1;
    while (r * r < size) ++r;
    return r;
  }

  // Take claims `turn`'s next free preferred slot.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Take(Turn& turn) {
    if (ABSL_PREDICT_FALSE(free_left_ <= end_game_)) {
      TakeEndGame(turn);
      return;
    }
    const uint32_t skip = turn.skip;
    const uint32_t size = size_;
    const uint64_t* const taken = taken_.data();
    uint32_t c = turn.next;
    while (taken[c >> 6] >> (c & 63) & 1) {
      c += skip;
      if (c >= size) c -= size;
    }
    Claim(turn, c);
    if (free_left_ == end_game_) ListFree();
  }

 private:
  uint32_t Step(uint32_t c, uint32_t skip) const {
    c += skip;
    return c >= size_ ? c - size_ : c;
  }

  uint32_t Free(uint32_t c) const {
    return static_cast<uint32_t>(~(taken_[c >> 6] >> (c & 63)) & 1);
  }

  void Claim(Turn& turn, uint32_t c) {
    taken_[c >> 6] |= uint64_t{1} << (c & 63);
    owners_[c] = turn.index;
    ++counts_[turn.index];
    --free_left_;
    turn.next = Step(c, turn.skip);
  }

  ABSL_ATTRIBUTE_NOINLINE void ListFree() {
    free_.clear();
    for (uint32_t w = 0; w < taken_.size(); ++w) {
      for (uint64_t f = ~taken_[w]; f != 0; f &= f - 1) {
        const uint32_t c = w * 64 + static_cast<uint32_t>(__builtin_ctzll(f));
        if (c >= size_) break;
        free_.push_back(c);
      }
    }
  }

  // MulMod is a * b mod M for a, b < M < 2^24 (Barrett reduction).
  uint32_t MulMod(uint32_t a, uint32_t b) const {
    const uint64_t x = uint64_t{a} * b;
    const auto q = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(x) * barrett_) >> 64);
    uint64_t r = x - q * size_;
    if (r >= size_) r -= size_;
    return static_cast<uint32_t>(r);
  }

  ABSL_ATTRIBUTE_NOINLINE void TakeEndGame(Turn& turn) {
    if (turn.inverse_skip == 0) {
      turn.inverse_skip = ModInverse(turn.skip, size_);
    }
    size_t best = 0;
    uint32_t best_distance = UINT32_MAX;
    for (size_t k = 0; k < free_.size(); ++k) {
      const uint32_t c = free_[k];
      const uint32_t diff =
          c >= turn.next ? c - turn.next : c + size_ - turn.next;
      const uint32_t distance = MulMod(diff, turn.inverse_skip);
      if (distance < best_distance) {
        best_distance = distance;
        best = k;
      }
    }
    const uint32_t c = free_[best];
    free_[best] = free_.back();
    free_.pop_back();
    Claim(turn, c);
  }

  const uint32_t size_;
  uint16_t* const owners_;
  uint32_t* const counts_;
  std::vector<uint64_t> taken_;
  uint32_t free_left_;
  const uint32_t end_game_;
  const uint64_t barrett_;
  std::vector<uint32_t> free_;
};

// Populate fills `owners` from `turns` (weight > 0, canonical order).
//
// Weighted turns: backend i takes its k-th turn in pass
// ceil(k * max_weight / weight_i), so after P passes it has had
// floor(P * weight_i / max_weight) turns: shares proportional to weight,
// each within one turn of exact (the credit scheme of Katran's
// MaglevHashV2). Within a pass backends go in the order they were scheduled
// into it: canonical order for their first turns, then the order of their
// previous turns. With equal weights that is one turn each per pass in
// canonical order: the paper's Pseudocode 1 exactly.
//
// The schedule is a calendar of FIFO lists, one per pass in a ring of
// max/min weight + 2 passes (the longest gap between two turns of one
// backend is ceil(max/min)), so a turn costs O(1) whatever the weights;
// a credit loop over every backend each pass would cost O(N) per pass, and
// there are up to M passes when one weight dwarfs the others.
void Populate(std::vector<Turn>& turns, uint32_t size, uint16_t* owners,
              uint32_t* counts) {
  Populator populator(size, owners, counts);
  uint32_t max_weight = 0;
  uint32_t min_weight = UINT32_MAX;
  for (const Turn& t : turns) {
    max_weight = std::max(max_weight, t.weight);
    min_weight = std::min(min_weight, t.weight);
  }
  uint32_t filled = 0;
  if (max_weight == min_weight) {
    // Every backend takes one turn per pass: the same sequence as the
    // calendar below, without its bookkeeping.
    for (;;) {
      for (Turn& t : turns) {
        populator.Take(t);
        if (++filled == size) return;
      }
    }
  }

  const uint32_t ring = max_weight / min_weight + 2;
  std::vector<uint32_t> head(ring, kNil);
  std::vector<uint32_t> tail(ring, kNil);
  auto append = [&](uint32_t bucket, uint32_t t) {
    turns[t].link = kNil;
    if (tail[bucket] == kNil) {
      head[bucket] = t;
    } else {
      turns[tail[bucket]].link = t;
    }
    tail[bucket] = t;
  };
  // Advance returns how many passes after the current one `t`'s next turn
  // comes: quotient or quotient + 1, without a division per turn.
  auto advance = [](Turn& t) -> uint32_t {
    if (t.remainder <= t.excess) {
      t.excess -= t.remainder;
      return t.quotient;
    }
    t.excess = t.excess + t.weight - t.remainder;
    return t.quotient + 1;
  };
  for (uint32_t i = 0; i < turns.size(); ++i) {
    Turn& t = turns[i];
    t.quotient = max_weight / t.weight;
    t.remainder = max_weight % t.weight;
    t.excess = 0;
    append(advance(t) % ring, i);  // pass 0 is before the first
  }
  uint32_t bucket = 0;
  for (;;) {
    if (++bucket == ring) bucket = 0;
    uint32_t i = head[bucket];
    head[bucket] = tail[bucket] = kNil;
    while (i != kNil) {
      const uint32_t following = turns[i].link;
      populator.Take(turns[i]);
      if (++filled == size) return;
      uint32_t to = bucket + advance(turns[i]);
      if (to >= ring) to -= ring;
      append(to, i);
      i = following;
    }
  }
}

}  // namespace

MaglevPermutation MaglevPermutationFor(const Endpoint& endpoint,
                                       uint32_t table_size, uint64_t seed) {
  const uint64_t offset_seed = Mix64(seed ^ kOffsetSalt);
  const uint64_t skip_seed = Mix64(seed ^ kSkipSalt);
  MaglevPermutation p;
  p.offset =
      static_cast<uint32_t>(HashEndpoint(endpoint, offset_seed) % table_size);
  p.skip = table_size <= 2
               ? 1
               : static_cast<uint32_t>(HashEndpoint(endpoint, skip_seed) %
                                       (table_size - 1)) +
                     1;
  return p;
}

static_assert(MaglevTable::kMaxTableSize == config::kMaxMaglevTableSize);

bool MaglevTable::IsPrime(uint32_t n) { return config::IsPrime(n); }

absl::Status MaglevTable::CheckTableSize(uint32_t table_size,
                                         size_t num_backends) {
  if (table_size > kMaxTableSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maglev table size ", table_size, " exceeds the maximum ",
        kMaxTableSize, " (a 32 MiB table); use a prime such as 65537 or ",
        "655373"));
  }
  if (!IsPrime(table_size)) {
    const auto [below, above] = NearestPrimes(table_size);
    std::string nearest =
        below == 0 ? absl::StrCat(above) : absl::StrCat(below, ", ", above);
    if (above > kMaxTableSize) nearest = absl::StrCat(below);
    return absl::InvalidArgumentError(
        absl::StrCat("maglev table size ", table_size,
                     " is not prime; nearest primes: ", nearest));
  }
  if (table_size < num_backends) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maglev table size ", table_size, " is smaller than the number of ",
        "backends (", num_backends, "); use a prime of at least ",
        SmallestPrimeAtLeast(num_backends), ", better about 100 x backends (",
        SmallestPrimeAtLeast(
            std::min<uint64_t>(uint64_t{num_backends} * 100, kMaxTableSize)),
        ") for a load within 1%"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const MaglevTable>> MaglevTable::Build(
    std::span<const MaglevBackend> backends, uint32_t table_size,
    uint64_t seed) {
  if (backends.size() > kMaxBackends) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maglev: ", backends.size(), " backends exceed the maximum ",
        kMaxBackends, " per service; split the service"));
  }
  if (absl::Status s = CheckTableSize(table_size, backends.size()); !s.ok()) {
    return s;
  }
  std::shared_ptr<MaglevTable> table(new MaglevTable());
  table->size_ = table_size;
  table->seed_ = seed;
  table->backends_.assign(backends.begin(), backends.end());
  std::vector<MaglevBackend>& sorted = table->backends_;
  std::sort(sorted.begin(), sorted.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) {
              return a.endpoint < b.endpoint;
            });
  uint64_t total_weight = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && sorted[i].endpoint == sorted[i - 1].endpoint) {
      return absl::InvalidArgumentError(absl::StrCat(
          "maglev: duplicate backend ", sorted[i].endpoint.ToString(),
          " (a backend is its address and port; list each once)"));
    }
    if (sorted[i].weight > kMaxWeight) {
      return absl::InvalidArgumentError(
          absl::StrCat("maglev: backend ", sorted[i].endpoint.ToString(),
                       " weight ", sorted[i].weight, " exceeds the maximum ",
                       kMaxWeight, "; scale the weights down"));
    }
    total_weight += sorted[i].weight;
  }
  table->slot_counts_.assign(sorted.size(), 0);
  if (sorted.empty()) return std::shared_ptr<const MaglevTable>(table);
  if (total_weight == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maglev: all ", sorted.size(),
        " backends have weight 0, so none can own a slot; give one a weight "
        "> 0, or build from an empty set for an empty table"));
  }

  std::vector<Turn> turns;
  turns.reserve(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].weight == 0) continue;
    const MaglevPermutation p =
        MaglevPermutationFor(sorted[i].endpoint, table_size, seed);
    turns.push_back(Turn{p.offset, p.skip, 0, sorted[i].weight, 0, 0, 0, kNil,
                         static_cast<uint16_t>(i)});
  }
  table->owners_.assign(table_size, kFree);
  Populate(turns, table_size, table->owners_.data(),
           table->slot_counts_.data());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (table->slot_counts_[i] > 0) {
      table->owning_.push_back(static_cast<uint16_t>(i));
    }
  }
  return std::shared_ptr<const MaglevTable>(std::move(table));
}

MaglevBalance MaglevTable::Balance() const {
  MaglevBalance balance;
  uint64_t total_weight = 0;
  for (const MaglevBackend& b : backends_) total_weight += b.weight;
  if (owners_.empty() || total_weight == 0) return balance;
  const double mean = static_cast<double>(size_) / total_weight;
  bool first = true;
  for (size_t i = 0; i < backends_.size(); ++i) {
    if (backends_[i].weight == 0) continue;
    const double r =
        static_cast<double>(slot_counts_[i]) / backends_[i].weight / mean;
    if (first || r > balance.max_over_mean) balance.max_over_mean = r;
    if (first || r < balance.min_over_mean) balance.min_over_mean = r;
    first = false;
  }
  return balance;
}

uint64_t MaglevTable::Digest() const {
  std::vector<uint64_t> owner_hash(backends_.size());
  for (size_t i = 0; i < backends_.size(); ++i) {
    owner_hash[i] = HashEndpoint(backends_[i].endpoint, kDigestSeed);
  }
  uint64_t h = Mix64(kDigestSeed ^ size_);
  h = Mix64(h ^ owners_.size());
  for (const uint16_t owner : owners_) {
    h = Mix64(h ^ owner_hash[owner]) + 0x9e3779b97f4a7c15ULL;
  }
  return Mix64(h);
}

std::vector<int> MaglevTable::MapIndices(const MaglevTable& before,
                                         const MaglevTable& after) {
  // Both lists are sorted by endpoint: one merge.
  std::vector<int> map(before.backends_.size(), -1);
  size_t j = 0;
  for (size_t i = 0; i < before.backends_.size(); ++i) {
    const Endpoint& e = before.backends_[i].endpoint;
    while (j < after.backends_.size() && after.backends_[j].endpoint < e) ++j;
    if (j < after.backends_.size() && after.backends_[j].endpoint == e) {
      map[i] = static_cast<int>(j);
    }
  }
  return map;
}

std::vector<uint32_t> MaglevTable::ChangedSlots(const MaglevTable& before,
                                                const MaglevTable& after) {
  std::vector<uint32_t> changed;
  if (before.size_ != after.size_ || before.empty() != after.empty()) {
    if (before.empty() && after.empty()) return changed;
    changed.resize(after.size_);
    for (uint32_t s = 0; s < after.size_; ++s) changed[s] = s;
    return changed;
  }
  if (before.empty()) return changed;
  const std::vector<int> map = MapIndices(before, after);
  for (uint32_t s = 0; s < after.size_; ++s) {
    if (map[before.owners_[s]] != after.owners_[s]) changed.push_back(s);
  }
  return changed;
}

size_t MaglevTable::CountChangedSlots(const MaglevTable& before,
                                      const MaglevTable& after) {
  if (before.size_ != after.size_ || before.empty() != after.empty()) {
    return before.empty() && after.empty() ? 0 : after.size_;
  }
  if (before.empty()) return 0;
  const std::vector<int> map = MapIndices(before, after);
  size_t count = 0;
  for (uint32_t s = 0; s < after.size_; ++s) {
    count += map[before.owners_[s]] != after.owners_[s];
  }
  return count;
}

}  // namespace anylb::scheduler
