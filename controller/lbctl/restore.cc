#include "controller/lbctl/restore.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/rules.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "controller/lbctl/names.h"
#include "controller/lbctl/parse_args.h"

namespace anylb::lbctl {
namespace {

using lb::v1::Backend;
using lb::v1::Service;

// SameAddress compares address text through its canonical form.
bool SameAddress(absl::string_view a, absl::string_view b) {
  auto pa = IpAddress::Parse(std::string_view(a.data(), a.size()));
  auto pb = IpAddress::Parse(std::string_view(b.data(), b.size()));
  if (pa.ok() && pb.ok()) return *pa == *pb;
  return a == b;
}

Service* FindService(std::vector<Service>* services,
                     const lb::v1::VirtualAddress& address) {
  for (Service& service : *services) {
    if (service.protocol() == address.protocol() &&
        service.port() == address.port() &&
        SameAddress(service.vip(), address.vip())) {
      return &service;
    }
  }
  return nullptr;
}

std::string MethodText(const lb::v1::Forwarding& forwarding) {
  return absl::StrCat(ForwardName(forwarding), " (",
                      ForwardSwitches(forwarding), ")");
}

}  // namespace

absl::StatusOr<ForwardingPlan> PlanForwarding(const Command& command,
                                              const Service& service,
                                              const Backend* editing) {
  ForwardingPlan plan;
  if (!command.backend_forwarding_given ||
      SameForwarding(command.backend.forwarding(), service.forwarding())) {
    return plan;
  }
  int others = service.backends_size() - (editing != nullptr ? 1 : 0);
  if (others > 0) {
    const lb::v1::VirtualAddress va = VirtualAddressOf(service);
    return absl::FailedPreconditionError(absl::StrCat(
        "real server ",
        HostPort(command.backend.address(), command.backend.port() != 0
                                                ? command.backend.port()
                                                : service.port()),
        " would use ", MethodText(command.backend.forwarding()), " but ",
        ServiceLabel(va), " forwards with ", MethodText(service.forwarding()),
        "; anylb keeps one forwarding method per service: change the "
        "service's with -E ",
        ProtocolSwitch(va.protocol()), " ", HostPort(va.vip(), va.port()), " ",
        ForwardSwitches(command.backend.forwarding()),
        " (its real servers follow), or use a service of its own"));
  }
  plan.switch_service = true;
  plan.service_forwarding = command.backend.forwarding();
  return plan;
}

bool SameForwarding(const lb::v1::Forwarding& a, const lb::v1::Forwarding& b) {
  if (a.mode() != b.mode()) return false;
  if (a.mode() != lb::v1::FORWARDING_MODE_TUN) return true;
  auto type = [](const lb::v1::Forwarding& f) {
    return f.tunnel_type() == lb::v1::TUNNEL_TYPE_UNSPECIFIED
               ? lb::v1::TUNNEL_TYPE_IPIP
               : f.tunnel_type();
  };
  if (type(a) != type(b)) return false;
  if (type(a) != lb::v1::TUNNEL_TYPE_GUE) return true;
  auto port = [](const lb::v1::Forwarding& f) {
    return f.gue_port() == 0 ? config::kDefaultGuePort : f.gue_port();
  };
  return port(a) == port(b);
}

const Backend* FindBackend(const Service& service, absl::string_view address,
                           uint32_t port) {
  uint32_t wanted = port != 0 ? port : service.port();
  for (const Backend& backend : service.backends()) {
    if (SameAddress(backend.address(), address) &&
        EffectivePort(service, backend) == wanted) {
      return &backend;
    }
  }
  return nullptr;
}

absl::Status ApplyToServices(const Command& command,
                             std::vector<Service>* services) {
  if (command.verb == Verb::kClear) {
    services->clear();
    return absl::OkStatus();
  }
  const lb::v1::VirtualAddress& va = *command.virtual_address;
  std::string label = ServiceLabel(va);
  Service* service = FindService(services, va);
  if (command.verb == Verb::kAddService) {
    if (service != nullptr) {
      return absl::AlreadyExistsError(absl::StrCat(
          "service ", label, " already exists (change it with -E)"));
    }
    Service added = command.service;
    auto vip = IpAddress::Parse(added.vip());
    if (vip.ok()) {
      added.set_name(config::DefaultServiceName(
          *vip, static_cast<uint16_t>(added.port()),
          added.protocol() == lb::v1::PROTOCOL_UDP ? 17 : 6));
    }
    services->push_back(std::move(added));
    return absl::OkStatus();
  }
  if (service == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "service ", label, " does not exist (add it with -A first)"));
  }
  std::string server_label = HostPort(
      command.backend.address(),
      command.backend.port() != 0 ? command.backend.port() : service->port());
  switch (command.verb) {
    case Verb::kEditService: {
      for (const std::string& field : command.service_fields) {
        if (field == "scheduler") {
          service->set_scheduler(command.service.scheduler());
        } else if (field == "scheduler_flags") {
          *service->mutable_scheduler_flags() =
              command.service.scheduler_flags();
        } else if (field == "persistence") {
          *service->mutable_persistence() = command.service.persistence();
        } else if (field == "forwarding") {
          *service->mutable_forwarding() = command.service.forwarding();
        }
      }
      return absl::OkStatus();
    }
    case Verb::kDeleteService:
      services->erase(services->begin() + (service - services->data()));
      return absl::OkStatus();
    case Verb::kAddServer: {
      if (FindBackend(*service, command.backend.address(),
                      command.backend.port()) != nullptr) {
        return absl::AlreadyExistsError(
            absl::StrCat("real server ", server_label, " is already in ", label,
                         " (change it with -e)"));
      }
      ASSIGN_OR_RETURN(ForwardingPlan plan,
                       PlanForwarding(command, *service, nullptr));
      if (plan.switch_service) {
        *service->mutable_forwarding() = plan.service_forwarding;
      }
      Backend* backend = service->add_backends();
      *backend = command.backend;
      backend->clear_forwarding();
      return absl::OkStatus();
    }
    case Verb::kEditServer:
    case Verb::kDeleteServer: {
      const Backend* found = FindBackend(*service, command.backend.address(),
                                         command.backend.port());
      if (found == nullptr) {
        return absl::NotFoundError(absl::StrCat("real server ", server_label,
                                                " is not in ", label,
                                                " (add it with -a)"));
      }
      int index = 0;
      while (&service->backends(index) != found) ++index;
      if (command.verb == Verb::kDeleteServer) {
        service->mutable_backends()->erase(
            service->mutable_backends()->begin() + index);
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(ForwardingPlan plan,
                       PlanForwarding(command, *service, found));
      if (plan.switch_service) {
        *service->mutable_forwarding() = plan.service_forwarding;
      }
      Backend* backend = service->mutable_backends(index);
      backend->set_weight(
          command.backend.has_weight() ? command.backend.weight() : 1);
      backend->set_upper_threshold(command.backend.upper_threshold());
      backend->set_lower_threshold(command.backend.lower_threshold());
      backend->clear_forwarding();
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(command.spelling, " cannot be restored"));
  }
}

absl::StatusOr<std::vector<Service>> RestoreServices(
    absl::string_view text, absl::string_view source,
    std::vector<Service> services) {
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    absl::StatusOr<Command> command = ParseRestoreLine(trimmed);
    if (!command.ok()) {
      return absl::Status(
          command.status().code(),
          absl::StrCat(source, ":", number, ": ", command.status().message()));
    }
    absl::Status applied = ApplyToServices(*command, &services);
    if (!applied.ok()) {
      return absl::Status(
          applied.code(),
          absl::StrCat(source, ":", number, ": ", command->spelling, ": ",
                       applied.message()));
    }
  }
  return services;
}

}  // namespace anylb::lbctl
