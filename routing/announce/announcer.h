// Announcer: decides which VIPs (and FULLNAT local-address prefixes) this
// node announces and makes it so — routes on the TUN device (RouteHolder)
// and lbnode's route-maps in FRR (FrrConfigurator).
//
// A VIP is announced while all of these hold:
//   * the dataplane is live: every worker made progress within
//     liveness_timeout (the watchdog is this object's thread, not a
//     worker; a stall withdraws every VIP at once, recovery re-announces);
//   * one of the VIP's services (ports) has quorum: the weight of its
//     enabled, healthy real servers is at least quorum.min_weight (0: at
//     least one real server with weight > 0); once lost, quorum comes back
//     only at min_weight + hysteresis. Health is asked of a HealthSource
//     (issue 8 plugs the checkers in; until then every enabled real server
//     counts as healthy);
//   * the node is not drained past its drain period.
//
// FULLNAT local addresses (node.local_addresses, each prefix as configured)
// are announced whenever the dataplane is live, whatever any service's
// quorum: replies to established FULLNAT flows come back by them, so they
// stay while the node forwards, also through a drain, until the drain
// completes; they leave on liveness loss or at drain completion.
//
// Drain (config file node.admin_state, or Drain() from POST /admin/drain):
// FRR first gets the drain intent (link bandwidth kDrainBandwidthMbps plus
// the GSHUT community on ANYLB-BGP, the drain metric on ANYLB-OSPF) while
// the routes stay, so routers move flows away; drain_period later the
// routes leave the device (withdraw). Undrain restores the weight first,
// then the routes come back. A drain/undrain from the admin endpoint holds
// until the config file's admin_state changes.
//
// Order within a step: FRR is configured before routes are added, so a VIP
// appears with its attributes; routes are not held back by FRR errors
// (those are retried and counted: a node with a broken vtysh still
// announces, at FRR's defaults).
//
// Threading: Start() runs Step() on its own thread every `tick`; SetConfig,
// Drain, Undrain, status, StatusJson and Collect may be called from any
// thread. Without Start(), a test calls Step() itself with a fake clock.

#ifndef ANYLB_ROUTING_ANNOUNCE_ANNOUNCER_H_
#define ANYLB_ROUTING_ANNOUNCE_ANNOUNCER_H_

#include <cstdint>
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
#include "common/ip_address.h"
#include "common/metrics/metric_family.h"
#include "routing/announce/frr_config.h"
#include "routing/announce/frr_configurator.h"
#include "routing/announce/vip_routes.h"
#include "routing/announce/vtysh.h"

namespace anylb::routing::announce {

// AnnounceBackend is a real server as quorum sees it.
struct AnnounceBackend {
  std::string address;  // For HealthSource and messages.
  uint32_t port = 0;
  uint32_t weight = 1;
  bool enabled = true;  // BACKEND_STATE_ENABLED (draining/disabled: false).
};

// AnnounceService is one service (VIP, port, protocol) as quorum sees it.
struct AnnounceService {
  std::string name;
  IpAddress vip;
  uint32_t quorum_min_weight = 0;
  uint32_t quorum_hysteresis = 0;
  std::vector<AnnounceBackend> backends;
  std::vector<uint32_t> communities;  // ParseCommunity values.
};

// AnnounceConfig is the announcement part of the node's config.
struct AnnounceConfig {
  uint32_t weight = 1;  // 0 means 1.
  absl::Duration drain_period = absl::Seconds(30);
  bool drained = false;  // node.admin_state == DRAINED.
  std::vector<AnnounceService> services;
  // node.local_addresses: the FULLNAT source pool, announced as is.
  std::vector<IpPrefix> local_addresses;
};

// HealthSource says whether a real server counts toward quorum.
class HealthSource {
 public:
  virtual ~HealthSource() = default;
  virtual bool IsHealthy(const std::string& service,
                         const AnnounceBackend& backend) const = 0;
};

struct AnnouncerOptions {
  std::string device = "anylb0";
  // The dataplane's slowest worker's last progress; null: always live.
  std::function<absl::Time()> oldest_progress;
  absl::Duration liveness_timeout = absl::Seconds(1);
  // While drained, also tag the routes with GSHUT (65535:0): FRR routers
  // then drop the node from the multipath set at once (local-preference 0)
  // instead of giving it the drain bandwidth's share. See README.md.
  bool drain_gshut = false;
  // Null: every enabled real server is healthy.
  const HealthSource* health = nullptr;
  absl::Duration tick = absl::Milliseconds(100);
  FrrConfiguratorOptions frr;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// VipState is one VIP's announcement, for /admin/announce and tests.
struct VipState {
  IpAddress vip;
  bool wanted = false;     // Should be announced now.
  bool announced = false;  // Its route is on the device.
  std::string reason;
};

// LocalAddressState is one FULLNAT local-address prefix's announcement.
struct LocalAddressState {
  IpPrefix prefix;
  bool wanted = false;
  bool announced = false;
  std::string reason;
};

// AnnounceStatus is the announcer's state after its last step.
struct AnnounceStatus {
  bool drained = false;         // Admin state.
  bool admin_override = false;  // Set by Drain()/Undrain(), not the file.
  bool drain_complete = false;  // Drained and the drain period is over.
  absl::Time drain_started = absl::InfinitePast();
  uint32_t weight = 1;
  uint32_t bandwidth_mbps = 1;  // As announced (drain bandwidth if drained).
  bool dataplane_live = true;
  absl::Duration dataplane_idle;
  bool frr_in_sync = false;
  uint64_t frr_apply_errors = 0;
  uint64_t frr_applies = 0;
  std::string frr_last_error;
  uint64_t route_errors = 0;
  uint64_t steps = 0;
  std::vector<VipState> vips;                      // Sorted by address.
  std::vector<LocalAddressState> local_addresses;  // As configured.
};

// Announcer: see the file comment.
class Announcer {
 public:
  // `routes` and `vtysh` must outlive the announcer.
  Announcer(AnnouncerOptions options, RouteHolder* routes, Vtysh* vtysh);
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;
  // ~Announcer stops the thread. Routes stay (the TUN device's owner
  // deletes them with the device).
  ~Announcer();

  void SetConfig(AnnounceConfig config);
  // Drain / Undrain: the admin endpoint's override (see the file comment).
  void Drain();
  void Undrain();

  // Step runs one decision at options.clock(): FRR, then routes.
  void Step();

  // Start runs Step() every `tick` on a thread until Stop(). Idempotent.
  void Start();
  void Stop();

  AnnounceStatus status() const;
  // StatusJson is GET /admin/announce's body.
  std::string StatusJson() const;
  // Collect adds the announcement metrics (anylb_vip_announced{vip},
  // anylb_node_admin_state, anylb_frr_apply_errors_total, ...).
  absl::Status Collect(std::vector<metrics::MetricFamily>* out) const;

 private:
  bool HasQuorum(const AnnounceService& service, bool had) const;

  AnnouncerOptions options_;
  RouteHolder* routes_;
  FrrConfigurator frr_;

  // Step's own state (the stepping thread only).
  std::set<IpAddress> installed_;
  // Installed local-address prefixes, by IpPrefix::ToString().
  std::map<std::string, IpPrefix> installed_local_;
  std::map<std::string, bool> quorum_;  // By service name.
  bool was_drained_ = false;
  absl::Time drain_started_ = absl::InfinitePast();
  bool was_live_ = true;
  uint64_t route_errors_ = 0;
  uint64_t steps_ = 0;

  mutable absl::Mutex mu_;
  AnnounceConfig config_ ABSL_GUARDED_BY(mu_);
  std::optional<bool> admin_override_ ABSL_GUARDED_BY(mu_);
  AnnounceStatus status_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_ANNOUNCER_H_
