#include "routing/announce/announce_config.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace anylb::routing::announce {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

lb::v1::ConfigSnapshot Parse(const char* text) {
  lb::v1::ConfigSnapshot s;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &s));
  return s;
}

TEST(AnnounceConfig, NodeAndServicesBecomeThePlainConfig) {
  ASSERT_OK_AND_ASSIGN(
      AnnounceConfig c, AnnounceConfigFromProto(Parse(R"pb(
        node {
          weight: 300
          admin_state: NODE_ADMIN_STATE_DRAINED
          drain_period { seconds: 5 }
          local_addresses: "192.0.2.64/28"
          local_addresses: "2001:db8:1::5"
        }
        services {
          name: "web"
          vip: "192.0.2.10"
          port: 80
          quorum { min_weight: 2 hysteresis: 1 }
          backends { address: "198.51.100.1" }
          backends { address: "198.51.100.2" weight: 0 }
          backends { address: "198.51.100.3" state: BACKEND_STATE_DISABLED }
          bgp_communities: "65000:100"
          bgp_communities: "no-export"
        }
        services { vip: "2001:db8::10" port: 443 }
      )pb")));
  EXPECT_EQ(c.weight, 300u);
  EXPECT_TRUE(c.drained);
  EXPECT_EQ(c.drain_period, absl::Seconds(5));
  ASSERT_EQ(c.local_addresses.size(), 2u);
  EXPECT_EQ(c.local_addresses[0].ToString(), "192.0.2.64/28");
  EXPECT_EQ(c.local_addresses[1].ToString(), "2001:db8:1::5/128");
  ASSERT_EQ(c.services.size(), 2u);
  const AnnounceService& web = c.services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.vip.ToString(), "192.0.2.10");
  EXPECT_EQ(web.quorum_min_weight, 2u);
  EXPECT_EQ(web.quorum_hysteresis, 1u);
  ASSERT_EQ(web.backends.size(), 3u);
  EXPECT_EQ(web.backends[0].weight, 1u);  // Unset weight is 1.
  EXPECT_TRUE(web.backends[0].enabled);
  EXPECT_EQ(web.backends[1].weight, 0u);
  EXPECT_FALSE(web.backends[2].enabled);
  EXPECT_THAT(web.communities,
              ::testing::ElementsAre(65000u << 16 | 100, 0xFFFFFF01u));
  EXPECT_EQ(c.services[1].name, "2001:db8::10:443");
}

TEST(AnnounceConfig, DefaultsAreWeightOneActiveAndThirtySeconds) {
  ASSERT_OK_AND_ASSIGN(AnnounceConfig c, AnnounceConfigFromProto({}));
  EXPECT_EQ(c.weight, 1u);
  EXPECT_FALSE(c.drained);
  EXPECT_EQ(c.drain_period, absl::Seconds(30));
}

TEST(AnnounceConfig, BadCommunityNamesTheField) {
  EXPECT_THAT(AnnounceConfigFromProto(Parse(R"pb(
                services { vip: "192.0.2.10" bgp_communities: "65000" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("services[0].bgp_communities[0]: BGP "
                                 "community \"65000\" is not AA:NN")));
}

TEST(AnnounceConfig, BadLocalAddressNamesTheField) {
  EXPECT_THAT(AnnounceConfigFromProto(Parse(R"pb(
                node { local_addresses: "192.0.2.65/28" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("node.local_addresses[0]: ")));
}

}  // namespace
}  // namespace anylb::routing::announce
