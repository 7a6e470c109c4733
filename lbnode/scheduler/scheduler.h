// Scheduler: picks the real server for a new flow.

#ifndef ANYLB_LBNODE_SCHEDULER_SCHEDULER_H_
#define ANYLB_LBNODE_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {

// SchedulerKind is an IPVS scheduler (lb.v1 Scheduler).
enum class SchedulerKind : uint8_t {
  kRr,
  kWrr,
  kLc,
  kWlc,
  kLblc,
  kLblcr,
  kDh,
  kSh,
  kSed,
  kNq,
  kFo,
  kOvf,
  kMh,
  kTwos,
};

// SchedulerKindName is ipvsadm's name of the scheduler ("wlc", "mh", ...).
std::string_view SchedulerKindName(SchedulerKind kind);

// ParseSchedulerKind accepts ipvsadm's names; anything else is
// INVALID_ARGUMENT naming the text and the accepted names.
absl::StatusOr<SchedulerKind> ParseSchedulerKind(std::string_view name);

// SchedulerConfig is a service's scheduling settings, from lb.v1 Service.
struct SchedulerConfig {
  SchedulerKind kind = SchedulerKind::kMh;
  // sh/mh -b *-fallback: past an unavailable backend to the next one.
  bool fallback = false;
  // sh/mh -b *-port: the source port joins the hash.
  bool port = false;
  // mh only; kFiveTuple unless set (kSourceIpPort when `port`).
  HashInputs hash_inputs = HashInputs::kFiveTuple;
  // mh only: prime, >= number of backends.
  uint32_t maglev_table_size = 65537;
  // mh (and twos's random stream): the service's seed, the same on all nodes.
  uint64_t seed = 0;
  // lblc/lblcr: cache capacity (entries, fixed at creation) and how long an
  // unused entry lives (IPVS: 24h for lblc; lblcr drops a set's most loaded
  // member after 6 min without change).
  uint32_t locality_cache_entries = 4096;
  absl::Duration lblc_expiration = absl::Hours(24);
  absl::Duration lblcr_expiration = absl::Minutes(6);
};

// Scheduler picks the real server of new flows for one service on one
// worker.
//
// Threading: owned and used by one worker thread. Construction and Reset()
// run on the control path and may allocate; Pick() runs per new flow on the
// packet path and never allocates, locks or throws.
class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Pick returns the index into `backends` (canonical order, see
  // SchedBackend) of the real server for the new flow `flow`, or kNoBackend
  // when none can take it. `backends` is the set last given to Reset().
  virtual int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
                   absl::Time now) = 0;

  // Reset adopts a new backend set (a new snapshot): weights, membership or
  // order of identities changed. Per-scheduler state that refers to
  // backends (rr position, lblc caches) is remapped by endpoint or cleared.
  virtual absl::Status Reset(std::span<const SchedBackend> backends) = 0;

  virtual SchedulerKind kind() const = 0;
};

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_SCHEDULER_H_
