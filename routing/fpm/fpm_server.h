// FpmServer: lbnode's end of zebra's Forwarding Plane Manager connection.
// zebra (with `-M dplane_fpm_nl` and `fpm address A port P`) connects to
// us over TCP and streams its FIB; we decode it (frame.h, decoder.h), keep
// it (fib.h) and publish immutable RouteTable snapshots for the dataplane
// (KernelNextHops in external-route mode takes them).
//
// Connections: one zebra at a time. A new connection while one is open
// replaces it: the old one is closed (logged, counted in
// `replaced_connections`). The newest is the live one because a zebra that
// restarted or lost its TCP session reconnects, while the old socket may
// not have seen the peer go (half-open).
//
// Resync: every connection starts a new FIB epoch (Fib::BeginResync) —
// zebra sends its whole FIB after connecting. Once the connection has
// sent nothing for `resync_quiet` (zebra's initial walk is one burst), the
// entries the new connection did not send again are removed
// (Fib::SweepStale; counted in `resyncs` and `stale_routes_removed`). While
// no zebra is connected, and until that sweep, the last FIB stays in use:
// a zebra restart does not blackhole traffic. A connection that ends
// before its sweep sweeps nothing (the next one will).
//
// Errors: a frame that does not decode (bad header version, type or
// length, a payload that is not valid netlink or protobuf) closes the
// connection with a logged reason, counted by reason; the frame is not
// applied, nor is anything after it; what came before it stays. A stream
// that ends mid-frame counts as `truncated`. Nothing a peer sends can
// crash the server or half-apply a frame.
//
// Publishing: applied changes are published as one new RouteTable
// `publish_delay` after the first of them (a burst becomes one table).
//
// Threading: Create() binds and listens in the calling thread's network
// namespace, then one server thread owns the sockets and the Fib. table(),
// generation(), stats() and CollectMetrics() may be called from any thread.
// on_publish runs on the server thread.

#ifndef ANYLB_ROUTING_FPM_FPM_SERVER_H_
#define ANYLB_ROUTING_FPM_FPM_SERVER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/metrics/metric_family.h"
#include "routing/fpm/decoder.h"
#include "routing/fpm/fib.h"
#include "routing/fpm/frame.h"
#include "routing/netlink/tables.h"

namespace anylb::routing::fpm {

// kDefaultFpmPort is FRR's FPM port.
inline constexpr uint16_t kDefaultFpmPort = 2620;

struct FpmServerOptions {
  // listen is where zebra connects; port 0 picks one (tests).
  Endpoint listen{IpAddress::FromV4(0x7f000001), kDefaultFpmPort};
  // Changes within this time of the first are published together.
  absl::Duration publish_delay = absl::Milliseconds(5);
  // A new connection quiet this long has finished its resync: stale
  // entries are swept.
  absl::Duration resync_quiet = absl::Seconds(1);
  // on_publish receives every new table (on the server thread).
  std::function<void(std::shared_ptr<const netlink::RouteTable>)> on_publish;
};

struct FpmServerStats {
  bool connected = false;
  std::string peer;  // The connected zebra's address, if any.
  uint64_t connections = 0;
  uint64_t replaced_connections = 0;
  uint64_t netlink_frames = 0;
  uint64_t protobuf_frames = 0;
  uint64_t route_updates = 0;
  uint64_t next_hop_updates = 0;
  uint64_t resyncs = 0;  // Completed: stale entries swept.
  uint64_t stale_routes_removed = 0;
  uint64_t stale_next_hops_removed = 0;
  uint64_t publishes = 0;
  std::array<uint64_t, kFpmErrorCount> errors{};  // By FpmError.
  std::string last_error;
  DecoderStats decoder;
  size_t routes = 0;             // In the FIB.
  size_t next_hop_objects = 0;   // In the FIB.
  size_t unresolved_routes = 0;  // In the FIB but not in the table.
};

class FpmServer {
 public:
  // Create: see the file comment. Fails if the socket cannot be bound.
  static absl::StatusOr<std::unique_ptr<FpmServer>> Create(
      FpmServerOptions options);

  FpmServer(const FpmServer&) = delete;
  FpmServer& operator=(const FpmServer&) = delete;
  // Stops the thread, closes the sockets.
  ~FpmServer();

  // endpoint is the bound address (the real port when options had 0).
  const Endpoint& endpoint() const { return endpoint_; }

  // table is the latest published table (empty before the first).
  std::shared_ptr<const netlink::RouteTable> table() const;

  // generation counts published tables (0: none yet).
  uint64_t generation() const {
    return generation_.load(std::memory_order_acquire);
  }

  FpmServerStats stats() const;

  // CollectMetrics appends the anylb_fpm_* families (for a
  // metrics::Registry collector).
  void CollectMetrics(std::vector<metrics::MetricFamily>* out) const;

 private:
  FpmServer(FpmServerOptions options, int listen_fd, int wake_fd,
            Endpoint endpoint);

  void Run();
  void Accept();
  void ReadConnection();
  void CloseConnection(std::optional<FpmError> error, const std::string& why);
  void Publish();

  const FpmServerOptions options_;
  const int listen_fd_;
  const int wake_fd_;
  const Endpoint endpoint_;

  // Server-thread state.
  int connection_fd_ = -1;
  std::string peer_;
  FrameReader reader_;
  Fib fib_;
  bool resync_pending_ = false;
  absl::Time last_activity_;
  absl::Time dirty_since_ = absl::InfiniteFuture();
  std::vector<FibUpdate> updates_;  // Reused.

  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  mutable absl::Mutex mu_;
  std::shared_ptr<const netlink::RouteTable> table_ ABSL_GUARDED_BY(mu_);
  FpmServerStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace anylb::routing::fpm

#endif  // ANYLB_ROUTING_FPM_FPM_SERVER_H_
