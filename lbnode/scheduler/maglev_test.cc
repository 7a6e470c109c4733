#include "lbnode/scheduler/maglev.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/internal/maglev_reference.h"
#include "lbnode/scheduler/maglev_scheduler.h"

namespace anylb::scheduler {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Ep is the i-th test endpoint of `family`, port 80: 198.18.0.0/15
// (RFC 2544 benchmarking, room for 131070) or 2001:db8::/32.
Endpoint Ep(IpFamily family, size_t i) {
  const uint32_t n = static_cast<uint32_t>(i) + 1;
  if (family == IpFamily::kV4) {
    return {IpAddress::FromV4(0xc6120000u + n), 80};
  }
  std::array<uint8_t, 16> b = {0x20, 0x01, 0x0d, 0xb8};
  b[12] = static_cast<uint8_t>(n >> 24);
  b[13] = static_cast<uint8_t>(n >> 16);
  b[14] = static_cast<uint8_t>(n >> 8);
  b[15] = static_cast<uint8_t>(n);
  return {IpAddress::FromV6Bytes(b), 80};
}

std::vector<MaglevBackend> Backends(IpFamily family, size_t n,
                                    uint32_t weight = 1) {
  std::vector<MaglevBackend> backends(n);
  for (size_t i = 0; i < n; ++i) backends[i] = {Ep(family, i), weight};
  return backends;
}

std::vector<MaglevBackend> Weighted(IpFamily family,
                                    const std::vector<uint32_t>& weights) {
  std::vector<MaglevBackend> backends(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    backends[i] = {Ep(family, i), weights[i]};
  }
  return backends;
}

std::shared_ptr<const MaglevTable> MustBuild(
    const std::vector<MaglevBackend>& backends, uint32_t size = 65537,
    uint64_t seed = 0) {
  absl::StatusOr<std::shared_ptr<const MaglevTable>> table =
      MaglevTable::Build(backends, size, seed);
  EXPECT_THAT(table, IsOk());
  return table.ok() ? *table : nullptr;
}

// HashForSlot is a flow hash that SlotOf() maps to `slot`: the smallest h
// with floor(h * M / 2^64) == slot.
uint64_t HashForSlot(uint32_t slot, uint32_t m) {
  const unsigned __int128 scaled = static_cast<unsigned __int128>(slot) << 64;
  return static_cast<uint64_t>((scaled + m - 1) / m);
}

// OwnerEndpoint is the endpoint owning `slot` of `table` (non-empty).
Endpoint OwnerEndpoint(const MaglevTable& table, uint32_t slot) {
  return table.backends()[table.Owner(slot)].endpoint;
}

// SlotsOf lists the slots `index` owns.
std::vector<uint32_t> SlotsOf(const MaglevTable& table, int index) {
  std::vector<uint32_t> slots;
  for (uint32_t s = 0; s < table.size(); ++s) {
    if (table.Owner(s) == index) slots.push_back(s);
  }
  return slots;
}

class MaglevFamilyTest : public ::testing::TestWithParam<IpFamily> {};

INSTANTIATE_TEST_SUITE_P(Families, MaglevFamilyTest,
                         ::testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const auto& info) {
                           return info.param == IpFamily::kV4 ? "V4" : "V6";
                         });

// --- Determinism ---

TEST_P(MaglevFamilyTest, SameSetInAnyOrderBuildsByteIdenticalTables) {
  std::mt19937_64 rng(42);
  std::vector<MaglevBackend> backends = Backends(GetParam(), 200);
  for (MaglevBackend& b : backends) b.weight = 1 + rng() % 5;
  backends[7].weight = 0;
  const auto canonical = MustBuild(backends, 20011, 99);
  ASSERT_NE(canonical, nullptr);
  for (int round = 0; round < 50; ++round) {
    std::shuffle(backends.begin(), backends.end(), rng);
    const auto table = MustBuild(backends, 20011, 99);
    ASSERT_NE(table, nullptr);
    ASSERT_THAT(table->owners(), ElementsAreArray(canonical->owners()))
        << "round " << round;
    ASSERT_THAT(table->backends(), ElementsAreArray(canonical->backends()));
    ASSERT_EQ(table->Digest(), canonical->Digest());
  }
}

TEST_P(MaglevFamilyTest, IndicesReferToCanonicalOrder) {
  std::vector<MaglevBackend> backends = Backends(GetParam(), 5);
  std::reverse(backends.begin(), backends.end());
  const auto table = MustBuild(backends, 101);
  ASSERT_NE(table, nullptr);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(table->backends()[i].endpoint, Ep(GetParam(), i));
  }
}

// The table is a pure function of (set, weights, size, seed): these are the
// digests every node computes (maglev_report prints them too). Changing one
// breaks mixed-version fleets (their nodes would disagree), so it must be a
// deliberate, announced change.
TEST(Maglev, DigestsOfKnownSetsArePinned) {
  std::vector<MaglevBackend> equal(300);
  std::vector<MaglevBackend> weighted(300);
  for (size_t i = 0; i < 300; ++i) {
    equal[i] = {internal::DocumentationEndpoint(i), 1};
    weighted[i] = {internal::DocumentationEndpoint(i),
                   static_cast<uint32_t>(i % 5)};
  }
  const auto a = MustBuild(equal, 1009, 7);
  const auto b = MustBuild(weighted, 65537, 7);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->Digest(), 0x22ca1ffaa00e4bceu);
  EXPECT_EQ(b->Digest(), 0x81b8e6ad79537949u);
}

TEST(Maglev, BackendZeroTakesItsPreferredSlotFirst) {
  const auto table = MustBuild(Backends(IpFamily::kV4, 10), 1009, 7);
  ASSERT_NE(table, nullptr);
  const MaglevPermutation p =
      MaglevPermutationFor(Ep(IpFamily::kV4, 0), 1009, 7);
  EXPECT_LT(p.offset, 1009u);
  EXPECT_GE(p.skip, 1u);
  EXPECT_LT(p.skip, 1009u);
  EXPECT_EQ(table->Owner(p.offset), 0);
}

TEST(Maglev, DifferentSeedsGiveDifferentTables) {
  const auto backends = Backends(IpFamily::kV4, 100);
  std::set<uint64_t> digests;
  std::vector<std::shared_ptr<const MaglevTable>> tables;
  for (uint64_t seed : {0ull, 1ull, 2ull, 0xdeadbeefull}) {
    tables.push_back(MustBuild(backends, 10007, seed));
    ASSERT_NE(tables.back(), nullptr);
    digests.insert(tables.back()->Digest());
  }
  EXPECT_EQ(digests.size(), 4u);
  // Independent tables agree on about 1/N of the slots only.
  EXPECT_GT(MaglevTable::CountChangedSlots(*tables[0], *tables[1]),
            10007u * 9 / 10);
}

TEST(Maglev, DigestSeesOwnersAndSize) {
  const auto base = MustBuild(Backends(IpFamily::kV4, 10), 1009);
  auto heavier = Backends(IpFamily::kV4, 10);
  heavier[3].weight = 2;
  const auto changed = MustBuild(heavier, 1009);
  const auto bigger = MustBuild(Backends(IpFamily::kV4, 10), 1013);
  const auto empty_a = MustBuild({}, 1009);
  const auto empty_b = MustBuild({}, 1013);
  ASSERT_TRUE(base && changed && bigger && empty_a && empty_b);
  EXPECT_NE(base->Digest(), changed->Digest());
  EXPECT_NE(base->Digest(), bigger->Digest());
  EXPECT_NE(empty_a->Digest(), empty_b->Digest());
  EXPECT_NE(empty_a->Digest(), base->Digest());
}

// --- The paper's algorithm ---

struct PaperCase {
  size_t backends;
  uint32_t size;
  uint32_t weight;
};

class MaglevPaperTest : public ::testing::TestWithParam<PaperCase> {};

INSTANTIATE_TEST_SUITE_P(
    Sizes, MaglevPaperTest,
    ::testing::Values(PaperCase{1, 2, 1}, PaperCase{2, 2, 1},
                      PaperCase{3, 3, 1}, PaperCase{2, 5, 1},
                      PaperCase{10, 11, 1}, PaperCase{10, 1009, 3},
                      PaperCase{100, 10007, 1}, PaperCase{300, 65537, 65535},
                      PaperCase{1000, 65537, 1}),
    [](const auto& info) {
      return "N" + std::to_string(info.param.backends) + "M" +
             std::to_string(info.param.size) + "W" +
             std::to_string(info.param.weight);
    });

// Equal weights: byte-identical to Pseudocode 1 as written, so disruption
// and evenness are exactly the paper's.
TEST_P(MaglevPaperTest, EqualWeightsBuildThePapersTable) {
  const PaperCase c = GetParam();
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    const auto backends = Backends(family, c.backends, c.weight);
    const auto table = MustBuild(backends, c.size, 5);
    ASSERT_NE(table, nullptr);
    std::vector<Endpoint> endpoints;
    for (const auto& b : backends) endpoints.push_back(b.endpoint);
    const std::vector<int32_t> reference =
        internal::ReferenceMaglevTable(endpoints, c.size, 5);
    ASSERT_EQ(table->owners().size(), reference.size());
    for (uint32_t s = 0; s < c.size; ++s) {
      ASSERT_EQ(table->owners()[s], reference[s]) << "slot " << s;
    }
  }
}

// --- Evenness ---

class MaglevEvennessTest : public ::testing::TestWithParam<size_t> {};

INSTANTIATE_TEST_SUITE_P(Backends, MaglevEvennessTest,
                         ::testing::Values(10, 100, 1000));

TEST_P(MaglevEvennessTest,
       EqualWeightsSpreadWithinOnePercentAtHundredSlotsEach) {
  const size_t n = GetParam();
  auto m = static_cast<uint32_t>(100 * n);
  while (!MaglevTable::IsPrime(m)) ++m;
  const auto table = MustBuild(Backends(IpFamily::kV6, n), m);
  ASSERT_NE(table, nullptr);
  const MaglevBalance balance = table->Balance();
  EXPECT_LE(balance.max_over_mean, 1.01);
  EXPECT_GE(balance.min_over_mean, 0.99);
  // Every backend gets floor(M/N) or ceil(M/N) slots.
  for (uint32_t count : table->slot_counts()) {
    EXPECT_GE(count, m / n);
    EXPECT_LE(count, m / n + 1);
  }
}

struct WeightCase {
  std::string name;
  std::vector<uint32_t> weights;
  uint32_t size;
};

class MaglevWeightTest : public ::testing::TestWithParam<WeightCase> {};

std::vector<uint32_t> Cycle(size_t n, uint32_t period) {
  std::vector<uint32_t> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = static_cast<uint32_t>(i % period) + 1;
  return w;
}

INSTANTIATE_TEST_SUITE_P(
    Weights, MaglevWeightTest,
    ::testing::Values(WeightCase{"OneTwoThree", {1, 2, 3}, 65537},
                      WeightCase{"OneHeavy", {1, 1, 1, 10}, 65537},
                      WeightCase{"ExtremeRatio", {1, 65535}, 65537},
                      WeightCase{"WithZero", {5, 0, 5, 10}, 1009},
                      WeightCase{"HundredCycled", Cycle(100, 4), 65537},
                      WeightCase{"ThousandCycled", Cycle(1000, 7), 655373}),
    [](const auto& info) { return info.param.name; });

// Each backend owns its weight's share of the slots to within two slots
// (one turn for the last, partial pass, one for rounding).
TEST_P(MaglevWeightTest, SlotsFollowWeights) {
  const WeightCase& c = GetParam();
  const auto table = MustBuild(Weighted(IpFamily::kV4, c.weights), c.size);
  ASSERT_NE(table, nullptr);
  uint64_t total = 0;
  for (uint32_t w : c.weights) total += w;
  uint64_t owned = 0;
  for (size_t i = 0; i < c.weights.size(); ++i) {
    const double ideal = static_cast<double>(c.size) * c.weights[i] / total;
    EXPECT_NEAR(table->slot_counts()[i], ideal, 2.0) << "backend " << i;
    owned += table->slot_counts()[i];
  }
  EXPECT_EQ(owned, c.size);
  // The counts agree with the owners.
  std::vector<uint32_t> counted(c.weights.size(), 0);
  for (uint16_t owner : table->owners()) ++counted[owner];
  EXPECT_THAT(table->slot_counts(), ElementsAreArray(counted));
}

TEST(Maglev, UnequalWeightsStayWithinOnePercentAtHundredSlotsPerUnitWeight) {
  // 100 backends of weights 1..4: sum 250, so M >= 100 * 250 gives every
  // unit of weight 100 slots.
  const auto table = MustBuild(Weighted(IpFamily::kV6, Cycle(100, 4)), 25013);
  ASSERT_NE(table, nullptr);
  EXPECT_LE(table->Balance().max_over_mean, 1.01);
  EXPECT_GE(table->Balance().min_over_mean, 0.99);
}

TEST(Maglev, ZeroWeightBackendOwnsNoSlotButKeepsItsIndex) {
  auto backends = Backends(IpFamily::kV4, 3);
  backends[1].weight = 0;
  const auto table = MustBuild(backends, 1009);
  ASSERT_NE(table, nullptr);
  ASSERT_EQ(table->backends().size(), 3u);
  EXPECT_EQ(table->backends()[1].endpoint, Ep(IpFamily::kV4, 1));
  EXPECT_EQ(table->slot_counts()[1], 0u);
  EXPECT_THAT(SlotsOf(*table, 1), IsEmpty());
  EXPECT_EQ(table->slot_counts()[0] + table->slot_counts()[2], 1009u);
}

// --- Disruption ---

// Removing one backend (equal weights, M = 100 N): all of its slots move,
// plus some others (the paper's §3.4 trade-off), exactly as many as the
// paper's algorithm moves.
TEST(Maglev, RemovingOneBackendMovesItsSlotsAndNoMoreThanThePaper) {
  const size_t n = 100;
  const uint32_t m = 10007;
  const auto backends = Backends(IpFamily::kV4, n);
  const auto before = MustBuild(backends, m);
  ASSERT_NE(before, nullptr);
  std::vector<Endpoint> endpoints;
  for (const auto& b : backends) endpoints.push_back(b.endpoint);
  const std::vector<int32_t> reference_before =
      internal::ReferenceMaglevTable(endpoints, m, 0);
  double ratio_sum = 0;
  for (size_t removed = 0; removed < n; removed += 9) {
    auto less = backends;
    less.erase(less.begin() + removed);
    const auto after = MustBuild(less, m);
    ASSERT_NE(after, nullptr);
    const std::vector<uint32_t> changed =
        MaglevTable::ChangedSlots(*before, *after);
    const std::vector<uint32_t> own =
        SlotsOf(*before, static_cast<int>(removed));
    EXPECT_TRUE(
        std::includes(changed.begin(), changed.end(), own.begin(), own.end()))
        << "every slot of the removed backend moves";
    for (uint32_t s : own) {
      EXPECT_NE(OwnerEndpoint(*after, s), backends[removed].endpoint);
    }
    // The paper's algorithm on the same sets moves the same slots.
    std::vector<Endpoint> less_endpoints = endpoints;
    less_endpoints.erase(less_endpoints.begin() + removed);
    const size_t paper = internal::ReferenceChangedSlots(
        endpoints, reference_before, less_endpoints,
        internal::ReferenceMaglevTable(less_endpoints, m, 0));
    EXPECT_LE(changed.size(), paper);
    // Bounded: at this M/N the paper's algorithm averages ~2.6x; never
    // more than 5x the backend's own share.
    EXPECT_LE(changed.size(), 5 * own.size());
    ratio_sum += static_cast<double>(changed.size()) / own.size();
  }
  EXPECT_LT(ratio_sum / 12, 3.5);
}

TEST(Maglev, RemovingOneWeightedBackendMovesABoundedShare) {
  const auto backends = Weighted(IpFamily::kV6, Cycle(100, 4));
  const auto before = MustBuild(backends, 25013);
  ASSERT_NE(before, nullptr);
  for (size_t removed : {0, 1, 2, 3, 50, 99}) {
    auto less = backends;
    less.erase(less.begin() + removed);
    const auto after = MustBuild(less, 25013);
    ASSERT_NE(after, nullptr);
    const size_t own = before->slot_counts()[removed];
    const size_t changed = MaglevTable::CountChangedSlots(*before, *after);
    EXPECT_GE(changed, own);
    EXPECT_LE(changed, 6 * own) << "removed " << removed;
  }
}

TEST(Maglev, AddingOneBackendMovesABoundedShare) {
  const size_t n = 100;
  const uint32_t m = 10007;
  auto backends = Backends(IpFamily::kV4, n);
  const auto before = MustBuild(backends, m);
  backends.push_back({Ep(IpFamily::kV4, 5000), 1});
  const auto after = MustBuild(backends, m);
  ASSERT_TRUE(before && after);
  const size_t gained = after->slot_counts()[n];  // sorts last
  EXPECT_EQ(after->backends()[n].endpoint, Ep(IpFamily::kV4, 5000));
  EXPECT_NEAR(gained, m / (n + 1.0), 1.0);
  const std::vector<uint32_t> changed =
      MaglevTable::ChangedSlots(*before, *after);
  // Every slot the newcomer owns changed hands...
  for (uint32_t s : SlotsOf(*after, static_cast<int>(n))) {
    EXPECT_TRUE(std::binary_search(changed.begin(), changed.end(), s));
  }
  // ...and few others did.
  EXPECT_LE(changed.size(), 5 * gained);
}

// --- Empty and single ---

TEST(Maglev, EmptySetBuildsAnEmptyTable) {
  const auto table = MustBuild({}, 65537);
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(table->empty());
  EXPECT_EQ(table->size(), 65537u);
  EXPECT_THAT(table->owners(), IsEmpty());
  for (uint64_t h : {0ull, 1ull, ~0ull}) {
    EXPECT_EQ(table->Lookup(h), kNoBackend);
    EXPECT_EQ(table->LookupWithFallback(h, [](int) { return true; }),
              kNoBackend);
  }
  EXPECT_EQ(table->Owner(0), kNoBackend);
  EXPECT_EQ(table->Balance().max_over_mean, 0);
}

TEST_P(MaglevFamilyTest, SingleBackendOwnsEverySlot) {
  const auto table = MustBuild(Backends(GetParam(), 1), 65537);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->slot_counts()[0], 65537u);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(table->Lookup(rng()), 0);
  EXPECT_EQ(table->Balance().max_over_mean, 1.0);
}

// --- Lookup ---

TEST(Maglev, LookupMapsHashesToSlotsByMultiplyShift) {
  const auto table = MustBuild(Backends(IpFamily::kV4, 10), 1009);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->SlotOf(0), 0u);
  EXPECT_EQ(table->SlotOf(~uint64_t{0}), 1008u);
  EXPECT_EQ(table->SlotOf(uint64_t{1} << 63), 504u);  // floor(1009 / 2)
  for (uint32_t s = 0; s < 1009; ++s) {
    const uint64_t h = HashForSlot(s, 1009);
    ASSERT_EQ(table->SlotOf(h), s);
    if (s > 0) {
      ASSERT_EQ(table->SlotOf(h - 1), s - 1);
    }
    ASSERT_EQ(table->Lookup(h), table->Owner(s));
  }
}

// --- Fallback ---

TEST_P(MaglevFamilyTest, FallbackSkipsUnusableOwnerAndLeavesOthersAlone) {
  const uint32_t m = 1009;
  const auto table = MustBuild(Backends(GetParam(), 10), m);
  ASSERT_NE(table, nullptr);
  const int down = 3;
  auto usable = [down](int i) { return i != down; };
  for (uint32_t s = 0; s < m; ++s) {
    const int got = table->LookupWithFallback(HashForSlot(s, m), usable);
    const int owner = table->Owner(s);
    if (owner != down) {
      ASSERT_EQ(got, owner) << "slot " << s;
      continue;
    }
    uint32_t next = s;
    while (table->Owner(next) == down) next = (next + 1) % m;
    ASSERT_EQ(got, table->Owner(next)) << "slot " << s;
  }
}

TEST(Maglev, FallbackWrapsPastTheLastSlot) {
  const uint32_t m = 101;
  const auto table = MustBuild(Backends(IpFamily::kV4, 5), m);
  ASSERT_NE(table, nullptr);
  const int last_owner = table->Owner(m - 1);
  auto usable = [last_owner](int i) { return i != last_owner; };
  uint32_t next = 0;
  while (table->Owner(next) == last_owner) ++next;
  EXPECT_EQ(table->LookupWithFallback(HashForSlot(m - 1, m), usable),
            table->Owner(next));
}

TEST(Maglev, FallbackWithOneUsableBackendAlwaysFindsIt) {
  const auto table = MustBuild(Backends(IpFamily::kV6, 50), 5003);
  ASSERT_NE(table, nullptr);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(table->LookupWithFallback(rng(), [](int b) { return b == 17; }),
              17);
  }
}

TEST(Maglev, FallbackWithEveryBackendUnusableFindsNoneQuickly) {
  const size_t n = 50;
  const auto table = MustBuild(Backends(IpFamily::kV4, n), 65537);
  ASSERT_NE(table, nullptr);
  size_t calls = 0;
  EXPECT_EQ(table->LookupWithFallback(12345,
                                      [&calls](int) {
                                        ++calls;
                                        return false;
                                      }),
            kNoBackend);
  // The quick walk, then one check of each owning backend, not M probes.
  EXPECT_LE(calls, MaglevTable::kQuickWalk + 1 + n);
}

// --- ChangedSlots ---

TEST_P(MaglevFamilyTest, ChangedSlotsComparesOwnersByEndpoint) {
  const uint32_t m = 1009;
  const auto three = Backends(GetParam(), 3);
  auto two = three;
  two.erase(two.begin() + 1);  // backend 2 becomes index 1
  const auto before = MustBuild(three, m);
  const auto after = MustBuild(two, m);
  ASSERT_TRUE(before && after);
  std::vector<uint32_t> expected;
  size_t shifted_but_kept = 0;
  for (uint32_t s = 0; s < m; ++s) {
    if (OwnerEndpoint(*before, s) != OwnerEndpoint(*after, s)) {
      expected.push_back(s);
    } else if (before->Owner(s) != after->Owner(s)) {
      ++shifted_but_kept;
    }
  }
  EXPECT_THAT(MaglevTable::ChangedSlots(*before, *after),
              ElementsAreArray(expected));
  EXPECT_EQ(MaglevTable::CountChangedSlots(*before, *after), expected.size());
  EXPECT_GT(shifted_but_kept, 0u) << "indices shifted; endpoints did not";
  EXPECT_THAT(MaglevTable::ChangedSlots(*before, *before), IsEmpty());
}

TEST(Maglev, ChangedSlotsCountsEverySlotWhenTablesAreIncomparable) {
  const auto small = MustBuild(Backends(IpFamily::kV4, 3), 101);
  const auto large = MustBuild(Backends(IpFamily::kV4, 3), 103);
  const auto empty = MustBuild({}, 101);
  const auto empty_too = MustBuild({}, 101);
  ASSERT_TRUE(small && large && empty && empty_too);
  EXPECT_EQ(MaglevTable::ChangedSlots(*small, *large).size(), 103u);
  EXPECT_EQ(MaglevTable::CountChangedSlots(*small, *large), 103u);
  EXPECT_EQ(MaglevTable::ChangedSlots(*small, *empty).size(), 101u);
  EXPECT_EQ(MaglevTable::CountChangedSlots(*empty, *small), 101u);
  EXPECT_THAT(MaglevTable::ChangedSlots(*empty, *empty_too), IsEmpty());
}

// --- Bad input ---

struct BadCase {
  std::string name;
  std::vector<MaglevBackend> backends;
  uint32_t size;
  std::vector<std::string> message_parts;
};

class MaglevBadInputTest : public ::testing::TestWithParam<BadCase> {};

std::vector<MaglevBackend> WithDuplicate() {
  auto b = Backends(IpFamily::kV4, 4);
  b.push_back({Ep(IpFamily::kV4, 2), 7});
  return b;
}

std::vector<MaglevBackend> WithWeight(size_t index, uint32_t weight) {
  auto b = Backends(IpFamily::kV6, 3);
  b[index].weight = weight;
  return b;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MaglevBadInputTest,
    ::testing::Values(
        BadCase{"NotPrime",
                Backends(IpFamily::kV4, 3),
                65536,
                {"maglev table size 65536 is not prime",
                 "nearest primes: 65521, 65537"}},
        BadCase{
            "Zero", {}, 0, {"table size 0 is not prime", "nearest primes: 2"}},
        BadCase{
            "One", {}, 1, {"table size 1 is not prime", "nearest primes: 2"}},
        BadCase{"SmallerThanBackends",
                Backends(IpFamily::kV4, 10),
                7,
                {"table size 7 is smaller than the number of backends (10)",
                 "at least 11", "(1009)"}},
        BadCase{"TooLarge",
                Backends(IpFamily::kV4, 3),
                16777259,
                {"table size 16777259 exceeds the maximum 16777213"}},
        BadCase{"Duplicate",
                WithDuplicate(),
                101,
                {"duplicate backend 198.18.0.3:80"}},
        BadCase{"WeightTooLarge",
                WithWeight(1, 65536),
                101,
                {"backend [2001:db8::2]:80 weight 65536 exceeds the maximum "
                 "65535"}},
        BadCase{"AllWeightsZero",
                Backends(IpFamily::kV4, 3, 0),
                101,
                {"all 3 backends have weight 0"}}),
    [](const auto& info) { return info.param.name; });

TEST_P(MaglevBadInputTest, IsRejectedWithAMessageNamingTheValue) {
  const BadCase& c = GetParam();
  const absl::StatusOr<std::shared_ptr<const MaglevTable>> table =
      MaglevTable::Build(c.backends, c.size);
  EXPECT_THAT(table, StatusIs(absl::StatusCode::kInvalidArgument));
  for (const std::string& part : c.message_parts) {
    EXPECT_THAT(std::string(table.status().message()), HasSubstr(part));
  }
}

TEST(Maglev, RejectsMoreBackendsThanIndicesCanName) {
  const auto backends = Backends(IpFamily::kV6, MaglevTable::kMaxBackends + 1);
  EXPECT_THAT(MaglevTable::Build(backends, 655373),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("65536 backends exceed the maximum 65535")));
}

TEST(Maglev, MaxTableSizeIsTheLargestPrimeBelowTwoToTheTwentyFour) {
  EXPECT_TRUE(MaglevTable::IsPrime(MaglevTable::kMaxTableSize));
  for (uint32_t n = MaglevTable::kMaxTableSize + 1; n < (1u << 24); ++n) {
    EXPECT_FALSE(MaglevTable::IsPrime(n)) << n;
  }
  EXPECT_TRUE(MaglevTable::IsPrime(65537));
  EXPECT_TRUE(MaglevTable::IsPrime(655373));
  EXPECT_TRUE(MaglevTable::IsPrime(2));
  EXPECT_FALSE(MaglevTable::IsPrime(1));
  EXPECT_FALSE(MaglevTable::IsPrime(65535));
  EXPECT_FALSE(MaglevTable::IsPrime(4294967295u));
}

TEST(Maglev, AcceptsTheSmallestAndLargestTables) {
  EXPECT_THAT(MaglevTable::Build(Backends(IpFamily::kV4, 2), 2), IsOk());
  EXPECT_THAT(MaglevTable::CheckTableSize(MaglevTable::kMaxTableSize, 1000),
              IsOk());
}

// --- The mh scheduler ---

std::vector<SchedBackend> Sched(IpFamily family, size_t n) {
  std::vector<SchedBackend> backends(n);
  for (size_t i = 0; i < n; ++i) {
    backends[i].endpoint = Ep(family, i);
    backends[i].weight = 1;
  }
  return backends;
}

FlowKey Flow(IpFamily family, uint32_t client, uint16_t sport,
             uint16_t dport = 443) {
  if (family == IpFamily::kV4) {
    return FlowKey::Make(IpAddress::FromV4(0xcb007100u + client % 256), sport,
                         IpAddress::FromV4(0xc0000201), dport, kProtoTcp);
  }
  std::array<uint8_t, 16> src = {0x20, 0x01, 0x0d, 0xb8, 0xff};
  src[14] = static_cast<uint8_t>(client >> 8);
  src[15] = static_cast<uint8_t>(client);
  std::array<uint8_t, 16> dst = {0x20, 0x01, 0x0d, 0xb8, 0xaa};
  dst[15] = 1;
  return FlowKey::Make(IpAddress::FromV6Bytes(src), sport,
                       IpAddress::FromV6Bytes(dst), dport, kProtoTcp);
}

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

std::unique_ptr<MaglevScheduler> MustCreate(
    const SchedulerConfig& config, const std::vector<SchedBackend>& backends) {
  absl::StatusOr<std::unique_ptr<MaglevScheduler>> s =
      MaglevScheduler::Create(config, backends);
  EXPECT_THAT(s, IsOk());
  return s.ok() ? *std::move(s) : nullptr;
}

SchedulerConfig MhConfig(uint32_t size = 1009, bool fallback = false) {
  SchedulerConfig config;
  config.kind = SchedulerKind::kMh;
  config.maglev_table_size = size;
  config.seed = 77;
  config.fallback = fallback;
  return config;
}

class MhSchedulerTest : public ::testing::TestWithParam<IpFamily> {};

INSTANTIATE_TEST_SUITE_P(Families, MhSchedulerTest,
                         ::testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const auto& info) {
                           return info.param == IpFamily::kV4 ? "V4" : "V6";
                         });

TEST_P(MhSchedulerTest, PicksTheTableOwnerOfTheFlowHash) {
  const auto backends = Sched(GetParam(), 20);
  auto s = MustCreate(MhConfig(), backends);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind(), SchedulerKind::kMh);
  EXPECT_EQ(s->hash_inputs(), HashInputs::kFiveTuple);
  for (uint16_t port = 1000; port < 1200; ++port) {
    const FlowKey flow = Flow(GetParam(), port, port);
    const int expected =
        s->table()->Lookup(HashFlow(flow, HashInputs::kFiveTuple, 77));
    ASSERT_EQ(s->Pick(flow, backends, kNow), expected);
  }
}

TEST_P(MhSchedulerTest, SourceIpInputsSendEveryFlowOfAClientToOneBackend) {
  const auto backends = Sched(GetParam(), 20);
  SchedulerConfig config = MhConfig();
  config.hash_inputs = HashInputs::kSourceIp;
  auto s = MustCreate(config, backends);
  ASSERT_NE(s, nullptr);
  std::set<int> per_client;
  for (uint16_t port = 1000; port < 1100; ++port) {
    per_client.insert(
        s->Pick(Flow(GetParam(), 7, port, port % 3 + 80), backends, kNow));
  }
  EXPECT_EQ(per_client.size(), 1u);
  std::set<int> across_clients;
  for (uint32_t client = 0; client < 100; ++client) {
    across_clients.insert(
        s->Pick(Flow(GetParam(), client, 1000), backends, kNow));
  }
  EXPECT_GT(across_clients.size(), 5u);
}

TEST_P(MhSchedulerTest, FiveTupleSpreadsOneClientsFlows) {
  const auto backends = Sched(GetParam(), 20);
  auto s = MustCreate(MhConfig(), backends);
  ASSERT_NE(s, nullptr);
  std::set<int> picked;
  for (uint16_t port = 1000; port < 1100; ++port) {
    picked.insert(s->Pick(Flow(GetParam(), 7, port), backends, kNow));
  }
  EXPECT_GT(picked.size(), 5u);
}

TEST_P(MhSchedulerTest, PortFlagHashesSourceIpAndPortOnly) {
  const auto backends = Sched(GetParam(), 20);
  SchedulerConfig config = MhConfig();
  config.port = true;
  auto s = MustCreate(config, backends);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->hash_inputs(), HashInputs::kSourceIpPort);
  // Same client and source port, other destination ports: one backend.
  std::set<int> same_port;
  for (uint16_t dport = 1; dport < 100; ++dport) {
    same_port.insert(s->Pick(Flow(GetParam(), 7, 5555, dport), backends, kNow));
  }
  EXPECT_EQ(same_port.size(), 1u);
  std::set<int> other_ports;
  for (uint16_t sport = 1000; sport < 1100; ++sport) {
    other_ports.insert(s->Pick(Flow(GetParam(), 7, sport), backends, kNow));
  }
  EXPECT_GT(other_ports.size(), 5u);
}

struct InputsCase {
  bool port;
  HashInputs configured;
  HashInputs hashed;
};

TEST(MhScheduler, HashInputsFollowTheConfigAndThePortFlag) {
  const InputsCase cases[] = {
      {false, HashInputs::kFiveTuple, HashInputs::kFiveTuple},
      {false, HashInputs::kThreeTuple, HashInputs::kThreeTuple},
      {false, HashInputs::kSourceIp, HashInputs::kSourceIp},
      {false, HashInputs::kSourceIpPort, HashInputs::kSourceIpPort},
      {true, HashInputs::kFiveTuple, HashInputs::kSourceIpPort},
      {true, HashInputs::kSourceIp, HashInputs::kSourceIpPort},
      {true, HashInputs::kSourceIpPort, HashInputs::kSourceIpPort},
  };
  for (const InputsCase& c : cases) {
    SchedulerConfig config;
    config.port = c.port;
    config.hash_inputs = c.configured;
    absl::StatusOr<HashInputs> got = MaglevHashInputs(config);
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(*got, c.hashed);
  }
  SchedulerConfig contradictory;
  contradictory.port = true;
  contradictory.hash_inputs = HashInputs::kThreeTuple;
  EXPECT_THAT(MaglevHashInputs(contradictory),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("mh-port"), HasSubstr("three-tuple"))));
  EXPECT_THAT(CreateMaglevScheduler(contradictory, Sched(IpFamily::kV4, 3)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Flows whose table owner is `index`, and flows whose owner is not.
struct FlowSplit {
  std::vector<FlowKey> owned;
  std::vector<FlowKey> others;
};

FlowSplit SplitFlows(const MaglevScheduler& s, IpFamily family, int index) {
  FlowSplit split;
  for (uint32_t i = 0; i < 3000; ++i) {
    const FlowKey flow = Flow(family, i, static_cast<uint16_t>(1024 + i));
    const int owner = s.table()->Lookup(HashFlow(flow, s.hash_inputs(), 77));
    (owner == index ? split.owned : split.others).push_back(flow);
  }
  return split;
}

// The first backend walking from the flow's slot that passes `ok`.
int Walk(const MaglevScheduler& s, const FlowKey& flow,
         const std::vector<SchedBackend>& backends,
         bool (*ok)(const SchedBackend&)) {
  const MaglevTable& t = *s.table();
  uint32_t slot = t.SlotOf(HashFlow(flow, s.hash_inputs(), 77));
  for (uint32_t i = 0; i < t.size(); ++i, slot = (slot + 1) % t.size()) {
    if (ok(backends[t.Owner(slot)])) return t.Owner(slot);
  }
  return kNoBackend;
}

TEST_P(MhSchedulerTest, UnavailableBackendIsWalkedPastWithOrWithoutFallback) {
  for (bool fallback : {false, true}) {
    auto backends = Sched(GetParam(), 10);
    auto s = MustCreate(MhConfig(1009, fallback), backends);
    ASSERT_NE(s, nullptr);
    const FlowSplit split = SplitFlows(*s, GetParam(), 4);
    ASSERT_FALSE(split.owned.empty());
    std::vector<int> before;
    for (const FlowKey& f : split.others) {
      before.push_back(s->Pick(f, backends, kNow));
    }
    backends[4].available = false;  // this node cannot reach it
    for (const FlowKey& f : split.owned) {
      const int got = s->Pick(f, backends, kNow);
      EXPECT_NE(got, 4);
      EXPECT_NE(got, kNoBackend) << "fallback " << fallback;
      EXPECT_EQ(got, Walk(*s, f, backends,
                          [](const SchedBackend& b) { return b.available; }));
    }
    for (size_t i = 0; i < split.others.size(); ++i) {
      ASSERT_EQ(s->Pick(split.others[i], backends, kNow), before[i])
          << "other backends' flows stay put";
    }
  }
}

TEST_P(MhSchedulerTest, OverloadedOwnerDropsWithoutFallbackAndWalksWithIt) {
  for (bool fallback : {false, true}) {
    auto backends = Sched(GetParam(), 10);
    auto s = MustCreate(MhConfig(1009, fallback), backends);
    ASSERT_NE(s, nullptr);
    const FlowSplit split = SplitFlows(*s, GetParam(), 6);
    ASSERT_FALSE(split.owned.empty());
    backends[6].overloaded = true;
    for (const FlowKey& f : split.owned) {
      const int got = s->Pick(f, backends, kNow);
      if (!fallback) {
        EXPECT_EQ(got, kNoBackend) << "IPVS mh without mh-fallback";
      } else {
        EXPECT_EQ(got, Walk(*s, f, backends, [](const SchedBackend& b) {
                    return b.CanTakeNewFlow();
                  }));
        EXPECT_NE(got, 6);
      }
    }
    for (const FlowKey& f : split.others) {
      EXPECT_NE(s->Pick(f, backends, kNow), kNoBackend);
    }
  }
}

// A shared table built while a backend had weight: its weight is now 0 in
// the worker's view, which counts as unavailable for IPVS (quiesced).
TEST_P(MhSchedulerTest, QuiescedOwnerInAStaleTableFollowsTheFallbackFlag) {
  for (bool fallback : {false, true}) {
    auto backends = Sched(GetParam(), 10);
    auto s = MustCreate(MhConfig(1009, fallback), backends);
    ASSERT_NE(s, nullptr);
    const FlowSplit split = SplitFlows(*s, GetParam(), 2);
    ASSERT_FALSE(split.owned.empty());
    backends[2].weight = 0;
    for (const FlowKey& f : split.owned) {
      const int got = s->Pick(f, backends, kNow);
      EXPECT_EQ(got == kNoBackend, !fallback);
      EXPECT_NE(got, 2);
    }
  }
}

TEST_P(MhSchedulerTest,
       UnavailableOwnerWalkingOntoAnOverloadedOneDropsWithoutFallback) {
  // Every backend but 0 is overloaded; backend 0 is unreachable from here.
  auto backends = Sched(GetParam(), 4);
  auto s = MustCreate(MhConfig(101, /*fallback=*/false), backends);
  ASSERT_NE(s, nullptr);
  const FlowSplit split = SplitFlows(*s, GetParam(), 0);
  ASSERT_FALSE(split.owned.empty());
  backends[0].available = false;
  for (size_t i = 1; i < 4; ++i) backends[i].overloaded = true;
  for (const FlowKey& f : split.owned) {
    EXPECT_EQ(s->Pick(f, backends, kNow), kNoBackend);
  }
}

TEST_P(MhSchedulerTest, NoReachableBackendPicksNone) {
  for (bool fallback : {false, true}) {
    auto backends = Sched(GetParam(), 8);
    auto s = MustCreate(MhConfig(1009, fallback), backends);
    ASSERT_NE(s, nullptr);
    for (auto& b : backends) b.available = false;
    for (uint16_t port = 1; port < 50; ++port) {
      EXPECT_EQ(s->Pick(Flow(GetParam(), port, port), backends, kNow),
                kNoBackend);
    }
  }
}

TEST_P(MhSchedulerTest, ZeroWeightBackendsGetNoNewFlows) {
  auto backends = Sched(GetParam(), 5);
  backends[1].weight = 0;
  backends[3].weight = 0;
  auto s = MustCreate(MhConfig(), backends);
  ASSERT_NE(s, nullptr);
  std::set<int> picked;
  for (uint32_t i = 0; i < 2000; ++i) {
    picked.insert(
        s->Pick(Flow(GetParam(), i, static_cast<uint16_t>(i)), backends, kNow));
  }
  EXPECT_EQ(picked, (std::set<int>{0, 2, 4}));
}

TEST(MhScheduler, AllQuiescedBackendsPickNone) {
  auto backends = Sched(IpFamily::kV4, 3);
  for (auto& b : backends) b.weight = 0;
  auto s = MustCreate(MhConfig(), backends);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->table()->empty());
  EXPECT_EQ(s->Pick(Flow(IpFamily::kV4, 1, 1), backends, kNow), kNoBackend);
  // The table size is still checked against the whole set.
  EXPECT_THAT(MaglevScheduler::Create(MhConfig(2), backends),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("smaller than the number of backends (3)")));
}

TEST(MhScheduler, EmptyBackendSetPicksNone) {
  auto s = MustCreate(MhConfig(), {});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Pick(Flow(IpFamily::kV6, 1, 1), {}, kNow), kNoBackend);
}

TEST(MhScheduler, RejectsBackendsOutOfCanonicalOrder) {
  auto backends = Sched(IpFamily::kV4, 3);
  std::swap(backends[0], backends[2]);
  EXPECT_THAT(CreateMaglevScheduler(MhConfig(), backends),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("canonical order"),
                             HasSubstr("198.18.0.3:80 (index 0)"))));
  auto duplicated = Sched(IpFamily::kV4, 3);
  duplicated[2].endpoint = duplicated[1].endpoint;
  EXPECT_THAT(CreateMaglevScheduler(MhConfig(), duplicated),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("canonical order")));
}

TEST(MhScheduler, RejectsABadTableSize) {
  EXPECT_THAT(CreateMaglevScheduler(MhConfig(65536), Sched(IpFamily::kV4, 3)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("65536 is not prime")));
}

TEST(MhScheduler, WorkersShareOneTableBuiltOnTheControlPath) {
  const auto backends = Sched(IpFamily::kV6, 30);
  std::vector<MaglevBackend> input;
  for (const auto& b : backends) input.push_back({b.endpoint, b.weight});
  const auto table = MustBuild(input, 1009, 77);
  ASSERT_NE(table, nullptr);
  auto a = MaglevScheduler::Create(MhConfig(), table, backends);
  auto b = MaglevScheduler::Create(MhConfig(), table, backends);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ((*a)->table().get(), table.get());
  EXPECT_EQ((*b)->table().get(), table.get());
  // Same picks as a scheduler that built its own table.
  auto own = MustCreate(MhConfig(), backends);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->table()->Digest(), table->Digest());
  for (uint16_t p = 0; p < 300; ++p) {
    const FlowKey f = Flow(IpFamily::kV6, p, p);
    ASSERT_EQ((*a)->Pick(f, backends, kNow), own->Pick(f, backends, kNow));
  }
  EXPECT_THAT(CreateMaglevScheduler(MhConfig(), table, backends), IsOk());
}

TEST(MhScheduler, RejectsASharedTableBuiltForOtherSettings) {
  const auto backends = Sched(IpFamily::kV4, 5);
  std::vector<MaglevBackend> input;
  for (const auto& b : backends) input.push_back({b.endpoint, b.weight});
  const auto table = MustBuild(input, 1009, 77);
  ASSERT_NE(table, nullptr);
  EXPECT_THAT(MaglevScheduler::Create(MhConfig(1013), table, backends),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("size 1009 and seed 77")));
  auto fewer = backends;
  fewer.pop_back();
  EXPECT_THAT(MaglevScheduler::Create(MhConfig(), table, fewer),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("5 backends but the service has 4")));
  auto other = backends;
  other[2].endpoint = Ep(IpFamily::kV4, 2000);
  std::sort(other.begin(), other.end(), [](const auto& x, const auto& y) {
    return x.endpoint < y.endpoint;
  });
  EXPECT_THAT(MaglevScheduler::Create(MhConfig(), table, other),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("rebuild the table")));
  EXPECT_THAT(MaglevScheduler::Create(MhConfig(), nullptr, backends),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MhScheduler, ResetRebuildsForTheNewSetAndKeepsSurvivorsFlows) {
  auto backends = Sched(IpFamily::kV4, 20);
  auto s = MustCreate(MhConfig(2003), backends);
  ASSERT_NE(s, nullptr);
  std::vector<FlowKey> flows;
  std::vector<Endpoint> before;
  for (uint32_t i = 0; i < 2000; ++i) {
    flows.push_back(Flow(IpFamily::kV4, i, static_cast<uint16_t>(i)));
    before.push_back(backends[s->Pick(flows.back(), backends, kNow)].endpoint);
  }
  const Endpoint removed = backends[5].endpoint;
  backends.erase(backends.begin() + 5);
  ASSERT_THAT(s->Reset(backends), IsOk());
  size_t moved = 0;
  size_t was_removed = 0;
  for (size_t i = 0; i < flows.size(); ++i) {
    const int got = s->Pick(flows[i], backends, kNow);
    ASSERT_NE(got, kNoBackend);
    EXPECT_NE(backends[got].endpoint, removed);
    if (before[i] == removed) {
      ++was_removed;
    } else if (backends[got].endpoint != before[i]) {
      ++moved;
    }
  }
  EXPECT_GT(was_removed, 0u);
  EXPECT_LT(moved, 4 * was_removed) << "survivors mostly keep their flows";
  // A bad set leaves the scheduler on its previous table.
  const auto table = s->table();
  auto unsorted = backends;
  std::swap(unsorted[0], unsorted[1]);
  EXPECT_THAT(s->Reset(unsorted), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(s->table(), table);
  EXPECT_THAT(s->ResetTable(nullptr, backends),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(s->table(), table);
}

TEST(MhScheduler, ResetTableAdoptsANewSharedTable) {
  auto backends = Sched(IpFamily::kV6, 8);
  auto s = MustCreate(MhConfig(), backends);
  ASSERT_NE(s, nullptr);
  backends.pop_back();
  std::vector<MaglevBackend> input;
  for (const auto& b : backends) input.push_back({b.endpoint, b.weight});
  const auto table = MustBuild(input, 1009, 77);
  ASSERT_NE(table, nullptr);
  ASSERT_THAT(s->ResetTable(table, backends), IsOk());
  EXPECT_EQ(s->table(), table);
  for (uint16_t p = 0; p < 200; ++p) {
    const int got = s->Pick(Flow(IpFamily::kV6, p, p), backends, kNow);
    ASSERT_GE(got, 0);
    ASSERT_LT(got, 7);
  }
}

}  // namespace
}  // namespace anylb::scheduler
