// lbnode's command line: bad flags are refused with a message naming the
// flag and the fix, before anything touches the network (no root needed).

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Result RunLbnode(const std::string& args) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string binary =
      absl::StrCat(srcdir != nullptr ? srcdir : ".", "/anylb/lbnode/lbnode");
  std::string command = absl::StrCat(binary, " ", args, " 2>&1");
  Result result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), n);
  }
  int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

struct BadFlag {
  const char* args;
  const char* message;
};

class LbnodeFlagsTest : public ::testing::TestWithParam<BadFlag> {};

TEST_P(LbnodeFlagsTest, IsRefusedWithExitCode2AndAClearMessage) {
  Result r = RunLbnode(GetParam().args);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Flags, LbnodeFlagsTest,
    ::testing::Values(
        BadFlag{"--config=/x.yaml", "--interface is required"},
        BadFlag{"--interface=eth0", "--config is required"},
        BadFlag{"--interface=eth0 --config=/x.yaml --xdp_mode=fast",
                "--xdp_mode=fast: use \"native\" or \"generic\""},
        BadFlag{"--interface=eth0 --config=/x.yaml --xsk_mode=dma",
                "--xsk_mode=dma: use \"auto\", \"copy\" or \"zero-copy\""},
        BadFlag{"--interface=eth0 --config=/x.yaml --queues=0,x",
                "\"x\" is not a queue number"},
        BadFlag{"--interface=eth0 --config=/x.yaml --batch_size=0",
                "--batch_size=0: must be 1..256"},
        BadFlag{"--interface=eth0 --config=/x.yaml --outer_ttl=300",
                "--outer_ttl=300: must be 1..255"},
        BadFlag{"--interface=eth0 --config=/x.yaml "
                "--tunnel_source_v4=2001:db8::1",
                "--tunnel_source_v4=2001:db8::1: not an IPv4 address"},
        BadFlag{"--log_level=loud", "\"loud\" is not one of debug"},
        BadFlag{"--interface=eth0 --config=/x.yaml --announce "
                "--announce_protocols=bgp,isis",
                "--announce_protocols=bgp,isis: routing protocol \"isis\" "
                "unknown"},
        BadFlag{"--interface=eth0 --config=/x.yaml --liveness_timeout=0s",
                "--liveness_timeout=0: must be positive"},
        BadFlag{"--interface=eth0 --config=/x.yaml "
                "--announce_device=a_very_long_device_name",
                "--announce_device=a_very_long_device_name: an interface "
                "name of 1..15 characters"},
        BadFlag{"--interface=eth0 --config=/x.yaml --health_max_in_flight=0",
                "--health_max_in_flight=0: must be 1..65536"},
        BadFlag{"--interface=eth0 --config=/x.yaml --route_source=bgp",
                "--route_source=bgp: use \"kernel\" or \"fpm\""},
        BadFlag{"--interface=eth0 --config=/x.yaml --route_source=fpm "
                "--fpm_listen=",
                "--route_source=fpm needs --fpm_listen"},
        BadFlag{"--interface=eth0 --config=/x.yaml --fpm_listen=localhost",
                "--fpm_listen=localhost: "},
        BadFlag{"--interface=eth0 --config=/x.yaml --controller=127.0.0.1:1",
                "--config and --controller are exclusive"},
        BadFlag{"--interface=eth0 --config=/x.yaml --node_cert=/n.crt",
                "need --controller=HOST:PORT"},
        BadFlag{"--interface=eth0 --controller=127.0.0.1:1 "
                "--report_interval=0s",
                "--report_interval: must be positive"},
        BadFlag{"--interface=eth0 stray", "unexpected argument \"stray\""}));

TEST(LbnodeFlags, HelpListsTheDaemonFlags) {
  Result r = RunLbnode("--help");
  EXPECT_THAT(r.output, HasSubstr("--interface"));
  EXPECT_THAT(r.output, HasSubstr("--metrics_address"));
  EXPECT_THAT(r.output, HasSubstr("--announce_protocols"));
  EXPECT_THAT(r.output, HasSubstr("SIGHUP reloads the config"));
}

TEST(LbnodeFlags, ANonEthernetInterfaceStopsTheStartAndSaysWhy) {
  Result r = RunLbnode("--interface=lo --config=/nonexistent.yaml");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("lbnode did not start"));
  EXPECT_THAT(r.output, HasSubstr("\"lo\" is not Ethernet"));
}

}  // namespace
