// Scheduler views -> protobuf messages. (Status <-> grpc::Status: common/channel.h.)
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/channel.h"
#include "common/status.h"
#include "coordinator/scheduler.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

void ToProto(const SweepView& view, v1::SweepSummary* out);
void ToProto(const RunView& view, v1::RunInfo* out);
void ToProto(const SweepsPageView& view, v1::ListSweepsResponse* out);
void ToProto(const RunsPageView& view, v1::ListRunsResponse* out);
void ToProto(const ResultsView& view, v1::GetResultsResponse* out);
void ToProto(const Lease& lease, v1::RunLease* out);
void ToProto(const SubmitResult& result, v1::SubmitSweepResponse* out);
void ToProto(const WorkerView& view, v1::WorkerInfo* out);
void ToProto(const RunDetailView& view, v1::GetRunResponse* out);
void ToProto(const CurvesView& view, v1::GetCurvesResponse* out);

}  // namespace resweep
