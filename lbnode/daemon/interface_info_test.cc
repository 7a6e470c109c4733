// Reads the loopback interface (every namespace has one; no root needed) and
// checks the errors for names that cannot be right.

#include "lbnode/daemon/interface_info.h"

#include "absl/status/status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::lbnode {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

TEST(InterfaceInfo, LoopbackIsNotEthernet) {
  EXPECT_THAT(ReadInterfaceInfo("lo"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("\"lo\" is not Ethernet")));
}

TEST(InterfaceInfo, MissingInterfaceIsNamed) {
  EXPECT_THAT(ReadInterfaceInfo("anylb-nope0"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("interface \"anylb-nope0\" not found")));
}

TEST(InterfaceInfo, BadNamesAreRejected) {
  EXPECT_THAT(ReadInterfaceInfo(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadInterfaceInfo("a-name-much-too-long-for-linux"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("1 to 15 characters")));
}

TEST(InterfaceInfo, FormatMac) {
  EXPECT_EQ(FormatMac({0x02, 0, 0, 0xab, 0xcd, 0x01}), "02:00:00:ab:cd:01");
}

}  // namespace
}  // namespace anylb::lbnode
