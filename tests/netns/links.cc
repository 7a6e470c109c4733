#include "tests/netns/links.h"

#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "tests/netns/xdp_pass_embed.h"

namespace anylb::lab {
namespace {

absl::string_view Absl(std::string_view text) {
  return {text.data(), text.size()};
}

absl::Status RunIn(const Netns& ns, std::string_view command) {
  return ns.Run(command).status();
}

}  // namespace

absl::Status AddVethPair(const Netns& a, std::string_view name_a,
                         const Netns& b, std::string_view name_b) {
  RETURN_IF_ERROR(
      RunCommand(absl::StrCat("ip link add name ", Absl(name_a), " netns ",
                              a.name(), " type veth peer name ", Absl(name_b),
                              " netns ", b.name()))
          .status());
  RETURN_IF_ERROR(RunIn(a, absl::StrCat("ip link set ", Absl(name_a), " up")));
  return RunIn(b, absl::StrCat("ip link set ", Absl(name_b), " up"));
}

absl::Status AddBridge(const Netns& ns, std::string_view bridge) {
  return RunIn(ns, absl::StrCat("ip link add name ", Absl(bridge),
                                " type bridge stp_state 0 forward_delay 0 "
                                "mcast_snooping 0 && ip link set ",
                                Absl(bridge), " up"));
}

absl::Status AddBridgePort(const Netns& ns, std::string_view bridge,
                           std::string_view port) {
  return RunIn(
      ns, absl::StrCat("ip link set ", Absl(port), " master ", Absl(bridge),
                       " && ip link set ", Absl(port), " up"));
}

absl::Status AddAddress(const Netns& ns, std::string_view dev,
                        std::string_view prefix) {
  bool v6 = prefix.find(':') != std::string_view::npos;
  return RunIn(ns, absl::StrCat(v6 ? "ip -6" : "ip", " addr add ", Absl(prefix),
                                " dev ", Absl(dev), v6 ? " nodad" : ""));
}

absl::Status AddLoopbackAddress(const Netns& ns, std::string_view address) {
  bool v6 = address.find(':') != std::string_view::npos;
  return AddAddress(ns, "lo", absl::StrCat(Absl(address), v6 ? "/128" : "/32"));
}

absl::Status ReplaceRoute(const Netns& ns, std::string_view destination,
                          std::string_view via, std::string_view dev) {
  bool v6 = destination.find(':') != std::string_view::npos ||
            via.find(':') != std::string_view::npos;
  std::string command =
      absl::StrCat(v6 ? "ip -6" : "ip", " route replace ", Absl(destination));
  if (!via.empty()) absl::StrAppend(&command, " via ", Absl(via));
  if (!dev.empty()) absl::StrAppend(&command, " dev ", Absl(dev));
  return RunIn(ns, command);
}

absl::Status SetMtu(const Netns& ns, std::string_view dev, int mtu) {
  return RunIn(ns, absl::StrCat("ip link set ", Absl(dev), " mtu ", mtu));
}

absl::Status SetMac(const Netns& ns, std::string_view dev,
                    std::string_view mac) {
  return RunIn(ns,
               absl::StrCat("ip link set ", Absl(dev), " address ", Absl(mac)));
}

absl::StatusOr<std::string> GetMac(const Netns& ns, std::string_view dev) {
  std::string mac;
  std::string name(dev);
  RETURN_IF_ERROR(ns.RunInThread([&]() -> absl::Status {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
    ifreq request{};
    std::snprintf(request.ifr_name, sizeof(request.ifr_name), "%s",
                  name.c_str());
    int result = ioctl(fd, SIOCGIFHWADDR, &request);
    int error = errno;
    close(fd);
    if (result != 0) {
      return absl::ErrnoToStatus(
          error, absl::StrCat("reading the MAC address of \"", name, "\" in \"",
                              ns.name(), "\""));
    }
    const auto* bytes =
        reinterpret_cast<const unsigned char*>(request.ifr_hwaddr.sa_data);
    char text[18];
    std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0],
                  bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]);
    mac = text;
    return absl::OkStatus();
  }));
  return mac;
}

absl::StatusOr<int> GetIfindex(const Netns& ns, std::string_view dev) {
  int ifindex = 0;
  std::string name(dev);
  RETURN_IF_ERROR(ns.RunInThread([&]() -> absl::Status {
    ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    if (ifindex == 0) {
      return absl::NotFoundError(
          absl::StrCat("no interface \"", name, "\" in \"", ns.name(), "\""));
    }
    return absl::OkStatus();
  }));
  return ifindex;
}

absl::Status DisableRpFilter(const Netns& ns) {
  RETURN_IF_ERROR(ns.Sysctl("net.ipv4.conf.all.rp_filter", "0"));
  return ns.Sysctl("net.ipv4.conf.default.rp_filter", "0");
}

absl::Status EnableForwarding(const Netns& ns) {
  RETURN_IF_ERROR(ns.Sysctl("net.ipv4.ip_forward", "1"));
  RETURN_IF_ERROR(ns.Sysctl("net.ipv6.conf.all.forwarding", "1"));
  RETURN_IF_ERROR(ns.Sysctl("net.ipv4.conf.all.send_redirects", "0"));
  RETURN_IF_ERROR(ns.Sysctl("net.ipv4.conf.default.send_redirects", "0"));
  // IPv6 has no send_redirects sysctl; QuietHost() makes every lab host
  // ignore redirects instead.
  return absl::OkStatus();
}

absl::Status QuietHost(const Netns& ns) {
  for (const char* key :
       {"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad",
        "net.ipv4.conf.all.accept_redirects",
        "net.ipv4.conf.default.accept_redirects",
        "net.ipv6.conf.all.accept_redirects",
        "net.ipv6.conf.default.accept_redirects"}) {
    RETURN_IF_ERROR(ns.Sysctl(key, "0"));
  }
  return absl::OkStatus();
}

absl::Status SetDrArpSysctls(const Netns& ns) {
  RETURN_IF_ERROR(ns.Sysctl("net.ipv4.conf.all.arp_ignore", "1"));
  return ns.Sysctl("net.ipv4.conf.all.arp_announce", "2");
}

absl::Status AttachXdpPass(const Netns& ns, std::string_view dev) {
  ASSIGN_OR_RETURN(int ifindex, GetIfindex(ns, dev));
  std::span<const unsigned char> bytes = bpf::XdpPassObject();
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.object_name = "xdp_pass";
  bpf_object* object = bpf_object__open_mem(bytes.data(), bytes.size(), &opts);
  if (object == nullptr) {
    return absl::ErrnoToStatus(errno, "opening the embedded xdp_pass object");
  }
  absl::Status status;
  if (int error = bpf_object__load(object); error != 0) {
    status = absl::ErrnoToStatus(
        -error, "loading xdp_pass into the kernel (need root?)");
  } else {
    bpf_program* program = bpf_object__find_program_by_name(object, "xdp_pass");
    int fd = program == nullptr ? -1 : bpf_program__fd(program);
    status = ns.RunInThread([&]() -> absl::Status {
      int error = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, nullptr);
      if (error != 0) {
        return absl::ErrnoToStatus(
            -error, absl::StrCat("attaching xdp_pass to \"", Absl(dev),
                                 "\" in \"", ns.name(), "\""));
      }
      return absl::OkStatus();
    });
  }
  // The attachment keeps the program loaded.
  bpf_object__close(object);
  return status;
}

absl::StatusOr<LinkCounters> GetLinkCounters(const Netns& ns,
                                             std::string_view dev) {
  std::string dir = absl::StrCat("/sys/class/net/", Absl(dev), "/statistics/");
  ASSIGN_OR_RETURN(
      std::string out,
      ns.Run(absl::StrCat("cat ", dir, "rx_packets ", dir, "rx_dropped ", dir,
                          "tx_packets ", dir, "tx_dropped")));
  std::vector<absl::string_view> lines =
      absl::StrSplit(out, '\n', absl::SkipWhitespace());
  LinkCounters counters;
  if (lines.size() != 4 || !absl::SimpleAtoi(lines[0], &counters.rx_packets) ||
      !absl::SimpleAtoi(lines[1], &counters.rx_dropped) ||
      !absl::SimpleAtoi(lines[2], &counters.tx_packets) ||
      !absl::SimpleAtoi(lines[3], &counters.tx_dropped)) {
    return absl::InternalError(
        absl::StrCat("unexpected counters of \"", Absl(dev), "\": ", out));
  }
  return counters;
}

}  // namespace anylb::lab
