#include "routing/netlink/netlink_socket.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anylb::routing::netlink {
namespace {

// Replies of a dump come in datagrams of up to 32 KiB when the reader's
// buffer is that large (netlink_dump sizes them by the last recvmsg).
constexpr size_t kBufferBytes = size_t{64} * 1024;
constexpr int kDumpAttempts = 5;
constexpr int kRequestTimeoutSeconds = 5;

absl::string_view ToAbsl(std::string_view text) {
  return {text.data(), text.size()};
}

// ForEachMessage walks the messages of one datagram; it stops at the first
// one whose length does not fit (counted by the caller as the datagram's
// end).
template <typename F>
void ForEachMessage(std::span<const uint8_t> datagram, F&& f) {
  const auto* header = reinterpret_cast<const nlmsghdr*>(datagram.data());
  int remaining = static_cast<int>(datagram.size());
  while (mnl_nlmsg_ok(header, remaining)) {
    if (!f(header)) return;
    header = mnl_nlmsg_next(header, &remaining);
  }
}

}  // namespace

absl::Status ErrnoError(int error, std::string_view what) {
  if (error < 0) error = -error;
  absl::Status status = absl::ErrnoToStatus(error, ToAbsl(what));
  if (error == EPERM || error == EACCES) {
    return {status.code(),
            absl::StrCat(status.message(), " (need root or CAP_NET_ADMIN?)")};
  }
  return status;
}

NetlinkSocket::NetlinkSocket(mnl_socket* socket, bool nonblocking)
    : socket_(socket),
      nonblocking_(nonblocking),
      port_id_(mnl_socket_get_portid(socket)),
      next_seq_(static_cast<uint32_t>(time(nullptr))),
      buffer_(kBufferBytes) {}

NetlinkSocket::~NetlinkSocket() { mnl_socket_close(socket_); }

int NetlinkSocket::fd() const { return mnl_socket_get_fd(socket_); }

absl::StatusOr<std::unique_ptr<NetlinkSocket>> NetlinkSocket::Create(
    std::span<const unsigned int> groups, int receive_buffer_bytes) {
  const bool monitor = !groups.empty();
  mnl_socket* socket = mnl_socket_open2(
      NETLINK_ROUTE, SOCK_CLOEXEC | (monitor ? SOCK_NONBLOCK : 0));
  if (socket == nullptr) {
    return ErrnoError(errno, "opening a NETLINK_ROUTE socket");
  }
  // Owned from here on: closed if a later step fails.
  std::unique_ptr<NetlinkSocket> result(new NetlinkSocket(socket, monitor));
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    return ErrnoError(errno, "binding a NETLINK_ROUTE socket");
  }
  result->port_id_ = mnl_socket_get_portid(socket);
  for (unsigned int group : groups) {
    if (mnl_socket_setsockopt(socket, NETLINK_ADD_MEMBERSHIP, &group,
                              sizeof(group)) < 0) {
      return ErrnoError(errno, absl::StrCat("joining rtnetlink group ", group));
    }
  }
  if (receive_buffer_bytes > 0) {
    const int fd = mnl_socket_get_fd(socket);
    // SO_RCVBUFFORCE passes net.core.rmem_max (needs CAP_NET_ADMIN);
    // without it SO_RCVBUF is capped there.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes,
                   sizeof(receive_buffer_bytes)) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes,
                   sizeof(receive_buffer_bytes)) < 0) {
      return ErrnoError(errno, "setting a netlink socket's receive buffer");
    }
  }
  if (!monitor) {
    timeval timeout{};
    timeout.tv_sec = kRequestTimeoutSeconds;
    if (setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                   sizeof(timeout)) < 0) {
      return ErrnoError(errno, "setting a netlink socket's receive timeout");
    }
  }
  return result;
}

absl::StatusOr<size_t> NetlinkSocket::Receive(std::string_view what) {
  for (;;) {
    const ssize_t n =
        mnl_socket_recvfrom(socket_, buffer_.data(), buffer_.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (nonblocking_ && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (!nonblocking_ && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return absl::DeadlineExceededError(
          absl::StrCat(ToAbsl(what), ": no answer from the kernel within ",
                       kRequestTimeoutSeconds, " s"));
    }
    return ErrnoError(errno, what);
  }
}

absl::Status NetlinkSocket::Dump(std::span<uint8_t> request,
                                 std::string_view what,
                                 const MessageCallback& on_message,
                                 const std::function<void()>& on_restart) {
  auto* header = reinterpret_cast<nlmsghdr*>(request.data());
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    if (attempt > 0 && on_restart) on_restart();
    const uint32_t seq = ++next_seq_;
    header->nlmsg_seq = seq;
    header->nlmsg_pid = 0;
    header->nlmsg_flags |= NLM_F_REQUEST | NLM_F_DUMP;
    if (mnl_socket_sendto(socket_, request.data(), header->nlmsg_len) < 0) {
      return ErrnoError(errno, what);
    }
    bool done = false;
    bool interrupted = false;
    absl::Status error;
    while (!done && error.ok()) {
      absl::StatusOr<size_t> n = Receive(what);
      if (!n.ok()) return n.status();
      ForEachMessage(
          std::span<const uint8_t>(buffer_.data(), *n),
          [&](const nlmsghdr* reply) {
            if (reply->nlmsg_seq != seq || reply->nlmsg_pid != port_id_) {
              ++stale_replies_;
              return true;
            }
            if (reply->nlmsg_flags & NLM_F_DUMP_INTR) {
              interrupted = true;
            }
            if (reply->nlmsg_type == NLMSG_DONE) {
              int code = 0;
              if (mnl_nlmsg_get_payload_len(reply) >= sizeof(int)) {
                std::memcpy(&code, mnl_nlmsg_get_payload(reply), sizeof(code));
              }
              if (code < 0) error = ErrnoError(code, what);
              done = true;
              return false;
            }
            if (reply->nlmsg_type == NLMSG_ERROR) {
              int code = -EPROTO;
              if (mnl_nlmsg_get_payload_len(reply) >= sizeof(int)) {
                std::memcpy(&code, mnl_nlmsg_get_payload(reply), sizeof(code));
              }
              error = ErrnoError(code == 0 ? EPROTO : code, what);
              return false;
            }
            on_message(std::span<const uint8_t>(
                reinterpret_cast<const uint8_t*>(reply), reply->nlmsg_len));
            return true;
          });
    }
    if (!error.ok()) return error;
    if (!interrupted) return absl::OkStatus();
  }
  return absl::AbortedError(
      absl::StrCat(ToAbsl(what), ": the dump was interrupted by changes ",
                   kDumpAttempts, " times in a row"));
}

absl::Status NetlinkSocket::Request(std::span<uint8_t> request,
                                    std::string_view what) {
  auto* header = reinterpret_cast<nlmsghdr*>(request.data());
  const uint32_t seq = ++next_seq_;
  header->nlmsg_seq = seq;
  header->nlmsg_pid = 0;
  header->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (mnl_socket_sendto(socket_, request.data(), header->nlmsg_len) < 0) {
    return ErrnoError(errno, what);
  }
  for (;;) {
    absl::StatusOr<size_t> n = Receive(what);
    if (!n.ok()) return n.status();
    bool answered = false;
    int code = 0;
    ForEachMessage(
        std::span<const uint8_t>(buffer_.data(), *n),
        [&](const nlmsghdr* reply) {
          if (reply->nlmsg_seq != seq || reply->nlmsg_pid != port_id_ ||
              reply->nlmsg_type != NLMSG_ERROR) {
            ++stale_replies_;
            return true;
          }
          code = -EPROTO;
          if (mnl_nlmsg_get_payload_len(reply) >= sizeof(int)) {
            std::memcpy(&code, mnl_nlmsg_get_payload(reply), sizeof(code));
          }
          answered = true;
          return false;
        });
    if (answered) {
      return code == 0 ? absl::OkStatus() : ErrnoError(code, what);
    }
  }
}

absl::StatusOr<NetlinkSocket::ReceiveResult> NetlinkSocket::ReceiveAvailable(
    const MessageCallback& on_message) {
  bool overrun = false;
  for (;;) {
    const ssize_t n =
        mnl_socket_recvfrom(socket_, buffer_.data(), buffer_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return overrun ? ReceiveResult::kOverrun : ReceiveResult::kDrained;
      }
      // Keep reading to the end: the kernel reports ENOBUFS once per
      // congestion (NETLINK_S_CONGESTED) and clears that state only when
      // the queue is empty. Stopping here would let later drops go
      // unreported, and the caller's resync dump would miss them.
      if (errno == ENOBUFS) {
        overrun = true;
        continue;
      }
      return ErrnoError(errno, "reading rtnetlink notifications");
    }
    ForEachMessage(
        std::span<const uint8_t>(buffer_.data(), static_cast<size_t>(n)),
        [&](const nlmsghdr* message) {
          on_message(std::span<const uint8_t>(
              reinterpret_cast<const uint8_t*>(message), message->nlmsg_len));
          return true;
        });
  }
}

}  // namespace anylb::routing::netlink
