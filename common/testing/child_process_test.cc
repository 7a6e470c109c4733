#include "common/testing/child_process.h"

#include <csignal>
#include <memory>

#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::process_testing {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

TEST(ChildProcess, CollectsOutputAndExitCode) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> child,
      ChildProcess::Start(
          {"/bin/sh", "-c", "echo ready; echo oops >&2; exec sleep 30"}));
  ASSERT_TRUE(child->ReadUntil("ready\noops", absl::Seconds(10)))
      << child->output();
  // SIGTERM ends the sleep: 128 + 15.
  EXPECT_EQ(child->Stop(absl::Seconds(10)), 128 + SIGTERM);
}

TEST(ChildProcess, StopReturnsTheExitCodeOfAProcessThatHandlesSigterm) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> child,
      ChildProcess::Start({"/bin/sh", "-c",
                           "trap 'echo bye; exit 3' TERM; echo ready; "
                           "while :; do sleep 0.05; done"}));
  ASSERT_TRUE(child->ReadUntil("ready", absl::Seconds(10)));
  EXPECT_EQ(child->Stop(absl::Seconds(10)), 3);
  EXPECT_THAT(child->output(), HasSubstr("bye"));
}

TEST(ChildProcess, ReadUntilIsFalseWhenTheOutputEndsWithoutTheText) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child,
                       ChildProcess::Start({"/bin/echo", "something else"}));
  EXPECT_FALSE(child->ReadUntil("ready", absl::Seconds(10)));
  EXPECT_EQ(child->Wait(absl::Seconds(10)), 0);
  EXPECT_EQ(child->output(), "something else\n");
}

TEST(ChildProcess, AMissingBinaryExits127AndNoArgvIsAnError) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child,
                       ChildProcess::Start({"/nonexistent/binary"}));
  EXPECT_EQ(child->Wait(absl::Seconds(10)), 127);
  EXPECT_THAT(ChildProcess::Start({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("argv")));
}

}  // namespace
}  // namespace anylb::process_testing
