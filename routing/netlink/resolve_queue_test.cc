#include "routing/netlink/resolve_queue.h"

#include <thread>

#include "gtest/gtest.h"

namespace anylb::routing::netlink {
namespace {

TEST(ResolveQueue, FifoUpToCapacityThenDropsAndCounts) {
  ResolveQueue queue(3);  // Rounded up to 4.
  EXPECT_EQ(queue.capacity(), 4u);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(queue.TryPush({static_cast<int>(i), IpAddress::FromV4(i)}));
  }
  EXPECT_FALSE(queue.TryPush({9, IpAddress::FromV4(9)}));
  EXPECT_EQ(queue.dropped(), 1u);
  ResolveRequest request;
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(queue.TryPop(&request));
    EXPECT_EQ(request.ifindex, static_cast<int>(i));
    EXPECT_EQ(request.address, IpAddress::FromV4(i));
  }
  EXPECT_FALSE(queue.TryPop(&request));
  EXPECT_TRUE(queue.TryPush({5, IpAddress::FromV4(5)}));  // Room again.
}

TEST(ResolveQueue, OneProducerOneConsumerLoseNothingAndKeepOrder) {
  ResolveQueue queue(64);
  constexpr int kCount = 200000;
  std::thread producer([&] {
    for (int i = 0; i < kCount;) {
      if (queue.TryPush({i, IpAddress::FromV4(static_cast<uint32_t>(i))})) {
        ++i;
      }
    }
  });
  int expected = 0;
  ResolveRequest request;
  while (expected < kCount) {
    if (queue.TryPop(&request)) {
      ASSERT_EQ(request.ifindex, expected);
      ASSERT_EQ(request.address,
                IpAddress::FromV4(static_cast<uint32_t>(expected)));
      ++expected;
    }
  }
  producer.join();
  EXPECT_FALSE(queue.TryPop(&request));
}

TEST(RecentRequests, AsksOncePerIntervalPerNeighbour) {
  RecentRequests recent(/*interval_ns=*/1000);
  const NeighborKey a{2, IpAddress::FromV4(0xc0000201)};
  const NeighborKey b{2, IpAddress::FromV4(0xc0000202)};
  EXPECT_TRUE(recent.ShouldRequest(a, 0));
  EXPECT_FALSE(recent.ShouldRequest(a, 10));
  EXPECT_FALSE(recent.ShouldRequest(a, 999));
  EXPECT_TRUE(recent.ShouldRequest(b, 10));
  EXPECT_TRUE(recent.ShouldRequest(a, 1000));
  EXPECT_FALSE(recent.ShouldRequest(a, 1500));
  // The same address on another interface is another neighbour.
  EXPECT_TRUE(recent.ShouldRequest(NeighborKey{3, a.address}, 1500));
}

}  // namespace
}  // namespace anylb::routing::netlink
