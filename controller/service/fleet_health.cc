#include "controller/service/fleet_health.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/rules.h"
#include "common/ip_address.h"

namespace anylb::controller {

absl::Status ValidateFleetHealthOptions(const FleetHealthOptions& options) {
  if (!(options.down_fraction >= 0 && options.down_fraction < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--health_down_fraction ", options.down_fraction,
        ": outside [0, 1) (0.5: down when a majority of the reporting nodes "
        "see it down; 0: when any one does)"));
  }
  if (options.report_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--health_report_ttl ", absl::FormatDuration(options.report_ttl),
        ": must be positive (e.g. 15s, a few report intervals)"));
  }
  return absl::OkStatus();
}

BackendKey KeyOf(const lb::v1::BackendRef& ref) {
  absl::StatusOr<IpAddress> address = IpAddress::Parse(ref.address());
  return {ref.service_name(),
          address.ok() ? address->ToString() : ref.address(), ref.port()};
}

std::map<BackendKey, FleetVerdict> DecideFleetHealth(
    const std::vector<NodeReports>& nodes, absl::Time now,
    const FleetHealthOptions& options) {
  std::map<BackendKey, FleetVerdict> verdicts;
  for (const NodeReports& node : nodes) {
    const bool current = now - node.received_at < options.report_ttl;
    for (const lb::v1::HealthReport& report : node.reports) {
      const BackendKey key = KeyOf(report.backend());
      FleetVerdict& verdict = verdicts[key];
      if (verdict.nodes.empty()) {
        verdict.backend.set_service_name(std::get<0>(key));
        verdict.backend.set_address(std::get<1>(key));
        verdict.backend.set_port(std::get<2>(key));
      }
      NodeView view;
      view.node_name = node.node_name;
      view.state = report.state();
      view.last_error = report.last_error();
      if (report.has_dynamic_weight()) {
        view.dynamic_weight = report.dynamic_weight();
      }
      view.received_at = node.received_at;
      view.current = current;
      verdict.nodes.push_back(std::move(view));
    }
  }
  for (auto& [key, verdict] : verdicts) {
    std::sort(verdict.nodes.begin(), verdict.nodes.end(),
              [](const NodeView& a, const NodeView& b) {
                return a.node_name < b.node_name;
              });
    std::vector<std::string> down_why;
    std::vector<uint32_t> weights;
    for (const NodeView& view : verdict.nodes) {
      if (!view.current) continue;
      if (view.state == lb::v1::HEALTH_STATE_DOWN) {
        ++verdict.reporters;
        ++verdict.down_reporters;
        down_why.push_back(
            absl::StrCat(view.node_name, ": ",
                         view.last_error.empty() ? "down" : view.last_error));
      } else if (view.state == lb::v1::HEALTH_STATE_UP) {
        ++verdict.reporters;
        if (view.dynamic_weight.has_value()) {
          weights.push_back(*view.dynamic_weight);
        }
      }
    }
    if (verdict.reporters == 0) {
      verdict.reason = "no node with a current report checks it";
      continue;
    }
    const bool down = static_cast<double>(verdict.down_reporters) >
                      options.down_fraction * verdict.reporters;
    verdict.state = down ? lb::v1::HEALTH_STATE_DOWN : lb::v1::HEALTH_STATE_UP;
    if (!down && !weights.empty()) {
      std::sort(weights.begin(), weights.end());
      verdict.dynamic_weight = std::min(weights[(weights.size() - 1) / 2],
                                        config::kMaxBackendWeight);
    }
    const std::string nodes_text = absl::StrCat(
        verdict.reporters, verdict.reporters == 1 ? " node" : " nodes");
    if (verdict.down_reporters == 0) {
      verdict.reason = absl::StrCat(
          nodes_text, verdict.reporters == 1 ? " sees it up" : " see it up");
    } else {
      verdict.reason =
          absl::StrCat(verdict.down_reporters, " of ", nodes_text,
                       verdict.reporters == 1 ? " sees" : " see", " it down (",
                       absl::StrJoin(down_why, "; "), ")");
      if (!down) {
        absl::StrAppend(&verdict.reason, ", not more than ",
                        options.down_fraction * 100, "%");
      }
    }
    if (verdict.dynamic_weight.has_value()) {
      absl::StrAppend(&verdict.reason, ", dynamic weight ",
                      *verdict.dynamic_weight);
    }
  }
  return verdicts;
}

}  // namespace anylb::controller
