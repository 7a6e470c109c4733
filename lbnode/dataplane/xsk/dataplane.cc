#include "lbnode/dataplane/xsk/dataplane.h"

#include <bpf/bpf.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/bpf/steer_structs.h"
#include "lbnode/dataplane/xsk/errno_status.h"

namespace anylb::dataplane::xsk {
absl::StatusOr<std::unique_ptr<Dataplane>> Dataplane::Create(
    const DataplaneOptions& options, bpf::SteerProgram* steer,
    const EngineFactory& make_engine) {
  if (options.interface.empty()) {
    return absl::InvalidArgumentError("dataplane: no interface given");
  }
  if (options.worker.batch_size == 0 || options.worker.batch_size > kMaxBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataplane: batch size ", options.worker.batch_size,
                     " is out of range 1..", kMaxBatch));
  }
  if (!make_engine) {
    return absl::InvalidArgumentError("dataplane: no engine factory");
  }
  std::unique_ptr<Dataplane> dp(new Dataplane());
  dp->steer_ = steer;
  dp->queues_ = options.queues;
  if (dp->queues_.empty()) {
    ASSIGN_OR_RETURN(uint32_t count, RxQueueCount(options.interface));
    for (uint32_t q = 0; q < count; ++q) dp->queues_.push_back(q);
  }
  std::vector<uint32_t> sorted = dp->queues_;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataplane: a queue of \"", options.interface, "\" is listed twice"));
  }
  if (steer != nullptr && sorted.back() >= ANYLB_STEER_MAX_QUEUES) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataplane: queue ", sorted.back(), " of \"",
                     options.interface, "\" is past the steering program's ",
                     ANYLB_STEER_MAX_QUEUES, " queues"));
  }
  const bool separate_tx = !options.tx_interface.empty() &&
                           options.tx_interface != options.interface;
  std::optional<FastPathOptions> fast_path;
  if (options.fast_path) {
    if (steer == nullptr) {
      return absl::InvalidArgumentError(
          "dataplane: the fast path needs the steering program");
    }
    fast_path.emplace();
    fast_path->maps = steer->fastpath_maps();
    fast_path->installs_per_batch = options.fast_path_installs_per_batch;
    if (separate_tx) {
      const unsigned ifindex = if_nametoindex(options.tx_interface.c_str());
      if (ifindex == 0) {
        return absl::NotFoundError(absl::StrCat("dataplane: TX interface \"",
                                                options.tx_interface,
                                                "\": no such interface"));
      }
      RETURN_IF_ERROR(steer->AddFastPathTxPort(static_cast<int>(ifindex)));
      fast_path->tx_ifindex = ifindex;
    }
  }
  dp->busy_poll_ = options.busy_poll;
  for (size_t i = 0; i < dp->queues_.size(); ++i) {
    const uint32_t queue = dp->queues_[i];
    XskSocketOptions rx;
    rx.interface = options.interface;
    rx.queue = queue;
    rx.mode = options.mode;
    rx.rx_ring_size = options.rx_ring_size;
    rx.tx_ring_size = separate_tx ? 0 : options.tx_ring_size;
    rx.busy_poll = options.busy_poll;
    rx.busy_poll_budget = options.worker.batch_size;
    ASSIGN_OR_RETURN(UmemAndSocket port, CreateUmemAndSocket(options.umem, rx));
    if (i == 0) dp->mode_ = port.socket->mode();
    dp->busy_poll_ = dp->busy_poll_ && port.socket->busy_poll();
    std::unique_ptr<XskSocket> tx_socket;
    if (separate_tx) {
      XskSocketOptions tx = rx;
      tx.interface = options.tx_interface;
      tx.rx_ring_size = 0;
      tx.tx_ring_size = options.tx_ring_size;
      tx.mode = port.socket->mode();
      ASSIGN_OR_RETURN(tx_socket, XskSocket::Create(*port.umem, tx));
    }
    absl::StatusOr<std::unique_ptr<Engine>> engine = make_engine(queue);
    if (!engine.ok()) {
      return absl::Status(
          engine.status().code(),
          absl::StrCat("making the engine for queue ", queue, " of \"",
                       options.interface, "\": ", engine.status().message()));
    }
    WorkerOptions worker_options = options.worker;
    worker_options.busy_poll = options.busy_poll;
    worker_options.fast_path = fast_path;
    dp->workers_.push_back(std::make_unique<Worker>(
        queue, std::move(port.umem), std::move(port.socket),
        std::move(tx_socket), *std::move(engine), std::move(worker_options)));
  }
  for (auto& worker : dp->workers_) worker->Start();
  if (steer != nullptr) {
    for (auto& worker : dp->workers_) {
      uint32_t key = worker->queue();
      int fd = worker->rx_socket().fd();
      int err = bpf_map_update_elem(steer->xsks_map_fd(), &key, &fd, BPF_ANY);
      if (err != 0) {
        return ErrnoStatus(err, absl::StrCat("putting the AF_XDP socket of \"",
                                             options.interface, "\" queue ",
                                             key, " into xsks_map"));
      }
      dp->registered_.push_back(key);
    }
  }
  return dp;
}

Dataplane::~Dataplane() { Stop(); }

void Dataplane::PostSnapshot(
    const std::shared_ptr<const EngineSnapshot>& snapshot) {
  for (auto& worker : workers_) worker->PostSnapshot(snapshot);
}

std::vector<WorkerStats> Dataplane::Stats() const {
  if (stopped_) return final_stats_;
  std::vector<WorkerStats> stats;
  stats.reserve(workers_.size());
  for (const auto& worker : workers_) stats.push_back(worker->Stats());
  return stats;
}

absl::Time Dataplane::OldestProgress() const {
  absl::Time oldest = absl::InfiniteFuture();
  for (const auto& worker : workers_) {
    oldest = std::min(oldest, worker->last_progress());
  }
  return oldest;
}

void Dataplane::Unregister() {
  for (uint32_t key : registered_) {
    // The queue's fast-path entries go stale: their frames take the
    // (now socketless) AF_XDP path, i.e. the kernel's.
    const int generations = steer_->fastpath_maps().generations;
    uint32_t generation = 0;
    if (bpf_map_lookup_elem(generations, &key, &generation) == 0) {
      ++generation;
      bpf_map_update_elem(generations, &key, &generation, BPF_ANY);
    }
    int err = bpf_map_delete_elem(steer_->xsks_map_fd(), &key);
    if (err != 0 && err != -ENOENT) {
      std::fprintf(
          stderr, "xsk: %s\n",
          std::string(ErrnoStatus(err, absl::StrCat("removing queue ", key,
                                                    " from xsks_map"))
                          .message())
              .c_str());
    }
  }
  registered_.clear();
}

void Dataplane::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // No new frames for the sockets, then drain and close them.
  Unregister();
  for (auto& worker : workers_) worker->Stop();
  final_stats_.clear();
  for (auto& worker : workers_) final_stats_.push_back(worker->Stats());
  workers_.clear();
}

}  // namespace anylb::dataplane::xsk
