#include "lbnode/dataplane/bpf/steer_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/bpf/bpf_object_util.h"
#include "lbnode/dataplane/bpf/steer_embed.h"

namespace anylb::dataplane::bpf {
namespace {

constexpr std::string_view kCounterNames[] = {
#define ANYLB_STEER_COUNTER_NAME_(suffix, name) name,
    ANYLB_STEER_COUNTERS(ANYLB_STEER_COUNTER_NAME_)
#undef ANYLB_STEER_COUNTER_NAME_
};
static_assert(std::size(kCounterNames) == ANYLB_STEER_CNT_MAX);

// UpdateError is ErrnoError for a map update, with the map's capacity when
// it is full.
absl::Status UpdateError(int error, const std::string& what, int capacity) {
  if (error == -E2BIG) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": at most ", capacity, " entries"));
  }
  return ErrnoError(error, what);
}

uint32_t XdpModeFlag(SteerMode mode) {
  return mode == SteerMode::kXdpNative ? XDP_FLAGS_DRV_MODE
                                       : XDP_FLAGS_SKB_MODE;
}

uint8_t Family(const IpAddress& address) {
  return address.is_v4() ? ANYLB_STEER_FAMILY_V4 : ANYLB_STEER_FAMILY_V6;
}

anylb_steer_addr_key AddrKey(const IpAddress& address) {
  anylb_steer_addr_key key;
  std::memset(&key, 0, sizeof(key));
  key.family = Family(address);
  std::span<const uint8_t> bytes = address.bytes();
  std::copy(bytes.begin(), bytes.end(), key.addr);
  return key;
}

anylb_steer_l4_key L4Key(const IpAddress& address, uint16_t port,
                         uint8_t proto) {
  anylb_steer_l4_key key;
  std::memset(&key, 0, sizeof(key));
  key.family = Family(address);
  key.proto = proto;
  key.port = port;
  std::span<const uint8_t> bytes = address.bytes();
  std::copy(bytes.begin(), bytes.end(), key.addr);
  return key;
}

std::string VipText(const SteerVip& vip) {
  return absl::StrCat("VIP ", Endpoint(vip.address, vip.port).ToString(),
                      " proto ", vip.proto);
}

}  // namespace

std::string_view SteerCounters::Name(anylb_steer_counter counter) {
  return kCounterNames[counter];
}

std::string SteerCounters::ToString() const {
  std::string text;
  for (int i = 0; i < ANYLB_STEER_CNT_MAX; ++i) {
    absl::StrAppend(&text, ToAbsl(kCounterNames[i]), " ", values[i], "\n");
  }
  return text;
}

SteerProgram::SteerProgram(bpf_object* object, const Fds& fds,
                           const FastPathMaps& fastpath)
    : object_(object),
      program_fd_(fds.program),
      vips_fd_(fds.vips),
      vip_addrs_fd_(fds.vip_addrs),
      locals_fd_(fds.locals),
      nat_backends_fd_(fds.nat_backends),
      xsks_fd_(fds.xsks),
      counters_fd_(fds.counters),
      tx_ports_fd_(fds.tx_ports),
      fastpath_(fastpath) {}

SteerProgram::~SteerProgram() {
  if (absl::Status status = DetachAll(); !status.ok()) {
    std::fprintf(stderr, "steer: %s\n", status.ToString().c_str());
  }
  bpf_object__close(object_);
}

absl::StatusOr<std::unique_ptr<SteerProgram>> SteerProgram::Load(
    const SteerOptions& options) {
  constexpr std::string_view kWhat = "steering";
  constexpr uint32_t kMaxFastPathFlows = 1u << 24;
  if (options.fastpath_flows == 0 ||
      options.fastpath_flows > kMaxFastPathFlows) {
    return absl::InvalidArgumentError(
        absl::StrCat("fast-path flow map size ", options.fastpath_flows,
                     ": must be 1..", kMaxFastPathFlows));
  }
  std::span<const unsigned char> bytes = ::anylb::bpf::SteerObject();
  bpf_object_open_opts open_opts = {};
  open_opts.sz = sizeof(open_opts);
  open_opts.object_name = "anylb_steer";
  bpf_object* object =
      bpf_object__open_mem(bytes.data(), bytes.size(), &open_opts);
  if (object == nullptr) {
    return ErrnoError(errno, "opening the embedded steering BPF object");
  }
  BpfObjectPtr owner(object, bpf_object__close);
  bpf_map* flows =
      bpf_object__find_map_by_name(object, ANYLB_FASTPATH_MAP_FLOWS);
  if (flows == nullptr) {
    return absl::InternalError("steering BPF object has no fast-path map");
  }
  if (int error = bpf_map__set_max_entries(flows, options.fastpath_flows);
      error != 0) {
    return ErrnoError(error, "sizing the fast-path flow map");
  }
  if (int error = bpf_object__load(object); error != 0) {
    return ErrnoError(error, "loading the steering BPF object");
  }
  Fds fds;
  ASSIGN_OR_RETURN(fds.program, ProgramFd(object, ANYLB_STEER_PROG_XDP, kWhat));
  ASSIGN_OR_RETURN(fds.vips, MapFd(object, ANYLB_STEER_MAP_VIPS, kWhat));
  ASSIGN_OR_RETURN(fds.vip_addrs,
                   MapFd(object, ANYLB_STEER_MAP_VIP_ADDRS, kWhat));
  ASSIGN_OR_RETURN(fds.locals, MapFd(object, ANYLB_STEER_MAP_LOCALS, kWhat));
  ASSIGN_OR_RETURN(fds.nat_backends,
                   MapFd(object, ANYLB_STEER_MAP_NAT_BACKENDS, kWhat));
  ASSIGN_OR_RETURN(fds.xsks, MapFd(object, ANYLB_STEER_MAP_XSKS, kWhat));
  ASSIGN_OR_RETURN(fds.counters,
                   MapFd(object, ANYLB_STEER_MAP_COUNTERS, kWhat));
  ASSIGN_OR_RETURN(fds.tx_ports,
                   MapFd(object, ANYLB_FASTPATH_MAP_TX_PORTS, kWhat));
  FastPathMaps fastpath;
  ASSIGN_OR_RETURN(fastpath.flows,
                   MapFd(object, ANYLB_FASTPATH_MAP_FLOWS, kWhat));
  ASSIGN_OR_RETURN(fastpath.generations,
                   MapFd(object, ANYLB_FASTPATH_MAP_GENERATIONS, kWhat));
  ASSIGN_OR_RETURN(fastpath.traffic,
                   MapFd(object, ANYLB_FASTPATH_MAP_TRAFFIC, kWhat));
  fastpath.flow_capacity = options.fastpath_flows;
  return std::unique_ptr<SteerProgram>(
      new SteerProgram(owner.release(), fds, fastpath));
}

absl::Status SteerProgram::AddFastPathTxPort(int ifindex) {
  uint32_t key = static_cast<uint32_t>(ifindex);
  uint32_t value = key;
  if (int error = bpf_map_update_elem(tx_ports_fd_, &key, &value, BPF_ANY);
      error != 0) {
    return UpdateError(error,
                       absl::StrCat("adding interface index ", ifindex,
                                    " to the fast path's egress ports"),
                       ANYLB_FASTPATH_MAX_TX_PORTS);
  }
  return absl::OkStatus();
}

absl::Status SteerProgram::AddVip(const IpAddress& address, uint16_t port,
                                  uint8_t proto) {
  SteerVip vip{address, port, proto};
  if (vips_.contains(vip)) return absl::OkStatus();
  std::string what = absl::StrCat("adding ", VipText(vip), " to the steer map");
  anylb_steer_l4_key key = L4Key(address, port, proto);
  anylb_steer_value value = {};
  if (int error = bpf_map_update_elem(vips_fd_, &key, &value, BPF_ANY);
      error != 0) {
    return UpdateError(error, what, ANYLB_STEER_MAX_VIPS);
  }
  uint32_t& count = vip_address_counts_[address];
  anylb_steer_addr_key addr_key = AddrKey(address);
  anylb_steer_value addr_value = {count + 1};
  if (int error =
          bpf_map_update_elem(vip_addrs_fd_, &addr_key, &addr_value, BPF_ANY);
      error != 0) {
    // Undo the first half so map and bookkeeping agree.
    bpf_map_delete_elem(vips_fd_, &key);
    if (count == 0) vip_address_counts_.erase(address);
    return UpdateError(error, what, ANYLB_STEER_MAX_VIP_ADDRS);
  }
  ++count;
  vips_.insert(vip);
  return absl::OkStatus();
}

absl::Status SteerProgram::RemoveVip(const IpAddress& address, uint16_t port,
                                     uint8_t proto) {
  SteerVip vip{address, port, proto};
  std::string what =
      absl::StrCat("removing ", VipText(vip), " from the steer map");
  if (!vips_.contains(vip)) {
    return absl::NotFoundError(absl::StrCat(what, ": not there"));
  }
  anylb_steer_l4_key key = L4Key(address, port, proto);
  if (int error = bpf_map_delete_elem(vips_fd_, &key); error != 0) {
    return ErrnoError(error, what);
  }
  vips_.erase(vip);
  uint32_t& count = vip_address_counts_[address];
  --count;
  anylb_steer_addr_key addr_key = AddrKey(address);
  int error;
  if (count == 0) {
    vip_address_counts_.erase(address);
    error = bpf_map_delete_elem(vip_addrs_fd_, &addr_key);
  } else {
    anylb_steer_value addr_value = {count};
    error =
        bpf_map_update_elem(vip_addrs_fd_, &addr_key, &addr_value, BPF_EXIST);
  }
  if (error != 0) {
    return ErrnoError(error, absl::StrCat(what, ": updating its address"));
  }
  return absl::OkStatus();
}

absl::Status SteerProgram::ReplaceVips(const std::set<SteerVip>& vips) {
  absl::Status first;
  for (const SteerVip& vip : vips) {
    absl::Status status = AddVip(vip.address, vip.port, vip.proto);
    if (first.ok()) first = status;
  }
  std::vector<SteerVip> stale;
  for (const SteerVip& vip : vips_) {
    if (!vips.contains(vip)) stale.push_back(vip);
  }
  for (const SteerVip& vip : stale) {
    absl::Status status = RemoveVip(vip.address, vip.port, vip.proto);
    if (first.ok()) first = status;
  }
  return first;
}

// The map and detach methods change kernel state this object owns, through
// file descriptors: they are not const even though no member changes.
// NOLINTBEGIN(readability-make-member-function-const)

absl::Status SteerProgram::AddLocalAddress(const IpAddress& address) {
  anylb_steer_addr_key key = AddrKey(address);
  anylb_steer_value value = {};
  if (int error = bpf_map_update_elem(locals_fd_, &key, &value, BPF_ANY);
      error != 0) {
    return UpdateError(error,
                       absl::StrCat("adding local address ", address.ToString(),
                                    " to the steer map"),
                       ANYLB_STEER_MAX_LOCALS);
  }
  locals_.insert(address);
  return absl::OkStatus();
}

absl::Status SteerProgram::RemoveLocalAddress(const IpAddress& address) {
  anylb_steer_addr_key key = AddrKey(address);
  if (int error = bpf_map_delete_elem(locals_fd_, &key); error != 0) {
    return ErrnoError(
        error, absl::StrCat("removing local address ", address.ToString(),
                            " from the steer map"));
  }
  locals_.erase(address);
  return absl::OkStatus();
}

absl::Status SteerProgram::AddNatBackend(const Endpoint& backend,
                                         uint8_t proto) {
  anylb_steer_l4_key key = L4Key(backend.address(), backend.port(), proto);
  anylb_steer_value value = {};
  if (int error = bpf_map_update_elem(nat_backends_fd_, &key, &value, BPF_ANY);
      error != 0) {
    return UpdateError(error,
                       absl::StrCat("adding NAT backend ", backend.ToString(),
                                    " proto ", proto, " to the steer map"),
                       ANYLB_STEER_MAX_NAT_BACKENDS);
  }
  nat_backends_.insert({backend, proto});
  return absl::OkStatus();
}

absl::Status SteerProgram::RemoveNatBackend(const Endpoint& backend,
                                            uint8_t proto) {
  anylb_steer_l4_key key = L4Key(backend.address(), backend.port(), proto);
  if (int error = bpf_map_delete_elem(nat_backends_fd_, &key); error != 0) {
    return ErrnoError(error,
                      absl::StrCat("removing NAT backend ", backend.ToString(),
                                   " proto ", proto, " from the steer map"));
  }
  nat_backends_.erase({backend, proto});
  return absl::OkStatus();
}

absl::Status SteerProgram::ReplaceLocalAddresses(
    const std::set<IpAddress>& addresses) {
  absl::Status first;
  for (const IpAddress& address : addresses) {
    absl::Status status = AddLocalAddress(address);
    if (first.ok()) first = status;
  }
  std::vector<IpAddress> stale;
  for (const IpAddress& address : locals_) {
    if (!addresses.contains(address)) stale.push_back(address);
  }
  for (const IpAddress& address : stale) {
    absl::Status status = RemoveLocalAddress(address);
    if (first.ok()) first = status;
  }
  return first;
}

absl::Status SteerProgram::ReplaceNatBackends(
    const std::set<SteerNatBackend>& backends) {
  absl::Status first;
  for (const SteerNatBackend& entry : backends) {
    absl::Status status = AddNatBackend(entry.backend, entry.proto);
    if (first.ok()) first = status;
  }
  std::vector<SteerNatBackend> stale;
  for (const SteerNatBackend& entry : nat_backends_) {
    if (!backends.contains(entry)) stale.push_back(entry);
  }
  for (const SteerNatBackend& entry : stale) {
    absl::Status status = RemoveNatBackend(entry.backend, entry.proto);
    if (first.ok()) first = status;
  }
  return first;
}

// NOLINTEND(readability-make-member-function-const)

absl::Status SteerProgram::Attach(std::string_view interface, SteerMode mode) {
  std::string what =
      absl::StrCat("attaching XDP steering (",
                   mode == SteerMode::kXdpNative ? "native" : "generic",
                   ") to ", Quote(interface));
  for (const Attachment& attachment : attachments_) {
    if (attachment.interface == interface) {
      return absl::AlreadyExistsError(
          absl::StrCat(what, ": already attached there"));
    }
  }
  Attachment attachment;
  attachment.interface = std::string(interface);
  attachment.mode = mode;
  attachment.ifindex =
      static_cast<int>(if_nametoindex(attachment.interface.c_str()));
  if (attachment.ifindex == 0) {
    return absl::NotFoundError(
        absl::StrCat(what, ": no such interface in this network namespace"));
  }
  bpf_xdp_query_opts query = {};
  query.sz = sizeof(query);
  if (int error = bpf_xdp_query(attachment.ifindex, 0, &query); error != 0) {
    return ErrnoError(error, absl::StrCat(what, ": querying XDP programs"));
  }
  // One program per XDP mode. Ours, left by a killed process, goes; anyone
  // else's stays and we give up.
  const std::pair<uint32_t, uint32_t> attached[] = {
      {query.drv_prog_id, XDP_FLAGS_DRV_MODE},
      {query.skb_prog_id, XDP_FLAGS_SKB_MODE},
      {query.hw_prog_id, XDP_FLAGS_HW_MODE},
  };
  for (const auto& [id, flag] : attached) {
    if (id == 0) continue;
    std::string name = ProgramName(id);
    if (name != ANYLB_STEER_PROG_XDP) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": another XDP program (\"", name, "\", id ", id,
                       ") is attached; not replacing it"));
    }
    if (int error = bpf_xdp_detach(attachment.ifindex, flag, nullptr);
        error != 0) {
      return ErrnoError(error,
                        absl::StrCat(what,
                                     ": detaching a stale steering program "
                                     "(id ",
                                     id, ")"));
    }
  }
  uint32_t flags = XdpModeFlag(mode) | XDP_FLAGS_UPDATE_IF_NOEXIST;
  if (int error =
          bpf_xdp_attach(attachment.ifindex, program_fd_, flags, nullptr);
      error != 0) {
    if (error == -EOPNOTSUPP && mode == SteerMode::kXdpNative) {
      return ErrnoError(error,
                        absl::StrCat(what,
                                     ": the driver has no native XDP (try "
                                     "generic mode)"));
    }
    return ErrnoError(error, what);
  }
  attachments_.push_back(std::move(attachment));
  return absl::OkStatus();
}

absl::Status SteerProgram::Detach(std::string_view interface) {
  auto it = std::find_if(
      attachments_.begin(), attachments_.end(),
      [&](const Attachment& a) { return a.interface == interface; });
  if (it == attachments_.end()) {
    return absl::NotFoundError(
        absl::StrCat("XDP steering is not attached to ", Quote(interface)));
  }
  Attachment attachment = std::move(*it);
  attachments_.erase(it);
  return DetachOne(attachment);
}

absl::Status SteerProgram::DetachAll() {
  absl::Status first;
  while (!attachments_.empty()) {
    Attachment attachment = std::move(attachments_.back());
    attachments_.pop_back();
    absl::Status status = DetachOne(attachment);
    if (first.ok()) first = status;
  }
  return first;
}

// NOLINTNEXTLINE(readability-make-member-function-const)
absl::Status SteerProgram::DetachOne(const Attachment& attachment) {
  return DetachXdpIfOurs(attachment.ifindex, XdpModeFlag(attachment.mode),
                         program_fd_,
                         absl::StrCat("detaching XDP steering from ",
                                      Quote(attachment.interface)));
}

absl::StatusOr<SteerCounters> SteerProgram::ReadCounters() const {
  SteerCounters counters;
  RETURN_IF_ERROR(ReadPerCpuCounters(counters_fd_, ANYLB_STEER_CNT_MAX,
                                     "reading steering counters",
                                     counters.values.data()));
  return counters;
}

}  // namespace anylb::dataplane::bpf
