#include "lbnode/dataplane/parser.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/testing/packet_builder.h"
#include "lbnode/dataplane/testing/sample_frames.h"

namespace anylb::dataplane {
namespace {

using ::anylb::dataplane_testing::DescribeField;
using ::anylb::dataplane_testing::HexDump;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::scheduler::FlowKey;
namespace dt = ::anylb::dataplane_testing;

// Want lists the fields a case checks; unset ones are not checked.
struct Want {
  std::optional<uint16_t> l3_offset;
  std::optional<uint16_t> l3_end;
  std::optional<uint16_t> l4_offset;
  std::optional<uint16_t> payload_offset;
  std::optional<uint16_t> payload_length;
  std::optional<uint16_t> src_port;
  std::optional<uint16_t> dst_port;
  std::optional<uint8_t> l4_protocol;
  std::optional<uint8_t> ttl;
  std::optional<uint8_t> tcp_flags;
  std::optional<bool> has_vlan;
  std::optional<uint16_t> vlan_tci;
  std::optional<bool> is_fragment;
  std::optional<uint16_t> fragment_offset;
  std::optional<uint32_t> fragment_id;
  std::optional<uint8_t> icmp_type;
  std::optional<uint8_t> icmp_code;
  std::optional<bool> is_icmp_error;
  std::optional<uint16_t> inner_l3_offset;
  std::optional<uint16_t> inner_l4_offset;
  std::optional<uint8_t> inner_protocol;
  std::optional<uint16_t> inner_src_port;
  std::optional<uint16_t> inner_dst_port;
};

struct ParseCase {
  std::string name;
  std::vector<uint8_t> frame;
  ParseVerdict verdict = ParseVerdict::kOk;
  DropReason reason = DropReason::kNone;
  Want want;
};

void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.name; }

// Family-specific addresses and sizes, so one table serves both versions.
struct Family {
  bool v4;
  const char* client;
  const char* vip;
  const char* router;
  uint16_t ip_header;  // 20 or 40.
  DropReason truncated_ip;
  DropReason length_beyond_frame;

  PacketBuilder& Ip(PacketBuilder& b, const char* src, const char* dst) const {
    return v4 ? b.Ipv4(src, dst) : b.Ipv6(src, dst);
  }
  PacketBuilder& Ttl(PacketBuilder& b, uint8_t ttl) const {
    return v4 ? b.Ttl(ttl) : b.HopLimit(ttl);
  }
  PacketBuilder& Icmp(PacketBuilder& b, uint8_t type, uint8_t code) const {
    return v4 ? b.IcmpV4(type, code) : b.IcmpV6(type, code);
  }
  PacketBuilder& MoreFragments(PacketBuilder& b, uint16_t offset_units,
                               bool more, uint32_t id) const {
    if (v4) {
      return b.Id(static_cast<uint16_t>(id))
          .FragmentOffset(offset_units)
          .MoreFragments(more);
    }
    return b.Fragment(offset_units, more, id);
  }
  // The IPv4 header or the IPv6 header plus a fragment header.
  uint16_t fragment_headers() const { return v4 ? 20 : 48; }
  uint8_t icmp_proto() const { return v4 ? 1 : 58; }
  uint8_t echo_request() const {
    return v4 ? dt::kIcmpEchoRequest : dt::kIcmpV6EchoRequest;
  }
};

constexpr Family kV4 = {true,
                        "192.0.2.1",
                        "198.51.100.10",
                        "203.0.113.9",
                        20,
                        DropReason::kTruncatedIpv4Header,
                        DropReason::kIpv4TotalLengthBeyondFrame};
constexpr Family kV6 = {false,
                        "2001:db8::1",
                        "2001:db8:100::10",
                        "2001:db8:ff::9",
                        40,
                        DropReason::kTruncatedIpv6Header,
                        DropReason::kIpv6PayloadLengthBeyondFrame};

constexpr char kMacA[] = "02:00:00:00:00:01";
constexpr char kMacB[] = "02:00:00:00:00:02";

PacketBuilder Eth() { return PacketBuilder().Eth(kMacA, kMacB); }

// Cases that exist for both IP versions.
std::vector<ParseCase> CommonCases(const Family& f) {
  std::vector<ParseCase> cases;
  const uint16_t l3 = 14;
  const uint16_t l4 = l3 + f.ip_header;
  auto add = [&](std::string name, const PacketBuilder& b, ParseVerdict verdict,
                 DropReason reason, Want want) {
    cases.push_back({std::move(name), b.Build(), verdict, reason, want});
  };
  auto ok = [&](std::string name, const PacketBuilder& b, Want want) {
    add(std::move(name), b, ParseVerdict::kOk, DropReason::kNone, want);
  };
  auto drop = [&](std::string name, const PacketBuilder& b, DropReason reason) {
    add(std::move(name), b, ParseVerdict::kDrop, reason, {});
  };
  PacketBuilder b;

  // --- Well-formed TCP, UDP, VLAN, padding ---
  b = Eth();
  f.Ip(b, f.client, f.vip);
  f.Ttl(b, 33).Tcp(40000, 80).Flags(dt::kSyn).Payload("hello");
  ok("TcpSyn", b,
     {.l3_offset = l3,
      .l3_end = static_cast<uint16_t>(l4 + 25),
      .l4_offset = l4,
      .payload_offset = static_cast<uint16_t>(l4 + 20),
      .payload_length = 5,
      .src_port = 40000,
      .dst_port = 80,
      .l4_protocol = 6,
      .ttl = 33,
      .tcp_flags = dt::kSyn,
      .has_vlan = false,
      .is_fragment = false,
      .is_icmp_error = false});

  b = Eth();
  f.Ip(b, f.client, f.vip)
      .Tcp(40000, 443)
      .Flags(dt::kAck | dt::kPsh | dt::kFin)
      .TcpOptions({1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
      .Payload("data");
  ok("TcpOptionsAreSkipped", b,
     {.l4_offset = l4,
      .payload_offset = static_cast<uint16_t>(l4 + 32),
      .payload_length = 4,
      .tcp_flags = dt::kAck | dt::kPsh | dt::kFin});

  b = Eth();
  f.Ip(b, f.client, f.vip).Udp(5353, 53).Payload("query");
  ok("Udp", b,
     {.l4_offset = l4,
      .payload_offset = static_cast<uint16_t>(l4 + 8),
      .payload_length = 5,
      .src_port = 5353,
      .dst_port = 53,
      .l4_protocol = 17,
      .tcp_flags = 0});

  b = Eth();
  f.Ip(b, f.client, f.vip).Udp(5353, 53).UdpLength(10).Payload("hello");
  ok("UdpLengthShorterThanTheDatagramLimitsThePayload", b,
     {.payload_length = 2});

  b = Eth();
  f.Ip(b, f.client, f.vip).Udp(5353, 53).UdpLength(7).Payload("hello");
  drop("UdpLengthBelowHeaderSize", b, DropReason::kBadUdpLength);

  b = Eth();
  f.Ip(b, f.client, f.vip).Udp(5353, 53).UdpLength(14).Payload("hello");
  drop("UdpLengthBeyondTheDatagram", b, DropReason::kBadUdpLength);

  b = Eth();
  f.Ip(b, f.client, f.vip).Udp(5353, 53).UdpChecksumZero().Payload("x");
  if (f.v4) {
    ok("UdpChecksumZeroMeansNoChecksumOverIpv4", b, {.dst_port = 53});
  } else {
    drop("UdpChecksumZeroIsIllegalOverIpv6", b,
         DropReason::kIpv6UdpZeroChecksum);
  }

  b = Eth().Vlan(100, 3);
  f.Ip(b, f.client, f.vip).Tcp(40000, 80);
  ok("VlanTaggedTcp", b,
     {.l3_offset = 18,
      .l4_offset = static_cast<uint16_t>(l4 + 4),
      .dst_port = 80,
      .has_vlan = true,
      .vlan_tci = (3 << 13) | 100});

  b = Eth().EtherType(kEtherTypeQinQ).Vlan(200);
  f.Ip(b, f.client, f.vip).Tcp(40000, 80);
  ok("Ieee8021adTagIsAcceptedLikeAVlanTag", b,
     {.l3_offset = 18, .dst_port = 80, .has_vlan = true, .vlan_tci = 200});

  b = Eth().Vlan(100).Vlan(200);
  f.Ip(b, f.client, f.vip).Tcp(40000, 80);
  add("SecondVlanTagIsNotIp", b, ParseVerdict::kNotIp, DropReason::kNone,
      {.l3_offset = 18, .has_vlan = true, .vlan_tci = 100});

  b = Eth();
  f.Ip(b, f.client, f.vip).Udp(1, 53).Payload("x").PadTo(90);
  ok("EthernetPaddingAfterTheDatagramIsIgnored", b,
     {.l3_end = static_cast<uint16_t>(l4 + 9), .payload_length = 1});

  // --- Truncated and inconsistent IP headers ---
  b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(1, 80).Truncate(l4 - 1);
  drop("IpHeaderOneByteShort", b, f.truncated_ip);

  b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(1, 80).Truncate(14);
  drop("FrameEndsAfterEthernet", b, f.truncated_ip);

  b = Eth();
  f.Ip(b, f.client, f.vip).Version(f.v4 ? 6 : 4).Tcp(1, 80);
  drop("VersionOfTheOtherFamily", b, DropReason::kBadIpVersion);

  b = Eth();
  f.Ip(b, f.client, f.vip).Version(0).Tcp(1, 80);
  drop("VersionZero", b, DropReason::kBadIpVersion);

  b = Eth();
  f.Ip(b, f.client, f.vip);
  if (f.v4) {
    b.TotalLength(20 + 20 + 1);
  } else {
    b.PayloadLength(20 + 1);
  }
  b.Tcp(1, 80);
  drop("LengthFieldOneBytePastTheFrame", b, f.length_beyond_frame);

  // --- Truncated and malformed transport headers ---
  b = Eth();
  f.Ip(b, f.client, f.vip).Protocol(6).Payload(std::string(19, 't'));
  drop("TcpHeaderOneByteShort", b, DropReason::kTruncatedTcpHeader);

  b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(1, 80).DataOffset(4);
  drop("TcpDataOffsetFour", b, DropReason::kBadTcpDataOffset);

  b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(1, 80).DataOffset(0);
  drop("TcpDataOffsetZero", b, DropReason::kBadTcpDataOffset);

  b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(1, 80).DataOffset(6).Payload("abc");
  drop("TcpOptionsPastTheDatagram", b, DropReason::kTcpDataOffsetBeyondPacket);

  b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(1, 80).DataOffset(6).Payload("abc").PadTo(100);
  drop("TcpOptionsIntoThePaddingAreStillPastTheDatagram", b,
       DropReason::kTcpDataOffsetBeyondPacket);

  b = Eth();
  f.Ip(b, f.client, f.vip).Protocol(17).Payload("7 bytes");
  drop("UdpHeaderOneByteShort", b, DropReason::kTruncatedUdpHeader);

  b = Eth();
  f.Ip(b, f.client, f.vip).Protocol(f.icmp_proto()).Payload("7 bytes");
  drop("IcmpHeaderOneByteShort", b, DropReason::kTruncatedIcmpHeader);

  // --- ICMP ---
  b = Eth();
  f.Ip(b, f.client, f.vip);
  f.Icmp(b, f.echo_request(), 0).IcmpRest(0x12340001).Payload("ping");
  ok("IcmpEchoHasNoPortsAndIsNotAnError", b,
     {.payload_offset = static_cast<uint16_t>(l4 + 8),
      .payload_length = 4,
      .src_port = 0,
      .dst_port = 0,
      .l4_protocol = f.icmp_proto(),
      .icmp_type = f.echo_request(),
      .icmp_code = 0,
      .is_icmp_error = false});

  b = Eth();
  f.Ip(b, f.client, f.vip).Protocol(f.v4 ? 58 : 1).Payload("abc");
  ok("IcmpOfTheOtherFamilyIsAnUnknownProtocol", b,
     {.l4_protocol = static_cast<uint8_t>(f.v4 ? 58 : 1),
      .icmp_type = 0,
      .is_icmp_error = false});

  b = Eth();
  f.Ip(b, f.client, f.vip).Protocol(132).Payload("sctp-ish");
  ok("UnknownProtocolHasNoPorts", b,
     {.l4_offset = l4,
      .payload_offset = l4,
      .payload_length = 8,
      .src_port = 0,
      .dst_port = 0,
      .l4_protocol = 132});

  // ICMP errors quoting the datagram the VIP sent (VIP:80 -> client:40000).
  PacketBuilder quoted;
  f.Ip(quoted, f.vip, f.client).Tcp(80, 40000).Payload(std::string(64, 'q'));
  const std::vector<uint8_t> quoted_tcp = quoted.Build();
  const uint16_t inner_l3 = l4 + 8;
  const uint16_t inner_l4 = inner_l3 + f.ip_header;
  struct ErrorType {
    const char* name;
    uint8_t type;
    uint8_t code;
  };
  std::vector<ErrorType> errors =
      f.v4 ? std::vector<ErrorType>{{"DestUnreachable", 3, 1},
                                    {"FragmentationNeeded", 3, 4},
                                    {"TimeExceeded", 11, 0},
                                    {"ParameterProblem", 12, 0}}
           : std::vector<ErrorType>{{"DestUnreachable", 1, 4},
                                    {"PacketTooBig", 2, 0},
                                    {"TimeExceeded", 3, 0},
                                    {"ParameterProblem", 4, 0}};
  for (const ErrorType& e : errors) {
    b = Eth();
    f.Ip(b, f.router, f.vip);
    f.Icmp(b, e.type, e.code)
        .Embed(std::span(quoted_tcp).first(f.ip_header + 8u));
    ok(std::string("Icmp") + e.name + "QuotingTcpGivesInnerPorts", b,
       {.src_port = 0,
        .dst_port = 0,
        .l4_protocol = f.icmp_proto(),
        .icmp_type = e.type,
        .icmp_code = e.code,
        .is_icmp_error = true,
        .inner_l3_offset = inner_l3,
        .inner_l4_offset = inner_l4,
        .inner_protocol = 6,
        .inner_src_port = 80,
        .inner_dst_port = 40000});
  }

  b = Eth();
  f.Ip(b, f.router, f.vip);
  f.Icmp(b, errors[2].type, 0).Embed(quoted_tcp);
  ok("IcmpErrorQuotingAWholeDatagram", b,
     {.is_icmp_error = true,
      .inner_l4_offset = inner_l4,
      .inner_src_port = 80});

  b = Eth();
  f.Ip(b, f.router, f.vip);
  f.Icmp(b, errors[2].type, 0)
      .Embed(std::span(quoted_tcp).first(f.ip_header - 1u));
  drop("IcmpErrorQuotedIpHeaderTruncated", b,
       DropReason::kIcmpInnerIpTruncated);

  b = Eth();
  f.Ip(b, f.router, f.vip);
  f.Icmp(b, errors[2].type, 0)
      .Embed(std::span(quoted_tcp).first(f.ip_header + 7u));
  drop("IcmpErrorQuotingSevenTransportBytes", b,
       DropReason::kIcmpInnerL4Truncated);

  b = Eth();
  f.Ip(b, f.router, f.vip);
  f.Icmp(b, errors[2].type, 0)
      .Embed(std::span(quoted_tcp).first(f.ip_header + 4u));
  drop("IcmpErrorQuotingOnlyThePorts", b, DropReason::kIcmpInnerL4Truncated);

  b = Eth();
  f.Ip(b, f.router, f.vip);
  f.Icmp(b, errors[2].type, 0)
      .Embed(f.v4 ? PacketBuilder()
                        .Ipv6("2001:db8::1", "2001:db8::2")
                        .Tcp(1, 2)
                        .Build()
                  : PacketBuilder()
                        .Ipv4("192.0.2.1", "192.0.2.2")
                        .Tcp(1, 2)
                        .Payload(std::string(20, 'x'))
                        .Build());
  drop("IcmpErrorQuotingTheOtherFamily", b, DropReason::kIcmpInnerBadIp);

  {
    PacketBuilder frag;
    f.Ip(frag, f.vip, f.client);
    f.MoreFragments(frag, 100, true, 7).Protocol(6).Payload("xy");
    b = Eth();
    f.Ip(b, f.router, f.vip);
    f.Icmp(b, errors[2].type, 0).Embed(frag.Build());
    ok("IcmpErrorQuotingANonFirstFragmentHasNoInnerPorts", b,
       {.is_icmp_error = true,
        .inner_l3_offset = inner_l3,
        .inner_l4_offset = 0,
        .inner_protocol = 6,
        .inner_src_port = 0,
        .inner_dst_port = 0});
  }

  // An echo reply whose data looks like an IP header is still an echo.
  b = Eth();
  f.Ip(b, f.vip, f.client);
  f.Icmp(b, f.v4 ? dt::kIcmpEchoReply : dt::kIcmpV6EchoReply, 0)
      .Embed(quoted_tcp);
  ok("IcmpEchoReplyIsNotParsedAsAnError", b,
     {.is_icmp_error = false, .inner_l3_offset = 0});

  // --- Fragments ---
  const uint16_t fl4 = l3 + f.fragment_headers();
  b = Eth();
  f.Ip(b, f.client, f.vip);
  f.MoreFragments(b, 0, true, 0x4242).Tcp(40000, 80).Payload("first");
  ok("FirstFragmentHasPorts", b,
     {.l4_offset = fl4,
      .src_port = 40000,
      .dst_port = 80,
      .l4_protocol = 6,
      .is_fragment = true,
      .fragment_offset = 0,
      .fragment_id = 0x4242});

  b = Eth();
  f.Ip(b, f.client, f.vip);
  f.MoreFragments(b, 185, true, 0x4243)
      .Protocol(6)
      .Payload(std::string(16, '\xff'));
  ok("MiddleFragmentHasNoTransportHeader", b,
     {.l4_offset = fl4,
      .payload_offset = fl4,
      .payload_length = 16,
      .src_port = 0,
      .dst_port = 0,
      .l4_protocol = 6,
      .tcp_flags = 0,
      .is_fragment = true,
      .fragment_offset = 185 * 8,
      .fragment_id = 0x4243});

  b = Eth();
  f.Ip(b, f.client, f.vip);
  f.MoreFragments(b, 3, false, 9).Protocol(17).Payload("z");
  ok("LastFragmentIsAFragment", b,
     {.payload_length = 1,
      .dst_port = 0,
      .is_fragment = true,
      .fragment_offset = 24});

  b = Eth();
  f.Ip(b, f.client, f.vip);
  f.MoreFragments(b, 0, true, 1).Protocol(6).Payload("ten bytes!");
  drop("FirstFragmentWithACutTcpHeader", b, DropReason::kTruncatedTcpHeader);

  // --- Size limit ---
  std::vector<uint8_t> huge(70000, 0);
  std::vector<uint8_t> head = Eth().Payload("").Build();
  std::copy(head.begin(), head.end(), huge.begin());
  huge[12] = f.v4 ? 0x08 : 0x86;
  huge[13] = f.v4 ? 0x00 : 0xdd;
  cases.push_back({"FrameOver65535Bytes",
                   huge,
                   ParseVerdict::kDrop,
                   DropReason::kFrameTooLarge,
                   {}});
  return cases;
}

std::vector<ParseCase> Ipv4Cases() {
  std::vector<ParseCase> cases = CommonCases(kV4);
  auto add = [&](std::string name, const PacketBuilder& b, ParseVerdict v,
                 DropReason r, Want w) {
    cases.push_back({std::move(name), b.Build(), v, r, w});
  };
  const auto kOk = ParseVerdict::kOk;
  const auto kDrop = ParseVerdict::kDrop;
  const auto kNone = DropReason::kNone;

  add("OptionsAreSkipped",
      Eth()
          .Ipv4(kV4.client, kV4.vip)
          .Ipv4Options({0x94, 0x04, 0, 0})
          .Tcp(40000, 80),
      kOk, kNone, {.l4_offset = 14 + 24, .dst_port = 80});
  add("FortyBytesOfOptionsAreSkipped",
      Eth()
          .Ipv4(kV4.client, kV4.vip)
          .Ipv4Options(std::vector<uint8_t>(40, 1))
          .Udp(1, 53),
      kOk, kNone, {.l4_offset = 14 + 60, .dst_port = 53});
  add("IhlFour", Eth().Ipv4(kV4.client, kV4.vip).Ihl(4).Tcp(1, 80), kDrop,
      DropReason::kBadIpv4HeaderLength, {});
  add("IhlZero", Eth().Ipv4(kV4.client, kV4.vip).Ihl(0).Tcp(1, 80), kDrop,
      DropReason::kBadIpv4HeaderLength, {});
  add("IhlPastTheFrame", Eth().Ipv4(kV4.client, kV4.vip).Ihl(15).Tcp(1, 80),
      kDrop, DropReason::kTruncatedIpv4Header, {});
  add("IhlPastTheTotalLength",
      Eth()
          .Ipv4(kV4.client, kV4.vip)
          .Ihl(15)
          .TotalLength(40)
          .Tcp(1, 80)
          .Payload(std::string(30, 'p')),
      kDrop, DropReason::kBadIpv4TotalLength, {});
  add("TotalLengthBelowTheHeader",
      Eth().Ipv4(kV4.client, kV4.vip).TotalLength(19).Tcp(1, 80), kDrop,
      DropReason::kBadIpv4TotalLength, {});
  add("TotalLengthBelowHeaderWithOptions",
      Eth()
          .Ipv4(kV4.client, kV4.vip)
          .Ipv4Options({1, 1, 1, 1})
          .TotalLength(23)
          .Tcp(1, 80),
      kDrop, DropReason::kBadIpv4TotalLength, {});
  add("TotalLengthExactlyTheHeaderHasNoTransport",
      Eth()
          .Ipv4(kV4.client, kV4.vip)
          .Protocol(6)
          .TotalLength(20)
          .Payload(std::string(26, 0)),
      kDrop, DropReason::kTruncatedTcpHeader, {});
  add("DontFragmentAloneIsNotAFragment",
      Eth().Ipv4(kV4.client, kV4.vip).DontFragment().Tcp(1, 80), kOk, kNone,
      {.is_fragment = false, .fragment_id = 0});
  return cases;
}

std::vector<ParseCase> Ipv6Cases() {
  std::vector<ParseCase> cases = CommonCases(kV6);
  auto add = [&](std::string name, const PacketBuilder& b, ParseVerdict v,
                 DropReason r, Want w) {
    cases.push_back({std::move(name), b.Build(), v, r, w});
  };
  const auto kOk = ParseVerdict::kOk;
  const auto kDrop = ParseVerdict::kDrop;
  const auto kNone = DropReason::kNone;
  const uint16_t l4 = 14 + 40;
  auto ip = [] { return Eth().Ipv6(kV6.client, kV6.vip); };

  add("HopByHopIsWalked", ip().HopByHop().Tcp(1, 80), kOk, kNone,
      {.l4_offset = l4 + 8, .dst_port = 80, .l4_protocol = 6});
  add("RoutingHeaderIsWalked", ip().Routing(4, 0, 24).Tcp(1, 80), kOk, kNone,
      {.l4_offset = l4 + 24, .dst_port = 80});
  add("DestinationOptionsAreWalked", ip().DestinationOptions(16).Udp(1, 53),
      kOk, kNone, {.l4_offset = l4 + 16, .dst_port = 53, .l4_protocol = 17});
  add("AtomicFragmentIsNotAFragment", ip().Fragment(0, false, 5).Tcp(1, 80),
      kOk, kNone,
      {.l4_offset = l4 + 8,
       .dst_port = 80,
       .is_fragment = false,
       .fragment_id = 0});
  add("MobilityHeaderIsWalked",
      ip().NextHeader(135)
          .Payload(std::string("\x06\x00\x00\x00\x00\x00\x00\x00", 8))
          .Tcp(1, 80),
      kOk, kNone, {.l4_offset = l4 + 8, .dst_port = 80, .l4_protocol = 6});
  add("TwoExtensionHeaders", ip().HopByHop().DestinationOptions().Tcp(1, 80),
      kOk, kNone, {.l4_offset = l4 + 16, .dst_port = 80});
  add("NonFirstFragmentAfterHopByHop",
      ip().HopByHop().Fragment(10, true, 77).Protocol(6).Payload("data"), kOk,
      kNone,
      {.l4_offset = l4 + 16,
       .payload_length = 4,
       .dst_port = 0,
       .l4_protocol = 6,
       .is_fragment = true,
       .fragment_offset = 80,
       .fragment_id = 77});
  add("NoNextHeader", ip().NextHeader(59).Payload("ignored"), kOk, kNone,
      {.l4_offset = l4, .payload_length = 7, .l4_protocol = 59});
  {
    PacketBuilder b = ip();
    for (int i = 0; i < kMaxIpv6ExtensionHeaders; ++i) b.DestinationOptions();
    add("EightExtensionHeadersAreWalked", PacketBuilder(b).Tcp(1, 80), kOk,
        kNone, {.l4_offset = l4 + 64, .dst_port = 80});
    add("NineExtensionHeadersAreTooMany", b.DestinationOptions().Tcp(1, 80),
        kDrop, DropReason::kIpv6ExtensionChainTooLong, {});
  }
  add("ExtensionHeadersOf256BytesAreWalked", ip().HopByHop(256).Tcp(1, 80), kOk,
      kNone, {.l4_offset = l4 + 256, .dst_port = 80});
  add("ExtensionHeadersOver256BytesAreTooMany",
      ip().HopByHop(248).DestinationOptions(16).Tcp(1, 80), kDrop,
      DropReason::kIpv6ExtensionChainTooLong, {});
  add("HopByHopAfterAnotherHeader",
      ip().DestinationOptions().HopByHop().Tcp(1, 80), kDrop,
      DropReason::kIpv6MisplacedHopByHop, {});
  add("ExtensionHeaderLengthPastThePayload",
      ip().HopByHop().HdrExtLen(3).Tcp(1, 80), kDrop,
      DropReason::kTruncatedIpv6ExtensionHeader, {});
  add("PayloadEndsInsideTheExtensionHeaderPrefix",
      ip().PayloadLength(1).HopByHop().Tcp(1, 80), kDrop,
      DropReason::kTruncatedIpv6ExtensionHeader, {});
  add("PayloadEndsInsideTheFragmentHeader",
      ip().PayloadLength(7).Fragment(0, true, 1).Tcp(1, 80), kDrop,
      DropReason::kTruncatedIpv6ExtensionHeader, {});
  add("ZeroPayloadLengthJumbogramIsTruncated",
      ip().PayloadLength(0).HopByHop().Tcp(1, 80), kDrop,
      DropReason::kTruncatedIpv6ExtensionHeader, {});

  const uint16_t inner_l3 = l4 + 8;
  add("Icmpv6ErrorQuotingExtensionHeaders",
      Eth()
          .Ipv6(kV6.router, kV6.vip)
          .IcmpV6(dt::kIcmpV6DestUnreachable, 4)
          .Embed(PacketBuilder()
                     .Ipv6(kV6.vip, kV6.client)
                     .HopByHop()
                     .DestinationOptions()
                     .Udp(53, 5353)
                     .Build()),
      kOk, kNone,
      {.is_icmp_error = true,
       .inner_l3_offset = inner_l3,
       .inner_l4_offset = inner_l3 + 56,
       .inner_protocol = 17,
       .inner_src_port = 53,
       .inner_dst_port = 5353});
  add("Icmpv6ErrorQuotingACutExtensionHeader",
      Eth()
          .Ipv6(kV6.router, kV6.vip)
          .IcmpV6(dt::kIcmpV6PacketTooBig, 0)
          .Embed(PacketBuilder()
                     .Ipv6(kV6.vip, kV6.client)
                     .DestinationOptions(64)
                     .Udp(53, 5353)
                     .Truncate(40 + 32)
                     .Build()),
      kDrop, DropReason::kIcmpInnerIpTruncated, {});
  add("Icmpv6ErrorQuotingMisplacedHopByHop",
      Eth()
          .Ipv6(kV6.router, kV6.vip)
          .IcmpV6(dt::kIcmpV6PacketTooBig, 0)
          .Embed(PacketBuilder()
                     .Ipv6(kV6.vip, kV6.client)
                     .DestinationOptions()
                     .HopByHop()
                     .Udp(53, 5353)
                     .Build()),
      kDrop, DropReason::kIcmpInnerBadIp, {});
  return cases;
}

// SameResult is whether two parse results are the same in every field.
bool SameResult(const ParseResult& a, const ParseResult& b) {
  return a.verdict == b.verdict && a.drop_reason == b.drop_reason &&
         a.packet == b.packet;
}

// ParsedBothWays parses `frame` with Parse, ParseGeneral and (when it takes
// the frame) ParseFast, expects all three results to be identical, and
// returns Parse's. `*fast` (if given) tells whether ParseFast took it.
ParseResult ParsedBothWays(std::span<const uint8_t> frame,
                           bool* fast = nullptr) {
  const ParseResult general = ParseGeneral(frame);
  const ParseResult r = Parse(frame);
  EXPECT_TRUE(SameResult(r, general)) << "Parse differs from ParseGeneral";
  ParseResult f;
  const bool took = ParseFast(frame, &f);
  if (took) {
    EXPECT_TRUE(SameResult(f, general))
        << "ParseFast differs from ParseGeneral";
    EXPECT_EQ(f.verdict, ParseVerdict::kOk);
  }
  if (fast != nullptr) *fast = took;
  return r;
}

class ParserTable : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParserTable, ParsesAsExpected) {
  const ParseCase& c = GetParam();
  SCOPED_TRACE("frame:\n" + HexDump(c.frame));
  const ParseResult r = ParsedBothWays(c.frame);
  ASSERT_EQ(r.verdict, c.verdict)
      << "drop reason: " << DropReasonName(r.drop_reason);
  EXPECT_EQ(DropReasonName(r.drop_reason), DropReasonName(c.reason));
  const ParsedPacket& got = r.packet;
  const Want& want = c.want;
#define ANYLB_CHECK_FIELD(field)                            \
  if (want.field.has_value()) {                             \
    EXPECT_EQ(+got.field, +*want.field) << "field " #field; \
  }
  ANYLB_CHECK_FIELD(l3_offset);
  ANYLB_CHECK_FIELD(l3_end);
  ANYLB_CHECK_FIELD(l4_offset);
  ANYLB_CHECK_FIELD(payload_offset);
  ANYLB_CHECK_FIELD(payload_length);
  ANYLB_CHECK_FIELD(src_port);
  ANYLB_CHECK_FIELD(dst_port);
  ANYLB_CHECK_FIELD(l4_protocol);
  ANYLB_CHECK_FIELD(ttl);
  ANYLB_CHECK_FIELD(tcp_flags);
  ANYLB_CHECK_FIELD(has_vlan);
  ANYLB_CHECK_FIELD(vlan_tci);
  ANYLB_CHECK_FIELD(is_fragment);
  ANYLB_CHECK_FIELD(fragment_offset);
  ANYLB_CHECK_FIELD(fragment_id);
  ANYLB_CHECK_FIELD(icmp_type);
  ANYLB_CHECK_FIELD(icmp_code);
  ANYLB_CHECK_FIELD(is_icmp_error);
  ANYLB_CHECK_FIELD(inner_l3_offset);
  ANYLB_CHECK_FIELD(inner_l4_offset);
  ANYLB_CHECK_FIELD(inner_protocol);
  ANYLB_CHECK_FIELD(inner_src_port);
  ANYLB_CHECK_FIELD(inner_dst_port);
#undef ANYLB_CHECK_FIELD
  if (r.ok()) {
    EXPECT_EQ(got.family,
              c.frame[got.l3_offset] >> 4 == 4 ? IpFamily::kV4 : IpFamily::kV6);
    EXPECT_LE(got.l3_end, c.frame.size());
    EXPECT_LE(got.payload_offset + got.payload_length, got.l3_end);
  }
}

std::string CaseName(const ::testing::TestParamInfo<ParseCase>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Ipv4, ParserTable, ::testing::ValuesIn(Ipv4Cases()),
                         CaseName);
INSTANTIATE_TEST_SUITE_P(Ipv6, ParserTable, ::testing::ValuesIn(Ipv6Cases()),
                         CaseName);

// --- The fast path against the general parser ---

// AllFixtures is every frame this file and the sample frames know.
std::vector<std::pair<std::string, std::vector<uint8_t>>> AllFixtures() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> all;
  for (const auto& cases : {Ipv4Cases(), Ipv6Cases()}) {
    for (const ParseCase& c : cases) all.emplace_back(c.name, c.frame);
  }
  for (const dt::SampleFrame& s : dt::ValidSampleFrames()) {
    all.emplace_back("valid " + s.name, s.frame);
  }
  for (const dt::SampleFrame& s : dt::MalformedSampleFrames()) {
    all.emplace_back("malformed " + s.name, s.frame);
  }
  return all;
}

TEST(ParserFastPath, TakesPlainTcpAndUdpOverIpv4AndIpv6) {
  for (const Family& f : {kV4, kV6}) {
    for (bool udp : {false, true}) {
      PacketBuilder b = Eth();
      f.Ip(b, f.client, f.vip);
      std::vector<uint8_t> frame =
          (udp ? b.Udp(40000, 53) : b.Tcp(40000, 80).Flags(0x12))
              .Payload("hello")
              .Build();
      frame.resize(std::max<size_t>(frame.size(), 60), 0);  // Eth padding.
      SCOPED_TRACE(HexDump(frame));
      bool fast = false;
      const ParseResult r = ParsedBothWays(frame, &fast);
      EXPECT_TRUE(fast);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r.packet.src_port, 40000);
      EXPECT_EQ(r.packet.payload_length, 5);
      EXPECT_EQ(r.packet.tcp_flags, udp ? 0 : 0x12);
    }
  }
}

TEST(ParserFastPath, LeavesEveryOtherShapeToTheGeneralParser) {
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> frames = {
      {"vlan", Eth().Vlan(7).Ipv4(kV4.client, kV4.vip).Tcp(1, 80).Build()},
      {"ipv4 options", Eth()
                           .Ipv4(kV4.client, kV4.vip)
                           .Ipv4Options({1, 1, 1, 0})
                           .Tcp(1, 80)
                           .Build()},
      {"ipv4 fragment", Eth()
                            .Ipv4(kV4.client, kV4.vip)
                            .MoreFragments(true)
                            .Udp(1, 53)
                            .Payload(std::string(40, 'x'))
                            .Build()},
      {"icmp", Eth()
                   .Ipv4(kV4.client, kV4.vip)
                   .IcmpV4(dt::kIcmpEchoRequest, 0)
                   .Payload(std::string(40, 'x'))
                   .Build()},
      {"ipv6 extension header",
       Eth().Ipv6(kV6.client, kV6.vip).DestinationOptions().Tcp(1, 80).Build()},
      {"ipv6 udp checksum 0 (a drop)", Eth()
                                           .Ipv6(kV6.client, kV6.vip)
                                           .Udp(1, 53)
                                           .Payload(std::string(20, 'x'))
                                           .UdpChecksumZero()
                                           .Build()},
  };
  for (const auto& [name, frame] : frames) {
    SCOPED_TRACE(name);
    bool fast = true;
    ParsedBothWays(frame, &fast);
    EXPECT_FALSE(fast);
  }
}

// Every fixture, every truncation of it, and every fixture with one of its
// first 128 bytes changed (to 0, 0xff, and with its low and high bit
// flipped): the three entry points agree on all of them, and the fast path
// takes thousands of them (so the comparison is not vacuous; most frames
// here are edge cases and cuts, for the general parser).
TEST(ParserFastPath, AgreesWithTheGeneralParserOnEveryFixtureAndMutation) {
  size_t frames = 0;
  size_t fast_frames = 0;
  auto check = [&](const std::string& name, std::span<const uint8_t> frame,
                   const std::string& how) {
    bool fast = false;
    ParsedBothWays(frame, &fast);
    if (::testing::Test::HasFailure()) {
      FAIL() << name << " " << how << ":\n" << HexDump(frame);
    }
    ++frames;
    fast_frames += fast;
  };
  for (const auto& [name, frame] : AllFixtures()) {
    check(name, frame, "as is");
    for (size_t n = 0; n < frame.size(); ++n) {
      auto cut = std::make_unique<uint8_t[]>(n);  // exact size, for ASan
      std::copy(frame.begin(), frame.begin() + n, cut.get());
      check(name, {cut.get(), n}, "cut at " + std::to_string(n));
      if (::testing::Test::HasFailure()) return;
    }
    std::vector<uint8_t> mutated = frame;
    for (size_t i = 0; i < std::min<size_t>(frame.size(), 128); ++i) {
      for (uint8_t value :
           {uint8_t{0}, uint8_t{0xff}, static_cast<uint8_t>(frame[i] ^ 1),
            static_cast<uint8_t>(frame[i] ^ 0x80)}) {
        mutated[i] = value;
        check(name, mutated,
              "byte " + std::to_string(i) + " := " + std::to_string(value));
        if (::testing::Test::HasFailure()) return;
      }
      mutated[i] = frame[i];
    }
  }
  EXPECT_GT(fast_frames, 2000u) << fast_frames << " of " << frames;
  EXPECT_LT(fast_frames, frames) << "the general parser must see some";
}

TEST(Parser, ArpIsNotIpAndKeepsLayer2Fields) {
  std::vector<uint8_t> arp =
      Eth().Vlan(5).EtherType(0x0806).Payload(std::string(28, 0)).Build();
  ParseResult r = Parse(arp);
  EXPECT_EQ(r.verdict, ParseVerdict::kNotIp);
  EXPECT_EQ(r.drop_reason, DropReason::kNone);
  EXPECT_EQ(r.packet.ether_type, 0x0806);
  EXPECT_TRUE(r.packet.has_vlan);
  EXPECT_EQ(r.packet.vlan_tci, 5);
}

TEST(Parser, TruncatedEthernetAndVlanAreDropped) {
  std::vector<uint8_t> frame = Eth().Vlan(1).Build();
  for (size_t n = 0; n < 14; ++n) {
    std::vector<uint8_t> cut(frame.begin(), frame.begin() + n);
    EXPECT_EQ(Parse(cut).drop_reason, DropReason::kTruncatedEthernet) << n;
  }
  for (size_t n = 14; n < 18; ++n) {
    std::vector<uint8_t> cut(frame.begin(), frame.begin() + n);
    EXPECT_EQ(Parse(cut).drop_reason, DropReason::kTruncatedVlan) << n;
  }
}

TEST(Parser, EveryParserDropReasonHasACase) {
  std::vector<bool> seen(kDropReasonCount, false);
  for (const auto& cases : {Ipv4Cases(), Ipv6Cases()}) {
    for (const ParseCase& c : cases) seen[static_cast<size_t>(c.reason)] = true;
  }
  seen[static_cast<size_t>(DropReason::kTruncatedEthernet)] = true;  // Above.
  seen[static_cast<size_t>(DropReason::kTruncatedVlan)] = true;      // Above.
  for (size_t i = 1;
       i <= static_cast<size_t>(DropReason::kIcmpInnerL4Truncated); ++i) {
    EXPECT_TRUE(seen[i]) << DropReasonName(static_cast<DropReason>(i));
  }
}

TEST(Parser, MalformedSamplesAreDroppedByTheReasonTheyAreNamedAfter) {
  for (const dt::SampleFrame& s : dt::MalformedSampleFrames()) {
    ParseResult r = Parse(s.frame);
    EXPECT_EQ(r.verdict, ParseVerdict::kDrop) << s.name;
    EXPECT_EQ(DropReasonName(r.drop_reason), s.name);
  }
}

// Truncating a valid frame anywhere must never read out of bounds (each cut
// is a fresh allocation of exactly that size, so ASan sees any overread) and
// must give either the same parse (only padding was cut) or a drop.
TEST(Parser, TruncatingAValidFrameAnywhereGivesTheSameParseOrADrop) {
  for (const dt::SampleFrame& s : dt::ValidSampleFrames()) {
    SCOPED_TRACE(s.name);
    const ParseResult whole = Parse(s.frame);
    ASSERT_NE(whole.verdict, ParseVerdict::kDrop)
        << DropReasonName(whole.drop_reason);
    for (size_t n = 0; n < s.frame.size(); ++n) {
      auto cut = std::make_unique<uint8_t[]>(n);
      std::copy(s.frame.begin(), s.frame.begin() + n, cut.get());
      const ParseResult r = Parse({cut.get(), n});
      if (whole.ok() && n >= whole.packet.l3_end) {
        EXPECT_TRUE(r.ok()) << "cut at " << n;
        EXPECT_TRUE(r.packet == whole.packet) << "cut at " << n;
      } else if (whole.verdict == ParseVerdict::kNotIp &&
                 n >= whole.packet.l3_offset) {
        EXPECT_EQ(r.verdict, ParseVerdict::kNotIp) << "cut at " << n;
      } else {
        EXPECT_EQ(r.verdict, ParseVerdict::kDrop)
            << "cut at " << n << " (" << DescribeField(s.frame, n) << ")";
      }
    }
  }
}

TEST(Parser, ValidSamplesParse) {
  for (const dt::SampleFrame& s : dt::ValidSampleFrames()) {
    ParseResult r = Parse(s.frame);
    if (s.name == "arp_request") {
      EXPECT_EQ(r.verdict, ParseVerdict::kNotIp);
    } else {
      EXPECT_TRUE(r.ok()) << s.name << ": " << DropReasonName(r.drop_reason);
    }
  }
}

TEST(Parser, TunnelsParseAsTheirOuterPacket) {
  std::vector<uint8_t> ipip = Eth()
                                  .Ipv4("203.0.113.1", "198.51.100.20")
                                  .Ipv4(kV4.client, kV4.vip)
                                  .Tcp(1, 80)
                                  .Build();
  ParseResult r = Parse(ipip);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.l4_protocol, kIpProtoIpip);
  EXPECT_EQ(r.packet.l4_offset, 34);
  EXPECT_EQ(r.packet.dst_port, 0);
}

// --- Flow keys ---

class FlowKeyTest : public ::testing::TestWithParam<Family> {};

TEST_P(FlowKeyTest, TcpPacketGivesItsFiveTuple) {
  const Family& f = GetParam();
  PacketBuilder b = Eth();
  f.Ip(b, f.client, f.vip).Tcp(40000, 80);
  std::vector<uint8_t> frame = b.Build();
  ParseResult r = Parse(frame);
  ASSERT_TRUE(r.ok());
  FlowKey want = FlowKey::Make(*IpAddress::Parse(f.client), 40000,
                               *IpAddress::Parse(f.vip), 80, 6);
  EXPECT_TRUE(MakeFlowKey(frame, r.packet) == want);
}

TEST_P(FlowKeyTest, EveryFragmentHashesOnTheThreeTuple) {
  const Family& f = GetParam();
  FlowKey want = FlowKey::Make(*IpAddress::Parse(f.client), 0,
                               *IpAddress::Parse(f.vip), 0, 17);
  for (uint16_t offset : {0, 9}) {
    PacketBuilder b = Eth();
    f.Ip(b, f.client, f.vip);
    f.MoreFragments(b, offset, true, 42);
    if (offset == 0) {
      b.Udp(5353, 53).Payload(std::string(16, 'a'));
    } else {
      b.Protocol(17).Payload(std::string(16, 'a'));
    }
    std::vector<uint8_t> frame = b.Build();
    ParseResult r = Parse(frame);
    ASSERT_TRUE(r.ok()) << DropReasonName(r.drop_reason);
    EXPECT_TRUE(MakeFlowKey(frame, r.packet) == want) << "offset " << offset;
  }
}

TEST_P(FlowKeyTest, IcmpErrorKeyIsTheQuotedFlowSeenFromTheClient) {
  const Family& f = GetParam();
  PacketBuilder quoted;
  f.Ip(quoted, f.vip, f.client).Tcp(80, 40000);
  PacketBuilder b = Eth();
  f.Ip(b, f.router, f.vip);
  f.Icmp(b, f.v4 ? dt::kIcmpDestUnreachable : dt::kIcmpV6PacketTooBig,
         f.v4 ? dt::kIcmpCodeFragNeeded : 0)
      .Embed(quoted.Build());
  std::vector<uint8_t> frame = b.Build();
  ParseResult r = Parse(frame);
  ASSERT_TRUE(r.ok()) << DropReasonName(r.drop_reason);
  ASSERT_TRUE(r.packet.is_icmp_error);
  FlowKey want = FlowKey::Make(*IpAddress::Parse(f.client), 40000,
                               *IpAddress::Parse(f.vip), 80, 6);
  EXPECT_TRUE(MakeIcmpErrorFlowKey(frame, r.packet) == want);
  // The outer key is the ICMP packet's own (router -> VIP, no ports).
  FlowKey outer = FlowKey::Make(*IpAddress::Parse(f.router), 0,
                                *IpAddress::Parse(f.vip), 0, f.icmp_proto());
  EXPECT_TRUE(MakeFlowKey(frame, r.packet) == outer);
}

INSTANTIATE_TEST_SUITE_P(Families, FlowKeyTest, ::testing::Values(kV4, kV6),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return info.param.v4 ? "Ipv4" : "Ipv6";
                         });

}  // namespace
}  // namespace anylb::dataplane
