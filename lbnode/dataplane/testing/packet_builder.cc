#include "lbnode/dataplane/testing/packet_builder.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/ip_address.h"

namespace anylb::dataplane_testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "PacketBuilder: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

enum Kind : int {
  kEthLayer,
  kVlanLayer,
  kIpv4Layer,
  kIpv6Layer,
  kHopByHopLayer,
  kRoutingLayer,
  kFragmentLayer,
  kDestOptsLayer,
  kTcpLayer,
  kUdpLayer,
  kGue1Layer,
  kGue0Layer,
  kIcmp4Layer,
  kIcmp6Layer,
  kBytesLayer,
};

const char* KindName(int kind) {
  switch (kind) {
    case kEthLayer:
      return "Eth";
    case kVlanLayer:
      return "Vlan";
    case kIpv4Layer:
      return "Ipv4";
    case kIpv6Layer:
      return "Ipv6";
    case kHopByHopLayer:
      return "HopByHop";
    case kRoutingLayer:
      return "Routing";
    case kFragmentLayer:
      return "Fragment";
    case kDestOptsLayer:
      return "DestinationOptions";
    case kTcpLayer:
      return "Tcp";
    case kUdpLayer:
      return "Udp";
    case kGue1Layer:
      return "Gue";
    case kGue0Layer:
      return "GueVariant0";
    case kIcmp4Layer:
      return "IcmpV4";
    case kIcmp6Layer:
      return "IcmpV6";
    case kBytesLayer:
      return "Payload";
  }
  return "?";
}

bool IsIp(int kind) { return kind == kIpv4Layer || kind == kIpv6Layer; }
bool IsIpv6Ext(int kind) {
  return kind == kHopByHopLayer || kind == kRoutingLayer ||
         kind == kFragmentLayer || kind == kDestOptsLayer;
}

void Put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void Put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  Put16(b, at, static_cast<uint16_t>(v >> 16));
  Put16(b, at + 2, static_cast<uint16_t>(v));
}
uint16_t Get16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

IpAddress ParseIpOrDie(std::string_view text, IpFamily family) {
  absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
  if (!address.ok()) Die(std::string(address.status().message()));
  if (address->family() != family) {
    Die(absl::StrCat("\"", std::string(text), "\" is not an ",
                     family == IpFamily::kV4 ? "IPv4" : "IPv6", " address"));
  }
  return *address;
}

std::vector<uint8_t> PadTo4(std::vector<uint8_t> bytes) {
  while (bytes.size() % 4 != 0) bytes.push_back(0);
  return bytes;
}

}  // namespace

std::array<uint8_t, 6> ParseMac(std::string_view text) {
  std::array<uint8_t, 6> mac{};
  auto hex = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.size() != 17)
    Die(absl::StrCat("bad MAC \"", std::string(text), "\""));
  for (size_t i = 0; i < 6; ++i) {
    int hi = hex(text[3 * i]);
    int lo = hex(text[3 * i + 1]);
    if (hi < 0 || lo < 0 ||
        (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-')) {
      Die(absl::StrCat("bad MAC \"", std::string(text), "\""));
    }
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return mac;
}

std::string FormatMac(std::span<const uint8_t, 6> mac) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
                         mac[2], mac[3], mac[4], mac[5]);
}

uint16_t InternetChecksum(
    std::initializer_list<std::span<const uint8_t>> parts) {
  // RFC 1071 §4.1, on the concatenated bytes.
  std::vector<uint8_t> all;
  for (std::span<const uint8_t> part : parts) {
    all.insert(all.end(), part.begin(), part.end());
  }
  if (all.size() % 2 != 0) all.push_back(0);
  uint64_t sum = 0;
  for (size_t i = 0; i < all.size(); i += 2) {
    sum += static_cast<uint64_t>(all[i]) << 8 | all[i + 1];
  }
  while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

// One layer; which fields matter depends on `kind`.
struct PacketBuilder::Layer {
  int kind = kBytesLayer;
  // Eth / Vlan.
  std::array<uint8_t, 6> src_mac{};
  std::array<uint8_t, 6> dst_mac{};
  uint16_t vid = 0;
  uint8_t pcp = 0;
  std::optional<uint16_t> ether_type;
  // IPv4 / IPv6.
  IpAddress src;
  IpAddress dst;
  uint8_t ttl = 64;  // Also the IPv6 hop limit.
  uint8_t tos = 0;   // Also the IPv6 traffic class.
  uint32_t flow_label = 0;
  uint16_t id = 0;
  bool df = false;
  bool mf = false;
  uint16_t frag_offset = 0;
  std::optional<uint8_t> version;
  std::optional<uint8_t> ihl;
  std::optional<uint8_t> protocol;
  std::optional<uint16_t> length;  // Total / payload / UDP length override.
  // IPv4 or TCP options.
  std::vector<uint8_t> options;
  // IPv6 extension headers.
  size_t ext_length = 8;
  uint8_t routing_type = 0;
  uint8_t segments_left = 0;
  uint32_t frag_id = 0;
  std::optional<uint8_t> hdr_ext_len;
  // TCP / UDP.
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 1;
  uint32_t ack = 0;
  uint16_t window = 65535;
  uint8_t flags = kAck;
  std::optional<uint8_t> data_offset;
  // ICMP.
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  uint32_t icmp_rest = 0;
  // Checksum overrides.
  std::optional<uint16_t> checksum;
  bool bad_checksum = false;
  // Payload.
  std::vector<uint8_t> bytes;
};

PacketBuilder::PacketBuilder() = default;
PacketBuilder::PacketBuilder(const PacketBuilder&) = default;
PacketBuilder& PacketBuilder::operator=(const PacketBuilder&) = default;
PacketBuilder::PacketBuilder(PacketBuilder&&) noexcept = default;
PacketBuilder& PacketBuilder::operator=(PacketBuilder&&) noexcept = default;
PacketBuilder::~PacketBuilder() = default;

PacketBuilder::Layer& PacketBuilder::Add(int kind) {
  int prev = layers_.empty() ? -1 : layers_.back().kind;
  auto require = [&](bool ok, const char* what) {
    if (!ok) Die(absl::StrCat(KindName(kind), "() must follow ", what));
  };
  switch (kind) {
    case kVlanLayer:
      require(prev == kEthLayer || prev == kVlanLayer, "Eth() or Vlan()");
      break;
    case kHopByHopLayer:
    case kRoutingLayer:
    case kFragmentLayer:
    case kDestOptsLayer:
      require(prev == kIpv6Layer || IsIpv6Ext(prev),
              "Ipv6() or an extension header");
      break;
    case kGue1Layer:
    case kGue0Layer:
      require(prev == kUdpLayer, "Udp()");
      break;
    case kTcpLayer:
    case kUdpLayer:
    case kIcmp4Layer:
    case kIcmp6Layer: {
      bool has_ip = std::any_of(layers_.begin(), layers_.end(),
                                [](const Layer& l) { return IsIp(l.kind); });
      require(has_ip, "an Ipv4() or Ipv6() layer");
      break;
    }
    default:
      break;
  }
  if (!layers_.empty() && layers_.back().kind == kGue1Layer && !IsIp(kind)) {
    Die("Gue() (variant 1) must be followed by Ipv4() or Ipv6()");
  }
  layers_.emplace_back();
  layers_.back().kind = kind;
  return layers_.back();
}

PacketBuilder::Layer& PacketBuilder::Last(std::initializer_list<int> kinds,
                                          const char* modifier) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (std::find(kinds.begin(), kinds.end(), it->kind) != kinds.end()) {
      return *it;
    }
  }
  Die(absl::StrCat(modifier, "() has no layer to modify"));
}

PacketBuilder& PacketBuilder::Eth(std::string_view src_mac,
                                  std::string_view dst_mac) {
  Layer& l = Add(kEthLayer);
  l.src_mac = ParseMac(src_mac);
  l.dst_mac = ParseMac(dst_mac);
  return *this;
}

PacketBuilder& PacketBuilder::Vlan(uint16_t vid, uint8_t pcp) {
  Layer& l = Add(kVlanLayer);
  l.vid = vid;
  l.pcp = pcp;
  return *this;
}

PacketBuilder& PacketBuilder::EtherType(uint16_t ether_type) {
  Last({kEthLayer, kVlanLayer}, "EtherType").ether_type = ether_type;
  return *this;
}

PacketBuilder& PacketBuilder::Ipv4(std::string_view src, std::string_view dst) {
  Layer& l = Add(kIpv4Layer);
  l.src = ParseIpOrDie(src, IpFamily::kV4);
  l.dst = ParseIpOrDie(dst, IpFamily::kV4);
  return *this;
}

PacketBuilder& PacketBuilder::Ttl(uint8_t ttl) {
  Last({kIpv4Layer}, "Ttl").ttl = ttl;
  return *this;
}
PacketBuilder& PacketBuilder::Tos(uint8_t tos) {
  Last({kIpv4Layer}, "Tos").tos = tos;
  return *this;
}
PacketBuilder& PacketBuilder::Id(uint16_t id) {
  Last({kIpv4Layer}, "Id").id = id;
  return *this;
}
PacketBuilder& PacketBuilder::DontFragment(bool df) {
  Last({kIpv4Layer}, "DontFragment").df = df;
  return *this;
}
PacketBuilder& PacketBuilder::MoreFragments(bool mf) {
  Last({kIpv4Layer}, "MoreFragments").mf = mf;
  return *this;
}
PacketBuilder& PacketBuilder::FragmentOffset(uint16_t offset_units) {
  if (offset_units > 0x1fff) Die("FragmentOffset() is 13 bits");
  Last({kIpv4Layer}, "FragmentOffset").frag_offset = offset_units;
  return *this;
}
PacketBuilder& PacketBuilder::Ipv4Options(std::vector<uint8_t> options) {
  Layer& l = Last({kIpv4Layer}, "Ipv4Options");
  l.options.insert(l.options.end(), options.begin(), options.end());
  l.options = PadTo4(std::move(l.options));
  if (l.options.size() > 40) Die("IPv4 options are at most 40 bytes");
  return *this;
}
PacketBuilder& PacketBuilder::Ihl(uint8_t ihl) {
  Last({kIpv4Layer}, "Ihl").ihl = ihl;
  return *this;
}
PacketBuilder& PacketBuilder::TotalLength(uint16_t total_length) {
  Last({kIpv4Layer}, "TotalLength").length = total_length;
  return *this;
}

PacketBuilder& PacketBuilder::Ipv6(std::string_view src, std::string_view dst) {
  Layer& l = Add(kIpv6Layer);
  l.src = ParseIpOrDie(src, IpFamily::kV6);
  l.dst = ParseIpOrDie(dst, IpFamily::kV6);
  return *this;
}
PacketBuilder& PacketBuilder::HopLimit(uint8_t hop_limit) {
  Last({kIpv6Layer}, "HopLimit").ttl = hop_limit;
  return *this;
}
PacketBuilder& PacketBuilder::TrafficClass(uint8_t traffic_class) {
  Last({kIpv6Layer}, "TrafficClass").tos = traffic_class;
  return *this;
}
PacketBuilder& PacketBuilder::FlowLabel(uint32_t flow_label) {
  if (flow_label > 0xfffff) Die("FlowLabel() is 20 bits");
  Last({kIpv6Layer}, "FlowLabel").flow_label = flow_label;
  return *this;
}
PacketBuilder& PacketBuilder::PayloadLength(uint16_t payload_length) {
  Last({kIpv6Layer}, "PayloadLength").length = payload_length;
  return *this;
}

namespace {
void CheckExtLength(size_t length) {
  if (length < 8 || length % 8 != 0 || length > 2048) {
    Die(absl::StrCat("extension header length ", length,
                     " is not a multiple of 8 in [8, 2048]"));
  }
}
}  // namespace

PacketBuilder& PacketBuilder::HopByHop(size_t length) {
  CheckExtLength(length);
  Add(kHopByHopLayer).ext_length = length;
  return *this;
}
PacketBuilder& PacketBuilder::DestinationOptions(size_t length) {
  CheckExtLength(length);
  Add(kDestOptsLayer).ext_length = length;
  return *this;
}
PacketBuilder& PacketBuilder::Routing(uint8_t routing_type,
                                      uint8_t segments_left, size_t length) {
  CheckExtLength(length);
  Layer& l = Add(kRoutingLayer);
  l.ext_length = length;
  l.routing_type = routing_type;
  l.segments_left = segments_left;
  return *this;
}
PacketBuilder& PacketBuilder::Fragment(uint16_t offset_units,
                                       bool more_fragments,
                                       uint32_t identification) {
  if (offset_units > 0x1fff) Die("Fragment() offset is 13 bits");
  Layer& l = Add(kFragmentLayer);
  l.frag_offset = offset_units;
  l.mf = more_fragments;
  l.frag_id = identification;
  l.ext_length = 8;
  return *this;
}
PacketBuilder& PacketBuilder::HdrExtLen(uint8_t hdr_ext_len) {
  Last({kHopByHopLayer, kRoutingLayer, kDestOptsLayer}, "HdrExtLen")
      .hdr_ext_len = hdr_ext_len;
  return *this;
}

PacketBuilder& PacketBuilder::Version(uint8_t version) {
  Last({kIpv4Layer, kIpv6Layer}, "Version").version = version;
  return *this;
}
PacketBuilder& PacketBuilder::Protocol(uint8_t protocol) {
  Last({kIpv4Layer, kIpv6Layer, kHopByHopLayer, kRoutingLayer, kFragmentLayer,
        kDestOptsLayer, kGue0Layer},
       "Protocol")
      .protocol = protocol;
  return *this;
}

PacketBuilder& PacketBuilder::Tcp(uint16_t src_port, uint16_t dst_port) {
  Layer& l = Add(kTcpLayer);
  l.sport = src_port;
  l.dport = dst_port;
  return *this;
}
PacketBuilder& PacketBuilder::Flags(uint8_t flags) {
  Last({kTcpLayer}, "Flags").flags = flags;
  return *this;
}
PacketBuilder& PacketBuilder::Seq(uint32_t seq) {
  Last({kTcpLayer}, "Seq").seq = seq;
  return *this;
}
PacketBuilder& PacketBuilder::AckNumber(uint32_t ack) {
  Last({kTcpLayer}, "AckNumber").ack = ack;
  return *this;
}
PacketBuilder& PacketBuilder::Window(uint16_t window) {
  Last({kTcpLayer}, "Window").window = window;
  return *this;
}
PacketBuilder& PacketBuilder::TcpOptions(std::vector<uint8_t> options) {
  Layer& l = Last({kTcpLayer}, "TcpOptions");
  l.options.insert(l.options.end(), options.begin(), options.end());
  l.options = PadTo4(std::move(l.options));
  if (l.options.size() > 40) Die("TCP options are at most 40 bytes");
  return *this;
}
PacketBuilder& PacketBuilder::DataOffset(uint8_t data_offset) {
  Last({kTcpLayer}, "DataOffset").data_offset = data_offset;
  return *this;
}

PacketBuilder& PacketBuilder::Udp(uint16_t src_port, uint16_t dst_port) {
  Layer& l = Add(kUdpLayer);
  l.sport = src_port;
  l.dport = dst_port;
  return *this;
}
PacketBuilder& PacketBuilder::UdpLength(uint16_t length) {
  Last({kUdpLayer}, "UdpLength").length = length;
  return *this;
}
PacketBuilder& PacketBuilder::Gue() {
  Add(kGue1Layer);
  return *this;
}
PacketBuilder& PacketBuilder::GueVariant0() {
  Add(kGue0Layer);
  return *this;
}

PacketBuilder& PacketBuilder::IcmpV4(uint8_t type, uint8_t code) {
  Layer& l = Add(kIcmp4Layer);
  l.icmp_type = type;
  l.icmp_code = code;
  return *this;
}
PacketBuilder& PacketBuilder::IcmpV6(uint8_t type, uint8_t code) {
  Layer& l = Add(kIcmp6Layer);
  l.icmp_type = type;
  l.icmp_code = code;
  return *this;
}
PacketBuilder& PacketBuilder::IcmpRest(uint32_t rest) {
  Last({kIcmp4Layer, kIcmp6Layer}, "IcmpRest").icmp_rest = rest;
  return *this;
}

PacketBuilder& PacketBuilder::Payload(std::string_view text) {
  Add(kBytesLayer).bytes.assign(text.begin(), text.end());
  return *this;
}
PacketBuilder& PacketBuilder::Payload(std::span<const uint8_t> bytes) {
  Add(kBytesLayer).bytes.assign(bytes.begin(), bytes.end());
  return *this;
}

PacketBuilder& PacketBuilder::Checksum(uint16_t value) {
  Last({kIpv4Layer, kTcpLayer, kUdpLayer, kIcmp4Layer, kIcmp6Layer}, "Checksum")
      .checksum = value;
  return *this;
}
PacketBuilder& PacketBuilder::BadChecksum() {
  Last({kIpv4Layer, kTcpLayer, kUdpLayer, kIcmp4Layer, kIcmp6Layer},
       "BadChecksum")
      .bad_checksum = true;
  return *this;
}
PacketBuilder& PacketBuilder::Pad(size_t count) {
  pad_ += count;
  return *this;
}
PacketBuilder& PacketBuilder::PadTo(size_t size) {
  pad_to_ = size;
  return *this;
}
PacketBuilder& PacketBuilder::Truncate(size_t size) {
  truncate_ = size;
  return *this;
}

namespace {

// The IP protocol number (IPv6 next header) that announces `next`, or
// `none` when nothing or plain bytes follow.
uint8_t ProtocolFor(const PacketBuilder::Layer* next, uint8_t none);

uint16_t EtherTypeFor(const PacketBuilder::Layer* next);

// Writes `computed` or the layer's override into b[at..at+1].
void PutChecksum(std::vector<uint8_t>& b, size_t at, uint16_t computed,
                 const PacketBuilder::Layer& l) {
  uint16_t value = computed;
  if (l.bad_checksum) value ^= 0x00ff;
  if (l.checksum.has_value()) value = *l.checksum;
  Put16(b, at, value);
}

}  // namespace

std::vector<uint8_t> PacketBuilder::Build() const {
  // Serialise back to front: each header is made knowing everything after it
  // (for lengths and checksums) and what the next layer is (for type fields).
  std::vector<uint8_t> tail;
  for (size_t i = layers_.size(); i-- > 0;) {
    const Layer& l = layers_[i];
    const Layer* next = i + 1 < layers_.size() ? &layers_[i + 1] : nullptr;
    // The IP header whose pseudo-header covers a transport layer.
    const Layer* ip = nullptr;
    for (size_t j = i; j-- > 0;) {
      if (IsIp(layers_[j].kind)) {
        ip = &layers_[j];
        break;
      }
    }
    // Pseudo-header (RFC 793 §3.1 / RFC 768 / RFC 8200 §8.1) for a
    // transport header of protocol `proto` and `length` bytes.
    auto pseudo = [&](uint8_t proto, size_t length) {
      std::vector<uint8_t> p;
      std::span<const uint8_t> s = ip->src.bytes();
      std::span<const uint8_t> d = ip->dst.bytes();
      p.insert(p.end(), s.begin(), s.end());
      p.insert(p.end(), d.begin(), d.end());
      if (ip->kind == kIpv4Layer) {
        p.push_back(0);
        p.push_back(proto);
        p.push_back(static_cast<uint8_t>(length >> 8));
        p.push_back(static_cast<uint8_t>(length));
      } else {
        p.resize(p.size() + 8);
        Put32(p, 32, static_cast<uint32_t>(length));
        p[39] = proto;
      }
      return p;
    };

    std::vector<uint8_t> h;
    switch (l.kind) {
      case kEthLayer:
        h.resize(14);
        std::copy(l.dst_mac.begin(), l.dst_mac.end(), h.begin());
        std::copy(l.src_mac.begin(), l.src_mac.end(), h.begin() + 6);
        Put16(h, 12, l.ether_type.value_or(EtherTypeFor(next)));
        break;
      case kVlanLayer:
        h.resize(4);
        // The TPID (0x8100) is the previous layer's EtherType.
        Put16(h, 0, static_cast<uint16_t>(l.pcp << 13 | (l.vid & 0x0fff)));
        Put16(h, 2, l.ether_type.value_or(EtherTypeFor(next)));
        break;
      case kIpv4Layer: {
        h.resize(20);
        h.insert(h.end(), l.options.begin(), l.options.end());
        h[0] = static_cast<uint8_t>(l.version.value_or(4) << 4 |
                                    (l.ihl.value_or(h.size() / 4) & 0x0f));
        h[1] = l.tos;
        size_t total = h.size() + tail.size();
        if (total > 0xffff && !l.length) Die("IPv4 packet over 65535 bytes");
        Put16(h, 2, l.length.value_or(static_cast<uint16_t>(total)));
        Put16(h, 4, l.id);
        Put16(h, 6,
              static_cast<uint16_t>((l.df ? 0x4000 : 0) | (l.mf ? 0x2000 : 0) |
                                    l.frag_offset));
        h[8] = l.ttl;
        h[9] = l.protocol.value_or(ProtocolFor(next, 253));
        std::span<const uint8_t> s = l.src.bytes();
        std::span<const uint8_t> d = l.dst.bytes();
        std::copy(s.begin(), s.end(), h.begin() + 12);
        std::copy(d.begin(), d.end(), h.begin() + 16);
        PutChecksum(h, 10, InternetChecksum({h}), l);
        break;
      }
      case kIpv6Layer: {
        h.resize(40);
        uint32_t word0 = uint32_t{l.version.value_or(6)} << 28 |
                         uint32_t{l.tos} << 20 | l.flow_label;
        Put32(h, 0, word0);
        if (tail.size() > 0xffff && !l.length) Die("IPv6 payload over 65535");
        Put16(h, 4, l.length.value_or(static_cast<uint16_t>(tail.size())));
        h[6] = l.protocol.value_or(ProtocolFor(next, 59));
        h[7] = l.ttl;
        std::span<const uint8_t> s = l.src.bytes();
        std::span<const uint8_t> d = l.dst.bytes();
        std::copy(s.begin(), s.end(), h.begin() + 8);
        std::copy(d.begin(), d.end(), h.begin() + 24);
        break;
      }
      case kHopByHopLayer:
      case kDestOptsLayer:
      case kRoutingLayer: {
        h.resize(l.ext_length);
        h[0] = l.protocol.value_or(ProtocolFor(next, 59));
        h[1] =
            l.hdr_ext_len.value_or(static_cast<uint8_t>(l.ext_length / 8 - 1));
        if (l.kind == kRoutingLayer) {
          h[2] = l.routing_type;
          h[3] = l.segments_left;
        } else {
          // One PadN option (RFC 8200 §4.2) fills the rest.
          h[2] = 1;
          h[3] = static_cast<uint8_t>(l.ext_length - 4);
        }
        break;
      }
      case kFragmentLayer:
        h.resize(8);
        h[0] = l.protocol.value_or(ProtocolFor(next, 59));
        Put16(h, 2, static_cast<uint16_t>(l.frag_offset << 3 | (l.mf ? 1 : 0)));
        Put32(h, 4, l.frag_id);
        break;
      case kTcpLayer: {
        h.resize(20);
        h.insert(h.end(), l.options.begin(), l.options.end());
        Put16(h, 0, l.sport);
        Put16(h, 2, l.dport);
        Put32(h, 4, l.seq);
        Put32(h, 8, l.ack);
        h[12] = static_cast<uint8_t>(l.data_offset.value_or(h.size() / 4) << 4);
        h[13] = l.flags;
        Put16(h, 14, l.window);
        std::vector<uint8_t> ph = pseudo(6, h.size() + tail.size());
        PutChecksum(h, 16, InternetChecksum({ph, h, tail}), l);
        break;
      }
      case kUdpLayer: {
        h.resize(8);
        Put16(h, 0, l.sport);
        Put16(h, 2, l.dport);
        size_t length = h.size() + tail.size();
        Put16(h, 4, l.length.value_or(static_cast<uint16_t>(length)));
        std::vector<uint8_t> ph = pseudo(17, length);
        uint16_t sum = InternetChecksum({ph, h, tail});
        // RFC 768: a computed 0 is sent as all ones; 0 means "none".
        PutChecksum(h, 6, sum == 0 ? 0xffff : sum, l);
        break;
      }
      case kGue1Layer:
        if (next == nullptr || !IsIp(next->kind)) {
          Die("Gue() (variant 1) must be followed by Ipv4() or Ipv6()");
        }
        break;
      case kGue0Layer:
        h.resize(4);
        h[0] = 0;  // Ver 0, C 0, Hlen 0.
        h[1] = l.protocol.value_or(ProtocolFor(next, 59));
        break;
      case kIcmp4Layer:
      case kIcmp6Layer: {
        h.resize(8);
        h[0] = l.icmp_type;
        h[1] = l.icmp_code;
        Put32(h, 4, l.icmp_rest);
        if (l.kind == kIcmp4Layer) {
          PutChecksum(h, 2, InternetChecksum({h, tail}), l);
        } else {
          if (ip->kind != kIpv6Layer) Die("IcmpV6() over IPv4");
          std::vector<uint8_t> ph = pseudo(58, h.size() + tail.size());
          PutChecksum(h, 2, InternetChecksum({ph, h, tail}), l);
        }
        break;
      }
      case kBytesLayer:
        h = l.bytes;
        break;
    }
    tail.insert(tail.begin(), h.begin(), h.end());
  }
  tail.resize(tail.size() + pad_);
  if (tail.size() < pad_to_) tail.resize(pad_to_);
  if (truncate_.has_value() && *truncate_ < tail.size()) {
    tail.resize(*truncate_);
  }
  return tail;
}

namespace {

uint8_t ProtocolFor(const PacketBuilder::Layer* next, uint8_t none) {
  if (next == nullptr) return none;
  switch (next->kind) {
    case kIpv4Layer:
      return 4;
    case kIpv6Layer:
      return 41;
    case kTcpLayer:
      return 6;
    case kUdpLayer:
      return 17;
    case kIcmp4Layer:
      return 1;
    case kIcmp6Layer:
      return 58;
    case kHopByHopLayer:
      return 0;
    case kRoutingLayer:
      return 43;
    case kFragmentLayer:
      return 44;
    case kDestOptsLayer:
      return 60;
    default:
      return none;
  }
}

uint16_t EtherTypeFor(const PacketBuilder::Layer* next) {
  if (next == nullptr) return 0x88b5;
  switch (next->kind) {
    case kVlanLayer:
      return 0x8100;
    case kIpv4Layer:
      return 0x0800;
    case kIpv6Layer:
      return 0x86dd;
    default:
      return 0x88b5;
  }
}

// ---------------------------------------------------------------------------
// An independent walk over a frame, shared by VerifyChecksums and
// DescribeField. It knows nothing of the dataplane parser.

struct Header {
  std::string name;  // "eth", "vlan", "ipv4", "tcp", ...
  size_t offset = 0;
  size_t length = 0;  // Header bytes present.
  size_t end = 0;     // End of the datagram the header belongs to.
  int ip = -1;        // Index of the enclosing IP header.
  bool fragment = false;
  bool quoted = false;  // Inside an ICMP error's quoted datagram.
};

class Walker {
 public:
  explicit Walker(std::span<const uint8_t> f) : f_(f) {}

  std::vector<Header> headers;
  std::string error;
  size_t ip_end = 0;  // End of the outermost IP datagram.

  void FromEthernet() {
    if (f_.size() < 14) return Fail(0, "truncated Ethernet header");
    Push("eth", 0, 14, f_.size(), -1, false, false);
    uint16_t type = Get16(f_, 12);
    size_t pos = 14;
    while (type == 0x8100 || type == 0x88a8) {
      if (f_.size() < pos + 4) return Fail(pos, "truncated VLAN tag");
      Push("vlan", pos, 4, f_.size(), -1, false, false);
      type = Get16(f_, pos + 2);
      pos += 4;
    }
    if (type == 0x0800 || type == 0x86dd) FromIp(pos, f_.size(), false);
  }

  void FromIp(size_t pos, size_t limit, bool quoted) {
    if (pos >= limit) return quoted ? void() : Fail(pos, "missing IP header");
    int version = f_[pos] >> 4;
    size_t avail = limit - pos;
    if (version == 4) {
      if (avail < 20) return Partial("ipv4", pos, avail, quoted);
      size_t hlen = size_t{f_[pos] & 0x0fu} * 4;
      if (hlen < 20) return Fail(pos, absl::StrCat("IPv4 IHL ", hlen / 4));
      if (hlen > avail) return Partial("ipv4", pos, avail, quoted);
      size_t total = Get16(f_, pos + 2);
      if (total < hlen) return Fail(pos, "IPv4 total length < header");
      size_t end = pos + total;
      if (end > limit) {
        if (!quoted) return Fail(pos, "IPv4 total length beyond the frame");
        end = limit;
      }
      int ip = Push("ipv4", pos, hlen, end, -1, false, quoted);
      if (!quoted && ip_end == 0) ip_end = end;
      uint16_t frag = Get16(f_, pos + 6);
      if ((frag & 0x1fff) != 0) return;  // Non-first fragment: no L4 header.
      Upper(f_[pos + 9], pos + hlen, end, ip, (frag & 0x2000) != 0, quoted);
    } else if (version == 6) {
      if (avail < 40) return Partial("ipv6", pos, avail, quoted);
      size_t end = pos + 40 + Get16(f_, pos + 4);
      if (end > limit) {
        if (!quoted) return Fail(pos, "IPv6 payload length beyond the frame");
        end = limit;
      }
      int ip = Push("ipv6", pos, 40, end, -1, false, quoted);
      if (!quoted && ip_end == 0) ip_end = end;
      uint8_t next = f_[pos + 6];
      size_t p = pos + 40;
      bool fragment = false;
      for (int n = 0; n < 32; ++n) {
        if (next == 0 || next == 43 || next == 60) {
          if (end < p + 2) return Partial("ipv6_ext", p, end - p, quoted);
          size_t len = (size_t{f_[p + 1]} + 1) * 8;
          if (end < p + len) {
            if (quoted) return Partial("ipv6_ext", p, end - p, quoted);
            return Fail(p, "IPv6 extension header beyond the payload");
          }
          const char* name = next == 0    ? "ipv6_hop_by_hop"
                             : next == 43 ? "ipv6_routing"
                                          : "ipv6_dest_opts";
          Push(name, p, len, end, ip, false, quoted);
          next = f_[p];
          p += len;
        } else if (next == 44) {
          if (end < p + 8) {
            if (quoted) return Partial("ipv6_fragment", p, end - p, quoted);
            return Fail(p, "IPv6 fragment header beyond the payload");
          }
          Push("ipv6_fragment", p, 8, end, ip, false, quoted);
          uint16_t off = Get16(f_, p + 2);
          if ((off >> 3) != 0) return;  // Non-first fragment.
          fragment = (off & 1) != 0;
          next = f_[p];
          p += 8;
        } else {
          break;
        }
      }
      Upper(next, p, end, ip, fragment, quoted);
    } else if (!quoted) {
      Fail(pos, absl::StrCat("IP version ", version));
    }
  }

  void Upper(uint8_t proto, size_t pos, size_t end, int ip, bool fragment,
             bool quoted) {
    size_t avail = end > pos ? end - pos : 0;
    switch (proto) {
      case 6: {
        if (avail < 20) return Partial("tcp", pos, avail, quoted);
        size_t hlen = size_t{f_[pos + 12]} / 16 * 4;
        if (hlen < 20 || hlen > avail) {
          if (quoted) return Partial("tcp", pos, avail, quoted);
          return Fail(pos, absl::StrCat("TCP data offset ", hlen / 4));
        }
        Push("tcp", pos, hlen, end, ip, fragment, quoted);
        return;
      }
      case 17: {
        if (avail < 8) return Partial("udp", pos, avail, quoted);
        Push("udp", pos, 8, end, ip, fragment, quoted);
        size_t udp_len = Get16(f_, pos + 4);
        if (!quoted && !fragment && udp_len != avail) {
          return Fail(pos, absl::StrCat("UDP length ", udp_len, " but ", avail,
                                        " bytes in the datagram"));
        }
        if (quoted || fragment || Get16(f_, pos + 2) != kGuePort) return;
        size_t inner = pos + 8;
        if (inner >= end) return;
        if ((f_[inner] >> 6) == 1) return FromIp(inner, end, false);
        if ((f_[inner] >> 6) == 0) {
          size_t hlen = 4 + size_t{f_[inner] & 0x1fu} * 4;
          if (end - inner < hlen) return Fail(inner, "truncated GUE header");
          Push("gue", inner, hlen, end, ip, false, false);
          uint8_t gue_proto = f_[inner + 1];
          if (gue_proto == 4 || gue_proto == 41) {
            FromIp(inner + hlen, end, false);
          }
        }
        return;
      }
      case 1:
      case 58: {
        const char* name = proto == 1 ? "icmp" : "icmpv6";
        if (avail < 8) return Partial(name, pos, avail, quoted);
        Push(name, pos, 8, end, ip, fragment, quoted);
        uint8_t type = f_[pos];
        bool error = proto == 1 ? (type == 3 || type == 11 || type == 12)
                                : (type >= 1 && type <= 4);
        if (error && !quoted && !fragment) FromIp(pos + 8, end, true);
        return;
      }
      case 4:
      case 41:
        if (!fragment) FromIp(pos, end, quoted);
        return;
      default:
        return;
    }
  }

 private:
  int Push(const char* name, size_t offset, size_t length, size_t end, int ip,
           bool fragment, bool quoted) {
    Header h;
    h.name = name;
    h.offset = offset;
    h.length = length;
    h.end = end;
    h.ip = ip;
    h.fragment = fragment;
    h.quoted = quoted;
    headers.push_back(std::move(h));
    return static_cast<int>(headers.size() - 1);
  }

  // A header cut short: fine inside an ICMP quote, an error elsewhere.
  void Partial(const char* name, size_t offset, size_t avail, bool quoted) {
    if (!quoted) {
      return Fail(offset, absl::StrCat("truncated ", name, " header"));
    }
    if (avail > 0) Push(name, offset, avail, offset + avail, -1, true, true);
  }

  void Fail(size_t offset, const std::string& message) {
    if (error.empty()) error = absl::StrCat(message, " at offset ", offset);
  }

  std::span<const uint8_t> f_;
};

absl::Status VerifyWalk(std::span<const uint8_t> f, const Walker& walker) {
  if (!walker.error.empty()) return absl::FailedPreconditionError(walker.error);
  const std::vector<Header>& hs = walker.headers;
  for (const Header& h : hs) {
    std::span<const uint8_t> header = f.subspan(h.offset, h.length);
    if (h.name == "ipv4" && h.length >= 20) {
      uint16_t sum = InternetChecksum({header});
      if (sum != 0) {
        std::vector<uint8_t> copy(header.begin(), header.end());
        copy[10] = copy[11] = 0;
        return absl::FailedPreconditionError(absl::StrFormat(
            "IPv4 header checksum at offset %u is 0x%04x, should be 0x%04x%s",
            h.offset, Get16(header, 10), InternetChecksum({copy}),
            h.quoted ? " (in an ICMP error's quoted datagram)" : ""));
      }
      continue;
    }
    bool transport = h.name == "tcp" || h.name == "udp" || h.name == "icmp" ||
                     h.name == "icmpv6";
    if (!transport || h.quoted || h.fragment || h.ip < 0) continue;
    const Header& ip = hs[static_cast<size_t>(h.ip)];
    std::vector<uint8_t> segment(f.begin() + h.offset, f.begin() + h.end);
    size_t at = h.name == "tcp" ? 16 : h.name == "udp" ? 6 : 2;
    uint16_t stored = Get16(segment, at);
    bool v4 = ip.name == "ipv4";
    if (h.name == "udp" && stored == 0) {
      if (v4) continue;  // RFC 768: no checksum.
      return absl::FailedPreconditionError(absl::StrFormat(
          "UDP checksum at offset %u is 0 over IPv6 (RFC 8200 §8.1)",
          h.offset));
    }
    segment[at] = segment[at + 1] = 0;
    uint16_t computed;
    if (h.name == "icmp") {
      computed = InternetChecksum({segment});
    } else {
      uint8_t proto = h.name == "tcp" ? 6 : h.name == "udp" ? 17 : 58;
      std::vector<uint8_t> ph;
      if (v4) {
        ph.assign(f.begin() + ip.offset + 12, f.begin() + ip.offset + 20);
        ph.push_back(0);
        ph.push_back(proto);
        ph.push_back(static_cast<uint8_t>(segment.size() >> 8));
        ph.push_back(static_cast<uint8_t>(segment.size()));
      } else {
        ph.assign(f.begin() + ip.offset + 8, f.begin() + ip.offset + 40);
        ph.resize(40);
        Put32(ph, 32, static_cast<uint32_t>(segment.size()));
        ph[39] = proto;
      }
      computed = InternetChecksum({ph, segment});
    }
    if (h.name == "udp" && computed == 0) computed = 0xffff;
    if (computed != stored) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s checksum at offset %u is 0x%04x, should be "
                          "0x%04x",
                          h.name, h.offset, stored, computed));
    }
  }
  return absl::OkStatus();
}

struct FieldSpec {
  const char* name;
  size_t length;  // 0: the rest of the header.
};

std::vector<FieldSpec> FieldsOf(const std::string& header) {
  if (header == "eth") return {{"dst", 6}, {"src", 6}, {"ether_type", 2}};
  if (header == "vlan") return {{"tci", 2}, {"ether_type", 2}};
  if (header == "ipv4") {
    return {{"version_ihl", 1},
            {"tos", 1},
            {"total_length", 2},
            {"id", 2},
            {"flags_fragment", 2},
            {"ttl", 1},
            {"protocol", 1},
            {"checksum", 2},
            {"src", 4},
            {"dst", 4},
            {"options", 0}};
  }
  if (header == "ipv6") {
    return {
        {"version_class_flow", 4}, {"payload_length", 2}, {"next_header", 1},
        {"hop_limit", 1},          {"src", 16},           {"dst", 16}};
  }
  if (header == "ipv6_fragment") {
    return {
        {"next_header", 1}, {"reserved", 1}, {"offset_flags", 2}, {"id", 4}};
  }
  if (header.rfind("ipv6_", 0) == 0) {
    return {{"next_header", 1}, {"hdr_ext_len", 1}, {"data", 0}};
  }
  if (header == "tcp") {
    return {{"src_port", 2},    {"dst_port", 2}, {"seq", 4},    {"ack", 4},
            {"data_offset", 1}, {"flags", 1},    {"window", 2}, {"checksum", 2},
            {"urgent", 2},      {"options", 0}};
  }
  if (header == "udp") {
    return {{"src_port", 2}, {"dst_port", 2}, {"length", 2}, {"checksum", 2}};
  }
  if (header == "gue") {
    return {{"ver_c_hlen", 1}, {"proto", 1}, {"flags", 2}, {"extensions", 0}};
  }
  if (header == "icmp" || header == "icmpv6") {
    return {{"type", 1}, {"code", 1}, {"checksum", 2}, {"rest", 4}};
  }
  return {};
}

}  // namespace

absl::Status VerifyChecksums(std::span<const uint8_t> frame) {
  Walker walker(frame);
  walker.FromEthernet();
  return VerifyWalk(frame, walker);
}

absl::Status VerifyIpChecksums(std::span<const uint8_t> packet) {
  Walker walker(packet);
  walker.FromIp(0, packet.size(), false);
  return VerifyWalk(packet, walker);
}

std::string DescribeField(std::span<const uint8_t> frame, size_t offset) {
  if (offset >= frame.size()) return "past the end";
  Walker walker(frame);
  walker.FromEthernet();
  const std::vector<Header>& hs = walker.headers;
  for (size_t i = hs.size(); i-- > 0;) {
    const Header& h = hs[i];
    if (offset < h.offset || offset >= h.offset + h.length) continue;
    std::string name = h.name;
    int same = 0;
    int index = 0;
    for (size_t j = 0; j < hs.size(); ++j) {
      if (hs[j].name != h.name) continue;
      if (j < i) ++index;
      ++same;
    }
    if (same > 1) absl::StrAppend(&name, "[", index, "]");
    if (h.quoted) name = "quoted " + name;
    size_t at = h.offset;
    for (const FieldSpec& field : FieldsOf(h.name)) {
      size_t field_end =
          field.length == 0 ? h.offset + h.length : at + field.length;
      if (offset < field_end) return absl::StrCat(name, ".", field.name);
      at = field_end;
    }
    return name;
  }
  if (walker.ip_end != 0 && offset >= walker.ip_end) return "padding";
  if (!walker.error.empty() && !hs.empty() &&
      offset >= hs.back().offset + hs.back().length) {
    return "unparsed (" + walker.error + ")";
  }
  return "payload";
}

std::string HexDump(std::span<const uint8_t> bytes) {
  std::string out;
  for (size_t line = 0; line < bytes.size(); line += 16) {
    absl::StrAppendFormat(&out, "%04x  ", line);
    for (size_t i = line; i < line + 16; ++i) {
      if (i < bytes.size()) {
        absl::StrAppendFormat(&out, "%02x ", bytes[i]);
      } else {
        out += "   ";
      }
      if (i == line + 7) out += ' ';
    }
    out += " |";
    for (size_t i = line; i < line + 16 && i < bytes.size(); ++i) {
      out += (bytes[i] >= 0x20 && bytes[i] < 0x7f) ? static_cast<char>(bytes[i])
                                                   : '.';
    }
    out += "|\n";
  }
  return out;
}

std::string DescribeFrameDiff(std::span<const uint8_t> expected,
                              std::span<const uint8_t> actual) {
  size_t common = std::min(expected.size(), actual.size());
  size_t first = common;
  for (size_t i = 0; i < common; ++i) {
    if (expected[i] != actual[i]) {
      first = i;
      break;
    }
  }
  if (first == common && expected.size() == actual.size()) return "";
  std::string out;
  if (first < common) {
    absl::StrAppendFormat(
        &out,
        "frames differ first at byte %u (%s): expected 0x%02x, actual 0x%02x\n",
        first, DescribeField(expected, first), expected[first], actual[first]);
  } else if (actual.size() < expected.size()) {
    absl::StrAppendFormat(&out,
                          "actual frame is a prefix of expected: it ends at "
                          "byte %u (%s)\n",
                          first, DescribeField(expected, first));
  } else {
    absl::StrAppendFormat(&out,
                          "actual frame has %u extra bytes after byte %u\n",
                          actual.size() - expected.size(), first);
  }
  absl::StrAppendFormat(&out, "expected %u bytes, actual %u bytes\n",
                        expected.size(), actual.size());
  out += "expected:\n" + HexDump(expected) + "actual:\n" + HexDump(actual);
  return out;
}

}  // namespace anylb::dataplane_testing
