#include "routing/netlink/test_netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anylb::routing::netlink::testing {

absl::Status RequireRoot() {
  if (geteuid() == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "this test builds network namespaces and veths and needs root: run it "
      "as root (deploy/test.sh does; CI runs as root)");
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  // Bazel's strict action environment leaves /usr/sbin off PATH.
  const std::string shell =
      "PATH=/usr/sbin:/sbin:$PATH; export PATH; " + command + " 2>&1";
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
  const int status = pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (status ", status, "): ", output));
  }
  return output;
}

absl::StatusOr<std::unique_ptr<TestNetns>> TestNetns::Create(
    std::string_view prefix) {
  static std::atomic<int> counter{0};
  const std::string name =
      absl::StrCat(absl::string_view(prefix.data(), prefix.size()), "-",
                   getpid(), "-", counter++);
  absl::StatusOr<std::string> added = RunCommand("ip netns add " + name);
  if (!added.ok()) return added.status();
  std::unique_ptr<TestNetns> netns(new TestNetns(name));  // Owned from here.
  absl::StatusOr<std::string> up = netns->Run("ip link set lo up");
  if (!up.ok()) return up.status();
  return netns;
}

TestNetns::~TestNetns() {
  absl::StatusOr<std::string> deleted = RunCommand("ip netns del " + name_);
  if (!deleted.ok()) {
    const std::string message(deleted.status().message());
    std::fprintf(stderr, "test_netns: %s\n", message.c_str());
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
  const int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) return absl::ErrnoToStatus(errno, "opening own netns");
  const std::string path = "/var/run/netns/" + netns.name();
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    const int error = errno;
    close(original);
    return absl::ErrnoToStatus(error, absl::StrCat("opening ", path));
  }
  const int result = setns(target, CLONE_NEWNET);
  const int error = errno;
  close(target);
  if (result != 0) {
    close(original);
    return absl::ErrnoToStatus(error, absl::StrCat("entering ", path));
  }
  return std::unique_ptr<ScopedNetns>(new ScopedNetns(original));
}

ScopedNetns::~ScopedNetns() {
  if (setns(original_fd_, CLONE_NEWNET) != 0) {
    std::perror("test_netns: returning to the original netns");
  }
  close(original_fd_);
}

}  // namespace anylb::routing::netlink::testing
