#include "lbnode/dataplane/engine.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/byte_order.h"
#include "lbnode/dataplane/checksum.h"
#include "lbnode/scheduler/flow_state.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/scheduler_factory.h"

namespace anylb::dataplane {
namespace {

using scheduler::ActivityChange;
using scheduler::FlowClock;
using scheduler::FlowEntry;
using scheduler::FlowKey;
using scheduler::FlowState;
using scheduler::kTcpFlagAck;
using scheduler::kTcpFlagFin;
using scheduler::kTcpFlagRst;
using scheduler::kTcpFlagSyn;
using scheduler::SchedBackend;
using scheduler::TcpDirection;

constexpr size_t kIpv4HeaderSize = 20;
constexpr size_t kIpv6HeaderSize = 40;
constexpr size_t kUdpHeaderSize = 8;
constexpr size_t kIcmpHeaderSize = 8;
constexpr size_t kMaxL2Size = 18;  // Ethernet + one 802.1Q tag.
constexpr uint16_t kGueSourcePortBase = 49152;
constexpr uint16_t kGueSourcePortRange = 16384;
// RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes; RFC 4443 §2.4(c):
// an ICMPv6 error at most the IPv6 minimum MTU, 1280 bytes.
constexpr size_t kIcmpV4ErrorMax = 576;
constexpr size_t kIcmpV6ErrorMax = 1280;
constexpr uint8_t kIcmpTypeDestUnreachable = 3;
constexpr uint8_t kIcmpCodeFragNeeded = 4;
constexpr uint8_t kIcmpV6TypePacketTooBig = 2;
constexpr uint8_t kReplyTtl = 64;
// The drop reason of a later fragment that matches nothing (its first not
// seen, or its record gone).
constexpr DropReason kFragmentUnmatched = DropReason::kFragmentUnmatched;

uint32_t EndpointTag(const Endpoint& endpoint) {
  return static_cast<uint32_t>(scheduler::HashEndpoint(endpoint, 0));
}

// FlowValue::user of every entry: kind (2 bits) | epoch (30 bits) | low 32
// bits: the backend's EndpointTag (plain DR/TUN flows) or the NatLink index
// (NAT/FULLNAT forward and reply entries, whose tag is in the link).
enum EntryKind : uint32_t { kPlain = 0, kNatForward = 1, kNatReply = 2 };
constexpr uint32_t kEpochMask = (uint32_t{1} << 30) - 1;

uint64_t MakeUser(EntryKind kind, uint32_t epoch, uint32_t low) {
  return uint64_t{kind} << 62 | uint64_t{epoch & kEpochMask} << 32 | low;
}
EntryKind KindOf(const scheduler::FlowValue& v) {
  return static_cast<EntryKind>(v.user >> 62);
}
uint32_t EpochOf(const scheduler::FlowValue& v) {
  return static_cast<uint32_t>(v.user >> 32) & kEpochMask;
}
uint32_t LowOf(const scheduler::FlowValue& v) {
  return static_cast<uint32_t>(v.user);
}

bool IsNatMode(ForwardingMode mode) {
  return mode == ForwardingMode::kNat || mode == ForwardingMode::kFullNat;
}

// L4Of names the TCP/UDP checksum of the packet, or none (other protocols,
// non-first fragments).
[[gnu::always_inline]] inline L4Checksum L4Of(uint8_t* frame,
                                              const ParsedPacket& p) {
  const int offset = L4ChecksumOffset(p.l4_protocol);
  if (offset < 0 || !p.has_l4_header()) return {};
  return {frame + p.l4_offset + offset,
          L4ChecksumKindFor(p.l4_protocol, !p.is_v4())};
}

// SetAddress writes `value` (4 or 16 bytes by the packet's family) over the
// address at `address` of the IP header `ip`, updating the IPv4 header
// checksum and `l4` through the pseudo-header.
[[gnu::always_inline]] inline void SetAddress(const ParsedPacket& p,
                                              uint8_t* ip, uint8_t* address,
                                              const uint8_t* value,
                                              L4Checksum l4) {
  if (p.is_v4()) {
    RewriteIpv4Address(ip, address, std::span<const uint8_t, 4>(value, 4), l4);
  } else {
    RewriteIpv6Address(address, std::span<const uint8_t, 16>(value, 16), l4);
  }
}

[[gnu::always_inline]] inline void DecrementTtl(const ParsedPacket& p,
                                                uint8_t* ip) {
  if (p.is_v4()) {
    DecrementIpv4Ttl(ip);
  } else {
    --ip[7];  // Hop limit; IPv6 has no header checksum.
  }
}

// RewriteIcmpError translates an ICMP error and the datagram it quotes:
// each non-null address replaces the outer source / destination or the
// quoted source / destination (the quoted port with it). The quoted IPv4
// header checksum is updated incrementally; the ICMP checksum is
// recomputed over the message (with the IPv6 pseudo-header for ICMPv6).
void RewriteIcmpError(uint8_t* f, const ParsedPacket& p,
                      const uint8_t* outer_src, const uint8_t* outer_dst,
                      const uint8_t* quoted_src, uint16_t quoted_src_port,
                      const uint8_t* quoted_dst, uint16_t quoted_dst_port) {
  uint8_t* const ip = f + p.l3_offset;
  uint8_t* const inner = f + p.inner_l3_offset;
  const bool ports =
      p.inner_l4_offset != 0 &&
      (p.inner_protocol == kIpProtoTcp || p.inner_protocol == kIpProtoUdp);
  if (outer_src != nullptr) {
    SetAddress(p, ip, f + p.src_addr_offset(), outer_src, {});
  }
  if (outer_dst != nullptr) {
    SetAddress(p, ip, f + p.dst_addr_offset(), outer_dst, {});
  }
  if (quoted_src != nullptr) {
    SetAddress(p, inner, f + p.inner_src_addr_offset(), quoted_src, {});
    if (ports) StoreBe16(f + p.inner_l4_offset, quoted_src_port);
  }
  if (quoted_dst != nullptr) {
    SetAddress(p, inner, f + p.inner_dst_addr_offset(), quoted_dst, {});
    if (ports) StoreBe16(f + p.inner_l4_offset + 2, quoted_dst_port);
  }
  uint8_t* const icmp = f + p.l4_offset;
  const size_t len = p.l3_end - p.l4_offset;
  StoreBe16(icmp + 2, 0);
  const uint64_t initial =
      p.is_v4()
          ? 0
          : PseudoHeaderSumV6(f + p.src_addr_offset(), f + p.dst_addr_offset(),
                              kIpProtoIcmpV6, static_cast<uint32_t>(len));
  StoreBe16(icmp + 2, InternetChecksum({icmp, len}, initial));
}

// MakeVerdict builds a Verdict in registers: its first 8 bytes are composed
// as one integer, so the caller's 8-byte load of the returned value does not
// hit separately stored bytes (a store-forwarding stall on every packet).
Verdict MakeVerdict(Action action, DropReason reason, bool to_sender,
                    size_t offset, size_t length) {
  static_assert(offsetof(Verdict, action) == 0);
  static_assert(offsetof(Verdict, drop_reason) == 1);
  static_assert(offsetof(Verdict, to_sender) == 2);
  static_assert(offsetof(Verdict, offset) == 4);
  static_assert(offsetof(Verdict, length) == 8);
  static_assert(sizeof(Verdict) == 12);
  const uint64_t head = uint64_t{static_cast<uint8_t>(action)} |
                        uint64_t{static_cast<uint8_t>(reason)} << 8 |
                        uint64_t{to_sender} << 16 |
                        uint64_t{static_cast<uint32_t>(offset)} << 32;
  const uint32_t tail = static_cast<uint32_t>(length);
  uint8_t bytes[12];
  std::memcpy(bytes, &head, 8);
  std::memcpy(bytes + 8, &tail, 4);
  Verdict v;
  std::memcpy(&v, bytes, sizeof(v));
  return v;
}

// BuildFlowKey writes MakeFlowKey(frame, p) into `*key` (the same bytes)
// with 8- and 16-byte stores, so that FlowTable::Hash's 8-byte loads of the
// fresh key are forwarded from the stores instead of stalling on a mix of
// narrow ones (measured: Hash was the hottest function after Process).
[[gnu::always_inline]] inline void BuildFlowKey(std::span<const uint8_t> frame,
                                                const ParsedPacket& p,
                                                FlowKey* key) {
  static_assert(offsetof(FlowKey, src) == 0 && offsetof(FlowKey, dst) == 16 &&
                offsetof(FlowKey, src_port) == 32 &&
                offsetof(FlowKey, dst_port) == 34 &&
                offsetof(FlowKey, protocol) == 36 &&
                offsetof(FlowKey, family) == 37 && sizeof(FlowKey) == 40);
  if constexpr (std::endian::native != std::endian::little) {
    new (key) FlowKey(MakeFlowKey(frame, p));
    return;
  }
  auto* const bytes = reinterpret_cast<uint8_t*>(key);
  const uint8_t* const src = frame.data() + p.src_addr_offset();
  const uint8_t* const dst = frame.data() + p.dst_addr_offset();
  if (p.is_v4()) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, dst, 4);
    const uint64_t zero = 0, wa = a, wb = b;
    std::memcpy(bytes, &wa, 8);
    std::memcpy(bytes + 8, &zero, 8);
    std::memcpy(bytes + 16, &wb, 8);
    std::memcpy(bytes + 24, &zero, 8);
  } else {
    std::memcpy(bytes, src, 16);
    std::memcpy(bytes + 16, dst, 16);
  }
  const uint64_t ports =
      p.is_fragment ? 0 : (uint64_t{p.src_port} | uint64_t{p.dst_port} << 16);
  const uint64_t tail = ports | uint64_t{p.l4_protocol} << 32 |
                        uint64_t{static_cast<uint8_t>(p.family)} << 40;
  std::memcpy(bytes + 32, &tail, 8);
}

// FastChecksumAccumulate returns ChecksumAccumulate(bytes, initial) up to
// folding (ChecksumFold gives the same 16 bits), 8 bytes per add: RFC 1071
// §2(B), a one's complement sum of 16-bit words taken in host order is the
// byte-swapped sum of the same words taken in network order; §2(C), wider
// words with their carries sum alike (2^64 ≡ 1 modulo 2^16 − 1, so a 64-bit
// word counts as its four 16-bit words); end-around carries make the order
// of the additions irrelevant (§2(A)). For the GUE over IPv6 checksum,
// which covers the whole inner packet.
[[gnu::always_inline]] inline uint64_t FastChecksumAccumulate(
    std::span<const uint8_t> bytes, uint64_t initial) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  // Host-order 64-bit words; `carries` counts the wrap-arounds (add, adc).
  uint64_t sum = 0;
  uint64_t carries = 0;
  const auto add = [&sum, &carries](uint64_t w) {
    sum += w;
    carries += sum < w;
  };
  const auto load64 = [](const uint8_t* at) {
    uint64_t w;
    std::memcpy(&w, at, sizeof(w));
    return w;
  };
  for (; n >= 32; p += 32, n -= 32) {
    add(load64(p));
    add(load64(p + 8));
    add(load64(p + 16));
    add(load64(p + 24));
  }
  for (; n >= 8; p += 8, n -= 8) add(load64(p));
  uint64_t tail = 0;  // Words at an offset of a multiple of their size.
  if (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, sizeof(w));
    tail += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, sizeof(w));
    tail += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The odd byte is the high (first) byte of a zero-padded network-order
    // word: the low byte of a host-order one on a little-endian machine.
    tail += std::endian::native == std::endian::little ? uint64_t{*p}
                                                       : uint64_t{*p} << 8;
  }
  add(tail);
  // Each wrap-around lost 2^64 ≡ 1: add them back (end-around carry).
  sum += carries;
  if (sum < carries) ++sum;
  uint16_t folded = ChecksumFold(sum);
  if constexpr (std::endian::native == std::endian::little) {
    folded = static_cast<uint16_t>(folded << 8 | folded >> 8);
  }
  return initial + folded;
}

// FoldSmall is ChecksumFold for a sum below 2^32: two end-around carries
// are enough.
[[gnu::always_inline]] inline uint16_t FoldSmall(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>((sum & 0xffff) + (sum >> 16));
}

// InnerDatagramSum is the one's complement sum (folded to 16 bits, up to
// an end-around carry) of the IP datagram `inner` (inner_len bytes), for
// the UDP checksum of GUE over IPv6, which covers it. A TCP or UDP segment
// (not a fragment; UDP with a checksum) is summed from its own checksum: a
// segment whose checksum is right sums to the complement of its
// pseudo-header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1) — the local checksum
// offload of Linux, and what the XDP fast path does, so both send the same
// bytes. The pseudo-header's addresses are the IP header's too, and x + ~x
// is zero in one's complement, so they cancel: the datagram sums to the IP
// header without its addresses plus ~(protocol + transport length), and
// only those header words are read. A segment whose checksum is wrong then
// gets an outer checksum that is wrong too, and the real server drops it
// either way. Anything else (ICMP, fragments, IPv6 extension headers, UDP
// without checksum) is summed byte by byte.
[[gnu::always_inline]] inline uint32_t InnerDatagramSum(const uint8_t* inner,
                                                        size_t inner_len,
                                                        const ParsedPacket& p) {
  const size_t header_len = p.l4_offset - p.l3_offset;
  const uint8_t protocol = p.l4_protocol;
  const bool v4 = p.is_v4();
  if (!p.is_fragment && (v4 || header_len == kIpv6HeaderSize) &&
      (protocol == kIpProtoTcp ||
       (protocol == kIpProtoUdp && LoadBe16(inner + header_len + 6) != 0)))
      [[likely]] {
    // IPv4: bytes 0..11 (the addresses are 12..19), then any options;
    // IPv6: bytes 0..7 (the addresses are 8..39). A few 16-bit words:
    // summed as they are, no fold needed.
    uint32_t header = uint32_t{LoadBe16(inner)} + LoadBe16(inner + 2) +
                      LoadBe16(inner + 4) + LoadBe16(inner + 6);
    if (v4) header += uint32_t{LoadBe16(inner + 8)} + LoadBe16(inner + 10);
    if (v4 && header_len > 20) [[unlikely]] {  // Options: 4-byte multiples.
      header += static_cast<uint32_t>(
          FastChecksumAccumulate({inner + 20, header_len - 20}, 0));
    }
    const auto l4_len = static_cast<uint32_t>(inner_len - header_len);
    return header + static_cast<uint16_t>(~FoldSmall(protocol + l4_len));
  }
  return FoldSmall(
      static_cast<uint32_t>(FastChecksumAccumulate({inner, inner_len}, 0)));
}

// MakeRoom makes sure `need` bytes of headroom are in front of the first
// `used` bytes of the frame at buffer[*headroom], moving the frame back into
// the tailroom if there are fewer. False when the buffer is too small.
bool MakeRoom(std::span<uint8_t> buffer, size_t* headroom, size_t used,
              size_t need) {
  if (*headroom >= need) return true;
  if (buffer.size() < need + used) return false;
  std::memmove(buffer.data() + need, buffer.data() + *headroom, used);
  *headroom = need;
  return true;
}

}  // namespace

// TunnelHeader is a TUN backend's outer headers, built once per snapshot on
// the control path (BuildRuntimes), so that a packet only copies them and
// patches what depends on it: lengths, TOS / traffic class, flow label, GUE
// source port and the checksums, which start from `sum`.
struct Engine::TunnelHeader {
  // The outer IPv4 (20 bytes) or IPv6 (40) header and, for GUE, the UDP
  // header (8 more) with every per-packet field zero: IPv4 TOS, total
  // length and header checksum; the IPv6 first word but its version,
  // payload length; UDP source port, length and checksum.
  std::array<uint8_t, 48> bytes{};
  // The unfolded one's complement sum (RFC 1071) of the constant 16-bit
  // words a checksum covers: IPv4, the header's (the TOS and total length
  // are added per packet); GUE over IPv6, the pseudo-header's addresses and
  // next header and the UDP destination port (the lengths, source port and
  // inner datagram are added per packet). Unused for IP6IP6.
  uint32_t sum = 0;
  // The node MTU minus `overhead`: a longer inner datagram is too big.
  uint32_t max_inner_len = 0;
  uint16_t overhead = 0;  // Bytes of `bytes` used: 20, 28, 40 or 48.
  bool outer_v4 = true;
  bool gue = false;
  // The node's MAC and the outer EtherType, as on the wire: an untagged
  // frame's bytes 6 to 13.
  std::array<uint8_t, 8> ethernet_tail{};
  IpAddress next_hop;  // The outer destination (the backend), to resolve.
};

// DrRewrite is a DR backend's new MACs, built with the runtimes.
struct Engine::DrRewrite {
  // Destination (the backend's BackendConfig::mac) and source (the node's)
  // MAC, as on the wire.
  std::array<uint8_t, 12> macs{};
  // BackendConfig::mac is all zeros: the destination comes from the
  // NextHopResolver for `address`.
  bool resolve = false;
  IpAddress address;
};

struct Engine::ServiceRuntime {
  ForwardingMode mode = ForwardingMode::kDr;  // The ServiceConfig's.
  std::vector<SchedBackend> backends;
  std::vector<uint32_t> tags;  // EndpointTag of each backend.
  // Each backend's rewrite: DR's MACs, TUN's outer headers (empty for the
  // other modes).
  std::vector<DrRewrite> dr;
  std::vector<TunnelHeader> tunnels;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  TrafficCounters counters;
  std::vector<TrafficCounters> backend_counters;
  // The PersistenceTable's service id: a hash of (VIP, port, protocol),
  // stable across snapshots.
  uint32_t persistence_id = 0;
};

// NatLink ties a NAT/FULLNAT flow's forward and reply entries together
// (see engine.h, "Reply lookup").
struct Engine::NatLink {
  FlowEntry* forward = nullptr;
  FlowEntry* reply = nullptr;
  uint32_t tag = 0;  // EndpointTag of the backend.
  LocalPortLease lease;
  bool has_lease = false;  // FULLNAT.
  bool in_use = false;
  uint8_t protocol = 0;
};

Engine::Engine(std::shared_ptr<const EngineSnapshot> snapshot,
               NextHopResolver* resolver, const EngineOptions& options)
    : snapshot_(std::move(snapshot)),
      resolver_(resolver),
      options_(options),
      icmp_tokens_(options.icmp_burst) {}

Engine::~Engine() {
  // The table's destructor does not call back; nothing to unwind.
  flows_.reset();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    std::shared_ptr<const EngineSnapshot> snapshot, NextHopResolver* resolver,
    EngineOptions options) {
  if (snapshot == nullptr) {
    return absl::InvalidArgumentError("null snapshot");
  }
  if (resolver == nullptr) {
    return absl::InvalidArgumentError("null NextHopResolver");
  }
  if (!(options.icmp_rate_per_second >= 0) || !(options.icmp_burst >= 0)) {
    return absl::InvalidArgumentError("negative ICMP rate or burst");
  }
  const NodeConfig& node = snapshot->node();
  ASSIGN_OR_RETURN(
      std::unique_ptr<LocalPortAllocator> ports,
      LocalPortAllocator::Create(node.local_port_min, node.local_port_max,
                                 options.worker_index, options.worker_count));
  ports->SetAddresses(node.local_addresses);
  std::unique_ptr<Engine> engine(
      new Engine(std::move(snapshot), resolver, options));
  engine->ports_ = std::move(ports);
  scheduler::FlowTableOptions table_options = options.flow_table;
  table_options.on_removed = &Engine::OnFlowRemoved;
  table_options.on_removed_context = engine.get();
  ASSIGN_OR_RETURN(engine->flows_, scheduler::FlowTable::Create(table_options));
  ASSIGN_OR_RETURN(engine->persistence_, scheduler::PersistenceTable::Create(
                                             options.persistence_capacity));
  ASSIGN_OR_RETURN(engine->fragments_,
                   FragmentTable::Create(options.fragments));
  if (engine->snapshot_->UsesNat()) engine->AllocateLinks();
  ASSIGN_OR_RETURN(engine->runtimes_,
                   engine->BuildRuntimes(*engine->snapshot_));
  engine->runtime_count_ = static_cast<uint32_t>(engine->runtimes_.size());
  return engine;
}

Engine::TunnelHeader Engine::MakeTunnelHeader(const NodeConfig& node,
                                              const ServiceConfig& s,
                                              const IpAddress& backend) {
  TunnelHeader t;
  t.outer_v4 = backend.is_v4();
  t.gue = s.tunnel == TunnelType::kGue;
  const size_t ip_size = t.outer_v4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  t.overhead = static_cast<uint16_t>(ip_size + (t.gue ? kUdpHeaderSize : 0));
  t.max_inner_len = node.mtu > t.overhead ? node.mtu - t.overhead : 0;
  std::memcpy(t.ethernet_tail.data(), node.mac.data(), 6);
  StoreBe16(t.ethernet_tail.data() + 6,
            t.outer_v4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  t.next_hop = backend;
  // IPIP carries the VIP's family (the backend's: validated); GUE either.
  const uint8_t protocol =
      t.gue ? kIpProtoUdp : (s.vip.is_v4() ? kIpProtoIpip : kIpProtoIpv6);
  uint8_t* const o = t.bytes.data();
  if (t.outer_v4) {
    o[0] = 0x45;
    StoreBe16(o + 6, 0x4000);  // DF; ID 0: atomic datagram (RFC 6864 §4.1).
    o[8] = node.outer_ttl;
    o[9] = protocol;
    std::memcpy(o + 12, node.tunnel_source_v4.bytes().data(), 4);
    std::memcpy(o + 16, backend.bytes().data(), 4);
    t.sum = static_cast<uint32_t>(ChecksumAccumulate({o, kIpv4HeaderSize}));
  } else {
    o[0] = 0x60;
    o[6] = protocol;
    o[7] = node.outer_ttl;
    std::memcpy(o + 8, node.tunnel_source_v6.bytes().data(), 16);
    std::memcpy(o + 24, backend.bytes().data(), 16);
  }
  if (t.gue) {
    StoreBe16(o + ip_size + 2, s.gue_port);
    if (!t.outer_v4) {
      t.sum = static_cast<uint32_t>(
          PseudoHeaderSumV6(o + 8, o + 24, kIpProtoUdp, 0) + s.gue_port);
    }
  }
  return t;
}

absl::StatusOr<std::vector<Engine::ServiceRuntime>> Engine::BuildRuntimes(
    const EngineSnapshot& snapshot) const {
  std::vector<ServiceRuntime> out(snapshot.services().size());
  for (size_t i = 0; i < out.size(); ++i) {
    const ServiceConfig& s = snapshot.services()[i];
    ServiceRuntime& rt = out[i];
    rt.backends.resize(s.backends.size());
    rt.tags.resize(s.backends.size());
    rt.mode = s.mode;
    const ServiceKey skey = EngineSnapshot::MakeServiceKey(
        s.vip.bytes().data(), s.vip.family(), s.port, s.protocol);
    rt.persistence_id = static_cast<uint32_t>(ServiceKeyHash()(skey));
    rt.backend_counters.resize(s.backends.size());
    for (size_t b = 0; b < s.backends.size(); ++b) {
      rt.backends[b].endpoint = s.backends[b].endpoint;
      rt.backends[b].weight = s.backends[b].weight;
      rt.backends[b].upper_threshold = s.backends[b].upper_threshold;
      rt.backends[b].lower_threshold = s.backends[b].lower_threshold;
      rt.backends[b].available = s.backends[b].available;
      rt.tags[b] = EndpointTag(s.backends[b].endpoint);
    }
    if (s.mode == ForwardingMode::kDr) {
      rt.dr.resize(s.backends.size());
      for (size_t b = 0; b < s.backends.size(); ++b) {
        DrRewrite& d = rt.dr[b];
        std::memcpy(d.macs.data(), s.backends[b].mac.data(), 6);
        std::memcpy(d.macs.data() + 6, snapshot.node().mac.data(), 6);
        d.resolve = s.backends[b].mac == Mac{};
        d.address = s.backends[b].endpoint.address();
      }
    }
    if (s.mode == ForwardingMode::kTun) {
      rt.tunnels.resize(s.backends.size());
      for (size_t b = 0; b < s.backends.size(); ++b) {
        rt.tunnels[b] = MakeTunnelHeader(snapshot.node(), s,
                                         s.backends[b].endpoint.address());
      }
    }
    // Carry this worker's counts and traffic counters over from the same
    // service (key) and the same backend (endpoint): the counters feed
    // monotonic metrics.
    if (!runtimes_.empty() && snapshot_ != nullptr) {
      const int old = snapshot_->Find(skey);
      if (old >= 0 && static_cast<size_t>(old) < runtimes_.size() &&
          snapshot_->services()[old].port == s.port) {
        const ServiceRuntime& prev = runtimes_[old];
        rt.counters = prev.counters;
        for (size_t b = 0; b < rt.backends.size(); ++b) {
          SchedBackend& nb = rt.backends[b];
          for (size_t o = 0; o < prev.backends.size(); ++o) {
            const SchedBackend& ob = prev.backends[o];
            if (ob.endpoint == nb.endpoint) {
              nb.active = ob.active;
              nb.inactive = ob.inactive;
              nb.UpdateOverload();
              rt.backend_counters[b] = prev.backend_counters[o];
              break;
            }
          }
        }
      }
    }
    ASSIGN_OR_RETURN(rt.scheduler,
                     scheduler::CreateScheduler(s.scheduler, rt.backends));
  }
  return out;
}

absl::Status Engine::UpdateSnapshot(
    std::shared_ptr<const EngineSnapshot> snapshot) {
  if (snapshot == nullptr) return absl::InvalidArgumentError("null snapshot");
  ASSIGN_OR_RETURN(std::vector<ServiceRuntime> runtimes,
                   BuildRuntimes(*snapshot));
  DrainPending();
  if (snapshot->UsesNat()) AllocateLinks();
  runtimes_ = std::move(runtimes);
  runtime_count_ = static_cast<uint32_t>(runtimes_.size());
  snapshot_ = std::move(snapshot);
  ports_->SetAddresses(snapshot_->node().local_addresses);
  epoch_ = (epoch_ + 1) & kEpochMask;
  if (epoch_ == 0) epoch_ = 1;
  return absl::OkStatus();
}

void Engine::AllocateLinks() {
  if (!links_.empty()) return;
  // Each NAT/FULLNAT flow takes two table entries.
  const size_t links = flows_->capacity() / 2 + 1;
  links_.resize(links);
  free_links_.reserve(links);
  for (size_t i = links; i > 0; --i) {
    free_links_.push_back(static_cast<uint32_t>(i - 1));
  }
}

size_t Engine::ExpireSome(absl::Time now, size_t max_entries) {
  DrainPending();
  size_t removed = 0;
  while (removed < max_entries) {
    // Each expired entry queues at most one partner: keep the queue safe.
    const size_t chunk = std::min(max_entries - removed, kMaxPending / 2);
    const size_t before = flows_->size();
    const size_t n = flows_->ExpireSome(now, chunk);
    DrainPending();
    removed += before - flows_->size();
    if (n < chunk) break;
  }
  return removed;
}

bool Engine::RefreshFlow(const FlowKey& forward_key, absl::Time now) {
  if (pending_count_ != 0) DrainPending();
  FlowEntry* const entry = flows_->Lookup(forward_key, now);
  if (pending_count_ != 0) DrainPending();  // Lookup expired a NAT entry.
  if (entry == nullptr) return false;
  flows_->Touch(entry, now);
  const scheduler::FlowValue& v = entry->value();
  if (KindOf(v) != kPlain) {
    const uint32_t index = LowOf(v);
    if (index < links_.size() && links_[index].in_use) {
      const NatLink& link = links_[index];
      FlowEntry* const partner =
          link.forward == entry ? link.reply : link.forward;
      if (partner != nullptr && partner != entry) flows_->Touch(partner, now);
    }
  }
  return true;
}

scheduler::FlowKey Engine::ForwardKeyOf(std::span<const uint8_t> frame,
                                        const ParsedPacket& parsed) {
  if (parsed.is_icmp_error) return MakeIcmpErrorFlowKey(frame, parsed);
  FlowKey key;
  BuildFlowKey(frame, parsed, &key);
  return key;
}

const TrafficCounters& Engine::service_counters(size_t service) const {
  return runtimes_.at(service).counters;
}

const TrafficCounters& Engine::backend_counters(size_t service,
                                                size_t backend) const {
  return runtimes_.at(service).backend_counters.at(backend);
}

std::span<const SchedBackend> Engine::backends(size_t service) const {
  return runtimes_.at(service).backends;
}

size_t Engine::TunnelOverhead(const ServiceConfig& service,
                              IpFamily backend_family) {
  size_t n =
      backend_family == IpFamily::kV4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  if (service.tunnel == TunnelType::kGue) n += kUdpHeaderSize;
  return n;
}

uint32_t Engine::EntryTag(const FlowEntry& entry) const {
  const scheduler::FlowValue& v = entry.value();
  if (KindOf(v) == kPlain) return LowOf(v);
  const uint32_t link = LowOf(v);
  return link < links_.size() ? links_[link].tag : 0;
}

int Engine::ServiceOf(const FlowEntry& forward) const {
  const scheduler::FlowValue& v = forward.value();
  if (EpochOf(v) == epoch_ && v.service < runtimes_.size()) {
    return static_cast<int>(v.service);
  }
  // A flow from an older snapshot: find its service again by its key.
  const FlowKey& k = forward.key();
  const int service = snapshot_->Find(EngineSnapshot::MakeServiceKey(
      k.dst.data(), k.family, k.dst_port, k.protocol));
  return service < static_cast<int>(runtimes_.size()) ? service : -1;
}

bool Engine::EntryFitsMode(const FlowEntry& entry, int service) const {
  const ForwardingMode mode = snapshot_->services()[service].mode;
  const scheduler::FlowValue& v = entry.value();
  if (KindOf(v) == kPlain) return !IsNatMode(mode);
  const uint32_t link = LowOf(v);
  if (link >= links_.size()) return false;
  return links_[link].has_lease ? mode == ForwardingMode::kFullNat
                                : mode == ForwardingMode::kNat;
}

int Engine::CurrentBackend(const FlowEntry& entry, int service) const {
  const scheduler::FlowValue& v = entry.value();
  if (EpochOf(v) == epoch_) {
    return v.service == static_cast<uint32_t>(service)
               ? static_cast<int>(v.backend)
               : -1;
  }
  const uint32_t tag = EntryTag(entry);
  const ServiceRuntime& rt = runtimes_[service];
  if (v.backend < rt.tags.size() && rt.tags[v.backend] == tag) {
    return static_cast<int>(v.backend);
  }
  for (size_t b = 0; b < rt.tags.size(); ++b) {
    if (rt.tags[b] == tag) return static_cast<int>(b);
  }
  return -1;
}

void Engine::ApplyActivityChange(int service, int backend,
                                 ActivityChange change) {
  if (change == ActivityChange::kNone) return;
  SchedBackend& sb = runtimes_[service].backends[backend];
  if (change == ActivityChange::kBecameActive) {
    if (sb.inactive > 0) --sb.inactive;
    ++sb.active;
  } else {
    if (sb.active > 0) --sb.active;
    ++sb.inactive;
  }
  sb.UpdateOverload();
}

void Engine::QueuePending(FlowEntry* entry) {
  if (pending_count_ == kMaxPending) {
    ++counters_.nat_orphans;
    return;
  }
  pending_[pending_count_++] = entry;
}

void Engine::PurgePending(const FlowEntry* entry) {
  for (size_t i = 0; i < pending_count_; ++i) {
    if (pending_[i] == entry) {
      pending_[i] = pending_[--pending_count_];
      return;
    }
  }
}

void Engine::DrainPending() {
  while (pending_count_ > 0) {
    FlowEntry* const entry = pending_[--pending_count_];
    flows_->Remove(entry);  // Its callback finds its link released.
  }
}

void Engine::OnFlowRemoved(void* context, const FlowEntry& entry,
                           scheduler::RemovalReason /*reason*/) {
  auto* self = static_cast<Engine*>(context);
  const scheduler::FlowValue& v = entry.value();
  const FlowEntry* forward = &entry;
  NatLink* link = nullptr;
  if (KindOf(v) != kPlain) {
    const uint32_t index = LowOf(v);
    if (index >= self->links_.size()) return;
    link = &self->links_[index];
    if (!link->in_use || (link->forward != &entry && link->reply != &entry)) {
      // The partner of a flow already handled (or an orphan).
      self->PurgePending(&entry);
      return;
    }
    forward = link->forward;
  }
  const int service = self->ServiceOf(*forward);
  if (service >= 0) {
    const int b = self->CurrentBackend(*forward, service);
    if (b >= 0) {  // Else the backend left; its counts went with it.
      SchedBackend& backend = self->runtimes_[service].backends[b];
      if (scheduler::IsActive(forward->state())) {
        if (backend.active > 0) --backend.active;
      } else {
        if (backend.inactive > 0) --backend.inactive;
      }
      backend.UpdateOverload();
    }
  }
  if (link == nullptr) return;
  if (link->has_lease) self->ports_->Release(link->lease, link->protocol);
  FlowEntry* const partner =
      link->forward == &entry ? link->reply : link->forward;
  if (partner != nullptr) self->QueuePending(partner);
  const auto index = static_cast<uint32_t>(link - self->links_.data());
  *link = NatLink{};
  self->free_links_.push_back(index);  // Capacity reserved: no allocation.
}

Verdict Engine::Drop(DropReason reason, size_t headroom, size_t frame_len) {
  ++counters_.drop_packets;
  ++counters_.drops[static_cast<size_t>(reason)];
  return MakeVerdict(Action::kDrop, reason, false, headroom, frame_len);
}

bool Engine::TakeIcmpToken(absl::Time now) {
  const int64_t now_ns = absl::ToUnixNanos(now);
  if (now_ns > icmp_last_ns_) {
    icmp_tokens_ =
        std::min(options_.icmp_burst,
                 icmp_tokens_ + static_cast<double>(now_ns - icmp_last_ns_) *
                                    1e-9 * options_.icmp_rate_per_second);
    icmp_last_ns_ = now_ns;
  }
  if (icmp_tokens_ < 1) return false;
  icmp_tokens_ -= 1;
  return true;
}

// Inlined into Process and ProcessBatch: the split costs nothing per frame.
[[gnu::always_inline]] inline bool Engine::Prepare(std::span<uint8_t> buffer,
                                                   size_t headroom,
                                                   size_t frame_len,
                                                   Prepared* out,
                                                   Verdict* verdict) {
  ++counters_.rx_packets;
  if (headroom > buffer.size() || frame_len > buffer.size() - headroom) {
    *verdict = Drop(DropReason::kTruncatedEthernet, 0, 0);
    return false;
  }
  counters_.rx_bytes += frame_len;
  const std::span<const uint8_t> frame(buffer.data() + headroom, frame_len);
  // Parse and the key are built straight into `*out` (placement new of a
  // prvalue: no copy). Copying them would reload piecewise-written bytes
  // with wide loads, a store-forwarding stall per packet.
  static_assert(std::is_trivially_destructible_v<ParseResult>);
  static_assert(std::is_trivially_destructible_v<FlowKey>);
  const ParseResult& parsed = *new (&out->parsed) ParseResult(Parse(frame));
  if (parsed.verdict == ParseVerdict::kDrop) {
    *verdict = Drop(parsed.drop_reason, headroom, frame_len);
    return false;
  }
  if (parsed.verdict == ParseVerdict::kNotIp) {
    *verdict = Pass(headroom, frame_len);
    return false;
  }
  const ParsedPacket& p = parsed.packet;
  const bool is_icmp =
      p.l4_protocol == (p.is_v4() ? kIpProtoIcmp : kIpProtoIcmpV6);
  if (is_icmp) {
    if (!p.is_icmp_error) {  // Ping and friends: the kernel's business.
      *verdict = Pass(headroom, frame_len);
      return false;
    }
    new (&out->key) FlowKey(MakeIcmpErrorFlowKey(frame, p));
    out->port = out->key.dst_port;
  } else {
    BuildFlowKey(frame, p, &out->key);
    out->port = p.dst_port;
  }
  out->hash = flows_->Hash(out->key);
  return true;
}

Verdict Engine::Pass(size_t headroom, size_t frame_len) {
  ++counters_.pass_packets;
  return MakeVerdict(Action::kPass, DropReason::kNone, false, headroom,
                     frame_len);
}

Verdict Engine::Process(std::span<uint8_t> buffer, size_t headroom,
                        size_t frame_len, absl::Time now) {
  return Process(buffer, headroom, frame_len, FlowClock::FromTime(now));
}

void Engine::ProcessBatch(std::span<Packet> packets, absl::Time now) {
  ProcessBatch(packets, FlowClock::FromTime(now));
}

Verdict Engine::Process(std::span<uint8_t> buffer, size_t headroom,
                        size_t frame_len, FlowClock now) {
  if (pending_count_ != 0) DrainPending();
  Prepared prepared;
  Verdict verdict;
  if (!Prepare(buffer, headroom, frame_len, &prepared, &verdict)) {
    return verdict;
  }
  return ProcessPrepared(buffer, headroom, frame_len, prepared, now);
}

void Engine::ProcessBatch(std::span<Packet> packets, FlowClock now) {
  if (pending_count_ != 0) DrainPending();
  std::array<Prepared, kMaxBatch> prepared;
  std::array<bool, kMaxBatch> ready;
  while (!packets.empty()) {
    const size_t n = std::min(packets.size(), kMaxBatch);
    // Stage 1: parse, key and hash every frame, and start loading the flow
    // table's slot of each, so that stage 2's lookups find them in cache.
    for (size_t i = 0; i < n; ++i) {
      Packet& pk = packets[i];
      ready[i] = Prepare(pk.buffer, pk.headroom, pk.frame_len, &prepared[i],
                         &pk.verdict);
      if (ready[i]) flows_->Prefetch(prepared[i].hash);
    }
    // Stage 2: in order, exactly what Process does after the hash.
    for (size_t i = 0; i < n; ++i) {
      if (!ready[i]) continue;
      Packet& pk = packets[i];
      if (pending_count_ != 0) DrainPending();
      pk.verdict = ProcessPrepared(pk.buffer, pk.headroom, pk.frame_len,
                                   prepared[i], now);
    }
    packets = packets.subspan(n);
  }
}

[[gnu::always_inline]] inline Verdict Engine::ProcessPrepared(
    std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
    const Prepared& prepared, FlowClock now) {
  const ParsedPacket& p = prepared.parsed.packet;
  if (p.is_fragment) [[unlikely]] {
    return ProcessFragment(buffer, headroom, frame_len, prepared, now);
  }
  return ProcessFlow(buffer, headroom, frame_len, p, prepared.key,
                     prepared.port, prepared.hash, now);
}

[[gnu::noinline]] Verdict Engine::ProcessFragment(std::span<uint8_t> buffer,
                                                  size_t headroom,
                                                  size_t frame_len,
                                                  const Prepared& prepared,
                                                  FlowClock now) {
  const ParsedPacket& p = prepared.parsed.packet;
  const EngineSnapshot& snap = *snapshot_;
  // DR/TUN fragments (and anything without NAT in the snapshot) go by the
  // prepared 3-tuple key.
  const FlowKey* key = &prepared.key;
  uint16_t port = prepared.port;
  uint32_t hash = prepared.hash;
  FlowKey five_tuple;
  if (snap.UsesNat() && !p.is_icmp_error) {
    const uint8_t* const frame = buffer.data() + headroom;
    if (!p.has_l4_header()) {
      // A later fragment: the record of its first, if it was translated;
      // else a DR/TUN flow's (3-tuple), or unmatched (ProcessFlow drops
      // it).
      const FragmentRewrite* const r =
          fragments_->Lookup(FragmentKeyOf(frame, p), now.micros);
      if (r != nullptr && r->epoch == epoch_) {
        return LaterFragment(buffer, headroom, frame_len, p, *r);
      }
    } else {
      // A first fragment: NAT/FULLNAT flows (and their replies) are keyed
      // by the 5-tuple, as unfragmented packets. A destination with no
      // service at all (a NAT reply, the kernel's traffic, a VIP without
      // this port) is looked up by the 5-tuple too: it can only match a
      // NAT reply entry.
      five_tuple = prepared.key;
      five_tuple.src_port = p.src_port;
      five_tuple.dst_port = p.dst_port;
      const int service = snap.Find(EngineSnapshot::MakeServiceKey(
          five_tuple.dst.data(), five_tuple.family, p.dst_port,
          five_tuple.protocol));
      if (service < 0 || IsNatMode(snap.services()[service].mode)) {
        key = &five_tuple;
        port = p.dst_port;
        hash = flows_->Hash(five_tuple);
      }
    }
  }
  return ProcessFlow(buffer, headroom, frame_len, p, *key, port, hash, now);
}

FragmentKey Engine::FragmentKeyOf(const uint8_t* frame, const ParsedPacket& p) {
  FragmentKey k;
  std::memcpy(k.src.data(), frame + p.src_addr_offset(), p.addr_size());
  std::memcpy(k.dst.data(), frame + p.dst_addr_offset(), p.addr_size());
  k.id = p.fragment_id;
  k.protocol = p.l4_protocol;
  k.family = p.family;
  return k;
}

void Engine::RecordFragment(const uint8_t* frame, const ParsedPacket& p,
                            const uint8_t* new_src, const uint8_t* new_dst,
                            int service, int backend, bool reply,
                            FlowClock now) {
  FragmentRewrite r;
  std::memcpy(r.src.data(), new_src, p.addr_size());
  std::memcpy(r.dst.data(), new_dst, p.addr_size());
  r.service = static_cast<uint32_t>(service);
  r.backend = static_cast<uint32_t>(backend);
  r.epoch = epoch_;
  r.reply = reply;
  fragments_->Insert(FragmentKeyOf(frame, p), r, now.micros);
}

Verdict Engine::LaterFragment(std::span<uint8_t> buffer, size_t headroom,
                              size_t frame_len, const ParsedPacket& p,
                              const FragmentRewrite& r) {
  if (r.service >= runtimes_.size() ||
      r.backend >= runtimes_[r.service].backends.size()) {
    return DropUnmatchedFragment(headroom, frame_len);
  }
  if (p.ttl <= 1) return Drop(DropReason::kTtlExceeded, headroom, frame_len);
  const IpAddress next =
      p.is_v4()
          ? IpAddress::FromV4Bytes(std::span<const uint8_t, 4>(r.dst.data(), 4))
          : IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(r.dst));
  Mac next_hop;
  if (!resolver_->Resolve(next, &next_hop)) {
    return Drop(DropReason::kNoNeighbor, headroom, frame_len);
  }
  uint8_t* const f = buffer.data() + headroom;
  uint8_t* const ip = f + p.l3_offset;
  // No transport header here: only the addresses (and the IPv4 header
  // checksum); the first fragment's L4 checksum covered the whole datagram.
  SetAddress(p, ip, f + p.src_addr_offset(), r.src.data(), {});
  SetAddress(p, ip, f + p.dst_addr_offset(), r.dst.data(), {});
  DecrementTtl(p, ip);
  std::memcpy(f, next_hop.data(), 6);
  std::memcpy(f + 6, snapshot_->node().mac.data(), 6);
  ServiceRuntime& rt = runtimes_[r.service];
  TrafficCounters& bc = rt.backend_counters[r.backend];
  if (r.reply) {
    ++rt.counters.reply_packets;
    rt.counters.reply_bytes += frame_len;
    ++bc.reply_packets;
    bc.reply_bytes += frame_len;
  } else {
    ++rt.counters.packets;
    rt.counters.bytes += frame_len;
    ++bc.packets;
    bc.bytes += frame_len;
  }
  ++counters_.tx_packets;
  counters_.tx_bytes += frame_len;
  return MakeVerdict(Action::kTransmit, DropReason::kNone, false, headroom,
                     frame_len);
}

Verdict Engine::DropUnmatchedFragment(size_t headroom, size_t frame_len) {
  ++counters_.fragments_unmatched;
  return Drop(kFragmentUnmatched, headroom, frame_len);
}

[[gnu::always_inline]] inline void Engine::RefreshHit(
    FlowEntry* entry, const ParsedPacket& p, uint8_t protocol, bool nat,
    bool segment, TcpDirection direction, int service, int backend,
    FlowClock now) {
  const FlowState state = entry->state();
  ActivityChange change = ActivityChange::kNone;
  // An ACK without SYN/FIN/RST keeps ESTABLISHED in every direction
  // (NextTcpState's ack row): the common case needs no table walk.
  if (protocol == kIpProtoTcp && segment && !p.is_icmp_error &&
      !(state == FlowState::kTcpEstablished &&
        (p.tcp_flags & (kTcpFlagSyn | kTcpFlagFin | kTcpFlagRst |
                        kTcpFlagAck)) == kTcpFlagAck) &&
      scheduler::NextTcpState(state, p.tcp_flags, direction) != state) {
    change = flows_->OnTcpSegment(entry, p.tcp_flags, direction, now);
  } else {
    flows_->Touch(entry, now);  // No state change (most packets).
  }
  if (nat) {  // The reply entry keeps the forward's state and age.
    FlowEntry* const reply = links_[LowOf(entry->value())].reply;
    if (reply != nullptr) {
      if (reply->state() == entry->state()) {
        flows_->Touch(reply, now);
      } else {
        flows_->SetState(reply, entry->state(), now);
      }
    }
  }
  if (change != ActivityChange::kNone) {
    ApplyActivityChange(service, backend, change);
  }
}

[[gnu::always_inline]] inline Verdict Engine::CountAndForward(
    std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
    const ParsedPacket& p, const FlowKey& key, const FlowEntry& entry,
    int service, int backend, uint32_t hash, FlowClock now) {
  ServiceRuntime& rt = runtimes_[service];
  ++rt.counters.packets;
  rt.counters.bytes += frame_len;
  TrafficCounters& bc = rt.backend_counters[backend];
  ++bc.packets;
  bc.bytes += frame_len;
  if (rt.mode == ForwardingMode::kDr) {
    return ForwardDr(buffer, headroom, frame_len, rt.dr[backend]);
  }
  if (IsNatMode(rt.mode)) {
    return ForwardNat(buffer, headroom, frame_len, p, key, entry, service,
                      backend, now);
  }
  return ForwardTun(buffer, headroom, frame_len, p, rt.tunnels[backend], hash,
                    now);
}

[[gnu::always_inline]] inline Verdict Engine::ProcessFlow(
    std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
    const ParsedPacket& p, const FlowKey& key, uint16_t port, uint32_t hash,
    FlowClock now) {
  // The flow first: a hit made in this snapshot names its service (the key
  // holds VIP, port and protocol), which saves the service lookup; a later
  // fragment has no port and can only be placed through its flow.
  FlowEntry* const entry = flows_->Lookup(key, hash, now);
  if (pending_count_ != 0) DrainPending();  // Lookup expired a NAT entry.
  if (entry != nullptr) [[likely]] {
    const scheduler::FlowValue& fv = entry->value();
    if (KindOf(fv) == kNatReply) {
      return Reply(buffer, headroom, frame_len, p, entry, now);
    }
    // The hit path: an entry written under this snapshot is for this
    // service (the key names it), with a current backend index and kind.
    // A new connection attempt (SYN without ACK) on a known tuple may have
    // to start afresh: ProcessSlow decides (ConnectionReused).
    const bool new_syn =
        (p.tcp_flags & (kTcpFlagSyn | kTcpFlagAck)) == kTcpFlagSyn;
    if (EpochOf(fv) == epoch_ && fv.service < runtime_count_ && !new_syn)
        [[likely]] {
      const int service = static_cast<int>(fv.service);
      const bool nat = IsNatMode(runtimes_[service].mode);
      if (!nat || (!p.is_fragment && p.ttl > 1)) [[likely]] {
        const int backend = static_cast<int>(fv.backend);
        RefreshHit(entry, p, key.protocol, nat, !p.is_fragment || nat,
                   nat ? TcpDirection::kClientToServer
                       : TcpDirection::kClientToServerOnly,
                   service, backend, now);
        return CountAndForward(buffer, headroom, frame_len, p, key, *entry,
                               service, backend, hash, now);
      }
    }
  }
  return ProcessSlow(buffer, headroom, frame_len, p, key, port, hash, now,
                     entry);
}

[[gnu::noinline]] Verdict Engine::ProcessSlow(std::span<uint8_t> buffer,
                                              size_t headroom, size_t frame_len,
                                              const ParsedPacket& p,
                                              const FlowKey& key, uint16_t port,
                                              uint32_t hash, FlowClock now,
                                              FlowEntry* entry) {
  const std::span<const uint8_t> frame(buffer.data() + headroom, frame_len);
  const EngineSnapshot& snap = *snapshot_;
  const bool later_fragment = !p.has_l4_header();
  int service = -1;
  if (entry != nullptr) {
    const scheduler::FlowValue& fv = entry->value();
    if (EpochOf(fv) == epoch_ && fv.service < runtimes_.size()) {
      service = static_cast<int>(fv.service);
    } else if (later_fragment) {
      flows_->Remove(entry);
      DrainPending();
      entry = nullptr;
    }
  }
  if (service < 0) {
    service = snap.Find(EngineSnapshot::MakeServiceKey(
        key.dst.data(), key.family, port, key.protocol));
  }
  if (service < 0) {
    const uint8_t* const outer_dst = frame.data() + p.dst_addr_offset();
    const IpAddress dst =
        p.is_v4()
            ? IpAddress::FromV4Bytes(std::span<const uint8_t, 4>(outer_dst, 4))
            : IpAddress::FromV6Bytes(
                  std::span<const uint8_t, 16>(outer_dst, 16));
    if (!snap.IsVip(dst)) {
      // A NAT/FULLNAT reply (or an ICMP error about one) without a flow is
      // ours to drop; anything else is the kernel's.
      if (later_fragment) {
        if (snap.IsLocalAddress(dst) ||
            snap.IsNatBackendHost(key.src.data(), key.family, key.protocol)) {
          return DropUnmatchedFragment(headroom, frame_len);
        }
        return Pass(headroom, frame_len);
      }
      if (snap.IsLocalAddress(dst) ||
          snap.IsNatBackendSource(key.src.data(), key.family, key.src_port,
                                  key.protocol)) {
        return Drop(DropReason::kNoFlow, headroom, frame_len);
      }
      return Pass(headroom, frame_len);
    }
    if (later_fragment) return DropUnmatchedFragment(headroom, frame_len);
    return Drop(DropReason::kNoService, headroom, frame_len);
  }
  ServiceRuntime& rt = runtimes_[service];
  const ServiceConfig& s = snap.services()[service];
  const bool nat = IsNatMode(s.mode);
  if (nat) {
    if (p.is_fragment) {
      // A later fragment whose first was not translated here (or whose
      // record expired); an ICMP error in fragments.
      if (later_fragment) return DropUnmatchedFragment(headroom, frame_len);
      if (p.is_icmp_error) {
        return Drop(DropReason::kFragmentNotSupported, headroom, frame_len);
      }
    }
    if (p.ttl <= 1) return Drop(DropReason::kTtlExceeded, headroom, frame_len);
  }
  const TcpDirection direction =
      nat ? TcpDirection::kClientToServer : TcpDirection::kClientToServerOnly;
  // DR/TUN fragment flows are 3-tuples: no TCP state machine. A NAT first
  // fragment has its flow's 5-tuple and TCP header.
  const bool segment = !p.is_fragment || nat;

  int backend = -1;
  if (entry != nullptr) {
    scheduler::FlowValue& value = entry->value();
    if (EpochOf(value) == epoch_) {
      // Written under this snapshot, for this service (the key names it):
      // its backend index and kind are current; nothing to resolve.
      backend = static_cast<int>(value.backend);
    } else {
      backend =
          EntryFitsMode(*entry, service) ? CurrentBackend(*entry, service) : -1;
      if (backend < 0) {
        // The backend left the service (or the flow belongs to another
        // service or mode after a snapshot change): reschedule.
        ++counters_.flows_rescheduled;
        flows_->Remove(entry);
        DrainPending();
        entry = nullptr;
      } else {
        value.service = static_cast<uint32_t>(service);
        value.backend = static_cast<uint32_t>(backend);
        value.user = KindOf(value) == kPlain
                         ? MakeUser(kPlain, epoch_, rt.tags[backend])
                         : MakeUser(kNatForward, epoch_, LowOf(value));
      }
    }
  }
  if (entry != nullptr &&
      ConnectionReused(*entry, p, key.protocol, service, backend)) {
    ++counters_.flows_reused;
    flows_->Remove(entry);
    DrainPending();
    entry = nullptr;
    backend = -1;
  }
  if (entry != nullptr) {
    RefreshHit(entry, p, key.protocol, nat, segment, direction, service,
               backend, now);
  }
  if (entry == nullptr) {
    if (p.is_icmp_error) return Drop(DropReason::kNoFlow, headroom, frame_len);
    if (s.persistence.has_value()) {
      const std::optional<Endpoint> remembered = persistence_->Lookup(
          rt.persistence_id, *s.persistence, key.src_address(), now.ToTime());
      if (remembered.has_value()) {
        backend = scheduler::PersistentBackendIndex(rt.backends, *remembered);
        if (backend >= 0) ++counters_.persistence_hits;
      }
    }
    if (backend < 0) {
      backend = rt.scheduler->Pick(key, rt.backends, now.ToTime());
      if (backend < 0) {
        return Drop(DropReason::kNoBackend, headroom, frame_len);
      }
      if (s.persistence.has_value()) {
        persistence_->Insert(rt.persistence_id, *s.persistence,
                             key.src_address(), rt.backends[backend].endpoint,
                             now.ToTime());
      }
    }
    const FlowState state = segment ? scheduler::InitialFlowState(
                                          key.protocol, p.tcp_flags, direction)
                                    : FlowState::kOther;
    if (nat) {
      DropReason reason = DropReason::kNone;
      entry = InsertNatFlow(key, service, backend, state, now, &reason);
      if (entry == nullptr) return Drop(reason, headroom, frame_len);
    } else {
      scheduler::FlowValue value;
      value.service = static_cast<uint32_t>(service);
      value.backend = static_cast<uint32_t>(backend);
      value.user = MakeUser(kPlain, epoch_, rt.tags[backend]);
      const scheduler::InsertResult ins =
          flows_->Insert(key, value, state, now);
      if (pending_count_ != 0) DrainPending();
      if (!ins.inserted()) {
        return Drop(DropReason::kFlowTableFull, headroom, frame_len);
      }
      entry = ins.entry;
      SchedBackend& sb = rt.backends[backend];
      if (scheduler::IsActive(state)) {
        ++sb.active;
      } else {
        ++sb.inactive;
      }
      sb.UpdateOverload();
    }
    ++rt.counters.new_flows;
    ++rt.backend_counters[backend].new_flows;
  }
  return CountAndForward(buffer, headroom, frame_len, p, key, *entry, service,
                         backend, hash, now);
}

bool Engine::ConnectionReused(const FlowEntry& entry, const ParsedPacket& p,
                              uint8_t protocol, int service,
                              int backend) const {
  if (protocol != kIpProtoTcp || p.is_icmp_error || !p.has_l4_header() ||
      (p.tcp_flags & (kTcpFlagSyn | kTcpFlagAck)) != kTcpFlagSyn) {
    return false;
  }
  if (KindOf(entry.value()) == kNatReply) return false;
  switch (entry.state()) {
    case FlowState::kTcpEstablished:
      // A SYN inside a live connection: the server answers with a challenge
      // ACK (RFC 5961 §4), and a client that lost the connection resets it,
      // which closes the flow here; its next SYN starts afresh.
      return false;
    case FlowState::kTcpSynRecv:
    case FlowState::kTcpSynSent:
      break;  // A retransmitted SYN: see below.
    default:
      return true;  // The old connection is over: FIN, RST, TIME_WAIT.
  }
  // Still opening, but its backend (`backend`, resolved in the current
  // snapshot) takes no new flows (inhibited by a health check, quiesced,
  // unreachable from here, over its threshold): the retransmitted SYN goes
  // where a new connection would.
  const auto& backends = runtimes_[service].backends;
  return backend >= 0 && static_cast<size_t>(backend) < backends.size() &&
         !backends[backend].CanTakeNewFlow();
}

FlowEntry* Engine::InsertNatFlow(const FlowKey& key, int service, int backend,
                                 FlowState state, FlowClock now,
                                 DropReason* drop) {
  const ServiceConfig& s = snapshot_->services()[service];
  const BackendConfig& b = s.backends[backend];
  ServiceRuntime& rt = runtimes_[service];
  *drop = DropReason::kFlowTableFull;
  if (free_links_.empty()) return nullptr;
  NatLink link;
  link.tag = rt.tags[backend];
  link.protocol = key.protocol;
  if (s.mode == ForwardingMode::kFullNat) {
    if (!ports_->Allocate(key.family, key.protocol, &link.lease)) {
      *drop = DropReason::kNoLocalPort;
      return nullptr;
    }
    link.has_lease = true;
  }
  link.in_use = true;
  const uint32_t index = free_links_.back();
  free_links_.pop_back();
  // The reply as it will arrive: backend:bport → client:cport (NAT) or →
  // local:lport (FULLNAT).
  FlowKey reply_key;
  reply_key.family = key.family;
  reply_key.protocol = key.protocol;
  const std::span<const uint8_t> backend_address = b.endpoint.address().bytes();
  std::memcpy(reply_key.src.data(), backend_address.data(),
              backend_address.size());
  reply_key.src_port =
      b.endpoint.port() != 0 ? b.endpoint.port() : key.dst_port;
  if (link.has_lease) {
    const std::span<const uint8_t> local =
        ports_->address(link.lease.pool).bytes();
    std::memcpy(reply_key.dst.data(), local.data(), local.size());
    reply_key.dst_port = link.lease.port;
  } else {
    reply_key.dst = key.src;
    reply_key.dst_port = key.src_port;
  }
  links_[index] = link;

  scheduler::FlowValue value;
  value.service = static_cast<uint32_t>(service);
  value.backend = static_cast<uint32_t>(backend);
  value.user = MakeUser(kNatForward, epoch_, index);
  const scheduler::InsertResult fwd = flows_->Insert(key, value, state, now);
  if (!fwd.inserted()) {
    if (link.has_lease) ports_->Release(link.lease, link.protocol);
    links_[index] = NatLink{};
    free_links_.push_back(index);
    DrainPending();
    return nullptr;
  }
  links_[index].forward = fwd.entry;
  SchedBackend& sb = rt.backends[backend];
  if (scheduler::IsActive(state)) {
    ++sb.active;
  } else {
    ++sb.inactive;
  }
  sb.UpdateOverload();

  value.user = MakeUser(kNatReply, epoch_, index);
  const scheduler::InsertResult rep =
      flows_->Insert(reply_key, value, state, now);
  if (!links_[index].in_use || links_[index].forward != fwd.entry) {
    // Making room for the reply evicted the forward entry itself (a tiny
    // table): its callback released the link.
    if (rep.inserted()) flows_->Remove(rep.entry);
    DrainPending();
    return nullptr;
  }
  if (!rep.inserted()) {
    if (rep.status == scheduler::InsertStatus::kAlreadyPresent) {
      ++counters_.nat_reply_conflicts;
      *drop = DropReason::kNatReplyConflict;
    }
    flows_->Remove(fwd.entry);  // Releases the link, lease and count.
    DrainPending();
    return nullptr;
  }
  links_[index].reply = rep.entry;
  DrainPending();
  if (!links_[index].in_use) return nullptr;
  *drop = DropReason::kNone;
  return fwd.entry;
}

Verdict Engine::ForwardNat(std::span<uint8_t> buffer, size_t headroom,
                           size_t frame_len, const ParsedPacket& p,
                           const FlowKey& key, const FlowEntry& entry,
                           int service, int backend, FlowClock now) {
  const EngineSnapshot& snap = *snapshot_;
  const ServiceConfig& s = snap.services()[service];
  const BackendConfig& b = s.backends[backend];
  const IpAddress& backend_address = b.endpoint.address();
  Mac next_hop;
  if (!resolver_->Resolve(backend_address, &next_hop)) {
    return Drop(DropReason::kNoNeighbor, headroom, frame_len);
  }
  const uint16_t backend_port =
      b.endpoint.port() != 0 ? b.endpoint.port() : key.dst_port;
  const uint8_t* local = nullptr;
  uint16_t local_port = 0;
  if (s.mode == ForwardingMode::kFullNat) {
    const NatLink& link = links_[LowOf(entry.value())];
    local = ports_->address(link.lease.pool).bytes().data();
    local_port = link.lease.port;
  }
  uint8_t* const f = buffer.data() + headroom;
  uint8_t* const ip = f + p.l3_offset;
  if (p.is_fragment) {  // A first fragment (see ProcessFragment).
    RecordFragment(f, p, local != nullptr ? local : f + p.src_addr_offset(),
                   backend_address.bytes().data(), service, backend,
                   /*reply=*/false, now);
  }
  if (p.is_icmp_error) {
    // The quoted packet is VIP:vport → client:cport (our translation of
    // the backend's packet): make it the backend's own again.
    RewriteIcmpError(f, p, local, backend_address.bytes().data(),
                     backend_address.bytes().data(), backend_port, local,
                     local_port);
  } else {
    const L4Checksum l4 = L4Of(f, p);
    uint8_t* const ports = f + p.l4_offset;
    SetAddress(p, ip, f + p.dst_addr_offset(), backend_address.bytes().data(),
               l4);
    RewritePort(ports + 2, backend_port, l4);
    if (local != nullptr) {
      SetAddress(p, ip, f + p.src_addr_offset(), local, l4);
      RewritePort(ports, local_port, l4);
    }
  }
  DecrementTtl(p, ip);
  std::memcpy(f, next_hop.data(), 6);
  std::memcpy(f + 6, snap.node().mac.data(), 6);
  ++counters_.tx_packets;
  counters_.tx_bytes += frame_len;
  return MakeVerdict(Action::kTransmit, DropReason::kNone, false, headroom,
                     frame_len);
}

Verdict Engine::Reply(std::span<uint8_t> buffer, size_t headroom,
                      size_t frame_len, const ParsedPacket& p, FlowEntry* entry,
                      FlowClock now) {
  const uint32_t index = LowOf(entry->value());
  if (index >= links_.size() || !links_[index].in_use ||
      links_[index].reply != entry) {
    flows_->Remove(entry);  // An orphan (see EngineCounters::nat_orphans).
    DrainPending();
    return Drop(DropReason::kNoFlow, headroom, frame_len);
  }
  const NatLink& link = links_[index];
  FlowEntry* const forward = link.forward;
  const int service = ServiceOf(*forward);
  const int backend = service >= 0 && EntryFitsMode(*forward, service)
                          ? CurrentBackend(*forward, service)
                          : -1;
  if (backend < 0) {
    // The backend (or the service) is gone: so is the flow.
    flows_->Remove(forward);
    DrainPending();
    return Drop(DropReason::kNoFlow, headroom, frame_len);
  }
  const ServiceConfig& s = snapshot_->services()[service];
  if (p.is_fragment && (p.is_icmp_error || !p.has_l4_header())) {
    return Drop(DropReason::kFragmentNotSupported, headroom, frame_len);
  }
  if (p.ttl <= 1) return Drop(DropReason::kTtlExceeded, headroom, frame_len);
  const FlowKey& fk = forward->key();
  Mac next_hop;
  if (!resolver_->Resolve(fk.src_address(), &next_hop)) {
    return Drop(DropReason::kNoNeighbor, headroom, frame_len);
  }
  scheduler::FlowValue& fv = forward->value();
  fv.service = static_cast<uint32_t>(service);
  fv.backend = static_cast<uint32_t>(backend);
  fv.user = MakeUser(kNatForward, epoch_, index);
  if (fk.protocol == kIpProtoTcp && !p.is_icmp_error) {
    ApplyActivityChange(
        service, backend,
        flows_->OnTcpSegment(forward, p.tcp_flags,
                             TcpDirection::kServerToClient, now));
    flows_->SetState(entry, forward->state(), now);
  } else {
    flows_->Touch(forward, now);
    flows_->Touch(entry, now);
  }
  const bool fullnat = s.mode == ForwardingMode::kFullNat;
  uint8_t* const f = buffer.data() + headroom;
  uint8_t* const ip = f + p.l3_offset;
  if (p.is_fragment) {  // A first fragment (see ProcessFragment).
    RecordFragment(f, p, fk.dst.data(),
                   fullnat ? fk.src.data() : f + p.dst_addr_offset(), service,
                   backend, /*reply=*/true, now);
  }
  if (p.is_icmp_error) {
    // The quoted packet is what the director sent the backend: make it the
    // client's own again (VIP:vport as destination).
    RewriteIcmpError(f, p, fk.dst.data(), fullnat ? fk.src.data() : nullptr,
                     fullnat ? fk.src.data() : nullptr, fk.src_port,
                     fk.dst.data(), fk.dst_port);
  } else {
    const L4Checksum l4 = L4Of(f, p);
    uint8_t* const ports = f + p.l4_offset;
    SetAddress(p, ip, f + p.src_addr_offset(), fk.dst.data(), l4);
    RewritePort(ports, fk.dst_port, l4);
    if (fullnat) {
      SetAddress(p, ip, f + p.dst_addr_offset(), fk.src.data(), l4);
      RewritePort(ports + 2, fk.src_port, l4);
    }
  }
  DecrementTtl(p, ip);
  std::memcpy(f, next_hop.data(), 6);
  std::memcpy(f + 6, snapshot_->node().mac.data(), 6);
  ServiceRuntime& rt = runtimes_[service];
  ++rt.counters.reply_packets;
  rt.counters.reply_bytes += frame_len;
  ++rt.backend_counters[backend].reply_packets;
  rt.backend_counters[backend].reply_bytes += frame_len;
  ++counters_.tx_packets;
  counters_.tx_bytes += frame_len;
  return MakeVerdict(Action::kTransmit, DropReason::kNone, false, headroom,
                     frame_len);
}

[[gnu::always_inline]] inline Verdict Engine::ForwardDr(
    std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
    const DrRewrite& d) {
  uint8_t* f = buffer.data() + headroom;
  if (d.resolve) {
    Mac mac;
    if (!resolver_->Resolve(d.address, &mac)) {
      return Drop(DropReason::kNoNeighbor, headroom, frame_len);
    }
    std::memcpy(f, mac.data(), 6);
    std::memcpy(f + 6, d.macs.data() + 6, 6);
  } else {
    std::memcpy(f, d.macs.data(), 12);
  }
  ++counters_.tx_packets;
  counters_.tx_bytes += frame_len;
  return MakeVerdict(Action::kTransmit, DropReason::kNone, false, headroom,
                     frame_len);
}

[[gnu::always_inline]] inline Verdict Engine::EncapsulateTun(
    uint8_t* frame, size_t frame_offset, const ParsedPacket& p,
    const TunnelHeader& t, const Mac& next_hop, uint32_t flow_hash) {
  const size_t l2 = p.l3_offset;  // 14, or 18 with an 802.1Q tag.
  const size_t inner_len = p.l3_end - p.l3_offset;
  const uint8_t* const inner = frame + l2;
  // The tag, if any, before the outer headers overwrite it.
  uint32_t tag = 0;
  if (l2 > 14) std::memcpy(&tag, frame + 12, 4);
  const uint8_t tos = p.is_v4()
                          ? inner[1]
                          : static_cast<uint8_t>((LoadBe16(inner) >> 4) & 0xff);
  uint8_t* const start = frame - t.overhead;
  uint8_t* const o = start + l2;
  // The template, by fixed-size copies; then the per-packet fields.
  if (t.outer_v4) {
    if (t.gue) {
      std::memcpy(o, t.bytes.data(), kIpv4HeaderSize + kUdpHeaderSize);
    } else {
      std::memcpy(o, t.bytes.data(), kIpv4HeaderSize);
    }
    const auto total = static_cast<uint16_t>(t.overhead + inner_len);
    o[1] = tos;
    StoreBe16(o + 2, total);
    // RFC 1071: the constant words' sum plus the two that changed.
    StoreBe16(o + 10, static_cast<uint16_t>(~FoldSmall(t.sum + tos + total)));
    if (t.gue) {
      uint8_t* const u = o + kIpv4HeaderSize;
      StoreBe16(u, static_cast<uint16_t>(kGueSourcePortBase +
                                         flow_hash % kGueSourcePortRange));
      StoreBe16(u + 4, static_cast<uint16_t>(kUdpHeaderSize + inner_len));
      // Checksum 0 (the template's): allowed over IPv4 (RFC 768).
    }
  } else {
    if (t.gue) {
      std::memcpy(o, t.bytes.data(), kIpv6HeaderSize + kUdpHeaderSize);
    } else {
      std::memcpy(o, t.bytes.data(), kIpv6HeaderSize);
    }
    const auto payload =
        static_cast<uint16_t>(t.overhead - kIpv6HeaderSize + inner_len);
    StoreBe32(o,
              uint32_t{6} << 28 | uint32_t{tos} << 20 | (flow_hash & 0xfffff));
    StoreBe16(o + 4, payload);
    if (t.gue) {
      uint8_t* const u = o + kIpv6HeaderSize;
      const auto source_port = static_cast<uint16_t>(
          kGueSourcePortBase + flow_hash % kGueSourcePortRange);
      StoreBe16(u, source_port);
      StoreBe16(u + 4, payload);
      // The pseudo-header's and the UDP header's length, the source port,
      // the inner datagram: all the sum lacks (RFC 8200 §8.1).
      const uint16_t check = static_cast<uint16_t>(
          ~FoldSmall(InnerDatagramSum(inner, inner_len, p) + t.sum +
                     2 * uint32_t{payload} + source_port));
      StoreBe16(u + 6, check == 0 ? 0xffff : check);
    }
  }
  // Ethernet (+ the 802.1Q tag as received).
  std::memcpy(start, next_hop.data(), 6);
  std::memcpy(start + 6, t.ethernet_tail.data(), 8);
  if (l2 > 14) {
    std::memcpy(start + 12, &tag, 4);
    std::memcpy(start + 16, t.ethernet_tail.data() + 6, 2);
  }
  const size_t out_len = l2 + t.overhead + inner_len;
  ++counters_.tx_packets;
  counters_.tx_bytes += out_len;
  return MakeVerdict(Action::kTransmit, DropReason::kNone, false,
                     frame_offset - t.overhead, out_len);
}

[[gnu::always_inline]] inline Verdict Engine::ForwardTun(
    std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
    const ParsedPacket& p, const TunnelHeader& t, uint32_t flow_hash,
    FlowClock now) {
  const size_t inner_len = p.l3_end - p.l3_offset;
  if (inner_len > t.max_inner_len || headroom < t.overhead) [[unlikely]] {
    return ForwardTunSlow(buffer, headroom, frame_len, p, t, flow_hash, now);
  }
  Mac next_hop;
  if (!resolver_->Resolve(t.next_hop, &next_hop)) [[unlikely]] {
    return Drop(DropReason::kNoNeighbor, headroom, frame_len);
  }
  return EncapsulateTun(buffer.data() + headroom, headroom, p, t, next_hop,
                        flow_hash);
}

[[gnu::noinline]] Verdict Engine::ForwardTunSlow(
    std::span<uint8_t> buffer, size_t headroom, size_t frame_len,
    const ParsedPacket& p, const TunnelHeader& t, uint32_t flow_hash,
    FlowClock now) {
  const size_t l2 = p.l3_offset;
  const size_t inner_len = p.l3_end - p.l3_offset;
  if (inner_len > t.max_inner_len) {
    const uint8_t* ip = buffer.data() + headroom + l2;
    const bool df = p.is_v4() ? (ip[6] & 0x40) != 0 : true;
    if (!df) return Drop(DropReason::kMtuExceeded, headroom, frame_len);
    return TooBig(buffer, headroom, frame_len, p, t.max_inner_len,
                  now.ToTime());
  }
  // Resolved before anything moves: kDrop(no_neighbor) leaves the frame as
  // it was (see the contract in engine.h).
  Mac next_hop;
  if (!resolver_->Resolve(t.next_hop, &next_hop)) {
    return Drop(DropReason::kNoNeighbor, headroom, frame_len);
  }
  size_t room = headroom;
  if (!MakeRoom(buffer, &room, l2 + inner_len, t.overhead)) {
    return Drop(DropReason::kMtuExceeded, headroom, frame_len);
  }
  return EncapsulateTun(buffer.data() + room, room, p, t, next_hop, flow_hash);
}

Verdict Engine::TooBig(std::span<uint8_t> buffer, size_t headroom,
                       size_t frame_len, const ParsedPacket& p, uint32_t mtu,
                       absl::Time now) {
  ++counters_.drops[static_cast<size_t>(DropReason::kMtuExceeded)];
  if (!TakeIcmpToken(now)) {
    ++counters_.icmp_too_big_suppressed;
    ++counters_.drop_packets;
    Verdict v;
    v.action = Action::kDrop;
    v.drop_reason = DropReason::kMtuExceeded;
    v.offset = static_cast<uint32_t>(headroom);
    v.length = static_cast<uint32_t>(frame_len);
    return v;
  }
  const bool v4 = p.is_v4();
  const size_t l2 = p.l3_offset;
  const size_t ip_size = v4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  const size_t hdr = ip_size + kIcmpHeaderSize;
  const size_t inner_len = p.l3_end - p.l3_offset;
  const size_t quote =
      std::min(inner_len, (v4 ? kIcmpV4ErrorMax : kIcmpV6ErrorMax) - hdr);
  size_t room = headroom;
  if (!MakeRoom(buffer, &room, l2 + quote, hdr)) {
    --counters_.drops[static_cast<size_t>(DropReason::kMtuExceeded)];
    return Drop(DropReason::kMtuExceeded, headroom, frame_len);
  }
  uint8_t saved_l2[kMaxL2Size];
  std::memcpy(saved_l2, buffer.data() + room, l2);
  const uint8_t* const orig = buffer.data() + room + l2;
  uint8_t* const start = buffer.data() + room - hdr;
  std::memcpy(start, saved_l2 + 6, 6);  // Back to the sender's MAC.
  std::memcpy(start + 6, snapshot_->node().mac.data(), 6);
  std::memcpy(start + 12, saved_l2 + 12, l2 - 12);  // Tag and EtherType.
  uint8_t* const ip = start + l2;
  uint8_t* const icmp = ip + ip_size;
  if (v4) {
    ip[0] = 0x45;
    ip[1] = 0;
    StoreBe16(ip + 2, static_cast<uint16_t>(hdr + quote));
    StoreBe16(ip + 4, 0);
    StoreBe16(ip + 6, 0);
    ip[8] = kReplyTtl;
    ip[9] = kIpProtoIcmp;
    StoreBe16(ip + 10, 0);
    std::memcpy(ip + 12, orig + 16, 4);  // From the VIP.
    std::memcpy(ip + 16, orig + 12, 4);  // To the client.
    StoreBe16(ip + 10, Ipv4HeaderChecksum({ip, kIpv4HeaderSize}));
    icmp[0] = kIcmpTypeDestUnreachable;
    icmp[1] = kIcmpCodeFragNeeded;
    StoreBe16(icmp + 2, 0);
    StoreBe16(icmp + 4, 0);
    StoreBe16(icmp + 6, static_cast<uint16_t>(std::min<uint32_t>(mtu, 0xffff)));
    StoreBe16(icmp + 2, InternetChecksum({icmp, kIcmpHeaderSize + quote}));
  } else {
    StoreBe32(ip, uint32_t{6} << 28);
    StoreBe16(ip + 4, static_cast<uint16_t>(kIcmpHeaderSize + quote));
    ip[6] = kIpProtoIcmpV6;
    ip[7] = kReplyTtl;
    std::memcpy(ip + 8, orig + 24, 16);
    std::memcpy(ip + 24, orig + 8, 16);
    icmp[0] = kIcmpV6TypePacketTooBig;
    icmp[1] = 0;
    StoreBe16(icmp + 2, 0);
    StoreBe32(icmp + 4, mtu);
    StoreBe16(
        icmp + 2,
        InternetChecksum(
            {icmp, kIcmpHeaderSize + quote},
            PseudoHeaderSumV6(ip + 8, ip + 24, kIpProtoIcmpV6,
                              static_cast<uint32_t>(kIcmpHeaderSize + quote))));
  }
  ++counters_.icmp_too_big_sent;
  ++counters_.tx_packets;
  Verdict v;
  v.action = Action::kTransmit;
  v.to_sender = true;
  v.offset = static_cast<uint32_t>(room - hdr);
  v.length = static_cast<uint32_t>(l2 + hdr + quote);
  counters_.tx_bytes += v.length;
  return v;
}

}  // namespace anylb::dataplane
