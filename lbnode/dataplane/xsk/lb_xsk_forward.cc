// lb_xsk_forward: a DR director from the command line: loads the steering
// program on an interface, runs a Dataplane (one worker per RX queue) with
// DR services given as flags, prints counters, and on SIGTERM/SIGINT tears
// down cleanly: sockets out of xsks_map, workers drained and joined,
// sockets closed, program detached. For the lab, benchmarks, and the
// teardown test; the daemon (lbnode/main) does the same with its config.
//
//   lb_xsk_forward --interface=eth0
//       --dr=tcp/203.0.113.10/80=192.0.2.21@02:00:00:00:00:21+192.0.2.22@...
//
// Threading: signals are blocked before any worker starts (workers inherit
// the mask) and taken synchronously with sigwait() on the main thread,
// which alone calls Stop(). SIGUSR1 prints the counters.

#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"
#include "lbnode/dataplane/xsk/dataplane.h"
#include "lbnode/dataplane/xsk/errno_status.h"

ABSL_FLAG(std::string, interface, "", "Interface to serve (required).");
ABSL_FLAG(std::vector<std::string>, queues, {},
          "RX queues, comma-separated (default: all).");
ABSL_FLAG(std::string, tx_interface, "",
          "Transmit on this interface instead (shared UMEM).");
ABSL_FLAG(std::string, mode, "auto", "AF_XDP mode: auto, copy, zero-copy.");
ABSL_FLAG(std::string, steer_mode, "native", "XDP attach: native, generic.");
ABSL_FLAG(bool, busy_poll, false, "Busy-poll (a core per worker).");
ABSL_FLAG(uint32_t, batch, 64, "RX batch size (1..256).");
ABSL_FLAG(uint32_t, frames, 4096, "UMEM frames per queue.");
ABSL_FLAG(std::vector<std::string>, dr, {},
          "DR services: proto/vip/port=backend_ip@backend_mac[+...], "
          "comma-separated.");
ABSL_FLAG(int32_t, stats_every_s, 0, "Print counters every N s (0: never).");

namespace anylb::dataplane::xsk {
namespace {

// NoNeighbors: DR services carry their backends' MACs; nothing to resolve.
class NoNeighbors : public NextHopResolver {
 public:
  bool Resolve(const IpAddress& /*dst*/, Mac* /*mac*/) override {
    return false;
  }
};

absl::StatusOr<Mac> ParseMacText(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  Mac mac{};
  if (parts.size() != 6) {
    return absl::InvalidArgumentError(absl::StrCat("bad MAC \"", text, "\""));
  }
  for (size_t i = 0; i < 6; ++i) {
    uint32_t byte = 0;
    if (parts[i].size() != 2 || !absl::SimpleHexAtoi(parts[i], &byte)) {
      return absl::InvalidArgumentError(absl::StrCat("bad MAC \"", text, "\""));
    }
    mac[i] = static_cast<uint8_t>(byte);
  }
  return mac;
}

absl::StatusOr<Mac> InterfaceMac(const std::string& interface) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  ifreq request = {};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  int result = ioctl(fd, SIOCGIFHWADDR, &request);
  int error = errno;
  close(fd);
  if (result != 0) {
    return ErrnoStatus(error,
                       absl::StrCat("reading the MAC of \"", interface, "\""));
  }
  Mac mac;
  std::memcpy(mac.data(), request.ifr_hwaddr.sa_data, 6);
  return mac;
}

// ParseDr parses "tcp/203.0.113.10/80=192.0.2.21@02:..:21+...".
absl::StatusOr<ServiceConfig> ParseDr(const std::string& text) {
  std::vector<std::string> halves = absl::StrSplit(text, '=');
  std::vector<std::string> head =
      halves.empty() ? std::vector<std::string>{}
                     : std::vector<std::string>(absl::StrSplit(halves[0], '/'));
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dr=\"", text,
        "\": expected proto/vip/port=backend_ip@backend_mac[+...]"));
  };
  if (halves.size() != 2 || head.size() != 3) return bad();
  ServiceConfig service;
  service.mode = ForwardingMode::kDr;
  if (head[0] == "tcp") {
    service.protocol = IPPROTO_TCP;
  } else if (head[0] == "udp") {
    service.protocol = IPPROTO_UDP;
  } else {
    return bad();
  }
  ASSIGN_OR_RETURN(service.vip, IpAddress::Parse(head[1]));
  uint32_t port = 0;
  if (!absl::SimpleAtoi(head[2], &port) || port > 65535) return bad();
  service.port = static_cast<uint16_t>(port);
  std::vector<std::string> backends = absl::StrSplit(halves[1], '+');
  for (const std::string& backend : backends) {
    std::vector<std::string> parts = absl::StrSplit(backend, '@');
    if (parts.size() != 2) return bad();
    BackendConfig config;
    ASSIGN_OR_RETURN(IpAddress address, IpAddress::Parse(parts[0]));
    config.endpoint = Endpoint(address, service.port);
    ASSIGN_OR_RETURN(config.mac, ParseMacText(parts[1]));
    service.backends.push_back(config);
  }
  return service;
}

void PrintStats(const std::vector<WorkerStats>& all) {
  for (const WorkerStats& s : all) {
    const WorkerCounters& c = s.worker;
    std::printf(
        "queue %u rx %lu tx %lu dropped %lu pass_unavailable %lu "
        "tx_ring_full %lu parked %lu neighbor_wait_timeout %lu "
        "neighbor_wait_overflow %lu swaps %lu kernel_rx_dropped %lu "
        "frames_unaccounted %ld\n",
        s.queue, c.rx_packets, c.tx_packets, c.dropped, c.pass_unavailable,
        c.tx_ring_full, c.parked, c.neighbor_wait_timeout,
        c.neighbor_wait_overflow, c.snapshot_swaps, s.kernel.rx_dropped,
        s.frames.unaccounted());
  }
  std::fflush(stdout);
}

absl::Status Run() {
  const std::string interface = absl::GetFlag(FLAGS_interface);
  if (interface.empty()) {
    return absl::InvalidArgumentError("--interface is required");
  }
  DataplaneOptions options;
  options.interface = interface;
  for (const std::string& q : absl::GetFlag(FLAGS_queues)) {
    uint32_t queue = 0;
    if (!absl::SimpleAtoi(q, &queue)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad --queues \"", q, "\""));
    }
    options.queues.push_back(queue);
  }
  options.tx_interface = absl::GetFlag(FLAGS_tx_interface);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "auto") {
    options.mode = XskMode::kAuto;
  } else if (mode == "copy") {
    options.mode = XskMode::kCopy;
  } else if (mode == "zero-copy") {
    options.mode = XskMode::kZeroCopy;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode=", mode, ": use auto, copy or zero-copy"));
  }
  const std::string steer_mode = absl::GetFlag(FLAGS_steer_mode);
  if (steer_mode != "native" && steer_mode != "generic") {
    return absl::InvalidArgumentError(
        absl::StrCat("--steer_mode=", steer_mode, ": use native or generic"));
  }
  options.busy_poll = absl::GetFlag(FLAGS_busy_poll);
  options.worker.batch_size = absl::GetFlag(FLAGS_batch);
  options.umem.frame_count = absl::GetFlag(FLAGS_frames);

  NodeConfig node;
  ASSIGN_OR_RETURN(
      node.mac,
      InterfaceMac(
          options.tx_interface.empty() ? interface : options.tx_interface));
  std::vector<ServiceConfig> services;
  for (const std::string& dr : absl::GetFlag(FLAGS_dr)) {
    ASSIGN_OR_RETURN(ServiceConfig service, ParseDr(dr));
    services.push_back(std::move(service));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const EngineSnapshot> snapshot,
                   EngineSnapshot::Create(node, services));

  ASSIGN_OR_RETURN(std::unique_ptr<bpf::SteerProgram> steer,
                   bpf::SteerProgram::Load());
  for (const ServiceConfig& service : services) {
    RETURN_IF_ERROR(steer->AddVip(service.vip, service.port, service.protocol));
  }

  // Block the signals before any thread starts: workers inherit the mask,
  // and only the main thread takes them (sigwait).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGALRM);
  if (int error = pthread_sigmask(SIG_BLOCK, &signals, nullptr); error != 0) {
    return ErrnoStatus(error, "blocking signals");
  }

  NoNeighbors resolver;
  ASSIGN_OR_RETURN(std::unique_ptr<Dataplane> dataplane,
                   Dataplane::Create(options, steer.get(), [&](uint32_t) {
                     return Engine::Create(snapshot, &resolver);
                   }));
  RETURN_IF_ERROR(steer->Attach(interface, steer_mode == "native"
                                               ? bpf::SteerMode::kXdpNative
                                               : bpf::SteerMode::kXdpGeneric));
  std::printf("ready interface %s mode %s queues %zu busy_poll %d\n",
              interface.c_str(), XskModeName(dataplane->mode()),
              dataplane->worker_count(), dataplane->busy_poll() ? 1 : 0);
  std::fflush(stdout);

  const int every = absl::GetFlag(FLAGS_stats_every_s);
  if (every > 0) alarm(static_cast<unsigned>(every));
  while (true) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGUSR1 || signal == SIGALRM) {
      PrintStats(dataplane->Stats());
      if (signal == SIGALRM) alarm(static_cast<unsigned>(every));
      continue;
    }
    break;
  }
  // Teardown: sockets out of xsks_map, workers drained and joined, sockets
  // closed; then the program detached and unloaded.
  dataplane->Stop();
  PrintStats(dataplane->Stats());
  dataplane.reset();
  steer.reset();
  std::printf("stopped\n");
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace
}  // namespace anylb::dataplane::xsk

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A DR director on one interface through AF_XDP. SIGUSR1 prints the "
      "counters; SIGTERM/SIGINT stop cleanly.");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = anylb::dataplane::xsk::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "lb_xsk_forward: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
