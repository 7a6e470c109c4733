// MetricFamily: one Prometheus metric (name, help, type) and its samples,
// and the text exposition format 0.0.4 that Prometheus scrapes
// (https://prometheus.io/docs/instrumenting/exposition_formats/):
//
//   # HELP anylb_rx_packets_total Frames received, by worker.
//   # TYPE anylb_rx_packets_total counter
//   anylb_rx_packets_total{worker="0"} 1027
//
// Rules checked by Validate(): metric names match [a-zA-Z_:][a-zA-Z0-9_:]*,
// label names [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__" (reserved);
// a counter's name ends in "_total" and its values are >= 0 and not NaN;
// no label name twice in one sample; no label set twice in one family.
// Label values may hold anything (UTF-8): AppendText escapes \, " and
// newline in them, and \ and newline in HELP text.
//
// Threading: a plain value type, built by one thread (a collector) and then
// read.

#ifndef ANYLB_COMMON_METRICS_METRIC_FAMILY_H_
#define ANYLB_COMMON_METRICS_METRIC_FAMILY_H_

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"

namespace anylb::metrics {

// MetricType is the TYPE line: only the two that anylb exports.
enum class MetricType {
  kCounter,  // Monotonic; resets only when the process restarts.
  kGauge,    // Goes up and down.
};

// Labels are (name, value) pairs, printed in the given order.
using Labels = std::vector<std::pair<std::string, std::string>>;

// SampleValue is an exact integer (64-bit counters print every digit) or a
// floating-point number (printed shortest-exact; "+Inf", "-Inf", "NaN").
class SampleValue {
 public:
  template <std::integral T>
  SampleValue(T value) {  // NOLINT(google-explicit-constructor)
    if constexpr (std::is_signed_v<T>) {
      value_ = static_cast<int64_t>(value);
    } else {
      value_ = static_cast<uint64_t>(value);
    }
  }
  SampleValue(double value) : value_(value) {}  // NOLINT

  // AppendText appends the exposition form of the value.
  void AppendText(std::string* out) const;
  // IsNegativeOrNaN: not a valid counter value.
  bool IsNegativeOrNaN() const;

 private:
  std::variant<uint64_t, int64_t, double> value_;
};

// Sample is one line of a family: its labels and value.
struct Sample {
  Labels labels;
  SampleValue value;
};

// MetricFamily: see the file comment.
class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, MetricType type)
      : name_(std::move(name)), help_(std::move(help)), type_(type) {}

  // Add appends a sample.
  MetricFamily& Add(Labels labels, SampleValue value) {
    samples_.push_back({std::move(labels), value});
    return *this;
  }

  // Validate checks the family by the file comment's rules;
  // INVALID_ARGUMENT naming the family, sample and rule otherwise.
  absl::Status Validate() const;

  // AppendText appends "# HELP", "# TYPE" and one line per sample (in the
  // order added). Call Validate() first: the output of an invalid family
  // is not valid exposition text.
  void AppendText(std::string* out) const;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<Sample>& samples() const { return samples_; }
  std::vector<Sample>& mutable_samples() { return samples_; }

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<Sample> samples_;
};

// IsValidMetricName / IsValidLabelName: the exposition format's grammar.
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

// EscapeLabelValue escapes \ as \\, " as \" and newline as \n.
std::string EscapeLabelValue(std::string_view value);
// EscapeHelp escapes \ as \\ and newline as \n.
std::string EscapeHelp(std::string_view help);

}  // namespace anylb::metrics

#endif  // ANYLB_COMMON_METRICS_METRIC_FAMILY_H_
