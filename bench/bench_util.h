// Shared pieces of the black-box coordinator benchmarks: the real resweep-coordinator
// binary on a loopback port with a fresh SQLite file in a temporary directory, the
// process's CPU time and memory from /proc, channels, a timer loop for many simulated
// slots, synthetic sweep files, and summary statistics (medians and spreads; a
// benchmark never reports its best round).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <memory>
#include <queue>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/mutex.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/process.h"

namespace resweep::bench {

using SteadyClock = std::chrono::steady_clock;

inline double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// ------------------------------------------------------------------ statistics

// Linear interpolation between order statistics (type 7); `p` in [0, 1]. 0 when empty.
inline double Quantile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double pos = p * (values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(values.size() - 1, lo + 1);
  return values[lo] + (pos - lo) * (values[hi] - values[lo]);
}
inline double Median(const std::vector<double>& values) { return Quantile(values, 0.5); }
inline double Min(const std::vector<double>& values) {
  return values.empty() ? 0 : *std::min_element(values.begin(), values.end());
}
inline double Max(const std::vector<double>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}
// "median (min-max)" with `digits` decimals.
inline std::string Spread(const std::vector<double>& values, int digits = 1) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "%.*f (%.*f-%.*f)", digits, Median(values), digits, Min(values),
                digits, Max(values));
  return buf;
}

// ------------------------------------------------------------------ /proc

// User + system CPU seconds the process has used so far; < 0 when unreadable.
inline double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: count fields after its ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  long long utime = -1, stime = -1;
  // Field 3 (state) is the first after ')'; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  if (utime < 0 || stime < 0) return -1;
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// VmRSS of the process in KiB; -1 when unreadable.
inline long ProcessRssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// The 1-minute load average, for the record (the benchmarks share their machine).
inline std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ------------------------------------------------------------------ processes

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "resweep-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
inline void WriteWholeFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// Waits up to timeout_s for `path` to hold a port number written by --port-file; 0 if
// it never does or `process` exits first.
inline int WaitForPortFile(const std::string& path, resweep::testing::Process* process,
                           double timeout_s) {
  const auto start = SteadyClock::now();
  while (SecondsSince(start) < timeout_s) {
    const std::string text = ReadWholeFile(path);
    if (!text.empty() && text.back() == '\n') return std::stoi(text);
    if (!process->running()) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

// The real resweep-coordinator binary on 127.0.0.1 (a free port) with a fresh
// database in its own scratch directory. Exits the benchmark (status 1, with the
// coordinator's log) if it does not start.
class CoordinatorUnderTest {
 public:
  CoordinatorUnderTest(const std::string& binary, std::vector<std::string> extra_args) {
    std::vector<std::string> argv = {binary,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     dir_.File("port"),
                                     "--db",
                                     dir_.File("coordinator.db")};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<resweep::testing::Process>(argv, dir_.File("coordinator.log"));
    port_ = WaitForPortFile(dir_.File("port"), process_.get(), 30);
    if (port_ == 0) {
      std::fprintf(stderr, "the coordinator did not start:\n%s\n",
                   ReadWholeFile(dir_.File("coordinator.log")).c_str());
      std::exit(1);
    }
  }
  ~CoordinatorUnderTest() { Stop(); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return process_->pid(); }
  const ScratchDir& dir() const { return dir_; }
  // SIGTERM, then SIGKILL after 10 s.
  void Stop() {
    if (!process_ || !process_->running()) return;
    process_->Kill(SIGTERM);
    if (process_->Wait(10000) < 0) process_->Kill(SIGKILL);
    process_->Wait(5000);
  }

 private:
  ScratchDir dir_;
  std::unique_ptr<resweep::testing::Process> process_;
  int port_ = 0;
};

// A plaintext channel to `address`. Channels with different `connection` numbers do
// not share a TCP connection (gRPC would otherwise pool identical channels onto one).
inline std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int connection = 0) {
  grpc::ChannelArguments args;
  args.SetInt("resweep.bench.connection", connection);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// Also waits for the connection (wait_for_ready) rather than failing at once when it
// is not up yet or is being made again: a benchmark measures calls, not connects.
inline void SetDeadline(grpc::ClientContext* context, int64_t ms) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  context->set_wait_for_ready(true);
}

// Simulated workers, as the fleet benchmarks drive them: ceil(slots / slots_per_worker)
// workers of slots_per_worker CPU slots each, named "<prefix><n>", each registered over
// a connection of its own. Exits the benchmark when a registration fails.
struct SimulatedWorkers {
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs;
  std::vector<std::string> ids;
  int heartbeat_ms = 5000;  // the coordinator's, from the registration reply
};
inline SimulatedWorkers RegisterSimulatedWorkers(const std::string& address,
                                                 const std::string& prefix, int slots,
                                                 int slots_per_worker) {
  SimulatedWorkers fleet;
  const int workers = (slots + slots_per_worker - 1) / slots_per_worker;
  for (int w = 0; w < workers; ++w) {
    fleet.stubs.push_back(v1::Coordinator::NewStub(MakeChannel(address, w)));
    v1::RegisterWorkerRequest req;
    req.set_name(prefix + std::to_string(w));
    req.set_host("localhost");
    for (int s = 0; s < slots_per_worker; ++s) req.add_devices("cpu");
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 30000);
    grpc::Status st = fleet.stubs[w]->RegisterWorker(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "%sRegisterWorker: %s\n", prefix.c_str(), st.error_message().c_str());
      std::exit(1);
    }
    fleet.ids.push_back(resp.worker_id());
    fleet.heartbeat_ms = resp.heartbeat_ms();
  }
  return fleet;
}

// ------------------------------------------------------------------ sweeps

// A synthetic-trainer sweep of exactly `runs` runs (cells x seeds, five seeds when
// `runs` divides by five) of `epochs` epochs of `epoch_seconds` each. Empty when
// `runs` has no such shape within the spec's limits (1,000 values per axis). A run's
// id follows from its config and seed, so sweeps of the same shape share their runs;
// a different `variant` adds variant x 1 µs to epoch_seconds, which makes every run new.
inline std::string SyntheticSweepYaml(const std::string& name, int64_t runs, int epochs,
                                      double epoch_seconds, int variant = 0) {
  const int64_t seeds = runs % 5 == 0 ? 5 : (runs <= 1000 ? runs : 1);
  const int64_t cells = runs / seeds;
  int64_t lr_values = std::min<int64_t>(cells, 1000);
  while (cells % lr_values != 0) --lr_values;
  const int64_t wd_values = cells / lr_values;
  if (wd_values > 1000) return "";
  std::ostringstream out;
  out << "name: " << name << "\n"
      << "dataset: {kind: cifar10}\n"
      << "model: {depth_n: 3}\n"
      << "train: {epochs: " << epochs << "}\n"
      << "trainer: {kind: synthetic, epoch_seconds: " << std::setprecision(12)
      << epoch_seconds + variant * 1e-6 << std::setprecision(6) << "}\n"
      << "seeds: " << seeds << "\n";
  if (cells > 1) {
    out << "grid:\n  train.optimizer.lr: [";
    for (int64_t i = 0; i < lr_values; ++i) out << (i ? ", " : "") << 0.1 + 0.0001 * i;
    out << "]\n";
    if (wd_values > 1) {
      out << "  train.optimizer.weight_decay: [";
      for (int64_t i = 0; i < wd_values; ++i) out << (i ? ", " : "") << 0.0001 + 0.000001 * i;
      out << "]\n";
    }
  }
  return out.str();
}

// ------------------------------------------------------------------ timers

// One thread running callbacks at their due time: the slots of the asynchronous
// benchmarks schedule their next step here from gRPC's callback threads, which must
// not block.
class TimerLoop {
 public:
  TimerLoop() : thread_([this] { Loop(); }) {}
  ~TimerLoop() {
    {
      MutexLock lock(&mutex_);
      stopping_ = true;
    }
    cv_.NotifyAll();
    thread_.join();
  }
  TimerLoop(const TimerLoop&) = delete;
  TimerLoop& operator=(const TimerLoop&) = delete;

  void RunAt(SteadyClock::time_point when, std::function<void()> fn) {
    {
      MutexLock lock(&mutex_);
      queue_.push(Entry{when, next_sequence_++, std::move(fn)});
    }
    cv_.NotifyAll();
  }
  void RunAfter(std::chrono::milliseconds delay, std::function<void()> fn) {
    RunAt(SteadyClock::now() + delay, std::move(fn));
  }

 private:
  struct Entry {
    SteadyClock::time_point when;
    uint64_t sequence;  // FIFO among equal times
    std::function<void()> fn;
    bool operator>(const Entry& o) const {
      return when != o.when ? when > o.when : sequence > o.sequence;
    }
  };
  // Runs each callback once it is due, outside the lock, until destruction.
  void Loop() {
    while (true) {
      std::function<void()> fn;
      {
        MutexLock lock(&mutex_);
        while (true) {
          if (stopping_) return;
          if (queue_.empty()) {
            cv_.Wait(&mutex_);
            continue;
          }
          const auto now = SteadyClock::now();
          if (queue_.top().when > now) {
            cv_.WaitFor(&mutex_, queue_.top().when - now);
            continue;
          }
          fn = std::move(const_cast<Entry&>(queue_.top()).fn);
          queue_.pop();
          break;
        }
      }
      fn();
    }
  }

  Mutex mutex_;
  CondVar cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_
      RESWEEP_GUARDED_BY(mutex_);
  uint64_t next_sequence_ RESWEEP_GUARDED_BY(mutex_) = 0;
  bool stopping_ RESWEEP_GUARDED_BY(mutex_) = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace resweep::bench
