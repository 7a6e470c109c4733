#include "tests/netns/udp_echo_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace anylb::lab {
namespace {

absl::StatusOr<int> BoundSocket(int family, int port) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "UDP socket");
  int one = 1;
  sockaddr_storage storage{};
  socklen_t length;
  if (family == AF_INET) {
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*sin);
  } else {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*sin6);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    int error = errno;
    close(fd);
    return absl::ErrnoToStatus(
        error, absl::StrCat("binding UDP port ", port,
                            family == AF_INET ? " (IPv4)" : " (IPv6)"));
  }
  return fd;
}

IpAddress FromSockaddr(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage);
    return IpAddress::FromV4Bytes(std::span<const uint8_t, 4>(
        reinterpret_cast<const uint8_t*>(&sin->sin_addr), 4));
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  return IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(
      reinterpret_cast<const uint8_t*>(&sin6->sin6_addr), 16));
}

}  // namespace

absl::StatusOr<std::unique_ptr<UdpEchoServer>> UdpEchoServer::Start(
    const Netns& ns, std::string name, int port) {
  std::unique_ptr<UdpEchoServer> server(new UdpEchoServer(std::move(name)));
  RETURN_IF_ERROR(ns.RunInThread([&]() -> absl::Status {
    ASSIGN_OR_RETURN(server->fd4_, BoundSocket(AF_INET, port));
    ASSIGN_OR_RETURN(server->fd6_, BoundSocket(AF_INET6, port));
    return absl::OkStatus();
  }));
  server->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (server->stop_fd_ < 0) return absl::ErrnoToStatus(errno, "eventfd");
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

UdpEchoServer::~UdpEchoServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  for (int fd : {fd4_, fd6_, stop_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void UdpEchoServer::Serve() {
  pollfd fds[3] = {{stop_fd_, POLLIN, 0}, {fd4_, POLLIN, 0}, {fd6_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    for (int i = 1; i < 3; ++i) {
      if (fds[i].revents == 0) continue;
      char payload[2048];
      alignas(cmsghdr) char control[256];
      sockaddr_storage peer{};
      iovec iov = {payload, sizeof(payload)};
      msghdr message{};
      message.msg_name = &peer;
      message.msg_namelen = sizeof(peer);
      message.msg_iov = &iov;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof(control);
      if (recvmsg(fds[i].fd, &message, MSG_DONTWAIT) < 0) continue;
      // Answer from the address the request was sent to.
      alignas(cmsghdr) char reply_control[256];
      size_t reply_control_length = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr;
           c = CMSG_NXTHDR(&message, c)) {
        auto* out = reinterpret_cast<cmsghdr*>(reply_control);
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo info;
          std::memcpy(&info, CMSG_DATA(c), sizeof(info));
          info.ipi_spec_dst = info.ipi_addr;
          info.ipi_ifindex = 0;
          out->cmsg_level = IPPROTO_IP;
          out->cmsg_type = IP_PKTINFO;
          out->cmsg_len = CMSG_LEN(sizeof(info));
          std::memcpy(CMSG_DATA(out), &info, sizeof(info));
          reply_control_length = CMSG_SPACE(sizeof(info));
        } else if (c->cmsg_level == IPPROTO_IPV6 &&
                   c->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo info;
          std::memcpy(&info, CMSG_DATA(c), sizeof(info));
          info.ipi6_ifindex = 0;
          out->cmsg_level = IPPROTO_IPV6;
          out->cmsg_type = IPV6_PKTINFO;
          out->cmsg_len = CMSG_LEN(sizeof(info));
          std::memcpy(CMSG_DATA(out), &info, sizeof(info));
          reply_control_length = CMSG_SPACE(sizeof(info));
        }
      }
      IpAddress client = FromSockaddr(peer);
      {
        absl::MutexLock lock(&mutex_);
        ++counts_[client];
      }
      std::string reply = absl::StrCat(name_, " ", client.ToString());
      iovec reply_iov = {reply.data(), reply.size()};
      msghdr answer{};
      answer.msg_name = &peer;
      answer.msg_namelen = message.msg_namelen;
      answer.msg_iov = &reply_iov;
      answer.msg_iovlen = 1;
      if (reply_control_length > 0) {
        answer.msg_control = reply_control;
        answer.msg_controllen = reply_control_length;
      }
      sendmsg(fds[i].fd, &answer, MSG_DONTWAIT);
    }
  }
}

std::map<IpAddress, int> UdpEchoServer::RequestsByClient() const {
  absl::MutexLock lock(&mutex_);
  return counts_;
}

int UdpEchoServer::requests() const {
  absl::MutexLock lock(&mutex_);
  int total = 0;
  for (const auto& [client, count] : counts_) total += count;
  return total;
}

absl::StatusOr<std::string> UdpExchange(const Netns& ns,
                                        const IpAddress& address, int port,
                                        std::string_view payload,
                                        absl::Duration timeout,
                                        std::optional<IpAddress> source) {
  std::string answer;
  std::string what =
      absl::StrCat("UDP exchange with ",
                   address.is_v6() ? absl::StrCat("[", address.ToString(), "]")
                                   : address.ToString(),
                   ":", port, " from \"", ns.name(), "\"");
  RETURN_IF_ERROR(ns.RunInThread([&]() -> absl::Status {
    int fd = socket(address.af(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, what + ": socket");
    auto fail = [&](int error, std::string_view step) {
      close(fd);
      return absl::ErrnoToStatus(
          error, absl::StrCat(what, ": ",
                              absl::string_view(step.data(), step.size())));
    };
    sockaddr_storage storage{};
    if (source.has_value()) {
      std::memset(&storage, 0, sizeof(storage));
      socklen_t length;
      if (source->is_v4()) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, source->bytes().data(), 4);
        length = sizeof(*sin);
      } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, source->bytes().data(), 16);
        length = sizeof(*sin6);
      }
      if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
        return fail(errno, "bind");
      }
    }
    std::memset(&storage, 0, sizeof(storage));
    socklen_t length;
    if (address.is_v4()) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(static_cast<uint16_t>(port));
      std::memcpy(&sin->sin_addr, address.bytes().data(), 4);
      length = sizeof(*sin);
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(static_cast<uint16_t>(port));
      std::memcpy(&sin6->sin6_addr, address.bytes().data(), 16);
      length = sizeof(*sin6);
    }
    // connect(): only the answer from the address we asked counts (a reply
    // from another source address, e.g. a real server's own, is an error).
    if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
      return fail(errno, "connect");
    }
    if (send(fd, payload.data(), payload.size(), 0) < 0) {
      return fail(errno, "send");
    }
    pollfd pfd = {fd, POLLIN, 0};
    int ready =
        poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    if (ready <= 0) {
      close(fd);
      return absl::DeadlineExceededError(absl::StrCat(
          what, ": no answer within ", absl::FormatDuration(timeout)));
    }
    char buffer[2048];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0) return fail(errno, "recv");
    answer.assign(buffer, static_cast<size_t>(n));
    close(fd);
    return absl::OkStatus();
  }));
  return answer;
}

}  // namespace anylb::lab
