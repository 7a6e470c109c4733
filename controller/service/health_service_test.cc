// Fleet health through the real gRPC service: nodes' ReportStatus calls
// over a loopback channel into ControllerService on a real SQLite store,
// the verdicts a WatchConfig stream receives, GetHealth, and /metrics text.
// The clock is fake (report ages); evaluation runs on reports and on
// explicit EvaluateHealth() calls (the timer's work).

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/status_matchers.h"
#include "controller/service/controller_service.h"
#include "controller/store/sqlite_store.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::controller {
namespace {

using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;

constexpr auto kUp = lb::v1::HEALTH_STATE_UP;
constexpr auto kDown = lb::v1::HEALTH_STATE_DOWN;

class FakeClock {
 public:
  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
};

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/health-", getpid(),
                         "-", counter_++, ".db");
    auto store = SqliteStore::Open({.path = path_});
    ASSERT_THAT(store.status(), IsOk());
    store_ = std::move(*store);
    service_ = std::make_unique<ControllerService>(
        store_.get(),
        ControllerServiceOptions{.enforce_auth = false,
                                 .watch_poll = absl::Milliseconds(50),
                                 .health_interval = absl::ZeroDuration(),
                                 .now = [this] { return clock_.Now(); }});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = lb::v1::Controller::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

    lb::v1::CreateServiceRequest create;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"pb(
          service {
            name: "web"
            vip: "192.0.2.10"
            port: 80
            protocol: PROTOCOL_TCP
            scheduler: SCHEDULER_MH
            forwarding { mode: FORWARDING_MODE_DR }
            backends { address: "198.51.100.1" }
            backends { address: "198.51.100.2" }
          }
        )pb",
        &create));
    lb::v1::ServiceResponse created;
    ASSERT_TRUE(Ok(stub_->CreateService(Context().get(), create, &created)));
    for (const char* node : {"lb1", "lb2"}) {
      lb::v1::RegisterNodeRequest request;
      request.set_node_name(node);
      lb::v1::RegisterNodeResponse response;
      ASSERT_TRUE(Ok(stub_->RegisterNode(Context().get(), request, &response)));
    }
  }

  void TearDown() override {
    if (watch_context_ != nullptr) watch_context_->TryCancel();
    watch_.reset();
    if (service_ != nullptr) service_->Shutdown();
    if (server_ != nullptr) server_->Shutdown();
    service_.reset();
    store_.reset();
    std::remove(path_.c_str());
  }

  static testing::AssertionResult Ok(const grpc::Status& status) {
    if (status.ok()) return testing::AssertionSuccess();
    return testing::AssertionFailure() << status.error_message();
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
    return context;
  }

  uint64_t Revision() {
    lb::v1::ListServicesResponse response;
    EXPECT_TRUE(Ok(stub_->ListServices(
        Context().get(), lb::v1::ListServicesRequest(), &response)));
    return response.revision();
  }

  // Report: `node`'s ReportStatus with its view of 198.51.100.2 (port 0,
  // as configured, the way lbnode names real servers).
  void Report(const std::string& node, lb::v1::HealthState state,
              const std::string& error = "") {
    lb::v1::ReportStatusRequest request;
    request.mutable_status()->set_node_name(node);
    lb::v1::HealthReport* r = request.mutable_status()->add_health_reports();
    r->mutable_backend()->set_service_name("web");
    r->mutable_backend()->set_address("198.51.100.2");
    r->set_state(state);
    r->set_last_error(error);
    lb::v1::HealthReport* other =
        request.mutable_status()->add_health_reports();
    other->mutable_backend()->set_service_name("web");
    other->mutable_backend()->set_address("198.51.100.1");
    other->set_state(kUp);
    lb::v1::ReportStatusResponse response;
    ASSERT_TRUE(Ok(stub_->ReportStatus(Context().get(), request, &response)));
  }

  // StartWatch opens lb1's WatchConfig stream and returns its first
  // snapshot.
  lb::v1::ConfigSnapshot StartWatch() {
    watch_context_ = Context();
    lb::v1::WatchConfigRequest request;
    request.set_node_name("lb1");
    watch_ = stub_->WatchConfig(watch_context_.get(), request);
    return NextSnapshot();
  }

  lb::v1::ConfigSnapshot NextSnapshot() {
    lb::v1::WatchConfigResponse response;
    EXPECT_TRUE(watch_->Read(&response)) << "watch stream ended";
    return response.snapshot();
  }

  lb::v1::BackendHealthView View(const std::string& address) {
    lb::v1::GetHealthRequest request;
    request.add_selectors()->set_name("web");
    lb::v1::GetHealthResponse response;
    EXPECT_TRUE(Ok(stub_->GetHealth(Context().get(), request, &response)));
    for (const lb::v1::BackendHealthView& v : response.backends()) {
      if (v.backend().address() == address) return v;
    }
    ADD_FAILURE() << "GetHealth has no " << address;
    return {};
  }

  std::string MetricsText() {
    std::vector<metrics::MetricFamily> families;
    EXPECT_THAT(service_->Collect(&families), IsOk());
    std::string text;
    for (const auto& f : families) f.AppendText(&text);
    return text;
  }

  static inline int counter_ = 0;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<ControllerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<lb::v1::Controller::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> watch_context_;
  std::unique_ptr<grpc::ClientReader<lb::v1::WatchConfigResponse>> watch_;
};

TEST_F(HealthServiceTest,
       MajorityDownIsPublishedOnceAndSilentNodesStopCounting) {
  const uint64_t start = Revision();
  lb::v1::ConfigSnapshot first = StartWatch();
  EXPECT_EQ(first.revision(), start);
  EXPECT_EQ(first.backend_health_size(), 0);

  // One node of two sees it down: still up, nothing committed.
  Report("lb2", kUp);
  Report("lb1", kDown, "connect 198.51.100.2:80: refused");
  EXPECT_EQ(Revision(), start);
  lb::v1::BackendHealthView view = View("198.51.100.2");
  EXPECT_EQ(view.state(), kUp);
  EXPECT_EQ(view.last_error(), "connect 198.51.100.2:80: refused");
  ASSERT_EQ(view.nodes_size(), 2);
  EXPECT_EQ(view.nodes(0).node_name(), "lb1");
  EXPECT_EQ(view.nodes(0).state(), kDown);
  EXPECT_TRUE(view.nodes(0).current());
  EXPECT_EQ(view.nodes(1).state(), kUp);
  EXPECT_EQ(View("198.51.100.1").state(), kUp);

  // Both: DOWN, one new revision that the watching node receives.
  Report("lb2", kDown, "timeout after 2s");
  lb::v1::ConfigSnapshot down = NextSnapshot();
  EXPECT_EQ(down.revision(), start + 1);
  ASSERT_EQ(down.backend_health_size(), 1);
  EXPECT_EQ(down.backend_health(0).backend().address(), "198.51.100.2");
  EXPECT_EQ(down.backend_health(0).backend().service_name(), "web");
  EXPECT_EQ(down.backend_health(0).state(), kDown);
  EXPECT_EQ(down.backend_health(0).reason(),
            "2 of 2 nodes see it down (lb1: connect 198.51.100.2:80: refused; "
            "lb2: timeout after 2s)");
  EXPECT_EQ(down.backend_health(0).last_change().seconds(),
            absl::ToUnixSeconds(clock_.Now()));
  view = View("198.51.100.2");
  EXPECT_EQ(view.state(), kDown);
  EXPECT_EQ(view.last_change().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_THAT(MetricsText(),
              HasSubstr("anylb_controller_backend_health{service=\"web\","
                        "backend=\"198.51.100.2:80\"} 0"));
  EXPECT_THAT(MetricsText(),
              HasSubstr("anylb_controller_backend_health{service=\"web\","
                        "backend=\"198.51.100.1:80\"} 1"));

  // The same reports again (new errors too): no new revision.
  clock_.Advance(absl::Seconds(5));
  Report("lb1", kDown, "connect 198.51.100.2:80: refused");
  Report("lb2", kDown, "timeout after 2s (again)");
  ASSERT_THAT(service_->EvaluateHealth(), IsOk());
  EXPECT_EQ(Revision(), start + 1);

  // Both go silent: past the TTL their reports stop counting, and the
  // timer's evaluation drops the verdict.
  clock_.Advance(absl::Seconds(16));
  ASSERT_THAT(service_->EvaluateHealth(), IsOk());
  lb::v1::ConfigSnapshot silent = NextSnapshot();
  EXPECT_EQ(silent.revision(), start + 2);
  EXPECT_EQ(silent.backend_health_size(), 0);
  view = View("198.51.100.2");
  EXPECT_EQ(view.state(), lb::v1::HEALTH_STATE_UNSPECIFIED);
  ASSERT_EQ(view.nodes_size(), 2);
  EXPECT_FALSE(view.nodes(0).current());

  // lb1 sees it up, lb2 down: up. Then lb1 goes silent and lb2 reports
  // again: lb1's stale UP no longer counts, so lb2 alone decides.
  Report("lb1", kUp);
  clock_.Advance(absl::Seconds(1));
  Report("lb2", kDown, "connect 198.51.100.2:80: refused");
  EXPECT_EQ(Revision(), start + 2);
  clock_.Advance(absl::Seconds(16));
  Report("lb2", kDown, "connect 198.51.100.2:80: refused");
  lb::v1::ConfigSnapshot alone = NextSnapshot();
  EXPECT_EQ(alone.revision(), start + 3);
  ASSERT_EQ(alone.backend_health_size(), 1);
  EXPECT_EQ(alone.backend_health(0).reason(),
            "1 of 1 node sees it down (lb2: connect 198.51.100.2:80: "
            "refused)");
  EXPECT_THAT(MetricsText(),
              HasSubstr("anylb_controller_backend_health_transitions_total{"
                        "service=\"web\",backend=\"198.51.100.2:80\"} 3"));

  // Removing the real server drops its verdict in the same revision.
  lb::v1::RemoveBackendRequest remove;
  remove.mutable_selector()->set_name("web");
  remove.set_address("198.51.100.2");
  lb::v1::ServiceResponse removed;
  ASSERT_TRUE(Ok(stub_->RemoveBackend(Context().get(), remove, &removed)));
  EXPECT_EQ(removed.revision(), start + 4);
  lb::v1::ConfigSnapshot gone = NextSnapshot();
  EXPECT_EQ(gone.revision(), start + 4);
  EXPECT_EQ(gone.backend_health_size(), 0);
  ASSERT_EQ(gone.services_size(), 1);
  EXPECT_EQ(gone.services(0).backends_size(), 1);
  // Its reports keep arriving for a while: they match no real server and
  // change nothing.
  Report("lb2", kDown, "connect 198.51.100.2:80: refused");
  EXPECT_EQ(Revision(), start + 4);
}

TEST_F(HealthServiceTest, DeletingTheServiceDropsItsVerdicts) {
  const uint64_t start = Revision();
  Report("lb1", kDown, "refused");
  Report("lb2", kDown, "refused");
  EXPECT_EQ(Revision(), start + 1);
  EXPECT_EQ(store_->Current()->backend_health.size(), 1u);
  lb::v1::DeleteServiceRequest request;
  request.mutable_selector()->set_name("web");
  lb::v1::DeleteServiceResponse response;
  ASSERT_TRUE(Ok(stub_->DeleteService(Context().get(), request, &response)));
  EXPECT_EQ(response.revision(), start + 2);
  EXPECT_TRUE(store_->Current()->backend_health.empty());
}

TEST_F(HealthServiceTest, ApplyWithoutTheRealServerDropsItsVerdict) {
  const uint64_t start = Revision();
  Report("lb1", kDown, "refused");
  Report("lb2", kDown, "refused");
  ASSERT_EQ(Revision(), start + 1);
  lb::v1::ApplyServicesRequest apply;
  lb::v1::Service web = store_->Current()->services.at("web");
  web.mutable_backends()->DeleteSubrange(1, 1);  // 198.51.100.2
  *apply.add_services() = web;
  lb::v1::ApplyServicesResponse applied;
  ASSERT_TRUE(Ok(stub_->ApplyServices(Context().get(), apply, &applied)));
  EXPECT_EQ(applied.revision(), start + 2);
  EXPECT_TRUE(store_->Current()->backend_health.empty());
}

TEST_F(HealthServiceTest, VerdictsSurviveARestartUntilNodesReport) {
  Report("lb1", kDown, "refused");
  Report("lb2", kDown, "refused");
  const uint64_t down = Revision();
  ASSERT_EQ(store_->Current()->backend_health.size(), 1u);
  // A new controller on the same store: no reports yet, and the timer's
  // evaluation keeps the stored verdict during the first TTL.
  server_->Shutdown();
  service_->Shutdown();
  service_.reset();
  store_.reset();
  auto store = SqliteStore::Open({.path = path_});
  ASSERT_THAT(store.status(), IsOk());
  store_ = std::move(*store);
  EXPECT_EQ(store_->Current()->backend_health.size(), 1u);
  ControllerService restarted(store_.get(),
                              {.enforce_auth = false,
                               .health_interval = absl::ZeroDuration(),
                               .now = [this] { return clock_.Now(); }});
  ASSERT_THAT(restarted.EvaluateHealth(), IsOk());
  EXPECT_EQ(store_->Current()->revision, down);
  EXPECT_EQ(store_->Current()->backend_health.size(), 1u);
  // Past the TTL with still no report, it counts as up again.
  clock_.Advance(absl::Seconds(16));
  ASSERT_THAT(restarted.EvaluateHealth(), IsOk());
  EXPECT_EQ(store_->Current()->revision, down + 1);
  EXPECT_TRUE(store_->Current()->backend_health.empty());
  restarted.Shutdown();
  server_.reset();
}

}  // namespace
}  // namespace anylb::controller
