// Parse: the dataplane's packet parser. It reads an Ethernet frame once and
// returns where every header the engine needs is and the few values it
// decides on (addresses by offset, ports, flags, fragment and ICMP-error
// facts), or why the frame must be dropped. It never reads past the frame,
// never writes, allocates or raises exceptions, and does no checksum
// verification (end hosts verify; the engine only updates checksums
// incrementally).
//
// What it accepts, and the rules it applies:
//
// * Ethernet II with at most one 802.1Q / 802.1ad tag. An EtherType other
//   than IPv4/IPv6 (ARP, LLDP, a second VLAN tag, ...) is kNotIp: the frame
//   is for the kernel, not a malformed packet.
// * IPv4 (RFC 791). IHL < 5 is malformed. Options (IHL > 5) are allowed and
//   skipped: a director forwards them untouched (DR/TUN) or rewrites only
//   fixed-offset fields (NAT/FULLNAT), so it has no reason to refuse them.
//   Total length must cover the header and fit in the frame; bytes after it
//   are Ethernet padding and are ignored (l3_end marks the end).
// * IPv6 (RFC 8200). Payload length must fit in the frame (jumbograms are
//   not supported: a zero payload length leaves no room for the Hop-by-Hop
//   header that would carry one, so such a packet drops as truncated).
//   Extension headers (§4) are walked to the transport header: Hop-by-Hop
//   (only directly after the IPv6 header, §4.1), Routing, Destination
//   Options, Fragment, and the RFC 7045 ones sharing their format (Mobility
//   135, HIP 139, Shim6 140). The walk is bounded: at most
//   kMaxIpv6ExtensionHeaders headers and kMaxIpv6ExtensionBytes bytes of
//   them, beyond which the packet drops (kIpv6ExtensionChainTooLong). Any
//   other next header (including AH 51, ESP 50, No Next Header 59) is the
//   "transport" protocol, with no ports.
// * Fragments (IPv4 MF/offset, IPv6 Fragment header). A non-first fragment
//   has no transport header: l4_offset = payload_offset = the fragment data,
//   ports 0. A first fragment's transport header is parsed (and must be
//   whole), but MakeFlowKey hashes every fragment on the 3-tuple so all
//   pieces of a datagram go to one backend. An IPv6 atomic fragment (offset
//   0, M 0; RFC 6946) is not a fragment.
// * TCP (RFC 793): data offset >= 5 and within the datagram. UDP (RFC 768):
//   length >= 8 and within the datagram (a shorter UDP length than the
//   datagram is allowed, as Linux does: the rest is ignored); checksum 0 is
//   dropped over IPv6 (RFC 8200 §8.1). ICMP over IPv4 and ICMPv6 over IPv6:
//   at least 8 bytes.
// * ICMP errors (ICMP Destination Unreachable, Time Exceeded, Parameter
//   Problem; ICMPv6 Destination Unreachable, Packet Too Big, Time Exceeded,
//   Parameter Problem): the quoted datagram's IP header (same family,
//   extension headers walked the same way) and, unless it is a non-first
//   fragment, its first 8 transport bytes (all RFC 792 guarantees) must be
//   present; its ports go into inner_src_port/inner_dst_port so the engine
//   can find the flow (MakeIcmpErrorFlowKey). The quoted datagram's own
//   length fields are not checked: errors quote a prefix.
//
// Offsets are uint16_t, so frames over 65535 bytes are dropped.
//
// Two paths, one result. Parse() first tries ParseFast(): the common case
// (Ethernet without a VLAN tag; IPv4 with IHL 5, not a fragment, or IPv6
// with TCP or UDP directly after the fixed header; a well-formed TCP or UDP
// header) in straight-line code, inline in the caller. Everything else, and
// every drop, goes to ParseGeneral(), the general parser above. Both give
// the same ParseResult for every frame: parser_test runs both on every
// fixture and the fuzz target compares them on every input.

#ifndef ANYLB_LBNODE_DATAPLANE_PARSER_H_
#define ANYLB_LBNODE_DATAPLANE_PARSER_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "common/ip_address.h"
#include "lbnode/dataplane/byte_order.h"
#include "lbnode/dataplane/drop_reason.h"
#include "lbnode/scheduler/flow_key.h"

namespace anylb::dataplane {

// Bounds on the IPv6 extension header walk (see the file comment).
inline constexpr int kMaxIpv6ExtensionHeaders = 8;
inline constexpr int kMaxIpv6ExtensionBytes = 256;

// EtherTypes and IP protocol numbers the parser knows.
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeQinQ = 0x88a8;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoIpip = 4;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoIpv6 = 41;
inline constexpr uint8_t kIpProtoIcmpV6 = 58;

// ParsedPacket is what Parse() found in a frame: offsets from the start of
// the frame and a few decoded values. A plain value, cheap to copy; it does
// not point into the frame, so it stays meaningful after the frame is
// rewritten in place (as long as headers do not move).
struct ParsedPacket {
  // Layer 2.
  uint16_t vlan_tci;    // 802.1Q TCI (PCP, DEI, VID) when has_vlan.
  uint16_t ether_type;  // After the VLAN tag, host order.
  // Layer 3.
  uint16_t l3_offset;       // The IP header: 14, or 18 with a VLAN tag.
  uint16_t l3_end;          // End of the IP datagram; later bytes are padding.
  uint16_t l4_offset;       // Transport header (after IPv4 options / IPv6
                            // extension headers); fragment data if non-first.
  uint16_t payload_offset;  // After the transport header.
  uint16_t payload_length;  // Transport payload bytes (UDP: by UDP length).
  // Layer 4, host order; 0 where absent (non-first fragments, ICMP, others).
  uint16_t src_port;
  uint16_t dst_port;
  // Fragments.
  uint16_t fragment_offset;  // In bytes.
  uint32_t fragment_id;      // IPv4 identification or IPv6 fragment id.
  // ICMP errors: the quoted datagram, 0 when not an ICMP error.
  uint16_t inner_l3_offset;  // Its IP header.
  uint16_t inner_l4_offset;  // Its transport header; 0 if a non-first frag.
  uint16_t inner_src_port;   // Its ports as written in it (host order).
  uint16_t inner_dst_port;
  IpFamily family;      // IPv4 or IPv6 (the quoted datagram's too).
  uint8_t l4_protocol;  // Transport protocol (IPv6: after ext headers).
  uint8_t ttl;          // IPv4 TTL or IPv6 hop limit.
  uint8_t tcp_flags;    // TCP flags byte (FIN 0x01 ... CWR 0x80), else 0.
  uint8_t icmp_type;    // ICMP/ICMPv6 type and code, else 0.
  uint8_t icmp_code;
  uint8_t inner_protocol;  // The quoted datagram's transport protocol.
  bool has_vlan;
  bool is_fragment;    // Any fragment, first or not.
  bool is_icmp_error;  // inner_* fields are valid.

  bool is_v4() const { return family == IpFamily::kV4; }
  bool is_first_fragment() const { return is_fragment && fragment_offset == 0; }
  // has_l4_header() is whether l4_offset holds a transport header.
  bool has_l4_header() const { return !is_fragment || fragment_offset == 0; }
  // Address offsets and size: IPv4 header + 12 / + 16, IPv6 + 8 / + 24.
  uint16_t src_addr_offset() const { return l3_offset + (is_v4() ? 12 : 8); }
  uint16_t dst_addr_offset() const { return l3_offset + (is_v4() ? 16 : 24); }
  uint16_t addr_size() const { return is_v4() ? 4 : 16; }
  uint16_t inner_src_addr_offset() const {
    return inner_l3_offset + (is_v4() ? 12 : 8);
  }
  uint16_t inner_dst_addr_offset() const {
    return inner_l3_offset + (is_v4() ? 16 : 24);
  }

  friend bool operator==(const ParsedPacket&, const ParsedPacket&) = default;
};

static_assert(std::is_trivially_copyable_v<ParsedPacket>);
static_assert(sizeof(ParsedPacket) <= 48, "keep ParsedPacket small");

// ParseVerdict is what to do with a frame.
enum class ParseVerdict : uint8_t {
  kOk,     // An IP packet: `packet` is valid.
  kNotIp,  // Not IPv4/IPv6 (ARP, LLDP, ...): pass it to the kernel.
  kDrop,   // Malformed: drop it and count `drop_reason`.
};

// ParseResult is Parse()'s answer. `packet` is zero-initialised and then
// filled as far as parsing went (for kNotIp: the layer-2 fields).
struct ParseResult {
  ParseVerdict verdict;
  DropReason drop_reason;  // kNone unless verdict == kDrop.
  ParsedPacket packet;

  bool ok() const { return verdict == ParseVerdict::kOk; }
};

// ParseGeneral parses the Ethernet frame `frame` by the rules in the file
// comment, without the fast path: what Parse() does for frames ParseFast()
// declines. Public so that tests and the fuzz target can compare the paths.
ParseResult ParseGeneral(std::span<const uint8_t> frame);

// ParseGeneralInto is ParseGeneral writing into `*result` (no copy of the
// result on the packet path).
void ParseGeneralInto(std::span<const uint8_t> frame, ParseResult* result);

// ParseFast parses `frame` if it is the common case named in the file
// comment and returns true, with `*result` exactly what ParseGeneral would
// return (always verdict kOk); otherwise it returns false and `*result` is
// unspecified. Every read is bounds-checked like the general parser's;
// frames shorter than 54 bytes (below any IPv6 TCP/UDP packet, and IPv4
// ones without Ethernet padding) are left to the general parser.
[[gnu::always_inline]] inline bool ParseFast(std::span<const uint8_t> frame,
                                             ParseResult* result) {
  const uint8_t* const p = frame.data();
  const size_t n = frame.size();
  if (n < 54 || n > 0xffff) return false;
  const uint16_t ether_type = LoadBe16(p + 12);
  uint32_t l4;   // Transport header: 34 or 54.
  uint32_t end;  // End of the IP datagram, <= n.
  uint8_t proto;
  uint8_t ttl;
  IpFamily family;
  if (ether_type == kEtherTypeIpv4) {
    if (p[14] != 0x45) return false;  // Version 4, IHL 5: no options.
    const uint32_t total = LoadBe16(p + 16);
    if (total < 20 || total > n - 14) return false;
    if ((LoadBe16(p + 20) & 0x3fff) != 0) return false;  // A fragment.
    l4 = 34;
    end = 14 + total;
    ttl = p[22];
    proto = p[23];
    family = IpFamily::kV4;
  } else if (ether_type == kEtherTypeIpv6) {
    if ((p[14] >> 4) != 6) return false;
    l4 = 54;
    end = 54 + uint32_t{LoadBe16(p + 18)};
    if (end > n) return false;
    proto = p[20];  // TCP or UDP below: no extension headers.
    ttl = p[21];
    family = IpFamily::kV6;
  } else {
    return false;
  }
  const uint32_t avail = end - l4;  // end >= l4 by the checks above.
  const uint8_t* const h = p + l4;
  uint32_t header_length;
  uint32_t payload_end = end;
  uint8_t tcp_flags = 0;
  if (proto == kIpProtoTcp) {
    if (avail < 20) return false;
    header_length = (uint32_t{h[12]} >> 4) * 4;
    if (header_length < 20 || header_length > avail) return false;
    tcp_flags = h[13];
  } else if (proto == kIpProtoUdp) {
    if (avail < 8) return false;
    const uint32_t udp_length = LoadBe16(h + 4);
    if (udp_length < 8 || udp_length > avail) return false;
    if (family == IpFamily::kV6 && LoadBe16(h + 6) == 0) return false;
    header_length = 8;
    payload_end = l4 + udp_length;
  } else {
    return false;
  }
  *result = ParseResult{};  // kOk, kNone, every other field 0.
  ParsedPacket& pk = result->packet;
  pk.ether_type = ether_type;
  pk.l3_offset = 14;
  pk.l3_end = static_cast<uint16_t>(end);
  pk.l4_offset = static_cast<uint16_t>(l4);
  pk.payload_offset = static_cast<uint16_t>(l4 + header_length);
  pk.payload_length = static_cast<uint16_t>(payload_end - l4 - header_length);
  // Both ports in one 32-bit store where the layout allows: the engine's
  // flow key reads them as one word, and a wide load of two narrow stores
  // cannot be forwarded from the store buffer (a stall on every packet).
  static_assert(offsetof(ParsedPacket, dst_port) ==
                offsetof(ParsedPacket, src_port) + 2);
  if constexpr (std::endian::native == std::endian::little) {
    const uint32_t ports = uint32_t{LoadBe16(h)} | uint32_t{LoadBe16(h + 2)}
                                                       << 16;
    std::memcpy(
        reinterpret_cast<uint8_t*>(&pk) + offsetof(ParsedPacket, src_port),
        &ports, sizeof(ports));
  } else {
    pk.src_port = LoadBe16(h);
    pk.dst_port = LoadBe16(h + 2);
  }
  pk.family = family;
  pk.l4_protocol = proto;
  pk.ttl = ttl;
  pk.tcp_flags = tcp_flags;
  return true;
}

// Parse parses the Ethernet frame `frame` by the rules in the file comment:
// ParseFast, else ParseGeneral (the same result either way).
[[gnu::always_inline]] inline ParseResult Parse(
    std::span<const uint8_t> frame) {
  ParseResult result;
  if (!ParseFast(frame, &result)) [[unlikely]] {
    ParseGeneralInto(frame, &result);
  }
  return result;
}

// MakeFlowKey returns the 5-tuple of the packet `parsed` describes in
// `frame` (the frame Parse() saw). Fragments (first or not) get ports 0, the
// 3-tuple, so all of a datagram's fragments hash alike.
scheduler::FlowKey MakeFlowKey(std::span<const uint8_t> frame,
                               const ParsedPacket& parsed);

// MakeIcmpErrorFlowKey returns, for an ICMP error (parsed.is_icmp_error),
// the key of the flow the error is about, in the direction the director
// sees that flow: the quoted datagram was sent by the far side of the flow
// (a backend answering from the VIP, say), so its source and destination
// (addresses and ports) are swapped. A quoted non-first fragment gets ports
// 0; ICMP inside ICMP gets ports 0.
scheduler::FlowKey MakeIcmpErrorFlowKey(std::span<const uint8_t> frame,
                                        const ParsedPacket& parsed);

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_PARSER_H_
