// Network namespaces for the kernel tests of routing/netlink and
// lbnode/nexthop (test-only; routing/ cannot use lbnode's helper).
//
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> ns,
//                        TestNetns::Create("nh"));
//   ASSERT_THAT(ns->Run("ip link add a type veth peer name b"), IsOk());
//   {
//     ASSERT_OK_AND_ASSIGN(auto inside, ScopedNetns::Enter(*ns));
//     ... sockets opened here belong to `ns` ...
//   }
//
// Ownership: a TestNetns deletes its namespace when destroyed, also when a
// test fails half-way (ASSERT returns through destructors). Names are
// "<prefix>-<pid>-<n>": unique per process and call. Needs root:
// RequireRoot() gives the clear failure message.

#ifndef ANYLB_ROUTING_NETLINK_TEST_NETNS_H_
#define ANYLB_ROUTING_NETLINK_TEST_NETNS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace anylb::routing::netlink::testing {

// RequireRoot returns FAILED_PRECONDITION, saying why, unless euid is 0.
absl::Status RequireRoot();

// RunCommand runs `command` with /bin/sh and returns its output (stdout and
// stderr). A nonzero exit is INTERNAL, quoting the command and its output.
absl::StatusOr<std::string> RunCommand(const std::string& command);

class TestNetns {
 public:
  // Create makes a namespace "<prefix>-<pid>-<n>" with its loopback up.
  static absl::StatusOr<std::unique_ptr<TestNetns>> Create(
      std::string_view prefix);

  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  ~TestNetns();

  const std::string& name() const { return name_; }

  // Run runs a shell command inside the namespace (`ip netns exec`).
  absl::StatusOr<std::string> Run(const std::string& command) const;

 private:
  explicit TestNetns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// ScopedNetns moves the calling thread into a namespace and back when
// destroyed. Sockets made meanwhile stay in that namespace.
class ScopedNetns {
 public:
  static absl::StatusOr<std::unique_ptr<ScopedNetns>> Enter(
      const TestNetns& netns);

  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns();

 private:
  explicit ScopedNetns(int original_fd) : original_fd_(original_fd) {}
  int original_fd_;
};

}  // namespace anylb::routing::netlink::testing

#endif  // ANYLB_ROUTING_NETLINK_TEST_NETNS_H_
