#include "lbnode/scheduler/hash.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <string>
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

// --- FlowKeyHasher: the flow table's hash ---

// RealisticKey is key `i` of what one worker sees: clients of one /24
// (IPv4) or one /120 (IPv6) with sequential source ports to two VIP:port
// pairs, TCP and UDP (2^22 keys, then they repeat); keys differ in few,
// low-entropy bits.
FlowKey RealisticKey(bool v6, size_t i) {
  const uint32_t client = static_cast<uint32_t>(i / 4096) % 256;
  const uint16_t port = static_cast<uint16_t>(32768 + i % 4096);
  const bool second = (i / (4096 * 256)) % 2 != 0;
  const uint8_t proto = (i / (4096 * 512)) % 2 != 0 ? kProtoUdp : kProtoTcp;
  IpAddress src, dst;
  if (v6) {
    std::array<uint8_t, 16> s = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
    s[15] = static_cast<uint8_t>(client);
    std::array<uint8_t, 16> d = {0x20, 0x01, 0x0d, 0xb8, 0, 0x10};
    d[15] = second ? 0x11 : 0x10;
    src = IpAddress::FromV6Bytes(s);
    dst = IpAddress::FromV6Bytes(d);
  } else {
    src = IpAddress::FromV4(0xc6336400u + client);  // 198.51.100.0/24
    dst = IpAddress::FromV4(second ? 0xcb00710bu : 0xcb00710au);
  }
  return FlowKey::Make(src, port, dst, second ? 443 : 80, proto);
}

// RealisticKeys are keys 0..n-1.
std::vector<FlowKey> RealisticKeys(bool v6, size_t n) {
  std::vector<FlowKey> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back(RealisticKey(v6, i));
  return keys;
}

// ExpectStrictAvalanche checks that flipping any one bit of the key's 38
// meaningful bytes flips each of the 64 output bits with probability 1/2
// (Webster and Tavares 1985), over `keys`: with 3000 keys one pair's
// estimate has a standard deviation of 0.009, so 0.1 is 11 of them.
// FlowKeyHasher without its final Mum scored a bias of 0.37 on such keys.
void ExpectStrictAvalanche(const std::function<uint64_t(const FlowKey&)>& hash,
                           const std::vector<FlowKey>& keys,
                           const std::string& name) {
  constexpr int kBits = 38 * 8;
  std::vector<int> flips(kBits * 64, 0);
  for (const FlowKey& key : keys) {
    const uint64_t h = hash(key);
    for (int bit = 0; bit < kBits; ++bit) {
      FlowKey k = key;
      reinterpret_cast<uint8_t*>(&k)[bit / 8] ^=
          static_cast<uint8_t>(1u << (bit % 8));
      const uint64_t d = h ^ hash(k);
      for (int out = 0; out < 64; ++out)
        flips[bit * 64 + out] += (d >> out) & 1;
    }
  }
  double worst = 0;
  int worst_in = 0, worst_out = 0;
  for (int i = 0; i < kBits * 64; ++i) {
    const double bias =
        std::abs(static_cast<double>(flips[i]) / keys.size() - 0.5);
    if (bias > worst) worst = bias, worst_in = i / 64, worst_out = i % 64;
  }
  EXPECT_LT(worst, 0.1) << name << ": input bit " << worst_in
                        << " flips output bit " << worst_out << " with bias "
                        << worst;
}

// ChiSquare of `values` reduced to `buckets` (a power of two) by `bucket`.
double ChiSquare(const std::vector<uint64_t>& values, size_t buckets,
                 const std::function<size_t(uint64_t)>& bucket) {
  std::vector<double> count(buckets, 0);
  for (uint64_t v : values) ++count[bucket(v) % buckets];
  const double expected = static_cast<double>(values.size()) / buckets;
  double chi = 0;
  for (double c : count) chi += (c - expected) * (c - expected) / expected;
  return chi;
}

class FlowKeyHasherTest : public testing::TestWithParam<bool> {};

TEST_P(FlowKeyHasherTest, EveryKeyBitAvalanchesOverEveryOutputBit) {
  std::mt19937 rng(3);
  std::vector<FlowKey> all;
  for (int i = 0; i < 3000; ++i) {
    all.push_back(RealisticKey(GetParam(), rng() % (size_t{1} << 22)));
  }
  const FlowKeyHasher hasher(42);
  ExpectStrictAvalanche(hasher, all, "FlowKeyHasher");
  // The same bar for the fleet-wide hash.
  ExpectStrictAvalanche(
      [](const FlowKey& k) { return HashFlow(k, HashInputs::kFiveTuple, 42); },
      all, "HashFlow");
}

TEST_P(FlowKeyHasherTest, LowBitsSpreadSequentialPortsEvenly) {
  // 2^18 keys: 64 clients x 4096 sequential ports. Table slots take the low
  // bits (tag & mask), the GUE source port hash % 16384, the IPv6 flow label
  // the low 20 bits. Chi-square of uniform counts over k buckets has mean
  // k - 1 and standard deviation sqrt(2(k - 1)): allow 5 of them either way
  // (too even is as suspicious as too lumpy: a linear map of the ports).
  std::vector<FlowKey> keys = RealisticKeys(GetParam(), size_t{1} << 18);
  const FlowKeyHasher hasher(7);
  std::vector<uint64_t> hashes;
  for (const FlowKey& k : keys) hashes.push_back(hasher(k));
  struct Reduction {
    const char* name;
    size_t buckets;
    std::function<size_t(uint64_t)> bucket;
  };
  const Reduction reductions[] = {
      {"slot of a 4096-slot index", 4096, [](uint64_t h) { return h; }},
      {"slot of a 2^16-slot index", 1 << 16, [](uint64_t h) { return h; }},
      {"GUE source port", 16384,
       [](uint64_t h) { return static_cast<uint32_t>(h) % 16384; }},
      {"IPv6 flow label, top 12 of 20 bits", 4096,
       [](uint64_t h) { return (h & 0xfffff) >> 8; }},
      {"high word", 4096, [](uint64_t h) { return h >> 52; }},
  };
  for (const Reduction& r : reductions) {
    const double k = static_cast<double>(r.buckets);
    const double chi = ChiSquare(hashes, r.buckets, r.bucket);
    const double sd = std::sqrt(2 * (k - 1));
    EXPECT_GT(chi, k - 1 - 5 * sd) << r.name;
    EXPECT_LT(chi, k - 1 + 5 * sd) << r.name;
  }
  // No two keys share the full 64-bit hash (2^18 keys: a collision has
  // probability 2^-29 for a random function).
  std::sort(hashes.begin(), hashes.end());
  EXPECT_EQ(std::adjacent_find(hashes.begin(), hashes.end()), hashes.end());
}

INSTANTIATE_TEST_SUITE_P(V4AndV6, FlowKeyHasherTest, testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "IPv6" : "IPv4";
                         });

TEST(FlowKeyHasher, DependsOnTheSeedAndOnEveryField) {
  const FlowKey base =
      FlowKey::Make(Ip("192.0.2.1"), 40000, Ip("198.51.100.10"), 80, kProtoTcp);
  int same = 0;
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    same += FlowKeyHasher(seed)(base) == FlowKeyHasher(seed + 1)(base);
  }
  EXPECT_EQ(same, 0);
  EXPECT_EQ(FlowKeyHasher(5)(base), FlowKeyHasher(5)(base));
  // IPv4 and IPv6 keys with the same bytes, and each field, differ.
  std::vector<FlowKey> variants(6, base);
  variants[0].family = IpFamily::kV6;
  variants[1].src_port = 40001;
  variants[2].dst_port = 81;
  variants[3].protocol = kProtoUdp;
  variants[4].src[3] ^= 1;
  variants[5].dst[0] ^= 0x80;
  std::set<uint64_t> seen = {FlowKeyHasher(5)(base)};
  for (const FlowKey& v : variants) seen.insert(FlowKeyHasher(5)(v));
  EXPECT_EQ(seen.size(), variants.size() + 1);
}

TEST(FlowKeyHasher, AllZeroKeyAndSeedStillMix) {
  // Zero words must not zero a product: the secrets are never zero-based.
  const FlowKeyHasher hasher(0);
  FlowKey zero;
  const uint64_t h = hasher(zero);
  EXPECT_NE(h, 0u);
  zero.src_port = 1;
  EXPECT_GT(__builtin_popcountll(h ^ hasher(zero)), 16);
}

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
