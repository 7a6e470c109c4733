#include "routing/fpm/decoder.h"

#include <linux/netlink.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <array>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "fpm/fpm.pb.h"

namespace anylb::routing::fpm {
namespace {

constexpr size_t kNetlinkHeaderBytes = sizeof(nlmsghdr);

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// WalkAttributes calls f(type, payload) for each rtattr/nlattr in
// `attributes`; false when the chain is broken (a length below 4 or past
// the end).
template <typename F>
bool WalkAttributes(std::span<const uint8_t> attributes, F f) {
  size_t offset = 0;
  while (attributes.size() - offset >= sizeof(nlattr)) {
    const uint16_t length = Load16(attributes.data() + offset);
    const uint16_t type =
        Load16(attributes.data() + offset + 2) & NLA_TYPE_MASK;
    if (length < sizeof(nlattr) || length > attributes.size() - offset) {
      return false;
    }
    if (!f(type, attributes.subspan(offset + sizeof(nlattr),
                                    length - sizeof(nlattr)))) {
      return false;
    }
    offset += NLA_ALIGN(length);
    if (offset > attributes.size()) offset = attributes.size();
  }
  return true;
}

bool AddressFromBytes(std::span<const uint8_t> bytes, IpAddress* out) {
  if (bytes.size() == 4) {
    *out = IpAddress::FromV4Bytes(std::span<const uint8_t, 4>(bytes.data(), 4));
    return true;
  }
  if (bytes.size() == 16) {
    *out =
        IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(bytes.data(), 16));
    return true;
  }
  return false;
}

absl::Status BadNetlink(size_t offset, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "netlink message at offset ", offset, " of the FPM frame: ", what));
}

absl::Status DecodeRouteMessage(std::span<const uint8_t> message, size_t offset,
                                std::vector<FibUpdate>* out,
                                DecoderStats* stats) {
  uint16_t type = Load16(message.data() + offsetof(nlmsghdr, nlmsg_type));
  const size_t body = kNetlinkHeaderBytes + NLMSG_ALIGN(sizeof(rtmsg));
  if (message.size() < kNetlinkHeaderBytes + sizeof(rtmsg)) {
    return BadNetlink(offset, "route message shorter than struct rtmsg");
  }
  // A delete may carry rtm_type RTN_UNSPEC; it still removes the prefix.
  std::vector<uint8_t> copy;
  const size_t type_offset = kNetlinkHeaderBytes + offsetof(rtmsg, rtm_type);
  if (type == RTM_DELROUTE && message[type_offset] == RTN_UNSPEC) {
    copy.assign(message.begin(), message.end());
    copy[type_offset] = RTN_UNICAST;
    message = copy;
  }
  netlink::RouteMessage route;
  netlink::DecodeStats decode;
  const netlink::DecodeResult result =
      netlink::DecodeRoute(message, &route, &decode);
  if (result == netlink::DecodeResult::kMalformed ||
      decode.malformed_attributes != 0) {
    return BadNetlink(offset,
                      "malformed route (bad destination, length or "
                      "attribute)");
  }
  if (result == netlink::DecodeResult::kIgnored) {
    ++stats->ignored_messages;
    return absl::OkStatus();
  }
  RouteUpdate update;
  update.deleted = route.deleted;
  update.prefix = route.destination;
  update.kind = route.kind;
  update.priority = route.priority;
  update.next_hops = std::move(route.next_hops);
  bool bad_nh_id = false;
  if (message.size() > body) {
    WalkAttributes(message.subspan(body),
                   [&](uint16_t attribute, std::span<const uint8_t> payload) {
                     if (attribute == RTA_NH_ID) {
                       if (payload.size() != 4) {
                         bad_nh_id = true;
                         return false;
                       }
                       update.nh_id = Load32(payload.data());
                     }
                     return true;
                   });
  }
  if (bad_nh_id) return BadNetlink(offset, "RTA_NH_ID is not 4 bytes");
  if (update.nh_id != 0) update.next_hops.clear();
  out->push_back(std::move(update));
  return absl::OkStatus();
}

absl::Status DecodeNextHopMessage(std::span<const uint8_t> message,
                                  size_t offset, std::vector<FibUpdate>* out,
                                  DecoderStats* stats) {
  const uint16_t type = Load16(message.data() + offsetof(nlmsghdr, nlmsg_type));
  if (message.size() < kNetlinkHeaderBytes + sizeof(nhmsg)) {
    return BadNetlink(offset, "next-hop message shorter than struct nhmsg");
  }
  nhmsg header;
  std::memcpy(&header, message.data() + kNetlinkHeaderBytes, sizeof(header));
  NextHopUpdate update;
  update.deleted = type == RTM_DELNEXTHOP;
  NextHopObject& object = update.object;
  std::string error;
  const size_t body = kNetlinkHeaderBytes + NLMSG_ALIGN(sizeof(nhmsg));
  bool fdb = false;
  const bool chain_ok =
      message.size() <= body ||
      WalkAttributes(message.subspan(body), [&](uint16_t attribute,
                                                std::span<const uint8_t>
                                                    payload) {
        switch (attribute) {
          case NHA_ID:
            if (payload.size() != 4) {
              error = "NHA_ID is not 4 bytes";
              return false;
            }
            object.id = Load32(payload.data());
            break;
          case NHA_GROUP:
            if (payload.empty() || payload.size() % sizeof(nexthop_grp) != 0) {
              error = "NHA_GROUP is not a whole number of nexthop_grp";
              return false;
            }
            for (size_t i = 0; i < payload.size(); i += sizeof(nexthop_grp)) {
              nexthop_grp member;
              std::memcpy(&member, payload.data() + i, sizeof(member));
              object.group.push_back({member.id, uint32_t{member.weight} + 1});
            }
            break;
          case NHA_BLACKHOLE:
            object.blackhole = true;
            break;
          case NHA_OIF:
            if (payload.size() != 4) {
              error = "NHA_OIF is not 4 bytes";
              return false;
            }
            object.ifindex = static_cast<int>(Load32(payload.data()));
            break;
          case NHA_GATEWAY:
            if (!AddressFromBytes(payload, &object.gateway)) {
              error = "NHA_GATEWAY is neither 4 nor 16 bytes";
              return false;
            }
            object.has_gateway = true;
            break;
          case NHA_FDB:
            fdb = true;
            break;
          default:
            break;
        }
        return true;
      });
  if (!chain_ok) {
    return BadNetlink(offset, error.empty() ? "broken attribute chain in a "
                                              "next-hop message"
                                            : error);
  }
  if (object.id == 0)
    return BadNetlink(offset, "next-hop message without NHA_ID");
  if (fdb || header.nh_family == AF_BRIDGE || header.nh_family == AF_MPLS) {
    ++stats->ignored_messages;  // EVPN FDB / MPLS next hops: not ours.
    return absl::OkStatus();
  }
  out->push_back(std::move(update));
  return absl::OkStatus();
}

absl::Status BadProtobuf(const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("protobuf FPM message: ", what));
}

absl::Status PrefixFromProto(const anylb::fpm::AddressFamily family,
                             const anylb::fpm::RouteKey& key, IpPrefix* out) {
  if (family != anylb::fpm::IPV4 && family != anylb::fpm::IPV6) {
    return BadProtobuf("address_family is neither IPV4 nor IPV6");
  }
  if (!key.has_prefix()) return BadProtobuf("route key without a prefix");
  const size_t bytes = family == anylb::fpm::IPV4 ? 4 : 16;
  const uint32_t length = key.prefix().length();
  const std::string& data = key.prefix().bytes();
  if (length > bytes * 8 || data.size() > bytes ||
      data.size() < (length + 7) / 8) {
    return BadProtobuf(absl::StrCat("prefix of length ", length, " with ",
                                    data.size(), " address bytes"));
  }
  std::array<uint8_t, 16> address{};
  std::memcpy(address.data(), data.data(), data.size());
  const IpAddress ip = bytes == 4
                           ? IpAddress::FromV4Bytes(
                                 std::span<const uint8_t, 4>(address.data(), 4))
                           : IpAddress::FromV6Bytes(address);
  absl::StatusOr<IpPrefix> prefix =
      IpPrefix::Create(ip, static_cast<int>(length));
  if (!prefix.ok()) return BadProtobuf(std::string(prefix.status().message()));
  *out = *prefix;
  return absl::OkStatus();
}

}  // namespace

bool operator==(const RouteUpdate& a, const RouteUpdate& b) {
  if (a.deleted != b.deleted || a.prefix != b.prefix || a.kind != b.kind ||
      a.priority != b.priority || a.nh_id != b.nh_id ||
      a.next_hops.size() != b.next_hops.size()) {
    return false;
  }
  for (size_t i = 0; i < a.next_hops.size(); ++i) {
    const netlink::RouteNextHop& x = a.next_hops[i];
    const netlink::RouteNextHop& y = b.next_hops[i];
    if (x.ifindex != y.ifindex || x.has_gateway != y.has_gateway ||
        (x.has_gateway && x.gateway != y.gateway) || x.weight != y.weight) {
      return false;
    }
  }
  return true;
}

absl::Status DecodeNetlinkPayload(std::span<const uint8_t> payload,
                                  std::vector<FibUpdate>* out,
                                  DecoderStats* stats) {
  if (payload.empty()) return BadNetlink(0, "empty netlink frame");
  std::vector<FibUpdate> updates;
  DecoderStats local;
  size_t offset = 0;
  while (offset < payload.size()) {
    if (payload.size() - offset < kNetlinkHeaderBytes) {
      return BadNetlink(offset, absl::StrCat(payload.size() - offset,
                                             " bytes left, less than a "
                                             "netlink header"));
    }
    const uint32_t length = Load32(payload.data() + offset);
    if (length < kNetlinkHeaderBytes || length > payload.size() - offset) {
      return BadNetlink(offset,
                        absl::StrCat("nlmsg_len ", length, " outside [16, ",
                                     payload.size() - offset, "]"));
    }
    const std::span<const uint8_t> message = payload.subspan(offset, length);
    const uint16_t type =
        Load16(message.data() + offsetof(nlmsghdr, nlmsg_type));
    absl::Status status;
    switch (type) {
      case RTM_NEWROUTE:
      case RTM_DELROUTE:
        status = DecodeRouteMessage(message, offset, &updates, &local);
        break;
      case RTM_NEWNEXTHOP:
      case RTM_DELNEXTHOP:
        status = DecodeNextHopMessage(message, offset, &updates, &local);
        break;
      default:
        ++local.ignored_messages;  // Neighbours, links, MPLS, NOOP, ...
        break;
    }
    if (!status.ok()) return status;
    offset += NLMSG_ALIGN(length);
  }
  for (FibUpdate& update : updates) out->push_back(std::move(update));
  stats->ignored_messages += local.ignored_messages;
  stats->ignored_next_hops += local.ignored_next_hops;
  return absl::OkStatus();
}

absl::Status DecodeProtobufPayload(std::span<const uint8_t> payload,
                                   std::vector<FibUpdate>* out,
                                   DecoderStats* stats) {
  anylb::fpm::Message message;
  // ParsePartial + IsInitialized: the error names the missing fields, and
  // protobuf logs nothing (a peer cannot fill our log).
  if (!message.ParsePartialFromArray(payload.data(),
                                     static_cast<int>(payload.size()))) {
    return BadProtobuf("does not parse as anylb.fpm.Message (bad encoding)");
  }
  if (!message.IsInitialized()) {
    return BadProtobuf(absl::StrCat("missing required fields: ",
                                    message.InitializationErrorString()));
  }
  RouteUpdate update;
  if (message.type() == anylb::fpm::Message::ADD_ROUTE) {
    if (!message.has_add_route()) {
      return BadProtobuf("type ADD_ROUTE without add_route");
    }
    const anylb::fpm::AddRoute& add = message.add_route();
    if (add.vrf_id() != 0 || add.sub_address_family() != anylb::fpm::UNICAST) {
      ++stats->ignored_messages;
      return absl::OkStatus();
    }
    if (absl::Status s =
            PrefixFromProto(add.address_family(), add.key(), &update.prefix);
        !s.ok()) {
      return s;
    }
    update.priority = static_cast<uint32_t>(add.metric());
    switch (add.route_type()) {
      case anylb::fpm::UNKNOWN:
      case anylb::fpm::NORMAL:
        update.kind = netlink::RouteKind::kUnicast;
        break;
      case anylb::fpm::UNREACHABLE:
      case anylb::fpm::BLACKHOLE:
        update.kind = netlink::RouteKind::kReject;
        break;
    }
    uint64_t ignored = 0;
    if (update.kind == netlink::RouteKind::kUnicast) {
      for (const anylb::fpm::Nexthop& hop : add.nexthops()) {
        netlink::RouteNextHop next;
        if (hop.has_address()) {
          const anylb::fpm::L3Address& a = hop.address();
          if (a.has_v4() == a.has_v6()) {
            return BadProtobuf(
                "next-hop address with neither or both of v4 "
                "and v6");
          }
          if (a.has_v4()) {
            next.gateway = IpAddress::FromV4(a.v4().value());
          } else if (a.v6().bytes().size() == 16) {
            std::array<uint8_t, 16> bytes;
            std::memcpy(bytes.data(), a.v6().bytes().data(), 16);
            next.gateway = IpAddress::FromV6Bytes(bytes);
          } else {
            return BadProtobuf("IPv6 next-hop address is not 16 bytes");
          }
          next.has_gateway = true;
        }
        if (hop.has_if_id() && hop.if_id().has_index()) {
          next.ifindex = static_cast<int>(hop.if_id().index());
        } else if (hop.has_if_id() && hop.if_id().has_name()) {
          next.ifindex =
              static_cast<int>(if_nametoindex(hop.if_id().name().c_str()));
        }
        if (next.ifindex <= 0) {
          ++ignored;  // No usable interface: we cannot send out of it.
          continue;
        }
        next.weight = 1;
        update.next_hops.push_back(next);
      }
    }
    stats->ignored_next_hops += ignored;
  } else if (message.type() == anylb::fpm::Message::DELETE_ROUTE) {
    if (!message.has_delete_route()) {
      return BadProtobuf("type DELETE_ROUTE without delete_route");
    }
    const anylb::fpm::DeleteRoute& del = message.delete_route();
    if (del.vrf_id() != 0 || del.sub_address_family() != anylb::fpm::UNICAST) {
      ++stats->ignored_messages;
      return absl::OkStatus();
    }
    if (absl::Status s =
            PrefixFromProto(del.address_family(), del.key(), &update.prefix);
        !s.ok()) {
      return s;
    }
    update.deleted = true;
  } else {
    return BadProtobuf(absl::StrCat("message type ",
                                    static_cast<int>(message.type()),
                                    " (1 = ADD_ROUTE, 2 = DELETE_ROUTE)"));
  }
  out->push_back(std::move(update));
  return absl::OkStatus();
}

absl::Status DecodeFrame(const Frame& frame, std::vector<FibUpdate>* out,
                         DecoderStats* stats, FpmError* error) {
  if (frame.type == FrameType::kNetlink) {
    absl::Status status = DecodeNetlinkPayload(frame.payload, out, stats);
    if (!status.ok()) *error = FpmError::kBadNetlink;
    return status;
  }
  absl::Status status = DecodeProtobufPayload(frame.payload, out, stats);
  if (!status.ok()) *error = FpmError::kBadProtobuf;
  return status;
}

}  // namespace anylb::routing::fpm
