// The FRR harness on its own (frr.h): two namespaces joined by a veth, each
// with zebra + bgpd; an eBGP session comes up, a kernel route redistributed
// on one side lands in the other side's kernel FIB (ReadKernelRoute), and
// leaves it when withdrawn; a daemon stopped and started again; vtysh errors;
// bad options; nothing left behind. Needs root (tags local, netns).

#include "tests/netns/frr.h"

#include <sys/stat.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/netns/links.h"
#include "tests/netns/netns.h"

namespace anylb::lab {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kPrefix[] = "203.0.113.10/32";
constexpr char kPrefix6[] = "2001:db8:f::10/128";

std::string Config(int as, const std::string& router_id,
                   const std::string& neighbor, int neighbor_as,
                   const std::string& neighbor6) {
  return absl::StrCat(
      "frr defaults traditional\n"
      "ip forwarding\n"
      "ipv6 forwarding\n"
      "router bgp ",
      as,
      "\n"
      " bgp router-id ",
      router_id,
      "\n"
      " no bgp ebgp-requires-policy\n"
      " timers bgp 1 3\n"
      " neighbor ",
      neighbor, " remote-as ", neighbor_as,
      "\n"
      " neighbor ",
      neighbor, " advertisement-interval 0\n neighbor ", neighbor6,
      " remote-as ", neighbor_as, "\n neighbor ", neighbor6,
      " advertisement-interval 0\n"
      " address-family ipv4 unicast\n"
      "  redistribute kernel\n"
      "  no neighbor ",
      neighbor6,
      " activate\n"
      " exit-address-family\n"
      " address-family ipv6 unicast\n"
      "  redistribute kernel\n"
      "  neighbor ",
      neighbor6,
      " activate\n"
      " exit-address-family\n"
      "exit\n");
}

// Two namespaces, router (AS 65000) and director (AS 65001), on one veth:
// 192.0.2.1/30 and 192.0.2.2/30, 2001:db8:1::1/64 and 2001:db8:1::2/64.
class FrrPair : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(router_ns_, Netns::Create("frr-r"));
    ASSERT_OK_AND_ASSIGN(director_ns_, Netns::Create("frr-d"));
    ASSERT_THAT(AddVethPair(*router_ns_, "r-d1", *director_ns_, "d1-r"),
                IsOk());
    for (Netns* ns : {router_ns_.get(), director_ns_.get()}) {
      ASSERT_THAT(QuietHost(*ns), IsOk());
    }
    ASSERT_THAT(AddAddress(*router_ns_, "r-d1", "192.0.2.1/30"), IsOk());
    ASSERT_THAT(AddAddress(*router_ns_, "r-d1", "2001:db8:1::1/64"), IsOk());
    ASSERT_THAT(AddAddress(*director_ns_, "d1-r", "192.0.2.2/30"), IsOk());
    ASSERT_THAT(AddAddress(*director_ns_, "d1-r", "2001:db8:1::2/64"), IsOk());
    ASSERT_OK_AND_ASSIGN(
        router_,
        FrrInstance::Start({.netns = router_ns_->name(),
                            .dir = FrrDir("r"),
                            .config = Config(65000, "192.0.2.1", "192.0.2.2",
                                             65001, "2001:db8:1::2")}));
    ASSERT_OK_AND_ASSIGN(
        director_,
        FrrInstance::Start({.netns = director_ns_->name(),
                            .dir = FrrDir("d"),
                            .config = Config(65001, "192.0.2.2", "192.0.2.1",
                                             65000, "2001:db8:1::1")}));
  }

  // WaitEstablished polls `show bgp neighbors` until both sessions of the
  // router are Established.
  void WaitEstablished() {
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::string out;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> v4 =
          router_->Vtysh({"show bgp neighbors 192.0.2.2"});
      absl::StatusOr<std::string> v6 =
          router_->Vtysh({"show bgp neighbors 2001:db8:1::2"});
      if (v4.ok() && v6.ok() &&
          absl::StrContains(*v4, "BGP state = Established") &&
          absl::StrContains(*v6, "BGP state = Established")) {
        return;
      }
      out = absl::StrCat(v4.ok() ? *v4 : v4.status().ToString(), "\n",
                         v6.ok() ? *v6 : v6.status().ToString());
      absl::SleepFor(absl::Milliseconds(100));
    }
    FAIL() << "BGP sessions not Established within 30 s:\n"
           << out << "\n"
           << router_->LogTail(20) << director_->LogTail(20);
  }

  std::unique_ptr<Netns> router_ns_;
  std::unique_ptr<Netns> director_ns_;
  std::unique_ptr<FrrInstance> router_;
  std::unique_ptr<FrrInstance> director_;
};

bool NonEmpty(const std::vector<KernelNextHop>& hops) { return !hops.empty(); }
bool Empty(const std::vector<KernelNextHop>& hops) { return hops.empty(); }

TEST_F(FrrPair, RedistributedKernelRouteReachesPeersKernelAndLeavesIt) {
  ASSERT_NO_FATAL_FAILURE(WaitEstablished());
  EXPECT_THAT(ReadKernelRoute(router_ns_->name(), kPrefix),
              status_testing::IsOkAndHolds(IsEmpty()));

  ASSERT_THAT(director_ns_->Run(absl::StrCat("ip route add blackhole ", kPrefix,
                                             " && ip -6 route add "
                                             "blackhole ",
                                             kPrefix6)),
              IsOk());
  absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
      router_ns_->name(), kPrefix, NonEmpty, absl::Seconds(10));
  ASSERT_THAT(hops, IsOk()) << router_->LogTail(20);
  EXPECT_THAT(*hops, ElementsAre(KernelNextHop{
                         .gateway = "192.0.2.2", .dev = "r-d1", .weight = 1}));
  absl::StatusOr<std::vector<KernelNextHop>> hops6 = WaitForKernelRoute(
      router_ns_->name(), kPrefix6, NonEmpty, absl::Seconds(10));
  ASSERT_THAT(hops6, IsOk()) << router_->LogTail(20);
  ASSERT_EQ(hops6->size(), 1u) << FormatNextHops(*hops6);
  EXPECT_EQ((*hops6)[0].dev, "r-d1");
  // The director's link-local or global address, as bgpd chose.
  EXPECT_THAT((*hops6)[0].gateway,
              ::testing::AnyOf(HasSubstr("fe80:"), "2001:db8:1::2"));

  ASSERT_THAT(
      director_ns_->Run(absl::StrCat("ip route del blackhole ", kPrefix)),
      IsOk());
  EXPECT_THAT(
      WaitForKernelRoute(router_ns_->name(), kPrefix, Empty, absl::Seconds(10)),
      IsOk());
  // The IPv6 route is unaffected.
  EXPECT_THAT(ReadKernelRoute(router_ns_->name(), kPrefix6),
              status_testing::IsOkAndHolds(::testing::SizeIs(1)));
}

TEST_F(FrrPair, StoppedBgpdWithdrawsAndRestartedBgpdAnnouncesAgain) {
  ASSERT_NO_FATAL_FAILURE(WaitEstablished());
  ASSERT_THAT(
      director_ns_->Run(absl::StrCat("ip route add blackhole ", kPrefix)),
      IsOk());
  ASSERT_THAT(WaitForKernelRoute(router_ns_->name(), kPrefix, NonEmpty,
                                 absl::Seconds(10)),
              IsOk());
  ASSERT_OK_AND_ASSIGN(pid_t old_pid, director_->DaemonPid("bgpd"));

  ASSERT_THAT(director_->KillDaemon("bgpd"), IsOk());
  EXPECT_THAT(director_->DaemonPid("bgpd"),
              StatusIs(absl::StatusCode::kNotFound));
  // Hold time 3 s: the router drops the session and the route.
  EXPECT_THAT(
      WaitForKernelRoute(router_ns_->name(), kPrefix, Empty, absl::Seconds(10)),
      IsOk());
  EXPECT_THAT(director_->StopDaemon("bgpd"),
              StatusIs(absl::StatusCode::kNotFound));

  ASSERT_THAT(director_->StartDaemon("bgpd"), IsOk());
  EXPECT_THAT(director_->StartDaemon("bgpd"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(pid_t new_pid, director_->DaemonPid("bgpd"));
  EXPECT_NE(new_pid, old_pid);
  EXPECT_THAT(WaitForKernelRoute(router_ns_->name(), kPrefix, NonEmpty,
                                 absl::Seconds(20)),
              IsOk())
      << director_->LogTail(20);
}

TEST_F(FrrPair, VtyshConfiguresAndReportsErrors) {
  ASSERT_OK_AND_ASSIGN(
      std::string out,
      director_->Vtysh({"configure terminal", "route-map ANYLB-BGP permit 10",
                        "set extcommunity bandwidth 200"}));
  ASSERT_OK_AND_ASSIGN(out, director_->Vtysh({"show route-map ANYLB-BGP"}));
  EXPECT_THAT(out, HasSubstr("ANYLB-BGP"));
  EXPECT_THAT(
      director_->Vtysh({"show no-such-thing"}),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("Unknown command")));
}

TEST(Frr, BadOptionsAreRefusedNamingTheField) {
  EXPECT_THAT(FrrInstance::Start({.netns = "", .dir = "/tmp/x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("netns")));
  EXPECT_THAT(
      FrrInstance::Start({.netns = "x", .dir = "relative"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(
      FrrInstance::Start(
          {.netns = "x", .dir = "/tmp/x", .daemons = {"zebra", "bgp"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"bgp\"")));
  EXPECT_THAT(ReadKernelRoute("x", "1.2.3.4; reboot"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Frr, VtyshRefusesABadConfigLineOnARunningInstance) {
  ASSERT_OK_AND_ASSIGN(auto ns, Netns::Create("frr-bad"));
  ASSERT_OK_AND_ASSIGN(
      auto frr,
      FrrInstance::Start(
          {.netns = ns->name(),
           .dir = FrrDir("bad"),
           .config =
               "router bgp 65000\n neighbor 192.0.2.9 remote-as 65001\n"}));
  EXPECT_THAT(
      frr->Vtysh({"configure terminal", "router bgp 65000",
                  "neighbor 192.0.2.9 no-such-option"}),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("no-such-option")));
  // The instance still answers.
  EXPECT_THAT(frr->Vtysh({"show bgp summary"}), IsOk());
}

TEST(Frr, ConfigLineFrrRefusesFailsStartQuotingTheLine) {
  ASSERT_OK_AND_ASSIGN(auto ns, Netns::Create("frr-badcf"));
  std::string dir = FrrDir("badcf");
  EXPECT_THAT(
      FrrInstance::Start({.netns = ns->name(),
                          .dir = dir,
                          .config = "router bgp 65000\n"
                                    " neighbor 192.0.2.9 remote-as 65001\n"
                                    " neighbor 192.0.2.9 no-such-option\n"}),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          ::testing::AllOf(HasSubstr("line 3"), HasSubstr("no-such-option"))));
  // Nothing left behind.
  struct stat st;
  EXPECT_NE(stat(dir.c_str(), &st), 0) << dir << " still exists";
  ASSERT_OK_AND_ASSIGN(std::vector<pid_t> pids, ns->Pids());
  EXPECT_THAT(pids, IsEmpty());
}

TEST(Frr, DestructorStopsDaemonsAndRemovesDir) {
  ASSERT_OK_AND_ASSIGN(auto ns, Netns::Create("frr-gone"));
  std::string dir = FrrDir("gone");
  pid_t zebra = 0;
  pid_t bgpd = 0;
  {
    ASSERT_OK_AND_ASSIGN(
        auto frr,
        FrrInstance::Start(
            {.netns = ns->name(), .dir = dir, .config = "router bgp 65000\n"}));
    ASSERT_OK_AND_ASSIGN(zebra, frr->DaemonPid("zebra"));
    ASSERT_OK_AND_ASSIGN(bgpd, frr->DaemonPid("bgpd"));
    struct stat st;
    ASSERT_EQ(stat((dir + "/zserv.api").c_str(), &st), 0);
  }
  struct stat st;
  EXPECT_NE(stat(dir.c_str(), &st), 0) << dir << " still exists";
  ASSERT_OK_AND_ASSIGN(std::vector<pid_t> pids, ns->Pids());
  EXPECT_THAT(pids, ::testing::Not(::testing::Contains(zebra)));
  EXPECT_THAT(pids, ::testing::Not(::testing::Contains(bgpd)));
}

TEST(Frr, TemplatesExpandEveryPlaceholderAndRefuseMissingOrUnusedValues) {
  EXPECT_THAT(ExpandFrrTemplate("router bgp {{AS}}\n bgp router-id {{ID}}\n",
                                {{"AS", "65000"}, {"ID", "192.0.2.1"}}),
              status_testing::IsOkAndHolds(
                  "router bgp 65000\n bgp router-id 192.0.2.1\n"));
  EXPECT_THAT(ExpandFrrTemplate("router bgp {{AS}}", {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("{{AS}} has no value")));
  EXPECT_THAT(
      ExpandFrrTemplate("router bgp {{AS}}", {{"AS", "1"}, {"ASN", "2"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ASN")));
  EXPECT_THAT(
      ExpandFrrTemplate("x {{AS", {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unterminated")));
  EXPECT_THAT(
      ReadFrrTemplate("/nonexistent/x.conf", {}),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/x.conf")));
}

}  // namespace
}  // namespace anylb::lab
