// ipvsadm's spellings of lb.v1 values, shared by the argv parser and the
// formatters so that what -S prints, -R reads back.
//
// Threading: pure functions.

#ifndef ANYLB_CONTROLLER_LBCTL_NAMES_H_
#define ANYLB_CONTROLLER_LBCTL_NAMES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "lb/v1/controller.pb.h"
#include "lb/v1/service.pb.h"

namespace anylb::lbctl {

// SchedulerName: ipvsadm's -s name ("wlc", "mh"); "?" for UNSPECIFIED.
std::string SchedulerName(lb::v1::Scheduler scheduler);
// ParseSchedulerName: the inverse, for the 14 IPVS names.
std::optional<lb::v1::Scheduler> ParseSchedulerName(absl::string_view name);
// SchedulerNames: "rr wrr lc ... twos", for messages.
std::string SchedulerNames();

// ProtocolLabel: "TCP" / "UDP" (ipvsadm -L's Prot column).
std::string ProtocolLabel(lb::v1::Protocol protocol);
// ProtocolSwitch: "-t" / "-u" (ipvsadm -S).
std::string ProtocolSwitch(lb::v1::Protocol protocol);

// HostPort: "192.0.2.1:80", "[2001:db8::1]:80" (ipvsadm -n's spelling).
// `address` is printed as given (the controller stores canonical text).
std::string HostPort(absl::string_view address, uint32_t port);

// ServiceLabel: "TCP 192.0.2.1:80", the way messages name a service.
std::string ServiceLabel(const lb::v1::VirtualAddress& address);
// VirtualAddressOf: the identity of a stored service.
lb::v1::VirtualAddress VirtualAddressOf(const lb::v1::Service& service);

// SchedulerFlagsText: "sh-fallback,sh-port" for -b (the prefix is the
// scheduler's: "mh-" for mh, "sh-" otherwise); "" when no flag is set.
std::string SchedulerFlagsText(lb::v1::Scheduler scheduler,
                               const lb::v1::SchedulerFlags& flags);

// ForwardName: ipvsadm -L's Forward column ("Route", "Tunnel", "Masq") plus
// ours ("GUE" for a GUE tunnel, "FullNat").
std::string ForwardName(const lb::v1::Forwarding& forwarding);
// ForwardSwitches: ipvsadm -S's switch ("-g", "-i", "-m") plus ours
// ("--fullnat", "-i --tun-type gue [--gue-port N]").
std::string ForwardSwitches(const lb::v1::Forwarding& forwarding);

// EffectiveForwarding: a real server's own forwarding when it has one, else
// the service's.
lb::v1::Forwarding EffectiveForwarding(const lb::v1::Service& service,
                                       const lb::v1::Backend& backend);
// EffectiveWeight: the weight, 1 when unset.
uint32_t EffectiveWeight(const lb::v1::Backend& backend);
// EffectivePort: the real server's port, the VIP's when 0.
uint32_t EffectivePort(const lb::v1::Service& service,
                       const lb::v1::Backend& backend);

}  // namespace anylb::lbctl

#endif  // ANYLB_CONTROLLER_LBCTL_NAMES_H_
