// Umem and XskSocket on a veth pair in a test namespace: the modes (copy;
// auto falling back to copy; zero-copy refused with a clear error on veth),
// a second socket on a busy queue, a shared-UMEM TX socket on another
// interface, a frame transmitted and completed, RxQueueCount.
//
// Needs root (namespaces, AF_XDP): tagged "netns". The namespace is removed
// by EnteredNetns, also when a test fails half-way.

#include "lbnode/dataplane/xsk/xsk_socket.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/xsk/rx_queues.h"
#include "lbnode/dataplane/xsk/umem.h"

namespace anylb::dataplane::xsk {
namespace {

using ::anylb::netns_testing::EnteredNetns;
using ::anylb::netns_testing::PacketSocket;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::RunUnprivileged;
using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::AnyOf;
using ::testing::HasSubstr;

XskSocketOptions On(const char* interface, uint32_t queue, XskMode mode) {
  XskSocketOptions options;
  options.interface = interface;
  options.queue = queue;
  options.mode = mode;
  options.rx_ring_size = 256;
  options.tx_ring_size = 256;
  return options;
}

UmemOptions SmallUmem() {
  UmemOptions options;
  options.frame_count = 512;
  options.fill_ring_size = 256;
  options.completion_ring_size = 256;
  return options;
}

// A namespace with veth "xsk0" (2 queues) / "xsk1", the thread inside it.
class XskSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("xsk_socket_test"), IsOk());
    ASSERT_OK_AND_ASSIGN(
        ns_, EnteredNetns::Create(
                 "xsk-sock",
                 "ip link add xsk0 numrxqueues 2 numtxqueues 2 "
                 "type veth peer name xsk1 numrxqueues 1 numtxqueues 1 && "
                 "ip link set xsk0 up && ip link set xsk1 up"));
  }  // Leaves and deletes the namespace when the test ends.
  std::unique_ptr<EnteredNetns> ns_;
};

TEST_F(XskSocketTest, CopyModeBinds) {
  ASSERT_OK_AND_ASSIGN(
      UmemAndSocket port,
      CreateUmemAndSocket(SmallUmem(), On("xsk0", 0, XskMode::kCopy)));
  EXPECT_EQ(port.socket->mode(), XskMode::kCopy);
  EXPECT_GE(port.socket->fd(), 0);
  EXPECT_NE(port.socket->rx(), nullptr);
  EXPECT_NE(port.socket->tx(), nullptr);
  EXPECT_EQ(port.socket->fill(), port.umem->fill());
  EXPECT_EQ(port.umem->free_count(), 512u);
  ASSERT_OK_AND_ASSIGN(XskKernelStats stats, port.socket->KernelStats());
  EXPECT_EQ(stats.rx_dropped, 0u);
}

TEST_F(XskSocketTest, AutoFallsBackToCopyWhereZeroCopyIsRefused) {
  ASSERT_OK_AND_ASSIGN(
      UmemAndSocket port,
      CreateUmemAndSocket(SmallUmem(), On("xsk0", 1, XskMode::kAuto)));
  EXPECT_EQ(port.socket->mode(), XskMode::kCopy);
}

TEST_F(XskSocketTest, ZeroCopyOnVethFailsNamingTheQueue) {
  EXPECT_THAT(
      CreateUmemAndSocket(SmallUmem(), On("xsk0", 0, XskMode::kZeroCopy)),
      StatusIs(AnyOf(absl::StatusCode::kUnimplemented,        // EOPNOTSUPP
                     absl::StatusCode::kFailedPrecondition),  // EBUSY
               HasSubstr("binding an AF_XDP socket (zero-copy) to \"xsk0\" "
                         "queue 0")));
}

TEST_F(XskSocketTest, ASecondUmemOnABusyQueueIsRefused) {
  ASSERT_OK_AND_ASSIGN(
      UmemAndSocket first,
      CreateUmemAndSocket(SmallUmem(), On("xsk0", 0, XskMode::kCopy)));
  EXPECT_THAT(CreateUmemAndSocket(SmallUmem(), On("xsk0", 0, XskMode::kCopy)),
              StatusIs(absl::StatusCode::kFailedPrecondition,  // EBUSY
                       HasSubstr("\"xsk0\" queue 0: Device or resource busy")));
}

TEST_F(XskSocketTest, NoSuchInterfaceIsNotFound) {
  EXPECT_THAT(CreateUmemAndSocket(SmallUmem(), On("nope0", 0, XskMode::kCopy)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope0\"")));
  EXPECT_THAT(RxQueueCount("nope0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope0\"")));
}

TEST_F(XskSocketTest, BadUmemSizesAreRefused) {
  UmemOptions options = SmallUmem();
  options.frame_size = 3000;
  EXPECT_THAT(Umem::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("use 2048 or 4096")));
  options = SmallUmem();
  options.fill_ring_size = 100;
  EXPECT_THAT(
      Umem::Create(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power-of-two")));
}

TEST_F(XskSocketTest, RxQueueCountReadsTheChannels) {
  EXPECT_THAT(RxQueueCount("xsk0"), ::anylb::status_testing::IsOkAndHolds(2u));
  EXPECT_THAT(RxQueueCount("xsk1"), ::anylb::status_testing::IsOkAndHolds(1u));
}

TEST_F(XskSocketTest, SharedUmemSocketOnAnotherInterfaceHasItsOwnRings) {
  ASSERT_OK_AND_ASSIGN(
      UmemAndSocket port,
      CreateUmemAndSocket(SmallUmem(), On("xsk0", 0, XskMode::kCopy)));
  XskSocketOptions tx = On("xsk1", 0, XskMode::kCopy);
  tx.rx_ring_size = 0;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<XskSocket> shared,
                       XskSocket::Create(*port.umem, tx));
  EXPECT_EQ(shared->rx(), nullptr);
  EXPECT_NE(shared->tx(), nullptr);
  EXPECT_NE(shared->fill(), port.umem->fill());
  EXPECT_NE(shared->completion(), port.umem->completion());
  EXPECT_EQ(shared->mode(), XskMode::kCopy);
}

// A frame written into the UMEM and put on the TX ring leaves through the
// veth and its frame comes back on the completion ring.
TEST_F(XskSocketTest, TransmittedFrameArrivesAndCompletes) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PacketSocket> capture,
                       PacketSocket::Open("xsk1"));
  ASSERT_OK_AND_ASSIGN(
      UmemAndSocket port,
      CreateUmemAndSocket(SmallUmem(), On("xsk0", 0, XskMode::kCopy)));
  std::vector<uint8_t> frame(60, 0);
  const uint8_t header[14] = {0x02, 0, 0, 0, 0,    0x01, 0x02,
                              0,    0, 0, 0, 0x02, 0x88, 0xb5};  // Local exp.
  std::memcpy(frame.data(), header, sizeof(header));
  for (size_t i = 14; i < frame.size(); ++i) frame[i] = static_cast<uint8_t>(i);

  uint64_t addr = port.umem->PopFree() + 256;
  std::memcpy(port.umem->Data(addr), frame.data(), frame.size());
  xsk_ring_prod* tx = port.socket->tx();
  uint32_t idx = 0;
  ASSERT_EQ(xsk_ring_prod__reserve(tx, 1, &idx), 1u);
  xdp_desc* desc = xsk_ring_prod__tx_desc(tx, idx);
  desc->addr = addr;
  desc->len = static_cast<uint32_t>(frame.size());
  desc->options = 0;
  xsk_ring_prod__submit(tx, 1);
  ASSERT_TRUE(xsk_ring_prod__needs_wakeup(tx));
  ASSERT_GE(sendto(port.socket->fd(), nullptr, 0, MSG_DONTWAIT, nullptr, 0), 0);

  // Skip the kernel's own IPv6 ND/MLD frames.
  std::optional<std::vector<uint8_t>> got;
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (absl::Now() < deadline) {
    got = capture->Receive(deadline - absl::Now());
    if (got.has_value() && got->size() >= 14 && (*got)[12] == 0x88 &&
        (*got)[13] == 0xb5) {
      break;
    }
    got.reset();
  }
  ASSERT_TRUE(got.has_value()) << "the transmitted frame did not arrive";
  EXPECT_EQ(*got, frame);

  xsk_ring_cons* completion = port.socket->completion();
  uint32_t n = 0;
  for (int i = 0; i < 2000 && n == 0; ++i) {
    n = xsk_ring_cons__peek(completion, 1, &idx);
    if (n == 0) usleep(1000);
  }
  ASSERT_EQ(n, 1u) << "no completion";
  EXPECT_EQ(*xsk_ring_cons__comp_addr(completion, idx), addr);
  xsk_ring_cons__release(completion, 1);
}

// Without privileges the error says what is missing.
TEST(XskPrivileges, WithoutRootTheErrorSaysWhy) {
  ASSERT_THAT(RequireRoot("xsk privilege tests"), IsOk());
  ASSERT_OK_AND_ASSIGN(
      std::string message, RunUnprivileged([] {
        absl::StatusOr<std::unique_ptr<Umem>> umem = Umem::Create(SmallUmem());
        return umem.ok() ? std::string("created") : umem.status().ToString();
      }));
  EXPECT_THAT(message,
              ::testing::AllOf(HasSubstr("PERMISSION_DENIED"),
                               HasSubstr("registering a UMEM of 512 frames"),
                               HasSubstr("(need root?)")));
}

}  // namespace
}  // namespace anylb::dataplane::xsk
