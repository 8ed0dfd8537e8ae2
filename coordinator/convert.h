// Scheduler views <-> protobuf messages, and Status <-> grpc::Status.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/status.h"
#include "coordinator/scheduler.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

void ToProto(const SweepView& view, v1::SweepSummary* out);
void ToProto(const RunView& view, v1::RunInfo* out);
void ToProto(const ResultsView& view, v1::GetResultsResponse* out);
void ToProto(const Lease& lease, v1::RunLease* out);

}  // namespace resweep
