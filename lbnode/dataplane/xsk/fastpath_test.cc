// FastPath (one worker's side of the XDP fast path) against the real
// steering program and engine, without sockets: batches are processed by
// the engine in memory, FastPath installs / scans / removes entries in the
// program's maps, and the program is run on frames with BPF_PROG_TEST_RUN.
// Needs root (BPF maps and BPF_PROG_TEST_RUN).

#include "lbnode/dataplane/xsk/fastpath.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/prog_test_run.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::xsk {
namespace {

using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::kAck;
using ::anylb::dataplane_testing::kFin;
using ::anylb::dataplane_testing::kSyn;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::dataplane_testing::ParseMac;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::status_testing::IsOk;

constexpr char kRouterMac[] = "02:00:00:00:00:01";
constexpr char kNodeMac[] = "02:00:00:00:00:fe";
constexpr char kVip[] = "192.0.2.10";
constexpr char kClient[] = "203.0.113.2";
constexpr uint32_t kQueue = 3;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

class NextHops : public NextHopResolver {
 public:
  bool Resolve(const IpAddress&, Mac* mac) override {
    *mac = ParseMac("02:00:00:00:00:31");
    return true;
  }
};

std::shared_ptr<const EngineSnapshot> Snapshot(ForwardingMode mode,
                                               std::vector<const char*> rs) {
  NodeConfig node;
  node.mac = ParseMac(kNodeMac);
  node.tunnel_source_v4 = Ip("198.51.100.1");
  node.has_tunnel_source_v4 = true;
  std::vector<ServiceConfig> services;
  for (uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
    ServiceConfig s;
    s.vip = Ip(kVip);
    s.port = 80;
    s.protocol = proto;
    s.mode = mode;
    for (const char* address : rs) {
      BackendConfig b;
      b.endpoint = Endpoint(Ip(address), 80);
      b.mac = ParseMac("02:00:00:00:00:b1");
      s.backends.push_back(b);
    }
    services.push_back(s);
  }
  auto snapshot = EngineSnapshot::Create(node, services);
  EXPECT_THAT(snapshot, IsOk());
  return *snapshot;
}

std::vector<uint8_t> Frame(uint8_t proto, uint16_t sport, uint8_t flags,
                           size_t payload) {
  PacketBuilder b;
  b.Eth(kRouterMac, kNodeMac).Ipv4(kClient, kVip);
  if (proto == IPPROTO_TCP) {
    b.Tcp(sport, 80).Flags(flags);
  } else {
    b.Udp(sport, 80);
  }
  return b.Payload(std::string(payload, 'p')).Build();
}

class FastPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("FastPath tests (BPF maps, BPF_PROG_TEST_RUN)"),
                IsOk());
    ASSERT_OK_AND_ASSIGN(steer_,
                         bpf::SteerProgram::Load({.fastpath_flows = 4096}));
    ASSERT_THAT(steer_->AddVip(Ip(kVip), 80, IPPROTO_TCP), IsOk());
    ASSERT_THAT(steer_->AddVip(Ip(kVip), 80, IPPROTO_UDP), IsOk());
    EngineOptions options;
    options.flow_table.capacity = 1024;
    options.flow_table.seed = 1;
    ASSERT_OK_AND_ASSIGN(
        engine_, Engine::Create(Snapshot(ForwardingMode::kDr,
                                         {"198.51.100.11", "198.51.100.12"}),
                                &next_hops_, options));
    FastPathOptions fp;
    fp.maps = steer_->fastpath_maps();
    fp.scan_interval = absl::ZeroDuration();
    fastpath_ = std::make_unique<FastPath>(kQueue, fp, *engine_);
  }

  // Batch runs the frames through the engine and FastPath as a worker does.
  void Batch(const std::vector<std::vector<uint8_t>>& frames) {
    buffers_.assign(frames.size(), std::vector<uint8_t>(4096));
    std::vector<Packet> packets(frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      std::copy(frames[i].begin(), frames[i].end(), buffers_[i].begin() + 256);
      packets[i].buffer = buffers_[i];
      packets[i].headroom = 256;
      packets[i].frame_len = frames[i].size();
    }
    engine_->ProcessBatch(packets, now_);
    fastpath_->AfterBatch(packets, now_);
  }

  size_t Entries() {
    size_t n = 0;
    anylb_fastpath_key key{};
    anylb_fastpath_key next{};
    bool first = true;
    while (bpf_map_get_next_key(steer_->fastpath_maps().flows,
                                first ? nullptr : &key, &next) == 0) {
      ++n;
      key = next;
      first = false;
    }
    return n;
  }

  // Scan runs Maintain until one round is done.
  void Scan() {
    const uint64_t rounds = fastpath_->counters().scan_rounds;
    for (int i = 0; i < 100 && fastpath_->counters().scan_rounds == rounds;
         ++i) {
      now_ += absl::Milliseconds(1);
      fastpath_->Maintain(now_);
    }
  }

  NextHops next_hops_;
  std::unique_ptr<bpf::SteerProgram> steer_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<FastPath> fastpath_;
  std::vector<std::vector<uint8_t>> buffers_;
  absl::Time now_ = absl::FromUnixSeconds(5000);
};

TEST_F(FastPathTest, InstallsEstablishedFlowsOnlyAndForwardsTheirPackets) {
  // TCP: SYN (half-open: not installed), then ACK (established).
  Batch({Frame(IPPROTO_TCP, 1000, kSyn, 0)});
  EXPECT_EQ(fastpath_->counters().installs, 0u);
  EXPECT_EQ(Entries(), 0u);
  Batch({Frame(IPPROTO_TCP, 1000, kAck, 0), Frame(IPPROTO_UDP, 2000, 0, 4)});
  EXPECT_EQ(fastpath_->counters().installs, 2u);
  EXPECT_EQ(Entries(), 2u);
  // The next packets are the program's, as the engine would send them.
  for (const auto& [proto, sport] :
       {std::pair{IPPROTO_TCP, 1000}, std::pair{IPPROTO_UDP, 2000}}) {
    std::vector<uint8_t> next =
        Frame(proto, static_cast<uint16_t>(sport), kAck, 100);
    ASSERT_OK_AND_ASSIGN(bpf::TestRunResult run,
                         bpf::ProgTestRun(steer_->program_fd(), next));
    EXPECT_EQ(run.action, XDP_TX);
    std::vector<uint8_t> buffer(4096);
    std::copy(next.begin(), next.end(), buffer.begin() + 256);
    Verdict v = engine_->Process(buffer, 256, next.size(), now_);
    ASSERT_EQ(v.action, Action::kTransmit);
    EXPECT_THAT(run.output, FrameEq(std::vector<uint8_t>(
                                buffer.begin() + v.offset,
                                buffer.begin() + v.offset + v.length)));
  }
  // The scan folds the program's traffic into the service counters.
  Scan();
  EXPECT_EQ(fastpath_->counters().packets, 2u);
  EXPECT_EQ(fastpath_->counters().entries, 2u);
  EXPECT_EQ(fastpath_->counters().refreshes, 2u);
  uint64_t service_packets = 0;
  for (const TrafficCounters& t : fastpath_->services()) {
    service_packets += t.packets;
  }
  EXPECT_EQ(service_packets, 2u);
}

TEST_F(FastPathTest, AFinRemovesTheEntry) {
  Batch({Frame(IPPROTO_TCP, 1000, kSyn, 0)});
  Batch({Frame(IPPROTO_TCP, 1000, kAck, 0)});
  ASSERT_EQ(Entries(), 1u);
  // The program leaves the FIN to the engine; the worker then deletes.
  Batch({Frame(IPPROTO_TCP, 1000, kFin | kAck, 0)});
  EXPECT_EQ(Entries(), 0u);
  EXPECT_EQ(fastpath_->counters().removed_closed, 1u);
}

TEST_F(FastPathTest, ASnapshotSwapMakesEntriesStaleAndTheScanDeletesThem) {
  Batch({Frame(IPPROTO_UDP, 2000, 0, 4)});
  ASSERT_EQ(Entries(), 1u);
  ASSERT_THAT(engine_->UpdateSnapshot(Snapshot(
                  ForwardingMode::kDr, {"198.51.100.11", "198.51.100.13"})),
              IsOk());
  fastpath_->OnSnapshot();
  // Stale: the program sends the flow's packets to AF_XDP (no socket here:
  // XDP_PASS) until the worker reinstalls.
  std::vector<uint8_t> next = Frame(IPPROTO_UDP, 2000, 0, 8);
  ASSERT_OK_AND_ASSIGN(bpf::TestRunResult run,
                       bpf::ProgTestRun(steer_->program_fd(), next));
  EXPECT_EQ(run.action, XDP_PASS);
  Scan();
  EXPECT_EQ(fastpath_->counters().removed_stale, 1u);
  EXPECT_EQ(Entries(), 0u);
  // The next packet through the engine installs a fresh entry.
  Batch({next});
  EXPECT_EQ(Entries(), 1u);
  ASSERT_OK_AND_ASSIGN(run, bpf::ProgTestRun(steer_->program_fd(), next));
  EXPECT_EQ(run.action, XDP_TX);
}

TEST_F(FastPathTest, DeletesEntriesWhoseEngineFlowIsGone) {
  Batch({Frame(IPPROTO_UDP, 2000, 0, 4)});
  ASSERT_EQ(Entries(), 1u);
  // Idle past the UDP timeout (5 min): the engine's flow expires.
  now_ += absl::Minutes(6);
  engine_->ExpireSome(now_, 100);
  Scan();
  EXPECT_EQ(fastpath_->counters().removed_no_flow, 1u);
  EXPECT_EQ(Entries(), 0u);
}

}  // namespace
}  // namespace anylb::dataplane::xsk
