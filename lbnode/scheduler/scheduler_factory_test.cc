#include "lbnode/scheduler/scheduler_factory.h"

#include <algorithm>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
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
using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

constexpr SchedulerKind kAllKinds[] = {
    SchedulerKind::kRr,  SchedulerKind::kWrr,  SchedulerKind::kLc,
    SchedulerKind::kWlc, SchedulerKind::kLblc, SchedulerKind::kLblcr,
    SchedulerKind::kDh,  SchedulerKind::kSh,   SchedulerKind::kSed,
    SchedulerKind::kNq,  SchedulerKind::kFo,   SchedulerKind::kOvf,
    SchedulerKind::kMh,  SchedulerKind::kTwos,
};

std::string KindName(const testing::TestParamInfo<SchedulerKind>& info) {
  return std::string(SchedulerKindName(info.param));
}

std::vector<SchedBackend> ThreeBackends() {
  std::vector<SchedBackend> backends(3);
  for (int i = 0; i < 3; ++i) {
    backends[i].endpoint =
        Endpoint(IpAddress::FromV4(0x0a000001u + static_cast<uint32_t>(i)), 80);
    backends[i].weight = static_cast<uint32_t>(i + 1);
  }
  return backends;
}

FlowKey NthFlow(uint32_t n) {
  return FlowKey::Make(IpAddress::FromV4(0xc6336400u + n * 17),
                       static_cast<uint16_t>(20000 + n),
                       IpAddress::FromV4(0xcb007101u), 80, kProtoTcp);
}

class EveryKind : public testing::TestWithParam<SchedulerKind> {};

INSTANTIATE_TEST_SUITE_P(Kinds, EveryKind, testing::ValuesIn(kAllKinds),
                         KindName);

TEST_P(EveryKind, IsConstructibleAndPicksFromThreeBackends) {
  const auto backends = ThreeBackends();
  SchedulerConfig config;
  config.kind = GetParam();
  ASSERT_OK_AND_ASSIGN(auto scheduler, CreateScheduler(config, backends));
  EXPECT_EQ(scheduler->kind(), GetParam());
  for (uint32_t i = 0; i < 60; ++i) {
    const int p = scheduler->Pick(NthFlow(i), backends, kT0);
    ASSERT_GE(p, 0) << i;
    ASSERT_LT(p, 3) << i;
  }
  EXPECT_THAT(scheduler->Reset(backends), IsOk());
}

TEST_P(EveryKind, NameRoundTrips) {
  const std::string_view name = SchedulerKindName(GetParam());
  EXPECT_NE(name, "unknown");
  EXPECT_THAT(ParseSchedulerKind(name), IsOkAndHolds(GetParam()));
}

TEST_P(EveryKind, TakesTheFallbackAndPortFlagsOnlyIfItHashes) {
  const auto backends = ThreeBackends();
  const bool hashes =
      GetParam() == SchedulerKind::kSh || GetParam() == SchedulerKind::kMh;
  const std::string name(SchedulerKindName(GetParam()));
  SchedulerConfig config;
  config.kind = GetParam();
  config.fallback = true;
  if (hashes) {
    EXPECT_THAT(CreateScheduler(config, backends), IsOk());
  } else {
    EXPECT_THAT(CreateScheduler(config, backends),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("\"" + name + "\""),
                               HasSubstr("fallback flag"))));
  }
  config.fallback = false;
  config.port = true;
  if (hashes) {
    EXPECT_THAT(CreateScheduler(config, backends), IsOk());
  } else {
    EXPECT_THAT(
        CreateScheduler(config, backends),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("\"" + name + "\""), HasSubstr("port flag"))));
  }
}

TEST(CreateScheduler, ShFlagsReachTheScheduler) {
  const auto backends = ThreeBackends();
  SchedulerConfig config;
  config.kind = SchedulerKind::kSh;
  ASSERT_OK_AND_ASSIGN(auto plain, CreateScheduler(config, backends));
  config.port = true;
  ASSERT_OK_AND_ASSIGN(auto with_port, CreateScheduler(config, backends));
  // One client, many source ports: one backend without sh-port, several
  // with it.
  std::vector<int> plain_seen(3), port_seen(3);
  for (uint16_t port = 1000; port < 1100; ++port) {
    const FlowKey flow =
        FlowKey::Make(IpAddress::FromV4(0xc6336401u), port,
                      IpAddress::FromV4(0xcb007101u), 80, kProtoTcp);
    ++plain_seen[plain->Pick(flow, backends, kT0)];
    ++port_seen[with_port->Pick(flow, backends, kT0)];
  }
  EXPECT_EQ(std::count(plain_seen.begin(), plain_seen.end(), 0), 2);
  EXPECT_EQ(std::count(port_seen.begin(), port_seen.end(), 0), 0);
}

TEST(CreateScheduler, RejectsAnUnknownKind) {
  SchedulerConfig config;
  config.kind = static_cast<SchedulerKind>(99);
  EXPECT_THAT(CreateScheduler(config, ThreeBackends()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("99")));
}

TEST(CreateScheduler, PassesOnSchedulerSpecificErrors) {
  SchedulerConfig config;
  config.kind = SchedulerKind::kMh;
  config.maglev_table_size = 65536;
  EXPECT_THAT(CreateScheduler(config, ThreeBackends()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("65536")));
  config.kind = SchedulerKind::kLblcr;
  config.locality_cache_entries = 0;
  EXPECT_THAT(CreateScheduler(config, ThreeBackends()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lblcr: locality cache of 0 entries")));
  auto unsorted = ThreeBackends();
  std::swap(unsorted[0], unsorted[2]);
  config.kind = SchedulerKind::kWrr;
  EXPECT_THAT(CreateScheduler(config, unsorted),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("canonical order")));
}

TEST(ParseSchedulerKind, RejectsUnknownNamesListingTheKnownOnes) {
  EXPECT_THAT(ParseSchedulerKind("wlcc"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"wlcc\""), HasSubstr("wlc"),
                             HasSubstr("twos"))));
  EXPECT_THAT(ParseSchedulerKind("WLC"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseSchedulerKind(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace anylb::scheduler
