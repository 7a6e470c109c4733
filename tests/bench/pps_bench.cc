// pps_bench: packets per second through a director, on one machine.
//
//   generator ns            director ns                 sink ns
//   eth0 ------------- veth ---- in0     out0 ---- veth ------------- eth0
//   203.0.113.2/24     203.0.113.1/24   198.51.100.1/24    198.51.100.2/24
//
// trafgen (netsniff-ng) in the generator sends 64-byte UDP frames (60 bytes
// + FCS on a wire) to VIP 192.0.2.1:5001 from 256 source ports, addressed to
// the director's in0 MAC. The sink counts what arrives with an XDP program
// (xdp_sink_count: count, drop). One run measures, on the same path:
//
//   xdp-baseline  (a) xdp_fwd_baseline on in0: DR MAC rewrite + devmap
//                 redirect to out0. The ceiling for an XDP forwarder here.
//   nft-dnat      (b) the kernel forwarding with an nftables DNAT rule
//                 (VIP -> sink address): what a user would set up instead.
//   lbnode        (c) --lbnode_cmd, run in the director namespace with the
//                 environment below; not run without it.
//   lbnode-tun    (c') --lbnode_tun_cmd, likewise (lbnode_tun.sh: TUN/IPIP
//                 to the sink, which counts the encapsulated frames).
//
// and prints Mpps delivered per mode and each lbnode mode's ratios to (a)
// and (b).
//
// CPUs: trafgen is pinned to --sender_cpu. The director's work is put on
// --forward_cpu: for XDP modes the veth's NAPI runs as a kernel thread
// (/sys/class/net/in0/threaded) pinned there, for nft-dnat RPS steers in0's
// packets there. The sink's NAPI runs where the director transmits. So every
// mode gets one core for forwarding and one for sending.
//
// Environment of --lbnode_cmd (run with /bin/sh -c in the director ns):
//   LB_IN_IF=in0 LB_OUT_IF=out0 LB_VIP=192.0.2.1 LB_PORT=5001
//   LB_SINK_IP=198.51.100.2 LB_SINK_MAC=<mac> LB_OUT_MAC=<out0 mac>
//   LB_DIRECTOR_IP=198.51.100.1 LB_CPU=<forward_cpu>
//   LB_WORK_DIR=<a temp dir for its files>
// tests/bench/lbnode_dr.sh is such a command (lbnode, DR, one worker).
// It must forward VIP traffic from in0 to the sink (DR: to LB_SINK_MAC; TUN:
// to LB_SINK_IP) within --lbnode_settle_s and run until SIGTERM.
//
// Needs root. Namespaces are removed at exit (also on errors).

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "tests/bench/xdp_bench_structs.h"
#include "tests/bench/xdp_fwd_baseline_embed.h"
#include "tests/bench/xdp_gen_embed.h"
#include "tests/bench/xdp_sink_count_embed.h"
#include "tests/netns/links.h"
#include "tests/netns/netns.h"
#include "tests/netns/nginx_server.h"

ABSL_FLAG(int, duration_s, 5, "measured seconds per mode");
ABSL_FLAG(int, warmup_s, 1, "seconds of traffic before measuring");
ABSL_FLAG(std::string, modes, "xdp-baseline,nft-dnat,lbnode,lbnode-tun",
          "modes to run, comma-separated");
ABSL_FLAG(std::string, lbnode_cmd, "",
          "command that runs lbnode in the director namespace (see the file "
          "comment for its environment); empty: lbnode is not run");
ABSL_FLAG(std::string, lbnode_tun_cmd, "",
          "like --lbnode_cmd, for lbnode in TUN mode (lbnode_tun.sh); empty: "
          "not run");
ABSL_FLAG(int, lbnode_settle_s, 3,
          "seconds to wait after starting --lbnode_cmd before traffic");
ABSL_FLAG(double, sender_mpps, 0,
          "xdp_live only: offered rate in Mpps (0: as fast as it can)");
ABSL_FLAG(int, sender_cpu, 0, "CPU the sender is pinned to");
ABSL_FLAG(std::string, sender, "xdp_live",
          "xdp_live (xdp_gen through BPF_PROG_TEST_RUN live frames), "
          "af_packet (sendmmsg on a packet socket; ~0.4 Mpps here, too slow "
          "to load a director) or trafgen (netsniff-ng; stops on EAGAIN here, "
          "see README.md)");
ABSL_FLAG(bool, keep_files, false,
          "keep the temp dir (trafgen configs, lbnode's config and log) even "
          "when every mode succeeded");
ABSL_FLAG(int, forward_cpu, 1, "CPU the director's forwarding runs on");

namespace anylb::bench {
namespace {

using lab::Netns;

constexpr char kVip[] = "192.0.2.1";
constexpr int kPort = 5001;
constexpr char kGenIp[] = "203.0.113.2";
constexpr char kDirectorInIp[] = "203.0.113.1";
constexpr char kDirectorOutIp[] = "198.51.100.1";
constexpr char kSinkIp[] = "198.51.100.2";

void Progress(const std::string& line) {
  std::printf("  .. %s\n", line.c_str());
  std::fflush(stdout);
}

// BpfObject owns a loaded libbpf object.
struct BpfObject {
  bpf_object* object = nullptr;
  ~BpfObject() {
    if (object != nullptr) bpf_object__close(object);
  }
};

absl::Status Load(std::span<const unsigned char> bytes, const char* name,
                  BpfObject* out) {
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.object_name = name;
  out->object = bpf_object__open_mem(bytes.data(), bytes.size(), &opts);
  if (out->object == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("opening ", name));
  }
  if (int error = bpf_object__load(out->object); error != 0) {
    return absl::ErrnoToStatus(-error,
                               absl::StrCat("loading ", name, " (need root?)"));
  }
  return absl::OkStatus();
}

int ProgramFd(const BpfObject& object, const char* name) {
  bpf_program* program = bpf_object__find_program_by_name(object.object, name);
  return program == nullptr ? -1 : bpf_program__fd(program);
}

int MapFd(const BpfObject& object, const char* name) {
  return bpf_object__find_map_fd_by_name(object.object, name);
}

absl::Status AttachXdp(const Netns& ns, const std::string& dev, int fd) {
  return ns.RunInThread([&]() -> absl::Status {
    int ifindex = static_cast<int>(if_nametoindex(dev.c_str()));
    int error = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, nullptr);
    if (error != 0) {
      return absl::ErrnoToStatus(
          -error,
          absl::StrCat(fd < 0 ? "detaching XDP from \"" : "attaching XDP to \"",
                       dev, "\" in \"", ns.name(), "\""));
    }
    return absl::OkStatus();
  });
}

// PerCpuSum reads the sum of a per-CPU u64 array's element 0.
absl::StatusOr<uint64_t> PerCpuSum(int map_fd) {
  int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  uint32_t key = 0;
  if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0) {
    return absl::ErrnoToStatus(errno, "reading a per-CPU counter");
  }
  uint64_t sum = 0;
  for (uint64_t v : values) sum += v;
  return sum;
}

bool ParseMac(const std::string& text, uint8_t out[6]) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() != 6) return false;
  for (int i = 0; i < 6; ++i) {
    int value;
    if (!absl::SimpleHexAtoi(parts[i], &value) || value < 0 || value > 255) {
      return false;
    }
    out[i] = static_cast<uint8_t>(value);
  }
  return true;
}

std::string MacBytes(const std::string& mac) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(mac, ':')) {
    parts.push_back(absl::StrCat("0x", part));
  }
  return absl::StrJoin(parts, ", ");
}

// NapiThreads returns the pids of kernel threads named "napi/<dev>-*".
std::set<pid_t> NapiThreads(const std::string& dev) {
  std::set<pid_t> pids;
  absl::StatusOr<std::string> out = lab::RunCommand("ps -eo pid=,comm=");
  if (!out.ok()) return pids;
  std::string prefix = absl::StrCat("napi/", dev, "-");
  for (absl::string_view line : absl::StrSplit(*out, '\n')) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int pid;
    if (fields.size() == 2 && absl::StartsWith(fields[1], prefix) &&
        absl::SimpleAtoi(fields[0], &pid)) {
      pids.insert(pid);
    }
  }
  return pids;
}

// Lab holds the three namespaces and the sink's counter.
struct Lab {
  std::unique_ptr<Netns> gen;
  std::unique_ptr<Netns> director;
  std::unique_ptr<Netns> sink;
  std::string director_in_mac;
  std::string director_out_mac;
  std::string sink_mac;
  int out_ifindex = 0;
  BpfObject sink_counter;
  int sink_stats_fd = -1;
  std::string dir;  // temp files (trafgen config, logs)
};

absl::StatusOr<std::unique_ptr<Lab>> BuildLab() {
  auto lab = std::make_unique<Lab>();
  ASSIGN_OR_RETURN(lab->gen, Netns::Create("bgen"));
  ASSIGN_OR_RETURN(lab->director, Netns::Create("bdir"));
  ASSIGN_OR_RETURN(lab->sink, Netns::Create("bsink"));
  ASSIGN_OR_RETURN(lab->dir, lab::TempDirectory("pps_bench"));
  for (const Netns* ns :
       {lab->gen.get(), lab->director.get(), lab->sink.get()}) {
    RETURN_IF_ERROR(lab::QuietHost(*ns));
    RETURN_IF_ERROR(lab::DisableRpFilter(*ns));
  }
  RETURN_IF_ERROR(lab::AddVethPair(*lab->gen, "eth0", *lab->director, "in0"));
  RETURN_IF_ERROR(lab::AddVethPair(*lab->director, "out0", *lab->sink, "eth0"));
  RETURN_IF_ERROR(
      lab::AddAddress(*lab->gen, "eth0", absl::StrCat(kGenIp, "/24")));
  RETURN_IF_ERROR(lab::AddAddress(*lab->director, "in0",
                                  absl::StrCat(kDirectorInIp, "/24")));
  RETURN_IF_ERROR(lab::AddAddress(*lab->director, "out0",
                                  absl::StrCat(kDirectorOutIp, "/24")));
  RETURN_IF_ERROR(
      lab::AddAddress(*lab->sink, "eth0", absl::StrCat(kSinkIp, "/24")));
  RETURN_IF_ERROR(lab::EnableForwarding(*lab->director));
  RETURN_IF_ERROR(
      lab::ReplaceRoute(*lab->gen, "192.0.2.0/24", kDirectorInIp, "eth0"));
  RETURN_IF_ERROR(
      lab::ReplaceRoute(*lab->sink, "203.0.113.0/24", kDirectorOutIp, "eth0"));
  ASSIGN_OR_RETURN(lab->director_in_mac, lab::GetMac(*lab->director, "in0"));
  ASSIGN_OR_RETURN(lab->director_out_mac, lab::GetMac(*lab->director, "out0"));
  ASSIGN_OR_RETURN(lab->sink_mac, lab::GetMac(*lab->sink, "eth0"));
  ASSIGN_OR_RETURN(lab->out_ifindex, lab::GetIfindex(*lab->director, "out0"));
  // A real qdisc on the generator's veth (the default is noqueue): trafgen
  // -q sends through it and the kernel requeues when in0's ring is full.
  RETURN_IF_ERROR(
      lab->gen->Run("tc qdisc replace dev eth0 root pfifo limit 4096")
          .status());
  // No ARP during the run: pinned neighbours both ways.
  RETURN_IF_ERROR(
      lab->director
          ->Run(absl::StrCat("ip neigh replace ", kSinkIp, " lladdr ",
                             lab->sink_mac, " dev out0 nud permanent"))
          .status());
  RETURN_IF_ERROR(
      lab->gen
          ->Run(absl::StrCat("ip neigh replace ", kDirectorInIp, " lladdr ",
                             lab->director_in_mac, " dev eth0 nud permanent"))
          .status());
  RETURN_IF_ERROR(
      Load(bpf::XdpSinkCountObject(), "xdp_sink_count", &lab->sink_counter));
  lab->sink_stats_fd = MapFd(lab->sink_counter, "sink_stats");
  RETURN_IF_ERROR(AttachXdp(*lab->sink, "eth0",
                            ProgramFd(lab->sink_counter, "xdp_sink_count")));
  return lab;
}

// TrafgenConfig: one 60-byte frame (64 with FCS) to kVip:kPort, source port
// 0x3000 + a byte that counts up (256 flows), UDP checksum 0 (none).
std::string TrafgenConfig(const Lab& lab, const std::string& gen_mac, int cpu) {
  return absl::StrFormat(
      "cpu(%d): {\n"
      "  %s,\n"          // destination MAC: director in0
      "  %s,\n"          // source MAC: generator eth0
      "  0x08, 0x00,\n"  // IPv4
      "  0x45, 0x00, c16(46), c16(1), 0x40, 0x00, 64, 17, csumip(14, 33),\n"
      "  203, 0, 113, 2,\n"
      "  192, 0, 2, 1,\n"
      "  0x30, dinc(0, 255), c16(%d), c16(26), c16(0),\n"
      "  fill(0x61, 18)\n"
      "}\n",
      cpu, MacBytes(lab.director_in_mac), MacBytes(gen_mac), kPort);
}

struct Measurement {
  double delivered_mpps = 0;
  double offered_mpps = 0;
  uint64_t delivered = 0;
  double seconds = 0;
};

// Frame returns the 60-byte frame (64 with FCS) the senders send: UDP from
// 203.0.113.2:(0x3000 + flow) to kVip:kPort, UDP checksum 0 (none).
std::vector<uint8_t> Frame(const Lab& lab, const std::string& gen_mac,
                           int flow) {
  std::vector<uint8_t> frame(60, 0x61);
  ParseMac(lab.director_in_mac, frame.data());
  ParseMac(gen_mac, &frame[6]);
  frame[12] = 0x08;
  frame[13] = 0x00;
  uint8_t* ip = &frame[14];
  const uint8_t header[20] = {0x45, 0, 0,   46, 0,   1, 0x40, 0, 64, 17,
                              0,    0, 203, 0,  113, 2, 192,  0, 2,  1};
  std::memcpy(ip, header, sizeof(header));
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
  uint8_t* udp = ip + 20;
  udp[0] = 0x30;
  udp[1] = static_cast<uint8_t>(flow);
  udp[2] = kPort >> 8;
  udp[3] = kPort & 0xff;
  udp[4] = 0;
  udp[5] = 26;
  udp[6] = 0;
  udp[7] = 0;
  return frame;
}

// Sender offers the load from the generator namespace until destroyed.
class Sender {
 public:
  virtual ~Sender() = default;
  // Failure returns why the sender stopped early, or OK while it runs.
  virtual absl::Status Failure() = 0;
  // Sent counts the frames offered so far.
  virtual absl::StatusOr<uint64_t> Sent() = 0;
};

// XdpLiveSender: xdp_gen run by BPF_PROG_TEST_RUN in live-frames mode from a
// thread in the generator namespace pinned to one CPU; frames leave the
// generator's veth by XDP redirect (so in0 must have an XDP program: every
// mode has one). A full in0 ring drops frames: offered counts them anyway.
class XdpLiveSender : public Sender {
 public:
  static absl::StatusOr<std::unique_ptr<Sender>> Start(const Lab& lab,
                                                       int cpu) {
    ASSIGN_OR_RETURN(std::string gen_mac, lab::GetMac(*lab.gen, "eth0"));
    ASSIGN_OR_RETURN(int ifindex, lab::GetIfindex(*lab.gen, "eth0"));
    auto sender = std::unique_ptr<XdpLiveSender>(new XdpLiveSender());
    RETURN_IF_ERROR(Load(bpf::XdpGenObject(), "xdp_gen", &sender->object_));
    sender->frame_ = Frame(lab, gen_mac, 0);
    gen_config config{};
    config.ifindex = static_cast<uint32_t>(ifindex);
    if (sender->frame_.size() < GEN_HEADER_LEN) {
      return absl::InternalError("the template frame is too short");
    }
    std::memcpy(config.header, sender->frame_.data(), GEN_HEADER_LEN);
    uint32_t zero = 0;
    if (bpf_map_update_elem(MapFd(sender->object_, "gen_config"), &zero,
                            &config, 0) != 0) {
      return absl::ErrnoToStatus(errno, "filling gen_config");
    }
    sender->stats_fd_ = MapFd(sender->object_, "gen_stats");
    sender->thread_ =
        std::thread([s = sender.get(), cpu, name = lab.gen->name()] {
          s->Send(name, cpu);
        });
    return std::unique_ptr<Sender>(std::move(sender));
  }

  ~XdpLiveSender() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  absl::Status Failure() override {
    absl::MutexLock lock(&mutex_);
    return failure_;
  }

  absl::StatusOr<uint64_t> Sent() override { return PerCpuSum(stats_fd_); }

 private:
  XdpLiveSender() = default;

  void Send(const std::string& netns, int cpu) {
    absl::Status status = lab::EnterNetns(netns);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (status.ok() && sched_setaffinity(0, sizeof(set), &set) != 0) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("pinning to CPU ", cpu));
    }
    int fd = ProgramFd(object_, "xdp_gen");
    // --sender_mpps > 0: send in 20 ms slots of mpps * 20000 frames (a live
    // frames run has a setup cost; short slots would not reach the rate).
    double mpps = absl::GetFlag(FLAGS_sender_mpps);
    uint32_t per_slot =
        mpps > 0 ? std::max<uint32_t>(1, static_cast<uint32_t>(mpps * 20000))
                 : 1 << 16;
    auto next_slot = std::chrono::steady_clock::now();
    while (status.ok() && !stop_.load(std::memory_order_relaxed)) {
      if (mpps > 0) {
        next_slot += std::chrono::milliseconds(20);
        std::this_thread::sleep_until(next_slot);
      }
      bpf_test_run_opts opts{};
      opts.sz = sizeof(opts);
      opts.data_in = frame_.data();
      opts.data_size_in = static_cast<uint32_t>(frame_.size());
      opts.repeat = per_slot;
      opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
      opts.batch_size = 64;
      if (int error = bpf_prog_test_run_opts(fd, &opts); error != 0) {
        status = absl::ErrnoToStatus(
            -error, "BPF_PROG_TEST_RUN (live frames) of xdp_gen");
      }
    }
    absl::MutexLock lock(&mutex_);
    failure_ = status;
  }

  BpfObject object_;
  int stats_fd_ = -1;
  std::vector<uint8_t> frame_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Mutex mutex_;
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
};

// AfPacketSender: a thread in the generator namespace, pinned to one CPU,
// sending the 256 frames round robin with blocking sendmmsg() on an
// AF_PACKET socket. The socket goes through the veth's qdisc (pfifo, see
// BuildLab), so a full peer ring blocks the sender instead of dropping.
class AfPacketSender : public Sender {
 public:
  static absl::StatusOr<std::unique_ptr<Sender>> Start(const Lab& lab,
                                                       int cpu) {
    ASSIGN_OR_RETURN(std::string gen_mac, lab::GetMac(*lab.gen, "eth0"));
    ASSIGN_OR_RETURN(int ifindex, lab::GetIfindex(*lab.gen, "eth0"));
    auto sender = std::unique_ptr<AfPacketSender>(new AfPacketSender());
    for (int flow = 0; flow < 256; ++flow) {
      sender->frames_.push_back(Frame(lab, gen_mac, flow));
    }
    RETURN_IF_ERROR(lab.gen->RunInThread([&]() -> absl::Status {
      sender->fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      if (sender->fd_ < 0)
        return absl::ErrnoToStatus(errno, "AF_PACKET socket");
      return absl::OkStatus();
    }));
    int bytes = 8 << 20;
    setsockopt(sender->fd_, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes));
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_ifindex = ifindex;
    address.sll_halen = 6;
    std::memcpy(address.sll_addr, sender->frames_[0].data(), 6);
    if (bind(sender->fd_, reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
      return absl::ErrnoToStatus(errno, "binding the AF_PACKET socket to eth0");
    }
    sender->thread_ = std::thread([s = sender.get(), cpu] { s->Send(cpu); });
    return std::unique_ptr<Sender>(std::move(sender));
  }

  ~AfPacketSender() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }

  absl::Status Failure() override {
    absl::MutexLock lock(&mutex_);
    return failure_;
  }

  absl::StatusOr<uint64_t> Sent() override { return sent_.load(); }

 private:
  AfPacketSender() = default;

  void Send(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      absl::MutexLock lock(&mutex_);
      failure_ =
          absl::ErrnoToStatus(errno, absl::StrCat("pinning to CPU ", cpu));
      return;
    }
    constexpr int kBatch = 64;
    iovec iov[kBatch];
    mmsghdr messages[kBatch];
    size_t next = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      for (int i = 0; i < kBatch; ++i) {
        std::vector<uint8_t>& frame = frames_[next++ % frames_.size()];
        iov[i] = {frame.data(), frame.size()};
        messages[i] = {};
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
      }
      int sent = sendmmsg(fd_, messages, kBatch, 0);
      if (sent > 0) sent_ += static_cast<uint64_t>(sent);
      if (sent < 0 && errno != ENOBUFS && errno != EINTR) {
        absl::MutexLock lock(&mutex_);
        failure_ = absl::ErrnoToStatus(errno, "sendmmsg on AF_PACKET");
        return;
      }
    }
  }

  std::vector<std::vector<uint8_t>> frames_;
  std::atomic<uint64_t> sent_{0};
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Mutex mutex_;
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
};

// TrafgenSender: netsniff-ng's trafgen in the generator namespace.
class TrafgenSender : public Sender {
 public:
  static absl::StatusOr<std::unique_ptr<Sender>> Start(const Lab& lab,
                                                       const std::string& mode,
                                                       int cpu) {
    ASSIGN_OR_RETURN(std::string gen_mac, lab::GetMac(*lab.gen, "eth0"));
    std::string config_path = absl::StrCat(lab.dir, "/", mode, ".trafgen");
    {
      std::ofstream out(config_path);
      out << TrafgenConfig(lab, gen_mac, cpu);
    }
    auto sender = std::unique_ptr<TrafgenSender>(new TrafgenSender());
    sender->gen_ = lab.gen.get();
    sender->log_path_ = absl::StrCat(lab.dir, "/", mode, ".trafgen.log");
    // -P 1: one process; -Q: leave IRQ affinities alone; --no-sock-mem:
    // leave the (global) socket memory sysctls alone; -q: through the qdisc.
    ASSIGN_OR_RETURN(
        sender->process_,
        lab.gen->Spawn(
            {"taskset", "-c", absl::StrCat(cpu), "trafgen", "--dev", "eth0",
             "--conf", config_path, "-P", "1", "-Q", "--no-sock-mem", "-q"},
            sender->log_path_));
    return std::unique_ptr<Sender>(std::move(sender));
  }

  ~TrafgenSender() override {
    if (process_ != nullptr) process_->Stop(SIGINT, 3000);
  }

  absl::Status Failure() override {
    if (process_->Running()) return absl::OkStatus();
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return absl::FailedPreconditionError(
        absl::StrCat("trafgen exited early: ", text.str()));
  }

  absl::StatusOr<uint64_t> Sent() override {
    ASSIGN_OR_RETURN(lab::LinkCounters counters,
                     lab::GetLinkCounters(*gen_, "eth0"));
    return counters.tx_packets;
  }

 private:
  TrafgenSender() = default;
  const Netns* gen_ = nullptr;
  std::unique_ptr<lab::Process> process_;
  std::string log_path_;
};

// RunTraffic starts the sender, waits the warm-up, measures the sink's
// counter and the sender's count over --duration_s and stops it.
absl::StatusOr<Measurement> RunTraffic(const Lab& lab,
                                       const std::string& mode) {
  int sender_cpu = absl::GetFlag(FLAGS_sender_cpu);
  std::string kind = absl::GetFlag(FLAGS_sender);
  std::unique_ptr<Sender> sender;
  if (kind == "trafgen") {
    ASSIGN_OR_RETURN(sender, TrafgenSender::Start(lab, mode, sender_cpu));
  } else if (kind == "af_packet") {
    ASSIGN_OR_RETURN(sender, AfPacketSender::Start(lab, sender_cpu));
  } else {
    ASSIGN_OR_RETURN(sender, XdpLiveSender::Start(lab, sender_cpu));
  }
  std::this_thread::sleep_for(
      std::chrono::seconds(absl::GetFlag(FLAGS_warmup_s)));
  RETURN_IF_ERROR(sender->Failure());
  ASSIGN_OR_RETURN(uint64_t sent_before, sender->Sent());
  ASSIGN_OR_RETURN(uint64_t before, PerCpuSum(lab.sink_stats_fd));
  auto start = std::chrono::steady_clock::now();
  int duration = absl::GetFlag(FLAGS_duration_s);
  for (int s = 0; s < duration; ++s) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ASSIGN_OR_RETURN(uint64_t now, PerCpuSum(lab.sink_stats_fd));
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    Progress(absl::StrFormat("%s: %.1f s, %.3f Mpps delivered so far", mode,
                             elapsed, (now - before) / elapsed / 1e6));
  }
  ASSIGN_OR_RETURN(uint64_t after, PerCpuSum(lab.sink_stats_fd));
  auto end = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(uint64_t sent_after, sender->Sent());
  absl::Status failure = sender->Failure();
  sender.reset();
  RETURN_IF_ERROR(failure);
  Measurement m;
  m.seconds = std::chrono::duration<double>(end - start).count();
  m.delivered = after - before;
  m.delivered_mpps = m.delivered / m.seconds / 1e6;
  m.offered_mpps = (sent_after - sent_before) / m.seconds / 1e6;
  return m;
}

// PinNapi makes in0's NAPI a kernel thread and pins it to --forward_cpu.
absl::Status PinNapi(const Lab& lab) {
  std::set<pid_t> before = NapiThreads("in0");
  RETURN_IF_ERROR(
      lab.director->Run("echo 1 > /sys/class/net/in0/threaded").status());
  std::set<pid_t> after = NapiThreads("in0");
  int pinned = 0;
  for (pid_t pid : after) {
    if (before.contains(pid)) continue;
    RETURN_IF_ERROR(
        lab::RunCommand(absl::StrCat("taskset -p -c ",
                                     absl::GetFlag(FLAGS_forward_cpu), " ", pid,
                                     " >/dev/null"))
            .status());
    ++pinned;
  }
  if (pinned == 0) {
    return absl::FailedPreconditionError(
        "no new napi/in0-* kernel thread after enabling threaded NAPI");
  }
  Progress(absl::StrCat("in0 NAPI: ", pinned,
                        " kernel thread(s) pinned to CPU ",
                        absl::GetFlag(FLAGS_forward_cpu)));
  return absl::OkStatus();
}

absl::Status UnpinNapi(const Lab& lab) {
  return lab.director->Run("echo 0 > /sys/class/net/in0/threaded").status();
}

absl::StatusOr<Measurement> RunXdpBaseline(const Lab& lab) {
  BpfObject fwd;
  RETURN_IF_ERROR(Load(bpf::XdpFwdBaselineObject(), "xdp_fwd_baseline", &fwd));
  fwd_config config{};
  inet_pton(AF_INET, kVip, &config.vip);
  config.port = htons(kPort);
  ParseMac(lab.sink_mac, config.dst_mac);
  ParseMac(lab.director_out_mac, config.src_mac);
  uint32_t zero = 0;
  if (bpf_map_update_elem(MapFd(fwd, "fwd_config"), &zero, &config, 0) != 0) {
    return absl::ErrnoToStatus(errno, "filling fwd_config");
  }
  auto ifindex = static_cast<uint32_t>(lab.out_ifindex);
  // A devmap resolves the ifindex in the updating thread's namespace.
  RETURN_IF_ERROR(lab.director->RunInThread([&]() -> absl::Status {
    if (bpf_map_update_elem(MapFd(fwd, "fwd_ports"), &zero, &ifindex, 0) != 0) {
      return absl::ErrnoToStatus(errno, "filling fwd_ports with out0");
    }
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(
      AttachXdp(*lab.director, "in0", ProgramFd(fwd, "xdp_fwd_baseline")));
  absl::Status pinned = PinNapi(lab);
  if (!pinned.ok()) Progress(absl::StrCat("not pinned: ", pinned.ToString()));
  absl::StatusOr<Measurement> m = RunTraffic(lab, "xdp-baseline");
  absl::StatusOr<uint64_t> forwarded = PerCpuSum(MapFd(fwd, "fwd_stats"));
  if (forwarded.ok()) {
    Progress(absl::StrCat("xdp-baseline: ", *forwarded,
                          " frames redirected in total"));
  }
  (void)UnpinNapi(lab);
  RETURN_IF_ERROR(AttachXdp(*lab.director, "in0", -1));
  return m;
}

absl::StatusOr<Measurement> RunNftDnat(const Lab& lab) {
  std::string rules = absl::StrCat(
      "table ip pps_bench {\n"
      "  chain prerouting {\n"
      "    type nat hook prerouting priority dstnat; policy accept;\n"
      "    ip daddr ",
      kVip, " udp dport ", kPort, " dnat to ", kSinkIp,
      "\n"
      "  }\n"
      "}\n");
  RETURN_IF_ERROR(lab.director
                      ->Run(absl::StrCat("printf %s ", lab::ShellQuote(rules),
                                         " | nft -f -"))
                      .status());
  // in0 gets an XDP_PASS program: the XDP sender's frames arrive only
  // through veth's NAPI path, and NAPI as a pinned thread puts the
  // forwarding on --forward_cpu as in the other modes. Cost: one trivial
  // program run per packet.
  RETURN_IF_ERROR(lab::AttachXdpPass(*lab.director, "in0"));
  absl::Status pinned = PinNapi(lab);
  if (!pinned.ok()) Progress(absl::StrCat("not pinned: ", pinned.ToString()));
  absl::StatusOr<Measurement> m = RunTraffic(lab, "nft-dnat");
  (void)UnpinNapi(lab);
  (void)AttachXdp(*lab.director, "in0", -1);
  (void)lab.director->Run("nft delete table ip pps_bench");
  return m;
}

absl::StatusOr<Measurement> RunLbnode(const Lab& lab, const std::string& cmd,
                                      const std::string& mode) {
  std::string env = absl::StrCat(
      "LB_IN_IF=in0 LB_OUT_IF=out0 LB_VIP=", kVip, " LB_PORT=", kPort,
      " LB_SINK_IP=", kSinkIp, " LB_SINK_MAC=", lab.sink_mac,
      " LB_OUT_MAC=", lab.director_out_mac, " LB_DIRECTOR_IP=", kDirectorOutIp,
      " LB_CPU=", absl::GetFlag(FLAGS_forward_cpu), " LB_WORK_DIR=", lab.dir);
  std::string log_path = absl::StrCat(lab.dir, "/", mode, ".log");
  ASSIGN_OR_RETURN(
      std::unique_ptr<lab::Process> lbnode,
      lab.director->Spawn(
          // exec: the signal that stops it reaches the command, not a
          // shell (lbnode_*.sh exec lbnode in turn).
          {"env", "sh", "-c", absl::StrCat("export ", env, "; exec env ", cmd)},
          log_path));
  Progress(absl::StrCat(mode, ": started `", cmd, "` (log ", log_path, ")"));
  std::this_thread::sleep_for(
      std::chrono::seconds(absl::GetFlag(FLAGS_lbnode_settle_s)));
  if (!lbnode->Running()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--lbnode_cmd exited before traffic; see ", log_path));
  }
  absl::Status pinned = PinNapi(lab);
  if (!pinned.ok()) Progress(absl::StrCat("not pinned: ", pinned.ToString()));
  absl::StatusOr<Measurement> m = RunTraffic(lab, mode);
  (void)UnpinNapi(lab);
  lbnode->Stop(SIGTERM, 5000);
  // The kernel frees the AF_XDP socket after the process is gone; the next
  // lbnode mode binds the same queue (EBUSY meanwhile).
  std::this_thread::sleep_for(std::chrono::seconds(2));
  return m;
}

std::string Machine() {
  utsname u{};
  uname(&u);
  std::string model;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (absl::StartsWith(line, "model name")) {
      model = std::string(absl::StripAsciiWhitespace(
          absl::string_view(line).substr(line.find(':') + 1)));
      break;
    }
  }
  std::string load;
  std::ifstream loadavg("/proc/loadavg");
  std::getline(loadavg, load);
  return absl::StrCat("nproc=", std::thread::hardware_concurrency(),
                      ", kernel=", u.release, ", cpu=", model,
                      ", loadavg at start=", load);
}

int Main(int argc, char** argv) {
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  std::string command;
  for (int i = 0; i < argc; ++i) {
    absl::StrAppend(&command, i == 0 ? "" : " ", lab::ShellQuote(argv[i]));
  }
  std::set<std::string> modes;
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_modes), ',',
                                            absl::SkipWhitespace())) {
    if (m != "xdp-baseline" && m != "nft-dnat" && m != "lbnode" &&
        m != "lbnode-tun") {
      std::fprintf(stderr,
                   "pps_bench: unknown mode \"%s\" in --modes (use "
                   "xdp-baseline, nft-dnat, lbnode, lbnode-tun)\n",
                   static_cast<std::string>(m).c_str());
      return 2;
    }
    modes.insert(static_cast<std::string>(m));
  }
  std::printf(
      "pps_bench: 64-byte UDP, generator ns -> director ns -> sink ns "
      "over veth\n");
  std::printf("machine: %s\n", Machine().c_str());
  std::printf("command: %s\n", command.c_str());
  std::printf(
      "cpus: sender on CPU %d, director forwarding on CPU %d; "
      "%d s per mode after %d s warm-up\n",
      absl::GetFlag(FLAGS_sender_cpu), absl::GetFlag(FLAGS_forward_cpu),
      absl::GetFlag(FLAGS_duration_s), absl::GetFlag(FLAGS_warmup_s));
  std::fflush(stdout);

  absl::StatusOr<std::unique_ptr<Lab>> lab = BuildLab();
  if (!lab.ok()) {
    std::fprintf(stderr, "pps_bench: building the lab: %s\n",
                 lab.status().ToString().c_str());
    return 1;
  }
  std::map<std::string, absl::StatusOr<Measurement>> results;
  const std::map<std::string, std::string> lbnode_cmds = {
      {"lbnode", absl::GetFlag(FLAGS_lbnode_cmd)},
      {"lbnode-tun", absl::GetFlag(FLAGS_lbnode_tun_cmd)},
  };
  auto lbnode_cmd = [&](const std::string& mode) {
    auto it = lbnode_cmds.find(mode);
    return it == lbnode_cmds.end() ? std::string() : it->second;
  };
  const auto kAllModes = {"xdp-baseline", "nft-dnat", "lbnode", "lbnode-tun"};
  for (const char* mode : kAllModes) {
    if (!modes.contains(mode)) continue;
    if (lbnode_cmds.contains(mode) && lbnode_cmd(mode).empty()) continue;
    std::printf("[%s]\n", mode);
    std::fflush(stdout);
    absl::StatusOr<Measurement> m =
        std::string(mode) == "xdp-baseline" ? RunXdpBaseline(**lab)
        : std::string(mode) == "nft-dnat"
            ? RunNftDnat(**lab)
            : RunLbnode(**lab, lbnode_cmd(mode), mode);
    if (m.ok()) {
      Progress(absl::StrFormat("%s: %.3f Mpps delivered (offered %.3f Mpps)",
                               mode, m->delivered_mpps, m->offered_mpps));
    } else {
      Progress(absl::StrCat(mode, ": failed: ", m.status().ToString()));
    }
    results.emplace(mode, std::move(m));
  }

  std::printf("\n%-14s %16s %14s\n", "mode", "delivered Mpps", "offered Mpps");
  bool failed = false;
  auto mpps = [&](const std::string& mode) -> std::optional<double> {
    auto it = results.find(mode);
    if (it == results.end() || !it->second.ok()) return std::nullopt;
    return it->second->delivered_mpps;
  };
  for (const char* mode : kAllModes) {
    auto it = results.find(mode);
    if (it == results.end()) {
      std::printf("%-14s %s\n", mode,
                  lbnode_cmds.contains(mode) && lbnode_cmd(mode).empty()
                      ? "not run (no --lbnode_cmd / --lbnode_tun_cmd)"
                      : "not run (not in --modes)");
    } else if (!it->second.ok()) {
      failed = true;
      std::printf("%-14s failed: %s\n", mode,
                  it->second.status().ToString().c_str());
    } else {
      if (it->second->delivered == 0) failed = true;
      std::printf("%-14s %16.3f %14.3f\n", mode, it->second->delivered_mpps,
                  it->second->offered_mpps);
    }
  }
  std::optional<double> a = mpps("xdp-baseline");
  std::optional<double> b = mpps("nft-dnat");
  std::optional<double> c = mpps("lbnode");
  std::optional<double> t = mpps("lbnode-tun");
  auto ratio = [](std::optional<double> x, std::optional<double> y) {
    return x && y && *y > 0 ? absl::StrFormat("%.2f", *x / *y)
                            : std::string("n/a");
  };
  std::printf(
      "\nratios: lbnode/xdp-baseline = %s (target >= 0.50), "
      "lbnode/nft-dnat = %s (target >= 2.00), "
      "xdp-baseline/nft-dnat = %s\n",
      ratio(c, a).c_str(), ratio(c, b).c_str(), ratio(a, b).c_str());
  std::printf(
      "ratios: lbnode-tun/xdp-baseline = %s (target >= 0.50), "
      "lbnode-tun/nft-dnat = %s (target >= 2.00)\n",
      ratio(t, a).c_str(), ratio(t, b).c_str());
  if (failed || absl::GetFlag(FLAGS_keep_files)) {
    std::printf("files (configs, logs): %s\n", (*lab)->dir.c_str());
  } else {
    std::error_code error;
    std::filesystem::remove_all((*lab)->dir, error);
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace anylb::bench

int main(int argc, char** argv) { return anylb::bench::Main(argc, argv); }
