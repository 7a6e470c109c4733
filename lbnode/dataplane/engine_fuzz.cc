// engine_fuzz: Parse + Engine::Process on fuzzed frames, against the fixed
// FuzzSnapshot (DR, TUN IPIP / IP6IP6 / GUE, NAT, FULLNAT, persistence;
// engine_fuzz_snapshot.h). The seed corpus is testdata/parser_corpus (the
// sample frames) plus testdata/engine_corpus (NAT/FULLNAT fixtures,
// engine_corpus_gen). Each input gets a fresh engine (reproducible) and is
// processed twice, so the second pass takes the flow-table hit path; when
// the first pass forwarded a frame, the output with its addresses and
// ports swapped (a backend's answer) is processed too, which reaches the
// NAT/FULLNAT reply path; when a frame is a first fragment, a later fragment
// of the same datagram is made from it and processed after it (both
// directions), which reaches the FragmentTable. Checks: the verdict stays in
// the buffer, a drop has a reason and leaves the frame unchanged, a transmit
// has no reason, every packet is counted once, and the flow table stays
// consistent.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/engine_fuzz_snapshot.h"
#include "lbnode/dataplane/parser.h"

namespace anylb::dataplane {
namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

class AlwaysResolver : public NextHopResolver {
 public:
  bool Resolve(const IpAddress& /*dst*/, Mac* mac) override {
    *mac = {0x02, 0, 0, 0, 0, 0x31};
    return true;
  }
};

// Runs one frame (already at buffer[kHeadroom]) and checks the verdict.
Verdict RunOnce(Engine& engine, std::vector<uint8_t>& buffer, size_t headroom,
                size_t size, absl::Time now) {
  const std::vector<uint8_t> input(buffer.begin() + headroom,
                                   buffer.begin() + headroom + size);
  const Verdict v = engine.Process(buffer, headroom, size, now);
  Check(size_t{v.offset} + v.length <= buffer.size());
  switch (v.action) {
    case Action::kDrop:
      Check(v.drop_reason != DropReason::kNone);
      Check(v.offset == headroom && v.length == size);
      Check(std::equal(input.begin(), input.end(), buffer.begin() + headroom));
      break;
    case Action::kTransmit:
      Check(v.drop_reason == DropReason::kNone);
      Check(v.length >= 14);
      break;
    case Action::kPass:
      Check(v.offset == headroom && v.length == size);
      break;
  }
  return v;
}

// SwapEnds turns a forwarded frame into the answer its destination would
// send: addresses and TCP/UDP ports swapped (checksums go stale: the
// engine does not verify them). False when the frame has no such ends.
bool SwapEnds(std::span<uint8_t> frame) {
  const ParseResult r = Parse(frame);
  if (!r.ok()) return false;
  const ParsedPacket& p = r.packet;
  const size_t n = p.addr_size();
  uint8_t tmp[16];
  std::memcpy(tmp, frame.data() + p.src_addr_offset(), n);
  std::memcpy(frame.data() + p.src_addr_offset(),
              frame.data() + p.dst_addr_offset(), n);
  std::memcpy(frame.data() + p.dst_addr_offset(), tmp, n);
  if ((p.l4_protocol == kIpProtoTcp || p.l4_protocol == kIpProtoUdp) &&
      p.has_l4_header()) {
    uint8_t* ports = frame.data() + p.l4_offset;
    std::swap_ranges(ports, ports + 2, ports + 2);
  }
  return true;
}

// MakeLater turns a first fragment (offset 0, more to come) into a later
// fragment of the same datagram (offset 8 bytes, same identification and
// addresses), so the FragmentTable's hit path runs after the first
// fragment's record. False when the frame is not a first fragment.
bool MakeLater(std::span<uint8_t> frame) {
  const ParseResult r = Parse(frame);
  if (!r.ok() || !r.packet.is_first_fragment()) return false;
  const ParsedPacket& p = r.packet;
  uint8_t* const ip = frame.data() + p.l3_offset;
  if (p.is_v4()) {
    const uint16_t word = static_cast<uint16_t>(ip[6] << 8 | ip[7]);
    const uint16_t later = static_cast<uint16_t>((word & 0xe000) | 1);
    ip[6] = static_cast<uint8_t>(later >> 8);
    ip[7] = static_cast<uint8_t>(later);
    return true;
  }
  // IPv6: walk Hop-by-Hop / Routing / Destination Options to the Fragment
  // header (the parser accepted the chain, so it is within the frame).
  uint8_t next = ip[6];
  size_t at = p.l3_offset + 40;
  while (at + 8 <= frame.size()) {
    if (next == 44) {
      frame[at + 3] = static_cast<uint8_t>((frame[at + 3] & 0x07) | 0x08);
      frame[at + 2] = 0;  // Offset 1 (8 bytes), M kept.
      return true;
    }
    if (next != 0 && next != 43 && next != 60) return false;
    next = frame[at];
    at += (size_t{frame[at + 1]} + 1) * 8;
  }
  return false;
}

// RunLater runs the later fragment made from `frame` (if it is a first
// fragment); returns the packets processed (0 or 1).
uint64_t RunLater(Engine& engine, std::span<const uint8_t> frame,
                  size_t headroom, absl::Time now) {
  std::vector<uint8_t> later(frame.begin(), frame.end());
  if (!MakeLater(later)) return 0;
  std::vector<uint8_t> buffer(headroom + later.size() + 128);
  std::memcpy(buffer.data() + headroom, later.data(), later.size());
  RunOnce(engine, buffer, headroom, later.size(), now);
  return 1;
}

}  // namespace
}  // namespace anylb::dataplane

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using anylb::dataplane::Action;
  using anylb::dataplane::AlwaysResolver;
  using anylb::dataplane::Check;
  using anylb::dataplane::Engine;
  using anylb::dataplane::EngineCounters;
  using anylb::dataplane::EngineOptions;
  using anylb::dataplane::EngineSnapshot;
  using anylb::dataplane::RunLater;
  using anylb::dataplane::RunOnce;
  using anylb::dataplane::SwapEnds;
  using anylb::dataplane::Verdict;
  namespace fuzz = anylb::dataplane::fuzz;
  static AlwaysResolver resolver;
  static const std::shared_ptr<const EngineSnapshot> snapshot =
      fuzz::FuzzSnapshot();
  if (size > 9000) return 0;
  EngineOptions options;
  options.flow_table.capacity = 64;
  options.flow_table.seed = 1;
  options.persistence_capacity = 16;
  auto engine = Engine::Create(snapshot, &resolver, options);
  Check(engine.ok());
  constexpr size_t kHeadroom = 64;
  std::vector<uint8_t> buffer(kHeadroom + size + 128);
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  uint64_t packets = 0;
  Verdict first;
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(buffer.begin(), buffer.end(), 0);
    if (size > 0) std::memcpy(buffer.data() + kHeadroom, data, size);
    const Verdict v = RunOnce(**engine, buffer, kHeadroom, size, now);
    ++packets;
    if (pass == 0) first = v;
  }
  // A later fragment of the same datagram (after its first, if the input
  // is one): the NAT/FULLNAT FragmentTable hit, or a DR/TUN 3-tuple hit.
  packets += RunLater(**engine, {data, size}, kHeadroom, now);
  // The second pass left its output in the buffer; answer it.
  if (first.action == Action::kTransmit && !first.to_sender) {
    std::fill(buffer.begin(), buffer.end(), 0);
    if (size > 0) std::memcpy(buffer.data() + kHeadroom, data, size);
    const Verdict v = (*engine)->Process(buffer, kHeadroom, size, now);
    ++packets;
    if (v.action == Action::kTransmit) {
      std::vector<uint8_t> answer(buffer.begin() + v.offset,
                                  buffer.begin() + v.offset + v.length);
      if (SwapEnds(answer)) {
        std::vector<uint8_t> reply_buffer(kHeadroom + answer.size() + 128);
        std::memcpy(reply_buffer.data() + kHeadroom, answer.data(),
                    answer.size());
        RunOnce(**engine, reply_buffer, kHeadroom, answer.size(), now);
        ++packets;
        // The answer's later fragment (a NAT/FULLNAT reply fragment).
        packets += RunLater(**engine, answer, kHeadroom, now);
      }
    }
  }
  (*engine)->ExpireSome(now + absl::Hours(1), 1000);
  Check((*engine)->flow_table().size() == 0);
  Check((*engine)->flow_table().CheckConsistency().ok());
  const EngineCounters& c = (*engine)->counters();
  Check(c.rx_packets == packets);
  Check(c.tx_packets + c.pass_packets + c.drop_packets == packets);
  return 0;
}
