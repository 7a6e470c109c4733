// Small helpers every integration test needs: where Bazel put a binary,
// reading and atomically writing files, and summing Prometheus samples.
//
// Threading: pure functions (files aside); any thread.

#ifndef ANYLB_TESTS_INTEGRATION_ITEST_UTIL_H_
#define ANYLB_TESTS_INTEGRATION_ITEST_UTIL_H_

#include <string>

#include "absl/status/status.h"

namespace anylb::itest {

// Runfile is `path` (workspace-relative, e.g. "lbnode/lbnode") in the
// test's runfiles ($TEST_SRCDIR/anylb/...; "./anylb/..." outside Bazel).
std::string Runfile(const std::string& path);

// ReadFile is the whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);

// WriteFile replaces `path` with `text` atomically (write, then rename), so
// a process re-reading it never sees half a file.
absl::Status WriteFile(const std::string& path, const std::string& text);

// MetricSum adds up the samples of `name` whose labels contain `label`
// ("" for all) on a Prometheus text page (`name{labels} value`).
double MetricSum(const std::string& page, const std::string& name,
                 const std::string& label);

}  // namespace anylb::itest

#endif  // ANYLB_TESTS_INTEGRATION_ITEST_UTIL_H_
