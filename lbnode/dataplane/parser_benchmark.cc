// Nanoseconds per Parse() for the common frame shapes:
//   bazel run -c opt //lbnode/dataplane:parser_benchmark

#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "lbnode/dataplane/parser.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane {
namespace {

using ::anylb::dataplane_testing::kAck;
using ::anylb::dataplane_testing::kIcmpCodeFragNeeded;
using ::anylb::dataplane_testing::kIcmpDestUnreachable;
using ::anylb::dataplane_testing::PacketBuilder;

constexpr char kMacA[] = "02:00:00:00:00:01";
constexpr char kMacB[] = "02:00:00:00:00:02";

std::vector<uint8_t> Ipv4Tcp() {
  return PacketBuilder()
      .Eth(kMacA, kMacB)
      .Ipv4("192.0.2.1", "198.51.100.10")
      .Tcp(40000, 80)
      .Flags(kAck)
      .Payload(std::string(64, 'x'))
      .Build();
}

std::vector<uint8_t> Ipv6Tcp() {
  return PacketBuilder()
      .Eth(kMacA, kMacB)
      .Ipv6("2001:db8::1", "2001:db8:100::10")
      .Tcp(40000, 80)
      .Flags(kAck)
      .Payload(std::string(64, 'x'))
      .Build();
}

std::vector<uint8_t> VlanIpv4Tcp() {
  return PacketBuilder()
      .Eth(kMacA, kMacB)
      .Vlan(100)
      .Ipv4("192.0.2.1", "198.51.100.10")
      .Tcp(40000, 80)
      .Flags(kAck)
      .Payload(std::string(64, 'x'))
      .Build();
}

std::vector<uint8_t> Ipv6TwoExtensionHeadersTcp() {
  return PacketBuilder()
      .Eth(kMacA, kMacB)
      .Ipv6("2001:db8::1", "2001:db8:100::10")
      .HopByHop()
      .DestinationOptions()
      .Tcp(40000, 80)
      .Flags(kAck)
      .Payload(std::string(64, 'x'))
      .Build();
}

std::vector<uint8_t> Ipv4IcmpError() {
  std::vector<uint8_t> quoted =
      PacketBuilder().Ipv4("198.51.100.10", "192.0.2.1").Tcp(80, 40000).Build();
  return PacketBuilder()
      .Eth(kMacA, kMacB)
      .Ipv4("203.0.113.9", "198.51.100.10")
      .IcmpV4(kIcmpDestUnreachable, kIcmpCodeFragNeeded)
      .IcmpRest(1400)
      .Embed(quoted)
      .Build();
}

void BM_Parse(benchmark::State& state, std::vector<uint8_t> frame) {
  if (!Parse(frame).ok()) state.SkipWithError("fixture does not parse");
  for (auto _ : state) {
    ParseResult r = Parse(frame);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ParseAndFlowKey(benchmark::State& state, std::vector<uint8_t> frame) {
  for (auto _ : state) {
    ParseResult r = Parse(frame);
    scheduler::FlowKey key = MakeFlowKey(frame, r.packet);
    benchmark::DoNotOptimize(key);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_Parse, ipv4_tcp, Ipv4Tcp());
BENCHMARK_CAPTURE(BM_Parse, ipv6_tcp, Ipv6Tcp());
BENCHMARK_CAPTURE(BM_Parse, vlan_ipv4_tcp, VlanIpv4Tcp());
BENCHMARK_CAPTURE(BM_Parse, ipv6_2ext_tcp, Ipv6TwoExtensionHeadersTcp());
BENCHMARK_CAPTURE(BM_Parse, ipv4_icmp_error, Ipv4IcmpError());
BENCHMARK_CAPTURE(BM_ParseAndFlowKey, ipv4_tcp, Ipv4Tcp());
BENCHMARK_CAPTURE(BM_ParseAndFlowKey, ipv6_tcp, Ipv6Tcp());

}  // namespace
}  // namespace anylb::dataplane
