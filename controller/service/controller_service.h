// ControllerService: the lb.v1.Controller gRPC service. Durable state
// (services, node settings, the revision) lives in the Store; what nodes
// report (status, counters, health) and which of them are connected lives
// here, in memory, and is rebuilt by the nodes' next reports after a
// restart.
//
// Every handler first authorizes the call (controller/auth: role per
// method; a node may only act as itself), then does its work: a change is
// one Store::Commit of the edit plus Validate (state_edits.h), so an
// invalid or refused request stores nothing. absl::Status becomes a gRPC
// status in one place (ToGrpcStatus).
//
// WatchConfig: a node's stream gets the snapshot at the current revision
// unless it already has it (known_revision), then every later revision.
// Streams end when the client goes away or on Shutdown().
//
// Fleet health: each node's latest health_reports (ReportStatus) are kept
// with the time they arrived. EvaluateHealth decides the verdicts
// (fleet_health.h) and, only when a published verdict changes, commits
// them (ReconcileBackendHealth) as one revision, which WatchConfig then
// pushes to every node. It runs after every ReportStatus and every
// `health_interval` (a node that goes silent stops counting after the
// TTL). For the first report TTL after the controller starts, a real
// server that no node has reported on yet keeps its stored verdict.
//
// Threading: gRPC calls the handlers on its own threads; the in-memory node
// table and RPC statistics are guarded by mu_, health evaluation is
// serialized by health_mu_ (taken before mu_, never inside it). A thread
// of its own runs the health timer until Shutdown(). Shutdown() before the
// grpc::Server's Shutdown lets watch streams return promptly.

#ifndef ANYLB_CONTROLLER_SERVICE_CONTROLLER_SERVICE_H_
#define ANYLB_CONTROLLER_SERVICE_CONTROLLER_SERVICE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metric_family.h"
#include "controller/service/fleet_health.h"
#include "controller/store/store.h"
#include "grpcpp/support/status.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::controller {

// ToGrpcStatus: the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

struct ControllerServiceOptions {
  // False only in the documented insecure mode (local trials): every call
  // is allowed.
  bool enforce_auth = true;
  // How often an idle WatchConfig stream looks for cancellation.
  absl::Duration watch_poll = absl::Milliseconds(500);
  // The fleet-health rules (--health_report_ttl, --health_down_fraction).
  FleetHealthOptions health;
  // How often verdicts are re-evaluated without a report; zero: only on
  // reports and EvaluateHealth() calls (tests).
  absl::Duration health_interval = absl::Seconds(1);
  // The clock for report ages and last_change (a fake one in tests).
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

class ControllerService final : public lb::v1::Controller::Service {
 public:
  ControllerService(Store* store, ControllerServiceOptions options);
  ~ControllerService() override;

  // Shutdown ends every WatchConfig stream (they return OK... UNAVAILABLE
  // "controller shutting down") and refuses new ones.
  void Shutdown();

  // Collect: anylb_controller_* metric families for /metrics.
  absl::Status Collect(std::vector<metrics::MetricFamily>* out) const;

  // EvaluateHealth decides the fleet's verdicts from the reports held now
  // and commits them if a published one changed (logging each change).
  // Errors: the store's.
  absl::Status EvaluateHealth();

  grpc::Status CreateService(grpc::ServerContext* context,
                             const lb::v1::CreateServiceRequest* request,
                             lb::v1::ServiceResponse* response) override;
  grpc::Status UpdateService(grpc::ServerContext* context,
                             const lb::v1::UpdateServiceRequest* request,
                             lb::v1::ServiceResponse* response) override;
  grpc::Status DeleteService(grpc::ServerContext* context,
                             const lb::v1::DeleteServiceRequest* request,
                             lb::v1::DeleteServiceResponse* response) override;
  grpc::Status GetService(grpc::ServerContext* context,
                          const lb::v1::GetServiceRequest* request,
                          lb::v1::ServiceResponse* response) override;
  grpc::Status ListServices(grpc::ServerContext* context,
                            const lb::v1::ListServicesRequest* request,
                            lb::v1::ListServicesResponse* response) override;
  grpc::Status AddBackend(grpc::ServerContext* context,
                          const lb::v1::AddBackendRequest* request,
                          lb::v1::ServiceResponse* response) override;
  grpc::Status UpdateBackend(grpc::ServerContext* context,
                             const lb::v1::UpdateBackendRequest* request,
                             lb::v1::ServiceResponse* response) override;
  grpc::Status RemoveBackend(grpc::ServerContext* context,
                             const lb::v1::RemoveBackendRequest* request,
                             lb::v1::ServiceResponse* response) override;
  grpc::Status ApplyServices(grpc::ServerContext* context,
                             const lb::v1::ApplyServicesRequest* request,
                             lb::v1::ApplyServicesResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context,
                        const lb::v1::GetStatsRequest* request,
                        lb::v1::GetStatsResponse* response) override;
  grpc::Status ZeroCounters(grpc::ServerContext* context,
                            const lb::v1::ZeroCountersRequest* request,
                            lb::v1::ZeroCountersResponse* response) override;
  grpc::Status GetHealth(grpc::ServerContext* context,
                         const lb::v1::GetHealthRequest* request,
                         lb::v1::GetHealthResponse* response) override;
  grpc::Status RegisterNode(grpc::ServerContext* context,
                            const lb::v1::RegisterNodeRequest* request,
                            lb::v1::RegisterNodeResponse* response) override;
  grpc::Status WatchConfig(
      grpc::ServerContext* context, const lb::v1::WatchConfigRequest* request,
      grpc::ServerWriter<lb::v1::WatchConfigResponse>* writer) override;
  grpc::Status ReportStatus(grpc::ServerContext* context,
                            const lb::v1::ReportStatusRequest* request,
                            lb::v1::ReportStatusResponse* response) override;
  grpc::Status ListNodes(grpc::ServerContext* context,
                         const lb::v1::ListNodesRequest* request,
                         lb::v1::ListNodesResponse* response) override;
  grpc::Status UpdateNode(grpc::ServerContext* context,
                          const lb::v1::UpdateNodeRequest* request,
                          lb::v1::NodeResponse* response) override;
  grpc::Status DrainNode(grpc::ServerContext* context,
                         const lb::v1::DrainNodeRequest* request,
                         lb::v1::NodeResponse* response) override;
  grpc::Status UndrainNode(grpc::ServerContext* context,
                           const lb::v1::UndrainNodeRequest* request,
                           lb::v1::NodeResponse* response) override;

 private:
  // NodeRuntime: what the controller knows of a node beyond its settings.
  struct NodeRuntime {
    absl::Time registered_at = absl::InfinitePast();
    std::string version;
    int streams = 0;  // open WatchConfig streams
    std::optional<lb::v1::NodeStatus> status;
    absl::Time status_received_at = absl::InfinitePast();
  };
  struct RpcStats {
    uint64_t calls = 0;
    double seconds = 0;
  };
  class Call;

  // Edit commits `edit` followed by Validate.
  absl::StatusOr<CommitResult> Edit(
      absl::FunctionRef<absl::Status(StoreState&)> edit);
  // EditService / EditNode: the common shape of the RPCs that change one
  // service (answering with it) or one node (answering with it).
  grpc::Status EditService(
      const grpc::ServerContext& context, const char* method,
      lb::v1::ServiceResponse* response,
      absl::FunctionRef<absl::StatusOr<std::string>(StoreState&)> edit);
  grpc::Status EditNode(const grpc::ServerContext& context, const char* method,
                        const std::string& node_name,
                        lb::v1::NodeResponse* response,
                        absl::FunctionRef<absl::Status(StoreState&)> edit);
  // CheckNodeIdentity: in enforced mode a node may only act as itself.
  absl::Status CheckNodeIdentity(const grpc::ServerContext& context,
                                 const std::string& node_name) const;
  absl::Status FillNode(const StoreState& state, const std::string& name,
                        lb::v1::Node* node) const;
  void Record(const std::string& method, grpc::StatusCode code,
              absl::Duration elapsed);
  // Verdicts: DecideFleetHealth over the reports held now.
  std::map<BackendKey, FleetVerdict> Verdicts(absl::Time now) const;
  void HealthTimer();
  // FillHealthViews: GetHealth's answer for the services in `wanted` (all
  // when empty).
  void FillHealthViews(const StoreState& state,
                       const std::set<std::string>& wanted,
                       const std::map<BackendKey, FleetVerdict>& verdicts,
                       lb::v1::GetHealthResponse* response) const;

  Store* const store_;
  const ControllerServiceOptions options_;
  std::atomic<bool> shutdown_{false};

  mutable absl::Mutex mu_;
  std::map<std::string, NodeRuntime> nodes_ ABSL_GUARDED_BY(mu_);
  // Summed counters at the last ZeroCounters, by service name; GetStats
  // reports the difference.
  std::map<std::string, lb::v1::ServiceStats> zero_ ABSL_GUARDED_BY(mu_);
  // By (method, code).
  std::map<std::pair<std::string, std::string>, RpcStats> rpcs_
      ABSL_GUARDED_BY(mu_);
  // By BackendHealthName: when this controller saw the published verdict
  // change (also to up, which the store does not keep), and how often.
  std::map<std::string, absl::Time> health_changed_at_ ABSL_GUARDED_BY(mu_);
  // By (service, "address:port").
  std::map<std::pair<std::string, std::string>, uint64_t> health_transitions_
      ABSL_GUARDED_BY(mu_);

  const absl::Time started_at_;
  absl::Mutex health_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex timer_mu_;
  bool stop_timer_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread health_thread_;
};

}  // namespace anylb::controller

#endif  // ANYLB_CONTROLLER_SERVICE_CONTROLLER_SERVICE_H_
