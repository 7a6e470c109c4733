#include "lbnode/dataplane/config.h"

#include <utility>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::dataplane {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

NodeConfig Node() {
  NodeConfig node;
  node.mac = {0x02, 0, 0, 0, 0, 0xfe};
  node.tunnel_source_v4 = Ip("192.0.2.254");
  node.has_tunnel_source_v4 = true;
  node.tunnel_source_v6 = Ip("2001:db8:ff::fe");
  node.has_tunnel_source_v6 = true;
  return node;
}

ServiceConfig Service(const char* vip, uint16_t port, ForwardingMode mode,
                      std::vector<const char*> backends) {
  ServiceConfig s;
  s.vip = Ip(vip);
  s.port = port;
  s.protocol = 6;
  s.mode = mode;
  for (const char* b : backends) {
    BackendConfig bc;
    bc.endpoint = Endpoint(Ip(b), port);
    s.backends.push_back(bc);
  }
  return s;
}

TEST(EngineSnapshot, SortsBackendsIntoCanonicalOrder) {
  auto snap = EngineSnapshot::Create(
      Node(), {Service("203.0.113.10", 80, ForwardingMode::kDr,
                       {"192.0.2.30", "192.0.2.2", "192.0.2.10"})});
  ASSERT_THAT(snap, IsOk());
  const auto& b = (*snap)->services()[0].backends;
  EXPECT_EQ(b[0].endpoint.address(), Ip("192.0.2.2"));
  EXPECT_EQ(b[1].endpoint.address(), Ip("192.0.2.10"));
  EXPECT_EQ(b[2].endpoint.address(), Ip("192.0.2.30"));
}

TEST(EngineSnapshot, DrOrTunBackendPortDifferentFromVipPortIsInvalid) {
  for (ForwardingMode mode : {ForwardingMode::kDr, ForwardingMode::kTun}) {
    ServiceConfig s = Service("203.0.113.10", 80, mode, {"192.0.2.2"});
    s.backends[0].endpoint = Endpoint(Ip("192.0.2.2"), 8080);
    EXPECT_THAT(EngineSnapshot::Create(Node(), {s}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("cannot map ports")));
  }
}

TEST(EngineSnapshot, NatAndFullNatMayMapPorts) {
  NodeConfig node = Node();
  node.local_addresses = {Ip("192.0.2.250")};
  for (ForwardingMode mode : {ForwardingMode::kNat, ForwardingMode::kFullNat}) {
    ServiceConfig s = Service("203.0.113.10", 80, mode, {"192.0.2.2"});
    s.backends[0].endpoint = Endpoint(Ip("192.0.2.2"), 8080);
    EXPECT_THAT(EngineSnapshot::Create(node, {s}), IsOk());
  }
}

TEST(EngineSnapshot, NatBackendOfTheOtherFamilyIsInvalid) {
  NodeConfig node = Node();
  node.local_addresses = {Ip("192.0.2.250"), Ip("2001:db8::250")};
  for (ForwardingMode mode : {ForwardingMode::kNat, ForwardingMode::kFullNat}) {
    EXPECT_THAT(EngineSnapshot::Create(
                    node, {Service("203.0.113.10", 80, mode, {"2001:db8::2"})}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("must have the VIP's family (no NAT64)")));
  }
}

TEST(EngineSnapshot, FullNatNeedsALocalAddressOfTheBackendFamily) {
  NodeConfig node = Node();
  node.local_addresses = {Ip("2001:db8::250")};
  EXPECT_THAT(
      EngineSnapshot::Create(
          node, {Service("203.0.113.10", 80, ForwardingMode::kFullNat,
                         {"192.0.2.2"})}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("service 203.0.113.10:80/tcp backend 192.0.2.2:80: "
                         "FULLNAT needs a local address of the backend's "
                         "family (IPv4) in local_addresses")));
  // NAT needs none.
  EXPECT_THAT(EngineSnapshot::Create(
                  node, {Service("203.0.113.10", 80, ForwardingMode::kNat,
                                 {"192.0.2.2"})}),
              IsOk());
}

TEST(EngineSnapshot, LocalAddressesAndPortRangeAreChecked) {
  NodeConfig node = Node();
  node.local_addresses = {Ip("192.0.2.250"), Ip("192.0.2.250")};
  EXPECT_THAT(EngineSnapshot::Create(node, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("local_addresses: duplicate 192.0.2.250")));
  node.local_addresses = {Ip("203.0.113.10")};
  EXPECT_THAT(EngineSnapshot::Create(
                  node, {Service("203.0.113.10", 80, ForwardingMode::kDr, {})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the VIP is also in local_addresses")));
  node = Node();
  node.local_port_min = 2000;
  node.local_port_max = 1999;
  EXPECT_THAT(EngineSnapshot::Create(node, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("local_port_min <= local_port_max")));
  node.local_port_min = 0;
  EXPECT_THAT(EngineSnapshot::Create(node, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EngineSnapshot, KnowsLocalAddressesAndNatBackendSources) {
  NodeConfig node = Node();
  node.local_addresses = {Ip("192.0.2.250")};
  ServiceConfig nat =
      Service("203.0.113.10", 80, ForwardingMode::kNat, {"192.0.2.2"});
  nat.backends[0].endpoint = Endpoint(Ip("192.0.2.2"), 8080);
  ServiceConfig any =
      Service("203.0.113.10", 0, ForwardingMode::kNat, {"192.0.2.3"});
  auto snap = EngineSnapshot::Create(node, {nat, any});
  ASSERT_THAT(snap, IsOk());
  EXPECT_TRUE((*snap)->IsLocalAddress(Ip("192.0.2.250")));
  EXPECT_FALSE((*snap)->IsLocalAddress(Ip("192.0.2.2")));
  const uint8_t b2[4] = {192, 0, 2, 2};
  const uint8_t b3[4] = {192, 0, 2, 3};
  EXPECT_TRUE((*snap)->IsNatBackendSource(b2, IpFamily::kV4, 8080, 6));
  EXPECT_FALSE((*snap)->IsNatBackendSource(b2, IpFamily::kV4, 80, 6));
  EXPECT_FALSE((*snap)->IsNatBackendSource(b2, IpFamily::kV4, 8080, 17));
  EXPECT_TRUE((*snap)->IsNatBackendSource(b3, IpFamily::kV4, 12345, 6));
  // By address and protocol only (later fragments carry no port).
  const uint8_t b4[4] = {192, 0, 2, 4};
  EXPECT_TRUE((*snap)->IsNatBackendHost(b2, IpFamily::kV4, 6));
  EXPECT_TRUE((*snap)->IsNatBackendHost(b3, IpFamily::kV4, 6));
  EXPECT_FALSE((*snap)->IsNatBackendHost(b2, IpFamily::kV4, 17));
  EXPECT_FALSE((*snap)->IsNatBackendHost(b4, IpFamily::kV4, 6));
}

TEST(EngineSnapshot, IpipNeedsTheVipFamilyGueTakesEither) {
  ServiceConfig s =
      Service("203.0.113.10", 80, ForwardingMode::kTun, {"2001:db8::2"});
  s.tunnel = TunnelType::kIpip;
  EXPECT_THAT(
      EngineSnapshot::Create(Node(), {s}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use GUE")));
  s.tunnel = TunnelType::kGue;
  EXPECT_THAT(EngineSnapshot::Create(Node(), {s}), IsOk());
  ServiceConfig s6 =
      Service("2001:db8:10::10", 80, ForwardingMode::kTun, {"192.0.2.2"});
  s6.tunnel = TunnelType::kGue;
  EXPECT_THAT(EngineSnapshot::Create(Node(), {s6}), IsOk());
}

TEST(EngineSnapshot, DrBackendOfTheOtherFamilyIsInvalid) {
  EXPECT_THAT(EngineSnapshot::Create(
                  Node(), {Service("203.0.113.10", 80, ForwardingMode::kDr,
                                   {"2001:db8::2"})}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EngineSnapshot, TunWithoutTunnelSourceOfTheBackendFamilyIsInvalid) {
  NodeConfig node = Node();
  node.has_tunnel_source_v6 = false;
  EXPECT_THAT(EngineSnapshot::Create(
                  node, {Service("2001:db8:10::10", 80, ForwardingMode::kTun,
                                 {"2001:db8::2"})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no IPv6 tunnel source")));
}

TEST(EngineSnapshot, DuplicateServiceOrBackendIsInvalid) {
  ServiceConfig s =
      Service("203.0.113.10", 80, ForwardingMode::kDr, {"192.0.2.2"});
  EXPECT_THAT(EngineSnapshot::Create(Node(), {s, s}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("duplicate service")));
  s.backends.push_back(s.backends[0]);
  EXPECT_THAT(
      EngineSnapshot::Create(Node(), {s}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
}

TEST(EngineSnapshot, ProtocolOtherThanTcpOrUdpIsInvalid) {
  ServiceConfig s =
      Service("203.0.113.10", 80, ForwardingMode::kDr, {"192.0.2.2"});
  s.protocol = 1;
  EXPECT_THAT(EngineSnapshot::Create(Node(), {s}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EngineSnapshot, MtuOutOfRangeIsInvalid) {
  NodeConfig node = Node();
  node.mtu = 500;
  EXPECT_THAT(EngineSnapshot::Create(node, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  node.mtu = 1000;
  EXPECT_THAT(EngineSnapshot::Create(
                  node, {Service("2001:db8:10::10", 80, ForwardingMode::kDr,
                                 {"2001:db8::2"})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1280")));
}

TEST(EngineSnapshot, Ipv6TunnelMustCarry1280ByteInnerPackets) {
  NodeConfig node = Node();
  node.mtu = 1300;  // 1300 - 40 (IP6IP6) < 1280.
  ServiceConfig s =
      Service("2001:db8:10::10", 80, ForwardingMode::kTun, {"2001:db8::2"});
  EXPECT_THAT(EngineSnapshot::Create(node, {s}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("minimum link MTU 1280")));
  node.mtu = 1320;
  EXPECT_THAT(EngineSnapshot::Create(node, {s}), IsOk());
}

TEST(EngineSnapshot, FindPrefersTheExactPortThenAllPorts) {
  auto snap = EngineSnapshot::Create(
      Node(), {Service("203.0.113.10", 80, ForwardingMode::kDr, {"192.0.2.2"}),
               Service("203.0.113.10", 0, ForwardingMode::kDr, {"192.0.2.3"})});
  ASSERT_THAT(snap, IsOk());
  const uint8_t vip[4] = {203, 0, 113, 10};
  const uint8_t other[4] = {203, 0, 113, 11};
  EXPECT_EQ(
      (*snap)->Find(EngineSnapshot::MakeServiceKey(vip, IpFamily::kV4, 80, 6)),
      0);
  EXPECT_EQ(
      (*snap)->Find(EngineSnapshot::MakeServiceKey(vip, IpFamily::kV4, 443, 6)),
      1);
  EXPECT_EQ(
      (*snap)->Find(EngineSnapshot::MakeServiceKey(vip, IpFamily::kV4, 80, 17)),
      -1);
  EXPECT_EQ((*snap)->Find(
                EngineSnapshot::MakeServiceKey(other, IpFamily::kV4, 80, 6)),
            -1);
  EXPECT_TRUE((*snap)->IsVip(Ip("203.0.113.10")));
  EXPECT_FALSE((*snap)->IsVip(Ip("203.0.113.11")));
}

}  // namespace
}  // namespace anylb::dataplane
