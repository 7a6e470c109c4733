// Tests of ExecProber with real processes: the commands are /bin/sh scripts
// (the COMMAND is /bin/sh -c '...'; the prober itself runs no shell).

#include "lbnode/health/exec_prober.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::health {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A bound on waiting for a result that must come much sooner (not a speed
// assertion: only a hung prober reaches it).
constexpr absl::Duration kGuard = absl::Seconds(60);

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir =
      std::filesystem::path(base != nullptr ? base : "/tmp") /
      absl::StrCat(name, ".", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ProbeRequest ExecRequest(const std::vector<std::string>& argv,
                         bool dynamic_weight = false) {
  ProbeRequest request;
  for (const std::string& arg : argv)
    request.check.mutable_exec()->add_argv(arg);
  request.check.mutable_exec()->set_dynamic_weight(dynamic_weight);
  request.timeout = absl::Seconds(20);
  request.service = "web";
  request.backend = *Endpoint::Parse("192.0.2.10:80");
  request.target = *Endpoint::Parse("198.51.100.10:8080");
  return request;
}

ProbeRequest Script(const std::string& script, bool dynamic_weight = false) {
  return ExecRequest({"/bin/sh", "-c", script}, dynamic_weight);
}

ProbeResult Probe(ExecProber& prober, const ProbeRequest& request) {
  absl::Notification done;
  ProbeResult result;
  prober.Start(request, [&](const ProbeResult& r) {
    result = std::move(r);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kGuard)) << "no result";
  return result;
}

CommandResult RunToEnd(ExecProber& prober, CommandRequest request) {
  absl::Notification done;
  CommandResult result;
  prober.RunCommand(std::move(request), [&](CommandResult r) {
    result = std::move(r);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kGuard)) << "no result";
  return result;
}

// Alive is false when `pid` is gone or a zombie (dead, not yet reaped by
// whoever inherited it).
bool Alive(pid_t pid) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

TEST(ExecProber, CreateRejectsZeroProcesses) {
  EXPECT_THAT(
      ExecProber::Create(0),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_processes")));
}

TEST(ExecProber, ExitZeroPassesAndNonZeroFails) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  ProbeResult pass = Probe(*prober, ExecRequest({"/bin/true"}));
  EXPECT_TRUE(pass.passed) << pass.error;
  EXPECT_EQ(pass.error, "");
  EXPECT_FALSE(pass.dynamic_weight.has_value());

  ProbeResult fail = Probe(*prober, ExecRequest({"/bin/false"}));
  EXPECT_FALSE(fail.passed);
  EXPECT_EQ(fail.error, "exit status 1");

  // Without dynamic_weight every non-zero status fails, and the first line
  // the command printed is in the error.
  ProbeResult seven = Probe(*prober, Script("echo backend sad; echo more; "
                                            "exit 7"));
  EXPECT_FALSE(seven.passed);
  EXPECT_EQ(seven.error, "exit status 7: backend sad");
  EXPECT_FALSE(seven.dynamic_weight.has_value());
}

TEST(ExecProber, DynamicWeightIsStatusMinusTwo) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  struct Case {
    int status;
    bool passed;
    std::optional<uint32_t> weight;
  };
  for (const Case& c : std::vector<Case>{{0, true, std::nullopt},
                                         {1, false, std::nullopt},
                                         {2, true, 0},
                                         {7, true, 5},
                                         {255, true, 253}}) {
    SCOPED_TRACE(absl::StrCat("exit ", c.status));
    ProbeResult r =
        Probe(*prober, Script(absl::StrCat("exit ", c.status), true));
    EXPECT_EQ(r.passed, c.passed) << r.error;
    EXPECT_EQ(r.dynamic_weight, c.weight);
    if (!c.passed) {
      EXPECT_EQ(r.error, "exit status 1");
    }
  }
}

TEST(ExecProber, SignalFails) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  ProbeResult r = Probe(*prober, Script("kill -TERM $$", true));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error, "killed by SIGTERM");
  EXPECT_FALSE(r.dynamic_weight.has_value());
}

TEST(ExecProber, TimeoutKillsTheWholeProcessGroup) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  std::string dir = TempDir("exec_timeout");
  // The script forks a long sleep, records both pids, then waits for it.
  ProbeRequest request = Script(absl::StrCat(
      "/bin/sleep 1000 & echo $! > ", dir, "/child.tmp && mv ", dir,
      "/child.tmp ", dir, "/child; echo $$ > ", dir, "/parent.tmp && mv ", dir,
      "/parent.tmp ", dir, "/parent; wait"));
  request.timeout = absl::Seconds(1);
  ProbeResult r = Probe(*prober, request);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error, "timed out after 1s");
  EXPECT_GE(r.latency, absl::Seconds(1));

  int parent = 0;
  int child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(ReadFile(dir + "/parent"), &parent))
      << "the script did not start within its timeout";
  ASSERT_TRUE(absl::SimpleAtoi(ReadFile(dir + "/child"), &child));
  // The script was reaped by the prober before `done`.
  EXPECT_FALSE(Alive(parent));
  // The grandchild got SIGKILL with its group; whoever inherited it reaps
  // it in its own time, so wait (bounded) for the kernel to finish it off.
  absl::Time guard = absl::Now() + kGuard;
  while (Alive(child) && absl::Now() < guard) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(Alive(child))
      << "sleep 1000 (pid " << child << ") survived the timeout";
  if (Alive(child)) kill(child, SIGKILL);
}

TEST(ExecProber, EnvironmentIsMinimalPlusTheRequestsVariables) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  setenv("ANYLB_EXEC_TEST_SECRET", "leaked", 1);
  ProbeResult r =
      Probe(*prober,
            Script("echo \"$LB_SERVICE $LB_BACKEND_ADDRESS $LB_BACKEND_PORT "
                   "$LB_CHECK_ADDRESS $LB_CHECK_PORT $PATH "
                   "${ANYLB_EXEC_TEST_SECRET-unset} ${HOME-unset}\"; exit 1"));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error,
            "exit status 1: web 192.0.2.10 80 198.51.100.10 8080 "
            "/usr/sbin:/usr/bin:/sbin:/bin unset unset");
  unsetenv("ANYLB_EXEC_TEST_SECRET");
}

TEST(ExecProber, RelativeProgramIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  ProbeResult r = Probe(*prober, ExecRequest({"true"}));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error,
            "exec true: argv[0] must be an absolute path, e.g. "
            "/usr/local/bin/true");

  ProbeResult empty = Probe(*prober, ExecRequest({}));
  EXPECT_FALSE(empty.passed);
  EXPECT_THAT(empty.error, HasSubstr("empty command"));
}

TEST(ExecProber, MissingProgramFailsNamingIt) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  ProbeResult r = Probe(*prober, ExecRequest({"/nonexistent/anylb-check"}));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.error,
            "exec /nonexistent/anylb-check: No such file or directory");
}

TEST(ExecProber, NotAnExecCheckFails) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  ProbeRequest request;
  request.check.mutable_tcp();
  ProbeResult r = Probe(*prober, request);
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.error, HasSubstr("not an exec check"));
}

TEST(ExecProber, AtMostMaxProcessesRunAtOnce) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create(2));
  std::string dir = TempDir("exec_bound");
  // Each command marks itself running, sleeps, counts the running marks,
  // logs the count and unmarks itself.
  std::string script =
      absl::StrCat("touch ", dir, "/running.$$; /bin/sleep 0.2; ", "n=$(ls ",
                   dir, " | grep -c '^running'); ", "echo $n >> ", dir,
                   "/counts; rm ", dir, "/running.$$");
  constexpr int kCommands = 6;
  absl::Mutex mu;
  int finished = 0;
  int passed = 0;
  for (int i = 0; i < kCommands; ++i) {
    prober->Start(Script(script), [&](const ProbeResult& r) {
      absl::MutexLock lock(&mu);
      ++finished;
      if (r.passed) ++passed;
    });
  }
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(
        absl::Condition(
            +[](int* n) { return *n == kCommands; }, &finished),
        kGuard));
    EXPECT_EQ(passed, kCommands);
  }
  std::vector<std::string> counts =
      absl::StrSplit(ReadFile(dir + "/counts"), '\n', absl::SkipEmpty());
  ASSERT_EQ(counts.size(), kCommands);
  for (const std::string& count : counts) {
    int n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(count, &n)) << count;
    EXPECT_GE(n, 1);
    EXPECT_LE(n, 2) << "more than max_processes commands ran at once";
  }
}

TEST(ExecProber, RunCommandCapturesOutput) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  CommandRequest request;
  request.argv = {"/bin/sh", "-c", "echo out; echo err >&2; cat; exit 3"};
  CommandResult r = RunToEnd(*prober, request);
  EXPECT_EQ(r.exit_status, 3);
  EXPECT_EQ(r.error, "");
  // stdin is /dev/null: cat ends at once.
  EXPECT_EQ(r.output, "out\nerr\n");

  request.argv = {"/bin/sh", "-c",
                  "/usr/bin/head -c 100000 /dev/zero | /usr/bin/tr '\\0' x"};
  CommandResult big = RunToEnd(*prober, request);
  EXPECT_EQ(big.exit_status, 0) << big.error;
  EXPECT_EQ(big.output, std::string(4096, 'x'));

  request.argv = {"relative"};
  CommandResult refused = RunToEnd(*prober, request);
  EXPECT_EQ(refused.exit_status, -1);
  EXPECT_THAT(refused.error, HasSubstr("must be an absolute path"));

  // Nobody waits for this one: still runs, nothing breaks.
  request.argv = {"/bin/true"};
  prober->RunCommand(request);
}

TEST(ExecProber, EndlessOutputNeitherBlocksNorHoldsTheReaper) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
  CommandRequest endless;
  endless.argv = {"/usr/bin/yes"};
  endless.timeout = absl::Milliseconds(500);
  absl::Notification endless_done;
  CommandResult endless_result;
  prober->RunCommand(endless, [&](CommandResult r) {
    endless_result = std::move(r);
    endless_done.Notify();
  });
  // Another command completes while `yes` writes as fast as it can.
  CommandRequest other;
  other.argv = {"/bin/sh", "-c", "echo other"};
  CommandResult r = RunToEnd(*prober, other);
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.output, "other\n");

  ASSERT_TRUE(endless_done.WaitForNotificationWithTimeout(kGuard));
  EXPECT_EQ(endless_result.exit_status, -1);
  EXPECT_EQ(endless_result.error, "timed out after 500ms");
  std::string expected;
  while (expected.size() < 4096) expected += "y\n";
  EXPECT_EQ(endless_result.output, expected);
}

TEST(ExecProber, LeavesOtherChildrenAlone) {
  // A child of this process that is not the prober's: its exit status must
  // still be there for us after the prober has run commands.
  pid_t other = -1;
  char arg0[] = "/bin/sh";
  char arg1[] = "-c";
  char arg2[] = "exit 42";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  ASSERT_EQ(posix_spawn(&other, "/bin/sh", nullptr, nullptr, argv, environ), 0);
  {
    ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create());
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(Probe(*prober, ExecRequest({"/bin/true"})).passed);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(other, &status, 0), other);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42);
}

TEST(ExecProber, DestructorKillsRunningAndCompletesEverything) {
  std::string dir = TempDir("exec_stop");
  absl::Mutex mu;
  std::vector<std::string> errors;
  {
    ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create(1));
    // The first runs (and records its pid), the other two wait in the queue.
    ProbeRequest request =
        Script(absl::StrCat("echo $$ > ", dir, "/pid.tmp && mv ", dir,
                            "/pid.tmp ", dir, "/pid; exec /bin/sleep 1000"));
    request.timeout = absl::Seconds(600);
    for (int i = 0; i < 3; ++i) {
      prober->Start(request, [&](const ProbeResult& r) {
        absl::MutexLock lock(&mu);
        errors.push_back(r.passed ? "passed" : r.error);
      });
    }
    absl::Time guard = absl::Now() + kGuard;
    while (!std::filesystem::exists(dir + "/pid") && absl::Now() < guard) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_TRUE(std::filesystem::exists(dir + "/pid"));
  }
  absl::MutexLock lock(&mu);
  EXPECT_EQ(errors, std::vector<std::string>(3, "checker stopped"));
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(ReadFile(dir + "/pid"), &pid));
  EXPECT_FALSE(Alive(pid));
}

TEST(ExecProber, DoneMayRunAnotherCommand) {
  // As the monitor does: a probe's result starts a notify command.
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create(1));
  absl::Notification notified;
  CommandResult notify_result;
  prober->Start(ExecRequest({"/bin/false"}), [&](const ProbeResult& r) {
    CommandRequest notify;
    notify.argv = {"/bin/sh", "-c", "echo \"$LB_STATE\""};
    notify.env = {{"LB_STATE", r.passed ? "up" : "down"}};
    prober->RunCommand(notify, [&](CommandResult c) {
      notify_result = std::move(c);
      notified.Notify();
    });
  });
  ASSERT_TRUE(notified.WaitForNotificationWithTimeout(kGuard));
  EXPECT_EQ(notify_result.exit_status, 0) << notify_result.error;
  EXPECT_EQ(notify_result.output, "down\n");
}

TEST(ExecProber, CommandStartedWhileStoppingIsCompletedAsStopped) {
  absl::Mutex mu;
  std::vector<std::string> errors;
  {
    ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create(1));
    ExecProber* raw = prober.get();
    ProbeRequest request = Script("exec /bin/sleep 1000");
    request.timeout = absl::Seconds(600);
    prober->Start(request, [&, raw](const ProbeResult& r) {
      {
        absl::MutexLock lock(&mu);
        errors.push_back(r.error);
      }
      CommandRequest notify;
      notify.argv = {"/bin/true"};
      raw->RunCommand(notify, [&](const CommandResult& c) {
        absl::MutexLock lock(&mu);
        errors.push_back(c.error);
      });
    });
  }
  absl::MutexLock lock(&mu);
  EXPECT_EQ(errors, std::vector<std::string>(2, "checker stopped"));
}

TEST(ExecProber, QueuedCommandPastItsDeadlineTimesOutWithoutRunning) {
  ASSERT_OK_AND_ASSIGN(auto prober, ExecProber::Create(1));
  std::string dir = TempDir("exec_queue");
  ProbeRequest slow = Script("exec /bin/sleep 1000");
  slow.timeout = absl::Seconds(2);
  ProbeRequest queued = Script(absl::StrCat("touch ", dir, "/ran"));
  queued.timeout = absl::Milliseconds(500);
  absl::Notification slow_done;
  prober->Start(slow, [&](const ProbeResult&) { slow_done.Notify(); });
  ProbeResult r = Probe(*prober, queued);
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.error, StartsWith("timed out after 500ms waiting to start"));
  ASSERT_TRUE(slow_done.WaitForNotificationWithTimeout(kGuard));
  EXPECT_FALSE(std::filesystem::exists(dir + "/ran"));
}

}  // namespace
}  // namespace anylb::health
