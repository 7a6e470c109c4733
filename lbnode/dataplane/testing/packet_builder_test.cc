#include "lbnode/dataplane/testing/packet_builder.h"

#include <cstdint>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::dataplane_testing {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kMacA[] = "02:00:00:00:00:01";
constexpr char kMacB[] = "02:00:00:00:00:02";

uint16_t Be16(const std::vector<uint8_t>& b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

TEST(InternetChecksum, MatchesRfc1071WorkedExample) {
  // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's
  // complement), so the checksum is its complement, 220d.
  const std::vector<uint8_t> bytes = {0x00, 0x01, 0xf2, 0x03,
                                      0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(InternetChecksum({bytes}), 0x220d);
}

TEST(InternetChecksum, PadsAnOddLastByteWithZero) {
  const std::vector<uint8_t> odd = {0x12, 0x34, 0x56};
  const std::vector<uint8_t> even = {0x12, 0x34, 0x56, 0x00};
  EXPECT_EQ(InternetChecksum({odd}), InternetChecksum({even}));
}

TEST(InternetChecksum, ConcatenatesPartsBeforeSumming) {
  // An odd-length first part shifts the second part's bytes.
  const std::vector<uint8_t> a = {0x12};
  const std::vector<uint8_t> b = {0x34, 0x56};
  const std::vector<uint8_t> ab = {0x12, 0x34, 0x56};
  EXPECT_EQ(InternetChecksum({a, b}), InternetChecksum({ab}));
}

TEST(Mac, ParsesAndFormatsRoundTrip) {
  std::array<uint8_t, 6> mac = ParseMac("02:00:00:AB:cd:0F");
  EXPECT_EQ(mac, (std::array<uint8_t, 6>{0x02, 0, 0, 0xab, 0xcd, 0x0f}));
  EXPECT_EQ(FormatMac(mac), "02:00:00:ab:cd:0f");
  EXPECT_EQ(ParseMac("02-00-00-00-00-01"), ParseMac(kMacA));
}

TEST(MacDeathTest, MalformedMacAborts) {
  EXPECT_DEATH(ParseMac("02:00:00:00:00"), "bad MAC");
  EXPECT_DEATH(ParseMac("02:00:00:00:00:0g"), "bad MAC");
}

TEST(PacketBuilder, BuildsAHandCheckedIpv4TcpSyn) {
  // Computed by hand (and with an independent script): IPv4 header checksum
  // 0x3c5d, TCP checksum 0x230d.
  const std::vector<uint8_t> want = {
      // Ethernet: dst, src, IPv4.
      0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
      0x08, 0x00,
      // IPv4: 45 00 len=40 id=0x1234 DF ttl=64 tcp csum src dst.
      0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x3c, 0x5d,
      0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x0a,
      // TCP: 40000 -> 80, seq 0x01020304, ack 0, doff 5, SYN, win 65535.
      0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
      0x50, 0x02, 0xff, 0xff, 0x23, 0x0d, 0x00, 0x00};
  std::vector<uint8_t> got = PacketBuilder()
                                 .Eth(kMacA, kMacB)
                                 .Ipv4("192.0.2.1", "198.51.100.10")
                                 .Id(0x1234)
                                 .DontFragment()
                                 .Ttl(64)
                                 .Tcp(40000, 80)
                                 .Seq(0x01020304)
                                 .Flags(kSyn)
                                 .Build();
  EXPECT_THAT(got, FrameEq(want));
  EXPECT_THAT(VerifyChecksums(got), IsOk());
}

TEST(PacketBuilder, FillsIpv4AndUdpLengths) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Udp(5353, 53)
                               .Payload("abcde")
                               .Build();
  ASSERT_EQ(f.size(), 14u + 20 + 8 + 5);
  EXPECT_EQ(Be16(f, 14 + 2), 20 + 8 + 5);  // Total length.
  EXPECT_EQ(f[14 + 9], 17);                // Protocol.
  EXPECT_EQ(Be16(f, 34 + 4), 8 + 5);       // UDP length.
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, FillsIpv6PayloadLengthAndNextHeader) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .HopLimit(7)
                               .Tcp(40000, 443)
                               .Payload("xyz")
                               .Build();
  ASSERT_EQ(f.size(), 14u + 40 + 20 + 3);
  EXPECT_EQ(Be16(f, 12), 0x86dd);
  EXPECT_EQ(f[14] >> 4, 6);
  EXPECT_EQ(Be16(f, 14 + 4), 23);  // Payload length.
  EXPECT_EQ(f[14 + 6], 6);         // Next header.
  EXPECT_EQ(f[14 + 7], 7);         // Hop limit.
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, VlanTagCarriesVidPcpAndInnerEtherType) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Vlan(100, 5)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Tcp(1, 2)
                               .Build();
  EXPECT_EQ(Be16(f, 12), 0x8100);
  EXPECT_EQ(Be16(f, 14), (5 << 13) | 100);
  EXPECT_EQ(Be16(f, 16), 0x0800);
  EXPECT_EQ(f[18], 0x45);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, EtherTypeOverrideMakesNonIpFrames) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .EtherType(0x0806)
                               .Payload("arp")
                               .Build();
  EXPECT_EQ(Be16(f, 12), 0x0806);
  EXPECT_EQ(f.size(), 17u);
}

TEST(PacketBuilder, IpipSetsOuterProtocol4AndBothChecksums) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("203.0.113.1", "198.51.100.20")
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Tcp(40000, 80)
                               .Payload("data")
                               .Build();
  EXPECT_EQ(f[14 + 9], 4);
  EXPECT_EQ(Be16(f, 14 + 2), 20 + 20 + 20 + 4);
  EXPECT_EQ(Be16(f, 34 + 2), 20 + 20 + 4);
  EXPECT_EQ(f[34 + 9], 6);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, Ip6ip6SetsOuterNextHeader41) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8:ff::1", "2001:db8:1::20")
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .Udp(5000, 53)
                               .Payload("q")
                               .Build();
  EXPECT_EQ(f[14 + 6], 41);
  EXPECT_EQ(Be16(f, 14 + 4), 40 + 8 + 1);
  EXPECT_EQ(f[54 + 6], 17);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, GueVariant1PutsInnerIpRightAfterUdp) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("203.0.113.1", "198.51.100.20")
                               .Udp(51000, kGuePort)
                               .Gue()
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Tcp(40000, 80)
                               .Build();
  EXPECT_EQ(f[14 + 9], 17);
  EXPECT_EQ(Be16(f, 34 + 2), kGuePort);
  EXPECT_EQ(Be16(f, 34 + 4), 8 + 20 + 20);
  EXPECT_EQ(f[42], 0x45);  // Inner IPv4 header directly after UDP.
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, GueVariant0HeaderCarriesInnerProtocol) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8:ff::1", "2001:db8:1::20")
                               .Udp(51000, kGuePort)
                               .GueVariant0()
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .Tcp(40000, 80)
                               .Build();
  const size_t gue = 14 + 40 + 8;
  EXPECT_EQ(f[gue], 0);       // Version 0, C 0, Hlen 0.
  EXPECT_EQ(f[gue + 1], 41);  // Proto: IPv6.
  EXPECT_EQ(f[gue + 4] >> 4, 6);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, Ipv6ExtensionHeadersChainToTransport) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .HopByHop()
                               .Routing(4, 0, 24)
                               .DestinationOptions(16)
                               .Tcp(40000, 80)
                               .Build();
  const size_t ip = 14;
  EXPECT_EQ(f[ip + 6], 0);    // -> hop-by-hop
  EXPECT_EQ(f[ip + 40], 43);  // hop-by-hop -> routing
  EXPECT_EQ(f[ip + 41], 0);   // 8 bytes
  EXPECT_EQ(f[ip + 48], 60);  // routing -> destination options
  EXPECT_EQ(f[ip + 49], 2);   // 24 bytes
  EXPECT_EQ(f[ip + 72], 6);   // destination options -> TCP
  EXPECT_EQ(f[ip + 73], 1);   // 16 bytes
  EXPECT_EQ(Be16(f, ip + 4), 8 + 24 + 16 + 20);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, Ipv6FragmentHeaderEncodesOffsetAndM) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .Fragment(185, true, 0xdeadbeef)
                               .Payload("later bytes")
                               .Build();
  const size_t frag = 14 + 40;
  EXPECT_EQ(f[14 + 6], 44);
  EXPECT_EQ(f[frag], 59);  // Nothing recognisable follows.
  EXPECT_EQ(Be16(f, frag + 2), (185 << 3) | 1);
  EXPECT_EQ(Be16(f, frag + 4), 0xdead);
  EXPECT_EQ(Be16(f, frag + 6), 0xbeef);
}

TEST(PacketBuilder, Ipv4FragmentFieldsAndOptions) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Ipv4Options({0x94, 0x04, 0x00, 0x00})  // RA
                               .MoreFragments()
                               .FragmentOffset(3)
                               .Id(77)
                               .Payload("frag")
                               .Build();
  EXPECT_EQ(f[14], 0x46);  // IHL 6.
  EXPECT_EQ(Be16(f, 14 + 6), 0x2000 | 3);
  EXPECT_EQ(Be16(f, 14 + 4), 77);
  EXPECT_EQ(Be16(f, 14 + 2), 24 + 4);
  EXPECT_EQ(f[14 + 20], 0x94);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, OptionsArePaddedToWholeWords) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Ipv4Options({0x01})  // NOP
                               .Tcp(1, 2)
                               .TcpOptions({0x02, 0x04, 0x05, 0xb4, 0x01})
                               .Build();
  EXPECT_EQ(f[14] & 0x0f, 6);
  EXPECT_EQ(f[14 + 24 + 12] >> 4, 7);  // 20 + 8 bytes of TCP options.
  EXPECT_EQ(f.size(), 14u + 24 + 28);
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, IcmpErrorQuotesTheEmbeddedDatagram) {
  std::vector<uint8_t> original = PacketBuilder()
                                      .Ipv4("198.51.100.10", "192.0.2.1")
                                      .Tcp(80, 40000)
                                      .Payload("0123456789")
                                      .Build();
  std::vector<uint8_t> f =
      PacketBuilder()
          .Eth(kMacA, kMacB)
          .Ipv4("203.0.113.9", "198.51.100.10")
          .IcmpV4(kIcmpDestUnreachable, kIcmpCodeFragNeeded)
          .IcmpRest(1400)
          .Embed(std::span(original).first(28))
          .Build();
  EXPECT_EQ(f[14 + 9], 1);
  EXPECT_EQ(f[34], kIcmpDestUnreachable);
  EXPECT_EQ(f[35], kIcmpCodeFragNeeded);
  EXPECT_EQ(Be16(f, 34 + 6), 1400);
  EXPECT_TRUE(
      std::equal(original.begin(), original.begin() + 28, f.begin() + 42));
  EXPECT_THAT(VerifyChecksums(f), IsOk());
}

TEST(PacketBuilder, Icmpv6ChecksumCoversThePseudoHeader) {
  std::vector<uint8_t> original = PacketBuilder()
                                      .Ipv6("2001:db8::10", "2001:db8::1")
                                      .Udp(53, 5000)
                                      .Payload("answer")
                                      .Build();
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8::ff", "2001:db8::10")
                               .IcmpV6(kIcmpV6PacketTooBig, 0)
                               .IcmpRest(1280)
                               .Embed(original)
                               .Build();
  EXPECT_THAT(VerifyChecksums(f), IsOk());
  // Changing only the IPv6 source (part of the pseudo-header, not of the
  // ICMPv6 message) must break the checksum.
  f[14 + 8 + 15] ^= 1;
  EXPECT_THAT(VerifyChecksums(f),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("icmpv6 checksum")));
}

TEST(PacketBuilder, UdpChecksumZeroIsAcceptedOnlyOverIpv4) {
  std::vector<uint8_t> v4 = PacketBuilder()
                                .Eth(kMacA, kMacB)
                                .Ipv4("192.0.2.1", "198.51.100.10")
                                .Udp(1, 2)
                                .UdpChecksumZero()
                                .Payload("x")
                                .Build();
  EXPECT_EQ(Be16(v4, 34 + 6), 0);
  EXPECT_THAT(VerifyChecksums(v4), IsOk());
  std::vector<uint8_t> v6 = PacketBuilder()
                                .Eth(kMacA, kMacB)
                                .Ipv6("2001:db8::1", "2001:db8::10")
                                .Udp(1, 2)
                                .UdpChecksumZero()
                                .Payload("x")
                                .Build();
  EXPECT_THAT(VerifyChecksums(v6),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("0 over IPv6")));
}

TEST(PacketBuilder, BadChecksumIsCaughtPerLayer) {
  PacketBuilder base;
  base.Eth(kMacA, kMacB).Ipv4("192.0.2.1", "198.51.100.10");
  std::vector<uint8_t> bad_ip =
      PacketBuilder(base).BadChecksum().Tcp(1, 2).Build();
  EXPECT_THAT(VerifyChecksums(bad_ip),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("IPv4 header checksum")));
  std::vector<uint8_t> bad_tcp =
      PacketBuilder(base).Tcp(1, 2).BadChecksum().Build();
  EXPECT_THAT(VerifyChecksums(bad_tcp),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("tcp checksum")));
  std::vector<uint8_t> good = PacketBuilder(base).Tcp(1, 2).Build();
  EXPECT_EQ(Be16(bad_tcp, 34 + 16) ^ Be16(good, 34 + 16), 0x00ff);
}

TEST(PacketBuilder, MalformedHeaderKnobsWriteExactlyWhatWasAsked) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Version(5)
                               .Ihl(4)
                               .TotalLength(9000)
                               .Protocol(200)
                               .Tcp(1, 2)
                               .DataOffset(3)
                               .Build();
  EXPECT_EQ(f[14], 0x54);
  EXPECT_EQ(Be16(f, 16), 9000);
  EXPECT_EQ(f[14 + 9], 200);
  EXPECT_EQ(f[34 + 12], 0x30);
  EXPECT_EQ(f.size(), 14u + 20 + 20);  // Real sizes are unchanged.
}

TEST(PacketBuilder, Ipv6LengthKnobs) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .PayloadLength(1000)
                               .HopByHop()
                               .HdrExtLen(200)
                               .Udp(1, 2)
                               .UdpLength(3)
                               .Build();
  EXPECT_EQ(Be16(f, 14 + 4), 1000);
  EXPECT_EQ(f[14 + 41], 200);
  EXPECT_EQ(Be16(f, 14 + 48 + 4), 3);
}

TEST(PacketBuilder, TruncateCutsAfterChecksumsAndPadIsUncounted) {
  PacketBuilder b;
  b.Eth(kMacA, kMacB).Ipv4("192.0.2.1", "198.51.100.10").Tcp(1, 2);
  std::vector<uint8_t> whole = PacketBuilder(b).Build();
  std::vector<uint8_t> cut = PacketBuilder(b).Truncate(30).Build();
  EXPECT_THAT(cut, ElementsAreArray(whole.begin(), whole.begin() + 30));

  std::vector<uint8_t> padded = PacketBuilder(b).Payload("x").PadTo(60).Build();
  ASSERT_EQ(padded.size(), 60u);
  EXPECT_EQ(Be16(padded, 16), 41);  // Padding is not in the total length.
  EXPECT_THAT(VerifyChecksums(padded), IsOk());
  EXPECT_EQ(PacketBuilder(b).Pad(3).Build().size(), whole.size() + 3);
}

TEST(PacketBuilder, ModifiersApplyToTheMostRecentLayerOfTheirKind) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("203.0.113.1", "198.51.100.20")
                               .Ttl(9)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Ttl(1)
                               .Tcp(1, 2)
                               .Build();
  EXPECT_EQ(f[14 + 8], 9);
  EXPECT_EQ(f[34 + 8], 1);
}

TEST(PacketBuilderDeathTest, MisuseAbortsWithAMessage) {
  EXPECT_DEATH(PacketBuilder().Ttl(3), "Ttl\\(\\) has no layer");
  EXPECT_DEATH(PacketBuilder().Eth(kMacA, kMacB).Tcp(1, 2),
               "Tcp\\(\\) must follow an Ipv4\\(\\) or Ipv6\\(\\)");
  EXPECT_DEATH(PacketBuilder().Ipv4("2001:db8::1", "192.0.2.1"),
               "not an IPv4 address");
  EXPECT_DEATH(PacketBuilder()
                   .Ipv4("192.0.2.1", "198.51.100.10")
                   .Udp(1, kGuePort)
                   .Gue()
                   .Payload("x"),
               "Gue\\(\\) \\(variant 1\\) must be followed");
}

TEST(VerifyChecksums, RejectsLengthsBeyondTheFrame) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .TotalLength(500)
                               .Tcp(1, 2)
                               .Build();
  EXPECT_THAT(VerifyChecksums(f),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("total length beyond the frame")));
}

TEST(VerifyChecksums, ChecksTunnelledInnerHeaders) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv4("203.0.113.1", "198.51.100.20")
                               .Udp(51000, kGuePort)
                               .Gue()
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Tcp(40000, 80)
                               .BadChecksum()
                               .Build();
  // The outer UDP checksum covers the inner bytes too; zero it so only the
  // inner TCP checksum is wrong.
  f[34 + 6] = f[34 + 7] = 0;
  EXPECT_THAT(VerifyChecksums(f),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("tcp checksum at offset 62")));
}

TEST(VerifyIpChecksums, AcceptsAPacketWithoutEthernet) {
  std::vector<uint8_t> p =
      PacketBuilder().Ipv6("2001:db8::1", "2001:db8::10").Tcp(1, 2).Build();
  EXPECT_THAT(VerifyIpChecksums(p), IsOk());
  p.back() ^= 0x80;
  EXPECT_THAT(VerifyIpChecksums(p), Not(IsOk()));
}

TEST(DescribeField, NamesHeaderFieldsAcrossLayers) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Vlan(7)
                               .Ipv4("203.0.113.1", "198.51.100.20")
                               .Ipv4("192.0.2.1", "198.51.100.10")
                               .Tcp(40000, 80)
                               .Payload("p")
                               .PadTo(100)
                               .Build();
  EXPECT_EQ(DescribeField(f, 0), "eth.dst");
  EXPECT_EQ(DescribeField(f, 12), "eth.ether_type");
  EXPECT_EQ(DescribeField(f, 14), "vlan.tci");
  EXPECT_EQ(DescribeField(f, 18 + 8), "ipv4[0].ttl");
  EXPECT_EQ(DescribeField(f, 38 + 12), "ipv4[1].src");
  EXPECT_EQ(DescribeField(f, 58 + 17), "tcp.checksum");
  EXPECT_EQ(DescribeField(f, 78), "payload");
  EXPECT_EQ(DescribeField(f, 90), "padding");
}

TEST(DescribeFrameDiff, IsEmptyForEqualFrames) {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth(kMacA, kMacB)
                               .Ipv6("2001:db8::1", "2001:db8::10")
                               .Tcp(1, 2)
                               .Build();
  EXPECT_THAT(DescribeFrameDiff(f, f), IsEmpty());
}

TEST(DescribeFrameDiff, NamesTheFirstDifferingByteAndItsField) {
  PacketBuilder b;
  b.Eth(kMacA, kMacB).Ipv4("192.0.2.1", "198.51.100.10");
  std::vector<uint8_t> want = PacketBuilder(b).Ttl(64).Tcp(1, 2).Build();
  std::vector<uint8_t> got = PacketBuilder(b).Ttl(63).Tcp(1, 2).Build();
  std::string diff = DescribeFrameDiff(want, got);
  EXPECT_THAT(diff,
              HasSubstr("byte 22 (ipv4.ttl): expected 0x40, actual 0x3f"));
  EXPECT_THAT(diff, HasSubstr("0000  02 00 00 00 00 02"));
  std::vector<uint8_t> shorter(want.begin(), want.end() - 4);
  EXPECT_THAT(
      DescribeFrameDiff(want, shorter),
      HasSubstr("prefix of expected: it ends at byte 50 (tcp.checksum)"));
}

TEST(FrameEq, ExplainsAMismatch) {
  std::vector<uint8_t> want = {1, 2, 3};
  std::vector<uint8_t> got = {1, 2, 4};
  ::testing::StringMatchResultListener listener;
  EXPECT_FALSE(::testing::ExplainMatchResult(FrameEq(want), got, &listener));
  EXPECT_THAT(listener.str(), HasSubstr("differ first at byte 2"));
  EXPECT_THAT(want, FrameEq(want));
}

TEST(HexDump, PrintsOffsetsHexAndAscii) {
  std::vector<uint8_t> bytes = {'h', 'i', 0x00};
  EXPECT_EQ(HexDump(bytes),
            "0000  68 69 00                                          |hi.|\n");
}

}  // namespace
}  // namespace anylb::dataplane_testing
