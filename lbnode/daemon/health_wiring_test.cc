#include "lbnode/daemon/health_wiring.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/config/config_yaml.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "routing/announce/announce_config.h"

namespace anylb::lbnode {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

agent::NodeIdentity Identity() {
  agent::NodeIdentity id;
  id.mac = {0x02, 0, 0, 0, 0, 1};
  id.tunnel_source_v4 = *IpAddress::Parse("203.0.113.1");
  return id;
}

lb::v1::ConfigSnapshot Config(const std::string& yaml) {
  absl::StatusOr<lb::v1::ConfigSnapshot> c =
      config::ParseConfigYaml(yaml, "test.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : lb::v1::ConfigSnapshot();
}

// kWeb: an mh service with an HTTP check, a DR real server checked on its
// own address, a draining and a disabled one, and a sorry server.
constexpr char kWeb[] = R"(
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocol: tcp
    scheduler: mh
    maglev_table_size: 251
    forwarding: {mode: dr}
    health_check: {http: {path: /healthz}}
    quorum: {min_weight: 2}
    backends:
      - {address: 198.51.100.1, weight: 2}
      - {address: 198.51.100.2, port: 80, weight: 3,
         health_check_address: 203.0.113.2, health_check_port: 8080}
      - {address: 198.51.100.3, state: draining}
      - {address: 198.51.100.4, state: disabled}
    sorry_backend: {address: 198.51.100.9}
  - name: all
    vip: 192.0.2.11
    port: 0
    protocol: tcp
    scheduler: wrr
    persistence: {timeout: 60s}
    forwarding: {mode: dr}
    health_check: {tcp: {}}
    backends:
      - {address: 198.51.100.5}
      - {address: 198.51.100.6, health_check_port: 22}
  - name: script
    vip: 192.0.2.12
    port: 0
    protocol: udp
    scheduler: wrr
    persistence: {timeout: 60s}
    forwarding: {mode: dr}
    health_check: {exec: {argv: [/bin/true]}}
    backends: [{address: 198.51.100.7}]
  - name: unchecked
    vip: 192.0.2.13
    port: 80
    protocol: tcp
    scheduler: wrr
    forwarding: {mode: dr}
    backends: [{address: 198.51.100.8}]
)";

TEST(CheckTargetsOf, ListsEnabledBackendsOfCheckedServicesWithConnectPoints) {
  std::vector<std::string> skipped;
  std::vector<health::CheckTarget> targets =
      CheckTargetsOf(Config(kWeb), &skipped);
  std::vector<std::string> seen;
  for (const health::CheckTarget& t : targets) {
    seen.push_back(absl::StrCat(t.key.service, " ", t.key.backend.ToString(),
                                " -> ", t.connect.ToString()));
  }
  // Port 0 stays 0 in the key (lb.v1.BackendRef) and is the VIP's port for
  // the connection; the draining one is checked, the disabled one not; an
  // all-ports service is checked where a health_check_port says, and by
  // exec with port 0.
  EXPECT_THAT(seen, ElementsAre("web 198.51.100.1:0 -> 198.51.100.1:80",
                                "web 198.51.100.2:80 -> 203.0.113.2:8080",
                                "web 198.51.100.3:0 -> 198.51.100.3:80",
                                "all 198.51.100.6:0 -> 198.51.100.6:22",
                                "script 198.51.100.7:0 -> 198.51.100.7:0"));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_THAT(skipped[0], HasSubstr("service \"all\" backend 198.51.100.5: an "
                                    "all-ports service has no port to check"));
  EXPECT_TRUE(targets[0].check.has_http());
}

health::BackendHealthStatus Status(const std::string& service,
                                   const std::string& backend,
                                   lb::v1::HealthState state) {
  health::BackendHealthStatus s;
  s.key = {service, *Endpoint::Parse(backend)};
  s.state = state;
  return s;
}

google::protobuf::Value ParseJson(const std::string& json) {
  google::protobuf::Value value;
  auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return value;
}

TEST(HealthReports, CarryStateLastChangeErrorAndWeight) {
  health::BackendHealthStatus down =
      Status("web", "198.51.100.1:0", lb::v1::HEALTH_STATE_DOWN);
  down.last_change = absl::FromUnixSeconds(1700000000);
  down.last_error = "HTTP status 500, want 200-299";
  down.probes = 7;
  down.failures = 3;
  health::BackendHealthStatus up =
      Status("web", "198.51.100.2:80", lb::v1::HEALTH_STATE_UP);
  up.dynamic_weight = 4;
  const health::BackendHealthStatus unknown =
      Status("web", "198.51.100.3:0", lb::v1::HEALTH_STATE_UNSPECIFIED);

  lb::v1::NodeStatus status;
  AddHealthReports({down, up, unknown}, &status);
  ASSERT_EQ(status.health_reports_size(), 3);
  const lb::v1::HealthReport& r = status.health_reports(0);
  EXPECT_EQ(r.backend().service_name(), "web");
  EXPECT_EQ(r.backend().address(), "198.51.100.1");
  EXPECT_EQ(r.backend().port(), 0u);
  EXPECT_EQ(r.state(), lb::v1::HEALTH_STATE_DOWN);
  EXPECT_EQ(r.last_change().seconds(), 1700000000);
  EXPECT_EQ(r.last_error(), "HTTP status 500, want 200-299");
  EXPECT_EQ(status.health_reports(1).dynamic_weight(), 4u);
  EXPECT_FALSE(status.health_reports(2).has_last_change());

  // /admin/health: the documented keys, the effective port, RFC 3339.
  const std::string json = HealthJson({up, down, unknown}, Config(kWeb));
  google::protobuf::Value value = ParseJson(json);
  ASSERT_EQ(value.list_value().values_size(), 3) << json;
  const auto& first = value.list_value().values(0).struct_value().fields();
  EXPECT_EQ(first.at("service").string_value(), "web");
  EXPECT_EQ(first.at("backend").string_value(), "198.51.100.1:80");
  EXPECT_EQ(first.at("state").string_value(), "down");
  EXPECT_EQ(first.at("last_change").string_value(),
            "2023-11-14T22:13:20+00:00");
  EXPECT_EQ(first.at("last_error").string_value(),
            "HTTP status 500, want 200-299");
  EXPECT_EQ(first.at("probes").number_value(), 7);
  EXPECT_EQ(first.at("failures").number_value(), 3);
  EXPECT_EQ(first.at("dynamic_weight").number_value(), 0);
  const auto& third = value.list_value().values(2).struct_value().fields();
  EXPECT_EQ(third.at("state").string_value(), "unknown");
  EXPECT_EQ(third.at("last_change").string_value(), "");
  EXPECT_EQ(HealthJson({}, Config(kWeb)), "[]\n");
}

TEST(ServicesJson, SameTableDigestOnEveryNodeWhateverTheLocalView) {
  const lb::v1::ConfigSnapshot config = Config(kWeb);
  // Node A sees .1 down by itself; node B sees everything up.
  ASSERT_OK_AND_ASSIGN(
      agent::EngineConfig a,
      agent::BuildEngineConfig(
          config, Identity(),
          {agent::BackendId{"web", *Endpoint::Parse("198.51.100.1:0")}}));
  ASSERT_OK_AND_ASSIGN(agent::EngineConfig b,
                       agent::BuildEngineConfig(config, Identity()));
  const std::string digest = TableDigest(a.snapshot->services()[0]);
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(digest, TableDigest(b.snapshot->services()[0]));
  EXPECT_EQ(TableDigest(a.snapshot->services()[1]), "");  // wrr

  const std::string json = ServicesJson(
      a, config, {Status("web", "198.51.100.1:0", lb::v1::HEALTH_STATE_DOWN)});
  google::protobuf::Value value = ParseJson(json);
  ASSERT_EQ(value.list_value().values_size(), 4) << json;
  const auto& web = value.list_value().values(0).struct_value().fields();
  EXPECT_EQ(web.at("name").string_value(), "web");
  EXPECT_EQ(web.at("vip").string_value(), "192.0.2.10");
  EXPECT_EQ(web.at("port").number_value(), 80);
  EXPECT_EQ(web.at("protocol").string_value(), "tcp");
  EXPECT_EQ(web.at("scheduler").string_value(), "mh");
  EXPECT_EQ(web.at("table_digest").string_value(), digest);
  EXPECT_FALSE(web.at("sorry_active").bool_value());
  const auto& backends = web.at("backends").list_value();
  ASSERT_EQ(backends.values_size(), 3) << json;  // .4 disabled
  const auto& first = backends.values(0).struct_value().fields();
  EXPECT_EQ(first.at("address").string_value(), "198.51.100.1");
  EXPECT_EQ(first.at("port").number_value(), 80);
  EXPECT_EQ(first.at("weight").number_value(), 2);
  EXPECT_FALSE(first.at("available").bool_value());
  EXPECT_EQ(first.at("fleet_state").string_value(), "up");  // absent
  EXPECT_EQ(first.at("local_state").string_value(), "down");
  const auto& second = backends.values(1).struct_value().fields();
  EXPECT_TRUE(second.at("available").bool_value());
  EXPECT_EQ(second.at("local_state").string_value(), "unchecked");

  // The fleet's verdict changes the table (same change on every node).
  lb::v1::ConfigSnapshot down = config;
  lb::v1::BackendHealth* h = down.add_backend_health();
  h->mutable_backend()->set_service_name("web");
  h->mutable_backend()->set_address("198.51.100.1");
  h->set_state(lb::v1::HEALTH_STATE_DOWN);
  ASSERT_OK_AND_ASSIGN(agent::EngineConfig c,
                       agent::BuildEngineConfig(down, Identity()));
  EXPECT_NE(TableDigest(c.snapshot->services()[0]), digest);
  value = ParseJson(ServicesJson(c, down, {}));
  const auto& first_down = value.list_value()
                               .values(0)
                               .struct_value()
                               .fields()
                               .at("backends")
                               .list_value()
                               .values(0)
                               .struct_value()
                               .fields();
  EXPECT_EQ(first_down.at("fleet_state").string_value(), "down");
  EXPECT_EQ(first_down.at("weight").number_value(), 0);

  // With on_failure: remove the engine leaves it out; the page still lists
  // it, last, removed.
  down.mutable_services(0)->mutable_health_check()->set_on_failure(
      lb::v1::FAILURE_ACTION_REMOVE);
  ASSERT_OK_AND_ASSIGN(agent::EngineConfig removed,
                       agent::BuildEngineConfig(down, Identity()));
  const std::string removed_json = ServicesJson(removed, down, {});
  EXPECT_THAT(removed_json,
              HasSubstr("{\"address\":\"198.51.100.1\",\"port\":80,"
                        "\"weight\":0,\"available\":false,\"fleet_state\":"
                        "\"down\",\"local_state\":\"unchecked\","
                        "\"removed\":true}]"));
  value = ParseJson(removed_json);
  EXPECT_EQ(value.list_value()
                .values(0)
                .struct_value()
                .fields()
                .at("backends")
                .list_value()
                .values_size(),
            3);
}

TEST(ServicesJson, ShowsTheSorryServerWhenEveryBackendIsDown) {
  lb::v1::ConfigSnapshot config = Config(kWeb);
  for (const char* address : {"198.51.100.1", "198.51.100.2"}) {
    lb::v1::BackendHealth* h = config.add_backend_health();
    h->mutable_backend()->set_service_name("web");
    h->mutable_backend()->set_address(address);
    h->set_state(lb::v1::HEALTH_STATE_DOWN);
  }
  ASSERT_OK_AND_ASSIGN(agent::EngineConfig c,
                       agent::BuildEngineConfig(config, Identity()));
  const std::string json = ServicesJson(c, config, {});
  EXPECT_THAT(json, HasSubstr("\"sorry_active\":true"));
  EXPECT_THAT(json, HasSubstr("{\"address\":\"198.51.100.9\",\"port\":80,"
                              "\"weight\":1,\"available\":true,"
                              "\"fleet_state\":\"up\",\"local_state\":"
                              "\"unchecked\",\"sorry\":true}"));
}

TEST(HealthQuorum, CountsOnlyBackendsNeitherFleetNorNodeHoldsDown) {
  const lb::v1::ConfigSnapshot configured = Config(kWeb);
  lb::v1::ConfigSnapshot effective = configured;
  lb::v1::BackendHealth* h = effective.add_backend_health();
  h->mutable_backend()->set_service_name("web");
  h->mutable_backend()->set_address("198.51.100.2");
  h->mutable_backend()->set_port(80);
  h->set_state(lb::v1::HEALTH_STATE_DOWN);
  const std::set<HealthQuorum::Key> unhealthy = UnhealthyOf(
      configured, effective,
      {agent::BackendId{"web", *Endpoint::Parse("198.51.100.1:0")}});
  EXPECT_THAT(unhealthy,
              ElementsAre(HealthQuorum::Key{"web", "198.51.100.1", 0},
                          HealthQuorum::Key{"web", "198.51.100.2", 80}));
  HealthQuorum quorum;
  quorum.Set(unhealthy);
  EXPECT_FALSE(quorum.IsHealthy("web", {.address = "198.51.100.1", .port = 0}));
  EXPECT_FALSE(
      quorum.IsHealthy("web", {.address = "198.51.100.2", .port = 80}));
  EXPECT_TRUE(quorum.IsHealthy("web", {.address = "198.51.100.3", .port = 0}));
  EXPECT_THAT(UnhealthyOf(configured, configured, {}), IsEmpty());
}

TEST(ApplyEffectiveWeights, QuorumWeighsWhatTheDataplaneSchedules) {
  lb::v1::ConfigSnapshot config = Config(kWeb);
  // .2 reports a dynamic weight of 9 (standalone overlay).
  config = agent::OverlayLocalHealth(
      config, {{agent::BackendId{"web", *Endpoint::Parse("198.51.100.2:80")},
                lb::v1::HEALTH_STATE_UP, 9}});
  ASSERT_OK_AND_ASSIGN(agent::EngineConfig engine,
                       agent::BuildEngineConfig(config, Identity()));
  ASSERT_OK_AND_ASSIGN(routing::announce::AnnounceConfig announce,
                       routing::announce::AnnounceConfigFromProto(config));
  ApplyEffectiveWeights(engine, &announce);
  ASSERT_EQ(announce.services.size(), 4u);
  const routing::announce::AnnounceService& web = announce.services[0];
  EXPECT_EQ(web.name, "web");
  ASSERT_EQ(web.backends.size(), 4u);
  EXPECT_EQ(web.backends[0].weight, 2u);
  EXPECT_EQ(web.backends[1].weight, 9u);  // dynamic
  EXPECT_EQ(web.backends[2].weight, 0u);  // draining
  EXPECT_EQ(web.backends[3].weight, 0u);  // disabled: not in the engine
  // An unnamed service is named as the engine names it.
  config.mutable_services(3)->clear_name();
  ASSERT_OK_AND_ASSIGN(engine, agent::BuildEngineConfig(config, Identity()));
  ASSERT_OK_AND_ASSIGN(announce,
                       routing::announce::AnnounceConfigFromProto(config));
  ApplyEffectiveWeights(engine, &announce);
  EXPECT_EQ(announce.services[3].name, "tcp-192.0.2.13-80");
}

TEST(CoalescingWorker, NotificationsDuringARunMakeOneMoreRun) {
  absl::Notification started;
  absl::Notification release;
  std::atomic<int> runs{0};
  {
    CoalescingWorker worker([&] {
      if (runs.fetch_add(1) == 0) {
        started.Notify();
        release.WaitForNotification();
      }
    });
    worker.Notify();
    started.WaitForNotification();
    for (int i = 0; i < 5; ++i) worker.Notify();
    release.Notify();
    while (worker.runs() < 2) absl::SleepFor(absl::Milliseconds(1));
    // Destroying the idle worker runs nothing more.
  }
  EXPECT_EQ(runs.load(), 2);
}

}  // namespace
}  // namespace anylb::lbnode
