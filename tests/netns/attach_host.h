// AttachHost: one more namespace on a Topology's bridge (test-only), for labs
// the fixed Topology does not cover: a second director, a second client that
// routes the VIPs through it.
//
//   ASSERT_OK_AND_ASSIGN(auto director2, AttachHost(*topology, {
//       .tag = "dir2", .port = "p-dir2", .mac = "02:a1:00:00:00:03",
//       .addresses = {"203.0.113.3/24", "198.51.100.2/24"},
//       .forwarding = true, .xdp_pass_on_peer = true}));
//
// The host gets what Topology gives its own hosts: QuietHost, rp_filter off,
// eth0 (Topology::kInterface) on the bridge with the given MAC, and the given
// addresses and routes. Pick addresses of the Topology's plan that it does
// not use itself (203.0.113.3+, 198.51.100.2..9, 2001:db8:c::3+).
//
// Ownership: the caller owns the returned namespace; declare it after the
// Topology so that it goes first (its veth leaves the bridge with it).

#ifndef ANYLB_TESTS_NETNS_ATTACH_HOST_H_
#define ANYLB_TESTS_NETNS_ATTACH_HOST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/netns/netns.h"
#include "tests/netns/topology.h"

namespace anylb::lab {

struct AttachHostOptions {
  // Namespace tag (Netns::Create) and the bridge-side veth's name.
  std::string tag;
  std::string port;
  // MAC of the host's eth0; empty: random.
  std::string mac;
  // "address/length" on eth0 (IPv6 without DAD).
  std::vector<std::string> addresses;
  // (destination, gateway) routes out of eth0 (ReplaceRoute).
  std::vector<std::pair<std::string, std::string>> routes;
  // IPv4/IPv6 forwarding without redirects (EnableForwarding), as the
  // Topology's director.
  bool forwarding = false;
  // An XDP_PASS program on the bridge-side peer (see
  // TopologyOptions::xdp_pass_on_director_peer): for a director whose
  // lbnode sends with XDP_TX.
  bool xdp_pass_on_peer = false;
};

// AttachHost creates the namespace and plugs it into `topology`'s bridge.
absl::StatusOr<std::unique_ptr<Netns>> AttachHost(
    const Topology& topology, const AttachHostOptions& options);

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_ATTACH_HOST_H_
