// SqliteStore: the embedded default Store — one SQLite file (Debian's
// libsqlite3) in WAL mode, every commit one transaction.
//
// On disk: table `meta` (schema version, revision), tables `services`,
// `nodes` and `backend_health` (name → serialized protobuf, the revision
// that last wrote the row; schema 2 added backend_health, and a version-1
// file is upgraded in place when opened). A commit writes only the rows that
// changed plus the revision, inside BEGIN IMMEDIATE ... COMMIT, with
// synchronous=FULL: when Commit() returns OK the transaction is in the WAL on
// disk, so a kill -9 (or a power loss) afterwards loses nothing, and a crash
// during the commit leaves the previous revision whole (SQLite's atomic
// commit).
//
// One controller per file: Open() takes an exclusive lock (flock) on
// "<path>.lock" and fails with FAILED_PRECONDITION while another process
// holds it, so two controllers can never keep diverging copies in memory.
//
// Threading: see Store. The sqlite3 handle is used only under commit_mu_.

#ifndef ANYLB_CONTROLLER_STORE_SQLITE_STORE_H_
#define ANYLB_CONTROLLER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "controller/store/store.h"

struct sqlite3;

namespace anylb::controller {

struct SqliteStoreOptions {
  // The database file; created (with its directory's permissions) if absent.
  std::string path;
};

class SqliteStore final : public Store {
 public:
  // kSchemaVersion is the on-disk layout this code reads and writes.
  static constexpr int kSchemaVersion = 2;

  // Open opens or creates the store and loads its state. Errors name the
  // file: UNAVAILABLE (cannot open/create), FAILED_PRECONDITION (locked by
  // another controller, or written by a newer schema), DATA_LOSS (a row
  // that does not parse).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const SqliteStoreOptions& options);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override;

  std::shared_ptr<const StoreState> Current() const override;
  absl::StatusOr<CommitResult> Commit(Mutation mutation) override;
  std::shared_ptr<const StoreState> WaitForNewer(
      uint64_t revision, absl::Duration timeout) const override;

  const std::string& path() const { return path_; }

 private:
  SqliteStore(std::string path, sqlite3* db, int lock_fd);

  absl::Status Load();
  // Write stores the difference between current_ and `next` as revision
  // next.revision, in one transaction; false when there is none.
  absl::StatusOr<bool> Write(const StoreState& next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  absl::Status Exec(const char* sql);
  absl::Status Error(const std::string& doing) const;

  const std::string path_;
  sqlite3* const db_;
  const int lock_fd_;

  absl::Mutex commit_mu_;  // serializes commits and guards db_
  mutable absl::Mutex state_mu_;
  std::shared_ptr<const StoreState> current_ ABSL_GUARDED_BY(state_mu_);
};

}  // namespace anylb::controller

#endif  // ANYLB_CONTROLLER_STORE_SQLITE_STORE_H_
