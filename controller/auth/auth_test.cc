#include "controller/auth/auth.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::controller {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string HashLine(const std::string& role, const std::string& name,
                     const std::string& token) {
  TokenTable::Digest d = TokenTable::Sha256(token);
  std::string hex;
  for (uint8_t b : d) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  return absl::StrCat(role, " ", name, " sha256:", hex, "\n");
}

TEST(TokenTableTest, ParsesRolesCommentsAndFindsTokens) {
  const std::string text =
      absl::StrCat("# tokens\n\n", HashLine("operator", "alice", "s3cret-a"),
                   "  ", HashLine("read-only", "grafana", "s3cret-g"),
                   HashLine("node", "lb7", "s3cret-n"));
  ASSERT_OK_AND_ASSIGN(TokenTable table, TokenTable::Parse(text, "t.txt"));
  EXPECT_EQ(table.size(), 3u);
  auto alice = table.Find("s3cret-a");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kOperator);
  EXPECT_EQ(table.Find("s3cret-g")->role, Role::kReadOnly);
  EXPECT_EQ(table.Find("s3cret-n")->role, Role::kNode);
  EXPECT_FALSE(table.Find("s3cret").has_value());
  EXPECT_FALSE(table.Find("").has_value());
}

TEST(TokenTableTest, SameHashAsSha256sum) {
  // printf %s hello | sha256sum
  ASSERT_OK_AND_ASSIGN(
      TokenTable table,
      TokenTable::Parse("operator bob sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1"
                        "b161e5c1fa7425e73043362938b9824\n",
                        "t"));
  EXPECT_EQ(table.Find("hello")->name, "bob");
}

TEST(TokenTableTest, BadLinesNameTheFileAndLine) {
  const std::string good = HashLine("operator", "alice", "a");
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {"admin alice sha256:00\n", "t.txt:1: unknown role \"admin\""},
      {"operator alice\n", "t.txt:1: expected"},
      {"\noperator alice sha256:abcd\n", "t.txt:2: token hash"},
      {"operator alice plaintext-token-oops\n", "never tokens"},
      {"operator al/ice sha256:" + std::string(64, 'a') + "\n", "name"},
      {good + HashLine("read-only", "alice", "b"), "appears twice"},
      {good + HashLine("read-only", "bob", "a"), "another name's token"},
  };
  for (const Case& c : cases) {
    auto table = TokenTable::Parse(c.text, "t.txt");
    EXPECT_THAT(table.status(), StatusIs(absl::StatusCode::kInvalidArgument))
        << c.text;
    EXPECT_THAT(table.status().message(), HasSubstr(c.message)) << c.text;
  }
  EXPECT_THAT(TokenTable::Load("/nonexistent/tokens.txt").status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(AllowedRolesTest, EveryControllerRpcHasAPolicy) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "lb.v1.Controller");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string method =
        absl::StrCat("/lb.v1.Controller/", service->method(i)->name());
    EXPECT_FALSE(AllowedRoles(method).empty())
        << method << " has no authorization policy; add it to AllowedRoles";
  }
  EXPECT_THAT(AllowedRoles("/lb.v1.Controller/ListServices"),
              UnorderedElementsAre(Role::kReadOnly, Role::kOperator));
  EXPECT_THAT(AllowedRoles("/lb.v1.Controller/CreateService"),
              UnorderedElementsAre(Role::kOperator));
  EXPECT_THAT(AllowedRoles("/lb.v1.Controller/WatchConfig"),
              UnorderedElementsAre(Role::kNode));
  EXPECT_TRUE(AllowedRoles("/lb.v1.Controller/Bogus").empty());
  EXPECT_TRUE(AllowedRoles("/other.Service/ListServices").empty());
}

// A stand-in for the controller's handlers that does only what every real
// handler must do first: Authorize, then (only then) act. It counts the
// calls that got through, so a test can see that a refused call changed
// nothing.
class GuardedService final : public lb::v1::Controller::Service {
 public:
  grpc::Status ListServices(grpc::ServerContext* context,
                            const lb::v1::ListServicesRequest*,
                            lb::v1::ListServicesResponse*) override {
    return Guard(*context, "ListServices");
  }
  grpc::Status CreateService(grpc::ServerContext* context,
                             const lb::v1::CreateServiceRequest*,
                             lb::v1::ServiceResponse*) override {
    return Guard(*context, "CreateService");
  }
  grpc::Status RegisterNode(grpc::ServerContext* context,
                            const lb::v1::RegisterNodeRequest*,
                            lb::v1::RegisterNodeResponse* response) override {
    grpc::Status status = Guard(*context, "RegisterNode");
    if (status.ok()) {
      response->mutable_settings()->set_node_name(CallerOf(*context)->name);
    }
    return status;
  }

  int accepted() {
    absl::MutexLock lock(&mu_);
    return accepted_;
  }

 private:
  grpc::Status Guard(const grpc::ServerContext& context,
                     const std::string& method) {
    grpc::Status status =
        Authorize(context, absl::StrCat("/lb.v1.Controller/", method), true);
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      ++accepted_;
    }
    return status;
  }

  absl::Mutex mu_;
  int accepted_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class AuthOverTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = new std::string(
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/auth-certs-", getpid()));
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const std::string script = absl::StrCat(srcdir != nullptr ? srcdir : ".",
                                            "/anylb/deploy/make-certs.sh");
    ASSERT_EQ(system(absl::StrCat("bash ", script, " ", *dir_,
                                  " --node lb1 >/dev/null")
                         .c_str()),
              0);
    // A second CA with its own "lb1": must not be accepted.
    ASSERT_EQ(system(absl::StrCat("bash ", script, " ", *dir_,
                                  "/rogue --node lb1 >/dev/null")
                         .c_str()),
              0);
  }

  void SetUp() override {
    auto tokens = std::make_shared<TokenTable>();
    ASSERT_OK_AND_ASSIGN(
        *tokens,
        TokenTable::Parse(absl::StrCat(HashLine("operator", "alice", "tok-op"),
                                       HashLine("read-only", "graf", "tok-ro")),
                          "tokens"));
    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ReadFile(*dir_ + "/ca.crt");
    options.pem_key_cert_pairs.push_back({ReadFile(*dir_ + "/controller.key"),
                                          ReadFile(*dir_ + "/controller.crt")});
    auto credentials = grpc::SslServerCredentials(options);
    credentials->SetAuthMetadataProcessor(
        std::make_shared<Authenticator>(tokens));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<lb::v1::Controller::Stub> Stub(
      const std::string& token, const std::string& cert_dir = "",
      const std::string& node = "") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(*dir_ + "/ca.crt");
    if (!node.empty()) {
      options.pem_private_key = ReadFile(cert_dir + "/node-" + node + ".key");
      options.pem_cert_chain = ReadFile(cert_dir + "/node-" + node + ".crt");
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials =
        grpc::SslCredentials(options);
    if (!token.empty()) {
      credentials = grpc::CompositeChannelCredentials(
          credentials, grpc::AccessTokenCredentials(token));
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return lb::v1::Controller::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port_), credentials, args));
  }

  static grpc::Status List(lb::v1::Controller::Stub& stub) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    lb::v1::ListServicesResponse response;
    return stub.ListServices(&context, {}, &response);
  }
  static grpc::Status Create(lb::v1::Controller::Stub& stub) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    lb::v1::ServiceResponse response;
    return stub.CreateService(&context, {}, &response);
  }
  static grpc::Status Register(lb::v1::Controller::Stub& stub,
                               std::string* name) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    lb::v1::RegisterNodeResponse response;
    grpc::Status status = stub.RegisterNode(&context, {}, &response);
    *name = response.settings().node_name();
    return status;
  }

  static inline std::string* dir_ = nullptr;
  GuardedService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(AuthOverTlsTest, NoCredentialsIsUnauthenticated) {
  auto stub = Stub("");
  grpc::Status status = List(*stub);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("no credentials"));
  EXPECT_EQ(Create(*stub).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(service_.accepted(), 0);
}

TEST_F(AuthOverTlsTest, UnknownTokenIsUnauthenticated) {
  auto stub = Stub("tok-guess");
  EXPECT_EQ(Create(*stub).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(service_.accepted(), 0);
}

TEST_F(AuthOverTlsTest, ReadOnlyReadsButCannotChange) {
  auto stub = Stub("tok-ro");
  EXPECT_TRUE(List(*stub).ok());
  grpc::Status create = Create(*stub);
  EXPECT_EQ(create.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(create.error_message(),
              HasSubstr("graf (role read-only) may not call CreateService; "
                        "it needs operator"));
  EXPECT_EQ(service_.accepted(), 1);  // the List only
}

TEST_F(AuthOverTlsTest, OperatorChangesButIsNoNode) {
  auto stub = Stub("tok-op");
  EXPECT_TRUE(Create(*stub).ok());
  std::string name;
  EXPECT_EQ(Register(*stub, &name).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(service_.accepted(), 1);
}

TEST_F(AuthOverTlsTest, NodeCertificateIsANodeNamedByItsCn) {
  auto stub = Stub("", *dir_, "lb1");
  std::string name;
  grpc::Status status = Register(*stub, &name);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(name, "lb1");
  EXPECT_EQ(Create(*stub).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthOverTlsTest, CertificateFromAnotherCaIsRefused) {
  auto stub = Stub("", *dir_ + "/rogue", "lb1");
  std::string name;
  grpc::Status status = Register(*stub, &name);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(service_.accepted(), 0);
}

}  // namespace
}  // namespace anylb::controller
