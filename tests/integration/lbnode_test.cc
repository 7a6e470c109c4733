// lbnode end to end on one L2 segment, with real packets through the kernel:
// a client, a director running the lbnode binary (AF_XDP on its veth), and
// three real servers running nginx and a UDP echo server (tests/netns,
// Topology's address plan). For each forwarding mode — DR, TUN with IPIP
// (IP6IP6 for IPv6) and with GUE (the real servers decapsulate with
// lb_decap), NAT, FULLNAT — over IPv4 and over IPv6:
//  * 300 HTTP requests over fresh TCP connections all succeed, every real
//    server gets at least 20% of them, and the real server sees the client's
//    address (DR, TUN, NAT) or the director's local address (FULLNAT);
//  * 300 UDP exchanges likewise;
//  * a slow download is started, the real server carrying it gets weight 0
//    (config file + SIGHUP): no new connection goes there afterwards, and
//    the download finishes intact.
// The director's kernel does not forward (ip_forward 0): every packet that
// reaches a real server or the client went through lbnode.
//
// Needs root. Namespaces, nginx, lb_decap and lbnode are stopped and removed
// when a case ends, also when it fails (RAII in tests/netns).

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
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
#include "tests/netns/udp_echo_server.h"

namespace anylb {
namespace {

using ::anylb::itest::MetricSum;
using ::anylb::itest::ReadFile;
using ::anylb::itest::Runfile;
using ::anylb::itest::WriteFile;

using ::anylb::lab::HttpClient;
using ::anylb::lab::NginxOptions;
using ::anylb::lab::NginxServer;
using ::anylb::lab::Process;
using ::anylb::lab::ReturnPath;
using ::anylb::lab::SlowDownload;
using ::anylb::lab::Topology;
using ::anylb::lab::UdpEchoServer;
using ::anylb::status_testing::IsOk;

constexpr int kRequests = 300;
constexpr int kRealServers = 3;

enum class Mode { kDr, kTunIpip, kTunGue, kNat, kFullNat };

struct Case {
  Mode mode;
  IpFamily family;
};

std::string ModeName(Mode m) {
  switch (m) {
    case Mode::kDr:
      return "Dr";
    case Mode::kTunIpip:
      return "TunIpip";
    case Mode::kTunGue:
      return "TunGue";
    case Mode::kNat:
      return "Nat";
    case Mode::kFullNat:
      return "FullNat";
  }
  return "?";
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return ModeName(info.param.mode) +
         (info.param.family == IpFamily::kV4 ? "V4" : "V6");
}

bool MapsPorts(Mode m) { return m == Mode::kNat || m == Mode::kFullNat; }

// Address in YAML: IPv6 quoted.
std::string Y(const IpAddress& a) {
  return absl::StrCat("\"", a.ToString(), "\"");
}

// ConfigYaml: an HTTP (TCP) and an echo (UDP) service on one VIP; real
// server `zero_weight` (or none, -1) at weight 0.
std::string ConfigYaml(const Case& c, int revision, int zero_weight) {
  const IpAddress vip = Topology::Vip(0, c.family);
  const int http_port = MapsPorts(c.mode) ? 8080 : 80;
  const int udp_port = MapsPorts(c.mode) ? 5353 : 53;
  std::string forwarding;
  switch (c.mode) {
    case Mode::kDr:
      forwarding = "{mode: dr}";
      break;
    case Mode::kTunIpip:
      forwarding = "{mode: tun, tunnel_type: ipip}";
      break;
    case Mode::kTunGue:
      forwarding = "{mode: tun, tunnel_type: gue}";
      break;
    case Mode::kNat:
      forwarding = "{mode: nat}";
      break;
    case Mode::kFullNat:
      forwarding = "{mode: fullnat}";
      break;
  }
  std::string out =
      absl::StrCat("revision: ", revision, "\nnode:\n  node_name: itest\n");
  if (c.mode == Mode::kFullNat) {
    absl::StrAppend(&out, "  local_addresses: [",
                    Y(Topology::LocalAddress(0, c.family)), "]\n");
  }
  absl::StrAppend(&out, "services:\n");
  struct Svc {
    const char* name;
    const char* proto;
    int vip_port;
    int rs_port;
  };
  for (const Svc& s :
       {Svc{"http", "tcp", 80, http_port}, Svc{"echo", "udp", 53, udp_port}}) {
    absl::StrAppend(&out, "  - name: ", s.name, "\n    vip: ", Y(vip),
                    "\n    port: ", s.vip_port, "\n    protocol: ", s.proto,
                    "\n    scheduler: mh\n    forwarding: ", forwarding,
                    "\n    backends:\n");
    for (int i = 0; i < kRealServers; ++i) {
      absl::StrAppend(
          &out,
          "      - {address: ", Y(Topology::RealServerAddress(i, c.family)),
          ", port: ", s.rs_port, ", weight: ", i == zero_weight ? 0 : 1,
          ", forwarding: ", forwarding, "}\n");
    }
  }
  return out;
}

// WaitForLog waits until `path` contains `text`, or the process exited, or
// `timeout`.
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

class LbnodeTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0)
        << "lbnode_test builds network namespaces and attaches XDP: run it "
           "as root (deploy/test.sh does)";
  }
};

TEST_P(LbnodeTest, BalancesHttpAndUdpAndDrainsByWeight) {
  const Case c = GetParam();
  const IpAddress vip = Topology::Vip(0, c.family);
  const IpAddress client_address = Topology::ClientAddress(c.family);
  const IpAddress seen_address = c.mode == Mode::kFullNat
                                     ? Topology::LocalAddress(0, c.family)
                                     : client_address;

  // lbnode's XDP fast path (on by default) sends established DR/TUN flows
  // with XDP_TX: the director's veth peer needs an XDP program to take them.
  lab::TopologyOptions topology_options;
  topology_options.xdp_pass_on_director_peer = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Topology> topo,
                       Topology::Create(topology_options));
  SCOPED_TRACE(topo->Describe());
  const auto& director = topo->director();
  // Only lbnode moves packets through the director.
  ASSERT_THAT(director.Sysctl("net.ipv4.ip_forward", "0"), IsOk());
  ASSERT_THAT(director.Sysctl("net.ipv6.conf.all.forwarding", "0"), IsOk());
  // veth hands frames over with the TCP/UDP checksum left to "hardware"
  // (CHECKSUM_PARTIAL); AF_XDP sees those bytes as they are. A real NIC
  // delivers complete checksums, so make the lab's senders compute them.
  ASSERT_THAT(topo->client().Run("ethtool -K eth0 tx off"), IsOk());
  for (int i = 0; i < topo->real_server_count(); ++i) {
    ASSERT_THAT(topo->real_server(i).Run("ethtool -K eth0 tx off"), IsOk());
  }
  ASSERT_THAT(
      topo->SetReturnPath(c.mode == Mode::kNat ? ReturnPath::kViaDirector
                                               : ReturnPath::kDirect),
      IsOk());
  if (!MapsPorts(c.mode)) {
    ASSERT_THAT(topo->AddVipToRealServers(vip), IsOk());
  }

  ASSERT_OK_AND_ASSIGN(std::string dir, lab::TempDirectory("lbnode-itest"));
  const int http_port = MapsPorts(c.mode) ? 8080 : 80;
  const int udp_port = MapsPorts(c.mode) ? 5353 : 53;

  // Real servers: nginx, a UDP echo, and for TUN the decap program.
  std::vector<std::unique_ptr<NginxServer>> nginx;
  std::vector<std::unique_ptr<UdpEchoServer>> echo;
  std::vector<std::unique_ptr<Process>> decap;
  for (int i = 0; i < kRealServers; ++i) {
    const std::string name = absl::StrCat("rs", i + 1);
    NginxOptions options;
    options.name = name;
    options.port = http_port;
    options.big_file_bytes = 3 << 20;  // ~6 s at 512k/s
    ASSERT_OK_AND_ASSIGN(auto server,
                         NginxServer::Start(topo->real_server(i), options));
    nginx.push_back(std::move(server));
    ASSERT_OK_AND_ASSIGN(
        auto e, UdpEchoServer::Start(topo->real_server(i), name, udp_port));
    echo.push_back(std::move(e));
    if (c.mode == Mode::kTunIpip || c.mode == Mode::kTunGue) {
      ASSERT_OK_AND_ASSIGN(
          auto p,
          topo->real_server(i).Spawn(
              {Runfile("lbnode/dataplane/bpf/lb_decap"), "--interface=eth0",
               "--mode=tc",
               absl::StrCat(
                   "--local=",
                   Topology::RealServerAddress(i, c.family).ToString())},
              absl::StrCat(dir, "/decap-", name, ".log")));
      decap.push_back(std::move(p));
    }
  }
  for (size_t i = 0; i < decap.size(); ++i) {
    std::string log = absl::StrCat(dir, "/decap-rs", i + 1, ".log");
    ASSERT_TRUE(
        WaitForLog(log, "decapsulating on", decap[i].get(), absl::Seconds(10)))
        << "lb_decap on rs" << i + 1 << " did not attach:\n"
        << ReadFile(log);
  }

  // The director.
  const std::string config = absl::StrCat(dir, "/lbnode.yaml");
  const std::string log = absl::StrCat(dir, "/lbnode.log");
  ASSERT_THAT(WriteFile(config, ConfigYaml(c, 1, -1)), IsOk());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Process> lbnode,
      director.Spawn({Runfile("lbnode/lbnode"), "--interface=eth0",
                      absl::StrCat("--config=", config),
                      "--metrics_address=127.0.0.1:9464", "--log_level=debug"},
                     log));
  ASSERT_TRUE(
      WaitForLog(log, "lbnode running", lbnode.get(), absl::Seconds(20)))
      << "lbnode did not start:\n"
      << ReadFile(log);

  // 300 HTTP requests, each a new TCP connection.
  HttpClient http(topo->client(), absl::Seconds(3));
  std::map<std::string, int> by_server;
  int failures = 0;
  std::string first_error;
  for (int n = 0; n < kRequests; ++n) {
    absl::StatusOr<lab::HttpResponse> r = http.Get(vip, 80, "/id");
    if (!r.ok() || r->status_code != 200) {
      if (first_error.empty()) {
        first_error = r.ok() ? absl::StrCat("HTTP ", r->status_code)
                             : std::string(r.status().message());
      }
      ++failures;
      continue;
    }
    ++by_server[r->body];
  }
  EXPECT_EQ(failures, 0) << "first failure: " << first_error
                         << "\nlbnode log:\n"
                         << ReadFile(log);
  for (int i = 0; i < kRealServers; ++i) {
    const std::string name = absl::StrCat("rs", i + 1);
    EXPECT_GE(by_server[name], kRequests / 5)
        << name << " got " << by_server[name] << " of " << kRequests;
    ASSERT_OK_AND_ASSIGN(auto clients, nginx[i]->RequestsByClient());
    int from_seen = clients[seen_address];
    EXPECT_EQ(from_seen, by_server[name])
        << name << " saw requests from other addresses than "
        << seen_address.ToString();
  }

  // /metrics, scraped in the director's namespace, counts what went where.
  HttpClient local(director, absl::Seconds(3));
  const IpAddress loopback = *IpAddress::Parse("127.0.0.1");
  // Workers publish their counters every 100 ms: wait for the last ones.
  lab::HttpResponse page;
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSERT_OK_AND_ASSIGN(page, local.Get(loopback, 9464, "/metrics"));
    ASSERT_EQ(page.status_code, 200);
    if (MetricSum(page.body, "anylb_service_new_flows_total",
                  "service=\"http\"") >= kRequests) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(
      MetricSum(page.body, "anylb_service_new_flows_total", "service=\"http\""),
      kRequests);
  EXPECT_GE(MetricSum(page.body, "anylb_xsk_tx_packets_total", ""),
            kRequests * 3);  // At least SYN, ACK, request per connection.
  EXPECT_EQ(MetricSum(page.body, "anylb_config_revision", ""), 1);

  // A bad file on SIGHUP is rejected, the running config stays.
  std::string bad = ConfigYaml(c, 9, -1);
  bad.replace(bad.find("scheduler: mh"), 13, "scheduler: mhh");
  ASSERT_THAT(WriteFile(config, bad), IsOk());
  ASSERT_EQ(kill(lbnode->pid(), SIGHUP), 0);
  ASSERT_TRUE(
      WaitForLog(log, "config rejected", lbnode.get(), absl::Seconds(10)))
      << ReadFile(log);
  EXPECT_THAT(ReadFile(log), ::testing::HasSubstr("unknown value \"mhh\""));
  for (int n = 0; n < 30; ++n) {
    EXPECT_THAT(http.Get(vip, 80, "/id"), IsOk()) << "after a bad reload";
  }
  ASSERT_OK_AND_ASSIGN(page, local.Get(loopback, 9464, "/metrics"));
  EXPECT_EQ(MetricSum(page.body, "anylb_config_reload_failures_total", ""), 1);
  EXPECT_EQ(MetricSum(page.body, "anylb_config_revision", ""), 1);

  // SIGUSR1 dumps the counters into the log.
  ASSERT_EQ(kill(lbnode->pid(), SIGUSR1), 0);
  ASSERT_TRUE(WaitForLog(log, "service http", lbnode.get(), absl::Seconds(5)))
      << ReadFile(log);

  // 300 UDP exchanges, each from a new socket (a new source port).
  std::map<std::string, int> udp_by_server;
  int udp_failures = 0;
  for (int n = 0; n < kRequests; ++n) {
    absl::StatusOr<std::string> answer =
        lab::UdpExchange(topo->client(), vip, 53, "hello");
    if (!answer.ok()) {
      ++udp_failures;
      continue;
    }
    // "<name> <client address as the server saw it>"
    std::vector<std::string> words = absl::StrSplit(*answer, ' ');
    ASSERT_EQ(words.size(), 2u) << *answer;
    EXPECT_EQ(words[1], seen_address.ToString());
    ++udp_by_server[words[0]];
  }
  EXPECT_EQ(udp_failures, 0);
  for (int i = 0; i < kRealServers; ++i) {
    const std::string name = absl::StrCat("rs", i + 1);
    EXPECT_GE(udp_by_server[name], kRequests / 5)
        << name << " answered " << udp_by_server[name] << " of " << kRequests;
  }

  // Weight 0 on the real server that carries a long download.
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<SlowDownload> download,
      SlowDownload::Start(topo->client(), vip, 80, "/big", absl::Seconds(60)));
  int carrier = -1;
  for (int attempt = 0; attempt < 50 && carrier < 0; ++attempt) {
    for (int i = 0; i < kRealServers; ++i) {
      ASSERT_OK_AND_ASSIGN(
          std::string out,
          topo->real_server(i).Run(absl::StrCat(
              "ss -Htn state established '( sport = :", http_port, " )'")));
      if (!out.empty()) carrier = i;
    }
    if (carrier < 0) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_GE(carrier, 0) << "no real server holds the download's connection";
  ASSERT_THAT(WriteFile(config, ConfigYaml(c, 2, carrier)), IsOk());
  ASSERT_EQ(kill(lbnode->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(log, "config reloaded, revision 2", lbnode.get(),
                         absl::Seconds(10)))
      << ReadFile(log);
  // The workers adopt the snapshot at their next batch.
  absl::SleepFor(absl::Milliseconds(200));
  const std::string carrier_name = absl::StrCat("rs", carrier + 1);
  int to_carrier = 0;
  int after_failures = 0;
  for (int n = 0; n < 100; ++n) {
    absl::StatusOr<lab::HttpResponse> r = http.Get(vip, 80, "/id");
    if (!r.ok()) {
      ++after_failures;
      continue;
    }
    if (r->body == carrier_name) ++to_carrier;
  }
  EXPECT_EQ(after_failures, 0);
  EXPECT_EQ(to_carrier, 0) << carrier_name
                           << " got new connections at weight 0";
  ASSERT_OK_AND_ASSIGN(lab::DownloadResult result, download->Wait());
  EXPECT_TRUE(result.complete) << "download cut short";
  EXPECT_EQ(result.server, carrier_name);
  EXPECT_EQ(result.checksum, nginx[carrier]->big_file_checksum());

  // DR and TUN: the download's ACKs went through the XDP fast path (the
  // worker folds its traffic about every second), and they count in the
  // per-backend counters.
  if (!MapsPorts(c.mode)) {
    double fast = 0;
    for (int attempt = 0; attempt < 30 && fast == 0; ++attempt) {
      ASSERT_OK_AND_ASSIGN(page, local.Get(loopback, 9464, "/metrics"));
      fast = MetricSum(page.body, "anylb_fastpath_packets_total", "");
      if (fast == 0) absl::SleepFor(absl::Milliseconds(200));
    }
    EXPECT_GT(fast, 0) << page.body;
    EXPECT_GT(MetricSum(page.body, "anylb_fastpath_hits_total", ""), 0);
    EXPECT_GT(MetricSum(page.body, "anylb_fastpath_installs_total", ""), 0);
  }

  // SIGTERM: clean exit, program detached.
  int status = lbnode->Stop(SIGTERM, 5000);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "lbnode exit status " << status << "\n"
      << ReadFile(log);
  ASSERT_OK_AND_ASSIGN(std::string link, director.Run("ip link show eth0"));
  EXPECT_THAT(link, ::testing::Not(::testing::HasSubstr("prog/xdp")));
}

INSTANTIATE_TEST_SUITE_P(Modes, LbnodeTest,
                         ::testing::Values(Case{Mode::kDr, IpFamily::kV4},
                                           Case{Mode::kDr, IpFamily::kV6},
                                           Case{Mode::kTunIpip, IpFamily::kV4},
                                           Case{Mode::kTunIpip, IpFamily::kV6},
                                           Case{Mode::kTunGue, IpFamily::kV4},
                                           Case{Mode::kTunGue, IpFamily::kV6},
                                           Case{Mode::kNat, IpFamily::kV4},
                                           Case{Mode::kNat, IpFamily::kV6},
                                           Case{Mode::kFullNat, IpFamily::kV4},
                                           Case{Mode::kFullNat, IpFamily::kV6}),
                         CaseName);

}  // namespace
}  // namespace anylb
