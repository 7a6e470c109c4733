// lbctl's output: ipvsadm's -L / -Ln layouts (default, --stats, --rate,
// --thresholds), ipvsadm's save format (-S), the apply diff, the node and
// status tables, and JSON for scripts (-o json). Pure functions of the
// controller's responses, so they are tested against golden text.
//
// Threading: pure functions.

#ifndef ANYLB_CONTROLLER_LBCTL_FORMAT_H_
#define ANYLB_CONTROLLER_LBCTL_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "controller/lbctl/command.h"
#include "google/protobuf/message.h"
#include "lb/v1/controller.pb.h"

namespace anylb::lbctl {

// SortServices orders services as ipvsadm lists them: by protocol (TCP
// first), then address (IPv4 before IPv6), then port; each service's real
// servers by address, then port.
void SortServices(std::vector<lb::v1::Service>* services);

// FormatList is ipvsadm -L: `services` (sorted here), with the columns of
// `options.columns` filled from `stats` (summed counters per service; for
// kRate, per-second values, see RateOf). With `title`, the first line names
// the controller's revision (ipvsadm's "IP Virtual Server version" line; left
// out when one service is listed, as ipvsadm does).
//
// Health: when `health` (GetHealth) says any real server is checked, every
// layout gains a last column "Health" (ipvsadm's columns stay where they
// are): "up", "down" or "-" (not checked), the real server's state
// ("draining"), and for a down one when and why: "down since
// 2026-11-24T08:50:51Z (2m ago): connect ...: refused" (the age against
// `now`; left out when `now` is absl::InfinitePast()).
std::string FormatList(std::vector<lb::v1::Service> services,
                       const lb::v1::GetStatsResponse& stats,
                       const ListOptions& options, uint64_t revision,
                       bool title,
                       const lb::v1::GetHealthResponse& health =
                           lb::v1::GetHealthResponse::default_instance(),
                       absl::Time now = absl::InfinitePast());

// HealthText: the Health column for one real server ("up", "down since
// ... : error", "-"), see FormatList.
std::string HealthText(const lb::v1::BackendHealthView& view, absl::Time now);

// WithHealth: `json` (one object, ToJson's output) with a "health" member
// holding `health` in the proto JSON mapping (per real server the fleet's
// verdict and each node's view), for -L -o json.
std::string WithHealth(const std::string& json,
                       const lb::v1::GetHealthResponse& health);

// FormatSave is ipvsadm -S: one -A line per service, one -a line per real
// server, in FormatList's order. ParseRestoreLine reads it back.
std::string FormatSave(std::vector<lb::v1::Service> services);

// RateOf: per-second rates between two GetStats answers taken `elapsed`
// apart (counters that went down, as after -Z, count from zero).
lb::v1::GetStatsResponse RateOf(const lb::v1::GetStatsResponse& before,
                                const lb::v1::GetStatsResponse& after,
                                absl::Duration elapsed);

// FormatDiff: the changes of an apply, one block per service
// ("+ web (create)", indented details), unchanged ones counted, then what
// happened ("dry run: nothing changed" / "applied: revision 13").
std::string FormatDiff(const lb::v1::ApplyServicesResponse& response,
                       bool dry_run);

// FormatNodes: lbctl nodes.
std::string FormatNodes(const lb::v1::ListNodesResponse& response);

// FormatStatus: lbctl status — the controller's revision, and per node the
// revision it forwards with and how many of its services it announces
// (ServiceStats.announced: withdrawn for quorum, drain or a stalled
// dataplane).
std::string FormatStatus(const lb::v1::ListNodesResponse& response);

// ToJson: `message` in the proto JSON mapping (.proto field names), one
// object followed by a newline.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace anylb::lbctl

#endif  // ANYLB_CONTROLLER_LBCTL_FORMAT_H_
