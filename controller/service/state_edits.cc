#include "controller/service/state_edits.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/normalize.h"
#include "common/config/rules.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/field_mask_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace anylb::controller {
namespace {

using google::protobuf::FieldMask;
using google::protobuf::util::FieldMaskUtil;

// Canonical: `text` as canonical address text, or INVALID_ARGUMENT naming
// `field`.
absl::StatusOr<std::string> Canonical(const std::string& field,
                                      const std::string& text) {
  absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", text, "\": not an IPv4 or IPv6 address"));
  }
  return address->ToString();
}

uint8_t ProtocolNumber(lb::v1::Protocol protocol) {
  return protocol == lb::v1::PROTOCOL_TCP   ? 6
         : protocol == lb::v1::PROTOCOL_UDP ? 17
                                            : 0;
}

std::string HostPort(const std::string& address, uint32_t port) {
  return address.find(':') != std::string::npos
             ? absl::StrCat("[", address, "]:", port)
             : absl::StrCat(address, ":", port);
}

std::string DescribeBackend(const lb::v1::Backend& backend) {
  return absl::StrCat("real server ",
                      HostPort(backend.address(), backend.port()));
}

// CanonicalizeService puts the VIP and every backend address in canonical
// text and names an unnamed service.
absl::Status CanonicalizeService(lb::v1::Service& service) {
  ASSIGN_OR_RETURN(std::string vip, Canonical("vip", service.vip()));
  service.set_vip(vip);
  for (int i = 0; i < service.backends_size(); ++i) {
    lb::v1::Backend& b = *service.mutable_backends(i);
    ASSIGN_OR_RETURN(
        std::string address,
        Canonical(absl::StrCat("backends[", i, "].address"), b.address()));
    b.set_address(address);
  }
  if (service.name().empty()) {
    const uint8_t protocol = ProtocolNumber(service.protocol());
    if (protocol == 0) {
      return absl::InvalidArgumentError(
          "protocol is required: tcp or udp (PROTOCOL_TCP, PROTOCOL_UDP)");
    }
    if (service.port() > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("port ", service.port(), ": outside 0..65535"));
    }
    service.set_name(config::DefaultServiceName(
        *IpAddress::Parse(vip), static_cast<uint16_t>(service.port()),
        protocol));
  }
  return absl::OkStatus();
}

// FullMask: every top-level field of `message`'s type except `excluded`.
FieldMask FullMask(const google::protobuf::Descriptor* descriptor,
                   const std::set<std::string>& excluded) {
  FieldMask mask;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const std::string& name = descriptor->field(i)->name();
    if (!excluded.contains(name)) mask.add_paths(name);
  }
  return mask;
}

// Merge copies `mask`'s fields (empty: all but `identity` and
// `default_excluded`) from `patch` into `target`; a path in `identity` is
// an error.
template <typename Message>
absl::Status Merge(const Message& patch, const FieldMask& mask,
                   const std::set<std::string>& identity,
                   const std::set<std::string>& default_excluded,
                   Message& target) {
  FieldMask effective = mask;
  if (mask.paths().empty()) {
    std::set<std::string> excluded = identity;
    excluded.insert(default_excluded.begin(), default_excluded.end());
    effective = FullMask(Message::descriptor(), excluded);
  }
  for (const std::string& path : effective.paths()) {
    FieldMask one;
    one.add_paths(path);
    if (!FieldMaskUtil::IsValidFieldMask<Message>(one)) {
      return absl::InvalidArgumentError(
          absl::StrCat("update_mask: \"", path, "\" is not a field of ",
                       Message::descriptor()->name()));
    }
    if (identity.contains(path.substr(0, path.find('.')))) {
      return absl::InvalidArgumentError(
          absl::StrCat("update_mask: \"", path, "\" identifies the ",
                       Message::descriptor()->name(),
                       " and cannot change; remove it and add a new one"));
    }
  }
  FieldMaskUtil::MergeOptions options;
  options.set_replace_message_fields(true);
  options.set_replace_repeated_fields(true);
  FieldMaskUtil::MergeMessageTo(patch, effective, options, &target);
  return absl::OkStatus();
}

lb::v1::Service* MutableService(StoreState& state, const std::string& name) {
  return &state.services.at(name);
}

int FindBackend(const lb::v1::Service& service, const std::string& address,
                uint32_t port) {
  for (int i = 0; i < service.backends_size(); ++i) {
    if (service.backends(i).address() == address &&
        service.backends(i).port() == port) {
      return i;
    }
  }
  return -1;
}

std::string ShortText(const google::protobuf::Message& message,
                      const google::protobuf::FieldDescriptor* field) {
  std::string text;
  if (field->is_repeated()) {
    std::vector<std::string> items;
    const auto* reflection = message.GetReflection();
    for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
      std::string item;
      google::protobuf::TextFormat::PrintFieldValueToString(message, field, i,
                                                            &item);
      items.push_back(item);
    }
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  if (!field->has_presence() ||
      message.GetReflection()->HasField(message, field)) {
    google::protobuf::TextFormat::PrintFieldValueToString(message, field, -1,
                                                          &text);
  }
  return text.empty() ? "(unset)" : text;
}

// FieldChanges: "field: old -> new" for each top-level field that differs.
void FieldChanges(const google::protobuf::Message& before,
                  const google::protobuf::Message& after,
                  const std::set<std::string>& skip, const std::string& prefix,
                  std::vector<std::string>& out) {
  const google::protobuf::Descriptor* d = before.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = d->field(i);
    if (skip.contains(field->name())) continue;
    const std::string a = ShortText(before, field);
    const std::string b = ShortText(after, field);
    if (a != b) {
      out.push_back(absl::StrCat(prefix, field->name(), ": ", a, " -> ", b));
    }
  }
}

std::vector<std::string> ServiceDetails(const lb::v1::Service& before,
                                        const lb::v1::Service& after) {
  std::vector<std::string> details;
  FieldChanges(before, after, {"backends"}, "", details);
  std::map<std::pair<std::string, uint32_t>, const lb::v1::Backend*> old;
  for (const lb::v1::Backend& b : before.backends()) {
    old[{b.address(), b.port()}] = &b;
  }
  for (const lb::v1::Backend& b : after.backends()) {
    auto it = old.find({b.address(), b.port()});
    if (it == old.end()) {
      details.push_back(absl::StrCat("+ ", DescribeBackend(b)));
      continue;
    }
    std::vector<std::string> changes;
    FieldChanges(*it->second, b, {"address", "port"}, "", changes);
    if (!changes.empty()) {
      details.push_back(absl::StrCat("~ ", DescribeBackend(b), ": ",
                                     absl::StrJoin(changes, ", ")));
    }
    old.erase(it);
  }
  for (const auto& [key, b] : old) {
    details.push_back(absl::StrCat("- ", DescribeBackend(*b)));
  }
  return details;
}

}  // namespace

std::string Describe(const lb::v1::Service& service) {
  const char* protocol = service.protocol() == lb::v1::PROTOCOL_TCP   ? "TCP"
                         : service.protocol() == lb::v1::PROTOCOL_UDP ? "UDP"
                                                                      : "?";
  return absl::StrCat("service \"", service.name(), "\" (", protocol, " ",
                      HostPort(service.vip(), service.port()), ")");
}

absl::StatusOr<std::string> FindService(
    const StoreState& state, const lb::v1::ServiceSelector& selector) {
  switch (selector.selector_case()) {
    case lb::v1::ServiceSelector::kName: {
      if (!state.services.contains(selector.name())) {
        return absl::NotFoundError(
            absl::StrCat("service \"", selector.name(), "\" does not exist"));
      }
      return selector.name();
    }
    case lb::v1::ServiceSelector::kVirtualAddress: {
      const lb::v1::VirtualAddress& va = selector.virtual_address();
      ASSIGN_OR_RETURN(std::string vip,
                       Canonical("selector.virtual_address.vip", va.vip()));
      for (const auto& [name, service] : state.services) {
        if (service.vip() == vip && service.port() == va.port() &&
            service.protocol() == va.protocol()) {
          return name;
        }
      }
      const char* protocol =
          va.protocol() == lb::v1::PROTOCOL_UDP ? "UDP" : "TCP";
      return absl::NotFoundError(absl::StrCat("service ", protocol, " ",
                                              HostPort(vip, va.port()),
                                              " does not exist"));
    }
    default:
      return absl::InvalidArgumentError(
          "selector: give the service's name or its virtual address (vip, "
          "port, protocol)");
  }
}

absl::StatusOr<std::set<std::string>> FindServices(
    const StoreState& state,
    const google::protobuf::RepeatedPtrField<lb::v1::ServiceSelector>&
        selectors) {
  std::set<std::string> names;
  for (const lb::v1::ServiceSelector& selector : selectors) {
    ASSIGN_OR_RETURN(std::string name, FindService(state, selector));
    names.insert(std::move(name));
  }
  return names;
}

absl::StatusOr<std::string> CreateService(StoreState& state,
                                          lb::v1::Service service) {
  RETURN_IF_ERROR(CanonicalizeService(service));
  if (auto it = state.services.find(service.name());
      it != state.services.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat(Describe(it->second), " exists already"));
  }
  for (const auto& [name, other] : state.services) {
    if (other.vip() == service.vip() && other.port() == service.port() &&
        other.protocol() == service.protocol()) {
      return absl::AlreadyExistsError(
          absl::StrCat(Describe(other), " has that virtual address already"));
    }
  }
  std::string name = service.name();
  state.services.emplace(name, std::move(service));
  return name;
}

absl::StatusOr<std::string> UpdateService(
    StoreState& state, const lb::v1::ServiceSelector& selector,
    const lb::v1::Service& patch, const FieldMask& mask) {
  ASSIGN_OR_RETURN(std::string name, FindService(state, selector));
  lb::v1::Service& service = *MutableService(state, name);
  RETURN_IF_ERROR(Merge(patch, mask, {"name", "vip", "port", "protocol"},
                        {"backends"}, service));
  for (int i = 0; i < service.backends_size(); ++i) {
    lb::v1::Backend& b = *service.mutable_backends(i);
    ASSIGN_OR_RETURN(
        std::string address,
        Canonical(absl::StrCat("backends[", i, "].address"), b.address()));
    b.set_address(address);
  }
  return name;
}

absl::Status DeleteService(StoreState& state,
                           const lb::v1::ServiceSelector& selector) {
  ASSIGN_OR_RETURN(std::string name, FindService(state, selector));
  state.services.erase(name);
  return absl::OkStatus();
}

absl::StatusOr<std::string> AddBackend(StoreState& state,
                                       const lb::v1::ServiceSelector& selector,
                                       lb::v1::Backend backend) {
  ASSIGN_OR_RETURN(std::string name, FindService(state, selector));
  ASSIGN_OR_RETURN(std::string address,
                   Canonical("backend.address", backend.address()));
  backend.set_address(address);
  lb::v1::Service& service = *MutableService(state, name);
  if (FindBackend(service, address, backend.port()) >= 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        DescribeBackend(backend), " is in ", Describe(service), " already"));
  }
  *service.add_backends() = std::move(backend);
  return name;
}

absl::StatusOr<std::string> UpdateBackend(
    StoreState& state, const lb::v1::ServiceSelector& selector,
    const lb::v1::Backend& patch, const FieldMask& mask) {
  ASSIGN_OR_RETURN(std::string name, FindService(state, selector));
  ASSIGN_OR_RETURN(std::string address,
                   Canonical("backend.address", patch.address()));
  lb::v1::Service& service = *MutableService(state, name);
  const int index = FindBackend(service, address, patch.port());
  if (index < 0) {
    return absl::NotFoundError(absl::StrCat("real server ",
                                            HostPort(address, patch.port()),
                                            " is not in ", Describe(service)));
  }
  RETURN_IF_ERROR(Merge(patch, mask, {"address", "port"}, {},
                        *service.mutable_backends(index)));
  return name;
}

absl::StatusOr<std::string> RemoveBackend(
    StoreState& state, const lb::v1::ServiceSelector& selector,
    const std::string& address_text, uint32_t port) {
  ASSIGN_OR_RETURN(std::string name, FindService(state, selector));
  ASSIGN_OR_RETURN(std::string address, Canonical("address", address_text));
  lb::v1::Service& service = *MutableService(state, name);
  const int index = FindBackend(service, address, port);
  if (index < 0) {
    return absl::NotFoundError(absl::StrCat("real server ",
                                            HostPort(address, port),
                                            " is not in ", Describe(service)));
  }
  service.mutable_backends()->DeleteSubrange(index, 1);
  return name;
}

absl::StatusOr<std::vector<lb::v1::ServiceChange>> ApplyServices(
    StoreState& state, const std::vector<lb::v1::Service>& services) {
  std::map<std::string, lb::v1::Service> desired;
  for (size_t i = 0; i < services.size(); ++i) {
    lb::v1::Service service = services[i];
    if (absl::Status s = CanonicalizeService(service); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("services[", i, "]: ", s.message()));
    }
    const std::string name = service.name();
    if (!desired.emplace(name, std::move(service)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("services[", i, "]: name \"", name, "\" appears twice"));
    }
  }
  std::vector<lb::v1::ServiceChange> changes;
  for (const auto& [name, service] : desired) {
    lb::v1::ServiceChange change;
    change.set_service_name(name);
    auto it = state.services.find(name);
    if (it == state.services.end()) {
      change.set_kind(lb::v1::ServiceChange::KIND_CREATE);
      change.add_details(Describe(service));
      for (const lb::v1::Backend& b : service.backends()) {
        change.add_details(absl::StrCat("+ ", DescribeBackend(b)));
      }
    } else if (google::protobuf::util::MessageDifferencer::Equals(it->second,
                                                                  service)) {
      change.set_kind(lb::v1::ServiceChange::KIND_UNCHANGED);
    } else {
      change.set_kind(lb::v1::ServiceChange::KIND_UPDATE);
      for (std::string& d : ServiceDetails(it->second, service)) {
        change.add_details(std::move(d));
      }
    }
    changes.push_back(std::move(change));
  }
  for (const auto& [name, service] : state.services) {
    if (desired.contains(name)) continue;
    lb::v1::ServiceChange change;
    change.set_kind(lb::v1::ServiceChange::KIND_DELETE);
    change.set_service_name(name);
    change.add_details(Describe(service));
    changes.push_back(std::move(change));
  }
  std::sort(changes.begin(), changes.end(),
            [](const lb::v1::ServiceChange& a, const lb::v1::ServiceChange& b) {
              return a.service_name() < b.service_name();
            });
  state.services = std::move(desired);
  return changes;
}

void RegisterNode(StoreState& state, const std::string& node_name) {
  if (state.nodes.contains(node_name)) return;
  lb::v1::NodeSettings& settings = state.nodes[node_name];
  settings.set_node_name(node_name);
  settings.set_weight(1);
  settings.set_admin_state(lb::v1::NODE_ADMIN_STATE_ACTIVE);
}

absl::Status UpdateNode(StoreState& state, const lb::v1::NodeSettings& patch,
                        const FieldMask& mask) {
  auto it = state.nodes.find(patch.node_name());
  if (it == state.nodes.end()) {
    return absl::NotFoundError(absl::StrCat(
        "node \"", patch.node_name(),
        "\" is not registered (start its lbnode with --controller first)"));
  }
  for (const std::string& path : mask.paths()) {
    if (path == "admin_state") {
      return absl::InvalidArgumentError(
          "update_mask: \"admin_state\" changes through DrainNode / "
          "UndrainNode (lbctl drain)");
    }
  }
  return Merge(patch, mask, {"node_name"}, {"admin_state"}, it->second);
}

absl::Status SetAdminState(StoreState& state, const std::string& node_name,
                           lb::v1::NodeAdminState admin_state) {
  auto it = state.nodes.find(node_name);
  if (it == state.nodes.end()) {
    return absl::NotFoundError(
        absl::StrCat("node \"", node_name, "\" is not registered"));
  }
  it->second.set_admin_state(admin_state);
  return absl::OkStatus();
}

absl::Status Validate(const StoreState& state) {
  // The services once, without a node: every rule but FULLNAT's need for
  // local addresses, which depends on the node.
  lb::v1::ConfigSnapshot services;
  for (const auto& [name, service] : state.services) {
    *services.add_services() = service;
  }
  for (const auto& [name, health] : state.backend_health) {
    *services.add_backend_health() = health;
  }
  ASSIGN_OR_RETURN(
      config::NormalConfig normal,
      config::NormalizeConfig(services, {.check_local_addresses = false}));
  bool fullnat_v4 = false;
  bool fullnat_v6 = false;
  std::string fullnat_v4_service;
  std::string fullnat_v6_service;
  for (const config::NormalService& s : normal.services) {
    if (s.forwarding.mode != lb::v1::FORWARDING_MODE_FULLNAT) continue;
    for (const config::NormalBackend& b : s.backends) {
      (b.address.is_v4() ? fullnat_v4 : fullnat_v6) = true;
      (b.address.is_v4() ? fullnat_v4_service : fullnat_v6_service) = s.name;
    }
  }
  // Each node's own settings, and what FULLNAT needs of them.
  for (const auto& [name, settings] : state.nodes) {
    lb::v1::ConfigSnapshot node_only;
    *node_only.mutable_node() = settings;
    absl::StatusOr<config::NormalConfig> node =
        config::NormalizeConfig(node_only);
    if (!node.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node \"", name, "\": ", node.status().message()));
    }
    for (bool v4 : {true, false}) {
      if (!(v4 ? fullnat_v4 : fullnat_v6)) continue;
      if (v4 ? node->node.has_local_v4 : node->node.has_local_v6) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "service \"", v4 ? fullnat_v4_service : fullnat_v6_service,
          "\" is FULLNAT to ", v4 ? "IPv4" : "IPv6",
          " real servers but node \"", name, "\" has no ", v4 ? "IPv4" : "IPv6",
          " local_addresses; give it some (lbctl node ... / UpdateNode) "
          "first"));
    }
  }
  return absl::OkStatus();
}

lb::v1::ConfigSnapshot SnapshotFor(const StoreState& state,
                                   const std::string& node_name) {
  lb::v1::ConfigSnapshot snapshot;
  snapshot.set_revision(state.revision);
  for (const auto& [name, service] : state.services) {
    *snapshot.add_services() = service;
  }
  if (auto it = state.nodes.find(node_name); it != state.nodes.end()) {
    *snapshot.mutable_node() = it->second;
  } else {
    snapshot.mutable_node()->set_node_name(node_name);
  }
  for (const auto& [name, health] : state.backend_health) {
    *snapshot.add_backend_health() = health;
  }
  return snapshot;
}

namespace {

std::string HealthName(lb::v1::HealthState state) {
  switch (state) {
    case lb::v1::HEALTH_STATE_DOWN:
      return "DOWN";
    default:
      return "UP";
  }
}

}  // namespace

std::vector<uint32_t> ReportPorts(const lb::v1::Service& service,
                                  const lb::v1::Backend& b) {
  if (b.port() == 0) return {0, service.port()};
  if (b.port() == service.port()) return {b.port(), 0};
  return {b.port()};
}

std::string DescribeHealthChange(const HealthChange& change) {
  std::string text = absl::StrCat(
      "backend ",
      HostPort(change.backend.address(), change.effective_port != 0
                                             ? change.effective_port
                                             : change.backend.port()),
      " of \"", change.backend.service_name(), "\" ", HealthName(change.to));
  if (change.to_weight != change.from_weight) {
    absl::StrAppend(
        &text, !change.to_weight.has_value()
                   ? " (configured weight)"
                   : absl::StrCat(" (dynamic weight ", *change.to_weight, ")"));
  }
  absl::StrAppend(&text, ": ", change.reason);
  return text;
}

std::vector<HealthChange> ReconcileBackendHealth(
    const StoreState& state, const std::map<BackendKey, FleetVerdict>& verdicts,
    absl::Time now, bool keep_unreported,
    std::map<std::string, lb::v1::BackendHealth>* next_health) {
  std::vector<HealthChange> changes;
  std::map<std::string, lb::v1::BackendHealth>& next = *next_health;
  next.clear();
  for (const auto& [name, service] : state.services) {
    for (const lb::v1::Backend& b : service.backends()) {
      lb::v1::BackendRef ref;
      ref.set_service_name(name);
      ref.set_address(b.address());
      ref.set_port(b.port());
      const std::string key = BackendHealthName(ref);
      const FleetVerdict* verdict = nullptr;
      for (uint32_t port : ReportPorts(service, b)) {
        auto it = verdicts.find({name, b.address(), port});
        if (it != verdicts.end() &&
            it->second.state != lb::v1::HEALTH_STATE_UNSPECIFIED) {
          verdict = &it->second;
          break;
        }
      }
      auto old = state.backend_health.find(key);
      if (verdict == nullptr && keep_unreported) {
        if (old != state.backend_health.end()) next.emplace(key, old->second);
        continue;
      }
      const lb::v1::HealthState from = old == state.backend_health.end()
                                           ? lb::v1::HEALTH_STATE_UNSPECIFIED
                                           : old->second.state();
      std::optional<uint32_t> from_weight;
      if (old != state.backend_health.end() &&
          old->second.has_dynamic_weight()) {
        from_weight = old->second.dynamic_weight();
      }
      lb::v1::HealthState to = lb::v1::HEALTH_STATE_UNSPECIFIED;
      std::optional<uint32_t> to_weight;
      if (verdict != nullptr && (verdict->state == lb::v1::HEALTH_STATE_DOWN ||
                                 verdict->dynamic_weight.has_value())) {
        to = verdict->state;
        to_weight = verdict->dynamic_weight;
      }
      // An entry's UP and "no entry" are the same verdict (counts as up).
      auto down = [](lb::v1::HealthState s) {
        return s == lb::v1::HEALTH_STATE_DOWN;
      };
      if (down(from) == down(to) && from_weight == to_weight) {
        if (old != state.backend_health.end()) next.emplace(key, old->second);
        continue;
      }
      HealthChange change;
      change.backend = ref;
      change.effective_port = b.port() == 0 ? service.port() : b.port();
      change.from = from;
      change.to =
          to == lb::v1::HEALTH_STATE_UNSPECIFIED ? lb::v1::HEALTH_STATE_UP : to;
      change.from_weight = from_weight;
      change.to_weight = to_weight;
      change.reason = verdict != nullptr
                          ? verdict->reason
                          : "no node with a current report checks it";
      if (to != lb::v1::HEALTH_STATE_UNSPECIFIED) {
        lb::v1::BackendHealth& entry = next[key];
        *entry.mutable_backend() = ref;
        entry.set_state(to);
        if (to_weight.has_value()) entry.set_dynamic_weight(*to_weight);
        entry.set_reason(change.reason);
        const int64_t nanos = absl::ToUnixNanos(now);
        entry.mutable_last_change()->set_seconds(nanos / 1000000000);
        entry.mutable_last_change()->set_nanos(
            static_cast<int32_t>(nanos % 1000000000));
      }
      changes.push_back(std::move(change));
    }
  }
  return changes;
}

void DropOrphanVerdicts(StoreState& state) {
  if (state.backend_health.empty()) return;
  std::set<std::string> known;
  for (const auto& [name, service] : state.services) {
    for (const lb::v1::Backend& b : service.backends()) {
      lb::v1::BackendRef ref;
      ref.set_service_name(name);
      ref.set_address(b.address());
      ref.set_port(b.port());
      known.insert(BackendHealthName(ref));
    }
  }
  std::erase_if(state.backend_health, [&](const auto& entry) {
    return !known.contains(entry.first);
  });
}

}  // namespace anylb::controller
