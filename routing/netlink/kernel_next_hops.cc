#include "routing/netlink/kernel_next_hops.h"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>

#include "common/status_macros.h"

namespace anylb::routing::netlink {
namespace internal {

struct Publication {
  ~Publication() {
    if (wake_fd >= 0) close(wake_fd);
  }

  // Wake makes the control thread's poll() return (never blocks: the
  // eventfd is non-blocking and only overflows after 2^64 - 2 writes).
  void Wake() const {
    if (wake_fd < 0) return;
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd, &one, sizeof(one));
  }

  std::atomic<std::shared_ptr<const NextHopSnapshot>> snapshot;
  std::atomic<uint64_t> generation{0};
  int wake_fd = -1;

  absl::Mutex mu;  // Taken by NewReader() and the control thread only.
  std::vector<std::shared_ptr<ResolveQueue>> queues ABSL_GUARDED_BY(mu);
  uint64_t dropped_by_closed_queues ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace internal

namespace {

// How long the control thread sleeps when nothing happens: the longest a
// failed resync waits before it is retried.
constexpr int kIdlePollMilliseconds = 100;
constexpr size_t kRequestBufferBytes = 256;

int64_t CoarseNowNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KernelNextHops>> KernelNextHops::Create(
    const KernelNextHopsOptions& options) {
  // Links and addresses too: the kernel drops IPv4 routes silently (no
  // RTM_DELROUTE) when their interface goes down or loses the address,
  // and flags next hops RTNH_F_LINKDOWN on carrier loss without a route
  // notification; a link or address change therefore re-dumps routes.
  static constexpr unsigned int kGroups[] = {
      RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE,  RTNLGRP_IPV6_ROUTE,
      RTNLGRP_LINK,  RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR};
  // External routes: the kernel's neighbours only.
  static constexpr unsigned int kNeighborGroups[] = {RTNLGRP_NEIGH};
  const bool external = options.route_source == RouteSource::kExternal;
  // The monitor first: changes made while we dump are queued on it.
  ASSIGN_OR_RETURN(std::unique_ptr<NetlinkSocket> monitor,
                   NetlinkSocket::Create(
                       external ? std::span<const unsigned int>(kNeighborGroups)
                                : std::span<const unsigned int>(kGroups),
                       options.monitor_receive_buffer_bytes));
  ASSIGN_OR_RETURN(std::unique_ptr<NetlinkSocket> request,
                   NetlinkSocket::Create());
  auto publication = std::make_shared<internal::Publication>();
  publication->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (publication->wake_fd < 0) {
    return ErrnoError(errno, "creating the next-hop control eventfd");
  }
  std::unique_ptr<KernelNextHops> self(new KernelNextHops(
      options, std::move(monitor), std::move(request), std::move(publication)));
  RETURN_IF_ERROR(self->FullResync());
  self->Publish();
  self->thread_ = std::thread([p = self.get()] { p->Run(); });
  return self;
}

KernelNextHops::KernelNextHops(
    const KernelNextHopsOptions& options,
    std::unique_ptr<NetlinkSocket> monitor,
    std::unique_ptr<NetlinkSocket> request,
    std::shared_ptr<internal::Publication> publication)
    : options_(options),
      monitor_(std::move(monitor)),
      request_(std::move(request)),
      publication_(std::move(publication)),
      request_buffer_(kRequestBufferBytes) {}

KernelNextHops::~KernelNextHops() {
  stopping_.store(true);
  publication_->Wake();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<NextHopReader> KernelNextHops::NewReader() {
  auto queue = std::make_shared<ResolveQueue>(options_.resolve_queue_capacity);
  {
    absl::MutexLock lock(&publication_->mu);
    publication_->queues.push_back(queue);
  }
  return std::unique_ptr<NextHopReader>(new NextHopReader(
      publication_, std::move(queue),
      absl::ToInt64Nanoseconds(options_.resolve_retry_interval)));
}

uint64_t KernelNextHops::generation() const {
  return publication_->generation.load(std::memory_order_acquire);
}

std::shared_ptr<const NextHopSnapshot> KernelNextHops::snapshot() const {
  return publication_->snapshot.load();
}

KernelNextHopsStats KernelNextHops::stats() const {
  KernelNextHopsStats result;
  {
    absl::MutexLock lock(&stats_mu_);
    result = stats_;
  }
  absl::MutexLock lock(&publication_->mu);
  result.resolve_requests_dropped = publication_->dropped_by_closed_queues;
  for (const auto& queue : publication_->queues) {
    result.resolve_requests_dropped += queue->dropped();
  }
  return result;
}

void KernelNextHops::RecordError(const absl::Status& status) {
  absl::MutexLock lock(&stats_mu_);
  ++stats_.errors;
  stats_.last_error = status;
}

absl::Status KernelNextHops::DumpNeighbors() {
  NeighborTable::Map neighbors;
  DecodeStats decode;
  const size_t length =
      EncodeDumpRequest(RTM_GETNEIGH, AF_UNSPEC, request_buffer_);
  RETURN_IF_ERROR(request_->Dump(
      std::span<uint8_t>(request_buffer_.data(), length),
      "dumping the kernel's neighbour table",
      [&](std::span<const uint8_t> message) {
        NeighborMessage neighbor;
        if (DecodeNeighbor(message, &neighbor, &decode) != DecodeResult::kOk) {
          return;
        }
        neighbors[NeighborKey{neighbor.ifindex, neighbor.address}] =
            NeighborEntry{neighbor.lladdr, neighbor.has_lladdr, neighbor.state};
      },
      [&] { neighbors.clear(); }));
  neighbors_ = std::move(neighbors);
  neighbors_dirty_ = true;
  absl::MutexLock lock(&stats_mu_);
  stats_.decode.malformed_messages += decode.malformed_messages;
  stats_.decode.malformed_attributes += decode.malformed_attributes;
  stats_.decode.ignored_messages += decode.ignored_messages;
  return absl::OkStatus();
}

absl::Status KernelNextHops::DumpRoutes(uint8_t family) {
  std::vector<Route> routes;
  DecodeStats decode;
  const size_t length =
      EncodeDumpRequest(RTM_GETROUTE, family, request_buffer_);
  RETURN_IF_ERROR(request_->Dump(
      std::span<uint8_t>(request_buffer_.data(), length),
      family == AF_INET ? "dumping the kernel's IPv4 routes"
                        : "dumping the kernel's IPv6 routes",
      [&](std::span<const uint8_t> message) {
        RouteMessage route;
        if (DecodeRoute(message, &route, &decode) != DecodeResult::kOk ||
            route.destination.is_v4() != (family == AF_INET)) {
          return;
        }
        routes.push_back(Route{route.destination, route.priority, route.kind,
                               std::move(route.next_hops)});
      },
      [&] { routes.clear(); }));
  (family == AF_INET ? v4_routes_ : v6_routes_) = std::move(routes);
  (family == AF_INET ? redump_v4_ : redump_v6_) = false;
  routes_dirty_ = true;
  absl::MutexLock lock(&stats_mu_);
  ++stats_.route_redumps;
  stats_.decode.malformed_messages += decode.malformed_messages;
  stats_.decode.malformed_attributes += decode.malformed_attributes;
  stats_.decode.ignored_messages += decode.ignored_messages;
  return absl::OkStatus();
}

absl::Status KernelNextHops::FullResync() {
  RETURN_IF_ERROR(DumpNeighbors());
  if (options_.route_source == RouteSource::kKernel) {
    RETURN_IF_ERROR(DumpRoutes(AF_INET));
    RETURN_IF_ERROR(DumpRoutes(AF_INET6));
  }
  absl::MutexLock lock(&stats_mu_);
  ++stats_.full_resyncs;
  return absl::OkStatus();
}

absl::Status KernelNextHops::SetRoutes(
    std::shared_ptr<const RouteTable> routes) {
  if (options_.route_source != RouteSource::kExternal) {
    return absl::FailedPreconditionError(
        "KernelNextHops::SetRoutes: routes come from the kernel here (create "
        "it with route_source = RouteSource::kExternal for FPM routes)");
  }
  if (routes == nullptr) routes = std::make_shared<const RouteTable>();
  {
    absl::MutexLock lock(&external_mu_);
    external_routes_ = std::move(routes);
  }
  publication_->Wake();
  return absl::OkStatus();
}

bool KernelNextHops::TakeExternalRoutes() {
  std::shared_ptr<const RouteTable> routes;
  {
    absl::MutexLock lock(&external_mu_);
    routes = std::move(external_routes_);
    external_routes_ = nullptr;
  }
  if (routes == nullptr) return false;
  route_table_ = std::move(routes);
  routes_dirty_ = true;
  absl::MutexLock lock(&stats_mu_);
  ++stats_.external_route_tables;
  return true;
}

void KernelNextHops::OnNotification(std::span<const uint8_t> message) {
  if (message.size() < sizeof(nlmsghdr)) return;
  uint16_t type;
  std::memcpy(&type, message.data() + offsetof(nlmsghdr, nlmsg_type),
              sizeof(type));
  DecodeStats decode;
  if (type == RTM_NEWNEIGH || type == RTM_DELNEIGH) {
    NeighborMessage neighbor;
    if (DecodeNeighbor(message, &neighbor, &decode) == DecodeResult::kOk) {
      const NeighborKey key{neighbor.ifindex, neighbor.address};
      if (neighbor.deleted) {
        neighbors_.erase(key);
      } else {
        neighbors_[key] =
            NeighborEntry{neighbor.lladdr, neighbor.has_lladdr, neighbor.state};
      }
      neighbors_dirty_ = true;
      absl::MutexLock lock(&stats_mu_);
      ++stats_.neighbor_updates;
    }
  } else if (options_.route_source == RouteSource::kExternal) {
    // Not subscribed to routes, links or addresses; nothing else to do.
  } else if (type == RTM_NEWLINK || type == RTM_DELLINK ||
             type == RTM_NEWADDR || type == RTM_DELADDR) {
    redump_v4_ = true;
    redump_v6_ = true;
  } else if (type == RTM_NEWROUTE || type == RTM_DELROUTE) {
    RouteMessage route;
    if (DecodeRoute(message, &route, &decode) == DecodeResult::kOk) {
      (route.destination.is_v4() ? redump_v4_ : redump_v6_) = true;
    }
  }
  absl::MutexLock lock(&stats_mu_);
  stats_.decode.malformed_messages += decode.malformed_messages;
  stats_.decode.malformed_attributes += decode.malformed_attributes;
  stats_.decode.ignored_messages += decode.ignored_messages;
}

void KernelNextHops::DrainResolveQueues() {
  std::vector<std::shared_ptr<ResolveQueue>>& queues = draining_;
  queues.clear();
  {
    absl::MutexLock lock(&publication_->mu);
    auto& all = publication_->queues;
    for (auto it = all.begin(); it != all.end();) {
      // A closed queue is drained once more below, then forgotten.
      queues.push_back(*it);
      if ((*it)->closed()) {
        publication_->dropped_by_closed_queues += (*it)->dropped();
        it = all.erase(it);
      } else {
        ++it;
      }
    }
  }
  uint64_t sent = 0;
  uint64_t failed = 0;
  absl::Status last_failure;
  ResolveRequest request;
  for (const auto& queue : queues) {
    while (queue->TryPop(&request)) {
      const size_t length = EncodeResolveRequest(
          request.ifindex, request.address, request_buffer_);
      absl::Status status = request_->Request(
          std::span<uint8_t>(request_buffer_.data(), length),
          "asking the kernel to resolve " + request.address.ToString() +
              " on ifindex " + std::to_string(request.ifindex));
      ++sent;
      if (!status.ok()) {
        ++failed;
        last_failure = std::move(status);
      }
    }
  }
  queues.clear();
  if (sent == 0) return;
  absl::MutexLock lock(&stats_mu_);
  stats_.resolve_requests_sent += sent;
  stats_.resolve_requests_failed += failed;
  if (!last_failure.ok()) stats_.last_error = last_failure;
}

void KernelNextHops::Publish() {
  if (neighbors_dirty_ || neighbor_table_ == nullptr) {
    neighbor_table_ = std::make_shared<const NeighborTable>(neighbors_);
  }
  if (options_.route_source == RouteSource::kExternal) {
    // route_table_ is SetRoutes()'s latest table (TakeExternalRoutes).
    if (route_table_ == nullptr) {
      route_table_ = std::make_shared<const RouteTable>();
    }
  } else if (routes_dirty_ || route_table_ == nullptr) {
    std::vector<Route> routes;
    routes.reserve(v4_routes_.size() + v6_routes_.size());
    routes.insert(routes.end(), v4_routes_.begin(), v4_routes_.end());
    routes.insert(routes.end(), v6_routes_.begin(), v6_routes_.end());
    route_table_ = std::make_shared<const RouteTable>(
        RouteTable::Build(std::move(routes)));
  }
  neighbors_dirty_ = false;
  routes_dirty_ = false;
  auto snapshot = std::make_shared<NextHopSnapshot>();
  snapshot->neighbors = neighbor_table_;
  snapshot->routes = route_table_;
  snapshot->generation =
      publication_->generation.load(std::memory_order_relaxed) + 1;
  std::shared_ptr<const NextHopSnapshot> previous =
      publication_->snapshot.exchange(std::move(snapshot));
  publication_->generation.fetch_add(1, std::memory_order_release);
  // Freed here, by this thread, once no reader holds it.
  if (previous != nullptr) retired_.push_back(std::move(previous));
  absl::MutexLock lock(&stats_mu_);
  ++stats_.publishes;
}

void KernelNextHops::Run() {
  pollfd fds[2] = {{monitor_->fd(), POLLIN, 0},
                   {publication_->wake_fd, POLLIN, 0}};
  bool resync = false;
  absl::Time dirty_since = absl::InfiniteFuture();
  while (!stopping_.load()) {
    int timeout_ms = kIdlePollMilliseconds;
    if (dirty_since != absl::InfiniteFuture()) {
      const absl::Duration left =
          dirty_since + options_.publish_delay - absl::Now();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 0,
          kIdlePollMilliseconds));
    }
    if (poll(fds, 2, timeout_ms) < 0 && errno != EINTR) {
      RecordError(ErrnoError(errno, "polling the rtnetlink monitor"));
    }
    if (stopping_.load()) break;
    if (fds[1].revents != 0) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = read(fds[1].fd, &count, sizeof(count));
    }
    if (fds[0].revents != 0) {
      absl::StatusOr<NetlinkSocket::ReceiveResult> received =
          monitor_->ReceiveAvailable(
              [this](std::span<const uint8_t> m) { OnNotification(m); });
      if (!received.ok()) {
        RecordError(received.status());
        resync = true;
      } else if (*received == NetlinkSocket::ReceiveResult::kOverrun) {
        resync = true;
        absl::MutexLock lock(&stats_mu_);
        ++stats_.monitor_overruns;
      }
    }
    DrainResolveQueues();
    TakeExternalRoutes();
    if (resync) {
      absl::Status status = FullResync();
      if (status.ok()) {
        resync = false;
      } else {
        RecordError(status);
      }
    }
    const bool dirty =
        neighbors_dirty_ || routes_dirty_ || redump_v4_ || redump_v6_;
    if (dirty && dirty_since == absl::InfiniteFuture()) {
      dirty_since = absl::Now();
    }
    if (dirty && absl::Now() >= dirty_since + options_.publish_delay) {
      absl::Status status;
      if (redump_v4_) status.Update(DumpRoutes(AF_INET));
      if (redump_v6_) status.Update(DumpRoutes(AF_INET6));
      if (!status.ok()) RecordError(status);
      Publish();
      dirty_since =
          redump_v4_ || redump_v6_ ? absl::Now() : absl::InfiniteFuture();
    }
    std::erase_if(retired_, [](const auto& s) { return s.use_count() == 1; });
  }
}

NextHopReader::NextHopReader(std::shared_ptr<internal::Publication> publication,
                             std::shared_ptr<ResolveQueue> queue,
                             int64_t retry_ns)
    : publication_(std::move(publication)),
      queue_(std::move(queue)),
      recent_(retry_ns) {
  Refresh();
}

std::unique_ptr<NextHopReader> NextHopReader::ForFixedSnapshot(
    std::shared_ptr<const NextHopSnapshot> snapshot,
    size_t resolve_queue_capacity) {
  auto publication = std::make_shared<internal::Publication>();
  const uint64_t generation = snapshot->generation;
  publication->snapshot.store(std::move(snapshot));
  publication->generation.store(generation);
  return std::unique_ptr<NextHopReader>(
      new NextHopReader(std::move(publication),
                        std::make_shared<ResolveQueue>(resolve_queue_capacity),
                        absl::ToInt64Nanoseconds(absl::Seconds(1))));
}

NextHopReader::~NextHopReader() { queue_->Close(); }

bool NextHopReader::Refresh() {
  now_ns_ = CoarseNowNs();
  const uint64_t generation =
      publication_->generation.load(std::memory_order_acquire);
  if (generation == generation_) return false;
  snapshot_ = publication_->snapshot.load();
  neighbors_ = snapshot_->neighbors.get();
  routes_ = snapshot_->routes.get();
  generation_ = snapshot_->generation;
  ++stats_.refreshes;
  return true;
}

void NextHopReader::RequestResolution(int ifindex, const IpAddress& address) {
  if (!recent_.ShouldRequest(NeighborKey{ifindex, address}, now_ns_)) {
    ++stats_.resolve_suppressed;
    return;
  }
  if (!queue_->TryPush(ResolveRequest{ifindex, address})) {
    ++stats_.resolve_dropped;
    return;
  }
  ++stats_.resolve_requested;
  publication_->Wake();
}

NextHop NextHopReader::Lookup(const IpAddress& destination, uint64_t flow_hash,
                              int only_ifindex) {
  ++stats_.lookups;
  NextHop hop;
  const Route* route =
      routes_ == nullptr ? nullptr : routes_->Lookup(destination);
  if (route == nullptr) {
    ++stats_.no_route;
    hop.result = NextHop::Result::kNoRoute;
    return hop;
  }
  if (route->kind != RouteKind::kUnicast || route->next_hops.empty()) {
    ++stats_.rejected;
    hop.result = NextHop::Result::kRejected;
    return hop;
  }
  const RouteNextHop* next =
      RouteTable::SelectNextHop(*route, flow_hash, only_ifindex);
  if (next == nullptr) {
    ++stats_.wrong_interface;
    hop.result = NextHop::Result::kWrongInterface;
    return hop;
  }
  hop.ifindex = next->ifindex;
  hop.address = next->has_gateway ? next->gateway : destination;
  const NeighborEntry* neighbor = neighbors_->Find(hop.ifindex, hop.address);
  if (neighbor != nullptr && neighbor->usable()) {
    ++stats_.hits;
    hop.mac = neighbor->mac;
    hop.result = NextHop::Result::kOk;
    // Our frames bypass the kernel and never confirm the entry: have it
    // re-probed (once per interval) so it stays fresh.
    if ((neighbor->state & NUD_STALE) != 0) {
      RequestResolution(hop.ifindex, hop.address);
    }
    return hop;
  }
  ++stats_.no_neighbor;
  hop.result = NextHop::Result::kNoNeighbor;
  RequestResolution(hop.ifindex, hop.address);
  return hop;
}

}  // namespace anylb::routing::netlink
