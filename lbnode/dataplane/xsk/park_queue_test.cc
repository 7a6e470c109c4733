#include "lbnode/dataplane/xsk/park_queue.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace anylb::dataplane::xsk {
namespace {

ParkedFrame Frame(uint64_t addr) {
  return {addr, 60, absl::FromUnixSeconds(static_cast<int64_t>(addr))};
}

TEST(ParkQueue, PopsInArrivalOrder) {
  ParkQueue queue(4);
  for (uint64_t a : {1, 2, 3}) ASSERT_TRUE(queue.Push(Frame(a)));
  ParkedFrame f;
  ASSERT_TRUE(queue.Pop(&f));
  EXPECT_EQ(f.addr, 1u);
  EXPECT_EQ(f.parked_at, absl::FromUnixSeconds(1));
  ASSERT_TRUE(queue.Pop(&f));
  EXPECT_EQ(f.addr, 2u);
  EXPECT_EQ(queue.size(), 1u);
}

TEST(ParkQueue, RefusesPastCapacityAndKeepsWhatItHas) {
  ParkQueue queue(2);
  EXPECT_TRUE(queue.Push(Frame(1)));
  EXPECT_TRUE(queue.Push(Frame(2)));
  EXPECT_TRUE(queue.full());
  EXPECT_FALSE(queue.Push(Frame(3)));
  ParkedFrame f;
  ASSERT_TRUE(queue.Pop(&f));
  EXPECT_EQ(f.addr, 1u);
  ASSERT_TRUE(queue.Pop(&f));
  EXPECT_EQ(f.addr, 2u);
  EXPECT_FALSE(queue.Pop(&f));
}

TEST(ParkQueue, WrapsAroundItsSlots) {
  ParkQueue queue(3);
  uint64_t next_in = 0;
  uint64_t next_out = 0;
  for (int round = 0; round < 10; ++round) {
    while (queue.Push(Frame(next_in))) ++next_in;
    ParkedFrame f;
    ASSERT_TRUE(queue.Pop(&f));
    EXPECT_EQ(f.addr, next_out++);
    ASSERT_TRUE(queue.Pop(&f));
    EXPECT_EQ(f.addr, next_out++);
  }
  EXPECT_EQ(queue.size(), next_in - next_out);
}

TEST(ParkQueue, ZeroCapacityParksNothing) {
  ParkQueue queue(0);
  EXPECT_FALSE(queue.Push(Frame(1)));
  ParkedFrame f;
  EXPECT_FALSE(queue.Pop(&f));
}

}  // namespace
}  // namespace anylb::dataplane::xsk
