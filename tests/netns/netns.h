// Network namespaces for integration tests and benchmarks (test-only).
//
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> ns, Netns::Create("client"));
//   ASSERT_OK_AND_ASSIGN(std::string out, ns->Run("ip -br addr"));
//   ASSERT_THAT(ns->RunInThread([&]() -> absl::Status {
//     ... sockets made here belong to `ns` ...
//   }), IsOk());
//
// Ownership: a Netns owns its namespace. Its destructor kills every process
// still inside (`ip netns pids`), reaps the ones that are our children, and
// deletes the namespace, so a test that fails half-way (an ASSERT returning,
// an exception unwinding) leaves nothing behind. Names are
// "lb-<tag>-<pid>-<n>": unique per process and per call, so parallel tests
// never collide and a leftover namespace names the process that made it.
//
// A test killed outright (a Bazel timeout's SIGKILL) runs no destructor; the
// first Create() of every process therefore removes namespaces left by
// processes that no longer exist (ReapStaleNamespaces).
//
// Threads: Run() and the other methods may be called from any thread;
// RunInThread() runs its function on a new thread that entered the
// namespace with setns(2) (the calling thread never changes namespace).
// Needs root (CAP_SYS_ADMIN); without it Create() fails with
// PERMISSION_DENIED and says so.

#ifndef ANYLB_TESTS_NETNS_NETNS_H_
#define ANYLB_TESTS_NETNS_NETNS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace anylb::lab {

// RunCommand runs `command` with /bin/sh in the caller's namespace and
// returns its stdout. A nonzero exit is an INTERNAL error quoting the command,
// its exit status and its stderr (and stdout).
absl::StatusOr<std::string> RunCommand(std::string_view command);

// ShellQuote returns `text` in single quotes for /bin/sh.
std::string ShellQuote(std::string_view text);

// EnterNetns moves the calling thread into the namespace named `name` (as
// listed by `ip netns`). Meant for threads that live there for good; prefer
// Netns::RunInThread().
absl::Status EnterNetns(std::string_view name);

// ReapStaleNamespaces deletes the namespaces named like Netns's
// ("lb-<tag>-<pid>-<n>") whose creating process is gone, killing what still
// runs inside. Namespaces of live processes are left alone. Netns::Create()
// calls it once per process.
void ReapStaleNamespaces();

// Process is a child process started by Netns::Spawn(). Its destructor stops
// it (SIGTERM, then SIGKILL after a grace period) and reaps it.
class Process {
 public:
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }

  // Running returns whether the process has not exited yet (reaping it if it
  // has; exit_status() then holds its waitpid status).
  bool Running();
  int exit_status() const { return exit_status_; }

  // Stop sends `signal`, waits up to `grace_ms` for the exit, then SIGKILLs.
  // Returns the waitpid status.
  int Stop(int signal, int grace_ms);

 private:
  friend class Netns;
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool exited_ = false;
  int exit_status_ = 0;
};

// Netns: see the file comment.
class Netns {
 public:
  // Create makes namespace "lb-<tag>-<pid>-<n>" with its loopback up. `tag`
  // says what it is for ("client", "rs1"); keep it short (≤ 12 characters).
  static absl::StatusOr<std::unique_ptr<Netns>> Create(std::string_view tag);

  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  const std::string& name() const { return name_; }

  // Run runs a /bin/sh command line inside the namespace (`ip netns exec`;
  // that gives it a private mount namespace with this namespace's /sys) and
  // returns its stdout. Errors quote the namespace, the command and stderr.
  absl::StatusOr<std::string> Run(std::string_view command) const;

  // RunInThread runs `fn` on a new thread that entered this namespace and
  // waits for it. Sockets `fn` creates belong to the namespace (and stay in
  // it when used later from other threads).
  absl::Status RunInThread(const std::function<absl::Status()>& fn) const;

  // Spawn starts `argv` inside the namespace as a child process whose stdout
  // and stderr go to `output_path` (appended). argv[0] is looked up in PATH
  // (with /usr/sbin and /sbin added).
  absl::StatusOr<std::unique_ptr<Process>> Spawn(
      const std::vector<std::string>& argv,
      const std::string& output_path) const;

  // Sysctl sets `key` (dotted, "net.ipv4.ip_forward") to `value` here.
  absl::Status Sysctl(std::string_view key, std::string_view value) const;

  // Pids returns the pids of the processes inside the namespace.
  absl::StatusOr<std::vector<pid_t>> Pids() const;

  // MountBpffsThen returns `command` prefixed so that it runs with bpffs
  // mounted at /sys/fs/bpf: `ip netns exec` mounts a fresh /sys without it,
  // and the mount lives only as long as that one command's mount namespace.
  // Threads from RunInThread() see the host's /sys/fs/bpf and need nothing.
  static std::string MountBpffsThen(std::string_view command);

 private:
  explicit Netns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

}  // namespace anylb::lab

#endif  // ANYLB_TESTS_NETNS_NETNS_H_
