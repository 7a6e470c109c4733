// KernelNextHopResolver over KernelNextHops in a namespace: the adapter's
// Resolve() returns false for an unknown neighbour, the kernel resolves it
// (ARP or ND, started by our NTF_USE request; the test sends no traffic),
// and Resolve() then returns true with the peer's MAC.
//
//   namespace "nhr-<pid>-<n>":     va 192.0.2.1/24 2001:db8::1/64
//                                  vc 198.51.100.1/24
//   namespace "nhrpeer-<pid>-<n>": vb 192.0.2.2/24 2001:db8::2/64
//                                  vd 198.51.100.2/24
//   routes: 203.0.113.0/24 via 192.0.2.2, 2001:db8:1::/48 via 2001:db8::2
// Needs root.

#include <net/if.h>

#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "lbnode/nexthop/kernel_next_hop_resolver.h"
#include "routing/netlink/kernel_next_hops.h"

namespace anylb::nexthop {
namespace {

using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::ScopedNetns;
using ::anylb::netns_testing::TestNetns;
using ::anylb::status_testing::IsOk;
using routing::netlink::FormatMac;
using routing::netlink::KernelNextHops;

IpAddress Ip(const std::string& text) { return *IpAddress::Parse(text); }

class ResolverNetnsTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("kernel next-hop resolver netns tests"), IsOk());
    auto director = TestNetns::Create("nhr");
    ASSERT_THAT(director.status(), IsOk());
    director_ = std::move(*director);
    auto peer = TestNetns::Create("nhrpeer");
    ASSERT_THAT(peer.status(), IsOk());
    peer_ = std::move(*peer);
    for (const std::string& command : {
             absl::StrCat("ip link add va type veth peer name vb netns ",
                          peer_->name()),
             absl::StrCat("ip link add vc type veth peer name vd netns ",
                          peer_->name()),
             std::string("ip addr add 192.0.2.1/24 dev va"),
             std::string("ip addr add 2001:db8::1/64 dev va nodad"),
             std::string("ip addr add 198.51.100.1/24 dev vc"),
             std::string("ip link set va up"),
             std::string("ip link set vc up"),
             std::string("ip route add 203.0.113.0/24 via 192.0.2.2"),
             std::string("ip -6 route add 2001:db8:1::/48 via 2001:db8::2"),
         }) {
      ASSERT_THAT(director_->Run(command).status(), IsOk());
    }
    for (const char* command : {
             "ip addr add 192.0.2.2/24 dev vb",
             "ip addr add 2001:db8::2/64 dev vb nodad",
             "ip addr add 198.51.100.2/24 dev vd",
             "ip link set vb up",
             "ip link set vd up",
         }) {
      ASSERT_THAT(peer_->Run(command).status(), IsOk());
    }
    auto mac = peer_->Run("cat /sys/class/net/vb/address");
    ASSERT_THAT(mac.status(), IsOk());
    peer_mac_ = std::string(absl::StripAsciiWhitespace(*mac));
    auto inside = ScopedNetns::Enter(*director_);
    ASSERT_THAT(inside.status(), IsOk());
    va_ = static_cast<int>(if_nametoindex("va"));
    vc_ = static_cast<int>(if_nametoindex("vc"));
    ASSERT_GT(va_, 0);
    ASSERT_GT(vc_, 0);
    auto next_hops = KernelNextHops::Create();
    ASSERT_THAT(next_hops.status(), IsOk());
    next_hops_ = std::move(*next_hops);
  }

  void TearDown() override { next_hops_.reset(); }

  std::unique_ptr<TestNetns> director_;
  std::unique_ptr<TestNetns> peer_;
  std::string peer_mac_;
  int va_ = 0;
  int vc_ = 0;
  std::unique_ptr<KernelNextHops> next_hops_;
};

// Resolve() for a backend behind the gateway: false, then (after the
// kernel resolved the gateway we asked for) true with the gateway's MAC.
TEST_P(ResolverNetnsTest, ResolveIsFalseThenTrueOnceTheKernelResolved) {
  KernelNextHopResolver resolver(next_hops_->NewReader(),
                                 {.egress_ifindex = va_});
  const IpAddress backend = Ip(GetParam());
  dataplane::Mac mac{};
  resolver.Refresh();
  EXPECT_FALSE(resolver.Resolve(backend, &mac));
  EXPECT_EQ(resolver.stats().no_neighbor, 1u);
  const uint64_t asked_at = resolver.generation();

  bool resolved = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!resolved && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    if (resolver.Refresh()) resolved = resolver.Resolve(backend, &mac);
  }
  ASSERT_TRUE(resolved) << "control thread: " << next_hops_->stats().last_error;
  EXPECT_GT(resolver.generation(), asked_at);
  EXPECT_EQ(FormatMac(mac), peer_mac_);
  EXPECT_EQ(resolver.stats().resolved, 1u);
  // Asked again only after the retry interval (1 s): ND may need that long
  // when va's link-local address is still tentative (no source for the NS).
  EXPECT_GE(resolver.reader().stats().resolve_requested, 1u);
  EXPECT_LE(resolver.reader().stats().resolve_requested, 1u + 10u);
}

INSTANTIATE_TEST_SUITE_P(Ipv4AndIpv6, ResolverNetnsTest,
                         ::testing::Values("203.0.113.10", "2001:db8:1::10"));

// A worker transmitting on vc cannot use a route out of va.
TEST_P(ResolverNetnsTest, RouteOutOfAnotherInterfaceIsRefused) {
  KernelNextHopResolver resolver(next_hops_->NewReader(),
                                 {.egress_ifindex = vc_});
  dataplane::Mac mac{};
  resolver.Refresh();
  EXPECT_FALSE(resolver.Resolve(Ip(GetParam()), &mac));
  EXPECT_EQ(resolver.stats().wrong_interface, 1u);
  EXPECT_EQ(resolver.reader().stats().resolve_requested, 0u);
}

}  // namespace
}  // namespace anylb::nexthop
