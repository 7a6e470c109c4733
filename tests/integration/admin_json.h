// lbnode's admin JSON pages, parsed for the integration tests (test-only):
// GET /admin/health and GET /admin/services on lbnode's metrics address
// (docs/lbnode.md).
//
//   ASSERT_OK_AND_ASSIGN(std::vector<HealthEntry> health,
//                        ParseAdminHealth(page.body));
//
// Parsing goes through protobuf's JSON reader (google.protobuf.Value), so
// any valid JSON is read; a page that is not the documented shape (top level
// an array of objects, the fields below) is an error quoting the page.
// Numbers are accepted as JSON numbers or strings (the proto JSON mapping
// writes 64-bit integers as strings); states as "UP", "up" or
// "HEALTH_STATE_UP" (StateIs).

#ifndef ANYLB_TESTS_INTEGRATION_ADMIN_JSON_H_
#define ANYLB_TESTS_INTEGRATION_ADMIN_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace anylb::itest {

// HealthEntry is one element of /admin/health: this node's view of one
// real server.
struct HealthEntry {
  std::string service;
  std::string backend;  // "198.51.100.11:80"
  std::string state;
  std::string last_change;
  std::string last_error;
  uint64_t dynamic_weight = 0;
  uint64_t probes = 0;
  uint64_t failures = 0;
};

// ServiceBackend is one real server of a service in /admin/services.
struct ServiceBackend {
  std::string address;
  uint64_t port = 0;
  uint64_t weight = 0;
  bool available = false;
  std::string fleet_state;
  std::string local_state;
};

// ServiceEntry is one element of /admin/services.
struct ServiceEntry {
  std::string name;
  std::string vip;
  uint64_t port = 0;
  std::string protocol;
  std::string scheduler;
  std::string table_digest;
  std::vector<ServiceBackend> backends;
};

absl::StatusOr<std::vector<HealthEntry>> ParseAdminHealth(
    const std::string& json);
absl::StatusOr<std::vector<ServiceEntry>> ParseAdminServices(
    const std::string& json);

// StateIs: whether `state` ("UP", "up", "HEALTH_STATE_UP") is `want` ("up",
// "down"), ignoring case and an enum prefix.
bool StateIs(std::string_view state, std::string_view want);

// FindHealth returns the entry of `service` whose backend starts with
// `address` followed by ':' (or is `address`), if any.
std::optional<HealthEntry> FindHealth(const std::vector<HealthEntry>& entries,
                                      std::string_view service,
                                      std::string_view address);

// FindBackend returns the backend of `service` with `address`, if any.
std::optional<ServiceBackend> FindBackend(
    const std::vector<ServiceEntry>& services, std::string_view service,
    std::string_view address);

}  // namespace anylb::itest

#endif  // ANYLB_TESTS_INTEGRATION_ADMIN_JSON_H_
