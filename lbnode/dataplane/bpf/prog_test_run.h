// Test-only: one run of a loaded BPF program on a frame through
// BPF_PROG_TEST_RUN (decap_test, steer_test). Needs root (CAP_BPF +
// CAP_NET_ADMIN). Stateless; safe from any thread.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_PROG_TEST_RUN_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_PROG_TEST_RUN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace anylb::dataplane::bpf {

// TestRunResult is the program's return code (XDP_* or TC_ACT_*) and the
// frame as the program left it.
struct TestRunResult {
  int action = -1;
  std::vector<uint8_t> output;
};

// ProgTestRun feeds `input` once to the program `program_fd` through
// BPF_PROG_TEST_RUN (room for 256 bytes of growth). A refusal by the kernel
// is the errno's status, "BPF_PROG_TEST_RUN: ...".
absl::StatusOr<TestRunResult> ProgTestRun(int program_fd,
                                          const std::vector<uint8_t>& input);

}  // namespace anylb::dataplane::bpf

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_PROG_TEST_RUN_H_
