#include "lbnode/dataplane/parser.h"

#include <cstring>

#include "lbnode/dataplane/byte_order.h"

namespace anylb::dataplane {
namespace {

// Every function below works on offsets into `p[0, n)` held in uint32_t (so
// offset + length cannot wrap) and keeps the invariant offset <= end <= n
// before it reads: a check is always "are there k more bytes before end".

// WalkIpv6Extensions walks the extension headers (RFC 8200 §4) starting at
// `*offset`, just past a fixed IPv6 header, up to `end`. On return `*next`
// is the first non-extension next-header value and `*offset` where that
// header starts (for a non-first fragment: where the fragment data starts,
// with `*next` the fragment's next header).
DropReason WalkIpv6Extensions(const uint8_t* p, uint32_t end, uint8_t* next,
                              uint32_t* offset, ParsedPacket* fragment_info) {
  const uint32_t start = *offset;
  for (int count = 0;; ++count) {
    const uint8_t type = *next;
    const uint32_t at = *offset;
    uint32_t length;
    switch (type) {
      case 0:  // Hop-by-Hop Options: only directly after the header (§4.1).
        if (at != start) return DropReason::kIpv6MisplacedHopByHop;
        [[fallthrough]];
      case 43:   // Routing (§4.4).
      case 60:   // Destination Options (§4.6).
      case 135:  // Mobility (RFC 6275), same format (RFC 7045).
      case 139:  // HIP (RFC 7401).
      case 140:  // Shim6 (RFC 5533).
        if (end - at < 2) return DropReason::kTruncatedIpv6ExtensionHeader;
        length = (uint32_t{p[at + 1]} + 1) * 8;
        break;
      case 44:  // Fragment (§4.5): fixed 8 bytes.
        length = 8;
        break;
      default:
        return DropReason::kNone;
    }
    if (count == kMaxIpv6ExtensionHeaders ||
        at + length - start > kMaxIpv6ExtensionBytes) {
      return DropReason::kIpv6ExtensionChainTooLong;
    }
    if (end - at < length) return DropReason::kTruncatedIpv6ExtensionHeader;
    *next = p[at];
    *offset = at + length;
    if (type == 44) {
      const uint16_t offset_flags = LoadBe16(p + at + 2);
      const uint16_t fragment_offset = offset_flags & 0xfff8;
      // Offset 0 and M 0 is an atomic fragment: not a fragment (RFC 6946).
      if ((offset_flags & 0xfff9) != 0 && fragment_info != nullptr) {
        fragment_info->is_fragment = true;
        fragment_info->fragment_offset = fragment_offset;
        fragment_info->fragment_id = LoadBe32(p + at + 4);
      }
      // After a non-first fragment header comes fragment data, not headers.
      if (fragment_offset != 0) return DropReason::kNone;
    }
  }
}

bool IsIcmpError(bool v4, uint8_t type) {
  // RFC 792: Destination Unreachable 3, Time Exceeded 11, Parameter Problem
  // 12. RFC 4443 §2.1: error types are 0-127, the defined ones 1-4.
  return v4 ? (type == 3 || type == 11 || type == 12)
            : (type >= 1 && type <= 4);
}

// ParseIcmpInner parses the datagram an ICMP error quotes, at `off`, up to
// `end` (the end of the ICMP message).
DropReason ParseIcmpInner(const uint8_t* p, uint32_t off, uint32_t end,
                          ParsedPacket* pk) {
  pk->is_icmp_error = true;
  pk->inner_l3_offset = static_cast<uint16_t>(off);
  const uint8_t* ip = p + off;
  const uint32_t avail = end - off;
  uint32_t l4;
  uint8_t proto;
  if (pk->is_v4()) {
    if (avail < 20) return DropReason::kIcmpInnerIpTruncated;
    const uint32_t hlen = uint32_t{ip[0] & 0x0fu} * 4;
    if ((ip[0] >> 4) != 4 || hlen < 20) return DropReason::kIcmpInnerBadIp;
    if (hlen > avail) return DropReason::kIcmpInnerIpTruncated;
    proto = ip[9];
    pk->inner_protocol = proto;
    if ((LoadBe16(ip + 6) & 0x1fff) != 0) return DropReason::kNone;
    l4 = off + hlen;
  } else {
    if (avail < 40) return DropReason::kIcmpInnerIpTruncated;
    if ((ip[0] >> 4) != 6) return DropReason::kIcmpInnerBadIp;
    proto = ip[6];
    l4 = off + 40;
    ParsedPacket fragment{};
    switch (WalkIpv6Extensions(p, end, &proto, &l4, &fragment)) {
      case DropReason::kNone:
        break;
      case DropReason::kIpv6ExtensionChainTooLong:
        return DropReason::kIpv6ExtensionChainTooLong;
      case DropReason::kIpv6MisplacedHopByHop:
        return DropReason::kIcmpInnerBadIp;
      default:
        return DropReason::kIcmpInnerIpTruncated;
    }
    pk->inner_protocol = proto;
    if (fragment.fragment_offset != 0) return DropReason::kNone;
  }
  pk->inner_l4_offset = static_cast<uint16_t>(l4);
  switch (proto) {
    case kIpProtoTcp:
    case kIpProtoUdp:
      // RFC 792 guarantees 64 bits of the original datagram's data.
      if (end - l4 < 8) return DropReason::kIcmpInnerL4Truncated;
      pk->inner_src_port = LoadBe16(p + l4);
      pk->inner_dst_port = LoadBe16(p + l4 + 2);
      return DropReason::kNone;
    case kIpProtoIcmp:
    case kIpProtoIcmpV6:
      if (end - l4 < 8) return DropReason::kIcmpInnerL4Truncated;
      return DropReason::kNone;
    default:
      return DropReason::kNone;
  }
}

// ParseTransport parses the transport header of protocol `proto` at `l4`,
// in a datagram ending at `end`.
DropReason ParseTransport(const uint8_t* p, uint32_t l4, uint32_t end,
                          uint8_t proto, ParsedPacket* pk) {
  pk->l4_protocol = proto;
  pk->l4_offset = static_cast<uint16_t>(l4);
  pk->payload_offset = static_cast<uint16_t>(l4);
  pk->payload_length = static_cast<uint16_t>(end - l4);
  if (!pk->has_l4_header()) return DropReason::kNone;
  const uint8_t* h = p + l4;
  const uint32_t avail = end - l4;
  uint32_t header_length;
  switch (proto) {
    case kIpProtoTcp:
      if (avail < 20) return DropReason::kTruncatedTcpHeader;
      header_length = (uint32_t{h[12]} >> 4) * 4;
      if (header_length < 20) return DropReason::kBadTcpDataOffset;
      if (header_length > avail) return DropReason::kTcpDataOffsetBeyondPacket;
      pk->tcp_flags = h[13];
      break;
    case kIpProtoUdp: {
      if (avail < 8) return DropReason::kTruncatedUdpHeader;
      header_length = 8;
      const uint32_t udp_length = LoadBe16(h + 4);
      // A first fragment's UDP length is the whole datagram's.
      if (!pk->is_fragment) {
        if (udp_length < 8 || udp_length > avail) {
          return DropReason::kBadUdpLength;
        }
        end = l4 + udp_length;
      }
      if (!pk->is_v4() && LoadBe16(h + 6) == 0) {
        return DropReason::kIpv6UdpZeroChecksum;
      }
      break;
    }
    case kIpProtoIcmp:
    case kIpProtoIcmpV6:
      // ICMP over IPv6 or ICMPv6 over IPv4 is just an unknown protocol.
      if ((proto == kIpProtoIcmp) != pk->is_v4()) return DropReason::kNone;
      if (avail < 8) return DropReason::kTruncatedIcmpHeader;
      pk->icmp_type = h[0];
      pk->icmp_code = h[1];
      pk->payload_offset = static_cast<uint16_t>(l4 + 8);
      pk->payload_length = static_cast<uint16_t>(avail - 8);
      if (IsIcmpError(pk->is_v4(), h[0])) {
        return ParseIcmpInner(p, l4 + 8, end, pk);
      }
      return DropReason::kNone;
    default:
      return DropReason::kNone;
  }
  pk->src_port = LoadBe16(h);
  pk->dst_port = LoadBe16(h + 2);
  pk->payload_offset = static_cast<uint16_t>(l4 + header_length);
  pk->payload_length = static_cast<uint16_t>(end - l4 - header_length);
  return DropReason::kNone;
}

DropReason ParseIpv4(const uint8_t* p, uint32_t n, uint32_t off,
                     ParsedPacket* pk) {
  if (n - off < 20) return DropReason::kTruncatedIpv4Header;
  const uint8_t* ip = p + off;
  if ((ip[0] >> 4) != 4) return DropReason::kBadIpVersion;
  const uint32_t hlen = uint32_t{ip[0] & 0x0fu} * 4;
  if (hlen < 20) return DropReason::kBadIpv4HeaderLength;
  if (hlen > n - off) return DropReason::kTruncatedIpv4Header;
  const uint32_t total = LoadBe16(ip + 2);
  if (total < hlen) return DropReason::kBadIpv4TotalLength;
  if (total > n - off) return DropReason::kIpv4TotalLengthBeyondFrame;
  pk->family = IpFamily::kV4;
  pk->l3_end = static_cast<uint16_t>(off + total);
  pk->ttl = ip[8];
  const uint16_t flags_offset = LoadBe16(ip + 6);
  if ((flags_offset & 0x3fff) != 0) {  // MF or a nonzero offset.
    pk->is_fragment = true;
    pk->fragment_offset = static_cast<uint16_t>((flags_offset & 0x1fff) * 8);
    pk->fragment_id = LoadBe16(ip + 4);
  }
  return ParseTransport(p, off + hlen, off + total, ip[9], pk);
}

DropReason ParseIpv6(const uint8_t* p, uint32_t n, uint32_t off,
                     ParsedPacket* pk) {
  if (n - off < 40) return DropReason::kTruncatedIpv6Header;
  const uint8_t* ip = p + off;
  if ((ip[0] >> 4) != 6) return DropReason::kBadIpVersion;
  const uint32_t end = off + 40 + LoadBe16(ip + 4);
  if (end > n) return DropReason::kIpv6PayloadLengthBeyondFrame;
  pk->family = IpFamily::kV6;
  pk->l3_end = static_cast<uint16_t>(end);
  pk->ttl = ip[7];
  uint8_t next = ip[6];
  uint32_t l4 = off + 40;
  DropReason reason = WalkIpv6Extensions(p, end, &next, &l4, pk);
  if (reason != DropReason::kNone) return reason;
  return ParseTransport(p, l4, end, next, pk);
}

DropReason ParseFrame(const uint8_t* p, size_t size, ParsedPacket* pk,
                      bool* not_ip) {
  if (size > 0xffff) return DropReason::kFrameTooLarge;
  const uint32_t n = static_cast<uint32_t>(size);
  if (n < 14) return DropReason::kTruncatedEthernet;
  uint32_t off = 14;
  uint16_t ether_type = LoadBe16(p + 12);
  if (ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ) {
    if (n < 18) return DropReason::kTruncatedVlan;
    pk->has_vlan = true;
    pk->vlan_tci = LoadBe16(p + 14);
    ether_type = LoadBe16(p + 16);
    off = 18;
  }
  pk->ether_type = ether_type;
  pk->l3_offset = static_cast<uint16_t>(off);
  if (ether_type == kEtherTypeIpv4) return ParseIpv4(p, n, off, pk);
  if (ether_type == kEtherTypeIpv6) return ParseIpv6(p, n, off, pk);
  *not_ip = true;
  return DropReason::kNone;
}

}  // namespace

void ParseGeneralInto(std::span<const uint8_t> frame, ParseResult* result) {
  *result = ParseResult{};
  bool not_ip = false;
  result->drop_reason =
      ParseFrame(frame.data(), frame.size(), &result->packet, &not_ip);
  result->verdict = result->drop_reason != DropReason::kNone
                        ? ParseVerdict::kDrop
                    : not_ip ? ParseVerdict::kNotIp
                             : ParseVerdict::kOk;
}

ParseResult ParseGeneral(std::span<const uint8_t> frame) {
  ParseResult result;
  ParseGeneralInto(frame, &result);
  return result;
}

scheduler::FlowKey MakeFlowKey(std::span<const uint8_t> frame,
                               const ParsedPacket& parsed) {
  scheduler::FlowKey key;
  std::memcpy(key.src.data(), frame.data() + parsed.src_addr_offset(),
              parsed.addr_size());
  std::memcpy(key.dst.data(), frame.data() + parsed.dst_addr_offset(),
              parsed.addr_size());
  if (!parsed.is_fragment) {
    key.src_port = parsed.src_port;
    key.dst_port = parsed.dst_port;
  }
  key.protocol = parsed.l4_protocol;
  key.family = parsed.family;
  return key;
}

scheduler::FlowKey MakeIcmpErrorFlowKey(std::span<const uint8_t> frame,
                                        const ParsedPacket& parsed) {
  scheduler::FlowKey key;
  std::memcpy(key.src.data(), frame.data() + parsed.inner_dst_addr_offset(),
              parsed.addr_size());
  std::memcpy(key.dst.data(), frame.data() + parsed.inner_src_addr_offset(),
              parsed.addr_size());
  key.src_port = parsed.inner_dst_port;
  key.dst_port = parsed.inner_src_port;
  key.protocol = parsed.inner_protocol;
  key.family = parsed.family;
  return key;
}

}  // namespace anylb::dataplane
