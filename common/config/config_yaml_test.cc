#include "common/config/config_yaml.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "lb/v1/config.pb.h"

namespace anylb::config {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFull[] = R"(revision: 42
node:
  node_name: lb1
  weight: 3
  local_addresses: ["203.0.113.16/28", "2001:db8:1::/120"]
  admin_state: NODE_ADMIN_STATE_ACTIVE
  drain_period: 1m
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocol: tcp
    scheduler: SCHEDULER_MH
    scheduler_flags: {fallback: true, port: false}
    hash_inputs: source_ip_port
    maglev_table_size: 251
    hash_seed: "18446744073709551615"
    forwarding: {mode: tun, tunnel_type: gue, gue_port: 6081}
    persistence: {timeout: 300s, ipv4_prefix_length: 24}
    backends:
      - {address: 198.51.100.2, weight: 2, state: draining}
      - address: "2001:db8::2"
        weight: 65535
        forwarding: {mode: FORWARDING_MODE_TUN}
    health_check:
      interval: 1.5s
      timeout: 250ms
      http: {path: /health, expected_statuses: [{min: 200, max: 204}]}
    bgp_communities: ["65000:100"]
  - vip: "2001:db8::10"
    port: 53
    protocol: PROTOCOL_UDP
    scheduler: rr
    health_check:
      udp: {payload: aGVsbG8=}
backend_health:
  - backend: {service_name: web, address: 198.51.100.2}
    state: down
)";

TEST(ParseConfigYaml, ReadsEveryKindOfField) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot c,
                       ParseConfigYaml(kFull, "lbnode.yaml"));
  EXPECT_EQ(c.revision(), 42u);
  EXPECT_EQ(c.node().node_name(), "lb1");
  EXPECT_EQ(c.node().weight(), 3u);
  ASSERT_EQ(c.node().local_addresses_size(), 2);
  EXPECT_EQ(c.node().local_addresses(1), "2001:db8:1::/120");
  EXPECT_EQ(c.node().drain_period().seconds(), 60);
  ASSERT_EQ(c.services_size(), 2);
  const lb::v1::Service& web = c.services(0);
  EXPECT_EQ(web.name(), "web");
  EXPECT_EQ(web.port(), 80u);
  EXPECT_EQ(web.protocol(), lb::v1::PROTOCOL_TCP);
  EXPECT_EQ(web.scheduler(), lb::v1::SCHEDULER_MH);
  EXPECT_TRUE(web.scheduler_flags().fallback());
  EXPECT_EQ(web.hash_inputs(), lb::v1::HASH_INPUTS_SOURCE_IP_PORT);
  EXPECT_EQ(web.maglev_table_size(), 251u);
  EXPECT_EQ(web.hash_seed(), 18446744073709551615u);
  EXPECT_EQ(web.forwarding().mode(), lb::v1::FORWARDING_MODE_TUN);
  EXPECT_EQ(web.forwarding().tunnel_type(), lb::v1::TUNNEL_TYPE_GUE);
  EXPECT_EQ(web.forwarding().gue_port(), 6081u);
  EXPECT_EQ(web.persistence().timeout().seconds(), 300);
  EXPECT_EQ(web.persistence().ipv4_prefix_length(), 24u);
  ASSERT_EQ(web.backends_size(), 2);
  EXPECT_EQ(web.backends(0).state(), lb::v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(web.backends(1).address(), "2001:db8::2");
  EXPECT_EQ(web.backends(1).weight(), 65535u);
  EXPECT_TRUE(web.backends(1).has_forwarding());
  EXPECT_EQ(web.health_check().interval().seconds(), 1);
  EXPECT_EQ(web.health_check().interval().nanos(), 500000000);
  EXPECT_EQ(web.health_check().timeout().nanos(), 250000000);
  EXPECT_EQ(web.health_check().http().path(), "/health");
  EXPECT_EQ(web.health_check().http().expected_statuses(0).max(), 204u);
  EXPECT_EQ(web.bgp_communities(0), "65000:100");
  EXPECT_EQ(c.services(1).protocol(), lb::v1::PROTOCOL_UDP);
  EXPECT_EQ(c.services(1).health_check().udp().payload(), "hello");
  EXPECT_EQ(c.node().node_name(), "lb1");
  EXPECT_EQ(c.backend_health(0).state(), lb::v1::HEALTH_STATE_DOWN);
}

TEST(ParseConfigYaml, EmptyValueSetsAMessageAndLeavesScalarsUnset) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot c, ParseConfigYaml(R"(
services:
  - vip: 192.0.2.1
    name:
    backends:
    health_check:
      tcp:
)",
                                                                 "x.yaml"));
  ASSERT_EQ(c.services_size(), 1);
  EXPECT_EQ(c.services(0).name(), "");
  EXPECT_EQ(c.services(0).backends_size(), 0);
  EXPECT_TRUE(c.services(0).health_check().has_tcp());
}

// The proto JSON mapping (what `lbctl -o json` prints) is valid input: a
// config round-trips through it unchanged.
TEST(ParseConfigYaml, AcceptsTheProtoJsonMapping) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot original,
                       ParseConfigYaml(kFull, "lbnode.yaml"));
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  ASSERT_TRUE(
      google::protobuf::util::MessageToJsonString(original, &json, options)
          .ok());
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot again,
                       ParseConfigYaml(json, "lbnode.json"));
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(original, again))
      << json;
}

TEST(ParseConfigYaml, UnknownEnumValueNamesPlaceAndChoices) {
  EXPECT_THAT(
      ParseConfigYaml("services:\n  - vip: 192.0.2.1\n    scheduler: mhh\n",
                      "lbnode.yaml"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "lbnode.yaml:3:16: services[0].scheduler: unknown value "
               "\"mhh\"; one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, "
               "nq, fo, ovf, mh, twos"));
}

TEST(ParseConfigYaml, UnknownFieldSuggestsTheClosestName) {
  EXPECT_THAT(
      ParseConfigYaml("services:\n  - vip: 192.0.2.1\n    schedular: mh\n",
                      "lbnode.yaml"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "lbnode.yaml:3:5: services[0].schedular: unknown field "
               "\"schedular\" in Service; did you mean \"scheduler\"?"));
  EXPECT_THAT(ParseConfigYaml("services:\n  - maglevTableSize: 7\n", "a"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("did you mean \"maglev_table_size\"?")));
  EXPECT_THAT(ParseConfigYaml("zzzzzzzzzz: 1\n", "a"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("fields are revision, services, node, "
                                 "backend_health")));
}

TEST(ParseConfigYaml, SyntaxErrorHasLineAndColumn) {
  EXPECT_THAT(
      ParseConfigYaml("services:\n  - vip: [192.0.2.1\n", "lbnode.yaml"),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          AllOf(HasSubstr("lbnode.yaml:3:"), HasSubstr("YAML syntax error"))));
}

TEST(ParseConfigYaml, RejectsWrongTypes) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"revision: -1\n",
       "a:1:11: revision: expected an integer in 0..18446744073709551615, got "
       "the value \"-1\""},
      {"services: [{port: 65536000000}]\n",
       "a:1:19: services[0].port: expected an integer in 0..4294967295"},
      {"services: [{port: 8.5}]\n", "expected an integer"},
      {"services: [{vip: [1, 2]}]\n",
       "a:1:18: services[0].vip: expected a string, got a list"},
      {"services: {vip: x}\n",
       "a:1:11: services: expected a list, got a mapping"},
      {"node: 5\n",
       "a:1:7: node: expected a mapping of NodeSettings fields, got the value "
       "\"5\""},
      {"services: [{scheduler_flags: {port: maybe}}]\n",
       "expected true or false, got the value \"maybe\""},
      {"node: {drain_period: 30}\n",
       "a:1:22: node.drain_period: expected a duration like \"30s\""},
      {"services: [{health_check: {udp: {payload: \"!!\"}}}]\n",
       "expected base64 bytes"},
      {"services: [{protocol: [tcp]}]\n",
       "expected one of tcp, udp, got a list"},
      {"[1, 2]\n", "a:1:1: expected a mapping of ConfigSnapshot fields"},
      {"services: [{name: a\xff}]\n",
       "a:1:19: services[0].name: not valid UTF-8 text"},
      {"services: [{name: \"\xed\xa0\x80\"}]\n", "not valid UTF-8 text"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        ParseConfigYaml(c.yaml, "a"),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)))
        << c.yaml;
  }
}

TEST(ParseConfigYaml, RejectsDuplicateKeysAndTwoOneofMembers) {
  EXPECT_THAT(ParseConfigYaml("revision: 1\nrevision: 2\n", "a"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "a:2:1: revision: duplicate key (first at line 1)"));
  EXPECT_THAT(
      ParseConfigYaml(
          "services: [{health_check: {tcp: {}, http: {path: /}}}]\n", "a"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("services[0].health_check.http: only one of "
                         "tcp, http, grpc, dns, udp, exec may be set, "
                         "and tcp is set already")));
}

TEST(ParseConfigYaml, ReportsEveryProblemOnePerLine) {
  const std::string yaml = R"(services:
  - vip: 192.0.2.1
    protocol: tcpp
    port: x
  - scheduler: nope
    weight: 3
)";
  absl::StatusOr<lb::v1::ConfigSnapshot> c = ParseConfigYaml(yaml, "f.yaml");
  ASSERT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<std::string> lines =
      absl::StrSplit(c.status().message(), '\n');
  ASSERT_EQ(lines.size(), 4u) << c.status();
  EXPECT_THAT(lines[0], HasSubstr("f.yaml:3:15: services[0].protocol"));
  EXPECT_THAT(lines[1], HasSubstr("f.yaml:4:11: services[0].port"));
  EXPECT_THAT(lines[2], HasSubstr("f.yaml:5:16: services[1].scheduler"));
  EXPECT_THAT(lines[3], HasSubstr("f.yaml:6:5: services[1].weight"));
}

TEST(ParseConfigYaml, ListsAtMostTheLimitAndCountsTheRest) {
  std::string yaml = "services:\n";
  for (int i = 0; i < kMaxConfigErrors + 5; ++i) {
    absl::StrAppend(&yaml, "  - port: bad\n");
  }
  absl::StatusOr<lb::v1::ConfigSnapshot> c = ParseConfigYaml(yaml, "f");
  ASSERT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<std::string> lines =
      absl::StrSplit(c.status().message(), '\n');
  ASSERT_EQ(lines.size(), kMaxConfigErrors + 1u);
  EXPECT_EQ(lines.back(), "... and 5 more problems");
}

TEST(ParseConfigYaml, RejectsEmptyAndMultiDocumentFiles) {
  EXPECT_THAT(ParseConfigYaml("", "e.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("e.yaml: the config is empty")));
  EXPECT_THAT(ParseConfigYaml("# only a comment\n", "e.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the config is empty")));
  EXPECT_THAT(ParseConfigYaml("revision: 1\n---\nrevision: 2\n", "e.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("e.yaml:2:1: text after the end of the "
                                 "first YAML document")));
  // yaml-cpp's LoadAll loops forever on this (found by the fuzzer).
  EXPECT_THAT(
      ParseConfigYaml("{ revisiomode: dr}, s", "e.yaml"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("e.yaml:1:")));
}

TEST(ParseConfigYaml, EnumsNeedTheFullNameOrTheLowerCaseShortForm) {
  EXPECT_THAT(ParseConfigYaml("services: [{scheduler: MH}]\n", "a"),
              Not(IsOk()));
  EXPECT_THAT(ParseConfigYaml("services: [{scheduler: unspecified}]\n", "a"),
              Not(IsOk()));
  EXPECT_THAT(
      ParseConfigYaml("services: [{scheduler: SCHEDULER_UNSPECIFIED}]\n", "a"),
      IsOk());
  ASSERT_OK_AND_ASSIGN(
      lb::v1::ConfigSnapshot c,
      ParseConfigYaml("services: [{forwarding: {mode: fullnat}}]\n", "a"));
  EXPECT_EQ(c.services(0).forwarding().mode(), lb::v1::FORWARDING_MODE_FULLNAT);
}

TEST(LoadConfigFile, ReadsAFileAndNamesItInErrors) {
  const std::string path = absl::StrCat(
      ::testing::TempDir(), "/config_file_test_", getpid(), ".yaml");
  {
    std::ofstream out(path);
    out << "revision: 3\nservices: [{port: x}]\n";
  }
  EXPECT_THAT(LoadConfigFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(path + ":2:19: services[0].port")));
  {
    std::ofstream out(path);
    out << "revision: 3\n";
  }
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot c, LoadConfigFile(path));
  EXPECT_EQ(c.revision(), 3u);
  std::remove(path.c_str());
  EXPECT_THAT(LoadConfigFile(path),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(path), HasSubstr("No such file"))));
}

}  // namespace
}  // namespace anylb::config
