#include "lbnode/dataplane/drop_reason.h"

#include <cctype>
#include <set>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace anylb::dataplane {
namespace {

TEST(DropReason, EveryReasonHasAUniqueSnakeCaseName) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    std::string_view name = DropReasonName(static_cast<DropReason>(i));
    SCOPED_TRACE(i);
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    ASSERT_FALSE(name.empty());
    EXPECT_TRUE(std::islower(static_cast<unsigned char>(name.front())));
    for (char c : name) {
      EXPECT_TRUE(std::islower(static_cast<unsigned char>(c)) ||
                  std::isdigit(static_cast<unsigned char>(c)) || c == '_')
          << name;
    }
  }
}

TEST(DropReason, NamesAreStable) {
  // Dashboards depend on these strings: changing one is a breaking change.
  EXPECT_EQ(DropReasonName(DropReason::kNone), "none");
  EXPECT_EQ(DropReasonName(DropReason::kTruncatedIpv4Header),
            "truncated_ipv4_header");
  EXPECT_EQ(DropReasonName(DropReason::kIpv6ExtensionChainTooLong),
            "ipv6_extension_chain_too_long");
  EXPECT_EQ(DropReasonName(DropReason::kNoService), "no_service");
  EXPECT_EQ(DropReasonName(DropReason::kNoBackend), "no_backend");
  EXPECT_EQ(DropReasonName(DropReason::kTtlExceeded), "ttl_exceeded");
  EXPECT_EQ(DropReasonName(DropReason::kMtuExceeded), "mtu_exceeded");
  EXPECT_EQ(DropReasonName(DropReason::kUnsupportedProtocol),
            "unsupported_protocol");
  EXPECT_EQ(DropReasonName(DropReason::kFlowTableFull), "flow_table_full");
  EXPECT_EQ(DropReasonName(DropReason::kNoLocalPort), "no_local_port");
  EXPECT_EQ(DropReasonName(DropReason::kFragmentNotSupported),
            "fragment_not_supported");
  EXPECT_EQ(DropReasonName(DropReason::kNatReplyConflict),
            "nat_reply_conflict");
  EXPECT_EQ(DropReasonName(DropReason::kFragmentUnmatched),
            "fragment_unmatched");
}

TEST(DropReason, OutOfRangeValuesAreUnknown) {
  EXPECT_EQ(DropReasonName(DropReason::kCount), "unknown");
  EXPECT_EQ(DropReasonName(static_cast<DropReason>(255)), "unknown");
}

}  // namespace
}  // namespace anylb::dataplane
