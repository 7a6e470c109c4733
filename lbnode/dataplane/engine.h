// Engine: one worker's packet engine for the DR and TUN forwarding modes.
//
// Ownership and threading (share nothing): one Engine per worker thread. It
// owns its FlowTable, one Scheduler and one SchedBackend array (this
// worker's active/inactive counts) per service, and its counters. It reads
// an immutable EngineSnapshot shared with other workers. Create() and
// UpdateSnapshot() run on the worker's thread between batches (they
// allocate); Process() never allocates, locks or throws.
//
// Per packet (Process):
//  1. Parse. Not IP (ARP, LLDP, ...) → kPass. Malformed → kDrop(reason).
//  2. Destination not a VIP of any service → kPass (the kernel's traffic).
//  3. The flow key: MakeFlowKey (fragments: the 3-tuple, so every fragment
//     of a datagram maps alike), or for an ICMP error addressed to a VIP
//     MakeIcmpErrorFlowKey (the client → VIP flow the quoted packet belongs
//     to). Non-error ICMP to a VIP (ping) → kPass: the kernel answers if the
//     VIP is on a local interface.
//  4. Flow table lookup. A hit made under the current snapshot names its
//     service (the key holds VIP, port and protocol), so the hit path skips
//     the service lookup. Otherwise:
//     service by (VIP, port, protocol), falling back to the all-ports
//     service. None → kDrop(no_service): traffic to a VIP on a port we do
//     not serve is dropped and counted, never handed to the kernel. A
//     non-first fragment has no port: it is found through its flow (the
//     first fragment created it); without one only an all-ports service can
//     take it, else kDrop(no_flow).
//  5. Flow hit → the flow's backend; TCP state follows OnTcpSegment
//     with kClientToServerOnly (replies bypass the director). Miss → the
//     service's scheduler picks (kDrop(no_backend) if none can take it), the
//     flow is inserted (kDrop(flow_table_full) if the table refuses it, the
//     SYN-flood guard) and counted on its backend. ICMP errors never create
//     flows: a miss is kDrop(no_flow). Fragment flows are kept in state
//     OTHER (no TCP state machine on fragments).
//  6. Rewrite (below) → kTransmit.
//
// DR: destination MAC := backend MAC, source MAC := node MAC; nothing else
// changes (no port mapping; TTL untouched: the director is an L2 hop).
//
// TUN: outer headers are prepended in the headroom in front of the IP
// header; the Ethernet header (and any 802.1Q tag) is rewritten in front of
// them: destination MAC from the NextHopResolver for the backend address
// (unresolved → kDrop(no_neighbor)), source MAC = node MAC. Outer IPv4: DF
// set, ID 0 (atomic datagram, RFC 6864 §4.1), TTL = node outer_ttl, TOS =
// inner TOS / traffic class, protocol 4 / 41 / 17. Outer IPv6: traffic
// class copied, flow label from the flow hash (RFC 6438), hop limit =
// outer_ttl, next header 41 / 4 / 17. GUE: UDP destination = gue_port,
// source = 49152 + flow hash mod 16384 (so real servers spread tunnels over
// RSS queues), checksum 0 over IPv4 (RFC 768 allows it; the inner packet
// carries its own checksums) and computed over IPv6 (RFC 8200 §8.1; the
// RFC 6935 zero-checksum exception needs the receiver to opt in per port,
// which our decap program cannot promise). The inner packet is untouched.
//
// MTU (TUN): when inner datagram + overhead exceeds the node MTU:
//  * IPv4 with DF, or IPv6: reply to the client with ICMP "fragmentation
//    needed" (RFC 792, RFC 1191: type 3 code 4, next-hop MTU = MTU −
//    overhead) or ICMPv6 "packet too big" (RFC 4443 §3.2, MTU = MTU −
//    overhead), built in place in the same buffer, from the VIP (the address
//    the client sent to, so its PMTU cache and any stateful firewall relate
//    it to the flow), TTL 64, quoting as much of the packet as fits in 576 /
//    1280 bytes. Verdict kTransmit with to_sender = true. Rate-limited by a
//    token bucket per engine; a suppressed reply is kDrop(mtu_exceeded) and
//    counted in icmp_too_big_suppressed. Either way drops[mtu_exceeded]
//    counts the original packet.
//  * IPv4 without DF (including fragments): kDrop(mtu_exceeded). The
//    director does not fragment: the simplest honest rule; counted.
//
// Snapshot changes (UpdateSnapshot): schedulers are rebuilt; active/inactive
// counts carry over by (service key, backend endpoint). Existing flows keep
// their backend as long as it is still in the service (even with weight 0);
// a flow whose backend left the service is removed and rescheduled on its
// next packet (IPVS's expire_nodest_conn = 1).

#ifndef ANYLB_LBNODE_DATAPLANE_ENGINE_H_
#define ANYLB_LBNODE_DATAPLANE_ENGINE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/drop_reason.h"
#include "lbnode/dataplane/parser.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_table.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::dataplane {

// NextHopResolver gives the link-layer address of a tunnel's outer
// destination. The I/O layer implements it (neighbour table); tests fake
// it. Called per TUN packet: it must not block, lock or allocate.
class NextHopResolver {
 public:
  virtual ~NextHopResolver() = default;
  // Resolve sets `*mac` for `dst` and returns true, or returns false when
  // no link-layer address is known.
  virtual bool Resolve(const IpAddress& dst, Mac* mac) = 0;
};

// Action is what the I/O layer does with a frame.
enum class Action : uint8_t {
  kTransmit,  // Send buffer[offset, offset + length) out.
  kPass,      // Hand the unchanged frame to the kernel.
  kDrop,      // Drop it; drop_reason says why (already counted).
};

// Verdict is Process()'s answer. For kTransmit the frame may have moved
// within the buffer (TUN prepends headers; an ICMP reply starts elsewhere):
// `offset` and `length` locate it. For kPass and kDrop they are the input
// frame's.
struct Verdict {
  Action action = Action::kDrop;
  DropReason drop_reason = DropReason::kNone;
  // The frame is an ICMP error back to the client (MTU), not a forward.
  bool to_sender = false;
  uint32_t offset = 0;
  uint32_t length = 0;
};

// TrafficCounters count what went to one service or backend.
struct TrafficCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;  // Frame bytes as received.
  uint64_t new_flows = 0;
};

// EngineCounters are the engine-wide counters.
struct EngineCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;  // kTransmit, ICMP replies included.
  uint64_t tx_bytes = 0;
  uint64_t pass_packets = 0;
  uint64_t drop_packets = 0;
  std::array<uint64_t, kDropReasonCount> drops{};  // By DropReason.
  uint64_t icmp_too_big_sent = 0;
  uint64_t icmp_too_big_suppressed = 0;
  uint64_t flows_rescheduled = 0;  // Backend left the service.

  uint64_t drops_for(DropReason r) const {
    return drops[static_cast<size_t>(r)];
  }
};

// EngineOptions are fixed at Create().
struct EngineOptions {
  scheduler::FlowTableOptions flow_table;  // on_removed is the engine's.
  // ICMP "too big" replies: sustained rate and burst (token bucket).
  double icmp_rate_per_second = 100;
  double icmp_burst = 10;
};

// Engine processes frames for one worker; see the file comment.
class Engine {
 public:
  // Create builds an engine for `snapshot`. `resolver` must outlive it.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      std::shared_ptr<const EngineSnapshot> snapshot, NextHopResolver* resolver,
      EngineOptions options = {});
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine();

  // UpdateSnapshot adopts a new snapshot (see the file comment). On error
  // the engine keeps the old one.
  absl::Status UpdateSnapshot(std::shared_ptr<const EngineSnapshot> snapshot);

  // Process handles the frame at buffer[headroom, headroom + frame_len).
  // Bytes of `buffer` before the frame are headroom that TUN and ICMP
  // replies may write into; with too little of it the frame is moved back
  // into the tailroom (a copy), and with too little of both the packet is
  // dropped as mtu_exceeded. An AF_XDP worker passes its UMEM chunk and the
  // descriptor's offset. A frame outside the buffer is dropped as
  // truncated_ethernet.
  Verdict Process(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
                  absl::Time now);

  const EngineCounters& counters() const { return counters_; }
  // Per-service and per-backend counters, by snapshot index (backends in
  // canonical order). Reset by UpdateSnapshot.
  const TrafficCounters& service_counters(size_t service) const;
  const TrafficCounters& backend_counters(size_t service, size_t backend) const;
  // The schedulers' view of a service's backends (active/inactive counts).
  std::span<const scheduler::SchedBackend> backends(size_t service) const;
  const scheduler::FlowTable& flow_table() const { return *flows_; }
  scheduler::FlowTable& flow_table() { return *flows_; }
  const EngineSnapshot& snapshot() const { return *snapshot_; }

  // The per-packet overheads of TUN (outer IP + UDP for GUE).
  static size_t TunnelOverhead(const ServiceConfig& service,
                               IpFamily backend_family);

 private:
  struct ServiceRuntime;
  Engine(std::shared_ptr<const EngineSnapshot> snapshot,
         NextHopResolver* resolver, const EngineOptions& options);
  static void OnFlowRemoved(void* context, const scheduler::FlowEntry& entry,
                            scheduler::RemovalReason reason);
  absl::StatusOr<std::vector<ServiceRuntime>> BuildRuntimes(
      const EngineSnapshot& snapshot) const;
  // Resolves the flow's (service, backend) in the current snapshot; -1 if
  // the backend left.
  int CurrentBackend(const scheduler::FlowEntry& entry, int service) const;
  Verdict Drop(DropReason reason, size_t headroom, size_t frame_len);
  Verdict Forward(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
                  const ParsedPacket& p, int service, int backend,
                  uint64_t flow_hash, absl::Time now);
  Verdict TooBig(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
                 const ParsedPacket& p, uint32_t mtu, absl::Time now);
  bool TakeIcmpToken(absl::Time now);

  std::shared_ptr<const EngineSnapshot> snapshot_;
  NextHopResolver* resolver_;
  EngineOptions options_;
  std::unique_ptr<scheduler::FlowTable> flows_;
  std::vector<ServiceRuntime> runtimes_;
  uint32_t epoch_ = 1;
  EngineCounters counters_;
  double icmp_tokens_;
  int64_t icmp_last_ns_ = 0;
};

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_ENGINE_H_
