#include "lbnode/dataplane/xsk/umem.h"

#include <sys/mman.h>

#include <bit>
#include <cerrno>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lbnode/dataplane/xsk/errno_status.h"

namespace anylb::dataplane::xsk {

absl::StatusOr<std::unique_ptr<Umem>> Umem::Create(const UmemOptions& options) {
  if (options.frame_size != 2048 && options.frame_size != 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("UMEM frame size ", options.frame_size,
                     " is not supported: use 2048 or 4096"));
  }
  if (options.frame_headroom + XDP_PACKET_HEADROOM + 1518 >
      options.frame_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UMEM frame headroom ", options.frame_headroom, " leaves less than ",
        "1518 bytes for a frame in ", options.frame_size, "-byte chunks"));
  }
  if (options.frame_count == 0 ||
      !std::has_single_bit(options.fill_ring_size) ||
      !std::has_single_bit(options.completion_ring_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UMEM needs frames (got ", options.frame_count,
        ") and power-of-two fill/completion ring sizes (got ",
        options.fill_ring_size, "/", options.completion_ring_size, ")"));
  }
  size_t size = size_t{options.frame_count} * options.frame_size;
  void* area = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (area == MAP_FAILED) {
    return ErrnoStatus(errno, absl::StrCat("mapping a ", size, "-byte UMEM"));
  }
  std::unique_ptr<Umem> umem(
      new Umem(static_cast<uint8_t*>(area), size, options));
  xsk_umem_config config = {};
  config.fill_size = options.fill_ring_size;
  config.comp_size = options.completion_ring_size;
  config.frame_size = options.frame_size;
  config.frame_headroom = options.frame_headroom;
  config.flags = 0;
  int err = xsk_umem__create(&umem->umem_, area, size, &umem->fill_,
                             &umem->completion_, &config);
  if (err != 0) {
    umem->umem_ = nullptr;
    return ErrnoStatus(err, absl::StrCat("registering a UMEM of ",
                                         options.frame_count, " frames"));
  }
  return umem;
}

Umem::Umem(uint8_t* area, size_t area_size, const UmemOptions& options)
    : area_(area),
      area_size_(area_size),
      frame_size_(options.frame_size),
      frame_count_(options.frame_count),
      free_(options.frame_count) {
  // Lowest addresses on top: the first frames used are the first chunks.
  for (uint32_t i = frame_count_; i > 0; --i) {
    free_[free_top_++] = uint64_t{i - 1} * frame_size_;
  }
}

Umem::~Umem() {
  if (umem_ != nullptr) {
    int err = xsk_umem__delete(umem_);
    if (err != 0) {
      std::fprintf(
          stderr, "xsk: deleting a UMEM: %s\n",
          std::string(ErrnoStatus(err, "xsk_umem__delete").message()).c_str());
    }
  }
  munmap(area_, area_size_);
}

}  // namespace anylb::dataplane::xsk
