#include "lbnode/scheduler/ipvs_schedulers.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/testing/allocation_counter.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::scheduler {

// PrintTo names a scheduler kind in test output (found by ADL).
void PrintTo(SchedulerKind kind, std::ostream* os) {
  *os << SchedulerKindName(kind);
}

namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

IpAddress Ip(std::string_view text) { return IpAddress::Parse(text).value(); }

// Host returns the n-th address (n >= 1) of 10.0.0.0/8 or 2001:db8::/64.
IpAddress Host(IpFamily family, uint32_t n) {
  if (family == IpFamily::kV4) return IpAddress::FromV4(0x0a000000u + n);
  uint8_t bytes[16] = {0x20, 0x01, 0x0d, 0xb8};
  bytes[12] = static_cast<uint8_t>(n >> 24);
  bytes[13] = static_cast<uint8_t>(n >> 16);
  bytes[14] = static_cast<uint8_t>(n >> 8);
  bytes[15] = static_cast<uint8_t>(n);
  return IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(bytes));
}

// Client returns the n-th client address, in 198.51.100.0/22-ish space or
// 2001:db8:c::/64: distinct from the backends.
IpAddress Client(IpFamily family, uint32_t n) {
  if (family == IpFamily::kV4) return IpAddress::FromV4(0xc6330000u + n * 7919);
  uint8_t bytes[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0c};
  const uint64_t v = uint64_t{n} * 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<uint8_t>(v >> (8 * i));
  return IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(bytes));
}

// Backends makes one backend per weight: Host(1):80, Host(2):80, ...
// (canonical order).
std::vector<SchedBackend> Backends(const std::vector<uint32_t>& weights,
                                   IpFamily family = IpFamily::kV4) {
  std::vector<SchedBackend> backends;
  for (size_t i = 0; i < weights.size(); ++i) {
    SchedBackend b;
    b.endpoint = Endpoint(Host(family, static_cast<uint32_t>(i + 1)), 80);
    b.weight = weights[i];
    backends.push_back(b);
  }
  return backends;
}

FlowKey Flow(const IpAddress& src, uint16_t src_port, const IpAddress& dst,
             uint16_t dst_port = 80, uint8_t protocol = kProtoTcp) {
  return FlowKey::Make(src, src_port, dst, dst_port, protocol);
}

// NthFlow is the n-th of a varied set of flows (sources, ports and
// destinations all change).
FlowKey NthFlow(IpFamily family, uint32_t n) {
  return Flow(Client(family, n), static_cast<uint16_t>(1024 + n * 31),
              family == IpFamily::kV4 ? IpAddress::FromV4(0xcb007100u + n % 97)
                                      : Client(family, 1'000'000 + n % 97));
}

std::unique_ptr<Scheduler> Make(SchedulerKind kind,
                                std::span<const SchedBackend> backends,
                                SchedulerConfig config = {}) {
  config.kind = kind;
  auto scheduler = CreateIpvsScheduler(config, backends);
  EXPECT_THAT(scheduler, IsOk());
  return scheduler.ok() ? std::move(scheduler).value() : nullptr;
}

std::vector<int> PickN(Scheduler& s, std::span<const SchedBackend> backends,
                       int n) {
  std::vector<int> picks;
  for (int i = 0; i < n; ++i) {
    picks.push_back(s.Pick(NthFlow(IpFamily::kV4, i), backends, kT0));
  }
  return picks;
}

// Letters turns picks into "AAB-" (A = index 0, '-' = kNoBackend).
std::string Letters(const std::vector<int>& picks) {
  std::string s;
  for (int p : picks) s += p < 0 ? '-' : static_cast<char>('A' + p);
  return s;
}

constexpr SchedulerKind kIpvsKinds[] = {
    SchedulerKind::kRr,   SchedulerKind::kWrr,  SchedulerKind::kLc,
    SchedulerKind::kWlc,  SchedulerKind::kLblc, SchedulerKind::kLblcr,
    SchedulerKind::kDh,   SchedulerKind::kSh,   SchedulerKind::kSed,
    SchedulerKind::kNq,   SchedulerKind::kFo,   SchedulerKind::kOvf,
    SchedulerKind::kTwos,
};

std::string KindTestName(const testing::TestParamInfo<SchedulerKind>& info) {
  return std::string(SchedulerKindName(info.param));
}

// --- Properties every scheduler has ---

class EveryIpvsScheduler : public testing::TestWithParam<SchedulerKind> {};

INSTANTIATE_TEST_SUITE_P(Kinds, EveryIpvsScheduler,
                         testing::ValuesIn(kIpvsKinds), KindTestName);

TEST_P(EveryIpvsScheduler, ReportsItsKind) {
  auto backends = Backends({1, 1});
  auto s = Make(GetParam(), backends);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind(), GetParam());
}

TEST_P(EveryIpvsScheduler, EmptySetPicksNothing) {
  std::vector<SchedBackend> none;
  auto s = Make(GetParam(), none);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(s->Pick(NthFlow(IpFamily::kV4, i), none, kT0), kNoBackend);
  }
}

TEST_P(EveryIpvsScheduler, SingleBackendTakesEveryFlow) {
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    auto backends = Backends({1}, family);
    auto s = Make(GetParam(), backends);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(s->Pick(NthFlow(family, i), backends, kT0), 0);
    }
  }
}

TEST_P(EveryIpvsScheduler, QuiescedBackendGetsNoNewFlow) {
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    auto backends = Backends({1, 0, 1}, family);
    auto s = Make(GetParam(), backends);
    ASSERT_NE(s, nullptr);
    int picked = 0;
    for (int i = 0; i < 300; ++i) {
      const int p = s->Pick(NthFlow(family, i), backends, kT0);
      EXPECT_NE(p, 1) << "flow " << i;
      if (p >= 0) ++picked;
    }
    EXPECT_GT(picked, 0);
  }
}

TEST_P(EveryIpvsScheduler, UnreachableBackendIsPassedOver) {
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    auto backends = Backends({1, 1, 1}, family);
    backends[1].available = false;
    auto s = Make(GetParam(), backends);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 300; ++i) {
      const int p = s->Pick(NthFlow(family, i), backends, kT0);
      EXPECT_TRUE(p == 0 || p == 2) << "flow " << i << " got " << p;
    }
  }
}

TEST_P(EveryIpvsScheduler, AllOverloadedPicksNothing) {
  auto backends = Backends({1, 2, 3});
  for (auto& b : backends) b.overloaded = true;
  auto s = Make(GetParam(), backends);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(s->Pick(NthFlow(IpFamily::kV4, i), backends, kT0), kNoBackend);
  }
}

TEST_P(EveryIpvsScheduler, AllQuiescedPicksNothing) {
  auto backends = Backends({0, 0, 0});
  auto s = Make(GetParam(), backends);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(s->Pick(NthFlow(IpFamily::kV4, i), backends, kT0), kNoBackend);
  }
}

TEST_P(EveryIpvsScheduler, SetOfAnotherSizeThanResetGetsNoBackend) {
  auto backends = Backends({1, 1, 1});
  auto s = Make(GetParam(), backends);
  ASSERT_NE(s, nullptr);
  std::span<const SchedBackend> shorter(backends.data(), 2);
  EXPECT_EQ(s->Pick(NthFlow(IpFamily::kV4, 0), shorter, kT0), kNoBackend);
}

TEST_P(EveryIpvsScheduler, RejectsBackendsOutOfCanonicalOrder) {
  auto backends = Backends({1, 1});
  std::swap(backends[0], backends[1]);
  SchedulerConfig config;
  config.kind = GetParam();
  EXPECT_THAT(
      CreateIpvsScheduler(config, backends),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(std::string(SchedulerKindName(GetParam()))),
                     HasSubstr("10.0.0.2:80"), HasSubstr("canonical"))));
}

TEST_P(EveryIpvsScheduler, RejectsDuplicateBackends) {
  auto backends = Backends({1, 1});
  backends[1].endpoint = backends[0].endpoint;
  SchedulerConfig config;
  config.kind = GetParam();
  EXPECT_THAT(
      CreateIpvsScheduler(config, backends),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("10.0.0.1:80")));
}

TEST_P(EveryIpvsScheduler, FailedResetKeepsThePreviousSet) {
  auto backends = Backends({1, 1});
  auto s = Make(GetParam(), backends);
  ASSERT_NE(s, nullptr);
  auto bad = Backends({1, 1, 1});
  std::swap(bad[0], bad[2]);
  EXPECT_THAT(s->Reset(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  const int p = s->Pick(NthFlow(IpFamily::kV4, 1), backends, kT0);
  EXPECT_TRUE(p == 0 || p == 1) << p;
}

TEST_P(EveryIpvsScheduler, PickNeverAllocates) {
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    auto backends = Backends({1, 2, 3, 0, 5}, family);
    backends[2].available = false;
    backends[4].overloaded = true;
    SchedulerConfig config;
    config.locality_cache_entries = 8;  // small: misses evict
    config.fallback = GetParam() == SchedulerKind::kSh;
    auto s = Make(GetParam(), backends, config);
    ASSERT_NE(s, nullptr);
    std::vector<FlowKey> flows;
    for (uint32_t i = 0; i < 500; ++i) flows.push_back(NthFlow(family, i));
    int picked = 0;
    alloc_testing::StartCountingAllocations();
    for (uint32_t i = 0; i < flows.size(); ++i) {
      backends[i % 5].active = i % 7;  // loads move, choices change
      if (s->Pick(flows[i], backends, kT0 + absl::Hours(i)) >= 0) ++picked;
    }
    const uint64_t allocations = alloc_testing::StopCountingAllocations();
    EXPECT_EQ(allocations, 0u);
    EXPECT_GT(picked, 0);
  }
}

TEST(CreateIpvsScheduler, RejectsMh) {
  SchedulerConfig config;
  config.kind = SchedulerKind::kMh;
  EXPECT_THAT(CreateIpvsScheduler(config, Backends({1})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mh")));
}

// --- rr ---

TEST(RoundRobin, CyclesThroughBackendsInCanonicalOrder) {
  auto backends = Backends({1, 5, 1});
  auto s = Make(SchedulerKind::kRr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, 7)), "ABCABCA");
}

TEST(RoundRobin, SkipsUnusableBackends) {
  auto backends = Backends({1, 1, 1, 1});
  backends[1].overloaded = true;
  backends[3].weight = 0;
  auto s = Make(SchedulerKind::kRr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, 5)), "ACACA");
}

TEST(RoundRobin, ResetContinuesAfterTheLastPickedEndpoint) {
  auto backends = Backends({1, 1, 1});  // A=.1 B=.2 C=.3
  auto s = Make(SchedulerKind::kRr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, 2)), "AB");
  // A new backend sorts first: indices shift, but B is still the last pick.
  auto grown = Backends({1, 1, 1, 1});
  grown[0].endpoint = Endpoint(Ip("10.0.0.0"), 80);
  grown[1].endpoint = backends[0].endpoint;
  grown[2].endpoint = backends[1].endpoint;
  grown[3].endpoint = backends[2].endpoint;
  ASSERT_THAT(s->Reset(grown), IsOk());
  EXPECT_EQ(s->Pick(NthFlow(IpFamily::kV4, 0), grown, kT0), 3);  // C
}

TEST(RoundRobin, ResetAfterRemovingTheLastPickContinuesWithItsSuccessor) {
  auto backends = Backends({1, 1, 1, 1});  // A B C D
  auto s = Make(SchedulerKind::kRr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, 2)), "AB");
  std::vector<SchedBackend> without_b = {backends[0], backends[2], backends[3]};
  ASSERT_THAT(s->Reset(without_b), IsOk());
  EXPECT_EQ(Letters(PickN(*s, without_b, 3)), "BCA");  // C D A, re-lettered
}

// --- wrr ---

struct WrrCase {
  std::string description;
  std::vector<uint32_t> weights;
  std::vector<bool> overloaded;
  std::string expected;

  friend void PrintTo(const WrrCase& c, std::ostream* os) {
    *os << c.description;
  }
};

class WeightedRoundRobinSequence : public testing::TestWithParam<WrrCase> {};

TEST_P(WeightedRoundRobinSequence, MatchesIpvs) {
  const WrrCase& c = GetParam();
  auto backends = Backends(c.weights);
  for (size_t i = 0; i < c.overloaded.size(); ++i) {
    backends[i].overloaded = c.overloaded[i];
  }
  auto s = Make(SchedulerKind::kWrr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, static_cast<int>(c.expected.size()))),
            c.expected)
      << c.description;
}

INSTANTIATE_TEST_SUITE_P(
    HandWorked, WeightedRoundRobinSequence,
    testing::Values(
        WrrCase{"4,3,2: passes at cw 4, 3, 2, 1",
                {4, 3, 2},
                {},
                "AABABCABC"
                "AABABCABC"},
        WrrCase{"equal weights are round robin", {1, 1, 1}, {}, "ABCABC"},
        WrrCase{"gcd 2: cw 3 then 1", {4, 2}, {}, "AABAAB"},
        WrrCase{"gcd 3, one level", {3, 0, 3}, {}, "ACACAC"},
        WrrCase{"weight 0 skipped", {0, 2, 1}, {}, "BBCBBC"},
        WrrCase{"overloaded skipped, others keep their rhythm",
                {4, 3, 2},
                {true, false, false},
                "BBCBCBBCBC"},
        WrrCase{"all overloaded", {4, 3}, {true, true}, "----"}));

// ReferenceWrr is ip_vs_wrr_schedule transcribed literally (with its stop,
// last_pass and restarted bookkeeping), to check the scheduler's shortcut.
class ReferenceWrr {
 public:
  explicit ReferenceWrr(const std::vector<SchedBackend>& backends) {
    int64_t g = 0, max = 0;
    for (const auto& b : backends) {
      if (b.weight > 0) g = g ? std::gcd(g, int64_t{b.weight}) : b.weight;
      max = std::max<int64_t>(max, b.weight);
    }
    di_ = g ? g : 1;
    mw_ = max - (di_ - 1);
    cw_ = mw_;
  }

  int Pick(const std::vector<SchedBackend>& b) {
    constexpr int kHead = -1;
    const int n = static_cast<int>(b.size());
    if (mw_ == 0) return kNoBackend;
    int dest = cl_;
    const int last = dest;
    int stop = -2;  // NULL
    bool last_pass = false, restarted = false;
    for (;;) {
      for (dest = dest + 1; dest < n; ++dest) {
        if (!b[dest].overloaded && b[dest].available &&
            int64_t{b[dest].weight} >= cw_) {
          cl_ = dest;
          return dest;
        }
        if (dest == stop) {
          cl_ = dest;
          return kNoBackend;
        }
      }
      dest = kHead;
      cw_ -= di_;
      if (cw_ <= 0) {
        cw_ = mw_;
        if (last_pass || last == kHead) {
          cl_ = kHead;
          return kNoBackend;
        }
        restarted = true;
      }
      last_pass = cw_ <= di_;
      if (last_pass && restarted && last != kHead) stop = last;
    }
  }

 private:
  int cl_ = -1;
  int64_t cw_, mw_, di_;
};

TEST(WeightedRoundRobin, AgreesWithALiteralTranscriptionOfIpvs) {
  uint64_t rng = 12345;
  auto next = [&rng]() {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(rng >> 33);
  };
  for (int round = 0; round < 200; ++round) {
    const int n = 1 + next() % 6;
    std::vector<uint32_t> weights;
    const uint32_t scale = (next() % 3 == 0) ? 1 + next() % 5 : 1;
    for (int i = 0; i < n; ++i) {
      // Mostly small weights; sometimes a huge one, to exercise the skip of
      // passes that cannot hit.
      uint32_t w = (next() % 10 == 0) ? 1000 + next() % 50 : next() % 7;
      weights.push_back(w * scale);
    }
    auto backends = Backends(weights);
    auto s = Make(SchedulerKind::kWrr, backends);
    ReferenceWrr reference(backends);
    for (int step = 0; step < 300; ++step) {
      if (next() % 8 == 0) {
        auto& b = backends[next() % n];
        b.overloaded = !b.overloaded;
      }
      const int want = reference.Pick(backends);
      const int got = s->Pick(NthFlow(IpFamily::kV4, step), backends, kT0);
      ASSERT_EQ(got, want) << "round " << round << " step " << step;
    }
  }
}

TEST(WeightedRoundRobin, ResetRestartsTheListAtTheCurrentWeight) {
  auto backends = Backends({4, 3, 2});
  auto s = Make(SchedulerKind::kWrr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, 3)), "AAB");  // now at cw 3
  ASSERT_THAT(s->Reset(backends), IsOk());
  EXPECT_EQ(Letters(PickN(*s, backends, 9)), "ABABCABCA");
}

TEST(WeightedRoundRobin, ResetAdoptsNewWeights) {
  auto backends = Backends({4, 3, 2});
  auto s = Make(SchedulerKind::kWrr, backends);
  EXPECT_EQ(Letters(PickN(*s, backends, 1)), "A");
  auto equal = Backends({1, 1, 1});
  ASSERT_THAT(s->Reset(equal), IsOk());  // cw 4 > new max: back to the top
  EXPECT_EQ(Letters(PickN(*s, equal, 6)), "ABCABC");
  auto doubled = Backends({4, 2, 2});  // di 2: cw snaps to 1 mod 2
  ASSERT_THAT(s->Reset(doubled), IsOk());
  EXPECT_EQ(Letters(PickN(*s, doubled, 8)), "ABCAABCA");
}

// --- lc, wlc, sed, nq, fo, ovf: the choice for given counts ---

struct Load {
  uint32_t weight;
  uint32_t active = 0;
  uint32_t inactive = 0;
  bool overloaded = false;
};

struct PickCase {
  SchedulerKind kind;
  std::string description;
  std::vector<Load> loads;
  int expected;

  friend void PrintTo(const PickCase& c, std::ostream* os) {
    *os << SchedulerKindName(c.kind) << ": " << c.description;
  }
};

class LoadBasedPick : public testing::TestWithParam<PickCase> {};

TEST_P(LoadBasedPick, ChoosesAsIpvs) {
  const PickCase& c = GetParam();
  std::vector<uint32_t> weights;
  for (const Load& l : c.loads) weights.push_back(l.weight);
  auto backends = Backends(weights);
  for (size_t i = 0; i < c.loads.size(); ++i) {
    backends[i].active = c.loads[i].active;
    backends[i].inactive = c.loads[i].inactive;
    backends[i].overloaded = c.loads[i].overloaded;
  }
  auto s = Make(c.kind, backends);
  // The choice depends only on the counts: the same every time.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s->Pick(NthFlow(IpFamily::kV4, i), backends, kT0), c.expected)
        << SchedulerKindName(c.kind) << ": " << c.description;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Counts, LoadBasedPick,
    testing::Values(
        // lc: least active * 256 + inactive.
        PickCase{SchedulerKind::kLc,
                 "least overhead",
                 {{1, 1}, {1, 0, 300}, {1, 0, 200}},
                 2},
        PickCase{SchedulerKind::kLc,
                 "an active flow outweighs 255 inactive",
                 {{1, 1}, {1, 0, 255}},
                 1},
        PickCase{SchedulerKind::kLc,
                 "ties go to the first",
                 {{1, 2}, {1, 1}, {1, 1}},
                 1},
        PickCase{
            SchedulerKind::kLc, "weight plays no part", {{100, 1}, {1, 0}}, 1},
        PickCase{SchedulerKind::kLc,
                 "overloaded skipped",
                 {{1, 0, 0, true}, {1, 5}},
                 1},
        // wlc: least overhead / weight.
        PickCase{SchedulerKind::kWlc,
                 "weight divides the load",
                 {{1, 1}, {3, 2}},
                 1},
        PickCase{
            SchedulerKind::kWlc, "ties go to the first", {{1, 1}, {2, 2}}, 0},
        PickCase{SchedulerKind::kWlc,
                 "inactive flows count",
                 {{1, 0, 10}, {1, 0, 5}},
                 1},
        PickCase{SchedulerKind::kWlc,
                 "idle but quiesced is skipped",
                 {{0, 0}, {1, 3}},
                 1},
        PickCase{SchedulerKind::kWlc,
                 "overloaded skipped",
                 {{5, 0, 0, true}, {1, 3}},
                 1},
        // sed: least (active + 1) / weight.
        PickCase{
            SchedulerKind::kSed, "the new flow counts", {{1, 0}, {3, 1}}, 1},
        PickCase{SchedulerKind::kSed,
                 "inactive flows do not count",
                 {{1, 0, 1000}, {1, 0, 0}},
                 0},
        PickCase{
            SchedulerKind::kSed, "ties go to the first", {{2, 1}, {1, 0}}, 0},
        PickCase{SchedulerKind::kSed,
                 "wlc would differ",
                 {{1, 0, 500}, {1, 1, 0}},
                 0},
        PickCase{SchedulerKind::kWlc,
                 "sed would differ",
                 {{1, 0, 500}, {1, 1, 0}},
                 1},
        // nq: an idle backend at once, else sed.
        PickCase{SchedulerKind::kNq,
                 "idle wins whatever its weight",
                 {{10, 1}, {1, 0}},
                 1},
        PickCase{SchedulerKind::kNq, "first idle", {{1, 0}, {5, 0}}, 0},
        PickCase{SchedulerKind::kNq,
                 "inactive flows leave a backend idle",
                 {{10, 1}, {1, 0, 50}},
                 1},
        PickCase{SchedulerKind::kNq, "none idle: sed", {{1, 2}, {3, 2}}, 1},
        PickCase{SchedulerKind::kNq,
                 "idle but overloaded is skipped",
                 {{1, 0, 0, true}, {1, 4}},
                 1},
        // fo: highest weight.
        PickCase{SchedulerKind::kFo, "highest weight", {{1}, {5}, {3}}, 1},
        PickCase{SchedulerKind::kFo, "ties go to the first", {{5}, {5}}, 0},
        PickCase{SchedulerKind::kFo,
                 "overloaded fails over",
                 {{1}, {5, 0, 0, true}, {3}},
                 2},
        PickCase{SchedulerKind::kFo, "load plays no part", {{5, 1000}, {1}}, 0},
        // ovf: highest weight while active <= weight.
        PickCase{SchedulerKind::kOvf,
                 "active == weight still takes flows",
                 {{3, 3}, {2}},
                 0},
        PickCase{
            SchedulerKind::kOvf, "active > weight overflows", {{3, 4}, {2}}, 1},
        PickCase{SchedulerKind::kOvf,
                 "inactive flows do not count",
                 {{3, 0, 99}, {2}},
                 0},
        PickCase{SchedulerKind::kOvf, "ties go to the first", {{2}, {2}}, 0},
        PickCase{SchedulerKind::kOvf,
                 "everyone overflowed",
                 {{1, 2}, {1, 3}},
                 kNoBackend}),
    [](const testing::TestParamInfo<PickCase>& info) {
      std::string name = std::string(SchedulerKindName(info.param.kind)) + "_" +
                         info.param.description;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST(LoadBasedSchedulers, HugeCountsAndWeightsDoNotOverflow) {
  // 2^32 - 1 active flows * 256 * weight 2^32 - 1 does not fit 64 bits.
  auto backends = Backends({0xffffffffu, 1});
  backends[0].active = 0xffffffffu;
  backends[1].active = 0xfffffffeu;
  // wlc: (2^32-1)*256 / (2^32-1) = 256 < (2^32-2)*256 / 1.
  auto wlc = Make(SchedulerKind::kWlc, backends);
  EXPECT_EQ(wlc->Pick(NthFlow(IpFamily::kV4, 0), backends, kT0), 0);
  auto sed = Make(SchedulerKind::kSed, backends);
  EXPECT_EQ(sed->Pick(NthFlow(IpFamily::kV4, 0), backends, kT0), 0);
}

// --- dh and sh hashing ---

TEST(DhBucket, IsIpvsHash32OfTheFoldedAddress) {
  // (0x0a000001 * 0x61c88647) mod 2^32 >> 24, computed independently.
  EXPECT_EQ(DhBucket(Ip("10.0.0.1")), 39);
  // 2001:db8::1 folds to 0x20010db8 ^ 0x00000001.
  EXPECT_EQ(DhBucket(Ip("2001:db8::1")), 63);
}

TEST(ShBucket, AddsThePortBeforeHashing) {
  EXPECT_EQ(ShBucket(Ip("192.0.2.1"), 0), 50);
  EXPECT_EQ(ShBucket(Ip("192.0.2.1"), 12345), 145);
}

class HashingByFamily : public testing::TestWithParam<IpFamily> {};

INSTANTIATE_TEST_SUITE_P(Families, HashingByFamily,
                         testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const testing::TestParamInfo<IpFamily>& info) {
                           return info.param == IpFamily::kV4 ? "IPv4" : "IPv6";
                         });

TEST_P(HashingByFamily, DhTableGivesBucketsToBackendsInTurn) {
  auto backends = Backends({1, 9, 0}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto dh, DestinationHashScheduler::Create(backends));
  for (int i = 0; i < DestinationHashScheduler::kTableSize; ++i) {
    ASSERT_EQ(dh->table()[i], i % 3) << i;  // weights play no part
  }
}

TEST_P(HashingByFamily, DhSendsADestinationAlwaysToTheSameBackend) {
  auto backends = Backends({1, 1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto dh, DestinationHashScheduler::Create(backends));
  std::set<int> used;
  for (uint32_t d = 0; d < 200; ++d) {
    const IpAddress dst = Client(GetParam(), 5000 + d);
    const int expected = dh->table()[DhBucket(dst)];
    for (uint32_t c = 0; c < 5; ++c) {  // any source, any port
      EXPECT_EQ(
          dh->Pick(Flow(Client(GetParam(), c), 1000 + c, dst), backends, kT0),
          expected);
    }
    used.insert(expected);
  }
  EXPECT_EQ(used.size(), 4u);  // 200 destinations reach every backend
}

TEST_P(HashingByFamily, DhDropsWhenTheBucketOwnerCannotTakeFlows) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto dh, DestinationHashScheduler::Create(backends));
  backends[0].overloaded = true;
  backends[1].weight = 0;  // quiesced without a Reset: the table stays
  int dropped = 0;
  for (uint32_t d = 0; d < 100; ++d) {
    const IpAddress dst = Client(GetParam(), d);
    const int owner = dh->table()[DhBucket(dst)];
    const int got =
        dh->Pick(Flow(Client(GetParam(), 1), 1, dst), backends, kT0);
    EXPECT_EQ(got, owner == 2 ? 2 : kNoBackend);  // no fallback in dh
    if (got == kNoBackend) ++dropped;
  }
  EXPECT_GT(dropped, 0);
}

TEST_P(HashingByFamily, DhWalksPastAnOwnerOnlyThisNodeCannotReach) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto dh, DestinationHashScheduler::Create(backends));
  for (uint32_t d = 0; d < 100; ++d) {
    const IpAddress dst = Client(GetParam(), d);
    const int bucket = DhBucket(dst);
    if (bucket == DestinationHashScheduler::kTableSize - 1) continue;
    const int owner = dh->table()[bucket];
    const int next = dh->table()[bucket + 1];
    ASSERT_NE(owner, next);
    auto view = backends;
    view[owner].available = false;
    // On to the owner of the next bucket.
    EXPECT_EQ(dh->Pick(Flow(Client(GetParam(), 1), 1, dst), view, kT0), next);
    // If that one is quiesced, dh does not look further.
    view[next].weight = 0;
    EXPECT_EQ(dh->Pick(Flow(Client(GetParam(), 1), 1, dst), view, kT0),
              kNoBackend);
  }
}

TEST_P(HashingByFamily, DhResetRebuildsTheTable) {
  auto backends = Backends({1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto dh, DestinationHashScheduler::Create(backends));
  auto more = Backends({1, 1, 1, 1, 1}, GetParam());
  ASSERT_THAT(dh->Reset(more), IsOk());
  EXPECT_EQ(dh->table()[7], 7 % 5);
  ASSERT_THAT(dh->Reset({}), IsOk());
  EXPECT_EQ(dh->table()[7], kNoBackend);
}

TEST_P(HashingByFamily, ShSendsAClientAlwaysToTheSameBackend) {
  auto backends = Backends({1, 2, 3}, GetParam());
  SchedulerConfig config;
  ASSERT_OK_AND_ASSIGN(auto sh, SourceHashScheduler::Create(config, backends));
  for (uint32_t c = 0; c < 200; ++c) {
    const IpAddress src = Client(GetParam(), c);
    const int expected = sh->table()[ShBucket(src, 0)];
    for (uint32_t k = 0; k < 5; ++k) {  // any port, any destination
      EXPECT_EQ(sh->Pick(Flow(src, 1000 + 7 * k, Client(GetParam(), 9000 + k)),
                         backends, kT0),
                expected);
    }
  }
}

TEST_P(HashingByFamily, ShWeightsSetEachBackendsShareOfBuckets) {
  auto backends = Backends({2, 1}, GetParam());
  SchedulerConfig config;
  ASSERT_OK_AND_ASSIGN(auto sh, SourceHashScheduler::Create(config, backends));
  EXPECT_THAT(std::vector<int>(sh->table().begin(), sh->table().begin() + 6),
              ElementsAre(0, 0, 1, 0, 0, 1));

  auto skewed = Backends({1, 3}, GetParam());
  ASSERT_THAT(sh->Reset(skewed), IsOk());
  EXPECT_EQ(std::count(sh->table().begin(), sh->table().end(), 0), 64);
  EXPECT_EQ(std::count(sh->table().begin(), sh->table().end(), 1), 192);
  int to_second = 0;
  const int kClients = 4000;
  for (int c = 0; c < kClients; ++c) {
    if (sh->Pick(Flow(Client(GetParam(), c), 1, Host(GetParam(), 99)), skewed,
                 kT0) == 1) {
      ++to_second;
    }
  }
  EXPECT_NEAR(static_cast<double>(to_second) / kClients, 0.75, 0.05);
}

TEST_P(HashingByFamily, ShQuiescedBackendKeepsOneBucketAndTakesNothing) {
  auto backends = Backends({0, 1}, GetParam());
  SchedulerConfig config;
  ASSERT_OK_AND_ASSIGN(auto sh, SourceHashScheduler::Create(config, backends));
  EXPECT_THAT(std::vector<int>(sh->table().begin(), sh->table().begin() + 4),
              ElementsAre(0, 1, 0, 1));
}

TEST_P(HashingByFamily, ShPortFlagSpreadsOneClientsConnections) {
  auto backends = Backends({1, 1, 1, 1}, GetParam());
  const IpAddress src = Client(GetParam(), 42);
  SchedulerConfig config;
  ASSERT_OK_AND_ASSIGN(auto plain,
                       SourceHashScheduler::Create(config, backends));
  config.port = true;
  ASSERT_OK_AND_ASSIGN(auto with_port,
                       SourceHashScheduler::Create(config, backends));
  std::set<int> plain_picks, port_picks;
  for (uint16_t port = 1000; port < 1050; ++port) {
    plain_picks.insert(
        plain->Pick(Flow(src, port, Host(GetParam(), 99)), backends, kT0));
    const int p =
        with_port->Pick(Flow(src, port, Host(GetParam(), 99)), backends, kT0);
    EXPECT_EQ(p, with_port->table()[ShBucket(src, port)]);
    port_picks.insert(p);
  }
  EXPECT_EQ(plain_picks.size(), 1u);
  EXPECT_GT(port_picks.size(), 1u);
  // ICMP has no ports: the flag changes nothing.
  EXPECT_EQ(with_port->Pick(
                Flow(src, 1234, Host(GetParam(), 99), 0,
                     GetParam() == IpFamily::kV4 ? kProtoIcmp : kProtoIcmpV6),
                backends, kT0),
            with_port->table()[ShBucket(src, 0)]);
}

// ShFallbackCase: a client whose first bucket's owner is overloaded, and
// where ip_vs_sh_get_fallback's walk, (2 * bucket + k) mod 256, leads.
struct ShFallbackCase {
  std::string client;
  int bucket;       // ShBucket(client, 0)
  int walk_target;  // owner of the first bucket of the walk that can take it

  friend void PrintTo(const ShFallbackCase& c, std::ostream* os) {
    *os << c.client;
  }
};

class ShFallback : public testing::TestWithParam<ShFallbackCase> {};

INSTANTIATE_TEST_SUITE_P(
    HandWorked, ShFallback,
    testing::Values(
        // Bucket 50, owner 50 % 3 = 2; walk starts at bucket 100: 100 % 3 = 1
        // (a walk from bucket 51 would have given 0).
        ShFallbackCase{"192.0.2.1", 50, 1},
        // Bucket 63, owner 0; walk: bucket 126 (owner 0), bucket 127 -> 1.
        ShFallbackCase{"2001:db8::1", 63, 1}),
    [](const testing::TestParamInfo<ShFallbackCase>& info) {
      return info.param.bucket == 50 ? "IPv4" : "IPv6";
    });

TEST_P(ShFallback, WalksTheBucketsIpvsWalks) {
  const ShFallbackCase& c = GetParam();
  const IpAddress src = Ip(c.client);
  ASSERT_EQ(ShBucket(src, 0), c.bucket);
  auto backends = Backends({1, 1, 1}, src.family());
  const int owner = c.bucket % 3;
  backends[owner].overloaded = true;
  const FlowKey flow = Flow(src, 5555, Host(src.family(), 99));

  SchedulerConfig config;
  ASSERT_OK_AND_ASSIGN(auto strict,
                       SourceHashScheduler::Create(config, backends));
  EXPECT_EQ(strict->Pick(flow, backends, kT0), kNoBackend);

  config.fallback = true;
  ASSERT_OK_AND_ASSIGN(auto fallback,
                       SourceHashScheduler::Create(config, backends));
  EXPECT_EQ(fallback->Pick(flow, backends, kT0), c.walk_target);

  // The same walk passes an owner only this node cannot reach, even without
  // sh-fallback; with the target quiesced, only sh-fallback goes further.
  backends[owner].overloaded = false;
  backends[owner].available = false;
  EXPECT_EQ(strict->Pick(flow, backends, kT0), c.walk_target);
  backends[c.walk_target].overloaded = true;
  EXPECT_EQ(strict->Pick(flow, backends, kT0), kNoBackend);
  EXPECT_EQ(fallback->Pick(flow, backends, kT0), 3 - owner - c.walk_target);
  // Nobody left.
  backends[3 - owner - c.walk_target].weight = 0;
  EXPECT_EQ(fallback->Pick(flow, backends, kT0), kNoBackend);
}

// --- lblc ---

class LocalityByFamily : public testing::TestWithParam<IpFamily> {
 protected:
  SchedulerConfig Config(uint32_t entries = 16) {
    SchedulerConfig config;
    config.locality_cache_entries = entries;
    config.lblc_expiration = absl::Hours(1);
    config.lblcr_expiration = absl::Minutes(6);
    return config;
  }
  FlowKey To(uint32_t destination, uint32_t client = 1) {
    return Flow(Client(GetParam(), client), 4000,
                Host(GetParam(), 1000 + destination));
  }
  IpAddress Dst(uint32_t destination) {
    return Host(GetParam(), 1000 + destination);
  }
};

INSTANTIATE_TEST_SUITE_P(Families, LocalityByFamily,
                         testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const testing::TestParamInfo<IpFamily>& info) {
                           return info.param == IpFamily::kV4 ? "IPv4" : "IPv6";
                         });

TEST_P(LocalityByFamily, LblcKeepsADestinationOnItsBackend) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(), backends));
  EXPECT_EQ(lblc->Pick(To(1), backends, kT0), 0);     // wlc: tie, first
  backends[0].active = 1;                             // wlc would now say 1
  EXPECT_EQ(lblc->Pick(To(1, 2), backends, kT0), 0);  // any client
  EXPECT_EQ(lblc->Pick(To(2), backends, kT0), 1);
  EXPECT_THAT(lblc->CachedBackend(Dst(1)), Optional(backends[0].endpoint));
  EXPECT_EQ(lblc->stats().hits, 1u);
  EXPECT_EQ(lblc->stats().misses, 2u);
  EXPECT_EQ(lblc->cache_size(), 2u);
}

TEST_P(LocalityByFamily, LblcLeavesABackendOverloadedByItsRule) {
  auto backends = Backends({2, 2, 2}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(), backends));
  ASSERT_EQ(lblc->Pick(To(1), backends, kT0), 0);
  // More active flows than its weight, but nobody under half theirs: stay.
  backends[0].active = 3;
  backends[1].active = 1;
  backends[2].active = 1;
  EXPECT_EQ(lblc->Pick(To(1), backends, kT0), 0);
  // Backend 2 drops under half its weight (0 * 2 < 2): move, by wlc.
  backends[2].active = 0;
  EXPECT_EQ(lblc->Pick(To(1), backends, kT0), 2);
  EXPECT_THAT(lblc->CachedBackend(Dst(1)), Optional(backends[2].endpoint));
  EXPECT_EQ(lblc->stats().reschedules, 1u);
}

TEST_P(LocalityByFamily, LblcMovesOffAQuiescedOrUnreachableBackend) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(), backends));
  ASSERT_EQ(lblc->Pick(To(1), backends, kT0), 0);
  backends[0].weight = 0;
  EXPECT_EQ(lblc->Pick(To(1), backends, kT0), 1);
  backends[1].available = false;
  EXPECT_EQ(lblc->Pick(To(1), backends, kT0), 2);
}

TEST_P(LocalityByFamily, LblcUsesACachedBackendPastItsThresholdAsIpvsDoes) {
  auto backends = Backends({1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(), backends));
  ASSERT_EQ(lblc->Pick(To(1), backends, kT0), 0);
  backends[0].overloaded = true;  // -x reached: new destinations avoid it
  EXPECT_EQ(lblc->Pick(To(1), backends, kT0), 0);
  EXPECT_EQ(lblc->Pick(To(2), backends, kT0), 1);
}

TEST_P(LocalityByFamily, LblcEntryExpiresAfterLblcExpirationUnused) {
  auto backends = Backends({1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(), backends));
  ASSERT_EQ(lblc->Pick(To(1), backends, kT0), 0);
  backends[0].active = 1;  // wlc prefers 1 from now on
  // Used every 59 minutes: never expires.
  absl::Time t = kT0;
  for (int i = 0; i < 5; ++i) {
    t += absl::Minutes(59);
    EXPECT_EQ(lblc->Pick(To(1), backends, t), 0);
  }
  // Unused for the full hour: gone, scheduled afresh.
  t += absl::Hours(1);
  EXPECT_EQ(lblc->Pick(To(1), backends, t), 1);
  EXPECT_EQ(lblc->stats().expired, 1u);
}

TEST_P(LocalityByFamily, LblcFullCacheEvictsTheLeastRecentlyUsed) {
  auto backends = Backends({1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(2), backends));
  lblc->Pick(To(1), backends, kT0);
  lblc->Pick(To(2), backends, kT0);
  lblc->Pick(To(1), backends, kT0);  // 2 is now the least recently used
  lblc->Pick(To(3), backends, kT0);
  EXPECT_EQ(lblc->cache_size(), 2u);
  EXPECT_EQ(lblc->stats().evictions, 1u);
  EXPECT_EQ(lblc->stats().expired, 0u);
  EXPECT_TRUE(lblc->CachedBackend(Dst(1)).has_value());
  EXPECT_FALSE(lblc->CachedBackend(Dst(2)).has_value());
  EXPECT_TRUE(lblc->CachedBackend(Dst(3)).has_value());
}

TEST_P(LocalityByFamily, LblcFullCacheReclaimsAnExpiredEntryFirst) {
  auto backends = Backends({1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(2), backends));
  lblc->Pick(To(1), backends, kT0);
  lblc->Pick(To(2), backends, kT0 + absl::Minutes(90));
  lblc->Pick(To(3), backends, kT0 + absl::Minutes(91));  // 1 is expired
  EXPECT_EQ(lblc->stats().expired, 1u);
  EXPECT_EQ(lblc->stats().evictions, 0u);
  EXPECT_TRUE(lblc->CachedBackend(Dst(2)).has_value());
}

TEST_P(LocalityByFamily, LblcResetKeepsEntriesByEndpoint) {
  auto backends = Backends({1, 1, 1}, GetParam());  // A B C
  ASSERT_OK_AND_ASSIGN(auto lblc, LblcScheduler::Create(Config(), backends));
  backends[0].active = 5;
  ASSERT_EQ(lblc->Pick(To(1), backends, kT0), 1);  // B
  backends[1].active = 5;
  ASSERT_EQ(lblc->Pick(To(2), backends, kT0), 2);  // C

  // A new backend sorts first: B moves to index 2, C to 3.
  auto grown = Backends({1, 1, 1, 1}, GetParam());
  grown[0].endpoint = Endpoint(Host(GetParam(), 0), 80);
  for (int i = 0; i < 3; ++i) grown[i + 1].endpoint = backends[i].endpoint;
  ASSERT_THAT(lblc->Reset(grown), IsOk());
  EXPECT_EQ(lblc->Pick(To(1), grown, kT0), 2);
  EXPECT_EQ(lblc->Pick(To(2), grown, kT0), 3);

  // B leaves: its destination is scheduled afresh; C's stays.
  std::vector<SchedBackend> without_b = {grown[0], grown[1], grown[3]};
  without_b[1].active = 7;  // A busy: wlc prefers the new backend
  without_b[2].active = 1;  // C not past its weight: keeps its destination
  ASSERT_THAT(lblc->Reset(without_b), IsOk());
  EXPECT_FALSE(lblc->CachedBackend(Dst(1)).has_value());
  EXPECT_EQ(lblc->Pick(To(1), without_b, kT0), 0);
  EXPECT_EQ(lblc->Pick(To(2), without_b, kT0), 2);
}

TEST(Lblc, RejectsBadCacheSettings) {
  auto backends = Backends({1});
  SchedulerConfig config;
  config.locality_cache_entries = 0;
  EXPECT_THAT(LblcScheduler::Create(config, backends),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("lblc"), HasSubstr(" 0 entries"))));
  config.locality_cache_entries = 100'000'000;
  EXPECT_THAT(
      LblcScheduler::Create(config, backends),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("100000000")));
  config.locality_cache_entries = 16;
  config.lblc_expiration = absl::ZeroDuration();
  EXPECT_THAT(LblcScheduler::Create(config, backends),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lblc_expiration 0")));
  config.lblc_expiration = absl::Hours(24);
  config.lblcr_expiration = -absl::Seconds(1);
  EXPECT_THAT(LblcrScheduler::Create(config, backends),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lblcr_expiration -1s")));
}

// --- lblcr ---

TEST_P(LocalityByFamily, LblcrGrowsTheSetWhenItsBestMemberIsOverloaded) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblcr, LblcrScheduler::Create(Config(), backends));
  const auto& ep = backends;
  EXPECT_EQ(lblcr->Pick(To(1), backends, kT0), 0);
  EXPECT_THAT(lblcr->CachedSet(Dst(1)), ElementsAre(ep[0].endpoint));

  // 0 is past its weight while 1 and 2 are idle: wlc's choice joins.
  backends[0].active = 2;
  EXPECT_EQ(lblcr->Pick(To(1), backends, kT0), 1);
  EXPECT_THAT(lblcr->CachedSet(Dst(1)),
              ElementsAre(ep[1].endpoint, ep[0].endpoint));
  // The set's least loaded member serves while it can.
  EXPECT_EQ(lblcr->Pick(To(1), backends, kT0), 1);
  backends[1].active = 2;  // tie with 0: the newest member first, overloaded
  EXPECT_EQ(lblcr->Pick(To(1), backends, kT0), 2);
  EXPECT_THAT(lblcr->CachedSet(Dst(1)),
              ElementsAre(ep[2].endpoint, ep[1].endpoint, ep[0].endpoint));
  EXPECT_EQ(lblcr->stats().misses, 1u);
  EXPECT_EQ(lblcr->stats().reschedules, 2u);
}

TEST_P(LocalityByFamily, LblcrDropsTheMostLoadedMemberOfAnUnchangedSet) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblcr, LblcrScheduler::Create(Config(), backends));
  lblcr->Pick(To(1), backends, kT0);
  backends[0].active = 2;
  lblcr->Pick(To(1), backends, kT0);
  backends[1].active = 3;
  const absl::Time grown_at = kT0 + absl::Minutes(1);
  ASSERT_EQ(lblcr->Pick(To(1), backends, grown_at), 2);  // set {2, 1, 0}
  backends[2].active = 1;

  // Not yet: the set changed 6 minutes ago, not more.
  EXPECT_EQ(lblcr->Pick(To(1), backends, grown_at + absl::Minutes(6)), 2);
  EXPECT_EQ(lblcr->CachedSet(Dst(1)).size(), 3u);
  // Past 6 minutes: the most loaded (1, with 3 active) goes; the least
  // loaded still serves.
  EXPECT_EQ(lblcr->Pick(To(1), backends,
                        grown_at + absl::Minutes(6) + absl::Seconds(1)),
            2);
  EXPECT_THAT(lblcr->CachedSet(Dst(1)),
              ElementsAre(backends[2].endpoint, backends[0].endpoint));
  EXPECT_EQ(lblcr->stats().set_shrinks, 1u);
  // The shrink was a change: the next one waits another 6 minutes.
  EXPECT_EQ(lblcr->Pick(To(1), backends, grown_at + absl::Minutes(10)), 2);
  EXPECT_EQ(lblcr->CachedSet(Dst(1)).size(), 2u);
  EXPECT_EQ(lblcr->Pick(To(1), backends, grown_at + absl::Minutes(13)), 2);
  EXPECT_THAT(lblcr->CachedSet(Dst(1)), ElementsAre(backends[2].endpoint));
  // A single member always stays.
  EXPECT_EQ(lblcr->Pick(To(1), backends, grown_at + absl::Minutes(30)), 2);
  EXPECT_EQ(lblcr->CachedSet(Dst(1)).size(), 1u);
}

TEST_P(LocalityByFamily, LblcrSetsAreBoundedByReplacingTheMostLoaded) {
  std::vector<uint32_t> weights(LblcrScheduler::kMaxSetSize + 3, 1);
  auto backends = Backends(weights, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblcr, LblcrScheduler::Create(Config(), backends));
  // Each pick's choice becomes busy: the set keeps growing.
  for (size_t i = 0; i < backends.size(); ++i) {
    const int p = lblcr->Pick(To(1), backends, kT0);
    ASSERT_EQ(p, static_cast<int>(i));
    backends[p].active = 2 + static_cast<uint32_t>(i);
  }
  EXPECT_EQ(lblcr->CachedSet(Dst(1)).size(),
            static_cast<size_t>(LblcrScheduler::kMaxSetSize));
  EXPECT_EQ(lblcr->stats().set_overflows, 3u);
}

TEST_P(LocalityByFamily, LblcrResetDropsMembersThatLeft) {
  auto backends = Backends({1, 1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblcr, LblcrScheduler::Create(Config(), backends));
  lblcr->Pick(To(1), backends, kT0);
  backends[0].active = 2;
  lblcr->Pick(To(1), backends, kT0);  // set {1, 0}
  lblcr->Pick(To(2), backends, kT0);  // set {1}
  std::vector<SchedBackend> without_b = {backends[0], backends[2]};
  ASSERT_THAT(lblcr->Reset(without_b), IsOk());
  EXPECT_THAT(lblcr->CachedSet(Dst(1)), ElementsAre(backends[0].endpoint));
  EXPECT_TRUE(lblcr->CachedSet(Dst(2)).empty());
  EXPECT_EQ(lblcr->cache_size(), 1u);
}

TEST_P(LocalityByFamily, LblcrCacheIsBoundedLikeLblcs) {
  auto backends = Backends({1, 1}, GetParam());
  ASSERT_OK_AND_ASSIGN(auto lblcr, LblcrScheduler::Create(Config(2), backends));
  lblcr->Pick(To(1), backends, kT0);
  lblcr->Pick(To(2), backends, kT0 + absl::Minutes(30));
  lblcr->Pick(To(3), backends, kT0 + absl::Minutes(31));  // evicts 1
  lblcr->Pick(To(4), backends, kT0 + absl::Minutes(95));  // 2 expired
  EXPECT_EQ(lblcr->stats().evictions, 1u);
  EXPECT_EQ(lblcr->stats().expired, 1u);
  EXPECT_EQ(lblcr->cache_size(), 2u);
}

// --- twos ---

std::vector<double> TwosShares(std::vector<SchedBackend>& backends,
                               uint64_t seed, int picks) {
  SchedulerConfig config;
  config.seed = seed;
  auto twos = TwoChoicesScheduler::Create(config, backends).value();
  std::vector<double> shares(backends.size());
  for (int i = 0; i < picks; ++i) {
    const int p = twos->Pick(NthFlow(IpFamily::kV4, i), backends, kT0);
    shares[p] += 1.0 / picks;
  }
  return shares;
}

TEST(TwoChoices, FollowsTheWeightsWhenLoadsAreEqual) {
  auto backends = Backends({1000, 2000, 3000});
  const auto shares = TwosShares(backends, 7, 60000);
  EXPECT_NEAR(shares[0], 1.0 / 6, 0.015);
  EXPECT_NEAR(shares[1], 2.0 / 6, 0.015);
  EXPECT_NEAR(shares[2], 3.0 / 6, 0.015);
}

TEST(TwoChoices, PrefersTheLessLoadedOfItsTwoChoices) {
  auto backends = Backends({1000, 1000, 1000});
  backends[0].active = 100;
  const auto shares = TwosShares(backends, 7, 60000);
  // Backend 0 wins only when both choices are 0: (1/3)^2.
  EXPECT_NEAR(shares[0], 1.0 / 9, 0.015);
  EXPECT_NEAR(shares[1], 4.0 / 9, 0.015);
}

TEST(TwoChoices, InclusiveRangeGivesTheFirstBackendOneExtraChance) {
  // IPVS draws in [0, total]: with weights 1, 1 the first gets 2 of 3.
  auto backends = Backends({1, 1});
  const auto shares = TwosShares(backends, 11, 30000);
  EXPECT_NEAR(shares[0], 2.0 / 3, 0.015);
}

TEST(TwoChoices, SameSeedSameSequence) {
  auto backends = Backends({1, 2, 3, 4});
  SchedulerConfig config;
  config.seed = 99;
  auto a = TwoChoicesScheduler::Create(config, backends).value();
  auto b = TwoChoicesScheduler::Create(config, backends).value();
  config.seed = 100;
  auto c = TwoChoicesScheduler::Create(config, backends).value();
  const auto from_a = PickN(*a, backends, 64);
  EXPECT_EQ(from_a, PickN(*b, backends, 64));
  EXPECT_NE(from_a, PickN(*c, backends, 64));
}

}  // namespace
}  // namespace anylb::scheduler
