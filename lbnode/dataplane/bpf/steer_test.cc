// Runs the XDP steering program on packet fixtures through BPF_PROG_TEST_RUN
// and checks the decision (which counter goes up), the action and that the
// frame is untouched; then that map updates change the decision.
//
// In BPF_PROG_TEST_RUN the XSKMAP is empty, so a steered frame's
// bpf_redirect_map() falls back to XDP_PASS and also goes up
// steer_no_socket: the decision counters are what these tests check.
//
// Needs root (CAP_BPF + CAP_NET_ADMIN): tagged "netns"; deploy/test.sh runs
// it as root. Not being root is a test failure, never a silent pass.

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/ip_address.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/prog_test_run.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/bpf/steer_structs.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::bpf {
namespace {

using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::kSyn;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kRouterMac[] = "02:00:00:00:00:01";
constexpr char kNodeMac[] = "02:00:00:00:00:02";

// The fixtures' addressing plan, per IP version (documentation addresses).
struct Plan {
  const char* vip;       // TCP 80 and UDP 53 in steer_vips.
  const char* vip_wild;  // TCP port 0 (every port) in steer_vips.
  const char* local;     // A FULLNAT local address.
  const char* backend;   // A NAT-mode real server, TCP port 8080.
  const char* node;      // The node's own address (BGP, SSH): not in a map.
  const char* client;
  const char* router;
};
constexpr Plan kV4 = {"203.0.113.10",  "203.0.113.20", "198.51.100.50",
                      "198.51.100.80", "192.0.2.2",    "198.51.100.7",
                      "192.0.2.254"};
constexpr Plan kV6 = {"2001:db8:f::10", "2001:db8:f::20", "2001:db8:5::50",
                      "2001:db8:b::80", "2001:db8::2",    "2001:db8:c::7",
                      "2001:db8::fe"};
constexpr uint16_t kBackendPort = 8080;

enum class Family { kV4, kV6 };
const Plan& PlanFor(Family family) { return family == Family::kV4 ? kV4 : kV6; }

// SteerCase is one fixture: {description, input frame, expected decision}.
// The action is always XDP_PASS here (see the file comment).
struct SteerCase {
  std::string description;
  std::vector<uint8_t> input;
  anylb_steer_counter decision;
};

void PrintTo(const SteerCase& fixture, std::ostream* os) {
  *os << fixture.description;
}

bool IsSteer(anylb_steer_counter counter) {
  return counter == ANYLB_STEER_CNT_STEER_VIP ||
         counter == ANYLB_STEER_CNT_STEER_LOCAL ||
         counter == ANYLB_STEER_CNT_STEER_NAT_REPLY;
}

PacketBuilder Eth() {
  return std::move(PacketBuilder().Eth(kRouterMac, kNodeMac));
}

// Ip appends an IP header of `family` from `src` to `dst`.
PacketBuilder& Ip(PacketBuilder& b, Family family, const char* src,
                  const char* dst) {
  return family == Family::kV4 ? b.Ipv4(src, dst) : b.Ipv6(src, dst);
}

std::vector<uint8_t> Tcp(Family family, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport) {
  PacketBuilder b = Eth();
  return Ip(b, family, src, dst)
      .Tcp(sport, dport)
      .Flags(kSyn)
      .Payload("data")
      .Build();
}

std::vector<uint8_t> Udp(Family family, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport) {
  PacketBuilder b = Eth();
  return Ip(b, family, src, dst).Udp(sport, dport).Payload("data").Build();
}

PacketBuilder& Icmp(PacketBuilder& b, Family family, uint8_t type_v4,
                    uint8_t type_v6, uint8_t code) {
  return family == Family::kV4 ? b.IcmpV4(type_v4, code)
                               : b.IcmpV6(type_v6, code);
}

std::vector<SteerCase> Cases(Family f) {
  const Plan& p = PlanFor(f);
  std::vector<SteerCase> cases;
  auto add = [&](std::string description, std::vector<uint8_t> input,
                 anylb_steer_counter decision) {
    cases.push_back({std::move(description), std::move(input), decision});
  };

  // --- VIPs ---
  add("TCP to a VIP port", Tcp(f, p.client, p.vip, 40000, 80),
      ANYLB_STEER_CNT_STEER_VIP);
  add("UDP to a VIP port", Udp(f, p.client, p.vip, 40000, 53),
      ANYLB_STEER_CNT_STEER_VIP);
  add("TCP to a VIP on another port", Tcp(f, p.client, p.vip, 40000, 443),
      ANYLB_STEER_CNT_PASS_NO_MATCH);
  add("UDP to a VIP port configured for TCP only",
      Udp(f, p.client, p.vip, 40000, 80), ANYLB_STEER_CNT_PASS_NO_MATCH);
  add("TCP to any port of a port-0 VIP",
      Tcp(f, p.client, p.vip_wild, 40000, 12345), ANYLB_STEER_CNT_STEER_VIP);
  add("UDP to a TCP-only port-0 VIP", Udp(f, p.client, p.vip_wild, 40000, 53),
      ANYLB_STEER_CNT_PASS_NO_MATCH);
  {
    PacketBuilder tagged = std::move(Eth().Vlan(100));
    add("one VLAN tag",
        Ip(tagged, f, p.client, p.vip).Tcp(40000, 80).Flags(kSyn).Build(),
        ANYLB_STEER_CNT_STEER_VIP);
    PacketBuilder two = std::move(Eth().Vlan(100).Vlan(200));
    add("two VLAN tags are not IP to us",
        Ip(two, f, p.client, p.vip).Tcp(40000, 80).Flags(kSyn).Build(),
        ANYLB_STEER_CNT_PASS_NOT_IP);
  }
  if (f == Family::kV4) {
    PacketBuilder b = Eth();
    add("IPv4 options are skipped",
        b.Ipv4(p.client, p.vip)
            .Ipv4Options({1, 1, 1, 1})
            .Tcp(40000, 80)
            .Flags(kSyn)
            .Build(),
        ANYLB_STEER_CNT_STEER_VIP);
  }

  // --- ICMP ---
  {
    PacketBuilder quoted;
    Ip(quoted, f, p.vip, p.client).Tcp(80, 40000);
    PacketBuilder b = Eth();
    Ip(b, f, p.router, p.vip);
    Icmp(b, f, 3, 2, f == Family::kV4 ? 4 : 0).IcmpRest(1400);
    add("ICMP error about a VIP flow", b.Embed(quoted.Build()).Build(),
        ANYLB_STEER_CNT_STEER_VIP);
  }
  {
    PacketBuilder b = Eth();
    Ip(b, f, p.client, p.vip);
    add("echo request to a VIP",
        Icmp(b, f, 8, 128, 0).IcmpRest(0x00010001).Build(),
        ANYLB_STEER_CNT_STEER_VIP);
    PacketBuilder node = Eth();
    Ip(node, f, p.client, p.node);
    add("echo request to the node",
        Icmp(node, f, 8, 128, 0).IcmpRest(0x00010001).Build(),
        ANYLB_STEER_CNT_PASS_NO_MATCH);
  }
  if (f == Family::kV6) {
    // Neighbor Solicitation (RFC 4861 §4.3): to the solicited-node
    // multicast address, or unicast (NUD) even to a VIP or local address.
    for (const char* dst : {"ff02::1:ff00:2", p.vip, p.local}) {
      PacketBuilder b = Eth();
      b.Ipv6(p.router, dst).HopLimit(255).IcmpV6(135, 0);
      add(std::string("neighbor solicitation to ") + dst,
          b.Payload(std::vector<uint8_t>(16, 0x20)).Build(),
          ANYLB_STEER_CNT_PASS_ND);
    }
    PacketBuilder na = Eth();
    na.Ipv6(p.router, p.node).HopLimit(255).IcmpV6(136, 0);
    add("neighbor advertisement",
        na.Payload(std::vector<uint8_t>(16, 0x20)).Build(),
        ANYLB_STEER_CNT_PASS_ND);
  }

  // --- FULLNAT local addresses, NAT replies ---
  add("TCP reply to a local address", Tcp(f, p.backend, p.local, 80, 40000),
      ANYLB_STEER_CNT_STEER_LOCAL);
  add("UDP to a local address", Udp(f, p.client, p.local, 53, 40000),
      ANYLB_STEER_CNT_STEER_LOCAL);
  {
    PacketBuilder b = Eth();
    add("GRE to a local address",
        Ip(b, f, p.client, p.local).Protocol(47).Payload("gre").Build(),
        ANYLB_STEER_CNT_STEER_LOCAL);
    PacketBuilder vip = Eth();
    add("GRE to a VIP without a port-0 GRE entry",
        Ip(vip, f, p.client, p.vip).Protocol(47).Payload("gre").Build(),
        ANYLB_STEER_CNT_PASS_NO_MATCH);
  }
  add("NAT reply from a real server",
      Tcp(f, p.backend, p.client, kBackendPort, 40000),
      ANYLB_STEER_CNT_STEER_NAT_REPLY);
  add("TCP from a real server's other port",
      Tcp(f, p.backend, p.client, 22, 40000), ANYLB_STEER_CNT_PASS_NO_MATCH);
  add("UDP from a real server's TCP port",
      Udp(f, p.backend, p.client, kBackendPort, 40000),
      ANYLB_STEER_CNT_PASS_NO_MATCH);

  // --- The node's own traffic ---
  add("BGP from the router", Tcp(f, p.router, p.node, 50000, 179),
      ANYLB_STEER_CNT_PASS_NO_MATCH);
  add("BGP reply to the node", Tcp(f, p.router, p.node, 179, 50000),
      ANYLB_STEER_CNT_PASS_NO_MATCH);
  add("SSH to the node", Tcp(f, p.client, p.node, 40000, 22),
      ANYLB_STEER_CNT_PASS_NO_MATCH);
  add("health-check reply from a real server to the node",
      Tcp(f, p.backend, p.node, 80, 41000), ANYLB_STEER_CNT_PASS_NO_MATCH);
  {
    PacketBuilder arp =
        std::move(Eth().EtherType(0x0806).Payload(std::vector<uint8_t>(28, 0)));
    add("ARP", arp.Build(), ANYLB_STEER_CNT_PASS_NOT_IP);
  }

  // --- Fragments: by destination address only ---
  if (f == Family::kV4) {
    PacketBuilder first = Eth();
    add("first fragment to a VIP, port not configured",
        first.Ipv4(p.client, p.vip).MoreFragments().Tcp(40000, 443).Build(),
        ANYLB_STEER_CNT_STEER_VIP);
  }
  for (const auto& [name, dst, decision] :
       std::vector<std::tuple<std::string, const char*, anylb_steer_counter>>{
           {"a VIP", p.vip, ANYLB_STEER_CNT_STEER_VIP},
           {"a local address", p.local, ANYLB_STEER_CNT_STEER_LOCAL},
           {"the node", p.node, ANYLB_STEER_CNT_PASS_NO_MATCH}}) {
    PacketBuilder b = Eth();
    if (f == Family::kV4) {
      b.Ipv4(p.client, dst).FragmentOffset(100).Protocol(IPPROTO_TCP);
    } else {
      b.Ipv6(p.client, dst).Fragment(100, false, 7).Protocol(IPPROTO_TCP);
    }
    add("non-first fragment to " + name,
        b.Payload(std::vector<uint8_t>(32, 0xab)).Build(), decision);
  }
  if (f == Family::kV6) {
    PacketBuilder first = Eth();
    add("first IPv6 fragment to a VIP, port not configured",
        first.Ipv6(p.client, p.vip)
            .Fragment(0, true, 7)
            .Tcp(40000, 443)
            .Flags(kSyn)
            .Build(),
        ANYLB_STEER_CNT_STEER_VIP);
    PacketBuilder atomic = Eth();
    add("atomic fragment is decided by its ports",
        atomic.Ipv6(p.client, p.vip)
            .Fragment(0, false, 7)
            .Tcp(40000, 443)
            .Flags(kSyn)
            .Build(),
        ANYLB_STEER_CNT_PASS_NO_MATCH);
    PacketBuilder atomic_vip = Eth();
    add("atomic fragment to a VIP port",
        atomic_vip.Ipv6(p.client, p.vip)
            .Fragment(0, false, 7)
            .Tcp(40000, 80)
            .Flags(kSyn)
            .Build(),
        ANYLB_STEER_CNT_STEER_VIP);
    PacketBuilder ext = Eth();
    add("TCP behind a Destination Options header is not looked into",
        ext.Ipv6(p.client, p.vip)
            .DestinationOptions()
            .Tcp(40000, 80)
            .Flags(kSyn)
            .Build(),
        ANYLB_STEER_CNT_PASS_NO_MATCH);
  }

  // --- Malformed: passed (the kernel drops them) and counted ---
  {
    PacketBuilder b = Eth();
    const size_t cut = f == Family::kV4 ? 12 : 30;
    Ip(b, f, p.client, p.vip).Tcp(40000, 80);
    add("truncated IP header", b.Truncate(14 + cut).Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = Eth();
    const size_t hlen = f == Family::kV4 ? 20 : 40;
    Ip(b, f, p.client, p.vip).Tcp(40000, 80);
    f == Family::kV4 ? b.TotalLength(static_cast<uint16_t>(hlen + 10))
                     : b.PayloadLength(10);
    add("TCP header cut short", b.Truncate(14 + hlen + 10).Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = Eth();
    Ip(b, f, p.client, p.vip).Tcp(40000, 80).DataOffset(4);
    add("TCP data offset below 5", b.Build(), ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = Eth();
    Ip(b, f, p.client, p.vip).Udp(40000, 53).UdpLength(1400);
    add("UDP length beyond the IP payload", b.Payload("x").Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = Eth();
    Ip(b, f, p.client, p.vip).Tcp(40000, 80);
    f == Family::kV4 ? b.TotalLength(1000) : b.PayloadLength(1000);
    add("IP length beyond the frame", b.Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = Eth();
    Ip(b, f, p.client, p.vip).Version(f == Family::kV4 ? 6 : 4).Tcp(40000, 80);
    add("IP version does not match the EtherType", b.Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = Eth();
    Ip(b, f, p.router, p.vip);
    Icmp(b, f, 3, 1, 0);
    const size_t hlen = f == Family::kV4 ? 20 : 40;
    f == Family::kV4 ? b.TotalLength(static_cast<uint16_t>(hlen + 4))
                     : b.PayloadLength(4);
    add("ICMP header cut short", b.Truncate(14 + hlen + 4).Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  if (f == Family::kV4) {
    PacketBuilder b = Eth();
    b.Ipv4(p.client, p.vip).Ihl(4).Tcp(40000, 80);
    add("IHL below 5", b.Build(), ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  {
    PacketBuilder b = std::move(Eth().Vlan(100));
    add("VLAN tag cut short", b.Truncate(16).Build(),
        ANYLB_STEER_CNT_PASS_MALFORMED);
  }
  return cases;
}

std::string TestName(const std::string& text) {
  std::string name;
  for (char c : text) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return name;
}

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

// LoadConfigured loads the program with both families' plan in its maps.
std::unique_ptr<SteerProgram> LoadConfigured() {
  absl::StatusOr<std::unique_ptr<SteerProgram>> steer = SteerProgram::Load();
  EXPECT_THAT(steer, IsOk());
  if (!steer.ok()) return nullptr;
  SteerProgram& s = **steer;
  for (const Plan* p : {&kV4, &kV6}) {
    EXPECT_THAT(s.AddVip(Ip(p->vip), 80, IPPROTO_TCP), IsOk());
    EXPECT_THAT(s.AddVip(Ip(p->vip), 53, IPPROTO_UDP), IsOk());
    EXPECT_THAT(s.AddVip(Ip(p->vip_wild), 0, IPPROTO_TCP), IsOk());
    EXPECT_THAT(s.AddLocalAddress(Ip(p->local)), IsOk());
    EXPECT_THAT(
        s.AddNatBackend(Endpoint(Ip(p->backend), kBackendPort), IPPROTO_TCP),
        IsOk());
  }
  return *std::move(steer);
}

class SteerFixtureTest : public ::testing::TestWithParam<SteerCase> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("steer tests (BPF_PROG_TEST_RUN)"), IsOk());
    steer_ = LoadConfigured();
    ASSERT_NE(steer_, nullptr);
  }
  std::unique_ptr<SteerProgram> steer_;
};

TEST_P(SteerFixtureTest, MakesTheExpectedDecisionAndLeavesTheFrameAlone) {
  const SteerCase& fixture = GetParam();
  ASSERT_OK_AND_ASSIGN(SteerCounters before, steer_->ReadCounters());
  ASSERT_OK_AND_ASSIGN(TestRunResult result,
                       ProgTestRun(steer_->program_fd(), fixture.input));
  ASSERT_OK_AND_ASSIGN(SteerCounters after, steer_->ReadCounters());

  // No socket in xsks_map: steered frames fall back to XDP_PASS too.
  EXPECT_EQ(result.action, XDP_PASS);
  EXPECT_THAT(result.output, FrameEq(fixture.input));
  SteerCounters expected = before;
  expected.values[fixture.decision] += 1;
  if (IsSteer(fixture.decision)) {
    expected.values[ANYLB_STEER_CNT_STEER_NO_SOCKET] += 1;
  }
  EXPECT_EQ(after.values, expected.values)
      << "want " << SteerCounters::Name(fixture.decision) << " +1; before:\n"
      << before.ToString() << "after:\n"
      << after.ToString();
}

std::vector<SteerCase> AllCases() {
  std::vector<SteerCase> all = Cases(Family::kV4);
  for (SteerCase& c : all) c.description = "IPv4: " + c.description;
  for (SteerCase& c : Cases(Family::kV6)) {
    c.description = "IPv6: " + c.description;
    all.push_back(std::move(c));
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SteerFixtureTest,
                         ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<SteerCase>& info) {
                           return TestName(info.param.description);
                         });

// --- Map updates change the decision ---

class SteerMapTest : public ::testing::TestWithParam<Family> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("steer tests (BPF_PROG_TEST_RUN)"), IsOk());
    absl::StatusOr<std::unique_ptr<SteerProgram>> steer = SteerProgram::Load();
    ASSERT_THAT(steer, IsOk());
    steer_ = *std::move(steer);
  }

  static const Plan& plan() { return PlanFor(GetParam()); }

  // Decision runs `frame` and returns the names of the counters that went
  // up, steer_no_socket left out.
  std::string Decision(const std::vector<uint8_t>& frame) {
    absl::StatusOr<SteerCounters> before = steer_->ReadCounters();
    absl::StatusOr<TestRunResult> result =
        ProgTestRun(steer_->program_fd(), frame);
    absl::StatusOr<SteerCounters> after = steer_->ReadCounters();
    if (!before.ok() || !result.ok() || !after.ok()) return "error";
    std::string changed;
    for (int i = 0; i < ANYLB_STEER_CNT_MAX; ++i) {
      if (i == ANYLB_STEER_CNT_STEER_NO_SOCKET) continue;
      if (after->values[i] != before->values[i]) {
        changed += std::string(
            SteerCounters::Name(static_cast<anylb_steer_counter>(i)));
      }
    }
    return changed;
  }

  std::unique_ptr<SteerProgram> steer_;
};

TEST_P(SteerMapTest, AddingAndRemovingAVipChangesTheDecision) {
  const Family f = GetParam();
  std::vector<uint8_t> syn = Tcp(f, plan().client, plan().vip, 40000, 80);
  EXPECT_EQ(Decision(syn), "pass_no_match");
  ASSERT_THAT(steer_->AddVip(Ip(plan().vip), 80, IPPROTO_TCP), IsOk());
  EXPECT_EQ(Decision(syn), "steer_vip");
  ASSERT_THAT(steer_->RemoveVip(Ip(plan().vip), 80, IPPROTO_TCP), IsOk());
  EXPECT_EQ(Decision(syn), "pass_no_match");
  EXPECT_THAT(steer_->RemoveVip(Ip(plan().vip), 80, IPPROTO_TCP),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(plan().vip)));
}

TEST_P(SteerMapTest, IcmpFollowsTheVipAddressUntilItsLastEntryGoes) {
  const Family f = GetParam();
  PacketBuilder b = Eth();
  Ip(b, f, plan().client, plan().vip);
  std::vector<uint8_t> echo =
      Icmp(b, f, 8, 128, 0).IcmpRest(0x00010001).Build();
  EXPECT_EQ(Decision(echo), "pass_no_match");
  ASSERT_THAT(steer_->AddVip(Ip(plan().vip), 80, IPPROTO_TCP), IsOk());
  ASSERT_THAT(steer_->AddVip(Ip(plan().vip), 53, IPPROTO_UDP), IsOk());
  // Adding twice is harmless and does not inflate the address's count.
  ASSERT_THAT(steer_->AddVip(Ip(plan().vip), 53, IPPROTO_UDP), IsOk());
  EXPECT_EQ(Decision(echo), "steer_vip");
  ASSERT_THAT(steer_->RemoveVip(Ip(plan().vip), 80, IPPROTO_TCP), IsOk());
  EXPECT_EQ(Decision(echo), "steer_vip");
  ASSERT_THAT(steer_->RemoveVip(Ip(plan().vip), 53, IPPROTO_UDP), IsOk());
  EXPECT_EQ(Decision(echo), "pass_no_match");
}

TEST_P(SteerMapTest, ReplaceVipsInstallsExactlyTheSnapshot) {
  const Family f = GetParam();
  IpAddress vip = Ip(plan().vip);
  IpAddress wild = Ip(plan().vip_wild);
  ASSERT_THAT(
      steer_->ReplaceVips({{vip, 80, IPPROTO_TCP}, {vip, 53, IPPROTO_UDP}}),
      IsOk());
  EXPECT_EQ(Decision(Tcp(f, plan().client, plan().vip, 40000, 80)),
            "steer_vip");
  EXPECT_EQ(Decision(Udp(f, plan().client, plan().vip, 40000, 53)),
            "steer_vip");
  ASSERT_THAT(
      steer_->ReplaceVips({{vip, 53, IPPROTO_UDP}, {wild, 0, IPPROTO_TCP}}),
      IsOk());
  EXPECT_EQ(Decision(Tcp(f, plan().client, plan().vip, 40000, 80)),
            "pass_no_match");
  EXPECT_EQ(Decision(Udp(f, plan().client, plan().vip, 40000, 53)),
            "steer_vip");
  EXPECT_EQ(Decision(Tcp(f, plan().client, plan().vip_wild, 40000, 9)),
            "steer_vip");
  EXPECT_EQ(steer_->vips().size(), 2u);
  ASSERT_THAT(steer_->ReplaceVips({}), IsOk());
  EXPECT_EQ(Decision(Udp(f, plan().client, plan().vip, 40000, 53)),
            "pass_no_match");
  EXPECT_TRUE(steer_->vips().empty());
}

TEST_P(SteerMapTest, LocalAddressesAndNatBackendsCanBeWithdrawn) {
  const Family f = GetParam();
  std::vector<uint8_t> to_local =
      Tcp(f, plan().backend, plan().local, 80, 40000);
  std::vector<uint8_t> reply =
      Tcp(f, plan().backend, plan().client, kBackendPort, 40000);
  EXPECT_EQ(Decision(to_local), "pass_no_match");
  EXPECT_EQ(Decision(reply), "pass_no_match");
  Endpoint backend(Ip(plan().backend), kBackendPort);
  ASSERT_THAT(steer_->AddLocalAddress(Ip(plan().local)), IsOk());
  ASSERT_THAT(steer_->AddNatBackend(backend, IPPROTO_TCP), IsOk());
  EXPECT_EQ(Decision(to_local), "steer_local");
  EXPECT_EQ(Decision(reply), "steer_nat_reply");
  ASSERT_THAT(steer_->RemoveLocalAddress(Ip(plan().local)), IsOk());
  ASSERT_THAT(steer_->RemoveNatBackend(backend, IPPROTO_TCP), IsOk());
  EXPECT_EQ(Decision(to_local), "pass_no_match");
  EXPECT_EQ(Decision(reply), "pass_no_match");
  EXPECT_THAT(steer_->RemoveLocalAddress(Ip(plan().local)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(plan().local)));
  EXPECT_THAT(steer_->RemoveNatBackend(backend, IPPROTO_TCP),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(plan().backend)));
}

TEST_P(SteerMapTest, ReplaceLocalAddressesAndNatBackendsInstallTheSnapshot) {
  const Family f = GetParam();
  const Plan& other = f == Family::kV4 ? kV6 : kV4;
  std::vector<uint8_t> to_local =
      Tcp(f, plan().backend, plan().local, 80, 40000);
  std::vector<uint8_t> reply =
      Tcp(f, plan().backend, plan().client, kBackendPort, 40000);
  SteerNatBackend backend{Endpoint(Ip(plan().backend), kBackendPort),
                          IPPROTO_TCP};
  SteerNatBackend other_backend{Endpoint(Ip(other.backend), kBackendPort),
                                IPPROTO_TCP};
  ASSERT_THAT(steer_->ReplaceLocalAddresses({Ip(plan().local)}), IsOk());
  ASSERT_THAT(steer_->ReplaceNatBackends({backend}), IsOk());
  EXPECT_EQ(Decision(to_local), "steer_local");
  EXPECT_EQ(Decision(reply), "steer_nat_reply");
  ASSERT_THAT(steer_->ReplaceLocalAddresses({Ip(other.local)}), IsOk());
  ASSERT_THAT(steer_->ReplaceNatBackends({other_backend}), IsOk());
  EXPECT_EQ(Decision(to_local), "pass_no_match");
  EXPECT_EQ(Decision(reply), "pass_no_match");
  EXPECT_EQ(steer_->local_addresses(), std::set<IpAddress>{Ip(other.local)});
  EXPECT_EQ(steer_->nat_backends(), std::set<SteerNatBackend>{other_backend});
}

TEST_P(SteerMapTest, APortZeroBackendMatchesEverySourcePort) {
  const Family f = GetParam();
  ASSERT_THAT(
      steer_->AddNatBackend(Endpoint(Ip(plan().backend), 0), IPPROTO_UDP),
      IsOk());
  EXPECT_EQ(Decision(Udp(f, plan().backend, plan().client, 5353, 40000)),
            "steer_nat_reply");
  EXPECT_EQ(Decision(Tcp(f, plan().backend, plan().client, 5353, 40000)),
            "pass_no_match");
}

INSTANTIATE_TEST_SUITE_P(BothFamilies, SteerMapTest,
                         ::testing::Values(Family::kV4, Family::kV6),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return info.param == Family::kV4 ? "Ipv4" : "Ipv6";
                         });

// --- Small pieces of the loader's API ---

TEST(SteerLoader, TheLocalAddressMapIsBounded) {
  ASSERT_THAT(RequireRoot("steer tests (BPF_PROG_TEST_RUN)"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                       SteerProgram::Load());
  for (uint32_t i = 0; i < ANYLB_STEER_MAX_LOCALS; ++i) {
    ASSERT_THAT(steer->AddLocalAddress(IpAddress::FromV4(0xc6336400 + i)),
                IsOk());
  }
  EXPECT_THAT(
      steer->AddLocalAddress(IpAddress::FromV4(0xcb007100)),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("at most 256")));
}

TEST(SteerLoader, AttachingToAMissingInterfaceNamesIt) {
  ASSERT_THAT(RequireRoot("steer tests (BPF_PROG_TEST_RUN)"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                       SteerProgram::Load());
  EXPECT_THAT(
      steer->Attach("nosuchif0", SteerMode::kXdpGeneric),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nosuchif0\"")));
  EXPECT_THAT(steer->Detach("nosuchif0"), StatusIs(absl::StatusCode::kNotFound,
                                                   HasSubstr("\"nosuchif0\"")));
  EXPECT_GE(steer->xsks_map_fd(), 0);
}

TEST(SteerCounters, EveryCounterHasADistinctName) {
  std::set<std::string_view> names;
  for (int i = 0; i < ANYLB_STEER_CNT_MAX; ++i) {
    std::string_view name =
        SteerCounters::Name(static_cast<anylb_steer_counter>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  SteerCounters counters;
  counters.values[ANYLB_STEER_CNT_STEER_NAT_REPLY] = 7;
  EXPECT_THAT(counters.ToString(), HasSubstr("steer_nat_reply 7\n"));
}

}  // namespace
}  // namespace anylb::dataplane::bpf
