#include "lbnode/dataplane/bpf/bpf_object_util.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

}  // namespace anylb::dataplane::bpf
