#include "lbnode/dataplane/engine.h"

#include <algorithm>
#include <cstring>
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
using scheduler::FlowEntry;
using scheduler::FlowKey;
using scheduler::FlowState;
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

uint32_t EndpointTag(const Endpoint& endpoint) {
  return static_cast<uint32_t>(scheduler::HashEndpoint(endpoint, 0));
}

uint64_t MakeUser(uint32_t epoch, uint32_t tag) {
  return uint64_t{epoch} << 32 | tag;
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

struct Engine::ServiceRuntime {
  std::vector<SchedBackend> backends;
  std::vector<uint32_t> tags;  // EndpointTag of each backend.
  std::unique_ptr<scheduler::Scheduler> scheduler;
  TrafficCounters counters;
  std::vector<TrafficCounters> backend_counters;
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
  std::unique_ptr<Engine> engine(
      new Engine(std::move(snapshot), resolver, options));
  scheduler::FlowTableOptions table_options = options.flow_table;
  table_options.on_removed = &Engine::OnFlowRemoved;
  table_options.on_removed_context = engine.get();
  ASSIGN_OR_RETURN(engine->flows_, scheduler::FlowTable::Create(table_options));
  ASSIGN_OR_RETURN(engine->runtimes_,
                   engine->BuildRuntimes(*engine->snapshot_));
  return engine;
}

absl::StatusOr<std::vector<Engine::ServiceRuntime>> Engine::BuildRuntimes(
    const EngineSnapshot& snapshot) const {
  std::vector<ServiceRuntime> out(snapshot.services().size());
  for (size_t i = 0; i < out.size(); ++i) {
    const ServiceConfig& s = snapshot.services()[i];
    ServiceRuntime& rt = out[i];
    rt.backends.resize(s.backends.size());
    rt.tags.resize(s.backends.size());
    rt.backend_counters.resize(s.backends.size());
    for (size_t b = 0; b < s.backends.size(); ++b) {
      rt.backends[b].endpoint = s.backends[b].endpoint;
      rt.backends[b].weight = s.backends[b].weight;
      rt.backends[b].upper_threshold = s.backends[b].upper_threshold;
      rt.backends[b].lower_threshold = s.backends[b].lower_threshold;
      rt.tags[b] = EndpointTag(s.backends[b].endpoint);
    }
    // Carry this worker's counts over from the same service's same backend.
    if (!runtimes_.empty() && snapshot_ != nullptr) {
      const int old = snapshot_->Find(EngineSnapshot::MakeServiceKey(
          s.vip.bytes().data(), s.vip.family(), s.port, s.protocol));
      if (old >= 0 && snapshot_->services()[old].port == s.port) {
        const ServiceRuntime& prev = runtimes_[old];
        for (SchedBackend& nb : rt.backends) {
          for (const SchedBackend& ob : prev.backends) {
            if (ob.endpoint == nb.endpoint) {
              nb.active = ob.active;
              nb.inactive = ob.inactive;
              nb.UpdateOverload();
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
  runtimes_ = std::move(runtimes);
  snapshot_ = std::move(snapshot);
  ++epoch_;
  return absl::OkStatus();
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

int Engine::CurrentBackend(const FlowEntry& entry, int service) const {
  const scheduler::FlowValue& v = entry.value();
  const uint32_t epoch = static_cast<uint32_t>(v.user >> 32);
  if (epoch == epoch_) {
    return v.service == static_cast<uint32_t>(service)
               ? static_cast<int>(v.backend)
               : -1;
  }
  const uint32_t tag = static_cast<uint32_t>(v.user);
  const ServiceRuntime& rt = runtimes_[service];
  if (v.backend < rt.tags.size() && rt.tags[v.backend] == tag) {
    return static_cast<int>(v.backend);
  }
  for (size_t b = 0; b < rt.tags.size(); ++b) {
    if (rt.tags[b] == tag) return static_cast<int>(b);
  }
  return -1;
}

void Engine::OnFlowRemoved(void* context, const FlowEntry& entry,
                           scheduler::RemovalReason /*reason*/) {
  Engine* self = static_cast<Engine*>(context);
  const scheduler::FlowValue& v = entry.value();
  int service = -1;
  if (static_cast<uint32_t>(v.user >> 32) == self->epoch_) {
    service = static_cast<int>(v.service);
  } else {
    // A flow from an older snapshot: find its service again by its key.
    const FlowKey& k = entry.key();
    service = self->snapshot_->Find(EngineSnapshot::MakeServiceKey(
        k.dst.data(), k.family, k.dst_port, k.protocol));
  }
  if (service < 0 || static_cast<size_t>(service) >= self->runtimes_.size()) {
    return;
  }
  const int b = self->CurrentBackend(entry, service);
  if (b < 0) return;  // The backend left; its counts went with it.
  SchedBackend& backend = self->runtimes_[service].backends[b];
  if (scheduler::IsActive(entry.state())) {
    if (backend.active > 0) --backend.active;
  } else {
    if (backend.inactive > 0) --backend.inactive;
  }
  backend.UpdateOverload();
}

Verdict Engine::Drop(DropReason reason, size_t headroom, size_t frame_len) {
  ++counters_.drop_packets;
  ++counters_.drops[static_cast<size_t>(reason)];
  Verdict v;
  v.action = Action::kDrop;
  v.drop_reason = reason;
  v.offset = static_cast<uint32_t>(headroom);
  v.length = static_cast<uint32_t>(frame_len);
  return v;
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

Verdict Engine::Process(std::span<uint8_t> buffer, size_t headroom,
                        size_t frame_len, absl::Time now) {
  ++counters_.rx_packets;
  if (headroom > buffer.size() || frame_len > buffer.size() - headroom) {
    return Drop(DropReason::kTruncatedEthernet, 0, 0);
  }
  counters_.rx_bytes += frame_len;
  const std::span<const uint8_t> frame(buffer.data() + headroom, frame_len);
  const ParseResult parsed = Parse(frame);
  if (parsed.verdict == ParseVerdict::kDrop) {
    return Drop(parsed.drop_reason, headroom, frame_len);
  }
  Verdict pass;
  pass.action = Action::kPass;
  pass.offset = static_cast<uint32_t>(headroom);
  pass.length = static_cast<uint32_t>(frame_len);
  if (parsed.verdict == ParseVerdict::kNotIp) {
    ++counters_.pass_packets;
    return pass;
  }
  const ParsedPacket& p = parsed.packet;
  const EngineSnapshot& snap = *snapshot_;

  const bool is_icmp =
      p.l4_protocol == (p.is_v4() ? kIpProtoIcmp : kIpProtoIcmpV6);
  FlowKey key;
  uint16_t port;
  if (is_icmp) {
    if (!p.is_icmp_error) {  // Ping and friends: the kernel's business.
      ++counters_.pass_packets;
      return pass;
    }
    key = MakeIcmpErrorFlowKey(frame, p);
    port = key.dst_port;
  } else {
    key = MakeFlowKey(frame, p);
    port = p.dst_port;
  }
  const bool later_fragment = !p.has_l4_header();
  const uint32_t hash = flows_->Hash(key);
  // The flow first: a hit made in this snapshot names its service (the key
  // holds VIP, port and protocol), which saves the service lookup; a later
  // fragment has no port and can only be placed through its flow.
  FlowEntry* entry = flows_->Lookup(key, hash, now);
  int service = -1;
  if (entry != nullptr) {
    const scheduler::FlowValue& fv = entry->value();
    if (static_cast<uint32_t>(fv.user >> 32) == epoch_ &&
        fv.service < runtimes_.size()) {
      service = static_cast<int>(fv.service);
    } else if (later_fragment) {
      flows_->Remove(entry);
      entry = nullptr;
    }
  }
  if (service < 0) {
    service = snap.Find(EngineSnapshot::MakeServiceKey(
        key.dst.data(), key.family, port, key.protocol));
  }
  if (service < 0) {
    const IpAddress dst =
        p.is_v4() ? IpAddress::FromV4Bytes(
                        std::span<const uint8_t, 4>(key.dst.data(), 4))
                  : IpAddress::FromV6Bytes(key.dst);
    if (!snap.IsVip(dst)) {
      ++counters_.pass_packets;
      return pass;
    }
    return Drop(later_fragment ? DropReason::kNoFlow : DropReason::kNoService,
                headroom, frame_len);
  }
  ServiceRuntime& rt = runtimes_[service];

  int backend = -1;
  if (entry != nullptr) {
    backend = CurrentBackend(*entry, service);
    if (backend < 0) {
      // The backend left the service (or the flow belongs to another
      // service after a snapshot change): reschedule.
      ++counters_.flows_rescheduled;
      flows_->Remove(entry);
      entry = nullptr;
    } else {
      scheduler::FlowValue& value = entry->value();
      value.service = static_cast<uint32_t>(service);
      value.backend = static_cast<uint32_t>(backend);
      value.user = MakeUser(epoch_, rt.tags[backend]);
      ActivityChange change = ActivityChange::kNone;
      if (key.protocol == kIpProtoTcp && !p.is_fragment && !p.is_icmp_error) {
        change = flows_->OnTcpSegment(entry, p.tcp_flags,
                                      TcpDirection::kClientToServerOnly, now);
      } else {
        flows_->Touch(entry, now);
      }
      if (change != ActivityChange::kNone) {
        SchedBackend& sb = rt.backends[backend];
        if (change == ActivityChange::kBecameActive) {
          if (sb.inactive > 0) --sb.inactive;
          ++sb.active;
        } else {
          if (sb.active > 0) --sb.active;
          ++sb.inactive;
        }
        sb.UpdateOverload();
      }
    }
  }
  if (entry == nullptr) {
    if (p.is_icmp_error) return Drop(DropReason::kNoFlow, headroom, frame_len);
    backend = rt.scheduler->Pick(key, rt.backends, now);
    if (backend < 0) return Drop(DropReason::kNoBackend, headroom, frame_len);
    const FlowState state =
        p.is_fragment
            ? FlowState::kOther
            : scheduler::InitialFlowState(key.protocol, p.tcp_flags,
                                          TcpDirection::kClientToServerOnly);
    scheduler::FlowValue value;
    value.service = static_cast<uint32_t>(service);
    value.backend = static_cast<uint32_t>(backend);
    value.user = MakeUser(epoch_, rt.tags[backend]);
    const scheduler::InsertResult ins = flows_->Insert(key, value, state, now);
    if (!ins.inserted()) {
      return Drop(DropReason::kFlowTableFull, headroom, frame_len);
    }
    SchedBackend& sb = rt.backends[backend];
    if (scheduler::IsActive(state)) {
      ++sb.active;
    } else {
      ++sb.inactive;
    }
    sb.UpdateOverload();
    ++rt.counters.new_flows;
    ++rt.backend_counters[backend].new_flows;
  }
  ++rt.counters.packets;
  rt.counters.bytes += frame_len;
  ++rt.backend_counters[backend].packets;
  rt.backend_counters[backend].bytes += frame_len;
  return Forward(buffer, headroom, frame_len, p, service, backend, hash, now);
}

Verdict Engine::Forward(std::span<uint8_t> buffer, size_t headroom,
                        size_t frame_len, const ParsedPacket& p, int service,
                        int backend, uint64_t flow_hash, absl::Time now) {
  const EngineSnapshot& snap = *snapshot_;
  const ServiceConfig& s = snap.services()[service];
  const BackendConfig& b = s.backends[backend];
  const NodeConfig& node = snap.node();
  Verdict v;
  v.action = Action::kTransmit;

  if (s.mode == ForwardingMode::kDr) {
    uint8_t* f = buffer.data() + headroom;
    std::memcpy(f, b.mac.data(), 6);
    std::memcpy(f + 6, node.mac.data(), 6);
    v.offset = static_cast<uint32_t>(headroom);
    v.length = static_cast<uint32_t>(frame_len);
    ++counters_.tx_packets;
    counters_.tx_bytes += frame_len;
    return v;
  }

  // TUN.
  const IpAddress& dst = b.endpoint.address();
  const bool outer_v4 = dst.is_v4();
  const bool gue = s.tunnel == TunnelType::kGue;
  const size_t ip_size = outer_v4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  const size_t overhead = ip_size + (gue ? kUdpHeaderSize : 0);
  const size_t l2 = p.l3_offset;
  const size_t inner_len = p.l3_end - p.l3_offset;
  if (inner_len + overhead > node.mtu) {
    const uint8_t* ip = buffer.data() + headroom + l2;
    const bool df = p.is_v4() ? (ip[6] & 0x40) != 0 : true;
    if (!df) return Drop(DropReason::kMtuExceeded, headroom, frame_len);
    return TooBig(buffer, headroom, frame_len, p,
                  static_cast<uint32_t>(node.mtu - overhead), now);
  }
  Mac next_hop;
  if (!resolver_->Resolve(dst, &next_hop)) {
    return Drop(DropReason::kNoNeighbor, headroom, frame_len);
  }
  size_t room = headroom;
  if (!MakeRoom(buffer, &room, l2 + inner_len, overhead)) {
    return Drop(DropReason::kMtuExceeded, headroom, frame_len);
  }
  uint8_t saved_l2[kMaxL2Size];
  std::memcpy(saved_l2, buffer.data() + room, l2);
  uint8_t* const inner = buffer.data() + room + l2;
  const uint8_t tos = p.is_v4()
                          ? inner[1]
                          : static_cast<uint8_t>((LoadBe16(inner) >> 4) & 0xff);
  uint8_t* const start = buffer.data() + room - overhead;
  // Ethernet (+ the 802.1Q tag as received).
  std::memcpy(start, next_hop.data(), 6);
  std::memcpy(start + 6, node.mac.data(), 6);
  if (l2 > 14) std::memcpy(start + 12, saved_l2 + 12, l2 - 14);
  StoreBe16(start + l2 - 2, outer_v4 ? kEtherTypeIpv4 : kEtherTypeIpv6);

  uint8_t* const o = start + l2;
  const uint8_t inner_proto = p.is_v4() ? kIpProtoIpip : kIpProtoIpv6;
  const uint8_t outer_proto = gue ? kIpProtoUdp : inner_proto;
  const size_t outer_payload = overhead - ip_size + inner_len;
  if (outer_v4) {
    o[0] = 0x45;
    o[1] = tos;
    StoreBe16(o + 2, static_cast<uint16_t>(ip_size + outer_payload));
    StoreBe16(o + 4, 0);       // ID 0: atomic datagram (RFC 6864 §4.1).
    StoreBe16(o + 6, 0x4000);  // DF.
    o[8] = node.outer_ttl;
    o[9] = outer_proto;
    StoreBe16(o + 10, 0);
    std::memcpy(o + 12, node.tunnel_source_v4.bytes().data(), 4);
    std::memcpy(o + 16, dst.bytes().data(), 4);
    StoreBe16(o + 10, Ipv4HeaderChecksum({o, kIpv4HeaderSize}));
  } else {
    StoreBe32(o, uint32_t{6} << 28 | uint32_t{tos} << 20 |
                     (static_cast<uint32_t>(flow_hash) & 0xfffff));
    StoreBe16(o + 4, static_cast<uint16_t>(outer_payload));
    o[6] = outer_proto;
    o[7] = node.outer_ttl;
    std::memcpy(o + 8, node.tunnel_source_v6.bytes().data(), 16);
    std::memcpy(o + 24, dst.bytes().data(), 16);
  }
  if (gue) {
    uint8_t* const u = o + ip_size;
    StoreBe16(u, static_cast<uint16_t>(kGueSourcePortBase +
                                       flow_hash % kGueSourcePortRange));
    StoreBe16(u + 2, s.gue_port);
    StoreBe16(u + 4, static_cast<uint16_t>(outer_payload));
    StoreBe16(u + 6, 0);
    if (!outer_v4) {
      uint16_t check = InternetChecksum(
          {u, outer_payload},
          PseudoHeaderSumV6(o + 8, o + 24, kIpProtoUdp,
                            static_cast<uint32_t>(outer_payload)));
      StoreBe16(u + 6, check == 0 ? 0xffff : check);
    }
  }
  v.offset = static_cast<uint32_t>(room - overhead);
  v.length = static_cast<uint32_t>(l2 + overhead + inner_len);
  ++counters_.tx_packets;
  counters_.tx_bytes += v.length;
  return v;
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
