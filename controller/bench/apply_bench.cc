// apply_bench: how long the controller takes to store a large fleet
// config, and how long until a watching node has it.
//
//   bazel run -c opt //controller/bench:apply_bench -- --services=10000
//
// It starts the real anylb-controller (a temp SQLite file, --insecure on
// loopback: TLS costs are not what is measured), opens a WatchConfig
// stream as a node, and for a small and a large service count:
//   1. ApplyServices of N services x B backends (one RPC, one transaction):
//      the RPC's time, and the time until the watcher has that revision;
//   2. one AddBackend on top (the incremental case): the same two times.
// Each figure is also printed as a ratio against the run's baseline (the
// small size), so the scaling reads directly.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/child_process.h"
#include "grpcpp/grpcpp.h"
#include "lb/v1/controller.grpc.pb.h"

ABSL_FLAG(int, services, 10000, "Services in the large apply.");
ABSL_FLAG(int, baseline_services, 100, "Services in the baseline apply.");
ABSL_FLAG(int, backends, 10, "Real servers per service.");
ABSL_FLAG(std::string, controller, "",
          "Path of anylb_controller (default: from the runfiles).");

namespace {

using ::anylb::process_testing::ChildProcess;

std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("RUNFILES_DIR");
  if (dir == nullptr) dir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(dir != nullptr ? dir : ".", "/anylb/", path);
}

// MakeServices: documentation addresses only — VIPs 192.0.2.0-255 on ports
// 1000 and up, real servers in 198.51.100.0/24 and 203.0.113.0/24.
std::vector<lb::v1::Service> MakeServices(int count, int backends) {
  std::vector<lb::v1::Service> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) {
    lb::v1::Service s;
    s.set_vip(absl::StrCat("192.0.2.", i % 256));
    s.set_port(1000 + i / 256);
    s.set_protocol(lb::v1::PROTOCOL_TCP);
    s.set_scheduler(lb::v1::SCHEDULER_MH);
    s.set_maglev_table_size(251);
    s.mutable_forwarding()->set_mode(lb::v1::FORWARDING_MODE_TUN);
    for (int b = 0; b < backends; ++b) {
      lb::v1::Backend* backend = s.add_backends();
      backend->set_address(absl::StrCat(
          b % 2 == 0 ? "198.51.100." : "203.0.113.", (i + b) % 250 + 1));
      backend->set_weight(1 + b % 3);
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Watcher: a node's WatchConfig stream; records when each revision arrived.
class Watcher {
 public:
  explicit Watcher(std::shared_ptr<grpc::Channel> channel)
      : stub_(lb::v1::Controller::NewStub(channel)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Watcher() {
    context_.TryCancel();
    thread_.join();
  }
  // WaitFor returns when `revision` arrived (its arrival time and size).
  std::pair<absl::Time, size_t> WaitFor(uint64_t revision) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return revision_ >= revision;
    };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Minutes(5));
    return {at_, bytes_};
  }

 private:
  void Run() {
    lb::v1::WatchConfigRequest request;
    request.set_node_name("bench-node");
    auto reader = stub_->WatchConfig(&context_, request);
    lb::v1::WatchConfigResponse response;
    while (reader->Read(&response)) {
      absl::MutexLock lock(&mu_);
      revision_ = response.snapshot().revision();
      bytes_ = response.ByteSizeLong();
      at_ = absl::Now();
    }
    reader->Finish().IgnoreError();
  }

  std::unique_ptr<lb::v1::Controller::Stub> stub_;
  grpc::ClientContext context_;
  std::thread thread_;
  absl::Mutex mu_;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time at_ ABSL_GUARDED_BY(mu_);
};

struct Figures {
  double apply_ms = 0;
  double watch_ms = 0;  // from the apply's start to the watcher having it
  double add_ms = 0;
  double add_watch_ms = 0;
  size_t snapshot_bytes = 0;
};

Figures Measure(lb::v1::Controller::Stub& stub, Watcher& watcher, int services,
                int backends) {
  Figures f;
  lb::v1::ApplyServicesRequest request;
  for (lb::v1::Service& s : MakeServices(services, backends)) {
    *request.add_services() = std::move(s);
  }
  grpc::ClientContext context;
  lb::v1::ApplyServicesResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status = stub.ApplyServices(&context, request, &response);
  const absl::Time applied = absl::Now();
  if (!status.ok()) {
    std::fprintf(stderr, "apply_bench: ApplyServices: %s\n",
                 status.error_message().c_str());
    std::exit(1);
  }
  auto [at, bytes] = watcher.WaitFor(response.revision());
  f.apply_ms = absl::ToDoubleMilliseconds(applied - start);
  f.watch_ms = absl::ToDoubleMilliseconds(at - start);
  f.snapshot_bytes = bytes;

  grpc::ClientContext add_context;
  lb::v1::AddBackendRequest add;
  add.mutable_selector()->mutable_virtual_address()->set_vip("192.0.2.0");
  add.mutable_selector()->mutable_virtual_address()->set_port(1000);
  add.mutable_selector()->mutable_virtual_address()->set_protocol(
      lb::v1::PROTOCOL_TCP);
  add.mutable_backend()->set_address("203.0.113.254");
  lb::v1::ServiceResponse added;
  const absl::Time add_start = absl::Now();
  status = stub.AddBackend(&add_context, add, &added);
  const absl::Time add_done = absl::Now();
  if (!status.ok()) {
    std::fprintf(stderr, "apply_bench: AddBackend: %s\n",
                 status.error_message().c_str());
    std::exit(1);
  }
  at = watcher.WaitFor(added.revision()).first;
  f.add_ms = absl::ToDoubleMilliseconds(add_done - add_start);
  f.add_watch_ms = absl::ToDoubleMilliseconds(at - add_start);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int backends = absl::GetFlag(FLAGS_backends);
  std::string binary = absl::GetFlag(FLAGS_controller);
  if (binary.empty()) binary = Runfile("controller/anylb_controller");
  char dir_template[] = "/tmp/anylb-apply-bench.XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::perror("apply_bench: mkdtemp");
    return 1;
  }

  std::printf("apply_bench: %d and %d services x %d real servers\n",
              absl::GetFlag(FLAGS_baseline_services),
              absl::GetFlag(FLAGS_services), backends);
  Figures baseline;
  Figures large;
  int round = 0;
  for (int services : {absl::GetFlag(FLAGS_baseline_services),
                       absl::GetFlag(FLAGS_services)}) {
    // A fresh controller and store per size, so the second apply does not
    // diff against the first.
    auto controller = ChildProcess::Start(
        {binary, "--insecure", "--listen=127.0.0.1:0", "--metrics_address=",
         absl::StrCat("--store=", dir, "/store-", round++, ".db")});
    if (!controller.ok() ||
        !(*controller)->ReadUntil("at revision", absl::Seconds(30))) {
      std::fprintf(stderr, "apply_bench: the controller did not start: %s\n",
                   controller.ok() ? (*controller)->output().c_str()
                                   : controller.status().ToString().c_str());
      return 1;
    }
    const std::string& out = (*controller)->output();
    size_t at = out.find("listening on 127.0.0.1:") + 23;
    int port = 0;
    absl::SimpleAtoi(out.substr(at, out.find(' ', at) - at), &port);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 << 20);
    args.SetMaxSendMessageSize(256 << 20);
    auto channel =
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                  grpc::InsecureChannelCredentials(), args);
    auto stub = lb::v1::Controller::NewStub(channel);
    Watcher watcher(channel);
    std::printf("  applying %d services ...\n", services);
    std::fflush(stdout);
    Figures f = Measure(*stub, watcher, services, backends);
    std::printf(
        "  %6d services: apply %8.1f ms, watcher has it after %8.1f ms "
        "(snapshot %.1f MiB); one AddBackend %6.1f ms, watcher %6.1f ms\n",
        services, f.apply_ms, f.watch_ms, f.snapshot_bytes / 1048576.0,
        f.add_ms, f.add_watch_ms);
    (services == absl::GetFlag(FLAGS_services) ? large : baseline) = f;
    (*controller)->Stop(absl::Seconds(10));
  }
  const double size_ratio = static_cast<double>(absl::GetFlag(FLAGS_services)) /
                            absl::GetFlag(FLAGS_baseline_services);
  std::printf(
      "ratios large/baseline (size ratio %.0fx): apply %.1fx, watch %.1fx, "
      "AddBackend %.1fx, AddBackend watch %.1fx\n",
      size_ratio, large.apply_ms / baseline.apply_ms,
      large.watch_ms / baseline.watch_ms, large.add_ms / baseline.add_ms,
      large.add_watch_ms / baseline.add_watch_ms);
  std::string cleanup = absl::StrCat("rm -rf ", dir);
  return system(cleanup.c_str()) == 0 ? 0 : 1;
}
