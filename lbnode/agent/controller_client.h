// ControllerClient: lbnode's side of the controller (DESIGN.md: "controller
// -gRPC watch-> lbnode agent -> immutable snapshot -> workers").
//
//   ControllerClientOptions options{.target = "ctl.example:7443", ...};
//   ASSIGN_OR_RETURN(auto client, ControllerClient::Create(
//       options, /*apply=*/[&](const lb::v1::ConfigSnapshot& s) {
//         return daemon.ApplySnapshot(s);  // BuildEngineConfig + swap
//       },
//       /*status=*/[&] { return daemon.NodeStatus(); }, &cache));
//   client->Start();
//
// The watch thread connects (TLS with the node's certificate = mTLS, or
// insecure), calls RegisterNode, then WatchConfig(known_revision = the
// applied revision) and calls `apply` for each snapshot that arrives. On OK
// the snapshot is written to the SnapshotCache and its revision becomes the
// applied one; on an error (the controller validated the snapshot, so the
// problem is this node's) it is logged and counted, and the running config
// and revision stay. When the stream ends or the controller is unreachable,
// it reconnects with exponential backoff and jitter, resuming from the
// applied revision, so a controller restart with no change pushes nothing.
//
// The report thread calls ReportStatus every report_interval (and soon
// after each apply, and at once on ReportNow(): lbnode calls it after a
// health change so the controller's fleet verdict does not wait a period)
// with `status`'s NodeStatus, in which the client sets node_name,
// applied_revision, version and reported_at. A report that
// times out or finds no connection also ends the watch stream, so a
// silent network failure (no reset) leads to a reconnect too.
//
// Threading: `apply` runs on the watch thread, `status` on the report
// thread; neither is ever called on a dataplane thread, and the client
// never blocks the dataplane (apply only publishes a new snapshot). The
// accessors and Collect may be called from any thread. Stop() (or the
// destructor) cancels the RPCs in flight and joins both threads; the
// callbacks are not called after it returns.

#ifndef ANYLB_LBNODE_AGENT_CONTROLLER_CLIENT_H_
#define ANYLB_LBNODE_AGENT_CONTROLLER_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/metrics/metric_family.h"
#include "lb/v1/config.pb.h"
#include "lb/v1/node.pb.h"
#include "lbnode/agent/dataplane_metrics.h"
#include "lbnode/agent/snapshot_builder.h"
#include "lbnode/agent/snapshot_cache.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace anylb::agent {

struct ControllerClientOptions {
  // HOST:PORT of anylb-controller.
  std::string target;
  // This node's name; with mTLS it must be the CN of node_cert_file.
  std::string node_name;
  // Sent in RegisterNode and NodeStatus.
  std::string version = "anylb-lbnode";
  // Plaintext gRPC (the controller's --insecure mode; local trials only).
  bool insecure = false;
  // PEM files. ca_file: the CA that signed the controller's certificate
  // (empty: the system roots). node_cert_file + node_key_file: this node's
  // client certificate (both or neither).
  std::string ca_file;
  std::string node_cert_file;
  std::string node_key_file;
  // Overrides the name checked in the controller's certificate (tests).
  std::string tls_server_name;
  // ReportStatus period.
  absl::Duration report_interval = absl::Seconds(5);
  // Reconnect backoff: initial, doubled per failed attempt up to max, each
  // delay times a random factor in [0.8, 1.2].
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  // Deadline of the unary RPCs (RegisterNode, ReportStatus).
  absl::Duration rpc_timeout = absl::Seconds(10);
  // The revision the node already forwards with (from the SnapshotCache at
  // start; 0: none). WatchConfig skips it.
  uint64_t applied_revision = 0;
};

// ApplyFn makes `snapshot` the running config (all or nothing) or says why
// it cannot.
using ApplyFn = std::function<absl::Status(const lb::v1::ConfigSnapshot&)>;
// StatusFn returns the node's status: dataplane state, per-service and
// per-backend counters, drops. Called on the report thread.
using StatusFn = std::function<lb::v1::NodeStatus()>;

// NodeStatusFromMetrics sums the workers' counters into the NodeStatus the
// controller sums over nodes: per service and backend (names from each
// worker's NameTable, so a worker still on the previous config counts
// under that config's names), and drops by reason. node_name, revision and
// dataplane state are the caller's (the client sets the first two).
lb::v1::NodeStatus NodeStatusFromMetrics(const DataplaneMetricsInput& input);

// MarkAnnounced sets ServiceStats.announced on every service of `names`
// whose VIP is in `announced` (the Announcer's announced VIPs), adding a
// ServiceStats for a service the status does not list yet.
void MarkAnnounced(const NameTable& names, const std::set<IpAddress>& announced,
                   lb::v1::NodeStatus* status);

class ControllerClient {
 public:
  // Create checks the options and reads the PEM files (errors name the
  // flag's file and the fix); it does not connect. `cache` may be null (no
  // cache) and must outlive the client.
  static absl::StatusOr<std::unique_ptr<ControllerClient>> Create(
      ControllerClientOptions options, ApplyFn apply, StatusFn status,
      const SnapshotCache* cache);

  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;
  ~ControllerClient();

  // Start starts the watch and report threads (once).
  void Start();
  // Stop cancels the RPCs and joins the threads (idempotent).
  void Stop();
  // ReportNow wakes the report thread to report at once (coalesced with a
  // report already due). Any thread; returns at once.
  void ReportNow();

  // applied_revision is the revision of the last snapshot `apply` accepted
  // (or options.applied_revision).
  uint64_t applied_revision() const { return applied_revision_.load(); }
  // connected: registered and watching.
  bool connected() const { return connected_.load(); }
  // reconnects counts connection attempts after a failure or a lost stream.
  uint64_t reconnects() const { return reconnects_.load(); }
  uint64_t apply_failures() const { return apply_failures_.load(); }

  // Collect appends anylb_controller_connected,
  // anylb_controller_applied_revision, anylb_controller_reconnects_total and
  // anylb_controller_apply_failures_total.
  absl::Status Collect(std::vector<metrics::MetricFamily>* out) const;

 private:
  struct Pem {
    std::string ca;
    std::string cert;
    std::string key;
  };
  class Session;

  ControllerClient(ControllerClientOptions options, Pem pem, ApplyFn apply,
                   StatusFn status, const SnapshotCache* cache);

  void WatchLoop();
  void ReportLoop();
  // RunSession registers and watches until the stream ends; returns why it
  // ended, and sets *established once RegisterNode succeeded.
  absl::Status RunSession(bool* established);
  void HandleSnapshot(const lb::v1::ConfigSnapshot& snapshot);
  absl::Status Report();
  // Track/Untrack register a context that Stop() cancels; Track returns
  // false (and cancels it) when stopping.
  bool Track(grpc::ClientContext* context);
  void Untrack(grpc::ClientContext* context);

  const ControllerClientOptions options_;
  const Pem pem_;
  const ApplyFn apply_;
  const StatusFn status_;
  const SnapshotCache* const cache_;

  std::atomic<uint64_t> applied_revision_;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> apply_failures_{0};

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool report_now_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<grpc::ClientContext*> contexts_ ABSL_GUARDED_BY(mu_);
  // The open WatchConfig call; the report thread cancels it when a report
  // cannot reach the controller.
  grpc::ClientContext* watch_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The current session's channel; the report thread uses it.
  std::shared_ptr<Session> session_ ABSL_GUARDED_BY(mu_);

  std::thread watch_thread_;
  std::thread report_thread_;
};

}  // namespace anylb::agent

#endif  // ANYLB_LBNODE_AGENT_CONTROLLER_CLIENT_H_
