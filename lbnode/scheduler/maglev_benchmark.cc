// Maglev build and lookup speed, against the NSDI'16 paper's Pseudocode 1
// (internal/maglev_reference.h) as the baseline.
//
//   bazel run -c opt //lbnode/scheduler:maglev_benchmark
//
// The paper builds N=1000, M=65537 in 1.8 ms; lookups must be a few ns.

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/ip_address.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/internal/maglev_reference.h"
#include "lbnode/scheduler/maglev.h"
#include "lbnode/scheduler/maglev_scheduler.h"

namespace anylb::scheduler {
namespace {

using internal::DocumentationEndpoint;

std::vector<MaglevBackend> Backends(size_t n, bool weighted = false) {
  std::vector<MaglevBackend> backends(n);
  for (size_t i = 0; i < n; ++i) {
    backends[i] = {DocumentationEndpoint(i),
                   weighted ? static_cast<uint32_t>(i % 3 + 1) : 1u};
  }
  return backends;
}

std::shared_ptr<const MaglevTable> MustBuild(
    const std::vector<MaglevBackend>& backends, uint32_t m) {
  return MaglevTable::Build(backends, m).value();
}

void BuildArgs(benchmark::internal::Benchmark* b) {
  for (int m : {65537, 655373}) {
    for (int n : {10, 100, 1000}) b->Args({n, m});
  }
  b->Unit(benchmark::kMillisecond);
}

// MaglevTable::Build, equal weights.
void BM_MaglevBuild(benchmark::State& state) {
  const auto backends = Backends(state.range(0));
  const uint32_t m = static_cast<uint32_t>(state.range(1));
  for (auto _ : state) {
    auto table = MaglevTable::Build(backends, m);
    benchmark::DoNotOptimize(table);
  }
}
BENCHMARK(BM_MaglevBuild)->Apply(BuildArgs);

// MaglevTable::Build, weights 1, 2, 3, 1, 2, 3, ...
void BM_MaglevBuildWeighted(benchmark::State& state) {
  const auto backends = Backends(state.range(0), /*weighted=*/true);
  const uint32_t m = static_cast<uint32_t>(state.range(1));
  for (auto _ : state) {
    auto table = MaglevTable::Build(backends, m);
    benchmark::DoNotOptimize(table);
  }
}
BENCHMARK(BM_MaglevBuildWeighted)->Apply(BuildArgs);

// MaglevTable::Build, one backend of weight 65535 among weight 1 ones: the
// weighted loop's worst case (most passes give nobody a turn but one).
void BM_MaglevBuildSkewedWeights(benchmark::State& state) {
  auto backends = Backends(state.range(0));
  backends[0].weight = MaglevTable::kMaxWeight;
  const uint32_t m = static_cast<uint32_t>(state.range(1));
  for (auto _ : state) {
    auto table = MaglevTable::Build(backends, m);
    benchmark::DoNotOptimize(table);
  }
}
BENCHMARK(BM_MaglevBuildSkewedWeights)->Apply(BuildArgs);

// The paper's Pseudocode 1 as written: the baseline.
void BM_ReferenceBuild(benchmark::State& state) {
  std::vector<Endpoint> endpoints;
  for (const auto& b : Backends(state.range(0)))
    endpoints.push_back(b.endpoint);
  const uint32_t m = static_cast<uint32_t>(state.range(1));
  for (auto _ : state) {
    auto table = internal::ReferenceMaglevTable(endpoints, m, 0);
    benchmark::DoNotOptimize(table);
  }
}
BENCHMARK(BM_ReferenceBuild)->Apply(BuildArgs);

constexpr size_t kFlows = 4096;  // a power of two

std::vector<FlowKey> Flows() {
  std::mt19937_64 rng(1);
  std::vector<FlowKey> flows(kFlows);
  for (FlowKey& f : flows) {
    f = FlowKey::Make(IpAddress::FromV4(static_cast<uint32_t>(rng())),
                      static_cast<uint16_t>(rng()),
                      IpAddress::FromV4(0xc0000201), 443, kProtoTcp);
  }
  return flows;
}

void LookupArgs(benchmark::internal::Benchmark* b) {
  for (int n : {10, 1000}) {
    for (int m : {65537, 655373}) b->Args({n, m});
  }
}

// Lookup alone, on precomputed hashes.
void BM_Lookup(benchmark::State& state) {
  const auto table = MustBuild(Backends(state.range(0)),
                               static_cast<uint32_t>(state.range(1)));
  std::mt19937_64 rng(2);
  std::vector<uint64_t> hashes(kFlows);
  for (uint64_t& h : hashes) h = rng();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->Lookup(hashes[i++ & (kFlows - 1)]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Lookup)->Apply(LookupArgs);

// HashFlow (5-tuple) + Lookup: the per-packet cost of a new flow's pick.
void BM_HashFlowAndLookup(benchmark::State& state) {
  const auto table = MustBuild(Backends(state.range(0)),
                               static_cast<uint32_t>(state.range(1)));
  const auto flows = Flows();
  size_t i = 0;
  for (auto _ : state) {
    const uint64_t h =
        HashFlow(flows[i++ & (kFlows - 1)], HashInputs::kFiveTuple, 0);
    benchmark::DoNotOptimize(table->Lookup(h));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashFlowAndLookup)->Apply(LookupArgs);

// LookupWithFallback with every 10th backend unusable (about 10% of the
// lookups walk).
void BM_LookupWithFallback10PercentDown(benchmark::State& state) {
  const size_t n = state.range(0);
  const auto table =
      MustBuild(Backends(n), static_cast<uint32_t>(state.range(1)));
  std::vector<uint8_t> usable(n, 1);
  for (size_t k = 0; k < n; k += 10) usable[k] = 0;
  std::mt19937_64 rng(3);
  std::vector<uint64_t> hashes(kFlows);
  for (uint64_t& h : hashes) h = rng();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->LookupWithFallback(
        hashes[i++ & (kFlows - 1)], [&](int b) { return usable[b] != 0; }));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupWithFallback10PercentDown)->Apply(LookupArgs);

// MaglevScheduler::Pick (HashFlow + Lookup + backend checks), all up, or
// every 10th backend unavailable from this node.
void BM_MhPick(benchmark::State& state) {
  const size_t n = state.range(0);
  const bool ten_percent_down = state.range(1) != 0;
  std::vector<SchedBackend> backends(n);
  for (size_t k = 0; k < n; ++k) {
    backends[k].endpoint = DocumentationEndpoint(k);
    backends[k].weight = 1;
    backends[k].available = !(ten_percent_down && k % 10 == 0);
  }
  SchedulerConfig config;
  auto scheduler = MaglevScheduler::Create(config, backends).value();
  const auto flows = Flows();
  const absl::Time now = absl::UnixEpoch();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        scheduler->Pick(flows[i++ & (kFlows - 1)], backends, now));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MhPick)->Args({10, 0})->Args({1000, 0})->Args({1000, 1});

}  // namespace
}  // namespace anylb::scheduler
