// Tests of Checker: every kind of check reaches the prober that runs it
// (real servers on 127.0.0.1, real processes), and destroying the Checker
// completes what is still running.

#include "lbnode/health/checker.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::health {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A hang guard only; no assertion depends on speed.
constexpr absl::Duration kHangGuard = absl::Seconds(60);
const IpAddress kLoopback = IpAddress::FromV4(0x7f000001);

// Listener is a TCP socket listening on 127.0.0.1 that never accepts.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
              0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { close(fd_); }
  Endpoint endpoint() const { return Endpoint(kLoopback, port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

ProbeResult RunProbe(Checker& checker, const ProbeRequest& request) {
  absl::Notification notification;
  ProbeResult result;
  std::atomic<int> calls{0};
  checker.Start(request, [&](ProbeResult r) {
    result = std::move(r);
    if (calls.fetch_add(1) == 0) notification.Notify();
  });
  EXPECT_TRUE(notification.WaitForNotificationWithTimeout(kHangGuard))
      << "probe never completed";
  EXPECT_EQ(calls.load(), 1);
  return result;
}

TEST(Checker, RunsTcpChecks) {
  ASSERT_OK_AND_ASSIGN(auto checker, Checker::Create());
  Listener listener;
  ProbeRequest request;
  request.target = listener.endpoint();
  request.check.mutable_tcp();
  const ProbeResult result = RunProbe(*checker, request);
  EXPECT_TRUE(result.passed) << result.error;
}

TEST(Checker, RunsHttpChecks) {
  ASSERT_OK_AND_ASSIGN(auto checker, Checker::Create());
  // A port that a listener held and gave back: nobody listens there.
  Endpoint target;
  {
    Listener closed;
    target = closed.endpoint();
  }
  ProbeRequest request;
  request.target = target;
  request.check.mutable_http();
  const ProbeResult result = RunProbe(*checker, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, absl::StrCat("connect ", target.ToString(),
                                       ": Connection refused"));
}

TEST(Checker, RunsGrpcHealthChecks) {
  grpc::EnableDefaultHealthCheckService(true);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  // The default health service answers through the callback API; the
  // builder wants a service or a completion queue besides it.
  std::unique_ptr<grpc::ServerCompletionQueue> cq =
      builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  ASSERT_OK_AND_ASSIGN(auto checker, Checker::Create());
  ProbeRequest request;
  request.target = Endpoint(kLoopback, static_cast<uint16_t>(port));
  request.check.mutable_grpc();
  ProbeResult result = RunProbe(*checker, request);
  EXPECT_TRUE(result.passed) << result.error;

  server->GetHealthCheckService()->SetServingStatus(false);
  result = RunProbe(*checker, request);
  EXPECT_FALSE(result.passed);
  EXPECT_THAT(result.error, HasSubstr("NOT_SERVING"));
  server->Shutdown();
  cq->Shutdown();
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
  }
}

TEST(Checker, RunsExecChecksAndCommands) {
  ASSERT_OK_AND_ASSIGN(auto checker, Checker::Create());
  ProbeRequest request;
  request.target = Endpoint(kLoopback, 80);
  request.backend = request.target;
  request.service = "web";
  request.check.mutable_exec()->add_argv("/bin/true");
  ProbeResult result = RunProbe(*checker, request);
  EXPECT_TRUE(result.passed) << result.error;
  EXPECT_THAT(result.error, IsEmpty());

  request.check.mutable_exec()->set_argv(0, "/bin/false");
  result = RunProbe(*checker, request);
  EXPECT_FALSE(result.passed);

  absl::Notification ran;
  CommandResult command;
  CommandRequest command_request;
  command_request.argv = {"/bin/echo", "notified"};
  checker->RunCommand(command_request, [&](CommandResult r) {
    command = std::move(r);
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kHangGuard));
  EXPECT_EQ(command.exit_status, 0) << command.error;
  EXPECT_EQ(command.output, "notified\n");
}

TEST(Checker, FailsARequestWithoutCheckKind) {
  ASSERT_OK_AND_ASSIGN(auto checker, Checker::Create());
  ProbeRequest request;
  request.target = Endpoint(kLoopback, 80);
  const ProbeResult result = RunProbe(*checker, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(
      result.error,
      "health_check has no check kind (tcp, http, grpc, dns, udp or exec)");
}

TEST(Checker, DestroyingItCompletesEveryRunningProbe) {
  ASSERT_OK_AND_ASSIGN(auto checker, Checker::Create());
  Listener never_answers;
  std::atomic<int> done{0};
  std::atomic<int> stopped{0};
  auto count = [&](ProbeResult result) {
    if (result.error == "checker stopped") stopped.fetch_add(1);
    done.fetch_add(1);
  };
  ProbeRequest http;
  http.target = never_answers.endpoint();
  http.check.mutable_http();
  http.timeout = absl::Hours(1);
  ProbeRequest exec;
  exec.target = never_answers.endpoint();
  exec.check.mutable_exec()->add_argv("/bin/sleep");
  exec.check.mutable_exec()->add_argv("600");
  exec.timeout = absl::Hours(1);
  for (int i = 0; i < 3; ++i) {
    checker->Start(http, count);
    checker->Start(exec, count);
  }
  checker.reset();
  EXPECT_EQ(done.load(), 6);
  EXPECT_EQ(stopped.load(), 6);
}

}  // namespace
}  // namespace anylb::health
