// Registry: the collectors whose metric families make up one /metrics
// page. Collectors are callbacks run at scrape time, so a component's
// counters are read only when someone asks (workers are never interrupted
// to push numbers nobody reads).
//
//   metrics::Registry registry;
//   metrics::ScopedCollector c(&registry, "dataplane",
//       [&](std::vector<metrics::MetricFamily>* out) -> absl::Status {
//         out->push_back(...);
//         return absl::OkStatus();
//       });
//   std::string page = registry.Scrape();
//
// Scrape() runs every collector in registration order, validates each
// family (MetricFamily::Validate), merges families of the same name and
// type from several collectors, and prints them sorted by name, so the
// page is deterministic. A collector that fails, or yields an invalid
// family or one that clashes with another's, does not spoil the scrape:
// what it got wrong is left out, a "# collector ... failed: ..." comment
// says why, and <prefix>_scrape_errors_total{collector="..."} counts it
// (one series per registered collector, from 0).
//
// Threading: every method may be called from any thread. Scrapes are
// serialised; Remove() waits for a running scrape, so once it returns the
// callback is never called again and what it captured may be destroyed.
// A collector must not call Add() or Remove() of its own registry
// (deadlock).

#ifndef ANYLB_COMMON_METRICS_REGISTRY_H_
#define ANYLB_COMMON_METRICS_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/metric_family.h"

namespace anylb::metrics {

// CollectFn appends its families to `out`. An error status is reported as
// described in the file comment (the families it appended before failing
// are kept).
using CollectFn = std::function<absl::Status(std::vector<MetricFamily>* out)>;

// Registry: see the file comment.
class Registry {
 public:
  // `prefix` names the error counter: <prefix>_scrape_errors_total.
  explicit Registry(std::string prefix = "anylb");
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Add registers `collect` under `name` (the collector label of errors)
  // and returns the id to Remove() it with.
  uint64_t Add(std::string name, CollectFn collect);

  // Remove unregisters a collector (waiting for a running scrape); false if
  // `id` is not registered.
  bool Remove(uint64_t id);

  // Scrape returns the page in the text exposition format 0.0.4.
  std::string Scrape();

  // kContentType is the Content-Type of Scrape()'s text.
  static constexpr char kContentType[] =
      "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Entry {
    uint64_t id;
    std::string name;
    CollectFn collect;
  };

  const std::string errors_name_;
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Entry> collectors_ ABSL_GUARDED_BY(mu_);
  // Scrape errors by collector name; kept after a collector is removed so
  // the counter never goes back.
  std::vector<std::pair<std::string, uint64_t>> errors_ ABSL_GUARDED_BY(mu_);
};

// ScopedCollector registers a collector for its lifetime.
class ScopedCollector {
 public:
  ScopedCollector(Registry* registry, std::string name, CollectFn collect)
      : registry_(registry),
        id_(registry->Add(std::move(name), std::move(collect))) {}
  ~ScopedCollector() { registry_->Remove(id_); }
  ScopedCollector(const ScopedCollector&) = delete;
  ScopedCollector& operator=(const ScopedCollector&) = delete;

 private:
  Registry* registry_;
  uint64_t id_;
};

}  // namespace anylb::metrics

#endif  // ANYLB_COMMON_METRICS_REGISTRY_H_
