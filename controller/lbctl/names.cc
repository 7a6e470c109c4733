#include "controller/lbctl/names.h"

#include <array>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace anylb::lbctl {
namespace {

using lb::v1::Scheduler;

constexpr std::array<std::pair<Scheduler, const char*>, 14> kSchedulers = {{
    {lb::v1::SCHEDULER_RR, "rr"},
    {lb::v1::SCHEDULER_WRR, "wrr"},
    {lb::v1::SCHEDULER_LC, "lc"},
    {lb::v1::SCHEDULER_WLC, "wlc"},
    {lb::v1::SCHEDULER_LBLC, "lblc"},
    {lb::v1::SCHEDULER_LBLCR, "lblcr"},
    {lb::v1::SCHEDULER_DH, "dh"},
    {lb::v1::SCHEDULER_SH, "sh"},
    {lb::v1::SCHEDULER_SED, "sed"},
    {lb::v1::SCHEDULER_NQ, "nq"},
    {lb::v1::SCHEDULER_FO, "fo"},
    {lb::v1::SCHEDULER_OVF, "ovf"},
    {lb::v1::SCHEDULER_MH, "mh"},
    {lb::v1::SCHEDULER_TWOS, "twos"},
}};

}  // namespace

std::string SchedulerName(Scheduler scheduler) {
  for (const auto& [value, name] : kSchedulers) {
    if (value == scheduler) return name;
  }
  return "?";
}

std::optional<Scheduler> ParseSchedulerName(absl::string_view name) {
  for (const auto& [value, text] : kSchedulers) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string SchedulerNames() {
  std::string out;
  for (const auto& [value, name] : kSchedulers) {
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

std::string ProtocolLabel(lb::v1::Protocol protocol) {
  switch (protocol) {
    case lb::v1::PROTOCOL_TCP:
      return "TCP";
    case lb::v1::PROTOCOL_UDP:
      return "UDP";
    default:
      return "?";
  }
}

std::string ProtocolSwitch(lb::v1::Protocol protocol) {
  return protocol == lb::v1::PROTOCOL_UDP ? "-u" : "-t";
}

std::string HostPort(absl::string_view address, uint32_t port) {
  if (address.find(':') != absl::string_view::npos) {
    return absl::StrCat("[", address, "]:", port);
  }
  return absl::StrCat(address, ":", port);
}

std::string ServiceLabel(const lb::v1::VirtualAddress& address) {
  return absl::StrCat(ProtocolLabel(address.protocol()), " ",
                      HostPort(address.vip(), address.port()));
}

lb::v1::VirtualAddress VirtualAddressOf(const lb::v1::Service& service) {
  lb::v1::VirtualAddress address;
  address.set_vip(service.vip());
  address.set_port(service.port());
  address.set_protocol(service.protocol());
  return address;
}

std::string SchedulerFlagsText(Scheduler scheduler,
                               const lb::v1::SchedulerFlags& flags) {
  const char* prefix = scheduler == lb::v1::SCHEDULER_MH ? "mh-" : "sh-";
  std::vector<std::string> names;
  if (flags.fallback()) names.push_back(absl::StrCat(prefix, "fallback"));
  if (flags.port()) names.push_back(absl::StrCat(prefix, "port"));
  return absl::StrJoin(names, ",");
}

std::string ForwardName(const lb::v1::Forwarding& forwarding) {
  switch (forwarding.mode()) {
    case lb::v1::FORWARDING_MODE_DR:
      return "Route";
    case lb::v1::FORWARDING_MODE_TUN:
      return forwarding.tunnel_type() == lb::v1::TUNNEL_TYPE_GUE ? "GUE"
                                                                 : "Tunnel";
    case lb::v1::FORWARDING_MODE_NAT:
      return "Masq";
    case lb::v1::FORWARDING_MODE_FULLNAT:
      return "FullNat";
    default:
      return "?";
  }
}

std::string ForwardSwitches(const lb::v1::Forwarding& forwarding) {
  switch (forwarding.mode()) {
    case lb::v1::FORWARDING_MODE_DR:
      return "-g";
    case lb::v1::FORWARDING_MODE_TUN: {
      if (forwarding.tunnel_type() != lb::v1::TUNNEL_TYPE_GUE) return "-i";
      std::string out = "-i --tun-type gue";
      if (forwarding.gue_port() != 0) {
        absl::StrAppend(&out, " --gue-port ", forwarding.gue_port());
      }
      return out;
    }
    case lb::v1::FORWARDING_MODE_NAT:
      return "-m";
    case lb::v1::FORWARDING_MODE_FULLNAT:
      return "--fullnat";
    default:
      return "-g";
  }
}

lb::v1::Forwarding EffectiveForwarding(const lb::v1::Service& service,
                                       const lb::v1::Backend& backend) {
  if (backend.has_forwarding() &&
      backend.forwarding().mode() != lb::v1::FORWARDING_MODE_UNSPECIFIED) {
    return backend.forwarding();
  }
  return service.forwarding();
}

uint32_t EffectiveWeight(const lb::v1::Backend& backend) {
  return backend.has_weight() ? backend.weight() : 1;
}

uint32_t EffectivePort(const lb::v1::Service& service,
                       const lb::v1::Backend& backend) {
  return backend.port() != 0 ? backend.port() : service.port();
}

}  // namespace anylb::lbctl
