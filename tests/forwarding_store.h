// A Store that forwards every call to another one; tests override the calls they
// want to fail or observe.
#pragma once

#include "coordinator/store.h"

namespace resweep {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store* inner) : inner_(inner) {}

  Status UpdateRun(const RunRecord& run) override { return inner_->UpdateRun(run); }
  Status RunInTransaction(const std::function<Status()>& body) override {
    return inner_->RunInTransaction(body);
  }
  Status RunInBulkTransaction(const std::function<Status()>& body) override {
    return inner_->RunInBulkTransaction(body);
  }
  Status BeginBatch() override { return inner_->BeginBatch(); }
  Status CommitBatch() override { return inner_->CommitBatch(); }
  Status AbortBatch() override { return inner_->AbortBatch(); }
  Status CommitBatchBeforeSync() override { return inner_->CommitBatchBeforeSync(); }
  Status SyncCommitted() override { return inner_->SyncCommitted(); }
  void ReleaseMemory() override { inner_->ReleaseMemory(); }
  Status RunInReadTransaction(const std::function<Status()>& body) override {
    return inner_->RunInReadTransaction(body);
  }
  Status InsertSweep(const SweepRecord& s) override { return inner_->InsertSweep(s); }
  StatusOr<std::optional<SweepRecord>> GetSweep(const std::string& id) override {
    return inner_->GetSweep(id);
  }
  StatusOr<std::vector<SweepRecord>> ListSweeps() override { return inner_->ListSweeps(); }
  StatusOr<SweepsPage> ListSweepsPage(bool include_archived, SweepOrder order,
                                      const std::optional<SweepCursor>& after, int limit) override {
    return inner_->ListSweepsPage(include_archived, order, after, limit);
  }
  StatusOr<std::optional<SweepRecord>> NewestSweepNamed(const std::string& name) override {
    return inner_->NewestSweepNamed(name);
  }
  StatusOr<std::vector<SweepRecord>> SweepsWithIdPrefix(const std::string& p, int limit) override {
    return inner_->SweepsWithIdPrefix(p, limit);
  }
  Status SetSweepCancelled(const std::string& id, bool c) override {
    return inner_->SetSweepCancelled(id, c);
  }
  Status SetSweepArchived(const std::string& id, bool a) override {
    return inner_->SetSweepArchived(id, a);
  }
  StatusOr<RunCountsRecord> CountRuns(const std::string& id) override {
    return inner_->CountRuns(id);
  }
  StatusOr<SweepProgressRecord> SweepProgress(const std::string& id) override {
    return inner_->SweepProgress(id);
  }
  StatusOr<std::vector<bool>> InsertRunsIfAbsent(const std::vector<RunRecord>& r) override {
    return inner_->InsertRunsIfAbsent(r);
  }
  Status LinkRuns(const std::vector<SweepRunRecord>& l) override { return inner_->LinkRuns(l); }
  StatusOr<std::optional<RunRecord>> GetRun(const std::string& id) override {
    return inner_->GetRun(id);
  }
  StatusOr<std::optional<RunRecord>> NextQueuedRun() override { return inner_->NextQueuedRun(); }
  Status SetLeaseSlot(const std::string& id, int slot) override {
    return inner_->SetLeaseSlot(id, slot);
  }
  StatusOr<std::optional<std::string>> LeaseOfSlot(const std::string& worker, int slot) override {
    return inner_->LeaseOfSlot(worker, slot);
  }
  StatusOr<int> CountLeasesOf(const std::string& worker) override {
    return inner_->CountLeasesOf(worker);
  }
  StatusOr<int64_t> NextQueuePosition() override { return inner_->NextQueuePosition(); }
  StatusOr<int64_t> CountActiveRuns() override { return inner_->CountActiveRuns(); }
  StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> ListSweepRuns(
      const std::string& id, std::optional<RunState> state) override {
    return inner_->ListSweepRuns(id, state);
  }
  StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> ListSweepRunsPage(
      const std::string& id, std::optional<RunState> state, int64_t after, int limit) override {
    return inner_->ListSweepRunsPage(id, state, after, limit);
  }
  StatusOr<std::vector<SweepCellRecord>> ListSweepCells(const std::string& id) override {
    return inner_->ListSweepCells(id);
  }
  StatusOr<std::vector<SweepOutcomeRecord>> ListSweepOutcomes(const std::string& id,
                                                              int k) override {
    return inner_->ListSweepOutcomes(id, k);
  }
  StatusOr<std::vector<StatisticsEntryRecord>> ListSweepStatistics(const std::string& id) override {
    return inner_->ListSweepStatistics(id);
  }
  Status UpdateSweepStatistics(const std::string& id, int64_t version,
                               const std::vector<StatisticsEntryRecord>& added,
                               const std::vector<int64_t>& removed) override {
    return inner_->UpdateSweepStatistics(id, version, added, removed);
  }
  StatusOr<std::vector<std::pair<std::string, int64_t>>> SweepsWithStaleStatistics(
      int limit) override {
    return inner_->SweepsWithStaleStatistics(limit);
  }
  StatusOr<int> MarkStatisticsOfOtherVersionsStale(char version) override {
    return inner_->MarkStatisticsOfOtherVersionsStale(version);
  }
  StatusOr<std::optional<int64_t>> SweepChangeStamp(const std::string& id) override {
    return inner_->SweepChangeStamp(id);
  }
  StatusOr<int64_t> SweepOutcomesVersion(const std::string& id) override {
    return inner_->SweepOutcomesVersion(id);
  }
  StatusOr<std::vector<double>> LastKTestErrors(const std::vector<std::string>& ids,
                                                int k) override {
    return inner_->LastKTestErrors(ids, k);
  }
  StatusOr<std::vector<std::string>> RunIdsWithPrefix(const std::string& p, int limit) override {
    return inner_->RunIdsWithPrefix(p, limit);
  }
  StatusOr<std::vector<SweepRunRecord>> LinksOfRun(const std::string& id) override {
    return inner_->LinksOfRun(id);
  }
  StatusOr<std::vector<std::pair<std::string, std::string>>> ListLeaseHolders() override {
    return inner_->ListLeaseHolders();
  }
  StatusOr<RunCountsRecord> CountRunsOfLiveSweeps() override {
    return inner_->CountRunsOfLiveSweeps();
  }
  StatusOr<std::vector<LeaseThroughput>> ListLeaseThroughput() override {
    return inner_->ListLeaseThroughput();
  }
  StatusOr<std::optional<SweepRunRecord>> FirstLinkOfRun(const std::string& id) override {
    return inner_->FirstLinkOfRun(id);
  }
  StatusOr<int> CountOtherActiveSweeps(const std::string& id, const std::string& except) override {
    return inner_->CountOtherActiveSweeps(id, except);
  }
  Status InsertAttempt(const AttemptRecord& a) override { return inner_->InsertAttempt(a); }
  Status UpdateAttempt(const std::string& id, int attempt, const std::string& state,
                       int64_t ended_ms, const std::string& reason) override {
    return inner_->UpdateAttempt(id, attempt, state, ended_ms, reason);
  }
  Status SetAttemptLogTail(const std::string& id, int attempt, const std::string& tail) override {
    return inner_->SetAttemptLogTail(id, attempt, tail);
  }
  StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& id) override {
    return inner_->ListAttempts(id);
  }
  Status PutEpoch(const EpochRecord& e, const std::string& w) override {
    return inner_->PutEpoch(e, w);
  }
  Status AppendEpoch(const RunRecord& run, const EpochRecord& e) override {
    return inner_->AppendEpoch(run, e);
  }
  StatusOr<bool> AppendNextEpoch(const std::string& worker_id, const EpochRecord& e,
                                 int64_t lease_expires_ms, int64_t updated_ms) override {
    return inner_->AppendNextEpoch(worker_id, e, lease_expires_ms, updated_ms);
  }
  StatusOr<bool> RenewLease(const std::string& worker_id, const std::string& run_id, int attempt,
                            int64_t lease_expires_ms, int64_t updated_ms) override {
    return inner_->RenewLease(worker_id, run_id, attempt, lease_expires_ms, updated_ms);
  }
  bool HoldsUnappliedEpochs() const override { return inner_->HoldsUnappliedEpochs(); }
  Status ApplyLoggedEpochs() override { return inner_->ApplyLoggedEpochs(); }
  Status DeleteEpochsAfter(const std::string& id, int epoch) override {
    return inner_->DeleteEpochsAfter(id, epoch);
  }
  StatusOr<std::vector<EpochRecord>> ListEpochs(const std::string& id) override {
    return inner_->ListEpochs(id);
  }
  StatusOr<std::vector<EpochRecord>> ListSweepEpochs(const std::string& id) override {
    return inner_->ListSweepEpochs(id);
  }
  Status UpsertWorker(const WorkerRecord& w) override { return inner_->UpsertWorker(w); }
  StatusOr<std::optional<WorkerRecord>> GetWorker(const std::string& id) override {
    return inner_->GetWorker(id);
  }
  Status TouchWorker(const std::string& id, int64_t now) override {
    return inner_->TouchWorker(id, now);
  }
  StatusOr<std::vector<WorkerRecord>> ListWorkers() override { return inner_->ListWorkers(); }
  Status DeleteWorker(const std::string& id) override { return inner_->DeleteWorker(id); }
  StatusOr<std::optional<RunRecord>> NextQueuedRunWithoutHostFaultBy(
      const std::string& worker) override {
    return inner_->NextQueuedRunWithoutHostFaultBy(worker);
  }
  StatusOr<std::vector<RunRecord>> QueuedCellMates(const RunRecord& run, const std::string& worker,
                                                   int limit) override {
    return inner_->QueuedCellMates(run, worker, limit);
  }
  StatusOr<WorkerHealthRecord> GetWorkerHealth(const std::string& id) override {
    return inner_->GetWorkerHealth(id);
  }
  Status PutWorkerHealth(const WorkerHealthRecord& h) override {
    return inner_->PutWorkerHealth(h);
  }
  StatusOr<std::vector<WorkerHealthRecord>> ListWorkerHealth() override {
    return inner_->ListWorkerHealth();
  }

 protected:
  Store* const inner_;
};

}  // namespace resweep
