// Worker: one thread that moves frames for one RX queue: AF_XDP RX →
// Engine::Process → AF_XDP TX (or back to the free stack), in batches.
//
// Ownership and threading (share nothing): a Worker owns its Umem, its RX
// socket, an optional TX socket on another interface (sharing the Umem),
// its Engine, its queue of parked frames and its counters. They are built
// on the control thread (Dataplane::Create) and, once Start() runs, touched
// only by the worker's thread until it is joined. Three things cross
// threads, each at a batch boundary, never per packet:
//  * PostSnapshot (control → worker): a mailbox (mutex + atomic flag); the
//    worker adopts the newest snapshot between batches with
//    Engine::UpdateSnapshot. Frames wait in the rings meanwhile: none is
//    dropped because of a swap.
//  * Stats (worker → readers): a copy of every counter, published at most
//    every stats_interval into a mutex-guarded slot.
//  * last_progress(): an atomic timestamp set on every loop iteration, so a
//    stuck worker is visible (the routing layer withdraws VIPs then).
//
// Frame lifecycle (every frame is always in exactly one place):
//   free stack → fill ring → (kernel) → RX ring → Process →
//     kTransmit: TX ring → completion ring → free stack
//     kDrop:     free stack (counted by the engine's reason)
//     kDrop(no_neighbor): parked → retried → TX / free (timeout, overflow)
//     kPass:     free stack, counted as pass_unavailable (an AF_XDP frame
//                cannot be handed to the kernel's stack; the steering
//                program sends only VIP traffic, so this is a ping to a VIP
//                or a frame for an address the snapshot no longer serves)
// After Stop() the worker drains RX and completions and releases parked
// frames; FrameCounts then checks free + fill == total.
//
// Fast path (WorkerOptions::fast_path, fastpath.h): after each batch is
// transmitted, the worker installs the rewrite of established DR/TUN flows
// into the steering program's map, whose later packets then never reach
// this socket; the loop scans those entries (bounded work per iteration)
// to keep the engine's flows alive and count their traffic.
//
// Per packet the loop never allocates or locks, and raises no exception.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_WORKER_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_WORKER_H_

#include <linux/if_xdp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/xsk/fastpath.h"
#include "lbnode/dataplane/xsk/park_queue.h"
#include "lbnode/dataplane/xsk/umem.h"
#include "lbnode/dataplane/xsk/xsk_socket.h"

namespace anylb::dataplane::xsk {

// kMaxBatch bounds WorkerOptions::batch_size.
inline constexpr uint32_t kMaxBatch = 256;

// WorkerOptions tune one worker's loop.
struct WorkerOptions {
  uint32_t batch_size = 64;  // RX descriptors per batch, 1..kMaxBatch.
  // poll() timeout when idle: bounds how late the worker notices Stop(), a
  // new snapshot or a parked frame's timeout.
  absl::Duration poll_timeout = absl::Milliseconds(10);
  // Spin (recvfrom MSG_DONTWAIT, driving the socket's busy poll) instead of
  // sleeping in poll(). Costs a whole core per worker.
  bool busy_poll = false;
  // Frames waiting for a neighbour.
  uint32_t park_capacity = 64;
  absl::Duration park_timeout = absl::Seconds(1);
  // Parked frames are retried when *neighbor_generation changes (the
  // neighbour layer bumps it when an entry appears), or else every
  // park_retry_interval.
  const std::atomic<uint64_t>* neighbor_generation = nullptr;
  absl::Duration park_retry_interval = absl::Milliseconds(50);
  // Called on the worker's thread once per loop iteration (before a batch,
  // never per packet): lets the neighbour layer refresh its per-worker
  // view (the argument is the worker's RX queue, so one function can serve
  // per-worker state). Must not block for long.
  std::function<void(uint32_t queue)> before_batch;
  absl::Duration stats_interval = absl::Milliseconds(100);
  // Expired flows removed per loop iteration (Engine::ExpireSome; bounded so
  // a mass expiry never delays a batch for long). 0 turns expiry off (the
  // flow table then only evicts when full).
  uint32_t expire_per_batch = 64;
  // After Stop(): how long to wait for the kernel to complete TX frames.
  absl::Duration drain_timeout = absl::Milliseconds(500);
  // The XDP fast path for established DR/TUN flows (fastpath.h); unset:
  // every packet goes through AF_XDP and the engine.
  std::optional<FastPathOptions> fast_path;
};

// WorkerCounters are the worker's own counters (the engine has its own).
// Every frame taken from the RX ring (rx_packets) ends in exactly one of:
// tx_packets, dropped, pass_unavailable, tx_ring_full, neighbor_wait_*,
// or is still parked (FrameCounts::parked).
struct WorkerCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;  // Put on the TX ring (parked ones included).
  uint64_t tx_bytes = 0;
  uint64_t dropped = 0;           // Engine kDrop (its reasons: engine).
  uint64_t pass_unavailable = 0;  // Engine kPass: freed (file comment).
  uint64_t tx_ring_full = 0;      // No TX slot even after completing.
  uint64_t tx_kick_errors = 0;    // sendto() wakeups that failed.
  uint64_t parked = 0;            // Frames ever parked.
  uint64_t parked_forwarded = 0;  // Parked, later transmitted.
  uint64_t neighbor_wait_timeout = 0;
  uint64_t neighbor_wait_overflow = 0;
  uint64_t neighbor_wait_stopped = 0;  // Still parked at Stop().
  uint64_t rx_discarded_at_stop = 0;   // In the RX ring at Stop().
  uint64_t fill_empty = 0;             // Refills that found no free frame.
  uint64_t batches = 0;
  uint64_t polls = 0;
  uint64_t snapshot_swaps = 0;
  uint64_t snapshot_errors = 0;  // UpdateSnapshot refused (old one kept).
  uint64_t flows_expired = 0;    // Flow-table entries expired by the loop.
};

// FrameCounts says where the UMEM's frames are.
struct FrameCounts {
  uint64_t total = 0;
  uint64_t free = 0;          // On the free stack.
  uint64_t fill = 0;          // In the fill ring (kernel's indices).
  uint64_t rx = 0;            // In the RX ring (kernel's indices).
  uint64_t tx_in_flight = 0;  // On a TX ring or not yet completed.
  uint64_t parked = 0;
  // total - all of the above: nonzero means a leak.
  int64_t unaccounted() const {
    return static_cast<int64_t>(total) -
           static_cast<int64_t>(free + fill + rx + tx_in_flight + parked);
  }
};

// BackendLoad is one worker's flows on a backend.
struct BackendLoad {
  uint32_t active = 0;
  uint32_t inactive = 0;
};

// WorkerStats is one published copy of a worker's counters.
struct WorkerStats {
  uint32_t queue = 0;
  absl::Time published = absl::InfinitePast();
  WorkerCounters worker;
  EngineCounters engine;
  // The snapshot the per-service vectors below are indexed by (the one
  // the engine ran at publication).
  std::shared_ptr<const EngineSnapshot> snapshot;
  uint64_t flows = 0;  // Flow-table entries.
  // By snapshot index, as Engine::service_counters / backend_counters.
  std::vector<TrafficCounters> services;
  std::vector<std::vector<TrafficCounters>> backends;
  // [service][backend]: this worker's flows on each backend (IPVS's
  // ActiveConn / InActConn), from Engine::backends().
  std::vector<std::vector<BackendLoad>> loads;
  XskKernelStats kernel;  // The RX socket's XDP_STATISTICS.
  FrameCounts frames;
  // The last UpdateSnapshot error (counted in snapshot_errors), or empty.
  std::string last_snapshot_error;
  bool stopped = false;  // Final copy, after the drain.
  // The fast path's counters (all zero without one). Its traffic is
  // already in `services` and `backends`.
  bool fast_path = false;
  FastPathCounters fastpath;
};

// Worker: see the file comment.
class Worker {
 public:
  // The Worker takes everything it moves frames with. `tx_socket` may be
  // null (transmit on `rx_socket`); otherwise it shares `umem`.
  Worker(uint32_t queue, std::unique_ptr<Umem> umem,
         std::unique_ptr<XskSocket> rx_socket,
         std::unique_ptr<XskSocket> tx_socket, std::unique_ptr<Engine> engine,
         WorkerOptions options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // ~Worker stops and joins the thread.
  ~Worker();

  // Start fills the fill ring and runs the loop on a new thread. Call
  // once.
  void Start();
  // Stop asks the loop to end, joins it (it drains first). Idempotent.
  void Stop();

  // PostSnapshot hands a snapshot to the worker; it is adopted between two
  // batches. Only the newest posted snapshot is adopted. Any thread.
  void PostSnapshot(std::shared_ptr<const EngineSnapshot> snapshot);

  // Stats returns the latest published copy. Any thread.
  WorkerStats Stats() const;

  // last_progress: when the loop last went round (any thread).
  absl::Time last_progress() const {
    return absl::FromUnixNanos(
        last_progress_ns_.load(std::memory_order_relaxed));
  }

  uint32_t queue() const { return queue_; }
  const XskSocket& rx_socket() const { return *rx_socket_; }
  const XskSocket* tx_socket() const { return tx_socket_.get(); }

 private:
  void Run();
  void RunOnce(absl::Time now);
  void AdoptSnapshot();
  void Refill();
  void CompleteTx();
  void RetryParked(absl::Time now);
  uint32_t ReceiveBatch(absl::Time now);
  void Handle(uint64_t addr, uint32_t length, absl::Time now,
              const ParkedFrame* parked);
  // Apply acts on the engine's verdict for the frame at `addr`.
  void Apply(uint64_t addr, uint32_t length, const Verdict& verdict,
             absl::Time now, const ParkedFrame* parked);
  void StageTx(uint64_t addr, uint32_t length);
  void FlushTx();
  void Kick(XskSocket& socket);
  void Wait();
  void Drain();
  void Publish(absl::Time now, bool stopped);
  FrameCounts CountFrames();

  const uint32_t queue_;
  WorkerOptions options_;  // batch_size clamped.
  std::unique_ptr<Umem> umem_;
  std::unique_ptr<XskSocket> rx_socket_;
  std::unique_ptr<XskSocket> tx_socket_;  // Null: TX on rx_socket_.
  XskSocket* tx_;                         // The socket we transmit on.
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<FastPath> fastpath_;  // Null: no fast path.
  ParkQueue parked_;

  // Worker-thread state.
  WorkerCounters counters_;
  std::vector<xdp_desc> tx_staged_;  // Sized at construction, never grows.
  // One RX batch for Engine::ProcessBatch and the frames' UMEM addresses;
  // sized at construction (batch_size), never grow.
  std::vector<Packet> rx_packets_;
  std::vector<uint64_t> rx_addrs_;
  uint32_t tx_count_ = 0;  // Staged descriptors in use.
  std::string last_snapshot_error_;
  uint64_t fill_outstanding_ = 0;  // Given to the kernel for RX.
  uint64_t tx_outstanding_ = 0;    // On a TX ring, not completed.
  uint64_t seen_generation_ = 0;
  absl::Time last_retry_ = absl::InfinitePast();
  absl::Time last_publish_ = absl::InfinitePast();

  std::atomic<bool> stop_{false};
  std::atomic<int64_t> last_progress_ns_{0};
  std::thread thread_;

  std::atomic<bool> snapshot_posted_{false};
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const EngineSnapshot> posted_ ABSL_GUARDED_BY(snapshot_mu_);

  mutable std::mutex stats_mu_;
  WorkerStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_WORKER_H_
