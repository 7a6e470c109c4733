#include "routing/netlink/messages.h"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::routing::netlink {
namespace {

using ::testing::IsEmpty;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }
IpPrefix Prefix(const char* text) { return *IpPrefix::Parse(text); }

// MessageBuilder builds one netlink message byte by byte, so tests can also
// build broken ones.
class MessageBuilder {
 public:
  template <typename Body>
  MessageBuilder(uint16_t type, const Body& body) {
    bytes_.resize(NLMSG_HDRLEN);
    nlmsghdr header{};
    header.nlmsg_type = type;
    std::memcpy(bytes_.data(), &header, sizeof(header));
    Append(&body, sizeof(body));
    Pad();
  }

  // Attribute appends an rtattr with `payload`.
  MessageBuilder& Attribute(uint16_t type, const void* payload, size_t size) {
    rtattr attribute{};
    attribute.rta_len = static_cast<uint16_t>(RTA_LENGTH(size));
    attribute.rta_type = type;
    Append(&attribute, sizeof(attribute));
    Append(payload, size);
    Pad();
    return *this;
  }
  MessageBuilder& Address(uint16_t type, const IpAddress& address) {
    return Attribute(type, address.bytes().data(), address.bytes().size());
  }
  MessageBuilder& U32(uint16_t type, uint32_t value) {
    return Attribute(type, &value, sizeof(value));
  }
  // Raw appends bytes as they are (for broken attributes).
  MessageBuilder& Raw(const std::vector<uint8_t>& raw) {
    Append(raw.data(), raw.size());
    return *this;
  }

  // Bytes returns the message with nlmsg_len set to its size.
  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> out = bytes_;
    const auto length = static_cast<uint32_t>(out.size());
    std::memcpy(out.data(), &length, sizeof(length));
    return out;
  }

 private:
  void Append(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  void Pad() { bytes_.resize(NLMSG_ALIGN(bytes_.size())); }

  std::vector<uint8_t> bytes_;
};

ndmsg Neighbor(uint8_t family, int ifindex, uint16_t state, uint8_t flags = 0) {
  ndmsg n{};
  n.ndm_family = family;
  n.ndm_ifindex = ifindex;
  n.ndm_state = state;
  n.ndm_flags = flags;
  return n;
}

rtmsg RouteHeader(uint8_t family, uint8_t dst_len, uint8_t type = RTN_UNICAST,
                  uint8_t table = RT_TABLE_MAIN) {
  rtmsg r{};
  r.rtm_family = family;
  r.rtm_dst_len = dst_len;
  r.rtm_table = table;
  r.rtm_type = type;
  r.rtm_protocol = RTPROT_STATIC;
  r.rtm_scope = RT_SCOPE_UNIVERSE;
  return r;
}

constexpr uint8_t kMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x42};

// Multipath builds an RTA_MULTIPATH payload.
class Multipath {
 public:
  Multipath& Hop(int ifindex, uint8_t hops, const IpAddress* gateway,
                 uint8_t flags = 0) {
    rtnexthop hop{};
    hop.rtnh_ifindex = ifindex;
    hop.rtnh_hops = hops;
    hop.rtnh_flags = flags;
    size_t size = sizeof(hop);
    if (gateway != nullptr) size += RTA_LENGTH(gateway->bytes().size());
    hop.rtnh_len = static_cast<uint16_t>(size);
    const size_t start = bytes_.size();
    bytes_.resize(start + RTNH_ALIGN(size));
    std::memcpy(bytes_.data() + start, &hop, sizeof(hop));
    if (gateway != nullptr) {
      rtattr attribute{};
      attribute.rta_len =
          static_cast<uint16_t>(RTA_LENGTH(gateway->bytes().size()));
      attribute.rta_type = RTA_GATEWAY;
      std::memcpy(bytes_.data() + start + sizeof(hop), &attribute,
                  sizeof(attribute));
      std::memcpy(bytes_.data() + start + sizeof(hop) + sizeof(attribute),
                  gateway->bytes().data(), gateway->bytes().size());
    }
    return *this;
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

TEST(DecodeNeighbor, ReachableIpv4EntryWithMac) {
  const auto bytes =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_REACHABLE))
          .Address(NDA_DST, Ip("192.0.2.10"))
          .Attribute(NDA_LLADDR, kMac, 6)
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  ASSERT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kOk);
  EXPECT_FALSE(m.deleted);
  EXPECT_EQ(m.ifindex, 7);
  EXPECT_EQ(m.address, Ip("192.0.2.10"));
  EXPECT_TRUE(m.has_lladdr);
  EXPECT_EQ(FormatMac(m.lladdr), "02:00:00:00:00:42");
  EXPECT_EQ(m.state, NUD_REACHABLE);
  EXPECT_EQ(stats.malformed_attributes, 0u);
}

TEST(DecodeNeighbor, DeletedIpv6EntryWithoutMac) {
  const auto bytes =
      MessageBuilder(RTM_DELNEIGH, Neighbor(AF_INET6, 3, NUD_FAILED))
          .Address(NDA_DST, Ip("2001:db8::7"))
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  ASSERT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kOk);
  EXPECT_TRUE(m.deleted);
  EXPECT_EQ(m.address, Ip("2001:db8::7"));
  EXPECT_FALSE(m.has_lladdr);
}

TEST(DecodeNeighbor, BridgeFdbAndProxyEntriesAreIgnored) {
  DecodeStats stats;
  NeighborMessage m;
  const auto fdb =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_BRIDGE, 3, NUD_PERMANENT))
          .Attribute(NDA_LLADDR, kMac, 6)
          .Bytes();
  EXPECT_EQ(DecodeNeighbor(fdb, &m, &stats), DecodeResult::kIgnored);
  const auto proxy =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 3, 0, NTF_PROXY))
          .Address(NDA_DST, Ip("192.0.2.1"))
          .Bytes();
  EXPECT_EQ(DecodeNeighbor(proxy, &m, &stats), DecodeResult::kIgnored);
  EXPECT_EQ(stats.ignored_messages, 2u);
  EXPECT_EQ(stats.malformed_messages, 0u);
}

TEST(DecodeNeighbor, DestinationOfTheWrongSizeIsSkippedAndTheMessageRejected) {
  const uint8_t three[3] = {192, 0, 2};
  const auto bytes =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_REACHABLE))
          .Attribute(NDA_DST, three, sizeof(three))
          .Attribute(NDA_LLADDR, kMac, 6)
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  EXPECT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kMalformed);
  EXPECT_EQ(stats.malformed_attributes, 1u);
  EXPECT_EQ(stats.malformed_messages, 1u);
}

TEST(DecodeNeighbor, Ipv6DestinationOnAnIpv4EntryIsMalformed) {
  const auto bytes =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_REACHABLE))
          .Address(NDA_DST, Ip("2001:db8::1"))
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  EXPECT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kMalformed);
}

TEST(DecodeNeighbor, NonEthernetLinkLayerAddressIsNotAMac) {
  const uint8_t four[4] = {1, 2, 3, 4};
  const auto bytes =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_NOARP))
          .Address(NDA_DST, Ip("192.0.2.9"))
          .Attribute(NDA_LLADDR, four, sizeof(four))
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  ASSERT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kOk);
  EXPECT_FALSE(m.has_lladdr);
}

TEST(DecodeNeighbor, AttributeRunningPastTheMessageEndsTheWalk) {
  // NDA_DST is fine; then an attribute claims 200 bytes of a 12-byte rest.
  std::vector<uint8_t> broken = {200, 0, NDA_LLADDR, 0, 1, 2, 3, 4, 5, 6, 0, 0};
  const auto bytes =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_STALE))
          .Address(NDA_DST, Ip("192.0.2.10"))
          .Raw(broken)
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  ASSERT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kOk);
  EXPECT_EQ(m.address, Ip("192.0.2.10"));
  EXPECT_FALSE(m.has_lladdr);
  EXPECT_EQ(stats.malformed_attributes, 1u);
}

TEST(DecodeNeighbor, AttributeShorterThanItsHeaderEndsTheWalk) {
  std::vector<uint8_t> broken = {2, 0, NDA_DST, 0};
  const auto bytes =
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_STALE))
          .Raw(broken)
          .Address(NDA_DST, Ip("192.0.2.10"))
          .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  EXPECT_EQ(DecodeNeighbor(bytes, &m, &stats), DecodeResult::kMalformed);
  EXPECT_EQ(stats.malformed_attributes, 1u);
}

TEST(DecodeNeighbor, BadHeadersAreMalformed) {
  auto good = MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET, 7, NUD_STALE))
                  .Address(NDA_DST, Ip("192.0.2.10"))
                  .Bytes();
  NeighborMessage m;
  DecodeStats stats;
  // nlmsg_len past the buffer.
  auto longer = good;
  const auto too_long = static_cast<uint32_t>(good.size() + 4);
  std::memcpy(longer.data(), &too_long, 4);
  EXPECT_EQ(DecodeNeighbor(longer, &m, &stats), DecodeResult::kMalformed);
  // nlmsg_len shorter than the header.
  auto shorter = good;
  const uint32_t too_short = 8;
  std::memcpy(shorter.data(), &too_short, 4);
  EXPECT_EQ(DecodeNeighbor(shorter, &m, &stats), DecodeResult::kMalformed);
  // No room for struct ndmsg.
  std::vector<uint8_t> header_only(good.begin(), good.begin() + 20);
  const uint32_t twenty = 20;
  std::memcpy(header_only.data(), &twenty, 4);
  EXPECT_EQ(DecodeNeighbor(header_only, &m, &stats), DecodeResult::kMalformed);
  // A route message is not a neighbour message.
  auto route = good;
  const uint16_t type = RTM_NEWROUTE;
  std::memcpy(route.data() + 4, &type, 2);
  EXPECT_EQ(DecodeNeighbor(route, &m, &stats), DecodeResult::kMalformed);
  EXPECT_EQ(DecodeNeighbor({}, &m, &stats), DecodeResult::kMalformed);
  EXPECT_EQ(stats.malformed_messages, 5u);
}

TEST(NeighborState, OnlyStatesWithAnAddressAreUsable) {
  EXPECT_TRUE(IsUsableNeighborState(NUD_REACHABLE));
  EXPECT_TRUE(IsUsableNeighborState(NUD_STALE));
  EXPECT_TRUE(IsUsableNeighborState(NUD_DELAY));
  EXPECT_TRUE(IsUsableNeighborState(NUD_PROBE));
  EXPECT_TRUE(IsUsableNeighborState(NUD_PERMANENT));
  EXPECT_TRUE(IsUsableNeighborState(NUD_NOARP));
  EXPECT_FALSE(IsUsableNeighborState(NUD_INCOMPLETE));
  EXPECT_FALSE(IsUsableNeighborState(NUD_FAILED));
  EXPECT_FALSE(IsUsableNeighborState(NUD_NONE));
  EXPECT_EQ(NeighborStateName(NUD_STALE), "STALE");
  EXPECT_EQ(NeighborStateName(NUD_NONE), "NONE");
}

TEST(DecodeRoute, SinglePathIpv4RouteWithGateway) {
  const auto bytes = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 24))
                         .Address(RTA_DST, Ip("198.51.100.0"))
                         .Address(RTA_GATEWAY, Ip("192.0.2.1"))
                         .U32(RTA_OIF, 4)
                         .U32(RTA_PRIORITY, 20)
                         .U32(RTA_TABLE, RT_TABLE_MAIN)
                         .Bytes();
  RouteMessage r;
  DecodeStats stats;
  ASSERT_EQ(DecodeRoute(bytes, &r, &stats), DecodeResult::kOk);
  EXPECT_FALSE(r.deleted);
  EXPECT_EQ(r.destination, Prefix("198.51.100.0/24"));
  EXPECT_EQ(r.priority, 20u);
  EXPECT_EQ(r.kind, RouteKind::kUnicast);
  ASSERT_EQ(r.next_hops.size(), 1u);
  EXPECT_EQ(r.next_hops[0].ifindex, 4);
  EXPECT_TRUE(r.next_hops[0].has_gateway);
  EXPECT_EQ(r.next_hops[0].gateway, Ip("192.0.2.1"));
  EXPECT_EQ(r.next_hops[0].weight, 1u);
}

TEST(DecodeRoute, MultipathWithWeightsSkipsDeadNextHops) {
  const IpAddress a = Ip("192.0.2.1");
  const IpAddress b = Ip("192.0.2.2");
  const IpAddress c = Ip("192.0.2.3");
  Multipath multipath;
  multipath.Hop(4, 0, &a).Hop(5, 2, &b).Hop(6, 0, &c, RTNH_F_DEAD);
  const auto bytes = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 24))
                         .Address(RTA_DST, Ip("203.0.113.0"))
                         .Attribute(RTA_MULTIPATH, multipath.bytes().data(),
                                    multipath.bytes().size())
                         .Bytes();
  RouteMessage r;
  DecodeStats stats;
  ASSERT_EQ(DecodeRoute(bytes, &r, &stats), DecodeResult::kOk);
  ASSERT_EQ(r.next_hops.size(), 2u);
  EXPECT_EQ(r.next_hops[0].gateway, a);
  EXPECT_EQ(r.next_hops[0].ifindex, 4);
  EXPECT_EQ(r.next_hops[0].weight, 1u);
  EXPECT_EQ(r.next_hops[1].gateway, b);
  EXPECT_EQ(r.next_hops[1].weight, 3u);
  EXPECT_EQ(stats.malformed_attributes, 0u);
}

TEST(DecodeRoute, BrokenMultipathEntryKeepsTheEntriesBeforeIt) {
  const IpAddress a = Ip("192.0.2.1");
  Multipath multipath;
  multipath.Hop(4, 0, &a);
  // A second rtnexthop claiming 100 bytes.
  std::vector<uint8_t> bad = {100, 0, 0, 0, 5, 0, 0, 0};
  multipath.bytes().insert(multipath.bytes().end(), bad.begin(), bad.end());
  const auto bytes = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 24))
                         .Address(RTA_DST, Ip("203.0.113.0"))
                         .Attribute(RTA_MULTIPATH, multipath.bytes().data(),
                                    multipath.bytes().size())
                         .Bytes();
  RouteMessage r;
  DecodeStats stats;
  ASSERT_EQ(DecodeRoute(bytes, &r, &stats), DecodeResult::kOk);
  ASSERT_EQ(r.next_hops.size(), 1u);
  EXPECT_EQ(r.next_hops[0].gateway, a);
  EXPECT_EQ(stats.malformed_attributes, 1u);
}

TEST(DecodeRoute, Ipv6DefaultRouteHasNoDestinationAttribute) {
  const auto bytes = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET6, 0))
                         .Address(RTA_GATEWAY, Ip("2001:db8::1"))
                         .U32(RTA_OIF, 2)
                         .Bytes();
  RouteMessage r;
  DecodeStats stats;
  ASSERT_EQ(DecodeRoute(bytes, &r, &stats), DecodeResult::kOk);
  EXPECT_EQ(r.destination, Prefix("::/0"));
  ASSERT_EQ(r.next_hops.size(), 1u);
  EXPECT_EQ(r.next_hops[0].gateway, Ip("2001:db8::1"));
}

TEST(DecodeRoute, ViaGivesAnIpv6GatewayToAnIpv4Route) {
  std::vector<uint8_t> via(2 + 16);
  const uint16_t family = AF_INET6;
  std::memcpy(via.data(), &family, 2);
  const IpAddress gateway = Ip("2001:db8::1");
  std::memcpy(via.data() + 2, gateway.bytes().data(), 16);
  const auto bytes = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 0))
                         .Attribute(RTA_VIA, via.data(), via.size())
                         .U32(RTA_OIF, 2)
                         .Bytes();
  RouteMessage r;
  DecodeStats stats;
  ASSERT_EQ(DecodeRoute(bytes, &r, &stats), DecodeResult::kOk);
  ASSERT_EQ(r.next_hops.size(), 1u);
  EXPECT_EQ(r.next_hops[0].gateway, gateway);
}

TEST(DecodeRoute, RejectRoutesHaveNoNextHops) {
  const auto bytes =
      MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 32, RTN_BLACKHOLE))
          .Address(RTA_DST, Ip("192.0.2.66"))
          .Bytes();
  RouteMessage r;
  DecodeStats stats;
  ASSERT_EQ(DecodeRoute(bytes, &r, &stats), DecodeResult::kOk);
  EXPECT_EQ(r.kind, RouteKind::kReject);
  EXPECT_THAT(r.next_hops, IsEmpty());
}

TEST(DecodeRoute, OtherTablesTypesAndClonesAreIgnored) {
  RouteMessage r;
  DecodeStats stats;
  const auto local =
      MessageBuilder(RTM_NEWROUTE,
                     RouteHeader(AF_INET, 32, RTN_LOCAL, RT_TABLE_LOCAL))
          .Address(RTA_DST, Ip("192.0.2.1"))
          .Bytes();
  EXPECT_EQ(DecodeRoute(local, &r, &stats), DecodeResult::kIgnored);
  // rtm_table says main, RTA_TABLE (authoritative) says 1000.
  const auto other_table =
      MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 24))
          .Address(RTA_DST, Ip("192.0.2.0"))
          .U32(RTA_TABLE, 1000)
          .U32(RTA_OIF, 2)
          .Bytes();
  EXPECT_EQ(DecodeRoute(other_table, &r, &stats), DecodeResult::kIgnored);
  rtmsg cloned_header = RouteHeader(AF_INET6, 128);
  cloned_header.rtm_flags = RTM_F_CLONED;
  const auto cloned = MessageBuilder(RTM_NEWROUTE, cloned_header)
                          .Address(RTA_DST, Ip("2001:db8::5"))
                          .Bytes();
  EXPECT_EQ(DecodeRoute(cloned, &r, &stats), DecodeResult::kIgnored);
  EXPECT_EQ(stats.ignored_messages, 3u);
}

TEST(DecodeRoute, BadPrefixesAreMalformed) {
  RouteMessage r;
  DecodeStats stats;
  const auto too_long = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 33))
                            .Address(RTA_DST, Ip("192.0.2.0"))
                            .Bytes();
  EXPECT_EQ(DecodeRoute(too_long, &r, &stats), DecodeResult::kMalformed);
  const auto no_destination =
      MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 24))
          .U32(RTA_OIF, 2)
          .Bytes();
  EXPECT_EQ(DecodeRoute(no_destination, &r, &stats), DecodeResult::kMalformed);
  const auto bad_oif = MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET, 24))
                           .Address(RTA_DST, Ip("192.0.2.0"))
                           .Attribute(RTA_OIF, "ab", 2)
                           .Bytes();
  ASSERT_EQ(DecodeRoute(bad_oif, &r, &stats), DecodeResult::kOk);
  EXPECT_THAT(r.next_hops, IsEmpty());  // The OIF was skipped.
  EXPECT_EQ(stats.malformed_messages, 2u);
  EXPECT_EQ(stats.malformed_attributes, 1u);
}

// Every truncation and every single-byte corruption of valid messages is
// decoded without reading outside the message (ASan checks under
// --config=asan) and without crashing.
TEST(Decoders, SurviveTruncationAndCorruption) {
  const IpAddress a = Ip("2001:db8::1");
  const IpAddress b = Ip("2001:db8::2");
  Multipath multipath;
  multipath.Hop(4, 0, &a).Hop(5, 1, &b);
  const std::vector<std::vector<uint8_t>> seeds = {
      MessageBuilder(RTM_NEWNEIGH, Neighbor(AF_INET6, 7, NUD_REACHABLE))
          .Address(NDA_DST, Ip("2001:db8::10"))
          .Attribute(NDA_LLADDR, kMac, 6)
          .Bytes(),
      MessageBuilder(RTM_NEWROUTE, RouteHeader(AF_INET6, 64))
          .Address(RTA_DST, Ip("2001:db8:1::"))
          .Attribute(RTA_MULTIPATH, multipath.bytes().data(),
                     multipath.bytes().size())
          .U32(RTA_PRIORITY, 1024)
          .Bytes(),
  };
  DecodeStats stats;
  for (const auto& seed : seeds) {
    for (size_t length = 0; length <= seed.size(); ++length) {
      std::vector<uint8_t> cut(seed.begin(), seed.begin() + length);
      NeighborMessage n;
      RouteMessage r;
      DecodeNeighbor(cut, &n, &stats);
      DecodeRoute(cut, &r, &stats);
    }
    for (size_t i = 0; i < seed.size(); ++i) {
      for (int value : {0x00, 0x01, 0x03, 0x04, 0x7f, 0x80, 0xff}) {
        std::vector<uint8_t> corrupt = seed;
        corrupt[i] = static_cast<uint8_t>(value);
        NeighborMessage n;
        RouteMessage r;
        DecodeNeighbor(corrupt, &n, &stats);
        DecodeRoute(corrupt, &r, &stats);
      }
    }
  }
  EXPECT_GT(stats.malformed_messages, 0u);
  EXPECT_GT(stats.malformed_attributes, 0u);
}

TEST(EncodeResolveRequest, IsANewNeighWithNtfUseThatDecodesBack) {
  uint8_t buffer[64];
  const size_t length =
      EncodeResolveRequest(9, Ip("2001:db8::20"), std::span<uint8_t>(buffer));
  nlmsghdr header;
  std::memcpy(&header, buffer, sizeof(header));
  EXPECT_EQ(header.nlmsg_len, length);
  EXPECT_EQ(header.nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK),
            NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
  NeighborMessage m;
  DecodeStats stats;
  ASSERT_EQ(
      DecodeNeighbor(std::span<const uint8_t>(buffer, length), &m, &stats),
      DecodeResult::kOk);
  EXPECT_EQ(m.ifindex, 9);
  EXPECT_EQ(m.address, Ip("2001:db8::20"));
  EXPECT_EQ(m.flags, NTF_USE);
  EXPECT_EQ(m.state, NUD_NONE);
}

TEST(EncodeDumpRequest, SetsTypeFamilyAndDumpFlags) {
  uint8_t buffer[64];
  const size_t length =
      EncodeDumpRequest(RTM_GETROUTE, AF_INET6, std::span<uint8_t>(buffer));
  nlmsghdr header;
  std::memcpy(&header, buffer, sizeof(header));
  EXPECT_EQ(header.nlmsg_len, length);
  EXPECT_EQ(header.nlmsg_type, RTM_GETROUTE);
  EXPECT_EQ(header.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
  EXPECT_EQ(buffer[NLMSG_HDRLEN], AF_INET6);
}

}  // namespace
}  // namespace anylb::routing::netlink
