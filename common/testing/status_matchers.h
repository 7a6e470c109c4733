// gMock matchers for absl::Status and absl::StatusOr<T>, which Debian's
// abseil (20220623) does not ship.
//
//   using ::anylb::status_testing::IsOk;
//   using ::anylb::status_testing::IsOkAndHolds;
//   using ::anylb::status_testing::StatusIs;
//
//   EXPECT_THAT(store.Put(key, value), IsOk());
//   EXPECT_THAT(IpAddress::Parse("::g"),
//               StatusIs(absl::StatusCode::kInvalidArgument,
//                        HasSubstr("\"::g\"")));
//   EXPECT_THAT(ParsePort("80"), IsOkAndHolds(80));
//   ASSERT_OK_AND_ASSIGN(auto addr, IpAddress::Parse("192.0.2.1"));
//
// IsOk() and StatusIs() match both absl::Status and absl::StatusOr<T>;
// IsOkAndHolds() matches absl::StatusOr<T>. On a mismatch they explain what
// the status actually was ("which has status NOT_FOUND: no such backend").
//
// The namespace is not `anylb::testing`: inside namespace anylb that name
// would hide gMock's ::testing from unqualified `testing::` lookups.

#ifndef ANYLB_COMMON_TESTING_STATUS_MATCHERS_H_
#define ANYLB_COMMON_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb::status_testing {
namespace internal {

// GetStatus returns the status of an absl::Status or absl::StatusOr<T>.
inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}

template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// IsOkMatcher is the implementation of IsOk().
class IsOkMatcher {
 public:
  template <typename StatusType>
  bool MatchAndExplain(const StatusType& actual,
                       ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(actual);
    if (status.ok()) return true;
    *listener << "which has status " << status;
    return false;
  }

  static void DescribeTo(std::ostream* os) { *os << "is OK"; }

  static void DescribeNegationTo(std::ostream* os) { *os << "is not OK"; }
};

// StatusIsMatcher is the implementation of StatusIs(). It matches the code and
// the message (as a std::string) with their own matchers.
class StatusIsMatcher {
 public:
  StatusIsMatcher(::testing::Matcher<absl::StatusCode> code_matcher,
                  ::testing::Matcher<const std::string&> message_matcher)
      : code_matcher_(std::move(code_matcher)),
        message_matcher_(std::move(message_matcher)) {}

  template <typename StatusType>
  bool MatchAndExplain(const StatusType& actual,
                       ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(actual);
    *listener << "which has status " << status;
    ::testing::StringMatchResultListener code_listener;
    if (!code_matcher_.MatchAndExplain(status.code(), &code_listener)) {
      *listener << ", whose code doesn't match";
      PrintExplanation(code_listener, listener);
      return false;
    }
    const std::string message(status.message());
    ::testing::StringMatchResultListener message_listener;
    if (!message_matcher_.MatchAndExplain(message, &message_listener)) {
      *listener << ", whose message doesn't match";
      PrintExplanation(message_listener, listener);
      return false;
    }
    return true;
  }

  void DescribeTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_matcher_.DescribeTo(os);
    *os << ", and has a message that ";
    message_matcher_.DescribeTo(os);
  }

  void DescribeNegationTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_matcher_.DescribeNegationTo(os);
    *os << ", or has a message that ";
    message_matcher_.DescribeNegationTo(os);
  }

 private:
  static void PrintExplanation(
      const ::testing::StringMatchResultListener& inner,
      ::testing::MatchResultListener* listener) {
    if (!inner.str().empty()) *listener << " (" << inner.str() << ")";
  }

  ::testing::Matcher<absl::StatusCode> code_matcher_;
  ::testing::Matcher<const std::string&> message_matcher_;
};

// IsOkAndHoldsMatcherImpl is IsOkAndHolds() for one StatusOr type.
template <typename StatusOrType>
class IsOkAndHoldsMatcherImpl
    : public ::testing::MatcherInterface<StatusOrType> {
 public:
  using ValueType = typename std::remove_cvref_t<StatusOrType>::value_type;

  template <typename InnerMatcher>
  explicit IsOkAndHoldsMatcherImpl(const InnerMatcher& inner_matcher)
      : inner_matcher_(
            ::testing::SafeMatcherCast<const ValueType&>(inner_matcher)) {}

  bool MatchAndExplain(
      StatusOrType actual,
      ::testing::MatchResultListener* listener) const override {
    if (!actual.ok()) {
      *listener << "which has status " << actual.status();
      return false;
    }
    *listener << "which contains value " << ::testing::PrintToString(*actual);
    ::testing::StringMatchResultListener inner_listener;
    const bool matches =
        inner_matcher_.MatchAndExplain(*actual, &inner_listener);
    if (!inner_listener.str().empty()) {
      *listener << ", " << inner_listener.str();
    }
    return matches;
  }

  void DescribeTo(std::ostream* os) const override {
    *os << "is OK and has a value that ";
    inner_matcher_.DescribeTo(os);
  }

  void DescribeNegationTo(std::ostream* os) const override {
    *os << "isn't OK or has a value that ";
    inner_matcher_.DescribeNegationTo(os);
  }

 private:
  ::testing::Matcher<const ValueType&> inner_matcher_;
};

// IsOkAndHoldsMatcher is the implementation of IsOkAndHolds(): it becomes an
// IsOkAndHoldsMatcherImpl once gMock knows which StatusOr type it matches.
template <typename InnerMatcher>
class IsOkAndHoldsMatcher {
 public:
  explicit IsOkAndHoldsMatcher(InnerMatcher inner_matcher)
      : inner_matcher_(std::move(inner_matcher)) {}

  template <typename StatusOrType>
  operator ::testing::Matcher<StatusOrType>() const {  // NOLINT
    return ::testing::Matcher<StatusOrType>(
        new IsOkAndHoldsMatcherImpl<const StatusOrType&>(inner_matcher_));
  }

 private:
  InnerMatcher inner_matcher_;
};

}  // namespace internal

// IsOk() matches an absl::Status or absl::StatusOr<T> that is OK.
inline ::testing::PolymorphicMatcher<internal::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(internal::IsOkMatcher());
}

// StatusIs(code_matcher, message_matcher) matches an absl::Status or
// absl::StatusOr<T> whose code matches `code_matcher` (an absl::StatusCode or
// a matcher of one) and whose message matches `message_matcher` (a string or
// a matcher of const std::string&, such as HasSubstr("...")).
template <typename CodeMatcher, typename MessageMatcher>
::testing::PolymorphicMatcher<internal::StatusIsMatcher> StatusIs(
    CodeMatcher&& code_matcher, MessageMatcher&& message_matcher) {
  return ::testing::MakePolymorphicMatcher(internal::StatusIsMatcher(
      ::testing::MatcherCast<absl::StatusCode>(
          std::forward<CodeMatcher>(code_matcher)),
      ::testing::MatcherCast<const std::string&>(
          std::forward<MessageMatcher>(message_matcher))));
}

// StatusIs(code_matcher) matches an absl::Status or absl::StatusOr<T> whose
// code matches `code_matcher`, whatever the message.
template <typename CodeMatcher>
::testing::PolymorphicMatcher<internal::StatusIsMatcher> StatusIs(
    CodeMatcher&& code_matcher) {
  return StatusIs(std::forward<CodeMatcher>(code_matcher), ::testing::_);
}

// IsOkAndHolds(value_matcher) matches an OK absl::StatusOr<T> whose value
// matches `value_matcher` (a T or a matcher of one).
template <typename InnerMatcher>
internal::IsOkAndHoldsMatcher<std::decay_t<InnerMatcher>> IsOkAndHolds(
    InnerMatcher&& inner_matcher) {
  return internal::IsOkAndHoldsMatcher<std::decay_t<InnerMatcher>>(
      std::forward<InnerMatcher>(inner_matcher));
}

}  // namespace anylb::status_testing

// ASSERT_OK_AND_ASSIGN(lhs, rexpr) evaluates `rexpr`, an absl::StatusOr<T>,
// once. If it is not OK the test fails fatally (ASSERT_THAT(..., IsOk())),
// printing the status; otherwise its value is moved into `lhs`, a declaration
// or an existing variable as in ASSIGN_OR_RETURN (wrap `lhs` in parentheses if
// it contains a comma). Like ASSERT_*, use it only in functions returning
// void, and not as the body of an unbraced if, else, for or while.
#define ASSERT_OK_AND_ASSIGN(lhs, ...)                            \
  ANYLB_STATUS_TESTING_ASSERT_OK_AND_ASSIGN_IMPL_(                \
      ANYLB_STATUS_MACROS_CONCAT_(anylb_status_testing_statusor_, \
                                  __COUNTER__),                   \
      lhs, __VA_ARGS__)

#define ANYLB_STATUS_TESTING_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, ...) \
  auto statusor = (__VA_ARGS__);                                            \
  ASSERT_THAT(statusor.status(), ::anylb::status_testing::IsOk())           \
      << "from " #__VA_ARGS__;                                              \
  ANYLB_STATUS_MACROS_UNPARENTHESIZE_(lhs) = std::move(statusor).value()

#endif  // ANYLB_COMMON_TESTING_STATUS_MATCHERS_H_
