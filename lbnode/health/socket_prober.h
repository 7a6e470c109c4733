// SocketProber runs the socket-level checks of lb.v1.HealthCheck on one
// epoll thread with non-blocking sockets, so a thousand slow servers hold
// no thread and never delay one another:
//   tcp   passes when the connection is established (then closed at once);
//   http  HTTP/1.1 request (method, path, Host), optional TLS (OpenSSL,
//         SNI, certificate verification against the system store when
//         verify_certificate), reads the status line, headers and body
//         (Content-Length, chunked, or to close; at most 64 KiB kept),
//         matches expected_statuses (default 200-299), body_contains,
//         body_regex (RE2);
//   udp   sends payload, passes on an answer (ICMP port unreachable fails
//         at once: "connection refused") that starts with expected_response;
//   dns   one query (query_name, query_type) over UDP with a random ID,
//         passes on a response with that ID, QR set, the question echoed and
//         the expected RCODE.
// Source addresses are the kernel's choice (the node's own stack).
//
// Threading: see probe.h.

#ifndef ANYLB_LBNODE_HEALTH_SOCKET_PROBER_H_
#define ANYLB_LBNODE_HEALTH_SOCKET_PROBER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "lbnode/health/probe.h"

namespace anylb::health {

class SocketProber : public Prober {
 public:
  static absl::StatusOr<std::unique_ptr<SocketProber>> Create();
  ~SocketProber() override;

  void Start(const ProbeRequest& request, ProbeDone done) override;

 private:
  SocketProber() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace anylb::health

#endif  // ANYLB_LBNODE_HEALTH_SOCKET_PROBER_H_
