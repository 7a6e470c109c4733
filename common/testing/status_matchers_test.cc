#include "common/testing/status_matchers.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace anylb::status_testing {
namespace {

using ::testing::AnyOf;
using ::testing::DescribeMatcher;
using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Explain() returns the explanation `matcher` gives for `value`.
template <typename Matcher, typename T>
std::string Explain(const Matcher& matcher, const T& value) {
  ::testing::StringMatchResultListener listener;
  ::testing::ExplainMatchResult(matcher, value, &listener);
  return listener.str();
}

const absl::Status kNotFound = absl::NotFoundError("no such backend");

// IsOk

TEST(IsOk, MatchesOkStatusAndStatusOr) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(1), IsOk());
}

TEST(IsOk, DoesNotMatchErrors) {
  EXPECT_THAT(kNotFound, Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(kNotFound), Not(IsOk()));
}

TEST(IsOk, ExplainsAFailureWithTheStatus) {
  EXPECT_EQ(Explain(IsOk(), kNotFound),
            "which has status NOT_FOUND: no such backend");
  EXPECT_EQ(Explain(IsOk(), absl::StatusOr<int>(kNotFound)),
            "which has status NOT_FOUND: no such backend");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(kNotFound, IsOk()),
                          "which has status NOT_FOUND: no such backend");
}

TEST(IsOk, DescribesItself) {
  EXPECT_EQ(DescribeMatcher<absl::Status>(IsOk()), "is OK");
  EXPECT_EQ(DescribeMatcher<absl::Status>(IsOk(), /*negation=*/true),
            "is not OK");
}

// StatusIs

TEST(StatusIs, MatchesTheCode) {
  EXPECT_THAT(kNotFound, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(absl::StatusOr<int>(kNotFound),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(absl::OkStatus(), StatusIs(absl::StatusCode::kOk));
  EXPECT_THAT(absl::StatusOr<int>(1), StatusIs(absl::StatusCode::kOk));
}

TEST(StatusIs, DoesNotMatchAnotherCode) {
  EXPECT_THAT(kNotFound, Not(StatusIs(absl::StatusCode::kInternal)));
  EXPECT_THAT(absl::StatusOr<int>(kNotFound),
              Not(StatusIs(absl::StatusCode::kInternal)));
  EXPECT_THAT(absl::OkStatus(), Not(StatusIs(absl::StatusCode::kNotFound)));
}

TEST(StatusIs, AcceptsACodeMatcher) {
  EXPECT_THAT(kNotFound, StatusIs(AnyOf(absl::StatusCode::kNotFound,
                                        absl::StatusCode::kUnavailable)));
  EXPECT_THAT(kNotFound, Not(StatusIs(absl::StatusCode::kOk)));
}

TEST(StatusIs, MatchesTheMessageExactlyOrWithAMatcher) {
  EXPECT_THAT(kNotFound,
              StatusIs(absl::StatusCode::kNotFound, "no such backend"));
  EXPECT_THAT(kNotFound, StatusIs(absl::StatusCode::kNotFound,
                                  std::string("no such backend")));
  EXPECT_THAT(kNotFound,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("backend")));
  EXPECT_THAT(absl::StatusOr<int>(kNotFound),
              StatusIs(absl::StatusCode::kNotFound, StartsWith("no such")));
}

TEST(StatusIs, DoesNotMatchAnotherMessage) {
  EXPECT_THAT(kNotFound, Not(StatusIs(absl::StatusCode::kNotFound, "no such")));
  EXPECT_THAT(kNotFound,
              Not(StatusIs(absl::StatusCode::kNotFound, HasSubstr("pool"))));
  // Both must match: the right message with the wrong code is no match.
  EXPECT_THAT(kNotFound,
              Not(StatusIs(absl::StatusCode::kInternal, "no such backend")));
}

TEST(StatusIs, ExplainsWhichPartDoesNotMatch) {
  EXPECT_EQ(Explain(StatusIs(absl::StatusCode::kInternal), kNotFound),
            "which has status NOT_FOUND: no such backend, whose code doesn't "
            "match");
  EXPECT_EQ(Explain(StatusIs(absl::StatusCode::kNotFound, "pool"), kNotFound),
            "which has status NOT_FOUND: no such backend, whose message "
            "doesn't match");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(absl::StatusOr<int>(kNotFound),
                  StatusIs(absl::StatusCode::kInternal)),
      "which has status NOT_FOUND: no such backend, whose code doesn't match");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(absl::OkStatus(), StatusIs(absl::StatusCode::kNotFound)),
      "which has status OK");
}

TEST(StatusIs, DescribesItself) {
  EXPECT_EQ(DescribeMatcher<absl::Status>(
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("backend"))),
            "has a status code that is equal to NOT_FOUND, and has a message "
            "that has substring \"backend\"");
  EXPECT_EQ(DescribeMatcher<absl::Status>(
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("backend")),
                /*negation=*/true),
            "has a status code that isn't equal to NOT_FOUND, or has a "
            "message that has no substring \"backend\"");
}

// IsOkAndHolds

TEST(IsOkAndHolds, MatchesAnOkValue) {
  EXPECT_THAT(absl::StatusOr<int>(3), IsOkAndHolds(3));
  EXPECT_THAT(absl::StatusOr<int>(3), IsOkAndHolds(Gt(2)));
  EXPECT_THAT(absl::StatusOr<std::string>("abc"), IsOkAndHolds("abc"));
  EXPECT_THAT(absl::StatusOr<std::vector<int>>(std::vector<int>{1, 2}),
              IsOkAndHolds(ElementsAre(1, 2)));
}

TEST(IsOkAndHolds, DoesNotMatchAnotherValueOrAnError) {
  EXPECT_THAT(absl::StatusOr<int>(3), Not(IsOkAndHolds(4)));
  EXPECT_THAT(absl::StatusOr<int>(kNotFound), Not(IsOkAndHolds(3)));
  EXPECT_THAT(absl::StatusOr<int>(kNotFound), Not(IsOkAndHolds(::testing::_)));
}

TEST(IsOkAndHolds, ExplainsAFailure) {
  EXPECT_EQ(Explain(IsOkAndHolds(4), absl::StatusOr<int>(3)),
            "which contains value 3");
  EXPECT_EQ(Explain(IsOkAndHolds(4), absl::StatusOr<int>(kNotFound)),
            "which has status NOT_FOUND: no such backend");
  EXPECT_EQ(Explain(IsOkAndHolds(ElementsAre(1, 3)),
                    absl::StatusOr<std::vector<int>>(std::vector<int>{1, 2})),
            "which contains value { 1, 2 }, whose element #1 doesn't match");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(absl::StatusOr<int>(kNotFound), IsOkAndHolds(3)),
      "which has status NOT_FOUND: no such backend");
}

TEST(IsOkAndHolds, DescribesItself) {
  EXPECT_EQ(DescribeMatcher<absl::StatusOr<int>>(IsOkAndHolds(3)),
            "is OK and has a value that is equal to 3");
  EXPECT_EQ(DescribeMatcher<absl::StatusOr<int>>(IsOkAndHolds(3),
                                                 /*negation=*/true),
            "isn't OK or has a value that isn't equal to 3");
}

// ASSERT_OK_AND_ASSIGN

TEST(AssertOkAndAssign, DeclaresOrAssignsTheValue) {
  ASSERT_OK_AND_ASSIGN(const int declared, absl::StatusOr<int>(5));
  EXPECT_EQ(declared, 5);
  std::string existing;
  ASSERT_OK_AND_ASSIGN(existing, absl::StatusOr<std::string>("value"));
  EXPECT_EQ(existing, "value");
}

void AssertOkAndAssignFromError() {
  ASSERT_OK_AND_ASSIGN(int value, absl::StatusOr<int>(kNotFound));
  ADD_FAILURE() << "not reached, value " << value;
}

TEST(AssertOkAndAssign, FailsFatallyWithTheStatusOnError) {
  EXPECT_FATAL_FAILURE(AssertOkAndAssignFromError(),
                       "which has status NOT_FOUND: no such backend");
}

}  // namespace
}  // namespace anylb::status_testing
