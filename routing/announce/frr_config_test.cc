#include "routing/announce/frr_config.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::routing::announce {
namespace {

using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

// Running renders an OwnedConfig the way `show running-config` does, with
// some of the operator's config around it.
std::string Running(const OwnedConfig& owned) {
  std::string out =
      "Building configuration...\n\nCurrent configuration:\n!\nfrr version "
      "8.4.4\nhostname lb1\n!\nrouter bgp 65001\n address-family ipv4 "
      "unicast\n  redistribute kernel route-map ANYLB-BGP\n "
      "exit-address-family\nexit\n!\nip prefix-list OPERATOR seq 5 permit "
      "10.0.0.0/8\n!\n";
  for (const std::string& line : owned.prefix_list_lines) {
    absl::StrAppend(&out, line, "\n!\n");
  }
  for (const auto& [entry, lines] : owned.route_map_entries) {
    absl::StrAppend(&out, entry, "\n");
    for (const std::string& line : lines) {
      absl::StrAppend(&out, " ", line, "\n");
    }
    out += "exit\n!\n";
  }
  out +=
      "route-map OPERATOR-OUT permit 10\n set local-preference "
      "50\nexit\n!\nend\n";
  return out;
}

// Apply plays `commands` onto `running` the way FRR does (enough for the
// commands DiffCommands emits).
OwnedConfig Apply(OwnedConfig running,
                  const std::vector<std::string>& commands) {
  std::string entry;
  for (const std::string& c : commands) {
    if (c == "exit") {
      entry.clear();
    } else if (absl::StartsWith(c, "route-map ")) {
      entry = c;
      running.route_map_entries[entry];
    } else if (absl::StartsWith(c, "no route-map ")) {
      running.route_map_entries.erase(c.substr(3));
    } else if (absl::StartsWith(c, "no ip") && entry.empty()) {
      running.prefix_list_lines.erase(c.substr(3));
    } else if (absl::StartsWith(c, "ip") && entry.empty()) {
      running.prefix_list_lines.insert(c);
    } else if (absl::StartsWith(c, "no ")) {
      running.route_map_entries[entry].erase(CanonicalLine(c.substr(3)));
    } else {
      auto& lines = running.route_map_entries[entry];
      // A set/match of the same kind replaces the old one.
      std::string kind = c.substr(0, c.rfind(' '));
      if (absl::StartsWith(c, "set community ")) kind = "set community";
      for (auto it = lines.begin(); it != lines.end();) {
        it = absl::StartsWith(*it, kind) ? lines.erase(it) : std::next(it);
      }
      lines.insert(CanonicalLine(c));
    }
  }
  return running;
}

TEST(FrrConfig, CatchAllEntryCarriesTheWeightAsLinkBandwidth) {
  FrrIntent intent;
  intent.device = "anylb0";
  intent.bandwidth_mbps = 40;
  ASSERT_OK_AND_ASSIGN(OwnedConfig desired,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  EXPECT_THAT(desired.prefix_list_lines, IsEmpty());
  ASSERT_EQ(desired.route_map_entries.size(), 1u);
  EXPECT_THAT(desired.route_map_entries["route-map ANYLB-BGP permit 10000"],
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 40"));
}

TEST(FrrConfig, DrainSetsTheDrainBandwidthAndGshut) {
  FrrIntent intent;
  intent.bandwidth_mbps = 40;
  intent.drained = true;
  // Without drain_gshut: only the drain bandwidth.
  ASSERT_OK_AND_ASSIGN(OwnedConfig plain,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  EXPECT_THAT(plain.route_map_entries["route-map ANYLB-BGP permit 10000"],
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 1"));
  intent.drain_gshut = true;
  ASSERT_OK_AND_ASSIGN(OwnedConfig desired,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  EXPECT_THAT(desired.route_map_entries["route-map ANYLB-BGP permit 10000"],
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 1",
                                   "set community 65535:0"));
  ASSERT_OK_AND_ASSIGN(OwnedConfig ospf,
                       DesiredConfig(intent, RoutingProtocol::kOspf, {}));
  EXPECT_THAT(
      ospf.route_map_entries["route-map ANYLB-OSPF permit 10000"],
      UnorderedElementsAre("match interface anylb0", "set metric 16777214"));
}

TEST(FrrConfig, VipsWithCommunitiesGetTheirOwnEntryAndPrefixList) {
  FrrIntent intent;
  intent.bandwidth_mbps = 10;
  intent.communities[Ip("192.0.2.10")] = {65000u << 16 | 100};
  intent.communities[Ip("2001:db8::10")] = {65000u << 16 | 200,
                                            65000u << 16 | 100};
  ASSERT_OK_AND_ASSIGN(OwnedConfig desired,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  EXPECT_THAT(
      desired.prefix_list_lines,
      UnorderedElementsAre(
          "ip prefix-list ANYLB-V4-192.0.2.10 seq 5 permit 192.0.2.10/32",
          "ipv6 prefix-list ANYLB-V6-2001-db8--10 seq 5 permit "
          "2001:db8::10/128"));
  EXPECT_THAT(desired.route_map_entries["route-map ANYLB-BGP permit 100"],
              UnorderedElementsAre(
                  "match interface anylb0",
                  "match ip address prefix-list ANYLB-V4-192.0.2.10",
                  "set extcommunity bandwidth 10", "set community 65000:100"));
  EXPECT_THAT(desired.route_map_entries["route-map ANYLB-BGP permit 101"],
              UnorderedElementsAre(
                  "match interface anylb0",
                  "match ipv6 address prefix-list ANYLB-V6-2001-db8--10",
                  "set extcommunity bandwidth 10",
                  "set community 65000:100 65000:200"));
}

TEST(FrrConfig, ParseKeepsOnlyLbnodesPartInFrrsSpelling) {
  std::string text =
      "!\nrouter bgp 65001\n address-family ipv4 unicast\n  redistribute "
      "kernel route-map ANYLB-BGP\n exit-address-family\nexit\n!\n"
      "ip prefix-list OPERATOR seq 5 permit 10.0.0.0/8\n"
      "ip prefix-list ANYLB-V4-192.0.2.10 seq 5 permit 192.0.2.10/32\n!\n"
      "route-map ANYLB-BGP permit 100\n match interface anylb0\n match ip "
      "address prefix-list ANYLB-V4-192.0.2.10\n set community 65000:100 "
      "graceful-shutdown\n set extcommunity bandwidth 100\nexit\n!\n"
      "route-map OPERATOR permit 10\n set metric 5\nexit\n!\n"
      "route-map ANYLB-BGP permit 10000\n match interface "
      "anylb0\nexit\n!\nend\n";
  OwnedConfig owned = ParseOwnedConfig(text);
  EXPECT_THAT(owned.prefix_list_lines,
              ElementsAre("ip prefix-list ANYLB-V4-192.0.2.10 seq 5 permit "
                          "192.0.2.10/32"));
  ASSERT_EQ(owned.route_map_entries.size(), 2u);
  EXPECT_THAT(
      owned.route_map_entries["route-map ANYLB-BGP permit 100"],
      UnorderedElementsAre("match interface anylb0",
                           "match ip address prefix-list ANYLB-V4-192.0.2.10",
                           "set community 65000:100 65535:0",
                           "set extcommunity bandwidth 100"));
  EXPECT_THAT(owned.route_map_entries["route-map ANYLB-BGP permit 10000"],
              ElementsAre("match interface anylb0"));
}

TEST(FrrConfig, NothingToDoWhenFrrRunsTheIntent) {
  FrrIntent intent;
  intent.bandwidth_mbps = 7;
  intent.drained = true;
  intent.drain_gshut = true;
  intent.communities[Ip("192.0.2.10")] = {65000u << 16 | 100};
  ASSERT_OK_AND_ASSIGN(OwnedConfig desired,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  OwnedConfig running = ParseOwnedConfig(Running(desired));
  EXPECT_EQ(running, desired);
  ASSERT_OK_AND_ASSIGN(OwnedConfig again,
                       DesiredConfig(intent, RoutingProtocol::kBgp, running));
  EXPECT_THAT(DiffCommands(running, again, MapsOf(RoutingProtocol::kBgp)),
              IsEmpty());
}

TEST(FrrConfig, WeightChangeEditsTheEntryInPlace) {
  FrrIntent intent;
  intent.bandwidth_mbps = 100;
  ASSERT_OK_AND_ASSIGN(OwnedConfig before,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  intent.bandwidth_mbps = 50;
  ASSERT_OK_AND_ASSIGN(OwnedConfig after,
                       DesiredConfig(intent, RoutingProtocol::kBgp, before));
  // No `no route-map`, no `no set`: the new value replaces the old one.
  EXPECT_THAT(DiffCommands(before, after, MapsOf(RoutingProtocol::kBgp)),
              ElementsAre("route-map ANYLB-BGP permit 10000",
                          "set extcommunity bandwidth 50", "exit"));
}

TEST(FrrConfig, UndrainRemovesGshutAndTheDrainMetric) {
  FrrIntent intent;
  intent.bandwidth_mbps = 100;
  intent.drained = true;
  intent.drain_gshut = true;
  ASSERT_OK_AND_ASSIGN(OwnedConfig drained,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  ASSERT_OK_AND_ASSIGN(OwnedConfig drained_ospf,
                       DesiredConfig(intent, RoutingProtocol::kOspf, {}));
  intent.drained = false;
  ASSERT_OK_AND_ASSIGN(OwnedConfig active,
                       DesiredConfig(intent, RoutingProtocol::kBgp, drained));
  ASSERT_OK_AND_ASSIGN(
      OwnedConfig active_ospf,
      DesiredConfig(intent, RoutingProtocol::kOspf, drained_ospf));
  EXPECT_THAT(DiffCommands(drained, active, MapsOf(RoutingProtocol::kBgp)),
              ElementsAre("route-map ANYLB-BGP permit 10000",
                          "no set community 65535:0",
                          "set extcommunity bandwidth 100", "exit"));
  EXPECT_THAT(
      DiffCommands(drained_ospf, active_ospf, MapsOf(RoutingProtocol::kOspf)),
      ElementsAre("route-map ANYLB-OSPF permit 10000", "no set metric 16777214",
                  "exit"));
}

TEST(FrrConfig, AddedAndRemovedVipsKeepOtherEntriesAndOrderTheirPrefixLists) {
  FrrIntent intent;
  intent.bandwidth_mbps = 10;
  intent.communities[Ip("192.0.2.10")] = {1u << 16 | 1};
  intent.communities[Ip("192.0.2.20")] = {2u << 16 | 2};
  ASSERT_OK_AND_ASSIGN(OwnedConfig v1,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  // 192.0.2.10 (seq 100) goes, 192.0.2.5 comes: it takes the free 100,
  // 192.0.2.20 keeps 101.
  intent.communities.erase(Ip("192.0.2.10"));
  intent.communities[Ip("192.0.2.5")] = {5u << 16 | 5};
  ASSERT_OK_AND_ASSIGN(OwnedConfig v2,
                       DesiredConfig(intent, RoutingProtocol::kBgp, v1));
  EXPECT_THAT(
      v2.route_map_entries["route-map ANYLB-BGP permit 101"],
      ::testing::Contains("match ip address prefix-list ANYLB-V4-192.0.2.20"));
  std::vector<std::string> commands =
      DiffCommands(v1, v2, MapsOf(RoutingProtocol::kBgp));
  EXPECT_THAT(
      commands,
      ElementsAre("ip prefix-list ANYLB-V4-192.0.2.5 seq 5 permit 192.0.2.5/32",
                  "route-map ANYLB-BGP permit 100",
                  "match ip address prefix-list ANYLB-V4-192.0.2.5",
                  "set community 5:5", "exit",
                  "no ip prefix-list ANYLB-V4-192.0.2.10 seq 5 permit "
                  "192.0.2.10/32"));
  EXPECT_EQ(Apply(v1, commands), v2);

  // Last VIP with communities gone: its entry is deleted, the catch-all
  // stays.
  intent.communities.clear();
  ASSERT_OK_AND_ASSIGN(OwnedConfig v3,
                       DesiredConfig(intent, RoutingProtocol::kBgp, v2));
  commands = DiffCommands(v2, v3, MapsOf(RoutingProtocol::kBgp));
  EXPECT_THAT(commands,
              ElementsAre("no route-map ANYLB-BGP permit 100",
                          "no route-map ANYLB-BGP permit 101",
                          "no ip prefix-list ANYLB-V4-192.0.2.20 seq 5 permit "
                          "192.0.2.20/32",
                          "no ip prefix-list ANYLB-V4-192.0.2.5 seq 5 permit "
                          "192.0.2.5/32"));
  EXPECT_EQ(Apply(v2, commands), v3);
}

TEST(FrrConfig, AMissingRouteMapIsCreatedMatchLinesFirst) {
  FrrIntent intent;
  intent.bandwidth_mbps = 3;
  ASSERT_OK_AND_ASSIGN(OwnedConfig desired,
                       DesiredConfig(intent, RoutingProtocol::kBgp, {}));
  EXPECT_THAT(
      DiffCommands({}, desired, MapsOf(RoutingProtocol::kBgp)),
      ElementsAre("route-map ANYLB-BGP permit 10000", "match interface anylb0",
                  "set extcommunity bandwidth 3", "exit"));
}

TEST(FrrConfig, StrayEntriesOfOurMapAreRemovedButOtherMapsAreNotTouched) {
  OwnedConfig running = ParseOwnedConfig(
      "route-map ANYLB-BGP deny 5\nexit\nroute-map ANYLB-OSPF permit 10000\n "
      "match interface anylb0\nexit\nroute-map ANYLB-BGP permit 10000\n "
      "match interface anylb0\n set extcommunity bandwidth 1\n set metric "
      "7\nexit\n");
  FrrIntent intent;
  intent.bandwidth_mbps = 1;
  ASSERT_OK_AND_ASSIGN(OwnedConfig desired,
                       DesiredConfig(intent, RoutingProtocol::kBgp, running));
  EXPECT_THAT(DiffCommands(running, desired, MapsOf(RoutingProtocol::kBgp)),
              ElementsAre("route-map ANYLB-BGP permit 10000", "no set metric 7",
                          "exit", "no route-map ANYLB-BGP deny 5"));
}

TEST(FrrConfig, CommunitiesAndProtocolsAreParsedStrictly) {
  EXPECT_THAT(ParseCommunity("65000:100"), IsOkAndHolds(65000u << 16 | 100));
  EXPECT_THAT(ParseCommunity("graceful-shutdown"),
              IsOkAndHolds(kGracefulShutdown));
  EXPECT_THAT(ParseCommunity("65536:1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"65536:1\" is not AA:NN")));
  EXPECT_THAT(ParseCommunity("100"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(CanonicalLine(" set community no-export 1:2 graceful-shutdown"),
            "set community 1:2 65535:0 65535:65281");
  ASSERT_OK_AND_ASSIGN(std::vector<RoutingProtocol> p,
                       ParseProtocols("bgp, OSPF,ospf6,bgp"));
  EXPECT_THAT(p, ElementsAre(RoutingProtocol::kBgp, RoutingProtocol::kOspf,
                             RoutingProtocol::kOspf6));
  EXPECT_THAT(ParseProtocols("bgp,isis"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"isis\" unknown")));
}

TEST(FrrConfig, WeightMapsToBandwidthWithinFrrsRange) {
  EXPECT_EQ(BandwidthForWeight(0), 1u);
  EXPECT_EQ(BandwidthForWeight(1), 1u);
  EXPECT_EQ(BandwidthForWeight(300), 300u);
  EXPECT_EQ(BandwidthForWeight(1000000), kMaxBandwidthMbps);
}

}  // namespace
}  // namespace anylb::routing::announce
