// lb_decap: decapsulates anylb TUN-mode traffic (IPIP, IP6IP6, GUE) on a
// real server whose kernel has no tunnel modules. See README.md.
//
//   lb_decap --interface=eth0 --mode=xdp|xdp-generic|tc
//       --local=198.51.100.2 [--local=2001:db8::2] [--gue_port=6080]
//
// Runs until SIGTERM or SIGINT, then detaches. SIGUSR1 prints the counters
// (as does exiting). --local and --gue_port may be repeated or given
// comma-separated lists.

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/bpf/decap_loader.h"

ABSL_FLAG(std::string, interface, "",
          "interface the tunnelled traffic arrives on");
ABSL_FLAG(std::string, mode, "tc",
          "where to decapsulate: xdp (native driver XDP), xdp-generic, or tc");
ABSL_FLAG(std::vector<std::string>, local, {},
          "this server's address that directors tunnel to (outer "
          "destination); repeat or comma-separate for several");
ABSL_FLAG(std::vector<std::string>, gue_port,
          {std::to_string(ANYLB_DECAP_DEFAULT_GUE_PORT)},
          "UDP destination port(s) carrying GUE; repeat or comma-separate");

namespace anylb::dataplane::bpf {
namespace {

// MergeRepeatedFlags rewrites argv so that every occurrence of the list
// flags --local and --gue_port ("--local=a", "--local a", also with a
// single dash) becomes one "--local=a,b" argument: absl's flags keep only
// the last occurrence, and operators naturally repeat these.
std::vector<std::string> MergeRepeatedFlags(int argc, char** argv) {
  const std::string kListFlags[] = {"local", "gue_port"};
  std::vector<std::string> out;
  std::vector<std::vector<std::string>> values(std::size(kListFlags));
  for (int i = 0; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      for (; i < argc; ++i) out.emplace_back(argv[i]);
      break;
    }
    bool merged = false;
    for (size_t f = 0; f < std::size(kListFlags) && i > 0; ++f) {
      for (const char* dashes : {"--", "-"}) {
        std::string name = dashes + kListFlags[f];
        if (arg == name && i + 1 < argc) {
          values[f].emplace_back(argv[++i]);
          merged = true;
        } else if (arg.substr(0, name.size() + 1) == name + "=") {
          values[f].emplace_back(arg.substr(name.size() + 1));
          merged = true;
        }
        if (merged) break;
      }
      if (merged) break;
    }
    if (!merged) out.emplace_back(arg);
  }
  for (size_t f = 0; f < std::size(kListFlags); ++f) {
    if (!values[f].empty()) {
      out.insert(out.begin() + 1, absl::StrCat("--", kListFlags[f], "=",
                                               absl::StrJoin(values[f], ",")));
    }
  }
  return out;
}

absl::StatusOr<uint16_t> ParsePort(const std::string& text) {
  uint32_t port = 0;
  if (!absl::SimpleAtoi(text, &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --gue_port \"", text, "\": want 1..65535"));
  }
  return static_cast<uint16_t>(port);
}

void PrintCounters(const DecapProgram& decap) {
  absl::StatusOr<DecapCounters> counters = decap.ReadCounters();
  if (!counters.ok()) {
    std::fprintf(stderr, "lb_decap: %s\n",
                 counters.status().ToString().c_str());
    return;
  }
  std::printf("%s", counters->ToString().c_str());
  std::fflush(stdout);
}

absl::Status Run() {
  const std::string interface = absl::GetFlag(FLAGS_interface);
  if (interface.empty()) {
    return absl::InvalidArgumentError("--interface is required");
  }
  ASSIGN_OR_RETURN(DecapMode mode, ParseDecapMode(absl::GetFlag(FLAGS_mode)));
  std::vector<IpAddress> locals;
  for (const std::string& text : absl::GetFlag(FLAGS_local)) {
    ASSIGN_OR_RETURN(IpAddress address, IpAddress::Parse(text));
    locals.push_back(address);
  }
  if (locals.empty()) {
    return absl::InvalidArgumentError(
        "at least one --local address is required (the address directors "
        "tunnel to)");
  }
  std::vector<uint16_t> ports;
  for (const std::string& text : absl::GetFlag(FLAGS_gue_port)) {
    ASSIGN_OR_RETURN(uint16_t port, ParsePort(text));
    ports.push_back(port);
  }

  // Signals are taken synchronously with sigwait(): block them first, so
  // none arrives before we wait for it.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  if (int error = pthread_sigmask(SIG_BLOCK, &signals, nullptr); error != 0) {
    return absl::InternalError("pthread_sigmask failed");
  }

  ASSIGN_OR_RETURN(std::unique_ptr<DecapProgram> decap, DecapProgram::Load());
  for (const IpAddress& address : locals) {
    RETURN_IF_ERROR(decap->AddLocalAddress(address));
  }
  for (uint16_t port : ports) RETURN_IF_ERROR(decap->AddGuePort(port));
  RETURN_IF_ERROR(decap->Attach(interface, mode));

  std::vector<std::string> local_texts;
  local_texts.reserve(locals.size());
  for (const IpAddress& address : locals) {
    local_texts.push_back(address.ToString());
  }
  std::printf(
      "lb_decap: decapsulating on %s (%s) for %s; GUE ports %s. "
      "SIGUSR1 prints counters, SIGTERM/SIGINT stop.\n",
      interface.c_str(), std::string(DecapModeName(mode)).c_str(),
      absl::StrJoin(local_texts, ", ").c_str(),
      absl::StrJoin(ports, ", ").c_str());
  std::fflush(stdout);

  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGUSR1) {
      PrintCounters(*decap);
      continue;
    }
    break;
  }
  absl::Status detached = decap->DetachAll();
  std::printf("lb_decap: detached from %s; final counters:\n",
              interface.c_str());
  PrintCounters(*decap);
  return detached;
}

}  // namespace
}  // namespace anylb::dataplane::bpf

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "decapsulates anylb TUN traffic (IPIP, IP6IP6, GUE) on a real server\n"
      "  lb_decap --interface=eth0 --mode=xdp|xdp-generic|tc "
      "--local=ADDRESS [--local=ADDRESS] [--gue_port=6080]");
  std::vector<std::string> args =
      anylb::dataplane::bpf::MergeRepeatedFlags(argc, argv);
  std::vector<char*> arg_pointers;
  arg_pointers.reserve(args.size());
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  absl::ParseCommandLine(static_cast<int>(arg_pointers.size()),
                         arg_pointers.data());
  absl::Status status = anylb::dataplane::bpf::Run();
  if (!status.ok()) {
    const std::string message(status.message());
    std::fprintf(stderr, "lb_decap: %s\n", message.c_str());
    return 1;
  }
  return 0;
}
