#include "tests/netns/frr.h"

#include <dirent.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/netns/netns.h"

namespace anylb::lab {
namespace {

constexpr char kFrrBin[] = "/usr/lib/frr";
constexpr char kVtysh[] = "/usr/bin/vtysh";
constexpr absl::Duration kStartTimeout = absl::Seconds(10);
constexpr absl::Duration kStopGrace = absl::Seconds(3);

absl::string_view Absl(std::string_view text) {
  return {text.data(), text.size()};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Alive says whether `pid` is a live (not zombie) process whose command name
// is `comm`. Daemons started with -d are not our children: once dead they
// may linger as zombies of a pid 1 that does not reap.
bool Alive(pid_t pid, std::string_view comm) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  size_t close = stat.rfind(')');
  size_t open = stat.find('(');
  if (close == std::string::npos || open == std::string::npos ||
      close + 2 >= stat.size()) {
    return false;
  }
  if (stat[close + 2] == 'Z' || stat[close + 2] == 'X') return false;
  return stat.substr(open + 1, close - open - 1) == comm.substr(0, 15);
}

std::string LastLines(const std::string& text, size_t lines) {
  absl::string_view view = absl::StripTrailingAsciiWhitespace(text);
  size_t start = view.size();
  for (size_t seen = 0; start > 0; --start) {
    if (view[start - 1] == '\n' && ++seen == lines) break;
  }
  return std::string(view.substr(start));
}

bool KnownDaemon(const std::string& daemon) {
  static constexpr std::string_view kDaemons[] = {
      "zebra", "bgpd", "ospfd", "ospf6d", "bfdd", "staticd", "ripd", "isisd"};
  return std::find(std::begin(kDaemons), std::end(kDaemons), daemon) !=
         std::end(kDaemons);
}

// FrrDirPrefix is FrrDir()'s prefix under /tmp.
constexpr char kFrrDirPrefix[] = "anylb-frr-";

// ReapStaleFrrDirs removes /tmp/anylb-frr-<tag>-<pid>-<n> of dead pids.
void ReapStaleFrrDirs() {
  DIR* tmp = opendir("/tmp");
  if (tmp == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(tmp)) {
    absl::string_view name = entry->d_name;
    if (!absl::StartsWith(name, kFrrDirPrefix)) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(name, '-');
    int pid;
    if (parts.size() < 5 || !absl::SimpleAtoi(parts[parts.size() - 2], &pid) ||
        pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) {
      continue;
    }
    stale.emplace_back(name);
  }
  closedir(tmp);
  for (const std::string& name : stale) {
    (void)RunCommand(absl::StrCat("rm -rf ", ShellQuote("/tmp/" + name)));
  }
}

// JSON helpers over google.protobuf.Value (ip -j output).
std::string StringField(const google::protobuf::Struct& object,
                        const std::string& key) {
  auto it = object.fields().find(key);
  if (it == object.fields().end() || !it->second.has_string_value()) return "";
  return it->second.string_value();
}

int WeightField(const google::protobuf::Struct& object) {
  auto it = object.fields().find("weight");
  if (it == object.fields().end() || !it->second.has_number_value()) return 1;
  return static_cast<int>(it->second.number_value());
}

}  // namespace

std::string FrrDir(std::string_view tag) {
  static std::once_flag reaped;
  std::call_once(reaped, ReapStaleFrrDirs);
  static std::atomic<int> counter{0};
  return absl::StrCat("/tmp/", kFrrDirPrefix, Absl(tag), "-", getpid(), "-",
                      counter++);
}

absl::StatusOr<std::unique_ptr<FrrInstance>> FrrInstance::Start(
    FrrOptions options) {
  if (options.netns.empty()) {
    return absl::InvalidArgumentError(
        "FrrOptions.netns is empty: name the namespace the daemons run in");
  }
  if (options.dir.empty() || options.dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("FrrOptions.dir \"", options.dir,
                     "\" must be an absolute path (use FrrDir(\"tag\"))"));
  }
  if (options.daemons.empty()) {
    return absl::InvalidArgumentError("FrrOptions.daemons is empty");
  }
  for (const std::string& daemon : options.daemons) {
    if (!KnownDaemon(daemon)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown FRR daemon \"", daemon,
          "\" in FrrOptions.daemons (zebra, bgpd, ospfd, ospf6d, bfdd, "
          "staticd, ripd, isisd)"));
    }
    std::string binary = absl::StrCat(kFrrBin, "/", daemon);
    if (access(binary.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(binary, " is missing: install FRR (deploy/setup.sh)"));
    }
  }
  if (geteuid() != 0) {
    return absl::PermissionDeniedError(
        "starting FRR daemons in a namespace needs root: run the test as root "
        "(deploy/test.sh)");
  }
  passwd* frr = getpwnam("frr");
  if (frr == nullptr) {
    return absl::FailedPreconditionError(
        "user \"frr\" does not exist: install FRR (deploy/setup.sh)");
  }

  std::unique_ptr<FrrInstance> instance(new FrrInstance(std::move(options)));
  const FrrOptions& opts = instance->options_;
  if (!Exists(opts.dir)) {
    if (mkdir(opts.dir.c_str(), 0755) != 0) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("creating FRR dir ", opts.dir));
    }
    instance->created_dir_ = true;
  }
  if (chown(opts.dir.c_str(), frr->pw_uid, frr->pw_gid) != 0 ||
      chmod(opts.dir.c_str(), 0755) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("giving FRR dir ", opts.dir, " to user frr"));
  }
  // The daemons write pid files and sockets there as frr.
  if (!RunCommand(absl::StrCat("runuser -u frr -- test -w ",
                               ShellQuote(opts.dir), " -a -x ",
                               ShellQuote(opts.dir)))
           .ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "FRR dir ", opts.dir,
        " is not writable by user frr: one of its parents is not searchable "
        "by others (use FrrDir(), under /tmp)"));
  }
  std::string config_path = opts.dir + "/frr.conf";
  {
    std::ofstream out(config_path, std::ios::trunc);
    out << opts.config;
    if (!opts.config.empty() && opts.config.back() != '\n') out << '\n';
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("writing ", config_path));
    }
  }
  if (chown(config_path.c_str(), frr->pw_uid, frr->pw_gid) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("chown frr ", config_path));
  }
  // vtysh -b warns without its own config file.
  {
    std::ofstream out(opts.dir + "/vtysh.conf", std::ios::trunc);
    out << "service integrated-vtysh-config\n";
  }
  for (const std::string& daemon : opts.daemons) {
    RETURN_IF_ERROR(instance->LaunchDaemon(daemon));
  }
  RETURN_IF_ERROR(instance->ApplyConfig(""));
  return instance;
}

FrrInstance::~FrrInstance() {
  for (auto it = started_.rbegin(); it != started_.rend(); ++it) {
    (void)Stop(*it, SIGTERM, kStopGrace);
  }
  if (created_dir_ && options_.remove_dir) {
    (void)RunCommand(absl::StrCat("rm -rf ", ShellQuote(options_.dir)));
  }
}

std::string FrrInstance::PidFile(const std::string& daemon) const {
  return absl::StrCat(options_.dir, "/", daemon, ".pid");
}

absl::StatusOr<pid_t> FrrInstance::DaemonPid(const std::string& daemon) const {
  std::string text = ReadFile(PidFile(daemon));
  int pid;
  if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid) && pid > 0 &&
      Alive(pid, daemon)) {
    return static_cast<pid_t>(pid);
  }
  return absl::NotFoundError(absl::StrCat(
      daemon, " is not running in ", options_.netns, " (", options_.dir, ")"));
}

absl::Status FrrInstance::StartDaemon(const std::string& daemon) {
  RETURN_IF_ERROR(LaunchDaemon(daemon));
  return ApplyConfig(daemon);
}

absl::Status FrrInstance::ApplyConfig(const std::string& daemon) {
  // What frrinit.sh does at boot with an integrated config: vtysh splits
  // frr.conf and hands each daemon its own lines.
  std::string command =
      absl::StrCat(kVtysh, " --vty_socket ", ShellQuote(options_.dir),
                   " --config_dir ", ShellQuote(options_.dir), " -b");
  if (!daemon.empty()) absl::StrAppend(&command, " -d ", ShellQuote(daemon));
  absl::StrAppend(&command, " 2>&1; echo \"vtysh-exit=$?\"");
  ASSIGN_OR_RETURN(std::string out, RunCommand(command));
  absl::string_view view = absl::StripTrailingAsciiWhitespace(out);
  size_t marker = view.rfind("vtysh-exit=");
  if (marker == absl::string_view::npos ||
      view.substr(marker) != "vtysh-exit=0") {
    return absl::InvalidArgumentError(absl::StrCat(
        "FRR in ", options_.netns, " refused lines of ", options_.dir,
        "/frr.conf", daemon.empty() ? "" : absl::StrCat(" (", daemon, ")"),
        ": ", absl::StripTrailingAsciiWhitespace(view.substr(0, marker))));
  }
  return absl::OkStatus();
}

absl::Status FrrInstance::LaunchDaemon(const std::string& daemon) {
  if (!KnownDaemon(daemon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown FRR daemon \"", daemon, "\""));
  }
  if (DaemonPid(daemon).ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        daemon, " is already running in ", options_.netns, " (stop it first)"));
  }
  const std::string& dir = options_.dir;
  std::string vty_socket = absl::StrCat(dir, "/", daemon, ".vty");
  std::string zserv = dir + "/zserv.api";
  // Left behind by a killed daemon; their presence is our readiness signal.
  unlink(vty_socket.c_str());
  unlink(PidFile(daemon).c_str());
  if (daemon == "zebra") unlink(zserv.c_str());

  std::string out_path = absl::StrCat(dir, "/", daemon, ".out");
  std::string command = absl::StrCat(
      "ip netns exec ", ShellQuote(options_.netns), " ", kFrrBin, "/", daemon,
      " -d -f /dev/null -i ", ShellQuote(PidFile(daemon)), " -z ",
      ShellQuote(zserv), " --vty_socket ", ShellQuote(dir), " -P 0 --log ",
      ShellQuote(absl::StrCat("file:", dir, "/", daemon, ".log")));
  // `frr defaults PROFILE` is a start-up setting: /etc/frr/daemons passes
  // it as -F (frr_profile); do the same.
  for (absl::string_view line : absl::StrSplit(options_.config, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "frr defaults ")) {
      absl::StrAppend(
          &command, " -F ",
          ShellQuote(std::string(absl::StripAsciiWhitespace(line))));
      break;
    }
  }
  if (daemon == "zebra") {
    for (const std::string& module : options_.zebra_modules) {
      absl::StrAppend(&command, " -M ", ShellQuote(module));
    }
  }
  absl::StrAppend(&command, " </dev/null >>", ShellQuote(out_path), " 2>&1");
  absl::StatusOr<std::string> ran = RunCommand(command);
  if (!ran.ok()) {
    return absl::InternalError(absl::StrCat(
        "starting ", daemon, " in ", options_.netns, " failed: ",
        ran.status().message(), "\n", LastLines(ReadFile(out_path), 20), "\n",
        LastLines(ReadFile(absl::StrCat(dir, "/", daemon, ".log")), 20)));
  }
  started_.push_back(daemon);
  absl::Time deadline = absl::Now() + kStartTimeout;
  while (true) {
    bool ready = Exists(vty_socket) && DaemonPid(daemon).ok() &&
                 (daemon != "zebra" || Exists(zserv));
    if (ready) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          daemon, " in ", options_.netns, " did not come up within ",
          absl::FormatDuration(kStartTimeout), " (no ", vty_socket,
          " or pid file); its output and log:\n", LogTail(20)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status FrrInstance::Stop(const std::string& daemon, int signal,
                               absl::Duration grace) {
  ASSIGN_OR_RETURN(pid_t pid, DaemonPid(daemon));
  kill(pid, signal);
  absl::Time deadline = absl::Now() + grace;
  while (Alive(pid, daemon) && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (Alive(pid, daemon)) {
    kill(pid, SIGKILL);
    absl::Time kill_deadline = absl::Now() + absl::Seconds(2);
    while (Alive(pid, daemon) && absl::Now() < kill_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (Alive(pid, daemon)) {
    return absl::InternalError(absl::StrCat(
        daemon, " (pid ", pid, ") in ", options_.netns, " survived SIGKILL"));
  }
  return absl::OkStatus();
}

absl::Status FrrInstance::StopDaemon(const std::string& daemon) {
  return Stop(daemon, SIGTERM, kStopGrace);
}

absl::Status FrrInstance::KillDaemon(const std::string& daemon) {
  return Stop(daemon, SIGKILL, absl::Seconds(2));
}

absl::StatusOr<std::string> FrrInstance::Vtysh(
    const std::vector<std::string>& commands) {
  std::string command =
      absl::StrCat(kVtysh, " --vty_socket ", ShellQuote(options_.dir));
  for (const std::string& c : commands) {
    absl::StrAppend(&command, " -c ", ShellQuote(c));
  }
  // vtysh prints its errors ("% Unknown command") on stdout or stderr; keep
  // both, in order, and the exit status apart.
  absl::StrAppend(&command, " 2>&1; echo \"vtysh-exit=$?\"");
  ASSIGN_OR_RETURN(std::string out, RunCommand(command));
  absl::string_view view = absl::StripTrailingAsciiWhitespace(out);
  size_t marker = view.rfind("vtysh-exit=");
  if (marker == absl::string_view::npos) {
    return absl::InternalError(
        absl::StrCat("vtysh gave no exit status: ", out));
  }
  int exit_status = -1;
  (void)absl::SimpleAtoi(view.substr(marker + 11), &exit_status);
  std::string output(view.substr(0, marker));
  if (exit_status != 0) {
    return absl::InternalError(absl::StrCat(
        "vtysh in ", options_.netns, " (", absl::StrJoin(commands, "; "),
        ") failed (exit ", exit_status,
        "): ", absl::StripTrailingAsciiWhitespace(output)));
  }
  return output;
}

std::string FrrInstance::LogTail(size_t lines) const {
  std::string result;
  for (const std::string& daemon : options_.daemons) {
    for (const char* suffix : {".out", ".log"}) {
      std::string path = absl::StrCat(options_.dir, "/", daemon, suffix);
      std::string text = ReadFile(path);
      if (text.empty()) continue;
      absl::StrAppend(&result, "==> ", path, " <==\n", LastLines(text, lines),
                      "\n");
    }
  }
  return result;
}

absl::StatusOr<std::string> ExpandFrrTemplate(
    std::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  std::set<std::string> used;
  size_t pos = 0;
  while (true) {
    size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) break;
    size_t close = text.find("}}", open);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unterminated \"{{\" at offset ", open));
    }
    std::string name(text.substr(open + 2, close - open - 2));
    auto it = values.find(name);
    if (it == values.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("placeholder {{", name, "}} has no value"));
    }
    used.insert(name);
    absl::StrAppend(&out, Absl(text.substr(pos, open - pos)), it->second);
    pos = close + 2;
  }
  absl::StrAppend(&out, Absl(text.substr(pos)));
  for (const auto& [name, value] : values) {
    if (!used.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "value for ", name, " given but the template has no {{", name, "}}"));
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadFrrTemplate(
    const std::string& path, const std::map<std::string, std::string>& values) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read template ", path));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<std::string> expanded =
      ExpandFrrTemplate(buffer.str(), values);
  if (!expanded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", expanded.status().message()));
  }
  return expanded;
}

absl::StatusOr<std::vector<KernelNextHop>> ReadKernelRoute(
    const std::string& netns, const std::string& prefix) {
  if (prefix.empty() || prefix.find_first_not_of("0123456789abcdefABCDEF.:/") !=
                            std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReadKernelRoute: \"", prefix,
        "\" is not a prefix (\"192.0.2.100/32\", \"2001:db8::1/128\")"));
  }
  bool v6 = prefix.find(':') != std::string::npos;
  ASSIGN_OR_RETURN(
      std::string json,
      RunCommand(absl::StrCat("ip -n ", ShellQuote(netns), v6 ? " -6" : " -4",
                              " -j route show table main ", prefix)));
  std::vector<KernelNextHop> hops;
  if (absl::StripAsciiWhitespace(json).empty()) return hops;
  google::protobuf::ListValue routes;
  // ip -j prints a bare array; ListValue's JSON form is exactly that.
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &routes);
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("parsing `ip -j route show ",
                                            prefix, "` in ", netns, ": ",
                                            parsed.ToString(), ": ", json));
  }
  if (routes.values_size() == 0) return hops;
  const google::protobuf::Struct& route = routes.values(0).struct_value();
  auto nexthops = route.fields().find("nexthops");
  if (nexthops != route.fields().end() && nexthops->second.has_list_value()) {
    for (const google::protobuf::Value& hop :
         nexthops->second.list_value().values()) {
      hops.push_back({.gateway = StringField(hop.struct_value(), "gateway"),
                      .dev = StringField(hop.struct_value(), "dev"),
                      .weight = WeightField(hop.struct_value())});
    }
  } else {
    hops.push_back({.gateway = StringField(route, "gateway"),
                    .dev = StringField(route, "dev"),
                    .weight = 1});
  }
  return hops;
}

absl::StatusOr<std::vector<KernelNextHop>> WaitForKernelRoute(
    const std::string& netns, const std::string& prefix,
    const std::function<bool(const std::vector<KernelNextHop>&)>& done,
    absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<KernelNextHop> hops,
                     ReadKernelRoute(netns, prefix));
    if (done(hops)) return hops;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the route to ", prefix, " in ", netns,
                       " did not reach the expected state within ",
                       absl::FormatDuration(timeout),
                       "; last seen: ", FormatNextHops(hops)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string FormatNextHops(const std::vector<KernelNextHop>& hops) {
  if (hops.empty()) return "(no route)";
  std::vector<std::string> parts;
  for (const KernelNextHop& hop : hops) {
    std::string part;
    if (!hop.gateway.empty()) absl::StrAppend(&part, "via ", hop.gateway, " ");
    absl::StrAppend(&part, "dev ", hop.dev, " weight ", hop.weight);
    parts.push_back(std::move(part));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace anylb::lab
