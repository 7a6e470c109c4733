// The dataplane's counters as Prometheus metric families (for /metrics) and
// as a text dump (for SIGUSR1). Metric names are API: README.md lists them.
//
// The daemon fills a DataplaneMetricsInput when asked (at scrape or dump
// time) by reading each worker's counters; this file only names and sums
// them. Per-service and per-backend counters are summed over workers by
// their labels (service name, VIP, port, protocol; backend address:port),
// so workers still on an older snapshot (other indices) add up correctly.
//
//   metrics::ScopedCollector collector(&registry, "dataplane",
//       DataplaneCollector([&] { return daemon.ReadWorkerCounters(); }));
//
// Threading: pure functions; DataplaneCollector's callback runs on the
// scraping thread and calls `source` there.

#ifndef ANYLB_LBNODE_AGENT_DATAPLANE_METRICS_H_
#define ANYLB_LBNODE_AGENT_DATAPLANE_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics/metric_family.h"
#include "common/metrics/registry.h"
#include "lbnode/agent/snapshot_builder.h"
#include "lbnode/dataplane/engine.h"

namespace anylb::agent {

// BackendConnections are one worker's flows on a backend (IPVS's
// ActiveConn / InActConn; Engine::backends() has them).
struct BackendConnections {
  uint64_t active = 0;
  uint64_t inactive = 0;
};

// WorkerMetricsInput is one worker's counters, indexed like the snapshot
// the worker runs (whose names are `names`).
struct WorkerMetricsInput {
  int worker = 0;  // The "worker" label: the RX queue / thread number.
  std::shared_ptr<const NameTable> names;
  dataplane::EngineCounters engine;
  // By service index; backends and connections by [service][backend].
  // Each may be empty (not collected); otherwise sized like `names`.
  std::vector<dataplane::TrafficCounters> services;
  std::vector<std::vector<dataplane::TrafficCounters>> backends;
  std::vector<std::vector<BackendConnections>> connections;
  uint64_t flows = 0;  // Entries in the worker's flow table.
};

// DataplaneMetricsInput is the whole node's input.
struct DataplaneMetricsInput {
  std::vector<WorkerMetricsInput> workers;
  uint64_t config_revision = 0;         // Of the config the workers run.
  uint64_t config_reloads = 0;          // Configs applied since start.
  uint64_t config_reload_failures = 0;  // Configs rejected since start.
};

// DataplaneFamilies names and sums `input` (README.md, "Metrics").
// FAILED_PRECONDITION if a worker's vectors do not match its name table.
absl::StatusOr<std::vector<metrics::MetricFamily>> DataplaneFamilies(
    const DataplaneMetricsInput& input);

// DataplaneCollector is a Registry collector that calls `source` at each
// scrape and adds DataplaneFamilies of its result.
metrics::CollectFn DataplaneCollector(
    std::function<absl::StatusOr<DataplaneMetricsInput>()> source);

// FormatTextDump is the same content for people (the SIGUSR1 dump): config,
// then each worker (non-zero drops only), then each service with its
// backends.
std::string FormatTextDump(const DataplaneMetricsInput& input);

}  // namespace anylb::agent

#endif  // ANYLB_LBNODE_AGENT_DATAPLANE_METRICS_H_
