#include "common/metrics/registry.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CollectFn Gauge(std::string name, std::string label, double value) {
  return [=](std::vector<MetricFamily>* out) {
    MetricFamily f(name, "help of " + name, MetricType::kGauge);
    f.Add({{"src", label}}, value);
    out->push_back(std::move(f));
    return absl::OkStatus();
  };
}

TEST(Registry, FamiliesSortedByNameAndMergedAcrossCollectors) {
  Registry registry;
  registry.Add("one", Gauge("zeta", "1", 1));
  registry.Add("two", Gauge("alpha", "2", 2));
  registry.Add("three", Gauge("zeta", "3", 3));
  EXPECT_EQ(registry.Scrape(),
            "# HELP alpha help of alpha\n"
            "# TYPE alpha gauge\n"
            "alpha{src=\"2\"} 2\n"
            "# HELP anylb_scrape_errors_total Scrapes in which a metrics "
            "collector failed, by collector.\n"
            "# TYPE anylb_scrape_errors_total counter\n"
            "anylb_scrape_errors_total{collector=\"one\"} 0\n"
            "anylb_scrape_errors_total{collector=\"two\"} 0\n"
            "anylb_scrape_errors_total{collector=\"three\"} 0\n"
            "# HELP zeta help of zeta\n"
            "# TYPE zeta gauge\n"
            "zeta{src=\"1\"} 1\n"
            "zeta{src=\"3\"} 3\n");
}

TEST(Registry, AFailingCollectorIsReportedAndTheRestIsServed) {
  Registry registry("lb");
  registry.Add("good", Gauge("g", "x", 1));
  registry.Add("broken", [](std::vector<MetricFamily>* out) {
    MetricFamily f("partial_total", "", MetricType::kCounter);
    f.Add({}, 5);
    out->push_back(std::move(f));
    return absl::UnavailableError("worker 3 did not answer\nin time");
  });
  registry.Add("invalid", [](std::vector<MetricFamily>* out) {
    out->emplace_back("bad name", "", MetricType::kGauge);
    return absl::OkStatus();
  });
  registry.Add("clash", [](std::vector<MetricFamily>* out) {
    MetricFamily f("g", "", MetricType::kGauge);
    f.Add({{"src", "x"}}, 2);  // same series as "good"
    out->push_back(std::move(f));
    out->emplace_back("partial_total", "", MetricType::kGauge);  // wrong type
    return absl::OkStatus();
  });
  const std::string page = registry.Scrape();
  EXPECT_THAT(page, HasSubstr("# collector \"broken\" failed: UNAVAILABLE: "
                              "worker 3 did not answer | in time\n"));
  EXPECT_THAT(page, HasSubstr("# collector \"invalid\" failed: metric name "
                              "\"bad name\""));
  EXPECT_THAT(page, HasSubstr("# collector \"clash\" failed: g{src=\"x\"}: "
                              "the same labels twice in one family (with "
                              "collector \"good\")"));
  EXPECT_THAT(page, HasSubstr("# collector \"clash\" failed: partial_total has "
                              "another type in collector \"broken\""));
  EXPECT_THAT(page, HasSubstr("g{src=\"x\"} 1\n"));
  EXPECT_THAT(page, Not(HasSubstr("g{src=\"x\"} 2\n")));
  EXPECT_THAT(page,
              HasSubstr("partial_total 5\n"));  // kept: added before failing
  EXPECT_THAT(page,
              HasSubstr("lb_scrape_errors_total{collector=\"good\"} 0\n"));
  EXPECT_THAT(page,
              HasSubstr("lb_scrape_errors_total{collector=\"broken\"} 1\n"));
  EXPECT_THAT(page,
              HasSubstr("lb_scrape_errors_total{collector=\"clash\"} 1\n"));
  // Counted once per scrape, across scrapes.
  EXPECT_THAT(registry.Scrape(),
              HasSubstr("lb_scrape_errors_total{collector=\"clash\"} 2\n"));
}

TEST(Registry, RemovedCollectorIsNeverCalledAgain) {
  Registry registry;
  auto calls = std::make_shared<std::atomic<int>>(0);
  const uint64_t id = registry.Add("c", [calls](std::vector<MetricFamily>*) {
    ++*calls;
    return absl::OkStatus();
  });
  registry.Scrape();
  EXPECT_EQ(*calls, 1);
  EXPECT_TRUE(registry.Remove(id));
  EXPECT_FALSE(registry.Remove(id));
  registry.Scrape();
  EXPECT_EQ(*calls, 1);
  {
    ScopedCollector scoped(&registry, "s", Gauge("scoped", "1", 1));
    EXPECT_THAT(registry.Scrape(), HasSubstr("scoped{src=\"1\"} 1"));
  }
  EXPECT_THAT(registry.Scrape(), Not(HasSubstr("scoped{")));
}

// Collectors come and go while another thread scrapes: after Remove()
// returns, the collector's state may be destroyed (ASan would catch a call
// into it).
TEST(Registry, AddAndRemoveWhileScraping) {
  Registry registry;
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop) registry.Scrape();
  });
  for (int i = 0; i < 200; ++i) {
    auto value = std::make_unique<int>(i);
    const uint64_t id =
        registry.Add("tmp", [v = value.get()](std::vector<MetricFamily>* out) {
          MetricFamily f("tmp", "", MetricType::kGauge);
          f.Add({}, *v);
          out->push_back(std::move(f));
          return absl::OkStatus();
        });
    registry.Remove(id);
    value.reset();
  }
  stop = true;
  scraper.join();
}

}  // namespace
}  // namespace anylb::metrics
