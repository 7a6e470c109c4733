#include "common/ip_address.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash_testing.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::ValuesIn;

// Helpers that parse text the test knows to be valid.
IpAddress Addr(std::string_view text) {
  absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
  EXPECT_THAT(address, IsOk()) << text;
  return address.value_or(IpAddress());
}

IpPrefix Prefix(std::string_view text) {
  absl::StatusOr<IpPrefix> prefix = IpPrefix::Parse(text);
  EXPECT_THAT(prefix, IsOk()) << text;
  return prefix.value_or(IpPrefix());
}

Endpoint Ep(std::string_view text) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(text);
  EXPECT_THAT(endpoint, IsOk()) << text;
  return endpoint.value_or(Endpoint());
}

// Parse -> ToString round trips. Each table is instantiated once for IPv4
// and once for IPv6.

struct RoundTripCase {
  std::string_view input;
  std::string_view canonical;
};

void PrintTo(const RoundTripCase& c, std::ostream* os) {
  *os << '"' << c.input << "\" -> \"" << c.canonical << '"';
}

class IpAddressRoundTrip
    : public ::testing::TestWithParam<std::pair<IpFamily, RoundTripCase>> {};

TEST_P(IpAddressRoundTrip, PrintsTheCanonicalFormAndParsesItBack) {
  const auto& [family, c] = GetParam();
  ASSERT_OK_AND_ASSIGN(const IpAddress address, IpAddress::Parse(c.input));
  EXPECT_EQ(address.family(), family);
  EXPECT_EQ(address.ToString(), c.canonical);
  EXPECT_THAT(IpAddress::Parse(address.ToString()), IsOkAndHolds(address));
}

std::vector<std::pair<IpFamily, RoundTripCase>> WithFamily(
    IpFamily family, const std::vector<RoundTripCase>& cases) {
  std::vector<std::pair<IpFamily, RoundTripCase>> out;
  out.reserve(cases.size());
  for (const RoundTripCase& c : cases) out.emplace_back(family, c);
  return out;
}

INSTANTIATE_TEST_SUITE_P(V4, IpAddressRoundTrip,
                         ValuesIn(WithFamily(IpFamily::kV4,
                                             {
                                                 {"0.0.0.0", "0.0.0.0"},
                                                 {"192.0.2.1", "192.0.2.1"},
                                                 {"10.0.0.255", "10.0.0.255"},
                                                 {"255.255.255.255",
                                                  "255.255.255.255"},
                                                 {"100.64.0.0", "100.64.0.0"},
                                             })));

INSTANTIATE_TEST_SUITE_P(
    V6, IpAddressRoundTrip,
    ValuesIn(WithFamily(
        IpFamily::kV6,
        {
            {"::", "::"},
            {"::1", "::1"},
            {"1::", "1::"},
            {"2001:db8::1", "2001:db8::1"},
            // RFC 5952 4.1: no leading zeros; 4.2.1: "::" as long as possible.
            {"2001:0db8:0:0:0:0:0:1", "2001:db8::1"},
            {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
            // 4.3: lowercase.
            {"2001:DB8::ABCD", "2001:db8::abcd"},
            // 4.2.2: a single zero group is not shortened.
            {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
            // 4.2.3: the longest run of zeros, the first of equal runs.
            {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},
            {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
            {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
            {"::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"},
            {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
            {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
            {"fe80::1:2", "fe80::1:2"},
            // Section 5: IPv4-mapped addresses in mixed notation, however
            // they were written.
            {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
            {"::FFFF:c000:0201", "::ffff:192.0.2.1"},
            {"0:0:0:0:0:ffff:0.0.0.0", "::ffff:0.0.0.0"},
            // Other embedded-IPv4 forms print as plain hex.
            {"::192.0.2.1", "::c000:201"},
            {"64:ff9b::192.0.2.1", "64:ff9b::c000:201"},
        })));

class IpPrefixRoundTrip
    : public ::testing::TestWithParam<std::pair<IpFamily, RoundTripCase>> {};

TEST_P(IpPrefixRoundTrip, PrintsTheCanonicalFormAndParsesItBack) {
  const auto& [family, c] = GetParam();
  ASSERT_OK_AND_ASSIGN(const IpPrefix prefix, IpPrefix::Parse(c.input));
  EXPECT_EQ(prefix.family(), family);
  EXPECT_EQ(prefix.ToString(), c.canonical);
  EXPECT_THAT(IpPrefix::Parse(prefix.ToString()), IsOkAndHolds(prefix));
}

INSTANTIATE_TEST_SUITE_P(
    V4, IpPrefixRoundTrip,
    ValuesIn(WithFamily(IpFamily::kV4, {
                                           {"0.0.0.0/0", "0.0.0.0/0"},
                                           {"10.0.0.0/8", "10.0.0.0/8"},
                                           {"192.0.2.0/24", "192.0.2.0/24"},
                                           {"192.0.2.128/25", "192.0.2.128/25"},
                                           {"192.0.2.1/32", "192.0.2.1/32"},
                                           // A bare address is a host.
                                           {"192.0.2.1", "192.0.2.1/32"},
                                       })));

INSTANTIATE_TEST_SUITE_P(
    V6, IpPrefixRoundTrip,
    ValuesIn(WithFamily(IpFamily::kV6,
                        {
                            {"::/0", "::/0"},
                            {"2001:db8::/32", "2001:db8::/32"},
                            {"2001:0DB8:0000::/48", "2001:db8::/48"},
                            {"fe80::/10", "fe80::/10"},
                            {"::ffff:0.0.0.0/96", "::ffff:0.0.0.0/96"},
                            {"2001:db8::1/128", "2001:db8::1/128"},
                            {"2001:db8::1", "2001:db8::1/128"},
                        })));

class EndpointRoundTrip
    : public ::testing::TestWithParam<std::pair<IpFamily, RoundTripCase>> {};

TEST_P(EndpointRoundTrip, PrintsTheCanonicalFormAndParsesItBack) {
  const auto& [family, c] = GetParam();
  ASSERT_OK_AND_ASSIGN(const Endpoint endpoint, Endpoint::Parse(c.input));
  EXPECT_EQ(endpoint.family(), family);
  EXPECT_EQ(endpoint.ToString(), c.canonical);
  EXPECT_THAT(Endpoint::Parse(endpoint.ToString()), IsOkAndHolds(endpoint));
}

INSTANTIATE_TEST_SUITE_P(
    V4, EndpointRoundTrip,
    ValuesIn(WithFamily(IpFamily::kV4,
                        {
                            {"192.0.2.1:80", "192.0.2.1:80"},
                            {"0.0.0.0:0", "0.0.0.0:0"},
                            {"255.255.255.255:65535", "255.255.255.255:65535"},
                        })));

INSTANTIATE_TEST_SUITE_P(
    V6, EndpointRoundTrip,
    ValuesIn(WithFamily(IpFamily::kV6,
                        {
                            {"[2001:db8::1]:443", "[2001:db8::1]:443"},
                            {"[2001:0DB8:0::1]:443", "[2001:db8::1]:443"},
                            {"[::]:0", "[::]:0"},
                            {"[::1]:65535", "[::1]:65535"},
                            {"[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.1]:80"},
                        })));

// Bad input: every parser rejects it with InvalidArgument, quoting the input
// and saying why.

enum class Parser { kIpAddress, kIpPrefix, kEndpoint };

struct BadInputCase {
  std::string_view name;    // The test's name: what is wrong.
  std::string_view input;   // Printable ASCII, so it is quoted unescaped.
  std::string_view reason;  // Part of the message that explains the error.
};

void PrintTo(const BadInputCase& c, std::ostream* os) {
  *os << '"' << c.input << '"';
}

absl::Status ParseWith(Parser parser, std::string_view text) {
  switch (parser) {
    case Parser::kIpAddress:
      return IpAddress::Parse(text).status();
    case Parser::kIpPrefix:
      return IpPrefix::Parse(text).status();
    case Parser::kEndpoint:
      return Endpoint::Parse(text).status();
  }
  return absl::InternalError("unknown parser");
}

class ParseRejects
    : public ::testing::TestWithParam<std::pair<Parser, BadInputCase>> {};

TEST_P(ParseRejects, WithInvalidArgumentQuotingTheInputAndTheReason) {
  const auto& [parser, c] = GetParam();
  const std::string quoted = "\"" + std::string(c.input) + "\"";
  EXPECT_THAT(ParseWith(parser, c.input),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(quoted), HasSubstr(c.reason))));
}

std::vector<std::pair<Parser, BadInputCase>> WithParser(
    Parser parser, const std::vector<BadInputCase>& cases) {
  std::vector<std::pair<Parser, BadInputCase>> out;
  out.reserve(cases.size());
  for (const BadInputCase& c : cases) out.emplace_back(parser, c);
  return out;
}

std::string BadInputName(
    const ::testing::TestParamInfo<std::pair<Parser, BadInputCase>>& info) {
  return std::string(info.param.second.name);
}

constexpr char kTooLong[] =
    "1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1";

INSTANTIATE_TEST_SUITE_P(
    IpAddress, ParseRejects,
    ValuesIn(WithParser(
        Parser::kIpAddress,
        {
            {"Empty", "", "empty string"},
            {"OctetAbove255", "300.1.1.1", "octet \"300\" is above 255"},
            {"LastOctetAbove255", "1.1.1.256", "octet \"256\" is above 255"},
            {"HugeOctet", "1.99999999999999999999.1.1", "is above 255"},
            {"LeadingSpace", " 1.2.3.4", "contains whitespace"},
            {"TrailingSpace", "1.2.3.4 ", "contains whitespace"},
            {"ThreeOctets", "1.2.3", "an IPv4 address has 4 octets, not 3"},
            {"FiveOctets", "1.2.3.4.5", "an IPv4 address has 4 octets, not 5"},
            {"InetAtonShorthand", "10.1",
             "an IPv4 address has 4 octets, not 2"},
            {"TrailingDot", "1.2.3.4.", "an IPv4 address has 4 octets, not 5"},
            {"EmptyOctet", "1..2.3", "no empty octets"},
            {"LeadingZero", "01.2.3.4", "octet \"01\" has a leading zero"},
            {"LeadingZeroInLastOctet", "1.2.3.04", "has a leading zero"},
            {"HexOctet", "0x1.2.3.4", "octet \"0x1\" is not a decimal number"},
            {"NegativeOctet", "1.-2.3.4", "octet \"-2\" is not a decimal"},
            {"PrefixLength", "1.2.3.4/24", "octet \"4/24\" is not a decimal"},
            {"HostName", "localhost", "not an IPv4 or IPv6 address"},
            {"NonHexDigit", "::g", "not a valid IPv6 address"},
            {"NineGroups", "1:2:3:4:5:6:7:8:9", "not a valid IPv6 address"},
            {"TwoDoubleColons", "1::2::3", "not a valid IPv6 address"},
            {"FiveDigitGroup", "12345::", "not a valid IPv6 address"},
            {"SingleColon", ":1", "not a valid IPv6 address"},
            {"LeadingZeroInEmbeddedV4", "::ffff:01.2.3.4",
             "not a valid IPv6 address"},
            {"TooLong", kTooLong, "not a valid IPv6 address"},
            {"Zone", "fe80::1%eth0",
             "zone indices (\"%eth0\") are not supported"},
            {"Brackets", "[2001:db8::1]", "brackets"},
        })),
    BadInputName);

INSTANTIATE_TEST_SUITE_P(
    IpPrefix, ParseRejects,
    ValuesIn(WithParser(
        Parser::kIpPrefix,
        {
            {"Empty", "", "empty string"},
            {"V4LengthAbove32", "1.2.3.4/33",
             "IPv4 prefix length \"33\" is above 32"},
            {"V6LengthAbove128", "2001:db8::/129",
             "IPv6 prefix length \"129\" is above 128"},
            {"HugeLength", "10.0.0.0/99999999999999999999", "is above 32"},
            {"MissingLength", "1.2.3.4/", "missing IPv4 prefix length"},
            {"MissingAddress", "/24", "missing address before \"/\""},
            {"NegativeLength", "1.2.3.4/-1",
             "IPv4 prefix length \"-1\" is not a decimal number"},
            {"LengthWithLetter", "1.2.3.4/2a",
             "IPv4 prefix length \"2a\" is not a decimal number"},
            {"LengthWithLeadingZero", "10.0.0.0/08",
             "IPv4 prefix length \"08\" has a leading zero"},
            {"LengthWithSpace", "10.0.0.0/ 8", "is not a decimal number"},
            {"TwoSlashes", "10.0.0.0/8/8", "is not a decimal number"},
            {"BadAddress", "300.1.1.1/24", "octet \"300\" is above 255"},
            {"BadV6Address", "::g/64", "not a valid IPv6 address"},
            {"Zone", "fe80::%eth0/64", "zone indices"},
            {"V4HostBitsSet", "192.0.2.1/24",
             "host bits are set; did you mean 192.0.2.0/24?"},
            {"V4HostBitsSetAtZeroLength", "10.0.0.0/0",
             "host bits are set; did you mean 0.0.0.0/0?"},
            {"V6HostBitsSet", "2001:db8::1/32",
             "host bits are set; did you mean 2001:db8::/32?"},
        })),
    BadInputName);

INSTANTIATE_TEST_SUITE_P(
    Endpoint, ParseRejects,
    ValuesIn(WithParser(
        Parser::kEndpoint,
        {
            {"Empty", "", "empty string"},
            {"MissingPort", "192.0.2.1:", "missing port"},
            {"MissingColonAndPort", "192.0.2.1", "missing \":port\""},
            {"PortAbove65535", "192.0.2.1:65536",
             "port \"65536\" is above 65535"},
            {"HugePort", "192.0.2.1:99999999999999999999", "is above 65535"},
            {"NegativePort", "192.0.2.1:-1",
             "port \"-1\" is not a decimal number"},
            {"ServiceName", "192.0.2.1:http", "is not a decimal number"},
            {"PortWithSpace", "192.0.2.1: 80", "is not a decimal number"},
            {"PortWithLeadingZero", "192.0.2.1:080",
             "port \"080\" has a leading zero"},
            {"BadAddress", "300.1.1.1:80", "octet \"300\" is above 255"},
            {"MissingAddress", ":80", "empty string"},
            {"V6WithoutBrackets", "2001:db8::1:80",
             "needs brackets; did you mean \"[2001:db8::1]:80\"?"},
            {"V6WithoutBracketsOrPort", "2001:db8::g", "needs brackets"},
            {"V6WithoutPort", "[2001:db8::1]", "missing \":port\" after \"]\""},
            {"V6WithoutColon", "[2001:db8::1]443", "missing \":port\""},
            {"V6MissingPort", "[2001:db8::1]:", "missing port"},
            {"V6MissingCloseBracket", "[2001:db8::1:443", "missing \"]\""},
            {"V6BadAddress", "[::g]:443", "not a valid IPv6 address"},
            {"V6Zone", "[fe80::1%eth0]:443", "zone indices"},
            {"V4InBrackets", "[192.0.2.1]:80",
             "brackets are only for IPv6 addresses; did you mean "
             "\"192.0.2.1:80\"?"},
        })),
    BadInputName);

TEST(IpAddressParse, EscapesUnprintableBytesInTheMessage) {
  EXPECT_THAT(IpAddress::Parse("1.2.3.4\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(R"("1.2.3.4\n": contains whitespace)")));
  EXPECT_THAT(IpAddress::Parse(std::string_view("1.2.3.4\0", 8)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(R"("1.2.3.4\x00")")));
}

TEST(IpAddressParse, MessageSaysWhatWasBeingParsed) {
  EXPECT_THAT(IpAddress::Parse("300.1.1.1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       R"(invalid IP address "300.1.1.1": octet "300" is )"
                       "above 255"));
  EXPECT_THAT(IpPrefix::Parse("192.0.2.1/24"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       R"(invalid IP prefix "192.0.2.1/24": host bits are )"
                       "set; did you mean 192.0.2.0/24?"));
  EXPECT_THAT(Endpoint::Parse("192.0.2.1:65536"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       R"(invalid endpoint "192.0.2.1:65536": port "65536" )"
                       "is above 65535"));
}

// IpAddress

TEST(IpAddress, DefaultIsV4Zero) {
  EXPECT_TRUE(IpAddress().is_v4());
  EXPECT_EQ(IpAddress(), Addr("0.0.0.0"));
}

TEST(IpAddress, FromV4TakesHostByteOrder) {
  const IpAddress address = IpAddress::FromV4(0xc0000201);
  EXPECT_EQ(address, Addr("192.0.2.1"));
  EXPECT_EQ(address.v4_host_order(), 0xc0000201u);
  EXPECT_EQ(address.v4_network_order(), htonl(0xc0000201));
  EXPECT_THAT(address.bytes(), ElementsAre(192, 0, 2, 1));
}

TEST(IpAddress, FromV4IsUsableInConstantExpressions) {
  constexpr IpAddress kAddress = IpAddress::FromV4(0x7f000001);
  static_assert(kAddress.is_v4());
  static_assert(kAddress.v4_host_order() == 0x7f000001);
  EXPECT_EQ(kAddress.ToString(), "127.0.0.1");
}

TEST(IpAddress, V4NetworkOrderMatchesInetPton) {
  in_addr expected;
  ASSERT_EQ(inet_pton(AF_INET, "198.51.100.7", &expected), 1);
  EXPECT_EQ(Addr("198.51.100.7").v4_network_order(), expected.s_addr);
}

TEST(IpAddress, FromBytesTakesNetworkOrder) {
  const std::array<uint8_t, 4> v4 = {198, 51, 100, 7};
  EXPECT_EQ(IpAddress::FromV4Bytes(v4), Addr("198.51.100.7"));

  const std::array<uint8_t, 16> v6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                      0,    0,    0,    0,    0, 0, 0, 1};
  EXPECT_EQ(IpAddress::FromV6Bytes(v6), Addr("2001:db8::1"));
  EXPECT_THAT(IpAddress::FromV6Bytes(v6).bytes(), ElementsAreArray(v6));
}

TEST(IpAddress, V6BytesMatchInetPton) {
  in6_addr expected;
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &expected), 1);
  EXPECT_THAT(Addr("2001:db8:1:2:3:4:5:6").bytes(),
              ElementsAreArray(expected.s6_addr));
}

TEST(IpAddress, FamilyAccessorsAgree) {
  const IpAddress v4 = Addr("192.0.2.1");
  EXPECT_EQ(v4.family(), IpFamily::kV4);
  EXPECT_TRUE(v4.is_v4());
  EXPECT_FALSE(v4.is_v6());
  EXPECT_EQ(v4.af(), AF_INET);
  EXPECT_EQ(v4.bit_length(), 32);
  EXPECT_EQ(v4.bytes().size(), 4u);

  const IpAddress v6 = Addr("2001:db8::1");
  EXPECT_EQ(v6.family(), IpFamily::kV6);
  EXPECT_FALSE(v6.is_v4());
  EXPECT_TRUE(v6.is_v6());
  EXPECT_EQ(v6.af(), AF_INET6);
  EXPECT_EQ(v6.bit_length(), 128);
  EXPECT_EQ(v6.bytes().size(), 16u);
}

TEST(IpAddress, V4NumbersOfAV6AddressAreZero) {
  EXPECT_EQ(Addr("::ffff:192.0.2.1").v4_host_order(), 0u);
  EXPECT_EQ(Addr("::ffff:192.0.2.1").v4_network_order(), 0u);
}

TEST(IpAddress, V4MappedIsV6AndNotEqualToV4) {
  const IpAddress mapped = Addr("::ffff:192.0.2.1");
  EXPECT_TRUE(mapped.is_v6());
  EXPECT_TRUE(mapped.IsV4Mapped());
  EXPECT_NE(mapped, Addr("192.0.2.1"));
}

TEST(IpAddress, IsV4MappedOnlyForFfff96) {
  EXPECT_TRUE(Addr("::ffff:0.0.0.0").IsV4Mapped());
  EXPECT_TRUE(Addr("::ffff:255.255.255.255").IsV4Mapped());
  EXPECT_FALSE(Addr("192.0.2.1").IsV4Mapped());
  EXPECT_FALSE(Addr("::192.0.2.1").IsV4Mapped());
  EXPECT_FALSE(Addr("::fffe:192.0.2.1").IsV4Mapped());
  EXPECT_FALSE(Addr("1::ffff:192.0.2.1").IsV4Mapped());
  EXPECT_FALSE(Addr("::ffff:0:0:0").IsV4Mapped());
}

struct MaskCase {
  std::string_view address;
  int length;
  std::string_view masked;
};

void PrintTo(const MaskCase& c, std::ostream* os) {
  *os << c.address << " masked to " << c.length;
}

class IpAddressMasked : public ::testing::TestWithParam<MaskCase> {};

TEST_P(IpAddressMasked, ClearsBitsPastThePrefix) {
  const MaskCase& c = GetParam();
  EXPECT_EQ(Addr(c.address).Masked(c.length), Addr(c.masked));
}

INSTANTIATE_TEST_SUITE_P(V4, IpAddressMasked,
                         ValuesIn(std::vector<MaskCase>{
                             {"192.0.2.77", 24, "192.0.2.0"},
                             {"192.0.2.255", 25, "192.0.2.128"},
                             {"192.0.2.77", 32, "192.0.2.77"},
                             {"192.0.2.77", 0, "0.0.0.0"},
                             {"255.255.255.255", 1, "128.0.0.0"},
                             {"255.255.255.255", 9, "255.128.0.0"},
                             {"255.255.255.255", 31, "255.255.255.254"},
                             // Lengths outside [0, 32] are clamped.
                             {"192.0.2.77", -1, "0.0.0.0"},
                             {"192.0.2.77", 33, "192.0.2.77"},
                             {"192.0.2.77", 128, "192.0.2.77"},
                         }));

INSTANTIATE_TEST_SUITE_P(V6, IpAddressMasked,
                         ValuesIn(std::vector<MaskCase>{
                             {"2001:db8:ffff::1", 32, "2001:db8::"},
                             {"2001:db8::ffff", 120, "2001:db8::ff00"},
                             {"2001:db8::ffff", 121, "2001:db8::ff80"},
                             {"2001:db8::1", 128, "2001:db8::1"},
                             {"2001:db8::1", 0, "::"},
                             {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 127,
                              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"},
                             {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65,
                              "ffff:ffff:ffff:ffff:8000::"},
                             // Lengths outside [0, 128] are clamped.
                             {"2001:db8::1", -7, "::"},
                             {"2001:db8::1", 129, "2001:db8::1"},
                         }));

TEST(IpAddress, SortsV4BeforeV6ThenNumerically) {
  const std::vector<std::string_view> sorted_text = {
      "0.0.0.0",
      "0.0.0.1",
      "9.255.255.255",  // Numeric, not textual, order.
      "10.0.0.0",
      "192.0.2.1",
      "255.255.255.255",
      "::",
      "::1",
      "::ffff:0.0.0.0",
      "2001:db8::",
      "2001:db8::1",
      "fe80::",
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
  };
  std::vector<IpAddress> sorted;
  sorted.reserve(sorted_text.size());
  for (std::string_view text : sorted_text) sorted.push_back(Addr(text));
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (size_t j = i + 1; j < sorted.size(); ++j) {
      EXPECT_LT(sorted[i], sorted[j]);
      EXPECT_GT(sorted[j], sorted[i]);
      EXPECT_NE(sorted[i], sorted[j]);
    }
    EXPECT_EQ(sorted[i] <=> sorted[i], std::strong_ordering::equal);
  }
  std::vector<IpAddress> shuffled(sorted.rbegin(), sorted.rend());
  std::rotate(shuffled.begin(), shuffled.begin() + 5, shuffled.end());
  std::sort(shuffled.begin(), shuffled.end());
  EXPECT_EQ(shuffled, sorted);
}

TEST(IpAddress, EqualityIgnoresSpelling) {
  EXPECT_EQ(Addr("2001:db8::1"), Addr("2001:0DB8:0:0:0:0:0:0001"));
  EXPECT_EQ(Addr("::ffff:192.0.2.1"), Addr("::ffff:c000:201"));
}

TEST(IpAddress, ImplementsAbslHashCorrectly) {
  EXPECT_TRUE(absl::VerifyTypeImplementsAbslHashCorrectly({
      IpAddress(), Addr("0.0.0.1"), Addr("192.0.2.1"), Addr("255.255.255.255"),
      Addr("::"), Addr("::1"), Addr("::ffff:192.0.2.1"), Addr("2001:db8::1"),
      Addr("2001:0db8:0:0:0:0:0:1"),  // Equal to the one above.
  }));
}

TEST(IpAddress, EqualValuesAreOneKeyInHashSets) {
  // 0.0.0.0 and :: have the same bytes; only the family differs.
  const std::vector<std::string_view> spellings = {
      "192.0.2.1", "2001:db8::1", "2001:DB8::1", "2001:db8:0::0:1",
      "0.0.0.0",   "::",          "::0",         "::ffff:192.0.2.1"};
  absl::flat_hash_set<IpAddress> absl_set;
  std::unordered_set<IpAddress> std_set;
  for (std::string_view text : spellings) {
    absl_set.insert(Addr(text));
    std_set.insert(Addr(text));
  }
  EXPECT_EQ(absl_set.size(), 5u);
  EXPECT_EQ(std_set.size(), 5u);
  EXPECT_TRUE(absl_set.contains(Addr("2001:db8::1")));
  EXPECT_TRUE(std_set.contains(Addr("::ffff:192.0.2.1")));
  EXPECT_EQ(std::hash<IpAddress>()(Addr("2001:db8::1")),
            std::hash<IpAddress>()(Addr("2001:0db8::0001")));
}

TEST(IpAddress, StreamsTheCanonicalForm) {
  std::ostringstream os;
  os << Addr("2001:0DB8::0001") << " " << Addr("192.0.2.1");
  EXPECT_EQ(os.str(), "2001:db8::1 192.0.2.1");
}

// IpPrefix

TEST(IpPrefix, DefaultIsV4Zero) {
  EXPECT_EQ(IpPrefix(), Prefix("0.0.0.0/0"));
  EXPECT_EQ(IpPrefix().length(), 0);
  EXPECT_TRUE(IpPrefix().is_v4());
}

TEST(IpPrefix, AccessorsReturnTheParts) {
  const IpPrefix v4 = Prefix("192.0.2.0/24");
  EXPECT_EQ(v4.address(), Addr("192.0.2.0"));
  EXPECT_EQ(v4.length(), 24);
  EXPECT_TRUE(v4.is_v4());
  EXPECT_FALSE(v4.is_v6());

  const IpPrefix v6 = Prefix("2001:db8::/32");
  EXPECT_EQ(v6.address(), Addr("2001:db8::"));
  EXPECT_EQ(v6.length(), 32);
  EXPECT_EQ(v6.family(), IpFamily::kV6);
  EXPECT_TRUE(v6.is_v6());
}

TEST(IpPrefixCreate, MasksTheAddress) {
  EXPECT_THAT(IpPrefix::Create(Addr("192.0.2.77"), 24),
              IsOkAndHolds(Prefix("192.0.2.0/24")));
  EXPECT_THAT(IpPrefix::Create(Addr("192.0.2.77"), 32),
              IsOkAndHolds(Prefix("192.0.2.77/32")));
  EXPECT_THAT(IpPrefix::Create(Addr("192.0.2.77"), 0),
              IsOkAndHolds(Prefix("0.0.0.0/0")));
  EXPECT_THAT(IpPrefix::Create(Addr("2001:db8:ffff::1"), 32),
              IsOkAndHolds(Prefix("2001:db8::/32")));
  EXPECT_THAT(IpPrefix::Create(Addr("2001:db8::1"), 128),
              IsOkAndHolds(Prefix("2001:db8::1/128")));
}

TEST(IpPrefixCreate, RejectsLengthsOutOfRange) {
  EXPECT_THAT(IpPrefix::Create(Addr("192.0.2.1"), 33),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "prefix length 33 for 192.0.2.1 is outside [0, 32]"));
  EXPECT_THAT(IpPrefix::Create(Addr("192.0.2.1"), -1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("outside [0, 32]")));
  EXPECT_THAT(IpPrefix::Create(Addr("2001:db8::1"), 129),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("outside [0, 128]")));
}

TEST(IpPrefix, HostIsASingleAddress) {
  EXPECT_EQ(IpPrefix::Host(Addr("192.0.2.1")), Prefix("192.0.2.1/32"));
  EXPECT_EQ(IpPrefix::Host(Addr("2001:db8::1")), Prefix("2001:db8::1/128"));
}

struct ContainsCase {
  std::string_view prefix;
  std::string_view inner;  // An address or a prefix.
  bool contains;
};

void PrintTo(const ContainsCase& c, std::ostream* os) {
  *os << c.prefix << (c.contains ? " contains " : " does not contain ")
      << c.inner;
}

class IpPrefixContainsAddress : public ::testing::TestWithParam<ContainsCase> {
};

TEST_P(IpPrefixContainsAddress, OnlyAddressesOfTheSameFamilyInRange) {
  const ContainsCase& c = GetParam();
  EXPECT_EQ(Prefix(c.prefix).Contains(Addr(c.inner)), c.contains);
}

INSTANTIATE_TEST_SUITE_P(V4, IpPrefixContainsAddress,
                         ValuesIn(std::vector<ContainsCase>{
                             {"192.0.2.0/24", "192.0.2.0", true},
                             {"192.0.2.0/24", "192.0.2.77", true},
                             {"192.0.2.0/24", "192.0.2.255", true},
                             {"192.0.2.0/24", "192.0.3.0", false},
                             {"192.0.2.0/24", "192.0.1.255", false},
                             {"192.0.2.128/25", "192.0.2.127", false},
                             {"192.0.2.128/25", "192.0.2.128", true},
                             {"192.0.2.1/32", "192.0.2.1", true},
                             {"192.0.2.1/32", "192.0.2.2", false},
                             {"0.0.0.0/0", "255.255.255.255", true},
                             // Never an address of the other family.
                             {"0.0.0.0/0", "::", false},
                             {"0.0.0.0/0", "::ffff:192.0.2.1", false},
                             {"192.0.2.0/24", "::ffff:192.0.2.1", false},
                         }));

INSTANTIATE_TEST_SUITE_P(V6, IpPrefixContainsAddress,
                         ValuesIn(std::vector<ContainsCase>{
                             {"2001:db8::/32", "2001:db8::", true},
                             {"2001:db8::/32", "2001:db8:ffff::1", true},
                             {"2001:db8::/32",
                              "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
                             {"2001:db8::/32", "2001:db9::", false},
                             {"2001:db8::/32", "2001:db7:ffff::", false},
                             {"2001:db8::1/128", "2001:db8::1", true},
                             {"2001:db8::1/128", "2001:db8::2", false},
                             {"::/0", "ffff::1", true},
                             {"::ffff:0.0.0.0/96", "::ffff:192.0.2.1", true},
                             // Never an address of the other family.
                             {"::/0", "0.0.0.0", false},
                             {"::ffff:0.0.0.0/96", "192.0.2.1", false},
                         }));

class IpPrefixContainsPrefix : public ::testing::TestWithParam<ContainsCase> {};

TEST_P(IpPrefixContainsPrefix, OnlyEqualOrLongerPrefixesInRange) {
  const ContainsCase& c = GetParam();
  EXPECT_EQ(Prefix(c.prefix).Contains(Prefix(c.inner)), c.contains);
}

INSTANTIATE_TEST_SUITE_P(V4, IpPrefixContainsPrefix,
                         ValuesIn(std::vector<ContainsCase>{
                             {"192.0.2.0/24", "192.0.2.0/24", true},
                             {"192.0.2.0/24", "192.0.2.0/25", true},
                             {"192.0.2.0/24", "192.0.2.128/25", true},
                             {"192.0.2.0/24", "192.0.2.7/32", true},
                             {"192.0.2.0/25", "192.0.2.0/24", false},
                             {"192.0.2.0/24", "192.0.3.0/24", false},
                             {"192.0.2.0/24", "192.0.0.0/16", false},
                             {"0.0.0.0/0", "0.0.0.0/0", true},
                             {"0.0.0.0/0", "10.0.0.0/8", true},
                             {"0.0.0.0/0", "::/0", false},
                             {"0.0.0.0/0", "::ffff:0.0.0.0/96", false},
                         }));

INSTANTIATE_TEST_SUITE_P(V6, IpPrefixContainsPrefix,
                         ValuesIn(std::vector<ContainsCase>{
                             {"2001:db8::/32", "2001:db8::/32", true},
                             {"2001:db8::/32", "2001:db8:1::/48", true},
                             {"2001:db8::/32", "2001:db8::1/128", true},
                             {"2001:db8::/48", "2001:db8::/32", false},
                             {"2001:db8::/32", "2001:db9::/32", false},
                             {"::/0", "2001:db8::/32", true},
                             {"::/0", "0.0.0.0/0", false},
                             {"::/0", "192.0.2.0/24", false},
                         }));

TEST(IpPrefix, SortsByAddressThenLength) {
  const std::vector<std::string_view> sorted_text = {
      "0.0.0.0/0",      "10.0.0.0/8",    "192.0.2.0/24", "192.0.2.0/25",
      "192.0.2.128/25", "::/0",          "::/128",       "2001:db8::/32",
      "2001:db8::/48",  "2001:db8::/128"};
  std::vector<IpPrefix> sorted;
  sorted.reserve(sorted_text.size());
  for (std::string_view text : sorted_text) sorted.push_back(Prefix(text));
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (size_t j = i + 1; j < sorted.size(); ++j) {
      EXPECT_LT(sorted[i], sorted[j]);
      EXPECT_NE(sorted[i], sorted[j]);
    }
  }
  std::vector<IpPrefix> reversed(sorted.rbegin(), sorted.rend());
  std::sort(reversed.begin(), reversed.end());
  EXPECT_EQ(reversed, sorted);
}

TEST(IpPrefix, ImplementsAbslHashCorrectly) {
  EXPECT_TRUE(absl::VerifyTypeImplementsAbslHashCorrectly({
      IpPrefix(), Prefix("0.0.0.0/1"), Prefix("10.0.0.0/8"),
      Prefix("10.0.0.0/9"), Prefix("::/0"), Prefix("2001:db8::/32"),
      Prefix("2001:0DB8::/32"),  // Equal to the one above.
  }));
}

TEST(IpPrefix, EqualValuesAreOneKeyInHashSets) {
  absl::flat_hash_set<IpPrefix> absl_set = {
      Prefix("10.0.0.0/8"), Prefix("10.0.0.0/9"), Prefix("2001:db8::/32"),
      Prefix("2001:0db8:0::/32")};
  std::unordered_set<IpPrefix> std_set(absl_set.begin(), absl_set.end());
  EXPECT_EQ(absl_set.size(), 3u);
  EXPECT_EQ(std_set.size(), 3u);
  EXPECT_TRUE(std_set.contains(Prefix("2001:db8::/32")));
}

TEST(IpPrefix, StreamsTheCanonicalForm) {
  std::ostringstream os;
  os << Prefix("2001:0DB8::/32");
  EXPECT_EQ(os.str(), "2001:db8::/32");
}

// Endpoint

TEST(Endpoint, DefaultIsV4ZeroPortZero) {
  EXPECT_EQ(Endpoint(), Ep("0.0.0.0:0"));
}

TEST(Endpoint, AccessorsReturnTheParts) {
  const Endpoint v4(Addr("192.0.2.1"), 80);
  EXPECT_EQ(v4, Ep("192.0.2.1:80"));
  EXPECT_EQ(v4.address(), Addr("192.0.2.1"));
  EXPECT_EQ(v4.port(), 80);
  EXPECT_TRUE(v4.is_v4());

  const Endpoint v6 = Ep("[2001:db8::1]:443");
  EXPECT_EQ(v6.address(), Addr("2001:db8::1"));
  EXPECT_EQ(v6.port(), 443);
  EXPECT_EQ(v6.family(), IpFamily::kV6);
  EXPECT_TRUE(v6.is_v6());
}

TEST(Endpoint, SortsByAddressThenPortNumerically) {
  const std::vector<std::string_view> sorted_text = {
      "192.0.2.1:80", "192.0.2.1:443", "192.0.2.1:8080", "192.0.2.2:1",
      "[::]:0",       "[::1]:9",       "[::1]:10",       "[2001:db8::1]:80"};
  std::vector<Endpoint> sorted;
  sorted.reserve(sorted_text.size());
  for (std::string_view text : sorted_text) sorted.push_back(Ep(text));
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (size_t j = i + 1; j < sorted.size(); ++j) {
      EXPECT_LT(sorted[i], sorted[j]);
      EXPECT_NE(sorted[i], sorted[j]);
    }
  }
  std::vector<Endpoint> reversed(sorted.rbegin(), sorted.rend());
  std::sort(reversed.begin(), reversed.end());
  EXPECT_EQ(reversed, sorted);
}

TEST(Endpoint, ImplementsAbslHashCorrectly) {
  EXPECT_TRUE(absl::VerifyTypeImplementsAbslHashCorrectly({
      Endpoint(), Ep("0.0.0.0:1"), Ep("192.0.2.1:80"), Ep("192.0.2.1:443"),
      Ep("[::]:0"), Ep("[2001:db8::1]:80"),
      Ep("[2001:0DB8::0001]:80"),  // Equal to the one above.
  }));
}

TEST(Endpoint, EqualValuesAreOneKeyInHashSets) {
  absl::flat_hash_set<Endpoint> absl_set = {
      Ep("192.0.2.1:80"), Ep("192.0.2.1:81"), Ep("[2001:db8::1]:80"),
      Ep("[2001:DB8::1]:80")};
  std::unordered_set<Endpoint> std_set(absl_set.begin(), absl_set.end());
  EXPECT_EQ(absl_set.size(), 3u);
  EXPECT_EQ(std_set.size(), 3u);
  EXPECT_TRUE(std_set.contains(Ep("[2001:db8::1]:80")));
}

TEST(Endpoint, StreamsTheCanonicalForm) {
  std::ostringstream os;
  os << Ep("[2001:0DB8::1]:443") << " " << Ep("192.0.2.1:80");
  EXPECT_EQ(os.str(), "[2001:db8::1]:443 192.0.2.1:80");
}

}  // namespace
}  // namespace anylb
