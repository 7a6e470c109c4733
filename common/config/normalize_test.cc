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

}  // namespace
}  // namespace anylb::config
