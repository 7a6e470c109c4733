#include "routing/announce/announcer.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "routing/announce/frr_config.h"
#include "routing/announce/vip_routes.h"
#include "routing/announce/vtysh.h"

namespace anylb::routing::announce {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }
IpPrefix Prefix(const char* text) { return *IpPrefix::Parse(text); }

// FakeRoutes records the routes and the order of events.
class FakeRoutes : public RouteHolder {
 public:
  explicit FakeRoutes(std::vector<std::string>* events) : events_(events) {}
  absl::Status Add(const IpAddress& vip) override {
    routes.insert(vip);
    events_->push_back(absl::StrCat("add ", vip.ToString()));
    return absl::OkStatus();
  }
  absl::Status Remove(const IpAddress& vip) override {
    routes.erase(vip);
    events_->push_back(absl::StrCat("remove ", vip.ToString()));
    return absl::OkStatus();
  }
  absl::Status AddPrefix(const IpPrefix& prefix) override {
    prefixes.insert(prefix.ToString());
    events_->push_back(absl::StrCat("add ", prefix.ToString()));
    return absl::OkStatus();
  }
  absl::Status RemovePrefix(const IpPrefix& prefix) override {
    prefixes.erase(prefix.ToString());
    events_->push_back(absl::StrCat("remove ", prefix.ToString()));
    return absl::OkStatus();
  }
  std::set<IpAddress> routes;
  std::set<std::string> prefixes;  // IpPrefix::ToString()

 private:
  std::vector<std::string>* events_;
};

// FakeFrr keeps each daemon's running config and plays the configuration
// commands onto it the way FRR does (enough for what lbnode sends).
class FakeFrr : public Vtysh {
 public:
  explicit FakeFrr(std::vector<std::string>* events) : events_(events) {}
  absl::StatusOr<std::string> Run(
      const std::string& daemon,
      const std::vector<std::string>& commands) override {
    ++calls;
    if (down.contains(daemon)) {
      return absl::UnavailableError(
          absl::StrCat("vtysh -d ", daemon, ": ", daemon, " is not running"));
    }
    OwnedConfig& c = config[daemon];
    if (commands.size() == 1 && commands[0] == "show running-config") {
      std::string out;
      for (const std::string& line : c.prefix_list_lines) {
        absl::StrAppend(&out, line, "\n!\n");
      }
      for (const auto& [entry, lines] : c.route_map_entries) {
        absl::StrAppend(&out, entry, "\n");
        for (const std::string& l : lines) absl::StrAppend(&out, " ", l, "\n");
        out += "exit\n!\n";
      }
      return out;
    }
    events_->push_back(absl::StrCat("frr ", daemon));
    std::string entry;
    for (size_t i = 1; i < commands.size(); ++i) {
      const std::string& cmd = commands[i];
      if (cmd == "exit") {
        entry.clear();
      } else if (absl::StartsWith(cmd, "route-map ")) {
        entry = cmd;
        c.route_map_entries[entry];
      } else if (absl::StartsWith(cmd, "no route-map ")) {
        c.route_map_entries.erase(cmd.substr(3));
      } else if (entry.empty() && absl::StartsWith(cmd, "no ")) {
        c.prefix_list_lines.erase(cmd.substr(3));
      } else if (entry.empty()) {
        c.prefix_list_lines.insert(cmd);
      } else if (absl::StartsWith(cmd, "no ")) {
        c.route_map_entries[entry].erase(CanonicalLine(cmd.substr(3)));
      } else {
        auto& lines = c.route_map_entries[entry];
        std::string kind = absl::StartsWith(cmd, "set community ")
                               ? "set community"
                               : cmd.substr(0, cmd.rfind(' '));
        for (auto it = lines.begin(); it != lines.end();) {
          it = absl::StartsWith(*it, kind) ? lines.erase(it) : std::next(it);
        }
        lines.insert(CanonicalLine(cmd));
      }
    }
    return std::string();
  }

  // Lines of one entry.
  std::set<std::string> Entry(const std::string& daemon,
                              const std::string& entry) {
    return config[daemon].route_map_entries[entry];
  }

  std::map<std::string, OwnedConfig> config;
  std::set<std::string> down;
  int calls = 0;

 private:
  std::vector<std::string>* events_;
};

class HealthMap : public HealthSource {
 public:
  bool IsHealthy(const std::string& service,
                 const AnnounceBackend& backend) const override {
    return !unhealthy.contains(absl::StrCat(service, "/", backend.address));
  }
  std::set<std::string> unhealthy;
};

constexpr char kBgpEntry[] = "route-map ANYLB-BGP permit 10000";
constexpr char kOspfEntry[] = "route-map ANYLB-OSPF permit 10000";

class AnnouncerTest : public ::testing::Test {
 protected:
  AnnouncerTest() : routes_(&events_), frr_(&events_) {
    AnnouncerOptions o;
    o.device = "anylb0";
    o.clock = [this] { return now_; };
    o.oldest_progress = [this] { return progress_; };
    o.liveness_timeout = absl::Seconds(1);
    o.drain_gshut = true;  // the drain tests check GSHUT too
    o.health = &health_;
    o.frr.protocols = {RoutingProtocol::kBgp, RoutingProtocol::kOspf};
    o.frr.check_interval = absl::Seconds(5);
    o.frr.retry_interval = absl::Seconds(1);
    announcer_ = std::make_unique<Announcer>(o, &routes_, &frr_);
  }

  // Advance moves the clock; the dataplane keeps making progress.
  void Advance(absl::Duration d) {
    now_ += d;
    progress_ = now_;
  }

  static AnnounceService Service(const char* name, const char* vip,
                                 const std::vector<uint32_t>& weights) {
    AnnounceService s;
    s.name = name;
    s.vip = Ip(vip);
    int i = 1;
    for (uint32_t w : weights) {
      s.backends.push_back({absl::StrCat("198.51.100.", i++), 80, w, true});
    }
    return s;
  }

  std::vector<std::string> events_;
  FakeRoutes routes_;
  FakeFrr frr_;
  HealthMap health_;
  absl::Time now_ = absl::FromUnixSeconds(1000000);
  absl::Time progress_ = now_;
  std::unique_ptr<Announcer> announcer_;
};

TEST_F(AnnouncerTest, AnnouncesVipsWithQuorumAfterConfiguringFrr) {
  AnnounceConfig c;
  c.weight = 40;
  c.services = {Service("web", "192.0.2.10", {1}),
                Service("web6", "2001:db8::10", {1, 2})};
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes,
              UnorderedElementsAre(Ip("192.0.2.10"), Ip("2001:db8::10")));
  EXPECT_THAT(events_, ElementsAre("frr bgpd", "frr ospfd", "add 192.0.2.10",
                                   "add 2001:db8::10"));
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 40"));
  EXPECT_THAT(frr_.Entry("ospfd", kOspfEntry),
              ElementsAre("match interface anylb0"));
  AnnounceStatus s = announcer_->status();
  EXPECT_TRUE(s.frr_in_sync);
  ASSERT_EQ(s.vips.size(), 2u);
  EXPECT_TRUE(s.vips[0].announced);
  EXPECT_THAT(s.vips[0].reason, HasSubstr("announced (quorum: web)"));

  // Nothing changed: no vtysh configuration, no route change.
  events_.clear();
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(events_, IsEmpty());
}

TEST_F(AnnouncerTest, WeightChangeIsAppliedInPlaceWithoutTouchingRoutes) {
  AnnounceConfig c;
  c.weight = 100;
  c.services = {Service("web", "192.0.2.10", {1})};
  announcer_->SetConfig(c);
  announcer_->Step();
  events_.clear();
  c.weight = 50;
  announcer_->SetConfig(c);
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(events_, ElementsAre("frr bgpd"));
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              Contains("set extcommunity bandwidth 50"));
}

TEST_F(AnnouncerTest, QuorumHasHysteresis) {
  AnnounceConfig c;
  AnnounceService s = Service("web", "192.0.2.10", {3});
  s.quorum_min_weight = 3;
  s.quorum_hysteresis = 2;
  c.services = {s};
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));

  auto set_weight = [&](uint32_t w) {
    c.services[0].backends[0].weight = w;
    announcer_->SetConfig(c);
    Advance(absl::Milliseconds(100));
    announcer_->Step();
  };
  set_weight(2);
  EXPECT_THAT(routes_.routes, IsEmpty());
  EXPECT_THAT(announcer_->status().vips[0].reason,
              HasSubstr("no service has quorum (web)"));
  set_weight(4);  // Above min_weight, below min_weight + hysteresis.
  EXPECT_THAT(routes_.routes, IsEmpty());
  set_weight(5);
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
  set_weight(3);  // Held at min_weight.
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
}

TEST_F(AnnouncerTest, OnlyEnabledHealthyBackendsWithWeightCount) {
  AnnounceConfig c;
  AnnounceService s = Service("web", "192.0.2.10", {0, 1, 1});
  s.backends[1].enabled = false;  // Draining or disabled.
  c.services = {s};
  health_.unhealthy.insert("web/198.51.100.3");
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, IsEmpty());
  health_.unhealthy.clear();
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
}

TEST_F(AnnouncerTest, AVipIsAnnouncedWhileAnyOfItsServicesHasQuorum) {
  AnnounceConfig c;
  c.services = {Service("http", "192.0.2.10", {0}),
                Service("https", "192.0.2.10", {1})};
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
  c.services[1].backends[0].weight = 0;
  announcer_->SetConfig(c);
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(routes_.routes, IsEmpty());
  EXPECT_THAT(announcer_->status().vips[0].reason,
              HasSubstr("no service has quorum (http, https)"));
}

TEST_F(AnnouncerTest, StalledDataplaneWithdrawsEveryVipAndRecoveryAnnounces) {
  AnnounceConfig c;
  c.services = {Service("a", "192.0.2.10", {1}),
                Service("b", "2001:db8::10", {1})};
  announcer_->SetConfig(c);
  announcer_->Step();
  ASSERT_EQ(routes_.routes.size(), 2u);
  // Workers stop making progress: within the timeout nothing happens...
  now_ += absl::Milliseconds(900);
  announcer_->Step();
  EXPECT_EQ(routes_.routes.size(), 2u);
  // ...past it, everything goes at once.
  now_ += absl::Milliseconds(200);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, IsEmpty());
  AnnounceStatus s = announcer_->status();
  EXPECT_FALSE(s.dataplane_live);
  EXPECT_THAT(s.vips[0].reason, HasSubstr("dataplane stalled"));
  Advance(absl::Milliseconds(10));
  announcer_->Step();
  EXPECT_EQ(routes_.routes.size(), 2u);
  EXPECT_TRUE(announcer_->status().dataplane_live);
}

TEST_F(AnnouncerTest, DrainLowersTheWeightThenWithdrawsAndUndrainRestores) {
  AnnounceConfig c;
  c.weight = 100;
  c.drain_period = absl::Seconds(30);
  AnnounceService s = Service("web", "192.0.2.10", {1});
  s.communities = {65000u << 16 | 100};
  c.services = {s};
  announcer_->SetConfig(c);
  announcer_->Step();
  events_.clear();

  announcer_->Drain();
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 1",
                                   "set community 65535:0"));
  EXPECT_THAT(frr_.Entry("bgpd", "route-map ANYLB-BGP permit 100"),
              Contains("set community 65000:100 65535:0"));
  EXPECT_THAT(frr_.Entry("ospfd", kOspfEntry), Contains("set metric 16777214"));
  EXPECT_THAT(announcer_->status().vips[0].reason, HasSubstr("draining"));
  EXPECT_EQ(announcer_->status().bandwidth_mbps, 1u);

  Advance(absl::Seconds(29));
  announcer_->Step();
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
  Advance(absl::Seconds(1));
  announcer_->Step();
  EXPECT_THAT(routes_.routes, IsEmpty());
  EXPECT_TRUE(announcer_->status().drain_complete);
  EXPECT_THAT(events_,
              ElementsAre("frr bgpd", "frr ospfd", "remove 192.0.2.10"));

  events_.clear();
  announcer_->Undrain();
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(events_, ElementsAre("frr bgpd", "frr ospfd", "add 192.0.2.10"));
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 100"));
  EXPECT_THAT(frr_.Entry("ospfd", kOspfEntry),
              ElementsAre("match interface anylb0"));
}

TEST_F(AnnouncerTest, AdminDrainHoldsUntilTheFilesAdminStateChanges) {
  AnnounceConfig c;
  c.services = {Service("web", "192.0.2.10", {1})};
  announcer_->SetConfig(c);
  announcer_->Drain();
  announcer_->Step();
  EXPECT_TRUE(announcer_->status().drained);
  EXPECT_TRUE(announcer_->status().admin_override);
  announcer_->SetConfig(c);  // A reload with the same admin_state.
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_TRUE(announcer_->status().drained);
  c.drained = true;  // The file drains...
  announcer_->SetConfig(c);
  c.drained = false;  // ...and undrains: the file wins.
  announcer_->SetConfig(c);
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_FALSE(announcer_->status().drained);
  EXPECT_FALSE(announcer_->status().admin_override);
}

TEST_F(AnnouncerTest, FrrErrorsAreCountedRetriedAndDoNotHoldRoutesBack) {
  frr_.down.insert("bgpd");
  AnnounceConfig c;
  c.weight = 20;
  c.services = {Service("web", "192.0.2.10", {1})};
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, ElementsAre(Ip("192.0.2.10")));
  AnnounceStatus s = announcer_->status();
  EXPECT_FALSE(s.frr_in_sync);
  EXPECT_EQ(s.frr_apply_errors, 1u);
  EXPECT_THAT(s.frr_last_error, HasSubstr("bgpd is not running"));
  // Not retried before retry_interval...
  int calls = frr_.calls;
  Advance(absl::Milliseconds(500));
  announcer_->Step();
  EXPECT_EQ(frr_.calls, calls);
  // ...then retried, and counted again.
  Advance(absl::Milliseconds(600));
  announcer_->Step();
  EXPECT_EQ(announcer_->status().frr_apply_errors, 2u);
  // bgpd comes up: applied at the next retry.
  frr_.down.clear();
  Advance(absl::Seconds(1));
  announcer_->Step();
  s = announcer_->status();
  EXPECT_TRUE(s.frr_in_sync);
  EXPECT_EQ(s.frr_last_error, "");
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              Contains("set extcommunity bandwidth 20"));
}

TEST_F(AnnouncerTest, ADaemonThatLostItsConfigIsConfiguredAgain) {
  AnnounceConfig c;
  c.weight = 20;
  c.services = {Service("web", "192.0.2.10", {1})};
  announcer_->SetConfig(c);
  announcer_->Step();
  frr_.config.erase("bgpd");  // bgpd restarted from frr.conf.
  Advance(absl::Seconds(4));
  announcer_->Step();
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry), IsEmpty());
  Advance(absl::Seconds(1));  // check_interval after the last check.
  announcer_->Step();
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              Contains("set extcommunity bandwidth 20"));
}

TEST_F(AnnouncerTest, LocalAddressesAreAnnouncedWithoutAnyQuorum) {
  AnnounceConfig c;
  c.weight = 40;
  // The only service has no quorum (its real server has weight 0), and a
  // node with no service at all must still get its FULLNAT replies.
  c.services = {Service("web", "192.0.2.10", {0})};
  c.local_addresses = {Prefix("192.0.2.64/28"), Prefix("2001:db8:1::/120")};
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, IsEmpty());
  EXPECT_THAT(routes_.prefixes,
              UnorderedElementsAre("192.0.2.64/28", "2001:db8:1::/120"));
  // FRR first (same route-map as the VIPs: they are on the same device).
  EXPECT_THAT(events_, ElementsAre("frr bgpd", "frr ospfd", "add 192.0.2.64/28",
                                   "add 2001:db8:1::/120"));
  EXPECT_THAT(frr_.Entry("bgpd", kBgpEntry),
              UnorderedElementsAre("match interface anylb0",
                                   "set extcommunity bandwidth 40"));
  AnnounceStatus s = announcer_->status();
  ASSERT_EQ(s.local_addresses.size(), 2u);
  EXPECT_TRUE(s.local_addresses[0].announced);
  EXPECT_THAT(s.local_addresses[0].reason, HasSubstr("FULLNAT"));
  EXPECT_THAT(announcer_->StatusJson(),
              HasSubstr(R"("local_addresses":[{"prefix":"192.0.2.64/28",)"
                        R"("announced":true,"wanted":true,)"));

  // A changed pool: the old prefix leaves, the new one comes, the kept one
  // is not touched.
  events_.clear();
  c.local_addresses = {Prefix("192.0.2.80/28"), Prefix("2001:db8:1::/120")};
  announcer_->SetConfig(c);
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(events_,
              ElementsAre("remove 192.0.2.64/28", "add 192.0.2.80/28"));
  EXPECT_THAT(routes_.prefixes,
              UnorderedElementsAre("192.0.2.80/28", "2001:db8:1::/120"));
}

TEST_F(AnnouncerTest, LocalAddressesLeaveOnStallAndComeBack) {
  AnnounceConfig c;
  c.services = {Service("web", "192.0.2.10", {1})};
  c.local_addresses = {Prefix("192.0.2.64/28")};
  announcer_->SetConfig(c);
  announcer_->Step();
  ASSERT_THAT(routes_.prefixes, ElementsAre("192.0.2.64/28"));
  now_ += absl::Milliseconds(1100);  // No progress past the timeout.
  announcer_->Step();
  EXPECT_THAT(routes_.prefixes, IsEmpty());
  EXPECT_THAT(routes_.routes, IsEmpty());
  EXPECT_THAT(announcer_->status().local_addresses[0].reason,
              HasSubstr("dataplane stalled"));
  Advance(absl::Milliseconds(10));
  announcer_->Step();
  EXPECT_THAT(routes_.prefixes, ElementsAre("192.0.2.64/28"));
}

TEST_F(AnnouncerTest, LocalAddressesStayThroughTheDrainUntilItCompletes) {
  AnnounceConfig c;
  c.drain_period = absl::Seconds(30);
  c.services = {Service("web", "192.0.2.10", {1})};
  c.local_addresses = {Prefix("192.0.2.64/28")};
  announcer_->SetConfig(c);
  announcer_->Step();
  announcer_->Drain();
  announcer_->Step();  // The drain starts.
  Advance(absl::Seconds(29));
  announcer_->Step();
  EXPECT_THAT(routes_.prefixes, ElementsAre("192.0.2.64/28"));
  EXPECT_THAT(announcer_->status().local_addresses[0].reason,
              HasSubstr("draining"));
  // Quorum loss during the drain does not take them either.
  c.services = {Service("web", "192.0.2.10", {0})};
  announcer_->SetConfig(c);
  announcer_->Step();
  EXPECT_THAT(routes_.routes, IsEmpty());
  EXPECT_THAT(routes_.prefixes, ElementsAre("192.0.2.64/28"));
  Advance(absl::Seconds(1));
  announcer_->Step();
  EXPECT_THAT(routes_.prefixes, IsEmpty());
  EXPECT_THAT(announcer_->status().local_addresses[0].reason,
              HasSubstr("drained"));
  announcer_->Undrain();
  Advance(absl::Milliseconds(100));
  announcer_->Step();
  EXPECT_THAT(routes_.prefixes, ElementsAre("192.0.2.64/28"));
}

TEST_F(AnnouncerTest, StatusJsonAndMetricsDescribeEachVip) {
  AnnounceConfig c;
  c.weight = 7;
  c.services = {Service("web", "192.0.2.10", {1}),
                Service("off", "192.0.2.20", {0})};
  announcer_->SetConfig(c);
  announcer_->Step();
  std::string json = announcer_->StatusJson();
  EXPECT_THAT(json, HasSubstr("\"admin_state\":\"active\""));
  EXPECT_THAT(json, HasSubstr("\"weight\":7"));
  EXPECT_THAT(json, HasSubstr("{\"vip\":\"192.0.2.10\",\"announced\":true"));
  EXPECT_THAT(json, HasSubstr("{\"vip\":\"192.0.2.20\",\"announced\":false"));
  std::vector<metrics::MetricFamily> families;
  ASSERT_TRUE(announcer_->Collect(&families).ok());
  std::string text;
  for (const auto& f : families) f.AppendText(&text);
  EXPECT_THAT(text, HasSubstr("anylb_vip_announced{vip=\"192.0.2.10\"} 1"));
  EXPECT_THAT(text, HasSubstr("anylb_vip_announced{vip=\"192.0.2.20\"} 0"));
  EXPECT_THAT(text, HasSubstr("anylb_node_admin_state 1"));
  EXPECT_THAT(text, HasSubstr("anylb_frr_apply_errors_total 0"));
  EXPECT_THAT(text, Not(HasSubstr("NaN")));
}

}  // namespace
}  // namespace anylb::routing::announce
