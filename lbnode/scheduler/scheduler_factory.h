// CreateScheduler: the scheduler a service's settings ask for.

#ifndef ANYLB_LBNODE_SCHEDULER_SCHEDULER_FACTORY_H_
#define ANYLB_LBNODE_SCHEDULER_SCHEDULER_FACTORY_H_

#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::scheduler {

// CreateScheduler makes the scheduler `config` asks for, for `backends`
// (canonical order). Invalid settings (a flag the scheduler does not take, a
// non-prime Maglev table size) are INVALID_ARGUMENT with the reason.
absl::StatusOr<std::unique_ptr<Scheduler>> CreateScheduler(
    const SchedulerConfig& config, std::span<const SchedBackend> backends);

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_SCHEDULER_FACTORY_H_
