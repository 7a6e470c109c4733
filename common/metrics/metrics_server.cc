#include "common/metrics/metrics_server.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace anylb::metrics {

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server,
                             Endpoint endpoint)
    : server_(std::move(server)), endpoint_(endpoint) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::string_view listen_address, Registry* registry,
    std::vector<HttpRoute> routes) {
  const std::string text(listen_address);
  for (const HttpRoute& route : routes) {
    if ((route.method != "GET" && route.method != "POST") ||
        route.path.empty() || route.path[0] != '/' ||
        route.path == "/metrics" || !route.handler) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics server: extra route ", route.method, " \"", route.path,
          "\": the method must be GET or POST, the path start with '/' and "
          "not be /metrics, and a handler is needed"));
    }
  }
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(text);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics listen address \"", text, "\": ", endpoint.status().message(),
        " (expected 192.0.2.1:9100 or [2001:db8::1]:9100)"));
  }
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // server share the port instead of failing.
  server->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_max_count(10);
  server->Get("/metrics",
              [registry](const httplib::Request&, httplib::Response& res) {
                res.set_content(registry->Scrape(), Registry::kContentType);
              });
  for (HttpRoute& route : routes) {
    if (route.method == "GET") {
      server->Get(route.path,
                  [h = std::move(route.handler)](const httplib::Request& req,
                                                 httplib::Response& res) {
                    HttpResponse answer = h(req.body);
                    res.status = answer.status;
                    res.set_content(answer.body, answer.content_type);
                  });
      continue;
    }
    // POST with a content reader: a request without Content-Length or
    // chunked encoding (`curl -X POST URL`) has an empty body, where
    // httplib's default would wait for the client to close the connection.
    server->Post(route.path,
                 [h = std::move(route.handler)](
                     const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& read) {
                   std::string body;
                   if (req.has_header("Content-Length") ||
                       req.get_header_value("Transfer-Encoding") == "chunked") {
                     read([&body](const char* data, size_t length) {
                       body.append(data, length);
                       return body.size() <= (1 << 20);
                     });
                   }
                   HttpResponse answer = h(body);
                   res.status = answer.status;
                   res.set_content(answer.body, answer.content_type);
                 });
  }

  const std::string host = endpoint->address().ToString();
  errno = 0;
  int port = endpoint->port();
  bool bound;
  if (port == 0) {
    port = server->bind_to_any_port(host);
    bound = port > 0;
  } else {
    bound = server->bind_to_port(host, port);
  }
  if (!bound) {
    const int error = errno;
    const std::string message = absl::StrCat(
        "metrics server: binding ", endpoint->ToString(), ": ",
        error != 0 ? std::strerror(error) : "failed",
        error == EADDRINUSE ? " (another process listens there; pick another "
                              "port)"
                            : "");
    if (error == EADDRINUSE) return absl::AlreadyExistsError(message);
    return absl::UnavailableError(message);
  }

  std::unique_ptr<MetricsServer> result(new MetricsServer(
      std::move(server),
      Endpoint(endpoint->address(), static_cast<uint16_t>(port))));
  httplib::Server* s = result->server_.get();
  auto done = std::make_shared<std::atomic<bool>>(false);
  {
    absl::MutexLock lock(&result->mu_);
    result->thread_ = std::thread([s, done] {
      s->listen_after_bind();
      done->store(true);
    });
  }
  // httplib's stop() does nothing before the accept loop runs: wait for it
  // so that Stop() right after Start() cannot hang.
  while (!s->is_running() && !done->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return result;
}

void MetricsServer::Stop() {
  absl::MutexLock lock(&mu_);
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

MetricsServer::~MetricsServer() { Stop(); }

}  // namespace anylb::metrics
