// Checker: hands each probe to the prober of its kind (see checker.h).
//
// Ownership: the Checker owns its three probers; each runs its own
// thread(s). Destruction stops them in turn (exec, grpc, socket), each
// completing its pending probes with "checker stopped" before it returns.

#include "lbnode/health/checker.h"

#include <utility>

#include "common/status_macros.h"
#include "lbnode/health/grpc_prober.h"
#include "lbnode/health/socket_prober.h"

namespace anylb::health {

absl::StatusOr<std::unique_ptr<Checker>> Checker::Create() {
  std::unique_ptr<Checker> checker(new Checker());
  ASSIGN_OR_RETURN(checker->socket_, SocketProber::Create());
  ASSIGN_OR_RETURN(checker->grpc_, GrpcProber::Create());
  ASSIGN_OR_RETURN(checker->exec_, ExecProber::Create());
  return checker;
}

Checker::~Checker() {
  exec_.reset();
  grpc_.reset();
  socket_.reset();
}

void Checker::Start(const ProbeRequest& request, ProbeDone done) {
  switch (request.check.check_case()) {
    case lb::v1::HealthCheck::kGrpc:
      grpc_->Start(request, std::move(done));
      return;
    case lb::v1::HealthCheck::kExec:
      exec_->Start(request, std::move(done));
      return;
    case lb::v1::HealthCheck::kTcp:
    case lb::v1::HealthCheck::kHttp:
    case lb::v1::HealthCheck::kUdp:
    case lb::v1::HealthCheck::kDns:
    // No check kind: the socket prober fails it on its own thread, so `done`
    // never runs on the caller's (who may hold a lock that `done` takes).
    case lb::v1::HealthCheck::CHECK_NOT_SET:
      socket_->Start(request, std::move(done));
      return;
  }
  socket_->Start(request, std::move(done));  // A kind added to the proto.
}

void Checker::RunCommand(CommandRequest request,
                         absl::AnyInvocable<void(CommandResult) &&> done) {
  exec_->RunCommand(std::move(request), std::move(done));
}

}  // namespace anylb::health
