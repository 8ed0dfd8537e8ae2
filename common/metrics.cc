#include "common/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace resweep {

namespace {

void AddDouble(std::atomic<double>* target, double delta) {
  double old = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(old, old + delta, std::memory_order_relaxed)) {
  }
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  // The shortest of %.15g and %.17g that reads back as the same double.
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.15g", value);
  if (std::strtod(buffer, nullptr) != value) std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatLabels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
  }
  return out + "}";
}

}  // namespace

void Gauge::Add(double d) { AddDouble(&value_, d); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(new std::atomic<int64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AddDouble(&sum_, value);
}

std::vector<int64_t> Histogram::CumulativeCounts() const {
  std::vector<int64_t> out(bounds_.size() + 1);
  int64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void PrometheusText::Family(const std::string& name, const std::string& help, const char* type) {
  text_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void PrometheusText::Sample(const std::string& name, const MetricLabels& labels, double value) {
  text_ += name + FormatLabels(labels) + " " + FormatValue(value) + "\n";
}

void PrometheusText::HistogramSamples(const std::string& name, const MetricLabels& labels,
                                      const Histogram& histogram) {
  const std::vector<int64_t> counts = histogram.CumulativeCounts();
  MetricLabels with_le = labels;
  with_le.emplace_back("le", "");
  for (size_t i = 0; i < counts.size(); ++i) {
    with_le.back().second =
        i < histogram.upper_bounds().size() ? FormatValue(histogram.upper_bounds()[i]) : "+Inf";
    Sample(name + "_bucket", with_le, static_cast<double>(counts[i]));
  }
  Sample(name + "_sum", labels, histogram.sum());
  Sample(name + "_count", labels, static_cast<double>(counts.back()));
}

MetricsRegistry::Series* MetricsRegistry::FindOrAddLocked(const std::string& name,
                                                          const std::string& help, const char* type,
                                                          const MetricLabels& labels) {
  Family* family = nullptr;
  for (auto& f : families_) {
    if (f->name == name) family = f.get();
  }
  if (!family) {
    families_.push_back(std::make_unique<Family>(Family{name, help, type, {}}));
    family = families_.back().get();
  }
  for (auto& s : family->series) {
    if (s->labels == labels) return s.get();
  }
  family->series.push_back(std::make_unique<Series>());
  family->series.back()->labels = labels;
  return family->series.back().get();
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const MetricLabels& labels) {
  MutexLock lock(&mutex_);
  Series* s = FindOrAddLocked(name, help, "counter", labels);
  if (!s->counter) s->counter = std::make_unique<Counter>();
  return s->counter.get();
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 const MetricLabels& labels) {
  MutexLock lock(&mutex_);
  Series* s = FindOrAddLocked(name, help, "gauge", labels);
  if (!s->gauge) s->gauge = std::make_unique<Gauge>();
  return s->gauge.get();
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         const MetricLabels& labels,
                                         std::vector<double> upper_bounds) {
  MutexLock lock(&mutex_);
  Series* s = FindOrAddLocked(name, help, "histogram", labels);
  if (!s->histogram) s->histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return s->histogram.get();
}

void MetricsRegistry::AddCollector(std::function<void(PrometheusText*)> collect) {
  MutexLock lock(&mutex_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsRegistry::RenderPrometheus() const {
  PrometheusText out;
  std::vector<std::function<void(PrometheusText*)>> collectors;
  {
    MutexLock lock(&mutex_);
    for (const auto& family : families_) {
      out.Family(family->name, family->help, family->type);
      for (const auto& s : family->series) {
        if (s->counter)
          out.Sample(family->name, s->labels, static_cast<double>(s->counter->value()));
        if (s->gauge) out.Sample(family->name, s->labels, s->gauge->value());
        if (s->histogram) out.HistogramSamples(family->name, s->labels, *s->histogram);
      }
    }
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect(&out);
  return out.text();
}

}  // namespace resweep
