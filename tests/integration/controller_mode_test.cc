// lbnode in controller mode end to end: the lab of lbnode_test (a client, a
// director running lbnode with AF_XDP, three nginx real servers, DR over
// IPv4), with anylb-controller running inside the director's namespace (on
// its private loopback, plaintext) and lbctl as the operator.
//  * lbctl -A / -a: the service reaches lbnode (time printed) and HTTP
//    through the VIP works;
//  * the controller is killed (-9): HTTP keeps working;
//  * the controller restarts on the same store: lbnode reconnects, is sent
//    nothing it already has, and a change made then (-e -w 0) arrives;
//  * lbnode restarts with the controller down: it forwards with the
//    snapshot cache.
//
// Needs root. Namespaces and processes are removed when the case ends, also
// when it fails (RAII in tests/netns).

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/itest_util.h"
#include "tests/netns/http_client.h"
#include "tests/netns/netns.h"
#include "tests/netns/nginx_server.h"
#include "tests/netns/topology.h"

namespace anylb {
namespace {

using ::anylb::itest::ReadFile;
using ::anylb::itest::Runfile;

using ::anylb::lab::HttpClient;
using ::anylb::lab::NginxOptions;
using ::anylb::lab::NginxServer;
using ::anylb::lab::Process;
using ::anylb::lab::ReturnPath;
using ::anylb::lab::Topology;
using ::anylb::status_testing::IsOk;

constexpr int kRealServers = 3;
// On the director namespace's own loopback: nothing outside sees it.
constexpr char kController[] = "127.0.0.1:50051";

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// WaitForCount waits until `path` holds `text` at least `n` times.
bool WaitForCount(const std::string& path, const std::string& text, int n,
                  Process* process, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (Count(ReadFile(path), text) >= n) return true;
    if (!process->Running()) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

class ControllerModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0)
        << "controller_mode_test builds network namespaces and attaches "
           "XDP: run it as root (deploy/test.sh does)";
  }
};

TEST_F(ControllerModeTest, ServiceFromLbctlCarriesTrafficAndSurvivesKill) {
  const IpAddress vip = Topology::Vip(0, IpFamily::kV4);
  lab::TopologyOptions topology_options;
  topology_options.xdp_pass_on_director_peer = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Topology> topo,
                       Topology::Create(topology_options));
  SCOPED_TRACE(topo->Describe());
  const auto& director = topo->director();
  ASSERT_THAT(director.Sysctl("net.ipv4.ip_forward", "0"), IsOk());
  ASSERT_THAT(topo->client().Run("ethtool -K eth0 tx off"), IsOk());
  for (int i = 0; i < topo->real_server_count(); ++i) {
    ASSERT_THAT(topo->real_server(i).Run("ethtool -K eth0 tx off"), IsOk());
  }
  ASSERT_THAT(topo->SetReturnPath(ReturnPath::kDirect), IsOk());
  ASSERT_THAT(topo->AddVipToRealServers(vip), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string dir, lab::TempDirectory("ctlmode"));
  std::vector<std::unique_ptr<NginxServer>> nginx;
  for (int i = 0; i < kRealServers; ++i) {
    NginxOptions options;
    options.name = absl::StrCat("rs", i + 1);
    options.port = 80;
    ASSERT_OK_AND_ASSIGN(auto server,
                         NginxServer::Start(topo->real_server(i), options));
    nginx.push_back(std::move(server));
  }

  const std::string store = dir + "/store.db";
  const std::string controller_log = dir + "/controller.log";
  auto start_controller = [&]() -> absl::StatusOr<std::unique_ptr<Process>> {
    return director.Spawn(
        {Runfile("controller/anylb_controller"),
         absl::StrCat("--listen=", kController), "--store=" + store,
         "--insecure", "--metrics_address="},
        controller_log);
  };
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Process> controller, start_controller());
  ASSERT_TRUE(WaitForCount(controller_log, "listening on", 1, controller.get(),
                           absl::Seconds(20)))
      << ReadFile(controller_log);

  const std::string log = dir + "/lbnode.log";
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Process> lbnode,
      director.Spawn(
          {Runfile("lbnode/lbnode"), "--interface=eth0",
           absl::StrCat("--controller=", kController), "--controller_insecure",
           "--node_name=itest", "--snapshot_cache=" + dir + "/snapshot.pb",
           "--report_interval=1s", "--metrics_address=127.0.0.1:9464"},
          log));
  ASSERT_TRUE(WaitForCount(log, "connected as node itest", 1, lbnode.get(),
                           absl::Seconds(30)))
      << "lbnode did not connect:\n"
      << ReadFile(log) << ReadFile(controller_log);

  auto lbctl = [&](const std::string& args) {
    return director.Run(absl::StrCat(Runfile("controller/lbctl/lbctl"),
                                     " --controller=", kController,
                                     " --insecure ", args));
  };
  const std::string vs = absl::StrCat(" -t ", vip.ToString(), ":80");
  const int applied_before = Count(ReadFile(log), " applied (");
  ASSERT_THAT(lbctl("-A" + vs + " -s mh"), IsOk());
  for (int i = 0; i < kRealServers; ++i) {
    ASSERT_THAT(lbctl(absl::StrCat(
                    "-a", vs, " -r ",
                    Topology::RealServerAddress(i, IpFamily::kV4).ToString(),
                    " -g -w 1")),
                IsOk());
  }
  // The last -a's revision reaches lbnode: measured from here.
  const absl::Time changed = absl::Now();
  ASSERT_TRUE(
      WaitForCount(log, "(1 services)", 1, lbnode.get(), absl::Seconds(10)))
      << ReadFile(log);
  HttpClient http(topo->client(), absl::Seconds(3));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http.Get(vip, 80, "/id").ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::cout << "lbctl -a -> HTTP through the VIP works: "
            << absl::ToDoubleMilliseconds(absl::Now() - changed) << " ms\n";
  std::map<std::string, int> by_server;
  for (int n = 0; n < 60; ++n) {
    absl::StatusOr<lab::HttpResponse> r = http.Get(vip, 80, "/id");
    ASSERT_THAT(r.status(), IsOk()) << "request " << n;
    ++by_server[r->body];
  }
  EXPECT_EQ(by_server.size(), static_cast<size_t>(kRealServers));

  // kill -9 the controller: forwarding goes on.
  controller->Stop(SIGKILL, 1000);
  ASSERT_TRUE(
      WaitForCount(log, "disconnected", 1, lbnode.get(), absl::Seconds(10)))
      << ReadFile(log);
  for (int n = 0; n < 60; ++n) {
    EXPECT_THAT(http.Get(vip, 80, "/id").status(), IsOk())
        << "request " << n << " with the controller down";
  }

  // Restart on the same store: reconnect, nothing re-pushed; a change made
  // now arrives.
  const int applied_at_kill = Count(ReadFile(log), " applied (");
  ASSERT_OK_AND_ASSIGN(controller, start_controller());
  ASSERT_TRUE(WaitForCount(log, "connected as node itest", 2, lbnode.get(),
                           absl::Seconds(60)))
      << ReadFile(log);
  ASSERT_THAT(lbctl(absl::StrCat(
                  "-e", vs, " -r ",
                  Topology::RealServerAddress(2, IpFamily::kV4).ToString(),
                  " -g -w 0")),
              IsOk());
  ASSERT_TRUE(WaitForCount(log, " applied (", applied_at_kill + 1, lbnode.get(),
                           absl::Seconds(10)))
      << ReadFile(log);
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(Count(ReadFile(log), " applied ("), applied_at_kill + 1)
      << "a re-push after the restart:\n"
      << ReadFile(log);
  EXPECT_GT(applied_at_kill, applied_before);
  // rs3 at weight 0 gets no new connection.
  by_server.clear();
  for (int n = 0; n < 30; ++n) {
    absl::StatusOr<lab::HttpResponse> r = http.Get(vip, 80, "/id");
    ASSERT_THAT(r.status(), IsOk()) << "request " << n;
    ++by_server[r->body];
  }
  EXPECT_EQ(by_server.count("rs3"), 0u);
  EXPECT_EQ(lbnode->Stop(SIGTERM, 10000), 0) << ReadFile(log);

  // lbnode restarts while the controller is down: it forwards with the
  // snapshot cache (rs3 still at weight 0).
  controller->Stop(SIGKILL, 1000);
  const std::string log2 = dir + "/lbnode-2.log";
  ASSERT_OK_AND_ASSIGN(
      lbnode, director.Spawn({Runfile("lbnode/lbnode"), "--interface=eth0",
                              absl::StrCat("--controller=", kController),
                              "--controller_insecure", "--node_name=itest",
                              "--snapshot_cache=" + dir + "/snapshot.pb",
                              "--metrics_address=127.0.0.1:9464"},
                             log2));
  ASSERT_TRUE(
      WaitForCount(log2, "lbnode running", 1, lbnode.get(), absl::Seconds(30)))
      << ReadFile(log2);
  EXPECT_TRUE(
      WaitForCount(log2, "cannot connect", 1, lbnode.get(), absl::Seconds(10)))
      << ReadFile(log2);
  by_server.clear();
  deadline = absl::Now() + absl::Seconds(10);
  while (!http.Get(vip, 80, "/id").ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  for (int n = 0; n < 30; ++n) {
    absl::StatusOr<lab::HttpResponse> r = http.Get(vip, 80, "/id");
    ASSERT_THAT(r.status(), IsOk()) << "request " << n << " from the cache:\n"
                                    << ReadFile(log2);
    ++by_server[r->body];
  }
  EXPECT_EQ(by_server.count("rs3"), 0u);
  EXPECT_EQ(lbnode->Stop(SIGTERM, 10000), 0) << ReadFile(log2);
}

}  // namespace
}  // namespace anylb
