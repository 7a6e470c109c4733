// Leveled logging to stderr for the daemons (lbnode, the controller).
//
//   LB_LOG(kInfo) << "loaded " << path << ": " << n << " services";
//   LB_LOG(kError) << status;  // absl::Status prints itself
//
// Each line is built in a buffer and written with one write(2), so lines
// from several threads never interleave:
//
//   2026-11-24T02:40:01.123456Z I main.cc:42] loaded /etc/anylb/lbnode.yaml
//
// Messages below the process-wide level (SetLogLevel, default kInfo) cost a
// level comparison and nothing else: the stream expression is not evaluated.
// Not for the packet path: workers count, the control thread logs.

#ifndef ANYLB_COMMON_LOG_H_
#define ANYLB_COMMON_LOG_H_

#include <atomic>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace anylb::log {

// Level is a message's severity, in increasing order.
enum class Level : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// SetLogLevel sets the lowest level that is written.
void SetLogLevel(Level level);
Level LogLevel();

// ParseLogLevel accepts "debug", "info", "warning" (or "warn") and "error",
// in any case; anything else is INVALID_ARGUMENT listing those.
absl::StatusOr<Level> ParseLogLevel(std::string_view text);

// LogLevelName is the lower-case name ParseLogLevel accepts.
std::string_view LogLevelName(Level level);

// SetLogFd sends output to `fd` instead of stderr (tests; default 2).
void SetLogFd(int fd);

namespace internal {

extern std::atomic<int> g_level;

// LogMessage collects one line and writes it when destroyed.
class LogMessage {
 public:
  LogMessage(Level level, const char* file, int line);
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Voidify lets LB_LOG be an expression of type void on both branches.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace anylb::log

// LB_LOG(level) is an ostream for one line at anylb::log::Level::level.
#define LB_LOG(level)                                                      \
  (static_cast<int>(::anylb::log::Level::level) <                          \
   ::anylb::log::internal::g_level.load(std::memory_order_relaxed))        \
      ? (void)0                                                            \
      : ::anylb::log::internal::Voidify() &                                \
            ::anylb::log::internal::LogMessage(::anylb::log::Level::level, \
                                               __FILE__, __LINE__)         \
                .stream()

#endif  // ANYLB_COMMON_LOG_H_
