// lb_xsk_forward end to end, and its teardown on SIGTERM: run in a
// director namespace, it attaches the steering program and forwards a DR
// frame back to the generator namespace; after SIGTERM it exits 0 with
// every frame accounted for, and the interface has no XDP program left.
//
// Needs root (namespaces, XDP, AF_XDP): tagged "netns". The namespaces are
// removed by TestNetns and the child is killed by its guard, also when the
// test fails half-way.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/child_process.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::xsk {
namespace {

using ::anylb::dataplane_testing::FormatMac;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::netns_testing::MacOf;
using ::anylb::netns_testing::PacketSocket;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::ScopedNetns;
using ::anylb::netns_testing::TestNetns;
using ::anylb::process_testing::ChildProcess;
using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBinary[] = "lbnode/dataplane/xsk/lb_xsk_forward";

TEST(LbXskForward, ForwardsAndTearsDownCleanlyOnSigterm) {
  ASSERT_THAT(RequireRoot("lb_xsk_forward_test"), IsOk());
  ASSERT_OK_AND_ASSIGN(auto gen, TestNetns::Create("xskf-gen"));
  ASSERT_OK_AND_ASSIGN(auto dir, TestNetns::Create("xskf-dir"));
  ASSERT_THAT(dir->Run("ip link add dir0 type veth peer name gen0 netns " +
                       gen->name() + " && ip link set dir0 up"),
              IsOk());
  ASSERT_THAT(gen->Run("ip link set gen0 up"), IsOk());
  std::unique_ptr<PacketSocket> socket;
  std::array<uint8_t, 6> gen_mac;
  {
    ASSERT_OK_AND_ASSIGN(auto in_gen, ScopedNetns::Enter(*gen));
    ASSERT_OK_AND_ASSIGN(gen_mac, MacOf("gen0"));
    ASSERT_OK_AND_ASSIGN(socket, PacketSocket::Open("gen0"));
  }
  std::array<uint8_t, 6> dir_mac;
  {
    ASSERT_OK_AND_ASSIGN(auto in_dir, ScopedNetns::Enter(*dir));
    ASSERT_OK_AND_ASSIGN(dir_mac, MacOf("dir0"));
  }

  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> child,
      ChildProcess::Start(
          {"/usr/sbin/ip", "netns", "exec", dir->name(), kBinary,
           "--interface=dir0", "--mode=copy",
           "--dr=tcp/203.0.113.10/80=192.0.2.1@" + FormatMac(gen_mac)}));
  ASSERT_TRUE(child->ReadUntil("ready", absl::Seconds(10))) << child->output();
  EXPECT_THAT(child->output(), HasSubstr("mode copy queues 1"));
  ASSERT_OK_AND_ASSIGN(std::string link, dir->Run("ip link show dir0"));
  EXPECT_THAT(link, HasSubstr("xdp"));

  std::vector<uint8_t> frame = PacketBuilder()
                                   .Eth(FormatMac(gen_mac), FormatMac(dir_mac))
                                   .Ipv4("198.51.100.7", "203.0.113.10")
                                   .Tcp(40000, 80)
                                   .Flags(0x02)
                                   .Build();
  ASSERT_THAT(socket->Send(frame), IsOk());
  bool forwarded = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while (!forwarded && absl::Now() < deadline) {
    std::optional<std::vector<uint8_t>> got =
        socket->Receive(deadline - absl::Now());
    if (!got.has_value()) break;
    forwarded = got->size() == frame.size() &&
                std::equal(dir_mac.begin(), dir_mac.end(), got->begin() + 6) &&
                std::equal(frame.begin() + 12, frame.end(), got->begin() + 12);
  }
  EXPECT_TRUE(forwarded) << "no DR frame came back";

  EXPECT_EQ(child->Stop(absl::Seconds(10)), 0) << child->output();
  EXPECT_THAT(child->output(), HasSubstr("stopped"));
  EXPECT_THAT(child->output(), HasSubstr("queue 0 rx 1 tx 1"));
  EXPECT_THAT(child->output(), HasSubstr("frames_unaccounted 0"));
  ASSERT_OK_AND_ASSIGN(link, dir->Run("ip link show dir0"));
  EXPECT_THAT(link, Not(HasSubstr("xdp"))) << "the program is still attached";
}

}  // namespace
}  // namespace anylb::dataplane::xsk
