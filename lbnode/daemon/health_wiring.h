// Health checks inside lbnode: the pieces between the config, the
// HealthMonitor (lbnode/health/monitor.h) and the daemon's outputs.
//
//   config ──CheckTargetsOf──► HealthMonitor::SetTargets
//   HealthMonitor::on_change ──► CoalescingWorker ──► Daemon re-install
//   HealthMonitor::Statuses ──► LocalVerdictsOf ──► BuildEngineConfig /
//                               OverlayLocalHealth, AddHealthReports
//                               (NodeStatus), HealthJson (/admin/health)
//   EngineConfig + verdicts ──► ServicesJson (/admin/services)
//   unhealthy backends ──► HealthQuorum (the Announcer's HealthSource)
//
// Threading: the free functions are pure; CoalescingWorker and HealthQuorum
// document theirs.

#ifndef ANYLB_LBNODE_DAEMON_HEALTH_WIRING_H_
#define ANYLB_LBNODE_DAEMON_HEALTH_WIRING_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lb/v1/config.pb.h"
#include "lb/v1/node.pb.h"
#include "lbnode/agent/snapshot_builder.h"
#include "lbnode/health/monitor.h"
#include "routing/announce/announcer.h"

namespace anylb::lbnode {

// CheckTargetsOf lists the real servers to check in `config`: every backend
// that is not DISABLED (the sorry backend never) of every service whose
// health_check has a kind set. Probes connect to health_check_address /
// health_check_port when set, else to the backend's address and effective
// port (its port, or the service's when 0). A TCP-kind check (tcp, http,
// grpc, dns, udp) of an all-ports service without health_check_port has
// nowhere to connect: it is left out and described in `*skipped` (an exec
// check still runs, with port 0). `config` has passed NormalizeConfig.
std::vector<health::CheckTarget> CheckTargetsOf(
    const lb::v1::ConfigSnapshot& config, std::vector<std::string>* skipped);

// LocalVerdictsOf: the monitor's statuses as the snapshot builder's
// verdicts.
std::vector<agent::LocalVerdict> LocalVerdictsOf(
    const std::vector<health::BackendHealthStatus>& statuses);

// LocalDownOf: the backends `verdicts` hold DOWN.
std::set<agent::BackendId> LocalDownOf(
    const std::vector<agent::LocalVerdict>& verdicts);

// AddHealthReports appends one NodeStatus.health_reports entry per status
// (state, last_change unless never, last_error, dynamic_weight).
void AddHealthReports(const std::vector<health::BackendHealthStatus>& statuses,
                      lb::v1::NodeStatus* status);

// HealthStateName: "up", "down", or "unknown" (not decided yet).
const char* HealthStateName(lb::v1::HealthState state);
// FleetStateName: "down", or "up" (also when the snapshot has no verdict:
// lb.v1's "absent counts as up").
const char* FleetStateName(lb::v1::HealthState state);

// HealthJson is GET /admin/health's body: a JSON array with one object per
// checked real server, sorted by service and backend:
//   {"service":"web","backend":"198.51.100.11:80","state":"up",
//    "last_change":"2026-11-24T08:30:00.123Z","last_error":"",
//    "dynamic_weight":null,"probes":12,"failures":1}
// backend is the real server at its effective port (`config` gives the
// service ports); last_change is "" before the first verdict;
// dynamic_weight is null unless a dynamic-weight exec check set one.
std::string HealthJson(const std::vector<health::BackendHealthStatus>& statuses,
                       const lb::v1::ConfigSnapshot& config);

// ServicesJson is GET /admin/services's body: a JSON array with one object
// per service of `engine` (in config order):
//   {"name":"web","vip":"192.0.2.10","port":80,"protocol":"tcp",
//    "scheduler":"mh","table_digest":"9c1f0e2a7b3d4c55","sorry_active":false,
//    "backends":[{"address":"198.51.100.11","port":80,"weight":100,
//                 "available":true,"fleet_state":"up","local_state":"down"}]}
// table_digest is the hex of the Maglev table's Digest() (TableDigest), ""
// for other schedulers. weight is the effective weight; fleet_state comes
// from `effective`'s backend_health ("up" or "down"; absent counts as up),
// local_state from `statuses` ("up", "down", "unknown"; "unchecked" without
// a check). A backend the fleet's verdict removed (on_failure: remove) is
// listed after the others with weight 0, available false and
// "removed":true. `effective` is
// the config the EngineConfig was built from (local verdicts overlaid in
// standalone mode). A backend that is the active sorry server has
// "sorry":true.
std::string ServicesJson(
    const agent::EngineConfig& engine, const lb::v1::ConfigSnapshot& effective,
    const std::vector<health::BackendHealthStatus>& statuses);

// TableDigest: the hex (16 digits) of MaglevTable::Digest() for `service`'s
// backends (effective weights), table size and seed — what every worker of
// every node builds for it; "" when the service's scheduler is not mh or the
// table does not build.
std::string TableDigest(const dataplane::ServiceConfig& service);

// HealthQuorum is the Announcer's HealthSource: a real server counts toward
// its service's quorum unless the fleet's verdict or this node's own checks
// hold it DOWN. The daemon replaces the set after each (re-)install.
// Threading: Set and IsHealthy from any thread.
class HealthQuorum : public routing::announce::HealthSource {
 public:
  // Key: service name, the backend's address as written in the config, its
  // port as configured — what AnnounceBackend carries.
  using Key = std::tuple<std::string, std::string, uint32_t>;
  void Set(std::set<Key> unhealthy);
  bool IsHealthy(
      const std::string& service,
      const routing::announce::AnnounceBackend& backend) const override;

 private:
  mutable absl::Mutex mu_;
  std::set<Key> unhealthy_ ABSL_GUARDED_BY(mu_);
};

// UnhealthyOf: the HealthQuorum keys of `configured`'s backends that
// `effective`'s backend_health or `local_down` hold DOWN.
std::set<HealthQuorum::Key> UnhealthyOf(
    const lb::v1::ConfigSnapshot& configured,
    const lb::v1::ConfigSnapshot& effective,
    const std::set<agent::BackendId>& local_down);

// ApplyEffectiveWeights sets each backend weight of `announce` (built from
// the same config as `engine`, services in the same order) to its effective
// weight in `engine` (0 when the engine left it out), and names the services
// as the engine does, so quorum counts what the dataplane schedules.
void ApplyEffectiveWeights(const agent::EngineConfig& engine,
                           routing::announce::AnnounceConfig* announce);

// CoalescingWorker runs `work` on its own thread after Notify(); the
// notifications that arrive while `work` runs make one more run, not one
// each. It lets the monitor's thread hand a health change to a thread that
// may take the daemon's locks. The destructor waits for a running `work`
// and drops a pending one.
class CoalescingWorker {
 public:
  explicit CoalescingWorker(std::function<void()> work);
  ~CoalescingWorker();
  CoalescingWorker(const CoalescingWorker&) = delete;
  CoalescingWorker& operator=(const CoalescingWorker&) = delete;

  // Notify asks for a run; any thread, returns at once.
  void Notify();
  // runs: how many times `work` has run (tests).
  uint64_t runs() const;

 private:
  void Loop();

  const std::function<void()> work_;
  mutable absl::Mutex mu_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t runs_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace anylb::lbnode

#endif  // ANYLB_LBNODE_DAEMON_HEALTH_WIRING_H_
