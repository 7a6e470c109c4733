// DecapProgram attaching to and detaching from real interfaces (a veth pair
// in a namespace of the test's own), and its error messages.
//
// Needs root: tagged "netns"; deploy/test.sh runs it as root. Not being root
// is a test failure, never a silent pass.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/decap_loader.h"

namespace anylb::dataplane::bpf {

// Test names and messages show the mode, not its bytes.
void PrintTo(DecapMode mode, std::ostream* os) { *os << DecapModeName(mode); }

namespace {

using ::anylb::netns_testing::EnteredNetns;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::RunUnprivileged;
using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

uint32_t ProgramId(int fd) {
  bpf_prog_info info = {};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return 0;
  return info.id;
}

// AttachedXdpId returns the id of the XDP program on `interface` (any
// mode), 0 if none.
uint32_t AttachedXdpId(const char* interface) {
  uint32_t id = 0;
  bpf_xdp_query_id(static_cast<int>(if_nametoindex(interface)), 0, &id);
  return id;
}

// AttachedTcId returns the id of the program in the decap tc slot
// (handle 0xdeca, priority 1) on `interface`, 0 if none.
uint32_t AttachedTcId(const char* interface) {
  bpf_tc_hook hook = {};
  hook.sz = sizeof(hook);
  hook.ifindex = static_cast<int>(if_nametoindex(interface));
  hook.attach_point = BPF_TC_INGRESS;
  bpf_tc_opts opts = {};
  opts.sz = sizeof(opts);
  opts.handle = 0xdeca;
  opts.priority = 1;
  libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  int error = bpf_tc_query(&hook, &opts);
  libbpf_set_print(previous);
  return error == 0 ? opts.prog_id : 0;
}

uint32_t AttachedId(const char* interface, DecapMode mode) {
  return mode == DecapMode::kTc ? AttachedTcId(interface)
                                : AttachedXdpId(interface);
}

int OurFd(const DecapProgram& decap, DecapMode mode) {
  return mode == DecapMode::kTc ? decap.tc_program_fd()
                                : decap.xdp_program_fd();
}

// LoadTrivialProgram loads "return `verdict`" as a program of `type` named
// `name`: someone else's program, for the tests that must leave it alone.
int LoadTrivialProgram(bpf_prog_type type, const char* name, int verdict) {
  const bpf_insn insns[] = {
      // r0 = verdict
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, verdict},
      // exit
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  return bpf_prog_load(type, name, "GPL", insns, 2, nullptr);
}

// The fixture: a namespace with a veth pair "dcp0"/"dcp1", the test thread
// inside it.
class DecapAttachTest : public ::testing::TestWithParam<DecapMode> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("decap attach tests"), IsOk());
    ASSERT_OK_AND_ASSIGN(
        ns_,
        EnteredNetns::Create("decap-attach",
                             "ip link add dcp0 type veth peer name dcp1 && "
                             "ip link set dcp0 up && ip link set dcp1 up"));
  }

  // Leaves and deletes the namespace when the test ends.
  std::unique_ptr<EnteredNetns> ns_;
};

TEST_P(DecapAttachTest, AttachesAndDetachesWithTheObject) {
  const DecapMode mode = GetParam();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  ASSERT_THAT(decap->Attach("dcp0", mode), IsOk());
  EXPECT_EQ(AttachedId("dcp0", mode), ProgramId(OurFd(*decap, mode)));
  EXPECT_EQ(AttachedId("dcp1", mode), 0u);
  if (mode == DecapMode::kTc) {
    EXPECT_THAT(ns_->netns().Run("tc qdisc show dev dcp0"),
                IsOkAndHolds(HasSubstr("clsact")));
  }
  decap.reset();
  EXPECT_EQ(AttachedId("dcp0", mode), 0u);
  // The clsact qdisc we created went with our filter.
  EXPECT_THAT(ns_->netns().Run("tc qdisc show dev dcp0"),
              IsOkAndHolds(::testing::Not(HasSubstr("clsact"))));
}

TEST_P(DecapAttachTest, DetachLeavesAClsactItDidNotCreate) {
  const DecapMode mode = GetParam();
  if (mode != DecapMode::kTc) GTEST_SKIP() << "tc only";
  ASSERT_THAT(ns_->netns().Run("tc qdisc add dev dcp0 clsact"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  ASSERT_THAT(decap->Attach("dcp0", mode), IsOk());
  ASSERT_THAT(decap->Detach("dcp0"), IsOk());
  EXPECT_EQ(AttachedTcId("dcp0"), 0u);
  EXPECT_THAT(ns_->netns().Run("tc qdisc show dev dcp0"),
              IsOkAndHolds(HasSubstr("clsact")));
}

TEST_P(DecapAttachTest, AttachingTwiceToOneInterfaceFails) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  ASSERT_THAT(decap->Attach("dcp0", GetParam()), IsOk());
  EXPECT_THAT(decap->Attach("dcp0", DecapMode::kTc),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("already attached")));
  // Another interface is fine.
  EXPECT_THAT(decap->Attach("dcp1", GetParam()), IsOk());
  EXPECT_THAT(decap->DetachAll(), IsOk());
  EXPECT_EQ(AttachedId("dcp0", GetParam()), 0u);
  EXPECT_EQ(AttachedId("dcp1", GetParam()), 0u);
  EXPECT_THAT(decap->Detach("dcp0"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(DecapAttachTest, AnUnknownInterfaceIsNamedInTheError) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  const std::string kind = GetParam() == DecapMode::kTc ? "tc" : "XDP";
  EXPECT_THAT(decap->Attach("nope0", GetParam()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("attaching " + kind +
                                 " decap to \"nope0\": no such interface")));
}

TEST_P(DecapAttachTest, ReplacesTheProgramOfAKilledInstance) {
  const DecapMode mode = GetParam();
  // A child process attaches and dies without detaching, as a SIGKILLed
  // lb_decap would. (fork() keeps the thread's namespace.)
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<DecapProgram>> decap = DecapProgram::Load();
    bool attached = decap.ok() && (*decap)->Attach("dcp0", mode).ok();
    _exit(attached ? 0 : 1);  // No destructors: the attachment stays.
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const uint32_t stale = AttachedId("dcp0", mode);
  ASSERT_NE(stale, 0u) << "the killed instance's program should remain";

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  ASSERT_THAT(decap->Attach("dcp0", mode), IsOk());
  EXPECT_EQ(AttachedId("dcp0", mode), ProgramId(OurFd(*decap, mode)));
  EXPECT_NE(AttachedId("dcp0", mode), stale);
  decap.reset();
  EXPECT_EQ(AttachedId("dcp0", mode), 0u);
}

TEST_P(DecapAttachTest, LeavesSomeoneElsesProgramAlone) {
  const DecapMode mode = GetParam();
  const int ifindex = static_cast<int>(if_nametoindex("dcp0"));
  int other = -1;
  if (mode == DecapMode::kTc) {
    other = LoadTrivialProgram(BPF_PROG_TYPE_SCHED_CLS, "other_tc", 0);
    ASSERT_GE(other, 0);
    bpf_tc_hook hook = {};
    hook.sz = sizeof(hook);
    hook.ifindex = ifindex;
    hook.attach_point = BPF_TC_INGRESS;
    ASSERT_EQ(bpf_tc_hook_create(&hook), 0);
    bpf_tc_opts opts = {};
    opts.sz = sizeof(opts);
    opts.handle = 0xdeca;
    opts.priority = 1;
    opts.prog_fd = other;
    ASSERT_EQ(bpf_tc_attach(&hook, &opts), 0);
  } else {
    other = LoadTrivialProgram(BPF_PROG_TYPE_XDP, "other_xdp", XDP_PASS);
    ASSERT_GE(other, 0);
    ASSERT_EQ(bpf_xdp_attach(ifindex, other, XDP_FLAGS_SKB_MODE, nullptr), 0);
  }
  const uint32_t other_id = ProgramId(other);

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DecapProgram> decap,
                       DecapProgram::Load());
  EXPECT_THAT(decap->Attach("dcp0", mode),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("\"dcp0\""), HasSubstr("other_"),
                             HasSubstr("not replacing it"))));
  EXPECT_EQ(AttachedId("dcp0", mode), other_id);
  decap.reset();
  EXPECT_EQ(AttachedId("dcp0", mode), other_id);
  close(other);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecapAttachTest,
                         ::testing::Values(DecapMode::kXdpNative,
                                           DecapMode::kXdpGeneric,
                                           DecapMode::kTc),
                         [](const ::testing::TestParamInfo<DecapMode>& info) {
                           std::string name(DecapModeName(info.param));
                           return name == "xdp-generic" ? "xdp_generic" : name;
                         });

TEST(DecapLoad, WithoutPrivilegesTheErrorSaysWhy) {
  ASSERT_THAT(RequireRoot("decap load tests"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string message, RunUnprivileged([] {
                         absl::StatusOr<std::unique_ptr<DecapProgram>> decap =
                             DecapProgram::Load();
                         return decap.ok() ? std::string("loaded")
                                           : decap.status().ToString();
                       }));
  EXPECT_THAT(message,
              AllOf(HasSubstr("PERMISSION_DENIED"),
                    HasSubstr("Operation not permitted (need root?)")));
}

}  // namespace
}  // namespace anylb::dataplane::bpf
