#include "common/config/rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace anylb::config {

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; uint64_t{d} * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    // ':' because an unnamed IPv6 service is called "tcp-2001:db8::10-80".
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == ':';
  });
}

const char* ProtocolName(uint8_t protocol) {
  return protocol == 6 ? "tcp" : protocol == 17 ? "udp" : "?";
}

std::string DefaultServiceName(const IpAddress& vip, uint16_t port,
                               uint8_t protocol) {
  return absl::StrCat(ProtocolName(protocol), "-", vip.ToString(), "-", port);
}

absl::Status ValidatePersistence(uint32_t vip_port, absl::Duration timeout,
                                 int ipv4_prefix, int ipv6_prefix) {
  if (timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "persistence timeout ", absl::FormatDuration(timeout),
        " is negative; use 0 for no persistence or a positive duration "
        "(IPVS's default is 300s)"));
  }
  if (vip_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("service port ", vip_port, " is out of range 0..65535"));
  }
  if (vip_port == 0 && timeout == absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "service port 0 (all ports) needs persistence, as in IPVS: set a "
        "persistence timeout (e.g. 300s) or give the service a port");
  }
  if (ipv4_prefix < 0 || ipv4_prefix > 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "persistence IPv4 prefix length ", ipv4_prefix,
        " is out of range 0..32 (0 means 32, each client on its own; 24 "
        "makes a /24 share a real server)"));
  }
  if (ipv6_prefix < 0 || ipv6_prefix > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "persistence IPv6 prefix length ", ipv6_prefix,
        " is out of range 0..128 (0 means 128, each client on its own; 64 "
        "makes a /64 share a real server)"));
  }
  return absl::OkStatus();
}

}  // namespace anylb::config
