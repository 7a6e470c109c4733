// MaglevScheduler: IPVS's "mh" scheduler on a Maglev table.

#ifndef ANYLB_LBNODE_SCHEDULER_MAGLEV_SCHEDULER_H_
#define ANYLB_LBNODE_SCHEDULER_MAGLEV_SCHEDULER_H_

#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/maglev.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::scheduler {

// MaglevHashInputs is the packet fields the mh scheduler hashes for
// `config` (lb.v1 HashInputs, where "unspecified" arrives here as
// kFiveTuple):
//
//   config.port  config.hash_inputs   hashed
//   false        any                  config.hash_inputs
//   true         kFiveTuple           kSourceIpPort  (IPVS's mh-port)
//   true         kSourceIp            kSourceIpPort  (the port joins)
//   true         kSourceIpPort        kSourceIpPort
//   true         kThreeTuple          INVALID_ARGUMENT: the 3-tuple has no
//                                     ports for the flag to add
absl::StatusOr<HashInputs> MaglevHashInputs(const SchedulerConfig& config);

// MaglevScheduler is IPVS's mh scheduler (net/netfilter/ipvs/ip_vs_mh.c) on
// a MaglevTable (NSDI'16 §3.4), the fleet's default: every node given the
// same backend set, weights and seed picks the same real server for a flow.
//
// Pick(flow): hash = HashFlow(flow, MaglevHashInputs(config), config.seed);
// the table's owner of that hash's slot, unless it cannot take the flow:
//   - not `available` (this node alone cannot reach it): ALWAYS walk on to
//     the next slots' owners (slot+1, +2, ... wrapping; IPVS's
//     ip_vs_mh_get_fallback) to the first available one, whatever
//     config.fallback says: the fleet still counts the backend up, so
//     dropping would blackhole flows that only this node cannot deliver.
//   - weight 0 or overloaded (ip_vs_mh_is_unavailable): walk only with
//     config.fallback (mh-fallback); otherwise kNoBackend, as IPVS does.
// With config.fallback the walk seeks a backend that can take new flows
// (CanTakeNewFlow); without it, an available one, and if that one is
// quiesced or overloaded the answer is kNoBackend. The walk never changes
// the table: flows hashed to other backends' slots are untouched.
//
// Ownership and threading: one worker owns the scheduler and calls Pick()
// and Reset() from its thread. The table is immutable and may be shared by
// every worker's scheduler (the shared_ptr overload of
// CreateMaglevScheduler): build it once on the control path. Pick() never
// allocates, locks or throws.
class MaglevScheduler : public Scheduler {
 public:
  // Create builds the table from `backends` (canonical order: strictly
  // increasing endpoints, else INVALID_ARGUMENT) with
  // config.maglev_table_size and config.seed. Backends of weight 0 own no
  // slots; when every weight is 0 (all quiesced) the table is empty and
  // Pick() returns kNoBackend.
  static absl::StatusOr<std::unique_ptr<MaglevScheduler>> Create(
      const SchedulerConfig& config, std::span<const SchedBackend> backends);

  // Create adopts a table built on the control path from the same backends
  // (same endpoints in the same order; an empty table is accepted for any
  // set, as it is what all-quiesced builds), with config's table size and
  // seed. A mismatch is INVALID_ARGUMENT.
  static absl::StatusOr<std::unique_ptr<MaglevScheduler>> Create(
      const SchedulerConfig& config, std::shared_ptr<const MaglevTable> table,
      std::span<const SchedBackend> backends);

  int Pick(const FlowKey& flow, std::span<const SchedBackend> backends,
           absl::Time now) override;

  // Reset rebuilds the table from `backends` (this scheduler's own copy;
  // other workers' schedulers keep theirs). On error the scheduler keeps
  // its previous table.
  absl::Status Reset(std::span<const SchedBackend> backends) override;

  // ResetTable adopts a new shared table built for `backends` (checked as
  // in Create). On error the scheduler keeps its previous table.
  absl::Status ResetTable(std::shared_ptr<const MaglevTable> table,
                          std::span<const SchedBackend> backends);

  SchedulerKind kind() const override { return SchedulerKind::kMh; }

  // table is the table Pick() uses.
  const std::shared_ptr<const MaglevTable>& table() const { return table_; }

  // hash_inputs is the fields Pick() hashes (MaglevHashInputs(config)).
  HashInputs hash_inputs() const { return inputs_; }

 private:
  MaglevScheduler(const SchedulerConfig& config, HashInputs inputs,
                  std::shared_ptr<const MaglevTable> table)
      : config_(config), inputs_(inputs), table_(std::move(table)) {}

  SchedulerConfig config_;
  HashInputs inputs_;
  std::shared_ptr<const MaglevTable> table_;
};

// CreateMaglevScheduler is MaglevScheduler::Create as the Scheduler
// interface, for CreateScheduler().
absl::StatusOr<std::unique_ptr<Scheduler>> CreateMaglevScheduler(
    const SchedulerConfig& config, std::span<const SchedBackend> backends);

// CreateMaglevScheduler with a prebuilt table: N workers share one table
// built once on the control path (see MaglevScheduler::Create).
absl::StatusOr<std::unique_ptr<Scheduler>> CreateMaglevScheduler(
    const SchedulerConfig& config, std::shared_ptr<const MaglevTable> table,
    std::span<const SchedBackend> backends);

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_MAGLEV_SCHEDULER_H_
