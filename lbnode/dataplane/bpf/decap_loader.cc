#include "lbnode/dataplane/bpf/decap_loader.h"

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
#include "lbnode/dataplane/bpf/decap_embed.h"

namespace anylb::dataplane::bpf {
namespace {

// Where our tc filter sits on the clsact ingress hook. A fixed place lets a
// restarted lb_decap find (and replace) a filter its killed predecessor left.
constexpr uint32_t kTcHandle = 0xdeca;
constexpr uint32_t kTcPriority = 1;

constexpr std::string_view kCounterNames[] = {
#define ANYLB_DECAP_COUNTER_NAME_(suffix, name) name,
    ANYLB_DECAP_COUNTERS(ANYLB_DECAP_COUNTER_NAME_)
#undef ANYLB_DECAP_COUNTER_NAME_
};
static_assert(std::size(kCounterNames) == ANYLB_DECAP_CNT_MAX);

std::string ModeText(DecapMode mode) {
  return mode == DecapMode::kTc ? "tc" : "XDP";
}

uint32_t XdpModeFlag(DecapMode mode) {
  return mode == DecapMode::kXdpNative ? XDP_FLAGS_DRV_MODE
                                       : XDP_FLAGS_SKB_MODE;
}

// TcFilterProgramId returns the id of the program in our tc filter slot on
// `hook`, or 0 if the slot is empty. libbpf logs a kernel "cannot find
// filter" message for an empty slot; the expected case is silenced here.
uint32_t TcFilterProgramId(const bpf_tc_hook& hook) {
  bpf_tc_opts opts = {};
  opts.sz = sizeof(opts);
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  int error = bpf_tc_query(&hook, &opts);
  libbpf_set_print(previous);
  return error == 0 ? opts.prog_id : 0;
}

// ProgramId returns the kernel's id for the program behind `fd`, or 0.
uint32_t ProgramId(int fd) {
  bpf_prog_info info = {};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return 0;
  return info.id;
}

anylb_decap_dst_key DstKey(const IpAddress& address) {
  anylb_decap_dst_key key;
  std::memset(&key, 0, sizeof(key));
  key.family = address.is_v4() ? ANYLB_DECAP_FAMILY_V4 : ANYLB_DECAP_FAMILY_V6;
  std::span<const uint8_t> bytes = address.bytes();
  std::copy(bytes.begin(), bytes.end(), key.addr);
  return key;
}

}  // namespace

absl::StatusOr<DecapMode> ParseDecapMode(std::string_view text) {
  if (text == "xdp") return DecapMode::kXdpNative;
  if (text == "xdp-generic") return DecapMode::kXdpGeneric;
  if (text == "tc") return DecapMode::kTc;
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid decap mode ", Quote(text), ": want xdp, xdp-generic or tc"));
}

std::string_view DecapModeName(DecapMode mode) {
  switch (mode) {
    case DecapMode::kXdpNative:
      return "xdp";
    case DecapMode::kXdpGeneric:
      return "xdp-generic";
    case DecapMode::kTc:
      return "tc";
  }
  return "?";
}

std::string_view DecapCounters::Name(anylb_decap_counter counter) {
  return kCounterNames[counter];
}

std::string DecapCounters::ToString() const {
  std::string text;
  for (int i = 0; i < ANYLB_DECAP_CNT_MAX; ++i) {
    absl::StrAppend(&text, ToAbsl(kCounterNames[i]), " ", values[i], "\n");
  }
  return text;
}

DecapProgram::DecapProgram(bpf_object* object, int xdp_fd, int tc_fd,
                           int dsts_fd, int gue_ports_fd, int counters_fd)
    : object_(object),
      xdp_fd_(xdp_fd),
      tc_fd_(tc_fd),
      dsts_fd_(dsts_fd),
      gue_ports_fd_(gue_ports_fd),
      counters_fd_(counters_fd) {}

DecapProgram::~DecapProgram() {
  if (absl::Status status = DetachAll(); !status.ok()) {
    std::fprintf(stderr, "decap: %s\n", status.ToString().c_str());
  }
  bpf_object__close(object_);
}

absl::StatusOr<std::unique_ptr<DecapProgram>> DecapProgram::Load() {
  ASSIGN_OR_RETURN(
      BpfObjectPtr owner,
      OpenAndLoadEmbedded(::anylb::bpf::DecapObject(), "anylb_decap", "decap"));
  bpf_object* object = owner.get();
  ASSIGN_OR_RETURN(int xdp_fd,
                   ProgramFd(object, ANYLB_DECAP_PROG_XDP, "decap"));
  ASSIGN_OR_RETURN(int tc_fd, ProgramFd(object, ANYLB_DECAP_PROG_TC, "decap"));
  ASSIGN_OR_RETURN(int dsts_fd, MapFd(object, ANYLB_DECAP_MAP_DSTS, "decap"));
  ASSIGN_OR_RETURN(int gue_ports_fd,
                   MapFd(object, ANYLB_DECAP_MAP_GUE_PORTS, "decap"));
  ASSIGN_OR_RETURN(int counters_fd,
                   MapFd(object, ANYLB_DECAP_MAP_COUNTERS, "decap"));
  return std::unique_ptr<DecapProgram>(new DecapProgram(
      owner.release(), xdp_fd, tc_fd, dsts_fd, gue_ports_fd, counters_fd));
}

// The map and attach methods change kernel state this object owns, through
// file descriptors: they are not const even though no member changes.
// NOLINTBEGIN(readability-make-member-function-const)

absl::Status DecapProgram::AddLocalAddress(const IpAddress& address) {
  anylb_decap_dst_key key = DstKey(address);
  anylb_decap_dst_value value = {};
  if (int error = bpf_map_update_elem(dsts_fd_, &key, &value, BPF_ANY);
      error != 0) {
    std::string what = absl::StrCat("adding local address ", address.ToString(),
                                    " to the decap map");
    if (error == -E2BIG) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what, ": at most ", ANYLB_DECAP_MAX_DSTS, " addresses"));
    }
    return ErrnoError(error, what);
  }
  return absl::OkStatus();
}

absl::Status DecapProgram::RemoveLocalAddress(const IpAddress& address) {
  anylb_decap_dst_key key = DstKey(address);
  if (int error = bpf_map_delete_elem(dsts_fd_, &key); error != 0) {
    return ErrnoError(
        error, absl::StrCat("removing local address ", address.ToString(),
                            " from the decap map"));
  }
  return absl::OkStatus();
}

absl::Status DecapProgram::AddGuePort(uint16_t port) {
  uint8_t enabled = 1;
  if (int error = bpf_map_update_elem(gue_ports_fd_, &port, &enabled, BPF_ANY);
      error != 0) {
    std::string what = absl::StrCat("adding GUE port ", port);
    if (error == -E2BIG) {
      return absl::ResourceExhaustedError(absl::StrCat(
          what, ": at most ", ANYLB_DECAP_MAX_GUE_PORTS, " ports"));
    }
    return ErrnoError(error, what);
  }
  return absl::OkStatus();
}

absl::Status DecapProgram::RemoveGuePort(uint16_t port) {
  if (int error = bpf_map_delete_elem(gue_ports_fd_, &port); error != 0) {
    return ErrnoError(error, absl::StrCat("removing GUE port ", port));
  }
  return absl::OkStatus();
}

absl::Status DecapProgram::Attach(std::string_view interface, DecapMode mode) {
  std::string what = absl::StrCat("attaching ", ModeText(mode), " decap to ",
                                  Quote(interface));
  for (const Attachment& attachment : attachments_) {
    if (attachment.interface == interface) {
      return absl::AlreadyExistsError(
          absl::StrCat(what, ": already attached there (",
                       ToAbsl(DecapModeName(attachment.mode)), ")"));
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
  absl::Status status =
      mode == DecapMode::kTc ? AttachTc(attachment) : AttachXdp(attachment);
  if (!status.ok()) {
    return {status.code(), absl::StrCat(what, ": ", status.message())};
  }
  attachments_.push_back(std::move(attachment));
  return absl::OkStatus();
}

absl::Status DecapProgram::AttachXdp(Attachment& attachment) {
  bpf_xdp_query_opts query = {};
  query.sz = sizeof(query);
  if (int error = bpf_xdp_query(attachment.ifindex, 0, &query); error != 0) {
    return ErrnoError(error, "querying XDP programs");
  }
  // One program per XDP mode. Ours, left by a killed lb_decap, goes; anyone
  // else's stays and we give up.
  const std::pair<uint32_t, uint32_t> attached[] = {
      {query.drv_prog_id, XDP_FLAGS_DRV_MODE},
      {query.skb_prog_id, XDP_FLAGS_SKB_MODE},
      {query.hw_prog_id, XDP_FLAGS_HW_MODE},
  };
  for (const auto& [id, flag] : attached) {
    if (id == 0) continue;
    std::string name = ProgramName(id);
    if (name != ANYLB_DECAP_PROG_XDP) {
      return absl::FailedPreconditionError(
          absl::StrCat("another XDP program (\"", name, "\", id ", id,
                       ") is attached; not replacing it"));
    }
    if (int error = bpf_xdp_detach(attachment.ifindex, flag, nullptr);
        error != 0) {
      return ErrnoError(
          error, absl::StrCat("detaching a stale decap program (id ", id, ")"));
    }
  }
  uint32_t flags = XdpModeFlag(attachment.mode) | XDP_FLAGS_UPDATE_IF_NOEXIST;
  if (int error = bpf_xdp_attach(attachment.ifindex, xdp_fd_, flags, nullptr);
      error != 0) {
    if (error == -EOPNOTSUPP && attachment.mode == DecapMode::kXdpNative) {
      return ErrnoError(error,
                        "the driver has no native XDP (try xdp-generic or tc)");
    }
    return ErrnoError(error, "bpf_xdp_attach");
  }
  return absl::OkStatus();
}

absl::Status DecapProgram::AttachTc(Attachment& attachment) {
  bpf_tc_hook hook = {};
  hook.sz = sizeof(hook);
  hook.ifindex = attachment.ifindex;
  hook.attach_point = BPF_TC_INGRESS;
  // libbpf logs the kernel's complaint about an existing clsact qdisc;
  // that is an expected case here.
  libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  int error = bpf_tc_hook_create(&hook);
  libbpf_set_print(previous);
  if (error != 0 && error != -EEXIST) {
    return ErrnoError(error, "creating the clsact qdisc");
  }
  attachment.created_clsact = error == 0;

  if (uint32_t id = TcFilterProgramId(hook); id != 0) {
    std::string name = ProgramName(id);
    if (name != ANYLB_DECAP_PROG_TC) {
      return absl::FailedPreconditionError(
          absl::StrCat("another tc filter (\"", name, "\", id ", id,
                       ") holds ingress handle ", kTcHandle, " priority ",
                       kTcPriority, "; not replacing it"));
    }
  }
  bpf_tc_opts opts = {};
  opts.sz = sizeof(opts);
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  opts.prog_fd = tc_fd_;
  opts.flags = BPF_TC_F_REPLACE;
  if (error = bpf_tc_attach(&hook, &opts); error != 0) {
    if (attachment.created_clsact) {
      hook.attach_point =
          static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
    return ErrnoError(error, "bpf_tc_attach");
  }
  return absl::OkStatus();
}

absl::Status DecapProgram::Detach(std::string_view interface) {
  auto it = std::find_if(
      attachments_.begin(), attachments_.end(),
      [&](const Attachment& a) { return a.interface == interface; });
  if (it == attachments_.end()) {
    return absl::NotFoundError(
        absl::StrCat("decap is not attached to ", Quote(interface)));
  }
  Attachment attachment = std::move(*it);
  attachments_.erase(it);
  return DetachOne(attachment);
}

absl::Status DecapProgram::DetachAll() {
  absl::Status first;
  while (!attachments_.empty()) {
    Attachment attachment = std::move(attachments_.back());
    attachments_.pop_back();
    absl::Status status = DetachOne(attachment);
    if (first.ok()) first = status;
  }
  return first;
}

absl::Status DecapProgram::DetachOne(const Attachment& attachment) {
  std::string what = absl::StrCat("detaching ", ModeText(attachment.mode),
                                  " decap from ", Quote(attachment.interface));
  if (attachment.mode != DecapMode::kTc) {
    // A slot another DecapProgram took over is not ours to clear.
    return DetachXdpIfOurs(attachment.ifindex, XdpModeFlag(attachment.mode),
                           xdp_fd_, what);
  }
  bpf_tc_hook hook = {};
  hook.sz = sizeof(hook);
  hook.ifindex = attachment.ifindex;
  hook.attach_point = BPF_TC_INGRESS;
  // Another DecapProgram may have replaced ours in the slot (two lb_decap
  // on one interface); its filter is not ours to remove.
  uint32_t id = TcFilterProgramId(hook);
  if (id == 0 || id != ProgramId(tc_fd_)) return absl::OkStatus();
  bpf_tc_opts opts = {};
  opts.sz = sizeof(opts);
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  if (int error = bpf_tc_detach(&hook, &opts); error != 0) {
    return ErrnoError(error, what);
  }
  if (attachment.created_clsact) {
    hook.attach_point =
        static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    if (int error = bpf_tc_hook_destroy(&hook);
        error != 0 && error != -ENOENT) {
      return ErrnoError(error,
                        absl::StrCat(what, ": removing the clsact qdisc"));
    }
  }
  return absl::OkStatus();
}

// NOLINTEND(readability-make-member-function-const)

absl::StatusOr<DecapCounters> DecapProgram::ReadCounters() const {
  DecapCounters counters;
  RETURN_IF_ERROR(ReadPerCpuCounters(counters_fd_, ANYLB_DECAP_CNT_MAX,
                                     "reading decap counters",
                                     counters.values.data()));
  return counters;
}

}  // namespace anylb::dataplane::bpf
