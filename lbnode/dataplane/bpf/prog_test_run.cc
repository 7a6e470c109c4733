#include "lbnode/dataplane/bpf/prog_test_run.h"

#include <bpf/bpf.h>

#include "absl/status/status.h"

namespace anylb::dataplane::bpf {

absl::StatusOr<TestRunResult> ProgTestRun(int program_fd,
                                          const std::vector<uint8_t>& input) {
  TestRunResult result;
  result.output.resize(input.size() + 256);
  bpf_test_run_opts opts = {};
  opts.sz = sizeof(opts);
  opts.data_in = input.data();
  opts.data_size_in = static_cast<uint32_t>(input.size());
  opts.data_out = result.output.data();
  opts.data_size_out = static_cast<uint32_t>(result.output.size());
  opts.repeat = 1;
  if (int error = bpf_prog_test_run_opts(program_fd, &opts); error != 0) {
    return absl::ErrnoToStatus(-error, "BPF_PROG_TEST_RUN");
  }
  result.action = static_cast<int>(opts.retval);
  result.output.resize(opts.data_size_out);
  return result;
}

}  // namespace anylb::dataplane::bpf
