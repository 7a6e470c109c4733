// SignalWatcher turns the daemon's signals into events its control loop
// reads, through signalfd(2):
//
//   SIGTERM, SIGINT  stop: detach, close sockets, exit 0
//   SIGHUP           reload the config file (a bad file keeps the running one)
//   SIGUSR1          dump the counters to stderr
//
// Create() blocks these signals in the calling thread, so it must run in
// main() before any other thread starts: threads inherit the mask, and the
// signals then wait in the signalfd instead of interrupting a worker. The
// destructor restores the previous mask.

#ifndef ANYLB_LBNODE_DAEMON_SIGNALS_H_
#define ANYLB_LBNODE_DAEMON_SIGNALS_H_

#include <signal.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::lbnode {

// DaemonSignal is what a received signal asks for.
enum class DaemonSignal {
  kNone,    // Timed out: nothing arrived.
  kStop,    // SIGTERM or SIGINT.
  kReload,  // SIGHUP.
  kDump,    // SIGUSR1.
};

class SignalWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<SignalWatcher>> Create();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher();

  // Wait returns the next signal, or kNone after `timeout` (which may be
  // zero: poll). `signo` (optional) receives the signal's number.
  DaemonSignal Wait(absl::Duration timeout, int* signo = nullptr);

 private:
  SignalWatcher(int fd, const sigset_t& old_mask);
  int fd_;
  sigset_t old_mask_;
};

}  // namespace anylb::lbnode

#endif  // ANYLB_LBNODE_DAEMON_SIGNALS_H_
