// ExecProber: commands run with posix_spawn in their own process group,
// watched by one reaper thread through pidfds and output pipes.
//
// Ownership and threading: Start() and RunCommand() only append a Job to
// State::queue (under State::mu) and wake the reaper through an eventfd.
// Everything else (spawning, the running commands, their fds, deadlines,
// reaping, calling `done`) belongs to the reaper thread alone, which never
// holds the mutex while it calls `done`. The destructor sets `stopping`,
// wakes the reaper and joins it; the reaper SIGKILLs every running command's
// process group, reaps them and completes every command with "checker
// stopped".

#include "lbnode/health/exec_prober.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace anylb::health {
namespace {

constexpr size_t kMaxOutput = 4096;
constexpr char kPath[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
constexpr char kStopped[] = "checker stopped";

using CommandDone = absl::AnyInvocable<void(CommandResult) &&>;

std::string ErrnoText(int error) { return std::strerror(error); }

int PidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(
      syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  if (abbrev == nullptr) return absl::StrCat("signal ", sig);
  return absl::StrCat("SIG", abbrev);
}

// Job is one command waiting for a process slot.
struct Job {
  CommandRequest request;
  CommandDone done;
  absl::Time enqueued;
  absl::Time deadline;
  // Set when the command must not run (bad argv): completed at once.
  std::string refused;
};

// Running is one started command (reaper thread only).
struct Running {
  Job job;
  pid_t pid = -1;
  int pidfd = -1;
  int out_fd = -1;  // -1 once closed.
  std::string output;
  bool timed_out = false;
};

void Complete(Job& job, CommandResult result) {
  if (job.done != nullptr) std::move(job.done)(std::move(result));
}

CommandResult FailedResult(const Job& job, std::string error) {
  CommandResult result;
  result.exit_status = -1;
  result.error = std::move(error);
  result.latency = absl::Now() - job.enqueued;
  return result;
}

// ReadOutput reads what `r`'s pipe holds, keeping the first kMaxOutput
// bytes; closes the pipe at EOF or error. At most 64 KiB per call, so that
// a command that writes without end cannot hold the reaper.
void ReadOutput(Running& r) {
  char buffer[4096];
  for (int reads = 0; r.out_fd >= 0 && reads < 16; ++reads) {
    ssize_t n = read(r.out_fd, buffer, sizeof(buffer));
    if (n > 0) {
      size_t keep =
          std::min(static_cast<size_t>(n),
                   kMaxOutput - std::min(kMaxOutput, r.output.size()));
      r.output.append(buffer, keep);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close(r.out_fd);  // EOF or a read error.
    r.out_fd = -1;
  }
}

}  // namespace

struct ExecProber::State {
  explicit State(size_t max) : max_processes(max) {}
  ~State() {
    if (wake_fd >= 0) close(wake_fd);
  }

  const size_t max_processes;
  int wake_fd = -1;
  std::thread reaper;

  absl::Mutex mu;
  std::deque<Job> queue ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;

  // Reaper thread only.
  std::vector<Running> running;

  void Wake() const {
    uint64_t one = 1;
    ssize_t n = write(wake_fd, &one, sizeof(one));
    (void)n;  // EAGAIN: the counter is already non-zero, a wake is pending.
  }

  void Enqueue(Job job) {
    std::optional<Job> too_late;
    {
      absl::MutexLock lock(&mu);
      if (stopping) {
        // The prober is being destroyed (a `done` that runs another
        // command): nobody will run it.
        too_late = std::move(job);
      } else {
        queue.push_back(std::move(job));
      }
    }
    if (too_late.has_value()) {
      Complete(*too_late, FailedResult(*too_late, kStopped));
    } else {
      Wake();
    }
  }

  void Loop();
  // StartJobs starts queued jobs while slots are free and completes queued
  // jobs whose deadline passed. Returns false when stopping.
  bool StartJobs();
  void Spawn(Job job);
  void Stop();
  absl::Time NextDeadline();
};

bool ExecProber::State::StartJobs() {
  for (;;) {
    std::vector<Job> expired;
    std::optional<Job> next;
    {
      absl::MutexLock lock(&mu);
      if (stopping) return false;
      absl::Time now = absl::Now();
      for (auto it = queue.begin(); it != queue.end();) {
        if (it->refused.empty() && it->deadline <= now) {
          expired.push_back(std::move(*it));
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      // A refused job takes no slot.
      if (!queue.empty() &&
          (running.size() < max_processes || !queue.front().refused.empty())) {
        next = std::move(queue.front());
        queue.pop_front();
      }
    }
    for (Job& job : expired) {
      Complete(job,
               FailedResult(
                   job, absl::StrCat("timed out after ",
                                     absl::FormatDuration(job.request.timeout),
                                     " waiting to start (max_processes=",
                                     max_processes, " commands busy)")));
    }
    if (!next.has_value()) return true;
    if (!next->refused.empty()) {
      std::string error = std::move(next->refused);
      Complete(*next, FailedResult(*next, std::move(error)));
      continue;
    }
    Spawn(std::move(*next));
  }
}

void ExecProber::State::Spawn(Job job) {
  const std::string& program = job.request.argv[0];
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int error = errno;
    Complete(job, FailedResult(job, absl::StrCat("exec ", program, ": pipe: ",
                                                 ErrnoText(error))));
    return;
  }
  int write_fd = pipe_fds[1];
  if (write_fd <= 2) {
    // stdin/stdout/stderr of the daemon were closed: keep the pipe off the
    // descriptors the child's file actions overwrite.
    write_fd = fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, 3);
    close(pipe_fds[1]);
  }
  int read_fd = pipe_fds[0];
  fcntl(read_fd, F_SETFL, fcntl(read_fd, F_GETFL) | O_NONBLOCK);

  std::vector<char*> argv;
  argv.reserve(job.request.argv.size() + 1);
  for (std::string& arg : job.request.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = {kPath};
  env_strings.reserve(job.request.env.size() + 1);
  for (const auto& [name, value] : job.request.env) {
    env_strings.push_back(absl::StrCat(name, "=", value));
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, write_fd, 2);
  // Nothing else of the daemon's (sockets, XSKs, BPF maps) leaks into the
  // command, even descriptors opened without O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);  // Its own group, led by itself.
  sigset_t signals;
  sigemptyset(&signals);
  posix_spawnattr_setsigmask(&attr, &signals);
  sigfillset(&signals);
  posix_spawnattr_setsigdefault(&attr, &signals);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(),
                       envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  close(write_fd);
  if (rc != 0) {
    close(read_fd);
    Complete(job, FailedResult(job, absl::StrCat("exec ", program, ": ",
                                                 ErrnoText(rc))));
    return;
  }
  int pidfd = PidfdOpen(pid);
  if (pidfd < 0) {
    // ESRCH: somebody else reaped it already (SIGCHLD set to SIG_IGN, or a
    // wait for any child elsewhere in the process).
    int error = errno;
    kill(-pid, SIGKILL);
    close(read_fd);
    Complete(job, FailedResult(
                      job, absl::StrCat("exec ", program,
                                        ": pidfd_open: ", ErrnoText(error))));
    return;
  }
  Running r;
  r.job = std::move(job);
  r.pid = pid;
  r.pidfd = pidfd;
  r.out_fd = read_fd;
  running.push_back(std::move(r));
}

namespace {

// Finish reaps `r`'s process (its pidfd is readable) and completes it.
void Finish(Running& r) {
  ReadOutput(r);
  if (r.out_fd >= 0) {
    // The command's own children may still hold the pipe: what they write
    // after it exited is not its output.
    close(r.out_fd);
    r.out_fd = -1;
  }
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  int rc;
  do {
    rc = waitid(P_PID, r.pid, &info, WEXITED);
  } while (rc != 0 && errno == EINTR);
  int wait_error = rc != 0 ? errno : 0;
  close(r.pidfd);
  r.pidfd = -1;

  CommandResult result;
  result.output = std::move(r.output);
  result.latency = absl::Now() - r.job.enqueued;
  if (r.timed_out) {
    result.error = absl::StrCat("timed out after ",
                                absl::FormatDuration(r.job.request.timeout));
  } else if (rc != 0) {
    result.error =
        absl::StrCat("exec ", r.job.request.argv[0],
                     ": exit status lost: waitid: ", ErrnoText(wait_error));
  } else if (info.si_code == CLD_EXITED) {
    result.exit_status = info.si_status;
  } else {
    result.error = absl::StrCat("killed by ", SignalName(info.si_status));
  }
  Complete(r.job, std::move(result));
}

}  // namespace

void ExecProber::State::Stop() {
  for (Running& r : running) {
    kill(-r.pid, SIGKILL);
    PidfdSendSignal(r.pidfd, SIGKILL);
  }
  for (Running& r : running) {
    siginfo_t info;
    while (waitid(P_PID, r.pid, &info, WEXITED) != 0 && errno == EINTR) {
    }
    close(r.pidfd);
    if (r.out_fd >= 0) close(r.out_fd);
    Complete(r.job, FailedResult(r.job, kStopped));
  }
  running.clear();
  std::deque<Job> left;
  {
    absl::MutexLock lock(&mu);
    left.swap(queue);
  }
  for (Job& job : left) Complete(job, FailedResult(job, kStopped));
}

absl::Time ExecProber::State::NextDeadline() {
  absl::Time next = absl::InfiniteFuture();
  for (const Running& r : running) {
    if (!r.timed_out) next = std::min(next, r.job.deadline);
  }
  absl::MutexLock lock(&mu);
  for (const Job& job : queue) next = std::min(next, job.deadline);
  return next;
}

void ExecProber::State::Loop() {
  std::vector<pollfd> fds;
  for (;;) {
    if (!StartJobs()) break;

    absl::Time deadline = NextDeadline();
    int timeout_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      double ms = absl::ToDoubleMilliseconds(deadline - absl::Now());
      timeout_ms = static_cast<int>(
          std::clamp(std::ceil(ms), 0.0, static_cast<double>(1 << 30)));
    }
    fds.clear();
    fds.push_back({wake_fd, POLLIN, 0});
    for (const Running& r : running) {
      fds.push_back({r.pidfd, POLLIN, 0});
      fds.push_back({r.out_fd, POLLIN, 0});  // -1 is ignored by poll.
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      // Cannot happen with valid descriptors; avoid a busy loop anyway.
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (fds[0].revents != 0) {
      uint64_t count;
      ssize_t got = read(wake_fd, &count, sizeof(count));
      (void)got;
    }
    // Output first, then exits (fds[1 + 2i] is running[i]'s pidfd).
    std::vector<size_t> exited;
    for (size_t i = 0; i < running.size(); ++i) {
      if (n > 0 && fds[2 + 2 * i].revents != 0) ReadOutput(running[i]);
      if (n > 0 && fds[1 + 2 * i].revents != 0) exited.push_back(i);
    }
    // Deadlines: SIGKILL the whole group; the pidfd reports the end.
    absl::Time now = absl::Now();
    for (Running& r : running) {
      if (!r.timed_out && r.job.deadline <= now) {
        r.timed_out = true;
        kill(-r.pid, SIGKILL);
        PidfdSendSignal(r.pidfd, SIGKILL);  // Even if it left its group.
      }
    }
    if (!exited.empty()) {
      std::vector<Running> still;
      std::vector<Running> done;
      size_t next = 0;
      for (size_t i = 0; i < running.size(); ++i) {
        if (next < exited.size() && exited[next] == i) {
          done.push_back(std::move(running[i]));
          ++next;
        } else {
          still.push_back(std::move(running[i]));
        }
      }
      running = std::move(still);
      // Completed after `running` shrank, so a `done` that starts another
      // command finds the slot free.
      for (Running& r : done) Finish(r);
    }
  }
  Stop();
}

absl::StatusOr<std::unique_ptr<ExecProber>> ExecProber::Create(
    size_t max_processes) {
  if (max_processes == 0) {
    return absl::InvalidArgumentError(
        "exec prober: max_processes must be at least 1");
  }
  int self = PidfdOpen(getpid());
  if (self < 0) {
    int error = errno;
    return absl::UnimplementedError(
        absl::StrCat("exec prober: pidfd_open: ", ErrnoText(error),
                     " (needs Linux 5.3 or later)"));
  }
  close(self);
  auto state = std::make_unique<State>(max_processes);
  state->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->wake_fd < 0) {
    int error = errno;
    return absl::InternalError(
        absl::StrCat("exec prober: eventfd: ", ErrnoText(error)));
  }
  std::unique_ptr<ExecProber> prober(new ExecProber());
  State* raw = state.get();
  prober->state_ = std::move(state);
  raw->reaper = std::thread([raw] { raw->Loop(); });
  return prober;
}

ExecProber::~ExecProber() {
  if (state_ == nullptr) return;
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  state_->Wake();
  state_->reaper.join();
}

void ExecProber::RunCommand(CommandRequest request, CommandDone done) {
  Job job;
  job.enqueued = absl::Now();
  job.deadline = job.enqueued + request.timeout;
  if (request.argv.empty() || request.argv[0].empty()) {
    job.refused = "exec: empty command (argv[0] must be an absolute path)";
  } else if (request.argv[0][0] != '/') {
    job.refused = absl::StrCat("exec ", request.argv[0],
                               ": argv[0] must be an absolute path, e.g. "
                               "/usr/local/bin/",
                               request.argv[0]);
  }
  job.request = std::move(request);
  job.done = std::move(done);
  state_->Enqueue(std::move(job));
}

void ExecProber::Start(const ProbeRequest& request, ProbeDone done) {
  CommandRequest command;
  command.timeout = request.timeout;
  bool dynamic_weight = false;
  if (request.check.has_exec()) {
    const lb::v1::ExecCheck& exec = request.check.exec();
    command.argv.assign(exec.argv().begin(), exec.argv().end());
    dynamic_weight = exec.dynamic_weight();
  }
  command.env = {
      {"LB_SERVICE", request.service},
      {"LB_BACKEND_ADDRESS", request.backend.address().ToString()},
      {"LB_BACKEND_PORT", absl::StrCat(request.backend.port())},
      {"LB_CHECK_ADDRESS", request.target.address().ToString()},
      {"LB_CHECK_PORT", absl::StrCat(request.target.port())},
  };
  if (!request.check.has_exec()) {
    // Refused through the queue, so `done` runs on the reaper like always.
    command.argv.clear();
  }
  bool is_exec = request.check.has_exec();
  RunCommand(
      std::move(command), [done = std::move(done), dynamic_weight,
                           is_exec](CommandResult command_result) mutable {
        ProbeResult result;
        result.latency = command_result.latency;
        if (!is_exec) {
          result.error = "not an exec check (HealthCheck.exec is not set)";
        } else if (command_result.exit_status < 0) {
          result.error = std::move(command_result.error);
        } else if (command_result.exit_status == 0) {
          result.passed = true;
        } else if (dynamic_weight && command_result.exit_status >= 2) {
          result.passed = true;
          result.dynamic_weight =
              static_cast<uint32_t>(command_result.exit_status - 2);
        } else {
          result.error =
              absl::StrCat("exit status ", command_result.exit_status);
          // The first line the command printed says why, usually.
          std::string output = command_result.output.substr(
              0, std::min<size_t>(200, command_result.output.find('\n')));
          if (!output.empty()) absl::StrAppend(&result.error, ": ", output);
        }
        std::move(done)(std::move(result));
      });
}

}  // namespace anylb::health
