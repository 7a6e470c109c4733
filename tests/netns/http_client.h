// Native HTTP/1.0 clients that run inside a lab namespace (test-only).
//
//   HttpClient client(topology->client());
//   ASSERT_OK_AND_ASSIGN(HttpResponse r, client.Get(vip, 80, "/id"));
//   EXPECT_EQ(r.body, "rs2");
//
//   ASSERT_OK_AND_ASSIGN(auto download,
//                        SlowDownload::Start(ns, vip, 80, "/big"));
//   ... change the config while it runs ...
//   ASSERT_OK_AND_ASSIGN(DownloadResult result, download->Wait());
//
// Every request is a fresh TCP connection (HTTP/1.0, `Connection: close`), so
// each one is a new flow for the load balancer. Sockets are made on a thread
// that entered the namespace (Netns::RunInThread); nothing runs through a
// shell. Timeouts bound every wait; an expired one is DEADLINE_EXCEEDED
// naming the address and what was awaited.
//
// Threads: HttpClient is immutable after construction and may be shared.
// A SlowDownload owns one background thread; its destructor stops and joins
// it.

#ifndef ANYLB_TESTS_NETNS_HTTP_CLIENT_H_
#define ANYLB_TESTS_NETNS_HTTP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "tests/netns/netns.h"

namespace anylb::lab {

// Fnv1a64 is the 64-bit FNV-1a hash of `bytes`: the checksum downloads are
// checked with. Fnv1a64Update continues a running hash (start: kFnv1a64Seed).
inline constexpr uint64_t kFnv1a64Seed = 0xcbf29ce484222325ull;
uint64_t Fnv1a64Update(uint64_t hash, std::span<const char> bytes);
inline uint64_t Fnv1a64(std::span<const char> bytes) {
  return Fnv1a64Update(kFnv1a64Seed, bytes);
}

// HttpResponse is a parsed HTTP/1.x response.
struct HttpResponse {
  int status_code = 0;
  std::string headers;  // the header lines, CRLF-separated, without status
  std::string body;

  // Header returns the value of header `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

// HttpClient: see the file comment.
class HttpClient {
 public:
  explicit HttpClient(const Netns& ns,
                      absl::Duration timeout = absl::Seconds(5),
                      std::optional<IpAddress> source = std::nullopt)
      : ns_(ns), timeout_(timeout), source_(source) {}

  // Get opens a new connection to `address`:`port` (from the source address
  // given at construction, if any), sends `GET path HTTP/1.0` and reads the
  // response to the end.
  absl::StatusOr<HttpResponse> Get(const IpAddress& address, int port,
                                   std::string_view path) const;

 private:
  const Netns& ns_;
  absl::Duration timeout_;
  std::optional<IpAddress> source_;
};

// DownloadResult is what a SlowDownload received.
struct DownloadResult {
  int status_code = 0;
  uint64_t body_bytes = 0;
  uint64_t checksum = 0;  // Fnv1a64 of the body
  std::string server;     // the X-Server header (which real server)
  bool complete = false;  // body_bytes == Content-Length
};

// SlowDownload fetches a (large, rate-limited) file on a background thread.
class SlowDownload {
 public:
  // Start connects and sends the request before returning (so the flow
  // exists when Start returns), then reads on a background thread. `timeout`
  // bounds the whole download.
  static absl::StatusOr<std::unique_ptr<SlowDownload>> Start(
      const Netns& ns, const IpAddress& address, int port,
      std::string_view path, absl::Duration timeout = absl::Seconds(60));

  SlowDownload(const SlowDownload&) = delete;
  SlowDownload& operator=(const SlowDownload&) = delete;
  ~SlowDownload();

  // bytes_received counts the bytes read so far (headers included).
  uint64_t bytes_received() const { return bytes_received_.load(); }

  // Wait waits for the end of the download and returns what arrived; an
  // error if the connection failed (reset, timeout) before the end.
  absl::StatusOr<DownloadResult> Wait();

 private:
  SlowDownload(int fd, std::string what, absl::Time deadline)
      : fd_(fd), what_(std::move(what)), deadline_(deadline) {}
  void Read();

  int fd_;
  std::string what_;
  absl::Time deadline_;
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<bool> stop_{false};
  absl::StatusOr<DownloadResult> result_;
  std::thread thread_;
};

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_HTTP_CLIENT_H_
