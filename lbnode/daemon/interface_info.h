// InterfaceInfo: what lbnode learns about its network interface from the
// kernel at start (and on SIGHUP): index, MAC, MTU, its own addresses and
// how many RX queues it has. These fill the parts of the engine's node
// configuration that the config file does not carry (the node MAC, the
// tunnel source addresses, the MTU).

#ifndef ANYLB_LBNODE_DAEMON_INTERFACE_INFO_H_
#define ANYLB_LBNODE_DAEMON_INTERFACE_INFO_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ip_address.h"

namespace anylb::lbnode {

// InterfaceInfo is one interface as the kernel sees it in the calling
// thread's network namespace.
struct InterfaceInfo {
  std::string name;
  int ifindex = 0;
  std::array<uint8_t, 6> mac{};
  uint32_t mtu = 0;
  uint32_t rx_queues = 1;
  // Global-scope addresses, in the kernel's order (primary first).
  std::vector<IpAddress> ipv4;
  std::vector<IpAddress> ipv6;

  // The first global address of a family, if any.
  std::optional<IpAddress> FirstAddress(IpFamily family) const;
};

// ReadInterfaceInfo asks the kernel about `name`. NOT_FOUND names the
// interface when it does not exist ("interface \"eth9\" not found; `ip link`
// lists the interfaces"); an interface without an Ethernet MAC is
// FAILED_PRECONDITION (lbnode needs Ethernet framing).
absl::StatusOr<InterfaceInfo> ReadInterfaceInfo(std::string_view name);

// FormatMac prints "02:00:00:00:00:01".
std::string FormatMac(const std::array<uint8_t, 6>& mac);

}  // namespace anylb::lbnode

#endif  // ANYLB_LBNODE_DAEMON_INTERFACE_INFO_H_
