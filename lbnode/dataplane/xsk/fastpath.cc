#include "lbnode/dataplane/xsk/fastpath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>

#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/flow_state.h"

namespace anylb::dataplane::xsk {
namespace {

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;

static_assert(sizeof(anylb_fastpath_key) == sizeof(scheduler::FlowKey));

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<uint64_t>(ts.tv_nsec);
}

scheduler::FlowKey ToFlowKey(const anylb_fastpath_key& key) {
  // The same bytes (steer_structs.h): field by field, the compiler makes
  // it one copy.
  scheduler::FlowKey flow;
  std::memcpy(flow.src.data(), key.saddr, 16);
  std::memcpy(flow.dst.data(), key.daddr, 16);
  flow.src_port = key.sport;
  flow.dst_port = key.dport;
  flow.protocol = key.proto;
  flow.family = key.family == 0 ? IpFamily::kV4 : IpFamily::kV6;
  return flow;
}

// TcpFlagsOf reads the TCP flags of the datagram at frame + l3 (which
// MakeFastPathEntry has read as TCP); false if the frame is too short.
bool TcpFlagsOf(std::span<const uint8_t> frame, size_t l3, uint8_t* flags) {
  if (frame.size() < l3 + 40) return false;
  const uint8_t* ip = frame.data() + l3;
  size_t l4 = 0;
  uint8_t proto = 0;
  if (ip[0] >> 4 == 4) {
    l4 = size_t{ip[0] & 0x0fu} * 4;
    proto = ip[9];
  } else {
    l4 = 40;
    proto = ip[6];
  }
  if (proto != kProtoTcp || frame.size() < l3 + l4 + 14) return false;
  *flags = ip[l4 + 13];
  return true;
}

// ServiceIdentity and the backend endpoint name a counter across
// snapshots, as the engine's carry-over does.
using ServiceIdentity = std::tuple<IpAddress, uint16_t, uint8_t>;

ServiceIdentity IdentityOf(const ServiceConfig& s) {
  return {s.vip, s.port, s.protocol};
}

}  // namespace

FastPath::FastPath(uint32_t queue, FastPathOptions options, Engine& engine)
    : queue_(queue), options_(std::move(options)), engine_(engine) {
  int cpus = libbpf_num_possible_cpus();
  cpus_ = cpus > 0 ? cpus : 1;
  percpu_.resize(static_cast<size_t>(cpus_));
  keys_.reserve(options_.installs_per_batch);
  values_.reserve(options_.installs_per_batch);
  scan_keys_.resize(std::max<uint32_t>(options_.scan_per_batch, 1));
  scan_values_.resize(scan_keys_.size());
  // A fresh generation: entries a previous worker of this queue left
  // behind (same program) are stale from now on.
  uint32_t current = 0;
  if (bpf_map_lookup_elem(options_.maps.generations, &queue_, &current) == 0) {
    generation_ = current;
  }
  SetGeneration();
  SizeSlots();
}

void FastPath::SetGeneration() {
  ++generation_;
  bpf_map_update_elem(options_.maps.generations, &queue_, &generation_,
                      BPF_ANY);
}

int64_t FastPath::Slot(uint32_t service, uint32_t backend) const {
  if (service >= slot_base_.size()) return -1;
  const uint64_t index = uint64_t{slot_base_[service]} + backend;
  if (index >= ANYLB_FASTPATH_SLOTS_PER_QUEUE) return -1;
  return static_cast<int64_t>(
      uint64_t{queue_} * ANYLB_FASTPATH_SLOTS_PER_QUEUE + index);
}

void FastPath::SizeSlots() {
  const std::shared_ptr<const EngineSnapshot>& snapshot =
      engine_.shared_snapshot();
  const auto& services = snapshot->services();
  // Carry the traffic over by service identity and backend endpoint.
  std::map<std::pair<ServiceIdentity, Endpoint>, TrafficCounters> old_backends;
  std::map<ServiceIdentity, TrafficCounters> old_services;
  if (snapshot_ != nullptr) {
    const auto& old = snapshot_->services();
    for (size_t s = 0; s < old.size() && s < services_.size(); ++s) {
      old_services[IdentityOf(old[s])] = services_[s];
      for (size_t b = 0; b < old[s].backends.size() && b < backends_[s].size();
           ++b) {
        old_backends[{IdentityOf(old[s]), old[s].backends[b].endpoint}] =
            backends_[s][b];
      }
    }
  }
  services_.assign(services.size(), TrafficCounters{});
  backends_.assign(services.size(), {});
  slot_base_.assign(services.size(), 0);
  uint32_t next = 0;
  for (size_t s = 0; s < services.size(); ++s) {
    const ServiceIdentity id = IdentityOf(services[s]);
    if (auto it = old_services.find(id); it != old_services.end()) {
      services_[s] = it->second;
    }
    backends_[s].assign(services[s].backends.size(), TrafficCounters{});
    for (size_t b = 0; b < services[s].backends.size(); ++b) {
      if (auto it = old_backends.find({id, services[s].backends[b].endpoint});
          it != old_backends.end()) {
        backends_[s][b] = it->second;
      }
    }
    slot_base_[s] = next;
    next += static_cast<uint32_t>(services[s].backends.size());
  }
  snapshot_ = snapshot;
  slots_used_ = std::min<uint32_t>(next, ANYLB_FASTPATH_SLOTS_PER_QUEUE);
  // Baselines: whatever the slots hold now (an earlier snapshot's use).
  slot_seen_.assign(slots_used_, anylb_fastpath_traffic{});
  for (uint32_t i = 0; i < slots_used_; ++i) {
    uint32_t key = queue_ * ANYLB_FASTPATH_SLOTS_PER_QUEUE + i;
    if (bpf_map_lookup_elem(options_.maps.traffic, &key, percpu_.data()) != 0)
      continue;
    for (const anylb_fastpath_traffic& t : percpu_) {
      slot_seen_[i].packets += t.packets;
      slot_seen_[i].bytes += t.bytes;
    }
  }
}

void FastPath::FoldTraffic() {
  for (size_t s = 0; s < slot_base_.size(); ++s) {
    for (size_t b = 0; b < backends_[s].size(); ++b) {
      const int64_t slot =
          Slot(static_cast<uint32_t>(s), static_cast<uint32_t>(b));
      if (slot < 0) continue;
      const uint32_t index = slot_base_[s] + static_cast<uint32_t>(b);
      uint32_t key = static_cast<uint32_t>(slot);
      if (bpf_map_lookup_elem(options_.maps.traffic, &key, percpu_.data()) !=
          0) {
        continue;
      }
      anylb_fastpath_traffic sum{};
      for (const anylb_fastpath_traffic& t : percpu_) {
        sum.packets += t.packets;
        sum.bytes += t.bytes;
      }
      const uint64_t packets = sum.packets - slot_seen_[index].packets;
      const uint64_t bytes = sum.bytes - slot_seen_[index].bytes;
      slot_seen_[index] = sum;
      if (packets == 0) continue;
      services_[s].packets += packets;
      services_[s].bytes += bytes;
      backends_[s][b].packets += packets;
      backends_[s][b].bytes += bytes;
      counters_.packets += packets;
      counters_.bytes += bytes;
    }
  }
}

void FastPath::OnSnapshot() {
  FoldTraffic();
  SetGeneration();
  SizeSlots();
}

void FastPath::Delete(const anylb_fastpath_key& key, uint64_t* reason) {
  if (bpf_map_delete_elem(options_.maps.flows, &key) != 0) return;
  ++counters_.removals;
  ++*reason;
}

void FastPath::AfterBatch(std::span<const Packet> packets, absl::Time now) {
  keys_.clear();
  values_.clear();
  const EngineSnapshot& snapshot = engine_.snapshot();
  scheduler::FlowTable& flows = engine_.flow_table();
  const uint64_t now_ns = MonotonicNs();
  for (const Packet& packet : packets) {
    const Verdict& v = packet.verdict;
    if (v.action != Action::kTransmit || v.to_sender) continue;
    const std::span<const uint8_t> out(packet.buffer.data() + v.offset,
                                       v.length);
    // DR keeps the datagram; TUN puts it behind outer headers. Try the
    // frame as a DR forward first, then as a tunnel's.
    bpf::FastPathEntry entry;
    scheduler::FlowEntry* flow = nullptr;
    bool tun = false;
    for (bpf::FastPathMode mode :
         {bpf::FastPathMode::kDr, bpf::FastPathMode::kTun}) {
      if (!bpf::MakeFastPathEntry(out, mode, snapshot.node().mtu, &entry)) {
        continue;
      }
      flow = flows.Lookup(ToFlowKey(entry.key), now);
      if (flow == nullptr) continue;
      const uint32_t s = flow->value().service;
      if (s >= snapshot.services().size()) {
        flow = nullptr;
        continue;
      }
      const ForwardingMode m = snapshot.services()[s].mode;
      if ((mode == bpf::FastPathMode::kDr && m == ForwardingMode::kDr) ||
          (mode == bpf::FastPathMode::kTun && m == ForwardingMode::kTun)) {
        tun = mode == bpf::FastPathMode::kTun;
        break;
      }
      flow = nullptr;
    }
    if (flow == nullptr) continue;
    if (entry.key.proto == kProtoTcp) {
      uint8_t flags = 0;
      const size_t l3 = entry.value.l2_len +
                        (tun ? entry.value.hdr_len - entry.value.l2_len : 0);
      if (TcpFlagsOf(out, l3, &flags) && (flags & (kTcpFin | kTcpRst))) {
        Delete(entry.key, &counters_.removed_closed);
        continue;
      }
      if (flow->state() != scheduler::FlowState::kTcpEstablished) continue;
    } else if (entry.key.proto != kProtoUdp) {
      continue;
    }
    // Past the batch's quota the flow waits for its next packet (FIN/RST
    // deletions above are never skipped).
    if (keys_.size() >= options_.installs_per_batch) continue;
    const int64_t slot = Slot(flow->value().service, flow->value().backend);
    if (slot < 0) continue;
    entry.value.owner_queue = static_cast<uint16_t>(queue_);
    entry.value.generation = generation_;
    entry.value.tx_port = options_.tx_ifindex;
    entry.value.slot = static_cast<uint32_t>(slot);
    entry.value.last_seen_ns = now_ns;
    keys_.push_back(entry.key);
    values_.push_back(entry.value);
  }
  // One pass over the batch's staged entries. A new entry is counted as an
  // install; one that is there already (a punted packet, or a stale
  // generation) is replaced and counted as a reinstall.
  for (size_t i = 0; i < keys_.size(); ++i) {
    int error = bpf_map_update_elem(options_.maps.flows, &keys_[i], &values_[i],
                                    BPF_NOEXIST);
    if (error == 0) {
      ++counters_.installs;
      continue;
    }
    if (error == -EEXIST && bpf_map_update_elem(options_.maps.flows, &keys_[i],
                                                &values_[i], BPF_EXIST) == 0) {
      ++counters_.reinstalls;
      continue;
    }
    ++counters_.install_errors;
  }
}

void FastPath::Maintain(absl::Time now) {
  if (!scanning_) {
    if (now - last_round_ < options_.scan_interval) return;
    last_round_ = now;
    scanning_ = true;
    cursor_valid_ = false;
    round_entries_ = 0;
    prev_round_start_ns_ = round_start_ns_;
    round_start_ns_ = MonotonicNs();
    FoldTraffic();
  }
  ScanChunk(now);
}

void FastPath::ScanChunk(absl::Time now) {
  uint32_t count = static_cast<uint32_t>(scan_keys_.size());
  anylb_fastpath_key next{};
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int error = bpf_map_lookup_batch(
      options_.maps.flows, cursor_valid_ ? &cursor_ : nullptr, &next,
      scan_keys_.data(), scan_values_.data(), &count, &opts);
  const bool done = error != 0;  // -ENOENT at the end (or a failure).
  if (error != 0 && error != -ENOENT) count = 0;
  cursor_ = next;
  cursor_valid_ = true;
  scheduler::FlowTable& flows = engine_.flow_table();
  for (uint32_t i = 0; i < count; ++i) {
    const anylb_fastpath_value& v = scan_values_[i];
    if (v.owner_queue != queue_) continue;
    const anylb_fastpath_key& key = scan_keys_[i];
    if (v.generation != generation_) {
      Delete(key, &counters_.removed_stale);
      continue;
    }
    scheduler::FlowEntry* flow = flows.Lookup(ToFlowKey(key), now);
    if (flow == nullptr) {
      Delete(key, &counters_.removed_no_flow);
      continue;
    }
    if (key.proto == kProtoTcp &&
        flow->state() != scheduler::FlowState::kTcpEstablished) {
      Delete(key, &counters_.removed_closed);
      continue;
    }
    ++round_entries_;
    // Traffic since the previous round: what a hit would have done.
    if (v.last_seen_ns > prev_round_start_ns_ &&
        engine_.RefreshFlow(ToFlowKey(key), now)) {
      ++counters_.refreshes;
    }
  }
  if (!done) return;
  scanning_ = false;
  ++counters_.scan_rounds;
  counters_.entries = round_entries_;
  // Entries this worker made and did not delete that the round did not
  // find were evicted by the LRU (or made behind the round's cursor: an
  // estimate, kept monotonic).
  const uint64_t made = counters_.installs;
  const uint64_t accounted = counters_.removals + round_entries_;
  if (made > accounted && made - accounted > counters_.evictions) {
    counters_.evictions = made - accounted;
  }
}

}  // namespace anylb::dataplane::xsk
