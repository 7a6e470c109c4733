// XskSocket: one AF_XDP socket bound to (interface, queue) on a Umem,
// through libxdp (xsk_socket__create / xsk_socket__create_shared), and the
// copy / zero-copy choice.
//
// The first socket on a Umem uses the Umem's fill and completion rings. A
// second socket on the same Umem (TX on another interface) is made with
// xsk_socket__create_shared and gets its own fill and completion rings; it
// inherits the first socket's mode (the kernel's rule for shared UMEMs).
// Sockets always bind with XDP_USE_NEED_WAKEUP and never let libxdp load an
// XDP program (XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD): the director's
// steering program (bpf/steer_loader.h) is ours, and the caller puts fd()
// into its xsks_map.
//
// Ownership and threading: the socket belongs to one worker; its rings are
// used only by that worker's thread. Destroy it before its Umem.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_XSK_SOCKET_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_XSK_SOCKET_H_

#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "lbnode/dataplane/xsk/umem.h"

namespace anylb::dataplane::xsk {

// XskMode is how frames move between the NIC and the UMEM.
enum class XskMode : uint8_t {
  kAuto,      // Zero-copy if the driver can, else copy.
  kCopy,      // The kernel copies frames (any driver; veth).
  kZeroCopy,  // The driver DMAs into the UMEM; fails where unsupported.
};

// XskModeName: "auto", "copy", "zero-copy".
const char* XskModeName(XskMode mode);

// XskSocketOptions: where to bind and how.
struct XskSocketOptions {
  std::string interface;
  uint32_t queue = 0;
  // kCopy or kZeroCopy here; kAuto is resolved by CreateUmemAndSocket.
  // Ignored for a shared (second) socket.
  XskMode mode = XskMode::kCopy;
  uint32_t rx_ring_size = 2048;  // 0: no RX ring (a TX-only socket).
  uint32_t tx_ring_size = 2048;  // 0: no TX ring.
  // SO_PREFER_BUSY_POLL + SO_BUSY_POLL + SO_BUSY_POLL_BUDGET, best effort:
  // busy_poll() says whether the kernel took them.
  bool busy_poll = false;
  uint32_t busy_poll_budget = 64;
};

// XskKernelStats is the kernel's XDP_STATISTICS for a socket.
struct XskKernelStats {
  uint64_t rx_dropped = 0;  // No room (RX ring full or no frame).
  uint64_t rx_invalid_descs = 0;
  uint64_t tx_invalid_descs = 0;  // Bad TX descriptors (our bug).
  uint64_t rx_ring_full = 0;
  uint64_t rx_fill_ring_empty_descs = 0;
  uint64_t tx_ring_empty_descs = 0;
};

struct UmemAndSocket;

// XskSocket: see the file comment.
class XskSocket {
 public:
  // Create binds a socket on `umem` (shared if the umem already has one).
  // Errors name the interface and queue.
  static absl::StatusOr<std::unique_ptr<XskSocket>> Create(
      Umem& umem, const XskSocketOptions& options);

  XskSocket(const XskSocket&) = delete;
  XskSocket& operator=(const XskSocket&) = delete;
  ~XskSocket();

  int fd() const { return fd_; }
  const std::string& interface() const { return interface_; }
  uint32_t queue() const { return queue_; }
  // The mode in use: kCopy or kZeroCopy (read back from the kernel).
  XskMode mode() const { return mode_; }
  bool busy_poll() const { return busy_poll_; }

  xsk_ring_cons* rx() { return has_rx_ ? &rx_ : nullptr; }
  xsk_ring_prod* tx() { return has_tx_ ? &tx_ : nullptr; }
  // This socket's fill and completion rings (the Umem's for the first
  // socket, its own for a shared one).
  xsk_ring_prod* fill() { return fill_; }
  xsk_ring_cons* completion() { return completion_; }

  // KernelStats reads XDP_STATISTICS (a syscall: not per packet).
  absl::StatusOr<XskKernelStats> KernelStats() const;

 private:
  XskSocket() = default;
  // Bind is Create that also reports the errno of a failed bind (0 if
  // the failure was not a bind), for CreateUmemAndSocket's fallback.
  static absl::StatusOr<std::unique_ptr<XskSocket>> Bind(
      Umem& umem, const XskSocketOptions& options, int* bind_errno);
  friend absl::StatusOr<UmemAndSocket> CreateUmemAndSocket(
      const UmemOptions& umem_options, const XskSocketOptions& options);

  xsk_socket* socket_ = nullptr;
  int fd_ = -1;
  std::string interface_;
  uint32_t queue_ = 0;
  XskMode mode_ = XskMode::kCopy;
  bool busy_poll_ = false;
  bool has_rx_ = false;
  bool has_tx_ = false;
  xsk_ring_cons rx_ = {};
  xsk_ring_prod tx_ = {};
  xsk_ring_prod own_fill_ = {};
  xsk_ring_cons own_completion_ = {};
  xsk_ring_prod* fill_ = nullptr;
  xsk_ring_cons* completion_ = nullptr;
  uint32_t* umem_sockets_ = nullptr;  // The Umem's socket count.
};

// UmemAndSocket is a Umem with its first socket.
struct UmemAndSocket {
  std::unique_ptr<Umem> umem;
  std::unique_ptr<XskSocket> socket;  // Destroyed first (declared last).
};

// CreateUmemAndSocket makes a Umem and binds its first socket. With
// options.mode == kAuto it tries zero-copy and, when the driver refuses
// (EOPNOTSUPP, EBUSY: veth), starts again with a fresh Umem in copy mode;
// socket->mode() says which one is in use.
absl::StatusOr<UmemAndSocket> CreateUmemAndSocket(
    const UmemOptions& umem_options, const XskSocketOptions& options);

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_XSK_SOCKET_H_
