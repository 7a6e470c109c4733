// Engine tests: table-driven packet fixtures {description, input frame,
// expected verdict (+ drop reason), expected output frame}, IPv4 and IPv6,
// plus stateful scenarios (flow stickiness across snapshots, fragments, ICMP
// errors, MTU replies and their rate limit, counters, no allocation).
//
// Output frames are compared byte for byte with FrameEq and their checksums
// verified by PacketBuilder's independent VerifyChecksums.
//
// Dumping the fixtures: with LB_PCAP_OUT=/path/file.pcap in the environment
// every fixture's input frame and (when there is one) output frame are
// written there, in order, for tcpdump/Wireshark:
//   bazel test //lbnode/dataplane:engine_test
//       --test_env=LB_PCAP_OUT=/tmp/engine_fixtures.pcap   (one line)
// (or run bazel-bin/lbnode/dataplane/engine_test with the variable set).

#include "lbnode/dataplane/engine.h"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/testing/allocation_counter.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/parser.h"
#include "lbnode/dataplane/testing/packet_builder.h"
#include "lbnode/dataplane/testing/pcap_writer.h"
#include "lbnode/dataplane/testing/sample_frames.h"

namespace anylb::dataplane {
namespace {

using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::kAck;
using ::anylb::dataplane_testing::kFin;
using ::anylb::dataplane_testing::kRst;
using ::anylb::dataplane_testing::kSyn;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::dataplane_testing::ParseMac;
using ::anylb::dataplane_testing::VerifyChecksums;
using ::anylb::status_testing::IsOk;

constexpr char kRouterMac[] = "02:00:00:00:00:01";
constexpr char kNodeMac[] = "02:00:00:00:00:fe";
constexpr char kNextHopMac[] = "02:00:00:00:00:31";
constexpr size_t kHeadroom = 256;
constexpr size_t kBufferSize = 4096;
constexpr uint16_t kLocalPortMin = 20000;
constexpr uint16_t kBackendPort = 8080;  // NAT/FULLNAT backends listen here.
// A later fragment matching nothing.
constexpr DropReason kFragmentUnmatched = DropReason::kFragmentUnmatched;
const absl::Time kNow = absl::FromUnixSeconds(1700000000);

IpAddress Ip(std::string_view text) { return IpAddress::Parse(text).value(); }

// Addresses of one family (the tests' parameter).
struct Family {
  bool v6;
  std::string vip, client, router, other_host, tunnel_source;
  std::vector<std::string> backends;  // Same family as the VIP.
  std::string local;                  // FULLNAT local address.
};

Family V4() {
  return {false,
          "203.0.113.10",
          "198.51.100.1",
          "198.51.100.99",
          "203.0.113.99",
          "192.0.2.254",
          {"192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24"},
          "192.0.2.250"};
}
Family V6() {
  return {
      true,
      "2001:db8:10::10",
      "2001:db8:1::1",
      "2001:db8:1::99",
      "2001:db8:10::99",
      "2001:db8:ff::fe",
      {"2001:db8:2::21", "2001:db8:2::22", "2001:db8:2::23", "2001:db8:2::24"},
      "2001:db8:ff::250"};
}
const Family& FamilyOf(bool v6) {
  static const Family v4 = V4();
  static const Family v6f = V6();
  return v6 ? v6f : v4;
}

std::string BackendMac(size_t i) {
  return "02:00:00:00:00:2" + std::to_string(i + 1);
}

// FakeResolver resolves every address to kNextHopMac except `unresolved`.
class FakeResolver : public NextHopResolver {
 public:
  bool Resolve(const IpAddress& dst, Mac* mac) override {
    if (unresolved.count(dst) != 0) return false;
    *mac = ParseMac(kNextHopMac);
    return true;
  }
  std::set<IpAddress> unresolved;
};

NodeConfig Node() {
  NodeConfig node;
  node.mac = ParseMac(kNodeMac);
  node.tunnel_source_v4 = Ip(V4().tunnel_source);
  node.has_tunnel_source_v4 = true;
  node.tunnel_source_v6 = Ip(V6().tunnel_source);
  node.has_tunnel_source_v6 = true;
  node.mtu = 1500;
  node.local_addresses = {Ip(V4().local), Ip(V6().local)};
  node.local_port_min = kLocalPortMin;
  return node;
}

// A service on `fam`'s VIP with its first `n` backends; `backend_family`
// picks the backends' family (GUE may cross families).
ServiceConfig Service(const Family& fam, uint16_t port, uint8_t protocol,
                      ForwardingMode mode, TunnelType tunnel, size_t n = 1,
                      const Family* backend_family = nullptr) {
  const Family& bf = backend_family ? *backend_family : fam;
  ServiceConfig s;
  s.vip = Ip(fam.vip);
  s.port = port;
  s.protocol = protocol;
  s.mode = mode;
  s.tunnel = tunnel;
  for (size_t i = 0; i < n; ++i) {
    BackendConfig b;
    b.endpoint = Endpoint(Ip(bf.backends[i]), port);
    b.mac = ParseMac(BackendMac(i));
    s.backends.push_back(b);
  }
  return s;
}

EngineOptions Options() {
  EngineOptions o;
  o.flow_table.capacity = 4096;
  o.flow_table.seed = 42;
  return o;
}

// Pcap dump of every fixture, written at the end when LB_PCAP_OUT is set.
std::vector<std::vector<uint8_t>>& PcapFrames() {
  static auto* frames = new std::vector<std::vector<uint8_t>>();
  return *frames;
}

class PcapEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    const char* path = std::getenv("LB_PCAP_OUT");
    if (path == nullptr || *path == '\0') return;
    absl::Status st = dataplane_testing::WritePcapFile(path, PcapFrames());
    EXPECT_TRUE(st.ok()) << st;
  }
};
const auto* const kPcapEnvironment =
    ::testing::AddGlobalTestEnvironment(new PcapEnvironment);

// Harness: an engine over a snapshot and a buffer with headroom.
struct Harness {
  explicit Harness(std::vector<ServiceConfig> services,
                   NodeConfig node = Node(),
                   EngineOptions options = Options()) {
    auto snap = EngineSnapshot::Create(node, std::move(services));
    EXPECT_THAT(snap, IsOk());
    auto e = Engine::Create(*snap, &resolver, options);
    EXPECT_THAT(e, IsOk());
    engine = std::move(*e);
  }
  // Runs `frame` through Process; the output (for kTransmit) in `out`.
  Verdict Run(const std::vector<uint8_t>& frame, absl::Time now = kNow,
              size_t headroom = kHeadroom) {
    buffer.assign(kBufferSize, 0xa5);
    std::copy(frame.begin(), frame.end(), buffer.begin() + headroom);
    Verdict v = engine->Process(buffer, headroom, frame.size(), now);
    out.assign(buffer.begin() + v.offset, buffer.begin() + v.offset + v.length);
    PcapFrames().push_back(frame);
    if (v.action == Action::kTransmit) PcapFrames().push_back(out);
    return v;
  }
  uint32_t FlowHash(const Family& fam, uint16_t sport, uint16_t dport,
                    uint8_t proto) const {
    return engine->flow_table().Hash(scheduler::FlowKey::Make(
        Ip(fam.client), sport, Ip(fam.vip), dport, proto));
  }
  FakeResolver resolver;
  std::unique_ptr<Engine> engine;
  std::vector<uint8_t> buffer;
  std::vector<uint8_t> out;
};

// PacketBuilder helpers. L3 appends the client's IP header and a TCP or UDP
// header with a payload to `b`.
PacketBuilder& ClientIp(PacketBuilder& b, const Family& fam) {
  if (fam.v6) return b.Ipv6(fam.client, fam.vip).TrafficClass(0x28);
  return b.Ipv4(fam.client, fam.vip).Tos(0x28);
}
PacketBuilder L4(PacketBuilder b, uint8_t proto, size_t payload = 5) {
  if (proto == 6) {
    b.Tcp(40000, 80).Flags(kSyn);
  } else {
    b.Udp(40000, 80);
  }
  return b.Payload(std::string(payload, 'x'));
}
PacketBuilder ClientPacket(PacketBuilder b, const Family& fam, uint8_t proto,
                           size_t payload = 5) {
  return L4(ClientIp(b, fam), proto, payload);
}
PacketBuilder FromRouter() { return PacketBuilder().Eth(kRouterMac, kNodeMac); }
PacketBuilder ToNextHop() { return PacketBuilder().Eth(kNodeMac, kNextHopMac); }

// A NAT or FULLNAT service on VIP:80 whose first `n` backends listen on
// kBackendPort.
ServiceConfig NatService(const Family& fam, uint8_t protocol,
                         ForwardingMode mode, size_t n = 1) {
  ServiceConfig s =
      Service(fam, 80, protocol, mode, TunnelType::kIpip, n, nullptr);
  for (auto& b : s.backends) {
    b.endpoint = Endpoint(b.endpoint.address(), kBackendPort);
  }
  return s;
}

// Pkt appends an IP header src → dst (TTL/hop limit `ttl`, TOS/traffic
// class 0x28 like ClientIp) and a TCP (flags `flags`) or UDP header with a
// 5-byte payload.
PacketBuilder Pkt(PacketBuilder b, const Family& fam, const std::string& src,
                  const std::string& dst, uint16_t sport, uint16_t dport,
                  uint8_t proto, uint8_t flags = kSyn, uint8_t ttl = 64) {
  if (fam.v6) {
    b.Ipv6(src, dst).TrafficClass(0x28).HopLimit(ttl);
  } else {
    b.Ipv4(src, dst).Tos(0x28).Ttl(ttl);
  }
  if (proto == 6) {
    b.Tcp(sport, dport).Flags(flags);
  } else {
    b.Udp(sport, dport);
  }
  return b.Payload(std::string(5, 'x'));
}

// Fragments of one TCP/UDP datagram src:sport → dst:dport (TOS / traffic
// class 0x28 like Pkt, TTL `ttl`, identification `id`): its transport
// payload is FirstData(proto) bytes 'a' (in the first fragment, after the
// transport header; header + data is a multiple of 8 bytes) and kLaterData
// bytes 'b' (in the later fragment). The first fragment carries the
// transport checksum of the WHOLE datagram, as a sender's does, so a
// byte-exact comparison of a translated first fragment checks the
// incremental update against a checksum computed from scratch.
constexpr size_t kLaterData = 10;
size_t FirstData(uint8_t proto) { return proto == 6 ? 20 : 24; }
uint16_t FirstFragmentUnits(uint8_t proto) {
  return static_cast<uint16_t>(((proto == 6 ? 20 : 8) + FirstData(proto)) / 8);
}
struct Datagram {
  const Family* fam;
  std::string src, dst;
  uint16_t sport, dport;
  uint8_t proto;
  uint8_t flags = kSyn;
  uint8_t ttl = 64;
  uint32_t id = 77;

  PacketBuilder& Ip(PacketBuilder& b) const {
    if (fam->v6) return b.Ipv6(src, dst).TrafficClass(0x28).HopLimit(ttl);
    return b.Ipv4(src, dst).Tos(0x28).Ttl(ttl).Id(static_cast<uint16_t>(id));
  }
  PacketBuilder& L4(PacketBuilder& b) const {
    if (proto == 6) return b.Tcp(sport, dport).Flags(flags);
    return b.Udp(sport, dport)
        .UdpLength(static_cast<uint16_t>(8 + FirstData(proto) + kLaterData));
  }
  // The transport checksum of the whole (unfragmented) datagram.
  uint16_t WholeChecksum() const {
    PacketBuilder b;
    b.Eth(kRouterMac, kNodeMac);
    Ip(b);
    L4(b).Payload(std::string(FirstData(proto), 'a') +
                  std::string(kLaterData, 'b'));
    const std::vector<uint8_t> w = b.Build();
    const size_t at = 14 + (fam->v6 ? 40 : 20) + (proto == 6 ? 16 : 6);
    return static_cast<uint16_t>(w[at] << 8 | w[at + 1]);
  }
  std::vector<uint8_t> First(PacketBuilder b) const {
    const uint16_t check = WholeChecksum();
    Ip(b);
    if (fam->v6) {
      b.Fragment(0, true, id);
    } else {
      b.MoreFragments();
    }
    return L4(b)
        .Checksum(check)
        .Payload(std::string(FirstData(proto), 'a'))
        .Build();
  }
  std::vector<uint8_t> Later(PacketBuilder b) const {
    Ip(b);
    if (fam->v6) {
      b.Fragment(FirstFragmentUnits(proto), false, id).NextHeader(proto);
    } else {
      b.FragmentOffset(FirstFragmentUnits(proto)).Protocol(proto);
    }
    return b.Payload(std::string(kLaterData, 'b')).Build();
  }
  // The same datagram as translated: other addresses, ports, TTL.
  Datagram As(std::string new_src, std::string new_dst, uint16_t new_sport,
              uint16_t new_dport, uint8_t new_ttl) const {
    Datagram d = *this;
    d.src = std::move(new_src);
    d.dst = std::move(new_dst);
    d.sport = new_sport;
    d.dport = new_dport;
    d.ttl = new_ttl;
    return d;
  }
};

// Fixture is one row of the table.
struct Fixture {
  std::string name;
  std::function<std::vector<ServiceConfig>()> services;
  std::vector<uint8_t> input;
  Action action;
  DropReason drop_reason = DropReason::kNone;
  // The expected output frame given the flow hash (TUN uses it), or null.
  std::function<std::vector<uint8_t>(uint32_t flow_hash)> expected;
  bool to_sender = false;
  uint8_t proto = 6;
  // Frames processed first (each must be transmitted): to test hits and
  // replies of the flow they create.
  std::vector<std::vector<uint8_t>> before = {};
};

std::vector<Fixture> Fixtures(bool v6) {
  const Family& fam = FamilyOf(v6);
  const Family& other = FamilyOf(!v6);
  std::vector<Fixture> f;
  const char* tag = v6 ? "v6" : "v4";
  auto name = [&](std::string s) { return s + "_" + tag; };

  for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
    const std::string p = proto == 6 ? "tcp" : "udp";
    // DR: MACs only.
    f.push_back({name("dr_" + p),
                 [=, &fam] {
                   return std::vector<ServiceConfig>{Service(
                       fam, 80, proto, ForwardingMode::kDr, TunnelType::kIpip)};
                 },
                 ClientPacket(FromRouter(), fam, proto).Build(),
                 Action::kTransmit, DropReason::kNone,
                 [=, &fam](uint32_t) {
                   return ClientPacket(
                              PacketBuilder().Eth(kNodeMac, BackendMac(0)), fam,
                              proto)
                       .Build();
                 },
                 false, proto});
    // DR with an 802.1Q tag: the tag stays.
    f.push_back({name("dr_vlan_" + p),
                 [=, &fam] {
                   return std::vector<ServiceConfig>{Service(
                       fam, 80, proto, ForwardingMode::kDr, TunnelType::kIpip)};
                 },
                 ClientPacket(FromRouter().Vlan(100), fam, proto).Build(),
                 Action::kTransmit, DropReason::kNone,
                 [=, &fam](uint32_t) {
                   PacketBuilder b;
                   b.Eth(kNodeMac, BackendMac(0)).Vlan(100);
                   return ClientPacket(b, fam, proto).Build();
                 },
                 false, proto});
    // TUN IPIP (v4) / IP6IP6 (v6).
    f.push_back(
        {name("tun_ipip_" + p),
         [=, &fam] {
           return std::vector<ServiceConfig>{Service(
               fam, 80, proto, ForwardingMode::kTun, TunnelType::kIpip)};
         },
         ClientPacket(FromRouter(), fam, proto).Build(), Action::kTransmit,
         DropReason::kNone,
         [=, &fam](uint32_t hash) {
           PacketBuilder b;
           b.Eth(kNodeMac, kNextHopMac);
           if (fam.v6) {
             b.Ipv6(fam.tunnel_source, fam.backends[0])
                 .TrafficClass(0x28)
                 .FlowLabel(hash & 0xfffff);
           } else {
             b.Ipv4(fam.tunnel_source, fam.backends[0])
                 .Tos(0x28)
                 .DontFragment();
           }
           return ClientPacket(b, fam, proto).Build();
         },
         false, proto});
    // TUN with an 802.1Q tag: the tag stays in front of the outer header.
    f.push_back({name("tun_ipip_vlan_" + p),
                 [=, &fam] {
                   return std::vector<ServiceConfig>{
                       Service(fam, 80, proto, ForwardingMode::kTun,
                               TunnelType::kIpip)};
                 },
                 ClientPacket(FromRouter().Vlan(100, 3), fam, proto).Build(),
                 Action::kTransmit, DropReason::kNone,
                 [=, &fam](uint32_t hash) {
                   PacketBuilder b;
                   b.Eth(kNodeMac, kNextHopMac).Vlan(100, 3);
                   if (fam.v6) {
                     b.Ipv6(fam.tunnel_source, fam.backends[0])
                         .TrafficClass(0x28)
                         .FlowLabel(hash & 0xfffff);
                   } else {
                     b.Ipv4(fam.tunnel_source, fam.backends[0])
                         .Tos(0x28)
                         .DontFragment();
                   }
                   return ClientPacket(b, fam, proto).Build();
                 },
                 false, proto});
    // GUE over either outer family.
    for (const Family* outer : {&fam, &other}) {
      const std::string o = outer->v6 ? "over_v6" : "over_v4";
      f.push_back({name("tun_gue_" + o + "_" + p),
                   [=, &fam] {
                     return std::vector<ServiceConfig>{
                         Service(fam, 80, proto, ForwardingMode::kTun,
                                 TunnelType::kGue, 1, outer)};
                   },
                   ClientPacket(FromRouter(), fam, proto).Build(),
                   Action::kTransmit, DropReason::kNone,
                   [=, &fam](uint32_t hash) {
                     PacketBuilder b;
                     b.Eth(kNodeMac, kNextHopMac);
                     if (outer->v6) {
                       b.Ipv6(outer->tunnel_source, outer->backends[0])
                           .TrafficClass(0x28)
                           .FlowLabel(hash & 0xfffff);
                     } else {
                       b.Ipv4(outer->tunnel_source, outer->backends[0])
                           .Tos(0x28)
                           .DontFragment();
                     }
                     b.Udp(static_cast<uint16_t>(49152 + hash % 16384),
                           kDefaultGuePort);
                     if (!outer->v6) b.UdpChecksumZero();
                     b.Gue();
                     return ClientPacket(b, fam, proto).Build();
                   },
                   false, proto});
    }
  }
  auto dr = [&fam] {
    return std::vector<ServiceConfig>{
        Service(fam, 80, 6, ForwardingMode::kDr, TunnelType::kIpip)};
  };
  // Not for us.
  f.push_back({name("non_vip_passes"), dr,
               L4(
                   [&] {
                     PacketBuilder b = FromRouter();
                     if (fam.v6) return b.Ipv6(fam.client, fam.other_host);
                     return b.Ipv4(fam.client, fam.other_host);
                   }(),
                   6)
                   .Build(),
               Action::kPass});
  f.push_back(
      {name("arp_passes"), dr,
       FromRouter().EtherType(0x0806).Payload(std::string(28, '\0')).Build(),
       Action::kPass});
  f.push_back({name("ping_to_vip_passes"), dr,
               [&] {
                 PacketBuilder b = FromRouter();
                 if (fam.v6) {
                   b.Ipv6(fam.client, fam.vip).IcmpV6(128, 0);
                 } else {
                   b.Ipv4(fam.client, fam.vip).IcmpV4(8, 0);
                 }
                 return b.IcmpRest(0x00010001).Build();
               }(),
               Action::kPass});
  // VIP, but a port or protocol we do not serve.
  f.push_back({name("vip_wrong_port_drops_no_service"), dr,
               [&] {
                 PacketBuilder b = FromRouter();
                 ClientIp(b, fam).Tcp(40000, 443).Flags(kSyn);
                 return b.Build();
               }(),
               Action::kDrop, DropReason::kNoService});
  f.push_back({name("vip_wrong_protocol_drops_no_service"), dr,
               ClientPacket(FromRouter(), fam, 17).Build(), Action::kDrop,
               DropReason::kNoService});
  // All-ports service takes any port.
  f.push_back({name("all_ports_service_takes_any_port"),
               [&fam] {
                 return std::vector<ServiceConfig>{Service(
                     fam, 0, 6, ForwardingMode::kDr, TunnelType::kIpip)};
               },
               ClientPacket(FromRouter(), fam, 6).Build(), Action::kTransmit,
               DropReason::kNone,
               [&fam](uint32_t) {
                 return ClientPacket(
                            PacketBuilder().Eth(kNodeMac, BackendMac(0)), fam,
                            6)
                     .Build();
               }});
  // No usable backend.
  f.push_back({name("all_weights_zero_drops_no_backend"),
               [&fam] {
                 auto s = Service(fam, 80, 6, ForwardingMode::kDr,
                                  TunnelType::kIpip, 2);
                 for (auto& b : s.backends) b.weight = 0;
                 return std::vector<ServiceConfig>{s};
               },
               ClientPacket(FromRouter(), fam, 6).Build(), Action::kDrop,
               DropReason::kNoBackend});
  f.push_back({name("no_backends_drops_no_backend"),
               [&fam] {
                 auto s = Service(fam, 80, 6, ForwardingMode::kDr,
                                  TunnelType::kIpip, 0);
                 return std::vector<ServiceConfig>{s};
               },
               ClientPacket(FromRouter(), fam, 6).Build(), Action::kDrop,
               DropReason::kNoBackend});
  // MTU: inner 1500 + 20/40 > 1500.
  auto tun = [&fam] {
    return std::vector<ServiceConfig>{
        Service(fam, 80, 6, ForwardingMode::kTun, TunnelType::kIpip)};
  };
  const size_t big_payload = fam.v6 ? 1440 : 1460;
  std::vector<uint8_t> big = [&] {
    PacketBuilder b = FromRouter();
    ClientIp(b, fam);
    if (!fam.v6) b.DontFragment();
    return L4(b, 6, big_payload).Build();
  }();
  f.push_back(
      {name("tun_too_big_replies_icmp"), tun, big, Action::kTransmit,
       DropReason::kNone,
       [&fam, big](uint32_t) {
         const size_t quote = fam.v6 ? 1232 : 548;
         std::vector<uint8_t> q(big.begin() + 14, big.begin() + 14 + quote);
         PacketBuilder b;
         b.Eth(kNodeMac, kRouterMac);
         if (fam.v6) {
           b.Ipv6(fam.vip, fam.client)
               .HopLimit(64)
               .IcmpV6(2, 0)
               .IcmpRest(1500 - 40);
         } else {
           b.Ipv4(fam.vip, fam.client).Ttl(64).IcmpV4(3, 4).IcmpRest(1500 - 20);
         }
         return b.Embed(q).Build();
       },
       true});
  if (!fam.v6) {
    f.push_back({name("tun_too_big_without_df_drops"), tun,
                 [&] {
                   PacketBuilder b = FromRouter();
                   ClientIp(b, fam);
                   return L4(b, 6, big_payload).Build();
                 }(),
                 Action::kDrop, DropReason::kMtuExceeded});
  }
  // The same size fits DR (no overhead).
  f.push_back({name("dr_full_size_fits"), dr, big, Action::kTransmit,
               DropReason::kNone, [&fam, big](uint32_t) {
                 std::vector<uint8_t> e = big;
                 auto node = ParseMac(kNodeMac);
                 auto be = ParseMac(BackendMac(0));
                 std::copy(be.begin(), be.end(), e.begin());
                 std::copy(node.begin(), node.end(), e.begin() + 6);
                 return e;
               }});
  // Unresolved next hop.
  f.push_back({name("tun_unresolved_next_hop_drops_no_neighbor"),
               [&fam] {
                 auto s = Service(fam, 80, 6, ForwardingMode::kTun,
                                  TunnelType::kIpip);
                 // 2001:db8:2::99 / 192.0.2.99 is unresolved by the harness.
                 s.backends[0].endpoint =
                     Endpoint(Ip(fam.v6 ? "2001:db8:2::99" : "192.0.2.99"), 80);
                 return std::vector<ServiceConfig>{s};
               },
               ClientPacket(FromRouter(), fam, 6).Build(), Action::kDrop,
               DropReason::kNoNeighbor});
  // DR with no configured MAC: the neighbour table's.
  f.push_back(
      {name("dr_mac_from_neighbour_table"),
       [&fam] {
         auto s = Service(fam, 80, 6, ForwardingMode::kDr, TunnelType::kIpip);
         s.backends[0].mac = Mac{};
         return std::vector<ServiceConfig>{s};
       },
       ClientPacket(FromRouter(), fam, 6).Build(), Action::kTransmit,
       DropReason::kNone,
       [&fam](uint32_t) { return ClientPacket(ToNextHop(), fam, 6).Build(); }});
  f.push_back({name("dr_unresolved_neighbour_drops_no_neighbor"),
               [&fam] {
                 auto s = Service(fam, 80, 6, ForwardingMode::kDr,
                                  TunnelType::kIpip);
                 s.backends[0].endpoint =
                     Endpoint(Ip(fam.v6 ? "2001:db8:2::99" : "192.0.2.99"), 80);
                 s.backends[0].mac = Mac{};
                 return std::vector<ServiceConfig>{s};
               },
               ClientPacket(FromRouter(), fam, 6).Build(), Action::kDrop,
               DropReason::kNoNeighbor});

  // NAT and FULLNAT: miss, hit, reply, reply without a flow, TTL expiry.
  const std::string& backend = fam.backends[0];
  for (ForwardingMode mode : {ForwardingMode::kNat, ForwardingMode::kFullNat}) {
    const bool full = mode == ForwardingMode::kFullNat;
    const std::string m = full ? "fullnat_" : "nat_";
    // What the backend sees as the client: the client, or local:port.
    const std::string peer = full ? fam.local : fam.client;
    const uint16_t peer_port = full ? kLocalPortMin : 40000;
    for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
      const std::string p = proto == 6 ? "tcp" : "udp";
      auto services = [=, &fam] {
        return std::vector<ServiceConfig>{NatService(fam, proto, mode)};
      };
      const std::vector<uint8_t> syn =
          Pkt(FromRouter(), fam, fam.client, fam.vip, 40000, 80, proto).Build();
      const std::vector<uint8_t> ack =
          Pkt(FromRouter(), fam, fam.client, fam.vip, 40000, 80, proto, kAck)
              .Build();
      const std::vector<uint8_t> reply =
          Pkt(PacketBuilder().Eth(BackendMac(0), kNodeMac), fam, backend, peer,
              kBackendPort, peer_port, proto, kSyn | kAck)
              .Build();
      f.push_back({name(m + "miss_" + p), services, syn, Action::kTransmit,
                   DropReason::kNone,
                   [=, &fam](uint32_t) {
                     return Pkt(ToNextHop(), fam, peer, backend, peer_port,
                                kBackendPort, proto, kSyn, 63)
                         .Build();
                   },
                   false, proto});
      f.push_back({name(m + "hit_" + p),
                   services,
                   ack,
                   Action::kTransmit,
                   DropReason::kNone,
                   [=, &fam](uint32_t) {
                     return Pkt(ToNextHop(), fam, peer, backend, peer_port,
                                kBackendPort, proto, kAck, 63)
                         .Build();
                   },
                   false,
                   proto,
                   {syn}});
      f.push_back({name(m + "reply_" + p),
                   services,
                   reply,
                   Action::kTransmit,
                   DropReason::kNone,
                   [=, &fam](uint32_t) {
                     return Pkt(ToNextHop(), fam, fam.vip, fam.client, 80,
                                40000, proto, kSyn | kAck, 63)
                         .Build();
                   },
                   false,
                   proto,
                   {syn}});
      f.push_back({name(m + "reply_without_flow_drops_no_flow_" + p), services,
                   reply, Action::kDrop, DropReason::kNoFlow, nullptr, false,
                   proto});
      f.push_back({name(m + "ttl_1_drops_ttl_exceeded_" + p), services,
                   Pkt(FromRouter(), fam, fam.client, fam.vip, 40000, 80, proto,
                       kSyn, 1)
                       .Build(),
                   Action::kDrop, DropReason::kTtlExceeded, nullptr, false,
                   proto});
      f.push_back(
          {name(m + "reply_ttl_1_drops_ttl_exceeded_" + p),
           services,
           Pkt(PacketBuilder().Eth(BackendMac(0), kNodeMac), fam, backend, peer,
               kBackendPort, peer_port, proto, kSyn | kAck, 1)
               .Build(),
           Action::kDrop,
           DropReason::kTtlExceeded,
           nullptr,
           false,
           proto,
           {syn}});
    }
    // Fragments (no reassembly): the first is translated like a whole
    // packet and recorded; later ones get its addresses. Both directions.
    for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
      const std::string p = proto == 6 ? "tcp" : "udp";
      auto services = [=, &fam] {
        return std::vector<ServiceConfig>{NatService(fam, proto, mode)};
      };
      const Datagram in{&fam, fam.client, fam.vip, 40000, 80, proto};
      const Datagram fwd = in.As(peer, backend, peer_port, kBackendPort, 63);
      const Datagram rep{&fam,  backend, peer, kBackendPort, peer_port,
                         proto, kAck,    64,   4242};
      const Datagram back = rep.As(fam.vip, fam.client, 80, 40000, 63);
      const PacketBuilder from_backend =
          PacketBuilder().Eth(BackendMac(0), kNodeMac);
      const std::vector<uint8_t> syn =
          Pkt(FromRouter(), fam, fam.client, fam.vip, 40000, 80, proto).Build();
      f.push_back({name(m + "first_fragment_" + p), services,
                   in.First(FromRouter()), Action::kTransmit, DropReason::kNone,
                   [=](uint32_t) { return fwd.First(ToNextHop()); }, false,
                   proto});
      f.push_back({name(m + "later_fragment_" + p),
                   services,
                   in.Later(FromRouter()),
                   Action::kTransmit,
                   DropReason::kNone,
                   [=](uint32_t) { return fwd.Later(ToNextHop()); },
                   false,
                   proto,
                   {in.First(FromRouter())}});
      f.push_back({name(m + "later_fragment_before_first_drops_" + p), services,
                   in.Later(FromRouter()), Action::kDrop, kFragmentUnmatched,
                   nullptr, false, proto});
      Datagram other = in;
      other.id = 78;
      f.push_back({name(m + "later_fragment_of_another_datagram_drops_" + p),
                   services,
                   other.Later(FromRouter()),
                   Action::kDrop,
                   kFragmentUnmatched,
                   nullptr,
                   false,
                   proto,
                   {in.First(FromRouter())}});
      f.push_back({name(m + "reply_first_fragment_" + p),
                   services,
                   rep.First(from_backend),
                   Action::kTransmit,
                   DropReason::kNone,
                   [=](uint32_t) { return back.First(ToNextHop()); },
                   false,
                   proto,
                   {syn}});
      f.push_back({name(m + "reply_later_fragment_" + p),
                   services,
                   rep.Later(from_backend),
                   Action::kTransmit,
                   DropReason::kNone,
                   [=](uint32_t) { return back.Later(ToNextHop()); },
                   false,
                   proto,
                   {syn, rep.First(from_backend)}});
      f.push_back({name(m + "reply_later_fragment_before_first_drops_" + p),
                   services,
                   rep.Later(from_backend),
                   Action::kDrop,
                   kFragmentUnmatched,
                   nullptr,
                   false,
                   proto,
                   {syn}});
      Datagram low_ttl = in;
      low_ttl.ttl = 1;
      f.push_back({name(m + "later_fragment_ttl_1_drops_ttl_exceeded_" + p),
                   services,
                   low_ttl.Later(FromRouter()),
                   Action::kDrop,
                   DropReason::kTtlExceeded,
                   nullptr,
                   false,
                   proto,
                   {in.First(FromRouter())}});
    }
    // Unresolved backend: dropped, frame unchanged (checked for every drop).
    f.push_back({name(m + "unresolved_backend_drops_no_neighbor"),
                 [=, &fam] {
                   auto s = NatService(fam, 6, mode);
                   s.backends[0].endpoint = Endpoint(
                       Ip(fam.v6 ? "2001:db8:2::99" : "192.0.2.99"), 8080);
                   return std::vector<ServiceConfig>{s};
                 },
                 ClientPacket(FromRouter(), fam, 6).Build(), Action::kDrop,
                 DropReason::kNoNeighbor});
    // A backend port of 0 keeps the client's destination port.
    f.push_back(
        {name(m + "backend_port_0_keeps_the_port"),
         [=, &fam] {
           auto s = NatService(fam, 6, mode);
           s.port = 0;
           s.backends[0].endpoint =
               Endpoint(s.backends[0].endpoint.address(), 0);
           return std::vector<ServiceConfig>{s};
         },
         Pkt(FromRouter(), fam, fam.client, fam.vip, 40000, 443, 6).Build(),
         Action::kTransmit, DropReason::kNone,
         [=, &fam](uint32_t) {
           return Pkt(ToNextHop(), fam, peer, backend, peer_port, 443, 6, kSyn,
                      63)
               .Build();
         }});
    // Something else from the backend's address (another port) is the
    // kernel's.
    f.push_back(
        {name(m + "backend_other_traffic_passes"),
         [=, &fam] {
           return std::vector<ServiceConfig>{NatService(fam, 6, mode)};
         },
         Pkt(FromRouter(), fam, backend, fam.other_host, 22, 50000, 6, kAck)
             .Build(),
         Action::kPass});
  }
  // IPv4 UDP checksum 0 ("none") stays 0 through both translations.
  if (!fam.v6) {
    for (ForwardingMode mode :
         {ForwardingMode::kNat, ForwardingMode::kFullNat}) {
      const bool full = mode == ForwardingMode::kFullNat;
      const std::string peer = full ? fam.local : fam.client;
      const uint16_t peer_port = full ? kLocalPortMin : 40000;
      f.push_back({name(std::string(full ? "fullnat" : "nat") +
                        "_udp_checksum_zero_stays_zero"),
                   [=, &fam] {
                     return std::vector<ServiceConfig>{
                         NatService(fam, 17, mode)};
                   },
                   Pkt(FromRouter(), fam, fam.client, fam.vip, 40000, 80, 17)
                       .UdpChecksumZero()
                       .Build(),
                   Action::kTransmit, DropReason::kNone,
                   [=, &fam](uint32_t) {
                     return Pkt(ToNextHop(), fam, peer, backend, peer_port,
                                kBackendPort, 17, 0, 63)
                         .UdpChecksumZero()
                         .Build();
                   },
                   false, 17});
    }
  }
  return f;
}

struct FixtureParam {
  bool v6;
  size_t index;
};

void PrintTo(const FixtureParam& p, std::ostream* os) {
  *os << Fixtures(p.v6)[p.index].name;
}

class EngineFixtureTest : public ::testing::TestWithParam<FixtureParam> {};

TEST_P(EngineFixtureTest, ProducesTheExpectedVerdictAndFrame) {
  const Fixture fx = Fixtures(GetParam().v6)[GetParam().index];
  Harness h(fx.services());
  h.resolver.unresolved = {Ip("192.0.2.99"), Ip("2001:db8:2::99")};
  for (const auto& frame : fx.before) {
    ASSERT_EQ(h.Run(frame).action, Action::kTransmit);
  }
  const uint64_t drops_before = h.engine->counters().drop_packets;
  const Verdict v = h.Run(fx.input);
  EXPECT_EQ(v.action, fx.action) << fx.name;
  EXPECT_EQ(v.drop_reason, fx.drop_reason)
      << DropReasonName(v.drop_reason) << " vs "
      << DropReasonName(fx.drop_reason);
  EXPECT_EQ(v.to_sender, fx.to_sender);
  if (fx.action == Action::kDrop) {
    EXPECT_EQ(h.engine->counters().drops_for(fx.drop_reason), 1u);
    EXPECT_EQ(h.engine->counters().drop_packets, drops_before + 1);
    EXPECT_THAT(h.out, FrameEq(fx.input));  // Dropped frames are unchanged.
  }
  if (fx.action == Action::kPass) {
    EXPECT_EQ(h.engine->counters().pass_packets, 1u);
    EXPECT_THAT(h.out, FrameEq(fx.input));  // Untouched.
  }
  if (fx.expected) {
    const Family& fam = FamilyOf(GetParam().v6);
    const uint32_t hash = h.FlowHash(fam, 40000, 80, fx.proto);
    EXPECT_THAT(h.out, FrameEq(fx.expected(hash)));
    EXPECT_THAT(VerifyChecksums(h.out), IsOk());
  }
}

std::vector<FixtureParam> AllFixtures() {
  std::vector<FixtureParam> out;
  for (bool v6 : {false, true}) {
    for (size_t i = 0; i < Fixtures(v6).size(); ++i) out.push_back({v6, i});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    Table, EngineFixtureTest, ::testing::ValuesIn(AllFixtures()),
    [](const ::testing::TestParamInfo<FixtureParam>& info) {
      return Fixtures(info.param.v6)[info.param.index].name;
    });

TEST(Engine, EveryMalformedSampleFrameDropsWithItsParserReason) {
  Harness h({Service(V4(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip)});
  uint64_t drops = 0;
  for (const auto& sample : dataplane_testing::MalformedSampleFrames()) {
    const DropReason want = Parse(sample.frame).drop_reason;
    ASSERT_NE(want, DropReason::kNone) << sample.name;
    const uint64_t before = h.engine->counters().drops_for(want);
    const Verdict v = h.Run(sample.frame);
    EXPECT_EQ(v.action, Action::kDrop) << sample.name;
    EXPECT_EQ(v.drop_reason, want) << sample.name;
    EXPECT_EQ(h.engine->counters().drops_for(want), before + 1) << sample.name;
    ++drops;
  }
  EXPECT_EQ(h.engine->counters().drop_packets, drops);
  EXPECT_GT(drops, 0u);
}

class EngineFamilyTest : public ::testing::TestWithParam<bool> {
 protected:
  const Family& fam() const { return FamilyOf(GetParam()); }
  // A TCP packet from client address index `c`, source port `sport`.
  std::vector<uint8_t> From(int c, uint16_t sport, uint8_t flags) const {
    PacketBuilder b = FromRouter();
    const std::string client = fam().v6
                                   ? "2001:db8:1::" + std::to_string(100 + c)
                                   : "198.51.100." + std::to_string(100 + c);
    if (fam().v6) {
      b.Ipv6(client, fam().vip);
    } else {
      b.Ipv4(client, fam().vip);
    }
    return b.Tcp(sport, 80).Flags(flags).Build();
  }
  // Index of the backend whose MAC the DR output carries.
  static int BackendOf(const std::vector<uint8_t>& out) {
    for (int i = 0; i < 4; ++i) {
      auto mac = ParseMac(BackendMac(i));
      if (std::equal(mac.begin(), mac.end(), out.begin())) return i;
    }
    return -1;
  }
};

INSTANTIATE_TEST_SUITE_P(Families, EngineFamilyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "V6" : "V4";
                         });

TEST_P(EngineFamilyTest, ExistingFlowKeepsItsBackendWhenItsWeightGoesToZero) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  Harness h(services);
  std::map<int, int> backend_of_flow;
  for (int c = 0; c < 64; ++c) {
    ASSERT_EQ(h.Run(From(c, 1000, kSyn)).action, Action::kTransmit);
    backend_of_flow[c] = BackendOf(h.out);
    ASSERT_GE(backend_of_flow[c], 0);
  }
  const int chosen = backend_of_flow[0];
  // Quiesce the chosen backend.
  services[0].backends[chosen].weight = 0;
  auto snap = EngineSnapshot::Create(Node(), services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  // Existing flows continue, on their backends.
  for (int c = 0; c < 64; ++c) {
    ASSERT_EQ(h.Run(From(c, 1000, kAck)).action, Action::kTransmit);
    EXPECT_EQ(BackendOf(h.out), backend_of_flow[c]) << c;
  }
  // New flows avoid it.
  for (int c = 0; c < 64; ++c) {
    ASSERT_EQ(h.Run(From(c, 2000, kSyn)).action, Action::kTransmit);
    EXPECT_NE(BackendOf(h.out), chosen) << c;
  }
  // Counts carried over: 64 flows on the old set plus 64 new ones.
  uint64_t flows = 0;
  for (const auto& b : h.engine->backends(0)) flows += b.active + b.inactive;
  EXPECT_EQ(flows, 128u);
  EXPECT_EQ(h.engine->counters().flows_rescheduled, 0u);
}

TEST_P(EngineFamilyTest, UnavailableBackendIsSkippedOnlyForItsOwnFlows) {
  // A backend this node cannot reach (its health checks fail here while the
  // fleet counts it up) keeps its Maglev slots: flows hashed to another
  // backend go exactly where a node that reaches every backend sends them,
  // and only the unreachable backend's flows fall back.
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  ASSERT_EQ(services[0].scheduler.kind, scheduler::SchedulerKind::kMh);
  Harness all(services);
  const int unreachable = 2;
  services[0].backends[unreachable].available = false;
  Harness isolated(services);
  int moved = 0;
  for (int f = 0; f < 256; ++f) {
    const int c = f % 64;
    const uint16_t sport = static_cast<uint16_t>(1000 + f / 64);
    ASSERT_EQ(all.Run(From(c, sport, kSyn)).action, Action::kTransmit);
    ASSERT_EQ(isolated.Run(From(c, sport, kSyn)).action, Action::kTransmit);
    const int reference = BackendOf(all.out);
    const int picked = BackendOf(isolated.out);
    ASSERT_GE(reference, 0);
    EXPECT_NE(picked, unreachable) << f;
    if (reference == unreachable) {
      ++moved;
    } else {
      EXPECT_EQ(picked, reference) << f;
    }
  }
  EXPECT_GT(moved, 0);  // 256 flows over 4 backends: some hash to it.
}

// Sets service 0's backend `b` to weight 0 (a health check's inhibit) in a
// new snapshot.
void Inhibit(Harness& h, std::vector<ServiceConfig>& services, int b) {
  services[0].backends[b].weight = 0;
  auto snap = EngineSnapshot::Create(Node(), services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
}

TEST_P(EngineFamilyTest, NewConnectionOnAClosedFlowsTupleIsScheduledAfresh) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  Harness h(services);
  ASSERT_EQ(h.Run(From(0, 1000, kSyn)).action, Action::kTransmit);
  const int first = BackendOf(h.out);
  ASSERT_EQ(h.Run(From(0, 1000, kAck)).action, Action::kTransmit);
  ASSERT_EQ(h.Run(From(0, 1000, kFin | kAck)).action, Action::kTransmit);
  // The server went down (inhibit: weight 0, the flow stays in the table).
  Inhibit(h, services, first);
  // The client reuses its port for a new connection: it must not go to the
  // inhibited server.
  ASSERT_EQ(h.Run(From(0, 1000, kSyn)).action, Action::kTransmit);
  EXPECT_NE(BackendOf(h.out), first);
  EXPECT_EQ(h.engine->counters().flows_reused, 1u);
  // The new connection keeps its new backend.
  const int second = BackendOf(h.out);
  ASSERT_EQ(h.Run(From(0, 1000, kAck)).action, Action::kTransmit);
  EXPECT_EQ(BackendOf(h.out), second);
  EXPECT_EQ(h.engine->counters().flows_reused, 1u);
}

TEST_P(EngineFamilyTest, ReusedTupleOfAHealthyBackendStaysWithMaglevsChoice) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  Harness h(services);
  ASSERT_EQ(h.Run(From(1, 1000, kSyn)).action, Action::kTransmit);
  const int first = BackendOf(h.out);
  ASSERT_EQ(h.Run(From(1, 1000, kAck)).action, Action::kTransmit);
  ASSERT_EQ(h.Run(From(1, 1000, kRst)).action, Action::kTransmit);
  ASSERT_EQ(h.Run(From(1, 1000, kSyn)).action, Action::kTransmit);
  EXPECT_EQ(BackendOf(h.out), first);  // Same table, same hash.
  EXPECT_EQ(h.engine->counters().flows_reused, 1u);
  uint64_t flows = 0;
  for (const auto& b : h.engine->backends(0)) flows += b.active + b.inactive;
  EXPECT_EQ(flows, 1u);  // The old flow's count went with it.
}

TEST_P(EngineFamilyTest, RetransmittedSynKeepsItsBackendUnlessItIsInhibited) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  Harness h(services);
  ASSERT_EQ(h.Run(From(2, 1000, kSyn)).action, Action::kTransmit);
  const int first = BackendOf(h.out);
  ASSERT_EQ(h.Run(From(2, 1000, kSyn)).action, Action::kTransmit);
  EXPECT_EQ(BackendOf(h.out), first);
  EXPECT_EQ(h.engine->counters().flows_reused, 0u);
  Inhibit(h, services, first);
  ASSERT_EQ(h.Run(From(2, 1000, kSyn)).action, Action::kTransmit);
  EXPECT_NE(BackendOf(h.out), first);
  EXPECT_EQ(h.engine->counters().flows_reused, 1u);
}

TEST_P(EngineFamilyTest, SynInsideAnEstablishedFlowKeepsItsBackend) {
  // Inhibit keeps established flows where they are, whatever they carry.
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  Harness h(services);
  ASSERT_EQ(h.Run(From(3, 1000, kSyn)).action, Action::kTransmit);
  const int first = BackendOf(h.out);
  ASSERT_EQ(h.Run(From(3, 1000, kAck)).action, Action::kTransmit);
  Inhibit(h, services, first);
  ASSERT_EQ(h.Run(From(3, 1000, kSyn)).action, Action::kTransmit);
  EXPECT_EQ(BackendOf(h.out), first);
  EXPECT_EQ(h.engine->counters().flows_reused, 0u);
}

TEST_P(EngineFamilyTest, FlowWhoseBackendLeftIsRescheduled) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)};
  Harness h(services);
  ASSERT_EQ(h.Run(From(0, 1000, kSyn)).action, Action::kTransmit);
  const int chosen = BackendOf(h.out);
  services[0].backends.erase(services[0].backends.begin() + chosen);
  auto snap = EngineSnapshot::Create(Node(), services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  ASSERT_EQ(h.Run(From(0, 1000, kAck)).action, Action::kTransmit);
  EXPECT_NE(BackendOf(h.out), chosen);
  EXPECT_EQ(h.engine->counters().flows_rescheduled, 1u);
}

// Counters of the service on VIP:`port`/TCP and of its backend `endpoint`
// (zeros and false when absent), found by key, not by snapshot index.
struct CountersOf {
  bool found = false;
  TrafficCounters service;
  TrafficCounters backend;
};
CountersOf FindCounters(const Engine& engine, const Family& fam, uint16_t port,
                        const Endpoint& endpoint) {
  CountersOf out;
  const IpAddress vip = Ip(fam.vip);
  const int s = engine.snapshot().Find(EngineSnapshot::MakeServiceKey(
      vip.bytes().data(), vip.family(), port, 6));
  if (s < 0) return out;
  out.service = engine.service_counters(s);
  const auto& backends = engine.snapshot().services()[s].backends;
  for (size_t b = 0; b < backends.size(); ++b) {
    if (backends[b].endpoint == endpoint) {
      out.found = true;
      out.backend = engine.backend_counters(s, b);
    }
  }
  return out;
}

TEST_P(EngineFamilyTest, TrafficCountersSurviveSnapshotChanges) {
  ServiceConfig web =
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4);
  const std::vector<BackendConfig> all = web.backends;
  web.backends.resize(2);
  Harness h({web});
  constexpr int kFlows = 32;
  for (int c = 0; c < kFlows; ++c) {
    ASSERT_EQ(h.Run(From(c, 1000, kSyn)).action, Action::kTransmit);
  }
  const Endpoint e0 = all[0].endpoint, e1 = all[1].endpoint,
                 e2 = all[2].endpoint;
  const CountersOf b0 = FindCounters(*h.engine, fam(), 80, e0);
  const CountersOf b1 = FindCounters(*h.engine, fam(), 80, e1);
  ASSERT_TRUE(b0.found && b1.found);
  ASSERT_GT(b0.backend.packets, 0u);
  ASSERT_GT(b1.backend.packets, 0u);
  ASSERT_EQ(b0.backend.packets + b1.backend.packets, uint64_t{kFlows});
  ASSERT_EQ(b0.service.packets, uint64_t{kFlows});
  ASSERT_EQ(b0.service.new_flows, uint64_t{kFlows});

  // An added backend, a changed weight and a new service in front (the
  // snapshot indices move): the counters carry over by key and endpoint.
  ServiceConfig other =
      Service(fam(), 79, 6, ForwardingMode::kDr, TunnelType::kIpip, 1);
  web.backends = {all[0], all[1], all[2]};
  web.backends[0].weight = 7;
  auto snap = EngineSnapshot::Create(Node(), {other, web});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  CountersOf now0 = FindCounters(*h.engine, fam(), 80, e0);
  CountersOf now1 = FindCounters(*h.engine, fam(), 80, e1);
  CountersOf now2 = FindCounters(*h.engine, fam(), 80, e2);
  ASSERT_TRUE(now0.found && now1.found && now2.found);
  EXPECT_EQ(now0.service.packets, uint64_t{kFlows});
  EXPECT_EQ(now0.service.bytes, b0.service.bytes);
  EXPECT_EQ(now0.service.new_flows, uint64_t{kFlows});
  EXPECT_EQ(now0.backend.packets, b0.backend.packets);
  EXPECT_EQ(now0.backend.bytes, b0.backend.bytes);
  EXPECT_EQ(now0.backend.new_flows, b0.backend.new_flows);
  EXPECT_EQ(now1.backend.packets, b1.backend.packets);
  EXPECT_EQ(now2.backend.packets, 0u);
  EXPECT_EQ(FindCounters(*h.engine, fam(), 79, all[0].endpoint).service.packets,
            0u);
  // Traffic on the existing flows continues the counts.
  for (int c = 0; c < kFlows; ++c) {
    ASSERT_EQ(h.Run(From(c, 1000, kAck)).action, Action::kTransmit);
  }
  now0 = FindCounters(*h.engine, fam(), 80, e0);
  now1 = FindCounters(*h.engine, fam(), 80, e1);
  EXPECT_EQ(now0.service.packets, uint64_t{2 * kFlows});
  EXPECT_EQ(now0.service.new_flows, uint64_t{kFlows});
  EXPECT_EQ(now0.backend.packets, 2 * b0.backend.packets);
  EXPECT_EQ(now1.backend.packets, 2 * b1.backend.packets);

  // A removed backend's counters go with it; re-added, it starts at 0.
  web.backends = {all[0], all[2]};
  snap = EngineSnapshot::Create(Node(), {other, web});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  EXPECT_FALSE(FindCounters(*h.engine, fam(), 80, e1).found);
  EXPECT_EQ(FindCounters(*h.engine, fam(), 80, e0).backend.packets,
            2 * b0.backend.packets);
  web.backends = {all[0], all[1], all[2]};
  snap = EngineSnapshot::Create(Node(), {other, web});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  now1 = FindCounters(*h.engine, fam(), 80, e1);
  ASSERT_TRUE(now1.found);
  EXPECT_EQ(now1.backend.packets, 0u);
  EXPECT_EQ(now1.backend.bytes, 0u);
  EXPECT_EQ(now1.backend.new_flows, 0u);
  EXPECT_EQ(FindCounters(*h.engine, fam(), 80, e0).service.packets,
            uint64_t{2 * kFlows});

  // A removed service's counters go with it; re-added, it starts at 0.
  snap = EngineSnapshot::Create(Node(), {other});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  snap = EngineSnapshot::Create(Node(), {other, web});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  const CountersOf fresh = FindCounters(*h.engine, fam(), 80, e0);
  EXPECT_EQ(fresh.service.packets, 0u);
  EXPECT_EQ(fresh.backend.packets, 0u);
}

TEST_P(EngineFamilyTest, FlowCountsFollowTcpStateAndTableRemovals) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip)});
  h.Run(From(0, 1000, kSyn));
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 1u);
  EXPECT_EQ(h.engine->backends(0)[0].active, 0u);
  h.Run(From(0, 1000, kAck));  // SYN_RECV + ACK → ESTABLISHED.
  EXPECT_EQ(h.engine->backends(0)[0].active, 1u);
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 0u);
  EXPECT_EQ(h.engine->service_counters(0).packets, 2u);
  EXPECT_EQ(h.engine->service_counters(0).new_flows, 1u);
  EXPECT_EQ(h.engine->backend_counters(0, 0).packets, 2u);
  // Expiry tells the engine, which uncounts the flow.
  h.engine->flow_table().ExpireSome(kNow + absl::Hours(1), 100);
  EXPECT_EQ(h.engine->backends(0)[0].active, 0u);
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 0u);
}

TEST_P(EngineFamilyTest, AllFragmentsOfADatagramGoToOneBackend) {
  Harness h(
      {Service(fam(), 53, 17, ForwardingMode::kDr, TunnelType::kIpip, 4)});
  std::set<int> used;
  for (int c = 0; c < 32; ++c) {
    const std::string client = fam().v6
                                   ? "2001:db8:1::" + std::to_string(100 + c)
                                   : "198.51.100." + std::to_string(100 + c);
    PacketBuilder first = FromRouter();
    PacketBuilder later = FromRouter();
    if (fam().v6) {
      first.Ipv6(client, fam().vip).Fragment(0, true, 7000 + c);
      later.Ipv6(client, fam().vip).Fragment(3, false, 7000 + c).NextHeader(17);
    } else {
      first.Ipv4(client, fam().vip).Id(7000 + c).MoreFragments();
      later.Ipv4(client, fam().vip).Id(7000 + c).FragmentOffset(3).Protocol(17);
    }
    first.Udp(5353, 53).UdpLength(8 + 24 + 10).Payload(std::string(16, 'a'));
    later.Payload(std::string(10, 'b'));
    ASSERT_EQ(h.Run(first.Build()).action, Action::kTransmit) << c;
    const int b = BackendOf(h.out);
    ASSERT_EQ(h.Run(later.Build()).action, Action::kTransmit) << c;
    EXPECT_EQ(BackendOf(h.out), b) << c;
    used.insert(b);
  }
  EXPECT_GT(used.size(), 1u);  // The test would notice a constant answer.
}

TEST_P(EngineFamilyTest, LaterFragmentWithoutItsFirstDropsUnmatched) {
  Harness h({Service(fam(), 53, 17, ForwardingMode::kDr, TunnelType::kIpip)});
  PacketBuilder later = FromRouter();
  if (fam().v6) {
    later.Ipv6(fam().client, fam().vip).Fragment(3, false, 1).NextHeader(17);
  } else {
    later.Ipv4(fam().client, fam().vip).Id(1).FragmentOffset(3).Protocol(17);
  }
  const Verdict v = h.Run(later.Payload("later").Build());
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.drop_reason, kFragmentUnmatched);
  EXPECT_EQ(h.engine->counters().fragments_unmatched, 1u);
}

// An ICMP error from a router between client and director, addressed to the
// VIP, quoting a packet from the VIP:80 to the client:40000.
std::vector<uint8_t> IcmpErrorAboutFlow(const Family& fam, uint16_t sport) {
  PacketBuilder quoted;
  if (fam.v6) {
    quoted.Ipv6(fam.vip, fam.client);
  } else {
    quoted.Ipv4(fam.vip, fam.client);
  }
  const std::vector<uint8_t> q =
      quoted.Tcp(80, sport).Flags(kAck).Payload("data").Build();
  PacketBuilder b = FromRouter();
  if (fam.v6) {
    b.Ipv6(fam.router, fam.vip).IcmpV6(2, 0).IcmpRest(1400);
  } else {
    b.Ipv4(fam.router, fam.vip).IcmpV4(3, 4).IcmpRest(1400);
  }
  return b.Embed(q).Build();
}

TEST_P(EngineFamilyTest, IcmpErrorAboutAFlowGoesToTheFlowsBackend) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)});
  for (uint16_t sport = 40000; sport < 40016; ++sport) {
    PacketBuilder b = FromRouter();
    ClientIp(b, fam()).Tcp(sport, 80).Flags(kSyn);
    ASSERT_EQ(h.Run(b.Build()).action, Action::kTransmit);
    const int backend = BackendOf(h.out);
    const std::vector<uint8_t> err = IcmpErrorAboutFlow(fam(), sport);
    const Verdict v = h.Run(err);
    ASSERT_EQ(v.action, Action::kTransmit);
    EXPECT_EQ(BackendOf(h.out), backend);
    std::vector<uint8_t> expected = err;
    auto be = ParseMac(BackendMac(backend));
    auto node = ParseMac(kNodeMac);
    std::copy(be.begin(), be.end(), expected.begin());
    std::copy(node.begin(), node.end(), expected.begin() + 6);
    EXPECT_THAT(h.out, FrameEq(expected));
  }
}

TEST_P(EngineFamilyTest, IcmpErrorAboutATunFlowIsEncapsulatedToItsBackend) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kGue)});
  PacketBuilder syn = FromRouter();
  ClientIp(syn, fam()).Tcp(40000, 80).Flags(kSyn);
  ASSERT_EQ(h.Run(syn.Build()).action, Action::kTransmit);
  const std::vector<uint8_t> err = IcmpErrorAboutFlow(fam(), 40000);
  const Verdict v = h.Run(err);
  ASSERT_EQ(v.action, Action::kTransmit);
  // Outer headers around the unchanged ICMP error, with the flow's hash.
  const uint32_t hash = h.FlowHash(fam(), 40000, 80, 6);
  PacketBuilder b;
  b.Eth(kNodeMac, kNextHopMac);
  if (fam().v6) {
    b.Ipv6(fam().tunnel_source, fam().backends[0]).FlowLabel(hash & 0xfffff);
  } else {
    b.Ipv4(fam().tunnel_source, fam().backends[0]).DontFragment();
  }
  b.Udp(static_cast<uint16_t>(49152 + hash % 16384), kDefaultGuePort);
  if (!fam().v6) b.UdpChecksumZero();
  // GUE variant 1 adds no bytes; the builder wants an IP layer after Gue().
  b.Embed(std::vector<uint8_t>(err.begin() + 14, err.end()));
  EXPECT_THAT(h.out, FrameEq(b.Build()));
  EXPECT_THAT(VerifyChecksums(h.out), IsOk());
}

TEST_P(EngineFamilyTest, IcmpErrorAboutNoKnownFlowDropsNoFlow) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip)});
  const Verdict v = h.Run(IcmpErrorAboutFlow(fam(), 40000));
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.drop_reason, DropReason::kNoFlow);
  EXPECT_EQ(h.engine->flow_table().size(), 0u);  // Errors make no flows.
}

TEST_P(EngineFamilyTest, TooBigRepliesAreRateLimited) {
  EngineOptions options = Options();
  options.icmp_burst = 2;
  options.icmp_rate_per_second = 1;
  Harness h({Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kIpip)},
            Node(), options);
  PacketBuilder b = FromRouter();
  ClientIp(b, fam());
  if (!fam().v6) b.DontFragment();
  const std::vector<uint8_t> big = L4(b, 6, fam().v6 ? 1440 : 1460).Build();
  EXPECT_TRUE(h.Run(big, kNow).to_sender);
  EXPECT_TRUE(h.Run(big, kNow).to_sender);
  Verdict v = h.Run(big, kNow);
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.drop_reason, DropReason::kMtuExceeded);
  EXPECT_EQ(h.engine->counters().icmp_too_big_sent, 2u);
  EXPECT_EQ(h.engine->counters().icmp_too_big_suppressed, 1u);
  EXPECT_EQ(h.engine->counters().drops_for(DropReason::kMtuExceeded), 3u);
  v = h.Run(big, kNow + absl::Seconds(1));
  EXPECT_EQ(v.action, Action::kTransmit);
  EXPECT_TRUE(v.to_sender);
  EXPECT_THAT(VerifyChecksums(h.out), IsOk());
}

TEST_P(EngineFamilyTest, TunWithoutHeadroomMovesTheFrameIntoTailroom) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kGue)});
  const std::vector<uint8_t> in = ClientPacket(FromRouter(), fam(), 6).Build();
  Harness ref({Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kGue)});
  ASSERT_EQ(ref.Run(in).action, Action::kTransmit);
  const Verdict v = h.Run(in, kNow, /*headroom=*/0);
  ASSERT_EQ(v.action, Action::kTransmit);
  EXPECT_THAT(h.out, FrameEq(ref.out));
}

// The outer headers and DR MACs are precomputed per snapshot: a new
// snapshot's node settings (MAC, tunnel source, outer TTL), GUE port and
// backend MAC reach the next packet of an existing flow.
TEST_P(EngineFamilyTest, TunHeadersFollowASnapshotChange) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kGue)};
  Harness h(services);
  PacketBuilder syn = FromRouter();
  ClientIp(syn, fam()).Tcp(40000, 80).Flags(kSyn).Payload("x");
  ASSERT_EQ(h.Run(syn.Build()).action, Action::kTransmit);
  NodeConfig node = Node();
  constexpr char kNewNodeMac[] = "02:00:00:00:00:ef";
  node.mac = ParseMac(kNewNodeMac);
  const std::string source = fam().v6 ? "2001:db8:ff::fd" : "192.0.2.253";
  if (fam().v6) {
    node.tunnel_source_v6 = Ip(source);
  } else {
    node.tunnel_source_v4 = Ip(source);
  }
  node.outer_ttl = 9;
  services[0].gue_port = 7000;
  auto snap = EngineSnapshot::Create(node, services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  PacketBuilder ack = FromRouter();
  ClientIp(ack, fam()).Tcp(40000, 80).Flags(kAck).Payload("y");
  ASSERT_EQ(h.Run(ack.Build()).action, Action::kTransmit);
  const uint32_t hash = h.FlowHash(fam(), 40000, 80, 6);
  PacketBuilder b;
  b.Eth(kNewNodeMac, kNextHopMac);
  if (fam().v6) {
    b.Ipv6(source, fam().backends[0])
        .TrafficClass(0x28)
        .FlowLabel(hash & 0xfffff)
        .HopLimit(9);
  } else {
    b.Ipv4(source, fam().backends[0]).Tos(0x28).DontFragment().Ttl(9);
  }
  b.Udp(static_cast<uint16_t>(49152 + hash % 16384), 7000);
  if (!fam().v6) b.UdpChecksumZero();
  b.Gue();
  ClientIp(b, fam()).Tcp(40000, 80).Flags(kAck).Payload("y");
  EXPECT_THAT(h.out, FrameEq(b.Build()));
  EXPECT_THAT(VerifyChecksums(h.out), IsOk());
}

TEST_P(EngineFamilyTest, DrMacsFollowASnapshotChange) {
  std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip)};
  Harness h(services);
  PacketBuilder syn = FromRouter();
  ClientIp(syn, fam()).Tcp(40000, 80).Flags(kSyn);
  ASSERT_EQ(h.Run(syn.Build()).action, Action::kTransmit);
  // A new backend MAC, then none (the resolver's), each with a new node MAC.
  for (const char* backend_mac : {"02:00:00:00:00:77", "00:00:00:00:00:00"}) {
    SCOPED_TRACE(backend_mac);
    NodeConfig node = Node();
    constexpr char kNewNodeMac[] = "02:00:00:00:00:ef";
    node.mac = ParseMac(kNewNodeMac);
    services[0].backends[0].mac = ParseMac(backend_mac);
    auto snap = EngineSnapshot::Create(node, services);
    ASSERT_THAT(snap, IsOk());
    ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
    PacketBuilder ack = FromRouter();
    ClientIp(ack, fam()).Tcp(40000, 80).Flags(kAck);
    ASSERT_EQ(h.Run(ack.Build()).action, Action::kTransmit);
    const bool resolved = std::string(backend_mac) == "00:00:00:00:00:00";
    PacketBuilder b;
    b.Eth(kNewNodeMac, resolved ? kNextHopMac : backend_mac);
    ClientIp(b, fam()).Tcp(40000, 80).Flags(kAck);
    EXPECT_THAT(h.out, FrameEq(b.Build()));
  }
}

TEST_P(EngineFamilyTest, FrameOutsideTheBufferDrops) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip)});
  std::vector<uint8_t> buffer(64);
  const Verdict v = h.engine->Process(buffer, 32, 64, kNow);
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.drop_reason, DropReason::kTruncatedEthernet);
}

TEST_P(EngineFamilyTest, ProcessDoesNotAllocate) {
  Harness h(
      {Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kGue, 4),
       Service(fam(), 443, 6, ForwardingMode::kDr, TunnelType::kIpip, 4)});
  std::vector<std::vector<uint8_t>> frames;
  for (int c = 0; c < 16; ++c) frames.push_back(From(c, 1000, kSyn));
  for (int c = 0; c < 16; ++c) frames.push_back(From(c, 1000, kAck));
  frames.push_back(IcmpErrorAboutFlow(fam(), 1000));
  for (const auto& s : dataplane_testing::MalformedSampleFrames()) {
    frames.push_back(s.frame);
  }
  for (const auto& s : dataplane_testing::ValidSampleFrames()) {
    frames.push_back(s.frame);
  }
  std::vector<uint8_t> buffer(kBufferSize);
  alloc_testing::StartCountingAllocations();
  for (const auto& f : frames) {
    std::copy(f.begin(), f.end(), buffer.begin() + kHeadroom);
    (void)h.engine->Process(buffer, kHeadroom, f.size(), kNow);
  }
  const uint64_t allocations = alloc_testing::StopCountingAllocations();
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(h.engine->counters().rx_packets, frames.size());
}

TEST_P(EngineFamilyTest, ProcessBatchMatchesProcess) {
  // Two engines over the same snapshot: one fed frame by frame, one in
  // batches (more than kMaxBatch frames, so the batch is taken in chunks).
  ServiceConfig nat = NatService(fam(), 6, ForwardingMode::kFullNat, 2);
  nat.port = 81;
  const std::vector<ServiceConfig> services = {
      Service(fam(), 80, 6, ForwardingMode::kTun, TunnelType::kGue, 4),
      Service(fam(), 80, 17, ForwardingMode::kDr, TunnelType::kIpip, 4), nat};
  Harness ref(services);
  Harness h(services);
  std::vector<std::vector<uint8_t>> frames;
  for (int round = 0; round < 2; ++round) {
    for (int c = 0; c < 24; ++c) {
      frames.push_back(From(c, 1000, round == 0 ? kSyn : kAck));
      frames.push_back(Pkt(FromRouter(), fam(), fam().client, fam().vip,
                           2000 + c, 81, 6, round == 0 ? kSyn : kAck)
                           .Build());
      frames.push_back(
          Pkt(FromRouter(), fam(), fam().client, fam().vip, 3000 + c, 80, 17)
              .Build());
    }
    for (int c = 0; c < 4; ++c) {  // FULLNAT fragments, one unmatched.
      Datagram d{&fam(),
                 fam().client,
                 fam().vip,
                 static_cast<uint16_t>(4000 + c),
                 81,
                 6,
                 kSyn,
                 64,
                 static_cast<uint32_t>(round * 10 + c)};
      frames.push_back(d.First(FromRouter()));
      frames.push_back(d.Later(FromRouter()));
      d.id += 100;
      frames.push_back(d.Later(FromRouter()));
    }
    frames.push_back(IcmpErrorAboutFlow(fam(), 1000));
    frames.push_back(IcmpErrorAboutFlow(fam(), 999));  // No flow.
    for (const auto& s : dataplane_testing::MalformedSampleFrames()) {
      frames.push_back(s.frame);
    }
    for (const auto& s : dataplane_testing::ValidSampleFrames()) {
      frames.push_back(s.frame);
    }
  }
  ASSERT_GT(frames.size(), 2 * Engine::kMaxBatch);
  std::vector<std::vector<uint8_t>> buffers(frames.size());
  std::vector<Packet> packets(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    buffers[i].assign(kBufferSize, 0xa5);
    std::copy(frames[i].begin(), frames[i].end(),
              buffers[i].begin() + kHeadroom);
    packets[i].buffer = buffers[i];
    packets[i].headroom = kHeadroom;
    packets[i].frame_len = frames[i].size();
  }
  alloc_testing::StartCountingAllocations();
  h.engine->ProcessBatch(packets, kNow);
  EXPECT_EQ(alloc_testing::StopCountingAllocations(), 0u);
  size_t transmitted = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    const Verdict want = ref.Run(frames[i]);
    const Verdict got = packets[i].verdict;
    EXPECT_EQ(got.action, want.action);
    EXPECT_EQ(got.drop_reason, want.drop_reason);
    EXPECT_EQ(got.to_sender, want.to_sender);
    ASSERT_EQ(got.offset, want.offset);
    ASSERT_EQ(got.length, want.length);
    const std::vector<uint8_t> out(
        buffers[i].begin() + got.offset,
        buffers[i].begin() + got.offset + got.length);
    EXPECT_THAT(out, FrameEq(ref.out));
    if (got.action == Action::kTransmit) ++transmitted;
  }
  EXPECT_GT(transmitted, frames.size() / 2);
  const EngineCounters& a = h.engine->counters();
  const EngineCounters& b = ref.engine->counters();
  EXPECT_EQ(a.rx_packets, b.rx_packets);
  EXPECT_EQ(a.rx_bytes, b.rx_bytes);
  EXPECT_EQ(a.tx_packets, b.tx_packets);
  EXPECT_EQ(a.tx_bytes, b.tx_bytes);
  EXPECT_EQ(a.pass_packets, b.pass_packets);
  EXPECT_EQ(a.drop_packets, b.drop_packets);
  EXPECT_EQ(a.drops, b.drops);
  EXPECT_EQ(a.fragments_unmatched, b.fragments_unmatched);
  EXPECT_EQ(a.fragments_unmatched, 8u);
  for (size_t s = 0; s < services.size(); ++s) {
    EXPECT_EQ(h.engine->service_counters(s).packets,
              ref.engine->service_counters(s).packets);
    EXPECT_EQ(h.engine->service_counters(s).new_flows,
              ref.engine->service_counters(s).new_flows);
  }
  EXPECT_EQ(h.engine->flow_table().size(), ref.engine->flow_table().size());
  // An empty batch is fine.
  h.engine->ProcessBatch({}, kNow);
  EXPECT_EQ(h.engine->counters().rx_packets, b.rx_packets);
}

TEST_P(EngineFamilyTest, GueChecksumIsRightForEveryLengthAndAlignment) {
  // The GUE checksum (computed over IPv6, 0 over IPv4) covers the whole
  // inner packet: odd and even lengths, frames at odd and even offsets.
  for (const Family* outer : {&FamilyOf(false), &FamilyOf(true)}) {
    Harness h({Service(fam(), 80, 17, ForwardingMode::kTun, TunnelType::kGue, 1,
                       outer)});
    for (size_t payload = 0; payload < 40; ++payload) {
      for (size_t headroom : {kHeadroom, kHeadroom + 1, kHeadroom + 3}) {
        SCOPED_TRACE(payload);
        SCOPED_TRACE(headroom);
        std::string data;
        for (size_t i = 0; i < payload; ++i) {
          data.push_back(static_cast<char>(0xf1 + 7 * i));
        }
        PacketBuilder b = FromRouter();
        ClientIp(b, fam()).Udp(40000, 80).Payload(data);
        const Verdict v = h.Run(b.Build(), kNow, headroom);
        ASSERT_EQ(v.action, Action::kTransmit);
        EXPECT_THAT(VerifyChecksums(h.out), IsOk());
        const size_t udp = 14 + (outer->v6 ? 40 : 20);
        const uint16_t check =
            static_cast<uint16_t>(h.out[udp + 6] << 8 | h.out[udp + 7]);
        if (outer->v6) {
          EXPECT_NE(check, 0);
        } else {
          EXPECT_EQ(check, 0);
        }
      }
    }
  }
}

TEST_P(EngineFamilyTest, GueOverIpv6ChecksumIsRightOnEveryPath) {
  // TCP and UDP segments are summed from their own checksum (only the
  // inner IP header is read); UDP over IPv4 without a checksum is summed
  // byte by byte. VerifyChecksums recomputes the outer one over the bytes.
  const Family& outer = FamilyOf(true);
  for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
    Harness h({Service(fam(), 80, proto, ForwardingMode::kTun, TunnelType::kGue,
                       1, &outer)});
    for (size_t payload : {0, 1, 7, 64, 333, 1200}) {
      SCOPED_TRACE(payload);
      SCOPED_TRACE(proto);
      PacketBuilder b = FromRouter();
      ClientIp(b, fam());
      if (proto == 6) {
        b.Tcp(40000, 80).Flags(kSyn);
      } else {
        b.Udp(40000, 80);
      }
      std::vector<uint8_t> frame = b.Payload(std::string(payload, 'z')).Build();
      ASSERT_EQ(h.Run(frame).action, Action::kTransmit);
      EXPECT_THAT(VerifyChecksums(h.out), IsOk());
      if (proto == 17 && !fam().v6) {
        frame[14 + 20 + 6] = 0;  // No UDP checksum (RFC 768).
        frame[14 + 20 + 7] = 0;
        ASSERT_EQ(h.Run(frame).action, Action::kTransmit);
        EXPECT_THAT(VerifyChecksums(h.out), IsOk());
      }
    }
  }
}

// --- NAT and FULLNAT: stateful scenarios ---

class NatTest
    : public ::testing::TestWithParam<std::tuple<bool, ForwardingMode>> {
 protected:
  const Family& fam() const { return FamilyOf(std::get<0>(GetParam())); }
  ForwardingMode mode() const { return std::get<1>(GetParam()); }
  bool full() const { return mode() == ForwardingMode::kFullNat; }
  size_t l4() const { return 14 + (fam().v6 ? 40 : 20); }
  // Client `c` (index into the client network), source port `sport`.
  std::string Client(int c) const {
    return fam().v6 ? "2001:db8:1::" + std::to_string(100 + c)
                    : "198.51.100." + std::to_string(100 + c);
  }
  std::vector<uint8_t> FromClient(int c, uint16_t sport, uint8_t flags,
                                  uint8_t proto = 6) const {
    return Pkt(FromRouter(), fam(), Client(c), fam().vip, sport, 80, proto,
               flags)
        .Build();
  }
  // The backend's reply to what the director sent it (`forwarded`).
  std::vector<uint8_t> ReplyTo(const std::vector<uint8_t>& forwarded,
                               uint8_t flags, uint8_t proto = 6) const {
    const ParseResult r = Parse(forwarded);
    EXPECT_TRUE(r.ok());
    const scheduler::FlowKey k = MakeFlowKey(forwarded, r.packet);
    return Pkt(PacketBuilder().Eth(BackendMac(0), kNodeMac), fam(),
               k.dst_address().ToString(), k.src_address().ToString(),
               k.dst_port, k.src_port, proto, flags)
        .Build();
  }
  uint16_t SrcPort(const std::vector<uint8_t>& out) const {
    return static_cast<uint16_t>(out[l4()] << 8 | out[l4() + 1]);
  }
  std::string SrcAddress(const std::vector<uint8_t>& out) const {
    const ParseResult r = Parse(out);
    EXPECT_TRUE(r.ok());
    return MakeFlowKey(out, r.packet).src_address().ToString();
  }
};

INSTANTIATE_TEST_SUITE_P(
    Modes, NatTest,
    ::testing::Combine(::testing::Bool(),
                       ::testing::Values(ForwardingMode::kNat,
                                         ForwardingMode::kFullNat)),
    [](const ::testing::TestParamInfo<std::tuple<bool, ForwardingMode>>& info) {
      return std::string(std::get<0>(info.param) ? "V6" : "V4") +
             (std::get<1>(info.param) == ForwardingMode::kNat ? "Nat"
                                                              : "FullNat");
    });

TEST_P(NatTest, TcpStateSeesBothDirections) {
  Harness h({NatService(fam(), 6, mode())});
  ASSERT_EQ(h.Run(FromClient(0, 1000, kSyn)).action, Action::kTransmit);
  const std::vector<uint8_t> forwarded = h.out;
  EXPECT_EQ(h.engine->flow_table().size(), 2u);  // Forward + reply entry.
  ASSERT_EQ(h.Run(ReplyTo(forwarded, kSyn | kAck)).action, Action::kTransmit);
  EXPECT_EQ(h.engine->backends(0)[0].active, 0u);
  ASSERT_EQ(h.Run(FromClient(0, 1000, kAck)).action, Action::kTransmit);
  EXPECT_EQ(h.engine->backends(0)[0].active, 1u);
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 0u);
  // The server closes first: FIN from the server side moves the flow.
  ASSERT_EQ(h.Run(ReplyTo(forwarded, kFin | kAck)).action, Action::kTransmit);
  EXPECT_EQ(h.engine->backends(0)[0].active, 0u);
  EXPECT_EQ(h.engine->service_counters(0).reply_packets, 2u);
  EXPECT_EQ(h.engine->service_counters(0).packets, 2u);
  // Both entries share the state: they expire together, and the backend
  // count and the FULLNAT port go with them.
  EXPECT_EQ(h.engine->ExpireSome(kNow + absl::Hours(1), 100), 2u);
  EXPECT_EQ(h.engine->flow_table().size(), 0u);
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 0u);
  EXPECT_EQ(h.Run(ReplyTo(forwarded, kAck)).drop_reason, DropReason::kNoFlow);
}

TEST_P(NatTest, ReplyEntryEvictedTakesTheForwardEntryWithIt) {
  EngineOptions options = Options();
  options.flow_table.capacity = 4;  // Two NAT flows.
  Harness h({NatService(fam(), 17, mode())}, Node(), options);
  std::vector<std::vector<uint8_t>> forwarded;
  for (int c = 0; c < 3; ++c) {
    ASSERT_EQ(h.Run(FromClient(c, 1000, 0, 17), kNow + absl::Seconds(c)).action,
              Action::kTransmit);
    forwarded.push_back(h.out);
  }
  // The third flow evicted the first (both of its entries).
  EXPECT_EQ(h.engine->flow_table().size(), 4u);
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 2u);
  EXPECT_EQ(h.Run(ReplyTo(forwarded[0], 0, 17)).drop_reason,
            DropReason::kNoFlow);
  EXPECT_EQ(h.Run(ReplyTo(forwarded[2], 0, 17)).action, Action::kTransmit);
  EXPECT_THAT(h.engine->flow_table().CheckConsistency(), IsOk());
}

TEST_P(NatTest, IcmpErrorFromTheClientSideReachesTheBackendTranslated) {
  Harness h({NatService(fam(), 6, mode())});
  ASSERT_EQ(h.Run(FromClient(0, 40000, kSyn)).action, Action::kTransmit);
  const std::string peer = full() ? fam().local : Client(0);
  const uint16_t peer_port = full() ? kLocalPortMin : 40000;
  const size_t quote = (fam().v6 ? 40 : 20) + 8;  // RFC 792's minimum.
  auto quoted = [&](const std::string& src, uint16_t sport,
                    const std::string& dst, uint16_t dport) {
    PacketBuilder q;
    if (fam().v6) {
      q.Ipv6(src, dst);
    } else {
      q.Ipv4(src, dst);
    }
    return q.Tcp(sport, dport)
        .Flags(kAck)
        .Payload("data")
        .Truncate(quote)
        .Build();
  };
  auto error = [&](PacketBuilder b, const std::string& src,
                   const std::string& dst, uint8_t ttl,
                   const std::vector<uint8_t>& q) {
    if (fam().v6) {
      b.Ipv6(src, dst).HopLimit(ttl).IcmpV6(2, 0).IcmpRest(1400);
    } else {
      b.Ipv4(src, dst).Ttl(ttl).IcmpV4(3, 4).IcmpRest(1400);
    }
    return b.Embed(q).Build();
  };
  // A router near the client says our VIP:80 → client:40000 was too big.
  const std::vector<uint8_t> in =
      error(FromRouter(), fam().router, fam().vip, 64,
            quoted(fam().vip, 80, Client(0), 40000));
  const Verdict v = h.Run(in);
  ASSERT_EQ(v.action, Action::kTransmit) << DropReasonName(v.drop_reason);
  // The backend hears it about its own packet backend:8080 → peer.
  const std::vector<uint8_t> want =
      error(ToNextHop(), full() ? fam().local : fam().router, fam().backends[0],
            63, quoted(fam().backends[0], kBackendPort, peer, peer_port));
  EXPECT_THAT(h.out, FrameEq(want));
  EXPECT_THAT(VerifyChecksums(h.out), IsOk());
}

TEST_P(NatTest, IcmpErrorFromTheBackendSideReachesTheClientTranslated) {
  Harness h({NatService(fam(), 6, mode())});
  ASSERT_EQ(h.Run(FromClient(0, 40000, kSyn)).action, Action::kTransmit);
  const std::string peer = full() ? fam().local : Client(0);
  const uint16_t peer_port = full() ? kLocalPortMin : 40000;
  auto error = [&](PacketBuilder b, const std::string& src,
                   const std::string& dst, uint8_t ttl, const std::string& qs,
                   uint16_t qsp, const std::string& qd, uint16_t qdp) {
    PacketBuilder q;
    if (fam().v6) {
      q.Ipv6(qs, qd);
    } else {
      q.Ipv4(qs, qd);
    }
    // A UDP-style quote with a fixed transport checksum: the engine leaves
    // the quoted transport checksum alone.
    const std::vector<uint8_t> quoted = q.Tcp(qsp, qdp)
                                            .Flags(kAck)
                                            .Payload("data")
                                            .Truncate((fam().v6 ? 40 : 20) + 8)
                                            .Build();
    if (fam().v6) {
      b.Ipv6(src, dst).HopLimit(ttl).IcmpV6(1, 4);  // Port unreachable.
    } else {
      b.Ipv4(src, dst).Ttl(ttl).IcmpV4(3, 3);
    }
    return b.Embed(quoted).Build();
  };
  // The backend refuses what the director sent it (peer → backend:8080).
  const std::vector<uint8_t> in =
      error(PacketBuilder().Eth(BackendMac(0), kNodeMac), fam().backends[0],
            peer, 64, peer, peer_port, fam().backends[0], kBackendPort);
  const Verdict v = h.Run(in);
  ASSERT_EQ(v.action, Action::kTransmit) << DropReasonName(v.drop_reason);
  // The client hears it from the VIP, about its own client → VIP:80.
  const std::vector<uint8_t> want = error(ToNextHop(), fam().vip, Client(0), 63,
                                          Client(0), 40000, fam().vip, 80);
  EXPECT_THAT(h.out, FrameEq(want));
  EXPECT_THAT(VerifyChecksums(h.out), IsOk());
}

TEST_P(NatTest, UnresolvedNextHopLeavesTheFrameUnchangedAndTheRetryHits) {
  Harness h({NatService(fam(), 6, mode())});
  h.resolver.unresolved = {Ip(fam().backends[0])};
  const std::vector<uint8_t> syn = FromClient(0, 1000, kSyn);
  Verdict v = h.Run(syn);
  EXPECT_EQ(v.drop_reason, DropReason::kNoNeighbor);
  EXPECT_THAT(h.out, FrameEq(syn));
  h.resolver.unresolved.clear();
  ASSERT_EQ(h.Run(syn).action, Action::kTransmit);
  const std::vector<uint8_t> forwarded = h.out;
  EXPECT_EQ(h.engine->service_counters(0).new_flows, 1u);  // The retry hit.
  // The reply's next hop is the client's.
  h.resolver.unresolved = {Ip(Client(0))};
  const std::vector<uint8_t> reply = ReplyTo(forwarded, kSyn | kAck);
  v = h.Run(reply);
  EXPECT_EQ(v.drop_reason, DropReason::kNoNeighbor);
  EXPECT_THAT(h.out, FrameEq(reply));
  h.resolver.unresolved.clear();
  EXPECT_EQ(h.Run(reply).action, Action::kTransmit);
}

TEST_P(NatTest, FlowWhoseBackendLeftLosesItsRepliesAndPort) {
  std::vector<ServiceConfig> services = {NatService(fam(), 6, mode(), 2)};
  Harness h(services);
  ASSERT_EQ(h.Run(FromClient(0, 1000, kSyn)).action, Action::kTransmit);
  const std::vector<uint8_t> forwarded = h.out;
  const std::string chosen = [&] {
    const ParseResult r = Parse(forwarded);
    return MakeFlowKey(forwarded, r.packet).dst_address().ToString();
  }();
  std::erase_if(services[0].backends, [&](const BackendConfig& b) {
    return b.endpoint.address() == Ip(chosen);
  });
  auto snap = EngineSnapshot::Create(Node(), services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  EXPECT_EQ(h.Run(ReplyTo(forwarded, kSyn | kAck)).drop_reason,
            DropReason::kNoFlow);
  EXPECT_EQ(h.engine->flow_table().size(), 0u);
  if (full()) {
    EXPECT_EQ(h.engine->local_ports().available(0, 6),
              h.engine->local_ports().ports_per_address());
  }
  // The client's next packet is a new flow on the remaining backend.
  ASSERT_EQ(h.Run(FromClient(0, 1000, kAck)).action, Action::kTransmit);
  EXPECT_EQ(h.engine->flow_table().size(), 2u);
}

TEST_P(NatTest, ServiceSwitchedToDrReschedulesTheFlowAndFreesItsPort) {
  std::vector<ServiceConfig> services = {NatService(fam(), 6, mode())};
  Harness h(services);
  ASSERT_EQ(h.Run(FromClient(0, 1000, kSyn)).action, Action::kTransmit);
  const std::vector<uint8_t> forwarded = h.out;
  services[0] = Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip);
  auto snap = EngineSnapshot::Create(Node(), services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  // The old NAT flow cannot continue as DR: a new DR flow, MACs only.
  const std::vector<uint8_t> ack = FromClient(0, 1000, kAck);
  ASSERT_EQ(h.Run(ack).action, Action::kTransmit);
  EXPECT_EQ(h.engine->counters().flows_rescheduled, 1u);
  std::vector<uint8_t> want = ack;
  const auto be = ParseMac(BackendMac(0));
  const auto node = ParseMac(kNodeMac);
  std::copy(be.begin(), be.end(), want.begin());
  std::copy(node.begin(), node.end(), want.begin() + 6);
  EXPECT_THAT(h.out, FrameEq(want));
  EXPECT_EQ(h.engine->flow_table().size(), 1u);
  EXPECT_EQ(h.engine->local_ports().available(0, 6),
            h.engine->local_ports().ports_per_address());
  // The backend's answer to the old translation: FULLNAT's goes to a local
  // address (ours: dropped, no flow); NAT's is from a server that is no
  // longer a NAT backend, so it is the kernel's.
  const Verdict v = h.Run(ReplyTo(forwarded, kSyn | kAck));
  if (full()) {
    EXPECT_EQ(v.drop_reason, DropReason::kNoFlow);
  } else {
    EXPECT_EQ(v.action, Action::kPass);
  }
}

TEST_P(EngineFamilyTest, NatReplyKeyOfAnotherFlowIsAConflictNotAMixUp) {
  // One client ip:port to two NAT services with the same backend:port: the
  // backend's answers could not be told apart, so the second flow is
  // refused rather than stealing the first one's replies.
  ServiceConfig a = NatService(fam(), 6, ForwardingMode::kNat);
  ServiceConfig b = a;
  b.port = 81;
  Harness h({a, b});
  const std::string client = fam().client;
  ASSERT_EQ(
      h.Run(Pkt(FromRouter(), fam(), client, fam().vip, 40000, 80, 6).Build())
          .action,
      Action::kTransmit);
  const Verdict v =
      h.Run(Pkt(FromRouter(), fam(), client, fam().vip, 40000, 81, 6).Build());
  EXPECT_EQ(v.drop_reason, DropReason::kNatReplyConflict);
  EXPECT_EQ(h.engine->counters().nat_reply_conflicts, 1u);
  EXPECT_EQ(h.engine->counters().drops_for(DropReason::kNatReplyConflict), 1u);
  EXPECT_EQ(h.engine->counters().drops_for(DropReason::kFlowTableFull), 0u);
  EXPECT_EQ(h.engine->flow_table().size(), 2u);
  EXPECT_EQ(h.engine->backends(1)[0].inactive, 0u);
  // The first flow's replies still come back from VIP:80.
  ASSERT_EQ(
      h.Run(Pkt(PacketBuilder().Eth(BackendMac(0), kNodeMac), fam(),
                fam().backends[0], client, kBackendPort, 40000, 6, kSyn | kAck)
                .Build())
          .action,
      Action::kTransmit);
  EXPECT_THAT(h.out, FrameEq(Pkt(ToNextHop(), fam(), fam().vip, client, 80,
                                 40000, 6, kSyn | kAck, 63)
                                 .Build()));
}

TEST_P(NatTest, EngineStartedWithoutNatTakesNatFromALaterSnapshot) {
  Harness h({Service(fam(), 443, 6, ForwardingMode::kDr, TunnelType::kIpip)});
  auto snap = EngineSnapshot::Create(Node(), {NatService(fam(), 6, mode())});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  ASSERT_EQ(h.Run(FromClient(0, 1000, kSyn)).action, Action::kTransmit);
  EXPECT_EQ(h.Run(ReplyTo(h.out, kSyn | kAck)).action, Action::kTransmit);
}

// The client's datagram `id` to VIP:80 from client `c`, port 1000 + c.
Datagram ClientDatagram(const Family& fam, const std::string& client,
                        uint16_t sport, uint8_t proto, uint32_t id) {
  return {&fam, client, fam.vip, sport, 80, proto, kSyn, 64, id};
}

TEST_P(NatTest, LaterFragmentsFollowTheirFirstUntilItsRecordExpires) {
  Harness h({NatService(fam(), 17, mode())});
  const Datagram a = ClientDatagram(fam(), Client(0), 1000, 17, 1);
  const Datagram b = ClientDatagram(fam(), Client(0), 1000, 17, 2);
  ASSERT_EQ(h.Run(a.First(FromRouter()), kNow).action, Action::kTransmit);
  ASSERT_EQ(h.Run(b.First(FromRouter()), kNow).action, Action::kTransmit);
  // One flow for both datagrams (the 5-tuple), two fragment records.
  EXPECT_EQ(h.engine->flow_table().size(), 2u);
  EXPECT_EQ(h.engine->fragment_table().counters().inserts, 2u);
  // Within the default 3 s: a later fragment follows its first.
  EXPECT_EQ(h.Run(a.Later(FromRouter()), kNow + absl::Seconds(2)).action,
            Action::kTransmit);
  EXPECT_EQ(SrcAddress(h.out), full() ? fam().local : Client(0));
  // After it: dropped and counted, though the flow itself lives on.
  const Verdict v = h.Run(b.Later(FromRouter()), kNow + absl::Seconds(4));
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.drop_reason, kFragmentUnmatched);
  EXPECT_EQ(h.engine->counters().fragments_unmatched, 1u);
  EXPECT_EQ(h.engine->fragment_table().counters().expired, 1u);
  EXPECT_EQ(h.engine->flow_table().size(), 2u);
  // Fragments count as packets of the service and backend.
  EXPECT_EQ(h.engine->service_counters(0).packets, 3u);
  EXPECT_EQ(h.engine->backend_counters(0, 0).packets, 3u);
}

TEST_P(NatTest, FragmentLifetimeIsConfigurable) {
  EngineOptions options = Options();
  options.fragments.lifetime = absl::Seconds(10);
  Harness h({NatService(fam(), 17, mode())}, Node(), options);
  const Datagram a = ClientDatagram(fam(), Client(0), 1000, 17, 1);
  ASSERT_EQ(h.Run(a.First(FromRouter()), kNow).action, Action::kTransmit);
  EXPECT_EQ(h.Run(a.Later(FromRouter()), kNow + absl::Seconds(9)).action,
            Action::kTransmit);
  EXPECT_EQ(h.Run(a.Later(FromRouter()), kNow + absl::Seconds(11)).action,
            Action::kDrop);
  options.fragments.lifetime = absl::ZeroDuration();
  auto snap = EngineSnapshot::Create(Node(), {NatService(fam(), 17, mode())});
  ASSERT_THAT(snap, IsOk());
  FakeResolver resolver;
  EXPECT_THAT(Engine::Create(*snap, &resolver, options),
              ::anylb::status_testing::StatusIs(
                  absl::StatusCode::kInvalidArgument,
                  ::testing::HasSubstr("fragment lifetime")));
}

TEST_P(NatTest, FragmentRecordsAreBoundedAndEvictionsCounted) {
  EngineOptions options = Options();
  options.fragments.capacity = 8;
  Harness h({NatService(fam(), 17, mode())}, Node(), options);
  std::vector<Datagram> datagrams;
  for (uint32_t id = 0; id < 64; ++id) {
    datagrams.push_back(ClientDatagram(fam(), Client(0), 1000, 17, id));
    ASSERT_EQ(h.Run(datagrams.back().First(FromRouter())).action,
              Action::kTransmit);
  }
  EXPECT_EQ(h.engine->fragment_table().capacity(), 8u);
  EXPECT_EQ(h.engine->fragment_table().counters().evictions, 64u - 8u);
  size_t forwarded = 0;
  for (const Datagram& d : datagrams) {
    if (h.Run(d.Later(FromRouter())).action == Action::kTransmit) ++forwarded;
  }
  EXPECT_EQ(forwarded, 8u);
  EXPECT_EQ(h.engine->counters().fragments_unmatched, 64u - 8u);
}

TEST_P(NatTest, SnapshotChangeForgetsFragmentRecords) {
  Harness h({NatService(fam(), 17, mode())});
  const Datagram a = ClientDatagram(fam(), Client(0), 1000, 17, 1);
  ASSERT_EQ(h.Run(a.First(FromRouter())).action, Action::kTransmit);
  // The record names the service and backend by snapshot index.
  auto snap = EngineSnapshot::Create(
      Node(), {Service(fam(), 443, 6, ForwardingMode::kDr, TunnelType::kIpip),
               NatService(fam(), 17, mode())});
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  EXPECT_EQ(h.Run(a.Later(FromRouter())).drop_reason, kFragmentUnmatched);
  // The flow survived: the next first fragment is recorded anew.
  const Datagram b = ClientDatagram(fam(), Client(0), 1000, 17, 2);
  ASSERT_EQ(h.Run(b.First(FromRouter())).action, Action::kTransmit);
  EXPECT_EQ(h.Run(b.Later(FromRouter())).action, Action::kTransmit);
  EXPECT_EQ(h.engine->service_counters(1).packets, 3u);
}

TEST_P(NatTest, FirstFragmentHitsTheFlowOfWholePackets) {
  Harness h({NatService(fam(), 6, mode())});
  ASSERT_EQ(h.Run(FromClient(0, 1000, kSyn)).action, Action::kTransmit);
  const std::vector<uint8_t> forwarded = h.out;
  ASSERT_EQ(h.Run(ReplyTo(forwarded, kSyn | kAck)).action, Action::kTransmit);
  // The client's next segment comes fragmented: same flow, same port.
  Datagram d = ClientDatagram(fam(), Client(0), 1000, 6, 9);
  d.flags = kAck;
  ASSERT_EQ(h.Run(d.First(FromRouter())).action, Action::kTransmit);
  EXPECT_EQ(Parse(h.out).packet.src_port, SrcPort(forwarded));
  EXPECT_EQ(h.engine->flow_table().size(), 2u);
  EXPECT_EQ(h.engine->backends(0)[0].active, 1u);  // TCP state followed.
  EXPECT_EQ(h.Run(d.Later(FromRouter())).action, Action::kTransmit);
  EXPECT_EQ(h.engine->service_counters(0).new_flows, 1u);
}

TEST_P(NatTest, ProcessDoesNotAllocate) {
  Harness h(
      {NatService(fam(), 6, mode(), 4), NatService(fam(), 17, mode(), 4)});
  std::vector<std::vector<uint8_t>> frames;
  for (int c = 0; c < 16; ++c) frames.push_back(FromClient(c, 1000, kSyn));
  for (int c = 0; c < 16; ++c) frames.push_back(FromClient(c, 1000, 0, 17));
  // Fragments: first (recorded), later (matched), and unmatched.
  std::vector<std::vector<uint8_t>> fragments;
  for (int c = 0; c < 16; ++c) {
    const Datagram d = ClientDatagram(fam(), Client(c), 1000, 17, 100 + c);
    fragments.push_back(d.First(FromRouter()));
    fragments.push_back(d.Later(FromRouter()));
    fragments.push_back(ClientDatagram(fam(), Client(c), 1000, 17, 200 + c)
                            .Later(FromRouter()));
  }
  std::vector<uint8_t> buffer(kBufferSize);
  // Replies need the forwarded frames: make the flows first, outside the
  // count, then run replies, hits, expiry and new flows inside it.
  std::vector<std::vector<uint8_t>> replies;
  for (size_t i = 0; i < frames.size(); ++i) {
    ASSERT_EQ(h.Run(frames[i]).action, Action::kTransmit);
    replies.push_back(ReplyTo(h.out, kSyn | kAck, i < 16 ? 6 : 17));
  }
  alloc_testing::StartCountingAllocations();
  for (int round = 0; round < 2; ++round) {
    for (const auto* list : {&frames, &replies, &fragments}) {
      for (const auto& f : *list) {
        std::copy(f.begin(), f.end(), buffer.begin() + kHeadroom);
        (void)h.engine->Process(buffer, kHeadroom, f.size(),
                                kNow + absl::Hours(round));
      }
    }
    h.engine->ExpireSome(kNow + absl::Hours(round + 1), 1000);
  }
  const uint64_t allocations = alloc_testing::StopCountingAllocations();
  EXPECT_EQ(allocations, 0u);
  EXPECT_GT(h.engine->counters().tx_packets, 64u);
  EXPECT_EQ(h.engine->fragment_table().counters().hits, 32u);
  EXPECT_EQ(h.engine->counters().fragments_unmatched, 32u);
}

// The key a worker looks up for `frame` (what the XDP fast path reports).
scheduler::FlowKey KeyOf(const std::vector<uint8_t>& frame) {
  const ParseResult r = Parse(frame);
  EXPECT_TRUE(r.ok());
  return Engine::ForwardKeyOf(frame, r.packet);
}

TEST_P(EngineFamilyTest, RefreshFlowKeepsADrFlowAliveWithoutCountingAPacket) {
  Harness h({Service(fam(), 80, 17, ForwardingMode::kDr, TunnelType::kIpip)});
  const std::vector<uint8_t> frame =
      ClientPacket(FromRouter(), fam(), 17).Build();
  ASSERT_EQ(h.Run(frame).action, Action::kTransmit);
  const scheduler::FlowKey key = KeyOf(frame);
  EXPECT_EQ(key, scheduler::FlowKey::Make(Ip(fam().client), 40000,
                                          Ip(fam().vip), 80, 17));
  // UDP flows idle out after 5 minutes: refreshed at 4, alive at 8.
  EXPECT_TRUE(h.engine->RefreshFlow(key, kNow + absl::Minutes(4)));
  EXPECT_EQ(h.engine->ExpireSome(kNow + absl::Minutes(8), 100), 0u);
  EXPECT_EQ(h.engine->flow_table().size(), 1u);
  EXPECT_EQ(h.engine->service_counters(0).packets, 1u);
  EXPECT_EQ(h.engine->counters().rx_packets, 1u);
  EXPECT_EQ(
      h.engine->flow_table().Lookup(key, kNow + absl::Minutes(8))->last_seen(),
      kNow + absl::Minutes(4));
  // Not refreshed again: gone at 10; a refresh then finds nothing.
  EXPECT_FALSE(h.engine->RefreshFlow(key, kNow + absl::Minutes(10)));
  EXPECT_EQ(h.engine->flow_table().size(), 0u);
  EXPECT_EQ(h.engine->backends(0)[0].inactive, 0u);
}

TEST_P(EngineFamilyTest, RefreshFlowOfAnUnknownKeyIsFalse) {
  Harness h({Service(fam(), 80, 6, ForwardingMode::kDr, TunnelType::kIpip)});
  ASSERT_EQ(h.Run(ClientPacket(FromRouter(), fam(), 6).Build()).action,
            Action::kTransmit);
  EXPECT_FALSE(h.engine->RefreshFlow(
      scheduler::FlowKey::Make(Ip(fam().client), 40001, Ip(fam().vip), 80, 6),
      kNow));
  EXPECT_EQ(h.engine->flow_table().size(), 1u);
}

TEST_P(NatTest, RefreshFlowKeepsBothEntriesAlive) {
  Harness h({NatService(fam(), 17, mode())});
  const std::vector<uint8_t> frame = FromClient(0, 1000, 0, 17);
  ASSERT_EQ(h.Run(frame).action, Action::kTransmit);
  const std::vector<uint8_t> reply = ReplyTo(h.out, 0, 17);
  EXPECT_TRUE(h.engine->RefreshFlow(KeyOf(frame), kNow + absl::Minutes(4)));
  // Neither entry expired: the reply still finds its flow at 8 minutes.
  EXPECT_EQ(h.engine->ExpireSome(kNow + absl::Minutes(8), 100), 0u);
  EXPECT_EQ(h.engine->flow_table().size(), 2u);
  EXPECT_EQ(h.Run(reply, kNow + absl::Minutes(8)).action, Action::kTransmit);
  EXPECT_EQ(h.engine->service_counters(0).packets, 1u);
  EXPECT_EQ(h.engine->service_counters(0).reply_packets, 1u);
  // Both expire together later, the FULLNAT port with them.
  EXPECT_EQ(h.engine->ExpireSome(kNow + absl::Minutes(20), 100), 2u);
  EXPECT_FALSE(h.engine->RefreshFlow(KeyOf(frame), kNow + absl::Minutes(20)));
  EXPECT_THAT(h.engine->flow_table().CheckConsistency(), IsOk());
}

// --- FULLNAT ports ---

class FullNatPortTest : public ::testing::TestWithParam<bool> {
 protected:
  const Family& fam() const { return FamilyOf(GetParam()); }
  size_t l4() const { return 14 + (fam().v6 ? 40 : 20); }
  std::vector<uint8_t> FromClient(int c, uint16_t sport) const {
    const std::string client = fam().v6
                                   ? "2001:db8:1::" + std::to_string(100 + c)
                                   : "198.51.100." + std::to_string(100 + c);
    return Pkt(FromRouter(), fam(), client, fam().vip, sport, 80, 17).Build();
  }
  std::pair<std::string, uint16_t> Source(const std::vector<uint8_t>& out) {
    const ParseResult r = Parse(out);
    EXPECT_TRUE(r.ok());
    const scheduler::FlowKey k = MakeFlowKey(out, r.packet);
    return {k.src_address().ToString(), k.src_port};
  }
};

INSTANTIATE_TEST_SUITE_P(Families, FullNatPortTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "V6" : "V4";
                         });

TEST_P(FullNatPortTest, PortsNeverCollideRunOutAndComeBackOnExpiry) {
  NodeConfig node = Node();
  node.local_port_min = 30000;
  node.local_port_max = 30099;
  const std::string second = fam().v6 ? "2001:db8:ff::251" : "192.0.2.251";
  node.local_addresses.push_back(Ip(second));
  Harness h({NatService(fam(), 17, ForwardingMode::kFullNat, 4)}, node);
  std::set<std::pair<std::string, uint16_t>> used;
  std::map<std::string, int> per_address;
  for (int i = 0; i < 200; ++i) {
    const Verdict v = h.Run(FromClient(i % 50, 1000 + i));
    ASSERT_EQ(v.action, Action::kTransmit) << i;
    const auto source = Source(h.out);
    EXPECT_TRUE(used.insert(source).second)
        << source.first << ":" << source.second;
    EXPECT_GE(source.second, 30000);
    EXPECT_LE(source.second, 30099);
    ++per_address[source.first];
  }
  EXPECT_EQ(per_address[fam().local], 100);  // Round-robin over both.
  EXPECT_EQ(per_address[second], 100);
  Verdict v = h.Run(FromClient(0, 999));
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.drop_reason, DropReason::kNoLocalPort);
  EXPECT_EQ(h.engine->counters().drops_for(DropReason::kNoLocalPort), 1u);
  // UDP flows idle past 5 minutes expire; their ports come back.
  EXPECT_EQ(h.engine->ExpireSome(kNow + absl::Minutes(6), 1000), 400u);
  EXPECT_EQ(h.engine->flow_table().size(), 0u);
  EXPECT_EQ(h.engine->local_ports().double_releases(), 0u);
  v = h.Run(FromClient(0, 999), kNow + absl::Minutes(6));
  EXPECT_EQ(v.action, Action::kTransmit);
}

TEST_P(FullNatPortTest, NewLocalAddressTakesNewFlowsOldFlowsKeepTheirs) {
  std::vector<ServiceConfig> services = {
      NatService(fam(), 17, ForwardingMode::kFullNat)};
  Harness h(services);
  ASSERT_EQ(h.Run(FromClient(0, 1000)).action, Action::kTransmit);
  const auto old_source = Source(h.out);
  EXPECT_EQ(old_source.first, fam().local);
  NodeConfig node = Node();
  const std::string fresh = fam().v6 ? "2001:db8:ff::251" : "192.0.2.251";
  node.local_addresses = {Ip(fresh), Ip(FamilyOf(!fam().v6).local)};
  auto snap = EngineSnapshot::Create(node, services);
  ASSERT_THAT(snap, IsOk());
  ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
  ASSERT_EQ(h.Run(FromClient(0, 1000)).action, Action::kTransmit);
  EXPECT_EQ(Source(h.out), old_source);  // The live flow keeps its lease.
  ASSERT_EQ(h.Run(FromClient(1, 1000)).action, Action::kTransmit);
  EXPECT_EQ(Source(h.out).first, fresh);
}

TEST_P(FullNatPortTest, WorkerAllocatesOnlyItsShareOfPorts) {
  EngineOptions options = Options();
  options.worker_index = 2;
  options.worker_count = 3;
  Harness h({NatService(fam(), 17, ForwardingMode::kFullNat, 4)}, Node(),
            options);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(h.Run(FromClient(i, 1000)).action, Action::kTransmit);
    EXPECT_EQ(Source(h.out).second % 3, 2) << Source(h.out).second;
  }
}

TEST(Engine, TooFewLocalPortsForTheWorkerIsInvalid) {
  NodeConfig node = Node();
  node.local_port_min = 30000;
  node.local_port_max = 30001;
  auto snap = EngineSnapshot::Create(node, {});
  ASSERT_THAT(snap, IsOk());
  FakeResolver resolver;
  EngineOptions options = Options();
  options.worker_index = 5;
  options.worker_count = 8;
  EXPECT_THAT(
      Engine::Create(*snap, &resolver, options),
      status_testing::StatusIs(absl::StatusCode::kInvalidArgument,
                               ::testing::HasSubstr("no port for worker 5")));
}

// --- Persistence ---

TEST_P(EngineFamilyTest, PersistenceKeepsAClientNetworkOnOneBackend) {
  for (ForwardingMode mode : {ForwardingMode::kDr, ForwardingMode::kNat}) {
    ServiceConfig s = mode == ForwardingMode::kDr
                          ? Service(fam(), 80, 6, mode, TunnelType::kIpip, 4)
                          : NatService(fam(), 6, mode, 4);
    for (auto& b : s.backends) {
      b.mac = mode == ForwardingMode::kDr ? b.mac : Mac{};
    }
    s.scheduler.kind = scheduler::SchedulerKind::kRr;
    s.persistence =
        scheduler::PersistencePolicy::Create(80, absl::Seconds(300), 24, 64)
            .value();
    std::vector<ServiceConfig> services = {s};
    Harness h(services);
    auto backend_of = [&](const std::vector<uint8_t>& out) {
      const ParseResult r = Parse(out);
      if (mode == ForwardingMode::kNat) {
        return MakeFlowKey(out, r.packet).dst_address().ToString();
      }
      return std::to_string(BackendOf(out));
    };
    // rr would spread these; persistence keeps the /24 (/64) together.
    std::set<std::string> chosen;
    for (int c = 0; c < 8; ++c) {
      ASSERT_EQ(h.Run(From(c, static_cast<uint16_t>(2000 + c), kSyn)).action,
                Action::kTransmit);
      chosen.insert(backend_of(h.out));
    }
    EXPECT_EQ(chosen.size(), 1u);
    EXPECT_EQ(h.engine->counters().persistence_hits, 7u);
    // A quiesced backend keeps its persistent clients (IPVS).
    for (auto& b : services[0].backends) b.weight = 0;
    auto snap = EngineSnapshot::Create(Node(), services);
    ASSERT_THAT(snap, IsOk());
    ASSERT_THAT(h.engine->UpdateSnapshot(*snap), IsOk());
    ASSERT_EQ(h.Run(From(9, 3000, kSyn), kNow + absl::Seconds(10)).action,
              Action::kTransmit);
    EXPECT_EQ(backend_of(h.out), *chosen.begin());
    // After the timeout the entry is gone: with every weight 0 nothing can
    // take the client any more.
    const Verdict v = h.Run(From(9, 3001, kSyn), kNow + absl::Seconds(400));
    EXPECT_EQ(v.drop_reason, DropReason::kNoBackend);
    EXPECT_EQ(h.engine->persistence().stats().expired, 1u);
  }
}

TEST_P(EngineFamilyTest, DrAndTunUnresolvedNextHopLeaveTheFrameUnchanged) {
  for (ForwardingMode mode : {ForwardingMode::kDr, ForwardingMode::kTun}) {
    ServiceConfig s = Service(fam(), 80, 6, mode, TunnelType::kGue);
    s.backends[0].mac = Mac{};
    Harness h({s});
    h.resolver.unresolved = {Ip(fam().backends[0])};
    const std::vector<uint8_t> syn = From(0, 1000, kSyn);
    EXPECT_EQ(h.Run(syn).drop_reason, DropReason::kNoNeighbor);
    EXPECT_THAT(h.out, FrameEq(syn));
    h.resolver.unresolved.clear();
    EXPECT_EQ(h.Run(syn).action, Action::kTransmit);
    EXPECT_EQ(h.engine->service_counters(0).new_flows, 1u);
  }
}

}  // namespace
}  // namespace anylb::dataplane
