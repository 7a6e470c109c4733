// FpmServer over loopback (port 0): frames from our own sender, protobuf
// and netlink; malformed streams close the connection with a reason and
// leave the table as it was; a new connection resyncs and sweeps.

#include "routing/fpm/fpm_server.h"

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "routing/fpm/fpm_sender.h"

namespace anylb::routing::fpm {
namespace {

using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;
using ::testing::SizeIs;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }
IpPrefix Prefix(const char* text) { return *IpPrefix::Parse(text); }

netlink::RouteNextHop Hop(const char* gateway, int ifindex) {
  netlink::RouteNextHop hop;
  hop.ifindex = ifindex;
  hop.has_gateway = true;
  hop.gateway = Ip(gateway);
  return hop;
}

std::unique_ptr<FpmServer> StartServer(
    absl::Duration resync_quiet = absl::Seconds(1)) {
  FpmServerOptions options;
  options.listen = Endpoint(Ip("127.0.0.1"), 0);
  options.resync_quiet = resync_quiet;
  auto server = FpmServer::Create(options);
  EXPECT_THAT(server.status(), IsOk());
  return server.ok() ? std::move(*server) : nullptr;
}

// WaitFor polls `done` (every 5 ms, up to 5 s): the server works on its own
// thread.
template <typename F>
bool WaitFor(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

// RouteText renders the table's route to `prefix` ("" if absent).
std::string RouteText(const FpmServer& server, const char* address) {
  const netlink::Route* route = server.table()->Lookup(Ip(address));
  if (route == nullptr) return "";
  std::string text = route->destination.ToString();
  if (route->kind == netlink::RouteKind::kReject) text += " reject";
  for (const auto& hop : route->next_hops) {
    text += " " + (hop.has_gateway ? hop.gateway.ToString() : "-") + "@" +
            std::to_string(hop.ifindex);
  }
  return text;
}

TEST(FpmServer, AppliesNetlinkFramesIncludingNextHopGroups) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  ASSERT_OK_AND_ASSIGN(auto sender, FpmSender::Connect(server->endpoint()));
  ASSERT_THAT(
      sender->SendNetlink(EncodeNetlinkNextHop({.id = 1,
                                                .ifindex = 3,
                                                .has_gateway = true,
                                                .gateway = Ip("192.0.2.2")})),
      IsOk());
  ASSERT_THAT(
      sender->SendNetlink(EncodeNetlinkNextHop({.id = 2,
                                                .ifindex = 4,
                                                .has_gateway = true,
                                                .gateway = Ip("192.0.2.3")})),
      IsOk());
  ASSERT_THAT(sender->SendNetlink(
                  EncodeNetlinkNextHop({.id = 3, .group = {{1, 1}, {2, 1}}})),
              IsOk());
  ASSERT_THAT(sender->SendNetlink(EncodeNetlinkRoute(
                  {.prefix = Prefix("198.51.100.0/24"), .nh_id = 3})),
              IsOk());
  ASSERT_THAT(sender->SendNetlink(
                  EncodeNetlinkRoute({.prefix = Prefix("2001:db8:9::/48"),
                                      .next_hops = {Hop("2001:db8::9", 4)}})),
              IsOk());
  EXPECT_TRUE(WaitFor([&] {
    return RouteText(*server, "198.51.100.7") ==
               "198.51.100.0/24 192.0.2.2@3 192.0.2.3@4" &&
           RouteText(*server, "2001:db8:9::1") ==
               "2001:db8:9::/48 2001:db8::9@4";
  })) << RouteText(*server, "198.51.100.7");
  const FpmServerStats stats = server->stats();
  EXPECT_TRUE(stats.connected);
  EXPECT_EQ(stats.netlink_frames, 5u);
  EXPECT_EQ(stats.next_hop_updates, 3u);
  EXPECT_EQ(stats.route_updates, 2u);

  // Delete: reflected too.
  ASSERT_THAT(sender->SendNetlink(EncodeNetlinkRoute(
                  {.deleted = true, .prefix = Prefix("198.51.100.0/24")})),
              IsOk());
  EXPECT_TRUE(
      WaitFor([&] { return RouteText(*server, "198.51.100.7").empty(); }));
}

TEST(FpmServer, AppliesProtobufFramesFromOurSender) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  ASSERT_OK_AND_ASSIGN(auto sender, FpmSender::Connect(server->endpoint()));
  ASSERT_THAT(sender->SendProtobuf(EncodeProtobufAddRoute(
                  Prefix("203.0.113.0/24"),
                  {Hop("192.0.2.5", 3), Hop("192.0.2.6", 3)})),
              IsOk());
  ASSERT_THAT(sender->SendProtobuf(EncodeProtobufAddRoute(
                  Prefix("2001:db8:7::/48"), {Hop("2001:db8::7", 3)})),
              IsOk());
  ASSERT_THAT(sender->SendProtobuf(EncodeProtobufAddRoute(
                  Prefix("198.51.100.0/24"), {}, netlink::RouteKind::kReject)),
              IsOk());
  EXPECT_TRUE(WaitFor([&] {
    return RouteText(*server, "203.0.113.1") ==
               "203.0.113.0/24 192.0.2.5@3 192.0.2.6@3" &&
           RouteText(*server, "2001:db8:7::1") ==
               "2001:db8:7::/48 2001:db8::7@3" &&
           RouteText(*server, "198.51.100.1") == "198.51.100.0/24 reject";
  }));
  // Replace, then delete.
  ASSERT_THAT(sender->SendProtobuf(EncodeProtobufAddRoute(
                  Prefix("203.0.113.0/24"), {Hop("192.0.2.9", 3)})),
              IsOk());
  ASSERT_THAT(sender->SendProtobuf(
                  EncodeProtobufDeleteRoute(Prefix("2001:db8:7::/48"))),
              IsOk());
  EXPECT_TRUE(WaitFor([&] {
    return RouteText(*server, "203.0.113.1") == "203.0.113.0/24 192.0.2.9@3" &&
           RouteText(*server, "2001:db8:7::1").empty();
  }));
  EXPECT_EQ(server->stats().protobuf_frames, 5u);
}

struct MalformedCase {
  std::string name;
  std::vector<uint8_t> bytes;
  FpmError error;
  std::string reason;
};

class FpmServerMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(FpmServerMalformed, ClosesTheConnectionAndLeavesTheTableIntact) {
  const MalformedCase& c = GetParam();
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  ASSERT_OK_AND_ASSIGN(auto sender, FpmSender::Connect(server->endpoint()));
  ASSERT_THAT(sender->SendNetlink(
                  EncodeNetlinkRoute({.prefix = Prefix("203.0.113.0/24"),
                                      .next_hops = {Hop("192.0.2.5", 3)}})),
              IsOk());
  ASSERT_TRUE(
      WaitFor([&] { return !RouteText(*server, "203.0.113.1").empty(); }));
  const uint64_t generation = server->generation();

  // The bad bytes, then a good frame that must not be applied.
  std::vector<uint8_t> stream = c.bytes;
  const std::vector<uint8_t> after =
      EncodeFrame(FrameType::kNetlink,
                  EncodeNetlinkRoute(
                      {.deleted = true, .prefix = Prefix("203.0.113.0/24")}));
  if (c.error != FpmError::kTruncated) {
    stream.insert(stream.end(), after.begin(), after.end());
  }
  ASSERT_THAT(sender->SendRaw(stream), IsOk());
  if (c.error == FpmError::kTruncated) sender.reset();  // End mid-frame.
  if (sender != nullptr) {
    EXPECT_TRUE(sender->WaitForClose(absl::Seconds(5))) << c.name;
  }
  ASSERT_TRUE(WaitFor([&] {
    return server->stats().errors[static_cast<size_t>(c.error)] == 1;
  })) << c.name;
  const FpmServerStats stats = server->stats();
  EXPECT_FALSE(stats.connected);
  EXPECT_THAT(stats.last_error, HasSubstr(c.reason));
  EXPECT_THAT(stats.last_error, HasSubstr(std::string(FpmErrorName(c.error))));
  EXPECT_EQ(RouteText(*server, "203.0.113.1"), "203.0.113.0/24 192.0.2.5@3");
  EXPECT_EQ(server->generation(), generation);

  // The server takes the next connection.
  ASSERT_OK_AND_ASSIGN(auto again, FpmSender::Connect(server->endpoint()));
  ASSERT_THAT(again->SendProtobuf(EncodeProtobufAddRoute(
                  Prefix("198.51.100.0/24"), {Hop("192.0.2.7", 3)})),
              IsOk());
  EXPECT_TRUE(
      WaitFor([&] { return !RouteText(*server, "198.51.100.1").empty(); }));
}

std::vector<MalformedCase> MalformedCases() {
  const std::vector<uint8_t> route =
      EncodeNetlinkRoute({.prefix = Prefix("198.51.100.0/24"),
                          .next_hops = {Hop("192.0.2.5", 3)}});
  std::vector<uint8_t> garbage_netlink = route;
  garbage_netlink[0] = 0xff;  // nlmsg_len past the frame.
  std::vector<uint8_t> truncated = EncodeFrame(FrameType::kNetlink, route);
  truncated.erase(truncated.begin() + 20, truncated.end());  // Frame > 20.
  return {
      {"bad_version",
       {2, 1, 0, 8, 0, 0, 0, 0},
       FpmError::kBadVersion,
       "version 2"},
      {"bad_type", {1, 9, 0, 8, 0, 0, 0, 0}, FpmError::kBadType, "type 9"},
      {"bad_length", {1, 1, 0, 2}, FpmError::kBadLength, "length 2"},
      {"truncated", truncated, FpmError::kTruncated, "inside a frame"},
      {"garbage_netlink", EncodeFrame(FrameType::kNetlink, garbage_netlink),
       FpmError::kBadNetlink, "nlmsg_len"},
      {"random_netlink",
       EncodeFrame(FrameType::kNetlink,
                   std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef, 1, 2, 3}),
       FpmError::kBadNetlink, "less than a netlink header"},
      {"bad_protobuf",
       EncodeFrame(FrameType::kProtobuf, std::vector<uint8_t>{0xff, 0xff}),
       FpmError::kBadProtobuf, "does not parse"},
  };
}

INSTANTIATE_TEST_SUITE_P(
    Streams, FpmServerMalformed, ::testing::ValuesIn(MalformedCases()),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      return info.param.name;
    });

TEST(FpmServer, ANewConnectionReplacesTheOldAndResyncSweepsStaleRoutes) {
  auto server = StartServer(absl::Milliseconds(300));
  ASSERT_NE(server, nullptr);
  ASSERT_OK_AND_ASSIGN(auto first, FpmSender::Connect(server->endpoint()));
  for (const char* prefix : {"203.0.113.0/24", "198.51.100.0/24"}) {
    ASSERT_THAT(
        first->SendNetlink(EncodeNetlinkRoute(
            {.prefix = Prefix(prefix), .next_hops = {Hop("192.0.2.5", 3)}})),
        IsOk());
  }
  ASSERT_TRUE(WaitFor([&] { return server->stats().resyncs == 1; }));
  ASSERT_EQ(server->table()->size(), 2u);

  // zebra restarts: the new connection re-sends only one of the two.
  ASSERT_OK_AND_ASSIGN(auto second, FpmSender::Connect(server->endpoint()));
  EXPECT_TRUE(first->WaitForClose(absl::Seconds(5)));
  ASSERT_THAT(second->SendNetlink(
                  EncodeNetlinkRoute({.prefix = Prefix("203.0.113.0/24"),
                                      .next_hops = {Hop("192.0.2.6", 3)}})),
              IsOk());
  // Before the sweep both are there (old one still forwarding)...
  ASSERT_TRUE(WaitFor([&] {
    return RouteText(*server, "203.0.113.1") == "203.0.113.0/24 192.0.2.6@3";
  }));
  // ...after it, only what the new connection sent.
  ASSERT_TRUE(WaitFor([&] { return server->stats().resyncs == 2; }));
  EXPECT_TRUE(
      WaitFor([&] { return RouteText(*server, "198.51.100.1").empty(); }));
  const FpmServerStats stats = server->stats();
  EXPECT_EQ(stats.connections, 2u);
  EXPECT_EQ(stats.replaced_connections, 1u);
  EXPECT_EQ(stats.stale_routes_removed, 1u);
  EXPECT_EQ(stats.routes, 1u);
  EXPECT_TRUE(stats.connected);
}

TEST(FpmServer, RoutesSurviveADisconnectUntilTheNextResync) {
  auto server = StartServer(absl::Milliseconds(200));
  ASSERT_NE(server, nullptr);
  {
    ASSERT_OK_AND_ASSIGN(auto sender, FpmSender::Connect(server->endpoint()));
    ASSERT_THAT(sender->SendNetlink(
                    EncodeNetlinkRoute({.prefix = Prefix("203.0.113.0/24"),
                                        .next_hops = {Hop("192.0.2.5", 3)}})),
                IsOk());
    ASSERT_TRUE(WaitFor([&] { return server->table()->size() == 1; }));
  }
  ASSERT_TRUE(WaitFor([&] { return !server->stats().connected; }));
  absl::SleepFor(absl::Milliseconds(400));  // Longer than resync_quiet.
  EXPECT_EQ(server->table()->size(), 1u);
  EXPECT_EQ(server->stats().errors[static_cast<size_t>(FpmError::kTruncated)],
            0u);
}

TEST(FpmServer, ExportsMetricFamilies) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  std::vector<metrics::MetricFamily> families;
  server->CollectMetrics(&families);
  std::vector<std::string> names;
  for (const auto& family : families) {
    EXPECT_THAT(family.Validate(), IsOk()) << family.name();
    names.push_back(family.name());
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf(
                         {"anylb_fpm_connected", "anylb_fpm_frames_total",
                          "anylb_fpm_routes", "anylb_fpm_errors_total",
                          "anylb_fpm_resyncs_total"}));
}

TEST(FpmServer, BindingAnAddressInUseNamesTheFlag) {
  auto first = StartServer();
  ASSERT_NE(first, nullptr);
  FpmServerOptions options;
  options.listen = first->endpoint();
  auto second = FpmServer::Create(options);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("--fpm_listen"));
}

}  // namespace
}  // namespace anylb::routing::fpm
