#include "lbnode/dataplane/local_port_allocator.h"

#include <set>
#include <utility>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::dataplane {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

TEST(LocalPortAllocator, NeverLeasesOnePortTwiceAndRunsOutExactly) {
  auto a = LocalPortAllocator::Create(1000, 1099, 0, 1).value();
  const std::vector<IpAddress> addrs = {Ip("192.0.2.1"), Ip("192.0.2.2")};
  a->SetAddresses(addrs);
  std::set<std::pair<uint16_t, uint16_t>> seen;
  LocalPortLease lease;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(a->Allocate(IpFamily::kV4, 6, &lease)) << i;
    EXPECT_TRUE(seen.insert({lease.pool, lease.port}).second) << lease.port;
    EXPECT_GE(lease.port, 1000);
    EXPECT_LE(lease.port, 1099);
  }
  EXPECT_FALSE(a->Allocate(IpFamily::kV4, 6, &lease));
  // UDP has its own rings; IPv6 has no address.
  EXPECT_TRUE(a->Allocate(IpFamily::kV4, 17, &lease));
  EXPECT_FALSE(a->Allocate(IpFamily::kV6, 6, &lease));
}

TEST(LocalPortAllocator, RoundRobinsOverAddresses) {
  auto a = LocalPortAllocator::Create(1000, 1099, 0, 1).value();
  const std::vector<IpAddress> addrs = {Ip("192.0.2.1"), Ip("192.0.2.2"),
                                        Ip("2001:db8::1")};
  a->SetAddresses(addrs);
  LocalPortLease l1;
  LocalPortLease l2;
  LocalPortLease l3;
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 6, &l1));
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 6, &l2));
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 6, &l3));
  EXPECT_NE(a->address(l1.pool), a->address(l2.pool));
  EXPECT_EQ(a->address(l1.pool), a->address(l3.pool));
  ASSERT_TRUE(a->Allocate(IpFamily::kV6, 6, &l1));
  EXPECT_EQ(a->address(l1.pool), Ip("2001:db8::1"));
}

TEST(LocalPortAllocator, ReleasedPortComesBackLastAndDoubleReleaseIsIgnored) {
  auto a = LocalPortAllocator::Create(5000, 5002, 0, 1).value();
  const std::vector<IpAddress> addrs = {Ip("192.0.2.1")};
  a->SetAddresses(addrs);
  LocalPortLease first;
  LocalPortLease lease;
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 17, &first));
  EXPECT_EQ(first.port, 5000);
  a->Release(first, 17);
  a->Release(first, 17);
  EXPECT_EQ(a->double_releases(), 1u);
  EXPECT_EQ(a->available(0, 17), 3u);
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 17, &lease));
  EXPECT_EQ(lease.port, 5001);  // FIFO: 5000 waits behind 5001 and 5002.
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 17, &lease));
  EXPECT_EQ(lease.port, 5002);
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 17, &lease));
  EXPECT_EQ(lease.port, 5000);
}

TEST(LocalPortAllocator, WorkerGetsOnlyItsResidueClass) {
  auto a = LocalPortAllocator::Create(1024, 2047, 2, 4).value();
  const std::vector<IpAddress> addrs = {Ip("192.0.2.1")};
  a->SetAddresses(addrs);
  EXPECT_EQ(a->ports_per_address(), 256u);
  LocalPortLease lease;
  while (a->Allocate(IpFamily::kV4, 6, &lease)) EXPECT_EQ(lease.port % 4, 2);
}

TEST(LocalPortAllocator, AddressThatStaysKeepsItsLeases) {
  auto a = LocalPortAllocator::Create(1000, 1001, 0, 1).value();
  std::vector<IpAddress> addrs = {Ip("192.0.2.1")};
  a->SetAddresses(addrs);
  LocalPortLease lease;
  ASSERT_TRUE(a->Allocate(IpFamily::kV4, 6, &lease));
  addrs.push_back(Ip("192.0.2.2"));
  a->SetAddresses(addrs);
  EXPECT_EQ(a->available(0, 6), 1u);
  EXPECT_EQ(a->available(1, 6), 2u);
  // Removed address: no new leases there, releases still accepted.
  a->SetAddresses(std::vector<IpAddress>{Ip("192.0.2.2")});
  a->Release(lease, 6);
  EXPECT_EQ(a->available(0, 6), 2u);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(a->Allocate(IpFamily::kV4, 6, &lease));
    EXPECT_EQ(lease.pool, 1);
  }
  EXPECT_FALSE(a->Allocate(IpFamily::kV4, 6, &lease));
}

TEST(LocalPortAllocator, BadRangesAndWorkersAreInvalid) {
  EXPECT_THAT(LocalPortAllocator::Create(0, 10, 0, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LocalPortAllocator::Create(20, 10, 0, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LocalPortAllocator::Create(10, 20, 3, 3),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LocalPortAllocator::Create(10, 11, 5, 8),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no port for worker 5 of 8")));
}

}  // namespace
}  // namespace anylb::dataplane
