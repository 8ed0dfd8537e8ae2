// common/metrics.h: what the registry renders, in the Prometheus text format.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace resweep {
namespace {

TEST(MetricsRegistry, RendersCountersGaugesAndCumulativeHistogramBuckets) {
  MetricsRegistry registry;
  Counter* ok = registry.AddCounter("calls_total", "Calls.", {{"code", "OK"}});
  Counter* bad = registry.AddCounter("calls_total", "Calls.", {{"code", "NOT_FOUND"}});
  Gauge* depth = registry.AddGauge("queue_depth", "Queued.");
  Histogram* seconds = registry.AddHistogram("call_seconds", "Latency.", {}, {0.1, 1});
  ok->Increment(3);
  bad->Increment();
  depth->Set(7);
  seconds->Observe(0.05);
  seconds->Observe(0.5);
  seconds->Observe(0.5);
  seconds->Observe(30);
  // The same name and labels give the same series.
  EXPECT_EQ(registry.AddCounter("calls_total", "Calls.", {{"code", "OK"}}), ok);
  registry.AddCollector([](PrometheusText* out) {
    out->Family("computed", "At scrape time.", "gauge");
    out->Sample("computed", {{"name", "a \"quoted\\\" \nline"}}, 0.25);
  });

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP calls_total Calls.\n"
            "# TYPE calls_total counter\n"
            "calls_total{code=\"OK\"} 3\n"
            "calls_total{code=\"NOT_FOUND\"} 1\n"
            "# HELP queue_depth Queued.\n"
            "# TYPE queue_depth gauge\n"
            "queue_depth 7\n"
            "# HELP call_seconds Latency.\n"
            "# TYPE call_seconds histogram\n"
            "call_seconds_bucket{le=\"0.1\"} 1\n"
            "call_seconds_bucket{le=\"1\"} 3\n"
            "call_seconds_bucket{le=\"+Inf\"} 4\n"
            "call_seconds_sum 31.05\n"
            "call_seconds_count 4\n"
            "# HELP computed At scrape time.\n"
            "# TYPE computed gauge\n"
            "computed{name=\"a \\\"quoted\\\\\\\" \\nline\"} 0.25\n");
}

TEST(MetricsRegistry, ConcurrentRecordingLosesNothing) {
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("n_total", "N.");
  Histogram* histogram = registry.AddHistogram("h", "H.", {}, LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter->Increment();
        histogram->Observe(0.002);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter->value(), 40000);
  EXPECT_EQ(histogram->CumulativeCounts().back(), 40000);
  EXPECT_NEAR(histogram->sum(), 80, 1e-6);
}

}  // namespace
}  // namespace resweep
