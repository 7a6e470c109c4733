// NextHopReader::Lookup cost: route LPM + ECMP pick + neighbour probe, on a
// fixed snapshot shaped like a director's (a few connected subnets, a
// default route, some more specifics, one multipath route).
//
//   bazel run -c opt //routing/netlink:next_hop_benchmark

#include <cstdint>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/ip_address.h"
#include "routing/netlink/kernel_next_hops.h"
#include "routing/netlink/tables.h"

namespace anylb::routing::netlink {
namespace {

constexpr uint16_t kReachable = 0x02;  // NUD_REACHABLE

RouteNextHop Via(const IpAddress& gateway, int ifindex) {
  RouteNextHop hop;
  hop.ifindex = ifindex;
  hop.has_gateway = true;
  hop.gateway = gateway;
  return hop;
}

// MakeSnapshot: `extra_routes` IPv4 /24s and IPv6 /48s via gateways on
// ifindex 2, plus defaults, a connected /24 and /64, and neighbours for all
// gateways and 256 connected hosts.
std::shared_ptr<const NextHopSnapshot> MakeSnapshot(int extra_routes) {
  std::vector<Route> routes;
  NeighborTable::Map neighbors;
  const IpAddress gw4 = *IpAddress::Parse("192.0.2.1");
  const IpAddress gw6 = *IpAddress::Parse("2001:db8::1");
  auto add_neighbor = [&](const IpAddress& address) {
    neighbors[NeighborKey{2, address}] =
        NeighborEntry{{2, 0, 0, 0, 0, 1}, true, kReachable};
  };
  add_neighbor(gw4);
  add_neighbor(gw6);
  routes.push_back(Route{
      *IpPrefix::Parse("0.0.0.0/0"), 0, RouteKind::kUnicast, {Via(gw4, 2)}});
  routes.push_back(
      Route{*IpPrefix::Parse("::/0"), 0, RouteKind::kUnicast, {Via(gw6, 2)}});
  RouteNextHop connected;
  connected.ifindex = 2;
  routes.push_back(Route{
      *IpPrefix::Parse("192.0.2.0/24"), 0, RouteKind::kUnicast, {connected}});
  routes.push_back(Route{
      *IpPrefix::Parse("2001:db8::/64"), 0, RouteKind::kUnicast, {connected}});
  for (uint32_t i = 0; i < 256; ++i) {
    add_neighbor(IpAddress::FromV4(0xc0000200 | i));
  }
  const IpAddress gw4b = *IpAddress::Parse("192.0.2.2");
  routes.push_back(Route{*IpPrefix::Parse("203.0.113.0/24"),
                         0,
                         RouteKind::kUnicast,
                         {Via(gw4, 2), Via(gw4b, 2)}});
  for (int i = 0; i < extra_routes; ++i) {
    routes.push_back(Route{
        *IpPrefix::Create(
            IpAddress::FromV4(0x0a000000 | (static_cast<uint32_t>(i) << 8)),
            24),
        0,
        RouteKind::kUnicast,
        {Via(gw4, 2)}});
    std::array<uint8_t, 16> v6{0x20,
                               0x01,
                               0x0d,
                               0xb8,
                               static_cast<uint8_t>(i >> 8),
                               static_cast<uint8_t>(i)};
    routes.push_back(Route{*IpPrefix::Create(IpAddress::FromV6Bytes(v6), 48),
                           0,
                           RouteKind::kUnicast,
                           {Via(gw6, 2)}});
  }
  auto snapshot = std::make_shared<NextHopSnapshot>();
  snapshot->neighbors =
      std::make_shared<const NeighborTable>(std::move(neighbors));
  snapshot->routes =
      std::make_shared<const RouteTable>(RouteTable::Build(std::move(routes)));
  snapshot->generation = 1;
  return snapshot;
}

void Run(benchmark::State& state, const char* destination) {
  auto reader = NextHopReader::ForFixedSnapshot(
      MakeSnapshot(static_cast<int>(state.range(0))));
  const IpAddress address = *IpAddress::Parse(destination);
  uint64_t hash = 0;
  for (auto _ : state) {
    NextHop hop = reader->Lookup(address, hash++);
    benchmark::DoNotOptimize(hop);
    if (!hop.ok()) state.SkipWithError("lookup missed");
  }
  state.counters["extra_routes"] = static_cast<double>(2 * state.range(0));
}

// A connected host (most specific: /24).
void BM_LookupConnectedV4(benchmark::State& state) { Run(state, "192.0.2.77"); }
// Through the default route, past every more specific length.
void BM_LookupDefaultV4(benchmark::State& state) { Run(state, "198.51.100.9"); }
// A multipath route, next hop picked by the flow hash.
void BM_LookupEcmpV4(benchmark::State& state) { Run(state, "203.0.113.9"); }
void BM_LookupDefaultV6(benchmark::State& state) {
  Run(state, "2001:db8:ffff::9");
}
void BM_LookupConnectedV6(benchmark::State& state) {
  Run(state, "2001:db8::1");
}

BENCHMARK(BM_LookupConnectedV4)->Arg(0)->Arg(1000);
BENCHMARK(BM_LookupDefaultV4)->Arg(0)->Arg(1000);
BENCHMARK(BM_LookupEcmpV4)->Arg(0)->Arg(1000);
BENCHMARK(BM_LookupDefaultV6)->Arg(0)->Arg(1000);
BENCHMARK(BM_LookupConnectedV6)->Arg(0)->Arg(1000);

}  // namespace
}  // namespace anylb::routing::netlink
