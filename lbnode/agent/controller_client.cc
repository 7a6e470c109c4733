#include "lbnode/agent/controller_client.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "lb/v1/controller.grpc.pb.h"
#include "lbnode/dataplane/drop_reason.h"
#include "lbnode/dataplane/engine.h"

namespace anylb::agent {

// Session: one channel and stub; shared by the watch thread (which made
// it) and the report thread.
class ControllerClient::Session {
 public:
  explicit Session(std::shared_ptr<grpc::Channel> channel)
      : channel_(std::move(channel)),
        stub_(lb::v1::Controller::NewStub(channel_)) {}
  lb::v1::Controller::Stub& stub() { return *stub_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<lb::v1::Controller::Stub> stub_;
};

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("controller client: cannot read ", flag, " file \"", path,
                     "\" (check the path and its permissions)"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("controller client: ", flag, " file \"", path,
                     "\" holds no PEM block (\"-----BEGIN ...\")"));
  }
  return text.str();
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// SplitHostPort splits "198.51.100.2:80" / "[2001:db8::2]:80".
void SplitHostPort(const std::string& text, lb::v1::BackendRef* ref) {
  size_t colon = text.rfind(':');
  std::string host = colon == std::string::npos ? text : text.substr(0, colon);
  uint32_t port = 0;
  if (colon != std::string::npos) {
    if (!absl::SimpleAtoi(text.substr(colon + 1), &port)) port = 0;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  ref->set_address(host);
  ref->set_port(port);
}

void AddTraffic(const dataplane::TrafficCounters& t, lb::v1::Counters* c) {
  c->set_connections(c->connections() + t.new_flows);
  c->set_packets_in(c->packets_in() + t.packets);
  c->set_bytes_in(c->bytes_in() + t.bytes);
  c->set_packets_out(c->packets_out() + t.reply_packets);
  c->set_bytes_out(c->bytes_out() + t.reply_bytes);
}

}  // namespace

lb::v1::NodeStatus NodeStatusFromMetrics(const DataplaneMetricsInput& input) {
  lb::v1::NodeStatus status;
  // By service name, then backend "addr:port": stable across workers.
  std::map<std::string, lb::v1::ServiceStats> services;
  std::map<std::pair<std::string, std::string>, lb::v1::BackendStats> backends;
  std::map<std::string, uint64_t> drops;
  for (const WorkerMetricsInput& w : input.workers) {
    for (size_t r = 0; r < dataplane::kDropReasonCount; ++r) {
      if (w.engine.drops[r] == 0) continue;
      drops[std::string(dataplane::DropReasonName(
          static_cast<dataplane::DropReason>(r)))] += w.engine.drops[r];
    }
    if (w.names == nullptr) continue;
    const NameTable& names = *w.names;
    for (size_t s = 0; s < names.size(); ++s) {
      lb::v1::ServiceStats& ss = services[names[s].name];
      ss.set_service_name(names[s].name);
      if (s < w.services.size()) {
        AddTraffic(w.services[s], ss.mutable_counters());
      }
      for (size_t b = 0; b < names[s].backends.size(); ++b) {
        lb::v1::BackendStats& bs =
            backends[{names[s].name, names[s].backends[b]}];
        bs.mutable_backend()->set_service_name(names[s].name);
        SplitHostPort(names[s].backends[b], bs.mutable_backend());
        if (s < w.backends.size() && b < w.backends[s].size()) {
          AddTraffic(w.backends[s][b], bs.mutable_counters());
        }
        if (s < w.connections.size() && b < w.connections[s].size()) {
          bs.set_active_connections(bs.active_connections() +
                                    w.connections[s][b].active);
          bs.set_inactive_connections(bs.inactive_connections() +
                                      w.connections[s][b].inactive);
        }
      }
    }
  }
  for (auto& [key, bs] : backends) {
    *services[key.first].add_backends() = std::move(bs);
  }
  for (auto& [name, ss] : services) {
    *status.add_service_stats() = std::move(ss);
  }
  status.mutable_drops()->insert(drops.begin(), drops.end());
  status.set_applied_revision(input.config_revision);
  return status;
}

void MarkAnnounced(const NameTable& names, const std::set<IpAddress>& announced,
                   lb::v1::NodeStatus* status) {
  std::map<std::string, lb::v1::ServiceStats*> by_name;
  for (lb::v1::ServiceStats& ss : *status->mutable_service_stats()) {
    by_name[ss.service_name()] = &ss;
  }
  for (const ServiceNames& n : names) {
    absl::StatusOr<IpAddress> vip = IpAddress::Parse(n.vip);
    const bool on = vip.ok() && announced.contains(*vip);
    auto it = by_name.find(n.name);
    if (it == by_name.end()) {
      if (!on) continue;
      lb::v1::ServiceStats* ss = status->add_service_stats();
      ss->set_service_name(n.name);
      it = by_name.emplace(n.name, ss).first;
    }
    it->second->set_announced(on);
  }
}

absl::StatusOr<std::unique_ptr<ControllerClient>> ControllerClient::Create(
    ControllerClientOptions options, ApplyFn apply, StatusFn status,
    const SnapshotCache* cache) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError(
        "controller client: no controller address: set --controller=HOST:PORT");
  }
  if (options.node_name.empty()) {
    return absl::InvalidArgumentError(
        "controller client: empty node name: set --node_name");
  }
  if (!apply || !status) {
    return absl::InvalidArgumentError(
        "controller client: apply and status callbacks are required");
  }
  if (options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        "controller client: backoff must be 0 < initial <= max");
  }
  if (options.report_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "controller client: report interval must be positive");
  }
  Pem pem;
  if (options.insecure) {
    if (!options.ca_file.empty() || !options.node_cert_file.empty() ||
        !options.node_key_file.empty()) {
      return absl::InvalidArgumentError(
          "controller client: --controller_insecure with --controller_ca, "
          "--node_cert or --node_key: choose plaintext or TLS");
    }
  } else {
    if (options.node_cert_file.empty() != options.node_key_file.empty()) {
      return absl::InvalidArgumentError(
          "controller client: --node_cert and --node_key go together (the "
          "node's client certificate and its key)");
    }
    if (!options.ca_file.empty()) {
      auto ca = ReadPem(options.ca_file, "--controller_ca");
      if (!ca.ok()) return ca.status();
      pem.ca = *std::move(ca);
    }
    if (!options.node_cert_file.empty()) {
      auto cert = ReadPem(options.node_cert_file, "--node_cert");
      if (!cert.ok()) return cert.status();
      auto key = ReadPem(options.node_key_file, "--node_key");
      if (!key.ok()) return key.status();
      pem.cert = *std::move(cert);
      pem.key = *std::move(key);
    }
  }
  return std::unique_ptr<ControllerClient>(
      new ControllerClient(std::move(options), std::move(pem), std::move(apply),
                           std::move(status), cache));
}

ControllerClient::ControllerClient(ControllerClientOptions options, Pem pem,
                                   ApplyFn apply, StatusFn status,
                                   const SnapshotCache* cache)
    : options_(std::move(options)),
      pem_(std::move(pem)),
      apply_(std::move(apply)),
      status_(std::move(status)),
      cache_(cache),
      applied_revision_(options_.applied_revision) {}

ControllerClient::~ControllerClient() { Stop(); }

void ControllerClient::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  watch_thread_ = std::thread([this] { WatchLoop(); });
  report_thread_ = std::thread([this] { ReportLoop(); });
}

void ControllerClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* context : contexts_) context->TryCancel();
  }
  if (watch_thread_.joinable()) watch_thread_.join();
  if (report_thread_.joinable()) report_thread_.join();
}

void ControllerClient::ReportNow() {
  absl::MutexLock lock(&mu_);
  report_now_ = true;
}

bool ControllerClient::Track(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  contexts_.push_back(context);
  if (stopping_) context->TryCancel();
  return !stopping_;
}

void ControllerClient::Untrack(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  contexts_.erase(std::remove(contexts_.begin(), contexts_.end(), context),
                  contexts_.end());
}

void ControllerClient::WatchLoop() {
  absl::BitGen random;
  int failures = 0;
  while (true) {
    bool established = false;
    absl::Status why = RunSession(&established);
    const bool was_connected = connected_.exchange(false);
    {
      absl::MutexLock lock(&mu_);
      session_.reset();
      if (stopping_) break;
    }
    if (established) failures = 0;
    absl::Duration delay = options_.initial_backoff;
    for (int i = 0; i < failures && delay < options_.max_backoff; ++i) {
      delay *= 2;
    }
    delay =
        std::min(delay, options_.max_backoff) * absl::Uniform(random, 0.8, 1.2);
    ++failures;
    if (was_connected) {
      LB_LOG(kWarning) << "controller " << options_.target << ": disconnected ("
                       << why << "); still forwarding with revision "
                       << applied_revision_.load() << "; reconnecting in "
                       << delay;
    } else {
      LB_LOG(kWarning) << "controller " << options_.target
                       << ": cannot connect (" << why
                       << "); forwarding with revision "
                       << applied_revision_.load() << "; retrying in " << delay;
    }
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
      if (stopping_) break;
    }
    reconnects_.fetch_add(1);
  }
}

absl::Status ControllerClient::RunSession(bool* established) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options_.insecure) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem_.ca;
    ssl.pem_cert_chain = pem_.cert;
    ssl.pem_private_key = pem_.key;
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  // A fresh subchannel per session: our backoff decides when to retry, not
  // gRPC's shared reconnect state.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(
      GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.initial_backoff)));
  args.SetInt(
      GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.max_backoff)));
  if (!options_.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options_.tls_server_name);
  }
  auto session = std::make_shared<Session>(
      grpc::CreateCustomChannel(options_.target, credentials, args));

  {
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(options_.rpc_timeout));
    // Fail fast while the controller is down: the loop's backoff retries.
    if (!Track(&context)) return absl::CancelledError("stopping");
    lb::v1::RegisterNodeRequest request;
    request.set_node_name(options_.node_name);
    request.set_version(options_.version);
    lb::v1::RegisterNodeResponse response;
    grpc::Status status =
        session->stub().RegisterNode(&context, request, &response);
    Untrack(&context);
    if (!status.ok()) {
      absl::Status s = FromGrpc(status);
      if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
          status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
        return absl::Status(
            s.code(),
            absl::StrCat("RegisterNode as \"", options_.node_name,
                         "\" refused: ", s.message(),
                         " (does --node_name match the CN of --node_cert?)"));
      }
      return absl::Status(s.code(),
                          absl::StrCat("RegisterNode: ", s.message()));
    }
  }
  *established = true;

  grpc::ClientContext context;
  if (!Track(&context)) return absl::CancelledError("stopping");
  const uint64_t known = applied_revision_.load();
  lb::v1::WatchConfigRequest request;
  request.set_node_name(options_.node_name);
  request.set_known_revision(known);
  std::unique_ptr<grpc::ClientReader<lb::v1::WatchConfigResponse>> reader =
      session->stub().WatchConfig(&context, request);
  {
    absl::MutexLock lock(&mu_);
    session_ = session;
    watch_context_ = &context;
    report_now_ = true;
  }
  connected_ = true;
  LB_LOG(kInfo) << "controller " << options_.target << ": connected as node "
                << options_.node_name << ", watching from revision " << known;
  lb::v1::WatchConfigResponse response;
  while (reader->Read(&response)) {
    HandleSnapshot(response.snapshot());
  }
  grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    watch_context_ = nullptr;
  }
  Untrack(&context);
  if (status.ok()) return absl::UnavailableError("watch stream ended");
  return absl::Status(FromGrpc(status).code(),
                      absl::StrCat("WatchConfig: ", status.error_message()));
}

void ControllerClient::HandleSnapshot(const lb::v1::ConfigSnapshot& snapshot) {
  const uint64_t revision = snapshot.revision();
  const absl::Time start = absl::Now();
  absl::Status status = apply_(snapshot);
  if (!status.ok()) {
    apply_failures_.fetch_add(1);
    LB_LOG(kError) << "controller revision " << revision
                   << " NOT applied: this node cannot run it (the controller "
                      "validated it, so the problem is local to node "
                   << options_.node_name << "); still forwarding with revision "
                   << applied_revision_.load() << ": " << status;
    return;
  }
  LB_LOG(kInfo) << "controller revision " << revision << " applied ("
                << snapshot.services_size() << " services) in "
                << absl::Now() - start;
  if (cache_ != nullptr) {
    if (absl::Status s = cache_->Write(snapshot); !s.ok()) {
      LB_LOG(kWarning) << s
                       << " (forwarding is unaffected; a restart without the "
                          "controller would start from an older cache)";
    }
  }
  // Last: once the revision shows, the cache holds it too.
  applied_revision_ = revision;
  absl::MutexLock lock(&mu_);
  report_now_ = true;
}

void ControllerClient::ReportLoop() {
  absl::Time next = absl::Now();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || report_now_;
      };
      mu_.AwaitWithDeadline(absl::Condition(&wake), next);
      if (stopping_) return;
      report_now_ = false;
    }
    next = absl::Now() + options_.report_interval;
    if (!connected_.load()) continue;
    if (absl::Status s = Report(); !s.ok()) {
      LB_LOG(kWarning) << "controller " << options_.target
                       << ": ReportStatus failed: " << s;
      // A silent network (no reset) leaves the idle watch stream open
      // forever: a report that times out or finds no connection ends it,
      // and the watch loop reconnects.
      if (s.code() == absl::StatusCode::kDeadlineExceeded ||
          s.code() == absl::StatusCode::kUnavailable) {
        absl::MutexLock lock(&mu_);
        if (watch_context_ != nullptr) watch_context_->TryCancel();
      }
    }
  }
}

absl::Status ControllerClient::Report() {
  std::shared_ptr<Session> session;
  {
    absl::MutexLock lock(&mu_);
    session = session_;
  }
  if (session == nullptr) return absl::OkStatus();
  lb::v1::ReportStatusRequest request;
  lb::v1::NodeStatus* status = request.mutable_status();
  *status = status_();
  status->set_node_name(options_.node_name);
  status->set_applied_revision(applied_revision_.load());
  status->set_version(options_.version);
  *status->mutable_reported_at() =
      google::protobuf::util::TimeUtil::GetCurrentTime();
  grpc::ClientContext context;
  context.set_deadline(
      DeadlineIn(std::min(options_.rpc_timeout, options_.report_interval * 2)));
  if (!Track(&context)) return absl::OkStatus();
  lb::v1::ReportStatusResponse response;
  grpc::Status result =
      session->stub().ReportStatus(&context, request, &response);
  Untrack(&context);
  return FromGrpc(result);
}

absl::Status ControllerClient::Collect(
    std::vector<metrics::MetricFamily>* out) const {
  out->emplace_back("anylb_controller_connected",
                    "1 while registered with the controller and watching.",
                    metrics::MetricType::kGauge)
      .Add({}, connected_.load() ? 1 : 0);
  out->emplace_back(
         "anylb_controller_applied_revision",
         "Revision of the controller snapshot the dataplane forwards with.",
         metrics::MetricType::kGauge)
      .Add({}, applied_revision_.load());
  out->emplace_back("anylb_controller_reconnects_total",
                    "Connection attempts after a failure or a lost stream.",
                    metrics::MetricType::kCounter)
      .Add({}, reconnects_.load());
  out->emplace_back(
         "anylb_controller_apply_failures_total",
         "Controller snapshots this node could not apply (kept the old one).",
         metrics::MetricType::kCounter)
      .Add({}, apply_failures_.load());
  return absl::OkStatus();
}

}  // namespace anylb::agent
