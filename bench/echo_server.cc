// echo_server: the gRPC baseline the coordinator's ingestion is measured against (issue
// 9, goal 3). A bare unary service on gRPC's callback API that serves the
// Coordinator service's ReportEpoch and Heartbeat by replying at once: no decoding
// beyond gRPC's own, no work, no storage. The client harness (bench/ingest_bench)
// therefore sends it the very same method, request and reply bytes it sends the real
// coordinator, and the two calls-per-second figures differ only by what the
// coordinator does with a report. Every other method answers UNIMPLEMENTED.
//
//   build/bench/echo_server [--listen 127.0.0.1:0] [--port-file FILE]
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>

#include "resweep/v1/resweep.grpc.pb.h"

namespace {

namespace v1 = resweep::v1;

// Replies from a thread of its own (--reply-thread): what the coordinator does, whose
// replies wait for their batch's sync on the write batcher's reply thread. Takes every
// call queued so far and finishes each, in order.
class ReplyThread {
 public:
  ReplyThread() : thread_([this] { Loop(); }) {}
  ~ReplyThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void Finish(grpc::ServerUnaryReactor* reactor) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queued_.push_back(reactor);
    }
    wake_.notify_one();
  }

 private:
  void Loop() {
    std::vector<grpc::ServerUnaryReactor*> batch;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return !queued_.empty() || stopping_; });
        if (queued_.empty()) return;
        batch.swap(queued_);
      }
      for (grpc::ServerUnaryReactor* reactor : batch) reactor->Finish(grpc::Status::OK);
      batch.clear();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<grpc::ServerUnaryReactor*> queued_;  // guarded by mutex_
  bool stopping_ = false;                          // guarded by mutex_
  std::thread thread_;
};

class EchoService final : public v1::Coordinator::CallbackService {
 public:
  // With `replies`, calls are finished on its thread; else in the handler.
  explicit EchoService(ReplyThread* replies) : replies_(replies) {}

  grpc::ServerUnaryReactor* ReportEpoch(grpc::CallbackServerContext* context,
                                        const v1::ReportEpochRequest*,
                                        v1::ReportEpochResponse*) override {
    return Reply(context);
  }
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest*,
                                      v1::HeartbeatResponse*) override {
    return Reply(context);
  }

 private:
  grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (replies_) {
      replies_->Finish(reactor);
    } else {
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  ReplyThread* const replies_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"echo_server: replies at once to ReportEpoch and Heartbeat (a gRPC baseline)"};
  std::string listen = "127.0.0.1:0", port_file;
  app.add_option("--listen", listen, "address:port to serve on (port 0: pick one)")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the port actually bound to this file");
  bool reply_thread = false;
  app.add_flag("--reply-thread", reply_thread,
               "finish calls on a thread of its own, as the coordinator's replies are");
  CLI11_PARSE(app, argc, argv);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::optional<ReplyThread> replies;
  if (reply_thread) replies.emplace();
  EchoService service(replies ? &*replies : nullptr);
  int port = 0;
  // As the coordinator's server is built (coordinator/server.cc), less TLS and auth.
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(8 << 20);
  builder.SetMaxSendMessageSize(8 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "echo_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
