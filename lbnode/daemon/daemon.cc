#include "lbnode/daemon/daemon.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "lbnode/agent/config_file.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/nexthop/kernel_next_hop_resolver.h"
#include "routing/netlink/kernel_next_hops.h"

namespace anylb::lbnode {

// NodeResolvers holds one next-hop resolver per worker (by position in the
// dataplane's queue list). Each is used only on its worker's thread.
class NodeResolvers {
 public:
  std::vector<std::unique_ptr<nexthop::KernelNextHopResolver>> by_worker;
};

namespace {

absl::Status Annotate(const absl::Status& status, std::string_view what) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(std::string(what), ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(
    const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->options_ = options;
  d->status_.started = absl::Now();

  ASSIGN_OR_RETURN(d->interface_, ReadInterfaceInfo(options.interface));
  const InterfaceInfo& ifi = d->interface_;
  d->identity_.mac = ifi.mac;
  d->identity_.mtu = options.mtu != 0 ? options.mtu : ifi.mtu;
  d->identity_.outer_ttl = options.outer_ttl;
  d->identity_.tunnel_source_v4 = options.tunnel_source_v4
                                      ? options.tunnel_source_v4
                                      : ifi.FirstAddress(IpFamily::kV4);
  d->identity_.tunnel_source_v6 = options.tunnel_source_v6
                                      ? options.tunnel_source_v6
                                      : ifi.FirstAddress(IpFamily::kV6);
  LB_LOG(kInfo) << "interface " << ifi.name << ": index " << ifi.ifindex
                << ", MAC " << FormatMac(ifi.mac) << ", MTU " << ifi.mtu << ", "
                << ifi.rx_queues << " RX queue(s)";

  // The config first: a bad file must fail before anything is attached.
  ASSIGN_OR_RETURN(agent::EngineConfig config, d->BuildConfig());
  LB_LOG(kInfo) << "config " << options.config_path << ": revision "
                << config.revision << ", " << config.snapshot->services().size()
                << " service(s)";

  ASSIGN_OR_RETURN(d->next_hops_, routing::netlink::KernelNextHops::Create());
  ASSIGN_OR_RETURN(d->steer_, dataplane::bpf::SteerProgram::Load());

  dataplane::xsk::DataplaneOptions dp;
  dp.interface = options.interface;
  dp.queues = options.queues;
  dp.tx_interface = options.tx_interface;
  dp.mode = options.xsk_mode;
  dp.busy_poll = options.busy_poll;
  dp.umem.frame_count = options.frames_per_queue;
  dp.worker.batch_size = options.batch_size;
  dp.worker.busy_poll = options.busy_poll;

  // One resolver per worker, made before the engines that keep a pointer.
  size_t workers =
      options.queues.empty() ? ifi.rx_queues : options.queues.size();
  d->resolvers_ = std::make_unique<NodeResolvers>();
  nexthop::KernelNextHopResolverOptions resolver_options;
  resolver_options.egress_ifindex = ifi.ifindex;
  if (!options.tx_interface.empty()) {
    ASSIGN_OR_RETURN(InterfaceInfo tx, ReadInterfaceInfo(options.tx_interface));
    resolver_options.egress_ifindex = tx.ifindex;
  }
  for (size_t i = 0; i < workers; ++i) {
    d->resolvers_->by_worker.push_back(
        std::make_unique<nexthop::KernelNextHopResolver>(
            d->next_hops_->NewReader(), resolver_options));
  }
  // Queue number → worker position, for the engine factory.
  std::vector<uint32_t> queue_list = options.queues;
  if (queue_list.empty()) {
    for (uint32_t q = 0; q < ifi.rx_queues; ++q) queue_list.push_back(q);
  }
  std::shared_ptr<const dataplane::EngineSnapshot> snapshot = config.snapshot;
  NodeResolvers* resolvers = d->resolvers_.get();
  const size_t capacity = options.flow_table_capacity;
  auto make_engine = [snapshot, resolvers, queue_list, capacity](uint32_t queue)
      -> absl::StatusOr<std::unique_ptr<dataplane::Engine>> {
    size_t index = 0;
    while (index < queue_list.size() && queue_list[index] != queue) ++index;
    if (index == queue_list.size()) {
      return absl::InternalError(
          absl::StrCat("no resolver for RX queue ", queue));
    }
    dataplane::EngineOptions engine_options;
    engine_options.flow_table.capacity = capacity;
    engine_options.worker_index = static_cast<uint32_t>(index);
    engine_options.worker_count = static_cast<uint32_t>(queue_list.size());
    return dataplane::Engine::Create(
        snapshot, resolvers->by_worker[index].get(), engine_options);
  };

  // Maps before attaching: the program steers nothing it does not know.
  RETURN_IF_ERROR(Annotate(d->steer_->ReplaceVips(config.vips),
                           "loading the VIPs into the steering program"));
  RETURN_IF_ERROR(
      Annotate(d->steer_->ReplaceLocalAddresses(config.local_addresses),
               "loading the local addresses into the steering program"));
  RETURN_IF_ERROR(
      Annotate(d->steer_->ReplaceNatBackends(config.nat_backends),
               "loading the NAT real servers into the steering program"));
  ASSIGN_OR_RETURN(d->dataplane_, dataplane::xsk::Dataplane::Create(
                                      dp, d->steer_.get(), make_engine));
  RETURN_IF_ERROR(d->steer_->Attach(options.interface, options.steer_mode));
  LB_LOG(kInfo) << "dataplane: " << d->dataplane_->worker_count()
                << " worker(s) on queue(s) "
                << absl::StrJoin(d->dataplane_->queues(), ",") << ", "
                << dataplane::xsk::XskModeName(d->dataplane_->mode()) << " mode"
                << (d->dataplane_->busy_poll() ? ", busy poll" : "");
  d->config_ = std::move(config);
  d->status_.revision = d->config_.revision;
  d->status_.services = d->config_.snapshot->services().size();
  return d;
}

Daemon::~Daemon() { Stop(); }

absl::StatusOr<agent::EngineConfig> Daemon::BuildConfig() const {
  ASSIGN_OR_RETURN(lb::v1::ConfigSnapshot proto,
                   agent::LoadConfigFile(options_.config_path));
  return agent::BuildEngineConfig(proto, identity_);
}

absl::Status Daemon::Install(const agent::EngineConfig& config) {
  dataplane_->PostSnapshot(config.snapshot);
  RETURN_IF_ERROR(Annotate(steer_->ReplaceVips(config.vips),
                           "updating the steering program's VIPs"));
  RETURN_IF_ERROR(
      Annotate(steer_->ReplaceLocalAddresses(config.local_addresses),
               "updating the steering program's local addresses"));
  RETURN_IF_ERROR(Annotate(steer_->ReplaceNatBackends(config.nat_backends),
                           "updating the steering program's NAT real servers"));
  return absl::OkStatus();
}

absl::Status Daemon::Reload() {
  absl::StatusOr<agent::EngineConfig> config = BuildConfig();
  absl::Status status = config.status();
  if (status.ok()) status = Install(*config);
  if (!status.ok()) {
    ++status_.reload_failures;
    status_.last_reload_error = std::string(status.message());
    return status;
  }
  ++status_.reloads;
  status_.last_reload_error.clear();
  config_ = *std::move(config);
  status_.revision = config_.revision;
  status_.services = config_.snapshot->services().size();
  return absl::OkStatus();
}

void Daemon::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (dataplane_ != nullptr) dataplane_->Stop();
  steer_.reset();  // Detaches the program.
  next_hops_.reset();
}

DaemonStatus Daemon::status() const {
  DaemonStatus s = status_;
  if (dataplane_ != nullptr) {
    s.oldest_worker_progress = dataplane_->OldestProgress();
  }
  return s;
}

int Daemon::metrics_port() const { return 0; }

std::string Daemon::DumpText() const {
  std::string out = absl::StrFormat(
      "lbnode: revision %d, %d service(s), %d reload(s), %d failed\n",
      status_.revision, status_.services, status_.reloads,
      status_.reload_failures);
  return out;
}

}  // namespace anylb::lbnode
