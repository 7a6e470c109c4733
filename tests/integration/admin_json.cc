#include "tests/integration/admin_json.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace anylb::itest {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

absl::StatusOr<Value> ParseJson(const std::string& json,
                                const std::string& what) {
  Value value;
  auto status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is not JSON (", status.ToString(),
                     "): ", std::string(json)));
  }
  if (value.kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": want a JSON array at the top level (docs/lbnode.md): ", json));
  }
  return value;
}

std::string Text(const Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  if (it == s.fields().end()) return "";
  const Value& v = it->second;
  switch (v.kind_case()) {
    case Value::kStringValue:
      return v.string_value();
    case Value::kNumberValue:
      return absl::StrCat(v.number_value());
    case Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    default:
      return "";
  }
}

uint64_t Number(const Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  if (it == s.fields().end()) return 0;
  const Value& v = it->second;
  if (v.kind_case() == Value::kNumberValue) {
    return v.number_value() < 0 ? 0 : static_cast<uint64_t>(v.number_value());
  }
  uint64_t n = 0;
  if (v.kind_case() == Value::kStringValue &&
      absl::SimpleAtoi(v.string_value(), &n)) {
    return n;
  }
  return 0;
}

bool Bool(const Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  if (it == s.fields().end()) return false;
  const Value& v = it->second;
  if (v.kind_case() == Value::kBoolValue) return v.bool_value();
  if (v.kind_case() == Value::kStringValue) return v.string_value() == "true";
  return false;
}

bool HasField(const Struct& s, const std::string& field) {
  return s.fields().contains(field);
}

}  // namespace

absl::StatusOr<std::vector<HealthEntry>> ParseAdminHealth(
    const std::string& json) {
  absl::StatusOr<Value> value = ParseJson(json, "/admin/health");
  if (!value.ok()) return value.status();
  std::vector<HealthEntry> out;
  for (const Value& element : value->list_value().values()) {
    if (element.kind_case() != Value::kStructValue) {
      return absl::InvalidArgumentError(
          absl::StrCat("/admin/health: an element is not an object: ", json));
    }
    const Struct& s = element.struct_value();
    for (const char* field : {"service", "backend", "state"}) {
      if (!HasField(s, field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "/admin/health: an element has no \"", field, "\": ", json));
      }
    }
    HealthEntry e;
    e.service = Text(s, "service");
    e.backend = Text(s, "backend");
    e.state = Text(s, "state");
    e.last_change = Text(s, "last_change");
    e.last_error = Text(s, "last_error");
    e.dynamic_weight = Number(s, "dynamic_weight");
    e.probes = Number(s, "probes");
    e.failures = Number(s, "failures");
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<ServiceEntry>> ParseAdminServices(
    const std::string& json) {
  absl::StatusOr<Value> value = ParseJson(json, "/admin/services");
  if (!value.ok()) return value.status();
  std::vector<ServiceEntry> out;
  for (const Value& element : value->list_value().values()) {
    if (element.kind_case() != Value::kStructValue) {
      return absl::InvalidArgumentError(
          absl::StrCat("/admin/services: an element is not an object: ", json));
    }
    const Struct& s = element.struct_value();
    for (const char* field : {"name", "table_digest", "backends"}) {
      if (!HasField(s, field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "/admin/services: an element has no \"", field, "\": ", json));
      }
    }
    ServiceEntry e;
    e.name = Text(s, "name");
    e.vip = Text(s, "vip");
    e.port = Number(s, "port");
    e.protocol = Text(s, "protocol");
    e.scheduler = Text(s, "scheduler");
    e.table_digest = Text(s, "table_digest");
    const Value& backends = s.fields().at("backends");
    if (backends.kind_case() != Value::kListValue) {
      return absl::InvalidArgumentError(absl::StrCat(
          "/admin/services: \"backends\" is not an array: ", json));
    }
    for (const Value& b : backends.list_value().values()) {
      if (b.kind_case() != Value::kStructValue) {
        return absl::InvalidArgumentError(absl::StrCat(
            "/admin/services: a backend is not an object: ", json));
      }
      const Struct& bs = b.struct_value();
      for (const char* field : {"address", "available"}) {
        if (!HasField(bs, field)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "/admin/services: a backend has no \"", field, "\": ", json));
        }
      }
      ServiceBackend sb;
      sb.address = Text(bs, "address");
      sb.port = Number(bs, "port");
      sb.weight = Number(bs, "weight");
      sb.available = Bool(bs, "available");
      sb.fleet_state = Text(bs, "fleet_state");
      sb.local_state = Text(bs, "local_state");
      e.backends.push_back(std::move(sb));
    }
    out.push_back(std::move(e));
  }
  return out;
}

bool StateIs(std::string_view state, std::string_view want) {
  std::string s = absl::AsciiStrToLower(std::string(state));
  std::string w = absl::AsciiStrToLower(std::string(want));
  return s == w || absl::EndsWith(s, "_" + w);
}

std::optional<HealthEntry> FindHealth(const std::vector<HealthEntry>& entries,
                                      std::string_view service,
                                      std::string_view address) {
  for (const HealthEntry& e : entries) {
    if (e.service != service) continue;
    if (e.backend == address ||
        absl::StartsWith(e.backend, std::string(address) + ":")) {
      return e;
    }
  }
  return std::nullopt;
}

std::optional<ServiceBackend> FindBackend(
    const std::vector<ServiceEntry>& services, std::string_view service,
    std::string_view address) {
  for (const ServiceEntry& s : services) {
    if (s.name != service) continue;
    for (const ServiceBackend& b : s.backends) {
      if (b.address == address ||
          absl::StartsWith(b.address, std::string(address) + ":")) {
        return b;
      }
    }
  }
  return std::nullopt;
}

}  // namespace anylb::itest
