// Cost of submitting one sweep, by its size: (a) ParseSweepSpec (validate and expand
// the grid) and (b) Scheduler::Submit, which parses again and then writes the sweep
// and its runs into a fresh SQLite file (WAL, synchronous=FULL) in a temporary
// directory. Each sweep is 3 axes x 5 seeds. Prints the median and min-max over the
// rounds; never asserts a speed.
//
//   build/bench/submit_bench [rounds=5] [tmp-dir=$TMPDIR or /tmp]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/sweep_spec.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"

namespace {

using Clock = std::chrono::steady_clock;

// A sweep file of `lr_values` x `wd_values` x `depths` cells x 5 seeds.
std::string SweepYaml(int lr_values, int wd_values, int depths) {
  std::string yaml =
      "name: submit-bench\n"
      "dataset: {kind: cifar10, path: cifar-10-batches-bin}\n"
      "model: {block: reference, depth_n: 3, shortcut: A}\n"
      "train:\n"
      "  epochs: 200\n"
      "  optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}\n"
      "  schedule: {milestones: [80, 160], gamma: 0.1}\n"
      "grid:\n";
  auto axis = [&](const char* path, int n, auto value) {
    yaml += std::string("  ") + path + ": [";
    for (int i = 1; i <= n; ++i) yaml += (i > 1 ? ", " : "") + value(i);
    yaml += "]\n";
  };
  axis("train.optimizer.lr", lr_values, [](int i) { return std::to_string(0.01 * i); });
  axis("train.optimizer.weight_decay", wd_values, [](int i) { return std::to_string(1e-5 * i); });
  axis("model.depth_n", depths, [](int i) { return std::to_string(i); });
  return yaml + "seeds: 5\n";
}

struct Summary {
  double median, min, max;
};

Summary Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const char* tmp_env = std::getenv("TMPDIR");
  const std::string tmp = argc > 2 ? argv[2] : (tmp_env && *tmp_env ? tmp_env : "/tmp");

  struct Size {
    int runs, lr, wd, depths;
  };
  const std::vector<Size> sizes = {
      {1000, 10, 10, 2}, {2000, 10, 10, 4}, {4000, 10, 10, 8}, {10000, 10, 20, 10}};

  std::printf("submit_bench: 3 axes x 5 seeds, %d rounds, SQLite WAL synchronous=FULL under %s\n",
              rounds, tmp.c_str());
  std::printf("%8s %8s  %-26s  %-26s\n", "runs", "cells", "ParseSweepSpec ms (min-max)",
              "Submit ms (min-max)");
  for (const Size& size : sizes) {
    const std::string yaml = SweepYaml(size.lr, size.wd, size.depths);
    std::vector<double> parse_s, submit_s;
    for (int round = 0; round < rounds; ++round) {
      const auto parse_start = Clock::now();
      auto spec = resweep::ParseSweepSpec(yaml, "bench.yaml");
      parse_s.push_back(SecondsSince(parse_start));
      if (!spec.ok() || static_cast<int>(spec->runs.size()) != size.runs) {
        std::fprintf(stderr, "parse: %s\n",
                     spec.ok() ? "unexpected run count" : spec.status().ToString().c_str());
        return 1;
      }

      std::string dir_template = tmp + "/resweep-submit-bench-XXXXXX";
      if (!mkdtemp(dir_template.data())) {
        std::perror("mkdtemp");
        return 1;
      }
      const std::string dir = dir_template;
      {
        auto store = resweep::OpenSqliteStore(dir + "/bench.db");
        if (!store.ok()) {
          std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
          return 1;
        }
        resweep::SystemClock clock;
        resweep::SchedulerOptions options;
        options.submits_per_minute = 0;  // unlimited
        resweep::Scheduler scheduler(store->get(), &clock, options);
        const auto submit_start = Clock::now();
        auto submitted = scheduler.Submit(yaml, "bench.yaml");
        submit_s.push_back(SecondsSince(submit_start));
        if (!submitted.ok() || submitted->runs_new != size.runs) {
          std::fprintf(
              stderr, "submit: %s\n",
              submitted.ok() ? "unexpected run count" : submitted.status().ToString().c_str());
          return 1;
        }
      }
      std::filesystem::remove_all(dir);
    }
    const Summary p = Summarize(parse_s), s = Summarize(submit_s);
    char parse_text[64], submit_text[64];
    std::snprintf(parse_text, sizeof parse_text, "%.1f (%.1f-%.1f)", p.median * 1e3, p.min * 1e3,
                  p.max * 1e3);
    std::snprintf(submit_text, sizeof submit_text, "%.1f (%.1f-%.1f)", s.median * 1e3, s.min * 1e3,
                  s.max * 1e3);
    std::printf("%8d %8d  %-26s  %-26s\n", size.runs, size.runs / 5, parse_text, submit_text);
  }
  return 0;
}
