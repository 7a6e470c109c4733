// NetlinkSocket: one NETLINK_ROUTE socket (libmnl), the only place that
// turns netlink's errno results into absl::Status.
//
// Two uses:
//  * request socket: Dump() (NLM_F_DUMP, every reply checked against the
//    request's sequence number and our port id; an interrupted dump,
//    NLM_F_DUMP_INTR, is restarted) and Request() (NLM_F_ACK, waits for
//    the kernel's answer);
//  * monitor socket: created with multicast groups (RTNLGRP_*), read with
//    ReceiveAvailable() without blocking. If the kernel had to drop
//    notifications because the socket's buffer was full, the read fails
//    with ENOBUFS and ReceiveAvailable() returns kOverrun: the caller must
//    dump everything again (a full resync), since it missed changes.
//
// Threading: a NetlinkSocket is used by one thread at a time (not
// synchronized). It owns one receive buffer, allocated once.

#ifndef ANYLB_ROUTING_NETLINK_NETLINK_SOCKET_H_
#define ANYLB_ROUTING_NETLINK_NETLINK_SOCKET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct mnl_socket;

namespace anylb::routing::netlink {

// MessageCallback receives one netlink message (header included), already
// checked to lie within the received datagram.
using MessageCallback = std::function<void(std::span<const uint8_t> message)>;

// ErrnoError turns an errno (positive or negative) into a status:
// "<what>: <strerror>", with the most specific code, plus "(need root or
// CAP_NET_ADMIN?)" for EPERM/EACCES.
absl::Status ErrnoError(int error, std::string_view what);

class NetlinkSocket {
 public:
  // ReceiveResult says how ReceiveAvailable() ended.
  enum class ReceiveResult : uint8_t {
    kDrained,  // Everything pending was read (the socket would block).
    kOverrun,  // ENOBUFS: notifications were lost; resync.
  };

  // Create opens a NETLINK_ROUTE socket bound to an automatic port id and
  // joins `groups` (RTNLGRP_* numbers). `receive_buffer_bytes` > 0 sets
  // SO_RCVBUF (SO_RCVBUFFORCE when allowed), for monitor sockets that must
  // absorb bursts. Monitor sockets are non-blocking.
  static absl::StatusOr<std::unique_ptr<NetlinkSocket>> Create(
      std::span<const unsigned int> groups = {}, int receive_buffer_bytes = 0);

  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  // fd returns the socket's file descriptor, for poll().
  int fd() const;

  // Dump sends `request` (a message with NLM_F_DUMP; its seq and pid are
  // set here) and calls `on_message` for each reply until NLMSG_DONE.
  // Replies with another sequence number (left over from an earlier,
  // aborted exchange) are skipped. An interrupted dump is restarted, up to
  // a few times (then ABORTED); the callback may then see entries twice, so
  // it must be idempotent or reset its state on `on_restart`.
  absl::Status Dump(std::span<uint8_t> request, std::string_view what,
                    const MessageCallback& on_message,
                    const std::function<void()>& on_restart = nullptr);

  // Request sends `request` (NLM_F_ACK is added) and waits for the ack.
  // The kernel's error becomes the status ("<what>: No such device").
  absl::Status Request(std::span<uint8_t> request, std::string_view what);

  // ReceiveAvailable reads every datagram pending on a monitor socket and
  // calls `on_message` for each message in it. It never blocks. After an
  // ENOBUFS it still reads the queue empty (so the kernel reports the next
  // loss too) and then returns kOverrun: the caller dumps after that.
  absl::StatusOr<ReceiveResult> ReceiveAvailable(
      const MessageCallback& on_message);

  // stale_replies counts replies skipped for a wrong sequence number.
  uint64_t stale_replies() const { return stale_replies_; }

 private:
  NetlinkSocket(mnl_socket* socket, bool nonblocking);

  // Receive reads one datagram (blocking on a request socket); 0 when a
  // non-blocking read would block.
  absl::StatusOr<size_t> Receive(std::string_view what);

  mnl_socket* socket_;
  bool nonblocking_;
  uint32_t port_id_;
  uint32_t next_seq_;
  uint64_t stale_replies_ = 0;
  std::vector<uint8_t> buffer_;
};

}  // namespace anylb::routing::netlink

#endif  // ANYLB_ROUTING_NETLINK_NETLINK_SOCKET_H_
