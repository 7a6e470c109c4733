// ResolveQueue and RecentRequests: how a worker asks the control thread to
// resolve a neighbour without blocking, locking or allocating.
//
// Ownership and threading: a ResolveQueue is single-producer
// single-consumer: exactly one worker (its NextHopReader) pushes, exactly
// one control thread (KernelNextHops) pops. Its ring is allocated once, at
// construction. RecentRequests belongs to one worker.

#ifndef ANYLB_ROUTING_NETLINK_RESOLVE_QUEUE_H_
#define ANYLB_ROUTING_NETLINK_RESOLVE_QUEUE_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/hash/hash.h"
#include "common/ip_address.h"
#include "routing/netlink/tables.h"

namespace anylb::routing::netlink {

// ResolveRequest asks for the link-layer address of `address` on
// interface `ifindex`.
struct ResolveRequest {
  int ifindex = 0;
  IpAddress address;
};

// ResolveQueue is a bounded SPSC ring (Lamport's queue with cached
// indices). A push into a full queue fails and is counted in dropped().
class ResolveQueue {
 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit ResolveQueue(size_t capacity)
      : ring_(std::bit_ceil(capacity < 2 ? size_t{2} : capacity)),
        mask_(ring_.size() - 1) {}

  ResolveQueue(const ResolveQueue&) = delete;
  ResolveQueue& operator=(const ResolveQueue&) = delete;

  // TryPush (producer) appends `request`; false when full (counted).
  bool TryPush(const ResolveRequest& request) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - cached_head_ > mask_) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail - cached_head_ > mask_) {
        dropped_.store(dropped_.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
        return false;
      }
    }
    ring_[tail & mask_] = request;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // TryPop (consumer) takes the oldest request; false when empty.
  bool TryPop(ResolveRequest* request) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == cached_tail_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head == cached_tail_) return false;
    }
    *request = ring_[head & mask_];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  size_t capacity() const { return ring_.size(); }

  // dropped counts pushes refused because the queue was full (any thread).
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  // Close (producer) says no more pushes will come: the consumer may
  // forget the queue once it has drained it.
  void Close() { closed_.store(true, std::memory_order_release); }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

 private:
  std::vector<ResolveRequest> ring_;
  const size_t mask_;
  // Producer side and consumer side on separate cache lines.
  alignas(64) std::atomic<uint64_t> tail_{0};
  uint64_t cached_head_ = 0;
  std::atomic<uint64_t> dropped_{0};
  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t cached_tail_ = 0;
  std::atomic<bool> closed_{false};
};

// RecentRequests remembers which neighbours a worker asked for lately, so
// that a flood of packets towards one unresolved address asks once per
// `interval`, not once per packet. Direct-mapped: a colliding address
// evicts the previous one (which may then be asked for again early —
// harmless, the kernel ignores a repeated NTF_USE on an entry it is
// already resolving).
class RecentRequests {
 public:
  static constexpr size_t kSlots = 256;

  explicit RecentRequests(int64_t interval_ns) : interval_ns_(interval_ns) {}

  // ShouldRequest returns true (and records the time) when `key` was not
  // asked for within the interval before `now_ns`.
  bool ShouldRequest(const NeighborKey& key, int64_t now_ns) {
    Slot& slot = slots_[absl::Hash<NeighborKey>()(key) % kSlots];
    if (slot.valid && slot.key == key && now_ns - slot.when_ns < interval_ns_) {
      return false;
    }
    slot.valid = true;
    slot.key = key;
    slot.when_ns = now_ns;
    return true;
  }

 private:
  struct Slot {
    NeighborKey key;
    int64_t when_ns = 0;
    bool valid = false;
  };
  int64_t interval_ns_;
  Slot slots_[kSlots];
};

}  // namespace anylb::routing::netlink

#endif  // ANYLB_ROUTING_NETLINK_RESOLVE_QUEUE_H_
