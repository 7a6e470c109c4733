// Store: the controller's durable state — services, node settings and the
// revision — behind one interface, so the embedded SQLite store and a later
// etcd store are interchangeable.
//
// Model. The whole state at one revision is a StoreState, immutable once
// published and shared by pointer: readers (RPC handlers, WatchConfig
// streams) take Current() and never lock again. Every change is a Commit():
// a mutation edits a private copy of the current state; if it returns OK and
// changed something, the store writes the difference in one transaction,
// the revision goes up by exactly one, and only then is the new state
// published. If the mutation fails, or the write fails, nothing changes —
// neither on disk nor in memory. A mutation that changes nothing commits
// nothing and keeps the revision.
//
// Threading: all methods are thread-safe. Commits are serialized; Current()
// and WaitForNewer() never wait for a commit's disk write except to see its
// result.

#ifndef ANYLB_CONTROLLER_STORE_STORE_H_
#define ANYLB_CONTROLLER_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lb/v1/config.pb.h"
#include "lb/v1/node.pb.h"
#include "lb/v1/service.pb.h"

namespace anylb::controller {

// StoreState is everything the store holds at one revision.
struct StoreState {
  // 0 for an empty, never-written store; +1 per committed change.
  uint64_t revision = 0;
  // Services by name (Service.name is unique and never empty in the store).
  std::map<std::string, lb::v1::Service> services;
  // Node settings by node name.
  std::map<std::string, lb::v1::NodeSettings> nodes;
  // The fleet's health verdicts that differ from the default (DOWN, or a
  // dynamic weight), by BackendHealthName(backend). Each names a real
  // server of `services` (Validate checks it), so every node receives the
  // same verdicts with the services at the same revision.
  std::map<std::string, lb::v1::BackendHealth> backend_health;
};

// BackendHealthName: the key of `backend` in StoreState::backend_health,
// "web|198.51.100.2|80" (the address in canonical text).
inline std::string BackendHealthName(const lb::v1::BackendRef& backend) {
  return absl::StrCat(backend.service_name(), "|", backend.address(), "|",
                      backend.port());
}

// Mutation edits `state` (a copy of the current state; its revision field is
// ignored). Returning an error aborts the commit: nothing is stored.
using Mutation = absl::FunctionRef<absl::Status(StoreState& state)>;

// CommitResult: the state after the commit (the unchanged current state
// when the mutation changed nothing).
struct CommitResult {
  std::shared_ptr<const StoreState> state;
  bool changed = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // Current is the latest committed state; never null.
  virtual std::shared_ptr<const StoreState> Current() const = 0;

  // Commit runs `mutation` on a copy of the current state and stores the
  // result as the next revision (see the file comment). Errors: the
  // mutation's own, or the store's (UNAVAILABLE for I/O trouble, naming the
  // store's file). Acknowledged (OK) commits survive a crash of the process
  // at any later moment.
  virtual absl::StatusOr<CommitResult> Commit(Mutation mutation) = 0;

  // WaitForNewer returns the current state as soon as its revision is
  // greater than `revision`, or the current state when `timeout` passes.
  virtual std::shared_ptr<const StoreState> WaitForNewer(
      uint64_t revision, absl::Duration timeout) const = 0;
};

}  // namespace anylb::controller

#endif  // ANYLB_CONTROLLER_STORE_STORE_H_
