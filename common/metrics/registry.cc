#include "common/metrics/registry.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace anylb::metrics {
namespace {

// OneLine keeps a message inside its comment line.
std::string OneLine(std::string_view text) {
  return absl::StrReplaceAll(std::string(text), {{"\n", " | "}, {"\r", " "}});
}

}  // namespace

Registry::Registry(std::string prefix)
    : errors_name_(std::move(prefix) + "_scrape_errors_total") {}

uint64_t Registry::Add(std::string name, CollectFn collect) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  auto it = std::find_if(errors_.begin(), errors_.end(),
                         [&](const auto& e) { return e.first == name; });
  if (it == errors_.end()) errors_.emplace_back(name, 0);
  collectors_.push_back({id, std::move(name), std::move(collect)});
  return id;
}

bool Registry::Remove(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(collectors_.begin(), collectors_.end(),
                         [&](const Entry& e) { return e.id == id; });
  if (it == collectors_.end()) return false;
  collectors_.erase(it);
  return true;
}

std::string Registry::Scrape() {
  absl::MutexLock lock(&mu_);
  std::string comments;
  std::map<std::string, uint64_t> failed;  // collector -> errors this scrape
  // Families by name, in name order; the first collector's help and type.
  std::map<std::string, MetricFamily> merged;
  std::map<std::string, std::string> owner;  // family -> first collector
  for (const Entry& entry : collectors_) {
    std::vector<MetricFamily> families;
    const absl::Status status = entry.collect(&families);
    auto fail = [&](const std::string& why) {
      absl::StrAppend(&comments, "# collector \"", EscapeLabelValue(entry.name),
                      "\" failed: ", OneLine(why), "\n");
      ++failed[entry.name];
    };
    if (!status.ok()) fail(status.ToString());
    for (MetricFamily& family : families) {
      if (absl::Status valid = family.Validate(); !valid.ok()) {
        fail(absl::StrCat(valid.message()));
        continue;
      }
      if (family.name() == errors_name_) {
        fail(absl::StrCat(family.name(), " is the registry's own metric"));
        continue;
      }
      auto it = merged.find(family.name());
      if (it == merged.end()) {
        owner.emplace(family.name(), entry.name);
        merged.emplace(family.name(), std::move(family));
        continue;
      }
      if (it->second.type() != family.type()) {
        fail(absl::StrCat(family.name(), " has another type in collector \"",
                          owner[family.name()], "\""));
        continue;
      }
      // Same family from two collectors (e.g. one per worker): one family,
      // as long as their label sets differ.
      MetricFamily candidate = it->second;
      for (Sample& s : family.mutable_samples()) {
        candidate.mutable_samples().push_back(std::move(s));
      }
      if (absl::Status valid = candidate.Validate(); !valid.ok()) {
        fail(absl::StrCat(valid.message(), " (with collector \"",
                          owner[family.name()], "\")"));
        continue;
      }
      it->second = std::move(candidate);
    }
  }

  MetricFamily errors(errors_name_,
                      "Scrapes in which a metrics collector failed, by "
                      "collector.",
                      MetricType::kCounter);
  for (auto& [name, count] : errors_) {
    if (auto it = failed.find(name); it != failed.end()) ++count;
    errors.Add({{"collector", name}}, count);
  }
  merged.emplace(errors_name_, std::move(errors));

  std::string page = std::move(comments);
  for (const auto& [name, family] : merged) family.AppendText(&page);
  return page;
}

}  // namespace anylb::metrics
