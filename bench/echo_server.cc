// echo_server: the gRPC baseline the coordinator's ingestion is measured against (issue
// 9, goal 3). A bare unary service on gRPC's callback API that serves the
// Coordinator service's ReportEpoch and Heartbeat by replying at once: no decoding
// beyond gRPC's own, no work, no storage. The client harness (bench/ingest_bench)
// therefore sends it the very same method, request and reply bytes it sends the real
// coordinator, and the two calls-per-second figures differ only by what the
// coordinator does with a report. Every other method answers UNIMPLEMENTED.
//
//   build/bench/echo_server [--listen 127.0.0.1:0] [--port-file FILE]
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>

#include "resweep/v1/resweep.grpc.pb.h"

namespace {

namespace v1 = resweep::v1;

class EchoService final : public v1::Coordinator::CallbackService {
 public:
  grpc::ServerUnaryReactor* ReportEpoch(grpc::CallbackServerContext* context,
                                        const v1::ReportEpochRequest*,
                                        v1::ReportEpochResponse*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest*,
                                      v1::HeartbeatResponse*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"echo_server: replies at once to ReportEpoch and Heartbeat (a gRPC baseline)"};
  std::string listen = "127.0.0.1:0", port_file;
  app.add_option("--listen", listen, "address:port to serve on (port 0: pick one)")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the port actually bound to this file");
  CLI11_PARSE(app, argc, argv);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  EchoService service;
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
