#include "routing/netlink/tables.h"

#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::routing::netlink {
namespace {

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }
IpPrefix Prefix(const char* text) { return *IpPrefix::Parse(text); }

RouteNextHop Via(const char* gateway, int ifindex, uint32_t weight = 1) {
  RouteNextHop hop;
  hop.ifindex = ifindex;
  hop.has_gateway = true;
  hop.gateway = Ip(gateway);
  hop.weight = weight;
  return hop;
}

RouteNextHop Connected(int ifindex) {
  RouteNextHop hop;
  hop.ifindex = ifindex;
  return hop;
}

Route MakeRoute(const char* prefix, std::vector<RouteNextHop> hops,
                uint32_t priority = 0) {
  return Route{Prefix(prefix), priority, RouteKind::kUnicast, std::move(hops)};
}

TEST(RouteTable, LongestPrefixWinsForIpv4AndIpv6) {
  RouteTable table = RouteTable::Build({
      MakeRoute("0.0.0.0/0", {Via("192.0.2.1", 1)}),
      MakeRoute("198.51.100.0/24", {Via("192.0.2.2", 1)}),
      MakeRoute("198.51.100.128/25", {Via("192.0.2.3", 1)}),
      MakeRoute("198.51.100.200/32", {Connected(2)}),
      MakeRoute("::/0", {Via("2001:db8::1", 1)}),
      MakeRoute("2001:db8:1::/48", {Via("2001:db8::2", 1)}),
      MakeRoute("2001:db8:1:2::/64", {Connected(3)}),
  });
  auto gateway = [&](const char* address) {
    const Route* route = table.Lookup(Ip(address));
    return route == nullptr ? std::string("none")
                            : route->destination.ToString();
  };
  EXPECT_EQ(gateway("198.51.100.7"), "198.51.100.0/24");
  EXPECT_EQ(gateway("198.51.100.130"), "198.51.100.128/25");
  EXPECT_EQ(gateway("198.51.100.200"), "198.51.100.200/32");
  EXPECT_EQ(gateway("203.0.113.1"), "0.0.0.0/0");
  EXPECT_EQ(gateway("2001:db8:1:2::9"), "2001:db8:1:2::/64");
  EXPECT_EQ(gateway("2001:db8:1:3::9"), "2001:db8:1::/48");
  EXPECT_EQ(gateway("2001:db8:ffff::1"), "::/0");
}

TEST(RouteTable, NoRouteWithoutADefault) {
  RouteTable table =
      RouteTable::Build({MakeRoute("198.51.100.0/24", {Connected(2)})});
  EXPECT_EQ(table.Lookup(Ip("203.0.113.1")), nullptr);
  EXPECT_EQ(table.Lookup(Ip("2001:db8::1")), nullptr);  // Other family.
}

TEST(RouteTable, LowestPriorityWinsForOnePrefix) {
  RouteTable table = RouteTable::Build({
      MakeRoute("198.51.100.0/24", {Via("192.0.2.2", 1)}, 200),
      MakeRoute("198.51.100.0/24", {Via("192.0.2.3", 1)}, 100),
      MakeRoute("198.51.100.0/24", {Via("192.0.2.4", 1)}, 300),
  });
  EXPECT_EQ(table.size(), 1u);
  const Route* route = table.Lookup(Ip("198.51.100.1"));
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->next_hops[0].gateway, Ip("192.0.2.3"));
}

TEST(RouteTable, RejectRouteStopsTheLookup) {
  RouteTable table = RouteTable::Build({
      MakeRoute("0.0.0.0/0", {Via("192.0.2.1", 1)}),
      Route{Prefix("198.51.100.0/24"), 0, RouteKind::kReject, {}},
  });
  const Route* route = table.Lookup(Ip("198.51.100.1"));
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->kind, RouteKind::kReject);
  EXPECT_EQ(RouteTable::SelectNextHop(*route, 0), nullptr);
}

TEST(RouteTable, EcmpSharesFollowWeightsAndHashZeroTakesTheFirst) {
  const Route route = MakeRoute(
      "203.0.113.0/24", {Via("192.0.2.1", 1, 1), Via("192.0.2.2", 1, 3)});
  EXPECT_EQ(RouteTable::SelectNextHop(route, 0)->gateway, Ip("192.0.2.1"));
  std::map<std::string, int> picks;
  for (uint64_t hash = 0; hash < 4000; ++hash) {
    ++picks[RouteTable::SelectNextHop(route, hash)->gateway.ToString()];
  }
  EXPECT_EQ(picks["192.0.2.1"], 1000);
  EXPECT_EQ(picks["192.0.2.2"], 3000);
  // The same hash always picks the same next hop.
  EXPECT_EQ(RouteTable::SelectNextHop(route, 12345),
            RouteTable::SelectNextHop(route, 12345));
}

TEST(RouteTable, EgressFilterPicksOnlyAmongThatInterfacesNextHops) {
  const Route route = MakeRoute(
      "203.0.113.0/24",
      {Via("192.0.2.1", 1), Via("198.51.100.1", 2), Via("198.51.100.2", 2)});
  for (uint64_t hash = 0; hash < 10; ++hash) {
    const RouteNextHop* hop = RouteTable::SelectNextHop(route, hash, 2);
    ASSERT_NE(hop, nullptr);
    EXPECT_EQ(hop->ifindex, 2);
  }
  EXPECT_EQ(RouteTable::SelectNextHop(route, 0, 2)->gateway,
            Ip("198.51.100.1"));
  EXPECT_EQ(RouteTable::SelectNextHop(route, 1, 2)->gateway,
            Ip("198.51.100.2"));
  EXPECT_EQ(RouteTable::SelectNextHop(route, 0, 3), nullptr);
  const Route single = MakeRoute("192.0.2.0/24", {Connected(1)});
  EXPECT_EQ(RouteTable::SelectNextHop(single, 0, 2), nullptr);
  EXPECT_NE(RouteTable::SelectNextHop(single, 0, 1), nullptr);
}

TEST(NeighborTable, FindsByInterfaceAndAddress) {
  NeighborTable::Map map;
  map[NeighborKey{2, Ip("192.0.2.1")}] =
      NeighborEntry{{2, 0, 0, 0, 0, 1}, true, 0x02 /* NUD_REACHABLE */};
  map[NeighborKey{3, Ip("192.0.2.1")}] =
      NeighborEntry{{}, false, 0x01 /* NUD_INCOMPLETE */};
  NeighborTable table(std::move(map));
  ASSERT_NE(table.Find(2, Ip("192.0.2.1")), nullptr);
  EXPECT_TRUE(table.Find(2, Ip("192.0.2.1"))->usable());
  ASSERT_NE(table.Find(3, Ip("192.0.2.1")), nullptr);
  EXPECT_FALSE(table.Find(3, Ip("192.0.2.1"))->usable());
  EXPECT_EQ(table.Find(4, Ip("192.0.2.1")), nullptr);
  EXPECT_EQ(table.Find(2, Ip("192.0.2.2")), nullptr);
}

}  // namespace
}  // namespace anylb::routing::netlink
