// The controller's operations on its state, as pure functions over a
// StoreState (a store transaction's private copy): what each RPC changes,
// how services and real servers are found, the apply diff, validation, and
// the snapshot a node receives. No gRPC here; controller_service.cc calls
// these inside Store::Commit, so a failing operation changes nothing.
//
// Identity: a service is found by name or by (VIP, port, protocol); VIPs and
// real-server addresses are stored in canonical text (RFC 5952 for IPv6),
// so "2001:DB8::1" and "2001:db8::1" are one service. An unnamed service
// is called DefaultServiceName ("tcp-192.0.2.10-80"). A real server is
// (address, port) within its service.
//
// Errors: INVALID_ARGUMENT naming the field and value (and every problem
// of config::NormalizeConfig), NOT_FOUND / ALREADY_EXISTS naming the
// service or real server.
//
// Threading: pure functions.

#ifndef ANYLB_CONTROLLER_SERVICE_STATE_EDITS_H_
#define ANYLB_CONTROLLER_SERVICE_STATE_EDITS_H_

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/service/fleet_health.h"
#include "controller/store/store.h"
#include "google/protobuf/field_mask.pb.h"
#include "lb/v1/config.pb.h"
#include "lb/v1/controller.pb.h"

namespace anylb::controller {

// FindService: the name of the selected service.
absl::StatusOr<std::string> FindService(
    const StoreState& state, const lb::v1::ServiceSelector& selector);

// FindServices: the names of every selected service (empty: none given,
// which the stats and health RPCs read as "all"); the first selector that
// names no service is the error.
absl::StatusOr<std::set<std::string>> FindServices(
    const StoreState& state,
    const google::protobuf::RepeatedPtrField<lb::v1::ServiceSelector>&
        selectors);

// Describe: "service \"web\" (TCP 192.0.2.10:80)" for messages.
std::string Describe(const lb::v1::Service& service);

absl::StatusOr<std::string> CreateService(StoreState& state,
                                          lb::v1::Service service);
// UpdateService merges `patch`'s fields named by `mask` (empty: every field
// but name, vip, port, protocol and backends) into the selected service.
absl::StatusOr<std::string> UpdateService(
    StoreState& state, const lb::v1::ServiceSelector& selector,
    const lb::v1::Service& patch, const google::protobuf::FieldMask& mask);
absl::Status DeleteService(StoreState& state,
                           const lb::v1::ServiceSelector& selector);

absl::StatusOr<std::string> AddBackend(StoreState& state,
                                       const lb::v1::ServiceSelector& selector,
                                       lb::v1::Backend backend);
// UpdateBackend merges `patch`'s fields named by `mask` (empty: every field
// but address and port) into the real server (patch.address, patch.port).
absl::StatusOr<std::string> UpdateBackend(
    StoreState& state, const lb::v1::ServiceSelector& selector,
    const lb::v1::Backend& patch, const google::protobuf::FieldMask& mask);
absl::StatusOr<std::string> RemoveBackend(
    StoreState& state, const lb::v1::ServiceSelector& selector,
    const std::string& address, uint32_t port);

// ApplyServices makes the services equal `services` and returns the diff
// (one ServiceChange per service, in name order, UNCHANGED included).
absl::StatusOr<std::vector<lb::v1::ServiceChange>> ApplyServices(
    StoreState& state, const std::vector<lb::v1::Service>& services);

// RegisterNode creates the node's settings (weight 1, active) if absent.
void RegisterNode(StoreState& state, const std::string& node_name);
// UpdateNode merges `patch`'s fields named by `mask` (empty: every field
// but node_name and admin_state) into the node's settings.
absl::Status UpdateNode(StoreState& state, const lb::v1::NodeSettings& patch,
                        const google::protobuf::FieldMask& mask);
absl::Status SetAdminState(StoreState& state, const std::string& node_name,
                           lb::v1::NodeAdminState admin_state);

// Validate checks the whole state the way every node will: the services
// with each node's settings (config::NormalizeConfig), or on their own
// when no node is registered yet. A FULLNAT service and a node without
// local addresses of its family is an error naming the node.
absl::Status Validate(const StoreState& state);

// HealthChange: one published verdict that ReconcileBackendHealth changed.
struct HealthChange {
  lb::v1::BackendRef backend;   // the real server's configured port
  uint32_t effective_port = 0;  // 0 resolved to the VIP's port
  // UNSPECIFIED: no entry (counts as up).
  lb::v1::HealthState from = lb::v1::HEALTH_STATE_UNSPECIFIED;
  lb::v1::HealthState to = lb::v1::HEALTH_STATE_UNSPECIFIED;
  // Dynamic weights; unset: the configured weight.
  std::optional<uint32_t> from_weight;
  std::optional<uint32_t> to_weight;
  std::string reason;
};

// ReportPorts: the ports under which nodes may name real server `b` of
// `service` in a BackendRef: its configured port and its effective one (0
// is the VIP's port).
std::vector<uint32_t> ReportPorts(const lb::v1::Service& service,
                                  const lb::v1::Backend& b);

// DescribeHealthChange: "backend 198.51.100.2:80 of \"web\" DOWN: 2 of 3
// nodes see it down (lb1: ...)" for the log.
std::string DescribeHealthChange(const HealthChange& change);

// ReconcileBackendHealth computes (into `next`) the backend_health that
// says what `verdicts` (DecideFleetHealth) say for every real server of
// state.services: an entry when the verdict is DOWN or carries a dynamic
// weight, none otherwise. A verdict is found under the real server's configured
// port or its effective one (0 is the VIP's port). An entry whose state and
// dynamic weight stay as they are is left alone (its last_change and
// reason too), so a steady fleet changes nothing; a new or changed entry
// gets last_change `now` and the verdict's reason. With
// `keep_unreported`, a real server that no node currently reports on keeps
// its entry (the controller just started: the nodes have not reported
// yet). Entries naming no real server are dropped. Returns the changes
// (empty: `next` equals state.backend_health but for orphans).
std::vector<HealthChange> ReconcileBackendHealth(
    const StoreState& state, const std::map<BackendKey, FleetVerdict>& verdicts,
    absl::Time now, bool keep_unreported,
    std::map<std::string, lb::v1::BackendHealth>* next);

// DropOrphanVerdicts removes the backend_health entries that name no real
// server of state.services (run by every edit before Validate, so removing
// a service or real server drops its verdict in the same revision).
void DropOrphanVerdicts(StoreState& state);

// SnapshotFor is what node `node_name` receives at state.revision.
lb::v1::ConfigSnapshot SnapshotFor(const StoreState& state,
                                   const std::string& node_name);

}  // namespace anylb::controller

#endif  // ANYLB_CONTROLLER_SERVICE_STATE_EDITS_H_
