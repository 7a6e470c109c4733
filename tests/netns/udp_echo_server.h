// UdpEchoServer and UdpExchange: the lab's UDP service (test-only).
//
// A UdpEchoServer is a thread inside a namespace that answers every datagram
// on `port` (IPv4 and IPv6 wildcard) with "<name> <client address>", sent
// from the address the datagram was addressed to (IP_PKTINFO /
// IPV6_PKTINFO), so a DR or TUN real server answers from the VIP on its lo.
// It counts requests by client address, like NginxServer's access log.
//
// UdpExchange sends one datagram from a namespace and waits for the answer.
//
// Threads: the server owns its thread; RequestsByClient() may be called from
// any thread (the counts are guarded by a mutex). The destructor stops and
// joins the thread.

#ifndef ANYLB_TESTS_NETNS_UDP_ECHO_SERVER_H_
#define ANYLB_TESTS_NETNS_UDP_ECHO_SERVER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "tests/netns/netns.h"

namespace anylb::lab {

class UdpEchoServer {
 public:
  // Start binds port `port` (v4 and v6) in `ns` and starts answering.
  static absl::StatusOr<std::unique_ptr<UdpEchoServer>> Start(const Netns& ns,
                                                              std::string name,
                                                              int port);

  UdpEchoServer(const UdpEchoServer&) = delete;
  UdpEchoServer& operator=(const UdpEchoServer&) = delete;
  ~UdpEchoServer();

  const std::string& name() const { return name_; }
  std::map<IpAddress, int> RequestsByClient() const;
  int requests() const;

 private:
  UdpEchoServer(std::string name) : name_(std::move(name)) {}
  void Serve();

  std::string name_;
  int fd4_ = -1;
  int fd6_ = -1;
  int stop_fd_ = -1;  // eventfd
  std::thread thread_;
  mutable absl::Mutex mutex_;
  std::map<IpAddress, int> counts_ ABSL_GUARDED_BY(mutex_);
};

// UdpExchange sends `payload` from `ns` to `address`:`port` (from `source`
// if given) and returns the first answer, or DEADLINE_EXCEEDED.
absl::StatusOr<std::string> UdpExchange(
    const Netns& ns, const IpAddress& address, int port,
    std::string_view payload, absl::Duration timeout = absl::Seconds(2),
    std::optional<IpAddress> source = std::nullopt);

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_UDP_ECHO_SERVER_H_
