// lbctl: ipvsadm's command line against the anylb controller. Reads the
// command line (parse_args.h), opens the channel (TLS with the token as
// call credentials, or plaintext with --insecure) and hands over to the
// Runner (runner.h). See README.md and docs/lbctl.md.
//
//   lbctl -A -t 192.0.2.10:80 -s mh
//   lbctl -a -t 192.0.2.10:80 -r 198.51.100.2:80 -g -w 3
//   lbctl -Ln
//   lbctl apply -f services.yaml --dry-run

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controller/lbctl/parse_args.h"
#include "controller/lbctl/runner.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::lbctl {
namespace {

constexpr char kVersion[] = "lbctl (anylb) 0.1, API lb.v1";

// ReadFile: the whole file, or an error line naming it and the flag.
bool ReadFile(const std::string& path, const char* what, const char* flag,
              std::string* text) {
  std::ifstream file(path);
  if (!file) {
    std::cerr << "lbctl: cannot read the " << what << " \"" << path << "\" ("
              << std::strerror(errno) << "); check " << flag << "\n";
    return false;
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  *text = buffer.str();
  return true;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Environment env;
  for (const char* name :
       {"LBCTL_CONTROLLER", "LBCTL_CA", "LBCTL_TOKEN_FILE"}) {
    if (const char* value = std::getenv(name); value != nullptr) {
      env[name] = value;
    }
  }
  absl::StatusOr<Invocation> invocation = ParseCommandLine(args, env);
  if (!invocation.ok()) {
    std::cerr << "lbctl: " << invocation.status().message() << "\n";
    return kExitUsage;
  }
  const Command& command = invocation->command;
  if (command.verb == Verb::kHelp) {
    std::cout << UsageText();
    return kExitOk;
  }
  if (command.verb == Verb::kVersion) {
    std::cout << kVersion << "\n";
    return kExitOk;
  }
  const ConnectionOptions& connection = invocation->connection;
  std::string token;
  if (!connection.token_file.empty()) {
    std::string text;
    if (!ReadFile(connection.token_file, "token file",
                  "--token_file / LBCTL_TOKEN_FILE", &text)) {
      return kExitUsage;
    }
    token = std::string(
        absl::StripAsciiWhitespace(text.substr(0, text.find('\n'))));
    if (token.empty()) {
      std::cerr << "lbctl: the token file \"" << connection.token_file
                << "\" is empty; its first line must be the token\n";
      return kExitUsage;
    }
  }
  RunnerOptions options;
  options.controller = connection.controller;
  options.timeout = connection.timeout;
  options.output = invocation->output;
  options.tls = !connection.insecure;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (connection.insecure) {
    credentials = grpc::InsecureChannelCredentials();
    options.plaintext_token = token;
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!connection.ca_file.empty() &&
        !ReadFile(connection.ca_file, "CA certificate", "--ca / LBCTL_CA",
                  &ssl.pem_root_certs)) {
      return kExitUsage;
    }
    credentials = grpc::SslCredentials(ssl);
    if (!token.empty()) {
      credentials = grpc::CompositeChannelCredentials(
          credentials, grpc::AccessTokenCredentials(token));
    }
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(connection.controller, credentials);
  std::unique_ptr<lb::v1::Controller::Stub> stub =
      lb::v1::Controller::NewStub(channel);
  Runner runner(stub.get(), options, std::cout, std::cerr, std::cin);
  int code = runner.Run(command);
  std::cout.flush();
  return code;
}

}  // namespace
}  // namespace anylb::lbctl

int main(int argc, char** argv) { return anylb::lbctl::Main(argc, argv); }
