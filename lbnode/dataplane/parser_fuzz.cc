// Fuzz target over Parse(): any byte string must parse without reading out
// of bounds (ASan), and an accepted packet's offsets must lie inside the
// frame and agree with each other. Differential: Parse, ParseGeneral and
// (when it takes the frame) ParseFast must give the same result, field for
// field. Invariant violations and differences trap.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lbnode/dataplane/parser.h"

namespace {

using ::anylb::dataplane::DropReason;
using ::anylb::dataplane::kIpProtoTcp;
using ::anylb::dataplane::kIpProtoUdp;
using ::anylb::dataplane::MakeFlowKey;
using ::anylb::dataplane::MakeIcmpErrorFlowKey;
using ::anylb::dataplane::Parse;
using ::anylb::dataplane::ParsedPacket;
using ::anylb::dataplane::ParseFast;
using ::anylb::dataplane::ParseGeneral;
using ::anylb::dataplane::ParseResult;
using ::anylb::dataplane::ParseVerdict;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void CheckSame(const ParseResult& a, const ParseResult& b) {
  Check(a.verdict == b.verdict);
  Check(a.drop_reason == b.drop_reason);
  Check(a.packet == b.packet);
}

void CheckOffsets(const ParsedPacket& p, size_t size) {
  const size_t ip_header = p.is_v4() ? 20 : 40;
  Check(p.l3_offset == 14 || p.l3_offset == 18);
  Check(p.l3_offset + ip_header <= p.l3_end);
  Check(p.l3_end <= size);
  Check(p.dst_addr_offset() + p.addr_size() <= p.l3_end);
  Check(p.l3_offset + ip_header <= p.l4_offset);
  Check(p.l4_offset <= p.payload_offset);
  Check(size_t{p.payload_offset} + p.payload_length <= p.l3_end);
  if (p.has_l4_header() && p.l4_protocol == kIpProtoTcp) {
    Check(p.l4_offset + 20u <= p.payload_offset);
  }
  if (!p.has_l4_header() ||
      (p.l4_protocol != kIpProtoTcp && p.l4_protocol != kIpProtoUdp)) {
    Check(p.src_port == 0 && p.dst_port == 0);
  }
  if (p.is_icmp_error) {
    Check(p.inner_l3_offset == p.l4_offset + 8);
    Check(p.inner_l3_offset + ip_header <= p.l3_end);
    Check(p.inner_dst_addr_offset() + p.addr_size() <= p.l3_end);
    if (p.inner_l4_offset != 0) {
      Check(p.inner_l4_offset >= p.inner_l3_offset + ip_header);
      if (p.inner_protocol == kIpProtoTcp || p.inner_protocol == kIpProtoUdp) {
        Check(p.inner_l4_offset + 8u <= p.l3_end);
      }
    } else {
      Check(p.inner_src_port == 0 && p.inner_dst_port == 0);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> frame(data, size);
  const ParseResult r = Parse(frame);
  CheckSame(r, ParseGeneral(frame));
  ParseResult fast;
  if (ParseFast(frame, &fast)) {
    Check(fast.verdict == ParseVerdict::kOk);
    CheckSame(fast, r);
  }
  switch (r.verdict) {
    case ParseVerdict::kDrop:
      Check(r.drop_reason != DropReason::kNone);
      return 0;
    case ParseVerdict::kNotIp:
      Check(r.drop_reason == DropReason::kNone);
      return 0;
    case ParseVerdict::kOk:
      break;
  }
  Check(r.drop_reason == DropReason::kNone);
  CheckOffsets(r.packet, size);
  (void)MakeFlowKey(frame, r.packet);
  if (r.packet.is_icmp_error) (void)MakeIcmpErrorFlowKey(frame, r.packet);

  // Bytes after the datagram are padding: adding more changes nothing.
  if (size < 0xffff - 16) {
    std::vector<uint8_t> padded(data, data + size);
    padded.resize(size + 16, 0xa5);
    const ParseResult again = Parse(padded);
    Check(again.ok() && again.packet == r.packet);
    CheckSame(again, ParseGeneral(padded));
  }
  return 0;
}
