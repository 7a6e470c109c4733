#include "common/config/normalize.h"

#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace anylb::config {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

lb::v1::ConfigSnapshot Parse(const std::string& text) {
  lb::v1::ConfigSnapshot config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config))
      << text;
  return config;
}

TEST(NormalizeConfig, FillsDefaultsAndEffectiveWeights) {
  auto normal = NormalizeConfig(Parse(R"pb(
    revision: 7
    node { node_name: "lb1" local_addresses: "203.0.113.16/30" }
    services {
      vip: "192.0.2.10"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_MH
      scheduler_flags { port: true }
      forwarding { mode: FORWARDING_MODE_TUN tunnel_type: TUNNEL_TYPE_GUE }
      backends { address: "198.51.100.1" }
      backends { address: "198.51.100.2" weight: 5 }
      backends {
        address: "198.51.100.3"
        weight: 5
        state: BACKEND_STATE_DRAINING
      }
      backends {
        address: "198.51.100.4"
        weight: 5
        state: BACKEND_STATE_DISABLED
      }
      backends { address: "2001:db8::5" weight: 2 }
    }
    backend_health {
      backend { service_name: "tcp-192.0.2.10-80" address: "198.51.100.2" }
      state: HEALTH_STATE_DOWN
    }
  )pb"));
  ASSERT_THAT(normal.status(), IsOk());
  EXPECT_EQ(normal->revision, 7u);
  EXPECT_EQ(normal->node.name, "lb1");
  EXPECT_EQ(normal->node.weight, 1u);  // 0 means 1
  EXPECT_EQ(normal->node.local_addresses.size(), 4u);
  EXPECT_TRUE(normal->node.has_local_v4);
  EXPECT_FALSE(normal->node.has_local_v6);
  ASSERT_EQ(normal->services.size(), 1u);
  const NormalService& s = normal->services[0];
  EXPECT_EQ(s.name, "tcp-192.0.2.10-80");
  EXPECT_EQ(s.port, 80);
  EXPECT_EQ(s.protocol, 6);
  EXPECT_EQ(s.hash_inputs, lb::v1::HASH_INPUTS_SOURCE_IP_PORT);
  EXPECT_EQ(s.maglev_table_size, kDefaultMaglevTableSize);
  EXPECT_EQ(s.forwarding.mode, lb::v1::FORWARDING_MODE_TUN);
  EXPECT_EQ(s.forwarding.tunnel, lb::v1::TUNNEL_TYPE_GUE);
  EXPECT_EQ(s.forwarding.gue_port, kDefaultGuePort);
  // .1 weight omitted → 1; .2 down (inhibit) → 0; .3 draining → 0; .4
  // disabled → gone; the IPv6 one rides GUE.
  ASSERT_EQ(s.backends.size(), 4u);
  EXPECT_EQ(s.backends[0].weight, 1u);
  EXPECT_EQ(s.backends[0].port, 80);
  EXPECT_EQ(s.backends[1].weight, 0u);
  EXPECT_EQ(s.backends[2].weight, 0u);
  EXPECT_EQ(s.backends[3].address.ToString(), "2001:db8::5");
}

TEST(NormalizeConfig, ListsEveryProblemNamingServiceFieldAndValue) {
  auto normal = NormalizeConfig(Parse(R"pb(
    services {
      name: "web"
      vip: "192.0.2.300"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_MH
      maglev_table_size: 65536
      forwarding { mode: FORWARDING_MODE_DR }
      backends { address: "198.51.100.1" port: 8080 weight: 70000 }
    }
    services {
      name: "web"
      vip: "192.0.2.11"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_WLC
      forwarding { mode: FORWARDING_MODE_FULLNAT }
      backends { address: "198.51.100.1" }
    }
  )pb"));
  ASSERT_THAT(normal.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(normal.status().message());
  EXPECT_THAT(message, HasSubstr("vip \"192.0.2.300\": not an IPv4 or IPv6"));
  EXPECT_THAT(message, HasSubstr("maglev_table_size 65536: not a prime"));
  EXPECT_THAT(message, HasSubstr("backends[0].port 8080: DR cannot map ports"));
  EXPECT_THAT(message, HasSubstr("backends[0].weight 70000: outside 0..65535"));
  EXPECT_THAT(message, HasSubstr("name \"web\" is services[0]'s name too"));
  EXPECT_THAT(message, HasSubstr("FULLNAT needs node.local_addresses"));
}

TEST(NormalizeConfig, FullNatCheckCanWaitForTheNode) {
  lb::v1::ConfigSnapshot config = Parse(R"pb(
    services {
      name: "db"
      vip: "192.0.2.12"
      port: 5432
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_WLC
      forwarding { mode: FORWARDING_MODE_FULLNAT }
      backends { address: "198.51.100.1" }
    }
  )pb");
  EXPECT_THAT(NormalizeConfig(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      NormalizeConfig(config, {.check_local_addresses = false}).status(),
      IsOk());
}

// SorryConfig: one DR service with two backends, the sorry server, and the
// given backend_health entries.
lb::v1::ConfigSnapshot SorryConfig(const std::string& extra) {
  return Parse(R"pb(
                 services {
                   name: "web"
                   vip: "192.0.2.10"
                   port: 80
                   protocol: PROTOCOL_TCP
                   scheduler: SCHEDULER_MH
                   forwarding { mode: FORWARDING_MODE_DR }
                   backends { address: "198.51.100.1" weight: 3 }
                   backends { address: "198.51.100.2" }
                   sorry_backend { address: "198.51.100.9" }
                 }
               )pb" +
               extra);
}

TEST(NormalizeConfig, SorryBackendStaysOutWhileABackendIsUp) {
  // One backend down (inhibited), the other still up: no sorry server.
  auto normal = NormalizeConfig(SorryConfig(R"pb(
    backend_health {
      backend { service_name: "web" address: "198.51.100.1" }
      state: HEALTH_STATE_DOWN
    }
  )pb"));
  ASSERT_THAT(normal.status(), IsOk());
  const NormalService& s = normal->services[0];
  EXPECT_FALSE(s.sorry_active);
  ASSERT_EQ(s.backends.size(), 2u);
  EXPECT_EQ(s.backends[0].weight, 0u);
  EXPECT_EQ(s.backends[1].weight, 1u);
}

TEST(NormalizeConfig, SorryBackendJoinsWhenEveryBackendIsDownKeepingInhibited) {
  auto normal = NormalizeConfig(SorryConfig(R"pb(
    backend_health {
      backend { service_name: "web" address: "198.51.100.1" }
      state: HEALTH_STATE_DOWN
    }
    backend_health {
      backend { service_name: "web" address: "198.51.100.2" port: 80 }
      state: HEALTH_STATE_DOWN
    }
  )pb"));
  ASSERT_THAT(normal.status(), IsOk());
  const NormalService& s = normal->services[0];
  EXPECT_TRUE(s.sorry_active);
  // The inhibited ones stay at weight 0 (their flows continue); the sorry
  // server comes last, weight 1, at the VIP's port.
  ASSERT_EQ(s.backends.size(), 3u);
  EXPECT_EQ(s.backends[0].weight, 0u);
  EXPECT_EQ(s.backends[1].weight, 0u);
  EXPECT_EQ(s.backends[2].address.ToString(), "198.51.100.9");
  EXPECT_EQ(s.backends[2].port, 80);
  EXPECT_EQ(s.backends[2].weight, 1u);
}

TEST(NormalizeConfig, SorryBackendJoinsWhenBackendsAreRemovedOrDrained) {
  lb::v1::ConfigSnapshot config = SorryConfig("");
  config.mutable_services(0)->mutable_health_check()->set_on_failure(
      lb::v1::FAILURE_ACTION_REMOVE);
  config.mutable_services(0)->mutable_backends(1)->set_state(
      lb::v1::BACKEND_STATE_DRAINING);
  config.mutable_services(0)->mutable_sorry_backend()->set_weight(7);
  lb::v1::BackendHealth* h = config.add_backend_health();
  h->mutable_backend()->set_service_name("web");
  h->mutable_backend()->set_address("198.51.100.1");
  h->set_state(lb::v1::HEALTH_STATE_DOWN);
  auto normal = NormalizeConfig(config);
  ASSERT_THAT(normal.status(), IsOk());
  const NormalService& s = normal->services[0];
  EXPECT_TRUE(s.sorry_active);
  // .1 removed, .2 draining (weight 0), the sorry server at its weight.
  ASSERT_EQ(s.backends.size(), 2u);
  EXPECT_EQ(s.backends[0].address.ToString(), "198.51.100.2");
  EXPECT_EQ(s.backends[0].weight, 0u);
  EXPECT_EQ(s.backends[1].address.ToString(), "198.51.100.9");
  EXPECT_EQ(s.backends[1].weight, 7u);

  // A disabled sorry server is never used.
  config.mutable_services(0)->mutable_sorry_backend()->set_state(
      lb::v1::BACKEND_STATE_DISABLED);
  normal = NormalizeConfig(config);
  ASSERT_THAT(normal.status(), IsOk());
  EXPECT_FALSE(normal->services[0].sorry_active);
  EXPECT_EQ(normal->services[0].backends.size(), 1u);
}

TEST(NormalizeConfig, SorryBackendIsCheckedLikeABackend) {
  auto normal = NormalizeConfig(Parse(R"pb(
    services {
      name: "web"
      vip: "192.0.2.10"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_MH
      forwarding { mode: FORWARDING_MODE_DR }
      backends { address: "198.51.100.1" }
      sorry_backend { address: "198.51.100.9" port: 8080 }
    }
    services {
      name: "v6"
      vip: "2001:db8::10"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_WRR
      forwarding { mode: FORWARDING_MODE_NAT }
      backends { address: "2001:db8::1" }
      sorry_backend { address: "198.51.100.9" weight: 70000 }
    }
    services {
      name: "dup"
      vip: "192.0.2.11"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_WRR
      forwarding { mode: FORWARDING_MODE_NAT }
      backends { address: "198.51.100.1" }
      sorry_backend { address: "198.51.100.1" port: 80 weight: 0 }
    }
  )pb"));
  ASSERT_THAT(normal.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(normal.status().message());
  EXPECT_THAT(message,
              HasSubstr("service \"web\" (192.0.2.10:80/tcp): sorry_backend."
                        "port 8080: DR cannot map ports"));
  EXPECT_THAT(message, HasSubstr("sorry_backend.address \"198.51.100.9\": "
                                 "IPv4 backend of an IPv6 VIP"));
  EXPECT_THAT(message,
              HasSubstr("sorry_backend.weight 70000: outside 0..65535"));
  EXPECT_THAT(message, HasSubstr("sorry_backend.weight 0: a sorry server of "
                                 "weight 0 would take no flows"));
  EXPECT_THAT(message, HasSubstr("sorry_backend: 198.51.100.1:80 is "
                                 "backends[0] too"));
}

TEST(NormalizeConfig, HealthCheckIsCheckedLikeTheMonitorWould) {
  auto normal = NormalizeConfig(Parse(R"pb(
    services {
      name: "web"
      vip: "192.0.2.10"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_WRR
      forwarding { mode: FORWARDING_MODE_DR }
      backends { address: "198.51.100.1" }
      health_check {
        interval { seconds: 1 }
        timeout { seconds: 2 }
        exec { argv: "check.sh" }
        notify_down: "mail"
      }
    }
    services {
      name: "api"
      vip: "192.0.2.11"
      port: 80
      protocol: PROTOCOL_TCP
      scheduler: SCHEDULER_WRR
      forwarding { mode: FORWARDING_MODE_DR }
      backends { address: "198.51.100.1" }
      health_check {
        interval { nanos: 5000000 }
        http { expected_statuses { min: 300 max: 200 } }
      }
    }
  )pb"));
  ASSERT_THAT(normal.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(normal.status().message());
  EXPECT_THAT(message, HasSubstr("health_check.timeout 2s: must be positive "
                                 "and shorter than the interval 1s"));
  EXPECT_THAT(message, HasSubstr("health_check.exec.argv[0] \"check.sh\": "
                                 "must be an absolute path"));
  EXPECT_THAT(message, HasSubstr("health_check.notify_down[0] \"mail\""));
  EXPECT_THAT(message, HasSubstr("health_check.interval 5ms: at least 10ms"));
  EXPECT_THAT(message,
              HasSubstr("health_check.http.expected_statuses[0] 300-200"));

  // Defaults (5s, 2s) and a check with only on_failure pass.
  EXPECT_THAT(NormalizeConfig(Parse(R"pb(
                services {
                  name: "web"
                  vip: "192.0.2.10"
                  port: 80
                  protocol: PROTOCOL_TCP
                  scheduler: SCHEDULER_WRR
                  forwarding { mode: FORWARDING_MODE_DR }
                  backends { address: "198.51.100.1" }
                  health_check { on_failure: FAILURE_ACTION_REMOVE }
                }
                services {
                  name: "api"
                  vip: "192.0.2.11"
                  port: 80
                  protocol: PROTOCOL_TCP
                  scheduler: SCHEDULER_WRR
                  forwarding { mode: FORWARDING_MODE_DR }
                  backends { address: "198.51.100.1" }
                  health_check {
                    timeout { seconds: 4 }
                    exec { argv: "/bin/true" }
                  }
                }
              )pb"))
                  .status(),
              IsOk());
}

}  // namespace
}  // namespace anylb::config
