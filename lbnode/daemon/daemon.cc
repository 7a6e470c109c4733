#include "lbnode/daemon/daemon.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/config/config_yaml.h"
#include "common/log.h"
#include "common/metrics/metric_family.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/nexthop/kernel_next_hop_resolver.h"
#include "routing/announce/announce_config.h"
#include "routing/announce/tun_device.h"
#include "routing/announce/vip_routes.h"
#include "routing/announce/vtysh.h"
#include "routing/fpm/fpm_server.h"
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

// LogSorryChanges logs each service whose sorry server stepped in or out
// between `before` (null at start) and `after`.
void LogSorryChanges(const agent::NameTable* before,
                     const agent::NameTable& after) {
  std::map<std::string, bool> was;
  if (before != nullptr) {
    for (const agent::ServiceNames& n : *before) was[n.name] = n.sorry_active;
  }
  for (const agent::ServiceNames& n : after) {
    auto it = was.find(n.name);
    const bool had = it != was.end() && it->second;
    if (n.sorry_active && !had) {
      LB_LOG(kWarning) << "service \"" << n.name
                       << "\": no real server takes new flows; sorry server "
                       << n.sorry_backend << " does";
    } else if (!n.sorry_active && had) {
      LB_LOG(kInfo) << "service \"" << n.name
                    << "\": a real server takes new flows again; the sorry "
                       "server no longer does";
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(
    const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->options_ = options;
  {
    absl::MutexLock lock(&d->mu_);
    d->status_.started = absl::Now();
  }

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
  // Controller mode starts from the snapshot cache (or nothing); a cache
  // this node cannot use is reported and ignored, never fatal.
  if (d->controller_mode() && !options.snapshot_cache.empty()) {
    d->cache_ = std::make_unique<agent::SnapshotCache>(options.snapshot_cache);
    absl::StatusOr<lb::v1::ConfigSnapshot> cached = d->cache_->Read();
    if (cached.ok()) {
      d->start_snapshot_ = *std::move(cached);
    } else {
      LB_LOG(kWarning) << cached.status().message()
                       << "; starting with no services until the controller "
                          "sends the config";
    }
  }
  ASSIGN_OR_RETURN(lb::v1::ConfigSnapshot start_proto, d->LoadProto());
  absl::StatusOr<agent::EngineConfig> built =
      agent::BuildEngineConfig(start_proto, d->identity_);
  if (!built.ok() && d->controller_mode()) {
    LB_LOG(kWarning) << "snapshot cache " << options.snapshot_cache
                     << ": revision " << start_proto.revision()
                     << " does not build on this node (ignored; starting "
                        "with no services): "
                     << built.status().message();
    d->start_snapshot_ = lb::v1::ConfigSnapshot();
    start_proto = d->start_snapshot_;
    built = agent::BuildEngineConfig(start_proto, d->identity_);
  }
  if (!built.ok()) return built.status();
  agent::EngineConfig config = *std::move(built);
  LB_LOG(kInfo) << "config " << d->ConfigSource() << ": revision "
                << config.revision << ", " << config.snapshot->services().size()
                << " service(s)";
  if (options.announce) {
    // Also before anything is attached: a bad community fails the start.
    RETURN_IF_ERROR(d->AnnounceConfigOf(start_proto).status());
  }
  if (d->controller_mode()) {
    // Checked (certificates read) before anything is attached; started
    // last.
    agent::ControllerClientOptions o = options.controller;
    o.applied_revision = start_proto.revision();
    Daemon* self = d.get();
    ASSIGN_OR_RETURN(
        d->controller_,
        agent::ControllerClient::Create(
            o,
            [self](const lb::v1::ConfigSnapshot& s) {
              return self->ApplySnapshot(s);
            },
            [self] { return self->NodeStatus(); }, d->cache_.get()));
  }

  routing::netlink::KernelNextHopsOptions next_hop_options;
  if (options.routes_from_fpm) {
    next_hop_options.route_source = routing::netlink::RouteSource::kExternal;
  }
  ASSIGN_OR_RETURN(d->next_hops_,
                   routing::netlink::KernelNextHops::Create(next_hop_options));
  if (!options.fpm_listen.empty()) {
    absl::StatusOr<Endpoint> listen = Endpoint::Parse(options.fpm_listen);
    if (!listen.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fpm_listen=", options.fpm_listen, ": ",
                       listen.status().message()));
    }
    routing::fpm::FpmServerOptions fpm;
    fpm.listen = *listen;
    if (options.routes_from_fpm) {
      routing::netlink::KernelNextHops* next_hops = d->next_hops_.get();
      fpm.on_publish =
          [next_hops](std::shared_ptr<const routing::netlink::RouteTable> t) {
            // Cannot fail: next_hops is in RouteSource::kExternal mode.
            (void)next_hops->SetRoutes(std::move(t));
          };
    }
    absl::StatusOr<std::unique_ptr<routing::fpm::FpmServer>> server =
        routing::fpm::FpmServer::Create(std::move(fpm));
    if (server.ok()) {
      d->fpm_server_ = std::move(*server);
      LB_LOG(kInfo) << "FPM server on " << d->fpm_server_->endpoint()
                    << (options.routes_from_fpm
                            ? ": egress routes from zebra's FIB"
                            : ": egress routes still from the kernel "
                              "(--route_source=kernel)");
    } else if (options.routes_from_fpm) {
      return server.status();
    } else {
      // The FIB is not used with kernel routes: a busy port is no reason
      // to refuse to forward.
      LB_LOG(kWarning) << server.status()
                       << "; continuing without the FPM server";
    }
  } else if (options.routes_from_fpm) {
    return absl::InvalidArgumentError(
        "--route_source=fpm needs the FPM server: set --fpm_listen (default "
        "127.0.0.1:2620, where zebra's `fpm address` points)");
  }
  dataplane::bpf::SteerOptions steer_options;
  steer_options.fastpath_flows = options.fast_path_flows;
  ASSIGN_OR_RETURN(d->steer_,
                   dataplane::bpf::SteerProgram::Load(steer_options));

  dataplane::xsk::DataplaneOptions dp;
  dp.interface = options.interface;
  dp.queues = options.queues;
  dp.tx_interface = options.tx_interface;
  dp.mode = options.xsk_mode;
  dp.busy_poll = options.busy_poll;
  dp.umem.frame_count = options.frames_per_queue;
  dp.worker.batch_size = options.batch_size;
  dp.worker.busy_poll = options.busy_poll;
  dp.fast_path = options.fast_path;

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

  // Each worker takes the latest neighbour/route tables once per batch.
  dp.worker.before_batch = [resolvers, queue_list](uint32_t queue) {
    for (size_t i = 0; i < queue_list.size(); ++i) {
      if (queue_list[i] == queue) {
        resolvers->by_worker[i]->Refresh();
        return;
      }
    }
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
  d->Remember(config);
  LogSorryChanges(nullptr, *config.names);
  {
    absl::MutexLock install(&d->install_mu_);
    d->proto_ = start_proto;
    auto view = std::make_shared<AdminView>(
        AdminView{config, start_proto, start_proto});
    absl::MutexLock lock(&d->mu_);
    d->view_ = std::move(view);
  }
  d->config_ = std::move(config);
  d->health_quorum_ = std::make_unique<HealthQuorum>();
  if (options.health_checks) RETURN_IF_ERROR(d->StartHealthChecks());
  if (options.announce) RETURN_IF_ERROR(d->StartAnnouncer(start_proto));

  if (!options.metrics_address.empty()) {
    Daemon* self = d.get();
    d->registry_ = std::make_unique<metrics::Registry>();
    d->dataplane_collector_ = std::make_unique<metrics::ScopedCollector>(
        d->registry_.get(), "dataplane",
        agent::DataplaneCollector([self] { return self->ReadMetricsInput(); }));
    d->worker_collector_ = std::make_unique<metrics::ScopedCollector>(
        d->registry_.get(), "xsk",
        [self](std::vector<metrics::MetricFamily>* out) {
          return self->CollectWorkerFamilies(out);
        });
    if (d->fpm_server_ != nullptr) {
      routing::fpm::FpmServer* fpm = d->fpm_server_.get();
      d->fpm_collector_ = std::make_unique<metrics::ScopedCollector>(
          d->registry_.get(), "fpm",
          [fpm](std::vector<metrics::MetricFamily>* out) {
            fpm->CollectMetrics(out);
            return absl::OkStatus();
          });
    }
    std::vector<metrics::HttpRoute> routes;
    if (d->monitor_ != nullptr) {
      health::HealthMonitor* monitor = d->monitor_.get();
      d->health_collector_ = std::make_unique<metrics::ScopedCollector>(
          d->registry_.get(), "health",
          [monitor](std::vector<metrics::MetricFamily>* out) {
            return monitor->CollectMetrics(out);
          });
    }
    routes.push_back({"GET", "/admin/health", [self](const std::string&) {
                        return metrics::HttpResponse{200, "application/json",
                                                     self->HealthJson()};
                      }});
    routes.push_back({"GET", "/admin/services", [self](const std::string&) {
                        return metrics::HttpResponse{200, "application/json",
                                                     self->ServicesJson()};
                      }});
    if (d->announcer_ != nullptr) {
      routing::announce::Announcer* announcer = d->announcer_.get();
      d->announce_collector_ = std::make_unique<metrics::ScopedCollector>(
          d->registry_.get(), "announce",
          [announcer](std::vector<metrics::MetricFamily>* out) {
            return announcer->Collect(out);
          });
      // Drain/undrain take effect at the announcer's next step (100 ms);
      // the answer is the state before it.
      routes.push_back(
          {"POST", "/admin/drain", [announcer](const std::string&) {
             LB_LOG(kInfo) << "POST /admin/drain";
             announcer->Drain();
             return metrics::HttpResponse{
                 200, "text/plain; charset=utf-8",
                 "draining: lower weight now, withdraw after the "
                 "drain period\n"};
           }});
      routes.push_back(
          {"POST", "/admin/undrain", [announcer](const std::string&) {
             LB_LOG(kInfo) << "POST /admin/undrain";
             announcer->Undrain();
             return metrics::HttpResponse{200, "text/plain; charset=utf-8",
                                          "undrained: announcing at the node "
                                          "weight\n"};
           }});
      routes.push_back(
          {"GET", "/admin/announce", [announcer](const std::string&) {
             return metrics::HttpResponse{200, "application/json",
                                          announcer->StatusJson()};
           }});
    }
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server =
        metrics::MetricsServer::Start(options.metrics_address,
                                      d->registry_.get(), std::move(routes));
    if (!server.ok()) {
      return Annotate(server.status(),
                      "starting the /metrics endpoint (--metrics_address)");
    }
    d->metrics_server_ = *std::move(server);
    LB_LOG(kInfo) << "metrics: http://" << options.metrics_address
                  << "/metrics (port " << d->metrics_server_->port() << ")";
  }
  if (d->controller_ != nullptr) {
    if (d->registry_ != nullptr) {
      agent::ControllerClient* client = d->controller_.get();
      d->controller_collector_ = std::make_unique<metrics::ScopedCollector>(
          d->registry_.get(), "controller",
          [client](std::vector<metrics::MetricFamily>* out) {
            return client->Collect(out);
          });
    }
    LB_LOG(kInfo) << "config from controller " << options.controller.target
                  << " as node " << options.controller.node_name
                  << ", starting at revision " << start_proto.revision()
                  << (options.snapshot_cache.empty()
                          ? std::string(" (no snapshot cache)")
                          : absl::StrCat(" (snapshot cache ",
                                         options.snapshot_cache, ")"));
    d->controller_->Start();
  }
  return d;
}

void Daemon::Remember(const agent::EngineConfig& config) {
  absl::MutexLock lock(&mu_);
  status_.revision = config.revision;
  status_.services = config.snapshot->services().size();
  names_.insert(names_.begin(), {config.snapshot.get(), config.names});
  kept_.insert(kept_.begin(), config.snapshot);
  // Workers adopt a snapshot within a batch or two; two configs are enough.
  if (names_.size() > 2) {
    names_.resize(2);
    kept_.resize(2);
  }
}

absl::StatusOr<agent::DataplaneMetricsInput> Daemon::ReadMetricsInput() const {
  agent::DataplaneMetricsInput input;
  std::vector<dataplane::xsk::WorkerStats> stats = dataplane_->Stats();
  absl::MutexLock lock(&mu_);
  input.config_revision = status_.revision;
  input.config_reloads = status_.reloads;
  input.config_reload_failures = status_.reload_failures;
  for (const dataplane::xsk::WorkerStats& ws : stats) {
    agent::WorkerMetricsInput w;
    w.worker = static_cast<int>(ws.queue);
    w.engine = ws.engine;
    w.flows = ws.flows;
    // The worker's counters are indexed by the snapshot it runs; name them
    // with that snapshot's names (a worker that has not published since a
    // reload may still run the previous one).
    for (const auto& [snapshot, names] : names_) {
      if (snapshot != ws.snapshot.get()) continue;
      w.names = names;
      w.services = ws.services;
      w.backends = ws.backends;
      w.connections.resize(ws.loads.size());
      for (size_t i = 0; i < ws.loads.size(); ++i) {
        for (const dataplane::xsk::BackendLoad& load : ws.loads[i]) {
          w.connections[i].push_back({load.active, load.inactive});
        }
      }
      break;
    }
    if (w.names == nullptr) w.names = names_.front().second;
    input.workers.push_back(std::move(w));
  }
  return input;
}

absl::Status Daemon::CollectWorkerFamilies(
    std::vector<metrics::MetricFamily>* out) const {
  using metrics::MetricFamily;
  using metrics::MetricType;
  std::vector<dataplane::xsk::WorkerStats> stats = dataplane_->Stats();
  struct Field {
    const char* name;
    const char* help;
    uint64_t dataplane::xsk::WorkerCounters::*member;
  };
  using C = dataplane::xsk::WorkerCounters;
  static constexpr Field kFields[] = {
      {"anylb_xsk_rx_packets_total", "Frames taken from the AF_XDP RX ring.",
       &C::rx_packets},
      {"anylb_xsk_tx_packets_total", "Frames put on the AF_XDP TX ring.",
       &C::tx_packets},
      {"anylb_xsk_dropped_total",
       "Frames the engine dropped (anylb_drops_total has the reasons).",
       &C::dropped},
      {"anylb_xsk_pass_unavailable_total",
       "Frames the engine would pass to the kernel (an AF_XDP frame cannot "
       "be): freed.",
       &C::pass_unavailable},
      {"anylb_xsk_tx_ring_full_total", "Frames dropped for a full TX ring.",
       &C::tx_ring_full},
      {"anylb_xsk_neighbor_wait_timeout_total",
       "Frames that waited for a neighbour too long.",
       &C::neighbor_wait_timeout},
      {"anylb_xsk_neighbor_wait_overflow_total",
       "Frames dropped because the neighbour wait queue was full.",
       &C::neighbor_wait_overflow},
      {"anylb_xsk_fill_empty_total", "Refills that found no free frame.",
       &C::fill_empty},
      {"anylb_xsk_snapshot_swaps_total", "Config snapshots adopted.",
       &C::snapshot_swaps},
      {"anylb_xsk_flows_expired_total",
       "Flow-table entries removed by expiry in the worker loop.",
       &C::flows_expired},
  };
  for (const Field& f : kFields) {
    MetricFamily family(f.name, f.help, MetricType::kCounter);
    for (const auto& ws : stats) {
      family.Add({{"worker", absl::StrCat(ws.queue)}}, ws.worker.*f.member);
    }
    out->push_back(std::move(family));
  }
  // The XDP fast path (dataplane/xsk/fastpath.h): per worker, and the
  // steering program's own counts of the frames it forwarded or punted.
  struct FastPathField {
    const char* name;
    const char* help;
    uint64_t dataplane::xsk::FastPathCounters::*member;
  };
  using F = dataplane::xsk::FastPathCounters;
  static constexpr FastPathField kFastPathFields[] = {
      {"anylb_fastpath_installs_total",
       "Flows installed into the XDP fast path.", &F::installs},
      {"anylb_fastpath_reinstalls_total",
       "Fast-path entries rewritten (stale or punted ones).", &F::reinstalls},
      {"anylb_fastpath_install_errors_total",
       "Fast-path map writes the kernel refused.", &F::install_errors},
      {"anylb_fastpath_removals_total",
       "Fast-path entries deleted by the worker (FIN/RST, flow gone, stale).",
       &F::removals},
      {"anylb_fastpath_evictions_total",
       "Fast-path entries evicted by the LRU map (estimate).", &F::evictions},
      {"anylb_fastpath_refreshes_total",
       "Engine flows kept alive by fast-path traffic.", &F::refreshes},
      {"anylb_fastpath_packets_total",
       "Frames the XDP fast path forwarded (also in the per-VIP/backend "
       "counters).",
       &F::packets},
      {"anylb_fastpath_bytes_total", "Bytes of those frames, as received.",
       &F::bytes},
  };
  for (const FastPathField& f : kFastPathFields) {
    MetricFamily family(f.name, f.help, MetricType::kCounter);
    for (const auto& ws : stats) {
      if (!ws.fast_path) continue;
      family.Add({{"worker", absl::StrCat(ws.queue)}}, ws.fastpath.*f.member);
    }
    out->push_back(std::move(family));
  }
  MetricFamily entries("anylb_fastpath_entries",
                       "Fast-path entries of the worker at its last scan.",
                       MetricType::kGauge);
  for (const auto& ws : stats) {
    if (!ws.fast_path) continue;
    entries.Add({{"worker", absl::StrCat(ws.queue)}},
                static_cast<double>(ws.fastpath.entries));
  }
  out->push_back(std::move(entries));
  absl::StatusOr<dataplane::bpf::SteerCounters> steer = steer_->ReadCounters();
  if (steer.ok()) {
    MetricFamily hits("anylb_fastpath_hits_total",
                      "Frames the XDP steering program rewrote and sent "
                      "itself (fast-path hits).",
                      MetricType::kCounter);
    hits.Add({}, (*steer)[ANYLB_STEER_CNT_FASTPATH_TX]);
    out->push_back(std::move(hits));
    MetricFamily punts(
        "anylb_fastpath_punts_total",
        "Fast-path hits sent to AF_XDP instead (TCP SYN/FIN/RST, stale "
        "entry, too big once encapsulated, ...).",
        MetricType::kCounter);
    punts.Add({}, (*steer)[ANYLB_STEER_CNT_FASTPATH_PUNT]);
    out->push_back(std::move(punts));
    MetricFamily decisions(
        "anylb_steer_packets_total",
        "The XDP steering program's counters: frames by decision "
        "(steer_vip, steer_local: to a FULLNAT local address, "
        "steer_nat_reply, pass_*) and the fast path's (fastpath_*).",
        MetricType::kCounter);
    for (int i = 0; i < ANYLB_STEER_CNT_MAX; ++i) {
      const auto c = static_cast<anylb_steer_counter>(i);
      decisions.Add(
          {{"decision", std::string(dataplane::bpf::SteerCounters::Name(c))}},
          (*steer)[c]);
    }
    out->push_back(std::move(decisions));
  }
  MetricFamily idle(
      "anylb_dataplane_idle_seconds",
      "Seconds since the slowest worker last went round its loop (a stuck "
      "worker grows it; above 2 s the dataplane counts as stalled).",
      MetricType::kGauge);
  idle.Add({},
           absl::ToDoubleSeconds(absl::Now() - dataplane_->OldestProgress()));
  out->push_back(std::move(idle));
  return absl::OkStatus();
}

Daemon::~Daemon() { Stop(); }

absl::StatusOr<lb::v1::ConfigSnapshot> Daemon::LoadProto() const {
  if (controller_mode()) return start_snapshot_;
  return config::LoadConfigFile(options_.config_path);
}

std::string Daemon::ConfigSource() const {
  if (controller_mode()) {
    return absl::StrCat("controller ", options_.controller.target);
  }
  return options_.config_path;
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

absl::StatusOr<routing::announce::AnnounceConfig> Daemon::AnnounceConfigOf(
    const lb::v1::ConfigSnapshot& proto) const {
  absl::StatusOr<routing::announce::AnnounceConfig> announce =
      routing::announce::AnnounceConfigFromProto(proto);
  if (!announce.ok()) {
    return Annotate(announce.status(), ConfigSource());
  }
  return announce;
}

absl::Status Daemon::StartAnnouncer(const lb::v1::ConfigSnapshot& proto) {
  namespace announce = routing::announce;
  ASSIGN_OR_RETURN(announce::AnnounceConfig announce_config,
                   AnnounceConfigOf(proto));
  {
    absl::MutexLock install(&install_mu_);
    ApplyEffectiveWeights(config_, &announce_config);
  }
  ASSIGN_OR_RETURN(tun_, announce::TunDevice::Create(options_.announce_device));
  ASSIGN_OR_RETURN(vip_routes_,
                   announce::VipRoutes::Create(tun_->ifindex(), tun_->name()));
  vtysh_ = std::make_unique<announce::SubprocessVtysh>(
      announce::SubprocessVtyshOptions{.binary = options_.frr_vtysh,
                                       .vty_socket = options_.frr_vty_socket});
  announce::AnnouncerOptions o;
  o.device = options_.announce_device;
  dataplane::xsk::Dataplane* dp = dataplane_.get();
  o.oldest_progress = [dp] { return dp->OldestProgress(); };
  o.liveness_timeout = options_.liveness_timeout;
  o.drain_gshut = options_.drain_gshut;
  o.frr.protocols = options_.announce_protocols;
  o.health = health_quorum_.get();
  announcer_ =
      std::make_unique<announce::Announcer>(o, vip_routes_.get(), vtysh_.get());
  announcer_->SetConfig(std::move(announce_config));
  announcer_->Start();
  LB_LOG(kInfo) << "announcing VIPs on device " << tun_->name() << " (ifindex "
                << tun_->ifindex() << ") through FRR (" << options_.frr_vtysh
                << (options_.frr_vty_socket.empty()
                        ? std::string()
                        : absl::StrCat(" --vty_socket ",
                                       options_.frr_vty_socket))
                << "), liveness timeout " << options_.liveness_timeout;
  return absl::OkStatus();
}

absl::Status Daemon::Reload() {
  if (controller_mode()) {
    LB_LOG(kInfo) << "SIGHUP: the config comes from controller "
                  << options_.controller.target << " (revision "
                  << controller_->applied_revision()
                  << " applied); nothing to reload";
    return absl::OkStatus();
  }
  absl::StatusOr<lb::v1::ConfigSnapshot> proto =
      config::LoadConfigFile(options_.config_path);
  if (!proto.ok()) {
    absl::MutexLock lock(&mu_);
    ++status_.reload_failures;
    status_.last_reload_error = std::string(proto.status().message());
    return proto.status();
  }
  return InstallProto(*proto);
}

absl::Status Daemon::ApplySnapshot(const lb::v1::ConfigSnapshot& snapshot) {
  return InstallProto(snapshot);
}

lb::v1::NodeStatus Daemon::NodeStatus() const {
  lb::v1::NodeStatus status;
  absl::StatusOr<agent::DataplaneMetricsInput> input = ReadMetricsInput();
  if (input.ok()) status = agent::NodeStatusFromMetrics(*input);
  // The same rule as main's liveness log line.
  const absl::Duration idle = absl::Now() - dataplane_->OldestProgress();
  status.set_dataplane(
      idle > std::max(absl::Seconds(2), options_.liveness_timeout)
          ? lb::v1::DATAPLANE_STATE_STALLED
          : lb::v1::DATAPLANE_STATE_LIVE);
  if (monitor_ != nullptr) AddHealthReports(monitor_->Statuses(), &status);
  std::set<IpAddress> announced;
  if (announcer_ != nullptr) {
    for (const routing::announce::VipState& v : announcer_->status().vips) {
      if (v.announced) announced.insert(v.vip);
    }
  }
  if (std::shared_ptr<const AdminView> view = View(); view != nullptr) {
    agent::MarkAnnounced(*view->engine.names, announced, &status);
  }
  return status;
}

std::shared_ptr<const Daemon::AdminView> Daemon::View() const {
  absl::MutexLock lock(&mu_);
  return view_;
}

std::string Daemon::HealthJson() const {
  std::shared_ptr<const AdminView> view = View();
  if (view == nullptr) return "[]\n";
  return lbnode::HealthJson(monitor_ != nullptr
                                ? monitor_->Statuses()
                                : std::vector<health::BackendHealthStatus>(),
                            view->configured);
}

std::string Daemon::ServicesJson() const {
  std::shared_ptr<const AdminView> view = View();
  if (view == nullptr) return "[]\n";
  return lbnode::ServicesJson(view->engine, view->effective,
                              monitor_ != nullptr
                                  ? monitor_->Statuses()
                                  : std::vector<health::BackendHealthStatus>());
}

absl::Status Daemon::StartHealthChecks() {
  ASSIGN_OR_RETURN(checker_, health::Checker::Create());
  health_worker_ =
      std::make_unique<CoalescingWorker>([this] { RefreshHealth(); });
  health::MonitorOptions o;
  o.prober = checker_.get();
  o.max_in_flight = options_.health_max_in_flight;
  CoalescingWorker* worker = health_worker_.get();
  // The monitor's thread only wakes the worker: installing takes
  // install_mu_, which SetTargets' callers hold.
  o.on_change = [worker](const health::HealthChange&) { worker->Notify(); };
  health::Checker* checker = checker_.get();
  o.run_command = [checker](health::CommandRequest request) {
    checker->RunCommand(std::move(request));
  };
  ASSIGN_OR_RETURN(monitor_, health::HealthMonitor::Create(std::move(o)));
  absl::MutexLock install(&install_mu_);
  SetHealthTargets(proto_);
  LB_LOG(kInfo) << "health checks: at most " << options_.health_max_in_flight
                << " probes at once; "
                << (controller_mode()
                        ? "verdicts reported to the controller, which "
                          "decides the fleet's"
                        : "this node's verdicts set the weights (standalone)");
  return absl::OkStatus();
}

void Daemon::SetHealthTargets(const lb::v1::ConfigSnapshot& proto) {
  if (monitor_ == nullptr) return;
  std::vector<std::string> skipped;
  std::vector<health::CheckTarget> targets = CheckTargetsOf(proto, &skipped);
  for (const std::string& why : skipped) {
    if (target_warnings_.insert(why).second) LB_LOG(kWarning) << why;
  }
  const size_t count = targets.size();
  if (absl::Status s = monitor_->SetTargets(std::move(targets)); !s.ok()) {
    // NormalizeConfig checks what SetTargets refuses; this is a bug.
    LB_LOG(kError) << "health checks not updated (the previous targets "
                      "stay): "
                   << s;
    return;
  }
  LB_LOG(kDebug) << "health checks: " << count << " real server(s) checked";
}

std::vector<agent::LocalVerdict> Daemon::Verdicts() const {
  if (monitor_ == nullptr) return {};
  return LocalVerdictsOf(monitor_->Statuses());
}

void Daemon::RefreshHealth() {
  {
    absl::MutexLock install(&install_mu_);
    if (monitor_ == nullptr) return;  // Stopping.
    std::vector<agent::LocalVerdict> verdicts = Verdicts();
    auto same = [](const agent::LocalVerdict& a, const agent::LocalVerdict& b) {
      return a.id == b.id && a.state == b.state &&
             a.dynamic_weight == b.dynamic_weight;
    };
    if (std::equal(verdicts.begin(), verdicts.end(), verdicts_.begin(),
                   verdicts_.end(), same)) {
      return;
    }
    if (absl::Status s = InstallLocked(proto_, std::move(verdicts)); !s.ok()) {
      LB_LOG(kError) << "health change not installed (the running config "
                        "stays): "
                     << s;
      absl::MutexLock lock(&mu_);
      ++status_.reload_failures;
      status_.last_reload_error = std::string(s.message());
      return;
    }
  }
  if (controller_ != nullptr) controller_->ReportNow();
}

absl::Status Daemon::InstallProto(const lb::v1::ConfigSnapshot& proto) {
  absl::MutexLock install(&install_mu_);
  absl::Status status = InstallLocked(proto, Verdicts());
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    ++status_.reload_failures;
    status_.last_reload_error = std::string(status.message());
    return status;
  }
  {
    absl::MutexLock lock(&mu_);
    ++status_.reloads;
    status_.last_reload_error.clear();
  }
  // Unchanged targets keep their state; new ones start unknown (up).
  SetHealthTargets(proto);
  return absl::OkStatus();
}

absl::Status Daemon::InstallLocked(const lb::v1::ConfigSnapshot& proto,
                                   std::vector<agent::LocalVerdict> verdicts) {
  // Standalone: this node's verdicts are the fleet's. With a controller:
  // the fleet's come in the snapshot, this node's only mark backends it
  // cannot reach.
  const bool standalone = !controller_mode();
  lb::v1::ConfigSnapshot effective =
      standalone ? agent::OverlayLocalHealth(proto, verdicts) : proto;
  const std::set<agent::BackendId> local_down = LocalDownOf(verdicts);
  absl::StatusOr<agent::EngineConfig> config = agent::BuildEngineConfig(
      effective, identity_,
      standalone ? std::set<agent::BackendId>() : local_down);
  RETURN_IF_ERROR(config.status());
  absl::StatusOr<routing::announce::AnnounceConfig> announce_config;
  if (announcer_ != nullptr) {
    announce_config = AnnounceConfigOf(effective);
    RETURN_IF_ERROR(announce_config.status());
    ApplyEffectiveWeights(*config, &*announce_config);
  }
  RETURN_IF_ERROR(Install(*config));
  LogSorryChanges(config_.names.get(), *config->names);
  health_quorum_->Set(UnhealthyOf(proto, effective, local_down));
  if (announcer_ != nullptr) {
    announcer_->SetConfig(*std::move(announce_config));
  }
  Remember(*config);
  auto view = std::make_shared<AdminView>(
      AdminView{*config, proto, std::move(effective)});
  {
    absl::MutexLock lock(&mu_);
    view_ = std::move(view);
  }
  config_ = *std::move(config);
  proto_ = proto;
  verdicts_ = std::move(verdicts);
  return absl::OkStatus();
}

void Daemon::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // No snapshot is applied after this point.
  if (controller_ != nullptr) controller_->Stop();
  // No scrape after this point.
  metrics_server_.reset();
  health_collector_.reset();
  controller_collector_.reset();
  announce_collector_.reset();
  worker_collector_.reset();
  dataplane_collector_.reset();
  fpm_collector_.reset();
  // No health change after this point: the monitor (whose on_change wakes
  // the worker) goes under install_mu_, so a running refresh finishes first
  // and a later one finds no monitor; then the worker, then the probers.
  {
    absl::MutexLock install(&install_mu_);
    monitor_.reset();
  }
  health_worker_.reset();
  checker_.reset();
  // The VIPs go first: closing the TUN device deletes their routes, and
  // FRR withdraws them (a sudden withdraw; POST /admin/drain first for a
  // graceful one).
  if (announcer_ != nullptr) announcer_->Stop();
  announcer_.reset();
  vip_routes_.reset();
  tun_.reset();
  if (dataplane_ != nullptr) dataplane_->Stop();
  steer_.reset();       // Detaches the program.
  fpm_server_.reset();  // Publishes into next_hops_.
  next_hops_.reset();
}

DaemonStatus Daemon::status() const {
  DaemonStatus s;
  {
    absl::MutexLock lock(&mu_);
    s = status_;
  }
  if (dataplane_ != nullptr) {
    s.oldest_worker_progress = dataplane_->OldestProgress();
  }
  return s;
}

int Daemon::metrics_port() const {
  return metrics_server_ == nullptr ? 0 : metrics_server_->port();
}

std::string Daemon::DumpText() const {
  absl::StatusOr<agent::DataplaneMetricsInput> input = ReadMetricsInput();
  if (!input.ok()) return absl::StrCat("counters: ", input.status().message());
  std::string out = agent::FormatTextDump(*input);
  for (const auto& ws : dataplane_->Stats()) {
    const auto& w = ws.worker;
    absl::StrAppendFormat(
        &out,
        "xsk queue %d: rx %d tx %d dropped %d pass_unavailable %d "
        "tx_ring_full %d parked %d (forwarded %d, timeout %d, overflow %d) "
        "fill_empty %d swaps %d; frames free %d fill %d rx %d tx %d\n",
        ws.queue, w.rx_packets, w.tx_packets, w.dropped, w.pass_unavailable,
        w.tx_ring_full, w.parked, w.parked_forwarded, w.neighbor_wait_timeout,
        w.neighbor_wait_overflow, w.fill_empty, w.snapshot_swaps,
        ws.frames.free, ws.frames.fill, ws.frames.rx, ws.frames.tx_in_flight);
  }
  return out;
}

}  // namespace anylb::lbnode
