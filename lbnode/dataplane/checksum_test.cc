#include "lbnode/dataplane/checksum.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/byte_order.h"
#include "lbnode/dataplane/parser.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane {
namespace {

namespace dt = ::anylb::dataplane_testing;
using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::PacketBuilder;

std::vector<uint8_t> RandomBytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> bytes(n);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

TEST(ChecksumUpdate16, MatchesTheRfc1624Example) {
  // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives 0x0000 (eqn.
  // 3), where the RFC 1141 form gives 0xffff.
  EXPECT_EQ(ChecksumUpdate16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(InternetChecksum, AgreesWithTheIndependentRoutineOnRandomData) {
  std::mt19937 rng(1);
  for (size_t n = 0; n < 300; ++n) {
    std::vector<uint8_t> data = RandomBytes(rng, n);
    std::vector<uint8_t> prefix = RandomBytes(rng, 2 * (n % 20));
    SCOPED_TRACE(n);
    EXPECT_EQ(InternetChecksum(data), dt::InternetChecksum({data}));
    EXPECT_EQ(InternetChecksum(data, ChecksumAccumulate(prefix)),
              dt::InternetChecksum({prefix, data}));
  }
}

TEST(ChecksumFold, FoldsLargeSumsWithEndAroundCarry) {
  EXPECT_EQ(ChecksumFold(0), 0);
  EXPECT_EQ(ChecksumFold(0xffff), 0xffff);
  EXPECT_EQ(ChecksumFold(0x10000), 1);
  EXPECT_EQ(ChecksumFold(0x1fffe), 0xffff);
  // 2^48 - 1 is 0xffff * (2^32 + 2^16 + 1): a multiple of 0xffff.
  EXPECT_EQ(ChecksumFold(0xffffffffffff), 0xffff);
  EXPECT_EQ(ChecksumFold(0xffffffffffffffff), 0xffff);
}

TEST(Ipv4HeaderChecksum, MatchesTheBuilderAndIgnoresTheStoredField) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Ipv4Options({1, 1, 1, 1})
                               .Ttl(17)
                               .Tcp(1, 2)
                               .Build();
  std::span<uint8_t> header(f.data() + 14, 24);
  const uint16_t stored = LoadBe16(header.data() + 10);
  EXPECT_EQ(Ipv4HeaderChecksum(header), stored);
  StoreBe16(header.data() + 10, 0xbeef);
  EXPECT_EQ(Ipv4HeaderChecksum(header), stored);
}

TEST(PseudoHeaderSum, GivesTheBuildersTransportChecksums) {
  for (bool v4 : {true, false}) {
    PacketBuilder b;
    b.Eth("02:00:00:00:00:01", "02:00:00:00:00:02");
    if (v4) {
      b.Ipv4("192.0.2.1", "198.51.100.10");
    } else {
      b.Ipv6("2001:db8::1", "2001:db8::10");
    }
    std::vector<uint8_t> f = b.Tcp(1234, 80).Payload("odd").Build();
    const size_t l4 = v4 ? 34 : 54;
    std::vector<uint8_t> segment(f.begin() + l4, f.end());
    const uint16_t stored = LoadBe16(segment.data() + 16);
    segment[16] = segment[17] = 0;
    const uint64_t pseudo =
        v4 ? PseudoHeaderSumV4(f.data() + 26, f.data() + 30, 6,
                               static_cast<uint16_t>(segment.size()))
           : PseudoHeaderSumV6(f.data() + 22, f.data() + 38, 6,
                               static_cast<uint32_t>(segment.size()));
    EXPECT_EQ(InternetChecksum(segment, pseudo), stored) << v4;
  }
}

TEST(ChecksumUpdate, RandomChangesMatchAFullRecomputation) {
  std::mt19937 rng(2);
  for (int i = 0; i < 20000; ++i) {
    const size_t words = 2 + rng() % 40;
    std::vector<uint8_t> data = RandomBytes(rng, 2 * words);
    const uint16_t before = dt::InternetChecksum({data});
    const size_t size = std::array<size_t, 3>{2, 4, 16}[rng() % 3];
    if (size > data.size()) continue;
    const size_t at = 2 * (rng() % ((data.size() - size) / 2 + 1));
    std::vector<uint8_t> old_bytes(data.begin() + at, data.begin() + at + size);
    std::vector<uint8_t> new_bytes = RandomBytes(rng, size);
    if (rng() % 8 == 0) new_bytes = old_bytes;  // No-op changes too.
    std::copy(new_bytes.begin(), new_bytes.end(), data.begin() + at);
    const uint16_t want = dt::InternetChecksum({data});
    SCOPED_TRACE(i);
    EXPECT_EQ(ChecksumUpdateBytes(before, old_bytes, new_bytes), want);
    if (size == 2) {
      EXPECT_EQ(ChecksumUpdate16(before, LoadBe16(old_bytes.data()),
                                 LoadBe16(new_bytes.data())),
                want);
    } else if (size == 4) {
      EXPECT_EQ(ChecksumUpdate32(before, LoadBe32(old_bytes.data()),
                                 LoadBe32(new_bytes.data())),
                want);
    }
  }
}

TEST(L4Checksum, KindsAndOffsetsFollowTheProtocol) {
  EXPECT_EQ(L4ChecksumKindFor(6, false), L4ChecksumKind::kTcp);
  EXPECT_EQ(L4ChecksumKindFor(6, true), L4ChecksumKind::kTcp);
  EXPECT_EQ(L4ChecksumKindFor(17, false), L4ChecksumKind::kUdpV4);
  EXPECT_EQ(L4ChecksumKindFor(17, true), L4ChecksumKind::kUdpV6);
  EXPECT_EQ(L4ChecksumKindFor(1, false), L4ChecksumKind::kIcmpV4);
  EXPECT_EQ(L4ChecksumKindFor(1, true), L4ChecksumKind::kNone);
  EXPECT_EQ(L4ChecksumKindFor(58, true), L4ChecksumKind::kIcmpV6);
  EXPECT_EQ(L4ChecksumKindFor(58, false), L4ChecksumKind::kNone);
  EXPECT_EQ(L4ChecksumKindFor(132, false), L4ChecksumKind::kNone);
  EXPECT_EQ(L4ChecksumOffset(6), 16);
  EXPECT_EQ(L4ChecksumOffset(17), 6);
  EXPECT_EQ(L4ChecksumOffset(1), 2);
  EXPECT_EQ(L4ChecksumOffset(58), 2);
  EXPECT_EQ(L4ChecksumOffset(50), -1);
}

TEST(L4Checksum, NoFieldOrKindNoneIsANoOp) {
  uint8_t field[2] = {0x12, 0x34};
  const uint8_t a[4] = {1, 2, 3, 4};
  const uint8_t b[4] = {5, 6, 7, 8};
  UpdateL4ChecksumPseudo({}, a, b);
  UpdateL4ChecksumData16({}, 1, 2);
  UpdateL4ChecksumData({field, L4ChecksumKind::kNone}, a, b);
  EXPECT_EQ(LoadBe16(field), 0x1234);
  // ICMPv4 has no pseudo-header: an address change leaves it alone.
  UpdateL4ChecksumPseudo({field, L4ChecksumKind::kIcmpV4}, a, b);
  EXPECT_EQ(LoadBe16(field), 0x1234);
}

// --- Rewrites on real packets, checked against PacketBuilder ---

enum class Proto { kTcp, kUdp, kUdpNoChecksum, kIcmpEcho };

struct RewriteParam {
  bool v4;
  Proto proto;
  std::string name;
};

struct Tuple {
  std::string src;
  std::string dst;
  uint16_t sport;
  uint16_t dport;  // For ICMP echo: the identifier.
};

std::string RandomAddress(std::mt19937& rng, bool v4) {
  if (v4) {
    static constexpr const char* kNets[] = {"192.0.2.", "198.51.100.",
                                            "203.0.113."};
    return kNets[rng() % 3] + std::to_string(rng() % 256);
  }
  char text[64];
  std::snprintf(text, sizeof(text), "2001:db8:%x:%x:%x:%x:%x:%x",
                static_cast<unsigned>(rng() % 65536),
                static_cast<unsigned>(rng() % 65536),
                static_cast<unsigned>(rng() % 65536),
                static_cast<unsigned>(rng() % 65536),
                static_cast<unsigned>(rng() % 65536),
                static_cast<unsigned>(rng() % 65536));
  return text;
}

Tuple RandomTuple(std::mt19937& rng, bool v4) {
  return {RandomAddress(rng, v4), RandomAddress(rng, v4),
          static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng())};
}

std::vector<uint8_t> BuildPacket(const RewriteParam& p, const Tuple& t,
                                 const std::vector<uint8_t>& payload) {
  PacketBuilder b;
  b.Eth("02:00:00:00:00:01", "02:00:00:00:00:02");
  if (p.v4) {
    b.Ipv4(t.src, t.dst).Ttl(61);
  } else {
    b.Ipv6(t.src, t.dst);
  }
  switch (p.proto) {
    case Proto::kTcp:
      b.Tcp(t.sport, t.dport).Seq(0x11223344);
      break;
    case Proto::kUdp:
      b.Udp(t.sport, t.dport);
      break;
    case Proto::kUdpNoChecksum:
      b.Udp(t.sport, t.dport).UdpChecksumZero();
      break;
    case Proto::kIcmpEcho:
      if (p.v4) {
        b.IcmpV4(dt::kIcmpEchoRequest, 0);
      } else {
        b.IcmpV6(dt::kIcmpV6EchoRequest, 0);
      }
      b.IcmpRest(uint32_t{t.dport} << 16 | 7);
      break;
  }
  return b.Payload(payload).Build();
}

// Rewrites `frame` in place from its tuple to `to`, as NAT/FULLNAT would.
void Rewrite(const RewriteParam& p, std::vector<uint8_t>& frame,
             const Tuple& to) {
  ParseResult r = Parse(frame);
  ASSERT_TRUE(r.ok()) << DropReasonName(r.drop_reason);
  const ParsedPacket& pk = r.packet;
  uint8_t* base = frame.data();
  uint8_t* l4 = base + pk.l4_offset;
  L4Checksum check{l4 + L4ChecksumOffset(pk.l4_protocol),
                   L4ChecksumKindFor(pk.l4_protocol, !p.v4)};
  IpAddress src = *IpAddress::Parse(to.src);
  IpAddress dst = *IpAddress::Parse(to.dst);
  if (p.v4) {
    uint8_t* ip = base + pk.l3_offset;
    RewriteIpv4Address(ip, base + pk.src_addr_offset(), src.bytes().first<4>(),
                       check);
    RewriteIpv4Address(ip, base + pk.dst_addr_offset(), dst.bytes().first<4>(),
                       check);
  } else {
    RewriteIpv6Address(base + pk.src_addr_offset(), src.bytes().first<16>(),
                       check);
    RewriteIpv6Address(base + pk.dst_addr_offset(), dst.bytes().first<16>(),
                       check);
  }
  if (p.proto == Proto::kIcmpEcho) {
    RewritePort(l4 + 4, to.dport, check);  // The echo identifier.
  } else {
    RewritePort(l4, to.sport, check);
    RewritePort(l4 + 2, to.dport, check);
  }
}

void PrintTo(const RewriteParam& p, std::ostream* os) { *os << p.name; }

class RewriteTest : public ::testing::TestWithParam<RewriteParam> {};

TEST_P(RewriteTest, RandomRewritesEqualAFreshlyBuiltPacket) {
  const RewriteParam& p = GetParam();
  std::mt19937 rng(3);
  for (int i = 0; i < 500; ++i) {
    std::vector<uint8_t> payload = RandomBytes(rng, rng() % 40);
    Tuple from = RandomTuple(rng, p.v4);
    Tuple to = RandomTuple(rng, p.v4);
    if (rng() % 4 == 0) to.src = from.src;  // Only some fields change.
    std::vector<uint8_t> frame = BuildPacket(p, from, payload);
    Rewrite(p, frame, to);
    SCOPED_TRACE(i);
    EXPECT_THAT(frame, FrameEq(BuildPacket(p, to, payload)));
    EXPECT_TRUE(dt::VerifyChecksums(frame).ok());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Protocols, RewriteTest,
    ::testing::Values(RewriteParam{true, Proto::kTcp, "Ipv4Tcp"},
                      RewriteParam{false, Proto::kTcp, "Ipv6Tcp"},
                      RewriteParam{true, Proto::kUdp, "Ipv4Udp"},
                      RewriteParam{false, Proto::kUdp, "Ipv6Udp"},
                      RewriteParam{true, Proto::kUdpNoChecksum,
                                   "Ipv4UdpWithoutChecksumStaysWithout"},
                      RewriteParam{true, Proto::kIcmpEcho, "Ipv4IcmpEcho"},
                      RewriteParam{false, Proto::kIcmpEcho, "Ipv6IcmpEcho"}),
    [](const ::testing::TestParamInfo<RewriteParam>& info) {
      return info.param.name;
    });

class UdpZeroResultTest : public ::testing::TestWithParam<bool> {};

TEST_P(UdpZeroResultTest, RewriteWhoseResultIsZeroSendsAllOnes) {
  const RewriteParam p{GetParam(), Proto::kUdp, ""};
  std::mt19937 rng(4);
  for (int i = 0; i < 20; ++i) {
    Tuple from = RandomTuple(rng, p.v4);
    Tuple to = RandomTuple(rng, p.v4);
    // Choose the last payload word so that the new packet's checksum sums
    // to zero: with X = the checksum computed with X = 0, the total is
    // S + ~S = 0xffff, whose complement 0 must go out as 0xffff.
    std::vector<uint8_t> payload = {0, 0};
    std::vector<uint8_t> probe = BuildPacket(p, to, payload);
    const size_t udp = probe.size() - 2 - 8;
    payload = {probe[udp + 6], probe[udp + 7]};
    std::vector<uint8_t> want = BuildPacket(p, to, payload);
    ASSERT_EQ(LoadBe16(want.data() + udp + 6), 0xffff);
    std::vector<uint8_t> frame = BuildPacket(p, from, payload);
    Rewrite(p, frame, to);
    EXPECT_THAT(frame, FrameEq(want));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, UdpZeroResultTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Ipv4" : "Ipv6";
                         });

TEST(DecrementIpv4Ttl, EqualsAPacketBuiltWithTheLowerTtl) {
  std::mt19937 rng(5);
  for (int ttl = 2; ttl <= 255; ++ttl) {
    const uint16_t id = static_cast<uint16_t>(rng());
    auto build = [&](int t) {
      return PacketBuilder()
          .Eth("02:00:00:00:00:01", "02:00:00:00:00:02")
          .Ipv4(RandomAddress(rng, true), "198.51.100.10")
          .Id(id)
          .Ttl(static_cast<uint8_t>(t))
          .Udp(1, 2)
          .Build();
    };
    std::mt19937 saved = rng;
    std::vector<uint8_t> frame = build(ttl);
    rng = saved;  // Same source address for both.
    std::vector<uint8_t> want = build(ttl - 1);
    DecrementIpv4Ttl(frame.data() + 14);
    EXPECT_THAT(frame, FrameEq(want)) << "ttl " << ttl;
  }
}

}  // namespace
}  // namespace anylb::dataplane
