// ErrorList collects the problems found in one config, so that the operator
// sees all of them at once (up to a limit), one per line.
//
// Threading: a plain value; one per validation run.

#ifndef ANYLB_COMMON_CONFIG_ERROR_LIST_H_
#define ANYLB_COMMON_CONFIG_ERROR_LIST_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace anylb::config {

// ErrorList: see the file comment.
class ErrorList {
 public:
  // `limit` is how many lines ToStatus() lists.
  explicit ErrorList(int limit) : limit_(limit) {}

  // Add records one problem (one line, without a trailing newline).
  void Add(std::string line) {
    ++count_;
    if (static_cast<int>(lines_.size()) < limit_) {
      lines_.push_back(std::move(line));
    }
  }

  bool empty() const { return count_ == 0; }
  int count() const { return count_; }

  // ToStatus is OK when nothing was added, else INVALID_ARGUMENT with one
  // line per problem and "... and N more problems" past the limit.
  absl::Status ToStatus() const {
    if (count_ == 0) return absl::OkStatus();
    std::string text = absl::StrJoin(lines_, "\n");
    if (count_ > static_cast<int>(lines_.size())) {
      absl::StrAppend(&text, "\n... and ", count_ - lines_.size(),
                      " more problems");
    }
    return absl::InvalidArgumentError(text);
  }

 private:
  int limit_;
  int count_ = 0;
  std::vector<std::string> lines_;
};

}  // namespace anylb::config

#endif  // ANYLB_COMMON_CONFIG_ERROR_LIST_H_
