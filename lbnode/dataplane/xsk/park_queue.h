// ParkQueue: a bounded FIFO of frames waiting for a next hop's link-layer
// address (the engine's kDrop with DropReason::kNoNeighbor, which leaves
// the frame's bytes unchanged so it can be processed again later).
//
// Fixed capacity, allocated once at construction; Push/Pop never allocate.
// Owned and used by one worker thread.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_PARK_QUEUE_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_PARK_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace anylb::dataplane::xsk {

// ParkedFrame is one waiting frame: its UMEM address (the frame's first
// byte), length, and when it was first parked.
struct ParkedFrame {
  uint64_t addr = 0;
  uint32_t length = 0;
  absl::Time parked_at;
};

// ParkQueue: see the file comment.
class ParkQueue {
 public:
  explicit ParkQueue(size_t capacity) : slots_(capacity) {}

  size_t capacity() const { return slots_.size(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == slots_.size(); }

  // Push appends `frame`; false (and nothing stored) when full.
  bool Push(const ParkedFrame& frame) {
    if (full()) return false;
    slots_[(head_ + size_) % slots_.size()] = frame;
    ++size_;
    return true;
  }

  // Pop removes the oldest frame into `*frame`; false when empty.
  bool Pop(ParkedFrame* frame) {
    if (size_ == 0) return false;
    *frame = slots_[head_];
    head_ = (head_ + 1) % slots_.size();
    --size_;
    return true;
  }

 private:
  std::vector<ParkedFrame> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_PARK_QUEUE_H_
