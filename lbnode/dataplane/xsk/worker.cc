#include "lbnode/dataplane/xsk/worker.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/status/status.h"

namespace anylb::dataplane::xsk {
namespace {

// RingEntries: entries between a ring's consumer and producer, read from
// the indices the kernel and we share.
uint32_t RingEntries(const uint32_t* producer, const uint32_t* consumer) {
  return __atomic_load_n(producer, __ATOMIC_ACQUIRE) -
         __atomic_load_n(consumer, __ATOMIC_ACQUIRE);
}

}  // namespace

Worker::Worker(uint32_t queue, std::unique_ptr<Umem> umem,
               std::unique_ptr<XskSocket> rx_socket,
               std::unique_ptr<XskSocket> tx_socket,
               std::unique_ptr<Engine> engine, WorkerOptions options)
    : queue_(queue),
      options_(std::move(options)),
      umem_(std::move(umem)),
      rx_socket_(std::move(rx_socket)),
      tx_socket_(std::move(tx_socket)),
      tx_(tx_socket_ != nullptr ? tx_socket_.get() : rx_socket_.get()),
      engine_(std::move(engine)),
      parked_(options_.park_capacity) {
  options_.batch_size = std::clamp<uint32_t>(options_.batch_size, 1, kMaxBatch);
  tx_staged_.resize(size_t{options_.batch_size} + options_.park_capacity);
  rx_packets_.resize(options_.batch_size);
  rx_addrs_.resize(options_.batch_size);
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.queue = queue_;
  }
  if (options_.fast_path.has_value()) {
    fastpath_ =
        std::make_unique<FastPath>(queue_, *options_.fast_path, *engine_);
  }
  if (options_.neighbor_generation != nullptr) {
    seen_generation_ =
        options_.neighbor_generation->load(std::memory_order_acquire);
  }
}

Worker::~Worker() { Stop(); }

void Worker::Start() {
  last_progress_ns_.store(absl::ToUnixNanos(absl::Now()),
                          std::memory_order_relaxed);
  // Frames for the kernel before the socket can receive anything (the
  // Dataplane puts it into xsks_map after Start): without them the first
  // frames would be dropped while the thread starts. The thread is not
  // running yet, and creating it orders these writes before its reads.
  Refill();
  thread_ = std::thread([this] { Run(); });
}

void Worker::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

void Worker::PostSnapshot(std::shared_ptr<const EngineSnapshot> snapshot) {
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    posted_ = std::move(snapshot);
  }
  snapshot_posted_.store(true, std::memory_order_release);
}

WorkerStats Worker::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

void Worker::Run() {
  while (!stop_.load(std::memory_order_acquire)) RunOnce(absl::Now());
  Drain();
}

void Worker::RunOnce(absl::Time now) {
  last_progress_ns_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
  if (snapshot_posted_.load(std::memory_order_acquire)) AdoptSnapshot();
  if (options_.before_batch) options_.before_batch(queue_);
  CompleteTx();
  RetryParked(now);
  Refill();
  uint32_t received = ReceiveBatch(now);
  FlushTx();
  if (fastpath_ != nullptr) {
    // The batch's frames are on the TX ring or the free stack, unchanged
    // until the next Refill: the engine's output is still there to read.
    if (received != 0) {
      fastpath_->AfterBatch(
          std::span<const Packet>(rx_packets_.data(), received), now);
    }
    fastpath_->Maintain(now);
  }
  if (options_.expire_per_batch != 0) {
    counters_.flows_expired +=
        engine_->ExpireSome(now, options_.expire_per_batch);
  }
  if (received == 0) Wait();
  if (now - last_publish_ >= options_.stats_interval) Publish(now, false);
}

void Worker::AdoptSnapshot() {
  std::shared_ptr<const EngineSnapshot> snapshot;
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot = std::move(posted_);
    posted_ = nullptr;
    snapshot_posted_.store(false, std::memory_order_relaxed);
  }
  if (snapshot == nullptr) return;
  absl::Status status = engine_->UpdateSnapshot(std::move(snapshot));
  if (status.ok()) {
    ++counters_.snapshot_swaps;
    if (fastpath_ != nullptr) fastpath_->OnSnapshot();
  } else {
    ++counters_.snapshot_errors;
    last_snapshot_error_ = status.ToString();
  }
}

void Worker::Refill() {
  xsk_ring_prod* fill = rx_socket_->fill();
  uint32_t free = umem_->free_count();
  // Exact room (one load of the kernel's consumer index when not all free).
  uint32_t room = xsk_prod_nb_free(fill, fill->size);
  if (room >= fill->size && free == 0) ++counters_.fill_empty;
  uint32_t n = std::min(room, free);
  if (n == 0) return;
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(fill, n, &idx) != n) return;
  for (uint32_t i = 0; i < n; ++i) {
    *xsk_ring_prod__fill_addr(fill, idx + i) = umem_->PopFree();
  }
  xsk_ring_prod__submit(fill, n);
  fill_outstanding_ += n;
}

void Worker::CompleteTx() {
  xsk_ring_cons* completion = tx_->completion();
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(completion, completion->size, &idx);
  if (n == 0) return;
  for (uint32_t i = 0; i < n; ++i) {
    umem_->PushFree(*xsk_ring_cons__comp_addr(completion, idx + i));
  }
  xsk_ring_cons__release(completion, n);
  tx_outstanding_ -= n;
}

uint32_t Worker::ReceiveBatch(absl::Time now) {
  xsk_ring_cons* rx = rx_socket_->rx();
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(rx, options_.batch_size, &idx);
  if (n == 0) return 0;
  ++counters_.batches;
  fill_outstanding_ -= n;
  // One engine call for the batch: it parses and hashes every frame and
  // prefetches their flow-table buckets before the lookups.
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* desc = xsk_ring_cons__rx_desc(rx, idx + i);
    ++counters_.rx_packets;
    counters_.rx_bytes += desc->len;
    const uint64_t base = umem_->ChunkBase(desc->addr);
    Packet& packet = rx_packets_[i];
    packet.buffer = umem_->Chunk(desc->addr);
    packet.headroom = desc->addr - base;
    packet.frame_len = desc->len;
    rx_addrs_[i] = desc->addr;
  }
  xsk_ring_cons__release(rx, n);
  engine_->ProcessBatch(std::span<Packet>(rx_packets_.data(), n), now);
  for (uint32_t i = 0; i < n; ++i) {
    Apply(rx_addrs_[i], static_cast<uint32_t>(rx_packets_[i].frame_len),
          rx_packets_[i].verdict, now, nullptr);
  }
  return n;
}

void Worker::Handle(uint64_t addr, uint32_t length, absl::Time now,
                    const ParkedFrame* parked) {
  const uint64_t base = umem_->ChunkBase(addr);
  const Verdict verdict =
      engine_->Process(umem_->Chunk(addr), addr - base, length, now);
  Apply(addr, length, verdict, now, parked);
}

void Worker::Apply(uint64_t addr, uint32_t length, const Verdict& verdict,
                   absl::Time now, const ParkedFrame* parked) {
  const uint64_t base = umem_->ChunkBase(addr);
  switch (verdict.action) {
    case Action::kTransmit:
      if (parked != nullptr) ++counters_.parked_forwarded;
      StageTx(base + verdict.offset, verdict.length);
      return;
    case Action::kPass:
      ++counters_.pass_unavailable;
      umem_->PushFree(addr);
      return;
    case Action::kDrop:
      break;
  }
  if (verdict.drop_reason != DropReason::kNoNeighbor) {
    ++counters_.dropped;
    umem_->PushFree(addr);
    return;
  }
  // The engine left the bytes unchanged: wait for the neighbour.
  ParkedFrame frame{addr, length, parked != nullptr ? parked->parked_at : now};
  if (parked_.Push(frame)) {
    if (parked == nullptr) ++counters_.parked;
  } else {
    ++counters_.neighbor_wait_overflow;
    umem_->PushFree(addr);
  }
}

void Worker::RetryParked(absl::Time now) {
  if (parked_.empty()) return;
  bool due = now - last_retry_ >= options_.park_retry_interval;
  if (options_.neighbor_generation != nullptr) {
    uint64_t generation =
        options_.neighbor_generation->load(std::memory_order_acquire);
    if (generation != seen_generation_) {
      seen_generation_ = generation;
      due = true;
    }
  }
  if (due) last_retry_ = now;
  // Each parked frame once, oldest first; a frame that still waits goes to
  // the back with its original time.
  for (size_t n = parked_.size(); n > 0; --n) {
    ParkedFrame frame;
    parked_.Pop(&frame);
    if (now - frame.parked_at >= options_.park_timeout) {
      ++counters_.neighbor_wait_timeout;
      umem_->PushFree(frame.addr);
    } else if (due) {
      Handle(frame.addr, frame.length, now, &frame);
    } else {
      parked_.Push(frame);
    }
  }
}

void Worker::StageTx(uint64_t addr, uint32_t length) {
  // Room is guaranteed: at most one stage per RX descriptor or parked
  // frame, and FlushTx empties the stage every iteration.
  xdp_desc& desc = tx_staged_[tx_count_++];
  desc.addr = addr;
  desc.len = length;
  desc.options = 0;
}

void Worker::FlushTx() {
  if (tx_count_ == 0) return;
  xsk_ring_prod* tx = tx_->tx();
  uint32_t n = tx_count_;
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(tx, n, &idx) != n) {
    // Make room: collect completions, nudge the kernel, take what fits.
    Kick(*tx_);
    CompleteTx();
    n = std::min(n, xsk_prod_nb_free(tx, n));
    if (n > 0 && xsk_ring_prod__reserve(tx, n, &idx) != n) n = 0;
  }
  for (uint32_t i = 0; i < n; ++i) {
    *xsk_ring_prod__tx_desc(tx, idx + i) = tx_staged_[i];
    counters_.tx_bytes += tx_staged_[i].len;
  }
  for (uint32_t i = n; i < tx_count_; ++i) {
    ++counters_.tx_ring_full;
    umem_->PushFree(tx_staged_[i].addr);
  }
  tx_count_ = 0;
  if (n == 0) return;
  xsk_ring_prod__submit(tx, n);
  counters_.tx_packets += n;
  tx_outstanding_ += n;
  Kick(*tx_);
}

void Worker::Kick(XskSocket& socket) {
  if (!xsk_ring_prod__needs_wakeup(socket.tx())) return;
  if (sendto(socket.fd(), nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) return;
  // Busy or out of buffers: the frames stay on the ring for the next kick.
  if (errno == EAGAIN || errno == EBUSY || errno == ENOBUFS ||
      errno == ENETDOWN) {
    return;
  }
  ++counters_.tx_kick_errors;
}

void Worker::Wait() {
  ++counters_.polls;
  if (tx_outstanding_ > 0) Kick(*tx_);
  if (options_.busy_poll) {
    // Drives the socket's busy poll (SO_PREFER_BUSY_POLL) without sleeping.
    recvfrom(rx_socket_->fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    return;
  }
  // Frames still in flight on TX: come back soon to complete them.
  int timeout_ms =
      tx_outstanding_ > 0
          ? 1
          : static_cast<int>(absl::ToInt64Milliseconds(options_.poll_timeout));
  pollfd p = {rx_socket_->fd(), POLLIN, 0};
  poll(&p, 1, timeout_ms);
}

void Worker::Drain() {
  // Frames the kernel delivered after the last batch.
  xsk_ring_cons* rx = rx_socket_->rx();
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(rx, rx->size, &idx);
  for (uint32_t i = 0; i < n; ++i) {
    umem_->PushFree(xsk_ring_cons__rx_desc(rx, idx + i)->addr);
  }
  if (n > 0) xsk_ring_cons__release(rx, n);
  fill_outstanding_ -= n;
  counters_.rx_discarded_at_stop += n;
  ParkedFrame frame;
  while (parked_.Pop(&frame)) {
    ++counters_.neighbor_wait_stopped;
    umem_->PushFree(frame.addr);
  }
  const absl::Time deadline = absl::Now() + options_.drain_timeout;
  while (true) {
    CompleteTx();
    if (tx_outstanding_ == 0 || absl::Now() >= deadline) break;
    Kick(*tx_);
    absl::SleepFor(absl::Milliseconds(1));
  }
  Publish(absl::Now(), true);
}

FrameCounts Worker::CountFrames() {
  FrameCounts counts;
  counts.total = umem_->frame_count();
  counts.free = umem_->free_count();
  const xsk_ring_prod* fill = rx_socket_->fill();
  counts.fill = RingEntries(fill->producer, fill->consumer);
  const xsk_ring_cons* rx = rx_socket_->rx();
  counts.rx = RingEntries(rx->producer, rx->consumer);
  counts.tx_in_flight = tx_outstanding_;
  counts.parked = parked_.size();
  return counts;
}

void Worker::Publish(absl::Time now, bool stopped) {
  last_publish_ = now;
  WorkerStats stats;
  stats.queue = queue_;
  stats.published = now;
  stats.worker = counters_;
  stats.engine = engine_->counters();
  stats.snapshot = engine_->shared_snapshot();
  stats.flows = engine_->flow_table().size();
  const auto& services = engine_->snapshot().services();
  stats.services.reserve(services.size());
  stats.backends.resize(services.size());
  stats.loads.resize(services.size());
  // The fast path's traffic is indexed by the same snapshot (it resizes
  // on every swap the engine makes).
  const bool with_fastpath =
      fastpath_ != nullptr && fastpath_->services().size() == services.size();
  for (size_t s = 0; s < services.size(); ++s) {
    stats.services.push_back(engine_->service_counters(s));
    if (with_fastpath) {
      stats.services[s].packets += fastpath_->services()[s].packets;
      stats.services[s].bytes += fastpath_->services()[s].bytes;
    }
    std::span<const scheduler::SchedBackend> sched = engine_->backends(s);
    for (size_t b = 0; b < services[s].backends.size(); ++b) {
      stats.backends[s].push_back(engine_->backend_counters(s, b));
      if (with_fastpath && b < fastpath_->backends()[s].size()) {
        stats.backends[s][b].packets += fastpath_->backends()[s][b].packets;
        stats.backends[s][b].bytes += fastpath_->backends()[s][b].bytes;
      }
      BackendLoad load;
      if (b < sched.size()) {
        load.active = sched[b].active;
        load.inactive = sched[b].inactive;
      }
      stats.loads[s].push_back(load);
    }
  }
  absl::StatusOr<XskKernelStats> kernel = rx_socket_->KernelStats();
  if (kernel.ok()) stats.kernel = *kernel;
  stats.frames = CountFrames();
  stats.last_snapshot_error = last_snapshot_error_;
  stats.stopped = stopped;
  if (fastpath_ != nullptr) {
    stats.fast_path = true;
    stats.fastpath = fastpath_->counters();
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = std::move(stats);
}

}  // namespace anylb::dataplane::xsk
