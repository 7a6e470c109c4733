// KernelNextHops and NextHopReader against the real kernel.
//
// Topology (per test, names unique per pid):
//   namespace "nh-<pid>-<n>" (the director; KernelNextHops runs here)
//     va: 192.0.2.1/24, 2001:db8::1/64
//   namespace "nhpeer-<pid>-<n>"
//     vb: 192.0.2.2/24, 192.0.2.3/24, 2001:db8::2/64, 2001:db8::3/64
// Needs root; fails with a clear message otherwise.

#include "routing/netlink/kernel_next_hops.h"

#include <net/if.h>

#include <functional>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/allocation_counter.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::routing::netlink {
namespace {

using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::ScopedNetns;
using ::anylb::netns_testing::TestNetns;
using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;

constexpr uint16_t kNudPermanent = 0x80;
constexpr uint16_t kNudReachable = 0x02;
constexpr absl::Duration kPatience = absl::Seconds(10);

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

// Describe prints the control thread's counters for failure messages.
std::string Describe(const KernelNextHopsStats& s) {
  return absl::StrCat("publishes ", s.publishes, ", full resyncs ",
                      s.full_resyncs, ", overruns ", s.monitor_overruns,
                      ", route re-dumps ", s.route_redumps, ", errors ",
                      s.errors, " (last: ", s.last_error.ToString(), ")");
}

// WaitFor re-evaluates `condition` every 10 ms until it holds or kPatience
// passes (a bound on how long a kernel event may take, not a timing check).
bool WaitFor(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

class KernelNextHopsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("kernel_next_hops tests"), IsOk());
    auto director = TestNetns::Create("nh");
    ASSERT_THAT(director.status(), IsOk());
    director_ = std::move(*director);
    auto peer = TestNetns::Create("nhpeer");
    ASSERT_THAT(peer.status(), IsOk());
    peer_ = std::move(*peer);
    for (const std::string& command : {
             absl::StrCat("ip link add va type veth peer name vb netns ",
                          peer_->name()),
             std::string("ip addr add 192.0.2.1/24 dev va"),
             std::string("ip addr add 2001:db8::1/64 dev va nodad"),
             std::string("ip link set va up"),
         }) {
      ASSERT_THAT(director_->Run(command).status(), IsOk());
    }
    for (const char* command : {
             "ip addr add 192.0.2.2/24 dev vb",
             "ip addr add 192.0.2.3/24 dev vb",
             "ip addr add 2001:db8::2/64 dev vb nodad",
             "ip addr add 2001:db8::3/64 dev vb nodad",
             "ip link set vb up",
         }) {
      ASSERT_THAT(peer_->Run(command).status(), IsOk());
    }
    auto mac = peer_->Run("cat /sys/class/net/vb/address");
    ASSERT_THAT(mac.status(), IsOk());
    peer_mac_ = std::string(absl::StripAsciiWhitespace(*mac));
    auto inside = ScopedNetns::Enter(*director_);
    ASSERT_THAT(inside.status(), IsOk());
    va_ = static_cast<int>(if_nametoindex("va"));
    ASSERT_GT(va_, 0);
  }

  // Start creates KernelNextHops inside the director's namespace (its
  // sockets stay there; the calling thread returns to its own).
  void Start(const KernelNextHopsOptions& options = {}) {
    auto inside = ScopedNetns::Enter(*director_);
    ASSERT_THAT(inside.status(), IsOk());
    auto next_hops = KernelNextHops::Create(options);
    ASSERT_THAT(next_hops.status(), IsOk());
    next_hops_ = std::move(*next_hops);
    reader_ = next_hops_->NewReader();
  }

  void TearDown() override {
    reader_.reset();
    next_hops_.reset();  // Before the namespaces go.
  }

  // Neighbor returns the published entry, or nullptr.
  const NeighborEntry* Neighbor(const char* address) {
    snapshot_ = next_hops_->snapshot();
    return snapshot_->neighbors->Find(va_, Ip(address));
  }

  // LookupFresh refreshes the reader and looks `destination` up.
  NextHop LookupFresh(const char* destination, uint64_t hash = 0) {
    reader_->Refresh();
    return reader_->Lookup(Ip(destination), hash);
  }

  std::unique_ptr<TestNetns> director_;
  std::unique_ptr<TestNetns> peer_;
  std::string peer_mac_;
  int va_ = 0;
  std::unique_ptr<KernelNextHops> next_hops_;
  std::unique_ptr<NextHopReader> reader_;
  std::shared_ptr<const NextHopSnapshot> snapshot_;
};

TEST_F(KernelNextHopsTest, InitialDumpSeesStaticNeighborAndRoutes) {
  for (const char* command : {
           "ip neigh add 192.0.2.3 lladdr 02:00:00:00:00:03 nud permanent "
           "dev va",
           "ip neigh add 2001:db8::3 lladdr 02:00:00:00:00:63 nud permanent "
           "dev va",
           "ip route add 203.0.113.0/24 nexthop via 192.0.2.2 weight 1 "
           "nexthop via 192.0.2.3 weight 2",
           "ip route add 198.51.100.0/24 via 192.0.2.2",
           "ip route add 198.51.100.128/25 via 192.0.2.3",
           "ip -6 route add 2001:db8:1::/48 via 2001:db8::3",
           "ip -6 route add 2001:db8:2::/48 nexthop via 2001:db8::2 "
           "nexthop via 2001:db8::3",
           "ip route add blackhole 198.51.100.64/26",
       }) {
    ASSERT_THAT(director_->Run(command).status(), IsOk());
  }
  ASSERT_NO_FATAL_FAILURE(Start());

  const NeighborEntry* static_v4 = Neighbor("192.0.2.3");
  ASSERT_NE(static_v4, nullptr);
  EXPECT_EQ(FormatMac(static_v4->mac), "02:00:00:00:00:03");
  EXPECT_EQ(static_v4->state, kNudPermanent);
  EXPECT_TRUE(static_v4->usable());
  ASSERT_NE(Neighbor("2001:db8::3"), nullptr);

  const RouteTable& routes = *snapshot_->routes;
  const Route* multipath = routes.Lookup(Ip("203.0.113.9"));
  ASSERT_NE(multipath, nullptr);
  EXPECT_EQ(multipath->destination.ToString(), "203.0.113.0/24");
  ASSERT_EQ(multipath->next_hops.size(), 2u);
  EXPECT_EQ(multipath->next_hops[0].gateway, Ip("192.0.2.2"));
  EXPECT_EQ(multipath->next_hops[0].weight, 1u);
  EXPECT_EQ(multipath->next_hops[1].gateway, Ip("192.0.2.3"));
  EXPECT_EQ(multipath->next_hops[1].weight, 2u);
  EXPECT_EQ(multipath->next_hops[1].ifindex, va_);
  const Route* multipath6 = routes.Lookup(Ip("2001:db8:2::9"));
  ASSERT_NE(multipath6, nullptr);
  EXPECT_EQ(multipath6->next_hops.size(), 2u);

  // LPM: the /25 through the static neighbour; the /24 elsewhere.
  NextHop hop = LookupFresh("198.51.100.200");
  EXPECT_TRUE(hop.ok());
  EXPECT_EQ(hop.address, Ip("192.0.2.3"));
  EXPECT_EQ(hop.ifindex, va_);
  EXPECT_EQ(FormatMac(hop.mac), "02:00:00:00:00:03");
  EXPECT_EQ(LookupFresh("198.51.100.5").address, Ip("192.0.2.2"));
  // The blackhole /26 rejects rather than falling back to the /24.
  EXPECT_EQ(LookupFresh("198.51.100.70").result, NextHop::Result::kRejected);
  // Connected: the destination itself is the neighbour.
  hop = LookupFresh("192.0.2.3");
  EXPECT_TRUE(hop.ok());
  EXPECT_EQ(hop.address, Ip("192.0.2.3"));
  hop = LookupFresh("2001:db8:1::5");
  EXPECT_TRUE(hop.ok());
  EXPECT_EQ(FormatMac(hop.mac), "02:00:00:00:00:63");
  EXPECT_EQ(LookupFresh("10.1.2.3").result, NextHop::Result::kNoRoute);
  // ECMP by weight: hash 0 → the first share (weight 1), 1 and 2 → second.
  EXPECT_EQ(LookupFresh("203.0.113.9", 0).address, Ip("192.0.2.2"));
  EXPECT_EQ(LookupFresh("203.0.113.9", 1).address, Ip("192.0.2.3"));
  EXPECT_EQ(LookupFresh("203.0.113.9", 2).address, Ip("192.0.2.3"));
  const KernelNextHopsStats stats = next_hops_->stats();
  EXPECT_EQ(stats.decode.malformed_messages, 0u);
  EXPECT_EQ(stats.decode.malformed_attributes, 0u);
}

TEST_F(KernelNextHopsTest, MonitorSeesNeighborAndRouteChanges) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const uint64_t first = reader_->generation();
  EXPECT_EQ(Neighbor("192.0.2.50"), nullptr);

  ASSERT_THAT(director_
                  ->Run("ip neigh add 192.0.2.50 lladdr 02:00:00:00:00:50 "
                        "nud permanent dev va")
                  .status(),
              IsOk());
  ASSERT_TRUE(WaitFor([&] { return Neighbor("192.0.2.50") != nullptr; }));
  EXPECT_EQ(FormatMac(Neighbor("192.0.2.50")->mac), "02:00:00:00:00:50");
  NextHop hop = LookupFresh("192.0.2.50");
  EXPECT_TRUE(hop.ok());
  EXPECT_GT(reader_->generation(), first);

  ASSERT_THAT(director_->Run("ip neigh del 192.0.2.50 dev va").status(),
              IsOk());
  ASSERT_TRUE(WaitFor([&] { return Neighbor("192.0.2.50") == nullptr; }));

  // A route appears, changes gateway, goes.
  ASSERT_THAT(
      director_->Run("ip route add 198.51.100.0/24 via 192.0.2.2").status(),
      IsOk());
  ASSERT_TRUE(WaitFor(
      [&] { return LookupFresh("198.51.100.1").address == Ip("192.0.2.2"); }));
  ASSERT_THAT(
      director_->Run("ip route replace 198.51.100.0/24 via 192.0.2.3").status(),
      IsOk());
  ASSERT_TRUE(WaitFor(
      [&] { return LookupFresh("198.51.100.1").address == Ip("192.0.2.3"); }));
  ASSERT_THAT(director_->Run("ip -6 route add 2001:db8:5::/48 via 2001:db8::2")
                  .status(),
              IsOk());
  ASSERT_TRUE(WaitFor([&] {
    return LookupFresh("2001:db8:5::1").address == Ip("2001:db8::2");
  }));
  ASSERT_THAT(director_->Run("ip route del 198.51.100.0/24").status(), IsOk());
  ASSERT_TRUE(WaitFor([&] {
    return LookupFresh("198.51.100.1").result == NextHop::Result::kNoRoute;
  }));
  // Taking a link down removes its IPv4 routes without any RTM_DELROUTE
  // (ve has no IPv4 address, so no address or prefix-route notification
  // either): only the link notification tells us to re-dump.
  ASSERT_THAT(director_
                  ->Run(absl::StrCat("ip link add ve type veth peer name vg "
                                     "netns ",
                                     peer_->name(),
                                     " && ip link set ve up && ip route add "
                                     "198.51.100.0/24 dev ve"))
                  .status(),
              IsOk());
  ASSERT_TRUE(WaitFor([&] {
    return LookupFresh("198.51.100.1").result != NextHop::Result::kNoRoute;
  }));
  ASSERT_THAT(director_->Run("ip link set ve down").status(), IsOk());
  ASSERT_TRUE(WaitFor([&] {
    return LookupFresh("198.51.100.1").result == NextHop::Result::kNoRoute;
  })) << "a route of a downed link is still published";
  EXPECT_THAT(next_hops_->stats().last_error, IsOk());
}

// A neighbour the kernel does not know, on a veth whose peer (another
// namespace) has the address: the lookup misses, asks, and the kernel's own
// ARP/ND (started by our NTF_USE request, no traffic from the test) makes
// it REACHABLE; the generation moves and the lookup hits with the peer's
// MAC.
class ActiveResolutionTest : public KernelNextHopsTest,
                             public ::testing::WithParamInterface<const char*> {
};

TEST_P(ActiveResolutionTest, MissingNeighborBecomesReachableAfterRequest) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const char* address = GetParam();
  ASSERT_EQ(Neighbor(address), nullptr) << "the kernel already knew it";

  NextHop hop = LookupFresh(address);
  EXPECT_EQ(hop.result, NextHop::Result::kNoNeighbor);
  EXPECT_EQ(hop.ifindex, va_);
  EXPECT_EQ(reader_->stats().resolve_requested, 1u);
  const uint64_t asked_at = reader_->generation();

  ASSERT_TRUE(WaitFor([&] { return LookupFresh(address).ok(); }))
      << "still " << static_cast<int>(LookupFresh(address).result)
      << "; control thread: " << next_hops_->stats().last_error;
  hop = LookupFresh(address);
  EXPECT_EQ(FormatMac(hop.mac), peer_mac_);
  EXPECT_GT(reader_->generation(), asked_at);
  const NeighborEntry* entry = Neighbor(address);
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->state, kNudReachable);
  const KernelNextHopsStats stats = next_hops_->stats();
  EXPECT_GE(stats.resolve_requests_sent, 1u);
  EXPECT_EQ(stats.resolve_requests_failed, 0u);
  // The flood of misses while waiting asked at most once per second.
  EXPECT_LE(reader_->stats().resolve_requested, 1u + 10u);
  EXPECT_GT(reader_->stats().resolve_suppressed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Ipv4AndIpv6, ActiveResolutionTest,
                         ::testing::Values("192.0.2.2", "2001:db8::2"));

TEST_F(KernelNextHopsTest, UnanswerableNeighborStaysUnresolved) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // Nobody has 192.0.2.99: the kernel tries and gives up (FAILED).
  EXPECT_EQ(LookupFresh("192.0.2.99").result, NextHop::Result::kNoNeighbor);
  ASSERT_TRUE(WaitFor([&] { return Neighbor("192.0.2.99") != nullptr; }));
  EXPECT_FALSE(Neighbor("192.0.2.99")->usable());
  EXPECT_EQ(LookupFresh("192.0.2.99").result, NextHop::Result::kNoNeighbor);
}

TEST_F(KernelNextHopsTest, OverrunMonitorResyncsEverything) {
  KernelNextHopsOptions options;
  options.monitor_receive_buffer_bytes = 1;  // The kernel's minimum.
  ASSERT_NO_FATAL_FAILURE(Start(options));
  std::string batch;
  for (int i = 1; i <= 250; ++i) {
    absl::StrAppend(&batch, "neigh add 198.51.100.", i,
                    " lladdr 02:00:00:00:01:", absl::Hex(i, absl::kZeroPad2),
                    " nud permanent dev va\n");
  }
  ASSERT_THAT(director_->Run("printf '" + batch + "' | ip -batch -").status(),
              IsOk());
  ASSERT_TRUE(WaitFor([&] {
    snapshot_ = next_hops_->snapshot();
    return snapshot_->neighbors->size() >= 250 &&
           Neighbor("198.51.100.250") != nullptr;
  })) << Describe(next_hops_->stats())
      << ", " << next_hops_->snapshot()->neighbors->size() << " neighbours";
  const KernelNextHopsStats stats = next_hops_->stats();
  EXPECT_GT(stats.monitor_overruns, 0u);
  EXPECT_GE(stats.full_resyncs, 2u);
  EXPECT_EQ(FormatMac(Neighbor("198.51.100.250")->mac), "02:00:00:00:01:fa");
}

TEST_F(KernelNextHopsTest, LookupDoesNotAllocate) {
  ASSERT_THAT(director_
                  ->Run("ip neigh add 192.0.2.3 lladdr 02:00:00:00:00:03 "
                        "nud permanent dev va")
                  .status(),
              IsOk());
  ASSERT_NO_FATAL_FAILURE(Start());
  // The kernel's tables, read by a reader with no control thread behind it:
  // the allocation counter covers every thread, and the control thread
  // allocates when it handles a request.
  std::shared_ptr<const NextHopSnapshot> snapshot = next_hops_->snapshot();
  reader_.reset();
  next_hops_.reset();
  auto reader = NextHopReader::ForFixedSnapshot(snapshot);
  const IpAddress hit = Ip("192.0.2.3");
  const IpAddress miss = Ip("192.0.2.77");  // Asks for resolution.
  const IpAddress none = Ip("10.0.0.1");
  int ok = 0;
  alloc_testing::StartCountingAllocations();
  for (int i = 0; i < 1000; ++i) {
    reader->Refresh();
    ok += reader->Lookup(hit, i).ok();
    ok += reader->Lookup(miss, i).ok();
    ok += reader->Lookup(none, i).ok();
  }
  EXPECT_EQ(alloc_testing::StopCountingAllocations(), 0u);
  EXPECT_EQ(ok, 1000);
  EXPECT_EQ(reader->stats().no_neighbor, 1000u);
  EXPECT_EQ(reader->stats().no_route, 1000u);
  EXPECT_EQ(reader->stats().resolve_requested, 1u);
}

TEST_F(KernelNextHopsTest, ExternalRoutesWithKernelNeighbors) {
  // A kernel route that the external source does not have: must not be
  // used (routes come only from SetRoutes in this mode).
  for (const char* command : {
           "ip neigh add 192.0.2.3 lladdr 02:00:00:00:00:03 nud permanent "
           "dev va",
           "ip route add 198.51.100.0/24 via 192.0.2.2",
       }) {
    ASSERT_THAT(director_->Run(command).status(), IsOk());
  }
  ASSERT_NO_FATAL_FAILURE(Start({.route_source = RouteSource::kExternal}));
  EXPECT_EQ(LookupFresh("198.51.100.5").result, NextHop::Result::kNoRoute);
  EXPECT_EQ(next_hops_->snapshot()->routes->size(), 0u);

  Route external;
  external.destination = *IpPrefix::Parse("203.0.113.0/24");
  external.next_hops.push_back(RouteNextHop{
      .ifindex = va_, .has_gateway = true, .gateway = Ip("192.0.2.3")});
  const uint64_t before = next_hops_->generation();
  ASSERT_THAT(next_hops_->SetRoutes(std::make_shared<const RouteTable>(
                  RouteTable::Build({external}))),
              IsOk());
  ASSERT_TRUE(WaitFor([&] { return next_hops_->generation() > before; }))
      << Describe(next_hops_->stats());
  // The external route, resolved through the kernel's neighbour.
  NextHop hop = LookupFresh("203.0.113.9");
  EXPECT_TRUE(hop.ok());
  EXPECT_EQ(hop.address, Ip("192.0.2.3"));
  EXPECT_EQ(FormatMac(hop.mac), "02:00:00:00:00:03");
  EXPECT_EQ(LookupFresh("198.51.100.5").result, NextHop::Result::kNoRoute);

  // Kernel route changes do not touch the external table; neighbour
  // changes still arrive.
  ASSERT_THAT(
      director_->Run("ip route add 203.0.113.0/25 via 192.0.2.2").status(),
      IsOk());
  ASSERT_THAT(director_
                  ->Run("ip neigh replace 192.0.2.3 lladdr 02:00:00:00:00:33 "
                        "nud permanent dev va")
                  .status(),
              IsOk());
  ASSERT_TRUE(WaitFor([&] {
    return FormatMac(LookupFresh("203.0.113.9").mac) == "02:00:00:00:00:33";
  }));
  EXPECT_EQ(LookupFresh("203.0.113.9").address, Ip("192.0.2.3"));
  EXPECT_EQ(next_hops_->snapshot()->routes->size(), 1u);
  EXPECT_EQ(next_hops_->stats().external_route_tables, 1u);
}

TEST(KernelNextHopsErrors, SetRoutesNeedsTheExternalMode) {
  ASSERT_THAT(RequireRoot("kernel_next_hops tests"), IsOk());
  auto netns = TestNetns::Create("nhset");
  ASSERT_THAT(netns.status(), IsOk());
  auto inside = ScopedNetns::Enter(**netns);
  ASSERT_THAT(inside.status(), IsOk());
  auto next_hops = KernelNextHops::Create();
  ASSERT_THAT(next_hops.status(), IsOk());
  const absl::Status status =
      (*next_hops)->SetRoutes(std::make_shared<const RouteTable>());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("kExternal"));
}

TEST(KernelNextHopsErrors, NetlinkErrorsNameTheOperation) {
  absl::Status status = ErrnoError(-EPERM, "asking the kernel to resolve x");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("asking the kernel to resolve x: Operation not "
                        "permitted (need root or CAP_NET_ADMIN?)"));
  EXPECT_EQ(ErrnoError(ENODEV, "x").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace anylb::routing::netlink
