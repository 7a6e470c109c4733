// FlowKey: the identity of a flow as a director sees it.

#ifndef ANYLB_LBNODE_SCHEDULER_FLOW_KEY_H_
#define ANYLB_LBNODE_SCHEDULER_FLOW_KEY_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ip_address.h"

namespace anylb::scheduler {

// IANA protocol numbers the schedulers and flow table care about.
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpV6 = 58;

// FlowKey is a packet's 5-tuple: source and destination address and port and
// the transport protocol. It is a plain 40-byte value with no padding holes
// (every byte is set, pad bytes to zero), so the flow table stores it inline,
// compares it with memcmp and hashes its bytes.
//
// Addresses are 16 bytes: an IPv6 address, or an IPv4 address in the first
// four bytes with the other twelve zero; `family` tells which. Ports are in
// host byte order and are 0 where the protocol has none (ICMP, non-first
// fragments hashed on the 3-tuple).
struct FlowKey {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t protocol = 0;
  IpFamily family = IpFamily::kV4;
  uint8_t pad[2] = {0, 0};

  // Make builds a key; both addresses must have the same family.
  static FlowKey Make(const IpAddress& src_address, uint16_t src_port,
                      const IpAddress& dst_address, uint16_t dst_port,
                      uint8_t protocol) {
    FlowKey key;
    auto s = src_address.bytes();
    auto d = dst_address.bytes();
    std::memcpy(key.src.data(), s.data(), s.size());
    std::memcpy(key.dst.data(), d.data(), d.size());
    key.src_port = src_port;
    key.dst_port = dst_port;
    key.protocol = protocol;
    key.family = src_address.family();
    return key;
  }

  bool is_v4() const { return family == IpFamily::kV4; }

  IpAddress src_address() const { return ToAddress(src); }
  IpAddress dst_address() const { return ToAddress(dst); }

  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return std::memcmp(&a, &b, sizeof(FlowKey)) == 0;
  }

 private:
  IpAddress ToAddress(const std::array<uint8_t, 16>& bytes) const {
    if (is_v4()) {
      return IpAddress::FromV4Bytes(std::span<const uint8_t, 4>(bytes.data(), 4));
    }
    return IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(bytes));
  }
};

static_assert(sizeof(IpFamily) == 1);
static_assert(sizeof(FlowKey) == 40, "FlowKey must stay a padding-free 40 bytes");
static_assert(std::is_trivially_copyable_v<FlowKey>);

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_FLOW_KEY_H_
