#include "lbnode/daemon/signals.h"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/status/status.h"

namespace anylb::lbnode {

absl::StatusOr<std::unique_ptr<SignalWatcher>> SignalWatcher::Create() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, s);
  sigset_t old_mask;
  int rc = pthread_sigmask(SIG_BLOCK, &mask, &old_mask);
  if (rc != 0) return absl::ErrnoToStatus(rc, "blocking daemon signals");
  int fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    return absl::ErrnoToStatus(error, "signalfd");
  }
  return std::unique_ptr<SignalWatcher>(new SignalWatcher(fd, old_mask));
}

SignalWatcher::SignalWatcher(int fd, const sigset_t& old_mask)
    : fd_(fd), old_mask_(old_mask) {}

SignalWatcher::~SignalWatcher() {
  close(fd_);
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

DaemonSignal SignalWatcher::Wait(absl::Duration timeout, int* signo) {
  pollfd p{fd_, POLLIN, 0};
  int64_t ms = absl::ToInt64Milliseconds(timeout);
  if (ms < 0) ms = 0;
  if (ms > INT32_MAX) ms = INT32_MAX;
  int n = poll(&p, 1, static_cast<int>(ms));
  if (n <= 0) return DaemonSignal::kNone;  // Timeout or EINTR.
  signalfd_siginfo info{};
  ssize_t got = read(fd_, &info, sizeof(info));
  if (got != static_cast<ssize_t>(sizeof(info))) return DaemonSignal::kNone;
  if (signo != nullptr) *signo = static_cast<int>(info.ssi_signo);
  switch (info.ssi_signo) {
    case SIGTERM:
    case SIGINT:
      return DaemonSignal::kStop;
    case SIGHUP:
      return DaemonSignal::kReload;
    case SIGUSR1:
      return DaemonSignal::kDump;
    default:
      return DaemonSignal::kNone;
  }
}

}  // namespace anylb::lbnode
