// LoopbackRelay: a TCP port on one lab namespace's loopback that leads to a
// port on another namespace's loopback (test-only).
//
//   // anylb-controller --insecure listens on 127.0.0.1:50051 in `dir1`
//   // (plaintext only on loopback); lbnode in `dir2` reaches it there too:
//   ASSERT_OK_AND_ASSIGN(auto relay,
//                        LoopbackRelay::Start(dir2, 50051, dir1, 50051));
//
// No packet crosses a link: the listening socket is made in `listen_ns` and
// each outgoing one in `target_ns` (a socket stays in the namespace it was
// made in), and a thread per connection copies bytes both ways (half-close
// passed on). Meant for a handful of long-lived connections (gRPC).
//
// Ownership: the relay owns its sockets and threads; the destructor closes
// every connection and joins the threads. Both Netns must outlive it.

#ifndef ANYLB_TESTS_NETNS_LOOPBACK_RELAY_H_
#define ANYLB_TESTS_NETNS_LOOPBACK_RELAY_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/netns/netns.h"

namespace anylb::lab {

class LoopbackRelay {
 public:
  // Start listens on 127.0.0.1:listen_port in `listen_ns`; each connection
  // is joined to a new connection to 127.0.0.1:target_port made in
  // `target_ns` (refused there: the accepted one is closed).
  static absl::StatusOr<std::unique_ptr<LoopbackRelay>> Start(
      const Netns& listen_ns, int listen_port, const Netns& target_ns,
      int target_port);

  LoopbackRelay(const LoopbackRelay&) = delete;
  LoopbackRelay& operator=(const LoopbackRelay&) = delete;
  ~LoopbackRelay();

  // connections counts the connections accepted so far.
  int connections() const { return connections_.load(); }

 private:
  LoopbackRelay(const Netns& target_ns, int target_port)
      : target_ns_(target_ns), target_port_(target_port) {}
  void Accept();
  void Pump(int a, int b);

  const Netns& target_ns_;
  int target_port_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;
};

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_LOOPBACK_RELAY_H_
