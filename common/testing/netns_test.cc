// The netns helpers against the real kernel: namespaces appear and go,
// ScopedNetns moves the thread, PacketSocket carries frames over a veth,
// RequireRoot and RunUnprivileged. Needs root (tagged "netns").

#include "common/testing/netns.h"

#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::netns_testing {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(RunCommand, ReturnsOutputAndQuotesAFailingCommand) {
  EXPECT_THAT(RunCommand("echo hello; echo oops >&2"),
              IsOkAndHolds("hello\noops\n"));
  EXPECT_THAT(RunCommand("echo broken; exit 3"),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("`echo broken; exit 3` failed"),
                             HasSubstr("broken"))));
}

TEST(TestNetns, CreatesAUniqueNamespaceAndDeletesIt) {
  ASSERT_THAT(RequireRoot("netns_test"), IsOk());
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> a, TestNetns::Create("nt"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> b, TestNetns::Create("nt"));
    EXPECT_NE(a->name(), b->name());
    EXPECT_THAT(a->name(), HasSubstr(absl::StrCat("nt-", getpid(), "-")));
    path = "/var/run/netns/" + a->name();
    EXPECT_TRUE(Exists(path));
    // Loopback is up; quoting survives the shell.
    EXPECT_THAT(a->Run("ip -o link show lo"), IsOkAndHolds(HasSubstr("UP")));
    EXPECT_THAT(a->Run("echo 'it''s'"), IsOkAndHolds("its\n"));
  }
  EXPECT_FALSE(Exists(path)) << path << " outlived its TestNetns";
}

TEST(ScopedNetns, MovesTheThreadInAndBackOut) {
  ASSERT_THAT(RequireRoot("netns_test"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> ns, TestNetns::Create("nt"));
  ASSERT_THAT(ns->Run("ip link add nta0 type veth peer name ntb0"), IsOk());
  EXPECT_EQ(if_nametoindex("nta0"), 0u);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScopedNetns> inside,
                         ScopedNetns::Enter(*ns));
    EXPECT_NE(if_nametoindex("nta0"), 0u);
  }
  EXPECT_EQ(if_nametoindex("nta0"), 0u);
}

TEST(EnteredNetns, RunsSetupEntersAndLeavesBeforeDeleting) {
  ASSERT_THAT(RequireRoot("netns_test"), IsOk());
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<EnteredNetns> ns,
        EnteredNetns::Create("nt",
                             "ip link add nta0 type veth peer name ntb0"));
    path = "/var/run/netns/" + ns->netns().name();
    EXPECT_NE(if_nametoindex("nta0"), 0u);
  }
  EXPECT_EQ(if_nametoindex("nta0"), 0u);
  EXPECT_FALSE(Exists(path)) << path << " outlived its EnteredNetns";
  // A failing setup is the error, naming the command; nothing is left.
  EXPECT_THAT(EnteredNetns::Create("nt", "ip link add nta0 type nosuchkind"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("nosuchkind")));
  EXPECT_EQ(if_nametoindex("nta0"), 0u);
}

TEST(PacketSocket, CarriesAFrameOverAVethAndMacOfReadsTheAddress) {
  ASSERT_THAT(RequireRoot("netns_test"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestNetns> ns, TestNetns::Create("nt"));
  ASSERT_THAT(ns->Run("ip link add nta0 address 02:00:00:00:0a:01 type veth "
                      "peer name ntb0 address 02:00:00:00:0b:01 && "
                      "ip link set nta0 up && ip link set ntb0 up"),
              IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScopedNetns> inside,
                       ScopedNetns::Enter(*ns));
  EXPECT_THAT(MacOf("ntb0"),
              IsOkAndHolds(std::array<uint8_t, 6>{2, 0, 0, 0, 0x0b, 1}));
  EXPECT_THAT(MacOf("nope0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope0\"")));
  EXPECT_THAT(PacketSocket::Open("nope0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope0\"")));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PacketSocket> a,
                       PacketSocket::Open("nta0"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PacketSocket> b,
                       PacketSocket::Open("ntb0"));
  // To ntb0's MAC, an experimental EtherType (0x88b5), a marker payload.
  std::vector<uint8_t> frame = {2,    0, 0,    0,    0x0b, 1,   2,   0,   0,  0,
                                0x0a, 1, 0x88, 0xb5, 'a',  'n', 'y', 'l', 'b'};
  frame.resize(60, 0);
  ASSERT_THAT(a->Send(frame), IsOk());
  // ntb0 may also see the kernel's own frames (IPv6 ND/MLD): skip them.
  std::optional<std::vector<uint8_t>> got;
  for (int i = 0; i < 20; ++i) {
    got = b->Receive(absl::Seconds(2));
    if (!got.has_value() || *got == frame) break;
  }
  ASSERT_TRUE(got.has_value()) << "the frame did not arrive on ntb0";
  EXPECT_EQ(*got, frame);
}

TEST(RunUnprivileged, RunsAsNobodyAndRequireRootSaysWhy) {
  ASSERT_THAT(RequireRoot("netns_test"), IsOk());
  EXPECT_THAT(RunUnprivileged([] { return absl::StrCat(geteuid()); }),
              IsOkAndHolds("65534"));
  EXPECT_THAT(RunUnprivileged(
                  [] { return RequireRoot("the widget tests").ToString(); }),
              IsOkAndHolds(AllOf(HasSubstr("FAILED_PRECONDITION"),
                                 HasSubstr("the widget tests need root"),
                                 HasSubstr("deploy/test.sh"))));
}

}  // namespace
}  // namespace anylb::netns_testing
