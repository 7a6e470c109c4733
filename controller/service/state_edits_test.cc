#include "controller/service/state_edits.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace anylb::controller {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename Message>
Message Parse(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message))
      << text;
  return message;
}

lb::v1::Service Web() {
  return Parse<lb::v1::Service>(R"pb(
    vip: "2001:DB8::10"
    port: 80
    protocol: PROTOCOL_TCP
    scheduler: SCHEDULER_MH
    forwarding { mode: FORWARDING_MODE_DR }
    backends { address: "2001:db8:0::1" weight: 1 }
  )pb");
}

lb::v1::ServiceSelector ByAddress(const std::string& vip, uint32_t port) {
  lb::v1::ServiceSelector s;
  s.mutable_virtual_address()->set_vip(vip);
  s.mutable_virtual_address()->set_port(port);
  s.mutable_virtual_address()->set_protocol(lb::v1::PROTOCOL_TCP);
  return s;
}

lb::v1::ServiceSelector ByName(const std::string& name) {
  lb::v1::ServiceSelector s;
  s.set_name(name);
  return s;
}

TEST(StateEdits, CreateNamesAndCanonicalizes) {
  StoreState state;
  ASSERT_OK_AND_ASSIGN(std::string name, CreateService(state, Web()));
  EXPECT_EQ(name, "tcp-2001:db8::10-80");
  const lb::v1::Service& stored = state.services.at(name);
  EXPECT_EQ(stored.vip(), "2001:db8::10");
  EXPECT_EQ(stored.backends(0).address(), "2001:db8::1");
  // Found by any spelling of its address.
  EXPECT_THAT(FindService(state, ByAddress("2001:db8:0:0::10", 80)),
              status_testing::IsOkAndHolds(name));
  EXPECT_THAT(Validate(state), IsOk());
}

TEST(StateEdits, DuplicatesAndUnknownsAreNamed) {
  StoreState state;
  ASSERT_THAT(CreateService(state, Web()).status(), IsOk());
  lb::v1::Service again = Web();
  again.set_name("other");
  EXPECT_THAT(CreateService(state, again).status(),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("has that virtual address already")));
  EXPECT_THAT(FindService(state, ByAddress("192.0.2.1", 80)).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("service TCP 192.0.2.1:80 does not exist")));
  EXPECT_THAT(FindService(state, ByAddress("192.0.2", 80)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"192.0.2\": not an IPv4 or IPv6")));
  EXPECT_THAT(FindService(state, lb::v1::ServiceSelector()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(StateEdits, UpdateByMaskKeepsIdentity) {
  StoreState state;
  ASSERT_OK_AND_ASSIGN(std::string name, CreateService(state, Web()));
  lb::v1::Service patch;
  patch.set_scheduler(lb::v1::SCHEDULER_WLC);
  patch.set_port(81);
  google::protobuf::FieldMask mask;
  mask.add_paths("scheduler");
  ASSERT_THAT(UpdateService(state, ByName(name), patch, mask).status(), IsOk());
  EXPECT_EQ(state.services.at(name).scheduler(), lb::v1::SCHEDULER_WLC);
  EXPECT_EQ(state.services.at(name).port(), 80u);
  EXPECT_EQ(state.services.at(name).backends_size(), 1);  // untouched

  mask.add_paths("port");
  EXPECT_THAT(UpdateService(state, ByName(name), patch, mask).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"port\" identifies the Service")));
  google::protobuf::FieldMask bad;
  bad.add_paths("schedular");
  EXPECT_THAT(UpdateService(state, ByName(name), patch, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"schedular\" is not a field of Service")));
  // Empty mask: every field but the identity and the backends.
  lb::v1::Service full = Web();
  full.set_scheduler(lb::v1::SCHEDULER_RR);
  full.clear_backends();
  ASSERT_THAT(UpdateService(state, ByName(name), full, {}).status(), IsOk());
  EXPECT_EQ(state.services.at(name).scheduler(), lb::v1::SCHEDULER_RR);
  EXPECT_EQ(state.services.at(name).backends_size(), 1);
}

TEST(StateEdits, RealServersAddUpdateRemove) {
  StoreState state;
  ASSERT_OK_AND_ASSIGN(std::string name, CreateService(state, Web()));
  lb::v1::Backend b;
  b.set_address("2001:db8::2");
  b.set_weight(3);
  ASSERT_THAT(AddBackend(state, ByName(name), b).status(), IsOk());
  EXPECT_THAT(AddBackend(state, ByName(name), b).status(),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("real server [2001:db8::2]:0 is in")));
  b.set_weight(7);
  google::protobuf::FieldMask mask;
  mask.add_paths("weight");
  ASSERT_THAT(UpdateBackend(state, ByName(name), b, mask).status(), IsOk());
  EXPECT_EQ(state.services.at(name).backends(1).weight(), 7u);
  b.set_address("2001:db8::9");
  EXPECT_THAT(UpdateBackend(state, ByName(name), b, mask).status(),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(RemoveBackend(state, ByName(name), "2001:DB8::2", 0).status(),
              IsOk());
  EXPECT_EQ(state.services.at(name).backends_size(), 1);
  EXPECT_THAT(RemoveBackend(state, ByName(name), "2001:db8::2", 0).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(StateEdits, ApplyReportsTheDiff) {
  StoreState state;
  lb::v1::Service keep = Web();
  keep.set_name("keep");
  lb::v1::Service change = Web();
  change.set_name("change");
  change.set_port(81);
  lb::v1::Service gone = Web();
  gone.set_name("gone");
  gone.set_port(82);
  for (const auto& s : {keep, change, gone}) {
    ASSERT_THAT(CreateService(state, s).status(), IsOk());
  }
  lb::v1::Service changed = state.services.at("change");
  changed.set_scheduler(lb::v1::SCHEDULER_WLC);
  changed.mutable_backends(0)->set_weight(5);
  lb::v1::Backend* added = changed.add_backends();
  added->set_address("2001:db8::3");
  lb::v1::Service fresh = Web();
  fresh.set_name("fresh");
  fresh.set_port(83);
  ASSERT_OK_AND_ASSIGN(
      auto changes,
      ApplyServices(state, {state.services.at("keep"), changed, fresh}));
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].service_name(), "change");
  EXPECT_EQ(changes[0].kind(), lb::v1::ServiceChange::KIND_UPDATE);
  EXPECT_THAT(changes[0].details(),
              ElementsAre("scheduler: SCHEDULER_MH -> SCHEDULER_WLC",
                          "~ real server [2001:db8::1]:0: weight: 1 -> 5",
                          "+ real server [2001:db8::3]:0"));
  EXPECT_EQ(changes[1].service_name(), "fresh");
  EXPECT_EQ(changes[1].kind(), lb::v1::ServiceChange::KIND_CREATE);
  EXPECT_EQ(changes[2].service_name(), "gone");
  EXPECT_EQ(changes[2].kind(), lb::v1::ServiceChange::KIND_DELETE);
  EXPECT_EQ(changes[3].service_name(), "keep");
  EXPECT_EQ(changes[3].kind(), lb::v1::ServiceChange::KIND_UNCHANGED);
  EXPECT_EQ(state.services.size(), 3u);
  EXPECT_FALSE(state.services.contains("gone"));
}

TEST(StateEdits, ValidateSeesBadServicesAndEachNode) {
  StoreState state;
  lb::v1::Service dr_mapping = Web();
  dr_mapping.mutable_backends(0)->set_port(8080);
  ASSERT_THAT(CreateService(state, dr_mapping).status(), IsOk());
  EXPECT_THAT(Validate(state), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("DR cannot map ports")));

  StoreState fullnat;
  lb::v1::Service db = Parse<lb::v1::Service>(R"pb(
    name: "db"
    vip: "192.0.2.20"
    port: 5432
    protocol: PROTOCOL_TCP
    scheduler: SCHEDULER_WLC
    forwarding { mode: FORWARDING_MODE_FULLNAT }
    backends { address: "198.51.100.5" }
  )pb");
  ASSERT_THAT(CreateService(fullnat, db).status(), IsOk());
  EXPECT_THAT(Validate(fullnat), IsOk());  // no node yet
  RegisterNode(fullnat, "lb1");
  EXPECT_THAT(Validate(fullnat),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("node \"lb1\" has no IPv4 local_addresses")));
  lb::v1::NodeSettings patch;
  patch.set_node_name("lb1");
  patch.add_local_addresses("203.0.113.16/30");
  google::protobuf::FieldMask mask;
  mask.add_paths("local_addresses");
  ASSERT_THAT(UpdateNode(fullnat, patch, mask), IsOk());
  EXPECT_THAT(Validate(fullnat), IsOk());
  patch.set_weight(2000000);
  mask.add_paths("weight");
  ASSERT_THAT(UpdateNode(fullnat, patch, mask), IsOk());
  EXPECT_THAT(Validate(fullnat),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("node \"lb1\": node.weight 2000000")));
}

TEST(StateEdits, NodesAndSnapshots) {
  StoreState state;
  state.revision = 12;
  ASSERT_THAT(CreateService(state, Web()).status(), IsOk());
  RegisterNode(state, "lb1");
  RegisterNode(state, "lb1");
  EXPECT_EQ(state.nodes.size(), 1u);
  EXPECT_EQ(state.nodes.at("lb1").weight(), 1u);
  ASSERT_THAT(SetAdminState(state, "lb1", lb::v1::NODE_ADMIN_STATE_DRAINED),
              IsOk());
  EXPECT_THAT(SetAdminState(state, "lb9", lb::v1::NODE_ADMIN_STATE_DRAINED),
              StatusIs(absl::StatusCode::kNotFound));
  lb::v1::NodeSettings patch;
  patch.set_node_name("lb1");
  google::protobuf::FieldMask mask;
  mask.add_paths("admin_state");
  EXPECT_THAT(
      UpdateNode(state, patch, mask),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DrainNode")));
  lb::v1::ConfigSnapshot snapshot = SnapshotFor(state, "lb1");
  EXPECT_EQ(snapshot.revision(), 12u);
  EXPECT_EQ(snapshot.services_size(), 1);
  EXPECT_EQ(snapshot.node().admin_state(), lb::v1::NODE_ADMIN_STATE_DRAINED);
  EXPECT_EQ(SnapshotFor(state, "new").node().node_name(), "new");
}

}  // namespace
}  // namespace anylb::controller

namespace anylb::controller {
namespace {

// FleetOf: verdicts as DecideFleetHealth gives them, for one real server.
std::map<BackendKey, FleetVerdict> FleetOf(
    const std::string& service, const std::string& address, uint32_t port,
    lb::v1::HealthState state,
    std::optional<uint32_t> dynamic_weight = std::nullopt) {
  FleetVerdict v;
  v.backend.set_service_name(service);
  v.backend.set_address(address);
  v.backend.set_port(port);
  v.state = state;
  v.dynamic_weight = dynamic_weight;
  v.reporters = 2;
  v.down_reporters = state == lb::v1::HEALTH_STATE_DOWN ? 2 : 0;
  v.reason = state == lb::v1::HEALTH_STATE_DOWN ? "2 of 2 nodes see it down"
                                                : "2 nodes see it up";
  return {{BackendKey{service, address, port}, v}};
}

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

StoreState WebState() {
  StoreState state;
  lb::v1::Service web = Web();
  web.set_name("web");
  EXPECT_THAT(CreateService(state, web).status(), IsOk());
  return state;
}

TEST(BackendHealth, DownIsPublishedOnceAndUpRemovesIt) {
  StoreState state = WebState();
  std::map<std::string, lb::v1::BackendHealth> next;
  // Reported under the effective port (80) while configured as 0.
  auto changes = ReconcileBackendHealth(
      state, FleetOf("web", "2001:db8::1", 80, lb::v1::HEALTH_STATE_DOWN), kT0,
      false, &next);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(DescribeHealthChange(changes[0]),
            "backend [2001:db8::1]:80 of \"web\" DOWN: 2 of 2 nodes see it "
            "down");
  ASSERT_EQ(next.size(), 1u);
  const lb::v1::BackendHealth& h = next.begin()->second;
  EXPECT_EQ(next.begin()->first, "web|2001:db8::1|0");
  EXPECT_EQ(h.backend().port(), 0u);  // the configured identity
  EXPECT_EQ(h.state(), lb::v1::HEALTH_STATE_DOWN);
  EXPECT_EQ(h.last_change().seconds(), absl::ToUnixSeconds(kT0));
  state.backend_health = next;
  EXPECT_THAT(Validate(state), IsOk());
  EXPECT_EQ(SnapshotFor(state, "lb1").backend_health_size(), 1);

  // Still down later, with another reason: nothing changes, last_change
  // stays.
  auto again = FleetOf("web", "2001:db8::1", 0, lb::v1::HEALTH_STATE_DOWN);
  again.begin()->second.reason = "2 of 2 nodes see it down (other errors)";
  EXPECT_TRUE(
      ReconcileBackendHealth(state, again, kT0 + absl::Seconds(9), false, &next)
          .empty());
  EXPECT_EQ(next.begin()->second.last_change().seconds(),
            absl::ToUnixSeconds(kT0));

  // Up: the entry goes.
  changes = ReconcileBackendHealth(
      state, FleetOf("web", "2001:db8::1", 0, lb::v1::HEALTH_STATE_UP), kT0,
      false, &next);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, lb::v1::HEALTH_STATE_UP);
  EXPECT_TRUE(next.empty());
}

TEST(BackendHealth, DynamicWeightIsAnEntryAndUnreportedIsKeptOnlyOnRequest) {
  StoreState state = WebState();
  std::map<std::string, lb::v1::BackendHealth> next;
  ASSERT_EQ(
      ReconcileBackendHealth(
          state, FleetOf("web", "2001:db8::1", 0, lb::v1::HEALTH_STATE_UP, 7),
          kT0, false, &next)
          .size(),
      1u);
  EXPECT_EQ(next.begin()->second.dynamic_weight(), 7u);
  EXPECT_EQ(next.begin()->second.state(), lb::v1::HEALTH_STATE_UP);
  state.backend_health = next;
  EXPECT_THAT(Validate(state), IsOk());
  // Nobody reports: kept while keep_unreported, dropped otherwise.
  EXPECT_TRUE(ReconcileBackendHealth(state, {}, kT0, true, &next).empty());
  EXPECT_EQ(next.size(), 1u);
  EXPECT_EQ(ReconcileBackendHealth(state, {}, kT0, false, &next).size(), 1u);
  EXPECT_TRUE(next.empty());
}

TEST(BackendHealth, ValidateRefusesAVerdictForNoRealServerAndEditsDropIt) {
  StoreState state = WebState();
  std::map<std::string, lb::v1::BackendHealth> next;
  ReconcileBackendHealth(
      state, FleetOf("web", "2001:db8::1", 0, lb::v1::HEALTH_STATE_DOWN), kT0,
      false, &next);
  state.backend_health = next;
  ASSERT_THAT(RemoveBackend(state, ByName("web"), "2001:db8::1", 0).status(),
              IsOk());
  EXPECT_THAT(Validate(state), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("backend_health")));
  DropOrphanVerdicts(state);
  EXPECT_TRUE(state.backend_health.empty());
  EXPECT_THAT(Validate(state), IsOk());
}

}  // namespace
}  // namespace anylb::controller
