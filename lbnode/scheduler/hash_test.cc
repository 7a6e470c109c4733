#include "lbnode/scheduler/hash.h"

#include <cstdint>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace anylb::scheduler {
namespace {

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

// The values below pin the hash: nodes running different releases must
// still agree on every table, so a change here is a fleet-wide reshuffle
// and needs a deliberate decision (and a release note), not a refactor.
// The expected values were computed by an independent Python version of
// the algorithm described in hash.h.
TEST(Hash64, IsStableAcrossReleases) {
  const uint8_t bytes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  EXPECT_EQ(Hash64({}, 0), Hash64({}, 0));
  EXPECT_EQ(Hash64(bytes, 42), 0x28c6c97d02320fd9ULL);
  EXPECT_EQ(Hash64({}, 0), 0xc83e221c6c03c5f6ULL);
}

TEST(Hash64, SeedAndLengthChangeTheResult) {
  const uint8_t a[] = {0, 0, 0, 0};
  const uint8_t b[] = {0, 0, 0, 0, 0};
  EXPECT_NE(Hash64(a, 1), Hash64(a, 2));
  EXPECT_NE(Hash64(a, 1), Hash64(b, 1));
}

TEST(Hash64, SingleBitFlipsChangeAboutHalfTheOutputBits) {
  uint8_t bytes[40] = {};
  const uint64_t base = Hash64(bytes, 7);
  int total = 0;
  for (int bit = 0; bit < 320; ++bit) {
    bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    total += __builtin_popcountll(base ^ Hash64(bytes, 7));
    bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
  const double mean = static_cast<double>(total) / 320;
  EXPECT_GT(mean, 28.0);
  EXPECT_LT(mean, 36.0);
}

TEST(HashEndpoint, DependsOnAddressPortAndFamily) {
  const Endpoint a(Ip("192.0.2.1"), 80);
  std::set<uint64_t> seen = {
      HashEndpoint(a, 1),
      HashEndpoint(Endpoint(Ip("192.0.2.1"), 81), 1),
      HashEndpoint(Endpoint(Ip("192.0.2.2"), 80), 1),
      HashEndpoint(Endpoint(Ip("::ffff:192.0.2.1"), 80), 1),
      HashEndpoint(a, 2),
  };
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(HashEndpoint(a, 1), HashEndpoint(Endpoint(Ip("192.0.2.1"), 80), 1));
}

class HashFlowTest : public testing::TestWithParam<bool> {
 protected:
  IpAddress Client() const {
    return Ip(GetParam() ? "2001:db8::1" : "192.0.2.1");
  }
  IpAddress Vip() const {
    return Ip(GetParam() ? "2001:db8::10" : "198.51.100.10");
  }
  IpAddress OtherVip() const {
    return Ip(GetParam() ? "2001:db8::11" : "198.51.100.11");
  }
};

TEST_P(HashFlowTest, FiveTupleSeesEveryField) {
  const FlowKey base = FlowKey::Make(Client(), 40000, Vip(), 80, kProtoTcp);
  std::vector<FlowKey> variants(5, base);
  variants[0].src_port = 40001;
  variants[1].dst_port = 81;
  variants[2].protocol = kProtoUdp;
  variants[3] = FlowKey::Make(Client(), 40000, OtherVip(), 80, kProtoTcp);
  variants[4].src[3] ^= 1;
  const uint64_t h = HashFlow(base, HashInputs::kFiveTuple, 9);
  for (const auto& v : variants) {
    EXPECT_NE(HashFlow(v, HashInputs::kFiveTuple, 9), h);
  }
}

TEST_P(HashFlowTest, SourceIpIgnoresPortsProtocolAndDestination) {
  const FlowKey a = FlowKey::Make(Client(), 40000, Vip(), 80, kProtoTcp);
  const FlowKey b = FlowKey::Make(Client(), 51234, OtherVip(), 443, kProtoUdp);
  EXPECT_EQ(HashFlow(a, HashInputs::kSourceIp, 3),
            HashFlow(b, HashInputs::kSourceIp, 3));
  EXPECT_NE(HashFlow(a, HashInputs::kSourceIpPort, 3),
            HashFlow(b, HashInputs::kSourceIpPort, 3));
}

TEST_P(HashFlowTest, ThreeTupleIgnoresPortsOnly) {
  const FlowKey a = FlowKey::Make(Client(), 40000, Vip(), 80, kProtoUdp);
  FlowKey fragment = a;
  fragment.src_port = 0;
  fragment.dst_port = 0;
  EXPECT_EQ(HashFlow(a, HashInputs::kThreeTuple, 3),
            HashFlow(fragment, HashInputs::kThreeTuple, 3));
  FlowKey other = a;
  other.protocol = kProtoTcp;
  EXPECT_NE(HashFlow(a, HashInputs::kThreeTuple, 3),
            HashFlow(other, HashInputs::kThreeTuple, 3));
}

INSTANTIATE_TEST_SUITE_P(V4AndV6, HashFlowTest, testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "IPv6" : "IPv4";
                         });

TEST(FlowKey, RoundTripsAddressesAndComparesAllFields) {
  const FlowKey a =
      FlowKey::Make(Ip("2001:db8::1"), 1, Ip("2001:db8::2"), 2, kProtoTcp);
  EXPECT_EQ(a.src_address(), Ip("2001:db8::1"));
  EXPECT_EQ(a.dst_address(), Ip("2001:db8::2"));
  EXPECT_FALSE(a.is_v4());
  FlowKey b = a;
  EXPECT_EQ(a, b);
  b.dst_port = 3;
  EXPECT_FALSE(a == b);
  const FlowKey v4 =
      FlowKey::Make(Ip("192.0.2.1"), 1, Ip("192.0.2.2"), 2, kProtoUdp);
  EXPECT_TRUE(v4.is_v4());
  EXPECT_EQ(v4.src_address(), Ip("192.0.2.1"));
}

}  // namespace
}  // namespace anylb::scheduler
