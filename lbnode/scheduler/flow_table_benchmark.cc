// FlowTable speed at 4K, 64K and 1M flows (in L2, in L3, in DRAM).
//
//   bazel run -c opt //lbnode/scheduler:flow_table_benchmark
//
// Flows are looked up in a random order (the probe keys are stored shuffled
// and read sequentially, so the benchmark's own key array costs no cache
// misses): at 1M flows (about 90 MB of table) nearly every lookup misses the
// CPU caches, as a worker's would. Each benchmark reports "per_op", the CPU
// time of one call on the packet path (or of one Insert+Remove pair).

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/flow_state.h"
#include "lbnode/scheduler/flow_table.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// Key i: IPv4 clients spread over a /8 and all source ports, one VIP.
FlowKey Key(uint32_t i) {
  return FlowKey::Make(IpAddress::FromV4(0x0a000000u + (i >> 4)),
                       static_cast<uint16_t>(1024 + i * 2654435761u % 64000),
                       IpAddress::FromV4(0xc6336410u), 443, kProtoTcp);
}

std::vector<FlowKey> Keys(uint32_t first, size_t n) {
  std::vector<FlowKey> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back(Key(first + i));
  return keys;
}

std::vector<uint32_t> RandomOrder(size_t n) {
  std::vector<uint32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  return order;
}

std::unique_ptr<FlowTable> NewTable(size_t capacity) {
  FlowTableOptions options;
  options.capacity = capacity;
  options.seed = 1;
  return FlowTable::Create(options).value();
}

// Filled is a table of `n` established flows, built once per size and
// shared by the read-only benchmarks. `present` and `absent` hold keys in
// the table and not in it, in random order.
struct Filled {
  std::unique_ptr<FlowTable> table;
  std::vector<FlowKey> present;
  std::vector<FlowKey> absent;
};

Filled& GetFilled(size_t n) {
  static auto* cache = new std::map<size_t, Filled>();
  auto it = cache->find(n);
  if (it != cache->end()) return it->second;
  Filled f;
  f.table = NewTable(n);
  const std::vector<FlowKey> keys = Keys(0, n);
  const std::vector<FlowKey> absent = Keys(0x40000000, n);
  for (const FlowKey& k : keys) {
    f.table->Insert(k, FlowValue{1, 2, 3}, FlowState::kTcpEstablished, kNow);
  }
  for (uint32_t i : RandomOrder(n)) {
    f.present.push_back(keys[i]);
    f.absent.push_back(absent[i]);
  }
  return cache->emplace(n, std::move(f)).first->second;
}

void ReportNsPerOp(benchmark::State& state, double ops_per_iteration = 1) {
  state.counters["per_op"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * ops_per_iteration,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Hash(benchmark::State& state) {
  const std::vector<FlowKey> keys = Keys(0, 1024);
  size_t i = 0;
  for (auto _ : state) {
    const FlowKey& k = keys[i++ & 1023];
    benchmark::DoNotOptimize(
        Hash64({reinterpret_cast<const uint8_t*>(&k), sizeof(k)}, 1));
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_Hash);

// The flow table's hash (FlowTable::Hash), against Hash64 above.
void BM_FlowKeyHasher(benchmark::State& state) {
  const std::vector<FlowKey> keys = Keys(0, 1024);
  const FlowKeyHasher hasher(1);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hasher(keys[i++ & 1023]));
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_FlowKeyHasher);

void BM_LookupHit(benchmark::State& state) {
  Filled& f = GetFilled(state.range(0));
  const size_t n = f.present.size();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.table->Lookup(f.present[i], kNow));
    if (++i == n) i = 0;
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_LookupHit)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);

void BM_LookupMiss(benchmark::State& state) {
  Filled& f = GetFilled(state.range(0));
  const size_t n = f.present.size();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.table->Lookup(f.absent[i], kNow));
    if (++i == n) i = 0;
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_LookupMiss)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);

// A known flow's packet as the worker handles it: Lookup, then Touch (moves
// the flow to the front of its LRU list).
void BM_LookupHitAndTouch(benchmark::State& state) {
  Filled& f = GetFilled(state.range(0));
  const size_t n = f.present.size();
  size_t i = 0;
  for (auto _ : state) {
    FlowEntry* e = f.table->Lookup(f.present[i], kNow);
    f.table->Touch(e, kNow);
    if (++i == n) i = 0;
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_LookupHitAndTouch)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);

// A batch of 32 lookups, every key hashed and its index line prefetched
// first (the AF_XDP worker's pattern).
void BM_LookupHitBatch32Prefetched(benchmark::State& state) {
  Filled& f = GetFilled(state.range(0));
  const size_t n = f.present.size();
  size_t i = 0;
  for (auto _ : state) {
    uint32_t hash[32];
    for (size_t j = 0; j < 32; ++j) {
      hash[j] = f.table->Hash(f.present[i + j]);
      f.table->Prefetch(hash[j]);
    }
    for (size_t j = 0; j < 32; ++j) {
      benchmark::DoNotOptimize(
          f.table->Lookup(f.present[i + j], hash[j], kNow));
    }
    i += 32;
    if (i + 32 > n) i = 0;
  }
  ReportNsPerOp(state, 32);
}
BENCHMARK(BM_LookupHitBatch32Prefetched)
    ->Arg(1 << 12)
    ->Arg(1 << 16)
    ->Arg(1 << 20);

// Churn is a table kept at `n` flows by removing the oldest flow and
// inserting a new one: insert number j uses key j mod 2n and ring slot
// j mod n.
struct Churn {
  std::unique_ptr<FlowTable> table;
  std::vector<FlowKey> keys;  // 2n
  std::vector<FlowEntry*> ring;
  size_t next = 0;  // inserts so far

  Churn(size_t n, FlowState state) : table(NewTable(n)), keys(Keys(0, 2 * n)) {
    ring.resize(n);
    for (; next < n; ++next) {
      ring[next] =
          table->Insert(keys[next], FlowValue{1, 2, 3}, state, kNow).entry;
    }
  }
};

void BM_InsertRemove(benchmark::State& state) {
  const size_t n = state.range(0);
  static auto* cache = new std::map<size_t, std::unique_ptr<Churn>>();
  auto& churn = (*cache)[n];
  if (churn == nullptr) {
    churn = std::make_unique<Churn>(n, FlowState::kTcpEstablished);
  }
  Churn& c = *churn;
  for (auto _ : state) {
    FlowEntry*& slot = c.ring[c.next % n];
    c.table->Remove(slot);
    slot = c.table
               ->Insert(c.keys[c.next % (2 * n)], FlowValue{1, 2, 3},
                        FlowState::kTcpEstablished, kNow)
               .entry;
    ++c.next;
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_InsertRemove)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);

// Insert into a full table of established flows: each insert evicts the
// least recently used flow.
void BM_InsertEvictingLru(benchmark::State& state) {
  const size_t n = state.range(0);
  static auto* cache = new std::map<size_t, std::unique_ptr<Churn>>();
  auto& churn = (*cache)[n];
  if (churn == nullptr) {
    churn = std::make_unique<Churn>(n, FlowState::kTcpEstablished);
  }
  Churn& c = *churn;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.table->Insert(c.keys[c.next % (2 * n)],
                                             FlowValue{1, 2, 3},
                                             FlowState::kTcpEstablished, kNow));
    ++c.next;
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_InsertEvictingLru)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);

// A SYN flood into a table whose unconfirmed half is full: each SYN evicts
// the least recently used half-open flow.
void BM_SynFloodInsert(benchmark::State& state) {
  const size_t n = state.range(0);
  static auto* cache = new std::map<size_t, std::unique_ptr<Churn>>();
  auto& churn = (*cache)[n];
  if (churn == nullptr) {
    churn = std::make_unique<Churn>(n, FlowState::kTcpSynRecv);
  }
  Churn& c = *churn;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.table->Insert(c.keys[c.next % (2 * n)],
                                             FlowValue{1, 2, 3},
                                             FlowState::kTcpSynRecv, kNow));
    ++c.next;
  }
  ReportNsPerOp(state);
}
BENCHMARK(BM_SynFloodInsert)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);

}  // namespace
}  // namespace anylb::scheduler
