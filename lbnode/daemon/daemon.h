// Daemon: one lbnode process — the wiring of everything a director runs.
//
//   config file ──LoadConfigFile/BuildEngineConfig──► EngineConfig
//        │                                              │ snapshot → workers
//        │                                              │ VIPs, local addrs,
//        │                                              ▼ NAT backends → steer
//   interface ─► XDP steering program ─► xsks_map ─► Dataplane (a Worker per
//                                                   RX queue, each an Engine)
//   kernel neighbours/routes ─► KernelNextHops ─► a resolver per worker
//   /metrics ◄─ Prometheus collector ◄─ workers' published stats
//   config ─► HealthMonitor targets; a health change ─► health worker ─►
//   re-install with the new local health (standalone) or new availability
//   plus a report to the controller at once (controller mode)
//
// Health checks (--health_checks, lbnode/health): the Checker runs the
// probes, the HealthMonitor schedules them and decides up/down. After each
// install the monitor gets the config's targets (health_wiring.h). Its
// on_change runs on the monitor's thread and only wakes the health worker
// (a CoalescingWorker), which takes install_mu_ and rebuilds from the
// running config: standalone, the node's verdicts are the fleet's
// (OverlayLocalHealth: inhibit, remove, dynamic weight, sorry server);
// with a controller they only mark backends this node cannot reach
// unavailable (the Maglev table stays the fleet's) and the controller
// client reports at once. Quorum (the announcer's HealthSource) counts a
// backend unless the fleet or this node holds it DOWN, at its effective
// weight.
//
// Ownership and threading: every method runs on the control thread (main),
// except what the owned objects document. Start() loads and checks the
// config before it touches the interface: a bad file fails the start with
// the file's errors and nothing attached. Reload() builds the new config
// completely first and installs it only when it is valid; the running
// config stays otherwise (and the failure is counted and logged).
//
// Installing a config: the snapshot goes to the workers first, then the
// steering maps are replaced. So a new VIP's first packets may reach a
// worker that has not adopted the snapshot yet (dropped and counted as
// pass_unavailable: nothing was accepted for that VIP before), and a removed
// VIP's packets keep reaching the workers until the maps change (dropped:
// no longer served). Flows of services that stay are never touched by the
// order.
//
// Stop() (SIGTERM) stops the workers, removes the sockets, detaches the XDP
// program and closes everything, in that order; the destructor does it too.

#ifndef ANYLB_LBNODE_DAEMON_DAEMON_H_
#define ANYLB_LBNODE_DAEMON_DAEMON_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/metrics/metrics_server.h"
#include "common/metrics/registry.h"
#include "lb/v1/config.pb.h"
#include "lbnode/agent/controller_client.h"
#include "lbnode/agent/dataplane_metrics.h"
#include "lbnode/agent/snapshot_builder.h"
#include "lbnode/agent/snapshot_cache.h"
#include "lbnode/daemon/health_wiring.h"
#include "lbnode/daemon/interface_info.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/xsk/dataplane.h"
#include "lbnode/health/checker.h"
#include "lbnode/health/monitor.h"
#include "routing/announce/announcer.h"
#include "routing/announce/frr_config.h"

namespace anylb::routing::netlink {
class KernelNextHops;
}
namespace anylb::routing::fpm {
class FpmServer;
}
namespace anylb::routing::announce {
class SubprocessVtysh;
class TunDevice;
class VipRoutes;
}  // namespace anylb::routing::announce

namespace anylb::lbnode {

class NodeResolvers;

// DaemonOptions are the daemon's flags (main.cc documents each).
struct DaemonOptions {
  std::string interface;
  std::string tx_interface;      // Empty: transmit on `interface`.
  std::vector<uint32_t> queues;  // Empty: every RX queue.
  std::string config_path;
  std::string metrics_address;  // Empty: no /metrics endpoint.
  dataplane::bpf::SteerMode steer_mode = dataplane::bpf::SteerMode::kXdpNative;
  dataplane::xsk::XskMode xsk_mode = dataplane::xsk::XskMode::kAuto;
  bool busy_poll = false;
  uint32_t batch_size = 64;
  uint32_t frames_per_queue = 4096;
  size_t flow_table_capacity = size_t{1} << 20;  // Flows per worker.
  std::optional<IpAddress> tunnel_source_v4;     // Default: interface's first.
  std::optional<IpAddress> tunnel_source_v6;
  uint32_t mtu = 0;  // 0: the interface's MTU.
  uint8_t outer_ttl = 64;
  // The XDP fast path for established DR/TUN flows
  // (dataplane/xsk/fastpath.h) and its flow map's size (LRU).
  bool fast_path = true;
  uint32_t fast_path_flows = 262144;
  // VIP announcement through FRR (routing/announce): a TUN device holding
  // the VIP routes, lbnode's route-maps set through vtysh, the liveness
  // watchdog, and POST /admin/drain, /admin/undrain, GET /admin/announce on
  // the metrics address.
  bool announce = false;
  std::string announce_device = "anylb0";
  std::string frr_vtysh = "/usr/bin/vtysh";
  std::string frr_vty_socket;  // Empty: vtysh's default.
  std::vector<routing::announce::RoutingProtocol> announce_protocols = {
      routing::announce::RoutingProtocol::kBgp,
      routing::announce::RoutingProtocol::kOspf};
  absl::Duration liveness_timeout = absl::Seconds(1);
  // Drain also tags the VIP routes with GSHUT (announce::AnnouncerOptions).
  bool drain_gshut = false;
  // FPM (routing/fpm): where zebra's dplane_fpm_nl connects (empty: no
  // server), and where the dataplane's routes come from: zebra's FIB over
  // FPM (true, --route_source=fpm) or the kernel's main table (false,
  // --route_source=kernel, the default for nodes without FRR). Neighbours
  // always come from the kernel.
  std::string fpm_listen = "127.0.0.1:2620";
  bool routes_from_fpm = false;
  // Controller mode (--controller; exclusive with config_path): the config
  // comes from anylb-controller through an agent::ControllerClient. The
  // start config is the snapshot cache's (when readable) or an empty one;
  // each snapshot the controller sends is installed like a SIGHUP reload
  // and then cached. controller.target empty: file mode.
  agent::ControllerClientOptions controller;
  std::string snapshot_cache;  // Empty: no cache.
  // Health checks of the real servers of services with a health_check
  // (false: none run; every backend counts as up locally), and at most this
  // many probes at once.
  bool health_checks = true;
  size_t health_max_in_flight = 64;
};

// DaemonStatus is what the daemon reports about itself.
struct DaemonStatus {
  uint64_t revision = 0;
  size_t services = 0;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  std::string last_reload_error;
  absl::Time started = absl::InfinitePast();
  absl::Time oldest_worker_progress = absl::InfinitePast();
};

class Daemon {
 public:
  // Start loads the config, attaches the steering program, starts the
  // workers and the metrics endpoint. Errors name the part that failed.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(
      const DaemonOptions& options);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  // Reload re-reads the config file and installs it if valid; on error the
  // running config stays and the error is returned (and counted). In
  // controller mode it only logs that the config comes from the controller.
  absl::Status Reload();

  // ApplySnapshot installs a controller snapshot like Reload (any thread:
  // the controller client's watch thread calls it).
  absl::Status ApplySnapshot(const lb::v1::ConfigSnapshot& snapshot);

  // The controller client (null in file mode).
  const agent::ControllerClient* controller() const {
    return controller_.get();
  }

  // DumpText is every counter as text (SIGUSR1).
  std::string DumpText() const;

  // Stop: see the file comment. Idempotent.
  void Stop();

  DaemonStatus status() const;
  // ReadMetricsInput gathers every worker's latest counters with the names
  // of the config it runs (any thread: the /metrics scrape calls it).
  absl::StatusOr<agent::DataplaneMetricsInput> ReadMetricsInput() const;
  const InterfaceInfo& interface() const { return interface_; }
  const dataplane::xsk::Dataplane& dataplane() const { return *dataplane_; }
  // The bound /metrics port (0 without an endpoint).
  int metrics_port() const;
  // The VIP announcer (null without --announce).
  const routing::announce::Announcer* announcer() const {
    return announcer_.get();
  }
  // The health monitor (null with --health_checks=false).
  const health::HealthMonitor* health_monitor() const { return monitor_.get(); }
  // HealthJson / ServicesJson: GET /admin/health and /admin/services
  // (health_wiring.h). Any thread.
  std::string HealthJson() const;
  std::string ServicesJson() const;

 private:
  Daemon() = default;
  bool controller_mode() const { return !options_.controller.target.empty(); }
  // LoadProto: the config file, or in controller mode the start snapshot.
  absl::StatusOr<lb::v1::ConfigSnapshot> LoadProto() const;
  // ConfigSource names where a config came from, for errors.
  std::string ConfigSource() const;
  // AnnounceConfigOf takes the node and services part of `proto` for the
  // announcer.
  absl::StatusOr<routing::announce::AnnounceConfig> AnnounceConfigOf(
      const lb::v1::ConfigSnapshot& proto) const;
  // InstallProto: Reload's work for a given config.
  absl::Status InstallProto(const lb::v1::ConfigSnapshot& proto);
  // InstallLocked builds and installs `proto` with this node's `verdicts`
  // (see the file comment) and remembers both.
  absl::Status InstallLocked(const lb::v1::ConfigSnapshot& proto,
                             std::vector<agent::LocalVerdict> verdicts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_);
  // Verdicts: the monitor's current verdicts (none without one).
  std::vector<agent::LocalVerdict> Verdicts() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_);
  // SetHealthTargets gives the monitor `proto`'s targets.
  void SetHealthTargets(const lb::v1::ConfigSnapshot& proto)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_);
  absl::Status StartHealthChecks();
  // RefreshHealth: the health worker's run (see the file comment).
  void RefreshHealth();
  absl::Status StartAnnouncer(const lb::v1::ConfigSnapshot& proto);
  absl::Status StartControllerClient();
  lb::v1::NodeStatus NodeStatus() const;
  absl::Status Install(const agent::EngineConfig& config);
  void Remember(const agent::EngineConfig& config);
  absl::Status CollectWorkerFamilies(
      std::vector<metrics::MetricFamily>* out) const;

  DaemonOptions options_;
  InterfaceInfo interface_;
  agent::NodeIdentity identity_;
  std::unique_ptr<routing::netlink::KernelNextHops> next_hops_;
  // Feeds next_hops_ (--route_source=fpm): declared after it, gone before.
  std::unique_ptr<routing::fpm::FpmServer> fpm_server_;
  std::unique_ptr<NodeResolvers> resolvers_;
  std::unique_ptr<dataplane::bpf::SteerProgram> steer_;
  std::unique_ptr<dataplane::xsk::Dataplane> dataplane_;
  agent::EngineConfig config_;  // Guarded by install_mu_ after Start.
  bool stopped_ = false;
  // Serialises installs: SIGHUP (control thread) and controller snapshots
  // (the client's watch thread).
  absl::Mutex install_mu_;
  lb::v1::ConfigSnapshot start_snapshot_;  // Controller mode's start config.
  std::unique_ptr<agent::SnapshotCache> cache_;
  // The running config as received (file or controller) and the local
  // verdicts it was built with; warnings about targets already logged.
  lb::v1::ConfigSnapshot proto_ ABSL_GUARDED_BY(install_mu_);
  std::vector<agent::LocalVerdict> verdicts_ ABSL_GUARDED_BY(install_mu_);
  std::set<std::string> target_warnings_ ABSL_GUARDED_BY(install_mu_);

  // What the admin pages show: the installed EngineConfig with the
  // configs it came from (effective: with the local verdicts overlaid).
  struct AdminView {
    agent::EngineConfig engine;
    lb::v1::ConfigSnapshot configured;
    lb::v1::ConfigSnapshot effective;
  };
  std::shared_ptr<const AdminView> View() const;

  // Shared with the scrape threads.
  mutable absl::Mutex mu_;
  DaemonStatus status_ ABSL_GUARDED_BY(mu_);
  // The names of the configs workers may still run (current and previous),
  // by snapshot: a worker's counters are indexed by its snapshot.
  std::vector<std::pair<const dataplane::EngineSnapshot*,
                        std::shared_ptr<const agent::NameTable>>>
      names_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<const dataplane::EngineSnapshot>> kept_
      ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const AdminView> view_ ABSL_GUARDED_BY(mu_);

  // Health checks (Stop() takes them down before the announcer): the
  // quorum source outlives the announcer, the checker the monitor.
  std::unique_ptr<HealthQuorum> health_quorum_;
  std::unique_ptr<health::Checker> checker_;
  std::unique_ptr<CoalescingWorker> health_worker_;
  std::unique_ptr<health::HealthMonitor> monitor_;

  // Declared last: destroyed first, so no scrape runs into a half-gone
  // daemon.
  // The announcer; its device goes before the dataplane stops (Stop()).
  std::unique_ptr<routing::announce::TunDevice> tun_;
  std::unique_ptr<routing::announce::VipRoutes> vip_routes_;
  std::unique_ptr<routing::announce::SubprocessVtysh> vtysh_;
  std::unique_ptr<routing::announce::Announcer> announcer_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<metrics::ScopedCollector> dataplane_collector_;
  std::unique_ptr<metrics::ScopedCollector> worker_collector_;
  std::unique_ptr<metrics::ScopedCollector> announce_collector_;
  std::unique_ptr<metrics::ScopedCollector> fpm_collector_;
  std::unique_ptr<metrics::ScopedCollector> controller_collector_;
  std::unique_ptr<metrics::ScopedCollector> health_collector_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  // Stopped first (Stop()): no snapshot is applied into a stopping daemon.
  std::unique_ptr<agent::ControllerClient> controller_;
};

}  // namespace anylb::lbnode

#endif  // ANYLB_LBNODE_DAEMON_DAEMON_H_
