#include "lbnode/dataplane/testing/sample_frames.h"

#include <set>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane_testing {
namespace {

using ::anylb::status_testing::IsOk;

TEST(SampleFrames, ValidIpSamplesHaveCorrectChecksums) {
  for (const SampleFrame& s : ValidSampleFrames()) {
    if (s.name == "arp_request") continue;
    EXPECT_THAT(VerifyChecksums(s.frame), IsOk()) << s.name;
  }
}

TEST(SampleFrames, NamesAreUniqueFileNames) {
  std::set<std::string> names;
  auto check = [&](const SampleFrame& s) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    for (char c : s.name) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
          << s.name;
    }
    EXPECT_FALSE(s.frame.empty()) << s.name;
  };
  for (const SampleFrame& s : ValidSampleFrames()) check(s);
  for (const SampleFrame& s : MalformedSampleFrames()) check(s);
}

}  // namespace
}  // namespace anylb::dataplane_testing
