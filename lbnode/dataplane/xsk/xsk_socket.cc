#include "lbnode/dataplane/xsk/xsk_socket.h"

#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/xsk/errno_status.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

namespace anylb::dataplane::xsk {
namespace {

std::string Where(const XskSocketOptions& options) {
  return absl::StrCat("\"", options.interface, "\" queue ", options.queue);
}

}  // namespace

const char* XskModeName(XskMode mode) {
  switch (mode) {
    case XskMode::kAuto:
      return "auto";
    case XskMode::kCopy:
      return "copy";
    case XskMode::kZeroCopy:
      return "zero-copy";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<XskSocket>> XskSocket::Create(
    Umem& umem, const XskSocketOptions& options) {
  int bind_errno = 0;
  return Bind(umem, options, &bind_errno);
}

absl::StatusOr<std::unique_ptr<XskSocket>> XskSocket::Bind(
    Umem& umem, const XskSocketOptions& options, int* bind_errno) {
  *bind_errno = 0;
  if (options.rx_ring_size == 0 && options.tx_ring_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AF_XDP socket on ", Where(options), " needs an RX or a TX ring"));
  }
  if (options.mode == XskMode::kAuto) {
    return absl::InvalidArgumentError(
        "XskSocket::Create takes copy or zero-copy; resolve auto with "
        "CreateUmemAndSocket");
  }
  if (if_nametoindex(options.interface.c_str()) == 0) {
    return absl::NotFoundError(absl::StrCat("AF_XDP socket: no interface \"",
                                            options.interface,
                                            "\" in this network namespace"));
  }
  std::unique_ptr<XskSocket> xsk(new XskSocket());
  xsk->interface_ = options.interface;
  xsk->queue_ = options.queue;
  xsk->has_rx_ = options.rx_ring_size != 0;
  xsk->has_tx_ = options.tx_ring_size != 0;

  xsk_socket_config config = {};
  config.rx_size = options.rx_ring_size;
  config.tx_size = options.tx_ring_size;
  config.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  config.xdp_flags = 0;
  config.bind_flags =
      XDP_USE_NEED_WAKEUP |
      (options.mode == XskMode::kZeroCopy ? XDP_ZEROCOPY : XDP_COPY);
  int err;
  if (umem.sockets_ == 0) {
    err = xsk_socket__create(&xsk->socket_, options.interface.c_str(),
                             options.queue, umem.handle(),
                             xsk->has_rx_ ? &xsk->rx_ : nullptr,
                             xsk->has_tx_ ? &xsk->tx_ : nullptr, &config);
    xsk->fill_ = umem.fill();
    xsk->completion_ = umem.completion();
  } else {
    err = xsk_socket__create_shared(
        &xsk->socket_, options.interface.c_str(), options.queue, umem.handle(),
        xsk->has_rx_ ? &xsk->rx_ : nullptr, xsk->has_tx_ ? &xsk->tx_ : nullptr,
        &xsk->own_fill_, &xsk->own_completion_, &config);
    xsk->fill_ = &xsk->own_fill_;
    xsk->completion_ = &xsk->own_completion_;
  }
  if (err != 0) {
    xsk->socket_ = nullptr;
    *bind_errno = err < 0 ? -err : err;
    return ErrnoStatus(
        err, absl::StrCat(
                 "binding an AF_XDP socket (",
                 umem.sockets_ == 0 ? XskModeName(options.mode) : "shared UMEM",
                 ") to ", Where(options)));
  }
  ++umem.sockets_;
  xsk->umem_sockets_ = &umem.sockets_;
  xsk->fd_ = xsk_socket__fd(xsk->socket_);

  xdp_options xdp_opts = {};
  socklen_t length = sizeof(xdp_opts);
  if (getsockopt(xsk->fd_, SOL_XDP, XDP_OPTIONS, &xdp_opts, &length) != 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("reading XDP_OPTIONS of ", Where(options)));
  }
  xsk->mode_ = (xdp_opts.flags & XDP_OPTIONS_ZEROCOPY) != 0 ? XskMode::kZeroCopy
                                                            : XskMode::kCopy;
  if (options.busy_poll) {
    int one = 1;
    int usecs = 20;
    int budget = static_cast<int>(options.busy_poll_budget);
    xsk->busy_poll_ = setsockopt(xsk->fd_, SOL_SOCKET, SO_PREFER_BUSY_POLL,
                                 &one, sizeof(one)) == 0 &&
                      setsockopt(xsk->fd_, SOL_SOCKET, SO_BUSY_POLL, &usecs,
                                 sizeof(usecs)) == 0 &&
                      setsockopt(xsk->fd_, SOL_SOCKET, SO_BUSY_POLL_BUDGET,
                                 &budget, sizeof(budget)) == 0;
  }
  return xsk;
}

XskSocket::~XskSocket() {
  if (socket_ != nullptr) {
    xsk_socket__delete(socket_);
    if (umem_sockets_ != nullptr) --*umem_sockets_;
  }
}

absl::StatusOr<XskKernelStats> XskSocket::KernelStats() const {
  xdp_statistics raw = {};
  socklen_t length = sizeof(raw);
  if (getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &raw, &length) != 0) {
    return ErrnoStatus(errno, absl::StrCat("reading XDP_STATISTICS of \"",
                                           interface_, "\" queue ", queue_));
  }
  XskKernelStats stats;
  stats.rx_dropped = raw.rx_dropped;
  stats.rx_invalid_descs = raw.rx_invalid_descs;
  stats.tx_invalid_descs = raw.tx_invalid_descs;
  stats.rx_ring_full = raw.rx_ring_full;
  stats.rx_fill_ring_empty_descs = raw.rx_fill_ring_empty_descs;
  stats.tx_ring_empty_descs = raw.tx_ring_empty_descs;
  return stats;
}

absl::StatusOr<UmemAndSocket> CreateUmemAndSocket(
    const UmemOptions& umem_options, const XskSocketOptions& options) {
  UmemAndSocket result;
  XskSocketOptions first = options;
  if (options.mode == XskMode::kAuto) first.mode = XskMode::kZeroCopy;
  ASSIGN_OR_RETURN(result.umem, Umem::Create(umem_options));
  int bind_errno = 0;
  absl::StatusOr<std::unique_ptr<XskSocket>> socket =
      XskSocket::Bind(*result.umem, first, &bind_errno);
  if (!socket.ok() && options.mode == XskMode::kAuto &&
      (bind_errno == EOPNOTSUPP || bind_errno == EBUSY)) {
    // A failed bind can leave the UMEM registered to the failed socket:
    // start again from a fresh one.
    result.umem.reset();
    ASSIGN_OR_RETURN(result.umem, Umem::Create(umem_options));
    first.mode = XskMode::kCopy;
    socket = XskSocket::Create(*result.umem, first);
  }
  if (!socket.ok()) return socket.status();
  result.socket = *std::move(socket);
  return result;
}

}  // namespace anylb::dataplane::xsk
