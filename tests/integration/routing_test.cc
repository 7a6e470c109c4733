// Anycast routing end to end with real FRR (issue 6): an upstream router
// namespace and three director namespaces, each director on its own veth to
// the router, every one running the FRR configs of deploy/frr/ exactly as
// shipped (templates filled with this lab's addresses, AS numbers and short
// timers: `timers bgp 1 3`, MRAI 0, BFD 3 x 100 ms, OSPF hello/dead 1/3).
// Checked in the router's KERNEL FIB (`ip route`), which is what forwards
// the VIP traffic.
//
// With `StandInAnnouncer` (the test does what lbnode does: a TUN device
// held by this process carries the VIP routes, route-maps ANYLB-BGP /
// ANYLB-OSPF filled through vtysh), the deploy configs on their own:
//  * BGP: weights 1:2:3 (link-bandwidth) → one route with three next hops
//    weighted 16/33/50, IPv4 and IPv6; a weight changed in place;
//  * weight 0 (no link-bandwidth): skipped under `bgp bestpath bandwidth
//    skip-missing`, plain ECMP for all under FRR's default;
//  * the TUN device closed → the next hop leaves the FIB (< 3 s, printed;
//    depends on MRAI 0, not on keepalive/hold);
//  * BFD: a director's link silenced → out of the FIB in < 1 s (hold 3 s);
//  * OSPF: the VIP from all three directors at equal cost, IPv4 and IPv6.
// With the real `lbnode --announce` on every director (zebra also feeding
// lbnode over FPM):
//  * BGP: node weights 1:2:3 → 16/33/50; POST /admin/drain → GSHUT + drain
//    bandwidth: the router's FRR sets local-preference 0, so the path leaves
//    the FIB at once but stays in BGP until the drain period ends, then is
//    withdrawn; undrain → back at 1:2:3; kill -9 → out of the FIB < 3 s;
//  * OSPF: ECMP; drain → metric 16777214 in the router's LSDB and out of
//    the FIB before the drain period; undrain → back.
//
// Needs root (tags local, netns). Namespaces and daemons are removed when a
// case ends, also when it fails (RAII in tests/netns).

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/itest_util.h"
#include "tests/netns/frr.h"
#include "tests/netns/links.h"
#include "tests/netns/netns.h"

namespace anylb {
namespace {

using ::anylb::itest::ReadFile;
using ::anylb::itest::Runfile;

using ::anylb::lab::FormatNextHops;
using ::anylb::lab::FrrDir;
using ::anylb::lab::FrrInstance;
using ::anylb::lab::FrrOptions;
using ::anylb::lab::KernelNextHop;
using ::anylb::lab::Netns;
using ::anylb::lab::Process;
using ::anylb::lab::ReadFrrTemplate;
using ::anylb::lab::ReadKernelRoute;
using ::anylb::lab::WaitForKernelRoute;
using ::anylb::status_testing::IsOk;

constexpr int kDirectors = 3;
constexpr char kVip4[] = "203.0.113.100/32";
constexpr char kVip6[] = "2001:db8:f::100/128";
constexpr char kTunDevice[] = "anylb0";
// The bound for a dead director's next hop to leave the router's FIB.
constexpr absl::Duration kWithdrawBound = absl::Seconds(3);
// How long a change may take to show (sessions up, first announcement).
constexpr absl::Duration kConverge = absl::Seconds(30);

std::string Template(const std::string& name) {
  return Runfile("deploy/frr/" + name);
}

// Address plan: director i (0-based) on link i, a /29 and a /64: the
// router .1, the director .2, a (silent) DR real server .3 for lbnode.
std::string RouterV4(int i) { return absl::StrCat("192.0.2.", 8 * i + 1); }
std::string DirectorV4(int i) { return absl::StrCat("192.0.2.", 8 * i + 2); }
std::string RealServerV4(int i) { return absl::StrCat("192.0.2.", 8 * i + 3); }
std::string RealServerV6(int i) {
  return absl::StrCat("2001:db8:1:", i, "::3");
}
std::string RouterV6(int i) { return absl::StrCat("2001:db8:1:", i, "::1"); }
std::string DirectorV6(int i) { return absl::StrCat("2001:db8:1:", i, "::2"); }
std::string RouterDev(int i) { return absl::StrCat("r-d", i + 1); }

// kBgpWithFpm: BGP, and the directors' zebra also feeds lbnode over FPM
// (director-fpm.conf, -M dplane_fpm_nl).
enum class Protocol { kBgp, kBgpWithFpm, kOspf };

// ApplySysctlFile applies "key = value" lines of a sysctl.d file in `ns`.
absl::Status ApplySysctlFile(const Netns& ns, const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string line;
  int applied = 0;
  while (std::getline(in, line)) {
    absl::string_view view = absl::StripAsciiWhitespace(line);
    if (view.empty() || view[0] == '#' || view[0] == ';') continue;
    std::vector<std::string> kv = absl::StrSplit(view, '=');
    if (kv.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a sysctl line: ", line));
    }
    RETURN_IF_ERROR(ns.Sysctl(std::string(absl::StripAsciiWhitespace(kv[0])),
                              std::string(absl::StripAsciiWhitespace(kv[1]))));
    ++applied;
  }
  if (applied == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, " sets nothing"));
  }
  return absl::OkStatus();
}

// StandInAnnouncer does on one director what lbnode's announcer does: a TUN
// device held open by this process carries the VIP routes (proto static),
// and route-maps ANYLB-BGP / ANYLB-OSPF select them and set the weight.
// Closing the device (Crash) is what the kernel does when lbnode dies.
class StandInAnnouncer {
 public:
  StandInAnnouncer(const Netns& ns, FrrInstance& frr) : ns_(ns), frr_(frr) {}
  ~StandInAnnouncer() { Crash(); }

  // Announce opens the TUN device and adds both VIP routes to it.
  absl::Status Announce() {
    int fd = -1;
    RETURN_IF_ERROR(ns_.RunInThread([&]() -> absl::Status {
      fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
      if (fd < 0) return absl::ErrnoToStatus(errno, "opening /dev/net/tun");
      ifreq ifr = {};
      ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
      std::strncpy(ifr.ifr_name, kTunDevice, IFNAMSIZ - 1);
      if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
        return absl::ErrnoToStatus(errno, "TUNSETIFF anylb0");
      }
      return absl::OkStatus();
    }));
    tun_fd_ = fd;
    return ns_
        .Run(absl::StrCat("ip link set ", kTunDevice, " up && ip route add ",
                          kVip4, " dev ", kTunDevice,
                          " proto static && ip -6 route add ", kVip6, " dev ",
                          kTunDevice, " proto static"))
        .status();
  }

  // SetBgpWeight fills ANYLB-BGP as lbnode does: VIPs only, link-bandwidth
  // = weight; entries changed in place. Weight 0: no link-bandwidth at all
  // (what another implementation's bandwidth 0 looks like to FRR).
  absl::Status SetBgpWeight(int weight) {
    const std::string set_bandwidth =
        weight > 0 ? absl::StrCat("set extcommunity bandwidth ", weight)
                   : "no set extcommunity bandwidth";
    return frr_
        .Vtysh(
            {"configure terminal",
             absl::StrCat("ip prefix-list ANYLB-VIPS4 seq 5 permit ", kVip4),
             absl::StrCat("ipv6 prefix-list ANYLB-VIPS6 seq 5 permit ", kVip6),
             "route-map ANYLB-BGP permit 10",
             "match ip address prefix-list ANYLB-VIPS4", set_bandwidth, "exit",
             "route-map ANYLB-BGP permit 20",
             "match ipv6 address prefix-list ANYLB-VIPS6", set_bandwidth,
             "exit"})
        .status();
  }

  absl::Status SetOspf() {
    return frr_
        .Vtysh(
            {"configure terminal",
             absl::StrCat("ip prefix-list ANYLB-VIPS4 seq 5 permit ", kVip4),
             absl::StrCat("ipv6 prefix-list ANYLB-VIPS6 seq 5 permit ", kVip6),
             "route-map ANYLB-OSPF permit 10",
             "match ip address prefix-list ANYLB-VIPS4", "exit",
             "route-map ANYLB-OSPF permit 20",
             "match ipv6 address prefix-list ANYLB-VIPS6", "exit"})
        .status();
  }

  // Crash closes the TUN device: the kernel deletes it and its routes.
  void Crash() {
    if (tun_fd_ >= 0) close(tun_fd_);
    tun_fd_ = -1;
  }

 private:
  const Netns& ns_;
  FrrInstance& frr_;
  int tun_fd_ = -1;
};

// LbnodeSupportsAnnounce: whether this lbnode build has --announce.
bool LbnodeSupportsAnnounce() {
  absl::StatusOr<std::string> help = lab::RunCommand(
      absl::StrCat(Runfile("lbnode/lbnode"), " --help 2>&1 || true"));
  return help.ok() && absl::StrContains(*help, "--announce");
}

// LbnodeAnnouncer runs the real lbnode on one director with --announce: one
// DR service on both VIPs, node weight and drain period from its config.
class LbnodeAnnouncer {
 public:
  static absl::StatusOr<std::unique_ptr<LbnodeAnnouncer>> Start(
      const Netns& ns, const FrrInstance& frr, int index, int weight,
      absl::Duration drain_period, const std::string& protocols = "bgp",
      const std::vector<std::string>& extra_flags = {}) {
    auto announcer =
        std::unique_ptr<LbnodeAnnouncer>(new LbnodeAnnouncer(ns, index));
    std::string dir = FrrDir(absl::StrCat("lbnode", index + 1));
    RETURN_IF_ERROR(lab::RunCommand("mkdir -p " + dir).status());
    announcer->dir_ = dir;
    announcer->log_ = dir + "/lbnode.log";
    std::string config = absl::StrCat(
        "revision: 1\nnode:\n  node_name: dir", index + 1,
        "\n  weight: ", weight,
        "\n  drain_period: ", absl::ToInt64Milliseconds(drain_period),
        "ms\nservices:\n");
    for (const auto& [name, vip, real] :
         {std::tuple<std::string, std::string, std::string>{
              "web4", "203.0.113.100", RealServerV4(index)},
          {"web6", "\"2001:db8:f::100\"",
           absl::StrCat("\"", RealServerV6(index), "\"")}}) {
      absl::StrAppend(&config, "  - name: ", name, "\n    vip: ", vip,
                      "\n    port: 80\n    protocol: tcp\n    scheduler: mh"
                      "\n    forwarding: {mode: dr}\n    backends:\n"
                      "      - {address: ",
                      real, ", weight: 1}\n");
    }
    {
      std::ofstream out(dir + "/lbnode.yaml");
      out << config;
    }
    std::vector<std::string> argv = {
        Runfile("lbnode/lbnode"),
        "--interface=eth0",
        absl::StrCat("--config=", dir, "/lbnode.yaml"),
        "--metrics_address=127.0.0.1:9464",
        "--announce",
        absl::StrCat("--frr_vty_socket=", frr.vty_dir()),
        absl::StrCat("--announce_protocols=", protocols),
        "--log_level=debug"};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    ASSIGN_OR_RETURN(announcer->process_, ns.Spawn(argv, announcer->log_));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!absl::StrContains(ReadFile(announcer->log_), "lbnode running")) {
      if (!announcer->process_->Running() || absl::Now() > deadline) {
        return absl::InternalError(absl::StrCat("lbnode on dir", index + 1,
                                                " did not start:\n",
                                                ReadFile(announcer->log_)));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return announcer;
  }

  ~LbnodeAnnouncer() {
    process_.reset();
    if (!dir_.empty()) (void)lab::RunCommand("rm -rf " + dir_);
  }

  // Kill sends SIGKILL: no clean-up code of lbnode runs.
  void Kill() { process_->Stop(SIGKILL, 0); }

  // Admin POSTs to /admin/<what> (drain, undrain) and returns the body.
  absl::StatusOr<std::string> Admin(const std::string& what) {
    return ns_.Run(absl::StrCat(
        "curl -sS --fail -X POST --data '' http://127.0.0.1:9464/admin/",
        what));
  }

  absl::StatusOr<std::string> Metrics() {
    return ns_.Run("curl -sS --fail http://127.0.0.1:9464/metrics");
  }

  absl::StatusOr<std::string> AnnounceStatus() {
    return ns_.Run("curl -sS --fail http://127.0.0.1:9464/admin/announce");
  }

  std::string Log() const { return ReadFile(log_); }

 private:
  LbnodeAnnouncer(const Netns& ns, int index) : ns_(ns), index_(index) {}
  const Netns& ns_;
  [[maybe_unused]] int index_;
  std::string dir_;
  std::string log_;
  std::unique_ptr<Process> process_;
};

// RoutingLab: the router and the directors, FRR running on all of them with
// the deploy/frr configs.
class RoutingLab : public ::testing::TestWithParam<Protocol> {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(router_, Netns::Create("rt"));
    ASSERT_THAT(lab::QuietHost(*router_), IsOk());
    ASSERT_THAT(ApplySysctlFile(*router_, Template("sysctl-router.conf")),
                IsOk());
    for (int i = 0; i < kDirectors; ++i) {
      ASSERT_OK_AND_ASSIGN(auto ns, Netns::Create(absl::StrCat("dir", i + 1)));
      ASSERT_THAT(lab::QuietHost(*ns), IsOk());
      ASSERT_THAT(lab::AddVethPair(*router_, RouterDev(i), *ns, "eth0"),
                  IsOk());
      ASSERT_THAT(lab::AddAddress(*router_, RouterDev(i), RouterV4(i) + "/29"),
                  IsOk());
      ASSERT_THAT(lab::AddAddress(*router_, RouterDev(i), RouterV6(i) + "/64"),
                  IsOk());
      ASSERT_THAT(lab::AddAddress(*ns, "eth0", DirectorV4(i) + "/29"), IsOk());
      ASSERT_THAT(lab::AddAddress(*ns, "eth0", DirectorV6(i) + "/64"), IsOk());
      directors_.push_back(std::move(ns));
    }
    if (GetParam() != Protocol::kOspf) {
      ASSERT_NO_FATAL_FAILURE(StartBgp(GetParam() == Protocol::kBgpWithFpm));
    } else {
      ASSERT_NO_FATAL_FAILURE(StartOspf());
    }
    for (int i = 0; i < kDirectors; ++i) {
      announcers_.push_back(
          std::make_unique<StandInAnnouncer>(*directors_[i], *frr_[i]));
    }
  }

  void TearDown() override {
    if (HasFailure()) {
      std::fprintf(stderr, "router FRR logs:\n%s\n",
                   router_frr_ ? router_frr_->LogTail(30).c_str() : "");
      for (size_t i = 0; i < frr_.size(); ++i) {
        std::fprintf(stderr, "director %zu FRR logs:\n%s\n", i + 1,
                     frr_[i]->LogTail(15).c_str());
      }
    }
    announcers_.clear();
  }

  static std::map<std::string, std::string> BfdValues() {
    return {{"BFD_MULTIPLIER", "3"}, {"BFD_INTERVAL_MS", "100"}};
  }

  void StartBgp(bool fpm) {
    ASSERT_OK_AND_ASSIGN(
        std::string router_config,
        ReadFrrTemplate(Template("router-bgp.conf"),
                        {{"HOSTNAME", "router"},
                         {"ROUTER_AS", "65000"},
                         {"ROUTER_ID", "192.0.2.1"},
                         {"BGP_KEEPALIVE", "1"},
                         {"BGP_HOLD", "3"},
                         {"VIP_RANGE_V4", "203.0.113.0/24"},
                         {"VIP_RANGE_V6", "2001:db8:f::/48"},
                         {"DIRECTOR_LINKS_V4", "192.0.2.0/26"},
                         {"DIRECTOR_LINKS_V6", "2001:db8:1::/48"},
                         {"MAXIMUM_PATHS", "16"}}));
    ASSERT_OK_AND_ASSIGN(
        std::string bfd,
        ReadFrrTemplate(Template("bfd-profile.conf"), BfdValues()));
    ASSERT_OK_AND_ASSIGN(
        router_frr_,
        FrrInstance::Start({.netns = router_->name(),
                            .dir = FrrDir("rt"),
                            .config = router_config + bfd,
                            .daemons = {"zebra", "bgpd", "bfdd"}}));
    for (int i = 0; i < kDirectors; ++i) {
      ASSERT_OK_AND_ASSIGN(
          std::string config,
          ReadFrrTemplate(Template("director-bgp.conf"),
                          {{"HOSTNAME", absl::StrCat("dir", i + 1)},
                           {"DIRECTOR_AS", absl::StrCat(65001 + i)},
                           {"ROUTER_ID", DirectorV4(i)},
                           {"BGP_KEEPALIVE", "1"},
                           {"BGP_HOLD", "3"},
                           {"UPSTREAM_V4", RouterV4(i)},
                           {"UPSTREAM_V6", RouterV6(i)}}));
      FrrOptions options = {.netns = directors_[i]->name(),
                            .dir = FrrDir(absl::StrCat("d", i + 1)),
                            .config = config + bfd,
                            .daemons = {"zebra", "bgpd", "bfdd"}};
      if (fpm) {
        ASSERT_OK_AND_ASSIGN(std::string fpm_config,
                             ReadFrrTemplate(Template("director-fpm.conf"),
                                             {{"FPM_PORT", "2620"}}));
        options.config += fpm_config;
        options.zebra_modules = {"dplane_fpm_nl"};
      }
      ASSERT_OK_AND_ASSIGN(auto frr, FrrInstance::Start(std::move(options)));
      frr_.push_back(std::move(frr));
    }
  }

  void StartOspf() {
    std::map<std::string, std::string> timers = {{"OSPF_HELLO", "1"},
                                                 {"OSPF_DEAD", "3"}};
    auto interface = [&](const std::string& dev) {
      std::map<std::string, std::string> values = timers;
      values["INTERFACE"] = dev;
      return ReadFrrTemplate(Template("ospf-interface.conf"), values);
    };
    ASSERT_OK_AND_ASSIGN(
        std::string bfd,
        ReadFrrTemplate(Template("bfd-profile.conf"), BfdValues()));
    ASSERT_OK_AND_ASSIGN(std::string router_config,
                         ReadFrrTemplate(Template("router-ospf.conf"),
                                         {{"HOSTNAME", "router"},
                                          {"ROUTER_ID", "192.0.2.1"},
                                          {"MAXIMUM_PATHS", "16"}}));
    for (int i = 0; i < kDirectors; ++i) {
      ASSERT_OK_AND_ASSIGN(std::string block, interface(RouterDev(i)));
      router_config += block;
    }
    const std::vector<std::string> daemons = {"zebra", "ospfd", "ospf6d",
                                              "bfdd"};
    ASSERT_OK_AND_ASSIGN(router_frr_,
                         FrrInstance::Start({.netns = router_->name(),
                                             .dir = FrrDir("rt"),
                                             .config = router_config + bfd,
                                             .daemons = daemons}));
    for (int i = 0; i < kDirectors; ++i) {
      ASSERT_OK_AND_ASSIGN(
          std::string config,
          ReadFrrTemplate(Template("director-ospf.conf"),
                          {{"HOSTNAME", absl::StrCat("dir", i + 1)},
                           {"ROUTER_ID", DirectorV4(i)}}));
      ASSERT_OK_AND_ASSIGN(std::string block, interface("eth0"));
      ASSERT_OK_AND_ASSIGN(
          auto frr, FrrInstance::Start({.netns = directors_[i]->name(),
                                        .dir = FrrDir(absl::StrCat("d", i + 1)),
                                        .config = config + block + bfd,
                                        .daemons = daemons}));
      frr_.push_back(std::move(frr));
    }
  }

  // HopOf returns the next hop through director i, or nullptr.
  static const KernelNextHop* HopOf(const std::vector<KernelNextHop>& hops,
                                    int i) {
    for (const KernelNextHop& hop : hops) {
      if (hop.dev == RouterDev(i)) return &hop;
    }
    return nullptr;
  }

  std::string Describe(const std::string& prefix) {
    absl::StatusOr<std::vector<KernelNextHop>> hops =
        ReadKernelRoute(router_->name(), prefix);
    return absl::StrCat(
        prefix, ": ",
        hops.ok() ? FormatNextHops(*hops) : hops.status().ToString());
  }

  std::unique_ptr<Netns> router_;
  std::vector<std::unique_ptr<Netns>> directors_;
  std::unique_ptr<FrrInstance> router_frr_;
  std::vector<std::unique_ptr<FrrInstance>> frr_;
  std::vector<std::unique_ptr<StandInAnnouncer>> announcers_;
};

// WeightsInProportion: one next hop per director with weight w_i such that
// w_i / sum(w) matches weights[i] / sum(weights) up to bgpd's truncation
// (it hands zebra floor(100 * bw_i / sum(bw)) per next hop).
// A weight of 0 means "no next hop through that director".
bool WeightsInProportion(const std::vector<KernelNextHop>& hops,
                         const std::vector<int>& weights) {
  int sum = 0;
  size_t present = 0;
  for (int w : weights) {
    sum += w;
    if (w > 0) ++present;
  }
  if (hops.size() != present) return false;
  for (size_t i = 0; i < weights.size(); ++i) {
    const KernelNextHop* hop = nullptr;
    for (const KernelNextHop& h : hops) {
      if (h.dev == RouterDev(static_cast<int>(i))) hop = &h;
    }
    if (weights[i] == 0) {
      if (hop != nullptr) return false;
      continue;
    }
    if (hop == nullptr) return false;
    if (hop->weight != 100 * weights[i] / sum) return false;
  }
  return true;
}

using BgpRouting = RoutingLab;
using OspfRouting = RoutingLab;

TEST_P(BgpRouting, WeightsOneTwoThreeGiveKernelNextHopsInProportion) {
  const std::vector<int> weights = {1, 2, 3};
  for (int i = 0; i < kDirectors; ++i) {
    ASSERT_THAT(announcers_[i]->SetBgpWeight(weights[i]), IsOk());
    ASSERT_THAT(announcers_[i]->Announce(), IsOk());
  }
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [&](const auto& h) { return WeightsInProportion(h, weights); },
        kConverge);
    ASSERT_THAT(hops, IsOk());
    std::printf("router FIB, weights 1:2:3: %s\n", Describe(vip).c_str());
  }

  // Director 3 goes from 3 to 1, in place (no withdrawal): 1:2:1.
  ASSERT_THAT(announcers_[2]->SetBgpWeight(1), IsOk());
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_THAT(WaitForKernelRoute(
                    router_->name(), vip,
                    [&](const auto& h) {
                      return WeightsInProportion(h, {1, 2, 1});
                    },
                    kConverge),
                IsOk());
    std::printf("router FIB, weights 1:2:1: %s\n", Describe(vip).c_str());
  }
}

// Weight 0 (no link-bandwidth) for one director: with the shipped
// `bgp bestpath bandwidth skip-missing` it gets no next hop while the others
// keep their weights; with FRR's default the router falls back to plain
// ECMP over all three (docs/routing.md, the trap skip-missing avoids).
TEST_P(BgpRouting, WeightZeroIsSkippedWithSkipMissingAndBreaksWcmpWithout) {
  const std::vector<int> weights = {1, 3, 0};
  for (int i = 0; i < kDirectors; ++i) {
    ASSERT_THAT(announcers_[i]->SetBgpWeight(weights[i]), IsOk());
    ASSERT_THAT(announcers_[i]->Announce(), IsOk());
  }
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [&](const auto& h) {
          return WeightsInProportion(h, {1, 3, 0});
        },
        kConverge);
    ASSERT_THAT(hops, IsOk());
    std::printf("skip-missing, weights 1:3:0: %s\n", Describe(vip).c_str());
  }
  // The path is still in the router's BGP table (a backup), only not used.
  ASSERT_OK_AND_ASSIGN(
      std::string paths,
      router_frr_->Vtysh({absl::StrCat("show bgp ipv4 unicast ", kVip4)}));
  EXPECT_THAT(paths, ::testing::HasSubstr(DirectorV4(2)));

  ASSERT_THAT(router_frr_->Vtysh({"configure terminal", "router bgp 65000",
                                  "no bgp bestpath bandwidth skip-missing"}),
              IsOk());
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [&](const auto& h) {
          return h.size() == kDirectors && h[0].weight == h[1].weight &&
                 h[1].weight == h[2].weight;
        },
        kConverge);
    ASSERT_THAT(hops, IsOk());
    std::printf("default bandwidth handling, weights 1:3:0: %s\n",
                Describe(vip).c_str());
  }
}

TEST_P(BgpRouting, DeadDirectorLeavesRouterFibWithinThreeSeconds) {
  for (int i = 0; i < kDirectors; ++i) {
    ASSERT_THAT(announcers_[i]->SetBgpWeight(1), IsOk());
    ASSERT_THAT(announcers_[i]->Announce(), IsOk());
  }
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_THAT(
        WaitForKernelRoute(
            router_->name(), vip,
            [](const auto& h) { return h.size() == kDirectors; }, kConverge),
        IsOk());
  }
  // The TUN device goes (as when lbnode is killed): its routes go with it.
  absl::Time crashed = absl::Now();
  announcers_[1]->Crash();
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [](const auto& h) {
          return h.size() == kDirectors - 1 && HopOf(h, 1) == nullptr;
        },
        absl::Seconds(10));
    absl::Duration took = absl::Now() - crashed;
    ASSERT_THAT(hops, IsOk());
    std::printf(
        "director 2's TUN device gone → its next hop for %s left the router's "
        "FIB after %s (bound %s); now %s\n",
        vip, absl::FormatDuration(took).c_str(),
        absl::FormatDuration(kWithdrawBound).c_str(),
        FormatNextHops(*hops).c_str());
    EXPECT_LT(took, kWithdrawBound) << vip;
  }
}

// BFD (bfd-profile.conf, 3 x 100 ms on both ends): a director whose link
// goes silent — the router receives nothing from it any more, no carrier
// change — is removed well before the BGP hold time (3 s here).
TEST_P(BgpRouting, SilentDirectorLinkIsRemovedByBfdWithinOneSecond) {
  for (int i = 0; i < kDirectors; ++i) {
    ASSERT_THAT(announcers_[i]->SetBgpWeight(1), IsOk());
    ASSERT_THAT(announcers_[i]->Announce(), IsOk());
  }
  ASSERT_THAT(
      WaitForKernelRoute(
          router_->name(), kVip4,
          [](const auto& h) { return h.size() == kDirectors; }, kConverge),
      IsOk());
  // All three BFD sessions up on the router.
  absl::Time deadline = absl::Now() + kConverge;
  std::string peers;
  while (absl::Now() < deadline) {
    ASSERT_OK_AND_ASSIGN(peers, router_frr_->Vtysh({"show bfd peers brief"}));
    int up = 0;
    for (absl::string_view line : absl::StrSplit(peers, '\n')) {
      if (absl::StrContains(line, " up")) ++up;
    }
    if (up >= 2 * kDirectors) break;  // IPv4 and IPv6 sessions.
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_LT(absl::Now(), deadline) << "BFD sessions not up:\n" << peers;

  // Everything from director 2 is dropped on the router's side.
  ASSERT_THAT(router_->Run(absl::StrCat(
                  "nft add table netdev silent && nft add chain netdev silent "
                  "in '{ type filter hook ingress device ",
                  RouterDev(1), " priority 0; policy drop; }'")),
              IsOk());
  absl::Time silenced = absl::Now();
  absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
      router_->name(), kVip4,
      [](const auto& h) {
        return h.size() == kDirectors - 1 && HopOf(h, 1) == nullptr;
      },
      absl::Seconds(10));
  absl::Duration took = absl::Now() - silenced;
  ASSERT_THAT(hops, IsOk());
  std::printf(
      "director 2's link silent → its next hop left the router's FIB after "
      "%s (BFD 3 x 100 ms; BGP hold time 3 s): %s\n",
      absl::FormatDuration(took).c_str(), FormatNextHops(*hops).c_str());
  EXPECT_LT(took, absl::Seconds(1));
}

TEST_P(OspfRouting, VipReachesRouterFromAllDirectorsAtEqualCost) {
  for (int i = 0; i < kDirectors; ++i) {
    ASSERT_THAT(announcers_[i]->SetOspf(), IsOk());
    ASSERT_THAT(announcers_[i]->Announce(), IsOk());
  }
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [](const auto& h) {
          if (h.size() != kDirectors) return false;
          for (int i = 0; i < kDirectors; ++i) {
            if (HopOf(h, i) == nullptr || HopOf(h, i)->weight != 1) {
              return false;
            }
          }
          return true;
        },
        kConverge);
    ASSERT_THAT(hops, IsOk());
    std::printf("router FIB via OSPF: %s\n", Describe(vip).c_str());
  }
}

// The same with the real lbnode (--announce) on every director: the VIP
// routes come from lbnode's TUN device and lbnode's route-map ANYLB-BGP.
using LbnodeRouting = RoutingLab;

class LbnodeFleet {
 public:
  std::vector<std::unique_ptr<LbnodeAnnouncer>> nodes;
  std::string Logs() const {
    std::string out;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i] == nullptr) continue;
      absl::StrAppend(&out, "--- lbnode dir", i + 1, " ---\n", nodes[i]->Log());
    }
    return out;
  }
};

TEST_P(LbnodeRouting, WeightsKillDrainAndUndrainInRouterFib) {
  if (!LbnodeSupportsAnnounce()) {
    GTEST_SKIP() << "this lbnode has no --announce yet (routing/announce "
                    "not wired into lbnode/main.cc)";
  }
  // Weights 10:20:30 (the 1:2:3, in Mbit/s large enough that the
  // drain bandwidth, 1, is visibly lower). Director 2 drains with GSHUT.
  const std::vector<int> weights = {10, 20, 30};
  const absl::Duration drain_period = absl::Seconds(6);
  LbnodeFleet fleet;
  for (int i = 0; i < kDirectors; ++i) {
    std::vector<std::string> flags = {"--route_source=fpm"};
    if (i == 1) flags.push_back("--drain_gshut");
    absl::StatusOr<std::unique_ptr<LbnodeAnnouncer>> node =
        LbnodeAnnouncer::Start(*directors_[i], *frr_[i], i, weights[i],
                               drain_period, "bgp", flags);
    ASSERT_THAT(node, IsOk()) << fleet.Logs();
    fleet.nodes.push_back(std::move(*node));
  }
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [&](const auto& h) { return WeightsInProportion(h, weights); },
        kConverge);
    ASSERT_THAT(hops, IsOk()) << fleet.Logs();
    std::printf("lbnode weights 10:20:30 → router FIB %s\n",
                Describe(vip).c_str());
  }
  // Each director's zebra feeds its lbnode over FPM (director-fpm.conf).
  for (int i = 0; i < kDirectors; ++i) {
    std::string metrics;
    absl::Time deadline = absl::Now() + kConverge;
    while (absl::Now() < deadline) {
      ASSERT_OK_AND_ASSIGN(metrics, fleet.nodes[i]->Metrics());
      if (absl::StrContains(metrics, "\nanylb_fpm_connected 1")) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    EXPECT_THAT(metrics, ::testing::HasSubstr("\nanylb_fpm_connected 1"))
        << "zebra on dir" << i + 1 << " never connected to lbnode's FPM\n"
        << frr_[i]->LogTail(20);
  }

  // Drain director 3 (no GSHUT): lbnode announces the drain bandwidth (1)
  // while keeping the routes, so the router's kernel weight for it drops
  // to 1/31 of the traffic (10:20:1); after the drain period lbnode
  // withdraws and the path leaves the FIB.
  absl::Time drained = absl::Now();
  ASSERT_THAT(fleet.nodes[2]->Admin("drain"), IsOk()) << fleet.Logs();
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [&](const auto& h) {
          return WeightsInProportion(h, {10, 20, 1});
        },
        drain_period);
    ASSERT_THAT(hops, IsOk()) << fleet.Logs();
    std::printf(
        "director 3 draining, after %s → weight at the drain value: "
        "%s\n",
        absl::FormatDuration(absl::Now() - drained).c_str(),
        Describe(vip).c_str());
  }
  const std::string show_path = absl::StrCat("show bgp ipv4 unicast ", kVip4);
  ASSERT_OK_AND_ASSIGN(std::string paths, router_frr_->Vtysh({show_path}));
  ASSERT_THAT(paths, ::testing::HasSubstr(DirectorV4(2)));
  EXPECT_THAT(paths, ::testing::HasSubstr("(1.000 Mbps)"));  // Drain value.
  EXPECT_THAT(paths, ::testing::Not(::testing::HasSubstr("graceful-shutdown")));
  ASSERT_OK_AND_ASSIGN(std::string status, fleet.nodes[2]->AnnounceStatus());
  std::printf("director 3 /admin/announce while draining: %s\n",
              status.c_str());
  // Withdrawn after the drain period (and not before): the kernel route
  // keeps director 3 at the drain weight until then.
  absl::StatusOr<std::vector<KernelNextHop>> left = WaitForKernelRoute(
      router_->name(), kVip4,
      [&](const auto& h) {
        return WeightsInProportion(h, {10, 20, 0});
      },
      drain_period + absl::Seconds(10));
  absl::Duration took = absl::Now() - drained;
  ASSERT_THAT(left, IsOk()) << fleet.Logs();
  std::printf(
      "director 3's path left the router's FIB %s after the drain "
      "(period %s): %s\n",
      absl::FormatDuration(took).c_str(),
      absl::FormatDuration(drain_period).c_str(),
      FormatNextHops(*left).c_str());
  EXPECT_GE(took, drain_period) << "withdrawn before the drain period ended";
  ASSERT_OK_AND_ASSIGN(paths, router_frr_->Vtysh({show_path}));
  EXPECT_THAT(paths, ::testing::Not(::testing::HasSubstr(DirectorV4(2))));

  // Undrain: back with its weight.
  ASSERT_THAT(fleet.nodes[2]->Admin("undrain"), IsOk()) << fleet.Logs();
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_THAT(
        WaitForKernelRoute(
            router_->name(), vip,
            [&](const auto& h) { return WeightsInProportion(h, weights); },
            kConverge),
        IsOk())
        << fleet.Logs();
    std::printf("director 3 undrained → %s\n", Describe(vip).c_str());
  }

  // Drain director 2, started with --drain_gshut: FRR gives an eBGP path
  // carrying GSHUT local-preference 0 (RFC 8326), so its next hop leaves
  // the router's FIB at once while the path stays in BGP as a backup.
  absl::Time gshut = absl::Now();
  ASSERT_THAT(fleet.nodes[1]->Admin("drain"), IsOk()) << fleet.Logs();
  ASSERT_THAT(WaitForKernelRoute(
                  router_->name(), kVip4,
                  [&](const auto& h) {
                    return WeightsInProportion(h, {10, 0, 30});
                  },
                  drain_period),
              IsOk())
      << fleet.Logs();
  std::printf("director 2 draining with GSHUT: out of the FIB after %s\n",
              absl::FormatDuration(absl::Now() - gshut).c_str());
  ASSERT_OK_AND_ASSIGN(paths, router_frr_->Vtysh({show_path}));
  EXPECT_THAT(paths, ::testing::HasSubstr(DirectorV4(1)));
  EXPECT_THAT(paths, ::testing::HasSubstr("graceful-shutdown"));
  EXPECT_THAT(paths, ::testing::HasSubstr("localpref 0"));
  ASSERT_THAT(fleet.nodes[1]->Admin("undrain"), IsOk()) << fleet.Logs();
  ASSERT_THAT(
      WaitForKernelRoute(
          router_->name(), kVip4,
          [&](const auto& h) { return WeightsInProportion(h, weights); },
          kConverge),
      IsOk())
      << fleet.Logs();

  // kill -9 lbnode on director 2: the kernel deletes its TUN device and
  // routes, FRR withdraws; the router drops the next hop.
  absl::Time killed = absl::Now();
  fleet.nodes[1]->Kill();
  for (const char* vip : {kVip4, kVip6}) {
    absl::StatusOr<std::vector<KernelNextHop>> hops = WaitForKernelRoute(
        router_->name(), vip,
        [&](const auto& h) {
          return WeightsInProportion(h, {10, 0, 30});
        },
        absl::Seconds(10));
    absl::Duration took = absl::Now() - killed;
    ASSERT_THAT(hops, IsOk()) << fleet.Logs();
    std::printf(
        "kill -9 of lbnode on director 2 → its next hop for %s left the "
        "router's FIB after %s (bound %s): %s\n",
        vip, absl::FormatDuration(took).c_str(),
        absl::FormatDuration(kWithdrawBound).c_str(),
        FormatNextHops(*hops).c_str());
    EXPECT_LT(took, kWithdrawBound) << vip;
  }
}

// OSPF with the real lbnode (--announce_protocols=ospf,ospf6): equal cost
// from all three; a drain raises the metric so the director leaves the ECMP
// set at once, and undrain brings it back.
using LbnodeOspfRouting = RoutingLab;

TEST_P(LbnodeOspfRouting, EqualCostThenDrainRaisesMetricThenUndrain) {
  if (!LbnodeSupportsAnnounce()) {
    GTEST_SKIP() << "this lbnode has no --announce yet";
  }
  const absl::Duration drain_period = absl::Seconds(15);
  LbnodeFleet fleet;
  for (int i = 0; i < kDirectors; ++i) {
    absl::StatusOr<std::unique_ptr<LbnodeAnnouncer>> node =
        LbnodeAnnouncer::Start(*directors_[i], *frr_[i], i, i + 1, drain_period,
                               "ospf,ospf6");
    ASSERT_THAT(node, IsOk()) << fleet.Logs();
    fleet.nodes.push_back(std::move(*node));
  }
  auto equal = [](int n, int missing) {
    return [n, missing](const std::vector<KernelNextHop>& h) {
      if (static_cast<int>(h.size()) != n) return false;
      for (const KernelNextHop& hop : h) {
        if (hop.weight != 1) return false;
      }
      return missing < 0 || HopOf(h, missing) == nullptr;
    };
  };
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_THAT(WaitForKernelRoute(router_->name(), vip, equal(kDirectors, -1),
                                   kConverge),
                IsOk())
        << fleet.Logs();
    std::printf("lbnode over OSPF → router FIB %s\n", Describe(vip).c_str());
  }
  absl::Time drained = absl::Now();
  ASSERT_THAT(fleet.nodes[2]->Admin("drain"), IsOk()) << fleet.Logs();
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_THAT(WaitForKernelRoute(router_->name(), vip,
                                   equal(kDirectors - 1, 2), drain_period),
                IsOk())
        << fleet.Logs();
    absl::Duration took = absl::Now() - drained;
    std::printf("director 3 draining (metric raised), after %s → %s\n",
                absl::FormatDuration(took).c_str(), Describe(vip).c_str());
    EXPECT_LT(took, drain_period) << "left the FIB only when withdrawn";
  }
  // Still announced, with the drain metric: director 3's external LSA.
  ASSERT_OK_AND_ASSIGN(
      std::string lsas,
      router_frr_->Vtysh({"show ip ospf database external 203.0.113.100"}));
  std::string from_director3;
  for (absl::string_view block : absl::StrSplit(lsas, "LS age")) {
    if (absl::StrContains(block, "Advertising Router: 192.0.2.18")) {
      from_director3 = std::string(block);
    }
  }
  std::printf("router's LSA from director 3 while draining: LS age%s\n",
              from_director3.c_str());
  EXPECT_THAT(from_director3, ::testing::HasSubstr("Metric: 16777214")) << lsas;
  ASSERT_THAT(fleet.nodes[2]->Admin("undrain"), IsOk()) << fleet.Logs();
  for (const char* vip : {kVip4, kVip6}) {
    ASSERT_THAT(WaitForKernelRoute(router_->name(), vip, equal(kDirectors, -1),
                                   kConverge),
                IsOk())
        << fleet.Logs();
    std::printf("director 3 undrained → %s\n", Describe(vip).c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Bgp, BgpRouting, ::testing::Values(Protocol::kBgp));
INSTANTIATE_TEST_SUITE_P(Lbnode, LbnodeRouting,
                         ::testing::Values(Protocol::kBgpWithFpm));
INSTANTIATE_TEST_SUITE_P(LbnodeOspf, LbnodeOspfRouting,
                         ::testing::Values(Protocol::kOspf));
INSTANTIATE_TEST_SUITE_P(Ospf, OspfRouting, ::testing::Values(Protocol::kOspf));

}  // namespace
}  // namespace anylb
