// VIP announcement against real FRR 8.4 (zebra, bgpd, ospfd) in a
// namespace of its own: the TUN device holds the VIP routes, zebra sees
// them, bgpd announces them with the link-bandwidth extended community and
// the per-VIP communities, weight changes in place without a gap, drain
// (GSHUT, drain bandwidth, OSPF metric) then withdraw, undrain, a killed
// holder process takes its routes with it, a stalled worker withdraws
// everything, and a vtysh that fails (bgpd down) is retried until bgpd is
// back. Needs root (tags local, netns).

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "routing/announce/announcer.h"
#include "routing/announce/frr_configurator.h"
#include "routing/announce/tun_device.h"
#include "routing/announce/vip_routes.h"
#include "routing/announce/vtysh.h"
#include "tests/netns/frr.h"
#include "tests/netns/netns.h"

namespace anylb::routing::announce {
namespace {

using ::anylb::lab::FrrDir;
using ::anylb::lab::FrrInstance;
using ::anylb::lab::KernelNextHop;
using ::anylb::lab::Netns;
using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kConfig[] =
    "frr defaults traditional\n"
    "hostname anylb-announce\n"
    // Route-map changes reach BGP after 1 s instead of 5 (the default).
    "bgp route-map delay-timer 1\n"
    "router bgp 65001\n"
    " bgp router-id 192.0.2.1\n"
    " address-family ipv4 unicast\n"
    "  redistribute kernel route-map ANYLB-BGP\n"
    " exit-address-family\n"
    " address-family ipv6 unicast\n"
    "  redistribute kernel route-map ANYLB-BGP\n"
    " exit-address-family\n"
    "exit\n"
    "router ospf\n"
    " ospf router-id 192.0.2.1\n"
    " redistribute kernel route-map ANYLB-OSPF\n"
    "exit\n";

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

// WaitFor polls `done` every 50 ms for up to `timeout`.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// LinkBandwidth is how bgpd shows N Mbit/s from AS 65001.
std::string LinkBandwidth(uint32_t mbps) {
  return absl::StrCat("LB:65001:", uint64_t{mbps} * 1000000 / 8, " (", mbps,
                      ".000 Mbps)");
}

class AnnounceFrrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u)
        << "routing/announce:announce_frr_test needs root (namespaces, TUN, "
           "FRR daemons): run it as root, e.g. with sudo or in CI";
    ASSERT_OK_AND_ASSIGN(ns_, Netns::Create("announce"));
    ASSERT_OK_AND_ASSIGN(
        frr_, FrrInstance::Start({.netns = ns_->name(),
                                  .dir = FrrDir("announce"),
                                  .config = kConfig,
                                  .daemons = {"zebra", "bgpd", "ospfd"}}));
    vtysh_ = std::make_unique<SubprocessVtysh>(
        SubprocessVtyshOptions{.vty_socket = frr_->vty_dir()});
  }

  void TearDown() override {
    if (HasFailure() && frr_ != nullptr) {
      std::cerr << "FRR logs:\n" << frr_->LogTail(40) << "\n";
    }
  }

  // MakeDevice creates the TUN device and its route holder in the
  // namespace.
  void MakeDevice() {
    ASSERT_THAT(ns_->RunInThread([&]() -> absl::Status {
      absl::StatusOr<std::unique_ptr<TunDevice>> device =
          TunDevice::Create("anylb0");
      if (!device.ok()) return device.status();
      device_ = *std::move(device);
      absl::StatusOr<std::unique_ptr<VipRoutes>> routes =
          VipRoutes::Create(device_->ifindex(), device_->name());
      if (!routes.ok()) return routes.status();
      routes_ = *std::move(routes);
      return absl::OkStatus();
    }),
                IsOk());
  }

  std::unique_ptr<Announcer> MakeAnnouncer(
      std::function<absl::Time()> progress = nullptr) {
    AnnouncerOptions o;
    o.device = "anylb0";
    o.oldest_progress = std::move(progress);
    o.liveness_timeout = absl::Milliseconds(500);
    o.drain_gshut = true;
    o.frr.protocols = {RoutingProtocol::kBgp, RoutingProtocol::kOspf};
    o.frr.retry_interval = absl::Milliseconds(200);
    o.frr.check_interval = absl::Seconds(1);
    return std::make_unique<Announcer>(o, routes_.get(), vtysh_.get());
  }

  // Bgp is `show bgp ipv4|ipv6 unicast PREFIX json` ("{}" without paths).
  std::string Bgp(const std::string& prefix) {
    bool v6 = prefix.find(':') != std::string::npos;
    absl::StatusOr<std::string> out = frr_->Vtysh({absl::StrCat(
        "show bgp ", v6 ? "ipv6" : "ipv4", " unicast ", prefix, " json")});
    return out.ok() ? *out : std::string(out.status().message());
  }
  bool BgpHas(const std::string& prefix) {
    return absl::StrContains(Bgp(prefix), "\"paths\"");
  }
  bool ZebraHasKernelRoute(const std::string& prefix) {
    bool v6 = prefix.find(':') != std::string::npos;
    absl::StatusOr<std::string> out = frr_->Vtysh(
        {absl::StrCat("show ", v6 ? "ipv6" : "ip", " route kernel json")});
    return out.ok() &&
           absl::StrContains(*out, absl::StrCat("\"", prefix, "\""));
  }
  std::string OspfExternal() {
    absl::StatusOr<std::string> out =
        frr_->Vtysh({"show ip ospf database external json"});
    // Without spaces: ospfd's JSON spacing is not ours to depend on.
    return absl::StrReplaceAll(
        out.ok() ? *out : std::string(out.status().message()), {{" ", ""}});
  }

  static AnnounceConfig Config(uint32_t weight) {
    AnnounceConfig c;
    c.weight = weight;
    c.drain_period = absl::Seconds(3);
    AnnounceService web;
    web.name = "web";
    web.vip = Ip("192.0.2.10");
    web.backends = {{"198.51.100.1", 80, 1, true}};
    web.communities = {65000u << 16 | 100};
    AnnounceService web6;
    web6.name = "web6";
    web6.vip = Ip("2001:db8::10");
    web6.backends = {{"2001:db8:1::1", 80, 1, true}};
    c.services = {web, web6};
    return c;
  }

  std::unique_ptr<Netns> ns_;
  std::unique_ptr<FrrInstance> frr_;
  std::unique_ptr<SubprocessVtysh> vtysh_;
  std::unique_ptr<TunDevice> device_;
  std::unique_ptr<VipRoutes> routes_;
};

TEST_F(AnnounceFrrTest, AnnouncesVipsWithLinkBandwidthAndCommunities) {
  MakeDevice();
  std::unique_ptr<Announcer> announcer = MakeAnnouncer();
  announcer->SetConfig(Config(40));
  announcer->Step();
  AnnounceStatus s = announcer->status();
  EXPECT_TRUE(s.frr_in_sync) << s.frr_last_error;

  // The device holds the routes, proto static.
  ASSERT_OK_AND_ASSIGN(std::string routes,
                       ns_->Run("ip route show dev anylb0; ip -6 route show "
                                "dev anylb0"));
  EXPECT_THAT(routes, HasSubstr("192.0.2.10 proto static scope link"));
  EXPECT_THAT(routes, HasSubstr("2001:db8::10 proto static"));
  EXPECT_TRUE(WaitFor([&] { return ZebraHasKernelRoute("192.0.2.10/32"); },
                      absl::Seconds(5)));
  EXPECT_TRUE(WaitFor([&] { return ZebraHasKernelRoute("2001:db8::10/128"); },
                      absl::Seconds(5)));

  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = Bgp("192.0.2.10/32");
        return absl::StrContains(b, LinkBandwidth(40)) &&
               absl::StrContains(b, "65000:100");
      },
      absl::Seconds(10)))
      << Bgp("192.0.2.10/32");
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(Bgp("2001:db8::10/128"), LinkBandwidth(40));
      },
      absl::Seconds(10)))
      << Bgp("2001:db8::10/128");
  EXPECT_THAT(Bgp("2001:db8::10/128"), Not(HasSubstr("65000:100")));
  EXPECT_TRUE(WaitFor(
      [&] { return absl::StrContains(OspfExternal(), "\"192.0.2.10\""); },
      absl::Seconds(15)))
      << OspfExternal();

  // Idempotent: a second configurator finds nothing to change.
  FrrConfigurator again(vtysh_.get(), {});
  FrrIntent intent;
  intent.bandwidth_mbps = 40;
  intent.communities[Ip("192.0.2.10")] = {65000u << 16 | 100};
  ASSERT_THAT(again.Sync(intent, absl::Now()), IsOk());
  EXPECT_EQ(again.applies(), 0u);
}

TEST_F(AnnounceFrrTest, LocalAddressPrefixesAreInBgpWithoutAnyService) {
  MakeDevice();
  std::unique_ptr<Announcer> announcer = MakeAnnouncer();
  AnnounceConfig c;
  c.weight = 40;
  c.local_addresses = {*IpPrefix::Parse("192.0.2.64/28"),
                       *IpPrefix::Parse("2001:db8:1::/120")};
  announcer->SetConfig(c);
  announcer->Step();
  ASSERT_OK_AND_ASSIGN(std::string routes,
                       ns_->Run("ip route show dev anylb0; ip -6 route show "
                                "dev anylb0"));
  EXPECT_THAT(routes, HasSubstr("192.0.2.64/28 proto static scope link"));
  EXPECT_THAT(routes, HasSubstr("2001:db8:1::/120 proto static"));
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(Bgp("192.0.2.64/28"), LinkBandwidth(40));
      },
      absl::Seconds(10)))
      << Bgp("192.0.2.64/28");
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(Bgp("2001:db8:1::/120"), LinkBandwidth(40));
      },
      absl::Seconds(10)))
      << Bgp("2001:db8:1::/120");

  c.local_addresses.clear();
  announcer->SetConfig(c);
  announcer->Step();
  EXPECT_TRUE(WaitFor([&] { return !ZebraHasKernelRoute("192.0.2.64/28"); },
                      absl::Seconds(5)));
}

TEST_F(AnnounceFrrTest, WeightChangeUpdatesTheRouteMapWithoutAGap) {
  MakeDevice();
  std::unique_ptr<Announcer> announcer = MakeAnnouncer();
  announcer->SetConfig(Config(40));
  announcer->Step();
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(Bgp("192.0.2.10/32"), LinkBandwidth(40));
      },
      absl::Seconds(10)))
      << Bgp("192.0.2.10/32");

  // Poll bgpd while the weight changes: the route must never be missing.
  std::atomic<bool> stop{false};
  std::atomic<int> polls{0};
  std::atomic<int> missing{0};
  std::thread poller([&] {
    while (!stop) {
      if (!BgpHas("192.0.2.10/32")) ++missing;
      ++polls;
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  announcer->SetConfig(Config(80));
  announcer->Step();
  bool changed = WaitFor(
      [&] {
        return absl::StrContains(Bgp("192.0.2.10/32"), LinkBandwidth(80));
      },
      absl::Seconds(10));
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  poller.join();
  EXPECT_TRUE(changed) << Bgp("192.0.2.10/32");
  EXPECT_GE(polls.load(),
            3);  // Sampled during the change (vtysh is slow under load).
  EXPECT_EQ(missing.load(), 0) << "of " << polls.load() << " polls";
}

TEST_F(AnnounceFrrTest, DrainLowersTheWeightThenWithdrawsAndUndrainRestores) {
  MakeDevice();
  std::unique_ptr<Announcer> announcer = MakeAnnouncer();
  announcer->SetConfig(Config(40));
  announcer->Step();
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(Bgp("192.0.2.10/32"), LinkBandwidth(40));
      },
      absl::Seconds(10)));

  announcer->Drain();
  absl::Time drained_at = absl::Now();
  announcer->Step();
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = Bgp("192.0.2.10/32");
        return absl::StrContains(b, LinkBandwidth(1)) &&
               absl::StrContains(b, "65000:100 graceful-shutdown");
      },
      absl::Seconds(10)))
      << Bgp("192.0.2.10/32");
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = Bgp("2001:db8::10/128");
        return absl::StrContains(b, LinkBandwidth(1)) &&
               absl::StrContains(b, "graceful-shutdown");
      },
      absl::Seconds(10)))
      << Bgp("2001:db8::10/128");
  EXPECT_TRUE(WaitFor(
      [&] { return absl::StrContains(OspfExternal(), "\"metric\":16777214"); },
      absl::Seconds(15)))
      << OspfExternal();
  // Still announced during the drain period (3 s)...
  if (absl::Now() < drained_at + absl::Seconds(3)) {
    EXPECT_TRUE(BgpHas("192.0.2.10/32"));
  }
  // ...withdrawn after it.
  ASSERT_TRUE(WaitFor(
      [&] {
        announcer->Step();
        return announcer->status().drain_complete;
      },
      absl::Seconds(10)));
  EXPECT_GE(absl::Now() - drained_at, absl::Seconds(3));
  ASSERT_OK_AND_ASSIGN(std::vector<KernelNextHop> hops,
                       lab::ReadKernelRoute(ns_->name(), "192.0.2.10/32"));
  EXPECT_THAT(hops, IsEmpty());
  EXPECT_TRUE(
      WaitFor([&] { return !BgpHas("192.0.2.10/32"); }, absl::Seconds(10)));
  EXPECT_TRUE(
      WaitFor([&] { return !BgpHas("2001:db8::10/128"); }, absl::Seconds(10)));

  announcer->Undrain();
  announcer->Step();
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string b = Bgp("192.0.2.10/32");
        return absl::StrContains(b, LinkBandwidth(40)) &&
               !absl::StrContains(b, "graceful-shutdown");
      },
      absl::Seconds(10)))
      << Bgp("192.0.2.10/32");
}

TEST_F(AnnounceFrrTest, AKilledHolderTakesTheDeviceAndItsRoutesAway) {
  // The route-map first (as lbnode does before adding routes).
  FrrConfigurator configurator(vtysh_.get(), {});
  FrrIntent intent;
  intent.bandwidth_mbps = 10;
  ASSERT_THAT(configurator.Sync(intent, absl::Now()), IsOk());

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const std::string netns_path = absl::StrCat("/var/run/netns/", ns_->name());
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The holder: enters the namespace, creates the device and a route,
    // says so, waits to be killed.
    close(ready[0]);
    int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(1);
    auto device = TunDevice::Create("anylb0");
    if (!device.ok()) _exit(2);
    auto routes = VipRoutes::Create((*device)->ifindex(), (*device)->name());
    if (!routes.ok() || !(*routes)->Add(Ip("192.0.2.30")).ok() ||
        !(*routes)->Add(Ip("2001:db8::30")).ok()) {
      _exit(3);
    }
    (void)!write(ready[1], "r", 1);
    while (true) pause();
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the holder did not start";
  close(ready[0]);

  EXPECT_TRUE(WaitFor([&] { return ZebraHasKernelRoute("192.0.2.30/32"); },
                      absl::Seconds(5)));
  EXPECT_TRUE(
      WaitFor([&] { return BgpHas("192.0.2.30/32"); }, absl::Seconds(10)))
      << Bgp("192.0.2.30/32");
  EXPECT_TRUE(
      WaitFor([&] { return BgpHas("2001:db8::30/128"); }, absl::Seconds(10)));

  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);

  EXPECT_FALSE(ns_->Run("ip link show anylb0").ok())
      << "the device outlived its holder";
  ASSERT_OK_AND_ASSIGN(std::vector<KernelNextHop> hops,
                       lab::ReadKernelRoute(ns_->name(), "192.0.2.30/32"));
  EXPECT_THAT(hops, IsEmpty());
  EXPECT_TRUE(WaitFor([&] { return !ZebraHasKernelRoute("192.0.2.30/32"); },
                      absl::Seconds(5)));
  EXPECT_TRUE(
      WaitFor([&] { return !BgpHas("192.0.2.30/32"); }, absl::Seconds(10)))
      << Bgp("192.0.2.30/32");
  EXPECT_TRUE(
      WaitFor([&] { return !BgpHas("2001:db8::30/128"); }, absl::Seconds(10)));
}

TEST_F(AnnounceFrrTest, AStalledWorkerWithdrawsEverythingAndRecoveryAnnounces) {
  MakeDevice();
  // A stand-in for a dataplane worker: records its progress every 10 ms,
  // and blocks (a real stall, test-only) while `stalled`. It publishes its
  // progress through an atomic, as the dataplane's workers do.
  std::atomic<int64_t> progress{absl::ToUnixNanos(absl::Now())};
  absl::Mutex mu;
  bool stalled = false;
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    while (!stop) {
      {
        absl::MutexLock lock(&mu);
        auto running = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
          return !stalled || stop.load();
        };
        mu.Await(absl::Condition(&running));  // Stuck here while stalled.
      }
      progress = absl::ToUnixNanos(absl::Now());
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  std::unique_ptr<Announcer> announcer =
      MakeAnnouncer([&] { return absl::FromUnixNanos(progress.load()); });
  announcer->SetConfig(Config(40));
  announcer->Start();
  EXPECT_TRUE(
      WaitFor([&] { return BgpHas("192.0.2.10/32"); }, absl::Seconds(10)));

  {
    absl::MutexLock lock(&mu);
    stalled = true;
  }
  EXPECT_TRUE(WaitFor([&] { return !ZebraHasKernelRoute("192.0.2.10/32"); },
                      absl::Seconds(5)));
  EXPECT_TRUE(
      WaitFor([&] { return !BgpHas("192.0.2.10/32"); }, absl::Seconds(10)));
  EXPECT_TRUE(
      WaitFor([&] { return !BgpHas("2001:db8::10/128"); }, absl::Seconds(10)));
  EXPECT_FALSE(announcer->status().dataplane_live);
  EXPECT_THAT(announcer->StatusJson(), HasSubstr("dataplane stalled"));

  {
    absl::MutexLock lock(&mu);
    stalled = false;
  }
  EXPECT_TRUE(
      WaitFor([&] { return BgpHas("192.0.2.10/32"); }, absl::Seconds(10)));
  EXPECT_TRUE(announcer->status().dataplane_live);
  announcer->Stop();
  stop = true;
  {
    absl::MutexLock lock(&mu);
    stalled = false;
  }
  worker.join();
}

TEST_F(AnnounceFrrTest, VtyshErrorsWhileBgpdIsDownAreRetriedUntilItIsBack) {
  MakeDevice();
  ASSERT_THAT(frr_->StopDaemon("bgpd"), IsOk());
  std::unique_ptr<Announcer> announcer = MakeAnnouncer();
  announcer->SetConfig(Config(40));
  announcer->Step();
  AnnounceStatus s = announcer->status();
  EXPECT_FALSE(s.frr_in_sync);
  EXPECT_GE(s.frr_apply_errors, 1u);
  EXPECT_THAT(s.frr_last_error, HasSubstr("bgpd"));
  EXPECT_THAT(s.frr_last_error, HasSubstr("vtysh"));
  // The routes do not wait for FRR.
  EXPECT_TRUE(s.vips[0].announced);

  // bgpd comes back with frr.conf only (no ANYLB- entries: redistribution
  // denies everything); the retry configures it.
  ASSERT_THAT(frr_->StartDaemon("bgpd"), IsOk());
  EXPECT_TRUE(WaitFor(
      [&] {
        announcer->Step();
        return announcer->status().frr_in_sync;
      },
      absl::Seconds(10)))
      << announcer->status().frr_last_error;
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(Bgp("192.0.2.10/32"), LinkBandwidth(40));
      },
      absl::Seconds(10)))
      << Bgp("192.0.2.10/32");

  // bgpd killed and restarted behind lbnode's back: the periodic check
  // (every second here) configures it again.
  ASSERT_THAT(frr_->KillDaemon("bgpd"), IsOk());
  ASSERT_THAT(frr_->StartDaemon("bgpd"), IsOk());
  EXPECT_TRUE(WaitFor(
      [&] {
        announcer->Step();
        return absl::StrContains(Bgp("192.0.2.10/32"), LinkBandwidth(40));
      },
      absl::Seconds(15)))
      << Bgp("192.0.2.10/32");
}

}  // namespace
}  // namespace anylb::routing::announce
