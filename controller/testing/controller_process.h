// Test helpers for everything that talks to a real anylb-controller: a
// trial PKI (deploy/make-certs.sh) with a token file, and the controller
// binary started on its own store with a free port.
//
//   ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({"lb1"}));
//   ASSERT_OK_AND_ASSIGN(auto controller,
//                        ControllerProcess::Start(pki, pki.dir + "/s.db"));
//   auto stub = lb::v1::Controller::NewStub(
//       controller->Channel(TestPki::kOperatorToken));
//
// The token file holds an operator (kOperatorToken) and a read-only
// (kReadOnlyToken) token; their plain text is also in op.token / ro.token
// (lbctl --token_file). Test-only; use from the test's thread.

#ifndef ANYLB_CONTROLLER_TESTING_CONTROLLER_PROCESS_H_
#define ANYLB_CONTROLLER_TESTING_CONTROLLER_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/testing/child_process.h"
#include "grpcpp/grpcpp.h"

namespace anylb::controller_testing {

// Runfile: a data dependency's path ("controller/anylb_controller").
std::string Runfile(const std::string& path);

// TokenLine: one line of the token file for `token`.
std::string TokenLine(const std::string& role, const std::string& name,
                      const std::string& token);

struct TestPki {
  static constexpr char kOperatorToken[] = "op-token";
  static constexpr char kReadOnlyToken[] = "ro-token";

  // Create makes a fresh directory under TEST_TMPDIR with ca.crt,
  // controller.{crt,key}, node-NAME.{crt,key} per node, tokens, op.token,
  // ro.token.
  static absl::StatusOr<TestPki> Create(const std::vector<std::string>& nodes);

  std::string dir;
};

class ControllerProcess {
 public:
  // Start runs anylb_controller on `store` over TLS with the PKI's token
  // file (and its CA for node certificates when `node_certificates`), on
  // 127.0.0.1 with a free port, and waits until it listens.
  static absl::StatusOr<std::unique_ptr<ControllerProcess>> Start(
      const TestPki& pki, const std::string& store,
      bool node_certificates = true);

  // Channel: TLS to the controller with `token` (may be empty) and, when
  // `node` is given, that node's client certificate.
  std::shared_ptr<grpc::Channel> Channel(const std::string& token,
                                         const std::string& node = "") const;

  const std::string& address() const { return address_; }
  process_testing::ChildProcess& process() { return *process_; }

 private:
  ControllerProcess() = default;

  std::string pki_dir_;
  std::unique_ptr<process_testing::ChildProcess> process_;
  std::string address_;
};

}  // namespace anylb::controller_testing

#endif  // ANYLB_CONTROLLER_TESTING_CONTROLLER_PROCESS_H_
