#include "lbnode/nexthop/kernel_next_hop_resolver.h"

#include <memory>
#include <vector>

#include "common/ip_address.h"
#include "common/testing/allocation_counter.h"
#include "gtest/gtest.h"
#include "routing/netlink/kernel_next_hops.h"
#include "routing/netlink/tables.h"

namespace anylb::nexthop {
namespace {

using routing::netlink::NeighborEntry;
using routing::netlink::NeighborKey;
using routing::netlink::NeighborTable;
using routing::netlink::NextHopReader;
using routing::netlink::NextHopSnapshot;
using routing::netlink::Route;
using routing::netlink::RouteKind;
using routing::netlink::RouteNextHop;
using routing::netlink::RouteTable;

constexpr uint16_t kNudReachable = 0x02;
constexpr uint16_t kNudFailed = 0x20;
constexpr int kEth0 = 2;
constexpr int kEth1 = 3;
constexpr dataplane::Mac kGatewayMac = {2, 0, 0, 0, 0, 1};
constexpr dataplane::Mac kHostMac = {2, 0, 0, 0, 0, 2};
constexpr dataplane::Mac kHost6Mac = {2, 0, 0, 0, 0, 6};

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

RouteNextHop Hop(int ifindex, const char* gateway = nullptr) {
  RouteNextHop hop;
  hop.ifindex = ifindex;
  if (gateway != nullptr) {
    hop.has_gateway = true;
    hop.gateway = Ip(gateway);
  }
  return hop;
}

// The tables of a node with eth0 (192.0.2.0/24, 2001:db8::/64, default via
// 192.0.2.1) and eth1 (198.51.100.0/24).
std::unique_ptr<NextHopReader> MakeReader() {
  std::vector<Route> routes = {
      {*IpPrefix::Parse("0.0.0.0/0"),
       0,
       RouteKind::kUnicast,
       {Hop(kEth0, "192.0.2.1")}},
      {*IpPrefix::Parse("192.0.2.0/24"), 0, RouteKind::kUnicast, {Hop(kEth0)}},
      {*IpPrefix::Parse("2001:db8::/64"), 0, RouteKind::kUnicast, {Hop(kEth0)}},
      {*IpPrefix::Parse("198.51.100.0/24"),
       0,
       RouteKind::kUnicast,
       {Hop(kEth1)}},
      {*IpPrefix::Parse("203.0.113.0/24"), 0, RouteKind::kReject, {}},
  };
  NeighborTable::Map neighbors;
  neighbors[NeighborKey{kEth0, Ip("192.0.2.1")}] =
      NeighborEntry{kGatewayMac, true, kNudReachable};
  neighbors[NeighborKey{kEth0, Ip("192.0.2.20")}] =
      NeighborEntry{kHostMac, true, kNudReachable};
  neighbors[NeighborKey{kEth0, Ip("192.0.2.21")}] =
      NeighborEntry{{}, false, kNudFailed};
  neighbors[NeighborKey{kEth0, Ip("2001:db8::20")}] =
      NeighborEntry{kHost6Mac, true, kNudReachable};
  neighbors[NeighborKey{kEth1, Ip("198.51.100.20")}] =
      NeighborEntry{kHostMac, true, kNudReachable};
  auto snapshot = std::make_shared<NextHopSnapshot>();
  snapshot->neighbors =
      std::make_shared<const NeighborTable>(std::move(neighbors));
  snapshot->routes =
      std::make_shared<const RouteTable>(RouteTable::Build(std::move(routes)));
  snapshot->generation = 1;
  return NextHopReader::ForFixedSnapshot(snapshot);
}

TEST(KernelNextHopResolver, RemoteDestinationGetsTheGatewaysMac) {
  KernelNextHopResolver resolver(MakeReader());
  dataplane::Mac mac{};
  EXPECT_TRUE(resolver.Resolve(Ip("10.9.8.7"), &mac));
  EXPECT_EQ(mac, kGatewayMac);
  EXPECT_EQ(resolver.stats().resolved, 1u);
}

TEST(KernelNextHopResolver, ConnectedDestinationGetsItsOwnMac) {
  KernelNextHopResolver resolver(MakeReader());
  dataplane::Mac mac{};
  EXPECT_TRUE(resolver.Resolve(Ip("192.0.2.20"), &mac));
  EXPECT_EQ(mac, kHostMac);
  EXPECT_TRUE(resolver.Resolve(Ip("2001:db8::20"), &mac));
  EXPECT_EQ(mac, kHost6Mac);
}

TEST(KernelNextHopResolver, MissingOrFailedNeighborAsksForResolution) {
  KernelNextHopResolver resolver(MakeReader());
  dataplane::Mac mac{};
  EXPECT_FALSE(resolver.Resolve(Ip("192.0.2.99"), &mac));
  EXPECT_FALSE(resolver.Resolve(Ip("192.0.2.21"), &mac));
  EXPECT_FALSE(resolver.Resolve(Ip("192.0.2.99"), &mac));  // Asked already.
  EXPECT_EQ(resolver.stats().no_neighbor, 3u);
  EXPECT_EQ(resolver.reader().stats().resolve_requested, 2u);
  EXPECT_EQ(resolver.reader().stats().resolve_suppressed, 1u);
}

TEST(KernelNextHopResolver, NoRouteAndRejectRouteAreNotResolved) {
  // No default route for IPv6; a reject route for 203.0.113.0/24.
  KernelNextHopResolver resolver(MakeReader());
  dataplane::Mac mac{};
  EXPECT_FALSE(resolver.Resolve(Ip("2001:db8:1::1"), &mac));
  EXPECT_FALSE(resolver.Resolve(Ip("203.0.113.5"), &mac));
  EXPECT_EQ(resolver.stats().no_route, 2u);
  EXPECT_EQ(resolver.reader().stats().resolve_requested, 0u);
}

TEST(KernelNextHopResolver, NextHopOutOfAnotherInterfaceIsRefusedAndCounted) {
  KernelNextHopResolver resolver(MakeReader(), {.egress_ifindex = kEth0});
  dataplane::Mac mac{};
  EXPECT_FALSE(resolver.Resolve(Ip("198.51.100.20"), &mac));
  EXPECT_EQ(resolver.stats().wrong_interface, 1u);
  EXPECT_EQ(resolver.reader().stats().resolve_requested, 0u);
  EXPECT_TRUE(resolver.Resolve(Ip("192.0.2.20"), &mac));
  // Without the filter the same destination resolves.
  KernelNextHopResolver any(MakeReader());
  EXPECT_TRUE(any.Resolve(Ip("198.51.100.20"), &mac));
}

TEST(KernelNextHopResolver, ResolveDoesNotAllocate) {
  KernelNextHopResolver resolver(MakeReader(), {.egress_ifindex = kEth0});
  dataplane::Mac mac{};
  int resolved = 0;
  alloc_testing::StartCountingAllocations();
  for (int i = 0; i < 100; ++i) {
    resolver.Refresh();
    resolved += resolver.Resolve(Ip("192.0.2.20"), &mac);
    resolved += resolver.Resolve(Ip("192.0.2.98"), &mac);
    resolved += resolver.Resolve(Ip("198.51.100.20"), &mac);
    resolved += resolver.Resolve(Ip("2001:db8:1::1"), &mac);
  }
  EXPECT_EQ(alloc_testing::StopCountingAllocations(), 0u);
  EXPECT_EQ(resolved, 100);
}

}  // namespace
}  // namespace anylb::nexthop
