#include "common/status_macros.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anylb {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::IsOkAndHolds;
using ::anylb::status_testing::StatusIs;
using ::testing::Pair;
using ::testing::Pointee;

absl::Status NotFound() { return absl::NotFoundError("no such backend"); }

absl::StatusOr<int> Number(int n) { return n; }

absl::StatusOr<int> NumberError() {
  return absl::UnavailableError("store is down");
}

// RETURN_IF_ERROR

absl::Status ReturnIfError(const absl::Status& status, bool* reached_end) {
  RETURN_IF_ERROR(status);
  *reached_end = true;
  return absl::OkStatus();
}

TEST(ReturnIfError, ReturnsTheErrorStatusUnchanged) {
  bool reached_end = false;
  EXPECT_THAT(ReturnIfError(NotFound(), &reached_end),
              StatusIs(absl::StatusCode::kNotFound, "no such backend"));
  EXPECT_FALSE(reached_end);
}

TEST(ReturnIfError, ContinuesOnOk) {
  bool reached_end = false;
  EXPECT_THAT(ReturnIfError(absl::OkStatus(), &reached_end), IsOk());
  EXPECT_TRUE(reached_end);
}

absl::Status ReturnIfErrorOnStatusOr(absl::StatusOr<int> status_or,
                                     bool* reached_end) {
  RETURN_IF_ERROR(status_or);             // An lvalue.
  RETURN_IF_ERROR(std::move(status_or));  // An rvalue.
  *reached_end = true;
  return absl::OkStatus();
}

TEST(ReturnIfError, AcceptsStatusOrAndReturnsItsError) {
  bool reached_end = false;
  EXPECT_THAT(ReturnIfErrorOnStatusOr(NumberError(), &reached_end),
              StatusIs(absl::StatusCode::kUnavailable, "store is down"));
  EXPECT_FALSE(reached_end);
}

TEST(ReturnIfError, AcceptsStatusOrAndContinuesOnOk) {
  bool reached_end = false;
  EXPECT_THAT(ReturnIfErrorOnStatusOr(Number(1), &reached_end), IsOk());
  EXPECT_TRUE(reached_end);
}

TEST(ReturnIfError, EvaluatesItsArgumentOnce) {
  int calls = 0;
  auto call = [&calls]() -> absl::Status {
    ++calls;
    return calls == 1 ? absl::InternalError("first call") : absl::OkStatus();
  };
  auto run = [&]() -> absl::Status {
    RETURN_IF_ERROR(call());
    return absl::OkStatus();
  };
  EXPECT_THAT(run(), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(calls, 1);
}

absl::StatusOr<std::string> ReturnIfErrorInStatusOrFunction(
    const absl::Status& status) {
  RETURN_IF_ERROR(status);
  return std::string("done");
}

TEST(ReturnIfError, WorksInFunctionsReturningStatusOr) {
  EXPECT_THAT(ReturnIfErrorInStatusOrFunction(NotFound()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReturnIfErrorInStatusOrFunction(absl::OkStatus()),
              IsOkAndHolds("done"));
}

// The point is the missing braces, so clang-tidy is told to allow them.
absl::Status ReturnIfErrorInUnbracedIf(bool check, const absl::Status& status,
                                       int* branch) {
  if (check)  // NOLINT(google-readability-braces-around-statements)
    RETURN_IF_ERROR(status);
  else  // NOLINT(google-readability-braces-around-statements)
    *branch = 2;
  if (*branch == 0) *branch = 1;
  return absl::OkStatus();
}

TEST(ReturnIfError, IsOneStatementInAnUnbracedIfElse) {
  int branch = 0;
  EXPECT_THAT(ReturnIfErrorInUnbracedIf(true, NotFound(), &branch),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(branch, 0);
  EXPECT_THAT(ReturnIfErrorInUnbracedIf(true, absl::OkStatus(), &branch),
              IsOk());
  EXPECT_EQ(branch, 1);
  branch = 0;
  EXPECT_THAT(ReturnIfErrorInUnbracedIf(false, NotFound(), &branch), IsOk());
  EXPECT_EQ(branch, 2);
}

// ASSIGN_OR_RETURN

absl::StatusOr<int> Double(absl::StatusOr<int> input) {
  ASSIGN_OR_RETURN(auto value, std::move(input));
  return value * 2;
}

TEST(AssignOrReturn, DeclaresTheValue) {
  EXPECT_THAT(Double(21), IsOkAndHolds(42));
}

TEST(AssignOrReturn, ReturnsTheErrorStatusUnchanged) {
  EXPECT_THAT(Double(NumberError()),
              StatusIs(absl::StatusCode::kUnavailable, "store is down"));
}

absl::Status AssignToExisting(absl::StatusOr<int> input, int* out) {
  ASSIGN_OR_RETURN(*out, std::move(input));
  return absl::OkStatus();
}

TEST(AssignOrReturn, AssignsToAnExistingVariable) {
  int out = 0;
  EXPECT_THAT(AssignToExisting(7, &out), IsOk());
  EXPECT_EQ(out, 7);
}

TEST(AssignOrReturn, LeavesTheVariableAloneOnError) {
  int out = 5;
  EXPECT_THAT(AssignToExisting(NumberError(), &out),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(out, 5);
}

absl::StatusOr<size_t> LengthThroughConstReference(
    absl::StatusOr<std::string> input) {
  ASSIGN_OR_RETURN(const std::string& text, std::move(input));
  return text.size();
}

TEST(AssignOrReturn, DeclaresAConstReference) {
  EXPECT_THAT(LengthThroughConstReference(std::string("four")),
              IsOkAndHolds(4u));
}

absl::StatusOr<std::unique_ptr<int>> MakeUnique(int n) {
  return std::make_unique<int>(n);
}

absl::StatusOr<std::unique_ptr<int>> PassUnique(int n) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> pointer, MakeUnique(n));
  return pointer;
}

TEST(AssignOrReturn, MovesMoveOnlyValues) {
  EXPECT_THAT(PassUnique(3), IsOkAndHolds(Pointee(3)));
}

template <typename A, typename B>
absl::StatusOr<std::pair<A, B>> MakePair(A a, B b) {
  return std::pair<A, B>(a, b);
}

absl::StatusOr<std::pair<int, int>> CommasInBothArguments() {
  ASSIGN_OR_RETURN((std::pair<int, int> pair), MakePair<int, int>(1, 2));
  return pair;
}

TEST(AssignOrReturn, AcceptsCommasInParenthesizedLhsAndInRexpr) {
  EXPECT_THAT(CommasInBothArguments(), IsOkAndHolds(Pair(1, 2)));
}

absl::StatusOr<int> StructuredBinding() {
  ASSIGN_OR_RETURN((auto [first, second]), MakePair(3, 4));
  return first * 10 + second;
}

TEST(AssignOrReturn, AcceptsAParenthesizedStructuredBinding) {
  EXPECT_THAT(StructuredBinding(), IsOkAndHolds(34));
}

absl::StatusOr<int> SeveralInOneScope(absl::StatusOr<int> a,
                                      absl::StatusOr<int> b) {
  ASSIGN_OR_RETURN(int x, std::move(a));
  ASSIGN_OR_RETURN(int y, std::move(b));
  // Two on one line need distinct hidden names too.
  // clang-format off
  ASSIGN_OR_RETURN(int z, Number(x)); ASSIGN_OR_RETURN(int w, Number(y));
  // clang-format on
  return z + w;
}

TEST(AssignOrReturn, CanBeUsedSeveralTimesInOneScope) {
  EXPECT_THAT(SeveralInOneScope(1, 2), IsOkAndHolds(3));
  EXPECT_THAT(SeveralInOneScope(1, NumberError()),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST(AssignOrReturn, EvaluatesItsArgumentOnce) {
  int calls = 0;
  auto call = [&calls]() -> absl::StatusOr<int> { return ++calls; };
  auto run = [&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(int value, call());
    return value;
  };
  EXPECT_THAT(run(), IsOkAndHolds(1));
  EXPECT_EQ(calls, 1);
}

absl::Status AssignOrReturnInStatusFunction(absl::StatusOr<int> input,
                                            int* out) {
  ASSIGN_OR_RETURN(int value, std::move(input));
  *out = value;
  return absl::OkStatus();
}

TEST(AssignOrReturn, WorksInFunctionsReturningStatus) {
  int out = 0;
  EXPECT_THAT(AssignOrReturnInStatusFunction(9, &out), IsOk());
  EXPECT_EQ(out, 9);
  EXPECT_THAT(AssignOrReturnInStatusFunction(NumberError(), &out),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace anylb
