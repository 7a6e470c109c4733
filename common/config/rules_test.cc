#include "common/config/rules.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::config {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

TEST(IsPrime, SmallAndTableSizes) {
  EXPECT_FALSE(IsPrime(0));
  EXPECT_FALSE(IsPrime(1));
  EXPECT_TRUE(IsPrime(2));
  EXPECT_TRUE(IsPrime(3));
  EXPECT_FALSE(IsPrime(4));
  EXPECT_FALSE(IsPrime(25));
  EXPECT_TRUE(IsPrime(251));
  EXPECT_FALSE(IsPrime(65535));
  EXPECT_TRUE(IsPrime(65537));
  EXPECT_TRUE(IsPrime(655373));
  EXPECT_TRUE(IsPrime(kMaxMaglevTableSize));
  EXPECT_FALSE(IsPrime(16777215));
  EXPECT_FALSE(IsPrime(65537u * 65521u));  // a product of two primes
  EXPECT_TRUE(IsPrime(4294967291u));       // the largest 32-bit prime
}

TEST(ServiceNames, RulesAndDefaults) {
  EXPECT_TRUE(IsValidServiceName("web-1.prod_a"));
  EXPECT_FALSE(IsValidServiceName(""));
  EXPECT_FALSE(IsValidServiceName("Web"));
  EXPECT_TRUE(IsValidServiceName("tcp-2001:db8::10-80"));
  EXPECT_FALSE(IsValidServiceName(std::string(64, 'a')));
  EXPECT_TRUE(IsValidServiceName(std::string(63, 'a')));
  EXPECT_EQ(DefaultServiceName(*IpAddress::Parse("192.0.2.10"), 80, 6),
            "tcp-192.0.2.10-80");
  EXPECT_EQ(DefaultServiceName(*IpAddress::Parse("2001:db8::10"), 53, 17),
            "udp-2001:db8::10-53");
}

TEST(ValidatePersistence, IpvsRules) {
  EXPECT_THAT(ValidatePersistence(80, absl::ZeroDuration(), 0, 0), IsOk());
  EXPECT_THAT(ValidatePersistence(0, absl::Seconds(300), 24, 64), IsOk());
  EXPECT_THAT(ValidatePersistence(0, absl::ZeroDuration(), 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs persistence")));
  EXPECT_THAT(
      ValidatePersistence(80, absl::Seconds(-1), 0, 0),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  EXPECT_THAT(ValidatePersistence(80, absl::Seconds(1), 33, 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("IPv4 prefix length 33")));
  EXPECT_THAT(ValidatePersistence(80, absl::Seconds(1), 0, 129),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("IPv6 prefix length 129")));
  EXPECT_THAT(ValidatePersistence(70000, absl::Seconds(1), 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace anylb::config
