#include "lbnode/scheduler/maglev_scheduler.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anylb::scheduler {
namespace {

// CheckCanonical: strictly increasing endpoints (sorted, no duplicates).
absl::Status CheckCanonical(std::span<const SchedBackend> backends) {
  for (size_t i = 1; i < backends.size(); ++i) {
    if (!(backends[i - 1].endpoint < backends[i].endpoint)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mh: backends are not in canonical order: ",
          backends[i - 1].endpoint.ToString(), " (index ", i - 1,
          ") is not before ", backends[i].endpoint.ToString(), " (index ", i,
          "); sort them by endpoint and list each once"));
    }
  }
  return absl::OkStatus();
}

// BuildTable builds the table of `backends` (canonical) for `config`; an
// empty one when every weight is 0.
absl::StatusOr<std::shared_ptr<const MaglevTable>> BuildTable(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  RETURN_IF_ERROR(CheckCanonical(backends));
  std::vector<MaglevBackend> input;
  input.reserve(backends.size());
  bool any_weight = false;
  for (const SchedBackend& b : backends) {
    input.push_back(MaglevBackend{b.endpoint, b.weight});
    any_weight = any_weight || b.weight > 0;
  }
  if (!any_weight) {
    // All quiesced: an empty table (Pick: kNoBackend), but the table size
    // is still checked against the whole set.
    RETURN_IF_ERROR(
        MaglevTable::CheckTableSize(config.maglev_table_size, input.size()));
    input.clear();
  }
  return MaglevTable::Build(input, config.maglev_table_size, config.seed);
}

// CheckTable: `table` was built for `backends` with config's size and seed.
absl::Status CheckTable(const SchedulerConfig& config, const MaglevTable* table,
                        std::span<const SchedBackend> backends) {
  if (table == nullptr) {
    return absl::InvalidArgumentError("mh: no maglev table given");
  }
  if (table->size() != config.maglev_table_size ||
      table->seed() != config.seed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mh: the maglev table has size ", table->size(), " and seed ",
        table->seed(), " but the service asks for size ",
        config.maglev_table_size, " and seed ", config.seed,
        "; rebuild the table from the service's settings"));
  }
  RETURN_IF_ERROR(CheckCanonical(backends));
  if (table->empty()) return absl::OkStatus();
  const auto built = table->backends();
  if (built.size() != backends.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mh: the maglev table has ", built.size(),
                     " backends but the service has ", backends.size(),
                     "; rebuild the table from this backend set"));
  }
  for (size_t i = 0; i < built.size(); ++i) {
    if (built[i].endpoint != backends[i].endpoint) {
      return absl::InvalidArgumentError(
          absl::StrCat("mh: the maglev table's backend ", i, " is ",
                       built[i].endpoint.ToString(), " but the service's is ",
                       backends[i].endpoint.ToString(),
                       "; rebuild the table from this backend set"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HashInputs> MaglevHashInputs(const SchedulerConfig& config) {
  if (!config.port) return config.hash_inputs;
  switch (config.hash_inputs) {
    case HashInputs::kFiveTuple:
    case HashInputs::kSourceIp:
    case HashInputs::kSourceIpPort:
      return HashInputs::kSourceIpPort;
    case HashInputs::kThreeTuple:
      break;
  }
  return absl::InvalidArgumentError(
      "mh: the port flag (mh-port) adds the source port to the hash, but "
      "hash inputs three-tuple exclude ports; drop one of the two");
}

absl::StatusOr<std::unique_ptr<MaglevScheduler>> MaglevScheduler::Create(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  ASSIGN_OR_RETURN(const HashInputs inputs, MaglevHashInputs(config));
  ASSIGN_OR_RETURN(std::shared_ptr<const MaglevTable> table,
                   BuildTable(config, backends));
  return std::unique_ptr<MaglevScheduler>(
      new MaglevScheduler(config, inputs, std::move(table)));
}

absl::StatusOr<std::unique_ptr<MaglevScheduler>> MaglevScheduler::Create(
    const SchedulerConfig& config, std::shared_ptr<const MaglevTable> table,
    std::span<const SchedBackend> backends) {
  ASSIGN_OR_RETURN(const HashInputs inputs, MaglevHashInputs(config));
  RETURN_IF_ERROR(CheckTable(config, table.get(), backends));
  return std::unique_ptr<MaglevScheduler>(
      new MaglevScheduler(config, inputs, std::move(table)));
}

int MaglevScheduler::Pick(const FlowKey& flow,
                          std::span<const SchedBackend> backends,
                          absl::Time /*now*/) {
  const MaglevTable& table = *table_;
  const uint64_t hash = HashFlow(flow, inputs_, config_.seed);
  const int owner = table.Lookup(hash);
  if (owner == kNoBackend) return kNoBackend;
  // The table was built for `backends`; a shorter span is a caller bug, and
  // picking nothing beats reading past it.
  if (ABSL_PREDICT_FALSE(static_cast<size_t>(owner) >= backends.size())) {
    return kNoBackend;
  }
  const SchedBackend& b = backends[owner];
  if (ABSL_PREDICT_TRUE(b.CanTakeNewFlow())) return owner;
  if (b.available && !config_.fallback) return kNoBackend;  // IPVS mh

  int found;
  if (config_.fallback) {
    found = table.LookupWithFallback(hash, [backends](int i) {
      return static_cast<size_t>(i) < backends.size() &&
             backends[i].CanTakeNewFlow();
    });
  } else {
    // Unreachable from this node only: skip it as if it owned no slots,
    // then apply IPVS's no-fallback rule to whoever owns the flow instead.
    found = table.LookupWithFallback(hash, [backends](int i) {
      return static_cast<size_t>(i) < backends.size() && backends[i].available;
    });
    if (found != kNoBackend && !backends[found].CanTakeNewFlow()) {
      return kNoBackend;
    }
  }
  return found;
}

absl::Status MaglevScheduler::Reset(std::span<const SchedBackend> backends) {
  ASSIGN_OR_RETURN(std::shared_ptr<const MaglevTable> table,
                   BuildTable(config_, backends));
  table_ = std::move(table);
  return absl::OkStatus();
}

absl::Status MaglevScheduler::ResetTable(
    std::shared_ptr<const MaglevTable> table,
    std::span<const SchedBackend> backends) {
  RETURN_IF_ERROR(CheckTable(config_, table.get(), backends));
  table_ = std::move(table);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scheduler>> CreateMaglevScheduler(
    const SchedulerConfig& config, std::span<const SchedBackend> backends) {
  ASSIGN_OR_RETURN(std::unique_ptr<MaglevScheduler> s,
                   MaglevScheduler::Create(config, backends));
  return std::unique_ptr<Scheduler>(std::move(s));
}

absl::StatusOr<std::unique_ptr<Scheduler>> CreateMaglevScheduler(
    const SchedulerConfig& config, std::shared_ptr<const MaglevTable> table,
    std::span<const SchedBackend> backends) {
  ASSIGN_OR_RETURN(std::unique_ptr<MaglevScheduler> s,
                   MaglevScheduler::Create(config, std::move(table), backends));
  return std::unique_ptr<Scheduler>(std::move(s));
}

}  // namespace anylb::scheduler
