#include "lbnode/dataplane/bpf/fastpath_entry.h"

#include <cstring>

namespace anylb::dataplane::bpf {
namespace {

constexpr size_t kEthHeader = 14;
constexpr size_t kVlanTag = 4;
constexpr size_t kIpv4Header = 20;
constexpr size_t kIpv6Header = 40;
constexpr size_t kUdpHeader = 8;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIpip = 4;
constexpr uint8_t kIpv6InIp = 41;

uint16_t Be16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

// L2Length: 14, 18 with one 802.1Q/802.1ad tag, 0 if not IP.
size_t L2Length(std::span<const uint8_t> frame) {
  if (frame.size() < kEthHeader) return 0;
  uint16_t type = Be16(frame.data() + 12);
  size_t l2 = kEthHeader;
  if (type == 0x8100 || type == 0x88a8) {
    if (frame.size() < kEthHeader + kVlanTag) return 0;
    type = Be16(frame.data() + 16);
    l2 += kVlanTag;
  }
  return type == 0x0800 || type == 0x86dd ? l2 : 0;
}

// ReadKey reads the 5-tuple of the IP datagram at `ip` (`size` bytes of
// frame left) into `key`, as steer_xdp and the engine's MakeFlowKey see it.
bool ReadKey(const uint8_t* ip, size_t size, anylb_fastpath_key* key) {
  std::memset(key, 0, sizeof(*key));
  if (size < kIpv4Header) return false;
  size_t l4 = 0;
  uint8_t proto = 0;
  if (ip[0] >> 4 == 4) {
    const size_t hlen = size_t{ip[0] & 0x0fu} * 4;
    if (hlen < kIpv4Header || hlen > size) return false;
    if (Be16(ip + 6) & 0x3fff) return false;  // MF or an offset.
    proto = ip[9];
    std::memcpy(key->saddr, ip + 12, 4);
    std::memcpy(key->daddr, ip + 16, 4);
    key->family = 0;
    l4 = hlen;
  } else if (ip[0] >> 4 == 6) {
    if (size < kIpv6Header) return false;
    proto = ip[6];  // Extension headers: not for the fast path.
    std::memcpy(key->saddr, ip + 8, 16);
    std::memcpy(key->daddr, ip + 24, 16);
    key->family = 1;
    l4 = kIpv6Header;
  } else {
    return false;
  }
  if (proto != kTcp && proto != kUdp) return false;
  if (size < l4 + 4) return false;
  key->sport = Be16(ip + l4);
  key->dport = Be16(ip + l4 + 2);
  key->proto = proto;
  return true;
}

}  // namespace

bool MakeFastPathEntry(std::span<const uint8_t> frame, FastPathMode mode,
                       uint32_t mtu, FastPathEntry* entry) {
  std::memset(entry, 0, sizeof(*entry));
  anylb_fastpath_value& v = entry->value;
  const size_t l2 = L2Length(frame);
  if (l2 == 0) return false;
  v.l2_len = static_cast<uint8_t>(l2);
  if (mode == FastPathMode::kDr) {
    v.mode = ANYLB_FASTPATH_MODE_DR;
    v.hdr_len = 12;
    v.max_inner_len = 0xffff;
    std::memcpy(v.hdr, frame.data(), 12);
    return ReadKey(frame.data() + l2, frame.size() - l2, &entry->key);
  }
  v.mode = ANYLB_FASTPATH_MODE_TUN;
  const uint8_t* outer = frame.data() + l2;
  const size_t left = frame.size() - l2;
  size_t overhead = 0;
  uint8_t outer_proto = 0;
  if (Be16(frame.data() + l2 - 2) == 0x0800) {
    if (left < kIpv4Header || outer[0] != 0x45) return false;
    overhead = kIpv4Header;
    outer_proto = outer[9];
  } else {
    if (left < kIpv6Header) return false;
    overhead = kIpv6Header;
    outer_proto = outer[6];
    v.flags |= ANYLB_FASTPATH_OUTER_V6;
  }
  if (outer_proto == kUdp) {
    overhead += kUdpHeader;
    v.flags |= ANYLB_FASTPATH_GUE;
  } else if (outer_proto != kIpip && outer_proto != kIpv6InIp) {
    return false;
  }
  if (left < overhead || l2 + overhead > ANYLB_FASTPATH_MAX_HDR ||
      mtu <= overhead) {
    return false;
  }
  v.hdr_len = static_cast<uint8_t>(l2 + overhead);
  v.max_inner_len =
      static_cast<uint16_t>(mtu - overhead > 0xffff ? 0xffff : mtu - overhead);
  std::memcpy(v.hdr, frame.data(), l2 + overhead);
  return ReadKey(outer + overhead, left - overhead, &entry->key);
}

}  // namespace anylb::dataplane::bpf
