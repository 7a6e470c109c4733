#include "routing/fpm/fpm_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace anylb::routing::fpm {
namespace {

constexpr int kIdlePollMilliseconds = 100;
constexpr size_t kReadChunkBytes = 64 * 1024;
// Reads per wake-up before the loop looks at timers and the listener again.
constexpr int kReadsPerWakeup = 64;

absl::Status ErrnoStatus(int error, const std::string& what) {
  return absl::ErrnoToStatus(error, what);
}

std::string PeerName(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (address.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    port = ntohs(a->sin_port);
    return absl::StrCat(text, ":", port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&address);
  inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
  port = ntohs(a->sin6_port);
  return absl::StrCat("[", text, "]:", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FpmServer>> FpmServer::Create(
    FpmServerOptions options) {
  const Endpoint& listen = options.listen;
  const std::string where =
      absl::StrCat("the FPM server on ", listen.ToString());
  const int fd = socket(listen.address().af(),
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", where));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage address{};
  socklen_t length;
  if (listen.is_v4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(&address);
    a->sin_family = AF_INET;
    a->sin_port = htons(listen.port());
    a->sin_addr.s_addr = listen.address().v4_network_order();
    length = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&address);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(listen.port());
    std::memcpy(&a->sin6_addr, listen.address().bytes().data(), 16);
    length = sizeof(sockaddr_in6);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    const int error = errno;
    close(fd);
    return ErrnoStatus(
        error, absl::StrCat("binding ", where,
                            error == EADDRINUSE
                                ? " (another FPM server listens there: set "
                                  "--fpm_listen to a free address)"
                                : ""));
  }
  if (::listen(fd, 4) != 0) {
    const int error = errno;
    close(fd);
    return ErrnoStatus(error, absl::StrCat("listening for ", where));
  }
  length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const uint16_t port =
      ntohs(address.ss_family == AF_INET
                ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    const int error = errno;
    close(fd);
    return ErrnoStatus(error, "creating the FPM server's eventfd");
  }
  std::unique_ptr<FpmServer> server(new FpmServer(
      std::move(options), fd, wake, Endpoint(listen.address(), port)));
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

FpmServer::FpmServer(FpmServerOptions options, int listen_fd, int wake_fd,
                     Endpoint endpoint)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      endpoint_(endpoint),
      table_(std::make_shared<const netlink::RouteTable>()) {}

FpmServer::~FpmServer() {
  stopping_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  if (connection_fd_ >= 0) close(connection_fd_);
  close(listen_fd_);
  close(wake_fd_);
}

std::shared_ptr<const netlink::RouteTable> FpmServer::table() const {
  absl::MutexLock lock(&mu_);
  return table_;
}

FpmServerStats FpmServer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void FpmServer::Accept() {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&address),
                         &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      LB_LOG(kWarning) << ErrnoStatus(errno, "accepting an FPM connection");
    }
    return;
  }
  const std::string peer = PeerName(address);
  if (connection_fd_ >= 0) {
    LB_LOG(kWarning) << "FPM: a new connection from " << peer
                     << " replaces the one from " << peer_;
    CloseConnection(std::nullopt, "replaced by a newer connection");
    absl::MutexLock lock(&mu_);
    ++stats_.replaced_connections;
  }
  connection_fd_ = fd;
  peer_ = peer;
  reader_ = FrameReader();
  fib_.BeginResync();
  resync_pending_ = true;
  last_activity_ = absl::Now();
  LB_LOG(kInfo) << "FPM: zebra connected from " << peer << "; resync started ("
                << fib_.route_count() << " routes kept until it completes)";
  absl::MutexLock lock(&mu_);
  ++stats_.connections;
  stats_.connected = true;
  stats_.peer = peer;
}

void FpmServer::CloseConnection(std::optional<FpmError> error,
                                const std::string& why) {
  if (connection_fd_ < 0) return;
  close(connection_fd_);
  connection_fd_ = -1;
  resync_pending_ = false;
  if (error.has_value()) {
    LB_LOG(kWarning) << "FPM: closing the connection from " << peer_ << " ("
                     << FpmErrorName(*error) << "): " << why;
  } else {
    LB_LOG(kInfo) << "FPM: connection from " << peer_ << " closed: " << why;
  }
  absl::MutexLock lock(&mu_);
  stats_.connected = false;
  stats_.peer.clear();
  if (error.has_value()) {
    ++stats_.errors[static_cast<size_t>(*error)];
    stats_.last_error =
        absl::StrCat(std::string(FpmErrorName(*error)), ": ", why);
  }
}

void FpmServer::ReadConnection() {
  std::vector<uint8_t> chunk(kReadChunkBytes);
  for (int i = 0; i < kReadsPerWakeup && connection_fd_ >= 0; ++i) {
    const ssize_t n = read(connection_fd_, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      CloseConnection(FpmError::kSocket,
                      ErrnoStatus(errno, "reading").ToString());
      return;
    }
    if (n == 0) {
      if (reader_.buffered() != 0) {
        CloseConnection(FpmError::kTruncated,
                        absl::StrCat("the stream ended inside a frame (",
                                     reader_.buffered(), " bytes pending)"));
      } else {
        CloseConnection(std::nullopt, "zebra closed it");
      }
      return;
    }
    last_activity_ = absl::Now();
    reader_.Append(std::span<const uint8_t>(chunk.data(), n));
    Frame frame;
    FpmError error;
    std::string reason;
    uint64_t netlink_frames = 0, protobuf_frames = 0, route_updates = 0,
             next_hop_updates = 0;
    DecoderStats decoder;
    bool changed = false;
    bool failed = false;
    while (true) {
      const FrameReader::Result result = reader_.Next(&frame, &error, &reason);
      if (result == FrameReader::Result::kNeedMore) break;
      if (result == FrameReader::Result::kError) {
        failed = true;
        break;
      }
      (frame.type == FrameType::kNetlink ? netlink_frames : protobuf_frames)++;
      updates_.clear();
      absl::Status status = DecodeFrame(frame, &updates_, &decoder, &error);
      if (!status.ok()) {
        reason = std::string(status.message());
        failed = true;
        break;
      }
      for (const FibUpdate& update : updates_) {
        (std::holds_alternative<RouteUpdate>(update) ? route_updates
                                                     : next_hop_updates)++;
        changed |= fib_.Apply(update);
      }
    }
    if (changed && dirty_since_ == absl::InfiniteFuture()) {
      dirty_since_ = absl::Now();
    }
    {
      absl::MutexLock lock(&mu_);
      stats_.netlink_frames += netlink_frames;
      stats_.protobuf_frames += protobuf_frames;
      stats_.route_updates += route_updates;
      stats_.next_hop_updates += next_hop_updates;
      stats_.decoder.ignored_messages += decoder.ignored_messages;
      stats_.decoder.ignored_next_hops += decoder.ignored_next_hops;
    }
    if (failed) {
      CloseConnection(error, reason);
      return;
    }
  }
}

void FpmServer::Publish() {
  size_t unresolved = 0;
  std::shared_ptr<const netlink::RouteTable> table =
      fib_.BuildTable(&unresolved);
  {
    absl::MutexLock lock(&mu_);
    table_ = table;
    ++stats_.publishes;
    stats_.routes = fib_.route_count();
    stats_.next_hop_objects = fib_.next_hop_count();
    stats_.unresolved_routes = unresolved;
  }
  generation_.fetch_add(1, std::memory_order_release);
  if (options_.on_publish) options_.on_publish(std::move(table));
}

void FpmServer::Run() {
  // Publish the empty table once, so readers see generation 1.
  Publish();
  while (!stopping_.load()) {
    absl::Time deadline =
        absl::Now() + absl::Milliseconds(kIdlePollMilliseconds);
    if (dirty_since_ != absl::InfiniteFuture()) {
      deadline = std::min(deadline, dirty_since_ + options_.publish_delay);
    }
    if (resync_pending_) {
      deadline = std::min(deadline, last_activity_ + options_.resync_quiet);
    }
    const int timeout_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                deadline - absl::Now(), absl::Milliseconds(1))),
                            0, kIdlePollMilliseconds));
    pollfd fds[3] = {{wake_fd_, POLLIN, 0},
                     {listen_fd_, POLLIN, 0},
                     {connection_fd_, POLLIN, 0}};
    const int count = connection_fd_ >= 0 ? 3 : 2;
    if (poll(fds, count, timeout_ms) < 0 && errno != EINTR) {
      LB_LOG(kError) << ErrnoStatus(errno, "FPM server: poll");
    }
    if (stopping_.load()) break;
    // The connection first: a replacing connection's Accept() must not
    // drop bytes the old one had already delivered.
    if (count == 3 && fds[2].revents != 0) ReadConnection();
    if (fds[1].revents != 0) Accept();
    const absl::Time now = absl::Now();
    if (resync_pending_ && connection_fd_ >= 0 &&
        now >= last_activity_ + options_.resync_quiet) {
      resync_pending_ = false;
      const FibSweep sweep = fib_.SweepStale();
      LB_LOG(kInfo) << "FPM: resync from " << peer_
                    << " complete: " << fib_.route_count() << " routes, "
                    << fib_.next_hop_count() << " next-hop objects; removed "
                    << sweep.routes << " stale routes and " << sweep.next_hops
                    << " stale next-hop objects";
      if ((sweep.routes != 0 || sweep.next_hops != 0) &&
          dirty_since_ == absl::InfiniteFuture()) {
        dirty_since_ = now;
      }
      absl::MutexLock lock(&mu_);
      ++stats_.resyncs;
      stats_.stale_routes_removed += sweep.routes;
      stats_.stale_next_hops_removed += sweep.next_hops;
    }
    if (dirty_since_ != absl::InfiniteFuture() &&
        now >= dirty_since_ + options_.publish_delay) {
      dirty_since_ = absl::InfiniteFuture();
      Publish();
    }
  }
}

void FpmServer::CollectMetrics(std::vector<metrics::MetricFamily>* out) const {
  using metrics::MetricFamily;
  using metrics::MetricType;
  const FpmServerStats s = stats();
  out->push_back(MetricFamily("anylb_fpm_connected",
                              "1 while zebra's FPM connection is open.",
                              MetricType::kGauge)
                     .Add({}, s.connected ? 1 : 0));
  out->push_back(MetricFamily("anylb_fpm_connections_total",
                              "FPM connections accepted.", MetricType::kCounter)
                     .Add({}, s.connections));
  out->push_back(MetricFamily("anylb_fpm_replaced_connections_total",
                              "FPM connections closed because a newer one "
                              "arrived (one zebra at a time).",
                              MetricType::kCounter)
                     .Add({}, s.replaced_connections));
  out->push_back(MetricFamily("anylb_fpm_frames_total",
                              "FPM frames received, by encoding.",
                              MetricType::kCounter)
                     .Add({{"encoding", "netlink"}}, s.netlink_frames)
                     .Add({{"encoding", "protobuf"}}, s.protobuf_frames));
  out->push_back(MetricFamily("anylb_fpm_updates_total",
                              "Route and next-hop-object updates applied.",
                              MetricType::kCounter)
                     .Add({{"kind", "route"}}, s.route_updates)
                     .Add({{"kind", "next_hop"}}, s.next_hop_updates));
  out->push_back(MetricFamily("anylb_fpm_ignored_messages_total",
                              "Well-formed FPM messages not for us (other "
                              "tables, VRFs, types).",
                              MetricType::kCounter)
                     .Add({}, s.decoder.ignored_messages));
  MetricFamily errors("anylb_fpm_errors_total",
                      "FPM connections closed on an error, by reason.",
                      MetricType::kCounter);
  for (int i = 0; i < kFpmErrorCount; ++i) {
    errors.Add(
        {{"reason", std::string(FpmErrorName(static_cast<FpmError>(i)))}},
        s.errors[i]);
  }
  out->push_back(std::move(errors));
  out->push_back(MetricFamily("anylb_fpm_resyncs_total",
                              "Completed resyncs (a connection's full FIB "
                              "received, stale entries removed).",
                              MetricType::kCounter)
                     .Add({}, s.resyncs));
  out->push_back(MetricFamily("anylb_fpm_stale_routes_removed_total",
                              "Routes removed by resyncs because zebra did "
                              "not send them again.",
                              MetricType::kCounter)
                     .Add({}, s.stale_routes_removed));
  out->push_back(MetricFamily("anylb_fpm_routes",
                              "Routes in the FPM FIB (unresolved included).",
                              MetricType::kGauge)
                     .Add({}, static_cast<uint64_t>(s.routes)));
  out->push_back(MetricFamily("anylb_fpm_unresolved_routes",
                              "FPM routes left out of the table: their "
                              "next-hop object is unknown.",
                              MetricType::kGauge)
                     .Add({}, static_cast<uint64_t>(s.unresolved_routes)));
  out->push_back(MetricFamily("anylb_fpm_next_hop_objects",
                              "Next-hop objects in the FPM FIB.",
                              MetricType::kGauge)
                     .Add({}, static_cast<uint64_t>(s.next_hop_objects)));
}

}  // namespace anylb::routing::fpm
