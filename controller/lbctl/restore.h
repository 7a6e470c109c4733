// -R: ipvsadm's restore, done as one transaction. The lines are applied, in
// order and with ipvsadm's rules, to a copy of the controller's services;
// the result is sent with ApplyServices (expected_revision = the revision
// the copy was read at), so a restore is all or nothing and never races
// another change.
//
// Threading: pure functions.

#ifndef ANYLB_CONTROLLER_LBCTL_RESTORE_H_
#define ANYLB_CONTROLLER_LBCTL_RESTORE_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/lbctl/command.h"
#include "lb/v1/service.pb.h"

namespace anylb::lbctl {

// ApplyToServices applies one -A/-E/-D/-a/-e/-d/-C command to `services`
// as the controller would: ALREADY_EXISTS for -A of an existing service or
// -a of a present real server, NOT_FOUND for a missing one, each message
// naming it and the fix. A new service gets the controller's default name
// ("tcp-192.0.2.1-80"); a real server's forwarding equal to its service's
// is left unset (it follows the service).
absl::Status ApplyToServices(const Command& command,
                             std::vector<lb::v1::Service>* services);

// RestoreServices applies every line of `text` (ipvsadm's save format;
// blank lines and #-comments skipped) to `services`. Errors start with
// "<source>:<line>: "; a line that does not parse is INVALID_ARGUMENT.
absl::StatusOr<std::vector<lb::v1::Service>> RestoreServices(
    absl::string_view text, absl::string_view source,
    std::vector<lb::v1::Service> services);

// SameForwarding: whether two Forwardings mean the same (defaults
// applied: IPIP for an unset tunnel type, 6080 for an unset GUE port).
bool SameForwarding(const lb::v1::Forwarding& a, const lb::v1::Forwarding& b);

// ForwardingPlan: how a real server's -g/-i/-m/--fullnat fits the
// controller's rule of one forwarding method per service (the engine keeps
// one per service). lbctl never stores a per-real-server override: the
// real server follows its service.
struct ForwardingPlan {
  // The service takes the real server's method: it was given, differs from
  // the service's, and the service has no other real server (ipvsadm's
  // habit: -A without a method, then -a ... -m).
  bool switch_service = false;
  lb::v1::Forwarding service_forwarding;
};

// PlanForwarding: the plan for -a / -e of `command` on `service`;
// `editing` is the real server -e changes (nullptr for -a).
// FAILED_PRECONDITION, with the fix, when the method differs from the one
// the service's other real servers use.
absl::StatusOr<ForwardingPlan> PlanForwarding(const Command& command,
                                              const lb::v1::Service& service,
                                              const lb::v1::Backend* editing);

// FindBackend: the real server of `service` at `address` whose port, the
// VIP's when 0, equals `port`'s (also the VIP's when 0); nullptr if none.
const lb::v1::Backend* FindBackend(const lb::v1::Service& service,
                                   absl::string_view address, uint32_t port);

}  // namespace anylb::lbctl

#endif  // ANYLB_CONTROLLER_LBCTL_RESTORE_H_
