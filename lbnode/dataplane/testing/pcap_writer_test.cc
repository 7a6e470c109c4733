#include "lbnode/dataplane/testing/pcap_writer.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane_testing {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

uint32_t Le32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 |
         uint32_t{b[at + 2]} << 16 | uint32_t{b[at + 3]} << 24;
}
uint16_t Le16(const std::vector<uint8_t>& b, size_t at) {
  return static_cast<uint16_t>(b[at] | b[at + 1] << 8);
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

std::vector<std::vector<uint8_t>> Frames() {
  return {
      PacketBuilder()
          .Eth("02:00:00:00:00:01", "02:00:00:00:00:02")
          .Ipv4("192.0.2.1", "198.51.100.10")
          .Tcp(40000, 80)
          .Flags(kSyn)
          .Build(),
      PacketBuilder()
          .Eth("02:00:00:00:00:01", "02:00:00:00:00:02")
          .Ipv6("2001:db8::1", "2001:db8::10")
          .Udp(5000, 53)
          .Payload("query")
          .Build(),
  };
}

TEST(PcapWriter, WritesGlobalHeaderAndRecordsThatReadBack) {
  const std::string path = TempPath("two.pcap");
  std::vector<std::vector<uint8_t>> frames = Frames();
  ASSERT_THAT(WritePcapFile(path, frames), IsOk());

  std::vector<uint8_t> file = ReadFile(path);
  ASSERT_EQ(file.size(), 24 + 16 + frames[0].size() + 16 + frames[1].size());
  EXPECT_THAT(std::vector<uint8_t>(file.begin(), file.begin() + 4),
              ElementsAreArray({0xd4, 0xc3, 0xb2, 0xa1}));
  EXPECT_EQ(Le32(file, 0), kPcapMagicMicroseconds);
  EXPECT_EQ(Le16(file, 4), 2);  // Version 2.4.
  EXPECT_EQ(Le16(file, 6), 4);
  EXPECT_EQ(Le32(file, 8), 0u);
  EXPECT_EQ(Le32(file, 12), 0u);
  EXPECT_EQ(Le32(file, 16), 262144u);
  EXPECT_EQ(Le32(file, 20), kLinkTypeEthernet);

  size_t at = 24;
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(Le32(file, at), 946684800u);             // 2000-01-01, seconds.
    EXPECT_EQ(Le32(file, at + 4), i * 1000);           // One ms apart.
    EXPECT_EQ(Le32(file, at + 8), frames[i].size());   // Captured.
    EXPECT_EQ(Le32(file, at + 12), frames[i].size());  // Original.
    at += 16;
    EXPECT_THAT(std::vector<uint8_t>(file.begin() + at,
                                     file.begin() + at + frames[i].size()),
                ElementsAreArray(frames[i]));
    at += frames[i].size();
  }
}

TEST(PcapWriter, CutsFramesToSnaplenButKeepsTheOriginalLength) {
  const std::string path = TempPath("snap.pcap");
  ASSERT_OK_AND_ASSIGN(PcapWriter writer, PcapWriter::Open(path, 20));
  std::vector<uint8_t> frame = Frames()[0];
  ASSERT_THAT(writer.Write(frame, absl::FromUnixMicros(1'500'000'123'456)),
              IsOk());
  ASSERT_THAT(writer.Close(), IsOk());
  std::vector<uint8_t> file = ReadFile(path);
  ASSERT_EQ(file.size(), 24u + 16 + 20);
  EXPECT_EQ(Le32(file, 16), 20u);
  EXPECT_EQ(Le32(file, 24), 1'500'000u);
  EXPECT_EQ(Le32(file, 28), 123'456u);
  EXPECT_EQ(Le32(file, 32), 20u);
  EXPECT_EQ(Le32(file, 36), frame.size());
}

TEST(PcapWriter, ReportsErrorsAsStatuses) {
  EXPECT_THAT(
      PcapWriter::Open(TempPath("no/such/dir/x.pcap")).status(),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("cannot create")));
  EXPECT_THAT(PcapWriter::Open(TempPath("zero.pcap"), 0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(PcapWriter writer, PcapWriter::Open(TempPath("c.pcap")));
  EXPECT_THAT(writer.Write(Frames()[0], absl::UnixEpoch() - absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(writer.Close(), IsOk());
  EXPECT_THAT(writer.Write(Frames()[0], absl::UnixEpoch()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(writer.Close(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(PcapWriter, TcpdumpReadsTheFile) {
  std::string tcpdump;
  for (const char* candidate : {"/usr/bin/tcpdump", "/usr/sbin/tcpdump"}) {
    if (std::filesystem::exists(candidate)) tcpdump = candidate;
  }
  if (tcpdump.empty()) GTEST_SKIP() << "tcpdump is not installed";
  const std::string path = TempPath("tcpdump.pcap");
  ASSERT_THAT(WritePcapFile(path, Frames()), IsOk());
  const std::string command =
      tcpdump + " -nn -r " + path + " > " + TempPath("tcpdump.out") + " 2>&1";
  int rc = std::system(command.c_str());
  std::vector<uint8_t> output = ReadFile(TempPath("tcpdump.out"));
  EXPECT_EQ(rc, 0) << std::string(output.begin(), output.end());
}

}  // namespace
}  // namespace anylb::dataplane_testing
