// HealthMonitor: keepalived's checker loop for one lbnode — every real
// server of every service with a health_check is probed every `interval`,
// and its state follows rise/fall:
//
//   * a new target (or one whose check changed) starts UNSPECIFIED, which
//     counts as up (lb.v1 BackendHealth: "absent counts as up"); its FIRST
//     probe result decides at once (UP on pass, DOWN on failure), so a dead
//     new server leaves within one timeout and a restarted node does not
//     blackhole live ones;
//   * then UP → DOWN after `fall` consecutive failures, DOWN → UP after
//     `rise` consecutive passes (defaults from lb.v1.HealthCheck: interval
//     5s, timeout 2s, rise 2, fall 3);
//   * an exec check with dynamic_weight also carries a weight; a change of
//     weight alone is a change too (on_change runs).
//
// Scheduling: each target's probes start `interval` apart (the first after
// a random fraction of the interval, so a thousand targets do not fire
// together); at most `max_in_flight` probes run at once, the others wait
// their turn in order of due time (a probe is late, never skipped
// silently: `probes_delayed` counts it). A probe never blocks another or the
// caller: they run on the Prober's threads.
//
// On each state change the monitor logs one line (service, backend, old →
// new, the reason: the last probe's error, or "passed 2 probes"), counts
// it, calls on_change, and hands the check's notify_up / notify_down command
// to options.run_command (lbnode: Checker::RunCommand, which does not wait
// for it; its failure is logged) with
// LB_SERVICE, LB_BACKEND_ADDRESS, LB_BACKEND_PORT, LB_STATE (up|down) and
// LB_REASON in its environment. The initial UNSPECIFIED → UP is not a
// change worth a notify (nothing was down); UNSPECIFIED → DOWN is.
//
// Threading: every public method is thread-safe. on_change is called on the
// monitor's own thread, without the monitor's lock held; it may call
// Statuses() but must not call SetTargets() or destroy the monitor.
// The destructor stops the loop and waits for running probes.

#ifndef ANYLB_LBNODE_HEALTH_MONITOR_H_
#define ANYLB_LBNODE_HEALTH_MONITOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/metrics/metric_family.h"
#include "lb/v1/health.pb.h"
#include "lbnode/health/exec_prober.h"
#include "lbnode/health/probe.h"

namespace anylb::health {

// BackendKey names a checked real server: the service's name and the real
// server's endpoint as configured (port 0 stays 0: lb.v1's "the VIP's
// port"), the same identity as lb.v1.BackendRef.
struct BackendKey {
  std::string service;
  Endpoint backend;
  friend bool operator==(const BackendKey&, const BackendKey&) = default;
  friend auto operator<=>(const BackendKey&, const BackendKey&) = default;
};

// CheckTarget is one real server to check.
struct CheckTarget {
  BackendKey key;
  // Where probes go (health_check_address/port, else the real server's
  // address and effective port). Port 0 only for exec checks.
  Endpoint connect;
  // The service's check, as configured (the monitor applies the defaults).
  lb::v1::HealthCheck check;
};

// BackendHealthStatus is this node's view of one real server.
struct BackendHealthStatus {
  BackendKey key;
  lb::v1::HealthState state = lb::v1::HEALTH_STATE_UNSPECIFIED;
  // When state last changed (InfinitePast before the first verdict).
  absl::Time last_change = absl::InfinitePast();
  // The last failed probe's error while DOWN or failing; empty when the
  // last probe passed.
  std::string last_error;
  // From an exec check with dynamic_weight that passed with exit status
  // 2..255: status - 2 (0 quiesces, as keepalived's misc_dynamic); unset:
  // the configured weight.
  std::optional<uint32_t> dynamic_weight;
  uint64_t probes = 0;    // Completed probes.
  uint64_t failures = 0;  // Failed probes.
  uint64_t transitions = 0;
};

// HealthChange is passed to on_change.
struct HealthChange {
  BackendKey key;
  lb::v1::HealthState from = lb::v1::HEALTH_STATE_UNSPECIFIED;
  lb::v1::HealthState to = lb::v1::HEALTH_STATE_UNSPECIFIED;
  std::optional<uint32_t> dynamic_weight;
  std::string reason;
};

struct MonitorOptions {
  // Runs the probes; not owned, must outlive the monitor (lbnode passes a
  // Checker).
  Prober* prober = nullptr;
  // At most this many probes at once (>= 1).
  size_t max_in_flight = 64;
  // Called after each state or dynamic-weight change (see Threading).
  std::function<void(const HealthChange&)> on_change;
  // Runs notify_up / notify_down commands; null: they are not run.
  std::function<void(CommandRequest)> run_command;
};

class HealthMonitor {
 public:
  // Create checks the options (INVALID_ARGUMENT: null prober,
  // max_in_flight 0) and starts the loop with no targets.
  static absl::StatusOr<std::unique_ptr<HealthMonitor>> Create(
      MonitorOptions options);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // SetTargets replaces the set of checked real servers. A target whose
  // key, connect endpoint and check are unchanged keeps its state, counts
  // and schedule; any other is new (see the file comment); targets no
  // longer listed are forgotten (their running probe's result is ignored).
  // Errors (INVALID_ARGUMENT, nothing changed): a duplicate key, a check
  // with no kind set, timeout >= interval, interval below 10 ms.
  absl::Status SetTargets(std::vector<CheckTarget> targets);

  // Statuses: every target's current view, sorted by key.
  std::vector<BackendHealthStatus> Statuses() const;
  std::optional<BackendHealthStatus> Status(const BackendKey& key) const;

  // CollectMetrics appends the monitor's families:
  //   anylb_health_state{service,backend}            gauge 1 up, 0 down,
  //                                                  -1 not yet checked
  //   anylb_health_probes_total{service,backend,result="pass|fail"}
  //   anylb_health_transitions_total{service,backend,to="up|down"}
  //   anylb_health_dynamic_weight{service,backend}   gauge (exec checks)
  //   anylb_health_probes_in_flight                  gauge
  //   anylb_health_probes_delayed_total              counter
  // backend label: "198.51.100.2:80", "[2001:db8::2]:80".
  absl::Status CollectMetrics(std::vector<metrics::MetricFamily>* out) const;

 private:
  HealthMonitor() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace anylb::health

#endif  // ANYLB_LBNODE_HEALTH_MONITOR_H_
