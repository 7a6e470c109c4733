// Vtysh: runs FRR's vtysh against one daemon, the only way lbnode talks to
// FRR. An interface so the Announcer's tests can stand in a fake; the real
// one (SubprocessVtysh) runs /usr/bin/vtysh (posix_spawn).
//
// Threading: SubprocessVtysh may be used from any thread; each Run spawns
// its own process (file descriptors of the caller are not inherited: they
// must be O_CLOEXEC, as the TUN device's is).

#ifndef ANYLB_ROUTING_ANNOUNCE_VTYSH_H_
#define ANYLB_ROUTING_ANNOUNCE_VTYSH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::routing::announce {

// Vtysh: see the file comment.
class Vtysh {
 public:
  virtual ~Vtysh() = default;
  // Run runs `commands` (one `-c` each) against `daemon` only ("bgpd") and
  // returns vtysh's output. A failure (vtysh exits non-zero, e.g. the
  // daemon is not running or a command is refused) is an error whose
  // message quotes the command line and vtysh's output.
  virtual absl::StatusOr<std::string> Run(
      const std::string& daemon, const std::vector<std::string>& commands) = 0;
};

// SubprocessVtyshOptions: where vtysh is and how it reaches the daemons.
struct SubprocessVtyshOptions {
  std::string binary = "/usr/bin/vtysh";
  std::string vty_socket;  // vtysh --vty_socket; empty: vtysh's default.
  absl::Duration timeout = absl::Seconds(10);
};

// SubprocessVtysh runs the real vtysh: `vtysh [--vty_socket DIR] -d DAEMON
// -c ... -c ...`, output (stdout and stderr) captured, killed after
// `timeout` (UNAVAILABLE).
class SubprocessVtysh : public Vtysh {
 public:
  explicit SubprocessVtysh(SubprocessVtyshOptions options)
      : options_(std::move(options)) {}
  absl::StatusOr<std::string> Run(
      const std::string& daemon,
      const std::vector<std::string>& commands) override;

 private:
  SubprocessVtyshOptions options_;
};

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_VTYSH_H_
