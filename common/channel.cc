#include "common/channel.h"

#include <cstdlib>

namespace resweep {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  return Status(static_cast<StatusCode>(status.error_code()), status.error_message());
}

std::shared_ptr<grpc::Channel> MakeCoordinatorChannel(const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // Reconnect quickly after a coordinator restart; the worker adds its own jittered
  // backoff on top for whole calls.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
}

std::string DefaultCoordinatorAddress() {
  const char* env = std::getenv("RESWEEP_COORDINATOR");
  return env && *env ? env : "127.0.0.1:50051";
}

}  // namespace resweep
