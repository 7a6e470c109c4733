#include "tests/netns/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace anylb::lab {
namespace {

absl::string_view Absl(std::string_view text) {
  return {text.data(), text.size()};
}

socklen_t ToSockaddr(const IpAddress& address, int port,
                     sockaddr_storage* storage) {
  std::memset(storage, 0, sizeof(*storage));
  if (address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&sin->sin_addr, address.bytes().data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(storage);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(static_cast<uint16_t>(port));
  std::memcpy(&sin6->sin6_addr, address.bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

int RemainingMs(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

// Connect makes a non-blocking TCP socket in `ns`, connects it before
// `deadline` and sends `request`. Returns the socket.
absl::StatusOr<int> Connect(const Netns& ns, const IpAddress& address, int port,
                            const std::optional<IpAddress>& source,
                            std::string_view request, absl::Time deadline,
                            const std::string& what) {
  int fd = -1;
  RETURN_IF_ERROR(ns.RunInThread([&]() -> absl::Status {
    fd = socket(address.af(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return absl::ErrnoToStatus(errno, absl::StrCat(what, ": socket"));
    return absl::OkStatus();
  }));
  auto fail = [&](int error, std::string_view step) {
    close(fd);
    return absl::ErrnoToStatus(error, absl::StrCat(what, ": ", Absl(step)));
  };
  sockaddr_storage storage;
  if (source.has_value()) {
    socklen_t length = ToSockaddr(*source, 0, &storage);
    if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
      return fail(errno, absl::StrCat("binding ", source->ToString()));
    }
  }
  socklen_t length = ToSockaddr(address, port, &storage);
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 &&
      errno != EINPROGRESS) {
    return fail(errno, "connect");
  }
  pollfd pfd = {fd, POLLOUT, 0};
  int ready = poll(&pfd, 1, RemainingMs(deadline));
  if (ready == 0) {
    close(fd);
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": no connection before the timeout"));
  }
  int error = 0;
  socklen_t error_length = sizeof(error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length);
  if (ready < 0 || error != 0) {
    return fail(ready < 0 ? errno : error, "connect");
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return fail(errno, "sending the request");
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  return fd;
}

std::string Request(const IpAddress& address, std::string_view path) {
  std::string host = address.is_v6()
                         ? absl::StrCat("[", address.ToString(), "]")
                         : address.ToString();
  return absl::StrCat("GET ", Absl(path), " HTTP/1.0\r\nHost: ", host,
                      "\r\nConnection: close\r\n\r\n");
}

std::string What(const IpAddress& address, int port, std::string_view path) {
  return absl::StrCat("GET http://",
                      address.is_v6()
                          ? absl::StrCat("[", address.ToString(), "]")
                          : address.ToString(),
                      ":", port, Absl(path));
}

// ParseHead splits a response head ("HTTP/1.1 200 OK\r\nA: b\r\n...") into
// status code and header lines.
absl::Status ParseHead(std::string_view head, const std::string& what,
                       HttpResponse* response) {
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  std::vector<absl::string_view> parts =
      absl::StrSplit(Absl(status_line), ' ', absl::SkipEmpty());
  if (parts.size() < 2 || !absl::StartsWith(parts[0], "HTTP/") ||
      !absl::SimpleAtoi(parts[1], &response->status_code)) {
    return absl::DataLossError(absl::StrCat(what, ": not an HTTP response: \"",
                                            Absl(status_line), "\""));
  }
  response->headers =
      line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  return absl::OkStatus();
}

}  // namespace

uint64_t Fnv1a64Update(uint64_t hash, std::span<const char> bytes) {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::string HttpResponse::Header(std::string_view name) const {
  for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    if (absl::EqualsIgnoreCase(line.substr(0, colon), Absl(name))) {
      return static_cast<std::string>(
          absl::StripAsciiWhitespace(line.substr(colon + 1)));
    }
  }
  return "";
}

absl::StatusOr<HttpResponse> HttpClient::Get(const IpAddress& address, int port,
                                             std::string_view path) const {
  absl::Time deadline = absl::Now() + timeout_;
  std::string what = What(address, port, path);
  ASSIGN_OR_RETURN(int fd, Connect(ns_, address, port, source_,
                                   Request(address, path), deadline, what));
  std::string data;
  absl::Status status;
  for (;;) {
    pollfd pfd = {fd, POLLIN, 0};
    int ready = poll(&pfd, 1, RemainingMs(deadline));
    if (ready == 0) {
      status = absl::DeadlineExceededError(
          absl::StrCat(what, ": response incomplete at the timeout (",
                       data.size(), " bytes read)"));
      break;
    }
    char buffer[16384];
    ssize_t n = ready < 0 ? -1 : read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      status = absl::ErrnoToStatus(errno, absl::StrCat(what, ": reading"));
      break;
    }
    data.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  RETURN_IF_ERROR(status);
  size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat(
        what, ": connection closed before the end of the headers (",
        data.size(), " bytes)"));
  }
  HttpResponse response;
  RETURN_IF_ERROR(
      ParseHead(std::string_view(data).substr(0, head_end), what, &response));
  response.body = data.substr(head_end + 4);
  return response;
}

absl::StatusOr<std::unique_ptr<SlowDownload>> SlowDownload::Start(
    const Netns& ns, const IpAddress& address, int port, std::string_view path,
    absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::string what = What(address, port, path);
  ASSIGN_OR_RETURN(int fd, Connect(ns, address, port, std::nullopt,
                                   Request(address, path), deadline, what));
  std::unique_ptr<SlowDownload> download(
      new SlowDownload(fd, std::move(what), deadline));
  download->thread_ = std::thread([d = download.get()] { d->Read(); });
  return download;
}

void SlowDownload::Read() {
  std::string head;
  DownloadResult result;
  bool in_body = false;
  uint64_t content_length = 0;
  bool has_length = false;
  uint64_t hash = kFnv1a64Seed;
  absl::Status status;
  for (;;) {
    if (stop_.load()) {
      status = absl::CancelledError(absl::StrCat(what_, ": abandoned"));
      break;
    }
    pollfd pfd = {fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, std::min(RemainingMs(deadline_), 100));
    if (ready == 0) {
      if (absl::Now() >= deadline_) {
        status = absl::DeadlineExceededError(
            absl::StrCat(what_, ": download incomplete at the timeout (",
                         result.body_bytes, " body bytes)"));
        break;
      }
      continue;
    }
    char buffer[16384];
    ssize_t n = ready < 0 ? -1 : read(fd_, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      status = absl::ErrnoToStatus(
          errno, absl::StrCat(what_, ": reading after ", result.body_bytes,
                              " body bytes"));
      break;
    }
    bytes_received_ += static_cast<uint64_t>(n);
    std::string_view chunk(buffer, static_cast<size_t>(n));
    if (!in_body) {
      head.append(chunk);
      size_t head_end = head.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      HttpResponse response;
      status = ParseHead(std::string_view{head}.substr(0, head_end), what_,
                         &response);
      if (!status.ok()) break;
      result.status_code = response.status_code;
      result.server = response.Header("X-Server");
      has_length =
          absl::SimpleAtoi(response.Header("Content-Length"), &content_length);
      in_body = true;
      chunk = std::string_view{head}.substr(head_end + 4);
      hash = Fnv1a64Update(hash, chunk);
      result.body_bytes += chunk.size();
      continue;
    }
    hash = Fnv1a64Update(hash, chunk);
    result.body_bytes += chunk.size();
  }
  close(fd_);
  result.checksum = hash;
  result.complete =
      in_body && has_length && result.body_bytes == content_length;
  if (status.ok()) {
    result_ = result;
  } else {
    result_ = status;
  }
}

absl::StatusOr<DownloadResult> SlowDownload::Wait() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

SlowDownload::~SlowDownload() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace anylb::lab
