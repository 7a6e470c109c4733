// Network namespaces for this package's integration tests (test-only).
//
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> ns,
//                        TestNetns::Create("decap"));
//   ASSERT_THAT(ns->Run("ip link add a type veth peer name b"), IsOk());
//   {
//     ASSERT_OK_AND_ASSIGN(auto inside, ScopedNetns::Enter(*ns));
//     ... sockets, netlink and libbpf calls made here act inside `ns` ...
//   }
//
// Ownership: a TestNetns owns its namespace and deletes it when destroyed,
// also when the test fails half-way (ASSERT returns through destructors).
// Names are unique per process and per call. Processes started inside a
// namespace keep it alive: stop them before the TestNetns goes.
// Needs root.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_TEST_NETNS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_TEST_NETNS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace anylb::dataplane::bpf {

// RunCommand runs `command` with /bin/sh and returns its stdout and stderr.
// A nonzero exit is an InternalError quoting the command and its output.
absl::StatusOr<std::string> RunCommand(const std::string& command);

// TestNetns: see the file comment.
class TestNetns {
 public:
  // Create makes a namespace named "<prefix>-<pid>-<n>" with its loopback up.
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

// ScopedNetns moves the calling thread into a namespace and back out when
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

}  // namespace anylb::dataplane::bpf

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_TEST_NETNS_H_
