#include "routing/netlink/messages.h"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace anylb::routing::netlink {
namespace {

constexpr size_t kHeaderLength = NLMSG_ALIGN(sizeof(nlmsghdr));

// Attribute is one rtattr/nlattr seen by ForEachAttribute.
struct Attribute {
  uint16_t type;  // Without NLA_F_NESTED / NLA_F_NET_BYTEORDER.
  std::span<const uint8_t> payload;
};

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// ForEachAttribute calls `f` for each attribute in `bytes` (a chain of
// 4-byte-aligned rtattrs). A length that is too small or runs past the end
// breaks the chain: it is counted and the walk stops there.
template <typename F>
void ForEachAttribute(std::span<const uint8_t> bytes, DecodeStats* stats,
                      F&& f) {
  size_t offset = 0;
  while (bytes.size() - offset >= sizeof(rtattr)) {
    const uint16_t length = Load16(bytes.data() + offset);
    const uint16_t type = Load16(bytes.data() + offset + 2);
    if (length < sizeof(rtattr) || length > bytes.size() - offset) {
      ++stats->malformed_attributes;
      return;
    }
    f(Attribute{
        static_cast<uint16_t>(type & NLA_TYPE_MASK),
        bytes.subspan(offset + sizeof(rtattr), length - sizeof(rtattr))});
    offset += RTA_ALIGN(length);
    if (offset > bytes.size()) return;  // Padding of the last attribute.
  }
  if (offset != bytes.size()) ++stats->malformed_attributes;  // Trailing junk.
}

// AddressFromPayload decodes an address of `family` (AF_INET/AF_INET6);
// false if the payload size does not fit the family.
bool AddressFromPayload(int family, std::span<const uint8_t> payload,
                        IpAddress* out) {
  if (family == AF_INET && payload.size() == 4) {
    *out = IpAddress::FromV4Bytes(payload.first<4>());
    return true;
  }
  if (family == AF_INET6 && payload.size() == 16) {
    *out = IpAddress::FromV6Bytes(payload.first<16>());
    return true;
  }
  return false;
}

// Body checks the netlink header of `message` and returns the bytes after
// it (nlmsg_len bounds them), or an empty span with ok = false.
bool Body(std::span<const uint8_t> message, uint16_t* type,
          std::span<const uint8_t>* body) {
  if (message.size() < sizeof(nlmsghdr)) return false;
  const uint32_t length = Load32(message.data());
  if (length < kHeaderLength || length > message.size()) return false;
  *type = Load16(message.data() + 4);
  *body = message.subspan(kHeaderLength, length - kHeaderLength);
  return true;
}

// DecodeViaPayload decodes RTA_VIA (struct rtvia: a family, then the
// address): an IPv6 gateway for an IPv4 route (RFC 5549) or the reverse.
bool DecodeVia(std::span<const uint8_t> payload, IpAddress* out) {
  if (payload.size() < sizeof(uint16_t)) return false;
  const uint16_t family = Load16(payload.data());
  return AddressFromPayload(family, payload.subspan(sizeof(uint16_t)), out);
}

// DecodeGatewayAttribute handles RTA_GATEWAY / RTA_VIA for one next hop.
void DecodeGatewayAttribute(int family, const Attribute& attribute,
                            RouteNextHop* hop, DecodeStats* stats) {
  if (attribute.type == RTA_GATEWAY) {
    if (AddressFromPayload(family, attribute.payload, &hop->gateway)) {
      hop->has_gateway = true;
    } else {
      ++stats->malformed_attributes;
    }
  } else if (attribute.type == RTA_VIA) {
    if (DecodeVia(attribute.payload, &hop->gateway)) {
      hop->has_gateway = true;
    } else {
      ++stats->malformed_attributes;
    }
  }
}

// DecodeMultipath decodes RTA_MULTIPATH: struct rtnexthop entries, each
// followed by its own attributes. A broken entry ends the list (counted).
void DecodeMultipath(int family, std::span<const uint8_t> payload,
                     std::vector<RouteNextHop>* hops, DecodeStats* stats) {
  size_t offset = 0;
  while (payload.size() - offset >= sizeof(rtnexthop)) {
    rtnexthop header;
    std::memcpy(&header, payload.data() + offset, sizeof(header));
    if (header.rtnh_len < sizeof(rtnexthop) ||
        header.rtnh_len > payload.size() - offset) {
      ++stats->malformed_attributes;
      return;
    }
    RouteNextHop hop;
    hop.ifindex = header.rtnh_ifindex;
    hop.weight = uint32_t{header.rtnh_hops} + 1;
    ForEachAttribute(payload.subspan(offset + sizeof(rtnexthop),
                                     header.rtnh_len - sizeof(rtnexthop)),
                     stats, [&](const Attribute& a) {
                       DecodeGatewayAttribute(family, a, &hop, stats);
                     });
    if ((header.rtnh_flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN)) == 0) {
      hops->push_back(hop);
    }
    offset += RTNH_ALIGN(header.rtnh_len);
    if (offset > payload.size()) return;
  }
  if (offset != payload.size()) ++stats->malformed_attributes;
}

}  // namespace

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0],
                mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

bool IsUsableNeighborState(uint16_t state) {
  return (state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE |
                   NUD_PERMANENT | NUD_NOARP)) != 0;
}

std::string NeighborStateName(uint16_t state) {
  static constexpr struct {
    uint16_t bit;
    const char* name;
  } kNames[] = {
      {NUD_INCOMPLETE, "INCOMPLETE"}, {NUD_REACHABLE, "REACHABLE"},
      {NUD_STALE, "STALE"},           {NUD_DELAY, "DELAY"},
      {NUD_PROBE, "PROBE"},           {NUD_FAILED, "FAILED"},
      {NUD_NOARP, "NOARP"},           {NUD_PERMANENT, "PERMANENT"},
  };
  std::string text;
  for (const auto& n : kNames) {
    if ((state & n.bit) == 0) continue;
    if (!text.empty()) text += "|";
    text += n.name;
  }
  return text.empty() ? "NONE" : text;
}

DecodeResult DecodeNeighbor(std::span<const uint8_t> message,
                            NeighborMessage* out, DecodeStats* stats) {
  uint16_t type = 0;
  std::span<const uint8_t> body;
  if (!Body(message, &type, &body) || body.size() < sizeof(ndmsg) ||
      (type != RTM_NEWNEIGH && type != RTM_DELNEIGH)) {
    ++stats->malformed_messages;
    return DecodeResult::kMalformed;
  }
  ndmsg header;
  std::memcpy(&header, body.data(), sizeof(header));
  if ((header.ndm_family != AF_INET && header.ndm_family != AF_INET6) ||
      (header.ndm_flags & NTF_PROXY) != 0) {
    ++stats->ignored_messages;
    return DecodeResult::kIgnored;
  }
  NeighborMessage result;
  result.deleted = type == RTM_DELNEIGH;
  result.ifindex = header.ndm_ifindex;
  result.state = header.ndm_state;
  result.flags = header.ndm_flags;
  bool has_address = false;
  const size_t attributes = NLMSG_ALIGN(sizeof(ndmsg));
  if (body.size() > attributes) {
    ForEachAttribute(body.subspan(attributes), stats, [&](const Attribute& a) {
      if (a.type == NDA_DST) {
        if (AddressFromPayload(header.ndm_family, a.payload, &result.address)) {
          has_address = true;
        } else {
          ++stats->malformed_attributes;
        }
      } else if (a.type == NDA_LLADDR && a.payload.size() == 6) {
        std::memcpy(result.lladdr.data(), a.payload.data(), 6);
        result.has_lladdr = true;
      }
    });
  }
  if (!has_address || result.ifindex <= 0) {
    ++stats->malformed_messages;
    return DecodeResult::kMalformed;
  }
  *out = result;
  return DecodeResult::kOk;
}

DecodeResult DecodeRoute(std::span<const uint8_t> message, RouteMessage* out,
                         DecodeStats* stats) {
  uint16_t type = 0;
  std::span<const uint8_t> body;
  if (!Body(message, &type, &body) || body.size() < sizeof(rtmsg) ||
      (type != RTM_NEWROUTE && type != RTM_DELROUTE)) {
    ++stats->malformed_messages;
    return DecodeResult::kMalformed;
  }
  rtmsg header;
  std::memcpy(&header, body.data(), sizeof(header));
  const int family = header.rtm_family;
  if ((family != AF_INET && family != AF_INET6) ||
      (header.rtm_flags & RTM_F_CLONED) != 0) {
    ++stats->ignored_messages;
    return DecodeResult::kIgnored;
  }
  RouteKind kind;
  switch (header.rtm_type) {
    case RTN_UNICAST:
      kind = RouteKind::kUnicast;
      break;
    case RTN_BLACKHOLE:
    case RTN_UNREACHABLE:
    case RTN_PROHIBIT:
      kind = RouteKind::kReject;
      break;
    default:
      ++stats->ignored_messages;
      return DecodeResult::kIgnored;
  }
  const int bits = family == AF_INET ? 32 : 128;
  if (header.rtm_dst_len > bits) {
    ++stats->malformed_messages;
    return DecodeResult::kMalformed;
  }

  uint32_t table = header.rtm_table;
  IpAddress destination =
      family == AF_INET ? IpAddress()
                        : IpAddress::FromV6Bytes(std::array<uint8_t, 16>{});
  bool has_destination = false;
  RouteMessage result;
  result.deleted = type == RTM_DELROUTE;
  result.kind = kind;
  RouteNextHop single;
  bool has_oif = false;
  bool has_multipath = false;
  std::vector<RouteNextHop> multipath;
  const size_t attributes = NLMSG_ALIGN(sizeof(rtmsg));
  if (body.size() > attributes) {
    ForEachAttribute(body.subspan(attributes), stats, [&](const Attribute& a) {
      switch (a.type) {
        case RTA_TABLE:
          if (a.payload.size() == 4) {
            table = Load32(a.payload.data());
          } else {
            ++stats->malformed_attributes;
          }
          break;
        case RTA_DST:
          if (AddressFromPayload(family, a.payload, &destination)) {
            has_destination = true;
          } else {
            ++stats->malformed_attributes;
          }
          break;
        case RTA_PRIORITY:
          if (a.payload.size() == 4) {
            result.priority = Load32(a.payload.data());
          } else {
            ++stats->malformed_attributes;
          }
          break;
        case RTA_OIF:
          if (a.payload.size() == 4) {
            single.ifindex = static_cast<int>(Load32(a.payload.data()));
            has_oif = true;
          } else {
            ++stats->malformed_attributes;
          }
          break;
        case RTA_GATEWAY:
        case RTA_VIA:
          DecodeGatewayAttribute(family, a, &single, stats);
          break;
        case RTA_MULTIPATH:
          has_multipath = true;
          DecodeMultipath(family, a.payload, &multipath, stats);
          break;
        default:
          break;
      }
    });
  }
  if (table != kMainTable) {
    ++stats->ignored_messages;
    return DecodeResult::kIgnored;
  }
  if (!has_destination && header.rtm_dst_len != 0) {
    ++stats->malformed_messages;  // A prefix length without a prefix.
    return DecodeResult::kMalformed;
  }
  absl::StatusOr<IpPrefix> prefix =
      IpPrefix::Create(destination, header.rtm_dst_len);
  if (!prefix.ok()) {
    ++stats->malformed_messages;
    return DecodeResult::kMalformed;
  }
  result.destination = *prefix;
  if (kind == RouteKind::kUnicast) {
    if (has_multipath) {
      result.next_hops = std::move(multipath);
    } else if (has_oif) {
      result.next_hops.push_back(single);
    }
  }
  *out = std::move(result);
  return DecodeResult::kOk;
}

size_t EncodeDumpRequest(uint16_t type, uint8_t family,
                         std::span<uint8_t> buffer) {
  // rtgenmsg would do for both, but an ndmsg/rtmsg-sized body is what
  // iproute2 sends and what strict checking (NETLINK_GET_STRICT_CHK)
  // expects.
  const size_t body = type == RTM_GETNEIGH ? sizeof(ndmsg) : sizeof(rtmsg);
  const size_t length = NLMSG_LENGTH(body);
  std::memset(buffer.data(), 0, NLMSG_ALIGN(length));
  auto* header = reinterpret_cast<nlmsghdr*>(buffer.data());
  header->nlmsg_len = static_cast<uint32_t>(length);
  header->nlmsg_type = type;
  header->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  // ndm_family and rtm_family are both the first byte of the body.
  buffer[kHeaderLength] = family;
  return length;
}

size_t EncodeResolveRequest(int ifindex, const IpAddress& address,
                            std::span<uint8_t> buffer) {
  std::memset(buffer.data(), 0, 64);
  auto* header = reinterpret_cast<nlmsghdr*>(buffer.data());
  header->nlmsg_type = RTM_NEWNEIGH;
  header->nlmsg_flags =
      NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
  ndmsg neighbor{};
  neighbor.ndm_family = static_cast<uint8_t>(address.af());
  neighbor.ndm_ifindex = ifindex;
  neighbor.ndm_state = NUD_NONE;
  neighbor.ndm_flags = NTF_USE;
  std::memcpy(buffer.data() + kHeaderLength, &neighbor, sizeof(neighbor));
  size_t offset = kHeaderLength + NLMSG_ALIGN(sizeof(ndmsg));
  const auto bytes = address.bytes();
  rtattr attribute{};
  attribute.rta_len = static_cast<uint16_t>(RTA_LENGTH(bytes.size()));
  attribute.rta_type = NDA_DST;
  std::memcpy(buffer.data() + offset, &attribute, sizeof(attribute));
  std::memcpy(buffer.data() + offset + sizeof(attribute), bytes.data(),
              bytes.size());
  offset += RTA_ALIGN(attribute.rta_len);
  header->nlmsg_len = static_cast<uint32_t>(offset);
  return offset;
}

}  // namespace anylb::routing::netlink
