#include "lbnode/scheduler/ipvs_schedulers.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {
namespace {

using Wide = unsigned __int128;  // products of 64-bit loads and 32-bit weights

constexpr uint8_t kProtoSctp = 132;

// GOLDEN_RATIO_32 of include/linux/hash.h: hash_32(x, bits) is
// (x * GOLDEN_RATIO_32) >> (32 - bits).
constexpr uint32_t kGoldenRatio32 = 0x61C88647;

constexpr int HashTo8Bits(uint32_t x) {
  return static_cast<int>((x * kGoldenRatio32) >> 24);
}

// FoldAddress is the 32-bit key of ip_vs_{dh,sh}_hashkey: an IPv4 address
// in host order, or the XOR of the four 32-bit words of an IPv6 address
// (each in host order, which is what ntohl of the XOR of the network-order
// words gives).
uint32_t FoldAddress(const uint8_t* bytes, bool v4) {
  auto word = [bytes](int i) {
    return uint32_t{bytes[i]} << 24 | uint32_t{bytes[i + 1]} << 16 |
           uint32_t{bytes[i + 2]} << 8 | uint32_t{bytes[i + 3]};
  };
  if (v4) return word(0);
  return word(0) ^ word(4) ^ word(8) ^ word(12);
}

// Name is ipvsadm's name of `kind`, for messages (Debian's abseil does not
// take std::string_view in StrCat).
std::string Name(SchedulerKind kind) {
  return std::string(SchedulerKindName(kind));
}

absl::Status CheckCanonical(SchedulerKind kind,
                            std::span<const SchedBackend> backends) {
  for (size_t i = 1; i < backends.size(); ++i) {
    if (!(backends[i - 1].endpoint < backends[i].endpoint)) {
      return absl::InvalidArgumentError(absl::StrCat(
          Name(kind), ": backends are not in canonical order: ",
          backends[i - 1].endpoint.ToString(), " (index ", i - 1,
          ") is not before ", backends[i].endpoint.ToString(), " (index ", i,
          "); sort them by endpoint and list each once"));
    }
  }
  return absl::OkStatus();
}

// WeightedLeast is the wlc choice (ip_vs_wlc_schedule, also
// __ip_vs_lblc_schedule and __ip_vs_lblcr_schedule): the usable backend with
// the least Overhead() / weight, the first on ties.
int WeightedLeast(std::span<const SchedBackend> backends) {
  int least = kNoBackend;
  uint64_t loh = 0;
  uint32_t lw = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    const SchedBackend& b = backends[i];
    if (!b.CanTakeNewFlow()) continue;
    const uint64_t doh = b.Overhead();
    if (least == kNoBackend || Wide{loh} * b.weight > Wide{doh} * lw) {
      least = static_cast<int>(i);
      loh = doh;
      lw = b.weight;
    }
  }
  return least;
}

// ShortestExpected is sed's choice (ip_vs_sed_schedule): as WeightedLeast
// with overhead active + 1.
int ShortestExpected(std::span<const SchedBackend> backends) {
  int least = kNoBackend;
  uint64_t loh = 0;
  uint32_t lw = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    const SchedBackend& b = backends[i];
    if (!b.CanTakeNewFlow()) continue;
    const uint64_t doh = uint64_t{b.active} + 1;
    if (least == kNoBackend || Wide{loh} * b.weight > Wide{doh} * lw) {
      least = static_cast<int>(i);
      loh = doh;
      lw = b.weight;
    }
  }
  return least;
}

// LblcOverloaded is is_overloaded() of ip_vs_lblc.c and ip_vs_lblcr.c:
// `d` has more active flows than its weight and some backend (any, as in
// IPVS) has fewer than half its weight.
bool LblcOverloaded(std::span<const SchedBackend> backends, int d) {
  if (backends[d].active <= backends[d].weight) return false;
  for (const SchedBackend& b : backends) {
    if (uint64_t{b.active} * 2 < b.weight) return true;
  }
  return false;
}

uint64_t HashAddress(const IpAddress& address, uint64_t seed) {
  uint8_t buf[17] = {};
  buf[0] = address.is_v4() ? 4 : 6;
  const auto bytes = address.bytes();
  std::memcpy(buf + 1, bytes.data(), bytes.size());
  return Hash64(buf, seed);
}

// RandomSeed is the secret seed of a cache index (see LruHashMap).
uint64_t RandomSeed() {
  absl::BitGen gen;
  return absl::Uniform<uint64_t>(gen);
}

absl::Status CheckLocalityConfig(const SchedulerConfig& config) {
  if (config.locality_cache_entries == 0 ||
      config.locality_cache_entries > internal::kLruHashMapMaxCapacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        Name(config.kind), ": locality cache of ",
        config.locality_cache_entries, " entries is out of range 1..",
        internal::kLruHashMapMaxCapacity));
  }
  if (config.lblc_expiration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(config.kind), ": lblc_expiration ",
                     absl::FormatDuration(config.lblc_expiration),
                     " must be positive (IPVS's default is 24h)"));
  }
  if (config.kind == SchedulerKind::kLblcr &&
      config.lblcr_expiration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lblcr: lblcr_expiration ",
                     absl::FormatDuration(config.lblcr_expiration),
                     " must be positive (e.g. 6m)"));
  }
  return absl::OkStatus();
}

}  // namespace

// --- IpvsScheduler ---

absl::Status IpvsScheduler::Reset(std::span<const SchedBackend> backends) {
  RETURN_IF_ERROR(CheckCanonical(kind_, backends));
  std::vector<Endpoint> old = std::move(endpoints_);
  endpoints_.clear();
  endpoints_.reserve(backends.size());
  for (const SchedBackend& b : backends) endpoints_.push_back(b.endpoint);
  Adopt(old, backends);
  return absl::OkStatus();
}

int IpvsScheduler::IndexOf(const Endpoint& endpoint) const {
  auto it = std::lower_bound(endpoints_.begin(), endpoints_.end(), endpoint);
  if (it == endpoints_.end() || *it != endpoint) return kNoBackend;
  return static_cast<int>(it - endpoints_.begin());
}

// --- rr ---

absl::StatusOr<std::unique_ptr<RoundRobinScheduler>>
RoundRobinScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<RoundRobinScheduler> s(new RoundRobinScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

void RoundRobinScheduler::Adopt(std::span<const Endpoint> old,
                                std::span<const SchedBackend> backends) {
  if (last_ < 0 || static_cast<size_t>(last_) >= old.size()) {
    last_ = -1;
    return;
  }
  const Endpoint& previous = old[last_];
  const auto it = std::lower_bound(
      backends.begin(), backends.end(), previous,
      [](const SchedBackend& b, const Endpoint& e) { return b.endpoint < e; });
  const int index = static_cast<int>(it - backends.begin());
  // Still there: continue after it. Removed: continue after its predecessor,
  // i.e. with the first backend after it.
  last_ =
      (it != backends.end() && it->endpoint == previous) ? index : index - 1;
}

int RoundRobinScheduler::Pick(const FlowKey&,
                              std::span<const SchedBackend> backends,
                              absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  const int n = static_cast<int>(backends.size());
  // From the one after the last pick round to the last pick itself.
  for (int k = 1; k <= n; ++k) {
    const int i = (last_ + k) % n;
    if (backends[i].CanTakeNewFlow()) {
      last_ = i;
      return i;
    }
  }
  return kNoBackend;
}

// --- wrr ---

absl::StatusOr<std::unique_ptr<WeightedRoundRobinScheduler>>
WeightedRoundRobinScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<WeightedRoundRobinScheduler> s(
      new WeightedRoundRobinScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

void WeightedRoundRobinScheduler::Adopt(
    std::span<const Endpoint>, std::span<const SchedBackend> backends) {
  // ip_vs_wrr_gcd_weight, ip_vs_wrr_max_weight, ip_vs_wrr_dest_changed.
  int64_t g = 0;
  int64_t max = 0;
  for (const SchedBackend& b : backends) {
    const int64_t w = b.weight;
    if (w > 0) g = g > 0 ? std::gcd(g, w) : w;
    max = std::max(max, w);
  }
  di_ = g > 0 ? g : 1;
  mw_ = max - (di_ - 1);
  if (cw_ > mw_ || cw_ <= 0) {
    cw_ = mw_;
  } else if (di_ > 1) {
    cw_ = (cw_ / di_) * di_ + 1;
  }
  last_ = -1;
}

int WeightedRoundRobinScheduler::Pick(const FlowKey&,
                                      std::span<const SchedBackend> backends,
                                      absl::Time) {
  if (!Matches(backends) || mw_ <= 0) return kNoBackend;
  const int n = static_cast<int>(backends.size());
  auto hit = [&](int i) {
    return backends[i].CanTakeNewFlow() && int64_t{backends[i].weight} >= cw_;
  };
  // ip_vs_wrr_schedule visits (position, cw) in this order: the rest of the
  // list at the current cw, then whole passes at cw - di, cw - 2di, ... back
  // to mw after the pass at the bottom; the first hit wins and the state
  // stays there.
  for (int i = last_ + 1; i < n; ++i) {
    if (hit(i)) return last_ = i;
  }
  bool skipped = false;
  const int64_t start_cw = cw_;
  for (;;) {
    cw_ -= di_;
    if (cw_ <= 0) cw_ = mw_;
    for (int i = 0; i < n; ++i) {
      if (hit(i)) return last_ = i;
    }
    // cw <= the largest usable weight, so this pass could not miss (cw keeps
    // the residue 1 mod di that ip_vs_wrr_dest_changed gives it).
    if (skipped) break;
    // A whole pass found nothing. Passes at a cw above every usable weight
    // find nothing either; IPVS runs through them (up to mw / di passes),
    // this jumps to the first cw (in the same sequence) that can hit. If
    // nothing is usable, IPVS gives up after one full cycle: so do we.
    int64_t top = 0;
    for (const SchedBackend& b : backends) {
      if (b.CanTakeNewFlow()) top = std::max<int64_t>(top, b.weight);
    }
    if (top == 0) break;
    if (cw_ - di_ <= 0) cw_ = mw_ + di_;  // the next step wraps to mw
    if (cw_ - di_ > top) {
      // Largest cw - k * di <= top, keeping cw's residue mod di.
      const int64_t k = (cw_ - di_ - top + di_ - 1) / di_;
      cw_ -= k * di_;
    }
    skipped = true;
  }
  // Nothing usable. Leave the state where ip_vs_wrr_schedule's err_over
  // leaves it: at the list head with cw = mw after a full cycle, or — when
  // the call started at the bottom cw, past the head — at the last pick
  // with cw at the bottom again.
  if (last_ == -1 || start_cw - di_ > 0) {
    last_ = -1;
    cw_ = mw_;
  } else {
    cw_ = (mw_ - 1) % di_ + 1;
  }
  return kNoBackend;
}

// --- lc, wlc, sed, nq, fo, ovf ---

absl::StatusOr<std::unique_ptr<LeastConnectionScheduler>>
LeastConnectionScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<LeastConnectionScheduler> s(new LeastConnectionScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

int LeastConnectionScheduler::Pick(const FlowKey&,
                                   std::span<const SchedBackend> backends,
                                   absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  int least = kNoBackend;
  uint64_t loh = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (!backends[i].CanTakeNewFlow()) continue;
    const uint64_t doh = backends[i].Overhead();
    if (least == kNoBackend || doh < loh) {
      least = static_cast<int>(i);
      loh = doh;
    }
  }
  return least;
}

absl::StatusOr<std::unique_ptr<WeightedLeastConnectionScheduler>>
WeightedLeastConnectionScheduler::Create(
    std::span<const SchedBackend> backends) {
  std::unique_ptr<WeightedLeastConnectionScheduler> s(
      new WeightedLeastConnectionScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

int WeightedLeastConnectionScheduler::Pick(
    const FlowKey&, std::span<const SchedBackend> backends, absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  return WeightedLeast(backends);
}

absl::StatusOr<std::unique_ptr<ShortestExpectedDelayScheduler>>
ShortestExpectedDelayScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<ShortestExpectedDelayScheduler> s(
      new ShortestExpectedDelayScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

int ShortestExpectedDelayScheduler::Pick(const FlowKey&,
                                         std::span<const SchedBackend> backends,
                                         absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  return ShortestExpected(backends);
}

absl::StatusOr<std::unique_ptr<NeverQueueScheduler>>
NeverQueueScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<NeverQueueScheduler> s(new NeverQueueScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

int NeverQueueScheduler::Pick(const FlowKey&,
                              std::span<const SchedBackend> backends,
                              absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  // ip_vs_nq_schedule: one pass; an idle usable backend ends it.
  int least = kNoBackend;
  uint64_t loh = 0;
  uint32_t lw = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    const SchedBackend& b = backends[i];
    if (!b.CanTakeNewFlow()) continue;
    if (b.active == 0) return static_cast<int>(i);
    const uint64_t doh = uint64_t{b.active} + 1;
    if (least == kNoBackend || Wide{loh} * b.weight > Wide{doh} * lw) {
      least = static_cast<int>(i);
      loh = doh;
      lw = b.weight;
    }
  }
  return least;
}

absl::StatusOr<std::unique_ptr<WeightedFailoverScheduler>>
WeightedFailoverScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<WeightedFailoverScheduler> s(new WeightedFailoverScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

int WeightedFailoverScheduler::Pick(const FlowKey&,
                                    std::span<const SchedBackend> backends,
                                    absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  int best = kNoBackend;
  uint32_t hw = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].CanTakeNewFlow() && backends[i].weight > hw) {
      best = static_cast<int>(i);
      hw = backends[i].weight;
    }
  }
  return best;
}

absl::StatusOr<std::unique_ptr<OverflowScheduler>> OverflowScheduler::Create(
    std::span<const SchedBackend> backends) {
  std::unique_ptr<OverflowScheduler> s(new OverflowScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

int OverflowScheduler::Pick(const FlowKey&,
                            std::span<const SchedBackend> backends,
                            absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  int best = kNoBackend;
  uint32_t hw = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    const SchedBackend& b = backends[i];
    if (!b.CanTakeNewFlow() || b.active > b.weight) continue;
    if (best == kNoBackend || b.weight > hw) {
      best = static_cast<int>(i);
      hw = b.weight;
    }
  }
  return best;
}

// --- twos ---

TwoChoicesScheduler::TwoChoicesScheduler(uint64_t seed)
    : IpvsScheduler(SchedulerKind::kTwos), state_(Mix64(seed ^ 0x74776f73)) {}

absl::StatusOr<std::unique_ptr<TwoChoicesScheduler>>
TwoChoicesScheduler::Create(const SchedulerConfig& config,
                            std::span<const SchedBackend> backends) {
  std::unique_ptr<TwoChoicesScheduler> s(new TwoChoicesScheduler(config.seed));
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

uint64_t TwoChoicesScheduler::NextRandom() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix64(state_);
}

int TwoChoicesScheduler::Pick(const FlowKey&,
                              std::span<const SchedBackend> backends,
                              absl::Time) {
  if (!Matches(backends)) return kNoBackend;
  uint64_t total = 0;
  for (const SchedBackend& b : backends) {
    if (b.CanTakeNewFlow()) total += b.weight;
  }
  if (total == 0) return kNoBackend;
  // [0, total] inclusive, as IPVS's prandom_u32() % (total_weight + 1).
  const uint64_t r1 = NextRandom() % (total + 1);
  const uint64_t r2 = NextRandom() % (total + 1);
  int c1 = kNoBackend;
  int c2 = kNoBackend;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (!backends[i].CanTakeNewFlow()) continue;
    cumulative += backends[i].weight;
    if (c1 == kNoBackend && r1 <= cumulative) c1 = static_cast<int>(i);
    if (c2 == kNoBackend && r2 <= cumulative) c2 = static_cast<int>(i);
    if (c1 != kNoBackend && c2 != kNoBackend) break;
  }
  const SchedBackend& b1 = backends[c1];
  const SchedBackend& b2 = backends[c2];
  if (Wide{b2.weight} * b1.Overhead() > Wide{b1.weight} * b2.Overhead()) {
    return c2;
  }
  return c1;
}

// --- dh, sh ---

int DhBucket(const IpAddress& address) {
  return HashTo8Bits(FoldAddress(address.bytes().data(), address.is_v4()));
}

int ShBucket(const IpAddress& address, uint16_t port) {
  return HashTo8Bits(uint32_t{port} +
                     FoldAddress(address.bytes().data(), address.is_v4()));
}

absl::StatusOr<std::unique_ptr<DestinationHashScheduler>>
DestinationHashScheduler::Create(std::span<const SchedBackend> backends) {
  std::unique_ptr<DestinationHashScheduler> s(new DestinationHashScheduler());
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

void DestinationHashScheduler::Adopt(std::span<const Endpoint>,
                                     std::span<const SchedBackend> backends) {
  // ip_vs_dh_reassign: bucket i to backend i mod n.
  const size_t n = backends.size();
  for (int i = 0; i < kTableSize; ++i) {
    table_[i] = n == 0 ? kNoBackend : static_cast<int32_t>(i % n);
  }
}

int DestinationHashScheduler::Pick(const FlowKey& flow,
                                   std::span<const SchedBackend> backends,
                                   absl::Time) {
  if (!Matches(backends) || backends.empty()) return kNoBackend;
  const int bucket = HashTo8Bits(FoldAddress(flow.dst.data(), flow.is_v4()));
  for (int k = 0; k < kTableSize; ++k) {
    const int d = table_[(bucket + k) & (kTableSize - 1)];
    if (!backends[d].available) continue;  // unreachable from this node only
    return backends[d].CanTakeNewFlow() ? d : kNoBackend;
  }
  return kNoBackend;
}

absl::StatusOr<std::unique_ptr<SourceHashScheduler>>
SourceHashScheduler::Create(const SchedulerConfig& config,
                            std::span<const SchedBackend> backends) {
  std::unique_ptr<SourceHashScheduler> s(
      new SourceHashScheduler(config.fallback, config.port));
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

void SourceHashScheduler::Adopt(std::span<const Endpoint>,
                                std::span<const SchedBackend> backends) {
  // ip_vs_sh_reassign: each backend in turn for `weight` buckets (at least
  // one), cycling through the list until the table is full.
  const size_t n = backends.size();
  size_t d = 0;
  uint64_t count = 0;
  for (int i = 0; i < kTableSize; ++i) {
    if (n == 0) {
      table_[i] = kNoBackend;
      continue;
    }
    table_[i] = static_cast<int32_t>(d);
    if (++count >= backends[d].weight) {
      d = (d + 1) % n;
      count = 0;
    }
  }
}

int SourceHashScheduler::Pick(const FlowKey& flow,
                              std::span<const SchedBackend> backends,
                              absl::Time) {
  if (!Matches(backends) || backends.empty()) return kNoBackend;
  uint16_t port = 0;
  if (port_ && (flow.protocol == kProtoTcp || flow.protocol == kProtoUdp ||
                flow.protocol == kProtoSctp)) {
    port = flow.src_port;
  }
  const int first =
      HashTo8Bits(uint32_t{port} + FoldAddress(flow.src.data(), flow.is_v4()));
  int d = table_[first];
  // ip_vs_sh_get_fallback's walk: offset k = 0..255 gives bucket
  // (k + first) mod 256 + first, i.e. (2 * first + k) mod 256.
  auto walk = [&](auto accept) {
    for (int k = 0; k < kTableSize; ++k) {
      const int c = table_[(2 * first + k) & (kTableSize - 1)];
      if (accept(backends[c])) return c;
    }
    return kNoBackend;
  };
  if (fallback_) {
    if (backends[d].CanTakeNewFlow()) return d;
    return walk([](const SchedBackend& b) { return b.CanTakeNewFlow(); });
  }
  if (!backends[d].available) {
    d = walk([](const SchedBackend& b) { return b.available; });
    if (d == kNoBackend) return kNoBackend;
  }
  return backends[d].CanTakeNewFlow() ? d : kNoBackend;
}

// --- lblc ---

uint64_t LblcScheduler::KeyHasher::operator()(const IpAddress& address,
                                              uint64_t seed) const {
  return HashAddress(address, seed);
}

absl::StatusOr<std::unique_ptr<LblcScheduler>> LblcScheduler::Create(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  SchedulerConfig checked = config;
  checked.kind = SchedulerKind::kLblc;
  RETURN_IF_ERROR(CheckLocalityConfig(checked));
  std::unique_ptr<LblcScheduler> s(new LblcScheduler(config));
  RETURN_IF_ERROR(s->cache_.Init(config.locality_cache_entries, RandomSeed()));
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

void LblcScheduler::Adopt(std::span<const Endpoint> old,
                          std::span<const SchedBackend>) {
  cache_.ForEach([&](uint32_t e) {
    Entry& entry = cache_.value(e);
    const int moved =
        entry.backend >= 0 && static_cast<size_t>(entry.backend) < old.size()
            ? IndexOf(old[entry.backend])
            : kNoBackend;
    if (moved == kNoBackend) {
      cache_.Erase(e);
    } else {
      entry.backend = moved;
    }
  });
}

std::optional<Endpoint> LblcScheduler::CachedBackend(
    const IpAddress& destination) const {
  const uint32_t e = cache_.Find(destination);
  if (e == cache_.kNone) return std::nullopt;
  return endpoint_at(cache_.value(e).backend);
}

int LblcScheduler::Pick(const FlowKey& flow,
                        std::span<const SchedBackend> backends,
                        absl::Time now) {
  if (!Matches(backends)) return kNoBackend;
  const IpAddress destination = flow.dst_address();
  uint32_t e = cache_.Find(destination);
  if (e != cache_.kNone && now - cache_.value(e).last_use >= expiration_) {
    cache_.Erase(e);
    ++stats_.expired;
    e = cache_.kNone;
  }
  if (e != cache_.kNone) {
    Entry& entry = cache_.value(e);
    entry.last_use = now;
    cache_.Touch(e);
    const int d = entry.backend;
    const SchedBackend& b = backends[d];
    if (b.weight > 0 && b.available && !LblcOverloaded(backends, d)) {
      ++stats_.hits;
      return d;
    }
    const int chosen = WeightedLeast(backends);
    if (chosen == kNoBackend) return kNoBackend;
    ++stats_.reschedules;
    entry.backend = chosen;
    return chosen;
  }
  const int chosen = WeightedLeast(backends);
  if (chosen == kNoBackend) return kNoBackend;
  ++stats_.misses;
  if (cache_.full()) {
    const uint32_t oldest = cache_.Oldest();
    if (now - cache_.value(oldest).last_use >= expiration_) {
      ++stats_.expired;
    } else {
      ++stats_.evictions;
    }
    cache_.Erase(oldest);
  }
  e = cache_.Insert(destination);
  cache_.value(e) = Entry{chosen, now};
  return chosen;
}

// --- lblcr ---

uint64_t LblcrScheduler::KeyHasher::operator()(const IpAddress& address,
                                               uint64_t seed) const {
  return HashAddress(address, seed);
}

absl::StatusOr<std::unique_ptr<LblcrScheduler>> LblcrScheduler::Create(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  SchedulerConfig checked = config;
  checked.kind = SchedulerKind::kLblcr;
  RETURN_IF_ERROR(CheckLocalityConfig(checked));
  std::unique_ptr<LblcrScheduler> s(new LblcrScheduler(config));
  RETURN_IF_ERROR(s->cache_.Init(config.locality_cache_entries, RandomSeed()));
  RETURN_IF_ERROR(s->Reset(backends));
  return s;
}

void LblcrScheduler::Adopt(std::span<const Endpoint> old,
                           std::span<const SchedBackend>) {
  cache_.ForEach([&](uint32_t e) {
    Entry& entry = cache_.value(e);
    int32_t kept = 0;
    for (int32_t i = 0; i < entry.count; ++i) {
      const int32_t m = entry.members[i];
      const int moved = m >= 0 && static_cast<size_t>(m) < old.size()
                            ? IndexOf(old[m])
                            : kNoBackend;
      if (moved != kNoBackend) entry.members[kept++] = moved;
    }
    entry.count = kept;
    if (kept == 0) cache_.Erase(e);
  });
}

std::vector<Endpoint> LblcrScheduler::CachedSet(
    const IpAddress& destination) const {
  std::vector<Endpoint> set;
  const uint32_t e = cache_.Find(destination);
  if (e == cache_.kNone) return set;
  const Entry& entry = cache_.value(e);
  for (int32_t i = entry.count - 1; i >= 0; --i) {
    set.push_back(endpoint_at(entry.members[i]));
  }
  return set;
}

int LblcrScheduler::Pick(const FlowKey& flow,
                         std::span<const SchedBackend> backends,
                         absl::Time now) {
  if (!Matches(backends)) return kNoBackend;
  const IpAddress destination = flow.dst_address();
  uint32_t e = cache_.Find(destination);
  if (e != cache_.kNone && now - cache_.value(e).last_use >= expiration_) {
    cache_.Erase(e);
    ++stats_.expired;
    e = cache_.kNone;
  }
  if (e == cache_.kNone) {
    const int chosen = WeightedLeast(backends);
    if (chosen == kNoBackend) return kNoBackend;
    ++stats_.misses;
    if (cache_.full()) {
      const uint32_t oldest = cache_.Oldest();
      if (now - cache_.value(oldest).last_use >= expiration_) {
        ++stats_.expired;
      } else {
        ++stats_.evictions;
      }
      cache_.Erase(oldest);
    }
    e = cache_.Insert(destination);
    Entry& entry = cache_.value(e);
    entry.members[0] = chosen;
    entry.count = 1;
    entry.last_use = now;
    entry.last_modified = now;
    return chosen;
  }

  Entry& entry = cache_.value(e);
  entry.last_use = now;
  cache_.Touch(e);

  // ip_vs_dest_set_min: newest member first; the first usable one, then any
  // usable one strictly less loaded.
  int least = kNoBackend;
  uint64_t loh = 0;
  uint32_t lw = 0;
  for (int32_t i = entry.count - 1; i >= 0; --i) {
    const SchedBackend& b = backends[entry.members[i]];
    if (!b.CanTakeNewFlow()) continue;
    const uint64_t doh = b.Overhead();
    if (least == kNoBackend || Wide{loh} * b.weight > Wide{doh} * lw) {
      least = entry.members[i];
      loh = doh;
      lw = b.weight;
    }
  }

  // ip_vs_dest_set_max: newest first, among weight > 0; the first, then any
  // strictly more loaded. Returns the position in `members`.
  auto most_loaded = [&]() {
    int most = -1;
    uint64_t moh = 0;
    uint32_t mw = 0;
    for (int32_t i = entry.count - 1; i >= 0; --i) {
      const SchedBackend& b = backends[entry.members[i]];
      if (b.weight == 0) continue;
      const uint64_t doh = b.Overhead();
      if (most < 0 || Wide{moh} * b.weight < Wide{doh} * mw) {
        most = i;
        moh = doh;
        mw = b.weight;
      }
    }
    return most;
  };
  auto remove_at = [&](int position) {
    for (int32_t i = position; i + 1 < entry.count; ++i) {
      entry.members[i] = entry.members[i + 1];
    }
    --entry.count;
  };

  if (entry.count > 1 && now > entry.last_modified + shrink_after_) {
    const int most = most_loaded();
    if (most >= 0) {
      remove_at(most);
      entry.last_modified = now;
      ++stats_.set_shrinks;
    }
  }

  if (least != kNoBackend && !LblcOverloaded(backends, least)) {
    ++stats_.hits;
    return least;
  }

  const int chosen = WeightedLeast(backends);
  if (chosen == kNoBackend) return kNoBackend;
  ++stats_.reschedules;
  // ip_vs_dest_set_insert(check = true): join the set unless a member.
  for (int32_t i = 0; i < entry.count; ++i) {
    if (entry.members[i] == chosen) return chosen;
  }
  if (entry.count == kMaxSetSize) {
    const int most = most_loaded();
    remove_at(most >= 0 ? most : 0);
    ++stats_.set_overflows;
  }
  entry.members[entry.count++] = chosen;
  entry.last_modified = now;
  return chosen;
}

// --- CreateIpvsScheduler ---

absl::StatusOr<std::unique_ptr<Scheduler>> CreateIpvsScheduler(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  auto up = [](auto status_or) -> absl::StatusOr<std::unique_ptr<Scheduler>> {
    if (!status_or.ok()) return status_or.status();
    return std::unique_ptr<Scheduler>(std::move(status_or).value());
  };
  switch (config.kind) {
    case SchedulerKind::kRr:
      return up(RoundRobinScheduler::Create(backends));
    case SchedulerKind::kWrr:
      return up(WeightedRoundRobinScheduler::Create(backends));
    case SchedulerKind::kLc:
      return up(LeastConnectionScheduler::Create(backends));
    case SchedulerKind::kWlc:
      return up(WeightedLeastConnectionScheduler::Create(backends));
    case SchedulerKind::kLblc:
      return up(LblcScheduler::Create(config, backends));
    case SchedulerKind::kLblcr:
      return up(LblcrScheduler::Create(config, backends));
    case SchedulerKind::kDh:
      return up(DestinationHashScheduler::Create(backends));
    case SchedulerKind::kSh:
      return up(SourceHashScheduler::Create(config, backends));
    case SchedulerKind::kSed:
      return up(ShortestExpectedDelayScheduler::Create(backends));
    case SchedulerKind::kNq:
      return up(NeverQueueScheduler::Create(backends));
    case SchedulerKind::kFo:
      return up(WeightedFailoverScheduler::Create(backends));
    case SchedulerKind::kOvf:
      return up(OverflowScheduler::Create(backends));
    case SchedulerKind::kTwos:
      return up(TwoChoicesScheduler::Create(config, backends));
    case SchedulerKind::kMh:
      return absl::InvalidArgumentError(
          "mh is the Maglev scheduler: create it with CreateMaglevScheduler "
          "(or CreateScheduler)");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scheduler kind ", static_cast<int>(config.kind)));
}

}  // namespace anylb::scheduler
