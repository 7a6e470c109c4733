// The Dataplane on a real kernel path: two namespaces joined by a veth pair
// ("gen" sends and captures with AF_PACKET; "dir" runs the steering program
// in native XDP and a Dataplane on its veth). Frames to VIPs come back
// forwarded (DR: MACs rewritten, nothing else; TUN/GUE: encapsulated, the
// engine moved the frame within its chunk); the kernel still answers pings
// to the director's own addresses; frames with mixed verdicts add up and
// every UMEM frame is accounted for at Stop(); parked frames leave when the
// neighbour appears, or are counted on overflow and timeout; 100 snapshot
// swaps under traffic lose nothing; two queues run two workers.
//
// Needs root (namespaces, XDP, AF_XDP): tagged "netns". Namespaces are
// removed by TestNetns, also when a test fails half-way. Addresses are
// documentation prefixes only.

#include "lbnode/dataplane/xsk/dataplane.h"

#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/allocation_counter.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::xsk {
namespace {

using ::anylb::dataplane_testing::FormatMac;
using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::netns_testing::MacOf;
using ::anylb::netns_testing::PacketSocket;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::ScopedNetns;
using ::anylb::netns_testing::TestNetns;
using ::anylb::status_testing::IsOk;

constexpr char kClient[] = "198.51.100.7";
constexpr char kClient6[] = "2001:db8:c::7";
constexpr char kDirector[] = "192.0.2.2";
constexpr char kDirector6[] = "2001:db8::2";
constexpr char kGen[] = "192.0.2.1";
constexpr char kGen6[] = "2001:db8::1";
constexpr char kDrVip[] = "203.0.113.10";     // TCP 80, DR.
constexpr char kDrVip6[] = "2001:db8:f::10";  // UDP 53, DR.
constexpr char kTunVip[] = "203.0.113.20";    // UDP 53, TUN GUE.
constexpr char kTunBackend[] = "198.51.100.20";
constexpr char kExtraVip[] = "203.0.113.30";  // Only in snapshot B.

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

// TestResolver resolves every tunnel next hop to `mac` once `known`.
class TestResolver : public NextHopResolver {
 public:
  bool Resolve(const IpAddress& /*dst*/, Mac* mac) override {
    if (!known.load(std::memory_order_acquire)) return false;
    *mac = this->mac;
    return true;
  }
  std::atomic<bool> known{true};
  Mac mac{};
};

bool WaitFor(const std::function<bool()>& condition,
             absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

std::string Describe(const WorkerStats& s) {
  const WorkerCounters& c = s.worker;
  std::string out =
      "queue " + std::to_string(s.queue) + ": rx " +
      std::to_string(c.rx_packets) + " tx " + std::to_string(c.tx_packets) +
      " dropped " + std::to_string(c.dropped) + " pass_unavailable " +
      std::to_string(c.pass_unavailable) + " parked " +
      std::to_string(c.parked) + " (now " + std::to_string(s.frames.parked) +
      ")" + " overflow " + std::to_string(c.neighbor_wait_overflow) +
      " timeout " + std::to_string(c.neighbor_wait_timeout) + " tx_ring_full " +
      std::to_string(c.tx_ring_full) + " swaps " +
      std::to_string(c.snapshot_swaps) + " kernel rx_dropped " +
      std::to_string(s.kernel.rx_dropped) + " rx_ring_full " +
      std::to_string(s.kernel.rx_ring_full) + " fill_empty " +
      std::to_string(s.kernel.rx_fill_ring_empty_descs) + " engine drops:";
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    if (s.engine.drops[r] != 0) {
      out += " " + std::string(DropReasonName(static_cast<DropReason>(r))) +
             "=" + std::to_string(s.engine.drops[r]);
    }
  }
  return out;
}

// Expects every frame the worker received to have ended somewhere.
void ExpectCountersAddUp(const WorkerStats& s) {
  const WorkerCounters& c = s.worker;
  EXPECT_EQ(c.rx_packets, c.tx_packets + c.dropped + c.pass_unavailable +
                              c.tx_ring_full + c.neighbor_wait_timeout +
                              c.neighbor_wait_overflow +
                              c.neighbor_wait_stopped + s.frames.parked)
      << "queue " << s.queue;
}

class DataplaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("dataplane_test"), IsOk());
    ASSERT_OK_AND_ASSIGN(gen_, TestNetns::Create("xsk-gen"));
    ASSERT_OK_AND_ASSIGN(dir_, TestNetns::Create("xsk-dir"));
    ASSERT_NO_FATAL_FAILURE(Link("dir0", "gen0", 1));
    {
      ASSERT_OK_AND_ASSIGN(auto in_gen, ScopedNetns::Enter(*gen_));
      ASSERT_OK_AND_ASSIGN(gen_mac_, MacOf("gen0"));
      ASSERT_OK_AND_ASSIGN(gen_socket_, PacketSocket::Open("gen0"));
    }
    ASSERT_OK_AND_ASSIGN(inside_, ScopedNetns::Enter(*dir_));
    ASSERT_OK_AND_ASSIGN(dir_mac_, MacOf("dir0"));
    resolver_.mac = gen_mac_;
    ASSERT_OK_AND_ASSIGN(steer_, bpf::SteerProgram::Load());
    ASSERT_THAT(steer_->AddVip(Ip(kDrVip), 0, IPPROTO_TCP), IsOk());
    ASSERT_THAT(steer_->AddVip(Ip(kDrVip6), 53, IPPROTO_UDP), IsOk());
    ASSERT_THAT(steer_->AddVip(Ip(kTunVip), 53, IPPROTO_UDP), IsOk());
    ASSERT_THAT(steer_->Attach("dir0", bpf::SteerMode::kXdpNative), IsOk());
    snapshot_a_ = Snapshot(false);
    snapshot_b_ = Snapshot(true);
    ASSERT_NE(snapshot_a_, nullptr);
    ASSERT_NE(snapshot_b_, nullptr);
  }

  void TearDown() override {
    dataplane_.reset();
    steer_.reset();
    inside_.reset();
    gen_socket_.reset();
    dir_.reset();
    gen_.reset();
  }

  // Link joins `dir_if` (in dir) and `gen_if` (in gen) with `queues`
  // queues each side, addressed from the documentation prefixes.
  void Link(const std::string& dir_if, const std::string& gen_if, int queues) {
    const std::string q = " numrxqueues " + std::to_string(queues) +
                          " numtxqueues " + std::to_string(queues);
    ASSERT_THAT(
        dir_->Run("ip link add " + dir_if + q + " type veth peer name " +
                  gen_if + q + " netns " + gen_->name()),
        IsOk());
    ASSERT_THAT(dir_->Run("ip link set " + dir_if + " up && ip addr add " +
                          kDirector + "/24 dev " + dir_if + " && ip addr add " +
                          kDirector6 + "/64 dev " + dir_if + " nodad"),
                IsOk());
    ASSERT_THAT(gen_->Run("ip link set " + gen_if + " up && ip addr add " +
                          kGen + "/24 dev " + gen_if + " && ip addr add " +
                          kGen6 + "/64 dev " + gen_if + " nodad"),
                IsOk());
  }

  std::shared_ptr<const EngineSnapshot> Snapshot(bool extra) {
    NodeConfig node;
    node.mac = dir_mac_;
    node.tunnel_source_v4 = Ip(kDirector);
    node.has_tunnel_source_v4 = true;
    node.tunnel_source_v6 = Ip(kDirector6);
    node.has_tunnel_source_v6 = true;
    std::vector<ServiceConfig> services;
    auto dr = [&](const char* vip, uint16_t port, uint8_t proto,
                  const char* backend) {
      ServiceConfig s;
      s.vip = Ip(vip);
      s.port = port;
      s.protocol = proto;
      s.mode = ForwardingMode::kDr;
      BackendConfig b;
      b.endpoint = Endpoint(Ip(backend), port);
      b.mac = gen_mac_;
      s.backends.push_back(b);
      return s;
    };
    services.push_back(dr(kDrVip, 80, IPPROTO_TCP, kGen));
    services.push_back(dr(kDrVip6, 53, IPPROTO_UDP, kGen6));
    ServiceConfig tun;
    tun.vip = Ip(kTunVip);
    tun.port = 53;
    tun.protocol = IPPROTO_UDP;
    tun.mode = ForwardingMode::kTun;
    tun.tunnel = TunnelType::kGue;
    BackendConfig b;
    b.endpoint = Endpoint(Ip(kTunBackend), 53);
    tun.backends.push_back(b);
    services.push_back(tun);
    if (extra) services.push_back(dr(kExtraVip, 80, IPPROTO_TCP, kGen));
    absl::StatusOr<std::shared_ptr<const EngineSnapshot>> snapshot =
        EngineSnapshot::Create(node, services);
    EXPECT_THAT(snapshot, IsOk());
    return snapshot.ok() ? *snapshot : nullptr;
  }

  DataplaneOptions Options() {
    DataplaneOptions options;
    options.interface = "dir0";
    options.queues = {0};
    options.mode = XskMode::kAuto;
    options.umem.frame_count = 1024;
    options.umem.fill_ring_size = 512;
    options.umem.completion_ring_size = 512;
    options.rx_ring_size = 512;
    options.tx_ring_size = 512;
    options.worker.batch_size = 32;
    options.worker.stats_interval = absl::Milliseconds(10);
    options.worker.neighbor_generation = &generation_;
    return options;
  }

  void Start(const DataplaneOptions& options) {
    EngineFactory factory = [this](uint32_t) {
      EngineOptions engine_options;
      engine_options.flow_table.capacity = 4096;
      engine_options.flow_table.seed = 42;
      return Engine::Create(snapshot_a_, &resolver_, engine_options);
    };
    ASSERT_OK_AND_ASSIGN(dataplane_,
                         Dataplane::Create(options, steer_.get(), factory));
  }

  std::vector<uint8_t> Tcp(const char* vip, uint16_t sport,
                           uint16_t dport = 80) const {
    return PacketBuilder()
        .Eth(FormatMac(gen_mac_), FormatMac(dir_mac_))
        .Ipv4(kClient, vip)
        .Tcp(sport, dport)
        .Flags(0x02)
        .Payload("hello")
        .Build();
  }
  std::vector<uint8_t> Udp6(uint16_t sport) const {
    return PacketBuilder()
        .Eth(FormatMac(gen_mac_), FormatMac(dir_mac_))
        .Ipv6(kClient6, kDrVip6)
        .Udp(sport, 53)
        .Payload("query")
        .Build();
  }
  std::vector<uint8_t> TunUdp(uint16_t sport) const {
    return PacketBuilder()
        .Eth(FormatMac(gen_mac_), FormatMac(dir_mac_))
        .Ipv4(kClient, kTunVip)
        .Udp(sport, 53)
        .Payload("tunnel me")
        .Build();
  }
  std::vector<uint8_t> Ping(const char* vip) const {
    return PacketBuilder()
        .Eth(FormatMac(gen_mac_), FormatMac(dir_mac_))
        .Ipv4(kClient, vip)
        .IcmpV4(8, 0)
        .Payload("ping")
        .Build();
  }

  // DrOutput: what DR makes of `frame`: new MACs, nothing else.
  std::vector<uint8_t> DrOutput(std::vector<uint8_t> frame) const {
    std::copy(gen_mac_.begin(), gen_mac_.end(), frame.begin());
    std::copy(dir_mac_.begin(), dir_mac_.end(), frame.begin() + 6);
    return frame;
  }

  // Forwarded: the next frame from the director (source MAC dir's) that
  // the gen side receives, skipping the kernels' own (ND, MLD, ARP).
  std::optional<std::vector<uint8_t>> Forwarded(
      absl::Duration timeout = absl::Seconds(2), PacketSocket* on = nullptr) {
    if (on == nullptr) on = gen_socket_.get();
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      std::optional<std::vector<uint8_t>> frame =
          on->Receive(deadline - absl::Now());
      if (!frame.has_value()) return std::nullopt;
      if (frame->size() < 14) continue;
      auto ether_type = static_cast<uint16_t>((*frame)[12] << 8 | (*frame)[13]);
      if (ether_type != 0x0800 && ether_type != 0x86dd) continue;
      // The director's kernel sends IPv6 ND/MLD (ICMPv6, maybe after a
      // hop-by-hop header) and ICMP echo replies: not ours.
      if (ether_type == 0x86dd && frame->size() > 20 &&
          ((*frame)[20] == 58 || (*frame)[20] == 0)) {
        continue;
      }
      if (ether_type == 0x0800 && frame->size() > 34 && (*frame)[23] == 1 &&
          (*frame)[34] == 0) {
        continue;
      }
      if (!std::equal(dir_mac_.begin(), dir_mac_.end(), frame->begin() + 6) ||
          !std::equal(gen_mac_.begin(), gen_mac_.end(), frame->begin())) {
        continue;
      }
      return frame;
    }
    return std::nullopt;
  }

  // CountForwarded receives until `n` frames came or `timeout` passed.
  size_t CountForwarded(size_t n, absl::Duration timeout = absl::Seconds(5),
                        PacketSocket* on = nullptr) {
    size_t count = 0;
    const absl::Time deadline = absl::Now() + timeout;
    while (count < n && absl::Now() < deadline) {
      if (Forwarded(deadline - absl::Now(), on).has_value()) ++count;
    }
    return count;
  }

  WorkerStats Stats0() { return dataplane_->Stats().at(0); }

  std::unique_ptr<TestNetns> gen_;
  std::unique_ptr<TestNetns> dir_;
  std::unique_ptr<ScopedNetns> inside_;
  std::unique_ptr<PacketSocket> gen_socket_;
  Mac gen_mac_{};
  Mac dir_mac_{};
  TestResolver resolver_;
  std::atomic<uint64_t> generation_{0};
  std::unique_ptr<bpf::SteerProgram> steer_;
  std::shared_ptr<const EngineSnapshot> snapshot_a_;
  std::shared_ptr<const EngineSnapshot> snapshot_b_;
  std::unique_ptr<Dataplane> dataplane_;
};

TEST_F(DataplaneTest, ForwardsDrFramesWithOnlyTheMacsRewritten) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  EXPECT_EQ(dataplane_->mode(), XskMode::kCopy);  // veth: no zero-copy.
  for (const std::vector<uint8_t>& frame : {Tcp(kDrVip, 40000), Udp6(40001)}) {
    ASSERT_THAT(gen_socket_->Send(frame), IsOk());
    std::optional<std::vector<uint8_t>> got = Forwarded();
    ASSERT_TRUE(got.has_value())
        << "the VIP frame did not come back; " << Describe(Stats0());
    EXPECT_THAT(*got, FrameEq(DrOutput(frame)));
  }
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.worker.rx_packets, 2u);
  EXPECT_EQ(s.worker.tx_packets, 2u);
  EXPECT_EQ(s.engine.tx_packets, 2u);
  ASSERT_EQ(s.services.size(), 3u);
  EXPECT_EQ(s.services[0].packets, 1u);
  EXPECT_EQ(s.services[1].packets, 1u);
  EXPECT_EQ(s.frames.unaccounted(), 0);
}

// Traffic to the director's own addresses is not steered: the kernel
// answers (echo requests built by hand: the test image has no ping).
TEST_F(DataplaneTest, KernelStillAnswersPingsToTheDirector) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    PacketBuilder b;
    b.Eth(FormatMac(gen_mac_), FormatMac(dir_mac_));
    if (v6) {
      b.Ipv6(kGen6, kDirector6).IcmpV6(128, 0);
    } else {
      b.Ipv4(kGen, kDirector).IcmpV4(8, 0);
    }
    ASSERT_THAT(
        gen_socket_->Send(b.IcmpRest(0x12340001).Payload("ping").Build()),
        IsOk());
    // The reply: ICMP echo reply (0) or ICMPv6 echo reply (129).
    const size_t type_at = v6 ? 14 + 40 : 14 + 20;
    const uint8_t reply = v6 ? 129 : 0;
    bool answered = false;
    const absl::Time deadline = absl::Now() + absl::Seconds(3);
    while (!answered && absl::Now() < deadline) {
      std::optional<std::vector<uint8_t>> frame =
          gen_socket_->Receive(deadline - absl::Now());
      if (!frame.has_value()) break;
      answered =
          frame->size() > type_at &&
          std::equal(dir_mac_.begin(), dir_mac_.end(), frame->begin() + 6) &&
          (*frame)[12] == (v6 ? 0x86 : 0x08) &&
          (*frame)[v6 ? 20 : 23] == (v6 ? 58 : 1) && (*frame)[type_at] == reply;
    }
    EXPECT_TRUE(answered) << "no echo reply from the director's kernel";
  }
  EXPECT_EQ(Stats0().worker.rx_packets, 0u);
}

TEST_F(DataplaneTest, TunGueFramesLeaveEncapsulated) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  std::vector<uint8_t> frame = TunUdp(40002);
  ASSERT_THAT(gen_socket_->Send(frame), IsOk());
  std::optional<std::vector<uint8_t>> got = Forwarded();
  ASSERT_TRUE(got.has_value())
      << "the TUN frame did not come back; " << Describe(Stats0());
  const std::vector<uint8_t> inner(frame.begin() + 14, frame.end());
  ASSERT_EQ(got->size(), 14 + 20 + 8 + inner.size());
  EXPECT_TRUE(std::equal(gen_mac_.begin(), gen_mac_.end(), got->begin()));
  EXPECT_EQ((*got)[12], 0x08);
  EXPECT_EQ((*got)[13], 0x00);
  EXPECT_EQ((*got)[14 + 9], IPPROTO_UDP);
  const std::vector<uint8_t> outer_dst(got->begin() + 30, got->begin() + 34);
  EXPECT_EQ(outer_dst, (std::vector<uint8_t>{198, 51, 100, 20}));
  EXPECT_EQ((*got)[14 + 20 + 2] << 8 | (*got)[14 + 20 + 3], kDefaultGuePort);
  EXPECT_EQ(std::vector<uint8_t>(got->begin() + 42, got->end()), inner);
}

TEST_F(DataplaneTest, ParkedFramesLeaveWhenTheNeighbourAppears) {
  resolver_.known = false;
  DataplaneOptions options = Options();
  options.worker.park_retry_interval = absl::Hours(1);  // Generation only.
  options.worker.park_timeout = absl::Seconds(30);
  ASSERT_NO_FATAL_FAILURE(Start(options));
  for (uint16_t port = 41000; port < 41003; ++port) {
    ASSERT_THAT(gen_socket_->Send(TunUdp(port)), IsOk());
  }
  ASSERT_TRUE(WaitFor([&] { return Stats0().frames.parked == 3; }))
      << Describe(Stats0());
  EXPECT_FALSE(Forwarded(absl::Milliseconds(100)).has_value());
  resolver_.known = true;
  generation_.fetch_add(1);
  EXPECT_EQ(CountForwarded(3), 3u);
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_EQ(s.worker.parked, 3u);
  EXPECT_EQ(s.worker.parked_forwarded, 3u);
  EXPECT_EQ(s.worker.tx_packets, 3u);
  EXPECT_EQ(s.frames.unaccounted(), 0);
  ExpectCountersAddUp(s);
}

TEST_F(DataplaneTest, ParkOverflowAndTimeoutAreCounted) {
  resolver_.known = false;
  DataplaneOptions options = Options();
  options.worker.park_capacity = 4;
  options.worker.park_timeout = absl::Milliseconds(300);
  ASSERT_NO_FATAL_FAILURE(Start(options));
  for (uint16_t port = 42000; port < 42006; ++port) {
    ASSERT_THAT(gen_socket_->Send(TunUdp(port)), IsOk());
  }
  ASSERT_TRUE(WaitFor([&] {
    WorkerStats s = Stats0();
    return s.worker.neighbor_wait_overflow == 2 &&
           s.worker.neighbor_wait_timeout == 4;
  })) << Describe(Stats0());
  WorkerStats s = Stats0();
  EXPECT_EQ(s.worker.parked, 4u);
  EXPECT_EQ(s.frames.parked, 0u);
  EXPECT_EQ(s.worker.tx_packets, 0u);
  EXPECT_FALSE(Forwarded(absl::Milliseconds(100)).has_value());
  ExpectCountersAddUp(s);
}

TEST_F(DataplaneTest, MixedVerdictsAddUpAndEveryFrameIsAccountedFor) {
  resolver_.known = false;
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  constexpr int kEach = 40;
  for (int i = 0; i < kEach; ++i) {
    const auto port = static_cast<uint16_t>(43000 + i);
    ASSERT_THAT(gen_socket_->Send(Tcp(kDrVip, port)), IsOk());      // DR
    ASSERT_THAT(gen_socket_->Send(Tcp(kDrVip, port, 81)), IsOk());  // drop
    ASSERT_THAT(gen_socket_->Send(TunUdp(port)), IsOk());           // park
    if (i % 2 == 0) {
      ASSERT_THAT(gen_socket_->Send(Ping(kDrVip)), IsOk());  // pass
    }
  }
  ASSERT_TRUE(WaitFor([&] {
    return Stats0().worker.rx_packets == 3 * kEach + kEach / 2;
  })) << Describe(Stats0());
  resolver_.known = true;
  generation_.fetch_add(1);
  EXPECT_EQ(CountForwarded(size_t{2} * kEach), size_t{2} * kEach);
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_EQ(s.worker.rx_packets, 3u * kEach + kEach / 2);
  EXPECT_EQ(s.worker.tx_packets, 2u * kEach);
  EXPECT_EQ(s.worker.dropped, uint64_t{kEach});
  EXPECT_EQ(s.engine.drops_for(DropReason::kNoService), uint64_t{kEach});
  EXPECT_EQ(s.worker.pass_unavailable, uint64_t{kEach / 2});
  EXPECT_EQ(s.worker.parked, uint64_t{kEach});
  EXPECT_EQ(s.worker.parked_forwarded, uint64_t{kEach});
  ExpectCountersAddUp(s);
  // Every frame is back: on the free stack or in the fill ring.
  EXPECT_EQ(s.frames.unaccounted(), 0);
  EXPECT_EQ(s.frames.tx_in_flight, 0u);
  EXPECT_EQ(s.frames.parked, 0u);
  EXPECT_EQ(s.frames.rx, 0u);
  EXPECT_EQ(s.frames.free + s.frames.fill, s.frames.total);
  EXPECT_EQ(s.kernel.rx_dropped, 0u);
}

TEST_F(DataplaneTest, HundredSnapshotSwapsUnderTrafficLoseNothing) {
  // The production ring sizes: the rings hold the frames that arrive while
  // the engine rebuilds its schedulers.
  DataplaneOptions options = Options();
  options.umem = UmemOptions();
  options.rx_ring_size = 2048;
  options.tx_ring_size = 2048;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  constexpr int kFrames = 3000;
  std::atomic<bool> send_failed{false};
  std::thread sender([&] {
    for (int i = 0; i < kFrames; ++i) {
      if (!gen_socket_->Send(Tcp(kDrVip, static_cast<uint16_t>(20000 + i)))
               .ok()) {
        send_failed = true;
      }
      if (i % 10 == 9) absl::SleepFor(absl::Microseconds(500));
    }
  });
  // Each swap waits until the worker adopted the previous one.
  for (int swap = 1; swap <= 100; ++swap) {
    dataplane_->PostSnapshot(swap % 2 == 1 ? snapshot_b_ : snapshot_a_);
    ASSERT_TRUE(WaitFor([&] {
      return Stats0().worker.snapshot_swaps == static_cast<uint64_t>(swap);
    })) << "swap "
        << swap;
  }
  sender.join();
  ASSERT_FALSE(send_failed);
  EXPECT_EQ(CountForwarded(kFrames, absl::Seconds(10)),
            static_cast<size_t>(kFrames));
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_EQ(s.worker.snapshot_swaps, 100u) << Describe(s);
  EXPECT_EQ(s.worker.snapshot_errors, 0u);
  EXPECT_EQ(s.worker.rx_packets, static_cast<uint64_t>(kFrames));
  EXPECT_EQ(s.worker.tx_packets, static_cast<uint64_t>(kFrames));
  EXPECT_EQ(s.kernel.rx_dropped, 0u);
  EXPECT_EQ(s.frames.unaccounted(), 0);
}

TEST_F(DataplaneTest, EveryQueueGetsAWorker) {
  ASSERT_NO_FATAL_FAILURE(Link("dir1", "gen1", 2));
  ASSERT_THAT(steer_->Attach("dir1", bpf::SteerMode::kXdpNative), IsOk());
  std::unique_ptr<PacketSocket> gen1;
  {
    ASSERT_OK_AND_ASSIGN(auto in_gen, ScopedNetns::Enter(*gen_));
    ASSERT_OK_AND_ASSIGN(gen1, PacketSocket::Open("gen1"));
  }
  ASSERT_OK_AND_ASSIGN(Mac dir1_mac, MacOf("dir1"));
  DataplaneOptions options = Options();
  options.interface = "dir1";
  options.queues.clear();  // All of them.
  ASSERT_NO_FATAL_FAILURE(Start(options));
  EXPECT_EQ(dataplane_->worker_count(), 2u);
  EXPECT_EQ(dataplane_->queues(), (std::vector<uint32_t>{0, 1}));
  constexpr int kFrames = 40;
  for (int i = 0; i < kFrames; ++i) {
    std::vector<uint8_t> frame = Tcp(kDrVip, static_cast<uint16_t>(44000 + i));
    std::copy(dir1_mac.begin(), dir1_mac.end(), frame.begin());
    ASSERT_THAT(gen1->Send(frame), IsOk());
  }
  ASSERT_TRUE(WaitFor([&] {
    uint64_t rx = 0;
    for (const WorkerStats& s : dataplane_->Stats()) rx += s.worker.rx_packets;
    return rx == kFrames;
  })) << Describe(dataplane_->Stats()[0])
      << "\n"
      << Describe(dataplane_->Stats()[1]);
  EXPECT_GT(dataplane_->OldestProgress(), absl::InfinitePast());
  dataplane_->Stop();
  for (const WorkerStats& s : dataplane_->Stats()) {
    EXPECT_EQ(s.worker.tx_packets, s.worker.rx_packets) << "queue " << s.queue;
    EXPECT_EQ(s.frames.unaccounted(), 0) << "queue " << s.queue;
  }
}

// RX on dir0, TX through a second socket on dir1 sharing the UMEM: the
// forwarded frames leave by dir1, none by dir0.
TEST_F(DataplaneTest, TransmitsOnAnotherInterface) {
  ASSERT_NO_FATAL_FAILURE(Link("dir1", "gen1", 1));
  std::unique_ptr<PacketSocket> gen1;
  {
    ASSERT_OK_AND_ASSIGN(auto in_gen, ScopedNetns::Enter(*gen_));
    ASSERT_OK_AND_ASSIGN(gen1, PacketSocket::Open("gen1"));
  }
  DataplaneOptions options = Options();
  options.tx_interface = "dir1";
  ASSERT_NO_FATAL_FAILURE(Start(options));
  constexpr int kFrames = 20;
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_THAT(
        gen_socket_->Send(Tcp(kDrVip, static_cast<uint16_t>(46000 + i))),
        IsOk());
  }
  EXPECT_EQ(CountForwarded(kFrames, absl::Seconds(5), gen1.get()),
            static_cast<size_t>(kFrames));
  EXPECT_FALSE(Forwarded(absl::Milliseconds(100)).has_value());
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_EQ(s.worker.tx_packets, static_cast<uint64_t>(kFrames));
  EXPECT_EQ(s.frames.unaccounted(), 0) << Describe(s);
  EXPECT_EQ(s.frames.tx_in_flight, 0u);
}

// Busy polling (socket options + a spinning loop) still forwards.
TEST_F(DataplaneTest, BusyPollForwards) {
  DataplaneOptions options = Options();
  options.busy_poll = true;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  std::vector<uint8_t> frame = Tcp(kDrVip, 47000);
  ASSERT_THAT(gen_socket_->Send(frame), IsOk());
  std::optional<std::vector<uint8_t>> got = Forwarded();
  ASSERT_TRUE(got.has_value()) << Describe(Stats0());
  EXPECT_THAT(*got, FrameEq(DrOutput(frame)));
}

// The worker's loop does not allocate per packet: forwarded, dropped,
// passed and parked frames while every allocation in the process is
// counted (stats publishing, which allocates, is pushed out of the window).
TEST_F(DataplaneTest, WorkerDoesNotAllocatePerPacket) {
  resolver_.known = false;
  DataplaneOptions options = Options();
  options.worker.stats_interval = absl::Hours(1);
  ASSERT_NO_FATAL_FAILURE(Start(options));
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 50; ++i) {
    const auto port = static_cast<uint16_t>(48000 + i);
    frames.push_back(Tcp(kDrVip, port));
    frames.push_back(Tcp(kDrVip, port, 81));
    frames.push_back(Ping(kDrVip));
    frames.push_back(TunUdp(port));
  }
  // The first publication happens at the first loop iteration: let it pass.
  absl::SleepFor(absl::Milliseconds(100));
  alloc_testing::StartCountingAllocations();
  for (const std::vector<uint8_t>& frame : frames) {
    if (!gen_socket_->Send(frame).ok()) break;
  }
  absl::SleepFor(absl::Milliseconds(300));  // Let the worker take them.
  const uint64_t allocations = alloc_testing::StopCountingAllocations();
  EXPECT_EQ(allocations, 0u);
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_EQ(s.worker.rx_packets, frames.size()) << Describe(s);
  EXPECT_EQ(s.worker.tx_packets, 50u);
  EXPECT_EQ(s.worker.parked, 50u);
}

// A TX ring too small for a batch: the frames that do not fit are counted
// (tx_ring_full) and go back to the free stack; the rest leave.
TEST_F(DataplaneTest, TxRingFullIsCountedAndFramesComeBack) {
  std::atomic<bool> hold{true};
  DataplaneOptions options = Options();
  options.tx_ring_size = 16;
  options.worker.batch_size = 64;
  options.worker.before_batch = [&](uint32_t) {
    while (hold.load()) absl::SleepFor(absl::Milliseconds(1));
  };
  ASSERT_NO_FATAL_FAILURE(Start(options));
  // The worker is held: the frames pile up in the RX ring, then arrive as
  // one 64-frame batch for a 16-slot TX ring.
  constexpr int kFrames = 100;
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_THAT(
        gen_socket_->Send(Tcp(kDrVip, static_cast<uint16_t>(49000 + i))),
        IsOk());
  }
  absl::SleepFor(absl::Milliseconds(50));  // Let the kernel deliver them.
  hold = false;
  ASSERT_TRUE(WaitFor([&] { return Stats0().worker.rx_packets == kFrames; }))
      << Describe(Stats0());
  dataplane_->Stop();
  WorkerStats s = Stats0();
  EXPECT_GT(s.worker.tx_ring_full, 0u) << Describe(s);
  EXPECT_EQ(s.worker.tx_packets + s.worker.tx_ring_full,
            static_cast<uint64_t>(kFrames));
  EXPECT_EQ(CountForwarded(s.worker.tx_packets), s.worker.tx_packets);
  ExpectCountersAddUp(s);
  EXPECT_EQ(s.frames.unaccounted(), 0);
  EXPECT_EQ(s.frames.tx_in_flight, 0u);
}

// before_batch runs on every loop iteration; a worker stuck in it stops
// advancing last_progress (what the routing layer watches).
TEST_F(DataplaneTest, AStuckWorkerStopsMakingProgress) {
  std::atomic<bool> stuck{false};
  std::atomic<bool> inside{false};
  std::atomic<uint64_t> calls{0};
  DataplaneOptions options = Options();
  options.worker.before_batch = [&](uint32_t) {
    calls.fetch_add(1);
    while (stuck.load()) {
      inside = true;
      absl::SleepFor(absl::Milliseconds(1));
    }
    inside = false;
  };
  ASSERT_NO_FATAL_FAILURE(Start(options));
  ASSERT_TRUE(WaitFor([&] { return calls.load() > 3; }));
  stuck = true;
  ASSERT_TRUE(WaitFor([&] { return inside.load(); }));
  const absl::Time frozen = dataplane_->OldestProgress();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(dataplane_->OldestProgress(), frozen);
  stuck = false;
  EXPECT_TRUE(WaitFor([&] { return dataplane_->OldestProgress() > frozen; }));
}

TEST_F(DataplaneTest, StopTakesTheSocketsOutOfTheSteeringMap) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  dataplane_->Stop();
  ASSERT_OK_AND_ASSIGN(bpf::SteerCounters before, steer_->ReadCounters());
  ASSERT_THAT(gen_socket_->Send(Tcp(kDrVip, 45000)), IsOk());
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<bpf::SteerCounters> after = steer_->ReadCounters();
    return after.ok() && (*after)[ANYLB_STEER_CNT_STEER_NO_SOCKET] ==
                             before[ANYLB_STEER_CNT_STEER_NO_SOCKET] + 1;
  }));
  EXPECT_FALSE(Forwarded(absl::Milliseconds(200)).has_value());
}

TEST_F(DataplaneTest, BadOptionsAreRefusedWithTheFix) {
  DataplaneOptions options = Options();
  options.worker.batch_size = 0;
  EngineFactory factory = [this](uint32_t) {
    return Engine::Create(snapshot_a_, &resolver_);
  };
  EXPECT_THAT(Dataplane::Create(options, steer_.get(), factory),
              ::anylb::status_testing::StatusIs(
                  absl::StatusCode::kInvalidArgument,
                  ::testing::HasSubstr("batch size 0 is out of range")));
  options = Options();
  options.queues = {0, 0};
  EXPECT_THAT(
      Dataplane::Create(options, steer_.get(), factory),
      ::anylb::status_testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                        ::testing::HasSubstr("listed twice")));
  options = Options();
  options.interface = "nope0";
  options.queues.clear();
  EXPECT_THAT(Dataplane::Create(options, steer_.get(), factory),
              ::anylb::status_testing::StatusIs(absl::StatusCode::kNotFound,
                                                ::testing::HasSubstr("nope0")));
}

}  // namespace
}  // namespace anylb::dataplane::xsk
