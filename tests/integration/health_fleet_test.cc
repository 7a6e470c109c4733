// Health checks across a fleet (issue 8): two directors in controller mode
// see one real server differently.
//
//   client  (203.0.113.2) ──VIP──> dir1 (203.0.113.1, 198.51.100.1)
//   client2 (203.0.113.4) ──VIP──> dir2 (203.0.113.3, 198.51.100.2)
//   rs1..rs3 (198.51.100.11..13, nginx), all on the lab's bridge; DR, mh.
//
// anylb-controller runs in dir1's namespace on 127.0.0.1:50051 (plaintext
// is loopback-only; dir2's 127.0.0.1:50051 leads there through a
// LoopbackRelay); both lbnodes are its nodes (--controller, reports every
// 500 ms); the service with its TCP health check (interval 200 ms, timeout
// 150 ms, rise 2, fall 2, on_failure remove) comes from `lbctl apply -f`. Then
// dir2's own probes to rs3 are dropped (nftables, output hook: only locally
// generated packets, so the dataplane's forwarded frames are untouched):
//  * dir2's /admin/health shows rs3 DOWN, dir1's UP;
//  * the fleet verdict stays UP (1 of 2 nodes is not a majority): both
//    directors' /admin/services show rs3 fleet_state UP and the same
//    table_digest;
//  * on dir2 rs3 is available=false: new flows through dir2 never reach
//    rs3 (all succeed), flows through dir1 do reach it.
// Then dir1's probes are dropped too: 2 of 2 → the fleet verdict is DOWN,
// both directors build the same (new) table and neither sends rs3 anything.
//
// Needs root (tags local, netns). Namespaces and processes are removed when
// the case ends, also when it fails (RAII in tests/netns).

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/admin_json.h"
#include "tests/integration/itest_util.h"
#include "tests/netns/attach_host.h"
#include "tests/netns/http_client.h"
#include "tests/netns/loopback_relay.h"
#include "tests/netns/netns.h"
#include "tests/netns/nginx_server.h"
#include "tests/netns/topology.h"

namespace anylb {
namespace {

using ::anylb::itest::ReadFile;
using ::anylb::itest::Runfile;

using ::anylb::itest::FindBackend;
using ::anylb::itest::FindHealth;
using ::anylb::itest::HealthEntry;
using ::anylb::itest::ParseAdminHealth;
using ::anylb::itest::ParseAdminServices;
using ::anylb::itest::ServiceBackend;
using ::anylb::itest::ServiceEntry;
using ::anylb::itest::StateIs;
using ::anylb::lab::HttpClient;
using ::anylb::lab::Netns;
using ::anylb::lab::NginxOptions;
using ::anylb::lab::NginxServer;
using ::anylb::lab::Process;
using ::anylb::lab::Topology;
using ::anylb::status_testing::IsOk;

constexpr int kRealServers = 3;
constexpr int kIsolated = 2;  // rs3
constexpr char kService[] = "web";
constexpr char kController[] = "127.0.0.1:50051";
constexpr int kControllerPort = 50051;
constexpr absl::Duration kReportInterval = absl::Milliseconds(500);
constexpr absl::Duration kStateBound = absl::Seconds(10);

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d), " ms");
}

std::string RealServer(int i) {
  return Topology::RealServerAddress(i, IpFamily::kV4).ToString();
}

bool WaitForLog(const std::string& path, const std::string& text,
                Process* process, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (absl::StrContains(ReadFile(path), text)) return true;
    if (!process->Running()) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// Director: one lbnode in controller mode and its admin pages.
struct Director {
  const Netns* ns = nullptr;
  std::string name;
  std::string log;
  std::unique_ptr<Process> lbnode;

  absl::StatusOr<std::string> Page(const std::string& path) const {
    HttpClient local(*ns, absl::Seconds(3));
    ASSIGN_OR_RETURN(lab::HttpResponse r,
                     local.Get(*IpAddress::Parse("127.0.0.1"), 9464, path));
    if (r.status_code != 200) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " GET ", path, ": HTTP ", r.status_code));
    }
    return r.body;
  }
  absl::StatusOr<std::vector<HealthEntry>> Health() const {
    ASSIGN_OR_RETURN(std::string body, Page("/admin/health"));
    return ParseAdminHealth(body);
  }
  absl::StatusOr<std::vector<ServiceEntry>> Services() const {
    ASSIGN_OR_RETURN(std::string body, Page("/admin/services"));
    return ParseAdminServices(body);
  }
  // WaitFor polls /admin/services and /admin/health until `done` accepts
  // them.
  absl::StatusOr<absl::Duration> WaitFor(
      const std::function<bool(const std::vector<HealthEntry>&,
                               const std::vector<ServiceEntry>&)>& done,
      absl::Duration timeout, const std::string& what) const {
    const absl::Time start = absl::Now();
    std::string last;
    while (absl::Now() - start < timeout) {
      absl::StatusOr<std::string> health = Page("/admin/health");
      absl::StatusOr<std::string> services = Page("/admin/services");
      if (health.ok() && services.ok()) {
        last = absl::StrCat("/admin/health: ", *health,
                            "\n/admin/services: ", *services);
        ASSIGN_OR_RETURN(auto h, ParseAdminHealth(*health));
        ASSIGN_OR_RETURN(auto s, ParseAdminServices(*services));
        if (done(h, s)) return absl::Now() - start;
      } else {
        last = absl::StrCat(health.status().ToString(), " ",
                            services.status().ToString());
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        name, ": waited ", Ms(timeout), " for ", what, "; last:\n", last));
  }
};

bool AllHealth(const std::vector<HealthEntry>& entries,
               const std::vector<std::string>& states) {
  for (size_t i = 0; i < states.size(); ++i) {
    auto e = FindHealth(entries, kService, RealServer(static_cast<int>(i)));
    if (!e.has_value() || !StateIs(e->state, states[i])) return false;
  }
  return true;
}

const ServiceEntry* FindService(const std::vector<ServiceEntry>& services) {
  for (const ServiceEntry& s : services) {
    if (s.name == kService) return &s;
  }
  return nullptr;
}

std::map<std::string, int> Requests(const Netns& client, int n,
                                    std::string* first_error) {
  HttpClient http(client, absl::Seconds(2));
  std::map<std::string, int> by_server;
  for (int k = 0; k < n; ++k) {
    absl::StatusOr<lab::HttpResponse> r =
        http.Get(Topology::Vip(0, IpFamily::kV4), 80, "/id");
    if (!r.ok() || r->status_code != 200) {
      if (first_error->empty()) {
        *first_error = r.ok() ? absl::StrCat("HTTP ", r->status_code)
                              : r.status().ToString();
      }
      ++by_server[""];
      continue;
    }
    ++by_server[r->body];
  }
  return by_server;
}

std::string Describe(const std::map<std::string, int>& by_server) {
  std::vector<std::string> parts;
  for (const auto& [name, n] : by_server) {
    parts.push_back(absl::StrCat(name.empty() ? "failed" : name, "=", n));
  }
  return absl::StrJoin(parts, " ");
}

// DropProbes makes `ns`'s own TCP packets to rs3:80 vanish (output hook).
absl::Status DropProbes(const Netns& ns) {
  return ns
      .Run(absl::StrCat(
          "nft add table inet hc && nft add chain inet hc out '{ type filter "
          "hook output priority 0; }' && nft add rule inet hc out ip daddr ",
          RealServer(kIsolated), " tcp dport 80 counter drop"))
      .status();
}

class HealthFleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0)
        << "health_fleet_test builds network namespaces and attaches XDP: "
           "run it as root (deploy/test.sh does)";
  }
};

TEST_F(HealthFleetTest, OneDirectorsUnreachableBackendIsSkippedOnlyThere) {
  lab::TopologyOptions topology_options;
  topology_options.real_servers = kRealServers;
  topology_options.xdp_pass_on_director_peer = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Topology> topo,
                       Topology::Create(topology_options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> dir2_ns,
                       lab::AttachHost(*topo, {.tag = "dir2",
                                               .port = "p-dir2",
                                               .mac = "02:a1:00:00:00:03",
                                               .addresses = {"203.0.113.3/24",
                                                             "198.51.100.2/24"},
                                               .xdp_pass_on_peer = true}));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Netns> client2,
      lab::AttachHost(
          *topo, {.tag = "client2",
                  .port = "p-client2",
                  .mac = "02:a1:00:00:00:04",
                  .addresses = {"203.0.113.4/24"},
                  .routes = {{Topology::VipPrefix(IpFamily::kV4).ToString(),
                              "203.0.113.3"}}}));
  SCOPED_TRACE(topo->Describe());
  const Netns& dir1_ns = topo->director();
  ASSERT_THAT(dir1_ns.Sysctl("net.ipv4.ip_forward", "0"), IsOk());
  ASSERT_THAT(dir2_ns->Sysctl("net.ipv4.ip_forward", "0"), IsOk());
  for (const Netns* ns :
       std::vector<const Netns*>{&topo->client(), client2.get()}) {
    ASSERT_THAT(ns->Run("ethtool -K eth0 tx off"), IsOk());
  }
  for (int i = 0; i < kRealServers; ++i) {
    ASSERT_THAT(topo->real_server(i).Run("ethtool -K eth0 tx off"), IsOk());
  }
  ASSERT_THAT(topo->AddVipToRealServers(Topology::Vip(0, IpFamily::kV4)),
              IsOk());
  ASSERT_OK_AND_ASSIGN(std::string dir, lab::TempDirectory("health-fleet"));
  std::vector<std::unique_ptr<NginxServer>> nginx;
  for (int i = 0; i < kRealServers; ++i) {
    NginxOptions options;
    options.name = absl::StrCat("rs", i + 1);
    ASSERT_OK_AND_ASSIGN(auto server,
                         NginxServer::Start(topo->real_server(i), options));
    nginx.push_back(std::move(server));
  }

  const std::string controller_log = dir + "/controller.log";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Process> controller,
                       dir1_ns.Spawn({Runfile("controller/anylb_controller"),
                                      absl::StrCat("--listen=", kController),
                                      "--store=" + dir + "/store.db",
                                      "--insecure", "--metrics_address="},
                                     controller_log));
  ASSERT_TRUE(WaitForLog(controller_log, "listening on", controller.get(),
                         absl::Seconds(20)))
      << ReadFile(controller_log);

  // dir2 reaches the controller on its own loopback.
  ASSERT_OK_AND_ASSIGN(
      auto relay, lab::LoopbackRelay::Start(*dir2_ns, kControllerPort, dir1_ns,
                                            kControllerPort));

  Director directors[2];
  directors[0].ns = &dir1_ns;
  directors[1].ns = dir2_ns.get();
  for (int d = 0; d < 2; ++d) {
    Director& director = directors[d];
    director.name = absl::StrCat("dir", d + 1);
    director.log = absl::StrCat(dir, "/lbnode-", director.name, ".log");
    ASSERT_OK_AND_ASSIGN(
        director.lbnode,
        director.ns->Spawn(
            {Runfile("lbnode/lbnode"), "--interface=eth0",
             absl::StrCat("--controller=", kController),
             "--controller_insecure", "--node_name=" + director.name,
             absl::StrCat("--snapshot_cache=", dir, "/snapshot-", director.name,
                          ".pb"),
             absl::StrCat("--report_interval=",
                          absl::ToInt64Milliseconds(kReportInterval), "ms"),
             "--metrics_address=127.0.0.1:9464", "--health_checks=true",
             "--log_level=debug"},
            director.log));
  }
  for (Director& director : directors) {
    ASSERT_TRUE(WaitForLog(director.log, "connected as node " + director.name,
                           director.lbnode.get(), absl::Seconds(30)))
        << director.name << " did not connect:\n"
        << ReadFile(director.log) << ReadFile(controller_log);
  }

  // The service, with its health check, from lbctl apply -f.
  std::string services = absl::StrCat(
      "services:\n  - name: ", kService,
      "\n    vip: ", Topology::Vip(0, IpFamily::kV4).ToString(),
      "\n    port: 80\n    protocol: tcp\n    scheduler: mh\n"
      "    forwarding: {mode: dr}\n"
      "    health_check: {interval: 200ms, timeout: 150ms, rise: 2, fall: 2, "
      "on_failure: remove, tcp: {}}\n    backends:\n");
  for (int i = 0; i < kRealServers; ++i) {
    absl::StrAppend(&services, "      - {address: ", RealServer(i),
                    ", port: 80, weight: 1}\n");
  }
  {
    std::ofstream out(dir + "/services.yaml");
    out << services;
  }
  ASSERT_THAT(
      dir1_ns.Run(absl::StrCat(Runfile("controller/lbctl/lbctl"),
                               " --controller=", kController,
                               " --insecure apply -f ", dir, "/services.yaml")),
      IsOk());
  for (Director& director : directors) {
    ASSERT_THAT(director
                    .WaitFor(
                        [](const auto& health, const auto& services) {
                          return AllHealth(health, {"up", "up", "up"}) &&
                                 FindService(services) != nullptr;
                        },
                        kStateBound, "every real server UP")
                    .status(),
                IsOk())
        << ReadFile(director.log);
  }
  std::string error;
  std::map<std::string, int> via1 = Requests(topo->client(), 60, &error);
  std::map<std::string, int> via2 = Requests(*client2, 60, &error);
  ASSERT_EQ(via1[""] + via2[""], 0)
      << error << "\n"
      << ReadFile(directors[0].log) << ReadFile(directors[1].log);
  for (int i = 0; i < kRealServers; ++i) {
    const std::string name = absl::StrCat("rs", i + 1);
    ASSERT_GT(via1[name], 0) << Describe(via1);
    ASSERT_GT(via2[name], 0) << Describe(via2);
  }

  // dir2 loses sight of rs3.
  const absl::Time isolated = absl::Now();
  ASSERT_THAT(DropProbes(*dir2_ns), IsOk());
  ASSERT_OK_AND_ASSIGN(absl::Duration to_local_down,
                       directors[1].WaitFor(
                           [](const auto& health, const auto& services) {
                             auto b = FindBackend(services, kService,
                                                  RealServer(kIsolated));
                             return AllHealth(health, {"up", "up", "down"}) &&
                                    b.has_value() && !b->available;
                           },
                           kStateBound, "rs3 DOWN and unavailable on dir2"));
  std::printf(
      "dir2's probes to rs3 dropped -> DOWN and available=false on "
      "dir2 after %s\n",
      Ms(to_local_down).c_str());
  // Several report rounds reach the controller; its verdict must stay UP.
  absl::SleepFor(6 * kReportInterval);

  ASSERT_OK_AND_ASSIGN(std::vector<HealthEntry> health1, directors[0].Health());
  EXPECT_TRUE(AllHealth(health1, {"up", "up", "up"}))
      << "dir1 reaches rs3 and must see it UP";
  std::string digest[2];
  for (int d = 0; d < 2; ++d) {
    ASSERT_OK_AND_ASSIGN(std::vector<ServiceEntry> services,
                         directors[d].Services());
    const ServiceEntry* service = FindService(services);
    ASSERT_NE(service, nullptr);
    digest[d] = service->table_digest;
    auto rs3 = FindBackend(services, kService, RealServer(kIsolated));
    ASSERT_TRUE(rs3.has_value());
    SCOPED_TRACE(directors[d].name);
    EXPECT_TRUE(StateIs(rs3->fleet_state, "up"))
        << "the fleet verdict is UP while only 1 of 2 nodes sees rs3 down; "
           "fleet_state: "
        << rs3->fleet_state;
    EXPECT_EQ(rs3->available, d == 0);
    EXPECT_TRUE(StateIs(rs3->local_state, d == 0 ? "up" : "down"))
        << rs3->local_state;
    std::printf(
        "%s /admin/services rs3: fleet %s local %s available %d, "
        "table_digest %s\n",
        directors[d].name.c_str(), rs3->fleet_state.c_str(),
        rs3->local_state.c_str(), rs3->available, digest[d].c_str());
  }
  EXPECT_FALSE(digest[0].empty());
  EXPECT_EQ(digest[0], digest[1])
      << "both directors must build the same table from the fleet verdict";

  error.clear();
  via1 = Requests(topo->client(), 150, &error);
  via2 = Requests(*client2, 150, &error);
  std::printf("after isolation: via dir1 %s; via dir2 %s\n",
              Describe(via1).c_str(), Describe(via2).c_str());
  EXPECT_EQ(via1[""] + via2[""], 0) << error;
  EXPECT_GT(via1["rs3"], 0) << "dir1 still sends rs3 its share";
  EXPECT_EQ(via2["rs3"], 0) << "dir2 cannot reach rs3 and must skip it";
  EXPECT_GT(via2["rs1"], 0);
  EXPECT_GT(via2["rs2"], 0);
  ASSERT_OK_AND_ASSIGN(
      std::string ls, dir1_ns.Run(absl::StrCat(
                          Runfile("controller/lbctl/lbctl"),
                          " --controller=", kController, " --insecure -L -n")));
  std::printf("lbctl -L -n:\n%s", ls.c_str());

  // dir1 loses it too: 2 of 2 → the fleet verdict is DOWN everywhere.
  const absl::Time both = absl::Now();
  ASSERT_THAT(DropProbes(dir1_ns), IsOk());
  for (Director& director : directors) {
    ASSERT_OK_AND_ASSIGN(
        absl::Duration to_fleet_down,
        director.WaitFor(
            [](const auto&, const auto& services) {
              auto b = FindBackend(services, kService, RealServer(kIsolated));
              return b.has_value() && StateIs(b->fleet_state, "down");
            },
            kStateBound, "rs3 fleet_state DOWN"));
    (void)to_fleet_down;
    std::printf(
        "both directors' probes dropped -> %s shows fleet DOWN after "
        "%s\n",
        director.name.c_str(), Ms(absl::Now() - both).c_str());
  }
  std::string digest_down[2];
  for (int d = 0; d < 2; ++d) {
    ASSERT_OK_AND_ASSIGN(std::vector<ServiceEntry> services,
                         directors[d].Services());
    const ServiceEntry* service = FindService(services);
    ASSERT_NE(service, nullptr);
    digest_down[d] = service->table_digest;
  }
  EXPECT_EQ(digest_down[0], digest_down[1]);
  EXPECT_NE(digest_down[0], digest[0]) << "a fleet-wide DOWN changes the table";
  error.clear();
  via1 = Requests(topo->client(), 60, &error);
  via2 = Requests(*client2, 60, &error);
  EXPECT_EQ(via1[""] + via2[""], 0) << error;
  EXPECT_EQ(via1["rs3"] + via2["rs3"], 0)
      << Describe(via1) << " / " << Describe(via2);
  (void)isolated;
}

}  // namespace
}  // namespace anylb
