// ControllerClient against the real anylb-controller binary: TLS with the
// node's certificate (mTLS), a real SQLite store, kill -9 and restart on
// the same store and port.

#include "lbnode/agent/controller_client.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/registry.h"
#include "common/testing/child_process.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lb/v1/controller.grpc.pb.h"
#include "lbnode/agent/snapshot_cache.h"
#include "lbnode/dataplane/drop_reason.h"

namespace anylb::agent {
namespace {

using ::anylb::process_testing::ChildProcess;
using ::anylb::status_testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/anylb/", path);
}

// WaitUntil polls `done` until it holds; false after 20 s.
template <typename Fn>
bool WaitUntil(Fn done) {
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (!done()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

std::chrono::system_clock::time_point Deadline(int seconds = 20) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

lb::v1::Service WebService() {
  lb::v1::Service s;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "web"
        vip: "192.0.2.10"
        port: 80
        protocol: PROTOCOL_TCP
        scheduler: SCHEDULER_MH
        forwarding { mode: FORWARDING_MODE_DR }
        backends { address: "198.51.100.1" weight: 1 }
      )pb",
      &s);
  return s;
}

// Applied records every snapshot `apply` saw; `fail` makes apply refuse.
struct Applied {
  absl::Mutex mu;
  std::vector<uint64_t> revisions ABSL_GUARDED_BY(mu);
  std::vector<lb::v1::ConfigSnapshot> snapshots ABSL_GUARDED_BY(mu);
  bool fail ABSL_GUARDED_BY(mu) = false;

  absl::Status Apply(const lb::v1::ConfigSnapshot& s) {
    absl::MutexLock lock(&mu);
    revisions.push_back(s.revision());
    snapshots.push_back(s);
    if (fail) {
      return absl::FailedPreconditionError("test: refusing the snapshot");
    }
    return absl::OkStatus();
  }
  // WaitFor waits until `revision` was offered; false after `timeout`.
  bool WaitFor(uint64_t revision, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto seen = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      for (uint64_t r : revisions) {
        if (r >= revision) return true;
      }
      return false;
    };
    return mu.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }
  std::vector<uint64_t> Revisions() {
    absl::MutexLock lock(&mu);
    return revisions;
  }
};

class ControllerClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = new std::string(
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ctlc-", getpid()));
    ASSERT_EQ(system(absl::StrCat("bash ", Runfile("deploy/make-certs.sh"), " ",
                                  *dir_, " --node lb1 >/dev/null")
                         .c_str()),
              0);
    // operator alice sha256:<hex of "op-token">
    ASSERT_EQ(system(absl::StrCat("printf 'operator alice sha256:%s\\n' "
                                  "$(printf op-token | sha256sum | cut -c1-64)"
                                  " > ",
                                  *dir_, "/tokens")
                         .c_str()),
              0);
  }

  void SetUp() override {
    store_ = absl::StrCat(*dir_, "/store-", ++counter_, ".db");
    cache_path_ = absl::StrCat(*dir_, "/snapshot-", counter_, ".pb");
    StartController(0);
  }

  // StartController starts it on `port` (0: any, then remembered).
  void StartController(int port) {
    auto child = ChildProcess::Start(
        {Runfile("controller/anylb_controller"),
         absl::StrCat("--listen=127.0.0.1:", port), "--store=" + store_,
         "--tls_cert=" + *dir_ + "/controller.crt",
         "--tls_key=" + *dir_ + "/controller.key",
         "--client_ca=" + *dir_ + "/ca.crt",
         "--token_file=" + *dir_ + "/tokens", "--metrics_address=127.0.0.1:0"});
    ASSERT_TRUE(child.ok()) << child.status();
    controller_ = std::move(*child);
    ASSERT_TRUE(controller_->ReadUntil("at revision", absl::Seconds(30)))
        << controller_->output();
    const std::string& out = controller_->output();
    size_t at = out.find("listening on 127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << out;
    at += strlen("listening on 127.0.0.1:");
    ASSERT_TRUE(
        absl::SimpleAtoi(out.substr(at, out.find(' ', at) - at), &port_))
        << out;
  }

  std::unique_ptr<lb::v1::Controller::Stub> Operator() {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(*dir_ + "/ca.crt");
    auto credentials = grpc::CompositeChannelCredentials(
        grpc::SslCredentials(options),
        grpc::AccessTokenCredentials("op-token"));
    return lb::v1::Controller::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), credentials));
  }

  ControllerClientOptions Options() {
    ControllerClientOptions o;
    o.target = absl::StrCat("127.0.0.1:", port_);
    o.node_name = "lb1";
    o.ca_file = *dir_ + "/ca.crt";
    o.node_cert_file = *dir_ + "/node-lb1.crt";
    o.node_key_file = *dir_ + "/node-lb1.key";
    o.report_interval = absl::Milliseconds(200);
    o.initial_backoff = absl::Milliseconds(200);
    o.max_backoff = absl::Seconds(1);
    o.rpc_timeout = absl::Seconds(2);
    return o;
  }

  std::unique_ptr<ControllerClient> Client(Applied* applied,
                                           const SnapshotCache* cache) {
    auto client = ControllerClient::Create(
        Options(),
        [applied](const lb::v1::ConfigSnapshot& s) {
          return applied->Apply(s);
        },
        [] {
          lb::v1::NodeStatus status;
          status.set_dataplane(lb::v1::DATAPLANE_STATE_LIVE);
          (*status.mutable_drops())["no_service"] = 3;
          return status;
        },
        cache);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  uint64_t CreateWeb(lb::v1::Controller::Stub& op) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::CreateServiceRequest request;
    *request.mutable_service() = WebService();
    lb::v1::ServiceResponse response;
    grpc::Status status = op.CreateService(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.revision();
  }

  uint64_t AddBackend(lb::v1::Controller::Stub& op, const std::string& addr) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::AddBackendRequest request;
    request.mutable_selector()->set_name("web");
    request.mutable_backend()->set_address(addr);
    request.mutable_backend()->set_weight(1);
    lb::v1::ServiceResponse response;
    grpc::Status status = op.AddBackend(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.revision();
  }

  // ReportedNode is lb1 as the controller last heard of it.
  lb::v1::Node ReportedNode(lb::v1::Controller::Stub& op) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::ListNodesResponse response;
    grpc::Status status = op.ListNodes(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const lb::v1::Node& n : response.nodes()) {
      if (n.settings().node_name() == "lb1") return n;
    }
    return {};
  }

  // WaitForNode polls until `pred(node)` holds; false after 20 s.
  template <typename Pred>
  bool WaitForNode(lb::v1::Controller::Stub& op, Pred pred) {
    absl::Time end = absl::Now() + absl::Seconds(20);
    while (absl::Now() < end) {
      if (pred(ReportedNode(op))) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  static inline std::string* dir_ = nullptr;
  static inline int counter_ = 0;
  std::string store_;
  std::string cache_path_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> controller_;
};

TEST_F(ControllerClientTest, AppliesCachesSurvivesKillAndResumesWithoutRepush) {
  Applied applied;
  SnapshotCache cache(cache_path_);
  auto client = Client(&applied, &cache);
  ASSERT_NE(client, nullptr);
  client->Start();
  auto op = Operator();

  // Registration creates the node (revision 1): its snapshot arrives.
  ASSERT_TRUE(applied.WaitFor(1, absl::Seconds(20)));
  {
    absl::MutexLock lock(&applied.mu);
    EXPECT_EQ(applied.snapshots[0].node().node_name(), "lb1");
  }

  // ipvsadm -A through the controller reaches apply: measured.
  absl::Time created_at = absl::Now();
  const uint64_t created = CreateWeb(*op);
  ASSERT_TRUE(applied.WaitFor(created, absl::Seconds(10)));
  absl::Duration latency = absl::Now() - created_at;
  std::cout << "CreateService -> apply: " << absl::ToDoubleMilliseconds(latency)
            << " ms\n";
  {
    absl::MutexLock lock(&applied.mu);
    ASSERT_EQ(applied.snapshots.back().revision(), created);
    ASSERT_EQ(applied.snapshots.back().services_size(), 1);
    EXPECT_EQ(applied.snapshots.back().services(0).name(), "web");
  }
  ASSERT_TRUE(WaitUntil([&] { return client->applied_revision() == created; }));
  EXPECT_TRUE(client->connected());
  // Cached after the apply.
  auto cached = cache.Read();
  ASSERT_THAT(cached.status(), IsOk());
  EXPECT_EQ(cached->revision(), created);
  EXPECT_EQ(cached->services(0).name(), "web");
  // And reported: the controller sees the applied revision and our drops.
  ASSERT_TRUE(WaitForNode(*op, [&](const lb::v1::Node& n) {
    return n.status().applied_revision() == created;
  }));
  EXPECT_EQ(ReportedNode(*op).status().drops().at("no_service"), 3u);
  EXPECT_EQ(ReportedNode(*op).status().dataplane(),
            lb::v1::DATAPLANE_STATE_LIVE);

  // kill -9: the client keeps the last config and applies nothing else.
  const size_t before_kill = applied.Revisions().size();
  controller_->Signal(SIGKILL);
  controller_->Wait(absl::Seconds(10));
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (client->connected() && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(client->connected());
  absl::SleepFor(absl::Seconds(1));  // a few reconnect attempts
  EXPECT_EQ(applied.Revisions().size(), before_kill);
  EXPECT_EQ(client->applied_revision(), created);
  EXPECT_GT(client->reconnects(), 0u);

  // Restart on the same store and port: the client reconnects...
  StartController(port_);
  op = Operator();
  ASSERT_TRUE(WaitForNode(*op, [](const lb::v1::Node& n) {
    return n.connected();
  })) << controller_->output();
  EXPECT_TRUE(client->connected());
  // ...and is not sent revision `created` again. A re-push would come first
  // on the stream, before the change made now; only the change arrives.
  const uint64_t added = AddBackend(*op, "198.51.100.2");
  ASSERT_TRUE(applied.WaitFor(added, absl::Seconds(10)));
  ASSERT_TRUE(WaitUntil([&] { return client->applied_revision() == added; }));
  std::vector<uint64_t> after = applied.Revisions();
  after.erase(after.begin(), after.begin() + before_kill);
  EXPECT_THAT(after, ElementsAre(added));
  EXPECT_EQ(client->applied_revision(), added);
  EXPECT_EQ(cache.Read()->revision(), added);

  metrics::Registry registry;
  metrics::ScopedCollector collector(
      &registry, "controller_client",
      [&](std::vector<metrics::MetricFamily>* out) {
        return client->Collect(out);
      });
  std::string page = registry.Scrape();
  EXPECT_THAT(page, HasSubstr("anylb_controller_connected 1\n"));
  EXPECT_THAT(page, HasSubstr(absl::StrCat("anylb_controller_applied_revision ",
                                           added, "\n")));
  EXPECT_THAT(page, HasSubstr("anylb_controller_apply_failures_total 0\n"));
  client->Stop();
  EXPECT_FALSE(client->connected());
}

TEST_F(ControllerClientTest, ApplyFailureKeepsTheRevisionAndReportsIt) {
  Applied applied;
  SnapshotCache cache(cache_path_);
  auto client = Client(&applied, &cache);
  ASSERT_NE(client, nullptr);
  client->Start();
  auto op = Operator();
  ASSERT_TRUE(applied.WaitFor(1, absl::Seconds(20)));
  ASSERT_TRUE(WaitUntil([&] { return client->applied_revision() >= 1; }));
  const uint64_t good = client->applied_revision();
  ASSERT_GE(good, 1u);
  {
    absl::MutexLock lock(&applied.mu);
    applied.fail = true;
  }
  const uint64_t refused = CreateWeb(*op);
  ASSERT_TRUE(applied.WaitFor(refused, absl::Seconds(10)));
  ASSERT_TRUE(WaitUntil([&] { return client->apply_failures() == 1; }));
  EXPECT_EQ(client->applied_revision(), good);
  EXPECT_EQ(cache.Read()->revision(), good);  // the cache holds the applied
  // A report made after the failure still says `good`.
  absl::Time failed_at = absl::Now();
  ASSERT_TRUE(WaitForNode(*op, [&](const lb::v1::Node& n) {
    return n.status().reported_at().seconds() > absl::ToUnixSeconds(failed_at);
  }));
  EXPECT_EQ(ReportedNode(*op).status().applied_revision(), good);

  // The node recovers: the next change (which contains the refused one) is
  // applied.
  {
    absl::MutexLock lock(&applied.mu);
    applied.fail = false;
  }
  const uint64_t added = AddBackend(*op, "198.51.100.2");
  ASSERT_TRUE(applied.WaitFor(added, absl::Seconds(10)));
  ASSERT_TRUE(WaitUntil([&] { return client->applied_revision() == added; }));
  {
    absl::MutexLock lock(&applied.mu);
    EXPECT_EQ(applied.snapshots.back().services(0).backends_size(), 2);
  }
}

TEST_F(ControllerClientTest, StartsFromTheCachedRevisionWithoutARepush) {
  // First run: apply and cache.
  SnapshotCache cache(cache_path_);
  uint64_t created = 0;
  {
    Applied applied;
    auto client = Client(&applied, &cache);
    ASSERT_NE(client, nullptr);
    client->Start();
    auto op = Operator();
    created = CreateWeb(*op);
    ASSERT_TRUE(applied.WaitFor(created, absl::Seconds(20)));
    // (Registration may commit after the create: wait for both.)
    ASSERT_TRUE(
        WaitUntil([&] { return client->applied_revision() >= created; }));
    created = client->applied_revision();
  }
  // lbnode restarts: it starts from the cache's revision, and the
  // controller (unchanged) sends nothing.
  auto cached = cache.Read();
  ASSERT_THAT(cached.status(), IsOk());
  ASSERT_EQ(cached->revision(), created);
  Applied applied;
  ControllerClientOptions options = Options();
  options.applied_revision = cached->revision();
  auto client = ControllerClient::Create(
      options,
      [&](const lb::v1::ConfigSnapshot& s) { return applied.Apply(s); },
      [] { return lb::v1::NodeStatus(); }, &cache);
  ASSERT_THAT(client.status(), IsOk());
  (*client)->Start();
  auto op = Operator();
  ASSERT_TRUE(WaitForNode(*op, [&](const lb::v1::Node& n) {
    return n.connected() && n.status().applied_revision() == created;
  }));
  const uint64_t added = AddBackend(*op, "198.51.100.2");
  ASSERT_TRUE(applied.WaitFor(added, absl::Seconds(10)));
  EXPECT_THAT(applied.Revisions(), ElementsAre(added));
}

TEST_F(ControllerClientTest, ASilentControllerIsNoticedByReportsAndLeft) {
  // SIGSTOP: the connection stays open but nothing answers (like a network
  // that drops packets). The idle watch stream alone would wait forever; a
  // report that times out ends it, and the client reconnects once the
  // controller answers again.
  Applied applied;
  auto client = Client(&applied, nullptr);
  ASSERT_NE(client, nullptr);
  client->Start();
  ASSERT_TRUE(applied.WaitFor(1, absl::Seconds(20)));
  ASSERT_TRUE(WaitUntil([&] { return client->connected(); }));
  controller_->Signal(SIGSTOP);
  EXPECT_TRUE(WaitUntil([&] { return !client->connected(); }));
  const uint64_t reconnects = client->reconnects();
  controller_->Signal(SIGCONT);
  EXPECT_TRUE(WaitUntil([&] {
    return client->connected() && client->reconnects() > reconnects;
  }));
  auto op = Operator();
  const uint64_t created = CreateWeb(*op);
  ASSERT_TRUE(applied.WaitFor(created, absl::Seconds(10)));
}

TEST_F(ControllerClientTest, CreateRefusesBadOptionsNamingTheFix) {
  auto apply = [](const lb::v1::ConfigSnapshot&) { return absl::OkStatus(); };
  auto status = [] { return lb::v1::NodeStatus(); };
  ControllerClientOptions o = Options();
  o.node_key_file = *dir_ + "/missing.key";
  auto client = ControllerClient::Create(o, apply, status, nullptr);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(client.status().message(), HasSubstr("--node_key"));
  EXPECT_THAT(client.status().message(), HasSubstr("missing.key"));

  o = Options();
  o.node_key_file.clear();
  EXPECT_THAT(
      ControllerClient::Create(o, apply, status, nullptr).status().message(),
      HasSubstr("--node_cert and --node_key go together"));
  o = Options();
  o.insecure = true;
  EXPECT_THAT(
      ControllerClient::Create(o, apply, status, nullptr).status().message(),
      HasSubstr("choose plaintext or TLS"));
  o = Options();
  o.target.clear();
  EXPECT_THAT(
      ControllerClient::Create(o, apply, status, nullptr).status().message(),
      HasSubstr("--controller=HOST:PORT"));
}

TEST_F(ControllerClientTest, WrongNodeNameIsRefusedAndRetried) {
  // The certificate says lb1; the node calls itself lb2.
  Applied applied;
  ControllerClientOptions o = Options();
  o.node_name = "lb2";
  auto client = ControllerClient::Create(
      o, [&](const lb::v1::ConfigSnapshot& s) { return applied.Apply(s); },
      [] { return lb::v1::NodeStatus(); }, nullptr);
  ASSERT_THAT(client.status(), IsOk());
  (*client)->Start();
  absl::Time end = absl::Now() + absl::Seconds(20);
  while ((*client)->reconnects() < 2 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GE((*client)->reconnects(), 2u);
  EXPECT_FALSE((*client)->connected());
  EXPECT_TRUE(applied.Revisions().empty());
}

TEST_F(ControllerClientTest, ReportNowSendsHealthReportsWithoutWaiting) {
  // Reports are due every hour: only the report at connect and the one
  // ReportNow asks for can reach the controller during this test.
  Applied applied;
  ControllerClientOptions o = Options();
  o.report_interval = absl::Hours(1);
  absl::Mutex mu;
  std::string last_error = "connect 198.51.100.1:80: Connection refused";
  auto client = ControllerClient::Create(
      o, [&](const lb::v1::ConfigSnapshot& s) { return applied.Apply(s); },
      [&] {
        lb::v1::NodeStatus status;
        status.set_dataplane(lb::v1::DATAPLANE_STATE_LIVE);
        lb::v1::HealthReport* h = status.add_health_reports();
        h->mutable_backend()->set_service_name("web");
        h->mutable_backend()->set_address("198.51.100.1");
        h->set_state(lb::v1::HEALTH_STATE_DOWN);
        absl::MutexLock lock(&mu);
        h->set_last_error(last_error);
        return status;
      },
      nullptr);
  ASSERT_THAT(client.status(), IsOk());
  (*client)->Start();
  auto op = Operator();
  ASSERT_TRUE(WaitForNode(*op, [](const lb::v1::Node& n) {
    return n.status().health_reports_size() == 1;
  }));
  const lb::v1::HealthReport first =
      ReportedNode(*op).status().health_reports(0);
  EXPECT_EQ(first.backend().address(), "198.51.100.1");
  EXPECT_EQ(first.state(), lb::v1::HEALTH_STATE_DOWN);
  EXPECT_THAT(first.last_error(), HasSubstr("Connection refused"));

  {
    absl::MutexLock lock(&mu);
    last_error = "HTTP status 500, want 200-299";
  }
  (*client)->ReportNow();
  EXPECT_TRUE(WaitForNode(*op, [](const lb::v1::Node& n) {
    return n.status().health_reports_size() == 1 &&
           n.status().health_reports(0).last_error() ==
               "HTTP status 500, want 200-299";
  }));
}

}  // namespace
}  // namespace anylb::agent

namespace anylb::agent {
namespace {

TEST(MarkAnnounced, FlagsServicesWhoseVipIsAnnounced) {
  NameTable names = {
      {.name = "web", .vip = "192.0.2.10", .port = 80, .protocol = "tcp"},
      {.name = "dns", .vip = "192.0.2.53", .port = 53, .protocol = "udp"},
      {.name = "web6", .vip = "2001:db8::10", .port = 80, .protocol = "tcp"}};
  lb::v1::NodeStatus status;
  status.add_service_stats()->set_service_name("web");
  status.add_service_stats()->set_service_name("dns");
  MarkAnnounced(
      names,
      {*IpAddress::Parse("192.0.2.10"), *IpAddress::Parse("2001:db8::10")},
      &status);
  ASSERT_EQ(status.service_stats_size(), 3);
  EXPECT_TRUE(status.service_stats(0).announced());   // web
  EXPECT_FALSE(status.service_stats(1).announced());  // dns: not announced
  EXPECT_EQ(status.service_stats(2).service_name(), "web6");  // added
  EXPECT_TRUE(status.service_stats(2).announced());
}

TEST(NodeStatusFromMetrics, SumsWorkersByServiceAndBackendAndDropReason) {
  auto names = std::make_shared<NameTable>(
      NameTable{{.name = "web",
                 .vip = "2001:db8::10",
                 .port = 80,
                 .protocol = "tcp",
                 .backends = {"[2001:db8::1]:80", "198.51.100.2:8080"}}});
  DataplaneMetricsInput input;
  input.config_revision = 9;
  for (int w = 0; w < 2; ++w) {
    WorkerMetricsInput worker;
    worker.worker = w;
    worker.names = names;
    worker.services = {{.packets = 10, .bytes = 1000, .new_flows = 2}};
    worker.backends = {{{.packets = 4, .new_flows = 1}, {.packets = 6}}};
    worker.connections = {{{.active = 1, .inactive = 0}, {.active = 0}}};
    worker.engine
        .drops[static_cast<size_t>(dataplane::DropReason::kNoService)] = 5;
    input.workers.push_back(worker);
  }
  lb::v1::NodeStatus status = NodeStatusFromMetrics(input);
  EXPECT_EQ(status.applied_revision(), 9u);
  ASSERT_EQ(status.service_stats_size(), 1);
  const lb::v1::ServiceStats& web = status.service_stats(0);
  EXPECT_EQ(web.service_name(), "web");
  EXPECT_EQ(web.counters().packets_in(), 20u);
  EXPECT_EQ(web.counters().bytes_in(), 2000u);
  EXPECT_EQ(web.counters().connections(), 4u);
  ASSERT_EQ(web.backends_size(), 2);
  // Sorted by "addr:port" text.
  EXPECT_EQ(web.backends(0).backend().address(), "198.51.100.2");
  EXPECT_EQ(web.backends(0).backend().port(), 8080u);
  EXPECT_EQ(web.backends(0).counters().packets_in(), 12u);
  EXPECT_EQ(web.backends(1).backend().address(), "2001:db8::1");
  EXPECT_EQ(web.backends(1).backend().port(), 80u);
  EXPECT_EQ(web.backends(1).active_connections(), 2u);
  EXPECT_EQ(status.drops().at(std::string(
                dataplane::DropReasonName(dataplane::DropReason::kNoService))),
            10u);
}

}  // namespace
}  // namespace anylb::agent
