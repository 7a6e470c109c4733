#include "common/log.h"

#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::log {
namespace {

using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// CapturedLog sends the log to a pipe for the test's lifetime.
class CapturedLog {
 public:
  CapturedLog() {
    EXPECT_EQ(pipe(fds_), 0);
    SetLogFd(fds_[1]);
  }
  ~CapturedLog() {
    SetLogFd(2);
    close(fds_[0]);
    close(fds_[1]);
    SetLogLevel(Level::kInfo);
  }
  std::string Read() {
    SetLogFd(2);
    close(fds_[1]);
    fds_[1] = -1;
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds_[0], buf, sizeof(buf))) > 0) out.append(buf, n);
    return out;
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(Log, LineHasTimeLevelFileAndMessage) {
  CapturedLog log;
  LB_LOG(kWarning) << "queue " << 3 << " stalled";
  std::string out = log.Read();
  EXPECT_THAT(out, MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z W "
                                "log_test\\.cc:[0-9]+\\] queue 3 stalled\n"));
}

TEST(Log, BelowLevelIsNotWrittenNorEvaluated) {
  CapturedLog log;
  SetLogLevel(Level::kWarning);
  int evaluated = 0;
  auto side_effect = [&] { return ++evaluated; };
  LB_LOG(kInfo) << "hidden " << side_effect();
  LB_LOG(kError) << "shown " << side_effect();
  std::string out = log.Read();
  EXPECT_EQ(evaluated, 1);
  EXPECT_THAT(out, HasSubstr("shown 1"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("hidden")));
}

TEST(Log, ConcurrentLinesNeverInterleave) {
  CapturedLog log;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 100; ++i) {
        LB_LOG(kInfo) << "thread " << t << " line " << i << " end";
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string out = log.Read();
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 400u);
  for (const std::string& line : lines) {
    EXPECT_THAT(line, MatchesRegex(".*\\] thread [0-3] line [0-9]+ end"));
  }
}

TEST(Log, ParseLevel) {
  EXPECT_THAT(ParseLogLevel("DEBUG"), IsOkAndHolds(Level::kDebug));
  EXPECT_THAT(ParseLogLevel("warn"), IsOkAndHolds(Level::kWarning));
  EXPECT_THAT(ParseLogLevel("error"), IsOkAndHolds(Level::kError));
  EXPECT_THAT(ParseLogLevel("verbose"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"verbose\" is not one of debug")));
  EXPECT_EQ(LogLevelName(Level::kInfo), "info");
}

}  // namespace
}  // namespace anylb::log
