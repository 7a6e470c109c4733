// SnapshotCache: the last lb.v1.ConfigSnapshot this node APPLIED, kept in
// one file so that lbnode can start forwarding with it when the controller
// is unreachable at start (DESIGN.md: nodes keep the last applied config on
// disk).
//
// File format: the 8-byte magic "ANYLBSC1", the payload length (8 bytes,
// little endian), the FNV-1a 64 checksum of the payload (8 bytes, little
// endian), then the payload (the binary ConfigSnapshot). The checksum
// catches truncation and bit rot that a protobuf parse would accept.
//
// Write is atomic: the bytes go to "<path>.tmp.<pid>", which is fsynced and
// renamed over the path, then the directory is fsynced; a crash leaves the
// old file or the new one, never a mix.
//
// Threading: no state besides the path; Write and Read may run on any
// thread, but two concurrent Writes to one path are the caller's problem
// (ControllerClient writes from its one watch thread).

#ifndef ANYLB_LBNODE_AGENT_SNAPSHOT_CACHE_H_
#define ANYLB_LBNODE_AGENT_SNAPSHOT_CACHE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lb/v1/config.pb.h"

namespace anylb::agent {

class SnapshotCache {
 public:
  explicit SnapshotCache(std::string path) : path_(std::move(path)) {}

  // Write replaces the cached snapshot with `snapshot` atomically (see the
  // file comment). Errors name the file and the failing step.
  absl::Status Write(const lb::v1::ConfigSnapshot& snapshot) const;

  // Read returns the cached snapshot: NOT_FOUND when there is no file,
  // DATA_LOSS when it is corrupt (bad magic, length, checksum or payload),
  // or the errno's code when it cannot be read. Callers report the error and
  // go on without a cache: a bad cache is never fatal.
  absl::StatusOr<lb::v1::ConfigSnapshot> Read() const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace anylb::agent

#endif  // ANYLB_LBNODE_AGENT_SNAPSHOT_CACHE_H_
