#include "common/log.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace anylb::log {
namespace internal {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

namespace {

std::atomic<int> g_fd{2};

char LevelLetter(Level level) {
  switch (level) {
    case Level::kDebug:
      return 'D';
    case Level::kInfo:
      return 'I';
    case Level::kWarning:
      return 'W';
    case Level::kError:
      return 'E';
  }
  return '?';
}

std::string_view Basename(const char* file) {
  std::string_view path(file);
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

LogMessage::LogMessage(Level level, const char* file, int line) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  std::string_view base = Basename(file);
  stream_ << absl::StrFormat(
      "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %c %s:%d] ", utc.tm_year + 1900,
      utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
      now.tv_nsec / 1000, LevelLetter(level), std::string(base), line);
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  std::string text = stream_.str();
  const char* p = text.data();
  size_t left = text.size();
  int fd = g_fd.load(std::memory_order_relaxed);
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // Nowhere to report a failing stderr.
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace internal

void SetLogLevel(Level level) {
  internal::g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

Level LogLevel() {
  return static_cast<Level>(internal::g_level.load(std::memory_order_relaxed));
}

void SetLogFd(int fd) { internal::g_fd.store(fd, std::memory_order_relaxed); }

absl::StatusOr<Level> ParseLogLevel(std::string_view text) {
  std::string lower = absl::AsciiStrToLower(std::string(text));
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warning" || lower == "warn") return Level::kWarning;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("log level \"", std::string(text),
                   "\" is not one of debug, info, warning, error"));
}

std::string_view LogLevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "unknown";
}

}  // namespace anylb::log
