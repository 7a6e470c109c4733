// Runs the decapsulation programs (XDP and tc) on packet fixtures through
// BPF_PROG_TEST_RUN, and checks verdict, output frame and counters.
//
// Needs root (CAP_BPF + CAP_NET_ADMIN): tagged "netns"; deploy/test.sh runs
// it as root. Not being root is a test failure, never a silent pass.

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <memory>
#include <optional>
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
#include "lbnode/dataplane/bpf/decap_loader.h"
#include "lbnode/dataplane/bpf/decap_structs.h"
#include "lbnode/dataplane/bpf/prog_test_run.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::bpf {
namespace {

using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::kSyn;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::dataplane_testing::VerifyChecksums;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

// Documentation addresses only (RFC 5737, RFC 3849) and locally
// administered MACs.
constexpr char kDirectorMac[] = "02:00:00:00:00:01";
constexpr char kServerMac[] = "02:00:00:00:00:02";

// One side of the fixtures' addressing plan, per IP version.
struct Plan {
  const char* director;  // Outer source.
  const char* server;    // Outer destination, in decap_dsts.
  const char* other;     // An outer destination not in decap_dsts.
  const char* client;    // Inner source.
  const char* vip;       // Inner destination, on the server's loopback.
};
constexpr Plan kV4 = {"192.0.2.1", "192.0.2.2", "192.0.2.99", "198.51.100.7",
                      "203.0.113.10"};
constexpr Plan kV6 = {"2001:db8::1", "2001:db8::2", "2001:db8::99",
                      "2001:db8:c::7", "2001:db8:f::10"};

enum class Family { kV4, kV6 };
const Plan& PlanFor(Family family) { return family == Family::kV4 ? kV4 : kV6; }
std::string FamilyName(Family family) {
  return family == Family::kV4 ? "Ipv4" : "Ipv6";
}

enum class Program { kXdp, kTc };
// kTestRunRejects: BPF_PROG_TEST_RUN itself refuses the frame with EINVAL
// (for skb programs, Linux 6.x rejects an IPv4/IPv6 EtherType whose frame is
// shorter than the minimal L3 header); the program never runs.
enum class Verdict { kPass, kDrop, kTestRunRejects };

// Outcome is what one program must do with a fixture.
struct Outcome {
  Verdict verdict;
  anylb_decap_counter counter;  // The one counter that goes up by one.
  // The frame after the program; nullopt means the input, untouched.
  std::optional<std::vector<uint8_t>> output;
};

Outcome Decapsulated(anylb_decap_counter counter, std::vector<uint8_t> out) {
  return {Verdict::kPass, counter, std::move(out)};
}
Outcome Untouched(anylb_decap_counter counter) {
  return {Verdict::kPass, counter, std::nullopt};
}
Outcome Dropped(anylb_decap_counter counter) {
  return {Verdict::kDrop, counter, std::nullopt};
}
Outcome TestRunRejects() {
  return {Verdict::kTestRunRejects, ANYLB_DECAP_CNT_MAX, std::nullopt};
}

// DecapCase is one fixture: {description, input frame, expected outcome}.
// The two programs agree except where the attach point makes a difference
// (VLAN tags), hence one outcome each.
struct DecapCase {
  std::string description;
  std::vector<uint8_t> input;
  Outcome xdp;
  Outcome tc;
};

// Test names and failure messages show the description, not bytes.
void PrintTo(const DecapCase& fixture, std::ostream* os) {
  *os << fixture.description;
}
void PrintTo(Program program, std::ostream* os) {
  *os << (program == Program::kXdp ? "xdp" : "tc");
}

DecapCase Both(std::string description, std::vector<uint8_t> input,
               const Outcome& outcome) {
  return {std::move(description), std::move(input), outcome, outcome};
}

// Inner appends the client's packet to `builder`: a TCP SYN from the client
// to the VIP, with a payload so lengths are not trivially minimal.
PacketBuilder& Inner(PacketBuilder& builder, Family family) {
  const Plan& plan = PlanFor(family);
  family == Family::kV4 ? builder.Ipv4(plan.client, plan.vip)
                        : builder.Ipv6(plan.client, plan.vip);
  return builder.Tcp(40000, 80).Flags(kSyn).Payload("client data");
}

// Outer appends an outer IP header from the director to `destination`.
PacketBuilder& Outer(PacketBuilder& builder, Family family,
                     const char* destination) {
  const Plan& plan = PlanFor(family);
  return family == Family::kV4 ? builder.Ipv4(plan.director, destination)
                               : builder.Ipv6(plan.director, destination);
}

PacketBuilder Eth() {
  return std::move(PacketBuilder().Eth(kDirectorMac, kServerMac));
}

// Expected output: the L2 header followed by the inner packet.
std::vector<uint8_t> InnerFrame(Family inner) {
  PacketBuilder b = Eth();
  return Inner(b, inner).Build();
}

std::vector<uint8_t> IpInIp(Family outer, Family inner) {
  PacketBuilder b = Eth();
  Outer(b, outer, PlanFor(outer).server);
  return Inner(b, inner).Build();
}

std::vector<uint8_t> GueV1(Family outer, Family inner, uint16_t port = 6080) {
  PacketBuilder b = Eth();
  Outer(b, outer, PlanFor(outer).server).Udp(41000, port).Gue();
  return Inner(b, inner).Build();
}

std::vector<uint8_t> GueV0(Family outer, Family inner) {
  PacketBuilder b = Eth();
  Outer(b, outer, PlanFor(outer).server).Udp(41000, 6080).GueVariant0();
  return Inner(b, inner).Build();
}

// GueRaw is GUE whose 4 header bytes are given verbatim, then an inner
// packet.
std::vector<uint8_t> GueRaw(Family outer, std::vector<uint8_t> header,
                            Family inner) {
  PacketBuilder inner_builder;
  std::vector<uint8_t> inner_packet = Inner(inner_builder, inner).Build();
  PacketBuilder b = Eth();
  Outer(b, outer, PlanFor(outer).server).Udp(41000, 6080);
  return b.Payload(header).Embed(inner_packet).Build();
}

// Cases returns the fixtures whose outer header is of `outer` family.
std::vector<DecapCase> Cases(Family outer) {
  const Plan& plan = PlanFor(outer);
  const Family same = outer;
  const Family cross = outer == Family::kV4 ? Family::kV6 : Family::kV4;
  const anylb_decap_counter same_counter = outer == Family::kV4
                                               ? ANYLB_DECAP_CNT_DECAP_IPIP
                                               : ANYLB_DECAP_CNT_DECAP_IP6IP6;
  const anylb_decap_counter cross_counter = outer == Family::kV4
                                                ? ANYLB_DECAP_CNT_DECAP_IP6IP6
                                                : ANYLB_DECAP_CNT_DECAP_IPIP;
  std::vector<DecapCase> cases;

  // --- Decapsulated ---
  cases.push_back(Both(outer == Family::kV4 ? "IPIP" : "IP6IP6",
                       IpInIp(outer, same),
                       Decapsulated(same_counter, InnerFrame(same))));
  cases.push_back(Both(outer == Family::kV4 ? "6in4" : "4in6",
                       IpInIp(outer, cross),
                       Decapsulated(cross_counter, InnerFrame(cross))));
  for (Family inner : {same, cross}) {
    cases.push_back(
        Both("GUE v1 with " + FamilyName(inner) + " inner", GueV1(outer, inner),
             Decapsulated(ANYLB_DECAP_CNT_DECAP_GUE_V1, InnerFrame(inner))));
    cases.push_back(
        Both("GUE v0 with " + FamilyName(inner) + " inner", GueV0(outer, inner),
             Decapsulated(ANYLB_DECAP_CNT_DECAP_GUE_V0, InnerFrame(inner))));
  }
  {
    // Ethernet padding after the outer packet stays behind the inner one
    // (the stack trims by the inner length field).
    std::vector<uint8_t> padded = IpInIp(outer, same);
    std::vector<uint8_t> want = InnerFrame(same);
    padded.insert(padded.end(), 6, 0);
    want.insert(want.end(), 6, 0);
    cases.push_back(Both("Ethernet padding is kept", padded,
                         Decapsulated(same_counter, want)));
  }
  {
    // One 802.1Q tag: XDP keeps the tag and decapsulates; at tc the kernel
    // has already moved real tags into skb metadata, so a tag still in the
    // data is not ours to judge.
    PacketBuilder b = std::move(Eth().Vlan(100));
    Outer(b, outer, plan.server);
    std::vector<uint8_t> tagged = Inner(b, same).Build();
    PacketBuilder w = std::move(Eth().Vlan(100));
    std::vector<uint8_t> want = Inner(w, same).Build();
    cases.push_back({"one VLAN tag", tagged, Decapsulated(same_counter, want),
                     Untouched(ANYLB_DECAP_CNT_PASS_VLAN)});
  }
  if (outer == Family::kV4) {
    PacketBuilder b = Eth();
    b.Ipv4(plan.director, plan.server).Ipv4Options({1, 1, 1, 1});  // NOPs.
    cases.push_back(Both("outer IPv4 options are stripped with the header",
                         Inner(b, same).Build(),
                         Decapsulated(same_counter, InnerFrame(same))));
    PacketBuilder longest = Eth();
    longest.Ipv4(plan.director, plan.server)
        .Ipv4Options(std::vector<uint8_t>(40, 1));  // IHL 15.
    cases.push_back(Both("outer IPv4 with 40 bytes of options",
                         Inner(longest, same).Build(),
                         Decapsulated(same_counter, InnerFrame(same))));
    PacketBuilder zero = Eth();
    zero.Ipv4(plan.director, plan.server)
        .Udp(41000, 6080)
        .UdpChecksumZero()
        .Gue();
    cases.push_back(
        Both("GUE with UDP checksum 0", Inner(zero, same).Build(),
             Decapsulated(ANYLB_DECAP_CNT_DECAP_GUE_V1, InnerFrame(same))));
  }

  // --- Passed untouched ---
  {
    PacketBuilder b = Eth();
    Outer(b, outer, plan.other);
    cases.push_back(Both("outer destination not ours", Inner(b, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_NOT_LOCAL)));
  }
  cases.push_back(Both("UDP to a port that is not GUE",
                       GueV1(outer, same, 6081),
                       Untouched(ANYLB_DECAP_CNT_PASS_NOT_TUNNEL)));
  {
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server).Tcp(40000, 22).Flags(kSyn);
    cases.push_back(Both("plain TCP to the server", b.Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_NOT_TUNNEL)));
  }
  {
    PacketBuilder b =
        std::move(Eth().EtherType(0x0806).Payload(std::vector<uint8_t>(28, 0)));
    cases.push_back(
        Both("ARP", b.Build(), Untouched(ANYLB_DECAP_CNT_PASS_NOT_IP)));
  }
  {
    PacketBuilder b = std::move(Eth().Vlan(100).Vlan(200));
    Outer(b, outer, plan.server);
    cases.push_back(Both("two VLAN tags", Inner(b, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_VLAN)));
  }
  if (outer == Family::kV4) {
    PacketBuilder first = Eth();
    first.Ipv4(plan.director, plan.server).MoreFragments();
    cases.push_back(Both("first fragment of an outer IPIP packet",
                         Inner(first, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_FRAGMENT)));
    PacketBuilder later = Eth();
    later.Ipv4(plan.director, plan.server).FragmentOffset(100);
    cases.push_back(Both("last fragment of an outer IPIP packet",
                         Inner(later, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_FRAGMENT)));
    PacketBuilder gue = Eth();
    gue.Ipv4(plan.director, plan.server)
        .FragmentOffset(100)
        .Protocol(17)
        .Payload(std::vector<uint8_t>(32, 0xab));
    cases.push_back(Both("non-first fragment of a UDP datagram", gue.Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_FRAGMENT)));
    PacketBuilder ihl = Eth();
    ihl.Ipv4(plan.director, plan.server).Ihl(4);
    cases.push_back(Both("outer IHL below 5", Inner(ihl, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED)));
    PacketBuilder longer = Eth();
    longer.Ipv4(plan.director, plan.server).TotalLength(1000);
    cases.push_back(Both("outer total length beyond the frame",
                         Inner(longer, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED)));
  } else {
    PacketBuilder frag = Eth();
    frag.Ipv6(plan.director, plan.server).Fragment(0, true, 7);
    cases.push_back(Both("outer IPv6 fragment header",
                         Inner(frag, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_FRAGMENT)));
    PacketBuilder ext = Eth();
    ext.Ipv6(plan.director, plan.server).DestinationOptions();
    cases.push_back(Both("outer IPv6 extension header before the tunnel",
                         Inner(ext, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_NOT_TUNNEL)));
    PacketBuilder longer = Eth();
    longer.Ipv6(plan.director, plan.server).PayloadLength(1000);
    cases.push_back(Both("outer payload length beyond the frame",
                         Inner(longer, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED)));
    PacketBuilder version = Eth();
    version.Ipv6(plan.director, plan.server).Version(4);
    cases.push_back(Both("outer version not 6 under an IPv6 EtherType",
                         Inner(version, same).Build(),
                         Untouched(ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED)));
  }

  {
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server);
    const size_t cut = outer == Family::kV4 ? 12 : 30;
    cases.push_back(
        {"truncated outer header", Inner(b, same).Truncate(14 + cut).Build(),
         Untouched(ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED), TestRunRejects()});
  }

  // --- Dropped: tunnel packets for us that cannot be decapsulated ---
  if (outer == Family::kV4) {
    PacketBuilder b = Eth();
    b.Ipv4(plan.director, plan.server).BadChecksum();
    cases.push_back(Both("bad outer IPv4 header checksum",
                         Inner(b, same).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_OUTER_CHECKSUM)));
  }
  {
    // The outer length covers only 10 bytes of the inner header.
    PacketBuilder b = Eth();
    const size_t outer_hlen = outer == Family::kV4 ? 20 : 40;
    Outer(b, outer, plan.server);
    outer == Family::kV4 ? b.TotalLength(static_cast<uint16_t>(outer_hlen + 10))
                         : b.PayloadLength(10);
    cases.push_back(Both("truncated inner header",
                         Inner(b, same).Truncate(14 + outer_hlen + 10).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_INNER_TRUNCATED)));
  }
  {
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server);
    Inner(b, same);
    same == Family::kV4 ? b.TotalLength(500) : b.PayloadLength(500);
    cases.push_back(Both("inner length beyond the outer payload", b.Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_INNER_TRUNCATED)));
  }
  {
    // Protocol 4 promises IPv4 inside; an IPv6 header follows.
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server).Protocol(4);
    cases.push_back(Both("inner version does not match the protocol",
                         Inner(b, Family::kV6).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_INNER_VERSION)));
  }
  {
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server).Ipv4(kV4.client, kV4.vip).Ihl(3);
    cases.push_back(Both("inner IHL below 5",
                         b.Tcp(40000, 80).Flags(kSyn).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_INNER_BAD_HEADER)));
  }
  {
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server).Udp(41000, 6080).UdpLength(4);
    cases.push_back(Both("UDP length below the UDP header",
                         Inner(b.Gue(), same).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_GUE_MALFORMED)));
    PacketBuilder longer = Eth();
    Outer(longer, outer, plan.server).Udp(41000, 6080).UdpLength(1400);
    cases.push_back(Both("UDP length beyond the IP payload",
                         Inner(longer.Gue(), same).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_GUE_MALFORMED)));
  }
  cases.push_back(Both("GUE v1 whose first nibble is 5",
                       GueRaw(outer, {0x50, 0, 0, 0}, same),
                       Dropped(ANYLB_DECAP_CNT_DROP_INNER_VERSION)));
  cases.push_back(Both("GUE control message",
                       GueRaw(outer, {0x20, 0, 0, 0}, same),
                       Dropped(ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED)));
  cases.push_back(Both("GUE v0 with extension fields",
                       GueRaw(outer, {0x01, 4, 0x80, 0}, same),
                       Dropped(ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED)));
  cases.push_back(Both("GUE v0 carrying UDP",
                       GueRaw(outer, {0x00, 17, 0, 0}, same),
                       Dropped(ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED)));
  cases.push_back(Both("GUE version 2", GueRaw(outer, {0x80, 4, 0, 0}, same),
                       Dropped(ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED)));
  {
    // Two of the four GUE header bytes; the UDP length says so too.
    PacketBuilder b = Eth();
    Outer(b, outer, plan.server).Udp(41000, 6080);
    cases.push_back(Both("GUE v0 header cut short",
                         b.Payload(std::vector<uint8_t>{0x00, 4}).Build(),
                         Dropped(ANYLB_DECAP_CNT_DROP_GUE_MALFORMED)));
  }
  return cases;
}

// TestName turns a description into a gtest name: "GUE v1, x" -> GUE_v1__x.
std::string TestName(const std::string& text) {
  std::string name;
  for (char c : text) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return name;
}

// LoadConfigured loads the programs with the fixtures' addresses and the
// default GUE port.
std::unique_ptr<DecapProgram> LoadConfigured() {
  absl::StatusOr<std::unique_ptr<DecapProgram>> decap = DecapProgram::Load();
  EXPECT_THAT(decap, IsOk());
  if (!decap.ok()) return nullptr;
  for (const char* text : {kV4.server, kV6.server}) {
    absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
    EXPECT_THAT((*decap)->AddLocalAddress(*address), IsOk());
  }
  EXPECT_THAT((*decap)->AddGuePort(ANYLB_DECAP_DEFAULT_GUE_PORT), IsOk());
  return *std::move(decap);
}

// TestRun feeds `input` once to `program` through BPF_PROG_TEST_RUN.
absl::StatusOr<TestRunResult> TestRun(const DecapProgram& decap,
                                      Program program,
                                      const std::vector<uint8_t>& input) {
  return ProgTestRun(
      program == Program::kXdp ? decap.xdp_program_fd() : decap.tc_program_fd(),
      input);
}

int ActionFor(Program program, Verdict verdict) {
  if (program == Program::kXdp) {
    return verdict == Verdict::kPass ? XDP_PASS : XDP_DROP;
  }
  return verdict == Verdict::kPass ? TC_ACT_OK : TC_ACT_SHOT;
}

class DecapFixtureTest
    : public ::testing::TestWithParam<std::tuple<DecapCase, Program>> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("decap tests (BPF_PROG_TEST_RUN)"), IsOk());
    decap_ = LoadConfigured();
    ASSERT_NE(decap_, nullptr);
  }
  std::unique_ptr<DecapProgram> decap_;
};

TEST_P(DecapFixtureTest, GivesTheExpectedVerdictFrameAndCounter) {
  const auto& [fixture, program] = GetParam();
  const Outcome& want = program == Program::kXdp ? fixture.xdp : fixture.tc;
  SCOPED_TRACE(fixture.description);

  ASSERT_OK_AND_ASSIGN(DecapCounters before, decap_->ReadCounters());
  if (want.verdict == Verdict::kTestRunRejects) {
    EXPECT_THAT(TestRun(*decap_, program, fixture.input),
                StatusIs(absl::StatusCode::kInvalidArgument));
    ASSERT_OK_AND_ASSIGN(DecapCounters after, decap_->ReadCounters());
    EXPECT_EQ(after.values, before.values);
    return;
  }
  ASSERT_OK_AND_ASSIGN(TestRunResult result,
                       TestRun(*decap_, program, fixture.input));
  ASSERT_OK_AND_ASSIGN(DecapCounters after, decap_->ReadCounters());

  EXPECT_EQ(result.action, ActionFor(program, want.verdict));
  EXPECT_THAT(result.output, FrameEq(want.output.value_or(fixture.input)));
  if (want.output.has_value()) {
    EXPECT_THAT(VerifyChecksums(result.output), IsOk());
  }
  DecapCounters expected = before;
  expected.values[want.counter] += 1;
  EXPECT_EQ(after.values, expected.values)
      << "want " << DecapCounters::Name(want.counter) << " +1; before:\n"
      << before.ToString() << "after:\n"
      << after.ToString();
}

std::vector<DecapCase> AllCases() {
  std::vector<DecapCase> all = Cases(Family::kV4);
  for (DecapCase& c : all) c.description = "outer IPv4: " + c.description;
  for (DecapCase& c : Cases(Family::kV6)) {
    c.description = "outer IPv6: " + c.description;
    all.push_back(std::move(c));
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, DecapFixtureTest,
    ::testing::Combine(::testing::ValuesIn(AllCases()),
                       ::testing::Values(Program::kXdp, Program::kTc)),
    [](const ::testing::TestParamInfo<DecapFixtureTest::ParamType>& info) {
      return TestName(std::get<0>(info.param).description) +
             (std::get<1>(info.param) == Program::kXdp ? "_xdp" : "_tc");
    });

// --- The maps steer what is decapsulated ---

class DecapMapTest : public ::testing::TestWithParam<Program> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("decap tests (BPF_PROG_TEST_RUN)"), IsOk());
    decap_ = LoadConfigured();
    ASSERT_NE(decap_, nullptr);
  }

  // CounterAfterRun runs `frame` and returns which counter went up.
  std::string CounterAfterRun(const std::vector<uint8_t>& frame) {
    absl::StatusOr<DecapCounters> before = decap_->ReadCounters();
    absl::StatusOr<TestRunResult> result = TestRun(*decap_, GetParam(), frame);
    absl::StatusOr<DecapCounters> after = decap_->ReadCounters();
    if (!before.ok() || !result.ok() || !after.ok()) return "error";
    std::string changed;
    for (int i = 0; i < ANYLB_DECAP_CNT_MAX; ++i) {
      if (after->values[i] != before->values[i]) {
        changed += std::string(
            DecapCounters::Name(static_cast<anylb_decap_counter>(i)));
      }
    }
    return changed;
  }

  std::unique_ptr<DecapProgram> decap_;
};

TEST_P(DecapMapTest, RemovingTheLocalAddressStopsDecapsulation) {
  std::vector<uint8_t> ipip = IpInIp(Family::kV4, Family::kV4);
  EXPECT_EQ(CounterAfterRun(ipip), "decap_ipip");
  ASSERT_OK_AND_ASSIGN(IpAddress server, IpAddress::Parse(kV4.server));
  ASSERT_THAT(decap_->RemoveLocalAddress(server), IsOk());
  EXPECT_EQ(CounterAfterRun(ipip), "pass_not_local");
  // The IPv6 address is a different key and still works.
  EXPECT_EQ(CounterAfterRun(IpInIp(Family::kV6, Family::kV6)), "decap_ip6ip6");
  EXPECT_THAT(decap_->RemoveLocalAddress(server),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("192.0.2.2")));
}

TEST_P(DecapMapTest, GueNeedsItsPortInTheMap) {
  EXPECT_EQ(CounterAfterRun(GueV1(Family::kV4, Family::kV4, 7000)),
            "pass_not_tunnel");
  ASSERT_THAT(decap_->AddGuePort(7000), IsOk());
  EXPECT_EQ(CounterAfterRun(GueV1(Family::kV4, Family::kV4, 7000)),
            "decap_gue_v1");
  ASSERT_THAT(decap_->RemoveGuePort(ANYLB_DECAP_DEFAULT_GUE_PORT), IsOk());
  EXPECT_EQ(CounterAfterRun(GueV1(Family::kV6, Family::kV6)),
            "pass_not_tunnel");
  EXPECT_EQ(CounterAfterRun(IpInIp(Family::kV6, Family::kV6)), "decap_ip6ip6");
}

TEST_P(DecapMapTest, AnEmptyMapDecapsulatesNothing) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> empty,
                       DecapProgram::Load());
  for (const std::vector<uint8_t>& frame :
       {IpInIp(Family::kV4, Family::kV4), IpInIp(Family::kV6, Family::kV6)}) {
    ASSERT_OK_AND_ASSIGN(TestRunResult result,
                         TestRun(*empty, GetParam(), frame));
    EXPECT_THAT(result.output, FrameEq(frame));
  }
  ASSERT_OK_AND_ASSIGN(DecapCounters counters, empty->ReadCounters());
  EXPECT_EQ(counters[ANYLB_DECAP_CNT_PASS_NOT_LOCAL], 2u);
}

TEST_P(DecapMapTest, TheAddressMapIsBounded) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  for (uint32_t i = 0; i < ANYLB_DECAP_MAX_DSTS; ++i) {
    ASSERT_THAT(decap->AddLocalAddress(IpAddress::FromV4(0xc6336400 + i)),
                IsOk());
  }
  EXPECT_THAT(
      decap->AddLocalAddress(IpAddress::FromV4(0xcb007100)),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("at most 64")));
}

INSTANTIATE_TEST_SUITE_P(BothPrograms, DecapMapTest,
                         ::testing::Values(Program::kXdp, Program::kTc),
                         [](const ::testing::TestParamInfo<Program>& info) {
                           return info.param == Program::kXdp ? "xdp" : "tc";
                         });

// --- Small pieces of the loader's API ---

TEST(DecapMode, ParsesItsNamesAndRejectsOthers) {
  for (DecapMode mode :
       {DecapMode::kXdpNative, DecapMode::kXdpGeneric, DecapMode::kTc}) {
    EXPECT_THAT(ParseDecapMode(DecapModeName(mode)), IsOkAndHolds(mode));
  }
  EXPECT_THAT(
      ParseDecapMode("skb"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"skb\"")));
}

TEST(DecapCounters, EveryCounterHasADistinctName) {
  std::set<std::string_view> names;
  for (int i = 0; i < ANYLB_DECAP_CNT_MAX; ++i) {
    std::string_view name =
        DecapCounters::Name(static_cast<anylb_decap_counter>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  DecapCounters counters;
  counters.values[ANYLB_DECAP_CNT_DECAP_GUE_V0] = 7;
  EXPECT_THAT(counters.ToString(), HasSubstr("decap_gue_v0 7\n"));
}

}  // namespace
}  // namespace anylb::dataplane::bpf
