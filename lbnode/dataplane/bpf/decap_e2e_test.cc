// End to end: a "client" namespace sends TUN-mode traffic (IPIP, IP6IP6,
// 4in6, 6in4, GUE v0/v1) over a veth to a "real server" namespace that runs
// the real lb_decap binary; the server's kernel, which has no tunnel
// modules, must deliver the inner UDP datagram to a socket bound to the VIP
// on its loopback, and its reply must go straight back to the client
// address (direct server return).
//
//   client ns                                 server ns
//   lo: 198.51.100.7, 2001:db8:c::7           lo: VIP 203.0.113.10,
//   2001:db8:f::10 dc0: 192.0.2.1/24, 2001:db8::1/64 <-veth-> ds0:
//   192.0.2.2/24, 2001:db8::2/64
//                                             lb_decap --interface=ds0
//
// Needs root: tagged "netns"; deploy/test.sh runs it as root. Not being
// root is a test failure, never a silent pass. Namespaces are removed even
// when a test fails (TestNetns), after lb_decap is stopped (ChildProcess).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/ip_address.h"
#include "common/testing/child_process.h"
#include "common/testing/netns.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/dataplane/bpf/decap_loader.h"
#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane::bpf {

void PrintTo(DecapMode mode, std::ostream* os) { *os << DecapModeName(mode); }

namespace {

using ::anylb::dataplane_testing::PacketBuilder;
using ::anylb::netns_testing::RequireRoot;
using ::anylb::netns_testing::RunCommand;
using ::anylb::netns_testing::ScopedNetns;
using ::anylb::netns_testing::TestNetns;
using ::anylb::process_testing::ChildProcess;
using ::anylb::status_testing::IsOk;
using ::testing::HasSubstr;

constexpr char kLbDecap[] = "lbnode/dataplane/bpf/lb_decap";
constexpr uint16_t kClientPort = 5000;
constexpr uint16_t kServicePort = 7007;
constexpr uint16_t kGuePort = 6080;
constexpr int kTimeoutMs = 2000;
constexpr absl::Duration kTimeout = absl::Milliseconds(kTimeoutMs);

struct Side {
  const char* director;  // Client namespace's veth address (outer source).
  const char* server;    // Server's veth address (outer destination).
  const char* client;    // Client address (inner source), client's lo.
  const char* vip;       // VIP (inner destination), server's lo.
};
constexpr Side kV4 = {"192.0.2.1", "192.0.2.2", "198.51.100.7", "203.0.113.10"};
constexpr Side kV6 = {"2001:db8::1", "2001:db8::2", "2001:db8:c::7",
                      "2001:db8:f::10"};

// Fd closes a file descriptor when it goes.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_storage SockAddr(const char* text, uint16_t port) {
  sockaddr_storage storage = {};
  IpAddress address = *IpAddress::Parse(text);
  if (address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address.bytes().data(), 4);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, address.bytes().data(), 16);
  }
  return storage;
}

socklen_t SockLen(const sockaddr_storage& address) {
  return address.ss_family == AF_INET ? sizeof(sockaddr_in)
                                      : sizeof(sockaddr_in6);
}

std::string SockAddrText(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  uint16_t port;
  if (address.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    port = ntohs(sin->sin_port);
  } else {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    port = ntohs(sin6->sin6_port);
  }
  return absl::StrCat(text, ":", port);
}

// BoundUdp returns a UDP socket bound to text:port.
absl::StatusOr<Fd> BoundUdp(const char* text, uint16_t port) {
  sockaddr_storage address = SockAddr(text, port);
  Fd fd(socket(address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, "socket");
  if (address.ss_family == AF_INET6) {
    int one = 1;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), SockLen(address)) !=
      0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind ", text));
  }
  return fd;
}

// Received is one datagram and its sender.
struct Received {
  std::string payload;
  std::string from;
};

// ReceiveOne waits up to `timeout_ms` for a datagram on `fd`.
absl::StatusOr<Received> ReceiveOne(const Fd& fd, int timeout_ms) {
  pollfd p = {fd.get(), POLLIN, 0};
  int ready = poll(&p, 1, timeout_ms);
  if (ready < 0) return absl::ErrnoToStatus(errno, "poll");
  if (ready == 0) return absl::DeadlineExceededError("nothing received");
  char buffer[2048];
  sockaddr_storage from = {};
  socklen_t from_len = sizeof(from);
  ssize_t n = recvfrom(fd.get(), buffer, sizeof(buffer), 0,
                       reinterpret_cast<sockaddr*>(&from), &from_len);
  if (n < 0) return absl::ErrnoToStatus(errno, "recvfrom");
  return Received{std::string(buffer, static_cast<size_t>(n)),
                  SockAddrText(from)};
}

// Encapsulation is how the client wraps its datagram.
enum class Encap { kIp, kGueV1, kGueV0 };

struct Flow {
  std::string description;
  Encap encap;
  bool outer_v6;
  bool inner_v6;
  anylb_decap_counter counter;  // The decap counter it must raise.
};

// SendEncapsulated sends `payload` as `flow` from the calling thread's
// namespace. The kernel writes the outer IP header (raw sockets with
// protocol 4 or 41, or UDP to the GUE port); we write everything inside it.
absl::Status SendEncapsulated(const Flow& flow, const std::string& payload) {
  const Side& outer = flow.outer_v6 ? kV6 : kV4;
  const Side& inner = flow.inner_v6 ? kV6 : kV4;
  PacketBuilder builder;
  flow.inner_v6 ? builder.Ipv6(inner.client, inner.vip)
                : builder.Ipv4(inner.client, inner.vip);
  std::vector<uint8_t> packet =
      builder.Udp(kClientPort, kServicePort).Payload(payload).Build();
  int family = flow.outer_v6 ? AF_INET6 : AF_INET;
  int type = SOCK_RAW;
  int protocol = flow.inner_v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
  uint16_t port = 0;
  if (flow.encap != Encap::kIp) {
    type = SOCK_DGRAM;
    protocol = 0;
    port = kGuePort;
    if (flow.encap == Encap::kGueV0) {
      // Variant 0, C=0, Hlen=0, Proto/ctype = inner protocol, no flags.
      const uint8_t header[4] = {
          0, static_cast<uint8_t>(flow.inner_v6 ? 41 : 4), 0, 0};
      packet.insert(packet.begin(), header, header + 4);
    }
  }
  Fd fd(socket(family, type | SOCK_CLOEXEC, protocol));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_storage to = SockAddr(outer.server, port);
  if (sendto(fd.get(), packet.data(), packet.size(), 0,
             reinterpret_cast<sockaddr*>(&to), SockLen(to)) < 0) {
    return absl::ErrnoToStatus(errno, "sendto");
  }
  return absl::OkStatus();
}

// StartLbDecap runs lb_decap with `args` inside `netns`, its output
// collected. Destroying the process stops it (SIGTERM, then SIGKILL).
absl::StatusOr<std::unique_ptr<ChildProcess>> StartLbDecap(
    const TestNetns& netns, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      "/usr/bin/env", "PATH=/usr/sbin:/sbin:/usr/bin:/bin",
      "ip",           "netns",
      "exec",         netns.name(),
      kLbDecap};
  argv.insert(argv.end(), args.begin(), args.end());
  return ChildProcess::Start(argv);
}

// CounterValue finds the last "name value" line in lb_decap's output.
std::optional<uint64_t> CounterValue(const std::string& output,
                                     std::string_view name) {
  std::string key = std::string(name) + " ";
  size_t at = output.rfind("\n" + key);
  if (at == std::string::npos) return std::nullopt;
  return std::stoull(output.substr(at + 1 + key.size()));
}

class DecapEndToEndTest : public ::testing::TestWithParam<DecapMode> {
 protected:
  void SetUp() override {
    ASSERT_THAT(RequireRoot("the decap end-to-end tests"), IsOk());
    ASSERT_OK_AND_ASSIGN(client_, TestNetns::Create("decap-cli"));
    ASSERT_OK_AND_ASSIGN(server_, TestNetns::Create("decap-srv"));
    ASSERT_THAT(RunCommand("ip -n " + client_->name() +
                           " link add dc0 type veth peer name ds0 netns " +
                           server_->name()),
                IsOk());
    ASSERT_THAT(client_->Run("ip addr add 192.0.2.1/24 dev dc0 && "
                             "ip addr add 2001:db8::1/64 dev dc0 nodad && "
                             "ip link set dc0 up && "
                             "ip addr add 198.51.100.7/32 dev lo && "
                             "ip addr add 2001:db8:c::7/128 dev lo && "
                             "ip route add 203.0.113.0/24 via 192.0.2.2 && "
                             "ip route add 2001:db8:f::/64 via 2001:db8::2"),
                IsOk());
    // The real server as README.md sets it up: VIPs on lo, ARP kept off
    // them, loose reverse-path filtering.
    ASSERT_THAT(server_->Run("ip addr add 192.0.2.2/24 dev ds0 && "
                             "ip addr add 2001:db8::2/64 dev ds0 nodad && "
                             "ip link set ds0 up && "
                             "ip addr add 203.0.113.10/32 dev lo && "
                             "ip addr add 2001:db8:f::10/128 dev lo && "
                             "ip route add 198.51.100.0/24 via 192.0.2.1 && "
                             "ip route add 2001:db8:c::/64 via 2001:db8::1 && "
                             "sysctl -qw net.ipv4.conf.all.arp_ignore=1 "
                             "net.ipv4.conf.all.arp_announce=2 "
                             "net.ipv4.conf.all.rp_filter=2 "
                             "net.ipv4.conf.ds0.rp_filter=2"),
                IsOk());
  }

  void TearDown() override {
    // lb_decap keeps the server namespace alive: stop it first.
    decap_.reset();
    server_.reset();
    client_.reset();
  }

  // OpenSockets makes the service sockets on the VIPs in the server
  // namespace and the client's reply sockets in the client namespace.
  void OpenSockets() {
    {
      ASSERT_OK_AND_ASSIGN(auto inside, ScopedNetns::Enter(*server_));
      ASSERT_OK_AND_ASSIGN(service_v4_, BoundUdp(kV4.vip, kServicePort));
      ASSERT_OK_AND_ASSIGN(service_v6_, BoundUdp(kV6.vip, kServicePort));
    }
    ASSERT_OK_AND_ASSIGN(auto inside, ScopedNetns::Enter(*client_));
    ASSERT_OK_AND_ASSIGN(client_v4_, BoundUdp(kV4.client, kClientPort));
    ASSERT_OK_AND_ASSIGN(client_v6_, BoundUdp(kV6.client, kClientPort));
  }

  // SendFromClient sends one encapsulated datagram from the client side.
  absl::Status SendFromClient(const Flow& flow, const std::string& payload) {
    absl::StatusOr<std::unique_ptr<ScopedNetns>> inside =
        ScopedNetns::Enter(*client_);
    if (!inside.ok()) return inside.status();
    return SendEncapsulated(flow, payload);
  }

  std::unique_ptr<TestNetns> client_;
  std::unique_ptr<TestNetns> server_;
  std::unique_ptr<ChildProcess> decap_;
  Fd service_v4_, service_v6_, client_v4_, client_v6_;
};

const std::vector<Flow>& Flows() {
  static const auto* flows = new std::vector<Flow>{
      {"IPIP", Encap::kIp, false, false, ANYLB_DECAP_CNT_DECAP_IPIP},
      {"IP6IP6", Encap::kIp, true, true, ANYLB_DECAP_CNT_DECAP_IP6IP6},
      {"4in6", Encap::kIp, true, false, ANYLB_DECAP_CNT_DECAP_IPIP},
      {"6in4", Encap::kIp, false, true, ANYLB_DECAP_CNT_DECAP_IP6IP6},
      {"GUE v1 over IPv4", Encap::kGueV1, false, false,
       ANYLB_DECAP_CNT_DECAP_GUE_V1},
      {"GUE v1 over IPv6", Encap::kGueV1, true, true,
       ANYLB_DECAP_CNT_DECAP_GUE_V1},
      {"GUE v1, IPv6 inside IPv4", Encap::kGueV1, false, true,
       ANYLB_DECAP_CNT_DECAP_GUE_V1},
      {"GUE v0 over IPv4", Encap::kGueV0, false, false,
       ANYLB_DECAP_CNT_DECAP_GUE_V0},
      {"GUE v0, IPv4 inside IPv6", Encap::kGueV0, true, false,
       ANYLB_DECAP_CNT_DECAP_GUE_V0},
  };
  return *flows;
}

TEST_P(DecapEndToEndTest, TheServerAnswersTheClientDirectly) {
  OpenSockets();
  if (HasFatalFailure()) return;
  ASSERT_OK_AND_ASSIGN(
      decap_, StartLbDecap(*server_,
                           {"--interface=ds0",
                            "--mode=" + std::string(DecapModeName(GetParam())),
                            "--local=192.0.2.2", "--local", "2001:db8::2",
                            "--gue_port=6080"}));
  ASSERT_TRUE(decap_->ReadUntil("decapsulating on ds0", kTimeout))
      << "lb_decap did not start:\n"
      << decap_->output();

  std::map<anylb_decap_counter, uint64_t> sent;
  int n = 0;
  for (const Flow& flow : Flows()) {
    SCOPED_TRACE(flow.description);
    const Side& inner = flow.inner_v6 ? kV6 : kV4;
    const Fd& service = flow.inner_v6 ? service_v6_ : service_v4_;
    const Fd& client = flow.inner_v6 ? client_v6_ : client_v4_;
    const std::string ping = absl::StrCat("ping ", n);
    const std::string pong = absl::StrCat("pong ", n++);

    ASSERT_THAT(SendFromClient(flow, ping), IsOk());
    ++sent[flow.counter];
    // The inner datagram reaches the VIP socket, from the client address.
    ASSERT_OK_AND_ASSIGN(Received request, ReceiveOne(service, kTimeoutMs));
    EXPECT_EQ(request.payload, ping);
    ASSERT_EQ(request.from, absl::StrCat(inner.client, ":", kClientPort));

    // The reply goes from the VIP straight to the client, unencapsulated.
    sockaddr_storage to = SockAddr(inner.client, kClientPort);
    ASSERT_GT(sendto(service.get(), pong.data(), pong.size(), 0,
                     reinterpret_cast<sockaddr*>(&to), SockLen(to)),
              0);
    ASSERT_OK_AND_ASSIGN(Received reply, ReceiveOne(client, kTimeoutMs));
    EXPECT_EQ(reply.payload, pong);
    EXPECT_EQ(reply.from, absl::StrCat(inner.vip, ":", kServicePort));
  }

  // SIGUSR1 prints the counters while running.
  decap_->Signal(SIGUSR1);
  EXPECT_TRUE(decap_->ReadUntil("drop_adjust_failed", kTimeout))
      << "no counters on SIGUSR1:\n"
      << decap_->output();
  EXPECT_EQ(decap_->Stop(absl::Seconds(10)), 0) << decap_->output();
  EXPECT_THAT(decap_->output(), HasSubstr("detached from ds0"));
  for (const auto& [counter, count] : sent) {
    EXPECT_EQ(CounterValue(decap_->output(), DecapCounters::Name(counter)),
              count)
        << DecapCounters::Name(counter) << " in:\n"
        << decap_->output();
  }
  EXPECT_EQ(CounterValue(decap_->output(), "drop_adjust_failed"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecapEndToEndTest,
                         ::testing::Values(DecapMode::kXdpNative,
                                           DecapMode::kXdpGeneric,
                                           DecapMode::kTc),
                         [](const ::testing::TestParamInfo<DecapMode>& info) {
                           std::string name(DecapModeName(info.param));
                           return name == "xdp-generic" ? "xdp_generic" : name;
                         });

// The control experiment: without lb_decap the server's kernel cannot
// decapsulate (no ipip/fou modules), so nothing reaches the VIP socket.
// Were this to fail, the test above would prove nothing about lb_decap.
TEST_F(DecapEndToEndTest, WithoutDecapNothingReachesTheVip) {
  OpenSockets();
  if (HasFatalFailure()) return;
  for (const Flow& flow : Flows()) {
    SCOPED_TRACE(flow.description);
    ASSERT_THAT(SendFromClient(flow, "unanswered"), IsOk());
    const Fd& service = flow.inner_v6 ? service_v6_ : service_v4_;
    EXPECT_THAT(
        ReceiveOne(service, 200).status(),
        ::anylb::status_testing::StatusIs(absl::StatusCode::kDeadlineExceeded));
  }
}

}  // namespace
}  // namespace anylb::dataplane::bpf
