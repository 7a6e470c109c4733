#include "tests/netns/netns.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace anylb::lab {
namespace {

absl::string_view Absl(std::string_view text) {
  return {text.data(), text.size()};
}

// The PATH our commands run with: Bazel's strict action environment leaves
// /usr/sbin (ip, nft, nginx, trafgen) off it.
constexpr char kPath[] = "PATH=/usr/sbin:/sbin:/usr/bin:/bin";

// ChildEnvironment is environ with PATH replaced by kPath.
std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PATH=", 5) != 0) env.emplace_back(*e);
  }
  env.emplace_back(kPath);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (std::string& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

}  // namespace

std::string ShellQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += "'";
  return quoted;
}

absl::StatusOr<std::string> RunCommand(std::string_view command) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "pipe for a command's output");
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    int error = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return absl::ErrnoToStatus(error, "pipe for a command's output");
  }
  std::vector<std::string> args = {"/bin/sh", "-c", std::string(command)};
  std::vector<char*> argv = CStrings(args);
  std::vector<std::string> env_strings = ChildEnvironment();
  std::vector<char*> env = CStrings(env_strings);
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(argv[0], argv.data(), env.data());
    _exit(127);
  }
  int fork_error = errno;
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return absl::ErrnoToStatus(fork_error, "fork");
  }
  std::string out;
  std::string err;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        (i == 0 ? out : err).append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = WIFEXITED(status)
                          ? absl::StrCat("exit status ", WEXITSTATUS(status))
                          : absl::StrCat("signal ", WTERMSIG(status));
    absl::string_view shown_err = absl::StripTrailingAsciiWhitespace(err);
    absl::string_view shown_out = absl::StripTrailingAsciiWhitespace(out);
    return absl::InternalError(absl::StrCat(
        "`", Absl(command), "` failed (", how,
        "): ", shown_err.empty() ? absl::string_view("(no stderr)") : shown_err,
        shown_out.empty() ? "" : absl::StrCat(" [stdout: ", shown_out, "]")));
  }
  return out;
}

absl::Status EnterNetns(std::string_view name) {
  std::string path = absl::StrCat("/var/run/netns/", Absl(name));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path));
  }
  int result = setns(fd, CLONE_NEWNET);
  int error = errno;
  close(fd);
  if (result != 0) {
    return absl::ErrnoToStatus(
        error, absl::StrCat("entering network namespace \"", Absl(name),
                            "\" (setns; need root?)"));
  }
  return absl::OkStatus();
}

// Process.

bool Process::Running() {
  if (exited_) return false;
  int status;
  pid_t result = waitpid(pid_, &status, WNOHANG);
  if (result == pid_) {
    exited_ = true;
    exit_status_ = status;
  } else if (result < 0 && errno == ECHILD) {
    exited_ = true;  // Reaped elsewhere (Netns's destructor).
  }
  return !exited_;
}

int Process::Stop(int signal, int grace_ms) {
  if (!Running()) return exit_status_;
  kill(pid_, signal);
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (Running()) {
    kill(pid_, SIGKILL);
    int status;
    if (waitpid(pid_, &status, 0) == pid_) exit_status_ = status;
    exited_ = true;
  }
  return exit_status_;
}

Process::~Process() { Stop(SIGTERM, 2000); }

// Netns.

void ReapStaleNamespaces() {
  absl::StatusOr<std::string> list = RunCommand("ip netns list");
  if (!list.ok()) return;
  for (absl::string_view line :
       absl::StrSplit(*list, '\n', absl::SkipWhitespace())) {
    absl::string_view name = line.substr(0, line.find(' '));
    if (!absl::StartsWith(name, "lb-")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(name, '-');
    int pid;
    if (parts.size() < 4 || !absl::SimpleAtoi(parts[parts.size() - 2], &pid) ||
        pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) {
      continue;
    }
    absl::StatusOr<std::string> pids =
        RunCommand(absl::StrCat("ip netns pids ", name));
    if (pids.ok()) {
      for (absl::string_view p :
           absl::StrSplit(*pids, '\n', absl::SkipWhitespace())) {
        int inside;
        if (absl::SimpleAtoi(p, &inside) && inside != getpid()) {
          kill(inside, SIGKILL);
        }
      }
    }
    absl::StatusOr<std::string> deleted =
        RunCommand(absl::StrCat("ip netns del ", name));
    std::fprintf(stderr,
                 "netns: removed stale namespace %s (pid %d is gone)%s\n",
                 static_cast<std::string>(name).c_str(), pid,
                 deleted.ok() ? "" : " -- failed");
  }
}

absl::StatusOr<std::unique_ptr<Netns>> Netns::Create(std::string_view tag) {
  static std::atomic<int> counter{0};
  std::string name =
      absl::StrCat("lb-", Absl(tag), "-", getpid(), "-", counter++);
  if (geteuid() != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "creating network namespace \"", name,
        "\" needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): run the test as root "
        "(sudo bazel test ..., or deploy/test.sh)"));
  }
  static std::once_flag reaped;
  std::call_once(reaped, ReapStaleNamespaces);
  absl::StatusOr<std::string> added = RunCommand("ip netns add " + name);
  if (!added.ok()) return added.status();
  // Owned from here on: deleted even if the next step fails.
  std::unique_ptr<Netns> netns(new Netns(name));
  absl::StatusOr<std::string> up = netns->Run("ip link set lo up");
  if (!up.ok()) return up.status();
  return netns;
}

Netns::~Netns() {
  // Processes inside keep the namespace (and its veths) alive after
  // `ip netns del`: kill them first, and reap those that are our children.
  std::vector<pid_t> killed;
  for (int attempt = 0; attempt < 100; ++attempt) {
    absl::StatusOr<std::vector<pid_t>> pids = Pids();
    if (!pids.ok() || pids->empty()) break;
    for (pid_t pid : *pids) {
      if (pid == getpid()) continue;  // A thread of ours that entered it.
      kill(pid, SIGKILL);
      killed.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Reap our own children among them (waitpid fails at once with ECHILD
  // for the others), so no zombie outlives the namespace.
  for (pid_t pid : killed) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  absl::StatusOr<std::string> deleted = RunCommand("ip netns del " + name_);
  if (!deleted.ok()) {
    std::fprintf(stderr, "netns: %s\n",
                 static_cast<std::string>(deleted.status().message()).c_str());
  }
}

absl::StatusOr<std::string> Netns::Run(std::string_view command) const {
  absl::StatusOr<std::string> result = RunCommand(absl::StrCat(
      "ip netns exec ", name_, " /bin/sh -c ", ShellQuote(command)));
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("in network namespace \"", name_,
                                     "\": ", result.status().message()));
  }
  return result;
}

absl::Status Netns::RunInThread(const std::function<absl::Status()>& fn) const {
  absl::Status status;
  std::thread thread([&] {
    status = EnterNetns(name_);
    if (status.ok()) status = fn();
  });
  thread.join();
  return status;
}

absl::StatusOr<std::unique_ptr<Process>> Netns::Spawn(
    const std::vector<std::string>& argv,
    const std::string& output_path) const {
  if (argv.empty()) {
    return absl::InvalidArgumentError("Netns::Spawn: empty command");
  }
  // execvpe() searches the caller's PATH, not the one it passes on (Bazel's
  // lacks /usr/sbin): name `ip` by its path. `ip netns exec` then looks up
  // argv[0] with kPath.
  std::string ip = "/usr/sbin/ip";
  for (const char* candidate :
       {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(candidate, X_OK) == 0) {
      ip = candidate;
      break;
    }
  }
  std::vector<std::string> args = {ip, "netns", "exec", name_};
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<char*> c_args = CStrings(args);
  std::vector<std::string> env_strings = ChildEnvironment();
  std::vector<char*> env = CStrings(env_strings);
  int out = open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                 0644);
  if (out < 0) {
    return absl::ErrnoToStatus(
        errno,
        absl::StrCat("opening ", output_path, " for the output of ", argv[0]));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Dies with the test process, even if that is SIGKILLed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out, 1);
    dup2(out, 2);
    execve(c_args[0], c_args.data(), env.data());
    _exit(127);
  }
  int error = errno;
  close(out);
  if (pid < 0) return absl::ErrnoToStatus(error, "fork");
  std::unique_ptr<Process> process(new Process(pid));
  // Return once the child is inside the namespace (`ip netns exec` enters
  // it before exec'ing argv), so Pids() and the destructor see it.
  struct stat target;
  if (stat(("/var/run/netns/" + name_).c_str(), &target) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("stat of netns ", name_));
  }
  std::string own = absl::StrCat("/proc/", pid, "/ns/net");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    struct stat current;
    if (stat(own.c_str(), &current) == 0 && current.st_ino == target.st_ino &&
        current.st_dev == target.st_dev) {
      break;
    }
    if (!process->Running()) break;  // Failed early: its output says why.
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("`", argv[0], "` did not enter network namespace \"",
                       name_, "\" within 5 s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return process;
}

absl::Status Netns::Sysctl(std::string_view key, std::string_view value) const {
  std::string path = "/proc/sys/";
  for (char c : key) path += c == '.' ? '/' : c;
  return RunInThread([&]() -> absl::Status {
    // /proc/sys/net/* belongs to the opening thread's namespace.
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("sysctl ", Absl(key), " in \"", name_,
                              "\": opening ", path));
    }
    ssize_t n = write(fd, value.data(), value.size());
    int error = errno;
    close(fd);
    if (n != static_cast<ssize_t>(value.size())) {
      return absl::ErrnoToStatus(
          error, absl::StrCat("sysctl ", Absl(key), "=", Absl(value), " in \"",
                              name_, "\""));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<pid_t>> Netns::Pids() const {
  absl::StatusOr<std::string> out = RunCommand("ip netns pids " + name_);
  if (!out.ok()) return out.status();
  std::vector<pid_t> pids;
  for (absl::string_view line :
       absl::StrSplit(*out, '\n', absl::SkipWhitespace())) {
    int pid;
    if (absl::SimpleAtoi(line, &pid)) pids.push_back(pid);
  }
  return pids;
}

std::string Netns::MountBpffsThen(std::string_view command) {
  return absl::StrCat("mount -t bpf bpf /sys/fs/bpf && ", Absl(command));
}

}  // namespace anylb::lab
