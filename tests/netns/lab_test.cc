// The lab on its own, before any lbnode runs in it:
//
// - Netns cleanup: a namespace and the processes in it are gone after its
//   owner, also when a sub-test fails half-way (fatal assertion, exception).
// - The Topology with the director as a plain router and as an nftables
//   DNAT load balancer (numgen inc mod 3 over the three nginx servers):
//   300 HTTP requests over fresh connections all succeed, each server gets
//   at least 20%, each sees the client's address; UDP echo through it; a
//   slow download finishes intact after its server is taken out of the
//   rotation. IPv4 and IPv6.
// - What a veth needs to carry the director's frames: AF_XDP TX (copy mode)
//   works with nothing on the peer; XDP_TX needs an XDP program on the peer.
//
// Needs root: tagged "local", "netns".

#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/ip_address.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/netns/http_client.h"
#include "tests/netns/links.h"
#include "tests/netns/netns.h"
#include "tests/netns/nginx_server.h"
#include "tests/netns/topology.h"
#include "tests/netns/udp_echo_server.h"
#include "tests/netns/xdp_tx_probe_embed.h"

namespace anylb::lab {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kHttpPort = 80;
constexpr int kUdpPort = 5353;

// NamespaceExists returns whether `ip netns list` shows `name`.
bool NamespaceExists(const std::string& name) {
  absl::StatusOr<std::string> list = RunCommand("ip netns list");
  if (!list.ok()) return true;  // Cannot tell: fail the caller's check.
  std::vector<absl::string_view> lines = absl::StrSplit(*list, '\n');
  return std::ranges::any_of(lines, [&](absl::string_view line) {
    return absl::StartsWith(line, name + " ") || line == name;
  });
}

std::vector<std::string> NamespaceNames(const Topology& topology) {
  std::vector<std::string> names = {topology.client().name(),
                                    topology.director().name(),
                                    topology.switch_ns().name()};
  for (int i = 0; i < topology.real_server_count(); ++i) {
    names.push_back(topology.real_server(i).name());
  }
  return names;
}

TEST(Netns, DestructorKillsItsProcessesAndRemovesIt) {
  std::string name;
  pid_t pid = 0;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> ns, Netns::Create("cleanup"));
    name = ns->name();
    EXPECT_THAT(name, HasSubstr(absl::StrCat("-", getpid(), "-")));
    EXPECT_TRUE(NamespaceExists(name));
    // A process the test forgot: the destructor must kill it.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Process> sleeper,
                         ns->Spawn({"sleep", "1000"}, "/dev/null"));
    pid = sleeper->pid();
    ASSERT_OK_AND_ASSIGN(std::vector<pid_t> pids, ns->Pids());
    EXPECT_THAT(pids, ::testing::Contains(pid));
    Process* leaked = sleeper.release();  // Leaked on purpose.
    (void)leaked;
  }
  EXPECT_FALSE(NamespaceExists(name));
  EXPECT_NE(kill(pid, 0), 0) << "process " << pid << " survived its netns";
}

TEST(Netns, ReapRemovesNamespacesOfDeadProcessesOnly) {
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  int status;
  ASSERT_EQ(waitpid(dead, &status, 0), dead);
  std::string stale = absl::StrCat("lb-stale-", dead, "-0");
  std::string live = absl::StrCat("lb-live-", getpid(), "-999");
  ASSERT_THAT(RunCommand("ip netns add " + stale), IsOk());
  ASSERT_THAT(RunCommand("ip netns add " + live), IsOk());
  ReapStaleNamespaces();
  EXPECT_FALSE(NamespaceExists(stale));
  EXPECT_TRUE(NamespaceExists(live));
  EXPECT_THAT(RunCommand("ip netns del " + live), IsOk());
}

TEST(Netns, RunErrorQuotesNamespaceCommandAndStderr) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> ns, Netns::Create("errors"));
  EXPECT_THAT(ns->Run("ls /no/such/path"),
              StatusIs(absl::StatusCode::kInternal,
                       ::testing::AllOf(HasSubstr(ns->name()),
                                        HasSubstr("ls /no/such/path"),
                                        HasSubstr("No such file"))));
  EXPECT_THAT(
      ns->Sysctl("net.ipv4.no_such_key", "1"),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("net.ipv4.no_such_key")));
}

TEST(Netns, RunInThreadActsInsideTheNamespace) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Netns> ns, Netns::Create("thread"));
  ASSERT_THAT(ns->Run("ip link add name probe0 type veth peer name probe1"),
              IsOk());
  unsigned inside = 0;
  ASSERT_THAT(ns->RunInThread([&] {
    inside = if_nametoindex("probe0");
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_NE(inside, 0u);
  EXPECT_EQ(if_nametoindex("probe0"), 0u) << "leaked into the host namespace";
}

// Names of the namespaces of the last FailHalfWay() run.
std::vector<std::string> half_way_names;

void FailHalfWay() {
  ASSERT_OK_AND_ASSIGN(auto topology, Topology::Create({.real_servers = 1}));
  half_way_names = NamespaceNames(*topology);
  ASSERT_TRUE(false) << "forced failure with the topology alive";
}

TEST(Netns, FatalFailureInASubTestStillRemovesTheTopology) {
  EXPECT_FATAL_FAILURE(FailHalfWay(), "forced failure");
  ASSERT_EQ(half_way_names.size(), 4u);
  for (const std::string& name : half_way_names) {
    EXPECT_FALSE(NamespaceExists(name)) << name;
  }
}

TEST(Netns, ExceptionInASubTestStillRemovesTheTopology) {
  std::vector<std::string> names;
  try {
    ASSERT_OK_AND_ASSIGN(auto topology, Topology::Create({.real_servers = 1}));
    names = NamespaceNames(*topology);
    ASSERT_OK_AND_ASSIGN(
        auto server,
        NginxServer::Start(topology->real_server(0), {.name = "doomed"}));
    throw std::runtime_error("forced exception with nginx running");
  } catch (const std::runtime_error&) {
  }
  ASSERT_EQ(names.size(), 4u);
  for (const std::string& name : names) {
    EXPECT_FALSE(NamespaceExists(name)) << name;
  }
}

class LabTopologyTest : public ::testing::TestWithParam<IpFamily> {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(topology_, Topology::Create());
    for (int i = 0; i < topology_->real_server_count(); ++i) {
      std::string name = absl::StrCat("rs", i + 1);
      ASSERT_OK_AND_ASSIGN(auto nginx,
                           NginxServer::Start(topology_->real_server(i),
                                              {.name = name,
                                               .big_file_bytes = 2 << 20,
                                               .big_file_rate = "512k"}));
      nginx_.push_back(std::move(nginx));
      ASSERT_OK_AND_ASSIGN(
          auto echo,
          UdpEchoServer::Start(topology_->real_server(i), name, kUdpPort));
      echo_.push_back(std::move(echo));
    }
  }

  static IpFamily family() { return GetParam(); }
  static IpAddress client() { return Topology::ClientAddress(family()); }
  static IpAddress vip() { return Topology::Vip(0, family()); }

  // SetNftDnat makes the director DNAT the VIP (any port) to the real
  // servers in `servers` (indexes), round robin (numgen inc).
  absl::Status SetNftDnat(const std::vector<int>& servers) const {
    std::vector<std::string> map;
    for (size_t k = 0; k < servers.size(); ++k) {
      map.push_back(absl::StrCat(
          k, " : ",
          Topology::RealServerAddress(servers[k], family()).ToString()));
    }
    const char* ip = family() == IpFamily::kV4 ? "ip" : "ip6";
    // One transaction that keeps the table (and so the NAT hook): deleting
    // it would make the kernel drop the NAT bindings of existing
    // connections.
    std::string rules = absl::StrCat(
        "table inet lab {\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        "  }\n"
        "}\n"
        "flush chain inet lab prerouting\n"
        "add rule inet lab prerouting ",
        ip, " daddr ", vip().ToString(), " dnat ", ip, " to numgen inc mod ",
        servers.size(), " map { ", absl::StrJoin(map, ", "), " }\n");
    return topology_->director()
        .Run(absl::StrCat("printf %s ", ShellQuote(rules), " | nft -f -"))
        .status();
  }

  // ServerWithEstablishedConnection returns the index of the real server
  // holding an established TCP connection on port 80, or -1.
  int ServerWithEstablishedConnection() const {
    for (int i = 0; i < topology_->real_server_count(); ++i) {
      absl::StatusOr<std::string> out = topology_->real_server(i).Run(
          "ss -Htn state established '( sport = :80 )'");
      if (out.ok() && !absl::StripAsciiWhitespace(*out).empty()) return i;
    }
    return -1;
  }

  std::unique_ptr<Topology> topology_;
  std::vector<std::unique_ptr<NginxServer>> nginx_;
  std::vector<std::unique_ptr<UdpEchoServer>> echo_;
};

TEST_P(LabTopologyTest, DirectorRoutesClientToEachRealServer) {
  HttpClient http(topology_->client());
  for (int i = 0; i < topology_->real_server_count(); ++i) {
    IpAddress rs = Topology::RealServerAddress(i, family());
    absl::StatusOr<HttpResponse> response = http.Get(rs, kHttpPort, "/id");
    ASSERT_THAT(response, IsOk()) << topology_->Describe();
    EXPECT_EQ(response->status_code, 200);
    EXPECT_EQ(response->body, absl::StrCat("rs", i + 1));
    EXPECT_EQ(response->Header("X-Server"), absl::StrCat("rs", i + 1));
    ASSERT_OK_AND_ASSIGN(std::vector<AccessLogEntry> log,
                         nginx_[i]->AccessLog());
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].remote, client());
    EXPECT_EQ(log[0].local, rs);
    EXPECT_EQ(log[0].uri, "/id");

    ASSERT_OK_AND_ASSIGN(std::string answer,
                         UdpExchange(topology_->client(), rs, kUdpPort, "hi"));
    EXPECT_EQ(answer, absl::StrCat("rs", i + 1, " ", client().ToString()));
  }
}

TEST_P(LabTopologyTest, NftDnatSpreadsFreshConnectionsOverAllRealServers) {
  ASSERT_THAT(topology_->SetReturnPath(ReturnPath::kViaDirector), IsOk());
  ASSERT_THAT(SetNftDnat({0, 1, 2}), IsOk());
  HttpClient http(topology_->client());
  constexpr int kRequests = 300;
  std::map<std::string, int> by_body;
  for (int n = 0; n < kRequests; ++n) {
    absl::StatusOr<HttpResponse> response = http.Get(vip(), kHttpPort, "/id");
    ASSERT_THAT(response, IsOk()) << "request " << n << "\n"
                                  << topology_->Describe();
    ASSERT_EQ(response->status_code, 200);
    ++by_body[response->body];
  }
  for (int i = 0; i < 3; ++i) {
    std::string name = absl::StrCat("rs", i + 1);
    EXPECT_GE(by_body[name], kRequests / 5) << name;
    // The real server saw the client's own address, on its own address
    // (DNAT rewrote the VIP).
    ASSERT_OK_AND_ASSIGN(std::vector<AccessLogEntry> log,
                         nginx_[i]->AccessLog());
    EXPECT_EQ(static_cast<int>(log.size()), by_body[name]);
    for (const AccessLogEntry& entry : log) {
      EXPECT_EQ(entry.remote, client());
      EXPECT_EQ(entry.local, Topology::RealServerAddress(i, family()));
    }
    EXPECT_THAT(nginx_[i]->RequestsFrom(client()),
                status_testing::IsOkAndHolds(by_body[name]));
  }
}

TEST_P(LabTopologyTest, NftDnatUdpEchoReachesEveryRealServer) {
  ASSERT_THAT(topology_->SetReturnPath(ReturnPath::kViaDirector), IsOk());
  ASSERT_THAT(SetNftDnat({0, 1, 2}), IsOk());
  constexpr int kExchanges = 60;
  std::map<std::string, int> by_server;
  for (int n = 0; n < kExchanges; ++n) {
    // A new socket, so a new source port and a new conntrack entry.
    ASSERT_OK_AND_ASSIGN(std::string answer,
                         UdpExchange(topology_->client(), vip(), kUdpPort,
                                     absl::StrCat("ping ", n)));
    std::vector<std::string> words = absl::StrSplit(answer, ' ');
    ASSERT_EQ(words.size(), 2u) << answer;
    EXPECT_EQ(words[1], client().ToString());
    ++by_server[words[0]];
  }
  for (int i = 0; i < 3; ++i) {
    std::string name = absl::StrCat("rs", i + 1);
    EXPECT_GE(by_server[name], kExchanges / 5) << name;
    EXPECT_EQ(echo_[i]->RequestsByClient()[client()], by_server[name]);
  }
}

TEST_P(LabTopologyTest, SlowDownloadSurvivesTakingItsServerOutOfRotation) {
  ASSERT_THAT(topology_->SetReturnPath(ReturnPath::kViaDirector), IsOk());
  ASSERT_THAT(SetNftDnat({0, 1, 2}), IsOk());
  ASSERT_OK_AND_ASSIGN(
      auto download,
      SlowDownload::Start(topology_->client(), vip(), kHttpPort, "/big"));
  // Wait until the download is under way and find its server.
  int busy = -1;
  for (int tries = 0; tries < 500 && busy < 0; ++tries) {
    if (download->bytes_received() > 0) {
      busy = ServerWithEstablishedConnection();
    }
    if (busy < 0) usleep(10'000);
  }
  ASSERT_GE(busy, 0) << "no real server holds the download";
  // "Weight 0": new connections go to the other two only.
  std::vector<int> others;
  for (int i = 0; i < 3; ++i) {
    if (i != busy) others.push_back(i);
  }
  ASSERT_THAT(SetNftDnat(others), IsOk());
  HttpClient http(topology_->client());
  for (int n = 0; n < 30; ++n) {
    ASSERT_OK_AND_ASSIGN(HttpResponse response,
                         http.Get(vip(), kHttpPort, "/id"));
    EXPECT_NE(response.body, absl::StrCat("rs", busy + 1)) << "request " << n;
  }
  EXPECT_GT(download->bytes_received(), 0u);
  ASSERT_OK_AND_ASSIGN(DownloadResult result, download->Wait());
  EXPECT_EQ(result.status_code, 200);
  EXPECT_EQ(result.server, absl::StrCat("rs", busy + 1));
  EXPECT_TRUE(result.complete);
  EXPECT_EQ(result.body_bytes, nginx_[busy]->big_file_size());
  EXPECT_EQ(result.checksum, nginx_[busy]->big_file_checksum());
}

INSTANTIATE_TEST_SUITE_P(Families, LabTopologyTest,
                         ::testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const auto& info) {
                           return info.param == IpFamily::kV4 ? "IPv4" : "IPv6";
                         });

// A UDP frame from the director's MAC and 198.51.100.1 to rs1's UDP port.
std::vector<uint8_t> UdpFrameToRs1(std::string_view payload) {
  std::vector<uint8_t> frame(14 + 20 + 8 + payload.size(), 0);
  auto mac = [](const std::string& text, uint8_t* out) {
    std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
    for (size_t i = 0; i < 6 && i < parts.size(); ++i) {
      int value = 0;
      (void)absl::SimpleHexAtoi(parts[i], &value);
      out[i] = static_cast<uint8_t>(value);
    }
  };
  mac(Topology::RealServerMac(0), frame.data());
  mac(Topology::DirectorMac(), &frame[6]);
  frame[12] = 0x08;
  uint8_t* ip = &frame[14];
  size_t ip_length = 20 + 8 + payload.size();
  ip[0] = 0x45;
  ip[2] = static_cast<uint8_t>(ip_length >> 8);
  ip[3] = static_cast<uint8_t>(ip_length);
  ip[8] = 64;
  ip[9] = 17;
  IpAddress source = Topology::DirectorAddress(IpFamily::kV4);
  IpAddress dest = Topology::RealServerAddress(0, IpFamily::kV4);
  std::memcpy(ip + 12, source.bytes().data(), 4);
  std::memcpy(ip + 16, dest.bytes().data(), 4);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
  uint8_t* udp = ip + 20;
  udp[0] = 0x30;  // source port 12345
  udp[1] = 0x39;
  udp[2] = static_cast<uint8_t>(kUdpPort >> 8);
  udp[3] = static_cast<uint8_t>(kUdpPort & 0xff);
  udp[4] = static_cast<uint8_t>((8 + payload.size()) >> 8);
  udp[5] = static_cast<uint8_t>(8 + payload.size());
  // UDP checksum 0: none (RFC 768).
  std::memcpy(udp + 8, payload.data(), payload.size());
  return frame;
}

// SendWithAfXdp sends `frame` from the director's eth0 through an AF_XDP
// socket in copy mode (as lbnode does on veth), with no XDP program on eth0.
absl::Status SendWithAfXdp(const Topology& topology,
                           const std::vector<uint8_t>& frame) {
  return topology.director().RunInThread([&]() -> absl::Status {
    constexpr size_t kFrames = 64;
    constexpr size_t kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;
    void* area = mmap(nullptr, kFrames * kFrameSize, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap umem");
    xsk_umem* umem = nullptr;
    xsk_ring_prod fill;
    xsk_ring_cons completion;
    xsk_ring_prod tx;
    xsk_socket* xsk = nullptr;
    absl::Status status;
    int error = xsk_umem__create(&umem, area, kFrames * kFrameSize, &fill,
                                 &completion, nullptr);
    if (error != 0) {
      status = absl::ErrnoToStatus(-error, "xsk_umem__create");
    } else {
      xsk_socket_config config{};
      config.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
      config.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
      config.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
      config.bind_flags = XDP_COPY;
      error = xsk_socket__create(&xsk, Topology::kInterface, 0, umem, nullptr,
                                 &tx, &config);
      if (error != 0) {
        status = absl::ErrnoToStatus(-error, "xsk_socket__create (copy mode)");
      }
    }
    if (status.ok()) {
      std::memcpy(area, frame.data(), frame.size());
      uint32_t index;
      if (xsk_ring_prod__reserve(&tx, 1, &index) != 1) {
        status = absl::InternalError("AF_XDP TX ring full");
      } else {
        xdp_desc* desc = xsk_ring_prod__tx_desc(&tx, index);
        desc->addr = 0;
        desc->len = static_cast<uint32_t>(frame.size());
        xsk_ring_prod__submit(&tx, 1);
        if (sendto(xsk_socket__fd(xsk), nullptr, 0, MSG_DONTWAIT, nullptr, 0) <
                0 &&
            errno != EAGAIN && errno != ENOBUFS && errno != EBUSY) {
          status = absl::ErrnoToStatus(errno, "AF_XDP TX kick (sendto)");
        }
        // Wait for the completion (the kernel copied the frame out).
        uint32_t done = 0;
        for (int tries = 0; tries < 200 && done == 0; ++tries) {
          done = xsk_ring_cons__peek(&completion, 1, &index);
          if (done == 0) usleep(5'000);
        }
        if (status.ok() && done == 0) {
          status = absl::InternalError("AF_XDP TX frame never completed");
        }
      }
    }
    if (xsk != nullptr) xsk_socket__delete(xsk);
    if (umem != nullptr) xsk_umem__delete(umem);
    munmap(area, kFrames * kFrameSize);
    return status;
  });
}

TEST(VethForDirector, AfXdpCopyModeTxNeedsNothingOnThePeer) {
  // No XDP program on p-dir (nor on the director's eth0).
  ASSERT_OK_AND_ASSIGN(auto topology, Topology::Create({.real_servers = 1}));
  ASSERT_OK_AND_ASSIGN(auto echo, UdpEchoServer::Start(topology->real_server(0),
                                                       "rs1", kUdpPort));
  ASSERT_THAT(SendWithAfXdp(*topology, UdpFrameToRs1("via af_xdp")), IsOk());
  for (int tries = 0; tries < 200 && echo->requests() == 0; ++tries) {
    usleep(10'000);
  }
  EXPECT_EQ(echo->RequestsByClient()[Topology::DirectorAddress(IpFamily::kV4)],
            1);
}

// BouncedFrames sends `count` UDP datagrams to port 9 from the client to the
// director, where xdp_tx_probe sends them back out with XDP_TX, and returns
// how many of them reached p-dir (its rx counter).
absl::StatusOr<uint64_t> BouncedFrames(const Topology& topology, int count) {
  std::span<const unsigned char> bytes = bpf::XdpTxProbeObject();
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  bpf_object* object = bpf_object__open_mem(bytes.data(), bytes.size(), &opts);
  if (object == nullptr) return absl::ErrnoToStatus(errno, "open xdp_tx_probe");
  absl::Status status;
  if (int error = bpf_object__load(object); error != 0) {
    status = absl::ErrnoToStatus(-error, "load xdp_tx_probe");
  } else {
    int fd = bpf_program__fd(
        bpf_object__find_program_by_name(object, "xdp_tx_probe"));
    status = topology.director().RunInThread([&]() -> absl::Status {
      int error = bpf_xdp_attach(if_nametoindex(Topology::kInterface), fd,
                                 XDP_FLAGS_DRV_MODE, nullptr);
      return error == 0 ? absl::OkStatus()
                        : absl::ErrnoToStatus(-error, "attach xdp_tx_probe");
    });
  }
  bpf_object__close(object);
  if (!status.ok()) return status;
  // The director cannot answer ARP through the probe only for UDP; still,
  // pin the neighbour so nothing depends on it.
  absl::StatusOr<std::string> neigh =
      topology.client().Run(absl::StrCat("ip neigh replace 203.0.113.1 lladdr ",
                                         Topology::DirectorMac(), " dev eth0"));
  if (!neigh.ok()) return neigh.status();
  absl::StatusOr<LinkCounters> before =
      GetLinkCounters(topology.switch_ns(), Topology::kDirectorPeer);
  if (!before.ok()) return before.status();
  IpAddress director = Topology::DirectorClientSideAddress(IpFamily::kV4);
  for (int n = 0; n < count; ++n) {
    // No answer comes (the frame bounces); only the send matters.
    (void)UdpExchange(topology.client(), director, 9, "bounce",
                      absl::Milliseconds(1));
  }
  usleep(100'000);
  absl::StatusOr<LinkCounters> after =
      GetLinkCounters(topology.switch_ns(), Topology::kDirectorPeer);
  if (!after.ok()) return after.status();
  return after->rx_packets - before->rx_packets;
}

TEST(VethForDirector, XdpTxReachesThePeerOnlyWithAnXdpProgramThere) {
  // p-dir's rx counter also sees the director's own few frames (IPv6 MLD or
  // router solicitations, ARP): allow a handful besides the 20 bounced.
  constexpr int kFrames = 20;
  constexpr uint64_t kStray = 4;
  {
    ASSERT_OK_AND_ASSIGN(auto topology, Topology::Create({.real_servers = 1}));
    ASSERT_OK_AND_ASSIGN(uint64_t arrived, BouncedFrames(*topology, kFrames));
    EXPECT_LE(arrived, kStray) << "XDP_TX frames reached a peer with no XDP";
  }
  {
    ASSERT_OK_AND_ASSIGN(auto topology,
                         Topology::Create({.real_servers = 1,
                                           .xdp_pass_on_director_peer = true}));
    ASSERT_OK_AND_ASSIGN(uint64_t arrived, BouncedFrames(*topology, kFrames));
    EXPECT_GE(arrived, uint64_t{kFrames});
    EXPECT_LE(arrived, kFrames + kStray);
  }
}

}  // namespace
}  // namespace anylb::lab
