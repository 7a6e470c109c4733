#include "lbnode/agent/snapshot_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace anylb::agent {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

std::string TempDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/cache-",
                                 getpid(), "-", ++counter);
  mkdir(dir.c_str(), 0700);
  return dir;
}

lb::v1::ConfigSnapshot Snapshot(uint64_t revision) {
  lb::v1::ConfigSnapshot s;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        services {
          name: "web"
          vip: "192.0.2.10"
          port: 80
          protocol: PROTOCOL_TCP
          scheduler: SCHEDULER_MH
          forwarding { mode: FORWARDING_MODE_DR }
          backends { address: "198.51.100.1" weight: 1 }
        }
        node { node_name: "lb1" }
      )pb",
      &s);
  s.set_revision(revision);
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(SnapshotCache, WriteThenReadGivesTheSameSnapshot) {
  SnapshotCache cache(TempDir() + "/snapshot.pb");
  ASSERT_THAT(cache.Write(Snapshot(7)), IsOk());
  auto read = cache.Read();
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(read->SerializeAsString(), Snapshot(7).SerializeAsString());
  // A newer write replaces it, and leaves no temporary file behind.
  ASSERT_THAT(cache.Write(Snapshot(8)), IsOk());
  EXPECT_EQ(cache.Read()->revision(), 8u);
  EXPECT_NE(access(absl::StrCat(cache.path(), ".tmp.", getpid()).c_str(), F_OK),
            0);
}

TEST(SnapshotCache, MissingFileIsNotFound) {
  SnapshotCache cache(TempDir() + "/none.pb");
  EXPECT_THAT(cache.Read().status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("none.pb")));
}

TEST(SnapshotCache, CorruptFilesAreDataLossNamingTheFile) {
  SnapshotCache cache(TempDir() + "/snapshot.pb");
  ASSERT_THAT(cache.Write(Snapshot(3)), IsOk());
  const std::string good = ReadAll(cache.path());

  // Not ours at all.
  WriteAll(cache.path(), "services: {}\n");
  EXPECT_THAT(cache.Read().status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad magic")));
  // Truncated.
  WriteAll(cache.path(), good.substr(0, good.size() - 5));
  EXPECT_THAT(cache.Read().status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("length")));
  // One payload bit flipped: protobuf might parse it; the checksum does not.
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x01;
  WriteAll(cache.path(), flipped);
  EXPECT_THAT(cache.Read().status(), StatusIs(absl::StatusCode::kDataLoss,
                                              HasSubstr("checksum mismatch")));
  EXPECT_THAT(cache.Read().status().message(), HasSubstr(cache.path()));
  // Writing again repairs it.
  ASSERT_THAT(cache.Write(Snapshot(4)), IsOk());
  EXPECT_EQ(cache.Read()->revision(), 4u);
}

TEST(SnapshotCache, UnwritableDirectoryIsAnErrorNamingThePath) {
  SnapshotCache cache(TempDir() + "/no/such/dir/snapshot.pb");
  absl::Status status = cache.Write(Snapshot(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("no/such/dir/snapshot.pb.tmp."));
}

}  // namespace
}  // namespace anylb::agent
