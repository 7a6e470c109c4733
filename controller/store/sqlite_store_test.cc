#include "controller/store/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/child_process.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::controller {
namespace {

using ::anylb::process_testing::ChildProcess;
using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/store-", getpid(), "-",
                        counter_++);
    ASSERT_EQ(system(absl::StrCat("mkdir -p ", dir_).c_str()), 0);
    path_ = dir_ + "/controller.db";
  }
  void TearDown() override { system(absl::StrCat("rm -rf ", dir_).c_str()); }

  std::unique_ptr<SqliteStore> OpenOrDie() {
    auto store = SqliteStore::Open({.path = path_});
    EXPECT_THAT(store.status(), IsOk());
    return store.ok() ? std::move(*store) : nullptr;
  }

  // RawExec runs SQL on the file directly (a second writer, or damage).
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error),
              SQLITE_OK)
        << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  static inline int counter_ = 0;
  std::string dir_;
  std::string path_;
};

absl::Status AddService(StoreState& state, const std::string& name,
                        uint32_t port) {
  lb::v1::Service& service = state.services[name];
  service.set_name(name);
  service.set_vip("192.0.2.10");
  service.set_port(port);
  return absl::OkStatus();
}

TEST_F(SqliteStoreTest, NewStoreIsEmptyAtRevisionZero) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Current()->revision, 0u);
  EXPECT_TRUE(store->Current()->services.empty());
  EXPECT_TRUE(store->Current()->nodes.empty());
}

TEST_F(SqliteStoreTest, EachCommitIsOneRevisionAndSurvivesReopen) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    auto first = store->Commit(
        [](StoreState& state) { return AddService(state, "web", 80); });
    ASSERT_THAT(first.status(), IsOk());
    EXPECT_TRUE(first->changed);
    EXPECT_EQ(first->state->revision, 1u);
    auto second = store->Commit([](StoreState& state) {
      RETURN_IF_ERROR(AddService(state, "dns", 53));
      state.nodes["lb1"].set_node_name("lb1");
      state.nodes["lb1"].set_weight(3);
      return absl::OkStatus();
    });
    ASSERT_THAT(second.status(), IsOk());
    EXPECT_EQ(second->state->revision, 2u);
    EXPECT_EQ(store->Current()->revision, 2u);
  }
  auto reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  auto state = reopened->Current();
  EXPECT_EQ(state->revision, 2u);
  ASSERT_EQ(state->services.size(), 2u);
  EXPECT_EQ(state->services.at("web").port(), 80u);
  EXPECT_EQ(state->services.at("dns").port(), 53u);
  EXPECT_EQ(state->nodes.at("lb1").weight(), 3u);
}

TEST_F(SqliteStoreTest, CommitWithoutChangeKeepsTheRevision) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store
                  ->Commit([](StoreState& state) {
                    return AddService(state, "web", 80);
                  })
                  .status(),
              IsOk());
  auto same = store->Commit(
      [](StoreState& state) { return AddService(state, "web", 80); });
  ASSERT_THAT(same.status(), IsOk());
  EXPECT_FALSE(same->changed);
  EXPECT_EQ(same->state->revision, 1u);
  EXPECT_EQ(store->Current()->revision, 1u);
}

TEST_F(SqliteStoreTest, FailedMutationStoresNothing) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store
                  ->Commit([](StoreState& state) {
                    return AddService(state, "web", 80);
                  })
                  .status(),
              IsOk());
  auto failed = store->Commit([](StoreState& state) {
    AddService(state, "web", 8080).IgnoreError();  // a half-done edit ...
    state.services.erase("dns");
    return absl::InvalidArgumentError("port 8080 is not allowed here");
  });
  EXPECT_THAT(failed.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(store->Current()->revision, 1u);
  EXPECT_EQ(store->Current()->services.at("web").port(), 80u);
  store.reset();
  auto reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Current()->revision, 1u);
  EXPECT_EQ(reopened->Current()->services.at("web").port(), 80u);
}

TEST_F(SqliteStoreTest, DeletionIsStored) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store
                    ->Commit([](StoreState& state) {
                      RETURN_IF_ERROR(AddService(state, "web", 80));
                      return AddService(state, "dns", 53);
                    })
                    .status(),
                IsOk());
    auto deleted = store->Commit([](StoreState& state) {
      state.services.erase("web");
      return absl::OkStatus();
    });
    ASSERT_THAT(deleted.status(), IsOk());
    EXPECT_EQ(deleted->state->revision, 2u);
  }
  auto reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Current()->services.size(), 1u);
  EXPECT_TRUE(reopened->Current()->services.contains("dns"));
}

TEST_F(SqliteStoreTest, OldStateStaysValidForItsReaders) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store
                  ->Commit([](StoreState& state) {
                    return AddService(state, "web", 80);
                  })
                  .status(),
              IsOk());
  std::shared_ptr<const StoreState> before = store->Current();
  ASSERT_THAT(store
                  ->Commit([](StoreState& state) {
                    state.services.clear();
                    return absl::OkStatus();
                  })
                  .status(),
              IsOk());
  EXPECT_EQ(before->revision, 1u);
  EXPECT_EQ(before->services.at("web").port(), 80u);
  EXPECT_TRUE(store->Current()->services.empty());
}

TEST_F(SqliteStoreTest, SecondControllerOnTheSameFileIsRefused) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto second = SqliteStore::Open({.path = path_});
  EXPECT_THAT(second.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another"));
  EXPECT_THAT(second.status().message(), HasSubstr(path_));
  store.reset();
  EXPECT_THAT(SqliteStore::Open({.path = path_}).status(), IsOk());
}

TEST_F(SqliteStoreTest, UnparsableRowIsDataLossNamingIt) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store
                    ->Commit([](StoreState& state) {
                      return AddService(state, "web", 80);
                    })
                    .status(),
                IsOk());
  }
  RawExec("UPDATE services SET body = x'ffffffff' WHERE name = 'web'");
  auto damaged = SqliteStore::Open({.path = path_});
  EXPECT_THAT(damaged.status(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(damaged.status().message(), HasSubstr("\"web\""));
}

lb::v1::BackendHealth Verdict(const std::string& service,
                              const std::string& address,
                              lb::v1::HealthState state) {
  lb::v1::BackendHealth h;
  h.mutable_backend()->set_service_name(service);
  h.mutable_backend()->set_address(address);
  h.mutable_backend()->set_port(80);
  h.set_state(state);
  h.set_reason("2 of 2 nodes see it down (lb1: connect: refused; lb2: x)");
  h.mutable_last_change()->set_seconds(1800000000);
  return h;
}

TEST_F(SqliteStoreTest, HealthVerdictsAreOneRevisionEachAndSurviveReopen) {
  const lb::v1::BackendHealth down =
      Verdict("web", "198.51.100.2", lb::v1::HEALTH_STATE_DOWN);
  const std::string name = BackendHealthName(down.backend());
  EXPECT_EQ(name, "web|198.51.100.2|80");
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store
                    ->Commit([](StoreState& state) {
                      return AddService(state, "web", 80);
                    })
                    .status(),
                IsOk());
    auto verdict = store->Commit([&](StoreState& state) {
      state.backend_health[name] = down;
      return absl::OkStatus();
    });
    ASSERT_THAT(verdict.status(), IsOk());
    EXPECT_TRUE(verdict->changed);
    EXPECT_EQ(verdict->state->revision, 2u);
    // The same verdict again is no change: the revision stays.
    auto same = store->Commit([&](StoreState& state) {
      state.backend_health[name] = down;
      return absl::OkStatus();
    });
    ASSERT_THAT(same.status(), IsOk());
    EXPECT_FALSE(same->changed);
    EXPECT_EQ(store->Current()->revision, 2u);
  }
  {
    auto reopened = OpenOrDie();
    ASSERT_NE(reopened, nullptr);
    auto state = reopened->Current();
    EXPECT_EQ(state->revision, 2u);
    ASSERT_EQ(state->backend_health.size(), 1u);
    const lb::v1::BackendHealth& h = state->backend_health.at(name);
    EXPECT_EQ(h.state(), lb::v1::HEALTH_STATE_DOWN);
    EXPECT_EQ(h.reason(), down.reason());
    EXPECT_EQ(h.last_change().seconds(), 1800000000);
    // Removing the service and its verdict is one revision.
    auto removed = reopened->Commit([&](StoreState& state) {
      state.services.erase("web");
      state.backend_health.erase(name);
      return absl::OkStatus();
    });
    ASSERT_THAT(removed.status(), IsOk());
    EXPECT_EQ(removed->state->revision, 3u);
  }
  auto again = OpenOrDie();
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->Current()->backend_health.empty());
  EXPECT_TRUE(again->Current()->services.empty());
}

TEST_F(SqliteStoreTest, VersionOneFileIsUpgraded) {
  // A store as version 1 wrote it: no backend_health table.
  RawExec(
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
      "CREATE TABLE services (name TEXT PRIMARY KEY, revision INTEGER NOT "
      "NULL, body BLOB NOT NULL);"
      "CREATE TABLE nodes (name TEXT PRIMARY KEY, revision INTEGER NOT NULL, "
      "body BLOB NOT NULL);"
      "INSERT INTO meta(key, value) VALUES ('schema', 1), ('revision', 7);");
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->Current()->revision, 7u);
    auto verdict = store->Commit([](StoreState& state) {
      lb::v1::BackendHealth h =
          Verdict("web", "198.51.100.2", lb::v1::HEALTH_STATE_DOWN);
      state.backend_health[BackendHealthName(h.backend())] = h;
      return absl::OkStatus();
    });
    ASSERT_THAT(verdict.status(), IsOk());
    EXPECT_EQ(verdict->state->revision, 8u);
  }
  auto reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Current()->backend_health.size(), 1u);
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefused) {
  { ASSERT_NE(OpenOrDie(), nullptr); }
  RawExec("UPDATE meta SET value = 99 WHERE key = 'schema'");
  auto newer = SqliteStore::Open({.path = path_});
  EXPECT_THAT(newer.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(newer.status().message(), HasSubstr("schema version 99"));
}

TEST_F(SqliteStoreTest, UnopenablePathNamesTheFile) {
  auto store = SqliteStore::Open({.path = dir_ + "/no/such/dir/c.db"});
  EXPECT_THAT(store.status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store.status().message(), HasSubstr("/no/such/dir/c.db"));
  EXPECT_THAT(SqliteStore::Open({.path = ""}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(SqliteStoreTest, WaitForNewerWakesOnCommit) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // Nothing newer: returns the current state after the timeout.
  EXPECT_EQ(store->WaitForNewer(0, absl::Milliseconds(10))->revision, 0u);
  std::thread committer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    store
        ->Commit([](StoreState& state) { return AddService(state, "web", 80); })
        .IgnoreError();
  });
  auto state = store->WaitForNewer(0, absl::Seconds(30));
  committer.join();
  EXPECT_EQ(state->revision, 1u);
  EXPECT_TRUE(state->services.contains("web"));
}

// The durability test: kill -9 a process that is committing, at
// random moments, many times. After each kill the store must hold at least
// every acknowledged revision, at most the one that was in flight, and
// never a half-applied one (all rows of a commit agree on its revision).
TEST_F(SqliteStoreTest, KillDuringCommitsLosesNothingAcknowledged) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string writer =
      absl::StrCat(srcdir != nullptr ? srcdir : ".",
                   "/anylb/controller/store/store_crash_writer");
  std::mt19937 random(20261124);
  uint64_t previous = 0;
  constexpr int kRounds = 25;
  for (int round = 0; round < kRounds; ++round) {
    auto child = ChildProcess::Start({writer, "--path=" + path_});
    ASSERT_THAT(child.status(), IsOk());
    ASSERT_TRUE((*child)->ReadUntil("acked", absl::Seconds(30)))
        << (*child)->output();
    // Let it run 0–40 ms more, so the kill lands anywhere in a commit.
    absl::SleepFor(absl::Microseconds(random() % 40000));
    (*child)->Signal(SIGKILL);
    EXPECT_EQ((*child)->Wait(absl::Seconds(10)), 128 + SIGKILL);
    uint64_t acked = 0;
    for (absl::string_view line :
         absl::StrSplit((*child)->output(), '\n', absl::SkipEmpty())) {
      uint64_t revision;
      if (absl::ConsumePrefix(&line, "acked ") &&
          absl::SimpleAtoi(line, &revision)) {
        acked = std::max(acked, revision);
      }
    }
    ASSERT_GT(acked, previous) << "round " << round;

    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    auto state = store->Current();
    EXPECT_GE(state->revision, acked) << "an acknowledged commit was lost";
    EXPECT_LE(state->revision, acked + 1) << "more than one commit in flight?";
    ASSERT_EQ(state->services.size(), 3u);
    for (const auto& [name, service] : state->services) {
      EXPECT_EQ(service.hash_seed(), state->revision)
          << "service " << name << " is from another commit: half-applied";
    }
    EXPECT_EQ(state->nodes.at("lb1").weight(), state->revision % 1000 + 1)
        << "the node row is from another commit: half-applied";
    previous = state->revision;
  }
  std::printf("%d kills; the store ended at revision %llu\n", kRounds,
              static_cast<unsigned long long>(previous));
}

}  // namespace
}  // namespace anylb::controller
