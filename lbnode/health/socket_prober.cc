// SocketProber: one epoll thread runs every tcp, http(s), udp and dns probe.
//
// Ownership: State owns the epoll fd, the wake-up eventfd, both TLS
// contexts and the loop thread. Every running probe (its socket, TLS
// session, buffers and `done`) belongs to the loop thread alone, in
// `probes` keyed by a never-reused id that is also the epoll cookie, so a
// stale event or deadline for a finished probe finds nothing. Start() only
// appends to `incoming` under `mu` and writes the eventfd. Deadlines are a
// min-heap read by epoll_wait's timeout (entries of finished probes are
// dropped lazily when they reach the top).

#include "lbnode/health/socket_prober.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "re2/re2.h"

namespace anylb::health {
namespace {

using Clock = std::chrono::steady_clock;

// At most this much of an HTTP body is kept (and read) for matching.
constexpr size_t kMaxBodyBytes = 64 * 1024;
// An HTTP response head (status line and headers) longer than this fails.
constexpr size_t kMaxHeadBytes = 64 * 1024;
// A chunk-size or trailer line longer than this fails.
constexpr size_t kMaxChunkLineBytes = 4096;
constexpr size_t kReadChunkBytes = 16 * 1024;
constexpr int kMaxEvents = 256;
constexpr char kStoppedError[] = "checker stopped";

std::string ErrnoText(int error) { return std::strerror(error); }

// Quoted prints `text` (at most 80 bytes of it) C-escaped in quotes.
std::string Quoted(absl::string_view text) {
  const bool cut = text.size() > 80;
  return absl::StrCat("\"", absl::CEscape(text.substr(0, 80)),
                      cut ? "...\"" : "\"");
}

socklen_t ToSockaddr(const Endpoint& endpoint, sockaddr_storage* storage) {
  std::memset(storage, 0, sizeof(*storage));
  if (endpoint.is_v4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(endpoint.port());
    a->sin_addr.s_addr = endpoint.address().v4_network_order();
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(storage);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(endpoint.port());
  std::memcpy(&a->sin6_addr, endpoint.address().bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

// OpenSslErrors drains this thread's OpenSSL error queue into text.
std::string OpenSslErrors() {
  std::vector<std::string> parts;
  while (const unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    parts.push_back(reason != nullptr ? reason : absl::StrCat("error ", code));
  }
  return absl::StrJoin(parts, "; ");
}

std::string StatusRanges(const lb::v1::HttpCheck& http) {
  if (http.expected_statuses().empty()) return "200-299";
  std::vector<std::string> parts;
  for (const lb::v1::StatusRange& range : http.expected_statuses()) {
    const uint32_t max = std::max(range.min(), range.max());
    parts.push_back(range.min() == max ? absl::StrCat(max)
                                       : absl::StrCat(range.min(), "-", max));
  }
  return absl::StrJoin(parts, ", ");
}

bool StatusExpected(const lb::v1::HttpCheck& http, int status) {
  if (http.expected_statuses().empty()) return status >= 200 && status <= 299;
  for (const lb::v1::StatusRange& range : http.expected_statuses()) {
    const uint32_t max = std::max(range.min(), range.max());
    if (static_cast<uint32_t>(status) >= range.min() &&
        static_cast<uint32_t>(status) <= max) {
      return true;
    }
  }
  return false;
}

std::string RcodeName(uint32_t rcode) {
  static constexpr const char* kNames[] = {
      "NOERROR",  "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
      "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE"};
  if (rcode < std::size(kNames)) {
    return absl::StrCat(kNames[rcode], " (", rcode, ")");
  }
  return absl::StrCat(rcode);
}

// EncodeDnsQuestion appends QNAME, QTYPE and QCLASS=IN (RFC 1035 4.1.2).
absl::Status EncodeDnsQuestion(absl::string_view name, uint16_t type,
                               std::string* out) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "dns.query_name is empty: set the name to query, e.g. "
        "\"health.example.\"");
  }
  if (absl::EndsWith(name, ".")) name.remove_suffix(1);
  size_t encoded = 1;
  if (!name.empty()) {
    for (absl::string_view label : absl::StrSplit(name, '.')) {
      if (label.empty() || label.size() > 63) {
        return absl::InvalidArgumentError(
            absl::StrCat("dns.query_name ", Quoted(name),
                         ": each label must be 1-63 bytes (RFC 1035 2.3.4)"));
      }
      out->push_back(static_cast<char>(label.size()));
      out->append(label.data(), label.size());
      encoded += 1 + label.size();
    }
  }
  if (encoded > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dns.query_name ", Quoted(name), ": longer than 255 bytes encoded"));
  }
  out->push_back('\0');
  out->push_back(static_cast<char>(type >> 8));
  out->push_back(static_cast<char>(type & 0xff));
  out->push_back('\0');
  out->push_back('\1');
  return absl::OkStatus();
}

// HttpResponse parses one HTTP/1.1 response (RFC 9112) as bytes arrive:
// the status line, the headers, then the body by Content-Length, chunked
// transfer coding, or until the connection closes. It keeps at most
// kMaxBodyBytes of the body and counts the response complete once it has
// that much.
class HttpResponse {
 public:
  enum class Progress { kMore, kHead, kComplete, kError };

  explicit HttpResponse(bool head_request) : head_request_(head_request) {}

  // Feed adds bytes. kHead is returned once, when the head has just been
  // parsed (the caller may check the status, then Feed again with "").
  Progress Feed(absl::string_view data) {
    if (state_ == State::kHead) {
      head_.append(data.data(), data.size());
      const size_t end = head_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (head_.size() > kMaxHeadBytes) {
          return Fail(absl::StrCat("HTTP response head longer than ",
                                   kMaxHeadBytes, " bytes"));
        }
        return Progress::kMore;
      }
      std::string rest = head_.substr(end + 4);
      head_.resize(end);
      if (!ParseHead()) return Progress::kError;
      if (status_ >= 100 && status_ < 200 && status_ != 101) {
        // An interim response (100 Continue, 103 Early Hints): the real
        // one follows.
        head_.clear();
        headers_.clear();
        return Feed(rest);
      }
      raw_ = std::move(rest);
      head_parsed_ = true;
      return Progress::kHead;
    }
    raw_.append(data.data(), data.size());
    return ParseBody();
  }

  // Eof reports that the peer closed: completes a read-to-close body or
  // fails a truncated response.
  Progress Eof() {
    switch (state_) {
      case State::kHead:
        return Fail(head_.empty()
                        ? "connection closed before the HTTP response"
                        : "connection closed in the HTTP response head");
      case State::kToClose:
        state_ = State::kDone;
        return Progress::kComplete;
      case State::kLength:
        return Fail(absl::StrCat("connection closed after ", received_, " of ",
                                 content_length_, " body bytes"));
      case State::kDone:
        return Progress::kComplete;
      default:
        return Fail("connection closed in the chunked HTTP body");
    }
  }

  int status() const { return status_; }
  bool head_parsed() const { return head_parsed_; }
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  enum class State {
    kHead,
    kLength,
    kToClose,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDone,
    kError
  };

  Progress Fail(std::string error) {
    error_ = std::move(error);
    state_ = State::kError;
    return Progress::kError;
  }

  bool ParseHead() {
    std::vector<absl::string_view> lines = absl::StrSplit(head_, "\r\n");
    const absl::string_view status_line = lines[0];
    // "HTTP/1.1 200 OK": version, space, three digits, then space or end.
    if (!absl::StartsWith(status_line, "HTTP/1.") || status_line.size() < 12 ||
        status_line[8] != ' ' ||
        (status_line.size() > 12 && status_line[12] != ' ') ||
        !absl::SimpleAtoi(status_line.substr(9, 3), &status_) ||
        !absl::ascii_isdigit(status_line[9])) {
      Fail(absl::StrCat("malformed HTTP status line ", Quoted(status_line)));
      return false;
    }
    bool chunked = false;
    bool has_length = false;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) {
        Fail(absl::StrCat("malformed HTTP header line ", Quoted(lines[i])));
        return false;
      }
      const absl::string_view name = lines[i].substr(0, colon);
      const absl::string_view value =
          absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
        chunked = absl::EndsWithIgnoreCase(value, "chunked");
      } else if (absl::EqualsIgnoreCase(name, "Content-Length")) {
        uint64_t length = 0;
        if (!absl::SimpleAtoi(value, &length) ||
            (has_length && length != content_length_)) {
          Fail(absl::StrCat("bad HTTP Content-Length ", Quoted(value)));
          return false;
        }
        has_length = true;
        content_length_ = length;
      }
      headers_.emplace_back(name);
    }
    if (head_request_ || status_ == 204 || status_ == 304 ||
        (status_ >= 100 && status_ < 200)) {
      state_ = State::kDone;
    } else if (chunked) {
      state_ = State::kChunkSize;
    } else if (has_length) {
      state_ = content_length_ == 0 ? State::kDone : State::kLength;
    } else {
      state_ = State::kToClose;
    }
    return true;
  }

  void Keep(absl::string_view data) {
    const size_t room = kMaxBodyBytes - body_.size();
    body_.append(data.data(), std::min(room, data.size()));
  }

  Progress ParseBody() {
    size_t pos = 0;
    const absl::string_view raw = raw_;
    Progress progress = Progress::kMore;
    while (progress == Progress::kMore) {
      if (body_.size() >= kMaxBodyBytes) state_ = State::kDone;
      switch (state_) {
        case State::kDone:
          progress = Progress::kComplete;
          break;
        case State::kError:
          progress = Progress::kError;
          break;
        case State::kHead:  // Not reached: Feed parses the head first.
          progress = Fail("internal: HTTP body before head");
          break;
        case State::kToClose:
          Keep(raw.substr(pos));
          pos = raw.size();
          if (body_.size() < kMaxBodyBytes) goto out;
          break;
        case State::kLength: {
          const size_t take = static_cast<size_t>(std::min<uint64_t>(
              content_length_ - received_, raw.size() - pos));
          Keep(raw.substr(pos, take));
          pos += take;
          received_ += take;
          if (received_ == content_length_) {
            state_ = State::kDone;
          } else if (body_.size() < kMaxBodyBytes) {
            goto out;
          }
          break;
        }
        case State::kChunkSize:
        case State::kTrailers: {
          const size_t end = raw.find("\r\n", pos);
          if (end == absl::string_view::npos) {
            if (raw.size() - pos > kMaxChunkLineBytes) {
              progress = Fail("HTTP chunk-size or trailer line too long");
            }
            goto out;
          }
          const absl::string_view line = raw.substr(pos, end - pos);
          pos = end + 2;
          if (state_ == State::kTrailers) {
            if (line.empty()) state_ = State::kDone;
            break;
          }
          absl::string_view size_text = line.substr(0, line.find(';'));
          size_text = absl::StripAsciiWhitespace(size_text);
          uint64_t size = 0;
          if (size_text.empty() || size_text.size() > 15 ||
              !absl::SimpleHexAtoi(size_text, &size)) {
            progress = Fail(
                absl::StrCat("malformed HTTP chunk-size line ", Quoted(line)));
            break;
          }
          chunk_left_ = size;
          state_ = size == 0 ? State::kTrailers : State::kChunkData;
          break;
        }
        case State::kChunkData: {
          const size_t take = static_cast<size_t>(
              std::min<uint64_t>(chunk_left_, raw.size() - pos));
          Keep(raw.substr(pos, take));
          pos += take;
          chunk_left_ -= take;
          if (chunk_left_ == 0) {
            state_ = State::kChunkDataEnd;
          } else if (body_.size() < kMaxBodyBytes) {
            goto out;
          }
          break;
        }
        case State::kChunkDataEnd:
          if (raw.size() - pos < 2) goto out;
          if (raw.substr(pos, 2) != "\r\n") {
            progress = Fail("HTTP chunk not followed by CRLF");
            break;
          }
          pos += 2;
          state_ = State::kChunkSize;
          break;
      }
    }
  out:
    raw_.erase(0, pos);
    return progress;
  }

  const bool head_request_;
  State state_ = State::kHead;
  bool head_parsed_ = false;
  std::string head_;
  std::vector<std::string> headers_;
  std::string raw_;  // Received body bytes not parsed yet.
  int status_ = 0;
  uint64_t content_length_ = 0;
  uint64_t received_ = 0;
  uint64_t chunk_left_ = 0;
  std::string body_;
  std::string error_;
};

enum class Phase {
  kConnecting,
  kTlsHandshake,
  kSending,
  kReceiving,
};

const char* PhaseText(Phase phase) {
  switch (phase) {
    case Phase::kConnecting:
      return "connecting";
    case Phase::kTlsHandshake:
      return "in the TLS handshake";
    case Phase::kSending:
      return "sending the request";
    case Phase::kReceiving:
      return "waiting for the answer";
  }
  return "";
}

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

struct Probe {
  uint64_t id = 0;
  ProbeRequest request;
  ProbeDone done;
  Clock::time_point start;
  int fd = -1;
  Phase phase = Phase::kConnecting;
  uint32_t events = 0;  // Registered epoll interest; 0 = not registered.
  std::unique_ptr<SSL, SslDeleter> ssl;
  std::string out;  // Request bytes (http) or datagram (udp, dns).
  size_t sent = 0;
  std::unique_ptr<HttpResponse> response;
  std::unique_ptr<RE2> body_regex;
  uint16_t dns_id = 0;
  std::string dns_question;

  ~Probe() {
    ssl.reset();
    if (fd >= 0) close(fd);
  }
};

// Step is what driving a probe came to: wait for `events`, or finish.
struct Step {
  bool finished = false;
  uint32_t events = 0;
  ProbeResult result;

  static Step Wait(uint32_t events) { return Step{false, events, {}}; }
  static Step Pass() {
    Step step;
    step.finished = true;
    step.result.passed = true;
    return step;
  }
  static Step Fail(std::string error) {
    Step step;
    step.finished = true;
    step.result.error = std::move(error);
    return step;
  }
};

}  // namespace

struct SocketProber::State {
  int epoll_fd = -1;
  int wake_fd = -1;
  std::unique_ptr<SSL_CTX, SslCtxDeleter> tls_verify;
  std::unique_ptr<SSL_CTX, SslCtxDeleter> tls_no_verify;
  std::thread thread;

  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::vector<std::pair<ProbeRequest, ProbeDone>> incoming ABSL_GUARDED_BY(mu);

  // Loop thread only.
  uint64_t next_id = 1;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Probe>> probes;
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);
  using Deadline = std::pair<Clock::time_point, uint64_t>;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>>
      deadlines;

  ~State() {
    if (epoll_fd >= 0) close(epoll_fd);
    if (wake_fd >= 0) close(wake_fd);
  }

  void Loop();
  void Begin(ProbeRequest request, ProbeDone done);
  void Finish(uint64_t id, Step step);
  void OnEvent(uint64_t id, uint32_t events);
  void Apply(Probe& probe, Step step);
  Step Open(Probe& probe, int type);
  Step Drive(Probe& probe, uint32_t events);
  Step DriveHttp(Probe& probe);
  Step DriveTls(Probe& probe);
  Step OnHttpBytes(Probe& probe, absl::string_view data, bool eof);
  Step DriveDatagram(Probe& probe, uint32_t events);
  Step CheckDns(Probe& probe, absl::string_view answer, bool* ignore);
};

absl::StatusOr<std::unique_ptr<SocketProber>> SocketProber::Create() {
  auto state = std::make_unique<State>();
  state->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (state->epoll_fd < 0) {
    return absl::ErrnoToStatus(errno, "health checks: epoll_create1");
  }
  state->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (state->wake_fd < 0) {
    return absl::ErrnoToStatus(errno, "health checks: eventfd");
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = 0;  // Probe ids start at 1.
  if (epoll_ctl(state->epoll_fd, EPOLL_CTL_ADD, state->wake_fd, &event) != 0) {
    return absl::ErrnoToStatus(errno, "health checks: epoll_ctl(eventfd)");
  }
  for (const bool verify : {true, false}) {
    std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx(
        SSL_CTX_new(TLS_client_method()));
    if (ctx == nullptr) {
      return absl::InternalError(absl::StrCat(
          "health checks: creating the TLS context: ", OpenSslErrors()));
    }
    // Servers that close without close_notify end the body (read to close).
    SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (verify) {
      if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("health checks: loading the system's trusted "
                         "certificates (SSL_CTX_set_default_verify_paths): ",
                         OpenSslErrors()));
      }
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
      state->tls_verify = std::move(ctx);
    } else {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
      state->tls_no_verify = std::move(ctx);
    }
  }
  std::unique_ptr<SocketProber> prober(new SocketProber());
  State* raw = state.get();
  prober->state_ = std::move(state);
  raw->thread = std::thread([raw] { raw->Loop(); });
  return prober;
}

SocketProber::~SocketProber() {
  if (state_ == nullptr) return;
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  const uint64_t one = 1;
  (void)!write(state_->wake_fd, &one, sizeof(one));
  state_->thread.join();
}

void SocketProber::Start(const ProbeRequest& request, ProbeDone done) {
  {
    absl::MutexLock lock(&state_->mu);
    if (!state_->stopping) {
      state_->incoming.emplace_back(request, std::move(done));
      const uint64_t one = 1;
      (void)!write(state_->wake_fd, &one, sizeof(one));
      return;
    }
  }
  ProbeResult result;
  result.error = kStoppedError;
  std::move(done)(std::move(result));
}

void SocketProber::State::Loop() {
  // A peer that closed makes OpenSSL's write() raise SIGPIPE in this thread;
  // blocked here, the write fails with EPIPE instead.
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
  epoll_event events[kMaxEvents];
  std::vector<std::pair<ProbeRequest, ProbeDone>> batch;
  for (;;) {
    int timeout_ms = -1;
    while (!deadlines.empty() && !probes.contains(deadlines.top().second)) {
      deadlines.pop();
    }
    if (!deadlines.empty()) {
      const auto wait = deadlines.top().first - Clock::now();
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    }
    const int n = epoll_wait(epoll_fd, events, kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) {
      // Not expected (EBADF/EINVAL would be a bug); avoid a busy loop.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    bool stop = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 != 0) continue;
      uint64_t count;
      (void)!read(wake_fd, &count, sizeof(count));
      absl::MutexLock lock(&mu);
      batch.swap(incoming);
      stop = stopping;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 != 0)
        OnEvent(events[i].data.u64, events[i].events);
    }
    for (auto& [request, done] : batch) {
      Begin(std::move(request), std::move(done));
    }
    batch.clear();
    const Clock::time_point now = Clock::now();
    while (!deadlines.empty() && deadlines.top().first <= now) {
      const uint64_t id = deadlines.top().second;
      deadlines.pop();
      auto it = probes.find(id);
      if (it == probes.end()) continue;
      Probe& probe = *it->second;
      Finish(id, Step::Fail(
                     absl::StrCat("timed out after ",
                                  absl::FormatDuration(probe.request.timeout),
                                  " ", PhaseText(probe.phase), " (",
                                  probe.request.target.ToString(), ")")));
    }
    if (stop) break;
  }
  // Stopping: every probe, running or queued, ends with "checker stopped".
  std::vector<uint64_t> ids;
  ids.reserve(probes.size());
  for (const auto& [id, probe] : probes) ids.push_back(id);
  for (uint64_t id : ids) Finish(id, Step::Fail(kStoppedError));
  {
    absl::MutexLock lock(&mu);
    batch.swap(incoming);
  }
  for (auto& [request, done] : batch) {
    ProbeResult result;
    result.error = kStoppedError;
    std::move(done)(std::move(result));
  }
}

namespace {

// HostHeader is the Host header value: check.http.host, or the target
// address (bracketed for IPv6) with the port unless it is the scheme's.
std::string HostHeader(const ProbeRequest& request) {
  const lb::v1::HttpCheck& http = request.check.http();
  if (!http.host().empty()) return http.host();
  const Endpoint& target = request.target;
  const uint16_t default_port = http.tls() ? 443 : 80;
  if (target.port() == default_port) {
    return target.is_v6() ? absl::StrCat("[", target.address().ToString(), "]")
                          : target.address().ToString();
  }
  return target.ToString();
}

bool IsToken(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(c) && std::strchr("!#$%&'*+-.^_`|~", c) == nullptr)
      return false;
  }
  return true;
}

bool HasControl(absl::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// BuildHttpRequest validates check.http and writes the request bytes.
absl::Status BuildHttpRequest(const ProbeRequest& request, std::string* out) {
  const lb::v1::HttpCheck& http = request.check.http();
  const std::string method = http.method().empty() ? "GET" : http.method();
  if (!IsToken(method)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http.method ", Quoted(method), " is not an HTTP method token"));
  }
  const std::string path = http.path().empty() ? "/" : http.path();
  if (path[0] != '/' || HasControl(path) || absl::StrContains(path, ' ')) {
    return absl::InvalidArgumentError(
        absl::StrCat("http.path ", Quoted(path),
                     " must start with \"/\" and hold no spaces or control "
                     "characters (percent-encode them)"));
  }
  if (HasControl(http.host()) || absl::StrContains(http.host(), ' ')) {
    return absl::InvalidArgumentError(
        absl::StrCat("http.host ", Quoted(http.host()),
                     " holds spaces or control characters"));
  }
  *out = absl::StrCat(method, " ", path,
                      " HTTP/1.1\r\nHost: ", HostHeader(request),
                      "\r\nUser-Agent: anylb-health\r\nAccept: */*\r\n"
                      "Connection: close\r\n\r\n");
  return absl::OkStatus();
}

}  // namespace

void SocketProber::State::Begin(ProbeRequest request, ProbeDone done) {
  auto owned = std::make_unique<Probe>();
  Probe& probe = *owned;
  probe.id = next_id++;
  probe.request = std::move(request);
  probe.done = std::move(done);
  probe.start = Clock::now();
  probes.emplace(probe.id, std::move(owned));
  const lb::v1::HealthCheck& check = probe.request.check;
  if (probe.request.timeout <= absl::ZeroDuration()) {
    Finish(probe.id,
           Step::Fail(absl::StrCat("probe timeout ",
                                   absl::FormatDuration(probe.request.timeout),
                                   " is not positive (health_check.timeout)")));
    return;
  }
  // A day bounds the deadline arithmetic (an infinite timeout would
  // overflow the clock).
  deadlines.emplace(probe.start + absl::ToChronoNanoseconds(std::min(
                                      probe.request.timeout, absl::Hours(24))),
                    probe.id);
  Step step;
  switch (check.check_case()) {
    case lb::v1::HealthCheck::CHECK_NOT_SET:
      step = Step::Fail(
          "health_check has no check kind (tcp, http, grpc, dns, udp or exec)");
      break;
    case lb::v1::HealthCheck::kGrpc:
    case lb::v1::HealthCheck::kExec:
      step = Step::Fail(absl::StrCat(
          "internal: the socket prober runs tcp, http, udp and dns checks, "
          "not ",
          check.has_grpc() ? "grpc" : "exec"));
      break;
    case lb::v1::HealthCheck::kTcp:
      step = Open(probe, SOCK_STREAM);
      break;
    case lb::v1::HealthCheck::kHttp: {
      const lb::v1::HttpCheck& http = check.http();
      if (absl::Status status = BuildHttpRequest(probe.request, &probe.out);
          !status.ok()) {
        step = Step::Fail(std::string(status.message()));
        break;
      }
      if (!http.body_regex().empty()) {
        probe.body_regex = std::make_unique<RE2>(http.body_regex(), RE2::Quiet);
        if (!probe.body_regex->ok()) {
          step = Step::Fail(absl::StrCat("http.body_regex ",
                                         Quoted(http.body_regex()), ": ",
                                         probe.body_regex->error()));
          break;
        }
      }
      const std::string& method = http.method();
      probe.response = std::make_unique<HttpResponse>(
          absl::EqualsIgnoreCase(method, "HEAD"));
      step = Open(probe, SOCK_STREAM);
      break;
    }
    case lb::v1::HealthCheck::kUdp:
      probe.out = check.udp().payload();
      step = Open(probe, SOCK_DGRAM);
      break;
    case lb::v1::HealthCheck::kDns: {
      const lb::v1::DnsCheck& dns = check.dns();
      const uint32_t type = dns.query_type() == 0 ? 1 : dns.query_type();
      if (type > 0xffff) {
        step = Step::Fail(
            absl::StrCat("dns.query_type ", type, " is above 65535"));
        break;
      }
      if (absl::Status status =
              EncodeDnsQuestion(dns.query_name(), static_cast<uint16_t>(type),
                                &probe.dns_question);
          !status.ok()) {
        step = Step::Fail(std::string(status.message()));
        break;
      }
      uint16_t id = 0;
      if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id)) {
        id = static_cast<uint16_t>(Clock::now().time_since_epoch().count() ^
                                   probe.id);
      }
      probe.dns_id = id;
      // Header (RFC 1035 4.1.1): ID, flags 0 (a standard query, RD=0),
      // QDCOUNT=1, no other records.
      probe.out.assign({static_cast<char>(id >> 8),
                        static_cast<char>(id & 0xff), 0, 0, 0, 1, 0, 0, 0, 0, 0,
                        0});
      probe.out += probe.dns_question;
      step = Open(probe, SOCK_DGRAM);
      break;
    }
  }
  if (!step.finished && step.events == 0) {  // A kind added to the proto.
    step = Step::Fail(absl::StrCat("health_check kind ", check.check_case(),
                                   " is not supported by this lbnode"));
  }
  Apply(probe, std::move(step));
}

void SocketProber::State::Finish(uint64_t id, Step step) {
  auto node = probes.extract(id);
  if (node.empty()) return;
  std::unique_ptr<Probe> probe = std::move(node.mapped());
  step.result.latency = absl::FromChrono(Clock::now() - probe->start);
  ProbeDone done = std::move(probe->done);
  probe.reset();  // Closes the socket (and leaves the epoll set) first.
  std::move(done)(std::move(step.result));
}

void SocketProber::State::Apply(Probe& probe, Step step) {
  if (step.finished) {
    Finish(probe.id, std::move(step));
    return;
  }
  if (step.events == probe.events) return;
  epoll_event event{};
  event.events = step.events;
  event.data.u64 = probe.id;
  const int op = probe.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(epoll_fd, op, probe.fd, &event) != 0) {
    Finish(probe.id, Step::Fail(absl::StrCat("epoll_ctl: ", ErrnoText(errno))));
    return;
  }
  probe.events = step.events;
}

void SocketProber::State::OnEvent(uint64_t id, uint32_t events) {
  auto it = probes.find(id);
  if (it == probes.end()) return;
  Probe& probe = *it->second;
  Apply(probe, Drive(probe, events));
}

Step SocketProber::State::Open(Probe& probe, int type) {
  const Endpoint& target = probe.request.target;
  probe.fd =
      socket(target.address().af(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe.fd < 0) {
    return Step::Fail(absl::StrCat("socket: ", ErrnoText(errno)));
  }
  sockaddr_storage address;
  const socklen_t length = ToSockaddr(target, &address);
  if (connect(probe.fd, reinterpret_cast<const sockaddr*>(&address), length) !=
          0 &&
      errno != EINPROGRESS) {
    return Step::Fail(
        absl::StrCat("connect ", target.ToString(), ": ", ErrnoText(errno)));
  }
  if (type == SOCK_DGRAM) {
    // A connected UDP socket: the kernel reports ICMP errors on it.
    if (send(probe.fd, probe.out.data(), probe.out.size(), MSG_NOSIGNAL) < 0) {
      return Step::Fail(
          absl::StrCat("udp ", target.ToString(), ": ", ErrnoText(errno)));
    }
    probe.phase = Phase::kReceiving;
    return Step::Wait(EPOLLIN);
  }
  probe.phase = Phase::kConnecting;
  return Step::Wait(EPOLLOUT);
}

Step SocketProber::State::Drive(Probe& probe, uint32_t events) {
  const lb::v1::HealthCheck& check = probe.request.check;
  if (check.has_udp() || check.has_dns()) return DriveDatagram(probe, events);
  if (probe.phase == Phase::kConnecting) {
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(probe.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      error = errno;
    }
    if (error != 0) {
      return Step::Fail(absl::StrCat(
          "connect ", probe.request.target.ToString(), ": ", ErrnoText(error)));
    }
    if ((events & EPOLLOUT) == 0) return Step::Wait(EPOLLOUT);
    if (check.has_tcp()) return Step::Pass();
    if (!check.http().tls()) {
      probe.phase = Phase::kSending;
      return DriveHttp(probe);
    }
    const lb::v1::HttpCheck& http = check.http();
    SSL_CTX* ctx =
        http.verify_certificate() ? tls_verify.get() : tls_no_verify.get();
    probe.ssl.reset(SSL_new(ctx));
    if (probe.ssl == nullptr || SSL_set_fd(probe.ssl.get(), probe.fd) != 1) {
      return Step::Fail(absl::StrCat("TLS setup: ", OpenSslErrors()));
    }
    SSL_set_connect_state(probe.ssl.get());
    std::string name = !http.sni().empty() ? http.sni()
                       : !http.host().empty()
                           ? http.host()
                           : probe.request.target.address().ToString();
    const bool is_address = IpAddress::Parse(name).ok();
    // RFC 6066 section 3: no address literals in server_name.
    if (!is_address) SSL_set_tlsext_host_name(probe.ssl.get(), name.c_str());
    if (http.verify_certificate()) {
      const int ok = is_address
                         ? X509_VERIFY_PARAM_set1_ip_asc(
                               SSL_get0_param(probe.ssl.get()), name.c_str())
                         : SSL_set1_host(probe.ssl.get(), name.c_str());
      if (ok != 1) {
        return Step::Fail(absl::StrCat("TLS: bad name to verify ", Quoted(name),
                                       ": ", OpenSslErrors()));
      }
    }
    probe.phase = Phase::kTlsHandshake;
    return DriveTls(probe);
  }
  return probe.ssl != nullptr ? DriveTls(probe) : DriveHttp(probe);
}

Step SocketProber::State::DriveHttp(Probe& probe) {
  const std::string target = probe.request.target.ToString();
  while (probe.phase == Phase::kSending) {
    const ssize_t n = send(probe.fd, probe.out.data() + probe.sent,
                           probe.out.size() - probe.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::Wait(EPOLLOUT);
      if (errno == EINTR) continue;
      return Step::Fail(absl::StrCat("sending the HTTP request to ", target,
                                     ": ", ErrnoText(errno)));
    }
    probe.sent += static_cast<size_t>(n);
    if (probe.sent == probe.out.size()) probe.phase = Phase::kReceiving;
  }
  char buffer[kReadChunkBytes];
  for (;;) {
    const ssize_t n = recv(probe.fd, buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::Wait(EPOLLIN);
      if (errno == EINTR) continue;
      return Step::Fail(
          absl::StrCat("reading from ", target, ": ", ErrnoText(errno)));
    }
    Step step = OnHttpBytes(
        probe, absl::string_view(buffer, static_cast<size_t>(n)), n == 0);
    if (step.finished) return step;
  }
}

Step SocketProber::State::DriveTls(Probe& probe) {
  SSL* ssl = probe.ssl.get();
  const std::string target = probe.request.target.ToString();
  // TlsFailure names what went wrong in an SSL_* call that returned `ret`.
  auto failure = [&](int ret, absl::string_view doing) -> Step {
    const int error = SSL_get_error(ssl, ret);
    if (error == SSL_ERROR_WANT_READ) return Step::Wait(EPOLLIN);
    if (error == SSL_ERROR_WANT_WRITE) return Step::Wait(EPOLLOUT);
    const int saved_errno = errno;
    const long verify = SSL_get_verify_result(ssl);
    if (probe.phase == Phase::kTlsHandshake && verify != X509_V_OK &&
        probe.request.check.http().verify_certificate()) {
      ERR_clear_error();
      return Step::Fail(absl::StrCat("TLS handshake with ", target,
                                     ": certificate verify failed: ",
                                     X509_verify_cert_error_string(verify)));
    }
    std::string why = OpenSslErrors();
    if (why.empty()) {
      why = error == SSL_ERROR_SYSCALL && saved_errno != 0
                ? ErrnoText(saved_errno)
                : "connection closed";
    }
    return Step::Fail(absl::StrCat(doing, " ", target, ": ", why));
  };
  if (probe.phase == Phase::kTlsHandshake) {
    ERR_clear_error();
    const int ret = SSL_connect(ssl);
    if (ret != 1) return failure(ret, "TLS handshake with");
    probe.phase = Phase::kSending;
  }
  while (probe.phase == Phase::kSending) {
    ERR_clear_error();
    const int ret = SSL_write(ssl, probe.out.data() + probe.sent,
                              static_cast<int>(probe.out.size() - probe.sent));
    if (ret <= 0) return failure(ret, "sending the HTTP request over TLS to");
    probe.sent += static_cast<size_t>(ret);
    if (probe.sent == probe.out.size()) probe.phase = Phase::kReceiving;
  }
  char buffer[kReadChunkBytes];
  for (;;) {
    ERR_clear_error();
    const int ret = SSL_read(ssl, buffer, sizeof(buffer));
    if (ret <= 0) {
      const int error = SSL_get_error(ssl, ret);
      if (error == SSL_ERROR_ZERO_RETURN ||
          (error == SSL_ERROR_SYSCALL && errno == 0 && ERR_peek_error() == 0)) {
        return OnHttpBytes(probe, "", /*eof=*/true);
      }
      return failure(ret, "reading over TLS from");
    }
    Step step =
        OnHttpBytes(probe, absl::string_view(buffer, static_cast<size_t>(ret)),
                    /*eof=*/false);
    if (step.finished) return step;
  }
}

Step SocketProber::State::OnHttpBytes(Probe& probe, absl::string_view data,
                                      bool eof) {
  HttpResponse& response = *probe.response;
  const lb::v1::HttpCheck& http = probe.request.check.http();
  HttpResponse::Progress progress = eof ? response.Eof() : response.Feed(data);
  if (progress == HttpResponse::Progress::kHead) {
    if (!StatusExpected(http, response.status())) {
      return Step::Fail(absl::StrCat("HTTP status ", response.status(),
                                     ", want ", StatusRanges(http)));
    }
    progress = response.Feed("");
  }
  switch (progress) {
    case HttpResponse::Progress::kMore:
    case HttpResponse::Progress::kHead:
      return Step::Wait(EPOLLIN);
    case HttpResponse::Progress::kError:
      return Step::Fail(response.error());
    case HttpResponse::Progress::kComplete:
      break;
  }
  if (!http.body_contains().empty() &&
      !absl::StrContains(response.body(), http.body_contains())) {
    return Step::Fail(
        absl::StrCat("body does not contain ", Quoted(http.body_contains())));
  }
  if (probe.body_regex != nullptr &&
      !RE2::PartialMatch(response.body(), *probe.body_regex)) {
    return Step::Fail(
        absl::StrCat("body does not match ", Quoted(http.body_regex())));
  }
  return Step::Pass();
}

Step SocketProber::State::DriveDatagram(Probe& probe, uint32_t events) {
  (void)events;
  const std::string target = probe.request.target.ToString();
  for (;;) {
    const ssize_t n = recv(probe.fd, read_buffer.data(), read_buffer.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::Wait(EPOLLIN);
      if (errno == EINTR) continue;
      if (errno == ECONNREFUSED) {
        return Step::Fail(absl::StrCat(
            "udp ", target, ": connection refused (ICMP port unreachable)"));
      }
      return Step::Fail(absl::StrCat("udp ", target, ": ", ErrnoText(errno)));
    }
    const absl::string_view answer(read_buffer.data(), static_cast<size_t>(n));
    if (probe.request.check.has_dns()) {
      bool ignore = false;
      Step step = CheckDns(probe, answer, &ignore);
      if (!ignore) return step;
      continue;  // Not our answer (a late or spoofed one): keep waiting.
    }
    const std::string& expected = probe.request.check.udp().expected_response();
    if (!absl::StartsWith(answer, expected)) {
      return Step::Fail(absl::StrCat("answer ", Quoted(answer),
                                     " does not start with ",
                                     Quoted(expected)));
    }
    return Step::Pass();
  }
}

Step SocketProber::State::CheckDns(Probe& probe, absl::string_view answer,
                                   bool* ignore) {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(answer[i]); };
  if (answer.size() < 2 ||
      (byte(0) << 8 | byte(1)) != static_cast<int>(probe.dns_id)) {
    *ignore = true;
    return Step::Wait(EPOLLIN);
  }
  const lb::v1::DnsCheck& dns = probe.request.check.dns();
  if (answer.size() < 12) {
    return Step::Fail(absl::StrCat("DNS answer of ", answer.size(),
                                   " bytes is shorter than a DNS header"));
  }
  if ((byte(2) & 0x80) == 0) {
    return Step::Fail("DNS answer has QR unset (a query, not a response)");
  }
  const uint32_t rcode = byte(3) & 0x0f;
  if (rcode != dns.expected_rcode()) {
    return Step::Fail(absl::StrCat("DNS rcode ", RcodeName(rcode), ", want ",
                                   RcodeName(dns.expected_rcode())));
  }
  const std::string& question = probe.dns_question;
  const size_t name_length = question.size() - 4;
  const int qdcount = byte(4) << 8 | byte(5);
  const absl::string_view echoed = answer.substr(12, question.size());
  if (qdcount != 1 || echoed.size() != question.size() ||
      !absl::EqualsIgnoreCase(
          echoed.substr(0, name_length),
          absl::string_view(question).substr(0, name_length)) ||
      echoed.substr(name_length) !=
          absl::string_view(question).substr(name_length)) {
    return Step::Fail(absl::StrCat("DNS answer does not echo the question (",
                                   Quoted(dns.query_name()), ")"));
  }
  return Step::Pass();
}

}  // namespace anylb::health
