#include "common/metrics/metric_family.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"

namespace anylb::metrics {
namespace {

bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string TypeName(MetricType type) {
  return type == MetricType::kCounter ? "counter" : "gauge";
}

std::string DescribeLabels(const Labels& labels) {
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", labels[i].first, "=\"",
                    EscapeLabelValue(labels[i].second), "\"");
  }
  out += "}";
  return out;
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c)))) {
      return false;
    }
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void SampleValue::AppendText(std::string* out) const {
  if (const uint64_t* u = std::get_if<uint64_t>(&value_)) {
    absl::StrAppend(out, *u);
  } else if (const int64_t* i = std::get_if<int64_t>(&value_)) {
    absl::StrAppend(out, *i);
  } else {
    const double d = std::get<double>(value_);
    if (std::isnan(d)) {
      out->append("NaN");
    } else if (std::isinf(d)) {
      out->append(d > 0 ? "+Inf" : "-Inf");
    } else {
      char buffer[32];
      // Shortest text that reads back as the same double.
      const std::to_chars_result r =
          std::to_chars(buffer, buffer + sizeof(buffer), d);
      out->append(buffer, r.ptr);
    }
  }
}

bool SampleValue::IsNegativeOrNaN() const {
  if (const int64_t* i = std::get_if<int64_t>(&value_)) return *i < 0;
  if (const double* d = std::get_if<double>(&value_)) {
    return std::isnan(*d) || *d < 0;
  }
  return false;
}

absl::Status MetricFamily::Validate() const {
  if (!IsValidMetricName(name_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric name \"", EscapeLabelValue(name_),
                     "\" is not of the form [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  if (type_ == MetricType::kCounter && !name_.ends_with("_total")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "counter ", name_, ": a counter's name ends in \"_total\""));
  }
  std::set<Labels> seen;
  for (const Sample& sample : samples_) {
    std::set<std::string_view> names;
    for (const auto& [label, value] : sample.labels) {
      if (!IsValidLabelName(label)) {
        return absl::InvalidArgumentError(absl::StrCat(
            name_, ": label name \"", EscapeLabelValue(label),
            "\" is not of the form [a-zA-Z_][a-zA-Z0-9_]* (and \"__\" "
            "starts reserved names)"));
      }
      if (!names.insert(label).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(name_, DescribeLabels(sample.labels), ": label \"",
                         label, "\" given twice"));
      }
    }
    if (type_ == MetricType::kCounter && sample.value.IsNegativeOrNaN()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, DescribeLabels(sample.labels),
                       ": a counter cannot be negative or NaN"));
    }
    Labels sorted = sample.labels;  // {a,b} and {b,a} are one series.
    std::sort(sorted.begin(), sorted.end());
    if (!seen.insert(std::move(sorted)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, DescribeLabels(sample.labels),
                       ": the same labels twice in one family"));
    }
  }
  return absl::OkStatus();
}

void MetricFamily::AppendText(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n");
  absl::StrAppend(out, "# TYPE ", name_, " ", TypeName(type_), "\n");
  for (const Sample& sample : samples_) {
    out->append(name_);
    if (!sample.labels.empty()) out->append(DescribeLabels(sample.labels));
    out->push_back(' ');
    sample.value.AppendText(out);
    out->push_back('\n');
  }
}

}  // namespace anylb::metrics
