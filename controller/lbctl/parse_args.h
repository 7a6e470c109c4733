// The lbctl command line: ipvsadm's argv (-A/-E/-D, -a/-e/-d, -L, -Z, -C,
// -S, -R with their options, short, long and bundled as in `-Ln`) plus
// lbctl's subcommands (apply, nodes, drain, undrain, status), parsed into a
// typed Invocation. Pure: no I/O, no controller; every refusal is an
// INVALID_ARGUMENT whose message names the option and the fix, and which
// main prints as one line and exits 2.
//
// Threading: pure functions.

#ifndef ANYLB_CONTROLLER_LBCTL_PARSE_ARGS_H_
#define ANYLB_CONTROLLER_LBCTL_PARSE_ARGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/lbctl/command.h"

namespace anylb::lbctl {

// Environment: the variables lbctl reads (LBCTL_CONTROLLER, LBCTL_CA,
// LBCTL_TOKEN_FILE); the command line's flags win over them.
using Environment = std::map<std::string, std::string>;

// kDefaultPersistenceSeconds: ipvsadm's -p without a value.
inline constexpr int kDefaultPersistenceSeconds = 300;

// ParseCommandLine parses `args` (argv without argv[0]).
absl::StatusOr<Invocation> ParseCommandLine(
    const std::vector<std::string>& args, const Environment& env);

// ParseRestoreLine parses one line of ipvsadm's save format (what -S
// prints, what -R reads): "-A -t 192.0.2.1:80 -s wlc -p 300". Only -A, -E,
// -D, -a, -e, -d and -C lines are commands; the caller skips blank lines and
// #-comments.
absl::StatusOr<Command> ParseRestoreLine(absl::string_view line);

// UsageText: lbctl --help.
std::string UsageText();

}  // namespace anylb::lbctl

#endif  // ANYLB_CONTROLLER_LBCTL_PARSE_ARGS_H_
