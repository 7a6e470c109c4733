// The controller as users meet it: the real anylb-controller binary on a
// real SQLite file, over TLS, called through generated gRPC stubs with
// tokens and node certificates.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/testing/child_process.h"
#include "common/testing/status_matchers.h"
#include "controller/testing/controller_process.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::controller {
namespace {

using ::testing::HasSubstr;

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
        backends { address: "198.51.100.2" weight: 2 }
      )pb",
      &s);
  return s;
}

class ControllerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pki = controller_testing::TestPki::Create({"lb1", "lb2"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new controller_testing::TestPki(*pki);
  }

  void SetUp() override {
    store_ = absl::StrCat(pki_->dir, "/store-", ++counter_, ".db");
    StartController();
  }

  void StartController() {
    auto started = controller_testing::ControllerProcess::Start(*pki_, store_);
    ASSERT_TRUE(started.ok()) << started.status();
    controller_ = std::move(*started);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& token,
                                         const std::string& node = "") {
    return controller_->Channel(token, node);
  }
  std::unique_ptr<lb::v1::Controller::Stub> Stub(const std::string& token,
                                                 const std::string& node = "") {
    return lb::v1::Controller::NewStub(Channel(token, node));
  }

  grpc::Status Create(lb::v1::Controller::Stub& stub,
                      const lb::v1::Service& service,
                      lb::v1::ServiceResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::CreateServiceRequest request;
    *request.mutable_service() = service;
    return stub.CreateService(&context, request, response);
  }

  uint64_t Revision(lb::v1::Controller::Stub& stub) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::ListServicesResponse response;
    EXPECT_TRUE(stub.ListServices(&context, {}, &response).ok());
    return response.revision();
  }

  static inline controller_testing::TestPki* pki_ = nullptr;
  static inline int counter_ = 0;
  std::string store_;
  std::unique_ptr<controller_testing::ControllerProcess> controller_;
};

TEST_F(ControllerTest, CreateListAndReject) {
  auto op = Stub(controller_testing::TestPki::kOperatorToken);
  lb::v1::ServiceResponse created;
  grpc::Status status = Create(*op, WebService(), &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(created.revision(), 1u);
  EXPECT_EQ(created.service().backends_size(), 2);

  // Invalid: DR cannot map ports. INVALID_ARGUMENT naming field and value;
  // nothing stored.
  lb::v1::Service bad = WebService();
  bad.set_name("bad");
  bad.set_port(81);
  bad.mutable_backends(0)->set_port(8080);
  lb::v1::ServiceResponse ignored;
  status = Create(*op, bad, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("backends[0].port 8080: DR cannot map ports"));
  // A non-prime table size, and an unknown scheduler value.
  bad.mutable_backends(0)->set_port(0);
  bad.set_maglev_table_size(65536);
  status = Create(*op, bad, &ignored);
  EXPECT_THAT(status.error_message(), HasSubstr("65536: not a prime"));
  bad.set_maglev_table_size(0);
  bad.set_scheduler(static_cast<lb::v1::Scheduler>(99));
  status = Create(*op, bad, &ignored);
  EXPECT_THAT(status.error_message(), HasSubstr("scheduler 99: unknown value"));
  // Duplicate VIP:port:protocol.
  lb::v1::Service twin = WebService();
  twin.set_name("twin");
  status = Create(*op, twin, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Revision(*op), 1u);

  // Real servers: ipvsadm -a / -e / -d.
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::AddBackendRequest request;
    request.mutable_selector()->mutable_virtual_address()->set_vip(
        "192.0.2.10");
    request.mutable_selector()->mutable_virtual_address()->set_port(80);
    request.mutable_selector()->mutable_virtual_address()->set_protocol(
        lb::v1::PROTOCOL_TCP);
    request.mutable_backend()->set_address("198.51.100.3");
    request.mutable_backend()->set_weight(70000);
    lb::v1::ServiceResponse response;
    status = op->AddBackend(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("weight 70000"));
  }
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::RemoveBackendRequest request;
    request.mutable_selector()->set_name("web");
    request.set_address("198.51.100.2");
    lb::v1::ServiceResponse response;
    status = op->RemoveBackend(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.service().backends_size(), 1);
    EXPECT_EQ(response.revision(), 2u);
  }
}

TEST_F(ControllerTest, RolesAreEnforced) {
  auto nobody = Stub("");
  lb::v1::ServiceResponse ignored;
  EXPECT_EQ(Create(*nobody, WebService(), &ignored).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto reader = Stub(controller_testing::TestPki::kReadOnlyToken);
  grpc::Status status = Create(*reader, WebService(), &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Revision(*reader), 0u);  // reading works; nothing was stored
  // A node may only be itself.
  auto lb1 = Stub("", "lb1");
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  lb::v1::RegisterNodeRequest request;
  request.set_node_name("lb2");
  lb::v1::RegisterNodeResponse response;
  status = lb1->RegisterNode(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("may not act as node \"lb2\""));
}

TEST_F(ControllerTest, NodeWatchesSnapshotsAndResumes) {
  auto op = Stub(controller_testing::TestPki::kOperatorToken);
  lb::v1::ServiceResponse created;
  ASSERT_TRUE(Create(*op, WebService(), &created).ok());

  auto lb1 = Stub("", "lb1");
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::RegisterNodeRequest request;
    request.set_node_name("lb1");
    request.set_version("test");
    lb::v1::RegisterNodeResponse response;
    grpc::Status status = lb1->RegisterNode(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.settings().node_name(), "lb1");
  }
  const uint64_t after_register = Revision(*op);
  EXPECT_EQ(after_register, 2u);  // the node's settings are a change

  grpc::ClientContext watch;
  lb::v1::WatchConfigRequest request;
  request.set_node_name("lb1");
  auto reader = lb1->WatchConfig(&watch, request);
  lb::v1::WatchConfigResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.snapshot().revision(), after_register);
  EXPECT_EQ(message.snapshot().services_size(), 1);
  EXPECT_EQ(message.snapshot().node().node_name(), "lb1");

  // A change reaches the stream.
  lb::v1::Service dns;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "dns"
        vip: "192.0.2.53"
        port: 53
        protocol: PROTOCOL_UDP
        scheduler: SCHEDULER_WRR
        forwarding { mode: FORWARDING_MODE_NAT }
        backends { address: "198.51.100.9" port: 5353 }
      )pb",
      &dns);
  ASSERT_TRUE(Create(*op, dns, &created).ok());
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.snapshot().revision(), created.revision());
  EXPECT_EQ(message.snapshot().services_size(), 2);
  watch.TryCancel();
  reader->Finish().IgnoreError();

  // Resuming at the revision it has: nothing until the next change.
  grpc::ClientContext resume;
  request.set_known_revision(created.revision());
  auto resumed = lb1->WatchConfig(&resume, request);
  grpc::ClientContext drain_context;
  drain_context.set_deadline(Deadline());
  lb::v1::DrainNodeRequest drain;
  drain.set_node_name("lb1");
  lb::v1::NodeResponse drained;
  ASSERT_TRUE(op->DrainNode(&drain_context, drain, &drained).ok());
  ASSERT_TRUE(resumed->Read(&message));
  EXPECT_EQ(message.snapshot().revision(), drained.revision());
  EXPECT_EQ(message.snapshot().node().admin_state(),
            lb::v1::NODE_ADMIN_STATE_DRAINED);

  // ListNodes shows it connected (the stream is open).
  grpc::ClientContext list_context;
  list_context.set_deadline(Deadline());
  lb::v1::ListNodesResponse nodes;
  ASSERT_TRUE(op->ListNodes(&list_context, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_TRUE(nodes.nodes(0).connected());
  resume.TryCancel();
  resumed->Finish().IgnoreError();
}

TEST_F(ControllerTest, StatusReportsBecomeStats) {
  auto op = Stub(controller_testing::TestPki::kOperatorToken);
  lb::v1::ServiceResponse created;
  ASSERT_TRUE(Create(*op, WebService(), &created).ok());
  for (const char* node : {"lb1", "lb2"}) {
    auto stub = Stub("", node);
    grpc::ClientContext register_context;
    register_context.set_deadline(Deadline());
    lb::v1::RegisterNodeRequest registration;
    registration.set_node_name(node);
    lb::v1::RegisterNodeResponse registered;
    ASSERT_TRUE(
        stub->RegisterNode(&register_context, registration, &registered).ok());
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::ReportStatusRequest report;
    lb::v1::NodeStatus& status = *report.mutable_status();
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"pb(
          applied_revision: 1
          dataplane: DATAPLANE_STATE_LIVE
          service_stats {
            service_name: "web"
            counters { connections: 10 packets_in: 100 }
            backends {
              backend { address: "198.51.100.1" }
              counters { connections: 4 }
              active_connections: 2
            }
          }
        )pb",
        &status));
    status.set_node_name(node);
    lb::v1::ReportStatusResponse reported;
    grpc::Status reported_status =
        stub->ReportStatus(&context, report, &reported);
    ASSERT_TRUE(reported_status.ok()) << reported_status.error_message() << "\n"
                                      << controller_->process().output();
  }
  lb::v1::GetStatsResponse stats;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    ASSERT_TRUE(op->GetStats(&context, {}, &stats).ok());
  }
  ASSERT_EQ(stats.services_size(), 1);
  EXPECT_EQ(stats.services(0).counters().connections(), 20u);
  EXPECT_EQ(stats.services(0).backends(0).active_connections(), 4u);
  EXPECT_EQ(stats.nodes_size(), 2);
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::ZeroCountersResponse zeroed;
    ASSERT_TRUE(op->ZeroCounters(&context, {}, &zeroed).ok());
  }
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  ASSERT_TRUE(op->GetStats(&context, {}, &stats).ok());
  EXPECT_EQ(stats.services(0).counters().connections(), 0u);
}

// The issue's durability test through the real RPC path: a client streams
// ApplyServices (each apply rewrites three services so that all carry the
// apply's number in hash_seed) while the controller is killed with SIGKILL
// at a random moment; after a restart on the same store every acknowledged
// apply is there and no apply is half-stored. Several rounds.
TEST_F(ControllerTest, KillDuringAppliesLosesNothingAcknowledged) {
  std::mt19937 random(20261124);
  uint64_t acked_seed = 0;
  uint64_t next_seed = 1;
  for (int round = 0; round < 6; ++round) {
    auto op = Stub(controller_testing::TestPki::kOperatorToken);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> last_acked{acked_seed};
    std::thread applier([&] {
      for (uint64_t seed = next_seed; !stop; ++seed) {
        lb::v1::ApplyServicesRequest request;
        for (const char* name : {"alpha", "bravo", "charlie"}) {
          lb::v1::Service s = WebService();
          s.set_name(name);
          s.set_port(name[0] == 'a' ? 80 : name[0] == 'b' ? 81 : 82);
          s.set_hash_seed(seed);
          *request.add_services() = s;
        }
        grpc::ClientContext context;
        context.set_deadline(Deadline(5));
        lb::v1::ApplyServicesResponse response;
        if (!op->ApplyServices(&context, request, &response).ok()) return;
        last_acked = seed;  // acknowledged to the client
      }
    });
    absl::SleepFor(absl::Milliseconds(100 + random() % 300));
    controller_->process().Signal(SIGKILL);
    controller_->process().Wait(absl::Seconds(10));
    stop = true;
    applier.join();
    const uint64_t acked = last_acked;
    ASSERT_GT(acked, acked_seed)
        << "round " << round << ": no apply got through";

    StartController();
    auto reader = Stub(controller_testing::TestPki::kReadOnlyToken);
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    lb::v1::ListServicesResponse listed;
    ASSERT_TRUE(reader->ListServices(&context, {}, &listed).ok());
    ASSERT_EQ(listed.services_size(), 3);
    const uint64_t stored = listed.services(0).hash_seed();
    for (const lb::v1::Service& s : listed.services()) {
      EXPECT_EQ(s.hash_seed(), stored)
          << "service " << s.name() << " is from another apply: half-stored";
    }
    EXPECT_GE(stored, acked)
        << "round " << round << ": an acknowledged apply was lost";
    EXPECT_LE(stored, acked + 1) << "more than one apply in flight?";
    acked_seed = stored;
    next_seed = stored + 1;
  }
  std::printf("6 kills during applies; last stored apply %llu\n",
              static_cast<unsigned long long>(acked_seed));
}

TEST_F(ControllerTest, StateSurvivesARestartAndHealthAnswers) {
  auto op = Stub(controller_testing::TestPki::kOperatorToken);
  lb::v1::ServiceResponse created;
  ASSERT_TRUE(Create(*op, WebService(), &created).ok());
  controller_->process().Signal(SIGKILL);
  controller_->process().Wait(absl::Seconds(10));
  StartController();
  op = Stub(controller_testing::TestPki::kOperatorToken);
  EXPECT_EQ(Revision(*op), 1u);

  // grpc.health.v1.Health/Check through a generic stub: an empty request
  // (all services), and SERVING is field 1 = 1 (bytes 08 01).
  grpc::GenericStub generic(
      Channel(controller_testing::TestPki::kReadOnlyToken));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::ByteBuffer request;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", {}, &request,
                    &response, [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      done_cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait_for(lock, std::chrono::seconds(20), [&] { return done; });
  ASSERT_TRUE(done);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

}  // namespace
}  // namespace anylb::controller

namespace anylb::controller {
namespace {

TEST(ControllerFlags, HealthRulesOutOfRangeAreRefused) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string store =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/flags-", getpid(), ".db");
  for (const auto& [flag, expected] :
       std::vector<std::pair<std::string, std::string>>{
           {"--health_down_fraction=1", "--health_down_fraction 1: outside"},
           {"--health_report_ttl=0s", "--health_report_ttl 0: must be"}}) {
    auto child = process_testing::ChildProcess::Start(
        {controller_testing::Runfile("controller/anylb_controller"),
         "--insecure", "--listen=127.0.0.1:0", "--store=" + store,
         "--metrics_address=", flag});
    ASSERT_TRUE(child.ok()) << child.status();
    EXPECT_EQ((*child)->Wait(absl::Seconds(30)), 2) << (*child)->output();
    EXPECT_THAT((*child)->output(), HasSubstr(expected));
  }
}

}  // namespace
}  // namespace anylb::controller
