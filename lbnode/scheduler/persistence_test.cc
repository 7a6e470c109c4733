#include "lbnode/scheduler/persistence.h"

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <map>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/testing/allocation_counter.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/scheduler/internal/lru_hash_map.h"

namespace anylb::scheduler {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Optional;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr uint32_t kService = 7;

IpAddress Ip(std::string_view text) { return IpAddress::Parse(text).value(); }
Endpoint Ep(std::string_view text) { return Endpoint::Parse(text).value(); }

PersistencePolicy Policy(absl::Duration timeout = absl::Seconds(300),
                         int v4 = 0, int v6 = 0) {
  return PersistencePolicy::Create(80, timeout, v4, v6).value();
}

std::unique_ptr<PersistenceTable> Table(uint32_t capacity = 64) {
  return PersistenceTable::Create(capacity).value();
}

// --- Validation ---

struct ValidationCase {
  std::string description;
  uint32_t port;
  absl::Duration timeout;
  int v4;
  int v6;
  std::string error;  // empty: valid

  friend void PrintTo(const ValidationCase& c, std::ostream* os) {
    *os << c.description;
  }
};

class PersistenceValidation : public testing::TestWithParam<ValidationCase> {};

TEST_P(PersistenceValidation, AcceptsOrNamesTheBadValue) {
  const ValidationCase& c = GetParam();
  const absl::Status status =
      ValidatePersistence(c.port, c.timeout, c.v4, c.v6);
  if (c.error.empty()) {
    EXPECT_THAT(status, IsOk());
  } else {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(c.error)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PersistenceValidation,
    testing::Values(
        ValidationCase{"no persistence", 80, absl::ZeroDuration(), 0, 0, ""},
        ValidationCase{"ipvsadm -p -M 255.255.255.0", 443, absl::Seconds(300),
                       24, 64, ""},
        ValidationCase{"port 0 with persistence", 0, absl::Seconds(300), 0, 0,
                       ""},
        ValidationCase{"full lengths", 80, absl::Seconds(1), 32, 128, ""},
        ValidationCase{"port 0 without persistence", 0, absl::ZeroDuration(), 0,
                       0, "port 0 (all ports) needs persistence"},
        ValidationCase{"negative timeout", 80, -absl::Seconds(5), 0, 0,
                       "timeout -5s is negative"},
        ValidationCase{"port too big", 70000, absl::Seconds(300), 0, 0,
                       "port 70000"},
        ValidationCase{"IPv4 prefix too long", 80, absl::Seconds(300), 33, 0,
                       "IPv4 prefix length 33 is out of range 0..32"},
        ValidationCase{"IPv4 prefix negative", 80, absl::Seconds(300), -1, 0,
                       "IPv4 prefix length -1"},
        ValidationCase{"IPv6 prefix too long", 80, absl::Seconds(300), 0, 129,
                       "IPv6 prefix length 129 is out of range 0..128"}),
    [](const testing::TestParamInfo<ValidationCase>& info) {
      std::string name = info.param.description;
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

TEST(PersistencePolicy, ZeroPrefixMeansTheFullLength) {
  const PersistencePolicy policy = Policy();
  EXPECT_EQ(policy.ipv4_prefix_length, 32);
  EXPECT_EQ(policy.ipv6_prefix_length, 128);
  EXPECT_EQ(policy.ClientNetwork(Ip("192.0.2.77")), Ip("192.0.2.77"));
}

TEST(PersistencePolicy, NeedsAPositiveTimeout) {
  EXPECT_THAT(
      PersistencePolicy::Create(80, absl::ZeroDuration(), 24, 64),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeout 0")));
  EXPECT_THAT(PersistencePolicy::Create(80, absl::Seconds(300), 40, 64),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("40")));
}

TEST(PersistenceTable, RejectsImpossibleCapacities) {
  EXPECT_THAT(PersistenceTable::Create(0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("persistence"), HasSubstr(" 0 "))));
  EXPECT_THAT(
      PersistenceTable::Create(1u << 30),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1073741824")));
}

// --- Lookup, Insert, expiry ---

TEST(PersistenceTable, RemembersAClientsRealServerUntilTheTimeout) {
  auto table = Table();
  const PersistencePolicy policy = Policy(absl::Seconds(300));
  const IpAddress client = Ip("192.0.2.10");
  EXPECT_EQ(table->Lookup(kService, policy, client, kT0), std::nullopt);
  table->Insert(kService, policy, client, Ep("198.51.100.2:80"), kT0);
  EXPECT_THAT(table->Lookup(kService, policy, client, kT0 + absl::Seconds(1)),
              Optional(Ep("198.51.100.2:80")));
  EXPECT_EQ(table->stats().hits, 1u);
  EXPECT_EQ(table->stats().misses, 1u);
  EXPECT_EQ(table->stats().inserts, 1u);
}

TEST(PersistenceTable, EntryExpiresExactlyAtItsTimeout) {
  auto table = Table();
  const PersistencePolicy policy = Policy(absl::Seconds(300));
  const IpAddress client = Ip("192.0.2.10");
  table->Insert(kService, policy, client, Ep("198.51.100.2:80"), kT0);
  // Lookups refresh, so probe two entries: one just before, one at expiry.
  const IpAddress other = Ip("192.0.2.11");
  table->Insert(kService, policy, other, Ep("198.51.100.3:80"), kT0);
  EXPECT_TRUE(table
                  ->Lookup(kService, policy, client,
                           kT0 + absl::Seconds(300) - absl::Nanoseconds(1))
                  .has_value());
  EXPECT_EQ(table->Lookup(kService, policy, other, kT0 + absl::Seconds(300)),
            std::nullopt);
  EXPECT_EQ(table->stats().expired, 1u);
  EXPECT_EQ(table->size(), 1u);  // the expired entry is gone
}

TEST(PersistenceTable, EachNewConnectionRestartsTheTimeout) {
  auto table = Table();
  const PersistencePolicy policy = Policy(absl::Seconds(300));
  const IpAddress client = Ip("2001:db8::10");
  table->Insert(kService, policy, client, Ep("[2001:db8::2]:80"), kT0);
  // A connection every 200s keeps the affinity for far longer than 300s.
  absl::Time t = kT0;
  for (int i = 0; i < 10; ++i) {
    t += absl::Seconds(200);
    EXPECT_THAT(table->Lookup(kService, policy, client, t),
                Optional(Ep("[2001:db8::2]:80")))
        << i;
  }
  EXPECT_EQ(table->Lookup(kService, policy, client, t + absl::Seconds(300)),
            std::nullopt);
}

TEST(PersistenceTable, InsertReplacesTheRealServerOfAnExistingEntry) {
  auto table = Table();
  const PersistencePolicy policy = Policy();
  const IpAddress client = Ip("192.0.2.10");
  table->Insert(kService, policy, client, Ep("198.51.100.2:80"), kT0);
  table->Insert(kService, policy, client, Ep("198.51.100.3:80"), kT0);
  EXPECT_THAT(table->Lookup(kService, policy, client, kT0),
              Optional(Ep("198.51.100.3:80")));
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(table->stats().updates, 1u);
}

TEST(PersistenceTable, ServicesDoNotShareEntries) {
  auto table = Table();
  const PersistencePolicy policy = Policy();
  const IpAddress client = Ip("192.0.2.10");
  table->Insert(1, policy, client, Ep("198.51.100.2:80"), kT0);
  EXPECT_EQ(table->Lookup(2, policy, client, kT0), std::nullopt);
  table->Insert(2, policy, client, Ep("198.51.100.9:443"), kT0);
  EXPECT_THAT(table->Lookup(1, policy, client, kT0),
              Optional(Ep("198.51.100.2:80")));
  EXPECT_EQ(table->EraseService(1), 1u);
  EXPECT_EQ(table->Lookup(1, policy, client, kT0), std::nullopt);
  EXPECT_TRUE(table->Lookup(2, policy, client, kT0).has_value());
}

TEST(PersistenceTable, EraseForgetsOneClientNetwork) {
  auto table = Table();
  const PersistencePolicy policy = Policy(absl::Seconds(300), 24, 0);
  table->Insert(kService, policy, Ip("192.0.2.10"), Ep("198.51.100.2:80"), kT0);
  EXPECT_TRUE(table->Erase(kService, policy, Ip("192.0.2.99")));  // same /24
  EXPECT_FALSE(table->Erase(kService, policy, Ip("192.0.2.10")));
  EXPECT_EQ(table->size(), 0u);
}

// --- Netmask grouping ---

struct GroupingCase {
  std::string first;
  std::string same_network;
  std::string other_network;
  int v4_prefix;
  int v6_prefix;

  friend void PrintTo(const GroupingCase& c, std::ostream* os) {
    *os << c.first;
  }
};

class PersistenceGrouping : public testing::TestWithParam<GroupingCase> {};

INSTANTIATE_TEST_SUITE_P(
    Families, PersistenceGrouping,
    testing::Values(
        GroupingCase{"192.0.2.1", "192.0.2.254", "192.0.3.1", 24, 0},
        GroupingCase{"2001:db8:0:5::1", "2001:db8:0:5:ffff::7",
                     "2001:db8:0:6::1", 0, 64},
        // Without -M each client is on its own.
        GroupingCase{"192.0.2.1", "192.0.2.1", "192.0.2.2", 0, 0},
        GroupingCase{"2001:db8::1", "2001:db8::1", "2001:db8::2", 0, 0}),
    [](const testing::TestParamInfo<GroupingCase>& info) {
      return std::string(info.index % 2 == 0 ? "IPv4" : "IPv6") +
             (info.index < 2 ? "Prefix" : "Host");
    });

TEST_P(PersistenceGrouping, ClientsOfOneNetworkShareARealServer) {
  const GroupingCase& c = GetParam();
  auto table = Table();
  const PersistencePolicy policy =
      Policy(absl::Seconds(300), c.v4_prefix, c.v6_prefix);
  table->Insert(kService, policy, Ip(c.first), Ep("198.51.100.2:80"), kT0);
  EXPECT_THAT(table->Lookup(kService, policy, Ip(c.same_network), kT0),
              Optional(Ep("198.51.100.2:80")));
  EXPECT_EQ(table->Lookup(kService, policy, Ip(c.other_network), kT0),
            std::nullopt);
}

TEST(PersistenceTable, IpV4AndIpV6ClientsNeverCollide) {
  auto table = Table();
  const PersistencePolicy policy = Policy(absl::Seconds(300), 1, 1);
  // Both mask to "all zeros" of their family.
  // (10.0.0.1: no documentation-range IPv4 address has a zero top bit; it is
  // only data here, nothing is sent.)
  table->Insert(kService, policy, Ip("10.0.0.1"), Ep("198.51.100.2:80"), kT0);
  EXPECT_EQ(table->Lookup(kService, policy, Ip("::1"), kT0), std::nullopt);
}

// --- Capacity ---

TEST(PersistenceTable, FullTableEvictsTheLeastRecentlyUsed) {
  auto table = Table(2);
  const PersistencePolicy policy = Policy();
  table->Insert(kService, policy, Ip("192.0.2.1"), Ep("198.51.100.1:80"), kT0);
  table->Insert(kService, policy, Ip("192.0.2.2"), Ep("198.51.100.2:80"), kT0);
  ASSERT_TRUE(table->Lookup(kService, policy, Ip("192.0.2.1"), kT0));
  table->Insert(kService, policy, Ip("192.0.2.3"), Ep("198.51.100.3:80"), kT0);
  EXPECT_EQ(table->size(), 2u);
  EXPECT_EQ(table->stats().evictions, 1u);
  EXPECT_TRUE(table->Lookup(kService, policy, Ip("192.0.2.1"), kT0));
  EXPECT_FALSE(table->Lookup(kService, policy, Ip("192.0.2.2"), kT0));
  EXPECT_TRUE(table->Lookup(kService, policy, Ip("192.0.2.3"), kT0));
}

TEST(PersistenceTable, FullTableReclaimsAnExpiredEntryBeforeEvicting) {
  auto table = Table(3);
  const PersistencePolicy long_lived = Policy(absl::Hours(1));
  const PersistencePolicy short_lived = Policy(absl::Seconds(10));
  // Oldest first: a live one-hour entry, then an expired 10s one.
  table->Insert(1, long_lived, Ip("192.0.2.1"), Ep("198.51.100.1:80"), kT0);
  table->Insert(2, short_lived, Ip("192.0.2.2"), Ep("198.51.100.2:80"), kT0);
  table->Insert(1, long_lived, Ip("192.0.2.3"), Ep("198.51.100.3:80"), kT0);
  table->Insert(1, long_lived, Ip("192.0.2.4"), Ep("198.51.100.4:80"),
                kT0 + absl::Minutes(1));
  EXPECT_EQ(table->stats().expired, 1u);
  EXPECT_EQ(table->stats().evictions, 0u);
  const absl::Time later = kT0 + absl::Minutes(2);
  EXPECT_TRUE(table->Lookup(1, long_lived, Ip("192.0.2.1"), later));
  EXPECT_TRUE(table->Lookup(1, long_lived, Ip("192.0.2.3"), later));
  EXPECT_TRUE(table->Lookup(1, long_lived, Ip("192.0.2.4"), later));
}

TEST(PersistenceTable, LookupAndInsertNeverAllocate) {
  auto table = Table(16);
  const PersistencePolicy policy = Policy(absl::Hours(1), 24, 64);
  alloc_testing::StartCountingAllocations();
  for (uint32_t i = 0; i < 2000; ++i) {
    const absl::Time now = kT0 + absl::Seconds(i);
    const IpAddress client =
        i % 2 ? IpAddress::FromV4(0xc0000000u + i * 256) : Ip("2001:db8::1");
    if (!table->Lookup(kService, policy, client, now)) {
      table->Insert(kService, policy, client, Ep("198.51.100.1:80"), now);
    }
    table->Erase(kService, policy, IpAddress::FromV4(0xc0000000u + i * 128));
  }
  const uint64_t allocations = alloc_testing::StopCountingAllocations();
  EXPECT_EQ(allocations, 0u);
  EXPECT_GT(table->stats().evictions, 0u);
}

TEST(PersistenceTable, ManyClientsStayWithinCapacity) {
  auto table = Table(100);
  const PersistencePolicy policy = Policy();
  for (uint32_t i = 0; i < 1000; ++i) {
    const IpAddress client = IpAddress::FromV4(0xc0000000u + i);
    table->Insert(kService, policy, client, Ep("198.51.100.1:80"), kT0);
    ASSERT_TRUE(table->Lookup(kService, policy, client, kT0)) << i;
  }
  EXPECT_EQ(table->size(), 100u);
  EXPECT_EQ(table->stats().evictions, 900u);
  // The newest 100 are the ones left.
  for (uint32_t i = 900; i < 1000; ++i) {
    EXPECT_TRUE(table->Lookup(kService, policy,
                              IpAddress::FromV4(0xc0000000u + i), kT0))
        << i;
  }
}

// --- Templates against the current backend set ---

std::vector<SchedBackend> ThreeBackends() {
  std::vector<SchedBackend> backends(3);
  backends[0].endpoint = Ep("198.51.100.1:80");
  backends[1].endpoint = Ep("198.51.100.2:80");
  backends[2].endpoint = Ep("198.51.100.3:80");
  for (auto& b : backends) b.weight = 1;
  return backends;
}

TEST(PersistentBackendIndex, FindsTheRememberedRealServerByEndpoint) {
  auto backends = ThreeBackends();
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.3:80")), 2);
  // After a snapshot change the index moves; the endpoint does not.
  backends.erase(backends.begin());
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.3:80")), 1);
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.1:80")),
            kNoBackend);
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.3:81")),
            kNoBackend);
}

TEST(PersistentBackendIndex, KeepsQuiescedAndOverloadedRealServersAsIpvsDoes) {
  auto backends = ThreeBackends();
  backends[0].weight = 0;
  backends[1].overloaded = true;
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.1:80")), 0);
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.2:80")), 1);
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.1:80"),
                                   /*expire_quiescent=*/true),
            kNoBackend);
}

TEST(PersistentBackendIndex, DropsARealServerThisNodeCannotReach) {
  auto backends = ThreeBackends();
  backends[2].available = false;
  EXPECT_EQ(PersistentBackendIndex(backends, Ep("198.51.100.3:80")),
            kNoBackend);
}

TEST(PersistentBackendIndex, EmptySetHasNothing) {
  EXPECT_EQ(PersistentBackendIndex({}, Ep("198.51.100.3:80")), kNoBackend);
}

// --- The fixed-capacity LRU map under the table ---

struct IntHasher {
  // A deliberately poor hash (few distinct values) to make long probe
  // chains, wrap-around and backward shifts common.
  uint64_t operator()(uint32_t key, uint64_t) const { return key % 13 * 5; }
};

TEST(LruHashMap, AgreesWithASimpleModelUnderRandomOperations) {
  using Map = internal::LruHashMap<uint32_t, uint32_t, IntHasher>;
  Map map;
  ASSERT_THAT(map.Init(8, 0), IsOk());  // 16 slots
  std::map<uint32_t, uint32_t> model;
  std::list<uint32_t> recency;  // front: newest
  uint64_t rng = 42;
  auto next = [&rng]() {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(rng >> 33);
  };
  for (int step = 0; step < 20000; ++step) {
    const uint32_t key = next() % 40;
    const uint32_t e = map.Find(key);
    ASSERT_EQ(e != Map::kNone, model.count(key) == 1) << step;
    switch (next() % 3) {
      case 0:  // insert or overwrite, evicting the oldest when full
        if (e != Map::kNone) {
          map.value(e) = step;
          map.Touch(e);
          recency.remove(key);
        } else {
          if (map.full()) {
            const uint32_t oldest = map.Oldest();
            ASSERT_EQ(map.key(oldest), recency.back());
            model.erase(recency.back());
            recency.pop_back();
            map.Erase(oldest);
          }
          map.value(map.Insert(key)) = step;
        }
        model[key] = step;
        recency.push_front(key);
        break;
      case 1:  // erase
        if (e != Map::kNone) {
          map.Erase(e);
          model.erase(key);
          recency.remove(key);
        }
        break;
      case 2:  // read and touch
        if (e != Map::kNone) {
          ASSERT_EQ(map.value(e), model[key]);
          map.Touch(e);
          recency.remove(key);
          recency.push_front(key);
        }
        break;
    }
    ASSERT_EQ(map.size(), model.size());
  }
  // Every remaining key is still reachable: no entry lost by a shift.
  for (const auto& [key, value] : model) {
    const uint32_t e = map.Find(key);
    ASSERT_NE(e, Map::kNone) << key;
    EXPECT_EQ(map.value(e), value);
  }
}

}  // namespace
}  // namespace anylb::scheduler
