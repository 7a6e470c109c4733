#include "controller/service/controller_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "controller/auth/auth.h"
#include "controller/service/state_edits.h"
#include "google/protobuf/util/time_util.h"

namespace anylb::controller {
namespace {

constexpr char kMethodPrefix[] = "/lb.v1.Controller/";

// Counters arithmetic for GetStats: sum over nodes, minus the baseline of
// the last ZeroCounters (never below 0: a node that restarted counts from
// 0 again).
void Add(lb::v1::Counters* into, const lb::v1::Counters& c) {
  into->set_connections(into->connections() + c.connections());
  into->set_packets_in(into->packets_in() + c.packets_in());
  into->set_packets_out(into->packets_out() + c.packets_out());
  into->set_bytes_in(into->bytes_in() + c.bytes_in());
  into->set_bytes_out(into->bytes_out() + c.bytes_out());
}

uint64_t Minus(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

void Subtract(lb::v1::Counters* from, const lb::v1::Counters& c) {
  from->set_connections(Minus(from->connections(), c.connections()));
  from->set_packets_in(Minus(from->packets_in(), c.packets_in()));
  from->set_packets_out(Minus(from->packets_out(), c.packets_out()));
  from->set_bytes_in(Minus(from->bytes_in(), c.bytes_in()));
  from->set_bytes_out(Minus(from->bytes_out(), c.bytes_out()));
}

std::string StatsKey(const lb::v1::BackendRef& b) {
  return absl::StrCat(b.address(), "|", b.port());
}

// Sum merges `add` (one node's stats of a service) into `into`.
void Sum(lb::v1::ServiceStats* into, const lb::v1::ServiceStats& add) {
  into->set_service_name(add.service_name());
  Add(into->mutable_counters(), add.counters());
  into->set_announced(into->announced() || add.announced());
  for (const lb::v1::BackendStats& b : add.backends()) {
    lb::v1::BackendStats* target = nullptr;
    for (lb::v1::BackendStats& existing : *into->mutable_backends()) {
      if (StatsKey(existing.backend()) == StatsKey(b.backend())) {
        target = &existing;
        break;
      }
    }
    if (target == nullptr) {
      target = into->add_backends();
      *target->mutable_backend() = b.backend();
    }
    Add(target->mutable_counters(), b.counters());
    target->set_active_connections(target->active_connections() +
                                   b.active_connections());
    target->set_inactive_connections(target->inactive_connections() +
                                     b.inactive_connections());
  }
}

// BackendLabel: the real server as metrics name it, with its effective
// port ("198.51.100.2:80", "[2001:db8::2]:80").
std::string BackendLabel(const lb::v1::Service& service,
                         const lb::v1::BackendRef& ref) {
  const uint32_t port = ref.port() == 0 ? service.port() : ref.port();
  return ref.address().find(':') != std::string::npos
             ? absl::StrCat("[", ref.address(), "]:", port)
             : absl::StrCat(ref.address(), ":", port);
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// Call: one RPC's authorization, timing and accounting.
class ControllerService::Call {
 public:
  Call(ControllerService* service, const grpc::ServerContext& context,
       const char* method)
      : service_(service),
        method_(method),
        start_(absl::Now()),
        auth_(Authorize(context, absl::StrCat(kMethodPrefix, method),
                        service->options_.enforce_auth)) {}

  bool authorized() const { return auth_.ok(); }
  grpc::Status Refused() { return Finish(auth_); }
  grpc::Status Finish(const absl::Status& status) {
    return Finish(ToGrpcStatus(status));
  }
  grpc::Status Finish(grpc::Status status) {
    service_->Record(method_, status.error_code(), absl::Now() - start_);
    return status;
  }

 private:
  ControllerService* service_;
  std::string method_;
  absl::Time start_;
  grpc::Status auth_;
};

ControllerService::ControllerService(Store* store,
                                     ControllerServiceOptions options)
    : store_(store), options_(std::move(options)), started_at_(options_.now()) {
  if (options_.health_interval > absl::ZeroDuration()) {
    health_thread_ = std::thread([this] { HealthTimer(); });
  }
}

ControllerService::~ControllerService() { Shutdown(); }

void ControllerService::Shutdown() {
  shutdown_ = true;
  {
    absl::MutexLock lock(&timer_mu_);
    stop_timer_ = true;
  }
  if (health_thread_.joinable()) health_thread_.join();
}

void ControllerService::HealthTimer() {
  absl::MutexLock lock(&timer_mu_);
  while (!timer_mu_.AwaitWithTimeout(absl::Condition(&stop_timer_),
                                     options_.health_interval)) {
    timer_mu_.Unlock();
    if (absl::Status s = EvaluateHealth(); !s.ok()) {
      LB_LOG(kWarning) << "evaluating fleet health: " << s;
    }
    timer_mu_.Lock();
  }
}

std::map<BackendKey, FleetVerdict> ControllerService::Verdicts(
    absl::Time now) const {
  std::vector<NodeReports> reports;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, runtime] : nodes_) {
      if (!runtime.status || runtime.status->health_reports().empty()) continue;
      reports.push_back({name,
                         runtime.status_received_at,
                         {runtime.status->health_reports().begin(),
                          runtime.status->health_reports().end()}});
    }
  }
  return DecideFleetHealth(reports, now, options_.health);
}

absl::Status ControllerService::EvaluateHealth() {
  absl::MutexLock health_lock(&health_mu_);
  const absl::Time now = options_.now();
  const bool keep_unreported = now - started_at_ < options_.health.report_ttl;
  const std::map<BackendKey, FleetVerdict> verdicts = Verdicts(now);
  std::map<std::string, lb::v1::BackendHealth> next;
  // On the published state first: a steady fleet neither copies the state
  // nor commits (and a fleet without health checks skips even that).
  std::shared_ptr<const StoreState> current = store_->Current();
  if (verdicts.empty() && current->backend_health.empty()) {
    return absl::OkStatus();
  }
  if (ReconcileBackendHealth(*current, verdicts, now, keep_unreported, &next)
          .empty()) {
    return absl::OkStatus();
  }
  std::vector<HealthChange> changes;
  absl::StatusOr<CommitResult> result =
      store_->Commit([&](StoreState& state) -> absl::Status {
        changes = ReconcileBackendHealth(state, verdicts, now, keep_unreported,
                                         &next);
        state.backend_health = std::move(next);
        return Validate(state);
      });
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("publishing health verdicts: ",
                                     result.status().message()));
  }
  if (!result->changed) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  for (const HealthChange& change : changes) {
    LB_LOG(kInfo) << DescribeHealthChange(change) << " (revision "
                  << result->state->revision << ")";
    health_changed_at_[BackendHealthName(change.backend)] = now;
    auto service = result->state->services.find(change.backend.service_name());
    if (service == result->state->services.end()) continue;
    ++health_transitions_[{change.backend.service_name(),
                           BackendLabel(service->second, change.backend)}];
  }
  return absl::OkStatus();
}

absl::StatusOr<CommitResult> ControllerService::Edit(
    absl::FunctionRef<absl::Status(StoreState&)> edit) {
  return store_->Commit([&](StoreState& state) -> absl::Status {
    RETURN_IF_ERROR(edit(state));
    DropOrphanVerdicts(state);
    return Validate(state);
  });
}

absl::Status ControllerService::CheckNodeIdentity(
    const grpc::ServerContext& context, const std::string& node_name) const {
  if (node_name.empty()) {
    return absl::InvalidArgumentError("node_name is required");
  }
  if (!options_.enforce_auth) return absl::OkStatus();
  std::optional<Principal> caller = CallerOf(context);
  if (!caller || caller->name != node_name) {
    return absl::PermissionDeniedError(
        absl::StrCat("node \"", caller ? caller->name : "?",
                     "\" may not act as node \"", node_name, "\""));
  }
  return absl::OkStatus();
}

void ControllerService::Record(const std::string& method, grpc::StatusCode code,
                               absl::Duration elapsed) {
  static const char* const kCodes[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  const std::string code_name =
      index >= 0 && index < 17 ? kCodes[index] : "UNKNOWN";
  absl::MutexLock lock(&mu_);
  RpcStats& stats = rpcs_[{method, code_name}];
  ++stats.calls;
  stats.seconds += absl::ToDoubleSeconds(elapsed);
}

grpc::Status ControllerService::EditService(
    const grpc::ServerContext& context, const char* method,
    lb::v1::ServiceResponse* response,
    absl::FunctionRef<absl::StatusOr<std::string>(StoreState&)> edit) {
  Call call(this, context, method);
  if (!call.authorized()) return call.Refused();
  std::string name;
  absl::StatusOr<CommitResult> result = Edit([&](StoreState& s) {
    ASSIGN_OR_RETURN(name, edit(s));
    return absl::OkStatus();
  });
  if (!result.ok()) return call.Finish(result.status());
  *response->mutable_service() = result->state->services.at(name);
  response->set_revision(result->state->revision);
  if (result->changed) {
    LB_LOG(kInfo) << method << ": " << Describe(response->service())
                  << " at revision " << response->revision();
  }
  return call.Finish(grpc::Status::OK);
}

grpc::Status ControllerService::EditNode(
    const grpc::ServerContext& context, const char* method,
    const std::string& node_name, lb::v1::NodeResponse* response,
    absl::FunctionRef<absl::Status(StoreState&)> edit) {
  Call call(this, context, method);
  if (!call.authorized()) return call.Refused();
  absl::StatusOr<CommitResult> result = Edit(edit);
  if (!result.ok()) return call.Finish(result.status());
  if (result->changed) {
    LB_LOG(kInfo) << method << ": node " << node_name << " at revision "
                  << result->state->revision;
  }
  response->set_revision(result->state->revision);
  return call.Finish(
      FillNode(*result->state, node_name, response->mutable_node()));
}

// --- Services ---

grpc::Status ControllerService::CreateService(
    grpc::ServerContext* context, const lb::v1::CreateServiceRequest* request,
    lb::v1::ServiceResponse* response) {
  return EditService(*context, "CreateService", response, [&](StoreState& s) {
    return controller::CreateService(s, request->service());
  });
}

grpc::Status ControllerService::UpdateService(
    grpc::ServerContext* context, const lb::v1::UpdateServiceRequest* request,
    lb::v1::ServiceResponse* response) {
  return EditService(*context, "UpdateService", response, [&](StoreState& s) {
    return controller::UpdateService(s, request->selector(), request->service(),
                                     request->update_mask());
  });
}

grpc::Status ControllerService::DeleteService(
    grpc::ServerContext* context, const lb::v1::DeleteServiceRequest* request,
    lb::v1::DeleteServiceResponse* response) {
  Call call(this, *context, "DeleteService");
  if (!call.authorized()) return call.Refused();
  absl::StatusOr<CommitResult> result = Edit([&](StoreState& s) {
    return controller::DeleteService(s, request->selector());
  });
  if (!result.ok()) return call.Finish(result.status());
  response->set_revision(result->state->revision);
  return call.Finish(grpc::Status::OK);
}

grpc::Status ControllerService::GetService(
    grpc::ServerContext* context, const lb::v1::GetServiceRequest* request,
    lb::v1::ServiceResponse* response) {
  Call call(this, *context, "GetService");
  if (!call.authorized()) return call.Refused();
  std::shared_ptr<const StoreState> state = store_->Current();
  absl::StatusOr<std::string> name = FindService(*state, request->selector());
  if (!name.ok()) return call.Finish(name.status());
  *response->mutable_service() = state->services.at(*name);
  response->set_revision(state->revision);
  return call.Finish(grpc::Status::OK);
}

grpc::Status ControllerService::ListServices(
    grpc::ServerContext* context, const lb::v1::ListServicesRequest*,
    lb::v1::ListServicesResponse* response) {
  Call call(this, *context, "ListServices");
  if (!call.authorized()) return call.Refused();
  std::shared_ptr<const StoreState> state = store_->Current();
  for (const auto& [name, service] : state->services) {
    *response->add_services() = service;
  }
  response->set_revision(state->revision);
  return call.Finish(grpc::Status::OK);
}

// --- Real servers ---

grpc::Status ControllerService::AddBackend(
    grpc::ServerContext* context, const lb::v1::AddBackendRequest* request,
    lb::v1::ServiceResponse* response) {
  return EditService(*context, "AddBackend", response, [&](StoreState& s) {
    return controller::AddBackend(s, request->selector(), request->backend());
  });
}

grpc::Status ControllerService::UpdateBackend(
    grpc::ServerContext* context, const lb::v1::UpdateBackendRequest* request,
    lb::v1::ServiceResponse* response) {
  return EditService(*context, "UpdateBackend", response, [&](StoreState& s) {
    return controller::UpdateBackend(s, request->selector(), request->backend(),
                                     request->update_mask());
  });
}

grpc::Status ControllerService::RemoveBackend(
    grpc::ServerContext* context, const lb::v1::RemoveBackendRequest* request,
    lb::v1::ServiceResponse* response) {
  return EditService(*context, "RemoveBackend", response, [&](StoreState& s) {
    return controller::RemoveBackend(s, request->selector(), request->address(),
                                     request->port());
  });
}

grpc::Status ControllerService::ApplyServices(
    grpc::ServerContext* context, const lb::v1::ApplyServicesRequest* request,
    lb::v1::ApplyServicesResponse* response) {
  Call call(this, *context, "ApplyServices");
  if (!call.authorized()) return call.Refused();
  const std::vector<lb::v1::Service> services(request->services().begin(),
                                              request->services().end());
  std::vector<lb::v1::ServiceChange> changes;
  auto apply = [&](StoreState& s) -> absl::Status {
    if (request->expected_revision() != 0 &&
        s.revision != request->expected_revision()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the store is at revision ", s.revision, ", not the expected ",
          request->expected_revision(), "; read it again and retry"));
    }
    ASSIGN_OR_RETURN(changes, controller::ApplyServices(s, services));
    DropOrphanVerdicts(s);
    return Validate(s);
  };
  if (request->dry_run()) {
    StoreState copy = *store_->Current();
    absl::Status status = apply(copy);
    if (!status.ok()) return call.Finish(status);
    response->set_revision(store_->Current()->revision);
  } else {
    absl::StatusOr<CommitResult> result = store_->Commit(apply);
    if (!result.ok()) return call.Finish(result.status());
    response->set_revision(result->state->revision);
    if (result->changed) {
      LB_LOG(kInfo) << "applied " << services.size()
                    << " service(s) at revision " << response->revision();
    }
  }
  for (lb::v1::ServiceChange& change : changes) {
    *response->add_changes() = std::move(change);
  }
  return call.Finish(grpc::Status::OK);
}

// --- Statistics ---

grpc::Status ControllerService::GetStats(grpc::ServerContext* context,
                                         const lb::v1::GetStatsRequest* request,
                                         lb::v1::GetStatsResponse* response) {
  Call call(this, *context, "GetStats");
  if (!call.authorized()) return call.Refused();
  std::shared_ptr<const StoreState> state = store_->Current();
  absl::StatusOr<std::set<std::string>> selected =
      FindServices(*state, request->selectors());
  if (!selected.ok()) return call.Finish(selected.status());
  const std::set<std::string>& wanted = *selected;
  std::map<std::string, lb::v1::ServiceStats> sums;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [node, runtime] : nodes_) {
      if (!runtime.status) continue;
      *response->add_nodes() = *runtime.status;
      for (const lb::v1::ServiceStats& s : runtime.status->service_stats()) {
        Sum(&sums[s.service_name()], s);
      }
    }
    for (auto& [name, sum] : sums) {
      auto zero = zero_.find(name);
      if (zero == zero_.end()) continue;
      Subtract(sum.mutable_counters(), zero->second.counters());
      for (lb::v1::BackendStats& b : *sum.mutable_backends()) {
        for (const lb::v1::BackendStats& z : zero->second.backends()) {
          if (StatsKey(z.backend()) == StatsKey(b.backend())) {
            Subtract(b.mutable_counters(), z.counters());
          }
        }
      }
    }
  }
  for (const auto& [name, service] : state->services) {
    if (!wanted.empty() && !wanted.contains(name)) continue;
    lb::v1::ServiceStats* out = response->add_services();
    auto it = sums.find(name);
    if (it != sums.end()) *out = it->second;
    out->set_service_name(name);
  }
  return call.Finish(grpc::Status::OK);
}

grpc::Status ControllerService::ZeroCounters(
    grpc::ServerContext* context, const lb::v1::ZeroCountersRequest* request,
    lb::v1::ZeroCountersResponse*) {
  Call call(this, *context, "ZeroCounters");
  if (!call.authorized()) return call.Refused();
  std::shared_ptr<const StoreState> state = store_->Current();
  absl::StatusOr<std::set<std::string>> selected =
      FindServices(*state, request->selectors());
  if (!selected.ok()) return call.Finish(selected.status());
  const std::set<std::string>& wanted = *selected;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::string, lb::v1::ServiceStats> sums;
    for (const auto& [node, runtime] : nodes_) {
      if (!runtime.status) continue;
      for (const lb::v1::ServiceStats& s : runtime.status->service_stats()) {
        Sum(&sums[s.service_name()], s);
      }
    }
    for (const auto& [name, service] : state->services) {
      if (!wanted.empty() && !wanted.contains(name)) continue;
      zero_[name] = sums[name];
    }
  }
  return call.Finish(grpc::Status::OK);
}

// --- Health ---

grpc::Status ControllerService::GetHealth(
    grpc::ServerContext* context, const lb::v1::GetHealthRequest* request,
    lb::v1::GetHealthResponse* response) {
  Call call(this, *context, "GetHealth");
  if (!call.authorized()) return call.Refused();
  std::shared_ptr<const StoreState> state = store_->Current();
  absl::StatusOr<std::set<std::string>> selected =
      FindServices(*state, request->selectors());
  if (!selected.ok()) return call.Finish(selected.status());
  const std::set<std::string>& wanted = *selected;
  const absl::Time now = options_.now();
  const std::map<BackendKey, FleetVerdict> verdicts = Verdicts(now);
  FillHealthViews(*state, wanted, verdicts, response);
  response->set_revision(state->revision);
  return call.Finish(grpc::Status::OK);
}

void ControllerService::FillHealthViews(
    const StoreState& state, const std::set<std::string>& wanted,
    const std::map<BackendKey, FleetVerdict>& verdicts,
    lb::v1::GetHealthResponse* response) const {
  auto timestamp = [](absl::Time t) {
    return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
        absl::ToUnixNanos(t));
  };
  absl::MutexLock lock(&mu_);
  for (const auto& [name, service] : state.services) {
    if (!wanted.empty() && !wanted.contains(name)) continue;
    for (const lb::v1::Backend& b : service.backends()) {
      lb::v1::BackendHealthView* view = response->add_backends();
      lb::v1::BackendRef& ref = *view->mutable_backend();
      ref.set_service_name(name);
      ref.set_address(b.address());
      ref.set_port(b.port());
      const std::string key = BackendHealthName(ref);
      const FleetVerdict* verdict = nullptr;
      for (uint32_t port : ReportPorts(service, b)) {
        auto it = verdicts.find({name, b.address(), port});
        if (it != verdicts.end()) {
          verdict = &it->second;
          break;
        }
      }
      auto stored = state.backend_health.find(key);
      if (stored != state.backend_health.end()) {
        view->set_state(stored->second.state());
        if (stored->second.has_dynamic_weight()) {
          view->set_dynamic_weight(stored->second.dynamic_weight());
        }
        *view->mutable_last_change() = stored->second.last_change();
        view->set_reason(stored->second.reason());
      } else if (verdict != nullptr) {
        // No entry: up, or not checked by any node with a current report.
        view->set_state(verdict->state);
        view->set_reason(verdict->reason);
      }
      if (!view->has_last_change()) {
        if (auto it = health_changed_at_.find(key);
            it != health_changed_at_.end()) {
          *view->mutable_last_change() = timestamp(it->second);
        }
      }
      if (verdict == nullptr) continue;
      absl::Time error_at = absl::InfinitePast();
      for (const NodeView& node : verdict->nodes) {
        lb::v1::NodeHealthView* n = view->add_nodes();
        n->set_node_name(node.node_name);
        n->set_state(node.state);
        n->set_last_error(node.last_error);
        *n->mutable_reported_at() = timestamp(node.received_at);
        n->set_current(node.current);
        if (node.dynamic_weight.has_value()) {
          n->set_dynamic_weight(*node.dynamic_weight);
        }
        if (node.current && !node.last_error.empty() &&
            node.received_at > error_at) {
          view->set_last_error(node.last_error);
          error_at = node.received_at;
        }
      }
    }
  }
}

// --- Nodes ---

grpc::Status ControllerService::RegisterNode(
    grpc::ServerContext* context, const lb::v1::RegisterNodeRequest* request,
    lb::v1::RegisterNodeResponse* response) {
  Call call(this, *context, "RegisterNode");
  if (!call.authorized()) return call.Refused();
  if (absl::Status s = CheckNodeIdentity(*context, request->node_name());
      !s.ok()) {
    return call.Finish(s);
  }
  absl::StatusOr<CommitResult> result = store_->Commit([&](StoreState& s) {
    controller::RegisterNode(s, request->node_name());
    return absl::OkStatus();
  });
  if (!result.ok()) return call.Finish(result.status());
  *response->mutable_settings() = result->state->nodes.at(request->node_name());
  {
    absl::MutexLock lock(&mu_);
    NodeRuntime& runtime = nodes_[request->node_name()];
    runtime.registered_at = absl::Now();
    runtime.version = request->version();
  }
  LB_LOG(kInfo) << "node " << request->node_name() << " registered (version "
                << request->version() << ")";
  return call.Finish(grpc::Status::OK);
}

grpc::Status ControllerService::WatchConfig(
    grpc::ServerContext* context, const lb::v1::WatchConfigRequest* request,
    grpc::ServerWriter<lb::v1::WatchConfigResponse>* writer) {
  Call call(this, *context, "WatchConfig");
  if (!call.authorized()) return call.Refused();
  const std::string& node = request->node_name();
  if (absl::Status s = CheckNodeIdentity(*context, node); !s.ok()) {
    return call.Finish(s);
  }
  {
    absl::MutexLock lock(&mu_);
    ++nodes_[node].streams;
  }
  uint64_t known = request->known_revision();
  grpc::Status status = grpc::Status::OK;
  std::shared_ptr<const StoreState> state = store_->Current();
  while (true) {
    if (shutdown_) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "controller shutting down; reconnect");
      break;
    }
    if (context->IsCancelled()) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      break;
    }
    if (state->revision != known) {
      lb::v1::WatchConfigResponse response;
      *response.mutable_snapshot() = SnapshotFor(*state, node);
      if (!writer->Write(response)) {
        status = grpc::Status(grpc::StatusCode::CANCELLED, "stream closed");
        break;
      }
      known = state->revision;
    }
    state = store_->WaitForNewer(known, options_.watch_poll);
  }
  {
    absl::MutexLock lock(&mu_);
    --nodes_[node].streams;
  }
  return call.Finish(status);
}

grpc::Status ControllerService::ReportStatus(
    grpc::ServerContext* context, const lb::v1::ReportStatusRequest* request,
    lb::v1::ReportStatusResponse*) {
  Call call(this, *context, "ReportStatus");
  if (!call.authorized()) return call.Refused();
  const std::string& node = request->status().node_name();
  if (absl::Status s = CheckNodeIdentity(*context, node); !s.ok()) {
    return call.Finish(s);
  }
  if (!store_->Current()->nodes.contains(node)) {
    return call.Finish(absl::FailedPreconditionError(absl::StrCat(
        "node \"", node, "\" is not registered: call RegisterNode first")));
  }
  lb::v1::NodeStatus status = request->status();
  if (!status.has_reported_at()) {
    *status.mutable_reported_at() =
        google::protobuf::util::TimeUtil::GetCurrentTime();
  }
  {
    absl::MutexLock lock(&mu_);
    NodeRuntime& runtime = nodes_[node];
    runtime.status = std::move(status);
    runtime.status_received_at = options_.now();
  }
  // The report is kept either way; a verdict that cannot be published now
  // is retried by the timer.
  if (absl::Status s = EvaluateHealth(); !s.ok()) {
    LB_LOG(kWarning) << "evaluating fleet health after node " << node
                     << "'s report: " << s;
  }
  return call.Finish(grpc::Status::OK);
}

absl::Status ControllerService::FillNode(const StoreState& state,
                                         const std::string& name,
                                         lb::v1::Node* node) const {
  auto it = state.nodes.find(name);
  if (it == state.nodes.end()) {
    return absl::NotFoundError(
        absl::StrCat("node \"", name, "\" is not registered"));
  }
  *node->mutable_settings() = it->second;
  absl::MutexLock lock(&mu_);
  auto runtime = nodes_.find(name);
  if (runtime == nodes_.end()) return absl::OkStatus();
  if (runtime->second.status) *node->mutable_status() = *runtime->second.status;
  if (runtime->second.registered_at != absl::InfinitePast()) {
    *node->mutable_registered_at() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(runtime->second.registered_at));
  }
  node->set_connected(runtime->second.streams > 0);
  return absl::OkStatus();
}

grpc::Status ControllerService::ListNodes(grpc::ServerContext* context,
                                          const lb::v1::ListNodesRequest*,
                                          lb::v1::ListNodesResponse* response) {
  Call call(this, *context, "ListNodes");
  if (!call.authorized()) return call.Refused();
  std::shared_ptr<const StoreState> state = store_->Current();
  for (const auto& [name, settings] : state->nodes) {
    FillNode(*state, name, response->add_nodes()).IgnoreError();
  }
  response->set_revision(state->revision);
  return call.Finish(grpc::Status::OK);
}

grpc::Status ControllerService::UpdateNode(
    grpc::ServerContext* context, const lb::v1::UpdateNodeRequest* request,
    lb::v1::NodeResponse* response) {
  return EditNode(*context, "UpdateNode", request->settings().node_name(),
                  response, [&](StoreState& s) {
                    return controller::UpdateNode(s, request->settings(),
                                                  request->update_mask());
                  });
}

grpc::Status ControllerService::DrainNode(
    grpc::ServerContext* context, const lb::v1::DrainNodeRequest* request,
    lb::v1::NodeResponse* response) {
  return EditNode(*context, "DrainNode", request->node_name(), response,
                  [&](StoreState& s) {
                    return SetAdminState(s, request->node_name(),
                                         lb::v1::NODE_ADMIN_STATE_DRAINED);
                  });
}

grpc::Status ControllerService::UndrainNode(
    grpc::ServerContext* context, const lb::v1::UndrainNodeRequest* request,
    lb::v1::NodeResponse* response) {
  return EditNode(*context, "UndrainNode", request->node_name(), response,
                  [&](StoreState& s) {
                    return SetAdminState(s, request->node_name(),
                                         lb::v1::NODE_ADMIN_STATE_ACTIVE);
                  });
}

// --- Metrics ---

absl::Status ControllerService::Collect(
    std::vector<metrics::MetricFamily>* out) const {
  std::shared_ptr<const StoreState> state = store_->Current();
  metrics::MetricFamily revision("anylb_controller_revision",
                                 "The store's current revision.",
                                 metrics::MetricType::kGauge);
  revision.Add({}, state->revision);
  metrics::MetricFamily services("anylb_controller_services",
                                 "Services in the store.",
                                 metrics::MetricType::kGauge);
  services.Add({}, static_cast<uint64_t>(state->services.size()));
  metrics::MetricFamily nodes(
      "anylb_controller_nodes",
      "Registered nodes, by whether a WatchConfig stream is open.",
      metrics::MetricType::kGauge);
  metrics::MetricFamily applied(
      "anylb_controller_node_applied_revision",
      "The revision each node last reported as applied.",
      metrics::MetricType::kGauge);
  metrics::MetricFamily calls("anylb_controller_rpcs_total",
                              "RPCs handled, by method and status code.",
                              metrics::MetricType::kCounter);
  metrics::MetricFamily seconds(
      "anylb_controller_rpc_seconds_total",
      "Time spent in RPCs, by method and status code (divide by "
      "anylb_controller_rpcs_total for the mean latency).",
      metrics::MetricType::kCounter);
  {
    absl::MutexLock lock(&mu_);
    uint64_t connected = 0;
    for (const auto& [name, settings] : state->nodes) {
      auto it = nodes_.find(name);
      if (it != nodes_.end() && it->second.streams > 0) ++connected;
      if (it != nodes_.end() && it->second.status) {
        applied.Add({{"node", name}}, it->second.status->applied_revision());
      }
    }
    nodes.Add({{"connected", "true"}}, connected);
    nodes.Add({{"connected", "false"}},
              static_cast<uint64_t>(state->nodes.size()) - connected);
    for (const auto& [key, stats] : rpcs_) {
      calls.Add({{"method", key.first}, {"code", key.second}}, stats.calls);
      seconds.Add({{"method", key.first}, {"code", key.second}}, stats.seconds);
    }
  }
  metrics::MetricFamily health(
      "anylb_controller_backend_health",
      "The fleet's published verdict per real server: 1 up (or not "
      "checked), 0 down.",
      metrics::MetricType::kGauge);
  metrics::MetricFamily transitions(
      "anylb_controller_backend_health_transitions_total",
      "Changes of the published verdict (up/down or dynamic weight) per "
      "real server since the controller started.",
      metrics::MetricType::kCounter);
  for (const auto& [name, service] : state->services) {
    for (const lb::v1::Backend& b : service.backends()) {
      lb::v1::BackendRef ref;
      ref.set_service_name(name);
      ref.set_address(b.address());
      ref.set_port(b.port());
      auto it = state->backend_health.find(BackendHealthName(ref));
      const bool down = it != state->backend_health.end() &&
                        it->second.state() == lb::v1::HEALTH_STATE_DOWN;
      health.Add({{"service", name}, {"backend", BackendLabel(service, ref)}},
                 uint64_t{down ? 0u : 1u});
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, count] : health_transitions_) {
      transitions.Add({{"service", key.first}, {"backend", key.second}}, count);
    }
  }
  for (auto* family : {&revision, &services, &nodes, &applied, &calls, &seconds,
                       &health, &transitions}) {
    out->push_back(std::move(*family));
  }
  return absl::OkStatus();
}

}  // namespace anylb::controller
