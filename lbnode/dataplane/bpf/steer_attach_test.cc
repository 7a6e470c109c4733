// SteerProgram on a real interface: attaching to and detaching from a veth
// in a test namespace (native and generic XDP), refusing someone else's
// program, and frames reaching an AF_XDP socket in xsks_map: a VIP frame
// sent into the veth arrives on the socket, a frame to the node's own
// address does not. Also BPF_PROG_TEST_RUN with a socket in xsks_map, where
// a steered frame's action is XDP_REDIRECT.
//
// Needs root (namespaces, XDP, AF_XDP): tagged "netns". The namespaces are
// removed by EnteredNetns, also when a test fails half-way.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/ip_address.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/prog_test_run.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::bpf {
namespace {

using ::anylb::dataplane_testing::FrameEq;
using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::netns_testing::EnteredNetns;
using ::anylb::netns_testing::PacketSocket;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::RunUnprivileged;
using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kVip[] = "203.0.113.10";
constexpr char kClient[] = "198.51.100.7";
constexpr char kNode[] = "192.0.2.2";
constexpr char kVip6[] = "2001:db8:f::10";
constexpr char kClient6[] = "2001:db8:c::7";
constexpr char kNode6[] = "2001:db8::2";

uint32_t ProgramId(int fd) {
  bpf_prog_info info = {};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return 0;
  return info.id;
}

uint32_t AttachedXdpId(const char* interface) {
  uint32_t id = 0;
  bpf_xdp_query_id(static_cast<int>(if_nametoindex(interface)), 0, &id);
  return id;
}

absl::Status Errno(std::string_view what) {
  return absl::ErrnoToStatus(errno, std::string(what));
}

// Xsk is a minimal AF_XDP socket (copy mode, RX only) bound to one queue:
// enough to see frames arrive. Written against the uapi <linux/if_xdp.h>.
class Xsk {
 public:
  static constexpr uint32_t kFrames = 64;  // Ring sizes too (power of 2).
  static constexpr uint32_t kFrameSize = 2048;

  static absl::StatusOr<std::unique_ptr<Xsk>> Bind(const char* interface,
                                                   uint32_t queue) {
    std::unique_ptr<Xsk> xsk(new Xsk());
    xsk->fd_ = socket(AF_XDP, SOCK_RAW, 0);
    if (xsk->fd_ < 0) return Errno("socket(AF_XDP)");
    xsk->umem_size_ = size_t{kFrames} * kFrameSize;
    xsk->umem_ = mmap(nullptr, xsk->umem_size_, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (xsk->umem_ == MAP_FAILED) {
      xsk->umem_ = nullptr;
      return Errno("mmap umem");
    }
    xdp_umem_reg reg = {};
    reg.addr = reinterpret_cast<uint64_t>(xsk->umem_);
    reg.len = xsk->umem_size_;
    reg.chunk_size = kFrameSize;
    if (setsockopt(xsk->fd_, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) != 0) {
      return Errno("XDP_UMEM_REG");
    }
    int size = kFrames;
    for (int option :
         {XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING}) {
      if (setsockopt(xsk->fd_, SOL_XDP, option, &size, sizeof(size)) != 0) {
        return Errno("setting an AF_XDP ring size");
      }
    }
    xdp_mmap_offsets off = {};
    socklen_t off_len = sizeof(off);
    if (getsockopt(xsk->fd_, SOL_XDP, XDP_MMAP_OFFSETS, &off, &off_len) != 0) {
      return Errno("XDP_MMAP_OFFSETS");
    }
    xsk->fill_size_ = off.fr.desc + kFrames * sizeof(uint64_t);
    xsk->fill_ =
        mmap(nullptr, xsk->fill_size_, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE, xsk->fd_, XDP_UMEM_PGOFF_FILL_RING);
    if (xsk->fill_ == MAP_FAILED) {
      xsk->fill_ = nullptr;
      return Errno("mmap fill ring");
    }
    xsk->rx_size_ = off.rx.desc + kFrames * sizeof(xdp_desc);
    xsk->rx_ = mmap(nullptr, xsk->rx_size_, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_POPULATE, xsk->fd_, XDP_PGOFF_RX_RING);
    if (xsk->rx_ == MAP_FAILED) {
      xsk->rx_ = nullptr;
      return Errno("mmap rx ring");
    }
    xsk->off_ = off;
    // Give every frame to the kernel.
    auto* fill_base = static_cast<char*>(xsk->fill_);
    auto* addrs = reinterpret_cast<uint64_t*>(fill_base + off.fr.desc);
    for (uint32_t i = 0; i < kFrames; ++i) addrs[i] = uint64_t{i} * kFrameSize;
    reinterpret_cast<std::atomic<uint32_t>*>(fill_base + off.fr.producer)
        ->store(kFrames, std::memory_order_release);

    sockaddr_xdp address = {};
    address.sxdp_family = AF_XDP;
    address.sxdp_ifindex = if_nametoindex(interface);
    address.sxdp_queue_id = queue;
    address.sxdp_flags = XDP_COPY;
    if (bind(xsk->fd_, reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
      return Errno("bind(AF_XDP)");
    }
    return xsk;
  }

  ~Xsk() {
    if (rx_ != nullptr) munmap(rx_, rx_size_);
    if (fill_ != nullptr) munmap(fill_, fill_size_);
    if (fd_ >= 0) close(fd_);
    if (umem_ != nullptr) munmap(umem_, umem_size_);
  }

  int fd() const { return fd_; }

  // Receive waits up to `timeout_ms` for one frame and returns its bytes,
  // or nullopt.
  std::optional<std::vector<uint8_t>> Receive(int timeout_ms) {
    pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    auto* base = static_cast<char*>(rx_);
    auto* producer =
        reinterpret_cast<std::atomic<uint32_t>*>(base + off_.rx.producer);
    auto* consumer =
        reinterpret_cast<std::atomic<uint32_t>*>(base + off_.rx.consumer);
    uint32_t cons = consumer->load(std::memory_order_relaxed);
    if (producer->load(std::memory_order_acquire) == cons) return std::nullopt;
    const auto* descs = reinterpret_cast<const xdp_desc*>(base + off_.rx.desc);
    const xdp_desc& desc = descs[cons & (kFrames - 1)];
    const auto* data = static_cast<const uint8_t*>(umem_) + desc.addr;
    std::vector<uint8_t> frame(data, data + desc.len);
    consumer->store(cons + 1, std::memory_order_release);
    return frame;
  }

 private:
  Xsk() = default;
  int fd_ = -1;
  void* umem_ = nullptr;
  size_t umem_size_ = 0;
  void* fill_ = nullptr;
  size_t fill_size_ = 0;
  void* rx_ = nullptr;
  size_t rx_size_ = 0;
  xdp_mmap_offsets off_ = {};
};

std::vector<uint8_t> UdpTo(const char* dst, uint16_t port) {
  PacketBuilder b;
  b.Eth("02:00:00:00:00:01", "02:00:00:00:00:02");
  std::string_view text(dst);
  if (text.find(':') == std::string_view::npos) {
    b.Ipv4(kClient, dst);
  } else {
    b.Ipv6(kClient6, dst);
  }
  return b.Udp(40000, port).Payload("steer me").Build();
}

std::string ModeName(SteerMode mode) {
  return mode == SteerMode::kXdpNative ? "native" : "generic";
}

// The fixture: a namespace with a veth pair "str0"/"str1", the test thread
// inside it.
class SteerAttachTest : public ::testing::TestWithParam<SteerMode> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("steer attach tests"), IsOk());
    ASSERT_OK_AND_ASSIGN(
        ns_,
        EnteredNetns::Create("steer-attach",
                             "ip link add str0 type veth peer name str1 && "
                             "ip link set str0 up && ip link set str1 up"));
  }

  // Leaves and deletes the namespace when the test ends.
  std::unique_ptr<EnteredNetns> ns_;
};

TEST_P(SteerAttachTest, AttachesAndDetachesWithTheObject) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                       SteerProgram::Load());
  ASSERT_THAT(steer->Attach("str0", GetParam()), IsOk());
  EXPECT_EQ(AttachedXdpId("str0"), ProgramId(steer->program_fd()));
  EXPECT_EQ(AttachedXdpId("str1"), 0u);
  EXPECT_THAT(
      steer->Attach("str0", GetParam()),
      StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("\"str0\"")));
  steer.reset();
  EXPECT_EQ(AttachedXdpId("str0"), 0u);
}

TEST_P(SteerAttachTest, DetachRemovesTheProgram) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                       SteerProgram::Load());
  ASSERT_THAT(steer->Attach("str0", GetParam()), IsOk());
  ASSERT_THAT(steer->Detach("str0"), IsOk());
  EXPECT_EQ(AttachedXdpId("str0"), 0u);
  EXPECT_THAT(steer->Detach("str0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"str0\"")));
}

TEST_P(SteerAttachTest, ReplacesTheProgramOfAKilledInstance) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> first,
                       SteerProgram::Load());
  ASSERT_THAT(first->Attach("str0", GetParam()), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> second,
                       SteerProgram::Load());
  ASSERT_THAT(second->Attach("str0", GetParam()), IsOk());
  EXPECT_EQ(AttachedXdpId("str0"), ProgramId(second->program_fd()));
  // The first one's detach must not remove the second one's program.
  first.reset();
  EXPECT_EQ(AttachedXdpId("str0"), ProgramId(second->program_fd()));
}

TEST_P(SteerAttachTest, LeavesSomeoneElsesProgramAlone) {
  // A minimal "return XDP_PASS" program named "other".
  bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int other =
      bpf_prog_load(BPF_PROG_TYPE_XDP, "other", "GPL", insns, 2, nullptr);
  ASSERT_GE(other, 0);
  uint32_t flags = GetParam() == SteerMode::kXdpNative ? XDP_FLAGS_DRV_MODE
                                                       : XDP_FLAGS_SKB_MODE;
  ASSERT_EQ(bpf_xdp_attach(static_cast<int>(if_nametoindex("str0")), other,
                           flags, nullptr),
            0);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                       SteerProgram::Load());
  EXPECT_THAT(steer->Attach("str0", GetParam()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("another XDP program (\"other\"")));
  EXPECT_EQ(AttachedXdpId("str0"), ProgramId(other));
  close(other);
}

TEST_P(SteerAttachTest, VipFramesReachTheAfXdpSocketAndTheRestDoesNot) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                       SteerProgram::Load());
  for (const char* text : {kVip, kVip6}) {
    ASSERT_OK_AND_ASSIGN(IpAddress vip, IpAddress::Parse(text));
    ASSERT_THAT(steer->AddVip(vip, 53, IPPROTO_UDP), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Xsk> xsk, Xsk::Bind("str0", 0));
  uint32_t queue = 0;
  int xsk_fd = xsk->fd();
  ASSERT_EQ(bpf_map_update_elem(steer->xsks_map_fd(), &queue, &xsk_fd, 0), 0)
      << std::strerror(errno);
  ASSERT_THAT(steer->Attach("str0", GetParam()), IsOk());

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PacketSocket> str1,
                       PacketSocket::Open("str1"));
  // IPv4 and IPv6 (the IPv6 kernel path may also send its own ND/MLD
  // frames out of str1; those are not steered either).
  for (const auto& [vip, node] :
       {std::pair{kVip, kNode}, std::pair{kVip6, kNode6}}) {
    SCOPED_TRACE(vip);
    // Not ours: the kernel gets it, the socket sees nothing.
    ASSERT_THAT(str1->Send(UdpTo(node, 179)), IsOk());
    EXPECT_EQ(xsk->Receive(200), std::nullopt);

    std::vector<uint8_t> frame = UdpTo(vip, 53);
    ASSERT_THAT(str1->Send(frame), IsOk());
    std::optional<std::vector<uint8_t>> got = xsk->Receive(2000);
    ASSERT_TRUE(got.has_value()) << "the VIP frame did not reach the socket";
    EXPECT_THAT(*got, FrameEq(frame));
  }

  ASSERT_OK_AND_ASSIGN(SteerCounters counters, steer->ReadCounters());
  EXPECT_EQ(counters[ANYLB_STEER_CNT_STEER_VIP], 2u) << counters.ToString();
  EXPECT_EQ(counters[ANYLB_STEER_CNT_STEER_NO_SOCKET], 0u)
      << counters.ToString();
  EXPECT_GE(counters[ANYLB_STEER_CNT_PASS_NO_MATCH], 2u) << counters.ToString();
}

INSTANTIATE_TEST_SUITE_P(Modes, SteerAttachTest,
                         ::testing::Values(SteerMode::kXdpNative,
                                           SteerMode::kXdpGeneric),
                         [](const ::testing::TestParamInfo<SteerMode>& info) {
                           return ModeName(info.param);
                         });

// With a socket in xsks_map, BPF_PROG_TEST_RUN shows the redirect itself.
TEST(SteerTestRun, WithASocketOnTheQueueAVipFrameIsRedirected) {
  ASSERT_THAT(RequireRoot("steer test-run tests"), IsOk());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<EnteredNetns> ns,
      EnteredNetns::Create("steer-run",
                           "ip link add str0 type veth peer name str1 && "
                           "ip link set str0 up && ip link set str1 up"));
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SteerProgram> steer,
                         SteerProgram::Load());
    ASSERT_OK_AND_ASSIGN(IpAddress vip, IpAddress::Parse(kVip));
    ASSERT_THAT(steer->AddVip(vip, 53, IPPROTO_UDP), IsOk());
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Xsk> xsk, Xsk::Bind("str0", 0));
    uint32_t queue = 0;
    int xsk_fd = xsk->fd();
    ASSERT_EQ(bpf_map_update_elem(steer->xsks_map_fd(), &queue, &xsk_fd, 0), 0);
    for (const auto& [frame, action] :
         {std::pair{UdpTo(kVip, 53), XDP_REDIRECT},
          std::pair{UdpTo(kNode, 179), XDP_PASS}}) {
      ASSERT_OK_AND_ASSIGN(TestRunResult result,
                           ProgTestRun(steer->program_fd(), frame));
      EXPECT_EQ(result.action, static_cast<int>(action));
    }
    ASSERT_OK_AND_ASSIGN(SteerCounters counters, steer->ReadCounters());
    EXPECT_EQ(counters[ANYLB_STEER_CNT_STEER_NO_SOCKET], 0u);
  }
}

TEST(SteerLoad, WithoutPrivilegesTheErrorSaysWhy) {
  ASSERT_THAT(RequireRoot("steer load tests"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string message, RunUnprivileged([] {
                         absl::StatusOr<std::unique_ptr<SteerProgram>> steer =
                             SteerProgram::Load();
                         return steer.ok() ? std::string("loaded")
                                           : steer.status().ToString();
                       }));
  EXPECT_THAT(message, ::testing::AllOf(
                           HasSubstr("PERMISSION_DENIED"),
                           HasSubstr("Operation not permitted (need root?)")));
}

}  // namespace
}  // namespace anylb::dataplane::bpf
