// The HTTP server's threads: cpp-httplib runs each connection on a thread of its
// task queue for as long as the connection lasts, headers being read included, so a
// fixed pool of 8 (httplib 0.11's default) is held by 8 clients that send a request
// slowly (slowloris), and every other client waits. This pool starts a thread for each
// connection that finds none idle, up to `max_threads`, and lets threads beyond
// `min_threads` exit after `idle_exit` without work: slow clients then hold threads of
// their own, up to the bound. (Beyond the bound connections wait for a thread, as
// before; an HTTP port facing untrusted clients belongs behind a reverse proxy,
// docs/security.md.)
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace resweep::http {

class ElasticThreadPool : public httplib::TaskQueue {
 public:
  // Starts a thread running its argument; throws std::system_error when the system has
  // none to give (a limit on processes, threads or memory), as std::thread does.
  using ThreadStarter = std::function<std::thread(std::function<void()>)>;

  // `start_thread`: std::thread by default (tests inject failures).
  ElasticThreadPool(size_t min_threads, size_t max_threads, std::chrono::milliseconds idle_exit,
                    ThreadStarter start_thread = nullptr);
  ~ElasticThreadPool() override;

  // Runs `fn` on an idle thread, or a new one while fewer than max_threads run, or
  // else (also when no thread can be started) on the first thread that becomes free.
  void enqueue(std::function<void()> fn) override;
  // Runs the jobs queued, then joins every thread. Call once; no enqueue after it.
  void shutdown() override;

  // Threads running now (busy or idle), for tests.
  size_t threads() const;

 private:
  void Work();
  void JoinExited();

  const size_t min_threads_;
  const size_t max_threads_;
  const std::chrono::milliseconds idle_exit_;
  const ThreadStarter start_thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<std::function<void()>> jobs_;
  std::map<std::thread::id, std::thread> threads_;  // running
  std::vector<std::thread> exited_;                 // returned from Work(), to join
  size_t idle_ = 0;
  bool shutdown_ = false;
  bool start_failed_ = false;  // the last attempt to start a thread failed (logged once)
};

}  // namespace resweep::http
