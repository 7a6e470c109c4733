// Engine: one worker's packet engine for the DR, TUN, NAT and FULLNAT
// forwarding modes, with IPVS persistence.
//
// Ownership and threading (share nothing): one Engine per worker thread. It
// owns its FlowTable, one Scheduler and one SchedBackend array (this
// worker's active/inactive counts) per service, a PersistenceTable, a
// LocalPortAllocator, the NAT link pool and its counters. It reads an
// immutable EngineSnapshot shared with other workers. Create(),
// UpdateSnapshot() and ExpireSome() run on the worker's thread between
// batches (the first two allocate); Process() and ProcessBatch() never
// allocate or lock, and raise no
// exception.
//
// Per packet (Process):
//  1. Parse. Not IP (ARP, LLDP, ...) → kPass. Malformed → kDrop(reason).
//  2. The flow key: MakeFlowKey (fragments: the 3-tuple, so every fragment
//     of a datagram maps alike; NAT/FULLNAT fragments: see "Fragments"), or
//     for an ICMP error MakeIcmpErrorFlowKey (the flow the quoted packet
//     belongs to, in the direction the director sees it). Non-error ICMP
//     (ping) → kPass: the kernel answers if the address is on a local
//     interface.
//  3. Flow table lookup. A NAT/FULLNAT reply entry (below) → the reply path.
//     A hit made under the current snapshot names its service (the key
//     holds VIP, port and protocol), so the hit path skips the service
//     lookup. Otherwise: service by (VIP, port, protocol), falling back to
//     the all-ports service. None, and the destination is a VIP →
//     kDrop(no_service) (a non-first fragment: fragment_unmatched). None, and
//     the packet looks like a NAT/FULLNAT reply (destination a local
//     address, or source a NAT backend's endpoint) → kDrop(no_flow): a reply
//     without a flow is dropped, never handed to the kernel. Anything else
//     → kPass (the kernel's traffic).
//  4. NAT/FULLNAT only: TTL / hop limit <= 1 → kDrop(ttl_exceeded) (the
//     director is an L3 hop; no ICMP time exceeded is sent). Fragments: see
//     "Fragments".
//  5. Flow hit → the flow's backend; TCP state follows OnTcpSegment with
//     kClientToServerOnly (DR, TUN: replies bypass the director) or
//     kClientToServer (NAT, FULLNAT). Miss → persistence (below), else the
//     service's scheduler picks (kDrop(no_backend) if none can take it),
//     the flow is inserted (kDrop(flow_table_full) if the table refuses it,
//     the SYN-flood guard) and counted on its backend. ICMP errors never
//     create flows: a miss is kDrop(no_flow). Fragment flows are kept in
//     state OTHER (no TCP state machine on fragments).
//  6. Rewrite (below) → kTransmit.
//
// Persistence (ipvsadm -p/-M; scheduler/persistence.h): on a flow miss of
// a service with ServiceConfig::persistence, a live entry for (service,
// client network) gives the backend if PersistentBackendIndex still accepts
// it (still in the service; as in IPVS a weight-0 or overloaded backend
// keeps its persistent clients); otherwise the scheduler picks and the
// choice is recorded. One PersistenceTable per engine
// (EngineOptions::persistence_capacity entries), keyed by a 32-bit hash of
// the service's (VIP, port, protocol) so entries survive snapshot changes.
//
// DR: destination MAC := backend MAC (BackendConfig::mac, or from the
// NextHopResolver for the backend address when that is all zeros;
// unresolved → kDrop(no_neighbor)), source MAC := node MAC; nothing else
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
// The outer headers are built once per backend with each snapshot's
// runtimes (a template with the constant part of the checksums summed); a
// packet copies them and patches lengths, TOS / traffic class, flow label,
// GUE source port and the checksums (the DR MACs likewise).
//
// NAT (IPVS masquerading): client → VIP:vport becomes client →
// backend:bport (bport = the backend's port, or vport when that is 0). The
// backend routes its replies through the director; the steering program
// sends frames whose source is a NAT backend here. A reply backend:bport →
// client:cport is matched to its flow and becomes VIP:vport →
// client:cport.
// FULLNAT: the source is translated too, to (local address of the
// backend's family, allocated port): client → VIP becomes local:lport →
// backend:bport; the reply backend:bport → local:lport becomes VIP:vport →
// client:cport. Local addresses are taken round-robin
// (LocalPortAllocator); each (local address, port, protocol) belongs to at
// most one live flow of this engine and is released when the flow leaves
// the table (expiry, TCP close timeout, snapshot without its backend,
// eviction). Out of ports → kDrop(no_local_port).
// Both: TTL / hop limit decremented (IPv4 header checksum updated by RFC
// 1624), addresses and ports rewritten with incremental TCP/UDP checksum
// updates through the pseudo-header (checksum.h; an IPv4 UDP checksum of 0
// stays 0; IPv6 UDP checksums are mandatory, a 0 is already dropped by the
// parser). Next hop: NextHopResolver for the backend address (forward) or
// the client address (reply); source MAC = node MAC. The TCP state machine
// sees both directions (kClientToServer / kServerToClient).
// ICMP errors about a NAT/FULLNAT flow (RFC 792 / RFC 4443 destination
// unreachable, packet too big, time exceeded, parameter problem) are
// translated like the flow's packets, outer and quoted header: an error
// from the client side (addressed to the VIP, quoting VIP → client) goes to
// the backend as if it were about the backend's packet (outer destination
// := backend, FULLNAT outer source := local address; quoted source :=
// backend:bport, FULLNAT quoted destination := local:lport); an error from
// the backend side (to the client or, FULLNAT, to the local address,
// quoting the packet the director sent) goes to the client with outer
// source := VIP and quoted destination := VIP:vport (FULLNAT: outer
// destination and quoted source := client:cport). The quoted IPv4 header
// checksum is updated; the quoted transport checksum is left as it was (a
// quote is usually truncated and nobody verifies it); the ICMP checksum is
// recomputed over the message.
//
// Reply lookup (the second key of a NAT/FULLNAT flow). Each such flow is
// two FlowTable entries: the forward entry (key client → VIP, the one DR
// and TUN flows have) and a reply entry (key backend:bport → client:cport,
// or → local:lport for FULLNAT: the reply exactly as it arrives). Both
// carry an index into the engine's NatLink pool, which holds the two entry
// pointers, the backend's identity tag and the FULLNAT lease (capacity/2 +
// 1 links of 32 bytes, allocated by the first snapshot with a NAT or
// FULLNAT service; a free list: O(1), no allocation per packet). Both entries
// always have the same state and last-seen time (every packet either way
// updates both), so they sit side by side in one LRU list and expire together.
// When either leaves the table (any reason) the removal callback releases the
// link, the lease and the backend count, and queues the partner, which the
// engine removes right after the table call returns (the callback may not call
// into the table). A stale link (the partner gone) is detected by the pointers
// and treated as no flow. A NAT reply key already owned by another flow (one
// client ip:port talking to two VIPs that map to the same backend:port, which
// the backend could not tell apart either) → kDrop(nat_reply_conflict) (also
// counted in nat_reply_conflicts, kept for its readers). A NAT/FULLNAT flow
// therefore takes two of the table's capacity slots.
//
// Multi-queue limitation: NIC RSS hashes a reply on its own 5-tuple, so
// a NAT or FULLNAT reply can arrive on another queue (another worker) than
// the one whose table holds the flow, and that worker drops it as no_flow.
// FULLNAT prepares the fix: with EngineOptions::worker_index / worker_count
// a worker only allocates ports p with p % worker_count == worker_index, so
// a dispatcher (or an RSS/flow-steering rule on the destination port) can
// find a reply's owner from its destination port. NAT replies carry only
// the client's port: they need a single queue, or a shared flow table,
// until such a dispatcher exists.
//
// Fragments. The director never reassembles (IPVS does, through the
// kernel's defragmentation; we forward each fragment as it comes).
// DR and TUN: every fragment is keyed on the 3-tuple (MakeFlowKey), so all
// fragments of a datagram (and all fragmented datagrams between two hosts)
// go to one backend; fragment flows stay in state OTHER.
// NAT and FULLNAT (both directions): the first fragment (offset 0, it holds
// the transport header) is looked up by its 5-tuple and translated exactly
// like an unfragmented packet (same flow entries, ports rewritten, the
// TCP/UDP checksum updated incrementally: it covers the whole datagram and
// the update depends only on the changed fields, so it is right in the
// first fragment; TCP state followed). Its new addresses are recorded in the
// engine's FragmentTable under (source, destination, protocol, IPv4
// identification / IPv6 fragment identification) as it arrived, for
// EngineOptions::fragments.lifetime (3 s by default) from the first
// fragment, at most EngineOptions::fragments.capacity datagrams (evictions
// counted in the table's counters). A later fragment that finds the record
// gets the same addresses (IPv4 header checksum updated; IPv6 has none),
// TTL / hop limit decremented, the same next hop, and counts as a packet (or
// reply packet) of the flow's service and backend. A later fragment without
// a record (its first not seen yet, reordered; the record expired or
// evicted; made under another snapshot) → kDrop(fragment_unmatched), counted
// in EngineCounters::fragments_unmatched: we do not hold fragments. A
// later fragment with no
// record and no 3-tuple flow, addressed to a VIP or a local address or sent
// by a NAT backend's address, is likewise fragment_unmatched (DR/TUN
// included); anything else passes to the kernel. ICMP errors that arrive in
// fragments → kDrop(fragment_not_supported).
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
// NAT and FULLNAT do not change the packet size (the egress MTU is the
// routers' business, as for any L3 hop).
//
// CONTRACT (the AF_XDP layer relies on it): when the verdict is
// kDrop(no_neighbor) the frame bytes are UNCHANGED, in every mode (the next
// hop is resolved before anything is written). The I/O layer may park the
// frame and run Process() on it again once the neighbour resolves; the flow
// created by the first attempt (and its FULLNAT port) is found by the retry.
//
// Snapshot changes (UpdateSnapshot): schedulers are rebuilt; active/inactive
// counts and TrafficCounters carry over by (service key, backend endpoint)
// (service counters by service key). Existing flows keep
// their backend as long as it is still in the service (even with weight 0);
// a flow whose backend left the service is removed and rescheduled on its
// next packet (IPVS's expire_nodest_conn = 1); its replies find no flow.
//
// Tuple reuse (IPVS's conn_reuse_mode): a TCP SYN without ACK that finds a
// flow is a new connection on an old tuple when the flow is closing or
// closed (FIN, RST, TIME_WAIT seen), or still opening toward a backend that
// takes no new flows (weight 0, unavailable here, overloaded). The old flow
// is removed and the SYN scheduled like any new connection, so a client
// that reuses its source port never lands on an inhibited real server. A
// SYN on an ESTABLISHED flow keeps it (the server's challenge ACK makes a
// client that lost the connection reset it; the reset closes the flow).
// Local addresses: see LocalPortAllocator (kept ones keep their leases).

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
#include "lbnode/dataplane/fragment_table.h"
#include "lbnode/dataplane/local_port_allocator.h"
#include "lbnode/dataplane/parser.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_table.h"
#include "lbnode/scheduler/persistence.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::dataplane {

// NextHopResolver gives the link-layer address of the next hop towards an
// address (a TUN outer destination, a NAT backend or client, a DR backend
// without a configured MAC): FIB + neighbour table. The I/O layer
// implements it; tests fake it. Called per packet: it must not block, lock
// or allocate.
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

// Packet is one frame of a batch for Engine::ProcessBatch: the arguments
// of Process (buffer, headroom, frame_len) and its answer (verdict).
struct Packet {
  std::span<uint8_t> buffer;
  size_t headroom = 0;
  size_t frame_len = 0;
  Verdict verdict;  // Set by ProcessBatch.
};

// TrafficCounters count what went to one service or backend.
struct TrafficCounters {
  uint64_t packets = 0;  // Client → server (all modes).
  uint64_t bytes = 0;    // Frame bytes as received.
  uint64_t new_flows = 0;
  uint64_t reply_packets = 0;  // Server → client (NAT, FULLNAT).
  uint64_t reply_bytes = 0;
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
  // A new connection (SYN without ACK) on the tuple of a flow that is
  // closing or closed, or still opening toward a backend that takes no new
  // flows (weight 0, unavailable, overloaded): the old flow ends and the
  // connection is scheduled afresh (like IPVS's conn_reuse_mode).
  uint64_t flows_reused = 0;
  uint64_t persistence_hits = 0;  // New flow placed by persistence.
  // A NAT flow's reply key was another live flow's (see the file comment);
  // the same figure as drops_for(DropReason::kNatReplyConflict).
  uint64_t nat_reply_conflicts = 0;
  // A NAT/FULLNAT partner entry could not be queued for removal (only when
  // FlowTable::ExpireSome is called directly with a large count instead of
  // Engine::ExpireSome); the orphan is caught by its link check and
  // expires on its own.
  uint64_t nat_orphans = 0;
  // A later fragment matching no translated first fragment nor flow
  // (dropped; see the file comment, "Fragments").
  uint64_t fragments_unmatched = 0;

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
  // PersistenceTable entries (all persistent services of this worker).
  uint32_t persistence_capacity = 65536;
  // FULLNAT port partition: this engine allocates only local ports p with
  // p % worker_count == worker_index (see the file comment).
  uint32_t worker_index = 0;
  uint32_t worker_count = 1;
  // NAT/FULLNAT fragments: how many datagrams' first-fragment rewrites are
  // remembered, and how long (see FragmentTable).
  FragmentTableOptions fragments;
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
  // Process with the time as a FlowClock: no time conversion per packet
  // (a worker converts absl::Now() once per batch).
  Verdict Process(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
                  scheduler::FlowClock now);

  // kMaxBatch is how many frames ProcessBatch stages at once.
  static constexpr size_t kMaxBatch = 64;

  // ProcessBatch is Process(p.buffer, p.headroom, p.frame_len, now) for each
  // packet of `packets`, in order, with the same verdicts, frame bytes and
  // counters, but staged kMaxBatch frames at a time: parse, flow key and
  // hash of every frame first, prefetching each one's flow-table slot, then
  // the lookups and rewrites (which then find the slots in cache). Buffers
  // must not overlap. Never allocates or locks; no exceptions. The AF_XDP
  // worker fills one Packet per RX descriptor (buffer = the UMEM chunk,
  // headroom = the descriptor's offset in it, frame_len = its length), calls
  // ProcessBatch once per RX batch and acts on each packet's verdict.
  void ProcessBatch(std::span<Packet> packets, absl::Time now);
  void ProcessBatch(std::span<Packet> packets, scheduler::FlowClock now);

  const EngineCounters& counters() const { return counters_; }
  // Per-service and per-backend counters, by snapshot index (backends in
  // canonical order). Monotonic while the service / backend exists:
  // UpdateSnapshot carries them over by service key and (service key,
  // backend endpoint); a removed one's are gone, a re-added one starts at 0.
  const TrafficCounters& service_counters(size_t service) const;
  const TrafficCounters& backend_counters(size_t service, size_t backend) const;
  // The schedulers' view of a service's backends (active/inactive counts).
  std::span<const scheduler::SchedBackend> backends(size_t service) const;
  // The flow table. NAT/FULLNAT flows are two entries each (see the file
  // comment); expire through Engine::ExpireSome, which also removes the
  // partners of expired entries.
  const scheduler::FlowTable& flow_table() const { return *flows_; }
  scheduler::FlowTable& flow_table() { return *flows_; }
  const EngineSnapshot& snapshot() const { return *snapshot_; }
  // shared_snapshot: the same, shared (stats copies keep it alive to name
  // their counters).
  const std::shared_ptr<const EngineSnapshot>& shared_snapshot() const {
    return snapshot_;
  }
  const scheduler::PersistenceTable& persistence() const {
    return *persistence_;
  }
  const LocalPortAllocator& local_ports() const { return *ports_; }
  const FragmentTable& fragment_table() const { return *fragments_; }

  // RefreshFlow marks the flow whose forward key is `forward_key` (and, for
  // NAT/FULLNAT, its reply entry) as seen at `now`, as a packet hit does for
  // the idle timeout, without counting a packet or changing the TCP state.
  // False when there is no such live flow (an expired one is removed). For
  // the XDP fast path, which forwards hits itself and reports them here.
  // Never allocates; the worker's thread only, between batches or within one.
  bool RefreshFlow(const scheduler::FlowKey& forward_key, absl::Time now);

  // ForwardKeyOf is the flow-table key a worker looks up for the packet
  // `parsed` describes in `frame` (the frame Parse() saw, Parse() ok, not a
  // non-error ICMP): MakeIcmpErrorFlowKey for an ICMP error, else
  // MakeFlowKey (a fragment: the 3-tuple, ports 0). NAT/FULLNAT first
  // fragments are then looked up by their 5-tuple too (see the file
  // comment, "Fragments").
  static scheduler::FlowKey ForwardKeyOf(std::span<const uint8_t> frame,
                                         const ParsedPacket& parsed);

  // ExpireSome removes up to `max_entries` expired flow-table entries (and
  // the partners of NAT/FULLNAT ones) and returns how many entries left the
  // table. The worker calls it between batches.
  size_t ExpireSome(absl::Time now, size_t max_entries);

  // The per-packet overheads of TUN (outer IP + UDP for GUE).
  static size_t TunnelOverhead(const ServiceConfig& service,
                               IpFamily backend_family);

 private:
  struct ServiceRuntime;
  struct TunnelHeader;
  struct DrRewrite;
  struct NatLink;
  // Prepared is a frame after Process's first stage (parse, key, hash).
  struct Prepared {
    ParseResult parsed;
    scheduler::FlowKey key;
    uint16_t port = 0;  // The service lookup's port.
    uint32_t hash = 0;  // flows_->Hash(key).
  };
  // Prepare counts the frame received and runs the first stage: true with
  // `*out` filled when the frame needs the flow table, else false with the
  // final `*verdict` (a parse drop, a pass; counted).
  bool Prepare(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
               Prepared* out, Verdict* verdict);
  // ProcessPrepared is the rest of Process for a prepared frame.
  Verdict ProcessPrepared(std::span<uint8_t> buffer, size_t headroom,
                          size_t frame_len, const Prepared& prepared,
                          scheduler::FlowClock now);
  // ProcessFragment is ProcessPrepared for a fragment (cold): a later
  // NAT/FULLNAT fragment by the FragmentTable, a NAT first fragment by its
  // 5-tuple, DR/TUN fragments by the prepared 3-tuple key.
  Verdict ProcessFragment(std::span<uint8_t> buffer, size_t headroom,
                          size_t frame_len, const Prepared& prepared,
                          scheduler::FlowClock now);
  // ProcessFlow is the flow lookup, scheduling and rewrite of a packet
  // under `key` (hash `hash`; `port` for the service lookup).
  Verdict ProcessFlow(std::span<uint8_t> buffer, size_t headroom,
                      size_t frame_len, const ParsedPacket& p,
                      const scheduler::FlowKey& key, uint16_t port,
                      uint32_t hash, scheduler::FlowClock now);
  // ProcessSlow is ProcessFlow past the hit path (`entry`: the lookup's
  // result, not a reply entry): service lookup, snapshot changes,
  // scheduling, NAT drops.
  // ConnectionReused: `p` is a SYN without ACK that starts a new connection
  // on `entry`'s tuple (EngineCounters::flows_reused): the flow is closing
  // or closed, or still opening toward `backend` (its index in the current
  // snapshot), which takes no new flows.
  bool ConnectionReused(const scheduler::FlowEntry& entry,
                        const ParsedPacket& p, uint8_t protocol, int service,
                        int backend) const;
  Verdict ProcessSlow(std::span<uint8_t> buffer, size_t headroom,
                      size_t frame_len, const ParsedPacket& p,
                      const scheduler::FlowKey& key, uint16_t port,
                      uint32_t hash, scheduler::FlowClock now,
                      scheduler::FlowEntry* entry);
  // RefreshHit: TCP state (or touch) of a hit, its NAT reply entry kept
  // alike, the backend's counts.
  void RefreshHit(scheduler::FlowEntry* entry, const ParsedPacket& p,
                  uint8_t protocol, bool nat, bool segment,
                  scheduler::TcpDirection direction, int service, int backend,
                  scheduler::FlowClock now);
  // CountAndForward: the service/backend counters and the mode's rewrite.
  Verdict CountAndForward(std::span<uint8_t> buffer, size_t headroom,
                          size_t frame_len, const ParsedPacket& p,
                          const scheduler::FlowKey& key,
                          const scheduler::FlowEntry& entry, int service,
                          int backend, uint32_t hash, scheduler::FlowClock now);
  // The FragmentTable key of the fragment `p` in `frame` (as it arrived).
  static FragmentKey FragmentKeyOf(const uint8_t* frame, const ParsedPacket& p);
  // Records a first fragment's new addresses for its later fragments; call
  // before rewriting the frame.
  void RecordFragment(const uint8_t* frame, const ParsedPacket& p,
                      const uint8_t* new_src, const uint8_t* new_dst,
                      int service, int backend, bool reply,
                      scheduler::FlowClock now);
  // Forwards a later fragment by its first fragment's record.
  Verdict LaterFragment(std::span<uint8_t> buffer, size_t headroom,
                        size_t frame_len, const ParsedPacket& p,
                        const FragmentRewrite& r);
  Verdict DropUnmatchedFragment(size_t headroom, size_t frame_len);
  Verdict Pass(size_t headroom, size_t frame_len);
  Engine(std::shared_ptr<const EngineSnapshot> snapshot,
         NextHopResolver* resolver, const EngineOptions& options);
  static void OnFlowRemoved(void* context, const scheduler::FlowEntry& entry,
                            scheduler::RemovalReason reason);
  absl::StatusOr<std::vector<ServiceRuntime>> BuildRuntimes(
      const EngineSnapshot& snapshot) const;
  // MakeTunnelHeader builds the outer headers of a TUN service's backend.
  static TunnelHeader MakeTunnelHeader(const NodeConfig& node,
                                       const ServiceConfig& service,
                                       const IpAddress& backend);
  // Resolves the flow's (service, backend) in the current snapshot; -1 if
  // the backend left.
  int CurrentBackend(const scheduler::FlowEntry& entry, int service) const;
  Verdict Drop(DropReason reason, size_t headroom, size_t frame_len);
  // ForwardDr: the DR rewrite from the backend's precomputed DrRewrite
  // (inlined into the hit path).
  Verdict ForwardDr(std::span<uint8_t> buffer, size_t headroom,
                    size_t frame_len, const DrRewrite& rewrite);
  // ForwardTun: the TUN encapsulation from the backend's precomputed
  // TunnelHeader (inlined into the hit path); ForwardTunSlow is the same
  // for a frame over the MTU or without headroom for the outer headers.
  Verdict ForwardTun(std::span<uint8_t> buffer, size_t headroom,
                     size_t frame_len, const ParsedPacket& p,
                     const TunnelHeader& tunnel, uint32_t flow_hash,
                     scheduler::FlowClock now);
  // EncapsulateTun writes the outer headers in front of the frame at
  // `frame` (Ethernet rewritten in front of them; the headroom checked) and
  // gives the kTransmit verdict (`frame_offset`: the frame's offset in the
  // buffer).
  Verdict EncapsulateTun(uint8_t* frame, size_t frame_offset,
                         const ParsedPacket& p, const TunnelHeader& tunnel,
                         const Mac& next_hop, uint32_t flow_hash);
  Verdict ForwardTunSlow(std::span<uint8_t> buffer, size_t headroom,
                         size_t frame_len, const ParsedPacket& p,
                         const TunnelHeader& tunnel, uint32_t flow_hash,
                         scheduler::FlowClock now);
  Verdict ForwardNat(std::span<uint8_t> buffer, size_t headroom,
                     size_t frame_len, const ParsedPacket& p,
                     const scheduler::FlowKey& key,
                     const scheduler::FlowEntry& entry, int service,
                     int backend, scheduler::FlowClock now);
  Verdict Reply(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
                const ParsedPacket& p, scheduler::FlowEntry* entry,
                scheduler::FlowClock now);
  // Creates the forward and reply entries of a new NAT/FULLNAT flow; null
  // with `*drop` set on failure.
  scheduler::FlowEntry* InsertNatFlow(const scheduler::FlowKey& key,
                                      int service, int backend,
                                      scheduler::FlowState state,
                                      scheduler::FlowClock now,
                                      DropReason* drop);
  // Whether a flow entry's kind (plain, NAT, FULLNAT) fits the mode of
  // `service` (a snapshot may change a service's mode).
  bool EntryFitsMode(const scheduler::FlowEntry& entry, int service) const;
  // Tag of the backend identity a flow entry remembers.
  uint32_t EntryTag(const scheduler::FlowEntry& entry) const;
  // The service of a forward entry: its stored index in the current
  // epoch, else found again by its key; -1 if gone.
  int ServiceOf(const scheduler::FlowEntry& forward) const;
  void ApplyActivityChange(int service, int backend,
                           scheduler::ActivityChange change);
  // Sizes the NatLink pool (once, when a snapshot first uses NAT/FULLNAT).
  void AllocateLinks();
  // Removes the partners queued by the removal callback.
  void DrainPending();
  void QueuePending(scheduler::FlowEntry* entry);
  void PurgePending(const scheduler::FlowEntry* entry);
  Verdict TooBig(std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
                 const ParsedPacket& p, uint32_t mtu, absl::Time now);
  bool TakeIcmpToken(absl::Time now);

  std::shared_ptr<const EngineSnapshot> snapshot_;
  NextHopResolver* resolver_;
  EngineOptions options_;
  std::unique_ptr<scheduler::FlowTable> flows_;
  std::vector<ServiceRuntime> runtimes_;
  // runtimes_.size(), for the hit path's check of a flow's service index.
  uint32_t runtime_count_ = 0;
  std::unique_ptr<scheduler::PersistenceTable> persistence_;
  std::unique_ptr<LocalPortAllocator> ports_;
  std::unique_ptr<FragmentTable> fragments_;
  std::vector<NatLink> links_;
  std::vector<uint32_t> free_links_;
  // Partners to remove after the current table call (see DrainPending).
  static constexpr size_t kMaxPending = 64;
  std::array<scheduler::FlowEntry*, kMaxPending> pending_{};
  size_t pending_count_ = 0;
  uint32_t epoch_ = 1;
  EngineCounters counters_;
  double icmp_tokens_;
  int64_t icmp_last_ns_ = 0;
};

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_ENGINE_H_
