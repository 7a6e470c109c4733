// The YAML form of lb.v1.ConfigSnapshot (config.proto): the standalone
// lbnode's config file (read at start and on SIGHUP) and `lbctl apply -f`.
//
//   revision: 7                      # optional
//   node:
//     node_name: lb1
//     local_addresses: ["203.0.113.16/28"]
//   services:
//     - name: web
//       vip: 192.0.2.10
//       port: 80
//       protocol: PROTOCOL_TCP       # or: tcp
//       scheduler: mh
//       forwarding: {mode: dr}
//       persistence: {timeout: 300s}
//       backends:
//         - {address: 198.51.100.2, weight: 1}
//
// Mapping rules (those of the proto JSON mapping, which README.md of lb/v1
// describes):
//   * keys are the .proto field names; unknown keys are errors (with a
//     "did you mean" when one is close);
//   * enums by their full name (SCHEDULER_MH) or, in lower case, without the
//     enum's prefix (mh, fullnat, gue, down);
//   * google.protobuf.Duration as "30s" / "1.5s" (also "250ms", "5m", "1h");
//   * bytes as base64; 64-bit integers as numbers or decimal strings;
//   * an empty value (`key:` or `key: ~`) leaves a scalar or list unset, and
//     sets a message field to an empty message (`tcp:` selects a TCP check);
//   * at most one member of a oneof; no key twice in one mapping; one YAML
//     document per file.
//
// Only the syntax and the types are checked here. Meaning (addresses, modes,
// weights, ...) is checked by NormalizeConfig (normalize.h).
//
// Errors are INVALID_ARGUMENT (NOT_FOUND / PERMISSION_DENIED ... for a file
// that cannot be read) and list every problem found (up to
// kMaxConfigErrors), one per line, each with its place:
//   lbnode.yaml:3:16: services[0].scheduler: unknown value "mhh"; one of
//   rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos
//
// Threading: the functions are pure (no shared state) and may run on any
// thread.

#ifndef ANYLB_COMMON_CONFIG_CONFIG_YAML_H_
#define ANYLB_COMMON_CONFIG_CONFIG_YAML_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/config/rules.h"
#include "lb/v1/config.pb.h"

namespace anylb::config {

// ParseConfigYaml parses `text`, a YAML ConfigSnapshot. `source_name` (the
// file name) starts every error line.
absl::StatusOr<lb::v1::ConfigSnapshot> ParseConfigYaml(
    std::string_view text, std::string_view source_name);

// LoadConfigFile reads the file at `path` and parses it (ParseConfigYaml,
// with `path` as the source name).
absl::StatusOr<lb::v1::ConfigSnapshot> LoadConfigFile(const std::string& path);

}  // namespace anylb::config

#endif  // ANYLB_COMMON_CONFIG_CONFIG_YAML_H_
