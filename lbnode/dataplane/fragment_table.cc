#include "lbnode/dataplane/fragment_table.h"

#include <algorithm>
#include <bit>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::dataplane {

absl::StatusOr<std::unique_ptr<FragmentTable>> FragmentTable::Create(
    const FragmentTableOptions& options) {
  if (options.capacity < 1 || options.capacity > kMaxCapacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("fragment table capacity ", options.capacity,
                     " is out of range 1..", kMaxCapacity));
  }
  if (options.lifetime < absl::Milliseconds(1) ||
      options.lifetime > absl::Seconds(60)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fragment lifetime ", absl::FormatDuration(options.lifetime),
        " is out of range 1ms..60s"));
  }
  const size_t entries = std::bit_ceil(std::max(options.capacity, kWays));
  uint64_t seed;
  if (options.seed.has_value()) {
    seed = *options.seed;
  } else {
    std::random_device rd;
    seed = uint64_t{rd()} << 32 | rd();
  }
  return std::unique_ptr<FragmentTable>(new FragmentTable(
      entries / kWays, absl::ToInt64Microseconds(options.lifetime), seed));
}

FragmentTable::FragmentTable(size_t buckets, int64_t lifetime_us, uint64_t seed)
    : buckets_storage_(new Bucket[buckets]()),
      buckets_(buckets_storage_.get(), buckets),
      lifetime_us_(lifetime_us),
      seed_(seed) {}

FragmentTable::Bucket& FragmentTable::BucketOf(const FragmentKey& key) {
  const uint64_t h = scheduler::Hash64(
      {reinterpret_cast<const uint8_t*>(&key), sizeof(key)}, seed_);
  return buckets_[h & (buckets_.size() - 1)];
}

void FragmentTable::Insert(const FragmentKey& key,
                           const FragmentRewrite& rewrite, int64_t now_us) {
  Bucket& bucket = BucketOf(key);
  ++counters_.inserts;
  Entry* victim = &bucket.ways[0];
  for (Entry& e : bucket.ways) {
    if (e.expires_us != 0 && e.key == key) {
      victim = &e;  // The same datagram's first fragment again.
      break;
    }
    if (e.expires_us < victim->expires_us) victim = &e;
  }
  if (victim->expires_us > now_us && !(victim->key == key)) {
    ++counters_.evictions;
  }
  victim->key = key;
  victim->rewrite = rewrite;
  victim->expires_us = now_us + lifetime_us_;
}

const FragmentRewrite* FragmentTable::Lookup(const FragmentKey& key,
                                             int64_t now_us) {
  Bucket& bucket = BucketOf(key);
  for (Entry& e : bucket.ways) {
    if (e.expires_us == 0 || !(e.key == key)) continue;
    if (e.expires_us <= now_us) {
      e.expires_us = 0;  // Free the way for the next Insert.
      ++counters_.misses;
      ++counters_.expired;
      return nullptr;
    }
    ++counters_.hits;
    return &e.rewrite;
  }
  ++counters_.misses;
  return nullptr;
}

size_t FragmentTable::LiveCount(int64_t now_us) const {
  size_t n = 0;
  for (const Bucket& b : buckets_) {
    for (const Entry& e : b.ways) n += e.expires_us > now_us ? 1 : 0;
  }
  return n;
}

}  // namespace anylb::dataplane
