// Dataplane: the AF_XDP I/O of a director. One Worker per RX queue of an
// interface, each with its own UMEM, socket and Engine; sockets registered
// in the steering program's xsks_map so VIP traffic of queue q reaches
// worker q.
//
//   DataplaneOptions options;
//   options.interface = "eth0";                       // all its RX queues
//   ASSIGN_OR_RETURN(std::unique_ptr<Dataplane> dp,
//       Dataplane::Create(options, steer.get(),
//                         [&](uint32_t queue) {
//                           return Engine::Create(snapshot, &resolver);
//                         }));
//   dp->PostSnapshot(next_snapshot);   // adopted between batches
//   std::vector<WorkerStats> stats = dp->Stats();
//   dp->Stop();                        // also in the destructor
//
// Ownership and threading: Create and Stop run on the control thread, in
// the network namespace of the interfaces (sockets bind there). The
// Dataplane owns its workers; the SteerProgram must outlive it (Stop
// removes the sockets from its xsks_map; attaching and detaching the
// program is the caller's). PostSnapshot, Stats and OldestProgress may be
// called from any thread.
//
// SIGTERM: the daemon stops on a signal by calling Stop() from its main
// thread (signalfd or sigwait, never from a handler) and then destroying
// the SteerProgram, which detaches the program. tools/xsk_forward.cc shows
// the sequence.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_DATAPLANE_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_DATAPLANE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/xsk/rx_queues.h"
#include "lbnode/dataplane/xsk/umem.h"
#include "lbnode/dataplane/xsk/worker.h"
#include "lbnode/dataplane/xsk/xsk_socket.h"

namespace anylb::dataplane::xsk {

// DataplaneOptions: what to bind and how.
struct DataplaneOptions {
  std::string interface;
  // RX queues to serve, one worker each; empty: every RX queue.
  std::vector<uint32_t> queues;
  // Transmit on another interface (a second socket per worker on its
  // queue of the same index, sharing the UMEM); empty: on `interface`.
  std::string tx_interface;
  XskMode mode = XskMode::kAuto;
  bool busy_poll = false;  // Socket options + a spinning loop.
  UmemOptions umem;        // Per queue.
  uint32_t rx_ring_size = 2048;
  uint32_t tx_ring_size = 2048;
  WorkerOptions worker;  // batch_size, park_*, before_batch, ...
  // The XDP fast path for established DR/TUN flows (fastpath.h): the
  // workers install them into the steering program's map. Needs `steer`.
  // Frames it sends with XDP_TX (or redirects to tx_interface) need a
  // driver that takes them: a veth's peer must have an XDP program (or
  // GRO on), which AF_XDP TX in copy mode does not need.
  bool fast_path = false;
  uint32_t fast_path_installs_per_batch = 16;
};

// EngineFactory makes the Engine of the worker for `queue` (on the control
// thread, in Create).
using EngineFactory =
    std::function<absl::StatusOr<std::unique_ptr<Engine>>(uint32_t queue)>;

// Dataplane: see the file comment.
class Dataplane {
 public:
  // Create binds a socket per queue, makes the engines, starts the workers
  // and inserts the sockets into steer->xsks_map(). On error nothing is
  // left running or registered. `steer` may be null (tests that bind
  // without steering), and must otherwise outlive the Dataplane.
  static absl::StatusOr<std::unique_ptr<Dataplane>> Create(
      const DataplaneOptions& options, bpf::SteerProgram* steer,
      const EngineFactory& make_engine);

  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;
  ~Dataplane();

  // PostSnapshot hands `snapshot` to every worker.
  void PostSnapshot(const std::shared_ptr<const EngineSnapshot>& snapshot);

  // Stats returns every worker's latest published counters.
  std::vector<WorkerStats> Stats() const;

  // OldestProgress: the last loop iteration of the slowest worker
  // (InfiniteFuture once stopped).
  absl::Time OldestProgress() const;

  // Stop removes the sockets from xsks_map, stops and drains the workers
  // (their final Stats() stay readable) and closes the sockets.
  // Idempotent.
  void Stop();

  // The mode in use (copy or zero-copy) and the queues served.
  XskMode mode() const { return mode_; }
  const std::vector<uint32_t>& queues() const { return queues_; }
  size_t worker_count() const { return workers_.size(); }
  // Busy poll: the kernel took the socket options on every socket.
  bool busy_poll() const { return busy_poll_; }

 private:
  Dataplane() = default;
  void Unregister();

  bpf::SteerProgram* steer_ = nullptr;
  std::vector<uint32_t> queues_;
  std::vector<uint32_t> registered_;  // Keys set in xsks_map.
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<WorkerStats> final_stats_;  // After Stop().
  bool stopped_ = false;
  XskMode mode_ = XskMode::kCopy;
  bool busy_poll_ = false;
};

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_DATAPLANE_H_
