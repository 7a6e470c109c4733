#include "routing/fpm/decoder.h"

#include <linux/rtnetlink.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "fpm/fpm.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "routing/fpm/fib.h"
#include "routing/fpm/fpm_sender.h"
#include "routing/fpm/frame.h"

namespace anylb::routing::fpm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }
IpPrefix Prefix(const char* text) { return *IpPrefix::Parse(text); }

netlink::RouteNextHop Hop(const char* gateway, int ifindex,
                          uint32_t weight = 1) {
  netlink::RouteNextHop hop;
  hop.ifindex = ifindex;
  hop.has_gateway = gateway != nullptr;
  if (gateway != nullptr) hop.gateway = Ip(gateway);
  hop.weight = weight;
  return hop;
}

std::vector<uint8_t> Bytes(const std::string& hex) {
  const std::string raw = absl::HexStringToBytes(hex);
  return std::vector<uint8_t>(raw.begin(), raw.end());
}

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// --- Frames -----------------------------------------------------------------

TEST(FrameReader, CutsAStreamFedByteByByte) {
  std::vector<uint8_t> stream;
  for (int i = 0; i < 3; ++i) {
    const std::vector<uint8_t> payload(i * 7, static_cast<uint8_t>(i));
    const std::vector<uint8_t> frame = EncodeFrame(
        i == 1 ? FrameType::kProtobuf : FrameType::kNetlink, payload);
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  FrameReader reader;
  std::vector<std::pair<FrameType, size_t>> seen;
  for (uint8_t byte : stream) {
    reader.Append(std::span<const uint8_t>(&byte, 1));
    Frame frame;
    FpmError error;
    std::string reason;
    while (reader.Next(&frame, &error, &reason) ==
           FrameReader::Result::kFrame) {
      seen.emplace_back(frame.type, frame.payload.size());
    }
  }
  EXPECT_THAT(seen, ElementsAre(std::pair(FrameType::kNetlink, size_t{0}),
                                std::pair(FrameType::kProtobuf, size_t{7}),
                                std::pair(FrameType::kNetlink, size_t{14})));
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, RejectsBadHeaders) {
  struct Case {
    std::string hex;
    FpmError error;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"02010004", FpmError::kBadVersion, "version 2"},
           {"01030004", FpmError::kBadType, "type 3"},
           {"01010003", FpmError::kBadLength, "length 3"},
           {"01010000", FpmError::kBadLength, "length 0"},
       }) {
    FrameReader reader;
    reader.Append(Bytes(c.hex + "00000000"));
    Frame frame;
    FpmError error;
    std::string reason;
    ASSERT_EQ(reader.Next(&frame, &error, &reason), FrameReader::Result::kError)
        << c.hex;
    EXPECT_EQ(error, c.error) << c.hex;
    EXPECT_THAT(reason, HasSubstr(c.reason));
    // Sticky: nothing after a bad header is trusted.
    EXPECT_EQ(reader.Next(&frame, &error, &reason),
              FrameReader::Result::kError);
  }
}

TEST(FrameReader, WaitsForTheWholeFrame) {
  FrameReader reader;
  reader.Append(Bytes("0101000a0000"));  // 10 bytes announced, 6 here.
  Frame frame;
  FpmError error;
  std::string reason;
  EXPECT_EQ(reader.Next(&frame, &error, &reason),
            FrameReader::Result::kNeedMore);
  EXPECT_EQ(reader.buffered(), 6u);
}

// --- Netlink ----------------------------------------------------------------

// Captured from Debian's zebra 8.4 (dplane_fpm_nl, next-hop groups on by
// default) on connect, whole frames, for a namespace with ifindex 6 =
// 192.0.2.1/24 + 2001:db8::1/64, a kernel route 198.51.100.0/24 nexthop via
// 192.0.2.2 weight 1 nexthop via 192.0.2.3 weight 3, and static routes
// 203.0.113.0/24 via 192.0.2.5, 203.0.113.128/25 via 192.0.2.5 and
// 192.0.2.6, 2001:db8:5::/48 via 2001:db8::5.
constexpr const char* kZebraCapture[] = {
    "0101002c280000006800010500000000df33aaec0a000b0000000000080001001000000008"
    "00050006000000",
    "010100403c0000006800010500000000df33aaec0a000b0000000000080001001300000014"
    "00060020010db80000000000000000000000050800050006000000",
    "0101002c280000006800010500000000df33aaec02000b0000000000080001000500000008"
    "00050006000000",
    "01010038340000006800010500000000df33aaec00000b0000000000080001000600000014"
    "00020007000000000000000800000002000000",
    "01010034300000006800010500000000df33aaec02000b0000000000080001000700000008"
    "000600c00002020800050006000000",
    "01010034300000006800010500000000df33aaec02000b0000000000080001000800000008"
    "000600c00002030800050006000000",
    "01010034300000006800010500000000df33aaec02000b0000000000080001000c00000008"
    "000600c00002050800050006000000",
    "01010038340000006800010500000000df33aaec00000b0000000000080001000d00000014"
    "0002000c000000000000000e00000000000000",
    "01010034300000006800010500000000df33aaec02000b0000000000080001000e00000008"
    "000600c00002060800050006000000",
    "01010038340000001800010500000000df33aaec02180000fe0200010000000008000100c0"
    "000200080006001400000008001e0005000000",
    "01010038340000001800010500000000df33aaec02180000fe0200010000000008000100c6"
    "336400080006001400000008001e0006000000",
    "01010038340000001800010500000000df33aaec02180000fec400010000000008000100cb"
    "007100080006001400000008001e000c000000",
    "01010038340000001800010500000000df33aaec02190000fec400010000000008000100cb"
    "007180080006001400000008001e000d000000",
    "01010044400000001800010400000000df33aaec0a400000fe020001000000001400010020"
    "010db8000000000000000000000000080006001400000008001e0010000000",
    "01010044400000001800010400000000df33aaec0a300000fec40001000000001400010020"
    "010db8000500000000000000000000080006001400000008001e0013000000",
    "01010044400000001800010400000000df33aaec0a400000fe0200010000000014000100fe"
    "800000000000000000000000000000080006001400000008001e0010000000",
};

TEST(DecodeNetlinkPayload, DecodesZebrasCapturedFramesIntoTheFib) {
  FrameReader reader;
  for (const char* hex : kZebraCapture) reader.Append(Bytes(hex));
  Fib fib;
  DecoderStats stats;
  Frame frame;
  FpmError error;
  std::string reason;
  int frames = 0;
  while (reader.Next(&frame, &error, &reason) == FrameReader::Result::kFrame) {
    ++frames;
    std::vector<FibUpdate> updates;
    ASSERT_TRUE(DecodeFrame(frame, &updates, &stats, &error).ok());
    ASSERT_THAT(updates, SizeIs(1));
    fib.Apply(updates[0]);
  }
  EXPECT_EQ(frames, 16);
  EXPECT_EQ(stats.ignored_messages, 0u);
  EXPECT_EQ(fib.next_hop_count(), 9u);
  size_t unresolved = 0;
  const std::vector<netlink::Route> routes = fib.Routes(&unresolved);
  EXPECT_EQ(unresolved, 0u);
  std::vector<std::string> text;
  for (const netlink::Route& route : routes) {
    std::string line = route.destination.ToString();
    for (const netlink::RouteNextHop& hop : route.next_hops) {
      line += " " + (hop.has_gateway ? hop.gateway.ToString() : "-") + "@" +
              std::to_string(hop.ifindex) + "w" + std::to_string(hop.weight);
    }
    text.push_back(line);
  }
  EXPECT_THAT(
      text, ElementsAre("192.0.2.0/24 -@6w1",
                        "198.51.100.0/24 192.0.2.2@6w1 192.0.2.3@6w3",
                        "203.0.113.0/24 192.0.2.5@6w1",
                        "203.0.113.128/25 192.0.2.5@6w1 192.0.2.6@6w1",
                        "2001:db8::/64 -@6w1",
                        "2001:db8:5::/48 2001:db8::5@6w1", "fe80::/64 -@6w1"));
}

TEST(DecodeNetlinkPayload, DecodesExplicitNextHopsIpv4AndIpv6) {
  NetlinkRouteSpec multipath{
      .prefix = Prefix("203.0.113.0/24"),
      .next_hops = {Hop("192.0.2.5", 3, 1), Hop("192.0.2.6", 4, 4)}};
  NetlinkRouteSpec v6{.prefix = Prefix("2001:db8:5::/48"),
                      .next_hops = {Hop("2001:db8::5", 3)}};
  NetlinkRouteSpec connected{.prefix = Prefix("192.0.2.0/24"),
                             .next_hops = {Hop(nullptr, 3)}};
  // Several netlink messages in one frame are allowed.
  std::vector<uint8_t> payload = EncodeNetlinkRoute(multipath);
  for (const auto& spec : {v6, connected}) {
    const auto m = EncodeNetlinkRoute(spec);
    payload.insert(payload.end(), m.begin(), m.end());
  }
  std::vector<FibUpdate> updates;
  DecoderStats stats;
  ASSERT_TRUE(DecodeNetlinkPayload(payload, &updates, &stats).ok());
  ASSERT_THAT(updates, SizeIs(3));
  const auto& a = std::get<RouteUpdate>(updates[0]);
  EXPECT_EQ(a.prefix, Prefix("203.0.113.0/24"));
  ASSERT_THAT(a.next_hops, SizeIs(2));
  EXPECT_EQ(a.next_hops[1].ifindex, 4);
  EXPECT_EQ(a.next_hops[1].weight, 4u);
  const auto& b = std::get<RouteUpdate>(updates[1]);
  EXPECT_EQ(b.prefix, Prefix("2001:db8:5::/48"));
  ASSERT_THAT(b.next_hops, SizeIs(1));
  EXPECT_EQ(b.next_hops[0].gateway, Ip("2001:db8::5"));
  const auto& c = std::get<RouteUpdate>(updates[2]);
  ASSERT_THAT(c.next_hops, SizeIs(1));
  EXPECT_FALSE(c.next_hops[0].has_gateway);
}

TEST(DecodeNetlinkPayload, DeleteWithUnspecifiedTypeStillDeletes) {
  NetlinkRouteSpec spec{
      .deleted = true, .prefix = Prefix("203.0.113.0/24"), .type = RTN_UNSPEC};
  std::vector<FibUpdate> updates;
  DecoderStats stats;
  ASSERT_TRUE(
      DecodeNetlinkPayload(EncodeNetlinkRoute(spec), &updates, &stats).ok());
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_TRUE(std::get<RouteUpdate>(updates[0]).deleted);
}

TEST(DecodeNetlinkPayload, IgnoresOtherTablesAndMessageTypes) {
  NetlinkRouteSpec vrf{.prefix = Prefix("203.0.113.0/24"),
                       .table = 1001,
                       .next_hops = {Hop("192.0.2.5", 3)}};
  std::vector<uint8_t> payload = EncodeNetlinkRoute(vrf);
  // An RTM_NEWNEIGH (EVPN) message: not ours.
  const std::vector<uint8_t> neigh = Bytes(
      "1c0000001c0001000000000000000000"
      "0a00000003000000800000000000000000");
  payload.insert(payload.end(), neigh.begin(), neigh.begin() + 0x1c);
  std::vector<FibUpdate> updates;
  DecoderStats stats;
  ASSERT_TRUE(DecodeNetlinkPayload(payload, &updates, &stats).ok());
  EXPECT_THAT(updates, IsEmpty());
  EXPECT_EQ(stats.ignored_messages, 2u);
}

TEST(DecodeNetlinkPayload, RejectsMalformedPayloadsWholly) {
  const std::vector<uint8_t> good = EncodeNetlinkRoute(
      {.prefix = Prefix("203.0.113.0/24"), .next_hops = {Hop("192.0.2.5", 3)}});
  auto with = [&](std::vector<uint8_t> bad) {
    std::vector<uint8_t> payload = good;  // A good message first.
    payload.insert(payload.end(), bad.begin(), bad.end());
    return payload;
  };
  std::vector<uint8_t> long_length = good;
  long_length[0] += 4;  // nlmsg_len past the frame.
  std::vector<uint8_t> broken_attribute = good;
  broken_attribute[good.size() - 8] = 0xff;  // rta_len of the last attribute.
  NextHopObject no_id{.id = 0, .ifindex = 3};
  NextHopObject bad_group{.id = 9, .group = {{1, 1}}};
  std::vector<uint8_t> short_group = EncodeNetlinkNextHop(bad_group);
  short_group[16 + 8 + 8] = 4 + 7;  // NHA_GROUP of 7 bytes.
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> cases = {
      {"empty", {}},
      {"short header", with(Bytes("1000000018"))},
      {"nlmsg_len past the frame", with(long_length)},
      {"nlmsg_len below 16", with(Bytes("08000000180000000000000000000000"))},
      {"broken attribute chain", with(broken_attribute)},
      {"route shorter than rtmsg",
       with(Bytes("14000000180000000000000000000000020000"
                  "00"))},
      {"next hop without NHA_ID", with(EncodeNetlinkNextHop(no_id))},
      {"NHA_GROUP not a whole number", with(short_group)},
  };
  for (const auto& [name, payload] : cases) {
    std::vector<FibUpdate> updates(1);  // Left as it was on error.
    DecoderStats stats;
    FpmError error = FpmError::kSocket;
    const absl::Status status = DecodeFrame(Frame{FrameType::kNetlink, payload},
                                            &updates, &stats, &error);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr("netlink message")) << name;
    EXPECT_EQ(error, FpmError::kBadNetlink) << name;
    EXPECT_THAT(updates, SizeIs(1)) << name;
  }
}

// --- Protobuf ---------------------------------------------------------------

TEST(DecodeProtobufPayload, AddAndDeleteIpv4AndIpv6) {
  std::vector<FibUpdate> updates;
  DecoderStats stats;
  ASSERT_TRUE(
      DecodeProtobufPayload(Span(EncodeProtobufAddRoute(
                                Prefix("203.0.113.128/25"),
                                {Hop("192.0.2.5", 3), Hop("192.0.2.6", 4)})),
                            &updates, &stats)
          .ok());
  ASSERT_TRUE(DecodeProtobufPayload(
                  Span(EncodeProtobufAddRoute(Prefix("2001:db8:7::/48"),
                                              {Hop("2001:db8::7", 3)})),
                  &updates, &stats)
                  .ok());
  ASSERT_TRUE(DecodeProtobufPayload(
                  Span(EncodeProtobufAddRoute(Prefix("198.51.100.0/24"), {},
                                              netlink::RouteKind::kReject)),
                  &updates, &stats)
                  .ok());
  ASSERT_TRUE(DecodeProtobufPayload(
                  Span(EncodeProtobufDeleteRoute(Prefix("2001:db8:7::/48"))),
                  &updates, &stats)
                  .ok());
  ASSERT_THAT(updates, SizeIs(4));
  const auto& a = std::get<RouteUpdate>(updates[0]);
  EXPECT_EQ(a.prefix, Prefix("203.0.113.128/25"));
  ASSERT_THAT(a.next_hops, SizeIs(2));
  EXPECT_EQ(a.next_hops[0].gateway, Ip("192.0.2.5"));
  EXPECT_EQ(a.next_hops[1].ifindex, 4);
  const auto& b = std::get<RouteUpdate>(updates[1]);
  ASSERT_THAT(b.next_hops, SizeIs(1));
  EXPECT_EQ(b.next_hops[0].gateway, Ip("2001:db8::7"));
  EXPECT_EQ(std::get<RouteUpdate>(updates[2]).kind,
            netlink::RouteKind::kReject);
  const auto& d = std::get<RouteUpdate>(updates[3]);
  EXPECT_TRUE(d.deleted);
  EXPECT_EQ(d.prefix, Prefix("2001:db8:7::/48"));
}

TEST(DecodeProtobufPayload, Ipv4AddressIsAHostOrderNumber) {
  // Field by field as FRR's qpb helpers fill it: value = ntohl(s_addr).
  anylb::fpm::Message m;
  m.set_type(anylb::fpm::Message::ADD_ROUTE);
  auto* add = m.mutable_add_route();
  add->set_vrf_id(0);
  add->set_address_family(anylb::fpm::IPV4);
  add->set_sub_address_family(anylb::fpm::UNICAST);
  add->mutable_key()->mutable_prefix()->set_length(24);
  add->mutable_key()->mutable_prefix()->set_bytes(
      std::string("\xcb\x00\x71", 3));
  add->set_protocol(anylb::fpm::BGP);
  add->set_metric(0);
  auto* hop = add->add_nexthops();
  hop->mutable_if_id()->set_index(5);
  hop->mutable_address()->mutable_v4()->set_value(0xc0000205);
  std::vector<FibUpdate> updates;
  DecoderStats stats;
  ASSERT_TRUE(
      DecodeProtobufPayload(Span(m.SerializeAsString()), &updates, &stats)
          .ok());
  const auto& route = std::get<RouteUpdate>(updates.at(0));
  EXPECT_EQ(route.prefix, Prefix("203.0.113.0/24"));
  EXPECT_EQ(route.next_hops.at(0).gateway, Ip("192.0.2.5"));
}

TEST(DecodeProtobufPayload, IgnoresOtherVrfsAndRejectsBadMessages) {
  anylb::fpm::Message vrf;
  vrf.ParseFromString(EncodeProtobufDeleteRoute(Prefix("203.0.113.0/24")));
  vrf.mutable_delete_route()->set_vrf_id(7);
  std::vector<FibUpdate> updates;
  DecoderStats stats;
  ASSERT_TRUE(
      DecodeProtobufPayload(Span(vrf.SerializeAsString()), &updates, &stats)
          .ok());
  EXPECT_THAT(updates, IsEmpty());
  EXPECT_EQ(stats.ignored_messages, 1u);

  anylb::fpm::Message missing_required;
  missing_required.set_type(anylb::fpm::Message::DELETE_ROUTE);
  missing_required.mutable_delete_route()->set_vrf_id(0);
  anylb::fpm::Message no_body;
  no_body.set_type(anylb::fpm::Message::ADD_ROUTE);
  anylb::fpm::Message short_prefix;
  short_prefix.ParseFromString(
      EncodeProtobufDeleteRoute(Prefix("203.0.113.0/24")));
  short_prefix.mutable_delete_route()
      ->mutable_key()
      ->mutable_prefix()
      ->set_bytes("\xcb");
  anylb::fpm::Message unknown_type;
  unknown_type.set_type(anylb::fpm::Message::UNKNOWN_MSG);
  for (const std::string& bytes :
       {std::string("\xff\xff\xff"),
        missing_required.SerializePartialAsString(),
        no_body.SerializeAsString(), short_prefix.SerializeAsString(),
        unknown_type.SerializeAsString()}) {
    FpmError error = FpmError::kSocket;
    const std::vector<uint8_t> payload(bytes.begin(), bytes.end());
    const absl::Status status = DecodeFrame(
        Frame{FrameType::kProtobuf, payload}, &updates, &stats, &error);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << absl::BytesToHexString(bytes);
    EXPECT_EQ(error, FpmError::kBadProtobuf);
  }
  EXPECT_THAT(updates, IsEmpty());
}

// --- Fib --------------------------------------------------------------------

RouteUpdate Add(const char* prefix, std::vector<netlink::RouteNextHop> hops) {
  RouteUpdate u;
  u.prefix = Prefix(prefix);
  u.next_hops = std::move(hops);
  return u;
}

TEST(Fib, ANewRouteForAPrefixReplacesTheOld) {
  Fib fib;
  EXPECT_TRUE(fib.Apply(Add("203.0.113.0/24", {Hop("192.0.2.5", 3)})));
  EXPECT_FALSE(fib.Apply(Add("203.0.113.0/24", {Hop("192.0.2.5", 3)})));
  RouteUpdate other_metric = Add("203.0.113.0/24", {Hop("192.0.2.6", 4)});
  other_metric.priority = 99;
  EXPECT_TRUE(fib.Apply(other_metric));
  auto table = fib.BuildTable();
  ASSERT_EQ(table->size(), 1u);
  const netlink::Route* route = table->Lookup(Ip("203.0.113.9"));
  ASSERT_NE(route, nullptr);
  ASSERT_THAT(route->next_hops, SizeIs(1));
  EXPECT_EQ(route->next_hops[0].gateway, Ip("192.0.2.6"));
  RouteUpdate del;
  del.deleted = true;
  del.prefix = Prefix("203.0.113.0/24");
  EXPECT_TRUE(fib.Apply(del));
  EXPECT_FALSE(fib.Apply(del));
  EXPECT_EQ(fib.BuildTable()->Lookup(Ip("203.0.113.9")), nullptr);
}

TEST(Fib, ResolvesNextHopObjectsWhenBuilt) {
  Fib fib;
  RouteUpdate route;
  route.prefix = Prefix("198.51.100.0/24");
  route.nh_id = 10;
  fib.Apply(route);
  size_t unresolved = 0;
  EXPECT_THAT(fib.Routes(&unresolved), IsEmpty());
  EXPECT_EQ(unresolved, 1u);  // Unknown object: left out.

  fib.Apply(NextHopUpdate{false,
                          {.id = 1,
                           .ifindex = 3,
                           .has_gateway = true,
                           .gateway = Ip("192.0.2.2")}});
  fib.Apply(NextHopUpdate{false,
                          {.id = 2,
                           .ifindex = 4,
                           .has_gateway = true,
                           .gateway = Ip("192.0.2.3")}});
  fib.Apply(NextHopUpdate{false, {.id = 10, .group = {{1, 2}, {2, 5}}}});
  std::vector<netlink::Route> routes = fib.Routes(&unresolved);
  EXPECT_EQ(unresolved, 0u);
  ASSERT_THAT(routes, SizeIs(1));
  ASSERT_THAT(routes[0].next_hops, SizeIs(2));
  EXPECT_EQ(routes[0].next_hops[0].weight, 2u);
  EXPECT_EQ(routes[0].next_hops[1].ifindex, 4);
  EXPECT_EQ(routes[0].next_hops[1].weight, 5u);

  // Replacing the group re-points the route; a blackhole object rejects.
  fib.Apply(NextHopUpdate{false, {.id = 10, .group = {{2, 1}}}});
  routes = fib.Routes();
  ASSERT_THAT(routes[0].next_hops, SizeIs(1));
  EXPECT_EQ(routes[0].next_hops[0].gateway, Ip("192.0.2.3"));
  fib.Apply(NextHopUpdate{false, {.id = 10, .blackhole = true}});
  routes = fib.Routes();
  EXPECT_EQ(routes[0].kind, netlink::RouteKind::kReject);
  EXPECT_THAT(routes[0].next_hops, IsEmpty());
}

TEST(Fib, SweepRemovesWhatTheNewConnectionDidNotResend) {
  Fib fib;
  fib.Apply(Add("203.0.113.0/24", {Hop("192.0.2.5", 3)}));
  fib.Apply(Add("198.51.100.0/24", {Hop("192.0.2.5", 3)}));
  fib.Apply(NextHopUpdate{false, {.id = 1, .ifindex = 3}});
  fib.BeginResync();
  fib.Apply(Add("203.0.113.0/24", {Hop("192.0.2.5", 3)}));  // Same again.
  EXPECT_EQ(fib.route_count(), 2u);  // Old ones stay until the sweep.
  const FibSweep sweep = fib.SweepStale();
  EXPECT_EQ(sweep.routes, 1u);
  EXPECT_EQ(sweep.next_hops, 1u);
  const std::vector<netlink::Route> routes = fib.Routes();
  ASSERT_THAT(routes, SizeIs(1));
  EXPECT_EQ(routes[0].destination, Prefix("203.0.113.0/24"));
}

}  // namespace
}  // namespace anylb::routing::fpm
