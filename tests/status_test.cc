// Status, StatusOr and their macros; the capability-annotated Mutex and CondVar.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/mutex.h"
#include "common/status.h"

namespace resweep {
namespace {

TEST(StatusOr, FromOkStatusHoldsInternalError) {
  StatusOr<int> s(Status::Ok());
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
  EXPECT_NE(s.status().message().find("OK status"), std::string::npos);
}

TEST(StatusOr, HoldsValueOrError) {
  StatusOr<std::string> v(std::string("x"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "x");
  StatusOr<std::string> e(NotFoundError("no run 'r'"));
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
}

StatusOr<std::unique_ptr<int>> MakeInt(bool fail, int value) {
  if (fail) return InvalidArgumentError("field 'x': bad");
  return std::make_unique<int>(value);
}

// Uses the macro with a declaration and with an existing lvalue; returns the sum.
StatusOr<int> Sum(bool fail_first, bool fail_second, int* steps) {
  RESWEEP_ASSIGN_OR_RETURN(std::unique_ptr<int> a, MakeInt(fail_first, 2));
  ++*steps;
  std::unique_ptr<int> b;
  RESWEEP_ASSIGN_OR_RETURN(b, MakeInt(fail_second, 3));
  ++*steps;
  return *a + *b;
}

TEST(StatusMacros, AssignOrReturnMovesValueOrReturnsError) {
  int steps = 0;
  auto ok = Sum(false, false, &steps);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  EXPECT_EQ(steps, 2);

  steps = 0;
  auto first = Sum(true, false, &steps);
  EXPECT_EQ(first.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(steps, 0);

  steps = 0;
  auto second = Sum(false, true, &steps);
  EXPECT_EQ(second.status().message(), "field 'x': bad");
  EXPECT_EQ(steps, 1);
}

Status FailsAt(int n, int* reached) {
  for (int i = 0; i < 3; ++i) {
    RESWEEP_RETURN_IF_ERROR(i == n ? UnavailableError("step " + std::to_string(i)) : Status::Ok());
    ++*reached;
  }
  return Status::Ok();
}

TEST(StatusMacros, ReturnIfErrorStopsAtTheFirstError) {
  int reached = 0;
  Status s = FailsAt(1, &reached);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "step 1");
  EXPECT_EQ(reached, 1);
  reached = 0;
  EXPECT_TRUE(FailsAt(-1, &reached).ok());
  EXPECT_EQ(reached, 3);
}

TEST(Mutex, CondVarWakesAWaiterAndTimesOut) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    MutexLock lock(&mu);
    ready = true;
    cv.NotifyAll();
  });
  {
    MutexLock lock(&mu);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!ready && std::chrono::steady_clock::now() < give_up) {
      cv.WaitFor(&mu, std::chrono::milliseconds(500));
    }
    EXPECT_TRUE(ready);
  }
  setter.join();
}

}  // namespace
}  // namespace resweep
