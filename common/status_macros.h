// Macros for propagating errors from functions that return absl::Status or
// absl::StatusOr<T>.
//
// Debian's abseil (20220623) has no public equivalents, so the control plane
// uses these two:
//
//   absl::Status Listener::Start() {
//     RETURN_IF_ERROR(socket_.Bind(endpoint_));
//     ASSIGN_OR_RETURN(auto queue, RxQueue::Create(config_));
//     ...
//   }
//
// Both work in functions returning absl::Status or absl::StatusOr<U> (an
// error absl::Status converts implicitly to the latter). The error is
// returned unchanged: add context at the call site with a new status when the
// caller needs it, not here.

#ifndef ANYLB_COMMON_STATUS_MACROS_H_
#define ANYLB_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

// RETURN_IF_ERROR evaluates `expr`, an expression of type absl::Status or
// absl::StatusOr<T>, exactly once. If the result is not OK, the enclosing
// function returns its status; otherwise execution continues (an OK
// StatusOr's value is discarded).
//
// The macro expands to a single statement, so it is safe in an unbraced
// if/else.
#define RETURN_IF_ERROR(expr)                                                \
  ANYLB_STATUS_MACROS_RETURN_IF_ERROR_IMPL_(                                 \
      ANYLB_STATUS_MACROS_CONCAT_(anylb_status_macros_status_, __COUNTER__), \
      expr)

// ASSIGN_OR_RETURN evaluates `rexpr`, an expression of type absl::StatusOr<T>,
// exactly once. If it holds an error, the enclosing function returns that
// status. Otherwise its value is moved into `lhs`, which may be a declaration
// or an existing variable:
//
//   ASSIGN_OR_RETURN(auto config, LoadConfig(path));
//   ASSIGN_OR_RETURN(const Backend& backend, registry.Find(name));
//   ASSIGN_OR_RETURN(endpoint_, Endpoint::Parse(text));
//
// If `lhs` contains a comma outside parentheses (a template argument list or a
// structured binding), wrap it in parentheses:
//
//   ASSIGN_OR_RETURN((std::pair<int, int> range), ParseRange(text));
//   ASSIGN_OR_RETURN((auto [first, last]), ParseRange(text));
//
// The macro expands to several statements in the enclosing scope (it has to,
// so a declared `lhs` stays visible after it): do not use it as the body of an
// unbraced if, else, for or while. A reference declared as `lhs` refers into a
// hidden temporary that lives until the end of the enclosing scope.
#define ASSIGN_OR_RETURN(lhs, ...)                                             \
  ANYLB_STATUS_MACROS_ASSIGN_OR_RETURN_IMPL_(                                  \
      ANYLB_STATUS_MACROS_CONCAT_(anylb_status_macros_statusor_, __COUNTER__), \
      lhs, __VA_ARGS__)

// Implementation details below.

namespace anylb::status_macros_internal {

// AsStatus returns the status of an absl::Status or absl::StatusOr<T>, so that
// RETURN_IF_ERROR accepts both.
inline absl::Status AsStatus(absl::Status status) { return status; }

template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

template <typename T>
absl::Status AsStatus(absl::StatusOr<T>&& status_or) {
  return std::move(status_or).status();
}

}  // namespace anylb::status_macros_internal

#define ANYLB_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define ANYLB_STATUS_MACROS_CONCAT_(a, b) \
  ANYLB_STATUS_MACROS_CONCAT_INNER_(a, b)

// ANYLB_STATUS_MACROS_UNPARENTHESIZE_(x) removes one pair of parentheses
// around `x` if there is one, and otherwise yields `x` unchanged:
// `(std::pair<int, int> p)` becomes `std::pair<int, int> p`, `auto p` stays.
// It works by pasting a prefix onto the first token of `ANYLB_..._STRIP_ x`,
// which is always that macro's name, parenthesized argument or not.
#define ANYLB_STATUS_MACROS_UNPARENTHESIZE_(x) \
  ANYLB_STATUS_MACROS_PASTE_VANISH_(ANYLB_STATUS_MACROS_STRIP_ x)
#define ANYLB_STATUS_MACROS_STRIP_(...) ANYLB_STATUS_MACROS_STRIP_ __VA_ARGS__
#define ANYLB_STATUS_MACROS_PASTE_VANISH_(...) \
  ANYLB_STATUS_MACROS_PASTE_VANISH_INNER_(__VA_ARGS__)
#define ANYLB_STATUS_MACROS_PASTE_VANISH_INNER_(...) \
  ANYLB_STATUS_MACROS_VANISH_##__VA_ARGS__
#define ANYLB_STATUS_MACROS_VANISH_ANYLB_STATUS_MACROS_STRIP_

#define ANYLB_STATUS_MACROS_RETURN_IF_ERROR_IMPL_(status, expr)              \
  do {                                                                       \
    ::absl::Status status = ::anylb::status_macros_internal::AsStatus(expr); \
    if (ABSL_PREDICT_FALSE(!(status).ok())) return (status);                 \
  } while (false)

#define ANYLB_STATUS_MACROS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, ...) \
  auto statusor = (__VA_ARGS__);                                       \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) {                            \
    return std::move(statusor).status();                               \
  }                                                                    \
  ANYLB_STATUS_MACROS_UNPARENTHESIZE_(lhs) = std::move(statusor).value()

#endif  // ANYLB_COMMON_STATUS_MACROS_H_
