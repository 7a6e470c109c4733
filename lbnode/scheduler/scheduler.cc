#include "lbnode/scheduler/scheduler.h"

#include <array>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace anylb::scheduler {
namespace {

constexpr std::array<std::pair<SchedulerKind, std::string_view>, 14> kNames = {{
    {SchedulerKind::kRr, "rr"},     {SchedulerKind::kWrr, "wrr"},
    {SchedulerKind::kLc, "lc"},     {SchedulerKind::kWlc, "wlc"},
    {SchedulerKind::kLblc, "lblc"}, {SchedulerKind::kLblcr, "lblcr"},
    {SchedulerKind::kDh, "dh"},     {SchedulerKind::kSh, "sh"},
    {SchedulerKind::kSed, "sed"},   {SchedulerKind::kNq, "nq"},
    {SchedulerKind::kFo, "fo"},     {SchedulerKind::kOvf, "ovf"},
    {SchedulerKind::kMh, "mh"},     {SchedulerKind::kTwos, "twos"},
}};

}  // namespace

std::string_view SchedulerKindName(SchedulerKind kind) {
  for (const auto& [k, name] : kNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

absl::StatusOr<SchedulerKind> ParseSchedulerKind(std::string_view name) {
  for (const auto& [k, n] : kNames) {
    if (n == name) return k;
  }
  std::vector<std::string> names;
  for (const auto& [k, n] : kNames) names.emplace_back(n);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scheduler \"", std::string(name),
                   "\"; expected one of ", absl::StrJoin(names, ", ")));
}

}  // namespace anylb::scheduler
