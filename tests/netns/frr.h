// FRRouting daemons inside lab namespaces, and the kernel routes they make
// (test-only).
//
//   ASSERT_OK_AND_ASSIGN(auto router, Netns::Create("router"));
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<FrrInstance> frr,
//                        FrrInstance::Start({.netns = router->name(),
//                                            .dir = FrrDir("router"),
//                                            .config = "router bgp
//                                            65000\n..."}));
//   ASSERT_OK_AND_ASSIGN(std::string out, frr->Vtysh({"show bgp summary"}));
//   ASSERT_OK_AND_ASSIGN(std::vector<KernelNextHop> hops,
//                        ReadKernelRoute(router->name(), "192.0.2.100/32"));
//
// Each FrrInstance is one FRR "installation" of its own: its daemons run in
// one namespace (`ip netns exec`), and everything they read or write — the
// integrated frr.conf, pid files, the zserv socket, the vty sockets and one
// log per daemon — lives in one directory, so any number of instances run
// side by side without touching /etc/frr or /var/run/frr. The daemons drop
// privileges to user frr as packaged, so the directory is made owned by frr
// (its parents must be searchable by others: use FrrDir(), under /tmp; Bazel's
// TEST_TMPDIR under /root is not).
//
// Ownership: the FrrInstance owns its daemons (started with -d, found again
// by their pid files) and stops them in its destructor (SIGTERM, then SIGKILL)
// — also when Start() fails half-way. It removes the directory if Start()
// created it (and `remove_dir` is set). The namespace's owner (Netns) kills
// whatever is left in the namespace anyway.
//
// Threads: an instance is used from one thread at a time. Vtysh() and
// ReadKernelRoute() only run commands and may run concurrently.
//
// Needs root (namespaces; the daemons start as root and drop to frr). FRR
// 8.4 as packaged by Debian: daemons in /usr/lib/frr, vtysh in /usr/bin.

#ifndef ANYLB_TESTS_NETNS_FRR_H_
#define ANYLB_TESTS_NETNS_FRR_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::lab {

// FrrOptions says where and how an FrrInstance runs.
struct FrrOptions {
  // netns is the namespace the daemons run in (a Netns's name()).
  std::string netns;
  // dir holds the config, pid files, zserv socket, vty sockets and logs. It is
  // created if missing and chowned to frr.
  std::string dir;
  // config is the frr.conf text, written to dir/frr.conf. Every daemon reads
  // its own sections of it (FRR's integrated config).
  std::string config;
  // daemons are started in this order (zebra first); also "ospfd",
  // "ospf6d", "bfdd", "staticd".
  std::vector<std::string> daemons = {"zebra", "bgpd"};
  // zebra_modules are loaded by zebra: {"dplane_fpm_nl"} → "-M dplane_fpm_nl".
  std::vector<std::string> zebra_modules;
  // remove_dir: the destructor deletes `dir` if Start() created it. Set false
  // to keep the logs for a post-mortem.
  bool remove_dir = true;
};

// FrrInstance: FRR daemons in one namespace; see the file comment.
class FrrInstance {
 public:
  // Start writes dir/frr.conf, starts options.daemons in order, each
  // waited for until its vty socket and pid file exist (zebra also its zserv
  // socket), then loads frr.conf into them with `vtysh -b`, as FRR's init
  // script does with an integrated config (a `frr defaults PROFILE` line
  // also becomes the daemons' -F). A line FRR refuses is an INVALID_ARGUMENT
  // error quoting vtysh (line number and text). Other errors name the daemon
  // and quote its output and log.
  static absl::StatusOr<std::unique_ptr<FrrInstance>> Start(FrrOptions options);

  FrrInstance(const FrrInstance&) = delete;
  FrrInstance& operator=(const FrrInstance&) = delete;
  // ~FrrInstance stops every daemon (SIGTERM, then SIGKILL after 3 s).
  ~FrrInstance();

  // Vtysh runs vtysh against this instance's vty sockets, one `-c` per
  // command ("configure terminal", "router bgp 65001", ...), and returns its
  // output. A failing command is an error whose message is vtysh's output.
  absl::StatusOr<std::string> Vtysh(const std::vector<std::string>& commands);

  // StopDaemon stops one running daemon ("zebra", "bgpd", ...): SIGTERM,
  // then SIGKILL after 3 s. NOT_FOUND if it is not running.
  absl::Status StopDaemon(const std::string& daemon);

  // KillDaemon sends SIGKILL to one running daemon and waits for it to go
  // (a crash, as opposed to StopDaemon's orderly shutdown).
  absl::Status KillDaemon(const std::string& daemon);

  // StartDaemon starts one daemon (again) with this instance's options and
  // loads its part of frr.conf. FAILED_PRECONDITION if it is running.
  absl::Status StartDaemon(const std::string& daemon);

  // DaemonPid returns the pid of a running daemon (NOT_FOUND if it is not).
  absl::StatusOr<pid_t> DaemonPid(const std::string& daemon) const;

  // vty_dir is the directory holding the vty sockets: vtysh's and lbnode's
  // --vty_socket / --frr_vty_socket.
  const std::string& vty_dir() const { return options_.dir; }
  const std::string& netns() const { return options_.netns; }

  // LogTail returns the last `lines` lines of every daemon's log (and of its
  // start-up output), each headed by its file name: for failure messages.
  std::string LogTail(size_t lines) const;

 private:
  explicit FrrInstance(FrrOptions options) : options_(std::move(options)) {}

  std::string PidFile(const std::string& daemon) const;
  // LaunchDaemon starts the process with an empty config and waits for it.
  absl::Status LaunchDaemon(const std::string& daemon);
  // ApplyConfig loads dir/frr.conf with `vtysh -b` into `daemon` (all if
  // empty). INVALID_ARGUMENT quoting vtysh's line numbers if FRR refuses a
  // line.
  absl::Status ApplyConfig(const std::string& daemon);
  absl::Status Stop(const std::string& daemon, int signal,
                    absl::Duration grace);

  FrrOptions options_;
  bool created_dir_ = false;
  std::vector<std::string> started_;  // Daemons started by us, in order.
};

// FrrDir returns a fresh directory name for an FrrInstance,
// "/tmp/anylb-frr-<tag>-<pid>-<n>" (not created yet). Directories of that
// form left by processes that no longer exist are removed on the first call.
std::string FrrDir(std::string_view tag);

// ExpandFrrTemplate replaces every "{{NAME}}" in `text` by values[NAME]
// (deploy/frr/*.conf are such templates). INVALID_ARGUMENT naming the
// placeholder when one has no value, or naming the value when one is unused.
absl::StatusOr<std::string> ExpandFrrTemplate(
    std::string_view text, const std::map<std::string, std::string>& values);

// ReadFrrTemplate reads the template at `path` and expands it; errors name
// the file.
absl::StatusOr<std::string> ReadFrrTemplate(
    const std::string& path, const std::map<std::string, std::string>& values);

// KernelNextHop is one next hop of a kernel route.
struct KernelNextHop {
  std::string gateway;  // Empty for an on-link route.
  std::string dev;
  int weight = 1;  // As `ip route` shows it (1..256).

  friend bool operator==(const KernelNextHop&, const KernelNextHop&) = default;
};

// ReadKernelRoute runs `ip -j route show PREFIX` (`ip -6` for IPv6) in the
// main table of namespace `netns` and returns the route's next hops (one
// entry for a single-path route); empty when there is no such route. With
// several routes for the prefix (different metrics), the first one listed,
// i.e. the preferred one. INVALID_ARGUMENT for a malformed prefix.
absl::StatusOr<std::vector<KernelNextHop>> ReadKernelRoute(
    const std::string& netns, const std::string& prefix);

// WaitForKernelRoute polls ReadKernelRoute every 20 ms until `done` accepts
// the next hops, and returns them; DEADLINE_EXCEEDED (quoting the last next
// hops seen) after `timeout`.
absl::StatusOr<std::vector<KernelNextHop>> WaitForKernelRoute(
    const std::string& netns, const std::string& prefix,
    const std::function<bool(const std::vector<KernelNextHop>&)>& done,
    absl::Duration timeout);

// FormatNextHops renders next hops the way `ip route` does, on one line:
// "via 192.0.2.2 dev r-d1 weight 1; via ...", or "(no route)".
std::string FormatNextHops(const std::vector<KernelNextHop>& hops);

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_FRR_H_
