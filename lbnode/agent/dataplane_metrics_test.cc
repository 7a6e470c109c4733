#include "lbnode/agent/dataplane_metrics.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/config/config_yaml.h"
#include "common/metrics/registry.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/agent/snapshot_builder.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::agent {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::shared_ptr<const NameTable> Names(std::vector<std::string> web_backends) {
  auto names = std::make_shared<NameTable>();
  names->push_back({"web", "192.0.2.1", 80, "tcp", std::move(web_backends)});
  names->push_back({"dns6", "2001:db8::53", 53, "udp", {"[2001:db8::5]:53"}});
  return names;
}

WorkerMetricsInput Worker(int id, std::shared_ptr<const NameTable> names,
                          uint64_t base) {
  WorkerMetricsInput w;
  w.worker = id;
  w.names = names;
  w.engine.rx_packets = base;
  w.engine.rx_bytes = base * 100;
  w.engine.tx_packets = base - 1;
  w.engine.drops[static_cast<size_t>(dataplane::DropReason::kNoService)] = 1;
  w.engine.drop_packets = 1;
  w.flows = base / 2;
  for (const ServiceNames& s : *names) {
    w.services.push_back({base, base * 10, 1});
    w.backends.emplace_back();
    w.connections.emplace_back();
    for (size_t j = 0; j < s.backends.size(); ++j) {
      w.backends.back().push_back({j + 1, (j + 1) * 10, 1});
      w.connections.back().push_back({j + 2, 1});
    }
  }
  return w;
}

std::string Page(const DataplaneMetricsInput& input) {
  metrics::Registry registry;
  metrics::ScopedCollector c(&registry, "dataplane",
                             DataplaneCollector([&] { return input; }));
  return registry.Scrape();
}

TEST(DataplaneMetrics, PerWorkerCountersAndDropsByReason) {
  DataplaneMetricsInput input;
  input.workers = {Worker(0, Names({"198.51.100.1:80"}), 10),
                   Worker(1, Names({"198.51.100.1:80"}), 20)};
  const std::string page = Page(input);
  EXPECT_THAT(page, Not(HasSubstr("# collector")));
  EXPECT_THAT(page, HasSubstr("# TYPE anylb_rx_packets_total counter\n"
                              "anylb_rx_packets_total{worker=\"0\"} 10\n"
                              "anylb_rx_packets_total{worker=\"1\"} 20\n"));
  EXPECT_THAT(page, HasSubstr("anylb_rx_bytes_total{worker=\"1\"} 2000\n"));
  EXPECT_THAT(page, HasSubstr("anylb_tx_packets_total{worker=\"1\"} 19\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE anylb_flows gauge\n"
                              "anylb_flows{worker=\"0\"} 5\n"));
  EXPECT_THAT(page, HasSubstr("anylb_drops_total{worker=\"0\",reason="
                              "\"no_service\"} 1\n"));
  // Every reason is exported, zeros too, so dashboards see the series.
  EXPECT_THAT(page, HasSubstr("anylb_drops_total{worker=\"1\",reason="
                              "\"truncated_ethernet\"} 0\n"));
  EXPECT_THAT(page, HasSubstr("anylb_drops_total{worker=\"1\",reason="
                              "\"fragment_not_supported\"} 0\n"));
  EXPECT_THAT(page, Not(HasSubstr("reason=\"none\"")));
}

TEST(DataplaneMetrics, ServiceAndBackendCountersAreSummedOverWorkers) {
  DataplaneMetricsInput input;
  input.workers = {
      Worker(0, Names({"198.51.100.1:80", "198.51.100.2:80"}), 10),
      Worker(1, Names({"198.51.100.1:80", "198.51.100.2:80"}), 20)};
  input.config_revision = 7;
  input.config_reloads = 3;
  input.config_reload_failures = 2;
  const std::string page = Page(input);
  EXPECT_THAT(page, HasSubstr("anylb_service_packets_total{service=\"web\","
                              "vip=\"192.0.2.1\",port=\"80\",proto=\"tcp\"} "
                              "30\n"));
  EXPECT_THAT(page, HasSubstr("anylb_service_bytes_total{service=\"dns6\","
                              "vip=\"2001:db8::53\",port=\"53\",proto=\"udp\"}"
                              " 300\n"));
  EXPECT_THAT(page, HasSubstr("anylb_service_new_flows_total{service=\"web\","
                              "vip=\"192.0.2.1\",port=\"80\",proto=\"tcp\"} "
                              "2\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_packets_total{service=\"web\","
                              "backend=\"198.51.100.2:80\"} 4\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_bytes_total{service=\"dns6\","
                              "backend=\"[2001:db8::5]:53\"} 20\n"));
  EXPECT_THAT(page,
              HasSubstr("# TYPE anylb_backend_active_connections gauge\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_active_connections{service="
                              "\"web\",backend=\"198.51.100.2:80\"} 6\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_inactive_connections{service="
                              "\"web\",backend=\"198.51.100.1:80\"} 2\n"));
  EXPECT_THAT(page, HasSubstr("anylb_config_revision 7\n"));
  EXPECT_THAT(page, HasSubstr("anylb_config_reloads_total 3\n"));
  EXPECT_THAT(page, HasSubstr("anylb_config_reload_failures_total 2\n"));
}

// A worker still on the previous snapshot indexes backends differently; the
// sums go by name, not by index.
TEST(DataplaneMetrics, WorkersOnDifferentSnapshotsAddUpByName) {
  DataplaneMetricsInput input;
  input.workers = {Worker(0, Names({"198.51.100.1:80", "198.51.100.2:80"}), 10),
                   Worker(1, Names({"198.51.100.2:80"}), 10)};
  const std::string page = Page(input);
  // Worker 0: .2 is index 1 (2 packets); worker 1: .2 is index 0 (1 packet).
  EXPECT_THAT(page, HasSubstr("anylb_backend_packets_total{service=\"web\","
                              "backend=\"198.51.100.2:80\"} 3\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_packets_total{service=\"web\","
                              "backend=\"198.51.100.1:80\"} 1\n"));
}

TEST(DataplaneMetrics, MismatchedInputFailsTheCollectorNotTheScrape) {
  DataplaneMetricsInput input;
  input.workers = {Worker(3, Names({"198.51.100.1:80"}), 10)};
  input.workers[0].services.pop_back();
  EXPECT_THAT(DataplaneFamilies(input),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("worker 3: service counters")));
  metrics::Registry registry;
  metrics::ScopedCollector c(&registry, "dataplane",
                             DataplaneCollector([&] { return input; }));
  metrics::ScopedCollector source_fails(
      &registry, "down",
      DataplaneCollector([]() -> absl::StatusOr<DataplaneMetricsInput> {
        return absl::UnavailableError("workers stopped");
      }));
  const std::string page = registry.Scrape();
  EXPECT_THAT(page, HasSubstr("# collector \"dataplane\" failed: "
                              "FAILED_PRECONDITION: worker 3"));
  EXPECT_THAT(page, HasSubstr("# collector \"down\" failed: UNAVAILABLE: "
                              "workers stopped"));
  EXPECT_THAT(
      page, HasSubstr("anylb_scrape_errors_total{collector=\"dataplane\"} 1"));
}

TEST(FormatTextDump, SameCountersInHumanOrder) {
  DataplaneMetricsInput input;
  input.workers = {Worker(0, Names({"198.51.100.1:80"}), 10)};
  input.config_revision = 4;
  EXPECT_EQ(FormatTextDump(input),
            "config: revision 4, 0 reloads, 0 reload failures\n"
            "worker 0: rx 10 packets 1000 bytes, tx 9 packets 0 bytes, passed "
            "0, dropped 1, flows 5\n"
            "  drops: no_service 1\n"
            "service dns6 [2001:db8::53]:53/udp: 10 packets, 100 bytes, 1 new "
            "flows\n"
            "  backend [2001:db8::5]:53: 1 packets, 10 bytes, 1 new flows, 2 "
            "active, 1 inactive\n"
            "service web 192.0.2.1:80/tcp: 10 packets, 100 bytes, 1 new "
            "flows\n"
            "  backend 198.51.100.1:80: 1 packets, 10 bytes, 1 new flows, 2 "
            "active, 1 inactive\n");
}

// End to end: a config through BuildEngineConfig into a real Engine, one
// SYN to the VIP, and the engine's counters labelled with the config's
// names.
class AnyNeighbour : public dataplane::NextHopResolver {
 public:
  bool Resolve(const IpAddress&, dataplane::Mac* mac) override {
    *mac = {0x02, 0, 0, 0, 0, 0x99};
    return true;
  }
};

TEST(DataplaneMetrics, CountsOfARealEngineCarryTheConfigNames) {
  ASSERT_OK_AND_ASSIGN(lb::v1::ConfigSnapshot proto,
                       config::ParseConfigYaml(R"(
revision: 12
services:
  - name: web
    vip: 192.0.2.1
    port: 80
    protocol: tcp
    scheduler: mh
    forwarding: {mode: dr}
    backends: [{address: 198.51.100.7, weight: 1}]
)",
                                               "t.yaml"));
  NodeIdentity identity;
  identity.mac = {0x02, 0, 0, 0, 0, 1};
  ASSERT_OK_AND_ASSIGN(EngineConfig config, BuildEngineConfig(proto, identity));
  AnyNeighbour resolver;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<dataplane::Engine> engine,
                       dataplane::Engine::Create(config.snapshot, &resolver));
  const std::vector<uint8_t> syn =
      dataplane_testing::PacketBuilder()
          .Eth("02:00:00:00:00:aa", "02:00:00:00:00:01")
          .Ipv4("203.0.113.9", "192.0.2.1")
          .Tcp(40000, 80)
          .Flags(dataplane_testing::kSyn)
          .Build();
  const std::vector<uint8_t> stray =
      dataplane_testing::PacketBuilder()
          .Eth("02:00:00:00:00:aa", "02:00:00:00:00:01")
          .Ipv4("203.0.113.9", "192.0.2.1")
          .Tcp(40000, 81)
          .Build();
  for (const std::vector<uint8_t>* frame : {&syn, &stray}) {
    std::vector<uint8_t> buffer(2048);
    std::copy(frame->begin(), frame->end(), buffer.begin() + 256);
    engine->Process(buffer, 256, frame->size(), absl::UnixEpoch());
  }

  WorkerMetricsInput w;
  w.worker = 0;
  w.names = config.names;
  w.engine = engine->counters();
  w.flows = engine->flow_table().size();
  for (size_t i = 0; i < config.snapshot->services().size(); ++i) {
    w.services.push_back(engine->service_counters(i));
    w.backends.emplace_back();
    w.connections.emplace_back();
    for (size_t j = 0; j < config.snapshot->services()[i].backends.size();
         ++j) {
      w.backends.back().push_back(engine->backend_counters(i, j));
      w.connections.back().push_back(
          {engine->backends(i)[j].active, engine->backends(i)[j].inactive});
    }
  }
  DataplaneMetricsInput input;
  input.workers.push_back(std::move(w));
  input.config_revision = config.revision;
  const std::string page = Page(input);
  EXPECT_THAT(page, HasSubstr("anylb_rx_packets_total{worker=\"0\"} 2\n"));
  EXPECT_THAT(page, HasSubstr("anylb_tx_packets_total{worker=\"0\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("anylb_drops_total{worker=\"0\",reason="
                              "\"no_service\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("anylb_service_new_flows_total{service=\"web\","
                              "vip=\"192.0.2.1\",port=\"80\",proto=\"tcp\"} "
                              "1\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_packets_total{service=\"web\","
                              "backend=\"198.51.100.7:80\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("anylb_backend_inactive_connections{service="
                              "\"web\",backend=\"198.51.100.7:80\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("anylb_flows{worker=\"0\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("anylb_config_revision 12\n"));
}

}  // namespace
}  // namespace anylb::agent
