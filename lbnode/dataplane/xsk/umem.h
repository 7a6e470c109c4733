// Umem: one AF_XDP UMEM (the frame area shared with the kernel), its fill
// and completion rings (through libxdp's xsk_umem__create), and the stack of
// frames that user space holds free.
//
// Frames are fixed-size chunks in aligned mode (frame_size a power of two):
// a frame is named by its chunk's base address, and any address inside a
// chunk maps back to it with ChunkBase(). The kernel writes a received
// packet at chunk base + frame_headroom + XDP_PACKET_HEADROOM (256), so
// every received frame has at least 256 bytes of headroom in its chunk:
// room for the engine's TUN headers (outer IPv6 40 + UDP 8 + GUE 4, with
// the Ethernet header and an 802.1Q tag rewritten in front), without
// copying.
//
// Ownership and threading: a Umem belongs to one worker and is used only by
// that worker's thread once it runs (no locks). The sockets bound to it
// (XskSocket) must be destroyed first. Free-stack operations never allocate.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_UMEM_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_UMEM_H_

#include <xdp/xsk.h>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace anylb::dataplane::xsk {

// UmemOptions size a UMEM. Ring sizes are powers of two.
struct UmemOptions {
  uint32_t frame_count = 4096;
  // 2048 or 4096 (aligned chunks; the largest frame is frame_size minus
  // frame_headroom minus 256).
  uint32_t frame_size = 2048;
  // Extra headroom the kernel leaves in front of each received frame, on
  // top of XDP_PACKET_HEADROOM.
  uint32_t frame_headroom = 0;
  uint32_t fill_ring_size = 2048;
  uint32_t completion_ring_size = 2048;
};

// Umem: see the file comment.
class Umem {
 public:
  // Create maps the frame area and registers it with the kernel. Every
  // frame starts on the free stack. Needs CAP_NET_RAW.
  static absl::StatusOr<std::unique_ptr<Umem>> Create(
      const UmemOptions& options);

  Umem(const Umem&) = delete;
  Umem& operator=(const Umem&) = delete;
  ~Umem();

  xsk_umem* handle() { return umem_; }
  // The fill and completion rings of the first socket bound to this UMEM.
  xsk_ring_prod* fill() { return &fill_; }
  xsk_ring_cons* completion() { return &completion_; }

  uint32_t frame_size() const { return frame_size_; }
  uint32_t frame_count() const { return frame_count_; }

  // ChunkBase maps any address inside a chunk to the chunk's base.
  uint64_t ChunkBase(uint64_t addr) const {
    return addr & ~static_cast<uint64_t>(frame_size_ - 1);
  }
  // Chunk returns the whole chunk holding `addr`.
  std::span<uint8_t> Chunk(uint64_t addr) {
    return {area_ + ChunkBase(addr), frame_size_};
  }
  // Data returns the byte at `addr`.
  uint8_t* Data(uint64_t addr) { return area_ + addr; }

  // The free stack. PopFree needs free_count() > 0; PushFree takes any
  // address inside a chunk.
  uint32_t free_count() const { return free_top_; }
  uint64_t PopFree() {
    assert(free_top_ > 0);
    return free_[--free_top_];
  }
  void PushFree(uint64_t addr) {
    assert(free_top_ < frame_count_);
    free_[free_top_++] = ChunkBase(addr);
  }

 private:
  friend class XskSocket;  // Counts the sockets bound here.
  Umem(uint8_t* area, size_t area_size, const UmemOptions& options);

  uint8_t* area_;
  size_t area_size_;
  uint32_t frame_size_;
  uint32_t frame_count_;
  xsk_umem* umem_ = nullptr;
  xsk_ring_prod fill_ = {};
  xsk_ring_cons completion_ = {};
  std::vector<uint64_t> free_;
  uint32_t free_top_ = 0;
  uint32_t sockets_ = 0;
};

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_UMEM_H_
