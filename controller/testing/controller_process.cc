#include "controller/testing/controller_process.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "controller/auth/auth.h"

namespace anylb::controller_testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/anylb/", path);
}

std::string TokenLine(const std::string& role, const std::string& name,
                      const std::string& token) {
  controller::TokenTable::Digest digest = controller::TokenTable::Sha256(token);
  return absl::StrCat(
      role, " ", name, " sha256:",
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(digest.data()), digest.size())),
      "\n");
}

absl::StatusOr<TestPki> TestPki::Create(const std::vector<std::string>& nodes) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  TestPki pki;
  pki.dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/pki-", getpid(), "-",
                         counter++);
  std::string command =
      absl::StrCat("bash ", Runfile("deploy/make-certs.sh"), " ", pki.dir);
  for (const std::string& node : nodes)
    absl::StrAppend(&command, " --node ", node);
  absl::StrAppend(&command, " >/dev/null");
  if (system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", command));
  }
  std::ofstream(pki.dir + "/tokens")
      << TokenLine("operator", "alice", kOperatorToken)
      << TokenLine("read-only", "graf", kReadOnlyToken);
  std::ofstream(pki.dir + "/op.token") << kOperatorToken << "\n";
  std::ofstream(pki.dir + "/ro.token") << kReadOnlyToken << "\n";
  return pki;
}

absl::StatusOr<std::unique_ptr<ControllerProcess>> ControllerProcess::Start(
    const TestPki& pki, const std::string& store, bool node_certificates) {
  std::unique_ptr<ControllerProcess> controller(new ControllerProcess());
  controller->pki_dir_ = pki.dir;
  std::vector<std::string> argv = {Runfile("controller/anylb_controller"),
                                   "--listen=127.0.0.1:0",
                                   "--store=" + store,
                                   "--tls_cert=" + pki.dir + "/controller.crt",
                                   "--tls_key=" + pki.dir + "/controller.key",
                                   "--token_file=" + pki.dir + "/tokens",
                                   "--metrics_address="};
  if (node_certificates) argv.push_back("--client_ca=" + pki.dir + "/ca.crt");
  ASSIGN_OR_RETURN(controller->process_,
                   process_testing::ChildProcess::Start(argv));
  if (!controller->process_->ReadUntil("at revision", absl::Seconds(30))) {
    return absl::DeadlineExceededError(absl::StrCat(
        "anylb_controller did not start: ", controller->process_->output()));
  }
  const std::string& out = controller->process_->output();
  const std::string marker = "listening on 127.0.0.1:";
  size_t at = out.find(marker);
  int port = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(
          out.substr(at + marker.size(),
                     out.find(' ', at + marker.size()) - at - marker.size()),
          &port)) {
    return absl::InternalError(
        absl::StrCat("no listening port in the controller's output: ", out));
  }
  controller->address_ = absl::StrCat("127.0.0.1:", port);
  return controller;
}

std::shared_ptr<grpc::Channel> ControllerProcess::Channel(
    const std::string& token, const std::string& node) const {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(pki_dir_ + "/ca.crt");
  if (!node.empty()) {
    options.pem_private_key = ReadFile(pki_dir_ + "/node-" + node + ".key");
    options.pem_cert_chain = ReadFile(pki_dir_ + "/node-" + node + ".crt");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::SslCredentials(options);
  if (!token.empty()) {
    credentials = grpc::CompositeChannelCredentials(
        credentials, grpc::AccessTokenCredentials(token));
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel(address_, credentials, args);
}

}  // namespace anylb::controller_testing
