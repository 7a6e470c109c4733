// Network namespaces and raw packet sockets for this package's integration
// tests (test-only; the same helpers as lbnode/dataplane/bpf/test_netns.h,
// which is private to its package).
//
//   ASSERT_OK_AND_ASSIGN(auto ns, TestNetns::Create("xsk-dir"));
//   ASSERT_THAT(ns->Run("ip link set lo up"), IsOk());
//   {
//     ASSERT_OK_AND_ASSIGN(auto inside, ScopedNetns::Enter(*ns));
//     ... sockets made here live in `ns` ...
//   }
//
// Ownership: a TestNetns deletes its namespace when destroyed, also when a
// test fails half-way. Names are "<prefix>-<pid>-<n>": unique per process
// and call. Needs root.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_TEST_NETNS_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_TEST_NETNS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::dataplane::xsk_testing {

// RunCommand runs `command` with /bin/sh; a nonzero exit is an
// InternalError quoting the command and its output.
absl::StatusOr<std::string> RunCommand(const std::string& command);

// TestNetns: see the file comment.
class TestNetns {
 public:
  static absl::StatusOr<std::unique_ptr<TestNetns>> Create(
      std::string_view prefix);
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  ~TestNetns();

  const std::string& name() const { return name_; }
  // Run runs a shell command inside the namespace.
  absl::StatusOr<std::string> Run(const std::string& command) const;

 private:
  explicit TestNetns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// ScopedNetns moves the calling thread into a namespace and back.
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

}  // namespace anylb::dataplane::xsk_testing

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_TEST_NETNS_H_
