#include "tests/netns/loopback_relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anylb::lab {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoopbackRelay>> LoopbackRelay::Start(
    const Netns& listen_ns, int listen_port, const Netns& target_ns,
    int target_port) {
  std::unique_ptr<LoopbackRelay> relay(
      new LoopbackRelay(target_ns, target_port));
  if (pipe2(relay->stop_pipe_, O_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "LoopbackRelay: pipe2");
  }
  RETURN_IF_ERROR(listen_ns.RunInThread([&]() -> absl::Status {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "LoopbackRelay: socket");
    relay->listen_fd_ = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address = Loopback(listen_port);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(fd, 16) != 0) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("LoopbackRelay: listening on 127.0.0.1:",
                              listen_port, " in \"", listen_ns.name(), "\""));
    }
    return absl::OkStatus();
  }));
  relay->accept_thread_ = std::thread([r = relay.get()] { r->Accept(); });
  return relay;
}

LoopbackRelay::~LoopbackRelay() {
  if (stop_pipe_[1] >= 0) (void)write(stop_pipe_[1], "x", 1);
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> pumps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pumps.swap(pumps_);
  }
  for (std::thread& t : pumps) t.join();
  for (int fd : {listen_fd_, stop_pipe_[0], stop_pipe_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void LoopbackRelay::Accept() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++connections_;
    int upstream = -1;
    absl::Status made = target_ns_.RunInThread([&]() -> absl::Status {
      upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (upstream < 0) return absl::ErrnoToStatus(errno, "socket");
      sockaddr_in address = Loopback(target_port_);
      if (connect(upstream, reinterpret_cast<sockaddr*>(&address),
                  sizeof(address)) != 0) {
        int error = errno;
        close(upstream);
        upstream = -1;
        return absl::ErrnoToStatus(error, "connect");
      }
      return absl::OkStatus();
    });
    if (!made.ok()) {
      close(client);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    pumps_.emplace_back([this, client, upstream] { Pump(client, upstream); });
  }
}

void LoopbackRelay::Pump(int a, int b) {
  // open[i]: fds[i] still has data to read; its bytes go to the other.
  const int ends[2] = {a, b};
  bool open[2] = {true, true};
  char buffer[16384];
  while (open[0] || open[1]) {
    pollfd fds[3] = {{open[0] ? a : -1, POLLIN, 0},
                     {open[1] ? b : -1, POLLIN, 0},
                     {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;
    bool failed = false;
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || fds[i].revents == 0) continue;
      ssize_t n = read(ends[i], buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // End of stream (or reset): pass the half-close on.
        failed = n < 0;
        open[i] = false;
        shutdown(ends[1 - i], SHUT_WR);
        continue;
      }
      for (ssize_t sent = 0; sent < n;) {
        ssize_t w = write(ends[1 - i], buffer + sent, n - sent);
        if (w <= 0) {
          if (w < 0 && errno == EINTR) continue;
          failed = true;
          break;
        }
        sent += w;
      }
    }
    if (failed) break;
  }
  close(a);
  close(b);
}

}  // namespace anylb::lab
