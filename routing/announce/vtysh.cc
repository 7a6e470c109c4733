#include "routing/announce/vtysh.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace anylb::routing::announce {
namespace {

std::string Quote(const std::vector<std::string>& argv) {
  std::vector<std::string> quoted;
  for (const std::string& a : argv) {
    if (a.find_first_of(" \"'") == std::string::npos && !a.empty()) {
      quoted.push_back(a);
    } else {
      quoted.push_back(absl::StrCat("'", a, "'"));
    }
  }
  return absl::StrJoin(quoted, " ");
}

}  // namespace

absl::StatusOr<std::string> SubprocessVtysh::Run(
    const std::string& daemon, const std::vector<std::string>& commands) {
  std::vector<std::string> args = {options_.binary};
  if (!options_.vty_socket.empty()) {
    args.emplace_back("--vty_socket");
    args.push_back(options_.vty_socket);
  }
  args.emplace_back("-d");
  args.push_back(daemon);
  for (const std::string& c : commands) {
    args.emplace_back("-c");
    args.push_back(c);
  }
  const std::string command_line = Quote(args);
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(
        absl::StrCat("pipe for vtysh: ", strerror(errno)));
  }
  // posix_spawn (vfork-like: no copy of lbnode's address space and its
  // pinned UMEM), with an empty signal mask (lbnode blocks its signals for
  // signalfd) and the pipe as stdout and stderr.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int spawn_error =
      posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error != 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (spawn_error == ENOENT || spawn_error == EACCES) {
      return absl::NotFoundError(absl::StrCat(
          command_line, ": cannot run ", options_.binary, ": ",
          strerror(spawn_error), " (install FRR's vtysh or set --frr_vtysh)"));
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("starting ", command_line, ": ", strerror(spawn_error)));
  }
  close(pipe_fds[1]);
  std::string output;
  absl::Time deadline = absl::Now() + options_.timeout;
  bool timed_out = false;
  char buffer[4096];
  while (true) {
    int left_ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    pollfd p = {pipe_fds[0], POLLIN, 0};
    int r = poll(&p, 1, left_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      timed_out = r == 0;
      break;
    }
    ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::UnavailableError(absl::StrCat(
        command_line, ": no answer within ",
        absl::FormatDuration(options_.timeout), " (killed); output: ", output));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return output;
  std::string how = WIFEXITED(status)
                        ? absl::StrCat("exit status ", WEXITSTATUS(status))
                        : absl::StrCat("signal ", WTERMSIG(status));
  return absl::UnavailableError(absl::StrCat(
      command_line, ": ", how, ": ", output.empty() ? "(no output)" : output));
}

}  // namespace anylb::routing::announce
