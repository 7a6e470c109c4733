// PacketBuilder: a small fluent DSL that builds whole packets (normally
// Ethernet frames) as byte vectors for dataplane tests, plus an independent
// checksum verifier and a readable frame diff.
//
//   std::vector<uint8_t> syn =
//       PacketBuilder()
//           .Eth("02:00:00:00:00:01", "02:00:00:00:00:02")  // src, dst
//           .Vlan(100)
//           .Ipv4("192.0.2.1", "198.51.100.10")             // src, dst
//           .Ttl(64)
//           .Tcp(40000, 80)                                 // sport, dport
//           .Flags(kSyn)
//           .Payload("hello")
//           .Build();
//
// Layers are appended in wire order, so encapsulation is just more layers:
//
//   .Eth(..).Ipv4(outer..).Ipv4(inner..).Tcp(..)          IPIP (RFC 2003)
//   .Eth(..).Ipv6(outer..).Ipv6(inner..).Udp(..)          IP6IP6 (RFC 2473)
//   .Eth(..).Ipv4(outer..).Udp(sport, 6080).Gue().Ipv4(inner..).Tcp(..)
//        GUE variant 1 (draft-ietf-intarea-gue §4.1: the inner IP header
//        directly follows UDP; Gue() adds no bytes, it documents intent)
//   .Eth(..).Ipv4(..).Udp(sport, 6080).GueVariant0().Ipv6(inner..)...
//        GUE variant 0 with a 4-byte base header (§3.1)
//   .Eth(..).Ipv4(router, client).IcmpV4(3, 4).IcmpRest(1400)
//        .Embed(PacketBuilder().Ipv4(client, vip).Tcp(..).Build())
//        an ICMP error quoting the original datagram (RFC 792)
//
// Argument order is always source first, destination second (Eth, Ipv4,
// Ipv6, Tcp, Udp), even though Ethernet puts the destination first on the
// wire.
//
// Build() fills every field the caller did not set explicitly: EtherTypes,
// IPv4 protocol / IPv6 next header (from the following layer), IHL, total
// length, payload length, UDP length, TCP data offset, GUE fields, and the
// IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums (over the RFC 768/793/8200
// §8.1 pseudo-headers). The checksums come from InternetChecksum() below, a
// deliberately plain RFC 1071 sum that shares no code with the dataplane's
// incremental updates, so tests can use one to check the other.
//
// Modifiers (Ttl(), Flags(), Ihl(), BadChecksum(), ...) apply to the most
// recently added layer of the kind they modify, so `.Ipv4(o).Ipv4(i).Ttl(1)`
// sets the inner TTL. A modifier with no such layer, or a layer added in an
// impossible place, is a bug in the test: Build() prints it and aborts.
//
// Knobs for malformed packets: Version(), Ihl(), TotalLength(),
// PayloadLength(), Protocol()/NextHeader(), HdrExtLen(), DataOffset(),
// UdpLength(), Checksum(), BadChecksum(), UdpChecksumZero(), Truncate(),
// Ipv4Options(), IPv6 extension headers, fragment fields; and Pad() for
// Ethernet padding that no length field counts.
//
// This is test-only code: it allocates freely and favours clarity over speed.

#ifndef ANYLB_LBNODE_DATAPLANE_TESTING_PACKET_BUILDER_H_
#define ANYLB_LBNODE_DATAPLANE_TESTING_PACKET_BUILDER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"

// The namespace is not `anylb::dataplane::testing`: inside namespace
// anylb::dataplane that name would hide gMock's ::testing.
namespace anylb::dataplane_testing {

// TCP flag bits (RFC 793 §3.1, RFC 3168 §6.1 for ECE/CWR).
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kPsh = 0x08;
inline constexpr uint8_t kAck = 0x10;
inline constexpr uint8_t kUrg = 0x20;
inline constexpr uint8_t kEce = 0x40;
inline constexpr uint8_t kCwr = 0x80;

// The UDP port GUE uses by default (draft-ietf-intarea-gue §5).
inline constexpr uint16_t kGuePort = 6080;

// ICMP (RFC 792) and ICMPv6 (RFC 4443) types tests use.
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParamProblem = 12;
inline constexpr uint8_t kIcmpCodeFragNeeded = 4;
inline constexpr uint8_t kIcmpV6DestUnreachable = 1;
inline constexpr uint8_t kIcmpV6PacketTooBig = 2;
inline constexpr uint8_t kIcmpV6TimeExceeded = 3;
inline constexpr uint8_t kIcmpV6ParamProblem = 4;
inline constexpr uint8_t kIcmpV6EchoRequest = 128;
inline constexpr uint8_t kIcmpV6EchoReply = 129;

// ParseMac parses "02:00:00:00:00:01" (six hex pairs separated by ':' or
// '-'). It aborts on malformed text: MACs in tests are literals.
std::array<uint8_t, 6> ParseMac(std::string_view text);

// FormatMac prints a MAC as lowercase "02:00:00:00:00:01".
std::string FormatMac(std::span<const uint8_t, 6> mac);

// InternetChecksum returns the RFC 1071 Internet checksum (the one's
// complement of the one's complement sum of 16-bit big-endian words, an odd
// last byte padded with zero) over the concatenation of `parts`. Written to
// be obviously right, not fast. Returns the value as it goes on the wire, in
// host order: store it big-endian.
uint16_t InternetChecksum(
    std::initializer_list<std::span<const uint8_t>> parts);

// PacketBuilder builds one packet layer by layer; see the file comment.
class PacketBuilder {
 public:
  PacketBuilder();
  PacketBuilder(const PacketBuilder&);
  PacketBuilder& operator=(const PacketBuilder&);
  PacketBuilder(PacketBuilder&&) noexcept;
  PacketBuilder& operator=(PacketBuilder&&) noexcept;
  ~PacketBuilder();

  // --- Layer 2 ---

  // Eth adds an Ethernet II header (IEEE 802.3). Its EtherType comes from
  // the next layer (VLAN 0x8100, IPv4 0x0800, IPv6 0x86dd) unless EtherType()
  // sets it; with no such next layer it defaults to 0x88b5 (IEEE local
  // experimental).
  PacketBuilder& Eth(std::string_view src_mac, std::string_view dst_mac);
  // Vlan adds an 802.1Q tag (TPID 0x8100) with VID `vid` and priority `pcp`;
  // its inner EtherType is chosen like Eth's.
  PacketBuilder& Vlan(uint16_t vid, uint8_t pcp = 0);
  // EtherType sets the type field of the last Eth or Vlan layer (ARP: 0x0806).
  PacketBuilder& EtherType(uint16_t ether_type);

  // --- IPv4 (RFC 791) ---

  // Ipv4 adds an IPv4 header: TTL 64, DF clear, ID 0, no options.
  PacketBuilder& Ipv4(std::string_view src, std::string_view dst);
  PacketBuilder& Ttl(uint8_t ttl);
  PacketBuilder& Tos(uint8_t tos);
  PacketBuilder& Id(uint16_t id);
  PacketBuilder& DontFragment(bool df = true);
  PacketBuilder& MoreFragments(bool mf = true);
  // FragmentOffset sets the offset in 8-byte units (the wire value).
  PacketBuilder& FragmentOffset(uint16_t offset_units);
  // Ipv4Options appends option bytes, zero-padded (EOL) to a multiple of 4.
  PacketBuilder& Ipv4Options(std::vector<uint8_t> options);
  // Ihl overrides the header-length field (in 32-bit words). The header's
  // real size stays 20 + options.
  PacketBuilder& Ihl(uint8_t ihl);
  // TotalLength overrides the IPv4 total-length field.
  PacketBuilder& TotalLength(uint16_t total_length);

  // --- IPv6 (RFC 8200) ---

  // Ipv6 adds an IPv6 header: hop limit 64, traffic class 0, flow label 0.
  PacketBuilder& Ipv6(std::string_view src, std::string_view dst);
  PacketBuilder& HopLimit(uint8_t hop_limit);
  PacketBuilder& TrafficClass(uint8_t traffic_class);
  PacketBuilder& FlowLabel(uint32_t flow_label);
  // PayloadLength overrides the IPv6 payload-length field.
  PacketBuilder& PayloadLength(uint16_t payload_length);

  // IPv6 extension headers (RFC 8200 §4), added after an Ipv6 layer and
  // before the upper layer; each fills its own next-header field. Options
  // headers are `length` bytes (a multiple of 8, at least 8) of PadN.
  PacketBuilder& HopByHop(size_t length = 8);
  PacketBuilder& DestinationOptions(size_t length = 8);
  // Routing adds a routing header of `length` bytes (>= 8, multiple of 8)
  // with the given type and Segments Left; the rest is zero. Keep
  // segments_left at 0: pseudo-headers use the IPv6 destination field as the
  // final destination (RFC 8200 §8.1).
  PacketBuilder& Routing(uint8_t routing_type = 4, uint8_t segments_left = 0,
                         size_t length = 8);
  // Fragment adds a fragment header (RFC 8200 §4.5): offset in 8-byte units.
  PacketBuilder& Fragment(uint16_t offset_units, bool more_fragments,
                          uint32_t identification);
  // HdrExtLen overrides the Hdr Ext Len byte of the last options or routing
  // header (the header's real size is unchanged).
  PacketBuilder& HdrExtLen(uint8_t hdr_ext_len);

  // --- Both IP versions ---

  // Version overrides the version nibble of the last IP layer.
  PacketBuilder& Version(uint8_t version);
  // Protocol (alias NextHeader) overrides the protocol / next-header field of
  // the last IP layer or extension header.
  PacketBuilder& Protocol(uint8_t protocol);
  PacketBuilder& NextHeader(uint8_t next_header) {
    return Protocol(next_header);
  }

  // --- Transport ---

  // Tcp adds a TCP header (RFC 793): flags ACK, seq 1, ack 0, window 65535.
  PacketBuilder& Tcp(uint16_t src_port, uint16_t dst_port);
  // Flags sets all TCP flags at once: Flags(kSyn | kAck).
  PacketBuilder& Flags(uint8_t flags);
  PacketBuilder& Seq(uint32_t seq);
  PacketBuilder& AckNumber(uint32_t ack);
  PacketBuilder& Window(uint16_t window);
  // TcpOptions appends option bytes, zero-padded to a multiple of 4.
  PacketBuilder& TcpOptions(std::vector<uint8_t> options);
  // DataOffset overrides the TCP data-offset field (32-bit words).
  PacketBuilder& DataOffset(uint8_t data_offset);

  // Udp adds a UDP header (RFC 768).
  PacketBuilder& Udp(uint16_t src_port, uint16_t dst_port);
  // UdpLength overrides the UDP length field.
  PacketBuilder& UdpLength(uint16_t length);
  // UdpChecksumZero sends the UDP checksum as 0 ("no checksum"; legal only
  // over IPv4, RFC 768; illegal over IPv6, RFC 8200 §8.1).
  PacketBuilder& UdpChecksumZero() { return Checksum(0); }

  // Gue marks GUE variant 1 (draft-ietf-intarea-gue §4.1): no bytes; the
  // next layer must be Ipv4 or Ipv6.
  PacketBuilder& Gue();
  // GueVariant0 adds a 4-byte GUE variant 0 base header (§3.1) with C=0,
  // Hlen=0, no flags; its Proto/ctype field comes from the next layer.
  PacketBuilder& GueVariant0();

  // IcmpV4 adds an ICMP header (RFC 792): type, code, checksum and the
  // 4-byte "rest of header" (IcmpRest). IcmpV6 is the same for RFC 4443,
  // whose checksum covers the IPv6 pseudo-header.
  PacketBuilder& IcmpV4(uint8_t type, uint8_t code);
  PacketBuilder& IcmpV6(uint8_t type, uint8_t code);
  // IcmpRest sets the 4 bytes after the checksum as a big-endian word:
  // (id << 16 | seq) for echo, the next-hop MTU for ICMPv4 "fragmentation
  // needed" (RFC 1191) or the MTU for ICMPv6 "packet too big", the pointer
  // for parameter problems (<< 24 for ICMPv4).
  PacketBuilder& IcmpRest(uint32_t rest);

  // --- Bytes ---

  // Payload appends bytes that no header describes.
  PacketBuilder& Payload(std::string_view text);
  PacketBuilder& Payload(std::span<const uint8_t> bytes);
  // Embed appends another packet's bytes (e.g. the original datagram quoted
  // by an ICMP error). Same as Payload; the name documents intent.
  PacketBuilder& Embed(std::span<const uint8_t> bytes) {
    return Payload(bytes);
  }

  // --- Whole-packet knobs ---

  // Checksum writes `value` into the checksum field of the last layer that
  // has one (IPv4, TCP, UDP, ICMP, ICMPv6) instead of the computed value.
  PacketBuilder& Checksum(uint16_t value);
  // BadChecksum writes the computed checksum of that layer XOR 0x00ff, so it
  // is wrong but still nonzero.
  PacketBuilder& BadChecksum();
  // Pad appends `count` zero bytes after everything, counted by no length
  // field (Ethernet padding).
  PacketBuilder& Pad(size_t count);
  // PadTo pads with zeros to at least `size` bytes (60 = Ethernet minimum
  // without FCS).
  PacketBuilder& PadTo(size_t size);
  // Truncate cuts the finished packet to its first `size` bytes (after every
  // length and checksum was computed on the whole packet).
  PacketBuilder& Truncate(size_t size);

  // Build returns the packet's bytes.
  std::vector<uint8_t> Build() const;

  struct Layer;  // Defined in the .cc.

 private:
  Layer& Add(int kind);
  Layer& Last(std::initializer_list<int> kinds, const char* modifier);

  std::vector<Layer> layers_;
  size_t pad_ = 0;
  size_t pad_to_ = 0;
  std::optional<size_t> truncate_;
};

// VerifyChecksums walks an Ethernet frame (optionally 802.1Q-tagged) down
// through IPv4/IPv6 (extension headers, tunnels: IPIP, IP6IP6, GUE on
// kGuePort) to TCP/UDP/ICMP/ICMPv6, and checks every IPv4 header checksum
// and every transport checksum it can: not for fragments (the checksum covers
// the reassembled datagram), and inside an ICMP error's quoted datagram only
// the IPv4 header checksum. A UDP checksum of 0 is accepted over IPv4 and
// rejected over IPv6. Length fields that point past the frame are errors.
// Shares no code with the dataplane parser. Returns OK or a
// FailedPrecondition naming the layer, its offset and the two values.
absl::Status VerifyChecksums(std::span<const uint8_t> frame);

// VerifyIpChecksums is VerifyChecksums for a packet starting at its IP
// header (no Ethernet).
absl::Status VerifyIpChecksums(std::span<const uint8_t> packet);

// DescribeField names the header field that byte `offset` of an Ethernet
// `frame` falls in, like "ipv4[1].ttl" or "tcp.checksum" (indices count
// repeated layers from 0 when there are several), or "payload".
std::string DescribeField(std::span<const uint8_t> frame, size_t offset);

// HexDump returns the classic 16-bytes-per-line hex and ASCII dump.
std::string HexDump(std::span<const uint8_t> bytes);

// DescribeFrameDiff returns "" when the frames are equal; otherwise a
// message naming the first differing byte, the field it falls in (as
// DescribeField reads `expected`), both values, the lengths, and hex dumps of
// both frames.
std::string DescribeFrameDiff(std::span<const uint8_t> expected,
                              std::span<const uint8_t> actual);

// FrameEq matches a byte vector equal to `expected`, explaining a mismatch
// with DescribeFrameDiff:  EXPECT_THAT(output, FrameEq(expected));
MATCHER_P(FrameEq, expected,
          std::string(negation ? "isn't" : "is") + " the expected frame") {
  const std::vector<uint8_t>& want = expected;
  std::string diff = DescribeFrameDiff(want, arg);
  if (diff.empty()) return true;
  *result_listener << "\n" << diff;
  return false;
}

}  // namespace anylb::dataplane_testing

#endif  // ANYLB_LBNODE_DATAPLANE_TESTING_PACKET_BUILDER_H_
