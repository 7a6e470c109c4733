#include "controller/service/fleet_health.h"

#include <optional>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::controller {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const BackendKey kWeb{"web", "198.51.100.2", 80};

lb::v1::HealthReport Report(
    lb::v1::HealthState state, const std::string& error = "",
    std::optional<uint32_t> dynamic_weight = std::nullopt,
    const std::string& address = "198.51.100.2") {
  lb::v1::HealthReport r;
  r.mutable_backend()->set_service_name("web");
  r.mutable_backend()->set_address(address);
  r.mutable_backend()->set_port(80);
  r.set_state(state);
  r.set_last_error(error);
  if (dynamic_weight.has_value()) r.set_dynamic_weight(*dynamic_weight);
  return r;
}

NodeReports Node(const std::string& name,
                 std::vector<lb::v1::HealthReport> reports,
                 absl::Duration age = absl::Seconds(1)) {
  return {name, kNow - age, std::move(reports)};
}

constexpr auto kUp = lb::v1::HEALTH_STATE_UP;
constexpr auto kDown = lb::v1::HEALTH_STATE_DOWN;
constexpr auto kUnspecified = lb::v1::HEALTH_STATE_UNSPECIFIED;

FleetVerdict Decide(const std::vector<NodeReports>& nodes,
                    FleetHealthOptions options = {}) {
  auto verdicts = DecideFleetHealth(nodes, kNow, options);
  auto it = verdicts.find(kWeb);
  EXPECT_NE(it, verdicts.end());
  return it == verdicts.end() ? FleetVerdict{} : it->second;
}

TEST(FleetHealth, OneOfTwoDownIsStillUp) {
  FleetVerdict v = Decide({Node("lb1", {Report(kDown, "connect: refused")}),
                           Node("lb2", {Report(kUp)})});
  EXPECT_EQ(v.state, kUp);
  EXPECT_EQ(v.reporters, 2);
  EXPECT_EQ(v.down_reporters, 1);
  EXPECT_THAT(v.reason, HasSubstr("1 of 2 nodes see it down (lb1: connect: "
                                  "refused), not more than 50%"));
}

TEST(FleetHealth, MajorityDownIsDownWithEveryNodesError) {
  FleetVerdict v = Decide({Node("lb1", {Report(kDown, "connect: refused")}),
                           Node("lb2", {Report(kDown, "timeout after 2s")}),
                           Node("lb3", {Report(kUp)})});
  EXPECT_EQ(v.state, kDown);
  EXPECT_EQ(v.reason,
            "2 of 3 nodes see it down (lb1: connect: refused; lb2: timeout "
            "after 2s)");
}

TEST(FleetHealth, TieIsUpAtHalf) {
  FleetVerdict v =
      Decide({Node("lb1", {Report(kDown)}), Node("lb2", {Report(kDown)}),
              Node("lb3", {Report(kUp)}), Node("lb4", {Report(kUp)})});
  EXPECT_EQ(v.state, kUp);
  EXPECT_EQ(v.down_reporters, 2);
}

TEST(FleetHealth, FractionZeroMeansAnyOneNode) {
  FleetVerdict v =
      Decide({Node("lb1", {Report(kDown)}), Node("lb2", {Report(kUp)}),
              Node("lb3", {Report(kUp)})},
             {.down_fraction = 0});
  EXPECT_EQ(v.state, kDown);
  EXPECT_THAT(v.reason, HasSubstr("1 of 3 nodes see it down (lb1: down)"));
}

TEST(FleetHealth, HigherFractionNeedsMoreNodes) {
  std::vector<NodeReports> nodes = {
      Node("lb1", {Report(kDown)}), Node("lb2", {Report(kDown)}),
      Node("lb3", {Report(kDown)}), Node("lb4", {Report(kUp)})};
  EXPECT_EQ(Decide(nodes, {.down_fraction = 0.75}).state, kUp);
  EXPECT_EQ(Decide(nodes, {.down_fraction = 0.7}).state, kDown);
}

TEST(FleetHealth, StaleNodeDoesNotCount) {
  FleetVerdict v = Decide({Node("lb1", {Report(kDown)}, absl::Seconds(16)),
                           Node("lb2", {Report(kDown)}, absl::Seconds(16)),
                           Node("lb3", {Report(kUp)}, absl::Seconds(14))});
  EXPECT_EQ(v.state, kUp);
  EXPECT_EQ(v.reporters, 1);
  ASSERT_EQ(v.nodes.size(), 3u);  // still shown, as not current
  EXPECT_FALSE(v.nodes[0].current);
  EXPECT_TRUE(v.nodes[2].current);
}

TEST(FleetHealth, TtlIsConfigurable) {
  std::vector<NodeReports> nodes = {
      Node("lb1", {Report(kDown)}, absl::Seconds(5))};
  EXPECT_EQ(Decide(nodes).state, kDown);
  EXPECT_EQ(Decide(nodes, {.report_ttl = absl::Seconds(5)}).state,
            kUnspecified);
}

TEST(FleetHealth, OnlyStaleReportsGiveNoVerdict) {
  FleetVerdict v = Decide({Node("lb1", {Report(kDown)}, absl::Minutes(1))});
  EXPECT_EQ(v.state, kUnspecified);
  EXPECT_EQ(v.reason, "no node with a current report checks it");
}

TEST(FleetHealth, UnspecifiedReportsAreIgnored) {
  FleetVerdict v =
      Decide({Node("lb1", {Report(kDown)}), Node("lb2", {Report(kUnspecified)}),
              Node("lb3", {Report(kUnspecified)})});
  // Only lb1 checks it: 1 of 1.
  EXPECT_EQ(v.state, kDown);
  EXPECT_EQ(v.reporters, 1);
  EXPECT_EQ(Decide({Node("lb1", {Report(kUnspecified)})}).state, kUnspecified);
}

TEST(FleetHealth, DynamicWeightIsLowerMedianOfUpNodes) {
  FleetVerdict v = Decide(
      {Node("lb1", {Report(kUp, "", 30)}), Node("lb2", {Report(kUp, "", 10)}),
       Node("lb3", {Report(kUp, "", 0)}),  // none: ignored
       Node("lb4", {Report(kUp, "", 20)}), Node("lb5", {Report(kUp, "", 40)}),
       Node("lb6", {Report(kDown, "x", 99)})});
  EXPECT_EQ(v.state, kUp);
  // Non-zero weights of UP nodes: 10 20 30 40 -> lower median 20.
  EXPECT_EQ(v.dynamic_weight, 20u);
  EXPECT_THAT(v.reason, HasSubstr("dynamic weight 20"));
}

TEST(FleetHealth, DynamicWeightOddCountAndNone) {
  EXPECT_EQ(Decide({Node("lb1", {Report(kUp, "", 7)}),
                    Node("lb2", {Report(kUp, "", 3)}),
                    Node("lb3", {Report(kUp, "", 5)})})
                .dynamic_weight,
            5u);
  EXPECT_EQ(Decide({Node("lb1", {Report(kUp)})}).dynamic_weight, std::nullopt);
  // 0 is a weight (keepalived's exit status 2: quiesce), not "none".
  EXPECT_EQ(
      Decide({Node("lb1", {Report(kUp, "", 0)}),
              Node("lb2", {Report(kUp, "", 0)}), Node("lb3", {Report(kUp)})})
          .dynamic_weight,
      0u);
  EXPECT_EQ(Decide({Node("lb1", {Report(kUp, "", 100000)})}).dynamic_weight,
            65535u);
}

TEST(FleetHealth, DownVerdictHasNoDynamicWeight) {
  EXPECT_EQ(
      Decide({Node("lb1", {Report(kDown, "", 5)}), Node("lb2", {Report(kDown)}),
              Node("lb3", {Report(kUp, "", 9)})})
          .dynamic_weight,
      std::nullopt);
}

TEST(FleetHealth, BackendsAreKeptApartAndAddressesCanonical) {
  auto verdicts = DecideFleetHealth(
      {Node("lb1", {Report(kDown, "", 0, "2001:DB8::0:1"), Report(kUp)})}, kNow,
      {});
  ASSERT_EQ(verdicts.size(), 2u);
  auto v6 = verdicts.find({"web", "2001:db8::1", 80});
  ASSERT_NE(v6, verdicts.end());
  EXPECT_EQ(v6->second.state, kDown);
  EXPECT_EQ(v6->second.backend.address(), "2001:db8::1");
  EXPECT_EQ(verdicts.at(kWeb).state, kUp);
}

TEST(FleetHealth, OptionsAreChecked) {
  EXPECT_THAT(ValidateFleetHealthOptions({}), IsOk());
  EXPECT_THAT(ValidateFleetHealthOptions({.down_fraction = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--health_down_fraction 1")));
  EXPECT_THAT(ValidateFleetHealthOptions({.down_fraction = -0.1}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateFleetHealthOptions({.report_ttl = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--health_report_ttl")));
}

}  // namespace
}  // namespace anylb::controller
