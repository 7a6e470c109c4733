// The fast path is byte-exact: for DR, TUN IPIP / IP6IP6 and TUN GUE, over
// IPv4 and IPv6 (and GUE across families), TCP and UDP, the engine forwards
// one packet of a flow, the entry the worker would install is built from
// its output (MakeFastPathEntry) and put into the steering program's map,
// and then steer_xdp (BPF_PROG_TEST_RUN) and the engine each forward the
// flow's next packet — another length, TOS / traffic class and flags, and
// Ethernet padding: the two frames must be identical, checksums included.
// Also: what must stay on the engine's path does (SYN/FIN/RST, stale
// generation, too big for the MTU), and the counters.
//
// Needs root (BPF_PROG_TEST_RUN).

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/fastpath_entry.h"
#include "lbnode/dataplane/bpf/prog_test_run.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/bpf/steer_structs.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::bpf {
namespace {

using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::kAck;
using ::anylb::dataplane_testing::kFin;
using ::anylb::dataplane_testing::kPsh;
using ::anylb::dataplane_testing::kRst;
using ::anylb::dataplane_testing::kSyn;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::dataplane_testing::ParseMac;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::status_testing::IsOk;

constexpr char kRouterMac[] = "02:00:00:00:00:01";
constexpr char kNodeMac[] = "02:00:00:00:00:fe";
constexpr char kBackendMac[] = "02:00:00:00:00:b1";
constexpr char kNextHopMac[] = "02:00:00:00:00:31";
constexpr uint32_t kMtu = 1500;

enum class Mode { kDr, kIpip, kGue };

struct Case {
  Mode mode;
  bool v6;          // The client's (inner) family.
  bool backend_v6;  // The backend's (outer, for TUN) family.
  uint8_t proto;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  std::string mode = c.mode == Mode::kDr     ? "Dr"
                     : c.mode == Mode::kIpip ? "Ipip"
                                             : "Gue";
  return absl::StrCat(mode, c.v6 ? "V6" : "V4", "In",
                      c.backend_v6 ? "V6" : "V4",
                      c.proto == IPPROTO_TCP ? "Tcp" : "Udp");
}

const char* Vip(bool v6) { return v6 ? "2001:db8:f::1" : "192.0.2.10"; }
const char* Client(bool v6) { return v6 ? "2001:db8:c::2" : "203.0.113.2"; }
const char* Backend(bool v6) { return v6 ? "2001:db8:a::11" : "198.51.100.11"; }

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

class NextHops : public NextHopResolver {
 public:
  bool Resolve(const IpAddress&, Mac* mac) override {
    *mac = ParseMac(kNextHopMac);
    return true;
  }
};

// Engine: an engine with one service for the case.
struct EngineUnderTest {
  explicit EngineUnderTest(const Case& c) {
    NodeConfig node;
    node.mac = ParseMac(kNodeMac);
    node.tunnel_source_v4 = Ip("198.51.100.1");
    node.has_tunnel_source_v4 = true;
    node.tunnel_source_v6 = Ip("2001:db8:a::1");
    node.has_tunnel_source_v6 = true;
    node.mtu = kMtu;
    node.outer_ttl = 61;
    ServiceConfig s;
    s.vip = Ip(Vip(c.v6));
    s.port = 80;
    s.protocol = c.proto;
    s.mode = c.mode == Mode::kDr ? ForwardingMode::kDr : ForwardingMode::kTun;
    s.tunnel = c.mode == Mode::kGue ? TunnelType::kGue : TunnelType::kIpip;
    BackendConfig b;
    b.endpoint = Endpoint(Ip(Backend(c.backend_v6)), 80);
    b.mac = ParseMac(kBackendMac);
    s.backends.push_back(b);
    auto snapshot = EngineSnapshot::Create(node, {s});
    EXPECT_THAT(snapshot, IsOk());
    EngineOptions options;
    options.flow_table.capacity = 1024;
    options.flow_table.seed = 7;
    auto e = Engine::Create(*snapshot, &next_hops, options);
    EXPECT_THAT(e, IsOk());
    engine = *std::move(e);
  }

  // Forward runs the engine on `frame`; the output frame, or empty.
  std::vector<uint8_t> Forward(const std::vector<uint8_t>& frame) {
    constexpr size_t kHeadroom = 256;
    std::vector<uint8_t> buffer(kHeadroom + frame.size() + 256);
    std::copy(frame.begin(), frame.end(), buffer.begin() + kHeadroom);
    Verdict v = engine->Process(buffer, kHeadroom, frame.size(),
                                absl::FromUnixSeconds(1000));
    if (v.action != Action::kTransmit) return {};
    return {buffer.begin() + v.offset, buffer.begin() + v.offset + v.length};
  }

  NextHops next_hops;
  std::unique_ptr<Engine> engine;
};

// Packet builds a packet of the case's flow.
std::vector<uint8_t> Packet(const Case& c, uint8_t tcp_flags, uint8_t tos,
                            size_t payload, size_t pad = 0) {
  PacketBuilder b;
  b.Eth(kRouterMac, kNodeMac);
  if (c.v6) {
    b.Ipv6(Client(true), Vip(true)).TrafficClass(tos).HopLimit(60);
  } else {
    b.Ipv4(Client(false), Vip(false)).Tos(tos).Ttl(60).DontFragment();
  }
  if (c.proto == IPPROTO_TCP) {
    b.Tcp(40001, 80).Flags(tcp_flags).Seq(1000 + payload).AckNumber(77);
  } else {
    b.Udp(40001, 80);
  }
  b.Payload(std::string(payload, 'x'));
  if (pad != 0) b.Pad(pad);
  return b.Build();
}

uint64_t Counter(const SteerProgram& steer, anylb_steer_counter counter) {
  absl::StatusOr<SteerCounters> counters = steer.ReadCounters();
  EXPECT_THAT(counters, IsOk());
  return counters.ok() ? (*counters)[counter] : 0;
}

class FastPathTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("fast-path tests (BPF_PROG_TEST_RUN)"), IsOk());
    absl::StatusOr<std::unique_ptr<SteerProgram>> steer =
        SteerProgram::Load({.fastpath_flows = 1024});
    ASSERT_THAT(steer, IsOk());
    steer_ = *std::move(steer);
    const Case& c = GetParam();
    ASSERT_THAT(steer_->AddVip(Ip(Vip(c.v6)), 80, c.proto), IsOk());
    engine_ = std::make_unique<EngineUnderTest>(c);
  }

  // Install forwards `first` through the engine and installs the entry
  // built from its output (queue 0, generation 0: the map's initial one).
  void Install(const std::vector<uint8_t>& first) {
    const Case& c = GetParam();
    std::vector<uint8_t> out = engine_->Forward(first);
    ASSERT_FALSE(out.empty());
    ASSERT_TRUE(MakeFastPathEntry(
        out, c.mode == Mode::kDr ? FastPathMode::kDr : FastPathMode::kTun, kMtu,
        &entry_));
    entry_.value.slot = 3;
    ASSERT_EQ(bpf_map_update_elem(steer_->fastpath_maps().flows, &entry_.key,
                                  &entry_.value, BPF_ANY),
              0);
  }

  std::unique_ptr<SteerProgram> steer_;
  std::unique_ptr<EngineUnderTest> engine_;
  FastPathEntry entry_;
};

TEST_P(FastPathTest, RewritesTheNextPacketExactlyAsTheEngine) {
  const Case& c = GetParam();
  Install(Packet(c, kAck, 0, 10));
  // Another size, TOS with ECN CE, PSH; Ethernet padding (which TUN drops).
  for (size_t pad : {0, 6}) {
    SCOPED_TRACE(absl::StrCat("padding ", pad));
    std::vector<uint8_t> next = Packet(c, kAck | kPsh, 0xb7, 333, pad);
    std::vector<uint8_t> expected = engine_->Forward(next);
    ASSERT_FALSE(expected.empty());
    ASSERT_OK_AND_ASSIGN(TestRunResult run,
                         ProgTestRun(steer_->program_fd(), next));
    EXPECT_EQ(run.action, XDP_TX);
    EXPECT_THAT(run.output, FrameEq(expected));
  }
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_FASTPATH_TX), 2u);
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_STEER_VIP), 0u);
  anylb_fastpath_value value;
  ASSERT_EQ(
      bpf_map_lookup_elem(steer_->fastpath_maps().flows, &entry_.key, &value),
      0);
  EXPECT_EQ(value.packets, 2u);
  EXPECT_GT(value.last_seen_ns, 0u);
  // The slot's per-CPU counters add up to the two frames.
  int cpus = libbpf_num_possible_cpus();
  ASSERT_GT(cpus, 0);
  std::vector<anylb_fastpath_traffic> traffic(cpus);
  uint32_t slot = 3;
  ASSERT_EQ(bpf_map_lookup_elem(steer_->fastpath_maps().traffic, &slot,
                                traffic.data()),
            0);
  uint64_t packets = 0;
  for (const anylb_fastpath_traffic& t : traffic) packets += t.packets;
  EXPECT_EQ(packets, 2u);
}

TEST_P(FastPathTest, LeavesSynFinAndRstToTheEngine) {
  const Case& c = GetParam();
  if (c.proto != IPPROTO_TCP) GTEST_SKIP() << "TCP only";
  Install(Packet(c, kAck, 0, 10));
  for (uint8_t flags : {kSyn, static_cast<uint8_t>(kFin | kAck), kRst}) {
    std::vector<uint8_t> frame = Packet(c, flags, 0, 0);
    ASSERT_OK_AND_ASSIGN(TestRunResult run,
                         ProgTestRun(steer_->program_fd(), frame));
    // No socket in xsks_map under BPF_PROG_TEST_RUN: steered frames pass.
    EXPECT_EQ(run.action, XDP_PASS);
    EXPECT_THAT(run.output, FrameEq(frame));
  }
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_FASTPATH_PUNT), 3u);
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_STEER_VIP), 3u);
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_FASTPATH_TX), 0u);
}

TEST_P(FastPathTest, IgnoresAnEntryOfAnOldGeneration) {
  const Case& c = GetParam();
  Install(Packet(c, kAck, 0, 10));
  uint32_t queue = 0;
  uint32_t generation = 1;  // The worker's snapshot swap.
  ASSERT_EQ(bpf_map_update_elem(steer_->fastpath_maps().generations, &queue,
                                &generation, BPF_ANY),
            0);
  std::vector<uint8_t> frame = Packet(c, kAck, 0, 10);
  ASSERT_OK_AND_ASSIGN(TestRunResult run,
                       ProgTestRun(steer_->program_fd(), frame));
  EXPECT_EQ(run.action, XDP_PASS);
  EXPECT_THAT(run.output, FrameEq(frame));
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_FASTPATH_PUNT), 1u);
}

TEST_P(FastPathTest, LeavesTunnelPacketsOverTheMtuToTheEngine) {
  const Case& c = GetParam();
  if (c.mode == Mode::kDr) GTEST_SKIP() << "DR does not grow packets";
  Install(Packet(c, kAck, 0, 10));
  // The inner datagram fills the MTU: encapsulated it would not fit.
  const size_t headers = (c.v6 ? 40 : 20) + (c.proto == IPPROTO_TCP ? 20 : 8);
  std::vector<uint8_t> frame = Packet(c, kAck, 0, kMtu - headers);
  ASSERT_OK_AND_ASSIGN(TestRunResult run,
                       ProgTestRun(steer_->program_fd(), frame));
  EXPECT_EQ(run.action, XDP_PASS);
  EXPECT_THAT(run.output, FrameEq(frame));
  EXPECT_EQ(Counter(*steer_, ANYLB_STEER_CNT_FASTPATH_PUNT), 1u);
}

TEST_P(FastPathTest, SendsToTheEntrysEgressPort) {
  const Case& c = GetParam();
  Install(Packet(c, kAck, 0, 10));
  entry_.value.tx_port = 1;  // "lo": in the DEVMAP, redirected there.
  ASSERT_THAT(steer_->AddFastPathTxPort(1), IsOk());
  ASSERT_EQ(bpf_map_update_elem(steer_->fastpath_maps().flows, &entry_.key,
                                &entry_.value, BPF_ANY),
            0);
  ASSERT_OK_AND_ASSIGN(TestRunResult run, ProgTestRun(steer_->program_fd(),
                                                      Packet(c, kAck, 0, 20)));
  EXPECT_EQ(run.action, XDP_REDIRECT);
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
    for (bool v6 : {false, true}) {
      cases.push_back({Mode::kDr, v6, v6, proto});
      cases.push_back({Mode::kIpip, v6, v6, proto});
      cases.push_back({Mode::kGue, v6, v6, proto});
      cases.push_back({Mode::kGue, v6, !v6, proto});  // Across families.
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Modes, FastPathTest, ::testing::ValuesIn(Cases()),
                         CaseName);

TEST(FastPathEntry, RefusesWhatTheProgramDoesNotRewrite) {
  FastPathEntry entry;
  // A fragment.
  std::vector<uint8_t> fragment = PacketBuilder()
                                      .Eth(kNodeMac, kBackendMac)
                                      .Ipv4(Client(false), Vip(false))
                                      .MoreFragments()
                                      .Udp(1, 80)
                                      .Payload("x")
                                      .Build();
  EXPECT_FALSE(MakeFastPathEntry(fragment, FastPathMode::kDr, kMtu, &entry));
  // ICMP.
  std::vector<uint8_t> ping = PacketBuilder()
                                  .Eth(kNodeMac, kBackendMac)
                                  .Ipv4(Client(false), Vip(false))
                                  .IcmpV4(8, 0)
                                  .Build();
  EXPECT_FALSE(MakeFastPathEntry(ping, FastPathMode::kDr, kMtu, &entry));
  // IPv6 with an extension header.
  std::vector<uint8_t> ext = PacketBuilder()
                                 .Eth(kNodeMac, kBackendMac)
                                 .Ipv6(Client(true), Vip(true))
                                 .DestinationOptions()
                                 .Tcp(1, 80)
                                 .Build();
  EXPECT_FALSE(MakeFastPathEntry(ext, FastPathMode::kDr, kMtu, &entry));
  // A truncated frame.
  std::vector<uint8_t> runt = {1, 2, 3};
  EXPECT_FALSE(MakeFastPathEntry(runt, FastPathMode::kTun, kMtu, &entry));
}

TEST(FastPathLoad, RefusesAZeroSizedFlowMap) {
  EXPECT_THAT(SteerProgram::Load({.fastpath_flows = 0}),
              status_testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                       ::testing::HasSubstr("fast-path")));
}

}  // namespace
}  // namespace anylb::dataplane::bpf
