// lab_node: sets one node's FULLNAT local addresses through the
// controller's UpdateNode RPC, for deploy/lab/lab.sh (`service fullnat`):
// lbctl has no verb for node settings yet.
//
//   lab_node --controller=198.51.100.5:50051 --ca=ca.crt
//       --token_file=operator.token --node=dir1
//       --local_addresses=192.0.2.64/28[,2001:db8:f:1::/124]
//
// An empty --local_addresses clears the pool. Prints the node's settings
// as the controller stored them; exit 1 with the controller's message on
// error. Single-threaded.

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"
#include "lb/v1/controller.grpc.pb.h"

ABSL_FLAG(std::string, controller, "127.0.0.1:50051", "controller address");
ABSL_FLAG(std::string, ca, "", "PEM CA of the controller's certificate");
ABSL_FLAG(std::string, token_file, "", "file whose first line is the token");
ABSL_FLAG(std::string, node, "", "node name (dir1)");
ABSL_FLAG(std::string, local_addresses, "",
          "comma-separated prefixes; empty clears the pool");

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream s;
  s << in.rdbuf();
  *out = s.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string node = absl::GetFlag(FLAGS_node);
  if (node.empty()) {
    std::cerr << "lab_node: --node is required (dir1)\n";
    return 2;
  }
  grpc::SslCredentialsOptions ssl;
  if (!absl::GetFlag(FLAGS_ca).empty() &&
      !ReadFile(absl::GetFlag(FLAGS_ca), &ssl.pem_root_certs)) {
    std::cerr << "lab_node: cannot read --ca=" << absl::GetFlag(FLAGS_ca)
              << "\n";
    return 2;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::SslCredentials(ssl);
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    std::string text;
    if (!ReadFile(absl::GetFlag(FLAGS_token_file), &text)) {
      std::cerr << "lab_node: cannot read --token_file="
                << absl::GetFlag(FLAGS_token_file) << "\n";
      return 2;
    }
    std::string token(absl::StripAsciiWhitespace(
        std::vector<std::string>(absl::StrSplit(text, '\n'))[0]));
    credentials = grpc::CompositeChannelCredentials(
        credentials, grpc::AccessTokenCredentials(token));
  }
  auto stub = lb::v1::Controller::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_controller), credentials));
  lb::v1::UpdateNodeRequest request;
  request.mutable_settings()->set_node_name(node);
  for (absl::string_view p : absl::StrSplit(
           absl::GetFlag(FLAGS_local_addresses), ',', absl::SkipEmpty())) {
    request.mutable_settings()->add_local_addresses(std::string(p));
  }
  request.mutable_update_mask()->add_paths("local_addresses");
  lb::v1::NodeResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::Status status = stub->UpdateNode(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "lab_node: UpdateNode " << node << ": "
              << status.error_message() << "\n";
    return 1;
  }
  std::cout << response.node().settings().ShortDebugString() << "\n";
  return 0;
}
