#include "controller/lbctl/restore.h"

#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "controller/lbctl/format.h"
#include "controller/lbctl/parse_args.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::lbctl {
namespace {

using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kSaved[] =
    "-A -t 192.0.2.10:80 -s wlc -p 300 -M 255.255.255.0\n"
    "-a -t 192.0.2.10:80 -r 198.51.100.9:80 -g -w 3 -x 100 -y 50\n"
    "-a -t 192.0.2.10:80 -r 198.51.100.11:80 -g -w 1\n"
    "-A -t 192.0.2.20:80 -s rr -m\n"
    "-a -t 192.0.2.20:80 -r 198.51.100.12:8080 -m -w 1\n"
    "-A -t [2001:db8::10]:443 -s mh -p 600 -M 64 -i --tun-type gue "
    "--gue-port 7000\n"
    "-a -t [2001:db8::10]:443 -r [2001:db8:1::2]:443 -i --tun-type gue "
    "--gue-port 7000 -w 1\n"
    "-A -u 192.0.2.53:53 -s sh -b sh-fallback,sh-port --fullnat\n"
    "-a -u 192.0.2.53:53 -r 198.51.100.20:5353 --fullnat -w 2\n";

TEST(RestoreServices, SaveOfARestoreIsTheInput) {
  ASSERT_OK_AND_ASSIGN(std::vector<lb::v1::Service> services,
                       RestoreServices(kSaved, "stdin", {}));
  ASSERT_EQ(services.size(), 4u);
  EXPECT_EQ(FormatSave(services), kSaved);
}

TEST(RestoreServices, NamesNewServicesAsTheControllerDoes) {
  ASSERT_OK_AND_ASSIGN(std::vector<lb::v1::Service> services,
                       RestoreServices(kSaved, "stdin", {}));
  EXPECT_EQ(services[0].name(), "tcp-192.0.2.10-80");
  EXPECT_EQ(services[3].name(), "udp-192.0.2.53-53");
}

TEST(RestoreServices, RealServersFollowTheServicesForwarding) {
  ASSERT_OK_AND_ASSIGN(std::vector<lb::v1::Service> services,
                       RestoreServices(kSaved, "stdin", {}));
  for (const lb::v1::Service& service : services) {
    for (const lb::v1::Backend& backend : service.backends()) {
      EXPECT_FALSE(backend.has_forwarding()) << backend.address();
    }
  }
  EXPECT_EQ(services[1].forwarding().mode(), lb::v1::FORWARDING_MODE_NAT);
}

// ipvsadm's habit: -A without a method, then -a ... -m: the first real
// server's method becomes the service's.
TEST(RestoreServices, FirstRealServerChoosesTheServicesMethod) {
  ASSERT_OK_AND_ASSIGN(
      std::vector<lb::v1::Service> services,
      RestoreServices("-A -t 192.0.2.1:80 -s wlc\n"
                      "-a -t 192.0.2.1:80 -r 198.51.100.2:8080 -m -w 1\n"
                      "-a -t 192.0.2.1:80 -r 198.51.100.3:8080 -m -w 1\n",
                      "stdin", {}));
  EXPECT_EQ(services[0].forwarding().mode(), lb::v1::FORWARDING_MODE_NAT);
  EXPECT_EQ(FormatSave(services),
            "-A -t 192.0.2.1:80 -s wlc -m\n"
            "-a -t 192.0.2.1:80 -r 198.51.100.2:8080 -m -w 1\n"
            "-a -t 192.0.2.1:80 -r 198.51.100.3:8080 -m -w 1\n");
  // -e of the only real server changes the service's method too.
  ASSERT_OK_AND_ASSIGN(
      services,
      RestoreServices("-d -t 192.0.2.1:80 -r 198.51.100.3:8080\n"
                      "-e -t 192.0.2.1:80 -r 198.51.100.2:8080 --fullnat\n",
                      "stdin", services));
  EXPECT_EQ(services[0].forwarding().mode(), lb::v1::FORWARDING_MODE_FULLNAT);
}

TEST(RestoreServices, OneForwardingMethodPerService) {
  EXPECT_THAT(
      RestoreServices("-A -t 192.0.2.1:80\n"
                      "-a -t 192.0.2.1:80 -r 198.51.100.2 -g\n"
                      "-a -t 192.0.2.1:80 -r 198.51.100.3 -m\n",
                      "stdin", {})
          .status(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("stdin:3: -a: real server 198.51.100.3:80 would use "
                         "Masq (-m) but TCP 192.0.2.1:80 forwards with Route "
                         "(-g); anylb keeps one forwarding method per "
                         "service: change the service's with -E -t "
                         "192.0.2.1:80 -m (its real servers follow), or use "
                         "a service of its own")));
}

TEST(RestoreServices, AppliesEditsAndDeletesInOrder) {
  ASSERT_OK_AND_ASSIGN(std::vector<lb::v1::Service> services,
                       RestoreServices(kSaved, "stdin", {}));
  ASSERT_OK_AND_ASSIGN(
      services, RestoreServices("# comment\n\n"
                                "-E -t 192.0.2.10:80 -s rr\n"
                                "-e -t 192.0.2.10:80 -r 198.51.100.9 -w 7\n"
                                "-d -t 192.0.2.10:80 -r 198.51.100.11\n"
                                "-D -u 192.0.2.53:53\n"
                                "-D -t 192.0.2.20:80\n",
                                "stdin", services));
  EXPECT_EQ(FormatSave(services),
            "-A -t 192.0.2.10:80 -s rr\n"
            "-a -t 192.0.2.10:80 -r 198.51.100.9:80 -g -w 7\n"
            "-A -t [2001:db8::10]:443 -s mh -p 600 -M 64 -i --tun-type gue "
            "--gue-port 7000\n"
            "-a -t [2001:db8::10]:443 -r [2001:db8:1::2]:443 -i --tun-type "
            "gue --gue-port 7000 -w 1\n");
  ASSERT_OK_AND_ASSIGN(services, RestoreServices("-C\n", "stdin", services));
  EXPECT_THAT(services, IsEmpty());
}

TEST(RestoreServices, ErrorsNameTheLine) {
  EXPECT_THAT(
      RestoreServices("-A -t 192.0.2.1:80\n-A -t 192.0.2.1:80\n", "stdin", {})
          .status(),
      StatusIs(absl::StatusCode::kAlreadyExists,
               HasSubstr("stdin:2: -A: service TCP 192.0.2.1:80 "
                         "already exists (change it with -E)")));
  EXPECT_THAT(
      RestoreServices("-a -t 192.0.2.1:80 -r 198.51.100.2\n", "stdin", {})
          .status(),
      StatusIs(absl::StatusCode::kNotFound,
               HasSubstr("stdin:1: -a: service TCP 192.0.2.1:80 does not "
                         "exist (add it with -A first)")));
  EXPECT_THAT(RestoreServices("-A -t 192.0.2.1:80\n"
                              "-a -t 192.0.2.1:80 -r 198.51.100.2\n"
                              "-a -t 192.0.2.1:80 -r 198.51.100.2:80\n",
                              "stdin", {})
                  .status(),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("stdin:3: -a: real server 198.51.100.2:80 is "
                                 "already in TCP 192.0.2.1:80")));
  EXPECT_THAT(RestoreServices("-A -t 192.0.2.1:80\n"
                              "-e -t 192.0.2.1:80 -r 198.51.100.2\n",
                              "stdin", {})
                  .status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("stdin:2: -e: real server 198.51.100.2:80 "
                                 "is not in TCP 192.0.2.1:80 (add it with "
                                 "-a)")));
  EXPECT_THAT(RestoreServices("\n-L -n\n", "stdin", {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stdin:2: -L cannot be restored")));
  EXPECT_THAT(
      RestoreServices("-A -t 192.0.2.1:80 -s nope\n", "in", {}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("in:1: -s: unknown scheduler")));
}

TEST(SameForwarding, AppliesTheDefaults) {
  lb::v1::Forwarding tun;
  tun.set_mode(lb::v1::FORWARDING_MODE_TUN);
  lb::v1::Forwarding ipip = tun;
  ipip.set_tunnel_type(lb::v1::TUNNEL_TYPE_IPIP);
  EXPECT_TRUE(SameForwarding(tun, ipip));
  lb::v1::Forwarding gue = tun;
  gue.set_tunnel_type(lb::v1::TUNNEL_TYPE_GUE);
  EXPECT_FALSE(SameForwarding(tun, gue));
  lb::v1::Forwarding gue6080 = gue;
  gue6080.set_gue_port(6080);
  EXPECT_TRUE(SameForwarding(gue, gue6080));
  lb::v1::Forwarding nat;
  nat.set_mode(lb::v1::FORWARDING_MODE_NAT);
  EXPECT_FALSE(SameForwarding(tun, nat));
}

}  // namespace
}  // namespace anylb::lbctl
