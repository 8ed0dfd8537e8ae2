// A real Slurm cluster for tests: Debian's munged, slurmctld and slurmd, run as
// root with a generated munge key and configuration, with all their state in a
// temporary directory. Nodes "resweep-n1", ... each have two fake GPUs (character
// devices made with mknod), so that `--gpus-per-node` is scheduled and
// CUDA_VISIBLE_DEVICES set as on a GPU node. The Slurm commands (sbatch, squeue,
// ...) find the cluster through SLURM_CONF, which Start() sets in this process's
// environment.
//
// One node: its slurmd listens on loopback (address 127.0.0.1), on free ports.
// Several nodes: each slurmd runs in a network namespace of its own (address
// <subnet>.11, .12, ...) with its own host name (a UTS namespace) and an /etc/hosts
// that names every node (a mount namespace: nothing on the machine changes), all
// joined by a bridge that the test creates, where slurmctld (on this machine's
// network, at <subnet>.1) and any coordinator listening there are reached. Jobs
// run inside their node's namespaces, as on separate machines; traffic stays on
// the bridge. Commands run by the test itself (sbatch, squeue) are on the host
// side; `srun` from there cannot be answered by a node, so launch steps from a
// batch script.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/process.h"
#include "tests/test_util.h"

namespace resweep::testing {

class SlurmCluster {
 public:
  static constexpr const char* kNode = "resweep-n1";  // the first node's name
  static constexpr int kGpus = 2;                     // per node
  static constexpr int kRequeueDelaySeconds = 5;

  // Why this machine cannot run the cluster ("" when it can): not root, or a
  // daemon or command missing (scripts/install-deps.sh installs slurm-wlm, munge).
  static std::string SkipReason() {
    if (::geteuid() != 0) return "needs root (munged, slurmctld and slurmd run as root)";
    for (const char* binary : {"/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd",
                               "/usr/bin/sbatch", "/usr/bin/srun", "/usr/bin/squeue",
                               "/usr/bin/scancel", "/usr/bin/scontrol", "/usr/bin/sinfo"}) {
      if (::access(binary, X_OK) != 0) {
        return std::string(binary) + " is missing (apt-get install slurm-wlm munge)";
      }
    }
    return "";
  }
  // The same, for a cluster of several nodes (network, UTS and mount namespaces).
  static std::string MultiNodeSkipReason() {
    if (std::string why = SkipReason(); !why.empty()) return why;
    if (IpTool().empty()) return "the ip tool (iproute2) is not installed";
    for (const char* binary : {"/usr/bin/unshare", "/bin/mount", "/bin/hostname"}) {
      if (::access(binary, X_OK) != 0) return std::string(binary) + " is missing";
    }
    return "";
  }
  static std::string IpTool() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (::access(path, X_OK) == 0) return path;
    }
    return "";
  }

  explicit SlurmCluster(int nodes = 1) : nodes_(nodes) {}
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  // Cancels every job, waits (bounded) for them to end, stops the daemons; the
  // temporary directory goes with dir_.
  ~SlurmCluster() {
    if (slurmctld_ && slurmctld_->running()) {
      std::string jobs;
      Run({"squeue", "--noheader", "--format", "%i"}, &jobs);
      std::istringstream ids(jobs);
      for (std::string id; ids >> id;) Run({"scancel", id});
      WaitFor(
          [&] {
            std::string left;
            return Run({"squeue", "--noheader", "--format", "%i"}, &left) == 0 && left.empty();
          },
          20000);
    }
    std::vector<Process*> daemons;
    for (auto& slurmd : slurmds_) daemons.push_back(slurmd.get());
    daemons.push_back(slurmctld_.get());
    daemons.push_back(munged_.get());
    for (Process* daemon : daemons) {
      if (daemon == nullptr) continue;
      daemon->Kill(SIGTERM);
      daemon->Wait(5000);  // then ~Process kills it
    }
    slurmds_.clear();
    std::string err;
    for (const std::string& ns : namespaces_)
      RunCommand({IpTool(), "netns", "del", ns}, &err, &err);
    if (!bridge_.empty()) RunCommand({IpTool(), "link", "del", bridge_}, &err, &err);
    ::unsetenv("SLURM_CONF");
  }

  int nodes() const { return nodes_; }
  std::string NodeName(int i) const { return "resweep-n" + std::to_string(i + 1); }
  // Where the nodes reach this machine (several nodes), e.g. for a coordinator's
  // --listen; 127.0.0.1 with one node.
  std::string HostAddress() const { return nodes_ > 1 ? subnet_ + ".1" : "127.0.0.1"; }

  const std::string& dir() const { return dir_.path(); }

  // Starts munged, slurmctld and slurmd and waits until the node is idle. On
  // failure returns false with what went wrong and the daemons' logs in *error.
  bool Start(std::string* error) {
    const std::string munge_dir = dir_.File("munge");
    std::filesystem::create_directories(munge_dir);
    std::filesystem::create_directories(dir_.File("state"));
    for (int i = 0; i < nodes_; ++i) {
      std::filesystem::create_directories(dir_.File("spool/") + NodeName(i));
    }
    std::filesystem::create_directories(dir_.File("log"));
    if (nodes_ > 1 && !MakeNetwork(error)) return false;
    {
      std::random_device random;
      std::string key(1024, '\0');
      for (char& c : key) c = static_cast<char>(random());
      WriteFile(dir_.File("munge.key"), key);
      ::chmod(dir_.File("munge.key").c_str(), 0400);
    }
    munge_socket_ = munge_dir + "/munge.socket";
    munged_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/munged", "--foreground", "--force",
                                 "--key-file=" + dir_.File("munge.key"),
                                 "--socket=" + munge_socket_, "--pid-file=" + munge_dir + "/pid",
                                 "--seed-file=" + munge_dir + "/seed"},
        dir_.File("log/munged.log"));
    if (!WaitFor([&] { return std::filesystem::exists(munge_socket_); }, 10000)) {
      *error = "munged did not start:\n" + ReadFile(dir_.File("log/munged.log"));
      return false;
    }
    for (int gpu = 0; gpu < kGpus; ++gpu) {
      // The devices of /dev/null and /dev/zero: real character devices, never opened.
      const std::string path = dir_.File("fake-gpu" + std::to_string(gpu));
      if (::mknod(path.c_str(), S_IFCHR | 0600, makedev(1, gpu == 0 ? 3 : 5)) != 0) {
        *error = "mknod " + path + ": " + std::strerror(errno);
        return false;
      }
    }
    WriteConfig();
    ::setenv("SLURM_CONF", dir_.File("slurm.conf").c_str(), 1);
    slurmctld_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/slurmctld", "-D", "-i", "-f", dir_.File("slurm.conf")},
        dir_.File("log/slurmctld.out"));
    for (int i = 0; i < nodes_; ++i) {
      std::vector<std::string> slurmd = {"/usr/sbin/slurmd", "-D", "-N",
                                         NodeName(i),        "-f", dir_.File("slurm.conf")};
      if (nodes_ > 1) {
        // ip and unshare exec what follows: the process is slurmd itself.
        const std::string hosts = dir_.File("hosts");
        std::string command =
            "mount --bind " + hosts + " /etc/hosts && hostname " + NodeName(i) + " && exec";
        for (const auto& arg : slurmd) command += " " + arg;
        slurmd = {IpTool(),           "netns",   "exec",    namespaces_[i],
                  "/usr/bin/unshare", "--uts",   "--mount", "--propagation",
                  "private",          "/bin/sh", "-c",      command};
      }
      slurmds_.push_back(
          std::make_unique<Process>(slurmd, dir_.File("log/slurmd." + NodeName(i) + ".out")));
    }
    std::string idle;
    for (int i = 0; i < nodes_; ++i) idle += "idle\n";
    std::string state;
    if (!WaitFor(
            [&] {
              return Run({"sinfo", "--noheader", "--Node", "--format", "%T"}, &state) == 0 &&
                     state == idle;
            },
            30000)) {
      *error = "node not idle (sinfo: '" + state + "')\n" + Logs();
      return false;
    }
    return true;
  }

  // Runs a Slurm command (/usr/bin/<argv[0]>) against this cluster; returns its
  // exit code, its stdout in *out and its stderr appended to *out when err is null.
  int Run(std::vector<std::string> argv, std::string* out = nullptr, std::string* err = nullptr,
          int timeout_ms = 30000) const {
    argv[0] = "/usr/bin/" + argv[0];
    std::string stdout_text, stderr_text;
    const int code = RunCommand(argv, &stdout_text, &stderr_text, timeout_ms);
    if (out) *out = stdout_text;
    if (err) {
      *err = stderr_text;
    } else if (out) {
      *out += stderr_text;
    }
    return code;
  }

  // A job's state as squeue shows it (PENDING, RUNNING, COMPLETING), "" once it
  // has left the queue.
  std::string JobState(const std::string& job_id) const {
    std::string state;
    Run({"squeue", "--noheader", "--jobs", job_id, "--format", "%T"}, &state, nullptr);
    state.erase(std::remove(state.begin(), state.end(), '\n'), state.end());
    return state;
  }

  std::string Logs() const {
    std::string all;
    std::vector<std::string> names = {"munged.log", "slurmctld.out", "slurmctld.log"};
    for (int i = 0; i < nodes_; ++i) {
      names.push_back("slurmd." + NodeName(i) + ".out");
      names.push_back("slurmd." + NodeName(i) + ".log");
    }
    for (const std::string& name : names) {
      std::string text = ReadFile(dir_.File("log/" + name));
      if (text.size() > 4000) text = "...\n" + text.substr(text.size() - 4000);
      all += "--- " + name + "\n" + text;
    }
    return all;
  }

 private:
  static int FreeLoopbackPort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
  }

  // The bridge (this side: <subnet>.1) and a namespace per node, its end of a veth
  // pair at <subnet>.11, .12, ...; the hosts file the nodes see.
  bool MakeNetwork(std::string* error) {
    const std::string id = std::to_string(::getpid() % 100000);
    subnet_ = "10.214." + std::to_string(::getpid() % 250 + 1);
    bridge_ = "rsb" + id;
    std::vector<std::vector<std::string>> steps = {
        {"link", "add", bridge_, "type", "bridge"},
        {"addr", "add", subnet_ + ".1/24", "dev", bridge_},
        {"link", "set", bridge_, "up"}};
    std::string hosts = "127.0.0.1 localhost\n";
    for (int i = 0; i < nodes_; ++i) {
      const std::string ns = "rs" + id + "-n" + std::to_string(i + 1);
      const std::string veth = "rs" + id + "v" + std::to_string(i + 1);
      namespaces_.push_back(ns);
      hosts += NodeAddress(i) + " " + NodeName(i) + "\n";
      steps.push_back({"netns", "add", ns});
      steps.push_back({"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns});
      steps.push_back({"link", "set", veth, "master", bridge_, "up"});
      steps.push_back({"-n", ns, "addr", "add", NodeAddress(i) + "/24", "dev", "eth0"});
      steps.push_back({"-n", ns, "link", "set", "eth0", "up"});
      steps.push_back({"-n", ns, "link", "set", "lo", "up"});
    }
    WriteFile(dir_.File("hosts"), hosts);
    for (auto& step : steps) {
      step.insert(step.begin(), IpTool());
      std::string out, err;
      if (RunCommand(step, &out, &err, 10000) != 0) {
        std::string line;
        for (const auto& arg : step) line += arg + " ";
        *error = line + "failed: " + err;
        return false;
      }
    }
    return true;
  }
  std::string NodeAddress(int i) const {
    return nodes_ > 1 ? subnet_ + "." + std::to_string(11 + i) : "127.0.0.1";
  }

  void WriteConfig() {
    const std::string d = dir_.path();
    const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int controller_port = FreeLoopbackPort();
    int node_port = FreeLoopbackPort();
    while (node_port == controller_port) node_port = FreeLoopbackPort();
    // Processes are tracked by their parentage (no cgroups needed); accounting,
    // MPI and mail are off. KillWait bounds how long a cancelled job's processes
    // get after SIGTERM.
    std::ostringstream conf;
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    // slurmctld runs only where its name is this machine's host name.
    conf << "ClusterName=resweeptest\n"
         << "SlurmctldHost=" << (nodes_ > 1 ? std::string(host) : "localhost") << "("
         << HostAddress() << ")\n"
         << "SlurmUser=root\nSlurmdUser=root\n"
         << "SlurmctldPort=" << controller_port << "\n"
         << "SlurmdPort=" << node_port
         << "\n"
         // cred_expire: also how long a requeued job waits before it may start
         // again (120 s by default).
         << "AuthType=auth/munge\nAuthInfo=socket=" << munge_socket_
         << ",cred_expire=" << kRequeueDelaySeconds << "\n"
         << "CredType=cred/munge\n"
         << "StateSaveLocation=" << d << "/state\n"
         << "SlurmdSpoolDir=" << d << "/spool/%n\n"
         << "SlurmctldPidFile=" << d << "/slurmctld.pid\n"
         << "SlurmdPidFile=" << d << "/slurmd.%n.pid\n"
         << "SlurmctldLogFile=" << d << "/log/slurmctld.log\n"
         << "SlurmdLogFile=" << d << "/log/slurmd.%n.log\n"
         << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
         << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
         << "SchedulerType=sched/backfill\nSchedulerParameters=sched_interval=1,bf_interval=1\n"
         << "MpiDefault=none\nMailProg=/bin/true\n"
         << "ReturnToService=2\nKillWait=10\n"
         << "JobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n"
         << "SlurmctldDebug=info\nSlurmdDebug=info\n"
         << "GresTypes=gpu\n";
    std::string node_names;
    for (int i = 0; i < nodes_; ++i) {
      conf << "NodeName=" << NodeName(i) << " NodeAddr=" << NodeAddress(i)
           << (nodes_ > 1 ? "" : " NodeHostname=localhost") << " CPUs=" << cpus
           << " Gres=gpu:" << kGpus << " State=UNKNOWN\n";
      node_names += (i ? "," : "") + NodeName(i);
    }
    conf << "PartitionName=test Nodes=" << node_names << " Default=YES MaxTime=INFINITE State=UP\n";
    WriteFile(dir_.File("slurm.conf"), conf.str());
    // Slurm 22.05 has no "disabled" cgroup plugin; v1 is only loaded, never used
    // with the plugins above.
    WriteFile(dir_.File("cgroup.conf"), "CgroupPlugin=cgroup/v1\n");
    WriteFile(dir_.File("gres.conf"),
              "Name=gpu File=" + d + "/fake-gpu[0-" + std::to_string(kGpus - 1) + "]\n");
  }

  const int nodes_;
  TempDir dir_;
  std::string munge_socket_;
  std::unique_ptr<Process> munged_, slurmctld_;
  std::vector<std::unique_ptr<Process>> slurmds_;
  // Several nodes only: their network.
  std::string subnet_, bridge_;
  std::vector<std::string> namespaces_;
};

}  // namespace resweep::testing
