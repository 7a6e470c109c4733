// engine_benchmark: ns per packet through Engine::Process for DR, TUN
// (IPIP / IP6IP6, GUE), NAT and FULLNAT, flow-table hit and miss, IPv4 and
// IPv6, and for NAT/FULLNAT replies (the backend's answer to an established
// flow).
//
//   bazel run -c opt //lbnode/dataplane:engine_benchmark
//
// Hit: one established flow processed over and over (the header rewrite is
// redone on a fresh copy of the frame each time, as a real worker would see
// a new frame). Miss: every packet has a new source port, so every packet
// looks up, schedules (mh, 4 backends), inserts, and eventually evicts from
// a full table of `capacity` flows (NAT/FULLNAT: two entries per flow, and
// FULLNAT allocates and releases a local port).
// BM_Flows: DR hits over many flows, Process vs ProcessBatch (see there).
// The time is passed as a scheduler::FlowClock, converted once, as the
// AF_XDP worker does once per batch (the benchmark used to pass an
// absl::Time, which the flow table converted twice per packet).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lbnode/dataplane/byte_order.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane {
namespace {

using dataplane_testing::kAck;
using dataplane_testing::PacketBuilder;

class AlwaysResolver : public NextHopResolver {
 public:
  bool Resolve(const IpAddress&, Mac* mac) override {
    *mac = {0x02, 0, 0, 0, 0, 0x31};
    return true;
  }
};

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

enum Mode { kDr, kIpip, kGue, kNat, kFullNat };

const char* ModeName(Mode mode) {
  switch (mode) {
    case kDr:
      return "dr";
    case kIpip:
      return "tun-ipip";
    case kGue:
      return "tun-gue";
    case kNat:
      return "nat";
    case kFullNat:
      return "fullnat";
  }
  return "?";
}

std::unique_ptr<Engine> MakeEngine(bool v6, Mode mode,
                                   NextHopResolver* resolver) {
  NodeConfig node;
  node.mac = {0x02, 0, 0, 0, 0, 0xfe};
  node.tunnel_source_v4 = Ip("192.0.2.254");
  node.has_tunnel_source_v4 = true;
  node.tunnel_source_v6 = Ip("2001:db8:ff::fe");
  node.has_tunnel_source_v6 = true;
  node.local_addresses = {Ip("192.0.2.250"), Ip("2001:db8:ff::250")};
  ServiceConfig s;
  s.vip = Ip(v6 ? "2001:db8:10::10" : "203.0.113.10");
  s.port = 80;
  s.protocol = 6;
  s.mode = mode == kDr        ? ForwardingMode::kDr
           : mode == kNat     ? ForwardingMode::kNat
           : mode == kFullNat ? ForwardingMode::kFullNat
                              : ForwardingMode::kTun;
  s.tunnel = mode == kGue ? TunnelType::kGue : TunnelType::kIpip;
  for (int i = 1; i <= 4; ++i) {
    BackendConfig b;
    b.endpoint = Endpoint(
        Ip((std::string(v6 ? "2001:db8:2::" : "192.0.2.") + std::to_string(i))
               .c_str()),
        mode == kNat || mode == kFullNat ? 8080 : 80);
    b.mac = {0x02, 0, 0, 0, 0, static_cast<uint8_t>(0x20 + i)};
    s.backends.push_back(b);
  }
  auto snap = EngineSnapshot::Create(node, {s});
  if (!snap.ok()) std::abort();
  EngineOptions options;
  options.flow_table.capacity = 1 << 16;
  options.flow_table.seed = 7;
  auto engine = Engine::Create(*snap, resolver, options);
  if (!engine.ok()) std::abort();
  return std::move(*engine);
}

std::vector<uint8_t> Frame(bool v6) {
  PacketBuilder b;
  b.Eth("02:00:00:00:00:01", "02:00:00:00:00:fe");
  if (v6) {
    b.Ipv6("2001:db8:1::1", "2001:db8:10::10");
  } else {
    b.Ipv4("198.51.100.1", "203.0.113.10");
  }
  return b.Tcp(40000, 80).Flags(kAck).Payload(std::string(64, 'x')).Build();
}

// args: v6, mode, miss.
void BM_Process(benchmark::State& state) {
  const bool v6 = state.range(0) != 0;
  const Mode mode = static_cast<Mode>(state.range(1));
  const bool miss = state.range(2) != 0;
  AlwaysResolver resolver;
  std::unique_ptr<Engine> engine = MakeEngine(v6, mode, &resolver);
  const std::vector<uint8_t> frame = Frame(v6);
  constexpr size_t kHeadroom = 256;
  std::vector<uint8_t> buffer(2048);
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  // The time as the AF_XDP worker passes it: converted once per batch.
  const scheduler::FlowClock clock = scheduler::FlowClock::FromTime(now);
  const size_t sport_offset = 14 + (v6 ? 40 : 20);
  uint16_t sport = 1;
  for (auto _ : state) {
    std::memcpy(buffer.data() + kHeadroom, frame.data(), frame.size());
    if (miss) {
      // New source port (the TCP checksum goes stale: the engine does not
      // verify it).
      StoreBe16(buffer.data() + kHeadroom + sport_offset, sport++);
      if (sport == 0) sport = 1;
    }
    Verdict v = engine->Process(buffer, kHeadroom, frame.size(), clock);
    benchmark::DoNotOptimize(v);
  }
  if (engine->counters().tx_packets != engine->counters().rx_packets) {
    state.SkipWithError("not every packet was transmitted");
  }
  state.SetLabel(std::string(v6 ? "ipv6 " : "ipv4 ") + ModeName(mode) +
                 (miss ? " miss" : " hit"));
}

BENCHMARK(BM_Process)
    ->ArgNames({"v6", "mode", "miss"})
    ->ArgsProduct({{0, 1}, {kDr, kIpip, kGue, kNat, kFullNat}, {0, 1}});

// args: v6, mode (kNat or kFullNat). The backend's answer to one
// established flow, over and over: reply-entry hit, linked forward entry,
// TCP state both ways, source (and FULLNAT destination) rewrite.
void BM_Reply(benchmark::State& state) {
  const bool v6 = state.range(0) != 0;
  const Mode mode = static_cast<Mode>(state.range(1));
  AlwaysResolver resolver;
  std::unique_ptr<Engine> engine = MakeEngine(v6, mode, &resolver);
  const std::vector<uint8_t> frame = Frame(v6);
  constexpr size_t kHeadroom = 256;
  std::vector<uint8_t> buffer(2048);
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  // The time as the AF_XDP worker passes it: converted once per batch.
  const scheduler::FlowClock clock = scheduler::FlowClock::FromTime(now);
  std::memcpy(buffer.data() + kHeadroom, frame.data(), frame.size());
  const Verdict fwd = engine->Process(buffer, kHeadroom, frame.size(), now);
  if (fwd.action != Action::kTransmit) std::abort();
  // The answer: the forwarded frame with addresses and ports swapped.
  std::vector<uint8_t> reply(buffer.begin() + fwd.offset,
                             buffer.begin() + fwd.offset + fwd.length);
  const size_t ip = 14;
  const size_t a = ip + (v6 ? 8 : 12);
  const size_t n = v6 ? 16 : 4;
  std::swap_ranges(reply.begin() + a, reply.begin() + a + n,
                   reply.begin() + a + n);
  const size_t l4 = ip + (v6 ? 40 : 20);
  std::swap_ranges(reply.begin() + l4, reply.begin() + l4 + 2,
                   reply.begin() + l4 + 2);
  for (auto _ : state) {
    std::memcpy(buffer.data() + kHeadroom, reply.data(), reply.size());
    Verdict v = engine->Process(buffer, kHeadroom, reply.size(), clock);
    benchmark::DoNotOptimize(v);
  }
  if (engine->counters().tx_packets != engine->counters().rx_packets) {
    state.SkipWithError("not every packet was transmitted");
  }
  state.SetLabel(std::string(v6 ? "ipv6 " : "ipv4 ") + ModeName(mode) +
                 " reply");
}

BENCHMARK(BM_Reply)
    ->ArgNames({"v6", "mode"})
    ->ArgsProduct({{0, 1}, {kNat, kFullNat}});

// args: flows, batch. DR over IPv4, `flows` established flows (a 64K
// table), frames in batches of 64 visiting the flows in a scrambled order:
// batch = 0 calls Process for each frame, batch = 1 calls ProcessBatch once
// per 64 (parse and hash all, prefetch the flow-table slots, then the
// lookups). Every frame is copied fresh into its own buffer each time (the
// copies are in the time; BM_CopyFrameOnly is one copy). per_packet is the
// time per frame.
void BM_Flows(benchmark::State& state) {
  const size_t flows = static_cast<size_t>(state.range(0));
  const bool batch = state.range(1) != 0;
  constexpr size_t kBatch = Engine::kMaxBatch;
  constexpr size_t kHeadroom = 256;
  AlwaysResolver resolver;
  std::unique_ptr<Engine> engine = MakeEngine(false, kDr, &resolver);
  const std::vector<uint8_t> frame = Frame(false);
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  // The time as the AF_XDP worker passes it: converted once per batch.
  const scheduler::FlowClock clock = scheduler::FlowClock::FromTime(now);
  const size_t sport_offset = 14 + 20;
  // Flow i: source port 1 + i % 60000, client address .1 + i / 60000.
  auto make = [&](size_t i, uint8_t* at) {
    std::memcpy(at, frame.data(), frame.size());
    StoreBe16(at + sport_offset, static_cast<uint16_t>(1 + i % 60000));
    at[14 + 15] = static_cast<uint8_t>(1 + i / 60000);
  };
  std::vector<uint8_t> one(2048);
  for (size_t i = 0; i < flows; ++i) {
    for (int k = 0; k < 2; ++k) {  // ACK, ACK: SYN_RECV, then ESTABLISHED.
      make(i, one.data() + kHeadroom);
      engine->Process(one, kHeadroom, frame.size(), now);
    }
  }
  if (engine->flow_table().size() != flows) {
    state.SkipWithError("flows were not all established");
    return;
  }
  // A scrambled visiting order (an odd stride modulo a power of two, or
  // plain order for a non-power-of-two count).
  std::vector<uint32_t> order(flows);
  for (size_t i = 0; i < flows; ++i) {
    order[i] = (flows & (flows - 1)) == 0
                   ? static_cast<uint32_t>((i * 40503u) & (flows - 1))
                   : static_cast<uint32_t>(i);
  }
  std::vector<std::vector<uint8_t>> buffers(kBatch, std::vector<uint8_t>(2048));
  std::vector<Packet> packets(kBatch);
  const uint64_t rx_before = engine->counters().rx_packets;
  const uint64_t tx_before = engine->counters().tx_packets;
  size_t next = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kBatch; ++i) {
      make(order[next], buffers[i].data() + kHeadroom);
      if (++next == flows) next = 0;
    }
    if (batch) {
      for (size_t i = 0; i < kBatch; ++i) {
        packets[i].buffer = buffers[i];
        packets[i].headroom = kHeadroom;
        packets[i].frame_len = frame.size();
      }
      engine->ProcessBatch(packets, clock);
      benchmark::DoNotOptimize(packets.data());
    } else {
      for (size_t i = 0; i < kBatch; ++i) {
        Verdict v = engine->Process(buffers[i], kHeadroom, frame.size(), clock);
        benchmark::DoNotOptimize(v);
      }
    }
  }
  if (engine->counters().tx_packets - tx_before !=
      engine->counters().rx_packets - rx_before) {
    state.SkipWithError("not every packet was transmitted");
  }
  state.counters["per_packet"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBatch),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetLabel(std::string("ipv4 dr hit, ") + std::to_string(flows) +
                 " flows, " + (batch ? "ProcessBatch" : "Process"));
}

BENCHMARK(BM_Flows)
    ->ArgNames({"flows", "batch"})
    ->ArgsProduct({{1, 4096, 32768}, {0, 1}});

// The memcpy of the frame alone, the floor under every figure above.
void BM_CopyFrameOnly(benchmark::State& state) {
  const std::vector<uint8_t> frame = Frame(false);
  std::vector<uint8_t> buffer(2048);
  for (auto _ : state) {
    std::memcpy(buffer.data() + 256, frame.data(), frame.size());
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_CopyFrameOnly);

}  // namespace
}  // namespace anylb::dataplane
