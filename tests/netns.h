// Two network namespaces joined by a veth pair, made (and removed) by a test:
//   <name>-c  10.213.N.1/24  (coordinator side)
//   <name>-w  10.213.N.2/24  (worker side)
// Traffic stays between them. Needs root and the `ip` tool; Available() says why not.
#pragma once

#include <unistd.h>

#include <string>
#include <vector>

#include "tests/process.h"

namespace resweep::testing {

class NetnsPair {
 public:
  NetnsPair() {
    if (geteuid() != 0) {
      why_not_ = "not root";
      return;
    }
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (access(path, X_OK) == 0) {
        ip_ = path;
        break;
      }
    }
    if (ip_.empty()) {
      why_not_ = "the ip tool (iproute2) is not installed";
      return;
    }
    const std::string id = std::to_string(getpid() % 100000);
    subnet_ = "10.213." + std::to_string(getpid() % 250 + 1);
    coordinator_ns_ = "rs" + id + "-c";
    worker_ns_ = "rs" + id + "-w";
    const std::string veth_c = "rs" + id + "c", veth_w = "rs" + id + "w";
    const std::vector<std::vector<std::string>> steps = {
        {"netns", "add", coordinator_ns_},
        {"netns", "add", worker_ns_},
        {"link", "add", veth_c, "netns", coordinator_ns_, "type", "veth", "peer", "name", veth_w,
         "netns", worker_ns_},
        {"-n", coordinator_ns_, "addr", "add", subnet_ + ".1/24", "dev", veth_c},
        {"-n", worker_ns_, "addr", "add", subnet_ + ".2/24", "dev", veth_w},
        {"-n", coordinator_ns_, "link", "set", "lo", "up"},
        {"-n", worker_ns_, "link", "set", "lo", "up"},
        {"-n", coordinator_ns_, "link", "set", veth_c, "up"},
        {"-n", worker_ns_, "link", "set", veth_w, "up"},
    };
    veth_w_ = veth_w;
    for (const auto& step : steps) {
      std::string err;
      if (!Ip(step, &err)) {
        why_not_ = "ip " + step[0] + " " + step[1] + " failed: " + err;
        return;
      }
    }
    ok_ = true;
  }
  ~NetnsPair() {
    std::string err;
    if (!coordinator_ns_.empty()) Ip({"netns", "del", coordinator_ns_}, &err);
    if (!worker_ns_.empty()) Ip({"netns", "del", worker_ns_}, &err);
  }

  bool Available() const { return ok_; }
  const std::string& why_not() const { return why_not_; }
  std::string coordinator_ip() const { return subnet_ + ".1"; }
  // Prefixes that run a command inside either namespace.
  std::vector<std::string> InCoordinatorNs() const {
    return {ip_, "netns", "exec", coordinator_ns_};
  }
  std::vector<std::string> InWorkerNs() const { return {ip_, "netns", "exec", worker_ns_}; }
  // Cuts the worker side's link, or restores it.
  bool SetWorkerLink(bool up) {
    std::string err;
    return Ip({"-n", worker_ns_, "link", "set", veth_w_, up ? "up" : "down"}, &err);
  }

 private:
  bool Ip(std::vector<std::string> args, std::string* err) {
    args.insert(args.begin(), ip_);
    std::string out;
    return RunCommand(args, &out, err, 10000) == 0;
  }

  bool ok_ = false;
  std::string why_not_;
  std::string ip_;
  std::string subnet_;
  std::string coordinator_ns_, worker_ns_, veth_w_;
};

}  // namespace resweep::testing
