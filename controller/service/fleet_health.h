// Fleet-wide health: the controller's verdict on each real server, decided
// from every node's latest HealthReports (NodeStatus.health_reports).
//
// Rules (DecideFleetHealth):
//   * a node counts for a real server (service name, address, port) when
//     its last report is younger than `report_ttl` and its report on that
//     real server says UP or DOWN (UNSPECIFIED: not checked there);
//   * the real server is DOWN when the nodes that see it DOWN are MORE than
//     `down_fraction` of the counting nodes (0.5: a strict majority, so 1
//     of 2 is still UP; 0: any one node), otherwise UP;
//   * no counting node: no verdict (the real server counts as up);
//   * dynamic_weight: the lower median of the dynamic weights the UP nodes
//     report (0 included: it quiesces; capped at the API's weight limit),
//     unset when none reports one or the verdict is DOWN (a DOWN real
//     server gets no new flows whatever its weight, so its weight would
//     only churn revisions).
//
// Threading: pure functions of their arguments.

#ifndef ANYLB_CONTROLLER_SERVICE_FLEET_HEALTH_H_
#define ANYLB_CONTROLLER_SERVICE_FLEET_HEALTH_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lb/v1/node.pb.h"

namespace anylb::controller {

struct FleetHealthOptions {
  // Reports older than this no longer count (a silent node drops out).
  absl::Duration report_ttl = absl::Seconds(15);
  // DOWN when down reporters > down_fraction * reporters; 0 <= f < 1.
  double down_fraction = 0.5;
};

// ValidateFleetHealthOptions: INVALID_ARGUMENT naming the flag when a
// value is out of range.
absl::Status ValidateFleetHealthOptions(const FleetHealthOptions& options);

// NodeReports: one node's latest status, as the controller received it.
struct NodeReports {
  std::string node_name;
  absl::Time received_at;
  std::vector<lb::v1::HealthReport> reports;
};

// BackendKey: (service name, canonical address, port).
using BackendKey = std::tuple<std::string, std::string, uint32_t>;

// KeyOf: `ref`'s key; the address in canonical text when it parses.
BackendKey KeyOf(const lb::v1::BackendRef& ref);

// NodeView: one node's report on one real server.
struct NodeView {
  std::string node_name;
  lb::v1::HealthState state = lb::v1::HEALTH_STATE_UNSPECIFIED;
  std::string last_error;
  std::optional<uint32_t> dynamic_weight;  // Unset: the configured weight.
  absl::Time received_at;
  // Young enough to count (received within report_ttl).
  bool current = false;
};

// FleetVerdict: the decision for one real server that some node reports.
struct FleetVerdict {
  lb::v1::BackendRef backend;  // address canonical
  // UP or DOWN; UNSPECIFIED when no node counts (no verdict).
  lb::v1::HealthState state = lb::v1::HEALTH_STATE_UNSPECIFIED;
  std::optional<uint32_t> dynamic_weight;  // Unset: the configured weight.
  int reporters = 0;                       // counting nodes
  int down_reporters = 0;                  // of which see it DOWN
  // "2 of 3 nodes see it down (lb1: connect: refused; lb2: timeout)";
  // "1 of 2 nodes see it down (lb2: ...), not more than half" for UP
  // verdicts with some DOWN nodes; "3 nodes see it up"; "no node with a
  // current report checks it".
  std::string reason;
  // Every node that reported on it, current or not, by node name.
  std::vector<NodeView> nodes;
};

// DecideFleetHealth applies the rules above at time `now`. Returns one
// verdict per real server any node reported on (stale reports included, so
// views can show them), by key.
std::map<BackendKey, FleetVerdict> DecideFleetHealth(
    const std::vector<NodeReports>& nodes, absl::Time now,
    const FleetHealthOptions& options);

}  // namespace anylb::controller

#endif  // ANYLB_CONTROLLER_SERVICE_FLEET_HEALTH_H_
