// Runner: carries out one lbctl Command against the controller, through the
// lb.v1.Controller stub, and prints the result (format.h) or one error line.
//
// ipvsadm's changes map to the matching RPCs (-A CreateService, -a
// AddBackend, ...); -C and -R are single ApplyServices transactions;
// -L reads ListServices (or GetService), GetStats and GetHealth. gRPC failures
// become messages a network engineer reads: which service or real server, what
// is wrong, what to do ("-a: service TCP 192.0.2.1:80 does not exist (add it
// with -A first)").
//
// Threading: one Runner per invocation, used from one thread.

#ifndef ANYLB_CONTROLLER_LBCTL_RUNNER_H_
#define ANYLB_CONTROLLER_LBCTL_RUNNER_H_

#include <iosfwd>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/lbctl/command.h"
#include "grpcpp/client_context.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::lbctl {

// Exit codes (lbctl --help).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // refused or unreachable controller
inline constexpr int kExitUsage = 2;   // bad command line or input

struct RunnerOptions {
  // For messages: "cannot reach the controller at <controller>".
  std::string controller;
  absl::Duration timeout = absl::Seconds(10);
  OutputFormat output = OutputFormat::kTable;
  // Sent as `authorization: Bearer <token>` metadata on every call; only
  // for plaintext channels (TLS channels carry the token as call
  // credentials instead).
  std::string plaintext_token;
  bool tls = true;
};

class Runner {
 public:
  // `stub`, `out`, `err` and `in` must outlive the Runner. `in` is read by
  // -R and by apply -f -.
  Runner(lb::v1::Controller::StubInterface* stub, RunnerOptions options,
         std::ostream& out, std::ostream& err, std::istream& in);

  // Run carries out `command`: output on `out`, one "lbctl: ..." line on
  // `err` on failure; returns the exit code.
  int Run(const Command& command);

 private:
  absl::Status Dispatch(const Command& command);
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  // RpcError: the message for a failed call of `command`.
  absl::Status RpcError(const Command& command, const grpc::Status& status,
                        const std::string& not_found,
                        const std::string& already_exists) const;

  absl::Status AddService(const Command& command);
  absl::Status EditService(const Command& command);
  absl::Status DeleteService(const Command& command);
  absl::Status AddServer(const Command& command);
  absl::Status EditServer(const Command& command);
  absl::Status DeleteServer(const Command& command);
  absl::Status List(const Command& command);
  absl::Status Zero(const Command& command);
  absl::Status Clear(const Command& command);
  absl::Status Save(const Command& command);
  absl::Status Restore(const Command& command);
  absl::Status Apply(const Command& command);
  absl::Status Nodes(const Command& command);
  absl::Status Drain(const Command& command, bool drain);
  // NodeRpcError: RpcError for a node RPC (NOT_FOUND: not registered).
  absl::Status NodeRpcError(const Command& command, const grpc::Status& status);
  // UpdateNode: node-weight and node-local-addresses (UpdateNode RPC with
  // the one field in the mask).
  absl::Status UpdateNode(const Command& command);
  absl::Status ShowStatus(const Command& command);

  // SetServiceForwarding: UpdateService of the forwarding only.
  absl::Status SetServiceForwarding(const Command& command,
                                    const lb::v1::Forwarding& forwarding);
  // GetService for the real-server verbs, with their not-found message.
  absl::StatusOr<lb::v1::Service> GetService(const Command& command);
  absl::StatusOr<lb::v1::GetStatsResponse> GetStats(const Command& command);
  // GetHealth: empty when the controller predates the RPC.
  absl::StatusOr<lb::v1::GetHealthResponse> GetHealth(const Command& command);

  lb::v1::Controller::StubInterface* stub_;
  RunnerOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::istream& in_;
};

}  // namespace anylb::lbctl

#endif  // ANYLB_CONTROLLER_LBCTL_RUNNER_H_
