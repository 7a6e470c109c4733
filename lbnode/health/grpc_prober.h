// GrpcProber runs lb.v1.GrpcCheck probes: one unary call of
// grpc.health.v1.Health/Check (service = check.grpc.service_name) with the
// request's timeout as deadline, over a channel to the target (plaintext,
// or TLS with the system's roots when check.grpc.tls; :authority from
// check.grpc.authority when set). It passes on SERVING; any other status
// or RPC error fails with it named ("status NOT_SERVING", "rpc UNAVAILABLE:
// failed to connect ..."). Channels are cached per (target, tls,
// authority) and dropped when unused for a minute.
//
// The calls are asynchronous (one CompletionQueue served by the prober's
// own thread): a slow server holds no thread.
//
// Threading: see probe.h.

#ifndef ANYLB_LBNODE_HEALTH_GRPC_PROBER_H_
#define ANYLB_LBNODE_HEALTH_GRPC_PROBER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "lbnode/health/probe.h"

namespace anylb::health {

class GrpcProber : public Prober {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcProber>> Create();
  ~GrpcProber() override;

  void Start(const ProbeRequest& request, ProbeDone done) override;

 private:
  GrpcProber() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace anylb::health

#endif  // ANYLB_LBNODE_HEALTH_GRPC_PROBER_H_
