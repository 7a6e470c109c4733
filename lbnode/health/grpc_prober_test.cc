// Tests of GrpcProber against real gRPC servers on 127.0.0.1 (the default
// health service of grpc::ServerBuilder, and our own Health service where
// the test needs to see the request), plus sockets that refuse or never
// answer.

#include "lbnode/health/grpc_prober.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/ext/health_check_service_server_builder_option.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

namespace anylb::health {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A bound on waiting for a result that must come much sooner (not a speed
// assertion: only a hung prober reaches it).
constexpr absl::Duration kGuard = absl::Seconds(60);

// The name in the test certificate.
constexpr char kTlsName[] = "web.example.com";

// TestCert is a self-signed certificate (its own root) and its key, PEM.
struct TestCert {
  std::string cert;
  std::string key;
};

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const auto size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

TestCert MakeCert(const std::string& dns_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x509 = X509_new();
  X509_set_version(x509, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x509), 1);
  X509_gmtime_adj(X509_getm_notBefore(x509), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x509), 7L * 86400);
  X509_set_pubkey(x509, key);
  X509_NAME* name = X509_get_subject_name(x509);
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x509, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x509, x509, nullptr, nullptr, 0);
  for (auto [nid, value] :
       {std::pair<int, std::string>{NID_subject_alt_name, "DNS:" + dns_name},
        {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(x509, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x509, key, EVP_sha256());
  BIO* cert_bio = BIO_new(BIO_s_mem());
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, x509);
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  TestCert cert{BioText(cert_bio), BioText(key_bio)};
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(x509);
  EVP_PKEY_free(key);
  return cert;
}

// The test's certificate, made before any test runs and installed as
// gRPC's default roots (what "the system's roots" are in this process:
// gRPC reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH once, at the first TLS
// channel).
const TestCert& Cert() {
  static const TestCert* cert = new TestCert(MakeCert(kTlsName));
  return *cert;
}

class TlsRootsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* dir = std::getenv("TEST_TMPDIR");
    std::filesystem::path path =
        std::filesystem::path(dir != nullptr ? dir : "/tmp") /
        absl::StrCat("grpc_prober_test_roots.", getpid(), ".pem");
    std::ofstream(path) << Cert().cert;
    setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", path.c_str(), 1);
  }
};

const auto* const kTlsRoots =
    ::testing::AddGlobalTestEnvironment(new TlsRootsEnvironment);

// HealthServer is a gRPC server on 127.0.0.1 with the default health
// service, plaintext or with TLS (the test certificate).
class HealthServer {
 public:
  explicit HealthServer(bool tls = false,
                        const std::string& address = "127.0.0.1")
      : address_(*IpAddress::Parse(address)) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> credentials =
        grpc::InsecureServerCredentials();
    if (tls) {
      grpc::SslServerCredentialsOptions options;
      options.pem_key_cert_pairs.push_back({Cert().key, Cert().cert});
      credentials = grpc::SslServerCredentials(options);
    }
    builder.AddListeningPort(Endpoint(address_, 0).ToString(), credentials,
                             &port_);
    // The default health service answers through the callback API; the
    // builder wants a service or a queue besides it.
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
  }
  ~HealthServer() {
    if (server_ != nullptr) server_->Shutdown();
    cq_->Shutdown();
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
    }
  }
  grpc::HealthCheckServiceInterface& health() {
    return *server_->GetHealthCheckService();
  }
  Endpoint endpoint() const { return Endpoint(address_, port_); }
  bool started() const { return server_ != nullptr && port_ != 0; }

 private:
  IpAddress address_;
  int port_ = 0;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
};

// RecordingHealth answers SERVING and remembers what it was asked.
class RecordingHealth : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override {
    absl::MutexLock lock(&mu_);
    grpc::string_ref authority = context->ExperimentalGetAuthority();
    authorities_.emplace_back(authority.data(), authority.size());
    services_.push_back(request->service());
    response->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
  std::vector<std::string> authorities() {
    absl::MutexLock lock(&mu_);
    return authorities_;
  }
  std::vector<std::string> services() {
    absl::MutexLock lock(&mu_);
    return services_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> authorities_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> services_ ABSL_GUARDED_BY(mu_);
};

// TcpSocket is a socket bound to 127.0.0.1:0: listening (connections
// complete in the backlog and nobody ever says a word) or not (connects are
// refused, and the port stays ours so nobody else takes it).
class TcpSocket {
 public:
  explicit TcpSocket(bool listen) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        (listen && ::listen(fd_, 64) != 0)) {
      ADD_FAILURE() << "socket setup: " << std::strerror(errno);
    }
    port_ = ntohs(addr.sin_port);
  }
  ~TcpSocket() { close(fd_); }
  Endpoint endpoint() const {
    return Endpoint(*IpAddress::Parse("127.0.0.1"), port_);
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

ProbeRequest GrpcRequest(const Endpoint& target, const std::string& service) {
  ProbeRequest request;
  request.target = target;
  request.backend = target;
  request.service = "web";
  request.check.mutable_grpc()->set_service_name(service);
  request.timeout = absl::Seconds(20);
  return request;
}

ProbeResult Probe(GrpcProber& prober, const ProbeRequest& request) {
  absl::Notification done;
  ProbeResult result;
  prober.Start(request, [&](const ProbeResult& r) {
    result = std::move(r);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kGuard)) << "no result";
  return result;
}

// IPv4 and IPv6 loopback.
class GrpcProberFamily : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Loopback, GrpcProberFamily,
                         ::testing::Values("127.0.0.1", "::1"));

TEST_P(GrpcProberFamily, ServingPasses) {
  HealthServer server(/*tls=*/false, GetParam());
  ASSERT_TRUE(server.started());
  server.health().SetServingStatus("lb.Web", true);
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());

  // The whole server ("") is SERVING by default.
  ProbeResult whole = Probe(*prober, GrpcRequest(server.endpoint(), ""));
  EXPECT_TRUE(whole.passed) << whole.error;
  EXPECT_EQ(whole.error, "");

  ProbeResult named = Probe(*prober, GrpcRequest(server.endpoint(), "lb.Web"));
  EXPECT_TRUE(named.passed) << named.error;
}

TEST_P(GrpcProberFamily, NotServingFails) {
  HealthServer server(/*tls=*/false, GetParam());
  ASSERT_TRUE(server.started());
  server.health().SetServingStatus("lb.Web", false);
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeResult r = Probe(*prober, GrpcRequest(server.endpoint(), "lb.Web"));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error, "status NOT_SERVING");

  // The same cached channel sees the change back.
  server.health().SetServingStatus("lb.Web", true);
  EXPECT_TRUE(Probe(*prober, GrpcRequest(server.endpoint(), "lb.Web")).passed);
}

TEST(GrpcProber, UnknownServiceFails) {
  HealthServer server;
  ASSERT_TRUE(server.started());
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeResult r = Probe(*prober, GrpcRequest(server.endpoint(), "lb.Nope"));
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.error, StartsWith("rpc NOT_FOUND"));
}

TEST(GrpcProber, NothingListeningFailsUnavailable) {
  TcpSocket closed(/*listen=*/false);
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeResult r = Probe(*prober, GrpcRequest(closed.endpoint(), ""));
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.error, StartsWith("rpc UNAVAILABLE: "));
}

TEST(GrpcProber, SilentServerHitsTheDeadline) {
  TcpSocket silent(/*listen=*/true);
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeRequest request = GrpcRequest(silent.endpoint(), "");
  request.timeout = absl::Milliseconds(300);
  ProbeResult r = Probe(*prober, request);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error, "timed out after 300ms");
  EXPECT_GE(r.latency, absl::Milliseconds(300));
}

TEST(GrpcProber, AuthorityAndServiceNameReachTheServer) {
  RecordingHealth health;
  grpc::ServerBuilder builder;
  // Our own Health service instead of the default one.
  builder.SetOption(
      std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
  builder.RegisterService(&health);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  Endpoint target(*IpAddress::Parse("127.0.0.1"), port);

  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeRequest plain = GrpcRequest(target, "lb.A");
  EXPECT_TRUE(Probe(*prober, plain).passed);
  ProbeRequest named = GrpcRequest(target, "lb.B");
  named.check.mutable_grpc()->set_authority("web.example.com");
  EXPECT_TRUE(Probe(*prober, named).passed);
  server->Shutdown();

  EXPECT_EQ(health.services(), (std::vector<std::string>{"lb.A", "lb.B"}));
  EXPECT_EQ(health.authorities(),
            (std::vector<std::string>{absl::StrCat("127.0.0.1:", port),
                                      "web.example.com"}));
}

TEST(GrpcProber, TlsAgainstAPlaintextServerFails) {
  HealthServer server;
  ASSERT_TRUE(server.started());
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeRequest request = GrpcRequest(server.endpoint(), "");
  request.check.mutable_grpc()->set_tls(true);
  ProbeResult r = Probe(*prober, request);
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.error, StartsWith("rpc UNAVAILABLE: "));
  // The plaintext probe of the same server is another channel and passes.
  request.check.mutable_grpc()->set_tls(false);
  EXPECT_TRUE(Probe(*prober, request).passed);
}

TEST(GrpcProber, TlsVerifiesTheServerAsTheAuthority) {
  HealthServer server(/*tls=*/true);
  ASSERT_TRUE(server.started());
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeRequest request = GrpcRequest(server.endpoint(), "");
  request.check.mutable_grpc()->set_tls(true);
  request.check.mutable_grpc()->set_authority(kTlsName);
  ProbeResult good = Probe(*prober, request);
  EXPECT_TRUE(good.passed) << good.error;

  // The certificate names web.example.com, not the address or another name.
  request.check.mutable_grpc()->clear_authority();
  ProbeResult by_address = Probe(*prober, request);
  EXPECT_FALSE(by_address.passed);
  EXPECT_THAT(by_address.error, StartsWith("rpc UNAVAILABLE: "));
  request.check.mutable_grpc()->set_authority("other.example.com");
  ProbeResult other = Probe(*prober, request);
  EXPECT_FALSE(other.passed);
  EXPECT_THAT(other.error, StartsWith("rpc UNAVAILABLE: "));

  // And plaintext to a TLS server fails.
  request.check.mutable_grpc()->set_tls(false);
  request.check.mutable_grpc()->set_authority(kTlsName);
  EXPECT_FALSE(Probe(*prober, request).passed);
}

TEST(GrpcProber, NotAGrpcCheckFails) {
  ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
  ProbeRequest request;
  request.check.mutable_tcp();
  ProbeResult r = Probe(*prober, request);
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.error, HasSubstr("not a gRPC check"));
}

TEST(GrpcProber, DestructorCompletesPendingProbes) {
  TcpSocket silent(/*listen=*/true);
  absl::Mutex mu;
  std::vector<std::string> errors;
  {
    ASSERT_OK_AND_ASSIGN(auto prober, GrpcProber::Create());
    ProbeRequest request = GrpcRequest(silent.endpoint(), "");
    request.timeout = absl::Seconds(600);
    for (int i = 0; i < 3; ++i) {
      prober->Start(request, [&](const ProbeResult& r) {
        absl::MutexLock lock(&mu);
        errors.push_back(r.passed ? "passed" : r.error);
      });
    }
  }
  absl::MutexLock lock(&mu);
  EXPECT_EQ(errors, std::vector<std::string>(3, "checker stopped"));
}

}  // namespace
}  // namespace anylb::health
