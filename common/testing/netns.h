// Test-only helpers for tests that need root and network namespaces: the
// one copy used by lbnode/dataplane/bpf, lbnode/dataplane/xsk,
// routing/netlink and lbnode/nexthop tests.
//
//   ASSERT_THAT(netns_testing::RequireRoot("decap attach tests"), IsOk());
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> ns,
//                        TestNetns::Create("decap"));
//   ASSERT_THAT(ns->Run("ip link add a type veth peer name b"), IsOk());
//   {
//     ASSERT_OK_AND_ASSIGN(auto inside, ScopedNetns::Enter(*ns));
//     ... sockets, netlink and libbpf calls made here act inside `ns` ...
//   }
//
// Namespace: anylb::netns_testing, not anylb::testing, because a nested
// anylb::testing would hide gtest's ::testing from every unqualified
// `testing::` written inside namespace anylb.
//
// Ownership: a TestNetns owns its namespace and deletes it when destroyed,
// also when the test fails half-way (ASSERT returns through destructors).
// Names are "<prefix>-<pid>-<n>": unique per process and per call, so
// parallel tests never collide. Processes started inside a namespace keep it
// alive: stop them before the TestNetns goes. Threading: ScopedNetns moves
// only the calling thread; everything else is safe from any thread.

#ifndef ANYLB_COMMON_TESTING_NETNS_H_
#define ANYLB_COMMON_TESTING_NETNS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::netns_testing {

// RequireRoot returns FAILED_PRECONDITION unless the effective uid is 0,
// naming `what` (e.g. "decap attach tests") and how to run it as root.
// Tests that need root assert it is OK, so they fail, never pass, unprivileged.
absl::Status RequireRoot(std::string_view what);

// RunUnprivileged forks; the child becomes nobody (uid/gid 65534, which
// drops every capability), runs `body` and hands back the string it
// returns, or "setuid failed". For "without privileges the error says why"
// tests. Needs root to drop privileges from.
absl::StatusOr<std::string> RunUnprivileged(
    absl::FunctionRef<std::string()> body);

// RunCommand runs `command` with /bin/sh and returns its stdout and stderr.
// A nonzero exit is INTERNAL, quoting the command and its output.
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

// EnteredNetns is a TestNetns with the calling thread inside it, for test
// fixtures: Create makes the namespace, runs `setup` in it (a shell command,
// e.g. making a veth pair; skipped if empty) and enters it; destroying it
// leaves the namespace, then deletes it. Destroy it on the creating thread.
class EnteredNetns {
 public:
  static absl::StatusOr<std::unique_ptr<EnteredNetns>> Create(
      std::string_view prefix, const std::string& setup = "");

  EnteredNetns(const EnteredNetns&) = delete;
  EnteredNetns& operator=(const EnteredNetns&) = delete;

  const TestNetns& netns() const { return *netns_; }

 private:
  EnteredNetns() = default;
  // Declared in this order so the thread leaves before the namespace goes.
  std::unique_ptr<TestNetns> netns_;
  std::unique_ptr<ScopedNetns> inside_;
};

// PacketSocket is an AF_PACKET socket on one interface (of the namespace
// the calling thread is in when Open runs): sends whole frames, receives
// incoming ones (its own outgoing frames are skipped).
class PacketSocket {
 public:
  static absl::StatusOr<std::unique_ptr<PacketSocket>> Open(
      const std::string& interface);

  PacketSocket(const PacketSocket&) = delete;
  PacketSocket& operator=(const PacketSocket&) = delete;
  ~PacketSocket();

  // Send sends `frame` (starting with its Ethernet header) out unchanged.
  absl::Status Send(const std::vector<uint8_t>& frame) const;
  // Receive waits up to `timeout` for the next incoming frame.
  std::optional<std::vector<uint8_t>> Receive(absl::Duration timeout);

 private:
  explicit PacketSocket(int fd, int ifindex) : fd_(fd), ifindex_(ifindex) {}
  int fd_;
  int ifindex_;
};

// MacOf reads an interface's MAC (in the calling thread's namespace).
absl::StatusOr<std::array<uint8_t, 6>> MacOf(const std::string& interface);

}  // namespace anylb::netns_testing

#endif  // ANYLB_COMMON_TESTING_NETNS_H_
