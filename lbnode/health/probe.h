// Probe types shared by every health checker: what one probe of one real
// server is asked to do (ProbeRequest) and what it found (ProbeResult).
//
// A Prober starts a probe and returns at once; the probe runs on the
// prober's own thread(s) (an event loop, a gRPC completion queue, a process
// reaper) and calls `done` exactly once, on one of those threads, within
// request.timeout plus a small scheduling margin — also when the prober is
// destroyed first (then with passed=false, error "checker stopped").
//
// Threading: Start() is thread-safe. `done` must not block for long (it runs
// on the prober's thread) and must not call back into the same prober's
// destructor.

#ifndef ANYLB_LBNODE_HEALTH_PROBE_H_
#define ANYLB_LBNODE_HEALTH_PROBE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "lb/v1/health.pb.h"

namespace anylb::health {

// ProbeRequest is one probe of one real server.
struct ProbeRequest {
  // Where the probe connects / sends: the real server's address and port,
  // or its health_check_address / health_check_port when set (keepalived's
  // connect_ip / connect_port). Port 0 only for an exec check.
  Endpoint target;
  // The check to run (exactly one of HealthCheck.check is set; interval,
  // rise, fall and notify are the monitor's business, not the probe's).
  lb::v1::HealthCheck check;
  // The whole probe (connect, TLS, request, answer; or the command's run)
  // must finish within this; otherwise it fails with "timed out after ...".
  absl::Duration timeout = absl::Seconds(2);
  // For messages and the exec environment (LB_SERVICE, LB_BACKEND_ADDRESS,
  // LB_BACKEND_PORT): the service's name and the real server as configured
  // (not the connect address).
  std::string service;
  Endpoint backend;
};

// ProbeResult is what one probe found.
struct ProbeResult {
  bool passed = false;
  // Why it failed, for logs, metrics and `lbctl -L`, naming what was seen:
  // "connect 192.0.2.21:80: Connection refused", "HTTP status 500, want
  // 200-299", "timed out after 2s", "body does not contain \"ok\"". Empty
  // when passed.
  std::string error;
  // An exec check with dynamic_weight that exited 2..255: the weight
  // (status - 2). Unset otherwise.
  std::optional<uint32_t> dynamic_weight;
  // Wall time the probe took.
  absl::Duration latency;
};

// ProbeDone receives a probe's result (exactly once).
using ProbeDone = absl::AnyInvocable<void(ProbeResult) &&>;

// Prober runs probes of some kinds asynchronously (see the file comment).
class Prober {
 public:
  virtual ~Prober() = default;
  // Start begins `request` and returns without waiting for it.
  virtual void Start(const ProbeRequest& request, ProbeDone done) = 0;
};

}  // namespace anylb::health

#endif  // ANYLB_LBNODE_HEALTH_PROBE_H_
