// LruHashMap: a fixed-capacity hash map with least-recently-used order, for
// the per-worker caches of the scheduler package (lblc/lblcr locality caches,
// persistence templates). Private to lbnode/scheduler.

#ifndef ANYLB_LBNODE_SCHEDULER_INTERNAL_LRU_HASH_MAP_H_
#define ANYLB_LBNODE_SCHEDULER_INTERNAL_LRU_HASH_MAP_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace anylb::scheduler::internal {

// kLruHashMapMaxCapacity bounds LruHashMap::Init(): 2^24 entries.
inline constexpr uint32_t kLruHashMapMaxCapacity = uint32_t{1} << 24;

// LruHashMap maps Key to Value in `capacity` entries allocated once, by
// Init(), on the control path. Find, Touch, Insert and Erase never allocate,
// lock or throw: they are for the packet path.
//
// Entries are named by a stable index (uint32_t, kNone for "none") that
// stays valid until the entry is erased. The map keeps the entries in
// recency order: Insert() and Touch() make an entry the newest; Oldest() is
// the least recently used one. The map itself never evicts: a full map
// refuses nothing but requires the caller to Erase() (typically Oldest())
// before Insert(), so the caller decides and counts why an entry went.
//
// Index: open addressing with linear probing over a power-of-two slot array
// at most half full, with backward-shift deletion (no tombstones, so probe
// lengths do not grow as entries come and go). `Hasher` is a callable
// `uint64_t(const Key&, uint64_t seed)`; the seed should be secret per map
// when keys come from packets, so that clients cannot aim their addresses at
// one probe chain.
//
// Ownership and threading: owned and used by one thread.
template <typename Key, typename Value, typename Hasher>
class LruHashMap {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  static constexpr uint32_t kMaxCapacity = kLruHashMapMaxCapacity;

  // Init allocates `capacity` entries (1..kMaxCapacity) and empties the map.
  absl::Status Init(uint32_t capacity, uint64_t seed) {
    if (capacity == 0 || capacity > kMaxCapacity) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cache capacity ", capacity, " is out of range 1..", kMaxCapacity));
    }
    seed_ = seed;
    nodes_.assign(capacity, Node{});
    // At most half full: short probe chains even when the map is full.
    const uint32_t slots = std::max<uint32_t>(
        4, static_cast<uint32_t>(std::bit_ceil(uint64_t{capacity} * 2)));
    slots_.assign(slots, kNone);
    mask_ = slots - 1;
    Clear();
    return absl::OkStatus();
  }

  // Clear erases every entry (keeps the allocation).
  void Clear() {
    for (uint32_t& s : slots_) s = kNone;
    for (uint32_t i = 0; i < nodes_.size(); ++i) {
      nodes_[i] = Node{};
      nodes_[i].next = i + 1 < nodes_.size() ? i + 1 : kNone;
    }
    free_ = nodes_.empty() ? kNone : 0;
    newest_ = oldest_ = kNone;
    size_ = 0;
  }

  uint32_t capacity() const { return static_cast<uint32_t>(nodes_.size()); }
  uint32_t size() const { return size_; }
  bool full() const { return size_ == nodes_.size(); }

  // Find returns the entry of `key`, or kNone. It does not change the
  // recency order.
  uint32_t Find(const Key& key) const {
    if (size_ == 0) return kNone;
    const uint64_t hash = Hasher{}(key, seed_);
    for (uint32_t s = static_cast<uint32_t>(hash) & mask_;;
         s = (s + 1) & mask_) {
      const uint32_t e = slots_[s];
      if (e == kNone) return kNone;
      if (nodes_[e].hash == hash && nodes_[e].key == key) return e;
    }
  }

  // Insert adds `key`, which must not be present, as the newest entry with a
  // value-initialised Value, and returns it. The map must not be full
  // (Erase() first); if it is, Insert returns kNone and changes nothing.
  uint32_t Insert(const Key& key) {
    if (free_ == kNone) return kNone;
    const uint32_t e = free_;
    Node& node = nodes_[e];
    free_ = node.next;
    node.key = key;
    node.value = Value{};
    node.hash = Hasher{}(key, seed_);
    uint32_t s = static_cast<uint32_t>(node.hash) & mask_;
    while (slots_[s] != kNone) s = (s + 1) & mask_;
    slots_[s] = e;
    LinkNewest(e);
    ++size_;
    return e;
  }

  // Erase removes entry `e` (from Find, Insert or Oldest).
  void Erase(uint32_t e) {
    Node& node = nodes_[e];
    uint32_t s = static_cast<uint32_t>(node.hash) & mask_;
    while (slots_[s] != e) s = (s + 1) & mask_;
    // Backward-shift deletion (Knuth, TAOCP vol. 3, 6.4 Algorithm R): pull
    // later members of the probe chain into the hole when their home slot
    // does not lie cyclically between the hole and their position.
    uint32_t hole = s;
    for (uint32_t j = (hole + 1) & mask_; slots_[j] != kNone;
         j = (j + 1) & mask_) {
      const uint32_t home =
          static_cast<uint32_t>(nodes_[slots_[j]].hash) & mask_;
      const bool stays =
          hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = kNone;
    Unlink(e);
    node = Node{};
    node.next = free_;
    free_ = e;
    --size_;
  }

  // Touch makes entry `e` the newest.
  void Touch(uint32_t e) {
    if (newest_ == e) return;
    Unlink(e);
    LinkNewest(e);
  }

  // Oldest returns the least recently used entry, or kNone when empty.
  uint32_t Oldest() const { return oldest_; }

  // Newer returns the entry used just after `e`, or kNone: walks from
  // Oldest() towards the newest.
  uint32_t Newer(uint32_t e) const { return nodes_[e].prev; }

  const Key& key(uint32_t e) const { return nodes_[e].key; }
  Value& value(uint32_t e) { return nodes_[e].value; }
  const Value& value(uint32_t e) const { return nodes_[e].value; }

  // ForEach calls fn(entry) for every entry, oldest first. `fn` may erase
  // the entry it is given (control path: remapping after a Reset).
  template <typename Fn>
  void ForEach(Fn fn) {
    for (uint32_t e = oldest_; e != kNone;) {
      const uint32_t newer = nodes_[e].prev;
      fn(e);
      e = newer;
    }
  }

 private:
  // Recency list: `prev` points towards the newest, `next` towards the
  // oldest. A free node uses `next` for the free list.
  struct Node {
    Key key{};
    Value value{};
    uint64_t hash = 0;
    uint32_t prev = kNone;
    uint32_t next = kNone;
  };

  void LinkNewest(uint32_t e) {
    nodes_[e].prev = kNone;
    nodes_[e].next = newest_;
    if (newest_ != kNone) nodes_[newest_].prev = e;
    newest_ = e;
    if (oldest_ == kNone) oldest_ = e;
  }

  void Unlink(uint32_t e) {
    Node& node = nodes_[e];
    if (node.prev != kNone) {
      nodes_[node.prev].next = node.next;
    } else {
      newest_ = node.next;
    }
    if (node.next != kNone) {
      nodes_[node.next].prev = node.prev;
    } else {
      oldest_ = node.prev;
    }
    node.prev = node.next = kNone;
  }

  uint64_t seed_ = 0;
  std::vector<Node> nodes_;
  std::vector<uint32_t> slots_;
  uint32_t mask_ = 0;
  uint32_t free_ = kNone;
  uint32_t newest_ = kNone;
  uint32_t oldest_ = kNone;
  uint32_t size_ = 0;
};

}  // namespace anylb::scheduler::internal

#endif  // ANYLB_LBNODE_SCHEDULER_INTERNAL_LRU_HASH_MAP_H_
