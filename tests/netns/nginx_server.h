// NginxServer: Debian's nginx as a real server inside a lab namespace
// (test-only).
//
//   ASSERT_OK_AND_ASSIGN(auto rs1, NginxServer::Start(topology->real_server(0),
//                                                     {.name = "rs1"}));
//   ... GET /id answers "rs1"; GET /big sends big_file_size() bytes slowly ...
//   ASSERT_OK_AND_ASSIGN(auto by_client, rs1->RequestsByClient());
//
// Everything nginx writes lives in a fresh temporary directory (config, pid
// file, error and access logs, temp paths, the served files); no system path
// is read or written (`-p`, `-c`, `-e`). nginx runs in the foreground
// (`daemon off`), as a child process of the test whose master we track; it
// listens on the wildcard addresses (IPv4 and IPv6) of `port`, so it also
// answers on a VIP held on lo. Every response carries `X-Server: <name>`.
//
// The access log has one line per request:
//   <$remote_addr> <$server_addr> <$request_uri> <$status> <$body_bytes_sent>
// so a test sees which client address the real server saw (the client's for
// DR/TUN/NAT, the director's local address for FULLNAT) and on which of its
// addresses (VIP or real-server address) the request arrived.
//
// A health-check test takes a real server down with Stop() and brings it
// back with Restart(), or makes one path fail with NginxOptions::fixed_status.
//
// Ownership: the object owns the process and the directory; the destructor
// stops nginx (SIGTERM, then SIGKILL) and removes the directory. The Netns
// given to Start() must outlive it. Not thread-safe.

#ifndef ANYLB_TESTS_NETNS_NGINX_SERVER_H_
#define ANYLB_TESTS_NETNS_NGINX_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "tests/netns/netns.h"

namespace anylb::lab {

struct NginxOptions {
  // name is what GET /id answers and the X-Server header.
  std::string name;
  int port = 80;
  // Size of /big and its rate limit (nginx limit_rate syntax: "256k").
  uint64_t big_file_bytes = 4 << 20;
  std::string big_file_rate = "512k";
  // fixed_status: exact paths answered with a status code and no body
  // (`location = /health { return 500; }`), e.g. a failing health page.
  std::map<std::string, int> fixed_status;
};

// AccessLogEntry is one line of the access log.
struct AccessLogEntry {
  IpAddress remote;  // the peer nginx saw
  IpAddress local;   // the address the connection arrived on
  std::string uri;
  int status = 0;
  uint64_t body_bytes = 0;
};

class NginxServer {
 public:
  // Start writes the config and files, starts nginx in `ns` and waits until
  // it accepts connections on 127.0.0.1:port (an error names the nginx
  // error log's contents if it exits or does not listen in 10 s).
  static absl::StatusOr<std::unique_ptr<NginxServer>> Start(
      const Netns& ns, const NginxOptions& options);

  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;
  ~NginxServer();

  const std::string& name() const { return options_.name; }
  const std::string& directory() const { return directory_; }
  uint64_t big_file_size() const { return options_.big_file_bytes; }
  // big_file_checksum is Fnv1a64 of /big.
  uint64_t big_file_checksum() const { return big_file_checksum_; }

  // AccessLog parses the access log written so far (a request is logged
  // when its response is finished).
  absl::StatusOr<std::vector<AccessLogEntry>> AccessLog() const;
  // RequestsByClient counts the access log's requests by remote address.
  absl::StatusOr<std::map<IpAddress, int>> RequestsByClient() const;
  // RequestsFrom counts the requests whose remote address is `client`.
  absl::StatusOr<int> RequestsFrom(const IpAddress& client) const;

  // ErrorLog returns nginx's error log (for failure messages).
  std::string ErrorLog() const;

  // Stop stops nginx (SIGTERM, SIGKILL after 3 s) and waits until nothing
  // accepts connections on the port any more: the real server is down, its
  // namespace and addresses stay. The access log is kept.
  absl::Status Stop();
  // Restart starts nginx again with the same config (after Stop) and waits
  // until it accepts connections, as Start does. Already running: OK.
  absl::Status Restart();
  bool running() const { return process_ != nullptr; }

 private:
  NginxServer(const Netns& ns, NginxOptions options, std::string directory)
      : ns_(&ns),
        options_(std::move(options)),
        directory_(std::move(directory)) {}
  // Launch spawns nginx and waits until it listens.
  absl::Status Launch();

  const Netns* ns_;
  NginxOptions options_;
  std::string directory_;
  uint64_t big_file_checksum_ = 0;
  std::unique_ptr<Process> process_;
};

// TempDirectory makes a fresh directory under $TEST_TMPDIR (or /tmp) named
// after `prefix`.
absl::StatusOr<std::string> TempDirectory(std::string_view prefix);

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_NGINX_SERVER_H_
