// Checker: the Prober lbnode uses — it runs every kind of lb.v1 HealthCheck
// by handing each request to the prober of its kind:
//   tcp, http (and https), udp, dns → SocketProber (socket_prober.h): one
//                                      epoll thread, non-blocking sockets;
//   grpc                            → GrpcProber (grpc_prober.h);
//   exec                            → ExecProber (exec_prober.h).
// A request with no check set, or one the prober cannot run (a bad regex,
// an exec argv[0] that is not absolute, ...), fails at once through `done`
// with an error naming the field; nothing throws or aborts.
//
// Probes leave from the node's kernel stack (ordinary sockets in the
// node's network namespace, never the dataplane).
//
// Threading: see probe.h. Destroying the Checker completes every running
// probe with "checker stopped" before it returns.

#ifndef ANYLB_LBNODE_HEALTH_CHECKER_H_
#define ANYLB_LBNODE_HEALTH_CHECKER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "lbnode/health/exec_prober.h"
#include "lbnode/health/probe.h"

namespace anylb::health {

class Checker : public Prober {
 public:
  // Create starts the probers' threads; an error names what failed
  // (e.g. "epoll_create1: Too many open files").
  static absl::StatusOr<std::unique_ptr<Checker>> Create();
  ~Checker() override;

  void Start(const ProbeRequest& request, ProbeDone done) override;

  // RunCommand runs a notify command (ExecProber::RunCommand).
  void RunCommand(CommandRequest request,
                  absl::AnyInvocable<void(CommandResult) &&> done = nullptr);

 private:
  Checker() = default;
  std::unique_ptr<Prober> socket_;
  std::unique_ptr<Prober> grpc_;
  std::unique_ptr<ExecProber> exec_;
};

}  // namespace anylb::health

#endif  // ANYLB_LBNODE_HEALTH_CHECKER_H_
