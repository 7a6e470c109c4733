// Command: one lbctl invocation as typed values, the output of the argv
// parser (parse_args.h) and the input of the runner (runner.h).
//
// The ipvsadm verbs carry lb.v1 messages filled from the command line (the
// API's own types: lbctl's job is to build exactly these requests); the
// runner only adds what needs the controller's state.
//
// Threading: plain values.

#ifndef ANYLB_CONTROLLER_LBCTL_COMMAND_H_
#define ANYLB_CONTROLLER_LBCTL_COMMAND_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lb/v1/controller.pb.h"
#include "lb/v1/service.pb.h"

namespace anylb::lbctl {

// Verb is what an invocation does: ipvsadm's commands, then lbctl's own.
enum class Verb {
  kAddService,     // -A
  kEditService,    // -E
  kDeleteService,  // -D
  kAddServer,      // -a
  kEditServer,     // -e
  kDeleteServer,   // -d
  kList,           // -L / -l
  kZero,           // -Z
  kClear,          // -C
  kSave,           // -S
  kRestore,        // -R
  kApply,          // apply -f FILE [--dry-run]
  kNodes,          // nodes
  kDrain,          // drain NODE
  kUndrain,        // undrain NODE
  kNodeWeight,     // node-weight NODE WEIGHT
  kNodeLocal,      // node-local-addresses NODE [PREFIX...]
  kStatus,         // status
  kHelp,           // -h / --help / help
  kVersion,        // -v / --version / version
};

// OutputFormat: human tables (ipvsadm's layout) or JSON for scripts.
enum class OutputFormat { kTable, kJson };

// ListColumns: the column set of -L (ipvsadm's --stats, --rate,
// --thresholds).
enum class ListColumns { kDefault, kStats, kRate, kThresholds };

// ListOptions: how -L and -S print.
struct ListOptions {
  ListColumns columns = ListColumns::kDefault;
  // --exact: whole numbers instead of K/M/G/T.
  bool exact = false;
  // -n: accepted for ipvsadm's habits; lbctl never resolves names.
  bool numeric = false;
  // --rate samples the counters twice, this far apart.
  absl::Duration rate_interval = absl::Seconds(5);
};

// ConnectionOptions: how to reach the controller.
struct ConnectionOptions {
  std::string controller = "127.0.0.1:50051";
  std::string ca_file;     // PEM roots; empty: the system's
  std::string token_file;  // one line, the bearer token; empty: none
  bool insecure = false;   // plaintext (local trials)
  absl::Duration timeout = absl::Seconds(10);
};

// Command is one verb with its operands.
struct Command {
  Verb verb = Verb::kHelp;
  // The verb as typed ("-A", "--add-server", "apply"), for messages.
  std::string spelling;

  // -t/-u: the virtual service (required for -A -E -D -a -e -d; optional
  // for -L and -Z, where it selects one service).
  std::optional<lb::v1::VirtualAddress> virtual_address;

  // -A / -E: the service as the command line gives it (vip, port,
  // protocol, scheduler, flags, persistence, forwarding).
  lb::v1::Service service;
  // -E: the Service fields to change (UpdateServiceRequest.update_mask).
  std::vector<std::string> service_fields;

  // -a / -e / -d: the real server (address, port, weight, forwarding,
  // thresholds).
  lb::v1::Backend backend;
  // -a / -e: whether -g/-i/-m/--fullnat was given (otherwise the real
  // server uses the service's forwarding).
  bool backend_forwarding_given = false;
  // -e: the Backend fields to change (UpdateBackendRequest.update_mask).
  std::vector<std::string> backend_fields;

  ListOptions list;

  // apply
  std::string file;
  bool dry_run = false;

  // drain / undrain / node-weight / node-local-addresses
  std::string node_name;
  uint32_t node_weight = 0;
  std::vector<std::string> local_addresses;
};

// Invocation is a whole command line: connection, output format, command.
struct Invocation {
  ConnectionOptions connection;
  OutputFormat output = OutputFormat::kTable;
  Command command;
};

}  // namespace anylb::lbctl

#endif  // ANYLB_CONTROLLER_LBCTL_COMMAND_H_
