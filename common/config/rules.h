// The lb.v1 configuration's limits and the rules that need no protobuf,
// shared by the controller and lbnode (and by lbnode/scheduler, which must
// not see protos): one definition of each, so that what the controller
// accepts is exactly what every node can install.
//
// Threading: pure functions; any thread.

#ifndef ANYLB_COMMON_CONFIG_RULES_H_
#define ANYLB_COMMON_CONFIG_RULES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/ip_address.h"

namespace anylb::config {

inline constexpr uint32_t kMaxBackendWeight = 65535;  // ipvsadm -w
inline constexpr uint32_t kMaxNodeWeight = 1000000;   // NodeSettings.weight
// Service.maglev_table_size: 0 means kDefaultMaglevTableSize; otherwise a
// prime of at most kMaxMaglevTableSize.
inline constexpr uint32_t kDefaultMaglevTableSize = 65537;
inline constexpr uint32_t kMaxMaglevTableSize = 16777213;
// A node's FULLNAT local_addresses expand to at most this many addresses
// (a /20 of IPv4, a /116 of IPv6).
inline constexpr int kMaxLocalAddresses = 4096;
// The GUE UDP port when none is given (draft-ietf-intarea-gue §5).
inline constexpr uint16_t kDefaultGuePort = 6080;
// How many problems one INVALID_ARGUMENT lists; more are counted.
inline constexpr int kMaxConfigErrors = 20;

// IsPrime: trial division (table sizes are at most kMaxMaglevTableSize).
bool IsPrime(uint32_t n);

// IsValidServiceName: 1..63 characters of [a-z0-9._:-].
bool IsValidServiceName(std::string_view name);

// DefaultServiceName is the name of an unnamed service: "tcp-192.0.2.10-80",
// "udp-2001:db8::10-53".
std::string DefaultServiceName(const IpAddress& vip, uint16_t port,
                               uint8_t protocol);

// ProtocolName: "tcp" (6), "udp" (17), "?" otherwise.
const char* ProtocolName(uint8_t protocol);

// ValidatePersistence checks IPVS's persistence rules for a service on
// `vip_port`: timeout >= 0 (0: none); port 0 (all ports) only with
// persistence; prefix lengths 0..32 / 0..128 (0: a host). The messages say
// how to fix it.
absl::Status ValidatePersistence(uint32_t vip_port, absl::Duration timeout,
                                 int ipv4_prefix, int ipv6_prefix);

}  // namespace anylb::config

#endif  // ANYLB_COMMON_CONFIG_RULES_H_
