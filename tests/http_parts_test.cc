// Parts of the coordinator's HTTP face on their own: escaping request data for the
// log and rate-limiting what any client can make it log (http/request_log.h), and the
// server's pool of connection threads (http/elastic_pool.h).
#include <gtest/gtest.h>

#include <system_error>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "http/elastic_pool.h"
#include "http/request_log.h"

namespace resweep::http {
namespace {

TEST(EscapeForLog, ControlCharactersAndNonAsciiBytesStayOnTheLine) {
  EXPECT_EQ(EscapeForLog("/api/v1/sweeps?x=1"), "/api/v1/sweeps?x=1");
  // A forged log line stays inside the message that quotes it.
  EXPECT_EQ(EscapeForLog("/x\n[2026-11-28 12:00:00.000] [info] FAKE"),
            "/x\\n[2026-11-28 12:00:00.000] [info] FAKE");
  EXPECT_EQ(EscapeForLog(std::string("a\rb\tc\\d\x1b[31m\x7f", 13)),
            "a\\rb\\tc\\\\d\\x1b[31m\\x7f");
  EXPECT_EQ(EscapeForLog(std::string("\0", 1)), "\\x00");
  // Invalid UTF-8, and Unicode controls such as U+202E (right-to-left override).
  EXPECT_EQ(EscapeForLog("/static/\xff"), "/static/\\xff");
  EXPECT_EQ(EscapeForLog("\xe2\x80\xae"), "\\xe2\\x80\\xae");
  // Long text is cut, and says how long it was.
  EXPECT_EQ(EscapeForLog(std::string(600, 'a'), 10), "aaaaaaaaaa...(600 bytes)");
  for (const char c : EscapeForLog(std::string("\x01\x02\n\xc3\xa9 ok"))) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
}

TEST(LogRateLimit, FirstOnesOfAWindowLoudTheRestCountedAndReportedOnce) {
  using namespace std::chrono_literals;
  LogRateLimit limit(3, 60s);
  const auto t0 = LogRateLimit::Clock::time_point() + 1000s;
  for (int i = 0; i < 3; ++i) {
    const auto d = limit.Admit(t0 + std::chrono::seconds(i));
    EXPECT_TRUE(d.loud) << i;
    EXPECT_EQ(d.demoted, 0) << i;
  }
  for (int i = 0; i < 5; ++i) {
    const auto d = limit.Admit(t0 + 10s);
    EXPECT_FALSE(d.loud) << i;
  }
  // Still the same window: demoted.
  EXPECT_FALSE(limit.Admit(t0 + 59s).loud);
  // The next window: loud again, and the 6 demoted ones are reported once.
  auto d = limit.Admit(t0 + 61s);
  EXPECT_TRUE(d.loud);
  EXPECT_EQ(d.demoted, 6);
  d = limit.Admit(t0 + 62s);
  EXPECT_TRUE(d.loud);
  EXPECT_EQ(d.demoted, 0);
}

// Every job waits until all of them have started: they finish only if each has a
// thread of its own (a fixed pool of 8 would hang here until the wait gives up).
TEST(ElasticThreadPool, RunsAsManyJobsAtOnceAsItHasThreadsAllowed) {
  constexpr int kJobs = 40;
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  std::atomic<int> all_met{0};
  std::atomic<int> finished{0};
  {
    ElasticThreadPool pool(/*min_threads=*/8, /*max_threads=*/64, std::chrono::seconds(30));
    for (int i = 0; i < kJobs; ++i) {
      pool.enqueue([&] {
        std::unique_lock<std::mutex> lock(mu);
        ++started;
        cv.notify_all();
        // The bound only turns a failure into a failed test rather than a hang.
        if (cv.wait_for(lock, std::chrono::seconds(60), [&] { return started == kJobs; })) {
          ++all_met;
        }
        ++finished;
      });
    }
    pool.shutdown();
  }
  EXPECT_EQ(all_met.load(), kJobs);
  EXPECT_EQ(finished.load(), kJobs);
}

// Beyond max_threads jobs wait for a thread, and every one runs; shutdown runs those
// queued before it returns.
TEST(ElasticThreadPool, JobsBeyondTheBoundWaitAndAllRun) {
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
  ElasticThreadPool pool(/*min_threads=*/1, /*max_threads=*/3, std::chrono::seconds(30));
  for (int i = 0; i < 50; ++i) {
    pool.enqueue([&] {
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      --running;
      ++done;
    });
    EXPECT_LE(pool.threads(), 3u);
  }
  pool.shutdown();
  EXPECT_EQ(done.load(), 50);
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(pool.threads(), 0u);
}

// When the system gives no more threads (a limit on processes or memory), jobs wait
// for the threads running and every one runs: the pool never throws.
TEST(ElasticThreadPool, JobsWaitForARunningThreadWhenNoneCanBeStarted) {
  std::atomic<int> started{0};
  auto two_at_most = [&](std::function<void()> run) {
    if (started >= 2) {
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "injected");
    }
    ++started;
    return std::thread(std::move(run));
  };
  std::atomic<int> done{0};
  std::atomic<bool> release{false};
  ElasticThreadPool pool(/*min_threads=*/1, /*max_threads=*/16, std::chrono::seconds(30),
                         two_at_most);
  for (int i = 0; i < 10; ++i) {
    ASSERT_NO_THROW(pool.enqueue([&] {
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ++done;
    }));
  }
  EXPECT_EQ(pool.threads(), 2u);
  release = true;
  pool.shutdown();
  EXPECT_EQ(done.load(), 10);
}

// Threads beyond min_threads end once idle for idle_exit; the pool still serves after.
TEST(ElasticThreadPool, IdleThreadsBeyondTheMinimumEnd) {
  ElasticThreadPool pool(/*min_threads=*/2, /*max_threads=*/16, std::chrono::milliseconds(50));
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  for (int i = 0; i < 8; ++i) {
    pool.enqueue([&] {
      std::unique_lock<std::mutex> lock(mu);
      ++started;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(60), [&] { return started == 8; });
    });
  }
  EXPECT_GE(pool.threads(), 8u);
  // Polled, with a bound that only ends a failing test.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (pool.threads() > 2 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(pool.threads(), 2u);
  std::atomic<bool> ran{false};
  pool.enqueue([&] { ran = true; });
  pool.shutdown();
  EXPECT_TRUE(ran.load());
}

}  // namespace
}  // namespace resweep::http
