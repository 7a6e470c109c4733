#include "lbnode/dataplane/bpf/bpf_object_util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace anylb::dataplane::bpf {

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", ToAbsl(text), "\"");
}

absl::Status ErrnoError(int error, std::string_view what) {
  error = std::abs(error);
  char buffer[128];
  // GNU strerror_r returns the message, maybe not in `buffer`.
  const char* text = strerror_r(error, buffer, sizeof(buffer));
  std::string message = absl::StrCat(ToAbsl(what), ": ", text);
  if (error == EPERM || error == EACCES) message += " (need root?)";
  return {absl::ErrnoToStatusCode(error), message};
}

std::string ProgramName(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  bpf_prog_info info = {};
  uint32_t length = sizeof(info);
  std::string name;
  if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0) name = info.name;
  close(fd);
  return name;
}

absl::StatusOr<BpfObjectPtr> OpenAndLoadEmbedded(
    std::span<const unsigned char> bytes, const char* object_name,
    std::string_view what) {
  bpf_object_open_opts opts = {};
  opts.sz = sizeof(opts);
  opts.object_name = object_name;
  bpf_object* object = bpf_object__open_mem(bytes.data(), bytes.size(), &opts);
  if (object == nullptr) {
    return ErrnoError(errno, absl::StrCat("opening the embedded ", ToAbsl(what),
                                          " BPF object"));
  }
  // From here on `object` is closed on every path.
  BpfObjectPtr owner(object, bpf_object__close);
  if (int error = bpf_object__load(object); error != 0) {
    return ErrnoError(
        error, absl::StrCat("loading the ", ToAbsl(what), " BPF object"));
  }
  return owner;
}

absl::StatusOr<int> ProgramFd(bpf_object* object, const char* name,
                              std::string_view what) {
  bpf_program* program = bpf_object__find_program_by_name(object, name);
  if (program == nullptr) {
    return absl::InternalError(
        absl::StrCat(ToAbsl(what), " BPF object has no program ", name));
  }
  return bpf_program__fd(program);
}

absl::StatusOr<int> MapFd(bpf_object* object, const char* name,
                          std::string_view what) {
  bpf_map* map = bpf_object__find_map_by_name(object, name);
  if (map == nullptr) {
    return absl::InternalError(
        absl::StrCat(ToAbsl(what), " BPF object has no map ", name));
  }
  return bpf_map__fd(map);
}

absl::Status DetachXdpIfOurs(int ifindex, uint32_t flags, int prog_fd,
                             std::string_view what) {
  bpf_xdp_attach_opts opts = {};
  opts.sz = sizeof(opts);
  opts.old_prog_fd = prog_fd;
  // libbpf logs the kernel's complaint when another program holds the
  // slot; that is an expected case here.
  libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  int error = bpf_xdp_detach(ifindex, flags, &opts);
  libbpf_set_print(previous);
  if (error != 0 && error != -EEXIST && error != -ENODEV) {
    return ErrnoError(error, what);
  }
  return absl::OkStatus();
}

absl::Status ReadPerCpuCounters(int map_fd, uint32_t count,
                                std::string_view what, uint64_t* values) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return ErrnoError(cpus, "counting possible CPUs");
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  for (uint32_t index = 0; index < count; ++index) {
    if (int error = bpf_map_lookup_elem(map_fd, &index, per_cpu.data());
        error != 0) {
      return ErrnoError(error, what);
    }
    values[index] = 0;
    for (uint64_t value : per_cpu) values[index] += value;
  }
  return absl::OkStatus();
}

}  // namespace anylb::dataplane::bpf
