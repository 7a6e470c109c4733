// ChildProcess: a test's helper process (a binary under test, started
// directly or through `ip netns exec`) with its stdout and stderr collected.
//
//   ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Start({path, "--flag"}));
//   ASSERT_TRUE(child->ReadUntil("ready", absl::Seconds(10)))
//       << child->output();
//   EXPECT_EQ(child->Stop(absl::Seconds(10)), 0) << child->output();
//
// Ownership: the object owns the process; destroying it while the process
// runs sends SIGTERM, then SIGKILL after 5 s, and reaps it, also when a test
// fails half-way. Test-only; use from one thread.

#ifndef ANYLB_COMMON_TESTING_CHILD_PROCESS_H_
#define ANYLB_COMMON_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::process_testing {

class ChildProcess {
 public:
  // Start runs argv[0] (a path, not searched on PATH) with `argv`, its
  // stdout and stderr on one pipe.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv);

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // ReadUntil reads output until it contains `text`; false when `timeout`
  // passes or the output ends first.
  bool ReadUntil(const std::string& text, absl::Duration timeout);

  // Signal sends `signal` to the process (nothing once it is reaped).
  void Signal(int signal) const;

  // Wait reads the rest of the output and reaps the process: its exit code,
  // 128 + the signal if a signal ended it, -1 if it is still running after
  // `timeout` (the destructor then stops it).
  int Wait(absl::Duration timeout);

  // Stop sends SIGTERM, then Wait(timeout).
  int Stop(absl::Duration timeout);

  // output is everything read so far.
  const std::string& output() const { return output_; }

 private:
  ChildProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  // ReadSome appends what arrives within `timeout`; false on timeout or EOF.
  bool ReadSome(absl::Duration timeout);
  // Reap waits up to `timeout` for the exit; false if still running.
  bool Reap(absl::Duration timeout);

  pid_t pid_;
  int fd_;
  int exit_status_ = -1;
  std::string output_;
};

}  // namespace anylb::process_testing

#endif  // ANYLB_COMMON_TESTING_CHILD_PROCESS_H_
