// Child processes for integration tests: the real binaries, with their output in
// log files, killed (SIGKILL) on destruction if still running.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace resweep::testing {

class Process {
 public:
  // stdout and stderr go to log_path, or stderr to err_path when given.
  Process(const std::vector<std::string>& argv, const std::string& log_path,
          const std::string& err_path = "")
      : log_(log_path) {
    pid_ = fork();
    if (pid_ == 0) {
      // Die with the test process, even when it crashes: no orphaned servers.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      const int err =
          err_path.empty() ? fd : open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(err, 2);
      // Unblock signals the test runner may have blocked.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      std::perror("execv");
      _exit(127);
    }
  }
  ~Process() {
    if (running()) {
      Kill(SIGKILL);
      Wait(5000);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log() const { return log_; }
  void Kill(int signal) {
    if (pid_ > 0 && !exited_) kill(pid_, signal);
  }
  bool running() {
    Poll();
    return pid_ > 0 && !exited_;
  }
  // Waits up to timeout_ms; returns the exit code, 128+signal, or -1 on timeout.
  int Wait(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!running()) return status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  void Poll() {
    if (pid_ <= 0 || exited_) return;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }

  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string log_;
};

// Runs a command to completion: returns its exit code (-1 on timeout), its stdout
// in *out and its stderr in *err.
inline int RunCommand(const std::vector<std::string>& argv, std::string* out,
                      std::string* err = nullptr, int timeout_ms = 60000) {
  char out_path[] = "/tmp/resweep-out-XXXXXX";
  char err_path[] = "/tmp/resweep-err-XXXXXX";
  close(mkstemp(out_path));
  close(mkstemp(err_path));
  int code;
  {
    Process p(argv, out_path, err_path);
    code = p.Wait(timeout_ms);
  }
  auto slurp = [](const char* path, std::string* into) {
    if (!into) return;
    into->clear();
    FILE* f = std::fopen(path, "r");
    char buf[4096];
    size_t n;
    while (f && (n = std::fread(buf, 1, sizeof(buf), f)) > 0) into->append(buf, n);
    if (f) std::fclose(f);
  };
  slurp(out_path, out);
  slurp(err_path, err);
  std::remove(out_path);
  std::remove(err_path);
  return code;
}

// Polls `done` every 50 ms for up to timeout_ms.
inline bool WaitFor(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

}  // namespace resweep::testing
