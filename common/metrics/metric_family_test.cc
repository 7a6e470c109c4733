#include "common/metrics/metric_family.h"

#include <cstdint>
#include <limits>
#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::metrics {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

std::string Text(const MetricFamily& family) {
  std::string out;
  family.AppendText(&out);
  return out;
}

TEST(MetricFamily, PrintsHelpTypeAndSamplesInOrder) {
  MetricFamily f("anylb_rx_packets_total", "Frames received.",
                 MetricType::kCounter);
  f.Add({{"worker", "1"}}, uint64_t{18446744073709551615u});
  f.Add({{"worker", "0"}}, 3);
  EXPECT_THAT(f.Validate(), IsOk());
  EXPECT_EQ(Text(f),
            "# HELP anylb_rx_packets_total Frames received.\n"
            "# TYPE anylb_rx_packets_total counter\n"
            "anylb_rx_packets_total{worker=\"1\"} 18446744073709551615\n"
            "anylb_rx_packets_total{worker=\"0\"} 3\n");
}

TEST(MetricFamily, GaugeWithoutLabelsAndFloatingPointValues) {
  MetricFamily f("temperature", "", MetricType::kGauge);
  f.Add({{"k", "a"}}, 0.1);
  f.Add({{"k", "b"}}, -2.5);
  f.Add({{"k", "c"}}, std::numeric_limits<double>::infinity());
  f.Add({{"k", "d"}}, -std::numeric_limits<double>::infinity());
  f.Add({{"k", "e"}}, std::numeric_limits<double>::quiet_NaN());
  f.Add({{"k", "f"}}, int64_t{-7});
  f.Add({}, 1e300);
  EXPECT_THAT(f.Validate(), IsOk());
  EXPECT_EQ(Text(f),
            "# HELP temperature \n"
            "# TYPE temperature gauge\n"
            "temperature{k=\"a\"} 0.1\n"
            "temperature{k=\"b\"} -2.5\n"
            "temperature{k=\"c\"} +Inf\n"
            "temperature{k=\"d\"} -Inf\n"
            "temperature{k=\"e\"} NaN\n"
            "temperature{k=\"f\"} -7\n"
            "temperature 1e+300\n");
}

TEST(MetricFamily, EscapesLabelValuesAndHelp) {
  MetricFamily f("m_total", "back\\slash\nnew \"line\"", MetricType::kCounter);
  f.Add({{"path", "C:\\dir\\\"x\"\nnext"}}, 1);
  EXPECT_EQ(Text(f),
            "# HELP m_total back\\\\slash\\nnew \"line\"\n"
            "# TYPE m_total counter\n"
            "m_total{path=\"C:\\\\dir\\\\\\\"x\\\"\\nnext\"} 1\n");
  EXPECT_EQ(EscapeLabelValue("ü \"q\""), "ü \\\"q\\\"");
}

TEST(MetricFamily, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_TRUE(IsValidMetricName("_x"));
  EXPECT_FALSE(IsValidMetricName("9a"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("worker_1"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));

  EXPECT_THAT(MetricFamily("bad-name", "", MetricType::kGauge).Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"bad-name\" is not of the form")));
  EXPECT_THAT(MetricFamily("packets", "", MetricType::kCounter).Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ends in \"_total\"")));
  MetricFamily labels("g", "", MetricType::kGauge);
  labels.Add({{"a-b", "1"}}, 1);
  EXPECT_THAT(labels.Validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("label name \"a-b\"")));
}

TEST(MetricFamily, RejectsRepeatedLabelsAndBadCounterValues) {
  MetricFamily twice("g", "", MetricType::kGauge);
  twice.Add({{"a", "1"}, {"a", "2"}}, 1);
  EXPECT_THAT(twice.Validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("label \"a\" given twice")));

  MetricFamily same_series("g", "", MetricType::kGauge);
  same_series.Add({{"a", "1"}, {"b", "2"}}, 1);
  same_series.Add({{"b", "2"}, {"a", "1"}}, 2);
  EXPECT_THAT(same_series.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the same labels twice")));

  MetricFamily negative("c_total", "", MetricType::kCounter);
  negative.Add({}, -1);
  EXPECT_THAT(negative.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot be negative or NaN")));
  MetricFamily nan("c_total", "", MetricType::kCounter);
  nan.Add({}, std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(nan.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace anylb::metrics
