// Metrics in the Prometheus text exposition format (version 0.0.4): counters,
// gauges and histograms with fixed buckets, kept in a registry that renders them.
//
// Recording is lock-free (relaxed atomics): a hot path keeps the pointer that
// registration returned and only ever increments or observes. Registration and
// rendering take the registry's mutex. Series are registered up front with their
// labels: no per-run labels, so that the number of series stays bounded. Names
// follow Prometheus' conventions: base units (seconds, bytes), `_total` counters.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/mutex.h"

namespace resweep {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Increment(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending; +Inf implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);

  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Observations <= upper_bounds()[i] (cumulative, as exposed); the last entry is
  // every observation (+Inf).
  std::vector<int64_t> CumulativeCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<int64_t>[]> counts_;  // per bucket, bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Buckets for durations in seconds, 0.5 ms to 60 s.
std::vector<double> LatencyBuckets();

// Writes the text format: a family's HELP and TYPE, then its samples.
class PrometheusText {
 public:
  // `type`: counter | gauge | histogram.
  void Family(const std::string& name, const std::string& help, const char* type);
  void Sample(const std::string& name, const MetricLabels& labels, double value);
  // name_bucket{...,le=".."}, name_sum, name_count.
  void HistogramSamples(const std::string& name, const MetricLabels& labels,
                        const Histogram& histogram);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

class MetricsRegistry {
 public:
  // Registers a series of a family (a family's first series sets its help and type;
  // later ones must match). The object lives as long as the registry. Registering
  // the same name and labels twice returns the same object.
  Counter* AddCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge* AddGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          const MetricLabels& labels, std::vector<double> upper_bounds);
  // Called at each rendering, after the registered series, to write series
  // computed then (e.g. from a query). Runs outside the registry's lock.
  void AddCollector(std::function<void(PrometheusText*)> collect);

  std::string RenderPrometheus() const;

 private:
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    std::string name;
    std::string help;
    const char* type;
    std::vector<std::unique_ptr<Series>> series;
  };
  Series* FindOrAddLocked(const std::string& name, const std::string& help, const char* type,
                          const MetricLabels& labels) RESWEEP_REQUIRES(mutex_);

  mutable Mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_ RESWEEP_GUARDED_BY(mutex_);
  std::vector<std::function<void(PrometheusText*)>> collectors_ RESWEEP_GUARDED_BY(mutex_);
};

}  // namespace resweep
