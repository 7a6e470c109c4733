// Topology: the namespaces of an lbnode integration test (test-only).
//
//                       switch ns: bridge "br0"
//        p-client        p-dir          p-rs1 .. p-rsN
//           |              |               |
//   client ns eth0   director ns eth0   real-server ns eth0 (x N)
//
// Everything sits on one L2 segment (the bridge); the director is one-armed.
// Address plan (documentation ranges only, RFC 5737 / RFC 3849):
//
//   client          203.0.113.2/24     2001:db8:c::2/64      02:a1:00:00:00:02
//   director        203.0.113.1/24     2001:db8:c::1/64      02:a1:00:00:00:01
//                   198.51.100.1/24    2001:db8:b::1/64
//   real server i   198.51.100.1i/24   2001:db8:b::1i/64     02:a1:00:00:01:0i
//   (i = 1..N: rs1 is 198.51.100.11 and 2001:db8:b::11)
//   VIPs            192.0.2.0/25       2001:db8:f::/64  (client: via director)
//   local addrs     192.0.2.128/25     2001:db8:e::/64  (real servers: via
//   (FULLNAT)                                             director)
//
// Routes: the client sends the VIP prefixes and 198.51.100.0/24 to the
// director. Real servers have their default route via the director; how they
// reach the client's prefix is the return path: kDirect (on-link over the
// bridge: DR and TUN replies skip the director) or kViaDirector (NAT needs
// the replies to pass the director). Every namespace has rp_filter off, no
// IPv6 DAD and ignores ICMP redirects; the director forwards (IPv4 and IPv6,
// sends no redirects) — a test that runs lbnode there may turn that off.
// Real servers have the DR ARP sysctls (arp_ignore=1, arp_announce=2), so
// AddVipToRealServers() is all DR and TUN need.
//
// Ownership: the Topology owns its namespaces (and so the links inside);
// destroying it kills what runs there and removes them. Objects that run in
// its namespaces (servers, clients) must be destroyed first: declare them
// after the Topology.

#ifndef ANYLB_TESTS_NETNS_TOPOLOGY_H_
#define ANYLB_TESTS_NETNS_TOPOLOGY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "tests/netns/netns.h"

namespace anylb::lab {

struct TopologyOptions {
  // Number of real servers (1..9).
  int real_servers = 3;
  // Attach an XDP_PASS program to the director's bridge-side peer (p-dir),
  // which a veth needs to receive the director's XDP_TX / XDP_REDIRECT
  // frames. AF_XDP TX in copy mode (what lbnode uses on veth) does not need
  // it: see README.md and lab_test's AfXdpTx tests.
  bool xdp_pass_on_director_peer = false;
  // MTU of every link.
  int mtu = 1500;
};

enum class ReturnPath {
  kDirect,       // real servers reach the client's prefix on-link
  kViaDirector,  // ... through the director (NAT)
};

class Topology {
 public:
  // Interface names, the same in every namespace.
  static constexpr char kInterface[] = "eth0";
  static constexpr char kBridge[] = "br0";
  static constexpr char kDirectorPeer[] = "p-dir";

  static absl::StatusOr<std::unique_ptr<Topology>> Create(
      const TopologyOptions& options = {});

  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;
  ~Topology();

  const Netns& client() const { return *client_; }
  const Netns& director() const { return *director_; }
  const Netns& switch_ns() const { return *switch_; }
  const Netns& real_server(int i) const { return *real_servers_[i]; }
  int real_server_count() const {
    return static_cast<int>(real_servers_.size());
  }

  // Addresses of the plan above, by family. `i` counts real servers from 0.
  static IpAddress ClientAddress(IpFamily family);
  static IpAddress DirectorClientSideAddress(IpFamily family);
  static IpAddress DirectorAddress(IpFamily family);
  static IpAddress RealServerAddress(int i, IpFamily family);
  // Vip(k) is the k-th VIP (k from 0): 192.0.2.1+k, 2001:db8:f::1+k.
  static IpAddress Vip(int k, IpFamily family);
  // LocalAddress(k) is the k-th FULLNAT local address: 192.0.2.129+k,
  // 2001:db8:e::1+k.
  static IpAddress LocalAddress(int k, IpFamily family);
  static IpPrefix VipPrefix(IpFamily family);
  static IpPrefix LocalPrefix(IpFamily family);
  static IpPrefix ClientPrefix(IpFamily family);

  // MACs of the plan above and the director's peer (p-dir, random).
  static std::string ClientMac();
  static std::string DirectorMac();
  static std::string RealServerMac(int i);
  const std::string& director_peer_mac() const { return director_peer_mac_; }
  // The director's eth0 ifindex (in the director namespace).
  int director_ifindex() const { return director_ifindex_; }

  // AddVipToRealServers puts `vip` on every real server's lo (DR, TUN).
  absl::Status AddVipToRealServers(const IpAddress& vip) const;

  // SetReturnPath sets how real servers reach the client's prefixes.
  // Create() leaves kDirect.
  absl::Status SetReturnPath(ReturnPath path) const;

  // Describe returns `ip -br addr` and `ip route` of every namespace, for
  // failure messages.
  std::string Describe() const;

 private:
  Topology() = default;
  absl::Status Build(const TopologyOptions& options);

  std::unique_ptr<Netns> switch_;
  std::unique_ptr<Netns> client_;
  std::unique_ptr<Netns> director_;
  std::vector<std::unique_ptr<Netns>> real_servers_;
  std::string director_peer_mac_;
  int director_ifindex_ = 0;
};

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_TOPOLOGY_H_
