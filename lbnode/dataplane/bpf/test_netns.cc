#include "lbnode/dataplane/bpf/test_netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anylb::dataplane::bpf {

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  // Bazel's strict action environment leaves /usr/sbin (tc) off PATH.
  std::string shell =
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
    std::perror("test_netns: returning to the original netns");
  }
  close(original_fd_);
}

}  // namespace anylb::dataplane::bpf
