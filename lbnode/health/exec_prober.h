// ExecProber runs lb.v1.ExecCheck probes (keepalived's MISC_CHECK) and the
// notify_up / notify_down commands of state changes.
//
// A command is argv[0] (an absolute path) with argv[1..], run without a
// shell, in its own process group, with stdin from /dev/null and stdout /
// stderr captured (the first 4 KiB, for error messages), and an environment
// of PATH=/usr/sbin:/usr/bin:/sbin:/bin plus the request's variables. After
// `timeout` the whole process group gets SIGKILL and the run fails with
// "timed out after ...". Children are reaped by the prober's own thread
// (pidfd + poll), never with a blocking wait on the caller's thread, and
// never by waiting for an arbitrary child (the daemon's other children,
// e.g. vtysh, are not touched). At most `max_processes` commands run at
// once; more wait in order.
//
// Exec check verdict: exit 0 passes (weight unchanged); with dynamic_weight,
// exit 1 fails and 2..255 passes with dynamic_weight = status - 2; without
// it any non-zero exit fails. A signal, a failed exec ("exec
// /usr/local/bin/check: No such file or directory") or a timeout fails.
// The environment: LB_SERVICE, LB_BACKEND_ADDRESS, LB_BACKEND_PORT (the real
// server as configured) and LB_CHECK_ADDRESS / LB_CHECK_PORT (the connect
// target).
//
// Threading: see probe.h; RunCommand is thread-safe and returns at once.

#ifndef ANYLB_LBNODE_HEALTH_EXEC_PROBER_H_
#define ANYLB_LBNODE_HEALTH_EXEC_PROBER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lbnode/health/probe.h"

namespace anylb::health {

// CommandRequest is one command to run.
struct CommandRequest {
  std::vector<std::string> argv;  // argv[0] absolute.
  // Added to the minimal environment (see the file comment).
  std::vector<std::pair<std::string, std::string>> env;
  absl::Duration timeout = absl::Seconds(10);
};

// CommandResult is how a command ended.
struct CommandResult {
  // The exit status 0..255 when it exited; -1 when it was killed by a
  // signal, timed out or could not be started (error says which).
  int exit_status = -1;
  std::string error;   // Empty for a normal exit.
  std::string output;  // First 4 KiB of stdout+stderr.
  absl::Duration latency;
};

class ExecProber : public Prober {
 public:
  static absl::StatusOr<std::unique_ptr<ExecProber>> Create(
      size_t max_processes = 16);
  ~ExecProber() override;

  // Start runs request.check.exec (see the file comment).
  void Start(const ProbeRequest& request, ProbeDone done) override;

  // RunCommand runs `request` and calls `done` exactly once (null: nobody
  // waits for the result).
  void RunCommand(CommandRequest request,
                  absl::AnyInvocable<void(CommandResult) &&> done = nullptr);

 private:
  ExecProber() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace anylb::health

#endif  // ANYLB_LBNODE_HEALTH_EXEC_PROBER_H_
