#include "lbnode/daemon/signals.h"

#include <signal.h>
#include <unistd.h>

#include <thread>

#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace anylb::lbnode {
namespace {

TEST(SignalWatcher, EachSignalMapsToItsEvent) {
  ASSERT_OK_AND_ASSIGN(auto watcher, SignalWatcher::Create());
  struct Case {
    int signo;
    DaemonSignal expected;
  };
  for (const Case& c :
       {Case{SIGHUP, DaemonSignal::kReload}, Case{SIGUSR1, DaemonSignal::kDump},
        Case{SIGTERM, DaemonSignal::kStop},
        Case{SIGINT, DaemonSignal::kStop}}) {
    ASSERT_EQ(kill(getpid(), c.signo), 0);
    int got = 0;
    EXPECT_EQ(watcher->Wait(absl::Seconds(5), &got), c.expected)
        << "signal " << c.signo;
    EXPECT_EQ(got, c.signo);
  }
}

TEST(SignalWatcher, TimesOutWithNone) {
  ASSERT_OK_AND_ASSIGN(auto watcher, SignalWatcher::Create());
  EXPECT_EQ(watcher->Wait(absl::Milliseconds(10)), DaemonSignal::kNone);
}

TEST(SignalWatcher, SignalFromAnotherThreadReachesTheWatcher) {
  // Threads started after Create() inherit the blocked mask, so a signal
  // sent to the process waits in the signalfd rather than killing it.
  ASSERT_OK_AND_ASSIGN(auto watcher, SignalWatcher::Create());
  std::thread sender([] { kill(getpid(), SIGTERM); });
  EXPECT_EQ(watcher->Wait(absl::Seconds(5)), DaemonSignal::kStop);
  sender.join();
}

}  // namespace
}  // namespace anylb::lbnode
