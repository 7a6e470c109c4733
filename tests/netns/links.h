// Links, addresses, routes and sysctls inside lab namespaces (test-only).
//
// Small, well-named wrappers over `ip` and /proc/sys, each returning a status
// that quotes the failing command and its stderr. All act on a Netns; none
// touches the host's own namespace (veths are created directly inside their
// namespaces, so their names never clash with the host's or another test's).

#ifndef ANYLB_TESTS_NETNS_LINKS_H_
#define ANYLB_TESTS_NETNS_LINKS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/netns/netns.h"

namespace anylb::lab {

// AddVethPair creates a veth pair with end `name_a` in `a` and `name_b` in
// `b` and sets both up. Names are at most 15 characters.
absl::Status AddVethPair(const Netns& a, std::string_view name_a,
                         const Netns& b, std::string_view name_b);

// AddBridge creates bridge `bridge` in `ns` (no STP, no forward delay, no
// multicast snooping, so ARP/ND flood at once) and sets it up.
absl::Status AddBridge(const Netns& ns, std::string_view bridge);

// AddBridgePort enslaves `port` (in `ns`) to `bridge`.
absl::Status AddBridgePort(const Netns& ns, std::string_view bridge,
                           std::string_view port);

// AddAddress adds "address/length" to `dev`; IPv6 addresses get `nodad`, so
// they are usable at once (no Duplicate Address Detection wait).
absl::Status AddAddress(const Netns& ns, std::string_view dev,
                        std::string_view prefix);

// AddLoopbackAddress adds `address` as a /32 or /128 on lo: the VIP on a DR
// or TUN real server.
absl::Status AddLoopbackAddress(const Netns& ns, std::string_view address);

// ReplaceRoute installs `destination` ("default", "192.0.2.0/24", ...) via
// gateway `via` (may be empty for an on-link route) out of `dev` (may be
// empty when `via` decides it). Replaces an existing route to `destination`.
absl::Status ReplaceRoute(const Netns& ns, std::string_view destination,
                          std::string_view via, std::string_view dev);

// SetMtu sets the MTU of `dev`.
absl::Status SetMtu(const Netns& ns, std::string_view dev, int mtu);

// SetMac sets the MAC address of `dev` ("02:a1:00:00:00:01").
absl::Status SetMac(const Netns& ns, std::string_view dev,
                    std::string_view mac);

// GetMac returns the MAC address of `dev` in lowercase colon form.
absl::StatusOr<std::string> GetMac(const Netns& ns, std::string_view dev);

// GetIfindex returns the interface index of `dev` inside `ns`.
absl::StatusOr<int> GetIfindex(const Netns& ns, std::string_view dev);

// DisableRpFilter turns reverse-path filtering off (all and default): a lab
// host receives packets whose source it routes elsewhere (DR/TUN replies,
// one-arm directors).
absl::Status DisableRpFilter(const Netns& ns);

// EnableForwarding turns on IPv4 and IPv6 forwarding and turns off ICMP
// redirects (sending and accepting): a one-arm router would otherwise tell
// the client to bypass it.
absl::Status EnableForwarding(const Netns& ns);

// QuietHost sets the sysctls every lab namespace wants: no IPv6 DAD (also
// for link-local addresses), no accepted ICMP redirects.
absl::Status QuietHost(const Netns& ns);

// SetDrArpSysctls sets arp_ignore=1 and arp_announce=2 (all): a real server
// holding a VIP on lo never answers ARP for it nor uses it as an ARP source.
absl::Status SetDrArpSysctls(const Netns& ns);

// AttachXdpPass attaches an XDP program that passes every frame to `dev`
// (native mode). On a veth this makes frames the peer sends with XDP_TX or
// XDP_REDIRECT arrive (see README.md); the attachment lasts until the
// device goes.
absl::Status AttachXdpPass(const Netns& ns, std::string_view dev);

// LinkCounters are an interface's packet counters (`ip -s link`).
struct LinkCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_dropped = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_dropped = 0;
};

// GetLinkCounters reads the counters of `dev` (sysfs statistics).
absl::StatusOr<LinkCounters> GetLinkCounters(const Netns& ns,
                                             std::string_view dev);

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_LINKS_H_
