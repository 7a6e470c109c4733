// FrrConfigurator keeps lbnode's route-maps and prefix-lists in FRR's
// routing daemons equal to an FrrIntent (see frr_config.h for what lbnode
// owns).
//
// Sync(intent, now) reads each daemon's `show running-config` (vtysh -d
// bgpd / ospfd / ospf6d), computes the difference with what the intent
// wants and sends only that, in place (`route-map ANYLB-BGP permit 10000`
// then `set extcommunity bandwidth 50`): no entry is deleted and
// re-created, so redistribution never sees a missing route-map. It runs
// when the intent changed, when the last attempt failed (after
// retry_interval) and every check_interval anyway: a daemon that restarted
// (and lost what lbnode had set, which is not in frr.conf) is configured
// again within check_interval of answering vtysh.
//
// Errors (a daemon not running, a refused command) are counted, logged with
// vtysh's command line and output (once per distinct error, then at debug
// level) and retried.
//
// Threading: Sync is called by one thread (the Announcer's); the counters
// may be read from any thread.

#ifndef ANYLB_ROUTING_ANNOUNCE_FRR_CONFIGURATOR_H_
#define ANYLB_ROUTING_ANNOUNCE_FRR_CONFIGURATOR_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "routing/announce/frr_config.h"
#include "routing/announce/vtysh.h"

namespace anylb::routing::announce {

struct FrrConfiguratorOptions {
  std::vector<RoutingProtocol> protocols = {RoutingProtocol::kBgp,
                                            RoutingProtocol::kOspf};
  absl::Duration check_interval = absl::Seconds(5);
  absl::Duration retry_interval = absl::Seconds(1);
};

// FrrConfigurator: see the file comment.
class FrrConfigurator {
 public:
  // `vtysh` must outlive the configurator.
  FrrConfigurator(Vtysh* vtysh, FrrConfiguratorOptions options);

  // Sync: see the file comment. Returns the result of this attempt (OK
  // also when nothing was due).
  absl::Status Sync(const FrrIntent& intent, absl::Time now);

  // in_sync: the last attempt succeeded for the current intent.
  bool in_sync() const { return in_sync_.load(); }
  // apply_errors counts failed attempts; applies counts change sets sent.
  uint64_t apply_errors() const { return apply_errors_.load(); }
  uint64_t applies() const { return applies_.load(); }
  std::string last_error() const;

 private:
  absl::Status SyncDaemon(const FrrIntent& intent, RoutingProtocol protocol);

  Vtysh* vtysh_;
  FrrConfiguratorOptions options_;
  bool ever_synced_ = false;
  FrrIntent synced_intent_;
  absl::Time next_check_ = absl::InfinitePast();
  absl::Time next_retry_ = absl::InfinitePast();
  std::string last_logged_error_;
  std::atomic<bool> in_sync_{false};
  std::atomic<uint64_t> apply_errors_{0};
  std::atomic<uint64_t> applies_{0};
  mutable absl::Mutex mu_;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_FRR_CONFIGURATOR_H_
