#include "lbnode/scheduler/scheduler_factory.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "lbnode/scheduler/ipvs_schedulers.h"
#include "lbnode/scheduler/maglev_scheduler.h"

namespace anylb::scheduler {
namespace {

// CheckFlags: ipvsadm's -b flags belong to the hashing schedulers sh and mh
// (sh-fallback, sh-port, mh-fallback, mh-port); lb.v1 SchedulerFlags rejects
// them elsewhere rather than ignore them.
absl::Status CheckFlags(const SchedulerConfig& config) {
  if (config.kind == SchedulerKind::kSh || config.kind == SchedulerKind::kMh) {
    return absl::OkStatus();
  }
  const std::string name(SchedulerKindName(config.kind));
  if (config.fallback) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler \"", name,
        "\" does not take the fallback flag: sh-fallback and mh-fallback "
        "apply to the sh and mh schedulers only; clear the flag"));
  }
  if (config.port) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler \"", name,
        "\" does not take the port flag: sh-port and mh-port apply to the "
        "sh and mh schedulers only; clear the flag"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> CreateScheduler(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  if (SchedulerKindName(config.kind) == "unknown") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown scheduler kind ", static_cast<int>(config.kind)));
  }
  RETURN_IF_ERROR(CheckFlags(config));
  if (config.kind == SchedulerKind::kMh) {
    return CreateMaglevScheduler(config, backends);
  }
  return CreateIpvsScheduler(config, backends);
}

}  // namespace anylb::scheduler
