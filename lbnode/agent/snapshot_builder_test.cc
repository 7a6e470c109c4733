#include "lbnode/agent/snapshot_builder.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/config_yaml.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::agent {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using dataplane::ForwardingMode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

NodeIdentity Identity() {
  NodeIdentity id;
  id.mac = {0x02, 0, 0, 0, 0, 1};
  id.tunnel_source_v4 = *IpAddress::Parse("203.0.113.1");
  id.tunnel_source_v6 = *IpAddress::Parse("2001:db8:ffff:1::1");
  return id;
}

absl::StatusOr<EngineConfig> Build(const std::string& yaml,
                                   const NodeIdentity& id = Identity()) {
  ASSIGN_OR_RETURN(lb::v1::ConfigSnapshot config,
                   config::ParseConfigYaml(yaml, "test.yaml"));
  return BuildEngineConfig(config, id);
}

const dataplane::BackendConfig* FindBackend(const dataplane::ServiceConfig& s,
                                            const std::string& endpoint) {
  for (const dataplane::BackendConfig& b : s.backends) {
    if (b.endpoint.ToString() == endpoint) return &b;
  }
  return nullptr;
}

TEST(BuildEngineConfig, DrServiceBecomesEngineConfigWithNamesAndVips) {
  ASSERT_OK_AND_ASSIGN(EngineConfig c, Build(R"(
revision: 9
services:
  - name: web
    vip: 192.0.2.1
    port: 80
    protocol: tcp
    scheduler: mh
    scheduler_flags: {port: true}
    maglev_table_size: 251
    forwarding: {mode: dr}
    backends:
      - {address: 198.51.100.2, weight: 7}
      - {address: 198.51.100.1, weight: 3, upper_threshold: 10}
  - vip: "2001:db8::1"
    port: 53
    protocol: udp
    scheduler: rr
    forwarding: {mode: dr}
    backends: [{address: "2001:db8::2", weight: 1}]
)"));
  EXPECT_EQ(c.revision, 9u);
  ASSERT_EQ(c.snapshot->services().size(), 2u);
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  EXPECT_EQ(web.mode, ForwardingMode::kDr);
  EXPECT_EQ(web.scheduler.kind, scheduler::SchedulerKind::kMh);
  EXPECT_TRUE(web.scheduler.port);
  EXPECT_EQ(web.scheduler.hash_inputs, scheduler::HashInputs::kSourceIpPort);
  EXPECT_EQ(web.scheduler.maglev_table_size, 251u);
  EXPECT_EQ(web.scheduler.seed,
            DeriveHashSeed(*IpAddress::Parse("192.0.2.1"), 80, 6));
  EXPECT_NE(web.scheduler.seed,
            DeriveHashSeed(*IpAddress::Parse("192.0.2.1"), 81, 6));
  EXPECT_FALSE(web.persistence.has_value());
  ASSERT_EQ(web.backends.size(), 2u);
  EXPECT_EQ(web.backends[0].endpoint.ToString(), "198.51.100.1:80");
  EXPECT_EQ(web.backends[0].weight, 3u);
  EXPECT_EQ(web.backends[0].upper_threshold, 10u);

  ASSERT_EQ(c.names->size(), 2u);
  EXPECT_EQ((*c.names)[0].name, "web");
  EXPECT_EQ((*c.names)[0].vip, "192.0.2.1");
  EXPECT_EQ((*c.names)[0].protocol, "tcp");
  EXPECT_THAT((*c.names)[0].backends,
              ElementsAre("198.51.100.1:80", "198.51.100.2:80"));
  EXPECT_EQ((*c.names)[1].name, "udp-2001:db8::1-53");
  EXPECT_THAT((*c.names)[1].backends, ElementsAre("[2001:db8::2]:53"));

  std::vector<dataplane::bpf::SteerVip> vips(c.vips.begin(), c.vips.end());
  ASSERT_EQ(vips.size(), 2u);
  EXPECT_EQ(vips[0].address.ToString(), "192.0.2.1");
  EXPECT_EQ(vips[0].port, 80);
  EXPECT_EQ(vips[0].proto, 6);
  EXPECT_EQ(vips[1].proto, 17);
  EXPECT_TRUE(c.nat_backends.empty());
  EXPECT_EQ(c.snapshot->node().mac, Identity().mac);
  EXPECT_TRUE(c.snapshot->node().has_tunnel_source_v6);
}

TEST(BuildEngineConfig, StateAndFleetHealthSetTheEffectiveWeight) {
  ASSERT_OK_AND_ASSIGN(EngineConfig c, Build(R"(
services:
  - name: web
    vip: 192.0.2.1
    port: 80
    protocol: tcp
    scheduler: wrr
    forwarding: {mode: dr}
    backends:
      - {address: 198.51.100.1, weight: 5}
      - {address: 198.51.100.2, weight: 5, state: draining}
      - {address: 198.51.100.3, weight: 5, state: disabled}
      - {address: 198.51.100.4, weight: 5}
      - {address: 198.51.100.5, weight: 5}
      - {address: 198.51.100.6, weight: 5}
      - {address: 198.51.100.7, weight: 5}
  - name: removing
    vip: 192.0.2.2
    port: 80
    protocol: tcp
    scheduler: wrr
    forwarding: {mode: dr}
    health_check: {tcp: {}, on_failure: remove}
    backends:
      - {address: 198.51.100.1, weight: 5}
      - {address: 198.51.100.2, weight: 5}
backend_health:
  - {backend: {service_name: web, address: 198.51.100.4}, state: down}
  - {backend: {service_name: web, address: 198.51.100.5, port: 80},
     state: up, dynamic_weight: 9}
  - {backend: {service_name: web, address: 198.51.100.6},
     state: up, dynamic_weight: 0}
  - {backend: {service_name: web, address: 198.51.100.7}, state: up}
  - {backend: {service_name: removing, address: 198.51.100.2}, state: down}
)"));
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  ASSERT_EQ(web.backends.size(), 6u);  // disabled left out
  EXPECT_EQ(FindBackend(web, "198.51.100.1:80")->weight, 5u);
  EXPECT_EQ(FindBackend(web, "198.51.100.2:80")->weight, 0u);  // draining
  EXPECT_EQ(FindBackend(web, "198.51.100.3:80"), nullptr);     // disabled
  EXPECT_EQ(FindBackend(web, "198.51.100.4:80")->weight, 0u);  // down: inhibit
  EXPECT_EQ(FindBackend(web, "198.51.100.5:80")->weight, 9u);  // dynamic
  // A dynamic weight of 0 quiesces (keepalived's exit status 2); none set:
  // the configured weight.
  EXPECT_EQ(FindBackend(web, "198.51.100.6:80")->weight, 0u);
  EXPECT_EQ(FindBackend(web, "198.51.100.7:80")->weight, 5u);
  const dataplane::ServiceConfig& removing = c.snapshot->services()[1];
  ASSERT_EQ(removing.backends.size(), 1u);  // down: removed
  EXPECT_EQ(removing.backends[0].endpoint.ToString(), "198.51.100.1:80");
  EXPECT_THAT(
      (*c.names)[0].backends,
      ElementsAre("198.51.100.1:80", "198.51.100.2:80", "198.51.100.4:80",
                  "198.51.100.5:80", "198.51.100.6:80", "198.51.100.7:80"));
}

TEST(BuildEngineConfig, OmittedWeightIsOneAndZeroQuiesces) {
  ASSERT_OK_AND_ASSIGN(EngineConfig c, Build(R"(
services:
  - {name: web, vip: 192.0.2.1, port: 80, protocol: tcp, scheduler: wrr,
     forwarding: {mode: dr},
     backends: [{address: 198.51.100.1}, {address: 198.51.100.2, weight: 0}]}
)"));
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  EXPECT_EQ(FindBackend(web, "198.51.100.1:80")->weight, 1u);
  EXPECT_EQ(FindBackend(web, "198.51.100.2:80")->weight, 0u);
}

TEST(BuildEngineConfig, PersistenceTunnelAndBackendLevelMode) {
  ASSERT_OK_AND_ASSIGN(EngineConfig c, Build(R"(
services:
  - name: api
    vip: 192.0.2.1
    port: 0
    protocol: tcp
    scheduler: sh
    persistence: {timeout: 600s, ipv4_prefix_length: 24}
    backends:
      - {address: 198.51.100.1, weight: 1,
         forwarding: {mode: tun, tunnel_type: gue, gue_port: 7000}}
      - {address: "2001:db8::1", weight: 1,
         forwarding: {mode: tun, tunnel_type: gue, gue_port: 7000}}
)"));
  const dataplane::ServiceConfig& api = c.snapshot->services()[0];
  EXPECT_EQ(api.mode, ForwardingMode::kTun);
  EXPECT_EQ(api.tunnel, dataplane::TunnelType::kGue);
  EXPECT_EQ(api.gue_port, 7000);
  ASSERT_TRUE(api.persistence.has_value());
  EXPECT_EQ(api.persistence->timeout, absl::Seconds(600));
  EXPECT_EQ(api.persistence->ipv4_prefix_length, 24);
  EXPECT_EQ(api.persistence->ipv6_prefix_length, 128);
  EXPECT_EQ(api.backends[1].endpoint.ToString(), "[2001:db8::1]:0");
}

struct RuleCase {
  const char* rule;
  std::string yaml;
  std::string error;
};

std::string Service(const std::string& fields) {
  return absl::StrCat(
      "node: {local_addresses: [203.0.113.240/30]}\nservices:\n  - ", fields,
      "\n");
}

constexpr char kWeb[] =
    "{name: web, vip: 192.0.2.1, port: 80, protocol: tcp, scheduler: mh, ";

class RuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(RuleTest, IsRejectedWithAClearMessage) {
  const RuleCase& c = GetParam();
  EXPECT_THAT(Build(c.yaml),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)))
      << c.rule;
}

INSTANTIATE_TEST_SUITE_P(
    Rules, RuleTest,
    ::testing::Values(
        RuleCase{"bad backend address",
                 Service(absl::StrCat(
                     kWeb,
                     "forwarding: {mode: dr}, backends: [{address: "
                     "198.51.100.1, weight: 1}, {address: 198.51.100.300, "
                     "weight: 1}]}")),
                 "service \"web\" (192.0.2.1:80/tcp): backends[1].address "
                 "\"198.51.100.300\": not an IPv4 or IPv6 address"},
        RuleCase{"bad VIP",
                 Service("{name: web, vip: 192.0.2, port: 80, protocol: tcp, "
                         "scheduler: mh, forwarding: {mode: dr}}"),
                 "service \"web\" (192.0.2:80/tcp): vip \"192.0.2\": not an "
                 "IPv4 or IPv6 address"},
        RuleCase{"port out of range",
                 Service("{name: web, vip: 192.0.2.1, port: 70000, protocol: "
                         "tcp, scheduler: mh, forwarding: {mode: dr}}"),
                 "port 70000: outside 0..65535"},
        RuleCase{"DR cannot map ports",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}, backends: "
                                      "[{address: 198.51.100.1, port: 8080, "
                                      "weight: 1}]}")),
                 "backends[0].port 8080: DR cannot map ports; use 0 or the "
                 "VIP's port 80"},
        RuleCase{"TUN cannot map ports",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: tun}, backends: "
                                      "[{address: 198.51.100.1, port: 81, "
                                      "weight: 1}]}")),
                 "backends[0].port 81: TUN cannot map ports"},
        RuleCase{"protocol required",
                 Service("{name: web, vip: 192.0.2.1, port: 80, scheduler: "
                         "mh, forwarding: {mode: dr}}"),
                 "service \"web\" (192.0.2.1:80/?): protocol is required: tcp "
                 "or udp"},
        RuleCase{"scheduler required",
                 Service("{name: web, vip: 192.0.2.1, port: 80, protocol: tcp, "
                         "forwarding: {mode: dr}}"),
                 "scheduler is required: one of rr, wrr"},
        RuleCase{"forwarding mode required",
                 Service(absl::StrCat(kWeb,
                                      "backends: [{address: "
                                      "198.51.100.1, weight: 1}]}")),
                 "forwarding.mode is required: one of dr, tun, nat, fullnat"},
        RuleCase{"weight above 65535",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}, backends: "
                                      "[{address: 198.51.100.1, weight: "
                                      "65536}]}")),
                 "backends[0].weight 65536: outside 0..65535 (ipvsadm -w)"},
        RuleCase{"maglev table size not prime",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}, "
                                      "maglev_table_size: 100}")),
                 "maglev_table_size 100: not a prime"},
        RuleCase{"maglev table smaller than the backends",
                 Service(absl::StrCat(
                     kWeb,
                     "forwarding: {mode: dr}, maglev_table_size: 2, backends: "
                     "[{address: 198.51.100.1, weight: 1}, {address: "
                     "198.51.100.2, weight: 1}, {address: 198.51.100.3, "
                     "weight: 1}]}")),
                 "maglev_table_size 2: smaller than the 3 backends"},
        RuleCase{"maglev table size for another scheduler",
                 Service("{name: web, vip: 192.0.2.1, port: 80, protocol: tcp, "
                         "scheduler: wlc, maglev_table_size: 251, forwarding: "
                         "{mode: dr}}"),
                 "maglev_table_size is only for mh, not for wlc"},
        RuleCase{"scheduler flags for another scheduler",
                 Service("{name: web, vip: 192.0.2.1, port: 80, protocol: tcp, "
                         "scheduler: rr, scheduler_flags: {fallback: true}, "
                         "forwarding: {mode: dr}}"),
                 "scheduler_flags.fallback is only for sh and mh"},
        RuleCase{"hash inputs for another scheduler",
                 Service("{name: web, vip: 192.0.2.1, port: 80, protocol: tcp, "
                         "scheduler: sh, hash_inputs: source_ip, forwarding: "
                         "{mode: dr}}"),
                 "hash_inputs is only for mh, not for sh"},
        RuleCase{"duplicate VIP:port:protocol",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}}\n  - {vip: "
                                      "192.0.2.1, port: 80, protocol: tcp, "
                                      "scheduler: rr, forwarding: {mode: "
                                      "dr}}")),
                 "service \"tcp-192.0.2.1-80\" (192.0.2.1:80/tcp): same VIP, "
                 "port and protocol as service \"web\""},
        RuleCase{"duplicate name",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}}\n  - {name: "
                                      "web, vip: 192.0.2.2, port: 80, "
                                      "protocol: tcp, scheduler: rr, "
                                      "forwarding: {mode: dr}}")),
                 "name \"web\" is services[0]'s name too"},
        RuleCase{"bad name",
                 Service("{name: Web!, vip: 192.0.2.1, port: 80, protocol: "
                         "tcp, scheduler: mh, forwarding: {mode: dr}}"),
                 "name \"Web!\": 1..63 characters of [a-z0-9._:-]"},
        RuleCase{"mixed forwarding modes",
                 Service(absl::StrCat(
                     kWeb,
                     "forwarding: {mode: dr}, backends: [{address: "
                     "198.51.100.1, weight: 1}, {address: 198.51.100.2, "
                     "weight: 1, forwarding: {mode: nat}}]}")),
                 "backends[1].forwarding NAT differs from the service's DR; "
                 "the engine keeps one forwarding mode per service"},
        RuleCase{"mixed tunnel types",
                 Service(absl::StrCat(
                     kWeb,
                     "forwarding: {mode: tun}, backends: [{address: "
                     "198.51.100.2, weight: 1, forwarding: {mode: tun, "
                     "tunnel_type: gue}}]}")),
                 "backends[0].forwarding TUN/GUE:6080 differs from the "
                 "service's TUN/IPIP"},
        RuleCase{"FULLNAT without local addresses",
                 "services:\n  - {name: app, vip: 192.0.2.1, port: 80, "
                 "protocol: tcp, scheduler: wlc, forwarding: {mode: fullnat}, "
                 "backends: [{address: 198.51.100.1, port: 8080, weight: 1}]}"
                 "\n",
                 "service \"app\" (192.0.2.1:80/tcp): backends[0].address "
                 "\"198.51.100.1\": FULLNAT needs node.local_addresses of the "
                 "backend's family (IPv4); there are none"},
        RuleCase{"FULLNAT without local addresses of the backend's family",
                 Service("{name: app, vip: \"2001:db8::1\", port: 80, "
                         "protocol: tcp, scheduler: wlc, forwarding: {mode: "
                         "fullnat}, backends: [{address: \"2001:db8::2\", "
                         "weight: 1}]}"),
                 "FULLNAT needs node.local_addresses of the backend's family "
                 "(IPv6)"},
        RuleCase{"port 0 without persistence",
                 Service("{name: web, vip: 192.0.2.1, port: 0, protocol: tcp, "
                         "scheduler: mh, forwarding: {mode: dr}}"),
                 "service \"web\" (192.0.2.1:0/tcp): persistence: "},
        RuleCase{"persistence prefix out of range",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}, persistence: "
                                      "{timeout: 60s, ipv4_prefix_length: "
                                      "33}}")),
                 "persistence: "},
        RuleCase{"tunnel type without TUN",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr, tunnel_type: "
                                      "gue}}")),
                 "forwarding.tunnel_type is only for mode TUN, not DR"},
        RuleCase{"GUE port without GUE",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: tun, gue_port: "
                                      "7000}}")),
                 "forwarding.gue_port 7000: only for mode TUN with "
                 "tunnel_type GUE"},
        RuleCase{"DR backend of the other family",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}, backends: "
                                      "[{address: \"2001:db8::2\", weight: "
                                      "1}]}")),
                 "backends[0].address \"2001:db8::2\": IPv6 backend of an "
                 "IPv4 VIP; only TUN with tunnel_type GUE carries the other "
                 "family"},
        RuleCase{"duplicate backend",
                 Service(absl::StrCat(
                     kWeb,
                     "forwarding: {mode: dr}, backends: [{address: "
                     "198.51.100.1, weight: 1}, {address: 198.51.100.1, port: "
                     "80, weight: 2}]}")),
                 "backends[1]: 198.51.100.1:80 is backends[0] too"},
        RuleCase{"thresholds upside down",
                 Service(absl::StrCat(
                     kWeb,
                     "forwarding: {mode: dr}, backends: [{address: "
                     "198.51.100.1, weight: 1, upper_threshold: 10, "
                     "lower_threshold: 20}]}")),
                 "backends[0].lower_threshold 20: above upper_threshold 10"},
        RuleCase{"sorry backend mapping a DR port",
                 Service(absl::StrCat(kWeb,
                                      "forwarding: {mode: dr}, "
                                      "sorry_backend: {address: "
                                      "198.51.100.9, port: 8080}}")),
                 "sorry_backend.port 8080: DR cannot map ports"},
        RuleCase{"health of an unknown backend",
                 Service(absl::StrCat(kWeb, "forwarding: {mode: dr}}")) +
                     "backend_health: [{backend: {service_name: web, "
                     "address: 198.51.100.9}, state: down}]\n",
                 "backend_health[0]: no backend 198.51.100.9 in service "
                 "\"web\""},
        RuleCase{"node weight", "node: {weight: 1000001}\n",
                 "node.weight 1000001: outside 0..1000000"},
        RuleCase{"bad local address prefix",
                 "node: {local_addresses: [203.0.113.1/24]}\n",
                 "node.local_addresses[0]: "},
        RuleCase{"overlapping local addresses",
                 "node: {local_addresses: [203.0.113.0/28, "
                 "203.0.113.8/29]}\n",
                 "node.local_addresses[1] \"203.0.113.8/29\": overlaps "
                 "203.0.113.0/28"},
        RuleCase{"too many local addresses",
                 "node: {local_addresses: [\"2001:db8::/64\"]}\n",
                 "more than 4096 local addresses in all"}),
    [](const ::testing::TestParamInfo<RuleCase>& info) {
      std::string name;
      for (const char* p = info.param.rule; *p != '\0'; ++p) {
        if (std::isalnum(static_cast<unsigned char>(*p))) name += *p;
      }
      return name;
    });

TEST(BuildEngineConfig, ReportsEveryProblemOnePerLine) {
  absl::StatusOr<EngineConfig> c = Build(R"(
node: {weight: 2000000}
services:
  - {name: a, vip: 192.0.2.1, port: 80, protocol: tcp, scheduler: mh,
     forwarding: {mode: dr},
     backends: [{address: 198.51.100.1, weight: 70000},
                {address: bad, weight: 1}]}
  - {name: b, vip: 192.0.2.2, port: 80, protocol: tcp,
     forwarding: {mode: dr}}
)");
  ASSERT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<std::string> lines =
      absl::StrSplit(c.status().message(), '\n');
  EXPECT_THAT(lines,
              ElementsAre(HasSubstr("node.weight"), HasSubstr("backends[0]"),
                          HasSubstr("backends[1]"),
                          HasSubstr("service \"b\" (192.0.2.2:80/tcp): "
                                    "scheduler is required")));
}

TEST(BuildEngineConfig, EngineChecksComeLastAndPassThrough) {
  NodeIdentity id = Identity();
  id.tunnel_source_v4.reset();
  EXPECT_THAT(Build(Service(absl::StrCat(kWeb,
                                         "forwarding: {mode: tun}, backends: "
                                         "[{address: 198.51.100.1, weight: "
                                         "1}]}")),
                    id),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no IPv4 tunnel source")));
}

TEST(BuildEngineConfig, NatBackendsAndLocalAddressesForTheSteeringProgram) {
  const std::string yaml = R"(
node: {local_addresses: [203.0.113.240/30, "2001:db8:ffff::/127"]}
services:
  - name: dns
    vip: 192.0.2.53
    port: 53
    protocol: udp
    scheduler: wrr
    forwarding: {mode: nat}
    backends: [{address: 198.51.100.31, port: 5353, weight: 1}]
  - name: app
    vip: 192.0.2.30
    port: 80
    protocol: tcp
    scheduler: wlc
    forwarding: {mode: fullnat}
    backends: [{address: 198.51.100.41, port: 8080, weight: 1}]
)";
  absl::StatusOr<EngineConfig> c = Build(yaml);
  ASSERT_THAT(c, IsOk());
  std::vector<std::string> locals;
  for (const IpAddress& a : c->local_addresses) locals.push_back(a.ToString());
  EXPECT_THAT(locals, ElementsAre("203.0.113.240", "203.0.113.241",
                                  "203.0.113.242", "203.0.113.243",
                                  "2001:db8:ffff::", "2001:db8:ffff::1"));
  EXPECT_EQ(c->snapshot->node().local_addresses.size(), 6u);
  ASSERT_EQ(c->nat_backends.size(), 1u);
  EXPECT_EQ(c->nat_backends.begin()->backend.ToString(), "198.51.100.31:5353");
  EXPECT_EQ(c->nat_backends.begin()->proto, 17);
  EXPECT_EQ(c->snapshot->services()[1].mode, ForwardingMode::kFullNat);
}

// ipvsadm's -w defaults to 1: an omitted weight must not quiesce a real
// server, while an explicit 0 does.
TEST(BuildEngineConfig, OmittedWeightIsOneExplicitZeroIsZero) {
  ASSERT_OK_AND_ASSIGN(EngineConfig c, Build(R"(
services:
  - name: web
    vip: 192.0.2.1
    port: 80
    protocol: tcp
    scheduler: wrr
    forwarding: {mode: dr}
    backends:
      - {address: 198.51.100.1}
      - {address: 198.51.100.2, weight: 0}
      - {address: 198.51.100.3, weight: 7}
)"));
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  EXPECT_EQ(FindBackend(web, "198.51.100.1:80")->weight, 1u);
  EXPECT_EQ(FindBackend(web, "198.51.100.2:80")->weight, 0u);
  EXPECT_EQ(FindBackend(web, "198.51.100.3:80")->weight, 7u);
}

// deploy/examples/lbnode.yaml is what operators copy: it must stay valid.
TEST(BuildEngineConfig, TheExampleConfigIsValid) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot config,
                       config::LoadConfigFile("deploy/examples/lbnode.yaml"));
  EXPECT_EQ(config.services_size(), 5);
  absl::StatusOr<EngineConfig> c = BuildEngineConfig(config, Identity());
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->snapshot->services().size(), 5u);
  EXPECT_EQ(c->vips.size(), 5u);
  EXPECT_EQ(c->nat_backends.size(), 2u);
  EXPECT_EQ(c->local_addresses.size(), 8u + 16u);
}

// kChecked: a service with two checked backends (one at port 0, one
// explicit) and a sorry server.
constexpr char kChecked[] = R"(
services:
  - name: web
    vip: 192.0.2.1
    port: 80
    protocol: tcp
    scheduler: mh
    maglev_table_size: 251
    forwarding: {mode: dr}
    health_check: {tcp: {}}
    backends:
      - {address: 198.51.100.1, weight: 3}
      - {address: 198.51.100.2, port: 80, weight: 5}
    sorry_backend: {address: 198.51.100.9}
)";

BackendId Id(const std::string& service, const std::string& endpoint) {
  return BackendId{service, *Endpoint::Parse(endpoint)};
}

TEST(BuildEngineConfig, LocallyDownBackendIsUnavailableButKeepsItsWeight) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot proto,
                       config::ParseConfigYaml(kChecked, "test.yaml"));
  // .1 is named with port 0 (as configured), .2 with its effective port.
  ASSERT_OK_AND_ASSIGN(EngineConfig c,
                       BuildEngineConfig(proto, Identity(),
                                         {Id("web", "198.51.100.1:0"),
                                          Id("web", "198.51.100.2:80"),
                                          Id("other", "198.51.100.3:80")}));
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  ASSERT_EQ(web.backends.size(), 2u);  // No sorry server: the fleet says up.
  EXPECT_FALSE((*c.names)[0].sorry_active);
  EXPECT_FALSE(FindBackend(web, "198.51.100.1:80")->available);
  EXPECT_EQ(FindBackend(web, "198.51.100.1:80")->weight, 3u);
  EXPECT_FALSE(FindBackend(web, "198.51.100.2:80")->available);
  EXPECT_EQ(FindBackend(web, "198.51.100.2:80")->weight, 5u);

  // Without local verdicts everything is available.
  ASSERT_OK_AND_ASSIGN(EngineConfig all, BuildEngineConfig(proto, Identity()));
  for (const dataplane::BackendConfig& b :
       all.snapshot->services()[0].backends) {
    EXPECT_TRUE(b.available) << b.endpoint;
  }
}

TEST(BuildEngineConfig, FleetDownWinsOverLocalDownAndBringsTheSorryServer) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot proto,
                       config::ParseConfigYaml(kChecked, "test.yaml"));
  for (const char* address : {"198.51.100.1", "198.51.100.2"}) {
    lb::v1::BackendHealth* h = proto.add_backend_health();
    h->mutable_backend()->set_service_name("web");
    h->mutable_backend()->set_address(address);
    h->set_state(lb::v1::HEALTH_STATE_DOWN);
  }
  ASSERT_OK_AND_ASSIGN(
      EngineConfig c,
      BuildEngineConfig(proto, Identity(), {Id("web", "198.51.100.1:80")}));
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  // Both inhibited (weight 0, flows continue), not "unavailable": the
  // fleet's verdict already took them out of new flows. The sorry server
  // joined at weight 1.
  ASSERT_EQ(web.backends.size(), 3u);
  EXPECT_EQ(FindBackend(web, "198.51.100.1:80")->weight, 0u);
  EXPECT_TRUE(FindBackend(web, "198.51.100.1:80")->available);
  EXPECT_EQ(FindBackend(web, "198.51.100.2:80")->weight, 0u);
  ASSERT_NE(FindBackend(web, "198.51.100.9:80"), nullptr);
  EXPECT_EQ(FindBackend(web, "198.51.100.9:80")->weight, 1u);
  EXPECT_TRUE(FindBackend(web, "198.51.100.9:80")->available);
  EXPECT_THAT(
      (*c.names)[0].backends,
      ElementsAre("198.51.100.1:80", "198.51.100.2:80", "198.51.100.9:80"));
  EXPECT_TRUE((*c.names)[0].sorry_active);
  EXPECT_EQ((*c.names)[0].sorry_backend, "198.51.100.9:80");
}

TEST(OverlayLocalHealth, LocalVerdictsBecomeTheFleetsInStandaloneMode) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot proto,
                       config::ParseConfigYaml(kChecked, "test.yaml"));
  // The file says .2 is down; the node's checks say it is up at weight 9.
  lb::v1::BackendHealth* file = proto.add_backend_health();
  file->mutable_backend()->set_service_name("web");
  file->mutable_backend()->set_address("198.51.100.2");
  file->set_state(lb::v1::HEALTH_STATE_DOWN);
  const std::vector<LocalVerdict> verdicts = {
      {Id("web", "198.51.100.1:0"), lb::v1::HEALTH_STATE_DOWN, 0},
      {Id("web", "198.51.100.2:80"), lb::v1::HEALTH_STATE_UP, 9},
      // Not in the config (a reload removed it): skipped.
      {Id("web", "198.51.100.7:0"), lb::v1::HEALTH_STATE_DOWN, 0},
      {Id("gone", "198.51.100.1:0"), lb::v1::HEALTH_STATE_DOWN, 0},
  };
  lb::v1::ConfigSnapshot overlaid = OverlayLocalHealth(proto, verdicts);
  ASSERT_EQ(overlaid.backend_health_size(), 2);
  ASSERT_OK_AND_ASSIGN(EngineConfig c, BuildEngineConfig(overlaid, Identity()));
  const dataplane::ServiceConfig& web = c.snapshot->services()[0];
  ASSERT_EQ(web.backends.size(), 2u);
  EXPECT_EQ(FindBackend(web, "198.51.100.1:80")->weight, 0u);  // inhibited
  EXPECT_EQ(FindBackend(web, "198.51.100.2:80")->weight, 9u);  // dynamic

  // Both down: the sorry server steps in.
  lb::v1::ConfigSnapshot all_down = OverlayLocalHealth(
      proto, {{Id("web", "198.51.100.1:80"), lb::v1::HEALTH_STATE_DOWN, 0},
              {Id("web", "198.51.100.2:80"), lb::v1::HEALTH_STATE_DOWN, 0}});
  ASSERT_OK_AND_ASSIGN(EngineConfig sorry,
                       BuildEngineConfig(all_down, Identity()));
  EXPECT_NE(FindBackend(sorry.snapshot->services()[0], "198.51.100.9:80"),
            nullptr);

  // Not yet checked (UNSPECIFIED) leaves the file's entry alone.
  lb::v1::ConfigSnapshot unchecked = OverlayLocalHealth(
      proto,
      {{Id("web", "198.51.100.2:80"), lb::v1::HEALTH_STATE_UNSPECIFIED, 0}});
  ASSERT_EQ(unchecked.backend_health_size(), 1);
  EXPECT_EQ(unchecked.backend_health(0).state(), lb::v1::HEALTH_STATE_DOWN);
}

TEST(ServiceNameOf, IsTheNameOrTheDefaultName) {
  lb::v1::Service s;
  s.set_vip("192.0.2.1");
  s.set_port(53);
  s.set_protocol(lb::v1::PROTOCOL_UDP);
  EXPECT_EQ(ServiceNameOf(s), "udp-192.0.2.1-53");
  s.set_name("dns");
  EXPECT_EQ(ServiceNameOf(s), "dns");
}

}  // namespace
}  // namespace anylb::agent
