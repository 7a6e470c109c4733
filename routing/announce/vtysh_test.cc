#include "routing/announce/vtysh.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::routing::announce {
namespace {

using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// FakeVtysh writes a stand-in for vtysh that echoes its arguments, fails on
// "fail" and hangs on "hang".
std::string FakeVtysh() {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path =
      absl::StrCat(dir != nullptr ? dir : "/tmp", "/vtysh-", getpid(), ".sh");
  std::ofstream out(path);
  out << "#!/bin/sh\n"
         "echo \"args: $*\"\n"
         "case \"$*\" in\n"
         "  *fail*) echo '% Unknown command: fail' >&2; exit 1 ;;\n"
         "  *hang*) exec sleep 30 ;;\n"
         "esac\n";
  out.close();
  chmod(path.c_str(), 0755);
  return path;
}

TEST(SubprocessVtysh, PassesSocketDaemonAndCommandsAndReturnsTheOutput) {
  SubprocessVtysh vtysh({.binary = FakeVtysh(), .vty_socket = "/run/x"});
  EXPECT_THAT(vtysh.Run("bgpd", {"configure terminal", "route-map A permit 1"}),
              IsOkAndHolds("args: --vty_socket /run/x -d bgpd -c configure "
                           "terminal -c route-map A permit 1\n"));
  SubprocessVtysh default_socket({.binary = FakeVtysh()});
  EXPECT_THAT(default_socket.Run("ospfd", {"show running-config"}),
              IsOkAndHolds("args: -d ospfd -c show running-config\n"));
}

TEST(SubprocessVtysh, AFailureQuotesTheCommandLineAndTheOutput) {
  SubprocessVtysh vtysh({.binary = FakeVtysh()});
  EXPECT_THAT(vtysh.Run("bgpd", {"fail now"}),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("-d bgpd -c 'fail now'"),
                             HasSubstr("exit status 1"),
                             HasSubstr("% Unknown command: fail"))));
}

TEST(SubprocessVtysh, AHangingVtyshIsKilledAfterTheTimeout) {
  SubprocessVtysh vtysh(
      {.binary = FakeVtysh(), .timeout = absl::Milliseconds(300)});
  EXPECT_THAT(vtysh.Run("bgpd", {"hang"}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("no answer within 300ms (killed)")));
}

TEST(SubprocessVtysh, AMissingBinaryIsNotFoundAndSaysWhatToDo) {
  SubprocessVtysh vtysh({.binary = "/nonexistent/vtysh"});
  EXPECT_THAT(vtysh.Run("bgpd", {"show running-config"}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("cannot run /nonexistent/vtysh: No such file "
                                 "or directory (install FRR's vtysh or set "
                                 "--frr_vtysh)")));
}

}  // namespace
}  // namespace anylb::routing::announce
