// MetricsServer serves a Registry's page over HTTP (cpp-httplib):
//
//   GET /metrics   200, Content-Type: text/plain; version=0.0.4
//   extra routes   as their handlers answer (e.g. lbnode's /admin/...)
//   anything else  404
//
//   ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> server,
//                    MetricsServer::Start("127.0.0.1:9100", &registry));
//   ... server->port() ...
//   server->Stop();  // or let it go out of scope
//
// Listen addresses are "192.0.2.1:9100" or "[2001:db8::1]:9100" (as
// Endpoint::Parse takes them; "0.0.0.0:9100" / "[::]:9100" for every
// address). Port 0 asks the kernel for a free port; port() tells which.
// Only SO_REUSEADDR is set (not SO_REUSEPORT), so a port in use is an
// error, never a silently shared socket.
//
// Ownership and threading: the server owns its listening socket, an accept
// thread and a pool of kThreads request threads; scrapes run on those. The
// registry must outlive the server. Start/Stop/port may be called from any
// thread; Stop (and the destructor) returns after every thread has ended.

#ifndef ANYLB_COMMON_METRICS_METRICS_SERVER_H_
#define ANYLB_COMMON_METRICS_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ip_address.h"
#include "common/metrics/registry.h"

namespace httplib {
class Server;
}

namespace anylb::metrics {

// HttpResponse is an extra route's answer.
struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// HttpRoute is an extra endpoint served beside /metrics: `method` "GET" or
// "POST", an exact `path`, and the handler, which gets the request body
// and runs on a request thread (so it must be thread-safe).
struct HttpRoute {
  std::string method;
  std::string path;
  std::function<HttpResponse(const std::string& body)> handler;
};

// MetricsServer: see the file comment.
class MetricsServer {
 public:
  // kThreads: request threads (scrapes are rare and serialised anyway).
  static constexpr int kThreads = 2;

  // Start binds `listen_address` and starts serving. Errors name the
  // address: INVALID_ARGUMENT for a malformed one, ALREADY_EXISTS when the
  // port is in use, UNAVAILABLE for other bind failures. `routes` adds
  // endpoints (INVALID_ARGUMENT for a method other than GET/POST, a path
  // not starting with '/', or /metrics itself).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      std::string_view listen_address, Registry* registry,
      std::vector<HttpRoute> routes = {});

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  // Stop closes the socket and joins the threads. Idempotent.
  void Stop();

  // endpoint is the bound address and port (the real port when 0 was
  // asked for); port is its port.
  const Endpoint& endpoint() const { return endpoint_; }
  int port() const { return endpoint_.port(); }

 private:
  MetricsServer(std::unique_ptr<httplib::Server> server, Endpoint endpoint);

  std::unique_ptr<httplib::Server> server_;
  const Endpoint endpoint_;
  absl::Mutex mu_;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anylb::metrics

#endif  // ANYLB_COMMON_METRICS_METRICS_SERVER_H_
