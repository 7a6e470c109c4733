// Benchmarks: ns per Pick() of every scheduler with 10 and 100 backends, and
// PersistenceTable lookups (hit, miss) and inserts into a full table.
//
//   bazel run -c opt //lbnode/scheduler:scheduler_benchmark

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lbnode/scheduler/persistence.h"
#include "lbnode/scheduler/scheduler_factory.h"

namespace anylb::scheduler {
namespace {

constexpr uint32_t kFlows = 4096;  // power of two
const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// Backends: n backends, weights 1..8, some load, none unusable or idle.
std::vector<SchedBackend> Backends(int n) {
  std::vector<SchedBackend> backends(n);
  for (int i = 0; i < n; ++i) {
    backends[i].endpoint =
        Endpoint(IpAddress::FromV4(0x0a000001u + static_cast<uint32_t>(i)), 80);
    backends[i].weight = 1 + static_cast<uint32_t>(i * 7 % 8);
    // No idle backend: nq scans them all, as wlc does.
    backends[i].active = 1 + static_cast<uint32_t>(i * 13 % 11);
    backends[i].inactive = static_cast<uint32_t>(i * 5 % 17);
  }
  return backends;
}

// Flows: varied clients and ports; 256 destinations, so the lblc/lblcr
// caches mostly hit, as with a few VIPs.
std::vector<FlowKey> Flows() {
  std::vector<FlowKey> flows;
  for (uint32_t i = 0; i < kFlows; ++i) {
    flows.push_back(FlowKey::Make(
        IpAddress::FromV4(0xc6330000u + i * 2654435761u % 65536),
        static_cast<uint16_t>(1024 + i * 7),
        IpAddress::FromV4(0xcb007100u + i % 256), 443, kProtoTcp));
  }
  return flows;
}

void BM_Pick(benchmark::State& state, SchedulerKind kind) {
  const auto backends = Backends(static_cast<int>(state.range(0)));
  const auto flows = Flows();
  SchedulerConfig config;
  config.kind = kind;
  auto scheduler = CreateScheduler(config, backends);
  if (!scheduler.ok()) {
    state.SkipWithError(std::string(scheduler.status().message()).c_str());
    return;
  }
  uint32_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        (*scheduler)->Pick(flows[i++ & (kFlows - 1)], backends, kNow));
  }
}

const bool kRegistered = [] {
  for (SchedulerKind kind :
       {SchedulerKind::kRr, SchedulerKind::kWrr, SchedulerKind::kLc,
        SchedulerKind::kWlc, SchedulerKind::kLblc, SchedulerKind::kLblcr,
        SchedulerKind::kDh, SchedulerKind::kSh, SchedulerKind::kSed,
        SchedulerKind::kNq, SchedulerKind::kFo, SchedulerKind::kOvf,
        SchedulerKind::kMh, SchedulerKind::kTwos}) {
    benchmark::RegisterBenchmark(
        ("BM_Pick/" + std::string(SchedulerKindName(kind))).c_str(), BM_Pick,
        kind)
        ->Arg(10)
        ->Arg(100);
  }
  return true;
}();

constexpr uint32_t kClients = 1 << 16;

IpAddress ClientAddress(uint32_t i) {
  return IpAddress::FromV4(0x64000000u + i * 2654435761u);
}

// A table of 2^17 entries holding 2^16 clients of one service.
std::unique_ptr<PersistenceTable> FilledTable(const PersistencePolicy& policy) {
  auto table = PersistenceTable::Create(2 * kClients).value();
  for (uint32_t i = 0; i < kClients; ++i) {
    table->Insert(1, policy, ClientAddress(i),
                  Endpoint(IpAddress::FromV4(i), 80), kNow);
  }
  return table;
}

void BM_PersistenceLookupHit(benchmark::State& state) {
  const PersistencePolicy policy =
      PersistencePolicy::Create(80, absl::Seconds(300), 0, 0).value();
  auto table = FilledTable(policy);
  uint32_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        table->Lookup(1, policy, ClientAddress(i++ & (kClients - 1)), kNow));
  }
}
BENCHMARK(BM_PersistenceLookupHit);

void BM_PersistenceLookupMiss(benchmark::State& state) {
  const PersistencePolicy policy =
      PersistencePolicy::Create(80, absl::Seconds(300), 0, 0).value();
  auto table = FilledTable(policy);
  uint32_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->Lookup(
        2, policy, ClientAddress(i++ & (kClients - 1)), kNow));  // service 2
  }
}
BENCHMARK(BM_PersistenceLookupMiss);

void BM_PersistenceInsertIntoFullTable(benchmark::State& state) {
  const PersistencePolicy policy =
      PersistencePolicy::Create(80, absl::Seconds(300), 0, 0).value();
  auto table = PersistenceTable::Create(kClients).value();
  uint32_t i = 0;
  for (auto _ : state) {
    // New clients only: once full, every insert evicts the oldest.
    table->Insert(1, policy, ClientAddress(i),
                  Endpoint(IpAddress::FromV4(i), 80), kNow);
    ++i;
  }
}
BENCHMARK(BM_PersistenceInsertIntoFullTable);

}  // namespace
}  // namespace anylb::scheduler
