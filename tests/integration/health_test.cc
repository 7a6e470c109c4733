// Health checks end to end (issue 8): the lab of lbnode_test (a client, a
// director running the standalone lbnode with AF_XDP, real servers running
// nginx; DR over IPv4, scheduler mh), with the service's health_check in
// lbnode's YAML config and short timers (interval 200 ms, timeout 150 ms,
// rise 2, fall 2). The director probes each real server's own address from
// its kernel stack; the test reads lbnode's GET /admin/health and
// /admin/services and sends real HTTP requests through the VIP.
//  * StoppedServerLeavesAndReturns: one real server's nginx stops while a
//    client keeps sending → DOWN in /admin/health (time printed), then its
//    weight 0 in /admin/services (the installed table; the lag printed); no
//    request started after that install fails, and none reaches it; nginx
//    restarts → UP after about rise x interval (printed) and requests reach
//    it again.
//  * ReusedTupleOfDownServerIsRescheduled: a connection from a source port
//    whose earlier (closed) connection went to rs2; rs2 goes DOWN (weight
//    0); a new connection from that port must go elsewhere.
//  * HttpCheckFailsOnStatus500: the check expects 200; a real server whose
//    check path answers 500 is DOWN with "500" in last_error and gets no
//    request (on_failure: remove).
//  * AllDownWithdrawsVipFromRouterFib: lbnode --announce with a director FRR
//    peering with a router FRR (deploy/frr configs, as routing_test): every
//    real server down → the VIP leaves the router's kernel FIB; one back →
//    the VIP returns (quorum). Times printed.
//  * ExecDynamicWeightSteersNewConnections: an exec check exits 2 + w with w
//    read from a file the test writes; 1:1 → 1:3 and the share of new
//    connections follows (loose bands).
//
// Times are printed, not asserted, except as generous deadlines (10 x the
// expected time, so a daemon that ignores the configured timers fails).
//
// Needs root (tags local, netns). Namespaces, nginx, FRR and lbnode are
// stopped and removed when a case ends, also when it fails (RAII in
// tests/netns).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/admin_json.h"
#include "tests/integration/itest_util.h"
#include "tests/netns/frr.h"
#include "tests/netns/http_client.h"
#include "tests/netns/links.h"
#include "tests/netns/netns.h"
#include "tests/netns/nginx_server.h"
#include "tests/netns/topology.h"

namespace anylb {
namespace {

using ::anylb::itest::MetricSum;
using ::anylb::itest::ReadFile;
using ::anylb::itest::Runfile;
using ::anylb::itest::WriteFile;

using ::anylb::itest::FindHealth;
using ::anylb::itest::HealthEntry;
using ::anylb::itest::ParseAdminHealth;
using ::anylb::itest::ParseAdminServices;
using ::anylb::itest::ServiceEntry;
using ::anylb::itest::StateIs;
using ::anylb::lab::HttpClient;
using ::anylb::lab::Netns;
using ::anylb::lab::NginxOptions;
using ::anylb::lab::NginxServer;
using ::anylb::lab::Process;
using ::anylb::lab::Topology;
using ::anylb::status_testing::IsOk;

constexpr char kService[] = "web";
// The health-check timers of every case.
constexpr absl::Duration kInterval = absl::Milliseconds(200);
constexpr absl::Duration kTimeout = absl::Milliseconds(150);
constexpr int kRise = 2;
constexpr int kFall = 2;
// Generous deadlines for a state change: about 10 x what the timers give
// (fall x interval + timeout = 550 ms; rise x interval = 400 ms), small
// enough that lb.v1's defaults (interval 5 s, fall 3) would miss them.
constexpr absl::Duration kDetectBound = absl::Seconds(5);

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d), " ms");
}

std::string RealServer(int i) {
  return Topology::RealServerAddress(i, IpFamily::kV4).ToString();
}

// ServiceYaml is one DR service on Vip(0):80 over `servers` real servers
// (weight 1) with `check` (the lines under health_check:, indented by 6)
// and the common timers.
std::string ServiceYaml(int servers, const std::string& check,
                        const std::string& extra = "") {
  std::string out =
      absl::StrCat("  - name: ", kService,
                   "\n    vip: ", Topology::Vip(0, IpFamily::kV4).ToString(),
                   "\n    port: 80\n    protocol: tcp\n    scheduler: mh\n"
                   "    forwarding: {mode: dr}\n",
                   extra, "    health_check:\n      interval: ",
                   absl::ToInt64Milliseconds(kInterval),
                   "ms\n      timeout: ", absl::ToInt64Milliseconds(kTimeout),
                   "ms\n      rise: ", kRise, "\n      fall: ", kFall, "\n",
                   check, "    backends:\n");
  for (int i = 0; i < servers; ++i) {
    absl::StrAppend(&out, "      - {address: ", RealServer(i),
                    ", port: 80, weight: 1}\n");
  }
  return out;
}

std::string ConfigYaml(int servers, const std::string& check,
                       const std::string& extra = "") {
  return absl::StrCat("revision: 1\nnode:\n  node_name: hc\nservices:\n",
                      ServiceYaml(servers, check, extra));
}

// HealthLab: the topology, nginx on every real server, lbnode on the
// director, and what the cases ask of them.
class HealthLab {
 public:
  // Create builds the topology with `servers` real servers; options_for(i)
  // tweaks real server i's nginx.
  static absl::StatusOr<std::unique_ptr<HealthLab>> Create(
      int servers,
      const std::function<void(int, NginxOptions*)>& options_for = nullptr) {
    std::unique_ptr<HealthLab> lab(new HealthLab);
    lab::TopologyOptions topology_options;
    topology_options.real_servers = servers;
    topology_options.xdp_pass_on_director_peer = true;
    ASSIGN_OR_RETURN(lab->topo_, Topology::Create(topology_options));
    const Netns& director = lab->topo_->director();
    // Only lbnode moves VIP packets through the director.
    RETURN_IF_ERROR(director.Sysctl("net.ipv4.ip_forward", "0"));
    RETURN_IF_ERROR(
        lab->topo_->client().Run("ethtool -K eth0 tx off").status());
    for (int i = 0; i < servers; ++i) {
      RETURN_IF_ERROR(
          lab->topo_->real_server(i).Run("ethtool -K eth0 tx off").status());
    }
    RETURN_IF_ERROR(
        lab->topo_->AddVipToRealServers(Topology::Vip(0, IpFamily::kV4)));
    ASSIGN_OR_RETURN(lab->dir_, lab::TempDirectory("health-itest"));
    for (int i = 0; i < servers; ++i) {
      NginxOptions options;
      options.name = absl::StrCat("rs", i + 1);
      if (options_for) options_for(i, &options);
      ASSIGN_OR_RETURN(auto server,
                       NginxServer::Start(lab->topo_->real_server(i), options));
      lab->nginx_.push_back(std::move(server));
    }
    return lab;
  }

  ~HealthLab() {
    lbnode_.reset();
    nginx_.clear();
    topo_.reset();
  }

  const Topology& topo() const { return *topo_; }
  NginxServer& nginx(int i) { return *nginx_[i]; }
  const std::string& dir() const { return dir_; }
  std::string Log() const { return ReadFile(log_); }

  // StartLbnode writes `yaml` and starts lbnode with it (and `extra`
  // flags), waiting for "lbnode running".
  absl::Status StartLbnode(const std::string& yaml,
                           const std::vector<std::string>& extra = {}) {
    const std::string config = dir_ + "/lbnode.yaml";
    log_ = dir_ + "/lbnode.log";
    RETURN_IF_ERROR(WriteFile(config, yaml));
    std::vector<std::string> argv = {
        Runfile("lbnode/lbnode"), "--interface=eth0",
        "--config=" + config,     "--metrics_address=127.0.0.1:9464",
        "--health_checks=true",   "--log_level=debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSIGN_OR_RETURN(lbnode_, topo_->director().Spawn(argv, log_));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!absl::StrContains(Log(), "lbnode running")) {
      if (!lbnode_->Running() || absl::Now() > deadline) {
        return absl::InternalError(
            absl::StrCat("lbnode did not start:\n", Log()));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return absl::OkStatus();
  }

  // AdminPage GETs `path` on lbnode's metrics address.
  absl::StatusOr<std::string> AdminPage(const std::string& path) const {
    HttpClient local(topo_->director(), absl::Seconds(3));
    ASSIGN_OR_RETURN(lab::HttpResponse r,
                     local.Get(*IpAddress::Parse("127.0.0.1"), 9464, path));
    if (r.status_code != 200) {
      return absl::FailedPreconditionError(
          absl::StrCat("GET ", path, ": HTTP ", r.status_code, ": ", r.body));
    }
    return r.body;
  }

  absl::StatusOr<std::vector<HealthEntry>> Health() const {
    ASSIGN_OR_RETURN(std::string body, AdminPage("/admin/health"));
    return ParseAdminHealth(body);
  }

  absl::StatusOr<std::vector<ServiceEntry>> Services() const {
    ASSIGN_OR_RETURN(std::string body, AdminPage("/admin/services"));
    return ParseAdminServices(body);
  }

  // WaitForHealth polls /admin/health every 10 ms until `done` accepts it;
  // returns how long it took. DEADLINE_EXCEEDED quotes the last page.
  absl::StatusOr<absl::Duration> WaitForHealth(
      const std::function<bool(const std::vector<HealthEntry>&)>& done,
      absl::Duration timeout, const std::string& what) const {
    const absl::Time start = absl::Now();
    std::string last;
    while (absl::Now() - start < timeout) {
      absl::StatusOr<std::string> body = AdminPage("/admin/health");
      if (body.ok()) {
        last = *body;
        ASSIGN_OR_RETURN(std::vector<HealthEntry> entries,
                         ParseAdminHealth(*body));
        if (done(entries)) return absl::Now() - start;
      } else {
        last = body.status().ToString();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "waited ", Ms(timeout), " for ", what, "; last /admin/health: ", last));
  }

  // WaitForState waits until real server `i` is in `state` ("up", "down").
  absl::StatusOr<absl::Duration> WaitForState(int i, const std::string& state,
                                              absl::Duration timeout) const {
    return WaitForHealth(
        [&](const std::vector<HealthEntry>& entries) {
          auto e = FindHealth(entries, kService, RealServer(i));
          return e.has_value() && StateIs(e->state, state);
        },
        timeout, absl::StrCat("rs", i + 1, " ", state));
  }

  // WaitForAll waits until every real server's state is given by `states`.
  absl::StatusOr<absl::Duration> WaitForAll(
      const std::vector<std::string>& states, absl::Duration timeout) const {
    return WaitForHealth(
        [&](const std::vector<HealthEntry>& entries) {
          for (size_t i = 0; i < states.size(); ++i) {
            auto e =
                FindHealth(entries, kService, RealServer(static_cast<int>(i)));
            if (!e.has_value() || !StateIs(e->state, states[i])) return false;
          }
          return true;
        },
        timeout, absl::StrCat("states ", absl::StrJoin(states, ",")));
  }

  // WaitForWeights polls /admin/services (what the dataplane runs) every
  // 10 ms until real server i has effective weight weights[i] (0 also
  // matches a real server left out: on_failure remove); returns how long it
  // took.
  absl::StatusOr<absl::Duration> WaitForWeights(const std::vector<int>& weights,
                                                absl::Duration timeout) const {
    const absl::Time start = absl::Now();
    std::string last;
    while (absl::Now() - start < timeout) {
      absl::StatusOr<std::string> body = AdminPage("/admin/services");
      if (body.ok()) {
        last = *body;
        ASSIGN_OR_RETURN(std::vector<ServiceEntry> services,
                         ParseAdminServices(*body));
        bool done = true;
        for (size_t i = 0; i < weights.size() && done; ++i) {
          auto b = itest::FindBackend(services, kService,
                                      RealServer(static_cast<int>(i)));
          done = b.has_value() ? b->weight == static_cast<uint64_t>(weights[i])
                               : weights[i] == 0;
        }
        if (done) return absl::Now() - start;
      } else {
        last = body.status().ToString();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "waited ", Ms(timeout), " for effective weights ",
        absl::StrJoin(weights, ":"), "; last /admin/services: ", last));
  }

  // Requests sends `n` GET /id through the VIP (each a new connection) and
  // counts the answers by server name; failures under "".
  std::map<std::string, int> Requests(int n, std::string* first_error) const {
    HttpClient http(topo_->client(), absl::Seconds(2));
    std::map<std::string, int> by_server;
    for (int k = 0; k < n; ++k) {
      absl::StatusOr<lab::HttpResponse> r =
          http.Get(Topology::Vip(0, IpFamily::kV4), 80, "/id");
      if (!r.ok() || r->status_code != 200) {
        if (first_error != nullptr && first_error->empty()) {
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

  // IdRequests counts the GET /id requests in real server i's access log
  // (health probes of other paths left out).
  absl::StatusOr<int> IdRequests(int i) const {
    ASSIGN_OR_RETURN(auto entries, nginx_[i]->AccessLog());
    int n = 0;
    for (const auto& e : entries) {
      if (e.uri == "/id") ++n;
    }
    return n;
  }

 private:
  HealthLab() = default;
  std::unique_ptr<Topology> topo_;
  std::string dir_;
  std::string log_;
  std::vector<std::unique_ptr<NginxServer>> nginx_;
  std::unique_ptr<Process> lbnode_;
};

std::string Describe(const std::map<std::string, int>& by_server) {
  std::vector<std::string> parts;
  for (const auto& [name, n] : by_server) {
    parts.push_back(absl::StrCat(name.empty() ? "failed" : name, "=", n));
  }
  return absl::StrJoin(parts, " ");
}

// LoadRecord is one request of the background load.
struct LoadRecord {
  absl::Time start;
  bool ok = false;
  std::string server;
  std::string error;
};

// BackgroundLoad sends GET /id through the VIP back to back on its own
// thread until destroyed or Stop(), and keeps every result.
class BackgroundLoad {
 public:
  explicit BackgroundLoad(const Topology& topo)
      : http_(topo.client(), absl::Seconds(1)), thread_([this] { Run(); }) {}
  ~BackgroundLoad() { Stop(); }

  std::vector<LoadRecord> Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }

 private:
  void Run() {
    while (!stop_) {
      LoadRecord record;
      record.start = absl::Now();
      absl::StatusOr<lab::HttpResponse> r =
          http_.Get(Topology::Vip(0, IpFamily::kV4), 80, "/id");
      record.ok = r.ok() && r->status_code == 200;
      if (record.ok) {
        record.server = r->body;
      } else {
        record.error = r.ok() ? absl::StrCat("HTTP ", r->status_code)
                              : r.status().ToString();
      }
      std::lock_guard<std::mutex> lock(mu_);
      records_.push_back(std::move(record));
    }
  }

  HttpClient http_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<LoadRecord> records_;
  std::thread thread_;
};

// GetFromPort sends GET `path` to Vip(0):80 from the client's address and
// source port `source_port` (SO_REUSEADDR: the same 5-tuple as an earlier,
// closed connection) and returns the body. Every call is a new TCP
// connection on a tuple the director may still remember.
absl::StatusOr<std::string> GetFromPortOnce(const Topology& topo,
                                            int source_port,
                                            const std::string& path) {
  std::string body;
  absl::Status status = topo.client().RunInThread([&]() -> absl::Status {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
    struct Closer {
      int fd;
      ~Closer() { close(fd); }
    } closer{fd};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(static_cast<uint16_t>(source_port));
    inet_pton(AF_INET,
              Topology::ClientAddress(IpFamily::kV4).ToString().c_str(),
              &local.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("bind port ", source_port));
    }
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(80);
    inet_pton(AF_INET, Topology::Vip(0, IpFamily::kV4).ToString().c_str(),
              &remote.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) !=
        0) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("connect from port ", source_port));
    }
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\n\r\n");
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return absl::ErrnoToStatus(errno, "send");
    }
    std::string response;
    char buffer[4096];
    for (;;) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n < 0) return absl::ErrnoToStatus(errno, "recv");
      if (n == 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
    size_t end = response.find("\r\n\r\n");
    if (!absl::StartsWith(response, "HTTP/1.1 200") ||
        end == std::string::npos) {
      return absl::InternalError(absl::StrCat("bad response: ", response));
    }
    body = response.substr(end + 4);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return body;
}

// GetFromPort: GetFromPortOnce, waiting (up to 3 s) while the tuple's
// previous socket is still closing in the client (EADDRNOTAVAIL).
absl::StatusOr<std::string> GetFromPort(const Topology& topo, int source_port,
                                        const std::string& path) {
  absl::Time deadline = absl::Now() + absl::Seconds(3);
  for (;;) {
    absl::StatusOr<std::string> r = GetFromPortOnce(topo, source_port, path);
    if (r.ok() ||
        !absl::StrContains(r.status().message(),
                           "Cannot assign requested address") ||
        absl::Now() > deadline) {
      return r;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0)
        << "health_test builds network namespaces and attaches XDP: run it "
           "as root (deploy/test.sh does)";
  }
};

TEST_F(HealthTest, StoppedServerLeavesAndReturns) {
  constexpr int kServers = 3;
  constexpr int kVictim = 1;  // rs2
  ASSERT_OK_AND_ASSIGN(auto lab, HealthLab::Create(kServers));
  SCOPED_TRACE(lab->topo().Describe());
  ASSERT_THAT(lab->StartLbnode(ConfigYaml(kServers, "      tcp: {}\n")),
              IsOk());
  ASSERT_OK_AND_ASSIGN(absl::Duration all_up,
                       lab->WaitForAll({"up", "up", "up"}, kDetectBound));
  std::printf("all real servers UP %s after lbnode ran\n", Ms(all_up).c_str());
  ASSERT_THAT(lab->WaitForWeights({1, 1, 1}, kDetectBound).status(), IsOk());

  std::string error;
  std::map<std::string, int> by_server = lab->Requests(60, &error);
  EXPECT_EQ(by_server[""], 0) << error << "\n" << lab->Log();
  for (int i = 0; i < kServers; ++i) {
    EXPECT_GT(by_server[absl::StrCat("rs", i + 1)], 0) << Describe(by_server);
  }

  // rs2's nginx stops while a client keeps sending.
  auto load = std::make_unique<BackgroundLoad>(lab->topo());
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time stopped = absl::Now();
  ASSERT_THAT(lab->nginx(kVictim).Stop(), IsOk());
  // Detected: /admin/health (the monitor) says DOWN. Out of rotation:
  // /admin/services (what the dataplane runs) has its weight at 0
  // (inhibit); the install in between is the margin the issue allows.
  ASSERT_THAT(lab->WaitForState(kVictim, "down", kDetectBound).status(),
              IsOk());
  const absl::Time detected = absl::Now();
  ASSERT_THAT(lab->WaitForWeights({1, 0, 1}, kDetectBound).status(), IsOk());
  const absl::Time installed = absl::Now();
  absl::SleepFor(absl::Milliseconds(700));
  std::vector<LoadRecord> records = load->Stop();
  load.reset();

  int failed_before = 0;
  int failed_installing = 0;
  int failed_after = 0;
  int after = 0;
  absl::Time last_failure = stopped;
  std::string after_error;
  for (const LoadRecord& r : records) {
    if (!r.ok) last_failure = std::max(last_failure, r.start);
    if (r.start < detected) {
      if (!r.ok) ++failed_before;
      continue;
    }
    if (r.start < installed) {
      if (!r.ok) ++failed_installing;
      continue;
    }
    ++after;
    if (!r.ok) {
      ++failed_after;
      if (after_error.empty()) after_error = r.error;
    }
    EXPECT_NE(r.server, "rs2") << "a request after the install reached rs2";
  }
  std::printf(
      "rs2 stopped -> DOWN in /admin/health after %s (fall %d x interval %s "
      "+ timeout %s = %s), weight 0 in /admin/services %s later; last failed "
      "request started %s after the stop (%d failed before detection, %d "
      "between detection and install); %d requests after the install\n",
      Ms(detected - stopped).c_str(), kFall, Ms(kInterval).c_str(),
      Ms(kTimeout).c_str(), Ms(kFall * kInterval + kTimeout).c_str(),
      Ms(installed - detected).c_str(), Ms(last_failure - stopped).c_str(),
      failed_before, failed_installing, after);
  EXPECT_GT(after, 0);
  EXPECT_EQ(failed_after, 0) << "requests started after rs2 left the "
                                "dataplane's table failed; first: "
                             << after_error << "\n"
                             << lab->Log();

  ASSERT_OK_AND_ASSIGN(std::vector<HealthEntry> health, lab->Health());
  auto victim = FindHealth(health, kService, RealServer(kVictim));
  ASSERT_TRUE(victim.has_value());
  EXPECT_FALSE(victim->last_error.empty())
      << "a DOWN real server names the last probe's error";
  EXPECT_GE(victim->failures, static_cast<uint64_t>(kFall));
  std::printf("rs2 last_error: \"%s\", last_change %s\n",
              victim->last_error.c_str(), victim->last_change.c_str());

  // Workers publish counters every 100 ms.
  absl::SleepFor(absl::Milliseconds(300));
  const std::string rs2_label = absl::StrCat(RealServer(kVictim), ":");
  ASSERT_OK_AND_ASSIGN(std::string metrics_before, lab->AdminPage("/metrics"));
  error.clear();
  by_server = lab->Requests(90, &error);
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_OK_AND_ASSIGN(std::string metrics_after, lab->AdminPage("/metrics"));
  const double rs2_new_flows =
      MetricSum(metrics_after, "anylb_backend_new_flows_total", rs2_label) -
      MetricSum(metrics_before, "anylb_backend_new_flows_total", rs2_label);
  std::printf("90 requests after the install: %s; new flows to rs2: %.0f\n",
              Describe(by_server).c_str(), rs2_new_flows);
  EXPECT_EQ(rs2_new_flows, 0) << "the scheduler picked rs2 at weight 0";
  EXPECT_EQ(by_server[""], 0)
      << error << "\nnew flows to rs2: " << rs2_new_flows
      << " (0: the SYN found an existing flow to rs2: the client reused a "
         "source port; see ReusedTupleOfDownServerIsRescheduled)\n"
      << metrics_after << "\n"
      << lab->Log();
  EXPECT_EQ(by_server["rs2"], 0);
  EXPECT_GT(by_server["rs1"], 0) << Describe(by_server);
  EXPECT_GT(by_server["rs3"], 0) << Describe(by_server);

  // Back: UP after about rise x interval, and it gets requests again.
  const absl::Time restarted = absl::Now();
  ASSERT_THAT(lab->nginx(kVictim).Restart(), IsOk());
  const absl::Duration nginx_start = absl::Now() - restarted;
  ASSERT_OK_AND_ASSIGN(absl::Duration to_up,
                       lab->WaitForState(kVictim, "up", kDetectBound));
  std::printf(
      "rs2 restarted (nginx listening after %s) -> UP after %s in total "
      "(rise %d x interval %s = %s)\n",
      Ms(nginx_start).c_str(), Ms(absl::Now() - restarted).c_str(), kRise,
      Ms(kInterval).c_str(), Ms(kRise * kInterval).c_str());
  (void)to_up;
  ASSERT_THAT(lab->WaitForWeights({1, 1, 1}, kDetectBound).status(), IsOk());
  error.clear();
  by_server = lab->Requests(90, &error);
  EXPECT_EQ(by_server[""], 0) << error;
  EXPECT_GE(by_server["rs2"], 10) << Describe(by_server);
  ASSERT_OK_AND_ASSIGN(health, lab->Health());
  victim = FindHealth(health, kService, RealServer(kVictim));
  ASSERT_TRUE(victim.has_value());
  EXPECT_TRUE(victim->last_error.empty())
      << "an UP real server whose last probe passed has no last_error: "
      << victim->last_error;
}

// A new connection that reuses the 5-tuple of an earlier, closed connection
// to a real server now DOWN must not be sent there (IPVS reschedules a SYN
// that hits a closed connection: conn_reuse_mode). Clients reuse source
// ports all the time; StoppedServerLeavesAndReturns's load hits this at
// random, this case on purpose.
TEST_F(HealthTest, ReusedTupleOfDownServerIsRescheduled) {
  constexpr int kServers = 3;
  constexpr int kVictim = 1;  // rs2
  ASSERT_OK_AND_ASSIGN(auto lab, HealthLab::Create(kServers));
  SCOPED_TRACE(lab->topo().Describe());
  ASSERT_THAT(lab->StartLbnode(ConfigYaml(kServers, "      tcp: {}\n")),
              IsOk());
  ASSERT_THAT(lab->WaitForAll({"up", "up", "up"}, kDetectBound).status(),
              IsOk());
  ASSERT_THAT(lab->WaitForWeights({1, 1, 1}, kDetectBound).status(), IsOk());
  // A source port whose connection mh sends to rs2.
  int port = 0;
  for (int p = 40001; p < 40100 && port == 0; ++p) {
    ASSERT_OK_AND_ASSIGN(std::string who, GetFromPort(lab->topo(), p, "/id"));
    if (who == "rs2") port = p;
  }
  ASSERT_NE(port, 0) << "no source port in 40001..40099 maps to rs2";
  // The same tuple again: same real server (the flow, or the same hash).
  ASSERT_OK_AND_ASSIGN(std::string again,
                       GetFromPort(lab->topo(), port, "/id"));
  ASSERT_EQ(again, "rs2");

  ASSERT_THAT(lab->nginx(kVictim).Stop(), IsOk());
  ASSERT_THAT(lab->WaitForState(kVictim, "down", kDetectBound).status(),
              IsOk());
  ASSERT_THAT(lab->WaitForWeights({1, 0, 1}, kDetectBound).status(), IsOk());
  // A fresh tuple is fine; the remembered one must be rescheduled too.
  absl::StatusOr<std::string> fresh = GetFromPort(lab->topo(), 40200, "/id");
  EXPECT_THAT(fresh.status(), IsOk());
  absl::StatusOr<std::string> reused = GetFromPort(lab->topo(), port, "/id");
  EXPECT_THAT(reused.status(), IsOk())
      << "a new connection from port " << port
      << " (whose earlier, closed connection went to rs2) was sent to rs2, "
         "which is DOWN at weight 0: the flow table kept the closed flow's "
         "backend for a new SYN";
  if (reused.ok()) {
    EXPECT_NE(*reused, "rs2");
  }
}

TEST_F(HealthTest, HttpCheckFailsOnStatus500) {
  constexpr int kServers = 3;
  constexpr int kBad = 1;  // rs2
  ASSERT_OK_AND_ASSIGN(
      auto lab, HealthLab::Create(kServers, [](int i, NginxOptions* options) {
        options->fixed_status["/health"] = i == kBad ? 500 : 200;
      }));
  SCOPED_TRACE(lab->topo().Describe());
  ASSERT_THAT(
      lab->StartLbnode(ConfigYaml(
          kServers,
          "      on_failure: remove\n"
          "      http: {path: /health, expected_statuses: [{min: 200, max: "
          "200}]}\n")),
      IsOk());
  ASSERT_OK_AND_ASSIGN(absl::Duration settled,
                       lab->WaitForAll({"up", "down", "up"}, kDetectBound));
  std::printf("rs1, rs3 UP and rs2 (/health: 500) DOWN %s after lbnode ran\n",
              Ms(settled).c_str());
  // Removed from what the dataplane runs.
  ASSERT_THAT(lab->WaitForWeights({1, 0, 1}, kDetectBound).status(), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<HealthEntry> health, lab->Health());
  auto bad = FindHealth(health, kService, RealServer(kBad));
  ASSERT_TRUE(bad.has_value());
  EXPECT_THAT(bad->last_error, ::testing::HasSubstr("500"));
  std::printf("rs2 last_error: \"%s\"\n", bad->last_error.c_str());
  // The probes really ran against nginx: rs2 answered /health with 500.
  ASSERT_OK_AND_ASSIGN(auto log, lab->nginx(kBad).AccessLog());
  int probes_500 = 0;
  for (const auto& e : log) {
    if (e.uri == "/health" && e.status == 500) ++probes_500;
  }
  EXPECT_GT(probes_500, 0);

  std::string error;
  std::map<std::string, int> by_server = lab->Requests(90, &error);
  EXPECT_EQ(by_server[""], 0) << error << "\n" << lab->Log();
  EXPECT_EQ(by_server["rs2"], 0) << Describe(by_server);
  EXPECT_GT(by_server["rs1"], 0) << Describe(by_server);
  EXPECT_GT(by_server["rs3"], 0) << Describe(by_server);
  ASSERT_OK_AND_ASSIGN(int rs2_requests, lab->IdRequests(kBad));
  EXPECT_EQ(rs2_requests, 0) << "rs2's access log has client requests";
}

TEST_F(HealthTest, SorryServerAnswersOnlyWhileEveryRealServerIsDown) {
  // rs1 and rs2 are the service's real servers (TCP check, inhibit); rs3 is
  // its sorry_backend (keepalived's sorry_server), never checked.
  constexpr int kServers = 2;
  ASSERT_OK_AND_ASSIGN(auto lab, HealthLab::Create(kServers + 1));
  SCOPED_TRACE(lab->topo().Describe());
  ASSERT_THAT(lab->StartLbnode(ConfigYaml(
                  kServers, "      tcp: {}\n",
                  absl::StrCat("    sorry_backend: {address: ", RealServer(2),
                               ", port: 80}\n"))),
              IsOk());
  ASSERT_THAT(lab->WaitForAll({"up", "up"}, kDetectBound).status(), IsOk());
  // The sorry server is not in while a real server is up.
  ASSERT_THAT(lab->WaitForWeights({1, 1, 0}, kDetectBound).status(), IsOk());
  std::string error;
  std::map<std::string, int> by_server = lab->Requests(40, &error);
  EXPECT_EQ(by_server[""], 0) << error;
  EXPECT_EQ(by_server["rs3"], 0) << Describe(by_server);

  // Every real server down: the sorry server takes the new connections.
  ASSERT_THAT(lab->nginx(0).Stop(), IsOk());
  ASSERT_THAT(lab->nginx(1).Stop(), IsOk());
  ASSERT_OK_AND_ASSIGN(absl::Duration down,
                       lab->WaitForAll({"down", "down"}, kDetectBound));
  ASSERT_OK_AND_ASSIGN(absl::Duration in,
                       lab->WaitForWeights({0, 0, 1}, kDetectBound));
  std::printf("rs1, rs2 DOWN after %s; the sorry server in %s later\n",
              Ms(down).c_str(), Ms(in).c_str());
  error.clear();
  by_server = lab->Requests(40, &error);
  EXPECT_EQ(by_server[""], 0) << error << "\n" << lab->Log();
  EXPECT_EQ(by_server["rs3"], 40) << Describe(by_server);
  EXPECT_THAT(lab->Log(), ::testing::HasSubstr("sorry"));

  // One real server back: the sorry server leaves, new connections go to it.
  ASSERT_THAT(lab->nginx(0).Restart(), IsOk());
  ASSERT_THAT(lab->WaitForState(0, "up", kDetectBound).status(), IsOk());
  ASSERT_THAT(lab->WaitForWeights({1, 0, 0}, kDetectBound).status(), IsOk());
  error.clear();
  by_server = lab->Requests(40, &error);
  EXPECT_EQ(by_server[""], 0) << error;
  EXPECT_EQ(by_server["rs1"], 40) << Describe(by_server);
}

// The router side of AllDownWithdrawsVipFromRouterFib: a link from the
// director (up0) to a router namespace (r-d1), outside the Topology's plan:
// 192.0.2.248/29 and 2001:db8:1:ff::/64.
constexpr char kRouterV4[] = "192.0.2.249";
constexpr char kDirectorUpV4[] = "192.0.2.250";
constexpr char kRouterV6[] = "2001:db8:1:ff::1";
constexpr char kDirectorUpV6[] = "2001:db8:1:ff::2";

std::map<std::string, std::string> BfdValues() {
  return {{"BFD_MULTIPLIER", "3"}, {"BFD_INTERVAL_MS", "100"}};
}

TEST_F(HealthTest, AllDownWithdrawsVipFromRouterFib) {
  constexpr int kServers = 2;
  const std::string vip =
      absl::StrCat(Topology::Vip(0, IpFamily::kV4).ToString(), "/32");
  ASSERT_OK_AND_ASSIGN(auto lab, HealthLab::Create(kServers));
  SCOPED_TRACE(lab->topo().Describe());
  const Netns& director = lab->topo().director();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> router, Netns::Create("rt"));
  ASSERT_THAT(lab::QuietHost(*router), IsOk());
  ASSERT_THAT(lab::AddVethPair(*router, "r-d1", director, "up0"), IsOk());
  ASSERT_THAT(lab::AddAddress(*router, "r-d1", absl::StrCat(kRouterV4, "/29")),
              IsOk());
  ASSERT_THAT(lab::AddAddress(*router, "r-d1", absl::StrCat(kRouterV6, "/64")),
              IsOk());
  ASSERT_THAT(
      lab::AddAddress(director, "up0", absl::StrCat(kDirectorUpV4, "/29")),
      IsOk());
  ASSERT_THAT(
      lab::AddAddress(director, "up0", absl::StrCat(kDirectorUpV6, "/64")),
      IsOk());

  auto tmpl = [](const std::string& name) {
    return Runfile("deploy/frr/" + name);
  };
  ASSERT_OK_AND_ASSIGN(
      std::string bfd,
      lab::ReadFrrTemplate(tmpl("bfd-profile.conf"), BfdValues()));
  ASSERT_OK_AND_ASSIGN(
      std::string router_config,
      lab::ReadFrrTemplate(tmpl("router-bgp.conf"),
                           {{"HOSTNAME", "router"},
                            {"ROUTER_AS", "65000"},
                            {"ROUTER_ID", kRouterV4},
                            {"BGP_KEEPALIVE", "1"},
                            {"BGP_HOLD", "3"},
                            {"VIP_RANGE_V4", "192.0.2.0/25"},
                            {"VIP_RANGE_V6", "2001:db8:f::/48"},
                            {"DIRECTOR_LINKS_V4", "192.0.2.248/29"},
                            {"DIRECTOR_LINKS_V6", "2001:db8:1:ff::/64"},
                            {"MAXIMUM_PATHS", "16"}}));
  ASSERT_OK_AND_ASSIGN(
      auto router_frr,
      lab::FrrInstance::Start({.netns = router->name(),
                               .dir = lab::FrrDir("hc-rt"),
                               .config = router_config + bfd,
                               .daemons = {"zebra", "bgpd", "bfdd"}}));
  ASSERT_OK_AND_ASSIGN(std::string director_config,
                       lab::ReadFrrTemplate(tmpl("director-bgp.conf"),
                                            {{"HOSTNAME", "dir1"},
                                             {"DIRECTOR_AS", "65001"},
                                             {"ROUTER_ID", kDirectorUpV4},
                                             {"BGP_KEEPALIVE", "1"},
                                             {"BGP_HOLD", "3"},
                                             {"UPSTREAM_V4", kRouterV4},
                                             {"UPSTREAM_V6", kRouterV6}}));
  ASSERT_OK_AND_ASSIGN(
      auto director_frr,
      lab::FrrInstance::Start({.netns = director.name(),
                               .dir = lab::FrrDir("hc-d1"),
                               .config = director_config + bfd,
                               .daemons = {"zebra", "bgpd", "bfdd"}}));

  const absl::Time started = absl::Now();
  ASSERT_THAT(lab->StartLbnode(
                  ConfigYaml(kServers, "      tcp: {}\n",
                             "    quorum: {min_weight: 1}\n"),
                  {"--announce",
                   absl::StrCat("--frr_vty_socket=", director_frr->vty_dir()),
                   "--announce_protocols=bgp"}),
              IsOk());
  ASSERT_THAT(lab->WaitForAll({"up", "up"}, kDetectBound).status(), IsOk());
  auto present = [](const std::vector<lab::KernelNextHop>& hops) {
    return hops.size() == 1 && hops[0].dev == "r-d1";
  };
  auto absent = [](const std::vector<lab::KernelNextHop>& hops) {
    return hops.empty();
  };
  ASSERT_THAT(
      lab::WaitForKernelRoute(router->name(), vip, present, absl::Seconds(30))
          .status(),
      IsOk())
      << lab->Log() << "\n"
      << director_frr->LogTail(20) << router_frr->LogTail(20);
  std::printf("VIP %s in the router's FIB %s after lbnode started\n",
              vip.c_str(), Ms(absl::Now() - started).c_str());

  // Every real server down: quorum lost, the VIP leaves the router's FIB.
  const absl::Time stopped = absl::Now();
  for (int i = 0; i < kServers; ++i) {
    ASSERT_THAT(lab->nginx(i).Stop(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(absl::Duration all_down,
                       lab->WaitForAll({"down", "down"}, kDetectBound));
  (void)all_down;
  const absl::Duration to_all_down = absl::Now() - stopped;
  absl::StatusOr<std::vector<lab::KernelNextHop>> hops =
      lab::WaitForKernelRoute(router->name(), vip, absent, absl::Seconds(10));
  ASSERT_THAT(hops.status(), IsOk())
      << "the VIP stays at the router with every real server down\n"
      << lab->AdminPage("/admin/announce").value_or("(no /admin/announce)")
      << "\n"
      << lab->Log();
  std::printf(
      "all real servers stopped -> all DOWN after %s, VIP out of the "
      "router's FIB after %s\n",
      Ms(to_all_down).c_str(), Ms(absl::Now() - stopped).c_str());
  ASSERT_OK_AND_ASSIGN(std::string routes,
                       director.Run("ip route show dev anylb0 || true"));
  EXPECT_THAT(routes, ::testing::Not(::testing::HasSubstr(
                          Topology::Vip(0, IpFamily::kV4).ToString())));

  // One comes back: quorum again, the VIP returns.
  const absl::Time restarted = absl::Now();
  ASSERT_THAT(lab->nginx(0).Restart(), IsOk());
  ASSERT_THAT(lab->WaitForState(0, "up", kDetectBound).status(), IsOk());
  const absl::Duration to_up = absl::Now() - restarted;
  ASSERT_THAT(
      lab::WaitForKernelRoute(router->name(), vip, present, absl::Seconds(10))
          .status(),
      IsOk())
      << lab->Log();
  std::printf(
      "rs1 restarted -> UP after %s, VIP back in the router's FIB after %s\n",
      Ms(to_up).c_str(), Ms(absl::Now() - restarted).c_str());
  // And it serves.
  ASSERT_THAT(lab->WaitForWeights({1, 0}, kDetectBound).status(), IsOk());
  std::string error;
  std::map<std::string, int> by_server = lab->Requests(20, &error);
  EXPECT_EQ(by_server[""], 0) << error;
  EXPECT_EQ(by_server["rs1"], 20) << Describe(by_server);
}

TEST_F(HealthTest, ExecDynamicWeightSteersNewConnections) {
  constexpr int kServers = 2;
  constexpr int kRequests = 300;
  ASSERT_OK_AND_ASSIGN(auto lab, HealthLab::Create(kServers));
  SCOPED_TRACE(lab->topo().Describe());
  // The check reads w from <dir>/weight-<address> and exits 2 + w
  // (keepalived's misc_dynamic: weight = status - 2).
  auto weight_file = [&](int i) {
    return absl::StrCat(lab->dir(), "/weight-", RealServer(i));
  };
  auto set_weights = [&](int w1, int w2) -> absl::Status {
    RETURN_IF_ERROR(WriteFile(weight_file(0), absl::StrCat(w1, "\n")));
    return WriteFile(weight_file(1), absl::StrCat(w2, "\n"));
  };
  ASSERT_THAT(set_weights(1, 1), IsOk());
  const std::string script = absl::StrCat(
      "read w < ", lab->dir(), "/weight-$LB_BACKEND_ADDRESS; exit $((2 + w))");
  ASSERT_THAT(
      lab->StartLbnode(ConfigYaml(
          kServers, absl::StrCat("      exec: {argv: [/bin/sh, -c, \"", script,
                                 "\"], dynamic_weight: true}\n"))),
      IsOk());

  auto wait_weights = [&](uint64_t w1, uint64_t w2) {
    return lab->WaitForHealth(
        [&](const std::vector<HealthEntry>& entries) {
          auto a = FindHealth(entries, kService, RealServer(0));
          auto b = FindHealth(entries, kService, RealServer(1));
          return a.has_value() && b.has_value() && StateIs(a->state, "up") &&
                 StateIs(b->state, "up") && a->dynamic_weight == w1 &&
                 b->dynamic_weight == w2;
        },
        kDetectBound, absl::StrCat("dynamic weights ", w1, ":", w2));
  };
  auto share = [&](const std::map<std::string, int>& by_server) {
    return static_cast<double>(by_server.count("rs2") ? by_server.at("rs2")
                                                      : 0) /
           kRequests;
  };

  ASSERT_THAT(wait_weights(1, 1).status(), IsOk()) << lab->Log();
  ASSERT_THAT(lab->WaitForWeights({1, 1}, kDetectBound).status(), IsOk());
  std::string error;
  std::map<std::string, int> by_server = lab->Requests(kRequests, &error);
  EXPECT_EQ(by_server[""], 0) << error << "\n" << lab->Log();
  std::printf("weights 1:1 -> %s (rs2 share %.2f)\n",
              Describe(by_server).c_str(), share(by_server));
  EXPECT_GT(share(by_server), 0.35) << Describe(by_server);
  EXPECT_LT(share(by_server), 0.65) << Describe(by_server);

  const absl::Time changed = absl::Now();
  ASSERT_THAT(set_weights(1, 3), IsOk());
  ASSERT_THAT(wait_weights(1, 3).status(), IsOk()) << lab->Log();
  ASSERT_THAT(lab->WaitForWeights({1, 3}, kDetectBound).status(), IsOk());
  std::printf("weight file 1:1 -> 1:3: /admin/health shows it after %s\n",
              Ms(absl::Now() - changed).c_str());
  ASSERT_OK_AND_ASSIGN(std::vector<ServiceEntry> services, lab->Services());
  auto rs2 = itest::FindBackend(services, kService, RealServer(1));
  ASSERT_TRUE(rs2.has_value());
  std::printf("/admin/services rs2: weight %llu available %d\n",
              static_cast<unsigned long long>(rs2->weight), rs2->available);
  error.clear();
  by_server = lab->Requests(kRequests, &error);
  EXPECT_EQ(by_server[""], 0) << error;
  std::printf("weights 1:3 -> %s (rs2 share %.2f, expected 0.75)\n",
              Describe(by_server).c_str(), share(by_server));
  EXPECT_GT(share(by_server), 0.62) << Describe(by_server);
  EXPECT_LT(share(by_server), 0.88) << Describe(by_server);
}

}  // namespace
}  // namespace anylb
