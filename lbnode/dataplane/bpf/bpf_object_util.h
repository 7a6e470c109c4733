// Helpers the BPF program loaders (decap, steer) share: one place that turns
// libbpf's errno returns into absl::Status and opens embedded objects.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_BPF_OBJECT_UTIL_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_BPF_OBJECT_UTIL_H_

#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anylb::dataplane::bpf {

// ToAbsl views a std::string_view as Debian abseil's own string_view.
inline absl::string_view ToAbsl(std::string_view text) {
  return {text.data(), text.size()};
}

// Quote returns `text` in double quotes, for interface names in messages.
std::string Quote(std::string_view text);

// ErrnoError turns a libbpf/kernel error (a negative or positive errno) into
// a status: "<what>: <errno text>", plus a hint for permission errors.
absl::Status ErrnoError(int error, std::string_view what);

// ProgramName returns the name of the loaded BPF program with id `id`, or
// "" if it is gone (or cannot be read).
std::string ProgramName(uint32_t id);

// BpfObjectPtr owns a libbpf object; it closes it (and so unloads what no
// attachment holds) when it goes.
using BpfObjectPtr = std::unique_ptr<bpf_object, void (*)(bpf_object*)>;

// OpenAndLoadEmbedded opens an object embedded by lb_bpf_program and loads
// its programs and maps into the kernel. `what` names it in errors
// ("decap" → "loading the decap BPF object: Operation not permitted ...").
absl::StatusOr<BpfObjectPtr> OpenAndLoadEmbedded(
    std::span<const unsigned char> bytes, const char* object_name,
    std::string_view what);

// ProgramFd and MapFd find a loaded program or map by name; a missing one is
// INTERNAL (the object and its C++ loader disagree).
absl::StatusOr<int> ProgramFd(bpf_object* object, const char* name,
                              std::string_view what);
absl::StatusOr<int> MapFd(bpf_object* object, const char* name,
                          std::string_view what);

// DetachXdpIfOurs removes the program `prog_fd` from the XDP slot `flags`
// (XDP_FLAGS_DRV_MODE / XDP_FLAGS_SKB_MODE) of `ifindex`, and only that
// program: the kernel checks it is still the one attached. A slot that now
// holds another program (EEXIST) or an interface that is gone (ENODEV) is
// not an error: there is nothing of ours to undo. `what` names the
// attachment in errors ("detaching XDP steering from \"eth0\"").
absl::Status DetachXdpIfOurs(int ifindex, uint32_t flags, int prog_fd,
                             std::string_view what);

// ReadPerCpuCounters sums a per-CPU array map of __u64 counters, indices
// 0..count-1, over the CPUs into `values` (count entries). `what` names
// them in errors ("reading decap counters").
absl::Status ReadPerCpuCounters(int map_fd, uint32_t count,
                                std::string_view what, uint64_t* values);

}  // namespace anylb::dataplane::bpf

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_BPF_OBJECT_UTIL_H_
