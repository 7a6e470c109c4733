#include "controller/lbctl/parse_args.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/rules.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "controller/lbctl/names.h"
#include "google/protobuf/duration.pb.h"

namespace anylb::lbctl {
namespace {

// Opt identifies an option whatever its spelling.
enum class Opt {
  // ipvsadm's commands
  kAddService,
  kEditService,
  kDeleteService,
  kClear,
  kRestore,
  kSave,
  kAddServer,
  kEditServer,
  kDeleteServer,
  kList,
  kZero,
  kHelp,
  kVersion,
  // ipvsadm's options
  kTcp,
  kUdp,
  kScheduler,
  kPersistent,
  kNetmask,
  kSchedFlags,
  kRealServer,
  kGatewaying,
  kIpip,
  kMasquerading,
  kWeight,
  kUThreshold,
  kLThreshold,
  kNumeric,
  kStats,
  kRate,
  kExact,
  kThresholds,
  kNoSort,
  kSort,
  // ours
  kFullnat,
  kTunType,
  kGuePort,
  kRateInterval,
  // connection and output (anywhere)
  kController,
  kCa,
  kTokenFile,
  kInsecure,
  kTimeout,
  kOutput,
  // apply
  kFile,
  kDryRun,
  // ipvsadm options lbctl refuses with a reason
  kFwmark,
  kIpv6,
  kOps,
  kConnection,
  kDaemon,
  kPersistentConn,
  kStartDaemon,
  kStopDaemon,
  kSetTimeouts,
  kMcastInterface,
  kSyncId,
};

enum class Arg { kNone, kRequired, kOptionalNumber };

struct OptSpec {
  Opt id;
  char short_name;  // 0: none
  const char* long_name;
  Arg arg;
};

// ipvsadm's options (ipvsadm(8)); -f is the fwmark here, apply's file in
// the subcommand grammar.
constexpr OptSpec kIpvsadmOptions[] = {
    {Opt::kAddService, 'A', "add-service", Arg::kNone},
    {Opt::kEditService, 'E', "edit-service", Arg::kNone},
    {Opt::kDeleteService, 'D', "delete-service", Arg::kNone},
    {Opt::kClear, 'C', "clear", Arg::kNone},
    {Opt::kRestore, 'R', "restore", Arg::kNone},
    {Opt::kSave, 'S', "save", Arg::kNone},
    {Opt::kAddServer, 'a', "add-server", Arg::kNone},
    {Opt::kEditServer, 'e', "edit-server", Arg::kNone},
    {Opt::kDeleteServer, 'd', "delete-server", Arg::kNone},
    {Opt::kList, 'L', "list", Arg::kNone},
    {Opt::kList, 'l', nullptr, Arg::kNone},
    {Opt::kZero, 'Z', "zero", Arg::kNone},
    {Opt::kHelp, 'h', "help", Arg::kNone},
    {Opt::kVersion, 'v', "version", Arg::kNone},
    {Opt::kTcp, 't', "tcp-service", Arg::kRequired},
    {Opt::kUdp, 'u', "udp-service", Arg::kRequired},
    {Opt::kScheduler, 's', "scheduler", Arg::kRequired},
    {Opt::kPersistent, 'p', "persistent", Arg::kOptionalNumber},
    {Opt::kNetmask, 'M', "netmask", Arg::kRequired},
    {Opt::kSchedFlags, 'b', "sched-flags", Arg::kRequired},
    {Opt::kRealServer, 'r', "real-server", Arg::kRequired},
    {Opt::kGatewaying, 'g', "gatewaying", Arg::kNone},
    {Opt::kIpip, 'i', "ipip", Arg::kNone},
    {Opt::kMasquerading, 'm', "masquerading", Arg::kNone},
    {Opt::kWeight, 'w', "weight", Arg::kRequired},
    {Opt::kUThreshold, 'x', "u-threshold", Arg::kRequired},
    {Opt::kLThreshold, 'y', "l-threshold", Arg::kRequired},
    {Opt::kNumeric, 'n', "numeric", Arg::kNone},
    {Opt::kStats, 0, "stats", Arg::kNone},
    {Opt::kRate, 0, "rate", Arg::kNone},
    {Opt::kExact, 0, "exact", Arg::kNone},
    {Opt::kThresholds, 0, "thresholds", Arg::kNone},
    {Opt::kNoSort, 0, "nosort", Arg::kNone},
    {Opt::kSort, 0, "sort", Arg::kNone},
    {Opt::kFullnat, 0, "fullnat", Arg::kNone},
    {Opt::kTunType, 0, "tun-type", Arg::kRequired},
    {Opt::kGuePort, 0, "gue-port", Arg::kRequired},
    {Opt::kRateInterval, 0, "rate-interval", Arg::kRequired},
    {Opt::kFwmark, 'f', "fwmark-service", Arg::kRequired},
    {Opt::kIpv6, '6', "ipv6", Arg::kNone},
    {Opt::kOps, 0, "ops", Arg::kNone},
    {Opt::kConnection, 'c', "connection", Arg::kNone},
    {Opt::kDaemon, 0, "daemon", Arg::kNone},
    {Opt::kPersistentConn, 0, "persistent-conn", Arg::kNone},
    {Opt::kStartDaemon, 0, "start-daemon", Arg::kRequired},
    {Opt::kStopDaemon, 0, "stop-daemon", Arg::kRequired},
    {Opt::kSetTimeouts, 0, "set", Arg::kRequired},
    {Opt::kMcastInterface, 0, "mcast-interface", Arg::kRequired},
    {Opt::kSyncId, 0, "syncid", Arg::kRequired},
};

// Options of every grammar: where the controller is, how to print.
constexpr OptSpec kGlobalOptions[] = {
    {Opt::kController, 0, "controller", Arg::kRequired},
    {Opt::kCa, 0, "ca", Arg::kRequired},
    {Opt::kTokenFile, 0, "token-file", Arg::kRequired},
    {Opt::kInsecure, 0, "insecure", Arg::kNone},
    {Opt::kTimeout, 0, "timeout", Arg::kRequired},
    {Opt::kOutput, 'o', "output", Arg::kRequired},
};

// The subcommands' own options.
constexpr OptSpec kSubcommandOptions[] = {
    {Opt::kFile, 'f', "filename", Arg::kRequired},
    {Opt::kDryRun, 0, "dry-run", Arg::kNone},
    {Opt::kHelp, 'h', "help", Arg::kNone},
};

struct Occurrence {
  Opt id;
  std::string spelling;  // as typed: "-w", "--weight"
  std::string value;
  bool has_value = false;
};

struct Tokens {
  std::vector<Occurrence> options;
  std::vector<std::string> positionals;
};

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

class Grammar {
 public:
  explicit Grammar(bool subcommand) : subcommand_(subcommand) {}

  const OptSpec* FindLong(absl::string_view name) const {
    std::string normalized(name);
    std::replace(normalized.begin(), normalized.end(), '_', '-');
    for (const OptSpec& spec : kGlobalOptions) {
      if (spec.long_name != nullptr && normalized == spec.long_name) {
        return &spec;
      }
    }
    if (subcommand_) {
      for (const OptSpec& spec : kSubcommandOptions) {
        if (spec.long_name != nullptr && normalized == spec.long_name) {
          return &spec;
        }
      }
      return nullptr;
    }
    for (const OptSpec& spec : kIpvsadmOptions) {
      if (spec.long_name != nullptr && normalized == spec.long_name) {
        return &spec;
      }
    }
    return nullptr;
  }

  const OptSpec* FindShort(char c) const {
    for (const OptSpec& spec : kGlobalOptions) {
      if (spec.short_name == c) return &spec;
    }
    if (subcommand_) {
      for (const OptSpec& spec : kSubcommandOptions) {
        if (spec.short_name == c) return &spec;
      }
      return nullptr;
    }
    for (const OptSpec& spec : kIpvsadmOptions) {
      if (spec.short_name == c) return &spec;
    }
    return nullptr;
  }

 private:
  bool subcommand_;
};

bool AllDigits(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

absl::StatusOr<Tokens> Tokenize(const std::vector<std::string>& args,
                                const Grammar& grammar) {
  Tokens tokens;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      for (++i; i < args.size(); ++i) tokens.positionals.push_back(args[i]);
      break;
    }
    if (absl::StartsWith(arg, "--")) {
      absl::string_view body = absl::string_view(arg).substr(2);
      std::optional<std::string> inline_value;
      if (size_t eq = body.find('='); eq != absl::string_view::npos) {
        inline_value = std::string(body.substr(eq + 1));
        body = body.substr(0, eq);
      }
      const OptSpec* spec = grammar.FindLong(body);
      if (spec == nullptr) {
        return Usage(absl::StrCat("unknown option --", body,
                                  " (lbctl --help lists the options)"));
      }
      Occurrence occurrence{spec->id, absl::StrCat("--", body), "", false};
      switch (spec->arg) {
        case Arg::kNone:
          if (inline_value.has_value()) {
            return Usage(absl::StrCat("--", body, " takes no value"));
          }
          break;
        case Arg::kRequired:
          if (inline_value.has_value()) {
            occurrence.value = *inline_value;
          } else if (i + 1 < args.size()) {
            occurrence.value = args[++i];
          } else {
            return Usage(absl::StrCat("--", body, " needs a value"));
          }
          occurrence.has_value = true;
          break;
        case Arg::kOptionalNumber:
          if (inline_value.has_value()) {
            occurrence.value = *inline_value;
            occurrence.has_value = true;
          } else if (i + 1 < args.size() && AllDigits(args[i + 1])) {
            occurrence.value = args[++i];
            occurrence.has_value = true;
          }
          break;
      }
      tokens.options.push_back(std::move(occurrence));
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      // A bundle of short options: "-Ln", "-w3", "-p600".
      for (size_t j = 1; j < arg.size(); ++j) {
        const OptSpec* spec = grammar.FindShort(arg[j]);
        if (spec == nullptr) {
          return Usage(absl::StrCat(
              "unknown option -", arg.substr(j, 1),
              arg.size() > 2 ? absl::StrCat(" in ", arg) : std::string(),
              " (lbctl --help lists the options)"));
        }
        Occurrence occurrence{spec->id, absl::StrCat("-", arg.substr(j, 1)), "",
                              false};
        std::string rest = arg.substr(j + 1);
        bool consumed_rest = false;
        switch (spec->arg) {
          case Arg::kNone:
            break;
          case Arg::kRequired:
            if (!rest.empty()) {
              occurrence.value = rest;
            } else if (i + 1 < args.size()) {
              occurrence.value = args[++i];
            } else {
              return Usage(absl::StrCat(occurrence.spelling, " needs a value"));
            }
            occurrence.has_value = true;
            consumed_rest = true;
            break;
          case Arg::kOptionalNumber:
            if (!rest.empty()) {
              if (!AllDigits(rest)) {
                return Usage(absl::StrCat(occurrence.spelling, ": \"", rest,
                                          "\" is not a number of seconds"));
              }
              occurrence.value = rest;
              occurrence.has_value = true;
            } else if (i + 1 < args.size() && AllDigits(args[i + 1])) {
              occurrence.value = args[++i];
              occurrence.has_value = true;
            }
            consumed_rest = true;
            break;
        }
        tokens.options.push_back(std::move(occurrence));
        if (consumed_rest) break;
      }
      continue;
    }
    tokens.positionals.push_back(arg);
  }
  return tokens;
}

// Why lbctl refuses an ipvsadm option, or "" when it does not.
std::string Unsupported(Opt id) {
  switch (id) {
    case Opt::kFwmark:
      return "firewall-mark services (-f) are not supported: anylb's "
             "directors match packets by VIP, port and protocol; use -t or -u";
    case Opt::kIpv6:
      return "-6 only qualifies -f (firewall marks), which anylb does not "
             "support; IPv6 services are just -t/-u with an IPv6 address, "
             "as in -t [2001:db8::1]:80";
    case Opt::kOps:
      return "--ops (one-packet scheduling) is not supported: UDP flows are "
             "tracked like TCP ones";
    case Opt::kConnection:
      return "-c (the connection table) is per node; lbctl shows counters "
             "with -L --stats";
    case Opt::kDaemon:
    case Opt::kStartDaemon:
    case Opt::kStopDaemon:
    case Opt::kMcastInterface:
    case Opt::kSyncId:
      return "the IPVS sync daemon has no equivalent: every anylb node "
             "computes the same consistent-hash table, so no state is synced";
    case Opt::kPersistentConn:
      return "--persistent-conn is not supported; lbctl -L --stats shows the "
             "counters the nodes report";
    case Opt::kSetTimeouts:
      return "--set (IPVS protocol timeouts) is not supported: flow timeouts "
             "are lbnode settings";
    default:
      return "";
  }
}

bool IsCommand(Opt id) {
  switch (id) {
    case Opt::kAddService:
    case Opt::kEditService:
    case Opt::kDeleteService:
    case Opt::kClear:
    case Opt::kRestore:
    case Opt::kSave:
    case Opt::kAddServer:
    case Opt::kEditServer:
    case Opt::kDeleteServer:
    case Opt::kList:
    case Opt::kZero:
    case Opt::kHelp:
    case Opt::kVersion:
      return true;
    default:
      return false;
  }
}

bool IsGlobal(Opt id) {
  switch (id) {
    case Opt::kController:
    case Opt::kCa:
    case Opt::kTokenFile:
    case Opt::kInsecure:
    case Opt::kTimeout:
    case Opt::kOutput:
      return true;
    default:
      return false;
  }
}

Verb VerbOf(Opt id) {
  switch (id) {
    case Opt::kAddService:
      return Verb::kAddService;
    case Opt::kEditService:
      return Verb::kEditService;
    case Opt::kDeleteService:
      return Verb::kDeleteService;
    case Opt::kClear:
      return Verb::kClear;
    case Opt::kRestore:
      return Verb::kRestore;
    case Opt::kSave:
      return Verb::kSave;
    case Opt::kAddServer:
      return Verb::kAddServer;
    case Opt::kEditServer:
      return Verb::kEditServer;
    case Opt::kDeleteServer:
      return Verb::kDeleteServer;
    case Opt::kZero:
      return Verb::kZero;
    case Opt::kVersion:
      return Verb::kVersion;
    case Opt::kHelp:
      return Verb::kHelp;
    default:
      return Verb::kList;
  }
}

// The options each ipvsadm command accepts (besides the global ones).
std::set<Opt> AllowedWith(Verb verb) {
  const std::set<Opt> service = {
      Opt::kTcp,          Opt::kUdp,        Opt::kScheduler,  Opt::kPersistent,
      Opt::kNetmask,      Opt::kSchedFlags, Opt::kGatewaying, Opt::kIpip,
      Opt::kMasquerading, Opt::kFullnat,    Opt::kTunType,    Opt::kGuePort};
  const std::set<Opt> server = {
      Opt::kTcp,     Opt::kUdp,          Opt::kRealServer, Opt::kGatewaying,
      Opt::kIpip,    Opt::kMasquerading, Opt::kFullnat,    Opt::kTunType,
      Opt::kGuePort, Opt::kWeight,       Opt::kUThreshold, Opt::kLThreshold};
  switch (verb) {
    case Verb::kAddService:
    case Verb::kEditService:
      return service;
    case Verb::kDeleteService:
    case Verb::kZero:
      return {Opt::kTcp, Opt::kUdp};
    case Verb::kAddServer:
    case Verb::kEditServer:
      return server;
    case Verb::kDeleteServer:
      return {Opt::kTcp, Opt::kUdp, Opt::kRealServer};
    case Verb::kList:
      return {Opt::kTcp,    Opt::kUdp,   Opt::kNumeric,    Opt::kStats,
              Opt::kRate,   Opt::kExact, Opt::kThresholds, Opt::kRateInterval,
              Opt::kNoSort, Opt::kSort};
    case Verb::kSave:
      return {Opt::kNumeric};
    default:
      return {};
  }
}

struct HostAndPort {
  IpAddress address;
  uint32_t port = 0;
};

absl::StatusOr<uint32_t> ParsePort(absl::string_view what,
                                   absl::string_view text) {
  uint32_t port;
  if (!AllDigits(text) || !absl::SimpleAtoi(text, &port) || port > 65535) {
    return Usage(absl::StrCat(
        what, ": port \"", text,
        "\" is not a number in 0..65535 (lbctl does not look up service "
        "names)"));
  }
  return port;
}

// ParseHostPort reads ipvsadm's host[:port]: "192.0.2.1:80",
// "192.0.2.1", "[2001:db8::1]:80", "[2001:db8::1]", "2001:db8::1".
absl::StatusOr<HostAndPort> ParseHostPort(absl::string_view what,
                                          absl::string_view text) {
  absl::string_view host = text;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return Usage(absl::StrCat(what, ": \"", text, "\" lacks the closing ]"));
    }
    host = text.substr(1, close - 1);
    absl::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return Usage(
            absl::StrCat(what, ": \"", text, "\": expected :PORT after ]"));
      }
      port = after.substr(1);
      has_port = true;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    has_port = true;
  }
  auto address = IpAddress::Parse(std::string_view(host.data(), host.size()));
  if (!address.ok()) {
    return Usage(absl::StrCat(
        what, ": \"", host,
        "\" is not an IP address (lbctl does not resolve host names; IPv6 "
        "with a port is [2001:db8::1]:80)"));
  }
  HostAndPort out{*address, 0};
  if (has_port) {
    ASSIGN_OR_RETURN(out.port, ParsePort(what, port));
  }
  return out;
}

absl::StatusOr<uint32_t> ParseNumber(absl::string_view what,
                                     absl::string_view text, uint32_t max) {
  uint32_t value;
  if (!AllDigits(text) || !absl::SimpleAtoi(text, &value) || value > max) {
    return Usage(
        absl::StrCat(what, ": \"", text, "\" is not a number in 0..", max));
  }
  return value;
}

absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view what,
                                                     absl::string_view text) {
  absl::Duration duration;
  uint32_t seconds;
  if (AllDigits(text) && absl::SimpleAtoi(text, &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(std::string(text), &duration)) {
    return Usage(absl::StrCat(what, ": \"", text,
                              "\" is not a duration (like 10s, 1m, 500ms)"));
  }
  if (duration <= absl::ZeroDuration()) {
    return Usage(absl::StrCat(what, ": must be more than 0"));
  }
  return duration;
}

// ParseNetmask: -M as an IPv4 dotted mask (255.255.255.0) or prefix length,
// or an IPv6 prefix length.
absl::StatusOr<uint32_t> ParseNetmask(absl::string_view text, bool v6) {
  if (AllDigits(text)) {
    return ParseNumber("-M", text, v6 ? 128 : 32);
  }
  auto mask = IpAddress::Parse(std::string_view(text.data(), text.size()));
  if (v6 || !mask.ok() || !mask->is_v4()) {
    return Usage(absl::StrCat(
        "-M: \"", text, "\" is not ",
        v6 ? "an IPv6 prefix length (0..128)"
           : "an IPv4 netmask (255.255.255.0) or prefix length (0..32)"));
  }
  uint32_t bits = mask->v4_host_order();
  uint32_t length = 0;
  while (length < 32 && (bits & (0x80000000u >> length)) != 0) ++length;
  if (length < 32 && (bits << length) != 0) {
    return Usage(absl::StrCat("-M: \"", text,
                              "\" is not a contiguous netmask (like "
                              "255.255.255.0)"));
  }
  return length;
}

absl::StatusOr<lb::v1::SchedulerFlags> ParseSchedFlags(
    absl::string_view text, lb::v1::Scheduler scheduler) {
  lb::v1::SchedulerFlags flags;
  for (absl::string_view name : absl::StrSplit(text, ',')) {
    absl::string_view prefix = name.substr(0, 3);
    absl::string_view flag = name.substr(std::min<size_t>(3, name.size()));
    if ((prefix != "sh-" && prefix != "mh-") ||
        (flag != "fallback" && flag != "port")) {
      return Usage(absl::StrCat(
          "-b: unknown flag \"", name,
          "\"; one of sh-fallback, sh-port, mh-fallback, mh-port"));
    }
    bool mh = prefix == "mh-";
    if (scheduler != (mh ? lb::v1::SCHEDULER_MH : lb::v1::SCHEDULER_SH)) {
      return Usage(absl::StrCat("-b ", name, ": a flag of the ",
                                mh ? "mh" : "sh", " scheduler, but -s is ",
                                SchedulerName(scheduler)));
    }
    if (flag == "fallback") {
      flags.set_fallback(true);
    } else {
      flags.set_port(true);
    }
  }
  return flags;
}

// Builder turns the occurrences of one ipvsadm command line into a
// Command.
class Builder {
 public:
  explicit Builder(const std::vector<Occurrence>& options)
      : options_(options) {}

  const Occurrence* Find(Opt id) const {
    for (const Occurrence& o : options_) {
      if (o.id == id) return &o;
    }
    return nullptr;
  }

  absl::StatusOr<Command> Build() {
    Command command;
    const Occurrence* verb_option = nullptr;
    std::set<Opt> seen;
    for (const Occurrence& o : options_) {
      if (std::string why = Unsupported(o.id); !why.empty()) {
        return Usage(absl::StrCat(o.spelling, ": ", why));
      }
      if (!seen.insert(o.id).second) {
        return Usage(absl::StrCat(o.spelling, " is given twice"));
      }
      if (IsCommand(o.id)) {
        if (verb_option != nullptr) {
          return Usage(
              absl::StrCat("one command at a time: ", verb_option->spelling,
                           " and ", o.spelling));
        }
        verb_option = &o;
      }
    }
    // ipvsadm without a command lists.
    command.verb =
        verb_option == nullptr ? Verb::kList : VerbOf(verb_option->id);
    command.spelling = verb_option == nullptr ? "-L" : verb_option->spelling;
    std::set<Opt> allowed = AllowedWith(command.verb);
    for (const Occurrence& o : options_) {
      if (IsCommand(o.id) || IsGlobal(o.id) || allowed.count(o.id) != 0) {
        continue;
      }
      return Usage(absl::StrCat(o.spelling, " does not go with ",
                                command.spelling,
                                " (lbctl --help shows which options each "
                                "command takes)"));
    }
    const Occurrence* tcp = Find(Opt::kTcp);
    const Occurrence* udp = Find(Opt::kUdp);
    if (tcp != nullptr && udp != nullptr) {
      return Usage("-t and -u: a service is either TCP or UDP");
    }
    if (const Occurrence* vs = tcp != nullptr ? tcp : udp; vs != nullptr) {
      ASSIGN_OR_RETURN(HostAndPort hp, ParseHostPort(vs->spelling, vs->value));
      lb::v1::VirtualAddress address;
      address.set_vip(hp.address.ToString());
      address.set_port(hp.port);
      address.set_protocol(tcp != nullptr ? lb::v1::PROTOCOL_TCP
                                          : lb::v1::PROTOCOL_UDP);
      command.virtual_address = address;
      vip_v6_ = hp.address.is_v6();
    }
    switch (command.verb) {
      case Verb::kAddService:
      case Verb::kEditService:
      case Verb::kDeleteService:
      case Verb::kAddServer:
      case Verb::kEditServer:
      case Verb::kDeleteServer:
        if (!command.virtual_address.has_value()) {
          return Usage(absl::StrCat(
              command.spelling,
              " needs the virtual service: -t VIP:PORT (TCP) or -u VIP:PORT "
              "(UDP)"));
        }
        break;
      default:
        break;
    }
    switch (command.verb) {
      case Verb::kAddService:
      case Verb::kEditService:
        RETURN_IF_ERROR(BuildService(&command));
        break;
      case Verb::kAddServer:
      case Verb::kEditServer:
      case Verb::kDeleteServer:
        RETURN_IF_ERROR(BuildServer(&command));
        break;
      case Verb::kList:
        RETURN_IF_ERROR(BuildList(&command));
        break;
      case Verb::kSave:
        command.list.numeric = Find(Opt::kNumeric) != nullptr;
        break;
      default:
        break;
    }
    return command;
  }

 private:
  // Forwarding from -g/-i/-m/--fullnat/--tun-type/--gue-port; nullopt when
  // none is given.
  absl::StatusOr<std::optional<lb::v1::Forwarding>> BuildForwarding() const {
    const Occurrence* chosen = nullptr;
    lb::v1::Forwarding forwarding;
    for (Opt id :
         {Opt::kGatewaying, Opt::kIpip, Opt::kMasquerading, Opt::kFullnat}) {
      const Occurrence* o = Find(id);
      if (o == nullptr) continue;
      if (chosen != nullptr) {
        return Usage(absl::StrCat(chosen->spelling, " and ", o->spelling,
                                  ": choose one forwarding method"));
      }
      chosen = o;
    }
    const Occurrence* tun_type = Find(Opt::kTunType);
    const Occurrence* gue_port = Find(Opt::kGuePort);
    if (tun_type != nullptr &&
        (chosen == nullptr || chosen->id != Opt::kIpip)) {
      return Usage("--tun-type needs -i (tunnelling)");
    }
    if (gue_port != nullptr &&
        (tun_type == nullptr || tun_type->value != "gue")) {
      return Usage("--gue-port needs -i --tun-type gue");
    }
    if (chosen == nullptr) return std::nullopt;
    switch (chosen->id) {
      case Opt::kGatewaying:
        forwarding.set_mode(lb::v1::FORWARDING_MODE_DR);
        break;
      case Opt::kIpip:
        forwarding.set_mode(lb::v1::FORWARDING_MODE_TUN);
        break;
      case Opt::kMasquerading:
        forwarding.set_mode(lb::v1::FORWARDING_MODE_NAT);
        break;
      default:
        forwarding.set_mode(lb::v1::FORWARDING_MODE_FULLNAT);
        break;
    }
    if (tun_type != nullptr) {
      if (tun_type->value == "ipip") {
        forwarding.set_tunnel_type(lb::v1::TUNNEL_TYPE_IPIP);
      } else if (tun_type->value == "gue") {
        forwarding.set_tunnel_type(lb::v1::TUNNEL_TYPE_GUE);
      } else {
        return Usage(absl::StrCat("--tun-type: unknown type \"",
                                  tun_type->value, "\"; one of ipip, gue"));
      }
    }
    if (gue_port != nullptr) {
      ASSIGN_OR_RETURN(uint32_t port,
                       ParseNumber("--gue-port", gue_port->value, 65535));
      if (port == 0) return Usage("--gue-port: must be 1..65535");
      forwarding.set_gue_port(port);
    }
    return std::optional<lb::v1::Forwarding>(forwarding);
  }

  absl::Status BuildService(Command* command) const {
    lb::v1::Service& service = command->service;
    const lb::v1::VirtualAddress& va = *command->virtual_address;
    service.set_vip(va.vip());
    service.set_port(va.port());
    service.set_protocol(va.protocol());
    // The fleet's default is Maglev (mh), where ipvsadm's is wlc: every
    // node then picks the same real server for a flow.
    lb::v1::Scheduler scheduler = lb::v1::SCHEDULER_MH;
    if (const Occurrence* s = Find(Opt::kScheduler); s != nullptr) {
      std::optional<lb::v1::Scheduler> parsed = ParseSchedulerName(s->value);
      if (!parsed.has_value()) {
        return Usage(absl::StrCat(s->spelling, ": unknown scheduler \"",
                                  s->value, "\"; one of ", SchedulerNames()));
      }
      scheduler = *parsed;
    }
    service.set_scheduler(scheduler);
    if (const Occurrence* b = Find(Opt::kSchedFlags); b != nullptr) {
      ASSIGN_OR_RETURN(*service.mutable_scheduler_flags(),
                       ParseSchedFlags(b->value, scheduler));
    }
    const Occurrence* p = Find(Opt::kPersistent);
    const Occurrence* mask = Find(Opt::kNetmask);
    if (mask != nullptr && p == nullptr) {
      return Usage("-M (persistence netmask) needs -p (persistence)");
    }
    if (p != nullptr) {
      uint32_t seconds = kDefaultPersistenceSeconds;
      if (p->has_value) {
        ASSIGN_OR_RETURN(seconds,
                         ParseNumber(p->spelling, p->value, 0x7fffffff));
        if (seconds == 0) {
          return Usage(absl::StrCat(p->spelling,
                                    ": the timeout must be at least 1 "
                                    "second (leave -p out for none)"));
        }
      }
      lb::v1::Persistence* persistence = service.mutable_persistence();
      persistence->mutable_timeout()->set_seconds(seconds);
      if (mask != nullptr) {
        ASSIGN_OR_RETURN(uint32_t length, ParseNetmask(mask->value, vip_v6_));
        if (vip_v6_) {
          persistence->set_ipv6_prefix_length(length);
        } else {
          persistence->set_ipv4_prefix_length(length);
        }
      }
    }
    absl::Status persistence_ok = config::ValidatePersistence(
        service.port(),
        absl::Seconds(service.persistence().timeout().seconds()),
        static_cast<int>(service.persistence().ipv4_prefix_length()),
        static_cast<int>(service.persistence().ipv6_prefix_length()));
    if (!persistence_ok.ok()) {
      return Usage(absl::StrCat(command->spelling, " ", ServiceLabel(va), ": ",
                                persistence_ok.message()));
    }
    ASSIGN_OR_RETURN(std::optional<lb::v1::Forwarding> forwarding,
                     BuildForwarding());
    if (forwarding.has_value()) {
      *service.mutable_forwarding() = *forwarding;
    } else if (command->verb == Verb::kAddService) {
      // ipvsadm's default forwarding, -g.
      service.mutable_forwarding()->set_mode(lb::v1::FORWARDING_MODE_DR);
    }
    if (command->verb == Verb::kEditService) {
      // As ipvsadm -E: scheduler, its flags and persistence are set from
      // the command line (defaults for what is left out); forwarding only
      // when given.
      command->service_fields = {"scheduler", "scheduler_flags", "persistence"};
      if (forwarding.has_value())
        command->service_fields.push_back("forwarding");
    }
    return absl::OkStatus();
  }

  absl::Status BuildServer(Command* command) const {
    const Occurrence* r = Find(Opt::kRealServer);
    if (r == nullptr) {
      return Usage(absl::StrCat(command->spelling,
                                " needs the real server: -r RIP[:PORT]"));
    }
    ASSIGN_OR_RETURN(HostAndPort hp, ParseHostPort(r->spelling, r->value));
    if (hp.address.is_v6() != vip_v6_) {
      return Usage(absl::StrCat(
          r->spelling, " ", r->value, ": the real server is IPv",
          hp.address.is_v6() ? "6" : "4", " but the service is IPv",
          vip_v6_ ? "6" : "4", "; use the same family"));
    }
    lb::v1::Backend& backend = command->backend;
    backend.set_address(hp.address.ToString());
    backend.set_port(hp.port);
    if (command->verb == Verb::kDeleteServer) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::optional<lb::v1::Forwarding> forwarding,
                     BuildForwarding());
    if (forwarding.has_value()) {
      *backend.mutable_forwarding() = *forwarding;
      command->backend_forwarding_given = true;
    }
    const Occurrence* w = Find(Opt::kWeight);
    if (w != nullptr) {
      ASSIGN_OR_RETURN(uint32_t weight, ParseNumber(w->spelling, w->value,
                                                    config::kMaxBackendWeight));
      backend.set_weight(weight);
    } else if (command->verb == Verb::kEditServer) {
      backend.set_weight(1);  // ipvsadm -e: weight 1 unless given
    }
    if (const Occurrence* x = Find(Opt::kUThreshold); x != nullptr) {
      ASSIGN_OR_RETURN(uint32_t upper,
                       ParseNumber(x->spelling, x->value, 0xffffffffu));
      backend.set_upper_threshold(upper);
    }
    if (const Occurrence* y = Find(Opt::kLThreshold); y != nullptr) {
      ASSIGN_OR_RETURN(uint32_t lower,
                       ParseNumber(y->spelling, y->value, 0xffffffffu));
      backend.set_lower_threshold(lower);
    }
    if (backend.upper_threshold() != 0 &&
        backend.lower_threshold() > backend.upper_threshold()) {
      return Usage(absl::StrCat("-y ", backend.lower_threshold(),
                                " is above -x ", backend.upper_threshold(),
                                ": the lower threshold must not exceed the "
                                "upper one"));
    }
    if (command->verb == Verb::kEditServer) {
      // As ipvsadm -e: weight, forwarding and thresholds are set from the
      // command line (weight 1, the service's forwarding, no thresholds
      // when left out).
      command->backend_fields = {"weight", "forwarding", "upper_threshold",
                                 "lower_threshold"};
    }
    return absl::OkStatus();
  }

  absl::Status BuildList(Command* command) const {
    ListOptions& list = command->list;
    list.numeric = Find(Opt::kNumeric) != nullptr;
    list.exact = Find(Opt::kExact) != nullptr;
    const Occurrence* columns = nullptr;
    for (Opt id : {Opt::kStats, Opt::kRate, Opt::kThresholds}) {
      const Occurrence* o = Find(id);
      if (o == nullptr) continue;
      if (columns != nullptr) {
        return Usage(absl::StrCat(columns->spelling, " and ", o->spelling,
                                  ": choose one"));
      }
      columns = o;
    }
    if (columns != nullptr) {
      list.columns = columns->id == Opt::kStats  ? ListColumns::kStats
                     : columns->id == Opt::kRate ? ListColumns::kRate
                                                 : ListColumns::kThresholds;
    }
    if (const Occurrence* o = Find(Opt::kRateInterval); o != nullptr) {
      if (list.columns != ListColumns::kRate) {
        return Usage("--rate-interval goes with --rate");
      }
      ASSIGN_OR_RETURN(list.rate_interval,
                       ParsePositiveDuration(o->spelling, o->value));
    }
    return absl::OkStatus();
  }

  const std::vector<Occurrence>& options_;
  bool vip_v6_ = false;
};

absl::Status ApplyGlobals(const std::vector<Occurrence>& options,
                          Invocation* invocation) {
  ConnectionOptions& connection = invocation->connection;
  for (const Occurrence& o : options) {
    switch (o.id) {
      case Opt::kController:
        if (o.value.empty()) {
          return Usage("--controller: give HOST:PORT (like 127.0.0.1:50051)");
        }
        connection.controller = o.value;
        break;
      case Opt::kCa:
        connection.ca_file = o.value;
        break;
      case Opt::kTokenFile:
        connection.token_file = o.value;
        break;
      case Opt::kInsecure:
        connection.insecure = true;
        break;
      case Opt::kTimeout: {
        ASSIGN_OR_RETURN(connection.timeout,
                         ParsePositiveDuration(o.spelling, o.value));
        break;
      }
      case Opt::kOutput:
        if (o.value == "json") {
          invocation->output = OutputFormat::kJson;
        } else if (o.value == "table") {
          invocation->output = OutputFormat::kTable;
        } else {
          return Usage(absl::StrCat(o.spelling, ": unknown format \"", o.value,
                                    "\"; one of table, json"));
        }
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

std::vector<Occurrence> WithoutGlobals(const std::vector<Occurrence>& all) {
  std::vector<Occurrence> out;
  for (const Occurrence& o : all) {
    if (!IsGlobal(o.id)) out.push_back(o);
  }
  return out;
}

constexpr std::array<const char*, 9> kSubcommands = {
    "apply",   "nodes",       "drain",
    "undrain", "status",      "help",
    "version", "node-weight", "node-local-addresses"};

// FirstWord: the first argument that is neither an option nor the value of
// a global option given as a separate word.
std::optional<size_t> FirstWord(const std::vector<std::string>& args) {
  Grammar globals(/*subcommand=*/true);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() > 1 && arg[0] == '-') {
      const OptSpec* spec = nullptr;
      if (absl::StartsWith(arg, "--")) {
        if (arg.find('=') == std::string::npos) {
          spec = globals.FindLong(absl::string_view(arg).substr(2));
        }
      } else if (arg.size() == 2) {
        spec = globals.FindShort(arg[1]);
      }
      if (spec != nullptr && IsGlobal(spec->id) &&
          spec->arg == Arg::kRequired) {
        ++i;
      }
      continue;
    }
    return i;
  }
  return std::nullopt;
}

absl::StatusOr<Invocation> ParseSubcommand(const std::vector<std::string>& args,
                                           Invocation invocation) {
  ASSIGN_OR_RETURN(Tokens tokens, Tokenize(args, Grammar(true)));
  RETURN_IF_ERROR(ApplyGlobals(tokens.options, &invocation));
  Command& command = invocation.command;
  const std::string word = tokens.positionals.front();
  command.spelling = word;
  std::vector<std::string> operands(tokens.positionals.begin() + 1,
                                    tokens.positionals.end());
  std::vector<Occurrence> own = WithoutGlobals(tokens.options);
  bool help = false;
  for (const Occurrence& o : own) {
    if (o.id == Opt::kHelp) help = true;
  }
  if (help || word == "help") {
    command.verb = Verb::kHelp;
    return invocation;
  }
  auto refuse_options = [&]() -> absl::Status {
    for (const Occurrence& o : own) {
      return Usage(absl::StrCat(o.spelling, " does not go with ", word));
    }
    return absl::OkStatus();
  };
  auto want_operands = [&](size_t n, absl::string_view what) -> absl::Status {
    if (operands.size() < n) {
      return Usage(absl::StrCat(word, " needs ", what));
    }
    if (operands.size() > n) {
      return Usage(
          absl::StrCat(word, ": unexpected argument \"", operands[n], "\""));
    }
    return absl::OkStatus();
  };
  if (word == "apply") {
    command.verb = Verb::kApply;
    for (const Occurrence& o : own) {
      if (o.id == Opt::kFile) {
        if (!command.file.empty()) return Usage("apply: -f is given twice");
        command.file = o.value;
      } else if (o.id == Opt::kDryRun) {
        command.dry_run = true;
      }
    }
    if (command.file.empty()) {
      return Usage(
          "apply needs -f FILE (services in lbnode's YAML format; "
          "- reads stdin)");
    }
    RETURN_IF_ERROR(want_operands(0, ""));
    return invocation;
  }
  RETURN_IF_ERROR(refuse_options());
  if (word == "nodes" || word == "status") {
    command.verb = word == "nodes" ? Verb::kNodes : Verb::kStatus;
    RETURN_IF_ERROR(want_operands(0, ""));
  } else if (word == "drain" || word == "undrain") {
    command.verb = word == "drain" ? Verb::kDrain : Verb::kUndrain;
    RETURN_IF_ERROR(
        want_operands(1, "the node's name (lbctl nodes lists them)"));
    command.node_name = operands[0];
  } else if (word == "node-weight") {
    command.verb = Verb::kNodeWeight;
    RETURN_IF_ERROR(want_operands(
        2, "the node's name and its weight (lbctl node-weight lb1 2)"));
    command.node_name = operands[0];
    ASSIGN_OR_RETURN(command.node_weight,
                     ParseNumber("node-weight", operands[1], 1000000));
  } else if (word == "node-local-addresses") {
    command.verb = Verb::kNodeLocal;
    if (operands.empty()) {
      return Usage(
          "node-local-addresses needs the node's name, then its FULLNAT "
          "prefixes (none clears them): lbctl node-local-addresses lb1 "
          "192.0.2.64/28");
    }
    command.node_name = operands[0];
    command.local_addresses.assign(operands.begin() + 1, operands.end());
  } else {  // version
    command.verb = Verb::kVersion;
    RETURN_IF_ERROR(want_operands(0, ""));
  }
  return invocation;
}

}  // namespace

absl::StatusOr<Invocation> ParseCommandLine(
    const std::vector<std::string>& args, const Environment& env) {
  Invocation invocation;
  if (auto it = env.find("LBCTL_CONTROLLER");
      it != env.end() && !it->second.empty()) {
    invocation.connection.controller = it->second;
  }
  if (auto it = env.find("LBCTL_CA"); it != env.end()) {
    invocation.connection.ca_file = it->second;
  }
  if (auto it = env.find("LBCTL_TOKEN_FILE"); it != env.end()) {
    invocation.connection.token_file = it->second;
  }
  std::optional<size_t> first = FirstWord(args);
  if (first.has_value()) {
    const std::string& word = args[*first];
    if (std::find(kSubcommands.begin(), kSubcommands.end(), word) !=
        kSubcommands.end()) {
      return ParseSubcommand(args, std::move(invocation));
    }
    if (word.empty() || (word[0] != '-' && *first == 0)) {
      return Usage(absl::StrCat(
          "unknown command \"", word,
          "\"; use ipvsadm's options (-A, -a, -L, ...) or one of apply, "
          "nodes, drain, undrain, node-weight, node-local-addresses, status "
          "(lbctl --help)"));
    }
  }
  ASSIGN_OR_RETURN(Tokens tokens, Tokenize(args, Grammar(false)));
  RETURN_IF_ERROR(ApplyGlobals(tokens.options, &invocation));
  if (!tokens.positionals.empty()) {
    return Usage(absl::StrCat("unexpected argument \"",
                              tokens.positionals.front(),
                              "\" (an option's value? see lbctl --help)"));
  }
  std::vector<Occurrence> own = WithoutGlobals(tokens.options);
  ASSIGN_OR_RETURN(invocation.command, Builder(own).Build());
  return invocation;
}

absl::StatusOr<Command> ParseRestoreLine(absl::string_view line) {
  std::vector<std::string> args =
      absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
  ASSIGN_OR_RETURN(Tokens tokens, Tokenize(args, Grammar(false)));
  if (!tokens.positionals.empty()) {
    return Usage(
        absl::StrCat("unexpected word \"", tokens.positionals.front(), "\""));
  }
  for (const Occurrence& o : tokens.options) {
    if (IsGlobal(o.id)) {
      return Usage(absl::StrCat(o.spelling,
                                " belongs on lbctl's command line, not in "
                                "restore input"));
    }
  }
  ASSIGN_OR_RETURN(Command command, Builder(tokens.options).Build());
  switch (command.verb) {
    case Verb::kAddService:
    case Verb::kEditService:
    case Verb::kDeleteService:
    case Verb::kAddServer:
    case Verb::kEditServer:
    case Verb::kDeleteServer:
    case Verb::kClear:
      return command;
    default:
      return Usage(absl::StrCat(
          tokens.options.empty() ? "-L" : command.spelling,
          " cannot be restored; restore lines are -A, -E, -D, -a, -e, -d, "
          "-C"));
  }
}

std::string UsageText() {
  return absl::StrCat(
      R"(lbctl: ipvsadm's command line against the anylb controller.

Virtual services (ipvsadm):
  lbctl -A|-E -t|-u VIP:PORT [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [-b FLAGS]
              [-g|-i|-m|--fullnat] [--tun-type ipip|gue] [--gue-port PORT]
  lbctl -D -t|-u VIP:PORT
  lbctl -C                            delete every service
  lbctl -a|-e -t|-u VIP:PORT -r RIP[:PORT] [-g|-i|-m|--fullnat] [-w WEIGHT]
              [-x UPPER] [-y LOWER]
  lbctl -d -t|-u VIP:PORT -r RIP[:PORT]
  lbctl -L|-l [-t|-u VIP:PORT] [-n] [--stats|--rate|--thresholds] [--exact]
              [--rate-interval 5s]
  lbctl -Z [-t|-u VIP:PORT]           zero the counters
  lbctl -S [-n]                       print the services as ipvsadm lines
  lbctl -R                            read such lines from stdin, in one change

  Schedulers (-s): )",
      SchedulerNames(), R"( (default mh).
  -b flags: sh-fallback, sh-port (with -s sh), mh-fallback, mh-port (-s mh).
  -p TIMEOUT in seconds (300 if left out); -M: IPv4 netmask or IPv6 prefix
  length. -g direct routing (default), -i tunnel (--tun-type ipip or gue),
  -m NAT, --fullnat: SNAT to the node's local addresses + DNAT.
  -E and -e set what ipvsadm's do: left-out options take their defaults.
  Long forms: --add-service --edit-service --delete-service --clear
  --add-server --edit-server --delete-server --list --zero --save --restore
  --tcp-service --udp-service --scheduler --persistent --netmask
  --sched-flags --real-server --gatewaying --ipip --masquerading --weight
  --u-threshold --l-threshold --numeric.

Fleet:
  lbctl apply -f FILE [--dry-run]     make the services those of FILE
                                      (lbnode's YAML); prints the diff
  lbctl nodes                         the directors and their state
  lbctl drain NODE | undrain NODE     move traffic away from / back to a node
  lbctl node-weight NODE WEIGHT       the node's share of traffic (WCMP:
                                      BGP link-bandwidth), 0..1000000
  lbctl node-local-addresses NODE [PREFIX...]
                                      the node's FULLNAT source prefixes
                                      (none: clear them)
  lbctl status                        which node forwards with which revision

Connection (also as environment variables):
  --controller=HOST:PORT   LBCTL_CONTROLLER   (default 127.0.0.1:50051)
  --ca=FILE                LBCTL_CA           CA certificate (PEM) of the
                                              controller; default: system roots
  --token_file=FILE        LBCTL_TOKEN_FILE   file holding the bearer token
  --insecure               plaintext (local trials only)
  --timeout=10s            per call
  -o json|table            output format (default table)

Exit status: 0 done, 1 the controller refused or could not be reached,
2 a bad command line.
)");
}

}  // namespace anylb::lbctl
