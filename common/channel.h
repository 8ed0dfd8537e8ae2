// gRPC client channels to the coordinator, shared by the CLI and the worker.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/status.h"

namespace resweep {

// Status codes mirror gRPC's, so these are one-to-one.
grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

struct ChannelOptions {
  std::string address = "127.0.0.1:50051";
  int max_message_bytes = 8 << 20;
};

std::shared_ptr<grpc::Channel> MakeCoordinatorChannel(const ChannelOptions& options);

// The coordinator address from $RESWEEP_COORDINATOR, else 127.0.0.1:50051.
std::string DefaultCoordinatorAddress();

}  // namespace resweep
