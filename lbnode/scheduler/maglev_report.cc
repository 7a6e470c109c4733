// maglev_report: one JSON object of Maglev table figures, for the docs and
// for comparing with the NSDI'16 paper.
//
//   bazel run -c opt //lbnode/scheduler:maglev_report --
//       --backends=1000 --table_size=65537 [--weights=1,2,...] [--seed=S]
//
// Backends are synthetic, on documentation addresses, port 80: the first 254
// are 198.51.100.1-254, the rest 2001:db8::N (N = index + 1, hex).
//
// Figures:
//   build_ms            median wall time of --repeats MaglevTable::Build()
//   build_cpu_ms        median thread CPU time of the same builds (free of
//                       preemption on a busy machine)
//   max/min_over_mean   slots per unit weight, highest / lowest backend,
//                       over the mean (table_size / sum of weights)
//   disruption_ratio    for each of --removals backends spread evenly over
//                       the canonical order (weight > 0 ones), removed alone:
//                       slots whose owner endpoint changes / slots the
//                       removed backend owned; the mean over those removals
//                       (1.0 = only its own slots move)
//   table_digest        MaglevTable::Digest() in hex
//   baseline_*          the same figures for the paper's unweighted
//                       Pseudocode 1 (internal/maglev_reference.h) on the
//                       same endpoints, measured in the same run
//   build_ratio         build_ms / baseline_build_ms
//
// Bad flags print one line on stderr and exit with status 2.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/ip_address.h"
#include "lbnode/scheduler/internal/maglev_reference.h"
#include "lbnode/scheduler/maglev.h"

ABSL_FLAG(int64_t, backends, 100, "number of synthetic backends");
ABSL_FLAG(int64_t, table_size, 65537, "Maglev table size M (prime)");
ABSL_FLAG(std::string, weights, "",
          "comma-separated weights, one per backend (default: all 1)");
ABSL_FLAG(uint64_t, seed, 0, "the service's hash seed");
ABSL_FLAG(int32_t, repeats, 15, "builds to take the median build time of");
ABSL_FLAG(int32_t, removals, 10, "removed backends to average disruption over");

namespace anylb::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// ThreadCpuMs is this thread's CPU time so far.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Timer measures one run in wall and thread CPU time.
struct Timer {
  Clock::time_point wall = Clock::now();
  double cpu = ThreadCpuMs();
  void Record(std::vector<double>& walls, std::vector<double>& cpus) const {
    walls.push_back(Ms(Clock::now() - wall));
    cpus.push_back(ThreadCpuMs() - cpu);
  }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

absl::StatusOr<std::vector<uint32_t>> ParseWeights(const std::string& text,
                                                   size_t backends) {
  std::vector<uint32_t> weights(backends, 1);
  if (text.empty()) return weights;
  const std::vector<std::string> parts = absl::StrSplit(text, ',');
  if (parts.size() != backends) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--weights has ", parts.size(), " values but --backends=", backends,
        "; give one weight per backend"));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    uint32_t w;
    if (!absl::SimpleAtoi(parts[i], &w)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--weights value ", i + 1, " \"", parts[i],
                       "\" is not a non-negative integer"));
    }
    weights[i] = w;
  }
  return weights;
}

struct Figures {
  double build_ms = 0;
  double build_cpu_ms = 0;
  double disruption_ratio = 0;
  int removals = 0;
};

// DisruptionRemovals picks up to `count` indices of weighted backends,
// spread evenly over the canonical order.
std::vector<size_t> DisruptionRemovals(const std::vector<MaglevBackend>& sorted,
                                       int count) {
  std::vector<size_t> weighted;
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].weight > 0) weighted.push_back(i);
  }
  std::vector<size_t> picks;
  if (weighted.size() < 2 || count <= 0) return picks;
  const size_t k = std::min<size_t>(count, weighted.size());
  picks.reserve(k);
  for (size_t j = 0; j < k; ++j) {
    picks.push_back(weighted[j * weighted.size() / k]);
  }
  return picks;
}

absl::Status Run() {
  const int64_t n = absl::GetFlag(FLAGS_backends);
  const int64_t m = absl::GetFlag(FLAGS_table_size);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  const int removals = absl::GetFlag(FLAGS_removals);
  if (n < 1 || n > static_cast<int64_t>(MaglevTable::kMaxBackends)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backends=", n, " is out of range; use 1 to ",
                     MaglevTable::kMaxBackends));
  }
  if (m < 0 || m > UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--table_size=", m, " is out of range; use a prime such as 65537"));
  }
  const auto table_size = static_cast<uint32_t>(m);
  const auto count = static_cast<size_t>(n);
  if (absl::Status s = MaglevTable::CheckTableSize(table_size, count);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::vector<uint32_t>> weights =
      ParseWeights(absl::GetFlag(FLAGS_weights), count);
  if (!weights.ok()) return weights.status();

  std::vector<MaglevBackend> backends(count);
  for (size_t i = 0; i < count; ++i) {
    backends[i] =
        MaglevBackend{internal::DocumentationEndpoint(i), (*weights)[i]};
  }

  // MaglevTable.
  Figures ours;
  std::shared_ptr<const MaglevTable> table;
  {
    std::vector<double> walls;
    std::vector<double> cpus;
    for (int r = 0; r < repeats; ++r) {
      const Timer timer;
      absl::StatusOr<std::shared_ptr<const MaglevTable>> t =
          MaglevTable::Build(backends, table_size, seed);
      timer.Record(walls, cpus);
      if (!t.ok()) return t.status();
      table = *std::move(t);
    }
    ours.build_ms = Median(walls);
    ours.build_cpu_ms = Median(cpus);
  }
  const std::vector<MaglevBackend> sorted(table->backends().begin(),
                                          table->backends().end());
  const std::vector<size_t> picks = DisruptionRemovals(sorted, removals);
  for (const size_t r : picks) {
    std::vector<MaglevBackend> less = sorted;
    less.erase(less.begin() + r);
    absl::StatusOr<std::shared_ptr<const MaglevTable>> after =
        MaglevTable::Build(less, table_size, seed);
    if (!after.ok()) return after.status();
    ours.disruption_ratio +=
        static_cast<double>(MaglevTable::CountChangedSlots(*table, **after)) /
        table->slot_counts()[r];
  }
  ours.removals = static_cast<int>(picks.size());
  if (!picks.empty()) ours.disruption_ratio /= picks.size();

  // The paper's Pseudocode 1, unweighted, on the same endpoints.
  Figures base;
  std::vector<Endpoint> endpoints;
  endpoints.reserve(sorted.size());
  for (const MaglevBackend& b : sorted) endpoints.push_back(b.endpoint);
  std::vector<int32_t> reference;
  {
    std::vector<double> walls;
    std::vector<double> cpus;
    for (int r = 0; r < repeats; ++r) {
      const Timer timer;
      reference = internal::ReferenceMaglevTable(endpoints, table_size, seed);
      timer.Record(walls, cpus);
    }
    base.build_ms = Median(walls);
    base.build_cpu_ms = Median(cpus);
  }
  std::vector<size_t> reference_counts(endpoints.size(), 0);
  for (const int32_t owner : reference) ++reference_counts[owner];
  std::vector<MaglevBackend> unweighted = sorted;
  for (MaglevBackend& b : unweighted) b.weight = 1;
  const std::vector<size_t> base_picks =
      DisruptionRemovals(unweighted, removals);
  for (const size_t r : base_picks) {
    std::vector<Endpoint> less = endpoints;
    less.erase(less.begin() + r);
    const std::vector<int32_t> after =
        internal::ReferenceMaglevTable(less, table_size, seed);
    base.disruption_ratio +=
        static_cast<double>(internal::ReferenceChangedSlots(
            endpoints, reference, less, after)) /
        reference_counts[r];
  }
  base.removals = static_cast<int>(base_picks.size());
  if (!base_picks.empty()) base.disruption_ratio /= base_picks.size();
  const auto [base_min, base_max] =
      std::minmax_element(reference_counts.begin(), reference_counts.end());
  const double base_mean = static_cast<double>(table_size) / endpoints.size();

  const MaglevBalance balance = table->Balance();
  absl::PrintF(
      "{\"backends\": %d, \"table_size\": %d, \"seed\": %d, "
      "\"weighted\": %s, \"build_ms\": %.4f, \"build_cpu_ms\": %.4f, "
      "\"build_repeats\": %d, "
      "\"max_over_mean\": %.6f, \"min_over_mean\": %.6f, "
      "\"disruption_ratio\": %.6f, \"disruption_removals\": %d, "
      "\"table_digest\": \"%016x\", "
      "\"baseline_build_ms\": %.4f, \"baseline_build_cpu_ms\": %.4f, "
      "\"baseline_max_over_mean\": %.6f, "
      "\"baseline_min_over_mean\": %.6f, "
      "\"baseline_disruption_ratio\": %.6f, \"build_ratio\": %.4f}\n",
      count, table_size, seed,
      absl::GetFlag(FLAGS_weights).empty() ? "false" : "true", ours.build_ms,
      ours.build_cpu_ms, repeats, balance.max_over_mean, balance.min_over_mean,
      ours.disruption_ratio, ours.removals, table->Digest(), base.build_ms,
      base.build_cpu_ms, *base_max / base_mean, *base_min / base_mean,
      base.disruption_ratio, ours.build_ms / base.build_ms);
  return absl::OkStatus();
}

}  // namespace
}  // namespace anylb::scheduler

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = anylb::scheduler::Run();
  if (!status.ok()) {
    const std::string message(status.message());
    std::fprintf(stderr, "maglev_report: %s\n", message.c_str());
    return 2;
  }
  return 0;
}
