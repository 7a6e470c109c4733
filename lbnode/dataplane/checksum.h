// Internet checksum arithmetic for the packet engine: full sums (RFC 1071)
// for headers the engine writes from scratch (tunnel headers, ICMP errors it
// generates) and incremental updates (RFC 1624) for the fields it rewrites
// (addresses, ports, TTL) in NAT and FULLNAT.
//
// Conventions. A checksum or 16-bit word is a host-order value as
// LoadBe16() returns it; functions that take a pointer read and write the
// packet's big-endian field in place. Pointers and spans must already be
// bounds-checked by the caller (the parser's offsets are). Nothing here
// allocates, raises exceptions or branches on more than the UDP zero-checksum
// rules.
//
// One's complement arithmetic is byte-order independent (RFC 1071 §2(B)) and
// word-position independent, so an incremental update only needs the old and
// new values of the changed words, provided each change starts at an even
// offset from the start of the checksummed data (true of every address, port
// and TTL/protocol word in IPv4, IPv6, TCP, UDP and ICMP headers).

#ifndef ANYLB_LBNODE_DATAPLANE_CHECKSUM_H_
#define ANYLB_LBNODE_DATAPLANE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "lbnode/dataplane/byte_order.h"

namespace anylb::dataplane {

// ChecksumAccumulate adds the big-endian 16-bit words of `bytes` to `sum`
// without folding (RFC 1071 §4.1). An odd last byte is the high byte of a
// word padded with zero, so only the last of several chained spans may have
// odd length. A uint64_t cannot overflow for any packet-sized input.
inline uint64_t ChecksumAccumulate(std::span<const uint8_t> bytes,
                                   uint64_t sum = 0) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  for (; n >= 2; p += 2, n -= 2) sum += LoadBe16(p);
  if (n == 1) sum += uint64_t{*p} << 8;
  return sum;
}

// ChecksumFold folds a one's complement sum to 16 bits (end-around carry).
// The result is not complemented.
inline uint16_t ChecksumFold(uint64_t sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// InternetChecksum returns the RFC 1071 checksum of `bytes`, starting from
// the unfolded partial sum `initial` (a pseudo-header sum, say): the value
// to store in the checksum field, which must be zero in `bytes` (or left out
// of them).
inline uint16_t InternetChecksum(std::span<const uint8_t> bytes,
                                 uint64_t initial = 0) {
  return static_cast<uint16_t>(
      ~ChecksumFold(ChecksumAccumulate(bytes, initial)));
}

// PseudoHeaderSumV4 returns the partial sum of the IPv4 pseudo-header
// (RFC 793 §3.1, RFC 768): source, destination, zero, protocol and the
// transport length (header plus data).
inline uint64_t PseudoHeaderSumV4(const uint8_t* src, const uint8_t* dst,
                                  uint8_t protocol, uint16_t length) {
  return ChecksumAccumulate({src, 4}, ChecksumAccumulate({dst, 4})) + protocol +
         length;
}

// PseudoHeaderSumV6 returns the partial sum of the IPv6 pseudo-header
// (RFC 8200 §8.1): source, final destination, 32-bit upper-layer length,
// three zero bytes and the upper-layer next header value.
inline uint64_t PseudoHeaderSumV6(const uint8_t* src, const uint8_t* dst,
                                  uint8_t next_header, uint32_t length) {
  return ChecksumAccumulate({src, 16}, ChecksumAccumulate({dst, 16})) +
         (length >> 16) + (length & 0xffff) + next_header;
}

// Ipv4HeaderChecksum returns the header checksum (RFC 791 §3.1) of the IPv4
// header `header` (IHL * 4 bytes), ignoring whatever its checksum field
// (bytes 10-11) holds.
inline uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header) {
  return InternetChecksum(header.subspan(12),
                          ChecksumAccumulate(header.first(10)));
}

// ChecksumUpdate16 returns checksum `check` updated for one 16-bit word of
// the covered data changing from `old_word` to `new_word`: RFC 1624 eqn. 3,
// HC' = ~(~HC + ~m + m'). RFC 1624 §3 shows that the older form of
// RFC 1141 gets the +0/-0 case wrong; eqn. 3 gives exactly what a full
// recomputation would for any data that is not all zero.
inline uint16_t ChecksumUpdate16(uint16_t check, uint16_t old_word,
                                 uint16_t new_word) {
  uint32_t sum = uint32_t{static_cast<uint16_t>(~check)} +
                 uint32_t{static_cast<uint16_t>(~old_word)} + new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// ChecksumUpdate32 is ChecksumUpdate16 for a 32-bit field (two words), such
// as an IPv4 address or a TCP sequence number.
inline uint16_t ChecksumUpdate32(uint16_t check, uint32_t old_value,
                                 uint32_t new_value) {
  uint64_t sum = uint64_t{static_cast<uint16_t>(~check)} +
                 (~old_value >> 16 & 0xffff) + (~old_value & 0xffff) +
                 (new_value >> 16) + (new_value & 0xffff);
  return static_cast<uint16_t>(~ChecksumFold(sum));
}

// ChecksumUpdateBytes is ChecksumUpdate16 for a run of bytes of even length
// (an IPv6 address: 16), given the old and new contents. `old_bytes` and
// `new_bytes` must have the same even size and may not overlap the field
// being written afterwards.
inline uint16_t ChecksumUpdateBytes(uint16_t check,
                                    std::span<const uint8_t> old_bytes,
                                    std::span<const uint8_t> new_bytes) {
  uint64_t sum = static_cast<uint16_t>(~check);
  for (size_t i = 0; i + 1 < old_bytes.size(); i += 2) {
    sum += static_cast<uint16_t>(~LoadBe16(old_bytes.data() + i));
    sum += LoadBe16(new_bytes.data() + i);
  }
  return static_cast<uint16_t>(~ChecksumFold(sum));
}

// L4ChecksumKind says how a transport checksum behaves under rewrites.
enum class L4ChecksumKind : uint8_t {
  kNone,    // No checksum to maintain (e.g. a non-first fragment).
  kTcp,     // RFC 793: always present, covers the pseudo-header.
  kUdpV4,   // RFC 768: covers the pseudo-header; 0 means "none" and stays 0.
  kUdpV6,   // RFC 8200 §8.1: mandatory; a result of 0 is sent as 0xffff.
  kIcmpV4,  // RFC 792: covers the ICMP message only, no pseudo-header.
  kIcmpV6,  // RFC 4443 §2.3: covers the IPv6 pseudo-header.
};

// L4ChecksumKindFor returns the kind for an IP protocol number over IPv4
// (`ipv6` false) or IPv6; kNone for protocols without a checksum we keep.
inline L4ChecksumKind L4ChecksumKindFor(uint8_t protocol, bool ipv6) {
  switch (protocol) {
    case 6:
      return L4ChecksumKind::kTcp;
    case 17:
      return ipv6 ? L4ChecksumKind::kUdpV6 : L4ChecksumKind::kUdpV4;
    case 1:
      return ipv6 ? L4ChecksumKind::kNone : L4ChecksumKind::kIcmpV4;
    case 58:
      return ipv6 ? L4ChecksumKind::kIcmpV6 : L4ChecksumKind::kNone;
    default:
      return L4ChecksumKind::kNone;
  }
}

// L4ChecksumOffset returns where the checksum field of a transport header of
// `protocol` is, from the start of that header: TCP 16, UDP 6, ICMP and
// ICMPv6 2; -1 for other protocols.
inline int L4ChecksumOffset(uint8_t protocol) {
  switch (protocol) {
    case 6:
      return 16;
    case 17:
      return 6;
    case 1:
    case 58:
      return 2;
    default:
      return -1;
  }
}

// L4Checksum names a transport checksum field in a packet and its kind.
// A default L4Checksum (null field, kNone) makes every update a no-op: use
// it for a non-first fragment, which has no transport header. A first
// fragment's checksum covers the whole reassembled datagram, but updates are
// linear, so updating it for the changed words is still exact.
struct L4Checksum {
  uint8_t* field = nullptr;
  L4ChecksumKind kind = L4ChecksumKind::kNone;
};

namespace checksum_internal {

// Applies `update` to the field unless the rules say to leave it alone:
// nothing to update, or a UDP-over-IPv4 checksum of 0 ("no checksum",
// RFC 768). A UDP result of 0 is sent as 0xffff (RFC 768; RFC 8200 §8.1).
template <typename Update>
inline void ApplyL4(L4Checksum l4, Update update) {
  if (l4.field == nullptr || l4.kind == L4ChecksumKind::kNone) return;
  uint16_t check = LoadBe16(l4.field);
  if (l4.kind == L4ChecksumKind::kUdpV4 && check == 0) return;
  check = update(check);
  if (check == 0 && (l4.kind == L4ChecksumKind::kUdpV4 ||
                     l4.kind == L4ChecksumKind::kUdpV6)) {
    check = 0xffff;
  }
  StoreBe16(l4.field, check);
}

}  // namespace checksum_internal

// UpdateL4ChecksumPseudo updates `l4` for bytes of the pseudo-header (an
// address) changing from `old_bytes` to `new_bytes` (same even size). ICMPv4
// has no pseudo-header, so it is left alone.
inline void UpdateL4ChecksumPseudo(L4Checksum l4,
                                   std::span<const uint8_t> old_bytes,
                                   std::span<const uint8_t> new_bytes) {
  if (l4.kind == L4ChecksumKind::kIcmpV4) return;
  checksum_internal::ApplyL4(l4, [&](uint16_t check) {
    return ChecksumUpdateBytes(check, old_bytes, new_bytes);
  });
}

// UpdateL4ChecksumData updates `l4` for bytes inside the checksummed
// transport data (a port, an ICMP identifier, a field of the datagram an ICMP
// error quotes) changing from `old_bytes` to `new_bytes`: same even size,
// starting at an even offset from the transport header.
inline void UpdateL4ChecksumData(L4Checksum l4,
                                 std::span<const uint8_t> old_bytes,
                                 std::span<const uint8_t> new_bytes) {
  checksum_internal::ApplyL4(l4, [&](uint16_t check) {
    return ChecksumUpdateBytes(check, old_bytes, new_bytes);
  });
}

// UpdateL4ChecksumData16 is UpdateL4ChecksumData for one 16-bit word.
inline void UpdateL4ChecksumData16(L4Checksum l4, uint16_t old_word,
                                   uint16_t new_word) {
  checksum_internal::ApplyL4(l4, [&](uint16_t check) {
    return ChecksumUpdate16(check, old_word, new_word);
  });
}

// RewriteIpv4Address writes `new_address` over the 4-byte address at
// `address` (the source at ipv4_header + 12 or the destination at + 16) and
// updates the IPv4 header checksum and, through the pseudo-header, `l4`.
inline void RewriteIpv4Address(uint8_t* ipv4_header, uint8_t* address,
                               std::span<const uint8_t, 4> new_address,
                               L4Checksum l4) {
  uint32_t old_value = LoadBe32(address);
  uint32_t new_value = LoadBe32(new_address.data());
  StoreBe16(ipv4_header + 10,
            ChecksumUpdate32(LoadBe16(ipv4_header + 10), old_value, new_value));
  uint8_t old_bytes[4];
  StoreBe32(old_bytes, old_value);
  UpdateL4ChecksumPseudo(l4, old_bytes, new_address);
  StoreBe32(address, new_value);
}

// RewriteIpv6Address writes `new_address` over the 16-byte address at
// `address` (IPv6 header + 8 or + 24) and updates `l4` through the
// pseudo-header. IPv6 has no header checksum.
inline void RewriteIpv6Address(uint8_t* address,
                               std::span<const uint8_t, 16> new_address,
                               L4Checksum l4) {
  UpdateL4ChecksumPseudo(l4, {address, 16}, new_address);
  for (size_t i = 0; i < 16; ++i) address[i] = new_address[i];
}

// RewritePort writes `new_port` (host order) into the 2-byte port field at
// `port` and updates `l4`.
inline void RewritePort(uint8_t* port, uint16_t new_port, L4Checksum l4) {
  UpdateL4ChecksumData16(l4, LoadBe16(port), new_port);
  StoreBe16(port, new_port);
}

// DecrementIpv4Ttl lowers the TTL of the IPv4 header at `ipv4_header` by
// one and updates its header checksum (RFC 1624 §4 on the TTL/protocol word).
// The caller has checked that the TTL is above 1.
inline void DecrementIpv4Ttl(uint8_t* ipv4_header) {
  uint16_t old_word = LoadBe16(ipv4_header + 8);
  uint16_t new_word = static_cast<uint16_t>(old_word - 0x0100);
  StoreBe16(ipv4_header + 8, new_word);
  StoreBe16(ipv4_header + 10,
            ChecksumUpdate16(LoadBe16(ipv4_header + 10), old_word, new_word));
}

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_CHECKSUM_H_
