#include "coordinator/parked_calls.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace resweep {

ParkedCalls::ParkedCalls() : thread_([this] { Loop(); }) {}

ParkedCalls::~ParkedCalls() {
  Shutdown();
  if (thread_.joinable()) thread_.join();
}

uint64_t ParkedCalls::Generation() {
  MutexLock lock(&mutex_);
  return generation_;
}

void ParkedCalls::Park(uint64_t seen_generation, TimePoint deadline, std::function<void()> wake,
                       std::function<void()> expire) {
  enum { kParked, kWakeNow, kExpireNow } what = kParked;
  {
    MutexLock lock(&mutex_);
    if (stopping_) {
      what = kExpireNow;
    } else if (seen_generation != generation_) {
      what = kWakeNow;
    } else {
      const bool earliest = parked_.empty() || deadline < parked_.begin()->first;
      parked_.emplace(deadline, Call{std::move(wake), std::move(expire)});
      if (earliest) cv_.NotifyAll();
    }
  }
  if (what == kWakeNow) wake();
  if (what == kExpireNow) expire();
}

void ParkedCalls::Notify(int64_t calls) {
  if (calls <= 0) return;
  MutexLock lock(&mutex_);
  ++generation_;
  if (!parked_.empty()) {
    to_wake_ = std::min<int64_t>(to_wake_ + calls, static_cast<int64_t>(parked_.size()));
    cv_.NotifyAll();
  }
}

void ParkedCalls::Shutdown() {
  MutexLock lock(&mutex_);
  stopping_ = true;
  cv_.NotifyAll();
  // The thread expires what is parked; wait for it to have done so, so that every
  // parked call has been answered when this returns.
  while (!parked_.empty() || answering_ > 0) cv_.Wait(&mutex_);
}

size_t ParkedCalls::size() {
  MutexLock lock(&mutex_);
  return parked_.size();
}

void ParkedCalls::Loop() {
  mutex_.Lock();
  while (true) {
    // Calls to wake or expire are taken out under the lock and called without it.
    std::vector<std::function<void()>> to_call;
    if (stopping_) {
      for (auto& [deadline, call] : parked_) to_call.push_back(std::move(call.expire));
      parked_.clear();
      to_wake_ = 0;
    } else if (to_wake_ > 0 && !parked_.empty()) {
      for (; to_wake_ > 0 && !parked_.empty(); --to_wake_) {
        to_call.push_back(std::move(parked_.begin()->second.wake));
        parked_.erase(parked_.begin());
      }
      to_wake_ = 0;
    } else {
      const auto now = std::chrono::steady_clock::now();
      while (!parked_.empty() && parked_.begin()->first <= now) {
        to_call.push_back(std::move(parked_.begin()->second.expire));
        parked_.erase(parked_.begin());
      }
    }
    if (!to_call.empty()) {
      answering_ = to_call.size();
      mutex_.Unlock();
      for (auto& f : to_call) f();
      mutex_.Lock();
      answering_ = 0;
      cv_.NotifyAll();  // Shutdown waits for the parked calls to be answered
      continue;
    }
    if (stopping_) break;
    if (parked_.empty()) {
      cv_.Wait(&mutex_);
    } else {
      cv_.WaitFor(&mutex_, parked_.begin()->first - std::chrono::steady_clock::now());
    }
  }
  mutex_.Unlock();
}

}  // namespace resweep
