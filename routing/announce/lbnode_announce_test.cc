// lbnode itself with --announce, in a namespace with zebra, bgpd and ospfd:
// it starts, its VIP reaches BGP with the link bandwidth of node.weight and
// the service's community; GET /admin/announce and /metrics say so;
// POST /admin/drain lowers the weight (GSHUT, 1 Mbit/s) and withdraws after
// node.drain_period; POST /admin/undrain restores; kill -9 of lbnode
// removes the device, and BGP withdraws. (Multi-node routing with a router
// is tests/integration/routing_test.) Needs root (tags local, netns).

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
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

TEST(LbnodeAnnounce, AnnouncesDrainsUndrainsAndWithdrawsWhenKilled) {
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
      ns->Spawn({Runfile("lbnode/lbnode"), "--interface=eth0",
                 absl::StrCat("--config=", config),
                 "--metrics_address=127.0.0.1:9464", "--announce",
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
