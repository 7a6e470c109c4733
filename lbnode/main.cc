// lbnode: the anylb director daemon. Flags and wiring only; the work is in
// lbnode/daemon/daemon.h.
//
//   lbnode --interface=eth0 --config=/etc/anylb/lbnode.yaml
//   lbnode --interface=eth0 --controller=ctl.example:7443
//       --controller_ca=ca.crt --node_cert=node.crt --node_key=node.key
//
// Signals: SIGTERM/SIGINT stop (program detached, sockets closed), SIGHUP
// reloads the config file (a bad file is reported and the running config
// kept; in controller mode it only logs that the config comes from the
// controller), SIGUSR1 dumps the counters to stderr.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/log.h"
#include "lbnode/daemon/daemon.h"
#include "lbnode/daemon/signals.h"
#include "routing/announce/frr_config.h"

ABSL_FLAG(std::string, interface, "",
          "Interface that receives VIP traffic (required). The XDP steering "
          "program is attached here and an AF_XDP socket is bound to each of "
          "its RX queues.");
ABSL_FLAG(std::string, queues, "all",
          "RX queues to serve, one worker thread each: \"all\" or a list such "
          "as \"0,1\".");
ABSL_FLAG(std::string, tx_interface, "",
          "Transmit on this interface instead of --interface.");
ABSL_FLAG(std::string, config, "",
          "Config file (YAML mapping 1:1 to lb.v1.ConfigSnapshot; required). "
          "Re-read on SIGHUP.");
ABSL_FLAG(std::string, controller, "",
          "Controller mode: HOST:PORT of anylb-controller, which pushes the "
          "config (exclusive with --config).");
ABSL_FLAG(std::string, controller_ca, "",
          "PEM CA that signed the controller's certificate (empty: system "
          "roots).");
ABSL_FLAG(std::string, node_cert, "",
          "PEM client certificate of this node (mutual TLS; its CN is the "
          "node name).");
ABSL_FLAG(std::string, node_key, "", "PEM key of --node_cert.");
ABSL_FLAG(bool, controller_insecure, false,
          "Plaintext gRPC to the controller (its --insecure mode; trials "
          "only).");
ABSL_FLAG(std::string, node_name, "",
          "This node's name at the controller (default: the host name).");
ABSL_FLAG(std::string, snapshot_cache, "/var/lib/anylb/snapshot.pb",
          "Controller mode: the last applied snapshot, written after each "
          "apply and used at start while the controller is unreachable "
          "(empty: none).");
ABSL_FLAG(absl::Duration, report_interval, absl::Seconds(5),
          "Controller mode: how often the node reports its status.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:9464",
          "Serve Prometheus metrics on http://ADDRESS/metrics; \"\" turns the "
          "endpoint off. [IPv6]:port for IPv6.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(std::string, xdp_mode, "native",
          "Attach the steering program in \"native\" (driver) or "
          "\"generic\" (skb) XDP mode.");
ABSL_FLAG(std::string, xsk_mode, "auto",
          "AF_XDP mode: \"auto\" (zero-copy where the driver can, else "
          "copy), \"copy\" or \"zero-copy\".");
ABSL_FLAG(bool, busy_poll, false,
          "Busy-poll the AF_XDP sockets (one spinning core per worker).");
ABSL_FLAG(uint32_t, batch_size, 64, "Frames per RX batch (1..256).");
ABSL_FLAG(uint32_t, frames_per_queue, 4096,
          "UMEM frames per RX queue (2 KiB each).");
ABSL_FLAG(uint64_t, flow_table_size, 1 << 20,
          "Flows tracked per worker (about 100 bytes each).");
ABSL_FLAG(std::string, tunnel_source_v4, "",
          "Outer source of IPv4 tunnels (TUN mode); default: the interface's "
          "first IPv4 address.");
ABSL_FLAG(std::string, tunnel_source_v6, "",
          "Outer source of IPv6 tunnels; default: the interface's first "
          "global IPv6 address.");
ABSL_FLAG(uint32_t, mtu, 0,
          "IP MTU toward real servers; 0: the interface's MTU.");
ABSL_FLAG(uint32_t, outer_ttl, 64, "TTL / hop limit of tunnel headers.");
ABSL_FLAG(bool, fast_path, true,
          "Forward established DR/TUN flows in the XDP steering program "
          "(XDP_TX) instead of through AF_XDP. On a veth the peer needs an "
          "XDP program or GRO to receive those frames.");
ABSL_FLAG(uint32_t, fast_path_flows, 262144,
          "Entries of the fast-path flow map (LRU), 1..16777216.");
ABSL_FLAG(bool, announce, false,
          "Announce the VIPs through FRR: hold their routes on a TUN device "
          "(--announce_device) that zebra redistributes through lbnode's "
          "route-maps ANYLB-BGP / ANYLB-OSPF, while the dataplane is live "
          "and a service has quorum. Drain with POST /admin/drain on the "
          "metrics address.");
ABSL_FLAG(std::string, announce_device, "anylb0",
          "The TUN device (created, removed when lbnode exits) that holds "
          "the VIP routes.");
ABSL_FLAG(std::string, frr_vtysh, "/usr/bin/vtysh",
          "FRR's vtysh, used to set lbnode's route-maps.");
ABSL_FLAG(std::string, frr_vty_socket, "",
          "Directory of FRR's vty sockets (vtysh --vty_socket); empty: "
          "vtysh's default.");
ABSL_FLAG(std::string, announce_protocols, "bgp,ospf",
          "Routing daemons whose route-map lbnode fills: bgp (bgpd, "
          "ANYLB-BGP), ospf (ospfd), ospf6 (ospf6d; both ANYLB-OSPF).");
ABSL_FLAG(absl::Duration, liveness_timeout, absl::Seconds(1),
          "A worker without progress for this long withdraws every VIP "
          "(with --announce); they come back when it recovers.");
ABSL_FLAG(bool, drain_gshut, false,
          "While drained (POST /admin/drain, node.admin_state), also tag the "
          "VIP routes with the GSHUT community 65535:0 (RFC 8326). Without "
          "it routers keep the director in the multipath set at the drain "
          "bandwidth (1) until the drain period ends; with it FRR routers "
          "take it out at once (local-preference 0, kept as a backup).");
ABSL_FLAG(std::string, fpm_listen, "127.0.0.1:2620",
          "Where zebra's FPM client (-M dplane_fpm_nl, `fpm address`) "
          "connects to stream its FIB; empty: no FPM server. With "
          "--route_source=kernel a busy address only logs a warning.");
ABSL_FLAG(std::string, route_source, "kernel",
          "Egress routes for TUN/NAT/FULLNAT next hops: \"kernel\" (the "
          "kernel's main table; standalone nodes without FRR) or \"fpm\" "
          "(zebra's FIB over FPM; needs --fpm_listen). Neighbours always "
          "come from the kernel.");
ABSL_FLAG(bool, health_checks, true,
          "Check the real servers of every service with a health_check "
          "(lb.v1.HealthCheck: tcp, http(s), grpc, udp, dns, exec). "
          "Standalone, this node's verdicts set the weights; with "
          "--controller they are reported and the controller decides the "
          "fleet's. GET /admin/health on the metrics address shows them.");
ABSL_FLAG(uint32_t, health_max_in_flight, 64,
          "At most this many health probes at once (1..65536); the others "
          "wait their turn (anylb_health_probes_delayed_total).");

namespace anylb::lbnode {
namespace {

absl::StatusOr<std::vector<uint32_t>> ParseQueues(const std::string& text) {
  std::vector<uint32_t> queues;
  if (text == "all" || text.empty()) return queues;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    uint32_t q;
    if (!absl::SimpleAtoi(part, &q) || q > 1023) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--queues=", text, ": \"", std::string(part),
          "\" is not a queue number; use \"all\" or a list such as 0,1"));
    }
    queues.push_back(q);
  }
  return queues;
}

absl::StatusOr<std::optional<IpAddress>> ParseOptionalAddress(
    const std::string& flag, const std::string& text, IpFamily family) {
  if (text.empty()) return std::optional<IpAddress>();
  absl::StatusOr<IpAddress> a = IpAddress::Parse(text);
  if (!a.ok() || a->family() != family) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", text, ": not an IPv",
                     family == IpFamily::kV4 ? "4" : "6", " address"));
  }
  return std::optional<IpAddress>(*a);
}

absl::StatusOr<DaemonOptions> OptionsFromFlags() {
  DaemonOptions o;
  o.interface = absl::GetFlag(FLAGS_interface);
  if (o.interface.empty()) {
    return absl::InvalidArgumentError(
        "--interface is required: the interface that receives VIP traffic");
  }
  o.config_path = absl::GetFlag(FLAGS_config);
  o.controller.target = absl::GetFlag(FLAGS_controller);
  if (o.config_path.empty() && o.controller.target.empty()) {
    return absl::InvalidArgumentError(
        "--config is required (or --controller=HOST:PORT): a YAML file of "
        "services (see deploy/examples/lbnode.yaml)");
  }
  if (!o.config_path.empty() && !o.controller.target.empty()) {
    return absl::InvalidArgumentError(
        "--config and --controller are exclusive: with --controller the "
        "config comes from the controller (and --snapshot_cache at start)");
  }
  if (o.controller.target.empty()) {
    if (!absl::GetFlag(FLAGS_controller_ca).empty() ||
        !absl::GetFlag(FLAGS_node_cert).empty() ||
        !absl::GetFlag(FLAGS_node_key).empty() ||
        absl::GetFlag(FLAGS_controller_insecure)) {
      return absl::InvalidArgumentError(
          "--controller_ca, --node_cert, --node_key and --controller_insecure "
          "need --controller=HOST:PORT");
    }
  } else {
    o.controller.ca_file = absl::GetFlag(FLAGS_controller_ca);
    o.controller.node_cert_file = absl::GetFlag(FLAGS_node_cert);
    o.controller.node_key_file = absl::GetFlag(FLAGS_node_key);
    o.controller.insecure = absl::GetFlag(FLAGS_controller_insecure);
    o.controller.node_name = absl::GetFlag(FLAGS_node_name);
    if (o.controller.node_name.empty()) {
      char host[256] = {};
      if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
        return absl::InvalidArgumentError(
            "--node_name: cannot read the host name; set --node_name");
      }
      o.controller.node_name = host;
    }
    o.controller.version = "lbnode (anylb) 0.1";
    o.controller.report_interval = absl::GetFlag(FLAGS_report_interval);
    if (o.controller.report_interval <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "--report_interval: must be positive (e.g. 5s)");
    }
    o.snapshot_cache = absl::GetFlag(FLAGS_snapshot_cache);
  }
  auto queues = ParseQueues(absl::GetFlag(FLAGS_queues));
  if (!queues.ok()) return queues.status();
  o.queues = *queues;
  o.tx_interface = absl::GetFlag(FLAGS_tx_interface);
  o.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  std::string xdp = absl::GetFlag(FLAGS_xdp_mode);
  if (xdp == "native") {
    o.steer_mode = dataplane::bpf::SteerMode::kXdpNative;
  } else if (xdp == "generic") {
    o.steer_mode = dataplane::bpf::SteerMode::kXdpGeneric;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--xdp_mode=", xdp, ": use \"native\" or \"generic\""));
  }
  std::string xsk = absl::GetFlag(FLAGS_xsk_mode);
  if (xsk == "auto") {
    o.xsk_mode = dataplane::xsk::XskMode::kAuto;
  } else if (xsk == "copy") {
    o.xsk_mode = dataplane::xsk::XskMode::kCopy;
  } else if (xsk == "zero-copy" || xsk == "zerocopy") {
    o.xsk_mode = dataplane::xsk::XskMode::kZeroCopy;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--xsk_mode=", xsk, ": use \"auto\", \"copy\" or \"zero-copy\""));
  }
  o.busy_poll = absl::GetFlag(FLAGS_busy_poll);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  if (o.batch_size < 1 || o.batch_size > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch_size=", o.batch_size, ": must be 1..256"));
  }
  o.frames_per_queue = absl::GetFlag(FLAGS_frames_per_queue);
  o.flow_table_capacity = absl::GetFlag(FLAGS_flow_table_size);
  o.fast_path = absl::GetFlag(FLAGS_fast_path);
  o.fast_path_flows = absl::GetFlag(FLAGS_fast_path_flows);
  auto v4 = ParseOptionalAddress(
      "tunnel_source_v4", absl::GetFlag(FLAGS_tunnel_source_v4), IpFamily::kV4);
  if (!v4.ok()) return v4.status();
  o.tunnel_source_v4 = *v4;
  auto v6 = ParseOptionalAddress(
      "tunnel_source_v6", absl::GetFlag(FLAGS_tunnel_source_v6), IpFamily::kV6);
  if (!v6.ok()) return v6.status();
  o.tunnel_source_v6 = *v6;
  o.mtu = absl::GetFlag(FLAGS_mtu);
  uint32_t ttl = absl::GetFlag(FLAGS_outer_ttl);
  if (ttl < 1 || ttl > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("--outer_ttl=", ttl, ": must be 1..255"));
  }
  o.outer_ttl = static_cast<uint8_t>(ttl);
  o.announce = absl::GetFlag(FLAGS_announce);
  o.announce_device = absl::GetFlag(FLAGS_announce_device);
  if (o.announce_device.empty() || o.announce_device.size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("--announce_device=", o.announce_device,
                     ": an interface name of 1..15 characters"));
  }
  o.frr_vtysh = absl::GetFlag(FLAGS_frr_vtysh);
  o.frr_vty_socket = absl::GetFlag(FLAGS_frr_vty_socket);
  const std::string protocols = absl::GetFlag(FLAGS_announce_protocols);
  auto parsed = routing::announce::ParseProtocols(protocols);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--announce_protocols=", protocols, ": ", parsed.status().message()));
  }
  o.announce_protocols = *parsed;
  o.fpm_listen = absl::GetFlag(FLAGS_fpm_listen);
  if (!o.fpm_listen.empty()) {
    auto fpm = Endpoint::Parse(o.fpm_listen);
    if (!fpm.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--fpm_listen=", o.fpm_listen, ": ", fpm.status().message(),
          " (e.g. 127.0.0.1:2620, or empty for no FPM server)"));
    }
  }
  const std::string route_source = absl::GetFlag(FLAGS_route_source);
  if (route_source == "fpm") {
    o.routes_from_fpm = true;
    if (o.fpm_listen.empty()) {
      return absl::InvalidArgumentError(
          "--route_source=fpm needs --fpm_listen (zebra's `fpm address`)");
    }
  } else if (route_source != "kernel") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--route_source=", route_source, ": use \"kernel\" or \"fpm\""));
  }
  o.health_checks = absl::GetFlag(FLAGS_health_checks);
  const uint32_t in_flight = absl::GetFlag(FLAGS_health_max_in_flight);
  if (in_flight < 1 || in_flight > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--health_max_in_flight=", in_flight, ": must be 1..65536"));
  }
  o.health_max_in_flight = in_flight;
  o.liveness_timeout = absl::GetFlag(FLAGS_liveness_timeout);
  o.drain_gshut = absl::GetFlag(FLAGS_drain_gshut);
  if (o.liveness_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--liveness_timeout=", absl::FormatDuration(o.liveness_timeout),
        ": must be positive (e.g. 1s)"));
  }
  return o;
}

int Run() {
  // Before any thread exists: every thread inherits the blocked signals.
  absl::StatusOr<std::unique_ptr<SignalWatcher>> signals =
      SignalWatcher::Create();
  if (!signals.ok()) {
    LB_LOG(kError) << signals.status();
    return 1;
  }
  absl::StatusOr<DaemonOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    LB_LOG(kError) << options.status().message();
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(*options);
  if (!daemon.ok()) {
    LB_LOG(kError) << "lbnode did not start: " << daemon.status().message();
    return 1;
  }
  LB_LOG(kInfo) << "lbnode running (pid " << getpid() << ")";
  bool stalled = false;
  while (true) {
    int signo = 0;
    DaemonSignal s = (*signals)->Wait(absl::Seconds(1), &signo);
    if (s == DaemonSignal::kStop) {
      LB_LOG(kInfo) << "signal " << signo << ": stopping";
      break;
    }
    if (s == DaemonSignal::kReload && (*daemon)->controller() != nullptr) {
      (*daemon)->Reload().IgnoreError();  // Logs where the config comes from.
    } else if (s == DaemonSignal::kReload) {
      absl::Status st = (*daemon)->Reload();
      if (st.ok()) {
        LB_LOG(kInfo) << "SIGHUP: config reloaded, revision "
                      << (*daemon)->status().revision << ", "
                      << (*daemon)->status().services << " service(s)";
      } else {
        LB_LOG(kError) << "SIGHUP: config rejected, the running one stays: "
                       << st.message();
      }
    } else if (s == DaemonSignal::kDump) {
      std::string text = (*daemon)->DumpText();
      fputs(text.c_str(), stderr);
      fflush(stderr);
    }
    // Liveness: a worker that has not gone round its loop for 2 s is stuck.
    absl::Duration idle =
        absl::Now() - (*daemon)->status().oldest_worker_progress;
    if (idle > absl::Seconds(2) && !stalled) {
      LB_LOG(kError) << "dataplane stalled: a worker made no progress for "
                     << idle;
      stalled = true;
    } else if (idle <= absl::Seconds(2) && stalled) {
      LB_LOG(kInfo) << "dataplane progressing again";
      stalled = false;
    }
  }
  (*daemon)->Stop();
  LB_LOG(kInfo) << "lbnode stopped";
  return 0;
}

}  // namespace
}  // namespace anylb::lbnode

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "lbnode/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] { return std::string("lbnode (anylb) 0.1\n"); };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "the anylb director: AF_XDP load balancing of VIP traffic.\n\n"
      "  lbnode --interface=eth0 --config=/etc/anylb/lbnode.yaml\n\n"
      "SIGHUP reloads the config, SIGUSR1 dumps counters, SIGTERM stops.");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    fprintf(stderr, "lbnode: unexpected argument \"%s\"; see --help\n",
            rest[1]);
    return 2;
  }
  absl::StatusOr<anylb::log::Level> level =
      anylb::log::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) {
    fprintf(stderr, "lbnode: --log_level: %s\n",
            std::string(level.status().message()).c_str());
    return 2;
  }
  anylb::log::SetLogLevel(*level);
  return anylb::lbnode::Run();
}
