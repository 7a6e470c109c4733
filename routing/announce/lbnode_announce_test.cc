// lbnode itself with --announce, in a namespace with zebra, bgpd and ospfd:
// it starts, its VIP reaches BGP with the link bandwidth of node.weight and
// the service's community; GET /admin/announce and /metrics say so;
// POST /admin/drain lowers the weight (GSHUT, 1 Mbit/s) and withdraws after
// node.drain_period; POST /admin/undrain restores; a new weight by SIGHUP; a
// worker thread stopped with ptrace (a real stall, no hook in lbnode) withdraws
// the VIP within
// --liveness_timeout and it returns when the worker runs; kill -9 of
// lbnode removes the device, and BGP withdraws. (Multi-node routing with a
// router is tests/integration/routing_test.) Needs root (tags local, netns).

#include <dirent.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/netns/frr.h"
#include "tests/netns/netns.h"
#include "tests/netns/nginx_server.h"

namespace anylb {
namespace {

using ::anylb::lab::FrrDir;
using ::anylb::lab::FrrInstance;
using ::anylb::lab::Netns;
using ::anylb::lab::Process;
using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;

constexpr char kFrrConfig[] =
    "frr defaults traditional\n"
    "hostname lbnode-announce\n"
    "bgp route-map delay-timer 1\n"
    "router bgp 65001\n"
    " bgp router-id 192.0.2.2\n"
    " address-family ipv4 unicast\n"
    "  redistribute kernel route-map ANYLB-BGP\n"
    " exit-address-family\n"
    " address-family ipv6 unicast\n"
    "  redistribute kernel route-map ANYLB-BGP\n"
    " exit-address-family\n"
    "exit\n"
    "router ospf\n"
    " ospf router-id 192.0.2.2\n"
    " redistribute kernel route-map ANYLB-OSPF\n"
    "exit\n";

constexpr char kLbnodeConfig[] =
    "revision: 1\n"
    "node:\n"
    "  node_name: lb1\n"
    "  weight: 30\n"
    "  drain_period: 2s\n"
    "services:\n"
    "  - name: web\n"
    "    vip: 192.0.2.10\n"
    "    port: 80\n"
    "    protocol: tcp\n"
    "    scheduler: mh\n"
    "    forwarding: {mode: dr}\n"
    "    bgp_communities: [\"65000:7\"]\n"
    "    backends:\n"
    "      - address: 192.0.2.20\n";

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/anylb/", path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// IdleSeconds reads anylb_dataplane_idle_seconds from a /metrics page
// (-1 if absent).
double IdleSeconds(const std::string& page) {
  const std::string name = "\nanylb_dataplane_idle_seconds ";
  size_t at = page.find(name);
  if (at == std::string::npos) return -1;
  size_t end = page.find('\n', at + name.size());
  double value = -1;
  if (!absl::SimpleAtod(page.substr(at + name.size(), end - at - name.size()),
                        &value)) {
    return -1;
  }
  return value;
}

// Threads lists the thread ids of `pid` but the main thread.
std::vector<pid_t> Threads(pid_t pid) {
  std::vector<pid_t> out;
  std::string path = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    int tid = 0;
    if (absl::SimpleAtoi(e->d_name, &tid) && tid != pid) out.push_back(tid);
  }
  closedir(dir);
  return out;
}

// StalledThread stops one thread of another process with ptrace (the
// others keep running): a real stall, with no hook in lbnode. Detaches
// (the thread runs on) when destroyed. Use it from one thread.
class StalledThread {
 public:
  static std::unique_ptr<StalledThread> Stop(pid_t tid) {
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) return nullptr;
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
      ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
      return nullptr;
    }
    int status = 0;
    if (waitpid(tid, &status, __WALL) != tid) return nullptr;
    return std::unique_ptr<StalledThread>(new StalledThread(tid));
  }
  ~StalledThread() { ptrace(PTRACE_DETACH, tid_, nullptr, nullptr); }
  pid_t tid() const { return tid_; }

 private:
  explicit StalledThread(pid_t tid) : tid_(tid) {}
  pid_t tid_;
};

TEST(LbnodeAnnounce, AnnouncesDrainsStallsAndWithdrawsWhenKilled) {
  ASSERT_EQ(geteuid(), 0u)
      << "routing/announce:lbnode_announce_test needs root (namespaces, "
         "XDP, TUN, FRR): run it as root";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> ns, Netns::Create("lbann"));
  ASSERT_THAT(ns->Run("ip link add eth0 type veth peer name eth1 && "
                      "ip addr add 192.0.2.2/24 dev eth0 && "
                      "ip link set eth0 up && ip link set eth1 up"),
              IsOk());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<FrrInstance> frr,
      FrrInstance::Start({.netns = ns->name(),
                          .dir = FrrDir("lbann"),
                          .config = kFrrConfig,
                          .daemons = {"zebra", "bgpd", "ospfd"}}));
  auto bgp = [&] {
    absl::StatusOr<std::string> out =
        frr->Vtysh({"show bgp ipv4 unicast 192.0.2.10/32 json"});
    return out.ok() ? *out : std::string(out.status().message());
  };
  auto curl = [&](const std::string& path, const char* method = "GET") {
    absl::StatusOr<std::string> out = ns->Run(absl::StrCat(
        "curl -sS --max-time 5 -X ", method, " http://127.0.0.1:9464", path));
    return out.ok() ? *out : std::string(out.status().message());
  };

  ASSERT_OK_AND_ASSIGN(std::string dir, lab::TempDirectory("lbnode-announce"));
  const std::string config = absl::StrCat(dir, "/lbnode.yaml");
  const std::string log = absl::StrCat(dir, "/lbnode.log");
  {
    std::ofstream out(config);
    out << kLbnodeConfig;
  }
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Process> lbnode,
      ns->Spawn(
          {Runfile("lbnode/lbnode"), "--interface=eth0",
           absl::StrCat("--config=", config),
           "--metrics_address=127.0.0.1:9464", "--announce", "--drain_gshut",
           absl::StrCat("--frr_vty_socket=", frr->vty_dir()),
           "--log_level=debug"},
          log));
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(ReadFile(log), "lbnode running") ||
               !lbnode->Running();
      },
      absl::Seconds(20)));
  ASSERT_TRUE(lbnode->Running()) << ReadFile(log);

  // Announced with weight 30 → 30 Mbit/s, and the service's community.
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = bgp();
        return absl::StrContains(b, "LB:65001:3750000 (30.000 Mbps)") &&
               absl::StrContains(b, "65000:7");
      },
      absl::Seconds(15)))
      << bgp() << "\nlbnode log:\n"
      << ReadFile(log);
  EXPECT_THAT(curl("/admin/announce"),
              HasSubstr("{\"vip\":\"192.0.2.10\",\"announced\":true"));
  std::string metrics = curl("/metrics");
  EXPECT_THAT(metrics, HasSubstr("anylb_vip_announced{vip=\"192.0.2.10\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("anylb_node_admin_state 1"));
  EXPECT_THAT(metrics, HasSubstr("anylb_frr_apply_errors_total 0"));

  // Drain: GSHUT and 1 Mbit/s, then withdrawn after 2 s.
  EXPECT_THAT(curl("/admin/drain", "POST"), HasSubstr("draining"));
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = bgp();
        return absl::StrContains(b, "(1.000 Mbps)") &&
               absl::StrContains(b, "graceful-shutdown");
      },
      absl::Seconds(10)))
      << bgp();
  EXPECT_THAT(curl("/admin/announce"),
              HasSubstr("\"admin_state\":\"drained\""));
  EXPECT_TRUE(WaitFor([&] { return !absl::StrContains(bgp(), "\"paths\""); },
                      absl::Seconds(10)))
      << bgp();
  EXPECT_THAT(curl("/admin/announce"), HasSubstr("withdrawn: node drained"));

  // Undrain: back at 30 Mbit/s without GSHUT.
  EXPECT_THAT(curl("/admin/undrain", "POST"), HasSubstr("undrained"));
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = bgp();
        return absl::StrContains(b, "(30.000 Mbps)") &&
               !absl::StrContains(b, "graceful-shutdown");
      },
      absl::Seconds(10)))
      << bgp();

  // A new weight in the file, SIGHUP: the bandwidth follows, in place.
  {
    std::string text = kLbnodeConfig;
    text.replace(text.find("weight: 30"), 10, "weight: 60");
    text.replace(text.find("revision: 1"), 11, "revision: 2");
    std::ofstream out(config);
    out << text;
  }
  ASSERT_EQ(kill(lbnode->pid(), SIGHUP), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(bgp(), "LB:65001:7500000 (60.000 Mbps)");
      },
      absl::Seconds(10)))
      << bgp() << "\nlbnode log:\n"
      << ReadFile(log);
  EXPECT_THAT(curl("/admin/announce"), HasSubstr("\"weight\":60"));

  // A stuck worker: stop lbnode's threads one at a time until the one whose
  // stop makes the dataplane idle (a worker) is found; the VIP must be
  // withdrawn within the liveness timeout (1 s) and come back once it runs.
  std::unique_ptr<StalledThread> stalled;
  for (pid_t tid : Threads(lbnode->pid())) {
    std::unique_ptr<StalledThread> candidate = StalledThread::Stop(tid);
    if (candidate == nullptr) continue;
    absl::SleepFor(absl::Milliseconds(600));
    if (IdleSeconds(curl("/metrics")) >= 0.5) {
      stalled = std::move(candidate);
      break;
    }
  }
  ASSERT_NE(stalled, nullptr) << "no lbnode thread stalls the dataplane";
  std::cerr << "stopped lbnode thread " << stalled->tid()
            << ": the dataplane is idle\n";
  EXPECT_TRUE(WaitFor([&] { return !absl::StrContains(bgp(), "\"paths\""); },
                      absl::Seconds(10)))
      << bgp();
  EXPECT_THAT(curl("/admin/announce"), HasSubstr("dataplane stalled"));
  EXPECT_THAT(curl("/metrics"), HasSubstr("anylb_dataplane_live 0"));
  stalled.reset();  // The worker runs again.
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(bgp(), "(60.000 Mbps)"); },
                      absl::Seconds(10)))
      << bgp();
  EXPECT_THAT(curl("/metrics"), HasSubstr("anylb_dataplane_live 1"));

  // kill -9: the device and the route go with the process.
  ASSERT_EQ(kill(lbnode->pid(), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !lbnode->Running(); }, absl::Seconds(5)));
  EXPECT_TRUE(WaitFor([&] { return !ns->Run("ip link show anylb0").ok(); },
                      absl::Seconds(5)));
  EXPECT_TRUE(WaitFor([&] { return !absl::StrContains(bgp(), "\"paths\""); },
                      absl::Seconds(10)))
      << bgp();
}

}  // namespace
}  // namespace anylb
