#include "common/metrics/metrics_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace anylb::metrics {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

CollectFn Escaped() {
  return [](std::vector<MetricFamily>* out) {
    MetricFamily f("anylb_test_total", "Help with \\ and\nnewline.",
                   MetricType::kCounter);
    f.Add({{"service", "we\"b\\1\n"}}, 42);
    out->push_back(std::move(f));
    return absl::OkStatus();
  };
}

class MetricsServerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MetricsServerTest, ServesTheRegistryOnGetMetricsOnly) {
  Registry registry;
  ScopedCollector collector(&registry, "test", Escaped());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       MetricsServer::Start(GetParam(), &registry));
  ASSERT_GT(server->port(), 0);

  httplib::Client client(server->endpoint().address().ToString(),
                         server->port());
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(res->body,
              AllOf(HasSubstr("# HELP anylb_test_total Help with \\\\ and\\n"
                              "newline.\n"),
                    HasSubstr("# TYPE anylb_test_total counter\n"),
                    HasSubstr("anylb_test_total{service=\"we\\\"b\\\\1\\n\"} "
                              "42\n")));
  EXPECT_EQ(res->body, registry.Scrape());

  httplib::Result other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  httplib::Result post = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_NE(post->status, 200);

  server->Stop();
  server->Stop();  // idempotent
  httplib::Client after(server->endpoint().address().ToString(),
                        server->port());
  EXPECT_FALSE(after.Get("/metrics"));
}

INSTANTIATE_TEST_SUITE_P(Loopback, MetricsServerTest,
                         ::testing::Values("127.0.0.1:0", "[::1]:0"));

TEST(MetricsServer, PortInUseIsAnErrorNamingTheAddress) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string address =
      "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  Registry registry;
  EXPECT_THAT(
      MetricsServer::Start(address, &registry),
      StatusIs(absl::StatusCode::kAlreadyExists,
               AllOf(HasSubstr(address), HasSubstr("Address already in use"))));
  close(fd);
}

TEST(MetricsServer, TwoServersCannotShareAPort) {
  Registry registry;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> first,
                       MetricsServer::Start("127.0.0.1:0", &registry));
  const std::string address = "127.0.0.1:" + std::to_string(first->port());
  EXPECT_THAT(MetricsServer::Start(address, &registry),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(address)));
}

TEST(MetricsServer, ServesExtraRoutesBesideMetrics) {
  Registry registry;
  std::string posted;
  std::vector<HttpRoute> routes;
  routes.push_back(
      {"GET", "/admin/state", [](const std::string&) {
         return HttpResponse{200, "application/json", "{\"ok\":true}\n"};
       }});
  routes.push_back({"POST", "/admin/do", [&posted](const std::string& body) {
                      posted = body;
                      return HttpResponse{202, "text/plain", "done\n"};
                    }});
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<MetricsServer> server,
      MetricsServer::Start("127.0.0.1:0", &registry, std::move(routes)));
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result get = client.Get("/admin/state");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(get->body, "{\"ok\":true}\n");
  httplib::Result post = client.Post("/admin/do", "now", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 202);
  EXPECT_EQ(post->body, "done\n");
  EXPECT_EQ(posted, "now");
  // A POST without Content-Length (curl -X POST URL) is answered at once,
  // with an empty body, not after the client gives up.
  // (Raw bytes: httplib's client would add Content-Length: 0.)
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  timeval two_seconds = {2, 0};
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof(two_seconds));
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(server->port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(sock, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  const std::string bare = "POST /admin/do HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ASSERT_EQ(write(sock, bare.data(), bare.size()),
            static_cast<ssize_t>(bare.size()));
  char answer[512] = {};
  ssize_t n = read(sock, answer, sizeof(answer) - 1);
  close(sock);
  ASSERT_GT(n, 0) << "no answer within 2 s";
  EXPECT_THAT(std::string(answer), HasSubstr("HTTP/1.1 202"));
  EXPECT_EQ(posted, "");
  server->Stop();
  // The wrong method is not served.
  ASSERT_OK_AND_ASSIGN(
      server,
      MetricsServer::Start("127.0.0.1:0", &registry,
                           {{"POST", "/admin/do", [](const std::string&) {
                               return HttpResponse{};
                             }}}));
  httplib::Client again("127.0.0.1", server->port());
  httplib::Result wrong = again.Get("/admin/do");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 404);
  EXPECT_TRUE(again.Get("/metrics"));
}

TEST(MetricsServer, BadExtraRoutesAreRefused) {
  Registry registry;
  auto handler = [](const std::string&) { return HttpResponse{}; };
  EXPECT_THAT(MetricsServer::Start("127.0.0.1:0", &registry,
                                   {{"PUT", "/admin/x", handler}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("extra route PUT \"/admin/x\"")));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1:0", &registry,
                                   {{"GET", "/metrics", handler}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1:0", &registry,
                                   {{"GET", "admin", handler}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MetricsServer, MalformedAddressIsInvalidArgument) {
  Registry registry;
  EXPECT_THAT(MetricsServer::Start("localhost:9100", &registry),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("metrics listen address \"localhost:9100\"")));
  EXPECT_THAT(MetricsServer::Start("::1:9100", &registry),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MetricsServer, StopRightAfterStartReturns) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                         MetricsServer::Start("127.0.0.1:0", &registry));
    server->Stop();
  }
}

}  // namespace
}  // namespace anylb::metrics
