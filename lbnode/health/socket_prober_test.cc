// Tests of SocketProber against real servers on loopback (127.0.0.1 and
// ::1), each run by the test itself on its own threads: a scripted TCP/TLS
// server that answers with canned bytes (or never), cpp-httplib, a UDP
// responder and a listener that never accepts.

#include "lbnode/health/socket_prober.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace anylb::health {
namespace {

using ::anylb::status_testing::IsOk;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// A hang guard only: a probe that never calls done fails the test here
// instead of hanging it. No assertion depends on how fast anything is.
constexpr absl::Duration kHangGuard = absl::Seconds(60);

IpAddress Loopback(IpFamily family) {
  return family == IpFamily::kV4 ? IpAddress::FromV4(0x7f000001)
                                 : IpAddress::Parse("::1").value();
}

socklen_t ToSockaddr(const Endpoint& endpoint, sockaddr_storage* storage) {
  std::memset(storage, 0, sizeof(*storage));
  if (endpoint.is_v4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(endpoint.port());
    a->sin_addr.s_addr = endpoint.address().v4_network_order();
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(storage);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(endpoint.port());
  std::memcpy(&a->sin6_addr, endpoint.address().bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

// BoundSocket makes a socket bound to `address`, port 0; `port` gets the
// kernel's choice.
int BoundSocket(const IpAddress& address, int type, uint16_t* port) {
  const int fd = socket(address.af(), type | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  sockaddr_storage storage;
  socklen_t length = ToSockaddr(Endpoint(address, 0), &storage);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&storage), length), 0)
      << std::strerror(errno);
  length = sizeof(storage);
  getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  *port = ntohs(storage.ss_family == AF_INET
                    ? reinterpret_cast<sockaddr_in*>(&storage)->sin_port
                    : reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
  return fd;
}

// StopPipe wakes server threads blocked in poll() when the test ends.
class StopPipe {
 public:
  StopPipe() { EXPECT_EQ(pipe2(fds_, O_CLOEXEC), 0); }
  ~StopPipe() {
    close(fds_[0]);
    close(fds_[1]);
  }
  void Stop() { (void)!write(fds_[1], "x", 1); }
  // Wait returns true when `fd` is readable, false when stopped.
  bool Wait(int fd) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {fds_[0], POLLIN, 0}};
    while (poll(fds, 2, -1) < 0) {
    }
    return (fds[1].revents & POLLIN) == 0;
  }

 private:
  int fds_[2];
};

// SelfSigned is a key and a self-signed certificate for "health.test" and
// 127.0.0.1, made with the OpenSSL API.
struct SelfSigned {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;

  SelfSigned() {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(
        name, "CN", MBSTRING_ASC,
        reinterpret_cast<const unsigned char*>("health.test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(
        nullptr, &ctx, NID_subject_alt_name, "DNS:health.test,IP:127.0.0.1");
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());
  }
  ~SelfSigned() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

// TestCert is the certificate of every TLS server in these tests.
const SelfSigned& TestCert() {
  static const SelfSigned* const cert = new SelfSigned();
  return *cert;
}

// ScriptedServer accepts TCP (optionally TLS) connections one at a time,
// reads each request head, records it (and the TLS SNI), and writes
// `response` then closes — or, when `response` is kNever, never answers and
// holds the connection until the test ends.
constexpr char kNever[] = "<never answers>";

class ScriptedServer {
 public:
  ScriptedServer(IpFamily family, std::string response, bool tls = false)
      : response_(std::move(response)) {
    if (tls) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      SSL_CTX_use_certificate(ctx_, TestCert().cert);
      SSL_CTX_use_PrivateKey(ctx_, TestCert().key);
    }
    uint16_t port = 0;
    fd_ = BoundSocket(Loopback(family), SOCK_STREAM, &port);
    EXPECT_EQ(listen(fd_, 64), 0);
    endpoint_ = Endpoint(Loopback(family), port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    stop_.Stop();
    thread_.join();
    for (int fd : held_) close(fd);
    close(fd_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }

  const Endpoint& endpoint() const { return endpoint_; }
  std::string request() {
    absl::MutexLock lock(&mu_);
    return request_;
  }
  std::string sni() {
    absl::MutexLock lock(&mu_);
    return sni_;
  }

 private:
  void Serve() {
    while (stop_.Wait(fd_)) {
      const int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      SSL* ssl = nullptr;
      if (ctx_ != nullptr) {
        ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
          SSL_free(ssl);
          close(fd);
          continue;
        }
        const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        absl::MutexLock lock(&mu_);
        sni_ = name != nullptr ? name : "";
      }
      std::string head;
      char buffer[4096];
      // A TLS ClientHello (record type 0x16) to a plain server gets the
      // canned answer at once, as a real HTTP server's 400 would.
      while (head.find("\r\n\r\n") == std::string::npos &&
             (head.empty() || head[0] != '\x16')) {
        const int n =
            ssl != nullptr
                ? SSL_read(ssl, buffer, sizeof(buffer))
                : static_cast<int>(recv(fd, buffer, sizeof(buffer), 0));
        if (n <= 0) break;
        head.append(buffer, n);
      }
      {
        absl::MutexLock lock(&mu_);
        request_ = head;
      }
      if (response_ == kNever) {
        held_.push_back(fd);  // Never answers.
        if (ssl != nullptr) SSL_free(ssl);
        continue;
      }
      if (ssl != nullptr) {
        SSL_write(ssl, response_.data(), static_cast<int>(response_.size()));
        SSL_shutdown(ssl);
        SSL_free(ssl);
      } else if (!response_.empty()) {
        send(fd, response_.data(), response_.size(), MSG_NOSIGNAL);
      }
      close(fd);
    }
  }

  const std::string response_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  Endpoint endpoint_;
  StopPipe stop_;
  std::vector<int> held_;  // Server thread only.
  absl::Mutex mu_;
  std::string request_ ABSL_GUARDED_BY(mu_);
  std::string sni_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// UdpServer answers each datagram with what `answer` returns for it (no
// datagram when it returns an empty list).
class UdpServer {
 public:
  using Answer = std::function<std::vector<std::string>(std::string query)>;
  UdpServer(IpFamily family, Answer answer) : answer_(std::move(answer)) {
    uint16_t port = 0;
    fd_ = BoundSocket(Loopback(family), SOCK_DGRAM, &port);
    endpoint_ = Endpoint(Loopback(family), port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~UdpServer() {
    stop_.Stop();
    thread_.join();
    close(fd_);
  }
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  void Serve() {
    while (stop_.Wait(fd_)) {
      char buffer[2048];
      sockaddr_storage from;
      socklen_t length = sizeof(from);
      const ssize_t n = recvfrom(fd_, buffer, sizeof(buffer), 0,
                                 reinterpret_cast<sockaddr*>(&from), &length);
      if (n < 0) continue;
      for (const std::string& reply : answer_(std::string(buffer, n))) {
        sendto(fd_, reply.data(), reply.size(), 0,
               reinterpret_cast<sockaddr*>(&from), length);
      }
    }
  }

  Answer answer_;
  int fd_ = -1;
  Endpoint endpoint_;
  StopPipe stop_;
  std::thread thread_;
};

// Waiter receives one probe's result.
struct Waiter {
  absl::Notification notification;
  ProbeResult result;
  std::atomic<int> calls{0};

  ProbeDone Done() {
    return [this](ProbeResult r) {
      result = std::move(r);
      if (calls.fetch_add(1) == 0) notification.Notify();
    };
  }
  ProbeResult Wait() {
    EXPECT_TRUE(notification.WaitForNotificationWithTimeout(kHangGuard))
        << "probe never completed";
    return result;
  }
};

ProbeResult RunProbe(SocketProber& prober, const ProbeRequest& request) {
  Waiter waiter;
  prober.Start(request, waiter.Done());
  ProbeResult result = waiter.Wait();
  EXPECT_EQ(waiter.calls.load(), 1);
  return result;
}

ProbeRequest Http(const Endpoint& target) {
  ProbeRequest request;
  request.target = target;
  request.check.mutable_http();
  return request;
}

std::string Response(absl::string_view status_line, absl::string_view body) {
  return absl::StrCat(status_line, "\r\nContent-Length: ", body.size(),
                      "\r\n\r\n", body);
}

class SocketProberTest : public ::testing::TestWithParam<IpFamily> {
 protected:
  void SetUp() override {
    auto prober = SocketProber::Create();
    ASSERT_THAT(prober.status(), IsOk());
    prober_ = *std::move(prober);
  }
  IpAddress loopback() const { return Loopback(GetParam()); }

  std::unique_ptr<SocketProber> prober_;
};

INSTANTIATE_TEST_SUITE_P(Families, SocketProberTest,
                         ::testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const auto& info) {
                           return info.param == IpFamily::kV4 ? "IPv4" : "IPv6";
                         });

TEST_P(SocketProberTest, TcpPassesWhenTheConnectionIsEstablished) {
  uint16_t port = 0;
  const int fd = BoundSocket(loopback(), SOCK_STREAM, &port);
  ASSERT_EQ(listen(fd, 8), 0);
  ProbeRequest request;
  request.target = Endpoint(loopback(), port);
  request.check.mutable_tcp();
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
  EXPECT_THAT(result.error, IsEmpty());
  EXPECT_GT(result.latency, absl::ZeroDuration());
  close(fd);
}

TEST_P(SocketProberTest, TcpFailsOnRefusedConnectionNamingTheTarget) {
  uint16_t port = 0;
  close(BoundSocket(loopback(), SOCK_STREAM, &port));  // Nobody listens.
  ProbeRequest request;
  request.target = Endpoint(loopback(), port);
  request.check.mutable_tcp();
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, absl::StrCat("connect ", request.target.ToString(),
                                       ": Connection refused"));
}

TEST_P(SocketProberTest, TcpTimesOutWhenTheListenQueueIsFull) {
  // Backlog 0 holds one connection that is never accepted; the kernel
  // drops the SYNs of the next, so the probe's connect never completes.
  uint16_t port = 0;
  const int fd = BoundSocket(loopback(), SOCK_STREAM, &port);
  ASSERT_EQ(listen(fd, 0), 0);
  const Endpoint target(loopback(), port);
  sockaddr_storage address;
  const socklen_t length = ToSockaddr(target, &address);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    // The first connects fully; the others only start.
    fillers.push_back(
        socket(loopback().af(), SOCK_STREAM | (i == 0 ? 0 : SOCK_NONBLOCK), 0));
    const int ret =
        connect(fillers.back(), reinterpret_cast<sockaddr*>(&address), length);
    if (i == 0) {
      ASSERT_EQ(ret, 0) << std::strerror(errno);
    }
  }
  ProbeRequest request;
  request.target = target;
  request.check.mutable_tcp();
  request.timeout = absl::Milliseconds(300);
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, absl::StrCat("timed out after 300ms connecting (",
                                       target.ToString(), ")"));
  for (int filler : fillers) close(filler);
  close(fd);
}

TEST_P(SocketProberTest, HttpPassesOn200AndSendsTheRequestHead) {
  ScriptedServer server(GetParam(), Response("HTTP/1.1 200 OK", "fine"));
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_path("/healthz?full=1");
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
  EXPECT_EQ(server.request(),
            absl::StrCat("GET /healthz?full=1 HTTP/1.1\r\nHost: ",
                         server.endpoint().ToString(),
                         "\r\nUser-Agent: anylb-health\r\nAccept: */*\r\n"
                         "Connection: close\r\n\r\n"));
}

TEST_P(SocketProberTest, HttpSendsTheConfiguredHostAndMethod) {
  // A HEAD response has no body, whatever its Content-Length says.
  ScriptedServer server(GetParam(),
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_host("www.example.test");
  request.check.mutable_http()->set_method("HEAD");
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
  EXPECT_THAT(server.request(),
              AllOf(StartsWith("HEAD / HTTP/1.1\r\n"),
                    HasSubstr("\r\nHost: www.example.test\r\n")));
}

TEST_P(SocketProberTest, HttpFailsOnStatusOutsideTheDefaultRange) {
  ScriptedServer server(GetParam(),
                        Response("HTTP/1.1 500 Internal Server Error", "no"));
  const ProbeResult result = RunProbe(*prober_, Http(server.endpoint()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, "HTTP status 500, want 200-299");
}

TEST_P(SocketProberTest, HttpMatchesConfiguredStatusRanges) {
  ScriptedServer not_found(GetParam(), Response("HTTP/1.1 404 Not Found", ""));
  ScriptedServer ok(GetParam(), Response("HTTP/1.0 200 OK", ""));
  for (ScriptedServer* server : {&not_found, &ok}) {
    ProbeRequest request = Http(server->endpoint());
    lb::v1::StatusRange* range =
        request.check.mutable_http()->add_expected_statuses();
    range->set_min(300);
    range->set_max(399);
    request.check.mutable_http()->add_expected_statuses()->set_min(404);
    const ProbeResult result = RunProbe(*prober_, request);
    if (server == &not_found) {
      EXPECT_TRUE(result.passed) << result.error;
    } else {
      EXPECT_FALSE(result.passed);
      EXPECT_EQ(result.error, "HTTP status 200, want 300-399, 404");
    }
  }
}

TEST_P(SocketProberTest, HttpMatchesBodyContainsAndRegex) {
  ScriptedServer server(GetParam(),
                        Response("HTTP/1.1 200 OK", "status: ready 42\n"));
  struct Case {
    std::string contains, regex, error;
  };
  const Case cases[] = {
      {"ready", "", ""},
      {"", R"(ready \d+)", ""},
      {"ready", "^status", ""},
      {"draining", "", "body does not contain \"draining\""},
      {"", R"(ready \d{3})", "body does not match \"ready \\\\d{3}\""},
      {"", "(", "http.body_regex \"(\": missing )"},
  };
  for (const Case& c : cases) {
    ProbeRequest request = Http(server.endpoint());
    request.check.mutable_http()->set_body_contains(c.contains);
    request.check.mutable_http()->set_body_regex(c.regex);
    const ProbeResult result = RunProbe(*prober_, request);
    EXPECT_EQ(result.passed, c.error.empty()) << c.contains << c.regex;
    if (c.error.empty()) {
      EXPECT_THAT(result.error, IsEmpty());
    } else {
      EXPECT_THAT(result.error, StartsWith(c.error));
    }
  }
}

TEST_P(SocketProberTest, HttpReadsChunkedBodies) {
  ScriptedServer server(GetParam(),
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nhel\r\n6;ext=1\r\nlo wor\r\n2\r\nld\r\n"
                        "0\r\nX-Trailer: 1\r\n\r\n");
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_body_regex("^hello world$");
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
}

TEST_P(SocketProberTest, HttpSkipsInterimResponses) {
  ScriptedServer server(GetParam(),
                        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                        "HTTP/1.1 204 No Content\r\n\r\n");
  const ProbeResult result = RunProbe(*prober_, Http(server.endpoint()));
  EXPECT_TRUE(result.passed) << result.error;
}

TEST_P(SocketProberTest, HttpReadsBodiesToTheClose) {
  ScriptedServer server(GetParam(), "HTTP/1.0 200 OK\r\n\r\nall of it");
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_body_regex("^all of it$");
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
}

TEST_P(SocketProberTest, HttpKeepsAt64KiBOfAnEndlessBody) {
  // Content-Length promises 1 MiB; about 100 KiB arrive before the server
  // closes: the probe judges the first 64 KiB without waiting for the rest
  // (which would fail as a truncated body).
  const std::string body =
      "marker" + std::string(64 * 1024, 'x') + "late" + std::string(40000, 'y');
  ScriptedServer server(
      GetParam(), "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + body);
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_body_contains("marker");
  EXPECT_TRUE(RunProbe(*prober_, request).passed);
  request.check.mutable_http()->set_body_contains("late");
  EXPECT_EQ(RunProbe(*prober_, request).error,
            "body does not contain \"late\"");
}

TEST_P(SocketProberTest, HttpFailsWhenTheServerClosesEarly) {
  ScriptedServer short_body(
      GetParam(), "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
  ScriptedServer short_head(GetParam(), "HTTP/1.1 200 OK\r\nServer: x");
  ScriptedServer short_chunk(
      GetParam(),
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
  ScriptedServer garbage(GetParam(), "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  EXPECT_EQ(RunProbe(*prober_, Http(short_body.endpoint())).error,
            "connection closed after 10 of 100 body bytes");
  EXPECT_EQ(RunProbe(*prober_, Http(short_head.endpoint())).error,
            "connection closed in the HTTP response head");
  EXPECT_EQ(RunProbe(*prober_, Http(short_chunk.endpoint())).error,
            "connection closed in the chunked HTTP body");
  EXPECT_EQ(RunProbe(*prober_, Http(garbage.endpoint())).error,
            "malformed HTTP status line \"SSH-2.0-OpenSSH_9.2\"");
}

TEST_P(SocketProberTest, HttpFailsWhenTheServerClosesWithoutAnswer) {
  ScriptedServer server(GetParam(), /*response=*/"");
  const ProbeResult result = RunProbe(*prober_, Http(server.endpoint()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, "connection closed before the HTTP response");
}

TEST_P(SocketProberTest, HttpTimesOutWhenTheServerNeverAnswers) {
  ScriptedServer server(GetParam(), kNever);
  ProbeRequest request = Http(server.endpoint());
  request.timeout = absl::Milliseconds(300);
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error,
            absl::StrCat("timed out after 300ms waiting for the answer (",
                         server.endpoint().ToString(), ")"));
  EXPECT_GE(result.latency, absl::Milliseconds(300));
}

TEST_P(SocketProberTest, HttpRejectsABadPathBeforeConnecting) {
  ProbeRequest request = Http(Endpoint(loopback(), 9));
  request.check.mutable_http()->set_path("healthz");
  EXPECT_EQ(RunProbe(*prober_, request).error,
            "http.path \"healthz\" must start with \"/\" and hold no spaces "
            "or control characters (percent-encode them)");
}

TEST(SocketProber, HttpWorksWithCppHttplib) {
  httplib::Server server;
  std::string host;
  server.Get("/ready",
             [&](const httplib::Request& req, httplib::Response& res) {
               host = req.get_header_value("Host");
               res.set_chunked_content_provider(
                   "text/plain", [](size_t offset, httplib::DataSink& sink) {
                     if (offset == 0) {
                       sink.write("rea", 3);
                       sink.write("dy", 2);
                     } else {
                       sink.done();
                     }
                     return true;
                   });
             });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread thread([&] { server.listen_after_bind(); });
  ASSERT_OK_AND_ASSIGN(auto prober, SocketProber::Create());
  ProbeRequest request =
      Http(Endpoint(Loopback(IpFamily::kV4), static_cast<uint16_t>(port)));
  request.check.mutable_http()->set_path("/ready");
  request.check.mutable_http()->set_host("app.example.test");
  request.check.mutable_http()->set_body_contains("ready");
  const ProbeResult result = RunProbe(*prober, request);
  EXPECT_TRUE(result.passed) << result.error;
  EXPECT_EQ(host, "app.example.test");
  request.check.mutable_http()->set_path("/missing");
  EXPECT_EQ(RunProbe(*prober, request).error, "HTTP status 404, want 200-299");
  server.stop();
  thread.join();
}

TEST_P(SocketProberTest, HttpsPassesWithoutVerificationAndSendsSni) {
  ScriptedServer server(GetParam(), Response("HTTP/1.1 200 OK", "secure"),
                        /*tls=*/true);
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_tls(true);
  request.check.mutable_http()->set_host("www.example.test");
  request.check.mutable_http()->set_sni("health.test");
  request.check.mutable_http()->set_body_contains("secure");
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
  EXPECT_EQ(server.sni(), "health.test");
  EXPECT_THAT(server.request(), HasSubstr("\r\nHost: www.example.test\r\n"));

  // Without sni, the Host name is the server name.
  request.check.mutable_http()->clear_sni();
  EXPECT_TRUE(RunProbe(*prober_, request).passed);
  EXPECT_EQ(server.sni(), "www.example.test");
}

TEST_P(SocketProberTest, HttpsFailsVerificationOfASelfSignedCertificate) {
  ScriptedServer server(GetParam(), Response("HTTP/1.1 200 OK", ""),
                        /*tls=*/true);
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_tls(true);
  request.check.mutable_http()->set_sni("health.test");
  request.check.mutable_http()->set_verify_certificate(true);
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error,
            absl::StrCat("TLS handshake with ", server.endpoint().ToString(),
                         ": certificate verify failed: self-signed "
                         "certificate"));
}

// TrustTestCert makes the test certificate the system's trust store for
// the TLS contexts created while it lives (OpenSSL reads SSL_CERT_FILE when
// SocketProber::Create loads the default paths).
class TrustTestCert {
 public:
  TrustTestCert() {
    const char* dir = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(dir != nullptr ? dir : "/tmp", "/trusted-", getpid(),
                         ".pem");
    FILE* file = std::fopen(path_.c_str(), "w");
    EXPECT_NE(file, nullptr);
    PEM_write_X509(file, TestCert().cert);
    std::fclose(file);
    setenv("SSL_CERT_FILE", path_.c_str(), 1);
    setenv("SSL_CERT_DIR", "/nonexistent", 1);
  }
  ~TrustTestCert() {
    unsetenv("SSL_CERT_FILE");
    unsetenv("SSL_CERT_DIR");
    std::remove(path_.c_str());
  }

 private:
  std::string path_;
};

TEST_P(SocketProberTest, HttpsVerifiesTheCertificateAndTheName) {
  std::unique_ptr<SocketProber> prober;
  {
    // Before the server's thread starts: setenv races with getenv.
    TrustTestCert trust;
    ASSERT_OK_AND_ASSIGN(prober, SocketProber::Create());
  }
  ScriptedServer server(GetParam(), Response("HTTP/1.1 200 OK", ""),
                        /*tls=*/true);
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_tls(true);
  request.check.mutable_http()->set_verify_certificate(true);
  // The certificate names health.test and 127.0.0.1.
  request.check.mutable_http()->set_sni("health.test");
  ProbeResult result = RunProbe(*prober, request);
  EXPECT_TRUE(result.passed) << result.error;

  request.check.mutable_http()->set_sni("other.test");
  result = RunProbe(*prober, request);
  EXPECT_EQ(result.error,
            absl::StrCat("TLS handshake with ", server.endpoint().ToString(),
                         ": certificate verify failed: hostname mismatch"));

  // No name: the address is checked against the certificate's IP names.
  request.check.mutable_http()->clear_sni();
  result = RunProbe(*prober, request);
  if (GetParam() == IpFamily::kV4) {
    EXPECT_TRUE(result.passed) << result.error;
  } else {
    EXPECT_EQ(result.error,
              absl::StrCat("TLS handshake with ", server.endpoint().ToString(),
                           ": certificate verify failed: IP address mismatch"));
  }
}

TEST_P(SocketProberTest, HttpsFailsAgainstAPlainHttpServer) {
  ScriptedServer server(GetParam(), Response("HTTP/1.1 200 OK", ""));
  ProbeRequest request = Http(server.endpoint());
  request.check.mutable_http()->set_tls(true);
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_THAT(result.error,
              StartsWith(absl::StrCat("TLS handshake with ",
                                      server.endpoint().ToString(), ": ")));
}

TEST_P(SocketProberTest, UdpPassesOnAnAnswerWithTheExpectedStart) {
  UdpServer echo(GetParam(), [](std::string query) {
    return std::vector<std::string>{"pong:" + query};
  });
  ProbeRequest request;
  request.target = echo.endpoint();
  request.check.mutable_udp()->set_payload("ping");
  request.check.mutable_udp()->set_expected_response("pong:");
  ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
  request.check.mutable_udp()->set_expected_response("PONG");
  result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, "answer \"pong:ping\" does not start with \"PONG\"");
}

TEST_P(SocketProberTest, UdpFailsAtOnceOnPortUnreachable) {
  uint16_t port = 0;
  close(BoundSocket(loopback(), SOCK_DGRAM, &port));
  ProbeRequest request;
  request.target = Endpoint(loopback(), port);
  request.check.mutable_udp()->set_payload("ping");
  request.timeout = absl::Seconds(30);
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error,
            absl::StrCat("udp ", request.target.ToString(),
                         ": connection refused (ICMP port unreachable)"));
}

// DnsAnswer is the reply to `query` with `rcode`, its ID XORed with
// `id_flip` (non-zero: a wrong ID).
std::string DnsAnswer(const std::string& query, int rcode, int id_flip = 0) {
  std::string answer = query;
  answer[0] = static_cast<char>(answer[0] ^ (id_flip >> 8));
  answer[1] = static_cast<char>(answer[1] ^ (id_flip & 0xff));
  answer[2] = static_cast<char>(0x80 | 0x04);  // QR, AA.
  answer[3] = static_cast<char>(rcode);
  return answer;
}

TEST_P(SocketProberTest, DnsPassesOnTheExpectedRcode) {
  std::string seen;
  absl::Mutex mu;
  UdpServer server(GetParam(), [&](std::string query) {
    absl::MutexLock lock(&mu);
    seen = query;
    return std::vector<std::string>{
        DnsAnswer(query, query.size() > 12 && query[13] == 'o' ? 0 : 3)};
  });
  ProbeRequest request;
  request.target = server.endpoint();
  request.check.mutable_dns()->set_query_name("ok.example.");
  request.check.mutable_dns()->set_query_type(28);
  ProbeResult result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
  {
    absl::MutexLock lock(&mu);
    // Flags 0 (standard query, RD=0), QDCOUNT 1, QNAME, QTYPE 28, QCLASS IN.
    EXPECT_EQ(seen.substr(2), std::string("\0\0\0\1\0\0\0\0\0\0"
                                          "\2ok\7example\0\0\x1c\0\1",
                                          26));
  }
  request.check.mutable_dns()->set_query_name("gone.example");
  result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error, "DNS rcode NXDOMAIN (3), want NOERROR (0)");
  request.check.mutable_dns()->set_expected_rcode(3);
  result = RunProbe(*prober_, request);
  EXPECT_TRUE(result.passed) << result.error;
}

TEST_P(SocketProberTest, DnsIgnoresAnswersWithAnotherId) {
  UdpServer server(GetParam(), [](std::string query) {
    return std::vector<std::string>{DnsAnswer(query, 0, 0x1234)};
  });
  ProbeRequest request;
  request.target = server.endpoint();
  request.check.mutable_dns()->set_query_name("ok.example.");
  request.timeout = absl::Milliseconds(300);
  const ProbeResult result = RunProbe(*prober_, request);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.error,
            absl::StrCat("timed out after 300ms waiting for the answer (",
                         server.endpoint().ToString(), ")"));
}

TEST_P(SocketProberTest, DnsFailsOnAnAnswerForAnotherQuestion) {
  UdpServer server(GetParam(), [](std::string query) {
    std::string answer = DnsAnswer(query, 0);
    answer[13] = 'x';  // "ok" becomes "xk".
    return std::vector<std::string>{answer};
  });
  ProbeRequest request;
  request.target = server.endpoint();
  request.check.mutable_dns()->set_query_name("OK.example.");
  EXPECT_EQ(RunProbe(*prober_, request).error,
            "DNS answer does not echo the question (\"OK.example.\")");
}

TEST(SocketProber, RejectsRequestsItCannotRun) {
  ASSERT_OK_AND_ASSIGN(auto prober, SocketProber::Create());
  ProbeRequest request;
  request.target = Endpoint(Loopback(IpFamily::kV4), 53);
  EXPECT_EQ(
      RunProbe(*prober, request).error,
      "health_check has no check kind (tcp, http, grpc, dns, udp or exec)");
  request.check.mutable_dns()->set_query_name(std::string(64, 'a') + ".test");
  EXPECT_THAT(RunProbe(*prober, request).error,
              AllOf(StartsWith("dns.query_name \"aaaa"),
                    HasSubstr("each label must be 1-63 bytes")));
  request.check.mutable_dns()->set_query_name("");
  EXPECT_THAT(RunProbe(*prober, request).error,
              StartsWith("dns.query_name is empty"));
}

// RaiseFileLimit lets this process hold `n` more descriptors.
void RaiseFileLimit(rlim_t n) {
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < n) {
    limit.rlim_cur = std::min(n, limit.rlim_max);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  }
  ASSERT_GE(limit.rlim_cur, n) << "need " << n << " file descriptors";
}

TEST(SocketProber, SlowServersDoNotDelayAFastOneAndStoppingEndsThemAll) {
  constexpr int kSlow = 1000;
  RaiseFileLimit(kSlow + 256);
  // The slow server: a listener that never accepts. The kernel completes
  // the handshakes (backlog 4096), takes the requests, and nobody answers.
  uint16_t slow_port = 0;
  const int slow_fd =
      BoundSocket(Loopback(IpFamily::kV4), SOCK_STREAM, &slow_port);
  ASSERT_EQ(listen(slow_fd, 4096), 0);
  ScriptedServer fast(IpFamily::kV4, Response("HTTP/1.1 200 OK", "fast"));

  ASSERT_OK_AND_ASSIGN(auto prober, SocketProber::Create());
  std::atomic<int> slow_done{0};
  std::atomic<int> slow_stopped{0};
  ProbeRequest slow = Http(Endpoint(Loopback(IpFamily::kV4), slow_port));
  slow.timeout = absl::Hours(1);
  for (int i = 0; i < kSlow; ++i) {
    prober->Start(slow, [&](ProbeResult result) {
      if (result.error == "checker stopped") slow_stopped.fetch_add(1);
      slow_done.fetch_add(1);
    });
  }
  ProbeRequest request = Http(fast.endpoint());
  request.check.mutable_http()->set_body_contains("fast");
  const ProbeResult result = RunProbe(*prober, request);
  EXPECT_TRUE(result.passed) << result.error;
  // Ordering, not timing: the fast probe finished while every slow one is
  // still pending.
  EXPECT_EQ(slow_done.load(), 0);

  prober.reset();  // Completes every pending probe before returning.
  EXPECT_EQ(slow_done.load(), kSlow);
  EXPECT_EQ(slow_stopped.load(), kSlow);
  close(slow_fd);
}

}  // namespace
}  // namespace anylb::health
