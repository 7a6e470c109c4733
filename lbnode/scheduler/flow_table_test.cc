#include "lbnode/scheduler/flow_table.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/testing/allocation_counter.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/flow_state.h"

namespace anylb::scheduler {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

constexpr FlowState kNone = FlowState::kTcpNone;
constexpr FlowState kEs = FlowState::kTcpEstablished;
constexpr FlowState kSs = FlowState::kTcpSynSent;
constexpr FlowState kSr = FlowState::kTcpSynRecv;
constexpr FlowState kFw = FlowState::kTcpFinWait;
constexpr FlowState kTw = FlowState::kTcpTimeWait;
constexpr FlowState kCl = FlowState::kTcpClose;
constexpr FlowState kCw = FlowState::kTcpCloseWait;
constexpr FlowState kLa = FlowState::kTcpLastAck;
constexpr FlowState kUdp = FlowState::kUdp;
constexpr FlowState kOther = FlowState::kOther;

constexpr uint8_t kSyn = kTcpFlagSyn;
constexpr uint8_t kFin = kTcpFlagFin;
constexpr uint8_t kAck = kTcpFlagAck;
constexpr uint8_t kRst = kTcpFlagRst;

constexpr TcpDirection kInOnly = TcpDirection::kClientToServerOnly;
constexpr TcpDirection kIn = TcpDirection::kClientToServer;
constexpr TcpDirection kOut = TcpDirection::kServerToClient;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

// Key is flow number `i`: a distinct client address and port per i, to one
// VIP:443, IPv4 or IPv6.
FlowKey Key(uint32_t i, bool v6 = false, uint8_t protocol = kProtoTcp) {
  if (v6) {
    std::array<uint8_t, 16> src = {0x20, 0x01, 0x0d, 0xb8};
    std::array<uint8_t, 16> dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                   0,    0,    0,    0,    0, 0, 0, 0x10};
    src[12] = static_cast<uint8_t>(i >> 24);
    src[13] = static_cast<uint8_t>(i >> 16);
    src[14] = static_cast<uint8_t>(i >> 8);
    src[15] = static_cast<uint8_t>(i);
    return FlowKey::Make(IpAddress::FromV6Bytes(src),
                         static_cast<uint16_t>(1024 + i % 60000),
                         IpAddress::FromV6Bytes(dst), 443, protocol);
  }
  return FlowKey::Make(IpAddress::FromV4(0x0a000000u + i),
                       static_cast<uint16_t>(1024 + i % 60000),
                       IpAddress::FromV4(0xc6336410u), 443, protocol);
}

FlowValue Value(uint32_t backend, uint64_t user = 0) {
  return FlowValue{backend, 7, user};
}

// Removal is one call of the removal callback.
struct Removal {
  FlowKey key;
  FlowValue value;
  FlowState state;
  RemovalReason reason;
};

// Recorder collects removal callbacks.
struct Recorder {
  std::vector<Removal> removals;

  static void Record(void* context, const FlowEntry& entry,
                     RemovalReason reason) {
    static_cast<Recorder*>(context)->removals.push_back(
        {entry.key(), entry.value(), entry.state(), reason});
  }
};

FlowTableOptions Options(size_t capacity, Recorder* recorder = nullptr) {
  FlowTableOptions options;
  options.capacity = capacity;
  options.seed = 42;
  if (recorder != nullptr) {
    options.on_removed = &Recorder::Record;
    options.on_removed_context = recorder;
  }
  return options;
}

std::unique_ptr<FlowTable> MakeTable(const FlowTableOptions& options) {
  auto table = FlowTable::Create(options);
  EXPECT_THAT(table, IsOk());
  return std::move(table).value();
}

// --- Create: bad options ---

TEST(FlowTableCreate, RejectsZeroCapacity) {
  EXPECT_THAT(FlowTable::Create(Options(0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("capacity 0 is invalid")));
}

TEST(FlowTableCreate, RejectsCapacityAboveTheMaximum) {
  EXPECT_THAT(FlowTable::Create(Options(FlowTable::kMaxCapacity + 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("capacity 67108865 exceeds the maximum "
                                 "67108864")));
}

TEST(FlowTableCreate, RejectsUnconfirmedPercentOutsideOneToHundred) {
  for (uint32_t percent : {0u, 101u, 1000u}) {
    FlowTableOptions options = Options(16);
    options.max_unconfirmed_percent = percent;
    EXPECT_THAT(FlowTable::Create(options),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("max_unconfirmed_percent ",
                                                percent, " is out of range"))));
  }
}

TEST(FlowTableCreate, RejectsNonPositiveOrHugeTimeoutsNamingTheField) {
  FlowTableOptions options = Options(16);
  options.timeouts.tcp_fin_wait = absl::ZeroDuration();
  EXPECT_THAT(FlowTable::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tcp_fin_wait = 0 is out of range")));
  options = Options(16);
  options.timeouts.udp = -absl::Seconds(1);
  EXPECT_THAT(FlowTable::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("udp")));
  options = Options(16);
  options.timeouts.tcp_established = absl::InfiniteDuration();
  EXPECT_THAT(FlowTable::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tcp_established = inf")));
}

TEST(FlowTableCreate, AcceptsTheLimits) {
  FlowTableOptions options = Options(1);
  options.max_unconfirmed_percent = 100;
  options.timeouts.other = absl::Microseconds(1);
  auto table = FlowTable::Create(options);
  ASSERT_THAT(table, IsOk());
  EXPECT_EQ((*table)->capacity(), 1u);
  EXPECT_EQ((*table)->unconfirmed_limit(), 1u);
}

TEST(FlowTableCreate, UsesTheGivenSeedOrARandomOne) {
  FlowTableOptions options = Options(16);
  EXPECT_EQ(MakeTable(options)->seed(), 42u);
  options.seed.reset();
  // Two random 64-bit seeds collide with probability 2^-64.
  EXPECT_NE(MakeTable(options)->seed(), MakeTable(options)->seed());
}

TEST(FlowTableCreate, UnconfirmedLimitIsAShareOfCapacityAndAtLeastOne) {
  FlowTableOptions options = Options(1000);
  EXPECT_EQ(MakeTable(options)->unconfirmed_limit(), 500u);
  options.max_unconfirmed_percent = 10;
  EXPECT_EQ(MakeTable(options)->unconfirmed_limit(), 100u);
  options = Options(3);
  options.max_unconfirmed_percent = 1;
  EXPECT_EQ(MakeTable(options)->unconfirmed_limit(), 1u);
}

// --- Insert, lookup, remove; IPv4 and IPv6 ---

class FlowTableFamilyTest : public testing::TestWithParam<bool> {
 protected:
  FlowKey K(uint32_t i) const { return Key(i, GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Ipv4AndIpv6, FlowTableFamilyTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "Ipv6" : "Ipv4";
                         });

TEST_P(FlowTableFamilyTest, InsertedFlowIsFoundWithItsValueStateAndTime) {
  auto table = MakeTable(Options(64));
  const absl::Time now = kT0 + absl::Microseconds(123);
  const InsertResult r = table->Insert(K(1), Value(3, 0xabcdef), kSr, now);
  ASSERT_TRUE(r.inserted());
  EXPECT_FALSE(r.made_room_by.has_value());
  FlowEntry* e = table->Lookup(K(1), now);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e, r.entry);
  EXPECT_EQ(e->key(), K(1));
  EXPECT_EQ(e->value().backend, 3u);
  EXPECT_EQ(e->value().service, 7u);
  EXPECT_EQ(e->value().user, 0xabcdefu);
  EXPECT_EQ(e->state(), kSr);
  EXPECT_EQ(e->last_seen(), now);
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(table->counters().lookups, 1u);
  EXPECT_EQ(table->counters().hits, 1u);
  EXPECT_EQ(table->counters().inserts, 1u);
}

TEST_P(FlowTableFamilyTest, KeysDifferingInAnyFieldAreDifferentFlows) {
  auto table = MakeTable(Options(64));
  const FlowKey base = K(1);
  ASSERT_TRUE(table->Insert(base, Value(1), kEs, kT0).inserted());
  std::vector<FlowKey> others(5, base);
  others[0].src_port ^= 1;
  others[1].dst_port ^= 1;
  others[2].protocol = kProtoUdp;
  others[3].src[3] ^= 1;
  others[4].dst[3] ^= 1;
  for (const FlowKey& k : others) {
    EXPECT_EQ(table->Lookup(k, kT0), nullptr);
  }
  EXPECT_EQ(table->counters().hits, 0u);
  EXPECT_EQ(table->counters().lookups, 5u);
  EXPECT_NE(table->Lookup(base, kT0), nullptr);
}

TEST_P(FlowTableFamilyTest, RemoveMakesTheFlowMissAndReportsItOnce) {
  Recorder rec;
  auto table = MakeTable(Options(64, &rec));
  for (uint32_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(table->Insert(K(i), Value(i), kEs, kT0).inserted());
  }
  FlowEntry* e = table->Lookup(K(4), kT0);
  ASSERT_NE(e, nullptr);
  table->Remove(e);
  EXPECT_EQ(table->Lookup(K(4), kT0), nullptr);
  ASSERT_EQ(rec.removals.size(), 1u);
  EXPECT_EQ(rec.removals[0].key, K(4));
  EXPECT_EQ(rec.removals[0].value.backend, 4u);
  EXPECT_EQ(rec.removals[0].state, kEs);
  EXPECT_EQ(rec.removals[0].reason, RemovalReason::kRemoved);
  EXPECT_EQ(table->size(), 9u);
  EXPECT_EQ(table->counters().removals, 1u);
  // A stale pointer is ignored: no second callback, nothing else removed.
  table->Remove(e);
  EXPECT_EQ(rec.removals.size(), 1u);
  EXPECT_EQ(table->size(), 9u);
  for (uint32_t i = 0; i < 10; ++i) {
    EXPECT_EQ(table->Lookup(K(i), kT0) != nullptr, i != 4) << i;
  }
  EXPECT_THAT(table->CheckConsistency(), IsOk());
}

TEST_P(FlowTableFamilyTest, InsertOfALiveKeyReturnsTheExistingFlowUnchanged) {
  auto table = MakeTable(Options(64));
  FlowEntry* first = table->Insert(K(1), Value(1), kEs, kT0).entry;
  const InsertResult again =
      table->Insert(K(1), Value(2), kSr, kT0 + absl::Seconds(1));
  EXPECT_EQ(again.status, InsertStatus::kAlreadyPresent);
  EXPECT_EQ(again.entry, first);
  EXPECT_EQ(first->value().backend, 1u);
  EXPECT_EQ(first->state(), kEs);
  EXPECT_EQ(first->last_seen(), kT0);
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(table->counters().already_present, 1u);
}

TEST_P(FlowTableFamilyTest, InsertReplacesAnExpiredFlowWithTheSameKey) {
  Recorder rec;
  auto table = MakeTable(Options(64, &rec));
  table->Insert(K(1), Value(1), kCl, kT0);
  const InsertResult r =
      table->Insert(K(1), Value(2), kSr, kT0 + absl::Seconds(10));
  ASSERT_TRUE(r.inserted());
  EXPECT_EQ(r.made_room_by, RemovalReason::kExpired);
  EXPECT_EQ(r.entry->value().backend, 2u);
  ASSERT_EQ(rec.removals.size(), 1u);
  EXPECT_EQ(rec.removals[0].value.backend, 1u);
  EXPECT_EQ(rec.removals[0].reason, RemovalReason::kExpired);
  EXPECT_EQ(table->size(), 1u);
}

TEST_P(FlowTableFamilyTest, ManyFlowsUpToCapacityAreAllFound) {
  auto table = MakeTable(Options(5000));
  for (uint32_t i = 0; i < 5000; ++i) {
    ASSERT_TRUE(table->Insert(K(i), Value(i), kEs, kT0).inserted()) << i;
  }
  for (uint32_t i = 0; i < 5000; ++i) {
    const FlowEntry* e = table->Lookup(K(i), kT0);
    ASSERT_NE(e, nullptr) << i;
    EXPECT_EQ(e->value().backend, i);
  }
  EXPECT_EQ(table->Lookup(K(5000), kT0), nullptr);
  EXPECT_THAT(table->CheckConsistency(), IsOk());
}

TEST(FlowTable, Ipv4AndIpv6KeysWithTheSameBytesAreDifferentFlows) {
  auto table = MakeTable(Options(8));
  FlowKey v4 = Key(1, false);
  FlowKey v6 = v4;
  v6.family = IpFamily::kV6;
  table->Insert(v4, Value(4), kEs, kT0);
  EXPECT_EQ(table->Lookup(v6, kT0), nullptr);
  table->Insert(v6, Value(6), kEs, kT0);
  EXPECT_EQ(table->Lookup(v4, kT0)->value().backend, 4u);
  EXPECT_EQ(table->Lookup(v6, kT0)->value().backend, 6u);
}

TEST(FlowTable, LookupWithAPrecomputedHashFindsTheSameFlow) {
  auto table = MakeTable(Options(8));
  FlowEntry* e = table->Insert(Key(1), Value(1), kEs, kT0).entry;
  const uint32_t hash = table->Hash(Key(1));
  table->Prefetch(hash);
  EXPECT_EQ(table->Lookup(Key(1), hash, kT0), e);
  EXPECT_EQ(table->Lookup(Key(1), hash ^ 1, kT0), nullptr);  // wrong hash
  EXPECT_EQ(table->Lookup(Key(2), table->Hash(Key(2)), kT0), nullptr);
  EXPECT_EQ(table->size(), 1u);
}

TEST(FlowTable, HashDependsOnTheSeed) {
  FlowTableOptions options = Options(8);
  auto a = MakeTable(options);
  options.seed = 43;
  auto b = MakeTable(options);
  int same = 0;
  for (uint32_t i = 0; i < 100; ++i) same += a->Hash(Key(i)) == b->Hash(Key(i));
  EXPECT_LT(same, 3);
}

TEST(FlowTable, ValueCanBeUpdatedInPlace) {
  auto table = MakeTable(Options(8));
  FlowEntry* e = table->Insert(Key(1), Value(1), kEs, kT0).entry;
  e->value().user = 0x1234;
  EXPECT_EQ(table->Lookup(Key(1), kT0)->value().user, 0x1234u);
}

TEST(FlowTable, RefusesToStoreNoneOrAnInvalidState) {
  auto table = MakeTable(Options(8));
  for (FlowState s :
       {kNone, static_cast<FlowState>(11), static_cast<FlowState>(200)}) {
    const InsertResult r = table->Insert(Key(1), Value(1), s, kT0);
    EXPECT_EQ(r.status, InsertStatus::kRefusedInvalidState);
    EXPECT_EQ(r.entry, nullptr);
  }
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->counters().refused_invalid_state, 3u);
}

// --- LRU ---

TEST(FlowTableLru, FullTableEvictsTheLeastRecentlyUsedFlow) {
  Recorder rec;
  auto table = MakeTable(Options(4, &rec));
  for (uint32_t i = 0; i < 4; ++i) {
    table->Insert(Key(i), Value(i), kEs, kT0 + absl::Seconds(i));
  }
  const InsertResult r =
      table->Insert(Key(4), Value(4), kEs, kT0 + absl::Seconds(4));
  ASSERT_TRUE(r.inserted());
  EXPECT_EQ(r.made_room_by, RemovalReason::kEvictedLru);
  table->Insert(Key(5), Value(5), kEs, kT0 + absl::Seconds(5));
  ASSERT_EQ(rec.removals.size(), 2u);
  EXPECT_EQ(rec.removals[0].key, Key(0));
  EXPECT_EQ(rec.removals[1].key, Key(1));
  EXPECT_EQ(rec.removals[0].reason, RemovalReason::kEvictedLru);
  EXPECT_EQ(table->counters().evicted_lru, 2u);
  EXPECT_EQ(table->size(), 4u);
}

TEST(FlowTableLru, TouchMakesAFlowTheMostRecentlyUsed) {
  Recorder rec;
  auto table = MakeTable(Options(4, &rec));
  for (uint32_t i = 0; i < 4; ++i) {
    table->Insert(Key(i), Value(i), kEs, kT0 + absl::Seconds(i));
  }
  table->Touch(table->Lookup(Key(0), kT0), kT0 + absl::Seconds(10));
  table->Touch(table->Lookup(Key(2), kT0), kT0 + absl::Seconds(11));
  for (uint32_t i = 4; i < 8; ++i) {
    table->Insert(Key(i), Value(i), kEs, kT0 + absl::Seconds(20 + i));
  }
  ASSERT_EQ(rec.removals.size(), 4u);
  EXPECT_EQ(rec.removals[0].key, Key(1));
  EXPECT_EQ(rec.removals[1].key, Key(3));
  EXPECT_EQ(rec.removals[2].key, Key(0));
  EXPECT_EQ(rec.removals[3].key, Key(2));
}

TEST(FlowTableLru, LruOrderSpansStatesAndProtocols) {
  Recorder rec;
  auto table = MakeTable(Options(3, &rec));
  table->Insert(Key(0, false, kProtoUdp), Value(0), kUdp, kT0);
  table->Insert(Key(1), Value(1), kEs, kT0 + absl::Seconds(1));
  table->Insert(Key(2), Value(2), kFw, kT0 + absl::Seconds(2));
  // The UDP flow is touched; the established one is now the oldest.
  table->Touch(table->Lookup(Key(0, false, kProtoUdp), kT0),
               kT0 + absl::Seconds(3));
  table->Insert(Key(3, false, kProtoIcmp), Value(3), kOther,
                kT0 + absl::Seconds(4));
  table->Insert(Key(4), Value(4), kEs, kT0 + absl::Seconds(5));
  ASSERT_EQ(rec.removals.size(), 2u);
  EXPECT_EQ(rec.removals[0].key, Key(1));
  EXPECT_EQ(rec.removals[1].key, Key(2));
  EXPECT_EQ(rec.removals[1].state, kFw);
}

TEST(FlowTableLru, StateChangeCountsAsUse) {
  Recorder rec;
  auto table = MakeTable(Options(2, &rec));
  FlowEntry* a = table->Insert(Key(0), Value(0), kSr, kT0).entry;
  table->Insert(Key(1), Value(1), kEs, kT0 + absl::Seconds(1));
  EXPECT_EQ(table->OnTcpSegment(a, kAck, kInOnly, kT0 + absl::Seconds(2)),
            ActivityChange::kBecameActive);
  table->Insert(Key(2), Value(2), kEs, kT0 + absl::Seconds(3));
  ASSERT_EQ(rec.removals.size(), 1u);
  EXPECT_EQ(rec.removals[0].key, Key(1));
}

// --- Expiry ---

struct ExpiryCase {
  FlowState state;
  absl::Duration timeout;
};

class FlowTableExpiryTest : public testing::TestWithParam<ExpiryCase> {};

INSTANTIATE_TEST_SUITE_P(IpvsDefaults, FlowTableExpiryTest,
                         testing::Values(ExpiryCase{kEs, absl::Seconds(900)},
                                         ExpiryCase{kSs, absl::Seconds(120)},
                                         ExpiryCase{kSr, absl::Seconds(60)},
                                         ExpiryCase{kFw, absl::Seconds(120)},
                                         ExpiryCase{kTw, absl::Seconds(120)},
                                         ExpiryCase{kCl, absl::Seconds(10)},
                                         ExpiryCase{kCw, absl::Seconds(60)},
                                         ExpiryCase{kLa, absl::Seconds(30)},
                                         ExpiryCase{kUdp, absl::Seconds(300)},
                                         ExpiryCase{kOther, absl::Seconds(60)}),
                         [](const testing::TestParamInfo<ExpiryCase>& info) {
                           return std::string(FlowStateName(info.param.state));
                         });

TEST_P(FlowTableExpiryTest, LookupMissesOnceIdleForTheStatesTimeout) {
  const ExpiryCase c = GetParam();
  EXPECT_EQ(FlowTimeouts().For(c.state), c.timeout);
  Recorder rec;
  auto table = MakeTable(Options(8, &rec));
  table->Insert(Key(1), Value(1), c.state, kT0);
  EXPECT_NE(table->Lookup(Key(1), kT0 + c.timeout - absl::Microseconds(1)),
            nullptr);
  EXPECT_TRUE(rec.removals.empty());
  EXPECT_EQ(table->Lookup(Key(1), kT0 + c.timeout), nullptr);
  ASSERT_EQ(rec.removals.size(), 1u);
  EXPECT_EQ(rec.removals[0].reason, RemovalReason::kExpired);
  EXPECT_EQ(rec.removals[0].state, c.state);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->counters().expirations, 1u);
}

TEST_P(FlowTableExpiryTest, TouchRestartsTheTimeout) {
  const ExpiryCase c = GetParam();
  auto table = MakeTable(Options(8));
  FlowEntry* e = table->Insert(Key(1), Value(1), c.state, kT0).entry;
  const absl::Time later = kT0 + c.timeout - absl::Microseconds(1);
  table->Touch(e, later);
  EXPECT_EQ(e->last_seen(), later);
  EXPECT_NE(table->Lookup(Key(1), later + c.timeout - absl::Microseconds(1)),
            nullptr);
  EXPECT_EQ(table->ExpireSome(later + c.timeout - absl::Microseconds(1), 10),
            0u);
  EXPECT_EQ(table->ExpireSome(later + c.timeout, 10), 1u);
  EXPECT_EQ(table->size(), 0u);
}

TEST(FlowTableExpiry, ConfiguredTimeoutsApply) {
  FlowTableOptions options = Options(8);
  options.timeouts.tcp_established = absl::Seconds(7200);
  options.timeouts.udp = absl::Seconds(5);
  auto table = MakeTable(options);
  table->Insert(Key(1), Value(1), kEs, kT0);
  table->Insert(Key(2, false, kProtoUdp), Value(2), kUdp, kT0);
  const absl::Time t = kT0 + absl::Seconds(3600);
  EXPECT_NE(table->Lookup(Key(1), t), nullptr);
  EXPECT_EQ(table->Lookup(Key(2, false, kProtoUdp), kT0 + absl::Seconds(5)),
            nullptr);
}

TEST(FlowTableExpiry, StateChangeSwitchesToTheNewStatesTimeout) {
  auto table = MakeTable(Options(8));
  FlowEntry* e = table->Insert(Key(1), Value(1), kSr, kT0).entry;
  table->OnTcpSegment(e, kAck, kInOnly, kT0 + absl::Seconds(30));
  // SYN_RECV would have expired at 60 s; ESTABLISHED lives 900 s from 30 s.
  EXPECT_NE(table->Lookup(Key(1), kT0 + absl::Seconds(929)), nullptr);
  e = table->Lookup(Key(1), kT0 + absl::Seconds(929));
  table->OnTcpSegment(e, kRst, kInOnly, kT0 + absl::Seconds(929));
  EXPECT_EQ(e->state(), kCl);
  EXPECT_EQ(table->Lookup(Key(1), kT0 + absl::Seconds(939)), nullptr);
}

TEST(FlowTableExpiry, ExpireSomeRemovesOnlyExpiredFlowsOfEveryState) {
  Recorder rec;
  auto table = MakeTable(Options(100, &rec));
  // Ten established flows at t0, ten CLOSE flows at t0+5s, ten UDP at t0.
  for (uint32_t i = 0; i < 10; ++i) {
    table->Insert(Key(i), Value(i), kEs, kT0);
    table->Insert(Key(100 + i), Value(i), kCl, kT0 + absl::Seconds(5));
    table->Insert(Key(200 + i, false, kProtoUdp), Value(i), kUdp, kT0);
  }
  // At t0+15s only the CLOSE flows are due, though they are the newest.
  EXPECT_EQ(table->ExpireSome(kT0 + absl::Seconds(15), 1000), 10u);
  EXPECT_EQ(table->size(), 20u);
  for (const Removal& r : rec.removals) EXPECT_EQ(r.state, kCl);
  EXPECT_EQ(table->size_in_state(kCl), 0u);
  // At t0+300s the UDP flows go, at t0+900s the established ones.
  EXPECT_EQ(table->ExpireSome(kT0 + absl::Seconds(300), 1000), 10u);
  EXPECT_EQ(table->size_in_state(kUdp), 0u);
  EXPECT_EQ(table->size_in_state(kEs), 10u);
  EXPECT_EQ(table->ExpireSome(kT0 + absl::Seconds(900), 1000), 10u);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->counters().expirations, 30u);
  EXPECT_EQ(rec.removals.size(), 30u);
}

TEST(FlowTableExpiry, ExpireSomeStopsAtItsBudget) {
  auto table = MakeTable(Options(100));
  for (uint32_t i = 0; i < 50; ++i) {
    table->Insert(Key(i), Value(i), i % 2 ? kEs : kFw, kT0);
  }
  const absl::Time late = kT0 + absl::Hours(1);
  EXPECT_EQ(table->ExpireSome(late, 7), 7u);
  EXPECT_EQ(table->size(), 43u);
  EXPECT_EQ(table->ExpireSome(late, 0), 0u);
  size_t total = 7;
  while (size_t n = table->ExpireSome(late, 7)) {
    EXPECT_LE(n, 7u);
    total += n;
  }
  EXPECT_EQ(total, 50u);
  EXPECT_THAT(table->CheckConsistency(), IsOk());
}

TEST(FlowTableExpiry, TimesBeforeTheEpochCountAsTheEpoch) {
  auto table = MakeTable(Options(8));
  FlowEntry* e =
      table->Insert(Key(1), Value(1), kEs, absl::UnixEpoch() - absl::Hours(1))
          .entry;
  EXPECT_EQ(e->last_seen(), absl::UnixEpoch());
  EXPECT_NE(table->Lookup(Key(1), absl::UnixEpoch() + absl::Seconds(899)),
            nullptr);
}

// --- FlowClock: the packet path's precomputed `now` ---

TEST(FlowClock, IsMicrosSinceTheEpochClampedToWhatAStampHolds) {
  EXPECT_EQ(FlowClock::FromTime(kT0).micros, 1'700'000'000'000'000);
  EXPECT_EQ(FlowClock::FromTime(kT0).ToTime(), kT0);
  // Rounded down to the microsecond, like the stamp.
  EXPECT_EQ(FlowClock::FromTime(kT0 + absl::Nanoseconds(999)).micros,
            FlowClock::FromTime(kT0).micros);
  EXPECT_EQ(FlowClock::FromTime(absl::UnixEpoch() - absl::Hours(1)).micros, 0);
  EXPECT_EQ(FlowClock::FromTime(absl::InfinitePast()).micros, 0);
  EXPECT_EQ(FlowClock::FromTime(absl::InfiniteFuture()).micros,
            FlowClock::kMaxMicros);
  EXPECT_EQ(FlowClock::FromMicros(-5).micros, 0);
  EXPECT_EQ(FlowClock::FromMicros(int64_t{1} << 60).micros,
            FlowClock::kMaxMicros);
  static_assert(FlowClock::FromMicros(123).micros == 123);
}

TEST(FlowClock, ClockOverloadsBehaveExactlyLikeTheTimeOnes) {
  // Two tables, the same random calls: one given absl::Time, the other the
  // FlowClock of that time. Every result, removal and the final contents
  // must be the same.
  Recorder rec_time, rec_clock;
  auto by_time = MakeTable(Options(13, &rec_time));
  auto by_clock = MakeTable(Options(13, &rec_clock));
  std::mt19937 rng(7);
  absl::Time now = kT0;
  for (int i = 0; i < 20000; ++i) {
    // Sub-microsecond steps too: both must round the same way.
    now += absl::Nanoseconds(rng() % 3'000'000'000u);
    const FlowClock clock = FlowClock::FromTime(now);
    const FlowKey key = Key(rng() % 30);
    const FlowState state = static_cast<FlowState>(rng() % 12);
    const uint32_t hash = by_time->Hash(key);
    ASSERT_EQ(by_clock->Hash(key), hash);
    switch (rng() % 6) {
      case 0: {
        const InsertResult a = by_time->Insert(key, Value(i), state, now);
        const InsertResult b = by_clock->Insert(key, Value(i), state, clock);
        ASSERT_EQ(a.status, b.status) << "step " << i;
        ASSERT_EQ(a.made_room_by, b.made_room_by) << "step " << i;
        break;
      }
      case 1: {
        FlowEntry* a = by_time->Lookup(key, now);
        FlowEntry* b = by_clock->Lookup(key, clock);
        ASSERT_EQ(a == nullptr, b == nullptr) << "step " << i;
        if (a != nullptr) {
          by_time->Touch(a, now);
          by_clock->Touch(b, clock);
        }
        break;
      }
      case 2: {
        FlowEntry* a = by_time->Lookup(key, hash, now);
        FlowEntry* b = by_clock->Lookup(key, hash, clock);
        ASSERT_EQ(a == nullptr, b == nullptr) << "step " << i;
        if (a != nullptr) {
          const uint8_t flags = static_cast<uint8_t>(rng() % 32);
          ASSERT_EQ(by_time->OnTcpSegment(a, flags, kIn, now),
                    by_clock->OnTcpSegment(b, flags, kIn, clock));
        }
        break;
      }
      case 3: {
        FlowEntry* a = by_time->Lookup(key, now);
        FlowEntry* b = by_clock->Lookup(key, clock);
        ASSERT_EQ(a == nullptr, b == nullptr) << "step " << i;
        if (a != nullptr) {
          ASSERT_EQ(by_time->SetState(a, state, now),
                    by_clock->SetState(b, state, clock));
        }
        break;
      }
      case 4: {
        const size_t budget = rng() % 4;
        ASSERT_EQ(by_time->ExpireSome(now, budget),
                  by_clock->ExpireSome(clock, budget));
        break;
      }
      case 5:
        if (FlowEntry* a = by_time->Lookup(key, now)) by_time->Remove(a);
        if (FlowEntry* b = by_clock->Lookup(key, clock)) by_clock->Remove(b);
        break;
    }
  }
  ASSERT_THAT(by_clock->CheckConsistency(), IsOk());
  ASSERT_EQ(rec_time.removals.size(), rec_clock.removals.size());
  for (size_t i = 0; i < rec_time.removals.size(); ++i) {
    EXPECT_EQ(rec_time.removals[i].key, rec_clock.removals[i].key);
    EXPECT_EQ(rec_time.removals[i].state, rec_clock.removals[i].state);
    EXPECT_EQ(rec_time.removals[i].reason, rec_clock.removals[i].reason);
  }
  EXPECT_GT(rec_time.removals.size(), 100u);  // the run did remove flows
  EXPECT_EQ(by_time->size(), by_clock->size());
  for (uint32_t k = 0; k < 30; ++k) {
    const FlowEntry* a = by_time->Lookup(Key(k), now);
    const FlowEntry* b = by_clock->Lookup(Key(k), FlowClock::FromTime(now));
    ASSERT_EQ(a == nullptr, b == nullptr) << "key " << k;
    if (a == nullptr) continue;
    EXPECT_EQ(a->state(), b->state());
    EXPECT_EQ(a->last_seen(), b->last_seen());
    EXPECT_EQ(a->value().backend, b->value().backend);
  }
}

// --- The TCP state machine ---

struct TransitionCase {
  FlowState from;
  uint8_t flags;
  TcpDirection direction;
  FlowState to;
};

class TcpTransitionTest : public testing::TestWithParam<TransitionCase> {};

TEST_P(TcpTransitionTest, NextStateFollowsIpvs) {
  const TransitionCase c = GetParam();
  EXPECT_EQ(NextTcpState(c.from, c.flags, c.direction), c.to)
      << FlowStateName(c.from) << " flags 0x" << std::hex << int{c.flags}
      << " direction " << std::dec << static_cast<int>(c.direction) << ": got "
      << FlowStateName(NextTcpState(c.from, c.flags, c.direction)) << ", want "
      << FlowStateName(c.to);
}

INSTANTIATE_TEST_SUITE_P(
    Table, TcpTransitionTest,
    testing::Values(
        // DR/TUN (input only): the handshake, data, close, reset.
        TransitionCase{kNone, kSyn, kInOnly, kSr},
        TransitionCase{kSr, kSyn, kInOnly, kSr},  // retransmitted SYN
        TransitionCase{kSr, kAck, kInOnly, kEs},
        TransitionCase{kSr, kAck | kTcpFlagPsh, kInOnly, kEs},
        TransitionCase{kSr, kRst, kInOnly, kSr},  // IPVS ignores it here
        TransitionCase{kSr, kFin | kAck, kInOnly, kTw},
        TransitionCase{kEs, kAck, kInOnly, kEs},
        TransitionCase{kEs, kSyn, kInOnly, kEs},
        TransitionCase{kEs, kFin | kAck, kInOnly, kFw},
        TransitionCase{kEs, kRst, kInOnly, kCl},
        TransitionCase{kEs, kRst | kAck, kInOnly, kCl},  // RST wins
        TransitionCase{kEs, kSyn | kFin, kInOnly, kEs},  // SYN before FIN
        TransitionCase{kEs, 0, kInOnly, kCl},  // no SYN/FIN/ACK/RST: CLOSE
        TransitionCase{kEs, kTcpFlagPsh, kInOnly, kCl},
        TransitionCase{kFw, kAck, kInOnly, kFw},
        TransitionCase{kFw, kFin, kInOnly, kFw},
        TransitionCase{kFw, kRst, kInOnly, kCl},
        TransitionCase{kFw, kSyn, kInOnly, kSr},
        TransitionCase{kTw, kSyn, kInOnly, kSr},  // tuple reused
        TransitionCase{kTw, kAck, kInOnly, kTw},
        TransitionCase{kCl, kAck, kInOnly, kCl},
        TransitionCase{kCl, kSyn, kInOnly, kSr},
        TransitionCase{kNone, kFin, kInOnly, kCl},
        TransitionCase{kNone, kRst, kInOnly, kCl},
        // Mid-stream pickup: our one change from IPVS (CLOSE there).
        TransitionCase{kNone, kAck, kInOnly, kSr},
        TransitionCase{kNone, kAck, kIn, kSr},
        // NAT/FULLNAT: both directions.
        TransitionCase{kNone, kSyn, kIn, kSr},
        TransitionCase{kSr, kSyn | kAck, kOut, kSr},  // SYN-ACK
        TransitionCase{kSr, kAck, kIn, kEs},
        TransitionCase{kSr, kRst, kOut, kCl},  // server refused
        TransitionCase{kEs, kFin | kAck, kIn, kCw},
        TransitionCase{kCw, kAck, kOut, kCw},
        TransitionCase{kCw, kFin | kAck, kOut, kTw},
        TransitionCase{kEs, kFin | kAck, kOut, kFw},
        TransitionCase{kFw, kFin | kAck, kIn, kTw},
        TransitionCase{kLa, kAck, kIn, kCl},
        TransitionCase{kLa, kRst, kIn, kLa},
        TransitionCase{kNone, kSyn, kOut, kSs},
        TransitionCase{kSs, kAck, kIn, kSs},
        TransitionCase{kSs, kSyn, kIn, kEs},
        TransitionCase{kNone, kAck, kOut, kEs},
        TransitionCase{kTw, kRst, kOut, kTw},
        // Non-TCP states do not change.
        TransitionCase{kUdp, kRst, kIn, kUdp},
        TransitionCase{kOther, kSyn, kInOnly, kOther}));

TEST(TcpTransition, EveryResultIsAStorableTcpState) {
  for (int s = 0; s <= static_cast<int>(kLa); ++s) {
    for (int flags = 0; flags < 64; ++flags) {
      for (TcpDirection d : {kInOnly, kIn, kOut}) {
        const FlowState next = NextTcpState(static_cast<FlowState>(s),
                                            static_cast<uint8_t>(flags), d);
        EXPECT_TRUE(IsValidFlowState(next));
        EXPECT_NE(next, kNone);
        EXPECT_LE(static_cast<int>(next), static_cast<int>(kLa));
      }
    }
  }
}

TEST(TcpTransition, InitialStateDependsOnProtocol) {
  EXPECT_EQ(InitialFlowState(kProtoTcp, kSyn, kInOnly), kSr);
  EXPECT_EQ(InitialFlowState(kProtoTcp, kAck, kInOnly), kSr);
  EXPECT_EQ(InitialFlowState(kProtoTcp, kRst, kIn), kCl);
  EXPECT_EQ(InitialFlowState(kProtoUdp, 0, kInOnly), kUdp);
  EXPECT_EQ(InitialFlowState(kProtoIcmp, 0, kInOnly), kOther);
  EXPECT_EQ(InitialFlowState(kProtoIcmpV6, 0, kInOnly), kOther);
  EXPECT_EQ(InitialFlowState(47, 0, kInOnly), kOther);  // GRE
}

TEST(FlowState, OnlyEstablishedIsActive) {
  for (int s = 0; s < kNumFlowStates; ++s) {
    const FlowState state = static_cast<FlowState>(s);
    EXPECT_EQ(IsActive(state), state == kEs) << FlowStateName(state);
  }
}

TEST(FlowState, UnconfirmedAreHandshakeAndClose) {
  for (int s = 0; s < kNumFlowStates; ++s) {
    const FlowState state = static_cast<FlowState>(s);
    const bool want =
        state == kNone || state == kSs || state == kSr || state == kCl;
    EXPECT_EQ(IsUnconfirmed(state), want) << FlowStateName(state);
  }
}

TEST(FlowState, NamesAreIpvsadms) {
  EXPECT_EQ(FlowStateName(kEs), "ESTABLISHED");
  EXPECT_EQ(FlowStateName(kSr), "SYN_RECV");
  EXPECT_EQ(FlowStateName(kCw), "CLOSE_WAIT");
  EXPECT_EQ(FlowStateName(kUdp), "UDP");
  EXPECT_EQ(FlowStateName(static_cast<FlowState>(99)), "INVALID");
}

TEST(FlowState, ActivityChangeOfReportsCrossingsOnly) {
  EXPECT_EQ(ActivityChangeOf(kSr, kEs), ActivityChange::kBecameActive);
  EXPECT_EQ(ActivityChangeOf(kEs, kFw), ActivityChange::kBecameInactive);
  EXPECT_EQ(ActivityChangeOf(kEs, kEs), ActivityChange::kNone);
  EXPECT_EQ(ActivityChangeOf(kFw, kTw), ActivityChange::kNone);
  EXPECT_EQ(ActivityChangeOf(kUdp, kUdp), ActivityChange::kNone);
}

// --- Active/inactive reporting through the table ---

TEST(FlowTableState, DirectRoutingLifecycleReportsActivityChanges) {
  auto table = MakeTable(Options(8));
  const FlowState initial = InitialFlowState(kProtoTcp, kSyn, kInOnly);
  FlowEntry* e = table->Insert(Key(1), Value(1), initial, kT0).entry;
  EXPECT_FALSE(IsActive(e->state()));
  EXPECT_EQ(table->unconfirmed_size(), 1u);
  const struct {
    uint8_t flags;
    FlowState state;
    ActivityChange change;
  } steps[] = {
      {kSyn, kSr, ActivityChange::kNone},  // retransmission
      {kAck, kEs, ActivityChange::kBecameActive},
      {kAck | kTcpFlagPsh, kEs, ActivityChange::kNone},
      {kFin | kAck, kFw, ActivityChange::kBecameInactive},
      {kAck, kFw, ActivityChange::kNone},
      {kSyn, kSr, ActivityChange::kNone},  // tuple reused
      {kAck, kEs, ActivityChange::kBecameActive},
      {kRst, kCl, ActivityChange::kBecameInactive},
  };
  absl::Time now = kT0;
  for (const auto& step : steps) {
    now += absl::Seconds(1);
    EXPECT_EQ(table->OnTcpSegment(e, step.flags, kInOnly, now), step.change);
    EXPECT_EQ(e->state(), step.state);
    EXPECT_EQ(e->last_seen(), now);
    EXPECT_EQ(table->size_in_state(step.state), 1u);
    EXPECT_EQ(table->unconfirmed_size(), IsUnconfirmed(step.state) ? 1u : 0u);
    EXPECT_THAT(table->CheckConsistency(), IsOk());
  }
}

TEST(FlowTableState, SetStateToAnInvalidStateOnlyTouches) {
  auto table = MakeTable(Options(8));
  FlowEntry* e = table->Insert(Key(1), Value(1), kEs, kT0).entry;
  EXPECT_EQ(table->SetState(e, kNone, kT0 + absl::Seconds(1)),
            ActivityChange::kNone);
  EXPECT_EQ(
      table->SetState(e, static_cast<FlowState>(77), kT0 + absl::Seconds(2)),
      ActivityChange::kNone);
  EXPECT_EQ(e->state(), kEs);
  EXPECT_EQ(e->last_seen(), kT0 + absl::Seconds(2));
}

// --- SYN-flood protection ---

TEST(FlowTableSynFlood, FloodIntoATableFullOfEstablishedFlowsIsRefused) {
  Recorder rec;
  auto table = MakeTable(Options(1000, &rec));
  for (uint32_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(table->Insert(Key(i), Value(i), kEs, kT0).inserted());
  }
  const absl::Time now = kT0 + absl::Seconds(1);
  for (uint32_t i = 0; i < 100'000; ++i) {
    const InsertResult r =
        table->Insert(Key(1'000'000 + i, i % 2), Value(0), kSr, now);
    ASSERT_EQ(r.status, InsertStatus::kRefusedNoRoom);
    ASSERT_EQ(r.entry, nullptr);
  }
  EXPECT_EQ(table->counters().refused_no_room, 100'000u);
  EXPECT_TRUE(rec.removals.empty());
  for (uint32_t i = 0; i < 1000; ++i) {
    EXPECT_NE(table->Lookup(Key(i), now), nullptr) << i;
  }
}

TEST(FlowTableSynFlood, FloodChurnsOnlyTheUnconfirmedShare) {
  Recorder rec;
  auto table = MakeTable(Options(1000, &rec));
  for (uint32_t i = 0; i < 300; ++i) {
    table->Insert(Key(i), Value(i), kEs, kT0);
  }
  absl::Time now = kT0;
  for (uint32_t i = 0; i < 10'000; ++i) {
    now += absl::Milliseconds(1);
    ASSERT_TRUE(
        table->Insert(Key(1'000'000 + i), Value(0), kSr, now).inserted());
  }
  EXPECT_EQ(table->unconfirmed_size(), 500u);
  EXPECT_EQ(table->size(), 800u);
  EXPECT_EQ(table->counters().evicted_unconfirmed_at_limit, 9'500u);
  EXPECT_EQ(table->counters().refused_no_room, 0u);
  ASSERT_EQ(rec.removals.size(), 9'500u);
  for (const Removal& r : rec.removals) {
    ASSERT_EQ(r.state, kSr);
    ASSERT_EQ(r.reason, RemovalReason::kEvictedUnconfirmedAtLimit);
  }
  // The oldest SYNs went first: the last 500 remain.
  EXPECT_EQ(rec.removals.front().key, Key(1'000'000));
  EXPECT_EQ(table->Lookup(Key(1'000'000 + 9'499), now), nullptr);
  EXPECT_NE(table->Lookup(Key(1'000'000 + 9'500), now), nullptr);
  for (uint32_t i = 0; i < 300; ++i) {
    EXPECT_NE(table->Lookup(Key(i), now), nullptr) << i;
  }
  // Legitimate new flows still get in: established ones take the free room.
  for (uint32_t i = 300; i < 500; ++i) {
    ASSERT_TRUE(table->Insert(Key(i), Value(i), kEs, now).inserted());
  }
  EXPECT_EQ(table->size(), 1000u);
  EXPECT_THAT(table->CheckConsistency(), IsOk());
}

TEST(FlowTableSynFlood, UnconfirmedInsertIntoAFullTableEvictsOnlyUnconfirmed) {
  Recorder rec;
  auto table = MakeTable(Options(10, &rec));  // unconfirmed limit 5
  // The established flows are the oldest, the SYN_RECV ones newer.
  for (uint32_t i = 0; i < 7; ++i) table->Insert(Key(i), Value(i), kEs, kT0);
  for (uint32_t i = 7; i < 10; ++i) {
    table->Insert(Key(i), Value(i), kSr, kT0 + absl::Seconds(i));
  }
  const InsertResult r =
      table->Insert(Key(10), Value(10), kSr, kT0 + absl::Seconds(20));
  ASSERT_TRUE(r.inserted());
  EXPECT_EQ(r.made_room_by, RemovalReason::kEvictedUnconfirmedWhenFull);
  ASSERT_EQ(rec.removals.size(), 1u);
  EXPECT_EQ(rec.removals[0].key, Key(7));
  EXPECT_EQ(table->counters().evicted_unconfirmed_when_full, 1u);
  EXPECT_EQ(table->size_in_state(kEs), 7u);
}

TEST(FlowTableSynFlood, ConfirmedInsertIntoAFullTableEvictsTheGlobalLru) {
  Recorder rec;
  auto table = MakeTable(Options(4, &rec));
  table->Insert(Key(0), Value(0), kEs, kT0);
  table->Insert(Key(1), Value(1), kSr, kT0 + absl::Seconds(1));
  table->Insert(Key(2), Value(2), kEs, kT0 + absl::Seconds(2));
  table->Insert(Key(3), Value(3), kSr, kT0 + absl::Seconds(3));
  table->Insert(Key(4, false, kProtoUdp), Value(4), kUdp,
                kT0 + absl::Seconds(4));
  table->Insert(Key(5), Value(5), kEs, kT0 + absl::Seconds(5));
  ASSERT_EQ(rec.removals.size(), 2u);
  EXPECT_EQ(rec.removals[0].key, Key(0));
  EXPECT_EQ(rec.removals[1].key, Key(1));
  EXPECT_EQ(rec.removals[0].reason, RemovalReason::kEvictedLru);
  EXPECT_EQ(rec.removals[1].reason, RemovalReason::kEvictedLru);
}

TEST(FlowTableSynFlood, ExpiredFlowsMakeRoomBeforeAnythingIsRefused) {
  Recorder rec;
  auto table = MakeTable(Options(100, &rec));
  for (uint32_t i = 0; i < 100; ++i) {
    table->Insert(Key(i), Value(i), i < 10 ? kTw : kEs, kT0);
  }
  // TIME_WAIT (120 s) flows are expired at t0+120s; established are not.
  const absl::Time now = kT0 + absl::Seconds(120);
  for (uint32_t i = 0; i < 10; ++i) {
    const InsertResult r = table->Insert(Key(1000 + i), Value(0), kSr, now);
    ASSERT_TRUE(r.inserted()) << i;
    EXPECT_EQ(r.made_room_by, RemovalReason::kExpired);
  }
  EXPECT_EQ(table->counters().expirations, 10u);
  for (const Removal& r : rec.removals) EXPECT_EQ(r.state, kTw);
  // With nothing expired left, the next SYN pushes out the oldest SYN, not
  // an established flow.
  const InsertResult r = table->Insert(Key(2000), Value(0), kSr, now);
  ASSERT_TRUE(r.inserted());
  EXPECT_EQ(r.made_room_by, RemovalReason::kEvictedUnconfirmedWhenFull);
  EXPECT_EQ(rec.removals.back().key, Key(1000));
  EXPECT_EQ(table->size_in_state(kEs), 90u);
}

TEST(FlowTableSynFlood, ResetFlowsJoinTheUnconfirmedClass) {
  auto table = MakeTable(Options(10));
  FlowEntry* e = table->Insert(Key(1), Value(1), kEs, kT0).entry;
  EXPECT_EQ(table->unconfirmed_size(), 0u);
  table->OnTcpSegment(e, kRst, kInOnly, kT0);
  EXPECT_EQ(table->unconfirmed_size(), 1u);
  // A RST flood of new tuples is bounded like a SYN flood.
  for (uint32_t i = 0; i < 100; ++i) {
    table->Insert(Key(100 + i), Value(0),
                  InitialFlowState(kProtoTcp, kRst, kInOnly), kT0);
  }
  EXPECT_EQ(table->unconfirmed_size(), 5u);
  EXPECT_EQ(table->size_in_state(kCl), 5u);
}

TEST(FlowTableSynFlood, LegitimateFlowsSurviveAMixedFlood) {
  // 600 real clients complete handshakes (SYN, then ACK) among a flood of
  // 100 spoofed SYNs and 20 spoofed bare ACKs per client; the table fills
  // up. No confirmed flow may ever be evicted while the flood has
  // unconfirmed flows to lose.
  Recorder rec;
  auto table = MakeTable(Options(1000, &rec));
  std::mt19937 rng(1);
  absl::Time now = kT0;
  uint32_t spoofed = 10'000'000;
  for (uint32_t c = 0; c < 600; ++c) {
    for (int i = 0; i < 120; ++i) {
      now += absl::Microseconds(10);
      const uint8_t flags = i % 6 == 0 ? kAck : kSyn;
      table->Insert(Key(spoofed++, rng() % 2), Value(0),
                    InitialFlowState(kProtoTcp, flags, kInOnly), now);
    }
    const FlowKey key = Key(c, c % 2);
    FlowEntry* e = table
                       ->Insert(key, Value(c),
                                InitialFlowState(kProtoTcp, kSyn, kInOnly), now)
                       .entry;
    ASSERT_NE(e, nullptr) << c;
    EXPECT_EQ(table->OnTcpSegment(e, kAck, kInOnly, now),
              ActivityChange::kBecameActive);
  }
  for (const Removal& r : rec.removals) {
    ASSERT_TRUE(IsUnconfirmed(r.state)) << FlowStateName(r.state);
  }
  for (uint32_t c = 0; c < 600; ++c) {
    const FlowEntry* e = table->Lookup(Key(c, c % 2), now);
    ASSERT_NE(e, nullptr) << c;
    EXPECT_EQ(e->state(), kEs);
  }
  EXPECT_EQ(table->unconfirmed_size(), 400u);
  EXPECT_GT(table->counters().evicted_unconfirmed_when_full, 0u);
  EXPECT_EQ(table->size(), 1000u);
  EXPECT_THAT(table->CheckConsistency(), IsOk());
}

// --- Small capacities ---

TEST(FlowTableSmall, CapacityOneFollowsThePolicy) {
  Recorder rec;
  auto table = MakeTable(Options(1, &rec));
  EXPECT_EQ(table->unconfirmed_limit(), 1u);
  ASSERT_TRUE(table->Insert(Key(1), Value(1), kEs, kT0).inserted());
  // A SYN may not push out the established flow.
  EXPECT_EQ(table->Insert(Key(2), Value(2), kSr, kT0).status,
            InsertStatus::kRefusedNoRoom);
  // Another established flow replaces it (LRU).
  EXPECT_EQ(table->Insert(Key(3), Value(3), kEs, kT0).made_room_by,
            RemovalReason::kEvictedLru);
  EXPECT_EQ(table->Lookup(Key(1), kT0), nullptr);
  table->Remove(table->Lookup(Key(3), kT0));
  EXPECT_EQ(table->size(), 0u);
  ASSERT_TRUE(table->Insert(Key(4), Value(4), kSr, kT0).inserted());
  EXPECT_EQ(table->Insert(Key(5), Value(5), kSr, kT0).made_room_by,
            RemovalReason::kEvictedUnconfirmedAtLimit);
  EXPECT_NE(table->Lookup(Key(5), kT0), nullptr);
  EXPECT_EQ(rec.removals.size(), 3u);
  EXPECT_THAT(table->CheckConsistency(), IsOk());
}

TEST(FlowTableSmall, SmallTablesStayConsistentUnderRandomUse) {
  for (size_t capacity : {1, 2, 3, 5, 8, 13}) {
    Recorder rec;
    auto table = MakeTable(Options(capacity, &rec));
    std::mt19937 rng(static_cast<uint32_t>(capacity));
    absl::Time now = kT0;
    for (int i = 0; i < 5000; ++i) {
      now += absl::Milliseconds(rng() % 5000);
      const FlowKey key = Key(rng() % 20);
      const FlowState state = static_cast<FlowState>(1 + rng() % 10);
      switch (rng() % 4) {
        case 0:
          table->Insert(key, Value(i), state, now);
          break;
        case 1:
          if (FlowEntry* e = table->Lookup(key, now)) table->Remove(e);
          break;
        case 2:
          if (FlowEntry* e = table->Lookup(key, now)) {
            table->OnTcpSegment(e, static_cast<uint8_t>(rng() % 32), kIn, now);
          }
          break;
        case 3:
          table->ExpireSome(now, rng() % 3);
          break;
      }
      ASSERT_LE(table->size(), capacity);
      ASSERT_THAT(table->CheckConsistency(), IsOk()) << "step " << i;
    }
  }
}

// --- Churn and the removal callback ---

TEST(FlowTableChurn, MillionsOfInsertRemoveCyclesKeepLookupsShort) {
  // Constant churn on a small table: with tombstones, probe runs would grow
  // until every miss scanned the whole index. Backward-shift deletion keeps
  // the index what inserting the live flows afresh would build.
  constexpr size_t kCapacity = 256;
  Recorder rec;
  auto table = MakeTable(Options(kCapacity, &rec));
  std::mt19937 rng(7);
  std::vector<std::pair<FlowKey, FlowEntry*>> live;
  uint32_t next_key = 0;
  for (int cycle = 0; cycle < 3'000'000; ++cycle) {
    if (live.size() < kCapacity * 3 / 4 && (live.empty() || rng() % 2 == 0)) {
      const FlowKey key = Key(next_key++, rng() % 2);
      const InsertResult r = table->Insert(key, Value(next_key), kEs, kT0);
      ASSERT_TRUE(r.inserted());
      live.emplace_back(key, r.entry);
    } else {
      const size_t victim = rng() % live.size();
      table->Remove(live[victim].second);
      live[victim] = live.back();
      live.pop_back();
    }
    if (cycle % 250'000 == 0) {
      ASSERT_THAT(table->CheckConsistency(), IsOk());
      for (const auto& [key, entry] : live) {
        ASSERT_EQ(table->Lookup(key, kT0), entry);
      }
      const FlowIndexStats stats = table->IndexStats();
      EXPECT_EQ(stats.occupied, live.size());
      // 512 slots at most 3/8 full: linear probing's displacements stay
      // small (expected mean about 0.3).
      EXPECT_LT(stats.mean_displacement, 2.0);
      EXPECT_LT(stats.max_displacement, 32u);
    }
  }
  EXPECT_EQ(table->size(), live.size());
  EXPECT_EQ(rec.removals.size(), table->counters().removals);
  EXPECT_EQ(table->counters().inserts, next_key);
  EXPECT_EQ(table->counters().inserts - table->counters().removals,
            table->size());
  // Misses still end quickly: a fresh key finds an empty slot.
  for (uint32_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(table->Lookup(Key(100'000'000 + i), kT0), nullptr);
  }
}

TEST(FlowTableChurn, CallbackReportsEachDepartedFlowExactlyOnce) {
  // A model check: random inserts, lookups, state changes, removals,
  // sweeps and clock jumps on a table under pressure. The shadow map holds
  // what the callback has not reported gone; lookups must agree with it.
  struct Shadow {
    std::map<std::tuple<uint32_t, bool>, uint32_t> live;  // key -> backend
    static std::tuple<uint32_t, bool> Id(const FlowKey& key) {
      const bool v6 = !key.is_v4();
      uint32_t i = 0;
      for (int b = 0; b < 4; ++b) i = i << 8 | key.src[(v6 ? 12 : 0) + b];
      return {v6 ? i : i - 0x0a000000u, v6};
    }
    static void Removed(void* context, const FlowEntry& entry, RemovalReason) {
      auto* shadow = static_cast<Shadow*>(context);
      const auto it = shadow->live.find(Id(entry.key()));
      ASSERT_NE(it, shadow->live.end()) << "reported twice or never inserted";
      EXPECT_EQ(it->second, entry.value().backend);
      shadow->live.erase(it);
    }
  };
  Shadow shadow;
  FlowTableOptions options = Options(64);
  options.max_unconfirmed_percent = 20;  // so that every rule gets exercised
  options.on_removed = &Shadow::Removed;
  options.on_removed_context = &shadow;
  auto table = MakeTable(options);
  std::mt19937 rng(3);
  absl::Time now = kT0;
  for (int step = 0; step < 300'000; ++step) {
    const uint32_t i = rng() % 200;
    const bool v6 = rng() % 2;
    const FlowKey key = Key(i, v6);
    now += absl::Milliseconds(rng() % 400);
    switch (rng() % 6) {
      case 0:
      case 1: {
        const FlowState state = static_cast<FlowState>(1 + rng() % 10);
        const InsertResult r = table->Insert(key, Value(step), state, now);
        if (r.inserted()) {
          ASSERT_TRUE(shadow.live.emplace(Shadow::Id(key), step).second);
        }
        break;
      }
      case 2: {
        FlowEntry* e = table->Lookup(key, now);
        ASSERT_EQ(e != nullptr, shadow.live.count({i, v6}) == 1);
        if (e != nullptr) table->Touch(e, now);
        break;
      }
      case 3: {
        if (FlowEntry* e = table->Lookup(key, now)) {
          table->OnTcpSegment(e, static_cast<uint8_t>(rng() % 32),
                              rng() % 2 ? kIn : kOut, now);
        }
        break;
      }
      case 4:
        if (FlowEntry* e = table->Lookup(key, now)) table->Remove(e);
        ASSERT_EQ(shadow.live.count({i, v6}), 0u);
        break;
      case 5:
        table->ExpireSome(now, rng() % 8);
        break;
    }
    ASSERT_EQ(table->size(), shadow.live.size());
    if (step % 10'000 == 0) {
      ASSERT_THAT(table->CheckConsistency(), IsOk());
    }
  }
  const FlowTableCounters& c = table->counters();
  EXPECT_EQ(c.inserts - c.removals - c.expirations - c.evicted_lru -
                c.evicted_unconfirmed_at_limit -
                c.evicted_unconfirmed_when_full,
            table->size());
  EXPECT_GT(c.expirations, 0u);
  EXPECT_GT(c.evicted_lru, 0u);
  EXPECT_GT(c.evicted_unconfirmed_at_limit, 0u);
}

// --- No allocation after Create ---

struct CountingSink {
  uint64_t removed = 0;
  static void Removed(void* context, const FlowEntry&, RemovalReason) {
    ++static_cast<CountingSink*>(context)->removed;
  }
};

void* volatile g_escape = nullptr;

TEST(FlowTableAllocation, CounterSeesAllocations) {
  alloc_testing::StartCountingAllocations();
  g_escape = new int(1);
  const uint64_t allocations = alloc_testing::StopCountingAllocations();
  delete static_cast<int*>(g_escape);
  EXPECT_EQ(allocations, 1u);
}

TEST(FlowTableAllocation, NothingAllocatesAfterCreate) {
  CountingSink sink;
  FlowTableOptions options = Options(1024);
  options.on_removed = &CountingSink::Removed;
  options.on_removed_context = &sink;
  auto table = MakeTable(options);
  std::vector<FlowKey> keys;
  for (uint32_t i = 0; i < 5000; ++i) keys.push_back(Key(i, i % 2));

  alloc_testing::StartCountingAllocations();
  absl::Time now = kT0;
  uint64_t found = 0;
  for (int round = 0; round < 20; ++round) {
    for (uint32_t i = 0; i < keys.size(); ++i) {
      now += absl::Milliseconds(3);
      // Two in three packets from 600 busy flows (hits), the rest from all
      // 5000 (misses, inserts, evictions).
      const FlowKey& key = i % 3 == 0 ? keys[(i * 7 + round) % keys.size()]
                                      : keys[(i * 13) % 600];
      const uint32_t hash = table->Hash(key);
      table->Prefetch(hash);
      if (FlowEntry* e = table->Lookup(key, hash, now)) {
        ++found;
        table->OnTcpSegment(e, i % 3 ? kAck : kFin, kInOnly, now);
        if (i % 11 == 0) table->Remove(e);
      } else {
        table->Insert(key, Value(i), i % 4 ? kSr : kEs, now);
      }
      if (i % 64 == 0) table->ExpireSome(now, 16);
    }
  }
  const uint64_t allocations = alloc_testing::StopCountingAllocations();
  EXPECT_EQ(allocations, 0u);
  // The loop did real work: hits, evictions, expirations.
  EXPECT_GT(found, 0u);
  EXPECT_GT(sink.removed, 0u);
  EXPECT_GT(table->counters().evicted_unconfirmed_at_limit, 0u);
}

}  // namespace
}  // namespace anylb::scheduler
