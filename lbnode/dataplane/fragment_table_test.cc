#include "lbnode/dataplane/fragment_table.h"

#include <memory>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace anylb::dataplane {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;

constexpr int64_t kNowUs = int64_t{1700000000} * 1000000;

FragmentKey Key(uint32_t id, uint8_t src_last = 1) {
  FragmentKey k;
  k.src = {198, 51, 100, src_last};
  k.dst = {203, 0, 113, 10};
  k.id = id;
  k.protocol = 17;
  return k;
}

FragmentRewrite Rewrite(uint8_t backend) {
  FragmentRewrite r;
  r.src = {198, 51, 100, 1};
  r.dst = {192, 0, 2, backend};
  r.backend = backend;
  r.epoch = 1;
  return r;
}

std::unique_ptr<FragmentTable> Table(
    size_t capacity = 64, absl::Duration lifetime = absl::Seconds(3)) {
  FragmentTableOptions o;
  o.capacity = capacity;
  o.lifetime = lifetime;
  o.seed = 7;
  auto t = FragmentTable::Create(o);
  EXPECT_THAT(t, IsOk());
  return std::move(*t);
}

TEST(FragmentTable, LaterFragmentFindsWhatItsFirstRecorded) {
  auto t = Table();
  t->Insert(Key(1), Rewrite(21), kNowUs);
  const FragmentRewrite* r = t->Lookup(Key(1), kNowUs + 1000);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->dst, Rewrite(21).dst);
  EXPECT_EQ(r->backend, 21u);
  EXPECT_EQ(t->counters().hits, 1u);
}

TEST(FragmentTable, AnotherDatagramDoesNotMatch) {
  auto t = Table();
  t->Insert(Key(1), Rewrite(21), kNowUs);
  EXPECT_EQ(t->Lookup(Key(2), kNowUs), nullptr);     // Other id.
  EXPECT_EQ(t->Lookup(Key(1, 2), kNowUs), nullptr);  // Other source.
  FragmentKey other_proto = Key(1);
  other_proto.protocol = 6;
  EXPECT_EQ(t->Lookup(other_proto, kNowUs), nullptr);
  EXPECT_EQ(t->counters().misses, 3u);
  EXPECT_EQ(t->counters().expired, 0u);
}

TEST(FragmentTable, RecordExpiresAfterItsLifetime) {
  auto t = Table(64, absl::Seconds(2));
  t->Insert(Key(1), Rewrite(21), kNowUs);
  EXPECT_NE(t->Lookup(Key(1), kNowUs + 1999999), nullptr);
  EXPECT_EQ(t->Lookup(Key(1), kNowUs + 2000000), nullptr);
  EXPECT_EQ(t->counters().expired, 1u);
  EXPECT_EQ(t->LiveCount(kNowUs), 0u);
}

TEST(FragmentTable, FirstFragmentAgainReplacesItsRecord) {
  auto t = Table();
  t->Insert(Key(1), Rewrite(21), kNowUs);
  t->Insert(Key(1), Rewrite(22), kNowUs + 10);
  EXPECT_EQ(t->Lookup(Key(1), kNowUs + 20)->backend, 22u);
  EXPECT_EQ(t->LiveCount(kNowUs + 20), 1u);
  EXPECT_EQ(t->counters().evictions, 0u);
}

TEST(FragmentTable, StaysBoundedAndCountsEvictions) {
  auto t = Table(16);
  ASSERT_EQ(t->capacity(), 16u);
  for (uint32_t id = 0; id < 1000; ++id) {
    t->Insert(Key(id), Rewrite(static_cast<uint8_t>(id)), kNowUs + id);
  }
  EXPECT_EQ(t->LiveCount(kNowUs + 1000), 16u);
  EXPECT_EQ(t->counters().evictions, 1000u - 16u);
  // The newest survive: the last insert is always found.
  EXPECT_NE(t->Lookup(Key(999), kNowUs + 1000), nullptr);
}

TEST(FragmentTable, ExpiredWayIsReusedWithoutEviction) {
  auto t = Table(4, absl::Milliseconds(1));  // One bucket of four ways.
  for (uint32_t id = 0; id < 4; ++id) t->Insert(Key(id), Rewrite(1), kNowUs);
  for (uint32_t id = 4; id < 8; ++id) {
    t->Insert(Key(id), Rewrite(1), kNowUs + 5000);
  }
  EXPECT_EQ(t->counters().evictions, 0u);
  EXPECT_EQ(t->LiveCount(kNowUs + 5000), 4u);
}

TEST(FragmentTable, CapacityAndLifetimeOutOfRangeAreRefused) {
  FragmentTableOptions o;
  o.capacity = 0;
  EXPECT_THAT(FragmentTable::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument));
  o.capacity = FragmentTable::kMaxCapacity + 1;
  EXPECT_THAT(FragmentTable::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument));
  o.capacity = 1;
  o.lifetime = absl::ZeroDuration();
  EXPECT_THAT(FragmentTable::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument));
  o.lifetime = absl::Minutes(2);
  EXPECT_THAT(FragmentTable::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument));
  o.lifetime = absl::Seconds(1);
  auto t = FragmentTable::Create(o);
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ((*t)->capacity(), FragmentTable::kWays);
}

}  // namespace
}  // namespace anylb::dataplane
