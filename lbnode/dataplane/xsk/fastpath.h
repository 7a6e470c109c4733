// FastPath: one worker's side of the XDP fast path for established DR and
// TUN flows (bpf/steer_structs.h, README.md "Fast path").
//
// The first packets of a flow come through AF_XDP and the engine as
// always. After each batch (AfterBatch) the worker looks at what the engine
// transmitted: a forward of a DR or TUN flow that is established (TCP past
// the handshake, or UDP) gets its rewrite built from the engine's output
// (bpf::MakeFastPathEntry) and inserted into the steering program's LRU
// map, at most FastPathOptions::installs_per_batch per batch, written
// after the batch's verdicts are applied (a syscall each). steer_xdp then
// rewrites and transmits the flow's later packets itself. A TCP FIN or RST
// (which the program always leaves to the engine) deletes the entry.
//
// Maintain (once per loop iteration) walks the map a bounded chunk at a
// time, one round per scan_interval. For each entry of this worker: an
// entry of an old generation is deleted; if the engine's flow is gone (or,
// TCP, no longer established) the entry is deleted; if the entry carried
// packets since the last round the engine's flow is refreshed
// (Engine::RefreshFlow, what a hit does) so that its idle timeout, and so
// weight-0 and removal semantics, stay right. Once per round the per-(service, backend)
// traffic slots are read and their deltas added to this worker's fast-path
// traffic, which Worker::Publish adds into the per-VIP / per-backend
// counters.
//
// Snapshot swaps (OnSnapshot): the fast-path traffic is folded first, then
// this queue's generation is bumped, which makes every entry of this
// worker stale at once (steer_xdp sends their packets to AF_XDP, the engine
// decides with the new snapshot, and the next established packet installs
// a fresh entry); the scan deletes the stale entries. Traffic counters carry
// over by service (VIP, port, protocol) and backend endpoint, as the
// engine's do.
//
// Ownership and threading: a FastPath belongs to one Worker and is used on
// its thread only (after construction). The map file descriptors belong to
// the SteerProgram, which outlives the Dataplane. Entries carry their
// owner queue; a worker touches only its own. Installing allocates
// nothing; OnSnapshot allocates (it runs between batches, on a swap).

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_FASTPATH_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_FASTPATH_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/time/time.h"
#include "lbnode/dataplane/bpf/fastpath_entry.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/bpf/steer_structs.h"
#include "lbnode/dataplane/engine.h"

namespace anylb::dataplane::xsk {

// FastPathOptions tune one worker's fast path.
struct FastPathOptions {
  bpf::FastPathMaps maps;  // From SteerProgram::fastpath_maps().
  // The egress interface's index when it is not the RX one (it must be in
  // the program's tx ports: SteerProgram::AddFastPathTxPort); 0 = XDP_TX.
  uint32_t tx_ifindex = 0;
  uint32_t installs_per_batch = 16;
  absl::Duration scan_interval = absl::Seconds(1);
  uint32_t scan_per_batch = 128;  // Map entries read per loop iteration.
};

// FastPathCounters are one worker's fast-path counters.
struct FastPathCounters {
  uint64_t installs = 0;         // New entries written.
  uint64_t reinstalls = 0;       // Entries rewritten (punted or stale ones).
  uint64_t install_errors = 0;   // Writes the kernel refused.
  uint64_t removals = 0;         // Entries this worker deleted (below).
  uint64_t removed_closed = 0;   // ... on a FIN/RST or a closing flow.
  uint64_t removed_no_flow = 0;  // ... the engine's flow was gone.
  uint64_t removed_stale = 0;    // ... of an old generation.
  uint64_t refreshes = 0;        // Engine flows kept alive by the scan.
  uint64_t scan_rounds = 0;
  uint64_t entries = 0;  // This worker's entries seen by the last round.
  // Installed, never deleted, not found by a scan round: evicted by the
  // LRU (an estimate: entries made behind a round's cursor look evicted
  // until the next round; kept monotonic, so it may over-count).
  uint64_t evictions = 0;
  uint64_t packets = 0;  // Frames the program forwarded for this worker.
  uint64_t bytes = 0;
};

// FastPath: see the file comment.
class FastPath {
 public:
  // `engine` is the worker's; the FastPath sizes itself for its snapshot.
  FastPath(uint32_t queue, FastPathOptions options, Engine& engine);
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  // AfterBatch installs / removes entries for a batch the engine has just
  // processed (verdicts set, frames not yet handed to the kernel).
  void AfterBatch(std::span<const Packet> packets, absl::Time now);

  // Maintain does the bounded scan work of one loop iteration.
  void Maintain(absl::Time now);

  // OnSnapshot: the engine has adopted a new snapshot (see file comment).
  void OnSnapshot();

  const FastPathCounters& counters() const { return counters_; }
  // The fast path's traffic by the engine's snapshot indexes (packets and
  // bytes only), for the published per-VIP / per-backend counters.
  const std::vector<TrafficCounters>& services() const { return services_; }
  const std::vector<std::vector<TrafficCounters>>& backends() const {
    return backends_;
  }

 private:
  // Slot of (service, backend) in the traffic map, or -1.
  int64_t Slot(uint32_t service, uint32_t backend) const;
  void SizeSlots();
  // FoldTraffic adds the slots' growth since the last read.
  void FoldTraffic();
  void Delete(const anylb_fastpath_key& key, uint64_t* reason);
  void ScanChunk(absl::Time now);
  void SetGeneration();

  const uint32_t queue_;
  FastPathOptions options_;
  Engine& engine_;
  uint32_t generation_ = 0;
  int cpus_ = 1;
  FastPathCounters counters_;
  // Slots: base of each service's backends in this queue's range.
  std::vector<uint32_t> slot_base_;
  uint32_t slots_used_ = 0;
  std::vector<anylb_fastpath_traffic> slot_seen_;  // Summed over CPUs.
  std::vector<anylb_fastpath_traffic> percpu_;     // One read's buffer.
  std::vector<TrafficCounters> services_;
  std::vector<std::vector<TrafficCounters>> backends_;
  std::shared_ptr<const EngineSnapshot> snapshot_;  // What they index.
  // Staged installs of the current batch.
  std::vector<anylb_fastpath_key> keys_;
  std::vector<anylb_fastpath_value> values_;
  // The scan: a round in progress and its batch cursor.
  bool scanning_ = false;
  bool cursor_valid_ = false;
  anylb_fastpath_key cursor_{};
  std::vector<anylb_fastpath_key> scan_keys_;
  std::vector<anylb_fastpath_value> scan_values_;
  uint64_t round_entries_ = 0;
  absl::Time last_round_ = absl::InfinitePast();
  uint64_t round_start_ns_ = 0;  // CLOCK_MONOTONIC (bpf_ktime_get_ns).
  uint64_t prev_round_start_ns_ = 0;
};

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_FASTPATH_H_
