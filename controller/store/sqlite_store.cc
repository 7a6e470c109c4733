#include "controller/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace anylb::controller {
namespace {

// Serialize is deterministic, so equal messages give equal bytes and the
// commit's diff can compare bytes.
std::string Serialize(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS services (
  name     TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  body     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
  name     TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  body     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS backend_health (
  name     TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  body     BLOB NOT NULL
);
)sql";

// Statement: a prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// Diff lists the names whose serialized value differs (or is new) in `next`
// and the names that are gone.
template <typename Message>
void Diff(const std::map<std::string, Message>& before,
          const std::map<std::string, Message>& after,
          std::vector<std::pair<std::string, std::string>>& upserts,
          std::vector<std::string>& deletes) {
  for (const auto& [name, message] : after) {
    std::string body = Serialize(message);
    auto it = before.find(name);
    if (it == before.end() || Serialize(it->second) != body) {
      upserts.emplace_back(name, std::move(body));
    }
  }
  for (const auto& [name, message] : before) {
    if (!after.contains(name)) deletes.push_back(name);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const SqliteStoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError(
        "store path is empty; give the SQLite file (e.g. "
        "/var/lib/anylb/controller.db)");
  }
  const std::string lock_path = options.path + ".lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "opening store lock \"", lock_path, "\": ", std::strerror(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("store \"", options.path,
                       "\" is in use by another controller (lock \"", lock_path,
                       "\" held); stop it or give this one its own --store"));
    }
    return absl::UnavailableError(
        absl::StrCat("locking \"", lock_path, "\": ", std::strerror(err)));
  }

  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      options.path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string message =
        db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    close(lock_fd);
    return absl::UnavailableError(
        absl::StrCat("opening store \"", options.path, "\": ", message));
  }
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(options.path, db, lock_fd));
  RETURN_IF_ERROR(store->Load());
  return store;
}

SqliteStore::SqliteStore(std::string path, sqlite3* db, int lock_fd)
    : path_(std::move(path)),
      db_(db),
      lock_fd_(lock_fd),
      current_(std::make_shared<const StoreState>()) {}

SqliteStore::~SqliteStore() {
  sqlite3_close(db_);
  close(lock_fd_);  // releases the flock
}

absl::Status SqliteStore::Error(const std::string& doing) const {
  return absl::UnavailableError(absl::StrCat("store \"", path_, "\": ", doing,
                                             ": ", sqlite3_errmsg(db_)));
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message != nullptr ? message : "unknown error";
    sqlite3_free(message);
    return absl::UnavailableError(
        absl::StrCat("store \"", path_, "\": ", text));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Load() {
  absl::MutexLock commit_lock(&commit_mu_);
  // Another writer may hold the database briefly (e.g. an operator's
  // sqlite3 shell reading it): wait rather than fail at once.
  sqlite3_busy_timeout(db_, 5000);
  {
    Statement wal(db_, "PRAGMA journal_mode=WAL");
    if (!wal.ok() || sqlite3_step(wal.get()) != SQLITE_ROW) {
      return Error("switching to WAL mode");
    }
    const char* mode =
        reinterpret_cast<const char*>(sqlite3_column_text(wal.get(), 0));
    if (mode == nullptr || std::string(mode) != "wal") {
      return absl::UnavailableError(absl::StrCat(
          "store \"", path_, "\": WAL mode refused (journal mode \"",
          mode != nullptr ? mode : "?",
          "\"); is the file on a filesystem without shared memory?"));
    }
  }
  // FULL: the WAL is synced at every commit, so an acknowledged commit
  // survives power loss too (NORMAL would only survive a process crash).
  RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto rollback = absl::MakeCleanup([this] { Exec("ROLLBACK").IgnoreError(); });
  RETURN_IF_ERROR(Exec(kSchema));

  auto state = std::make_shared<StoreState>();
  int64_t schema = -1;
  {
    Statement meta(db_, "SELECT key, value FROM meta");
    if (!meta.ok()) return Error("reading meta");
    int rc;
    while ((rc = sqlite3_step(meta.get())) == SQLITE_ROW) {
      const std::string key =
          reinterpret_cast<const char*>(sqlite3_column_text(meta.get(), 0));
      const int64_t value = sqlite3_column_int64(meta.get(), 1);
      if (key == "schema") schema = value;
      if (key == "revision") state->revision = static_cast<uint64_t>(value);
    }
    if (rc != SQLITE_DONE) return Error("reading meta");
  }
  if (schema > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("store \"", path_, "\" has schema version ", schema,
                     "; this controller reads version ", kSchemaVersion,
                     ": run a newer controller"));
  }
  if (schema < 0) {
    Statement init(db_,
                   "INSERT INTO meta(key, value) VALUES ('schema', ?), "
                   "('revision', 0)");
    if (!init.ok()) return Error("initialising meta");
    sqlite3_bind_int(init.get(), 1, kSchemaVersion);
    if (sqlite3_step(init.get()) != SQLITE_DONE) {
      return Error("initialising meta");
    }
  } else if (schema < kSchemaVersion) {
    // Version 1 had no backend_health table; kSchema just made it.
    Statement upgrade(db_, "UPDATE meta SET value = ? WHERE key = 'schema'");
    if (!upgrade.ok()) return Error("upgrading the schema");
    sqlite3_bind_int(upgrade.get(), 1, kSchemaVersion);
    if (sqlite3_step(upgrade.get()) != SQLITE_DONE) {
      return Error("upgrading the schema");
    }
  }

  auto load_table = [&](const char* table, auto& into) -> absl::Status {
    Statement rows(db_, absl::StrCat("SELECT name, body FROM ", table).c_str());
    if (!rows.ok()) return Error(absl::StrCat("reading ", table));
    int rc;
    while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
      const std::string name =
          reinterpret_cast<const char*>(sqlite3_column_text(rows.get(), 0));
      const void* body = sqlite3_column_blob(rows.get(), 1);
      const int size = sqlite3_column_bytes(rows.get(), 1);
      auto& message = into[name];
      if (!message.ParseFromArray(body, size)) {
        return absl::DataLossError(
            absl::StrCat("store \"", path_, "\": row \"", name, "\" of table ",
                         table, " does not parse as ", message.GetTypeName(),
                         "; restore the file from a backup"));
      }
    }
    if (rc != SQLITE_DONE) return Error(absl::StrCat("reading ", table));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(load_table("services", state->services));
  RETURN_IF_ERROR(load_table("nodes", state->nodes));
  RETURN_IF_ERROR(load_table("backend_health", state->backend_health));

  std::move(rollback).Cancel();
  RETURN_IF_ERROR(Exec("COMMIT"));
  absl::MutexLock state_lock(&state_mu_);
  current_ = std::move(state);
  return absl::OkStatus();
}

std::shared_ptr<const StoreState> SqliteStore::Current() const {
  absl::MutexLock lock(&state_mu_);
  return current_;
}

std::shared_ptr<const StoreState> SqliteStore::WaitForNewer(
    uint64_t revision, absl::Duration timeout) const {
  absl::MutexLock lock(&state_mu_);
  auto newer = [this, revision]() ABSL_SHARED_LOCKS_REQUIRED(state_mu_) {
    return current_->revision > revision;
  };
  state_mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
  return current_;
}

absl::StatusOr<CommitResult> SqliteStore::Commit(Mutation mutation) {
  absl::MutexLock commit_lock(&commit_mu_);
  std::shared_ptr<const StoreState> current = Current();
  auto next = std::make_shared<StoreState>(*current);
  RETURN_IF_ERROR(mutation(*next));
  next->revision = current->revision + 1;
  ASSIGN_OR_RETURN(const bool changed, Write(*next));
  if (!changed) return CommitResult{current, false};
  absl::MutexLock state_lock(&state_mu_);
  current_ = next;
  return CommitResult{std::move(next), true};
}

absl::StatusOr<bool> SqliteStore::Write(const StoreState& next) {
  std::shared_ptr<const StoreState> current = Current();
  std::vector<std::pair<std::string, std::string>> service_upserts;
  std::vector<std::string> service_deletes;
  std::vector<std::pair<std::string, std::string>> node_upserts;
  std::vector<std::string> node_deletes;
  Diff(current->services, next.services, service_upserts, service_deletes);
  Diff(current->nodes, next.nodes, node_upserts, node_deletes);
  std::vector<std::pair<std::string, std::string>> health_upserts;
  std::vector<std::string> health_deletes;
  Diff(current->backend_health, next.backend_health, health_upserts,
       health_deletes);
  if (service_upserts.empty() && service_deletes.empty() &&
      node_upserts.empty() && node_deletes.empty() && health_upserts.empty() &&
      health_deletes.empty()) {
    return false;
  }

  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto rollback = absl::MakeCleanup([this] { Exec("ROLLBACK").IgnoreError(); });
  const auto revision = static_cast<int64_t>(next.revision);
  auto write_table = [&](const char* table, const auto& upserts,
                         const auto& deletes) -> absl::Status {
    Statement upsert(
        db_, absl::StrCat("INSERT INTO ", table,
                          "(name, revision, body) VALUES (?, ?, ?) "
                          "ON CONFLICT(name) DO UPDATE SET "
                          "revision = excluded.revision, body = excluded.body")
                 .c_str());
    if (!upsert.ok()) return Error(absl::StrCat("preparing ", table));
    for (const auto& [name, body] : upserts) {
      sqlite3_reset(upsert.get());
      sqlite3_bind_text(upsert.get(), 1, name.data(),
                        static_cast<int>(name.size()), SQLITE_STATIC);
      sqlite3_bind_int64(upsert.get(), 2, revision);
      sqlite3_bind_blob(upsert.get(), 3, body.data(),
                        static_cast<int>(body.size()), SQLITE_STATIC);
      if (sqlite3_step(upsert.get()) != SQLITE_DONE) {
        return Error(absl::StrCat("writing ", table, " row \"", name, "\""));
      }
    }
    Statement remove(
        db_, absl::StrCat("DELETE FROM ", table, " WHERE name = ?").c_str());
    if (!remove.ok()) return Error(absl::StrCat("preparing ", table));
    for (const std::string& name : deletes) {
      sqlite3_reset(remove.get());
      sqlite3_bind_text(remove.get(), 1, name.data(),
                        static_cast<int>(name.size()), SQLITE_STATIC);
      if (sqlite3_step(remove.get()) != SQLITE_DONE) {
        return Error(absl::StrCat("deleting ", table, " row \"", name, "\""));
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(write_table("services", service_upserts, service_deletes));
  RETURN_IF_ERROR(write_table("nodes", node_upserts, node_deletes));
  RETURN_IF_ERROR(
      write_table("backend_health", health_upserts, health_deletes));
  {
    Statement bump(db_, "UPDATE meta SET value = ? WHERE key = 'revision'");
    if (!bump.ok()) return Error("preparing the revision update");
    sqlite3_bind_int64(bump.get(), 1, revision);
    if (sqlite3_step(bump.get()) != SQLITE_DONE) {
      return Error("writing the revision");
    }
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Error("committing");
  }
  std::move(rollback).Cancel();
  return true;
}

}  // namespace anylb::controller
