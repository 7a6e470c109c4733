#include "common/testing/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anylb::netns_testing {

absl::Status RequireRoot(std::string_view what) {
  if (geteuid() == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      absl::string_view(what.data(), what.size()),
      " need root (network namespaces, veths, BPF): run them as root, e.g. "
      "with deploy/test.sh (CI runs as root) or sudo"));
}

absl::StatusOr<std::string> RunUnprivileged(
    absl::FunctionRef<std::string()> body) {
  int fds[2];
  if (pipe(fds) != 0) return absl::ErrnoToStatus(errno, "pipe");
  const pid_t child = fork();
  if (child < 0) {
    const int error = errno;
    close(fds[0]);
    close(fds[1]);
    return absl::ErrnoToStatus(error, "fork");
  }
  if (child == 0) {
    close(fds[0]);
    // Becoming nobody drops every capability.
    std::string message = "setuid failed";
    if (setgid(65534) == 0 && setuid(65534) == 0) message = body();
    (void)!write(fds[1], message.data(), message.size());
    _exit(0);
  }
  close(fds[1]);
  std::string message;
  char buffer[256];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) {
    message.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  waitpid(child, nullptr, 0);
  return message;
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  // Bazel's strict action environment leaves /usr/sbin off PATH. The braces
  // send the stderr of every command in `command` along, not only the last's.
  const std::string shell =
      "PATH=/usr/sbin:/sbin:$PATH; export PATH; { " + command + "\n} 2>&1";
  FILE* pipe = popen(shell.c_str(), "r");
  if (pipe == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("popen: ", command));
  }
  std::string output;
  char buffer[512];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  int status = pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (status ", status, "): ", output));
  }
  return output;
}

absl::StatusOr<std::unique_ptr<TestNetns>> TestNetns::Create(
    std::string_view prefix) {
  static std::atomic<int> counter{0};
  std::string name =
      absl::StrCat(absl::string_view(prefix.data(), prefix.size()), "-",
                   getpid(), "-", counter++);
  absl::StatusOr<std::string> added = RunCommand("ip netns add " + name);
  if (!added.ok()) return added.status();
  // Owned from here on: deleted even if the next step fails.
  std::unique_ptr<TestNetns> netns(new TestNetns(name));
  absl::StatusOr<std::string> up = netns->Run("ip link set lo up");
  if (!up.ok()) return up.status();
  return netns;
}

TestNetns::~TestNetns() {
  absl::StatusOr<std::string> deleted = RunCommand("ip netns del " + name_);
  if (!deleted.ok()) {
    std::fprintf(stderr, "netns_testing: %s\n",
                 std::string(deleted.status().message()).c_str());
  }
}

absl::StatusOr<std::string> TestNetns::Run(const std::string& command) const {
  std::string quoted;
  for (char c : command) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return RunCommand("ip netns exec " + name_ + " sh -c '" + quoted + "'");
}

absl::StatusOr<std::unique_ptr<ScopedNetns>> ScopedNetns::Enter(
    const TestNetns& netns) {
  int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) return absl::ErrnoToStatus(errno, "opening own netns");
  std::string path = "/var/run/netns/" + netns.name();
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int error = errno;
    close(original);
    return absl::ErrnoToStatus(error, absl::StrCat("opening ", path));
  }
  int result = setns(target, CLONE_NEWNET);
  int error = errno;
  close(target);
  if (result != 0) {
    close(original);
    return absl::ErrnoToStatus(error, absl::StrCat("entering ", path));
  }
  return std::unique_ptr<ScopedNetns>(new ScopedNetns(original));
}

ScopedNetns::~ScopedNetns() {
  if (setns(original_fd_, CLONE_NEWNET) != 0) {
    std::perror("netns_testing: returning to the original netns");
  }
  close(original_fd_);
}

absl::StatusOr<std::unique_ptr<EnteredNetns>> EnteredNetns::Create(
    std::string_view prefix, const std::string& setup) {
  std::unique_ptr<EnteredNetns> entered(new EnteredNetns());
  absl::StatusOr<std::unique_ptr<TestNetns>> netns = TestNetns::Create(prefix);
  if (!netns.ok()) return netns.status();
  entered->netns_ = *std::move(netns);
  if (!setup.empty()) {
    absl::StatusOr<std::string> done = entered->netns_->Run(setup);
    if (!done.ok()) return done.status();
  }
  absl::StatusOr<std::unique_ptr<ScopedNetns>> inside =
      ScopedNetns::Enter(*entered->netns_);
  if (!inside.ok()) return inside.status();
  entered->inside_ = *std::move(inside);
  return entered;
}

absl::StatusOr<std::unique_ptr<PacketSocket>> PacketSocket::Open(
    const std::string& interface) {
  int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex == 0) {
    return absl::NotFoundError(
        absl::StrCat("no interface \"", interface, "\""));
  }
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_PACKET)");
  std::unique_ptr<PacketSocket> s(new PacketSocket(fd, ifindex));
  sockaddr_ll address = {};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return absl::ErrnoToStatus(errno, "bind(AF_PACKET)");
  }
  int buffer = 16 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer));
  return s;
}

PacketSocket::~PacketSocket() { close(fd_); }

absl::Status PacketSocket::Send(const std::vector<uint8_t>& frame) const {
  sockaddr_ll address = {};
  address.sll_family = AF_PACKET;
  address.sll_ifindex = ifindex_;
  address.sll_halen = 6;
  ssize_t sent = sendto(fd_, frame.data(), frame.size(), 0,
                        reinterpret_cast<sockaddr*>(&address), sizeof(address));
  if (sent != static_cast<ssize_t>(frame.size())) {
    return absl::ErrnoToStatus(errno, "sendto(AF_PACKET)");
  }
  return absl::OkStatus();
}

std::optional<std::vector<uint8_t>> PacketSocket::Receive(
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<uint8_t> frame(4096);
  while (true) {
    int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left < 0) return std::nullopt;
    pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return std::nullopt;
    sockaddr_ll from = {};
    socklen_t from_length = sizeof(from);
    ssize_t n = recvfrom(fd_, frame.data(), frame.size(), MSG_DONTWAIT,
                         reinterpret_cast<sockaddr*>(&from), &from_length);
    if (n < 0) continue;
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    frame.resize(static_cast<size_t>(n));
    return frame;
  }
}

absl::StatusOr<std::array<uint8_t, 6>> MacOf(const std::string& interface) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  ifreq request = {};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  int result = ioctl(fd, SIOCGIFHWADDR, &request);
  int error = errno;
  close(fd);
  if (result != 0) {
    return absl::ErrnoToStatus(
        error, absl::StrCat("SIOCGIFHWADDR \"", interface, "\""));
  }
  std::array<uint8_t, 6> mac;
  std::memcpy(mac.data(), request.ifr_hwaddr.sa_data, 6);
  return mac;
}

}  // namespace anylb::netns_testing
