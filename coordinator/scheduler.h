// The coordinator's state machine, free of gRPC.
//
// Run states: queued -> leased -> running -> succeeded | failed | cancelled. A lease
// that is not renewed (heartbeat or epoch report) within lease_ms is lost: the attempt
// is closed as "lost" and the run is queued again for a new attempt, until
// max_attempts losses/retryable failures, after which the run fails with the reason.
//
// Leases are per worker slot: a worker registered with N devices holds at most N
// leases, one per slot 0..N-1, and asking again for a slot that holds a live lease
// returns that lease (a retried AcquireRun whose reply was lost leases nothing new).
//
// Time: lease expiry is measured on the monotonic clock, so wall-clock steps neither
// expire nor extend leases. The wall-clock deadline in the database is for display
// only. A scheduler starting on an existing database gives every lease a full
// lease_ms of its own running time: a lease that ran out while no coordinator ran
// is not the worker's fault.
//
// Fencing: every worker call names (run_id, attempt) and is refused with
// FAILED_PRECONDITION unless that attempt is the run's current lease, held by that
// worker and not expired. Hence at most one attempt can ever record a result.
//
// Thread-safe: every public method takes mutex_, and every state change is one
// store transaction, so a crash at any point leaves a consistent database.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/sweep_spec.h"
#include "coordinator/checkpoint_store.h"
#include "coordinator/persisted_statistics.h"
#include "coordinator/queries.h"
#include "coordinator/read_pool.h"
#include "coordinator/store.h"

namespace resweep {

struct SchedulerOptions {
  int64_t lease_ms = 30000;
  int64_t heartbeat_ms = 5000;
  int default_max_attempts = 3;
  SpecLimits spec_limits;  // per sweep file: size, axes, cells x seeds
  // Submissions: a token bucket of `submit_burst` refilled at `submits_per_minute`
  // (0 = unlimited); a submission beyond it is RESOURCE_EXHAUSTED, before parsing.
  double submits_per_minute = 60;
  int submit_burst = 30;
  // Queue bound: a sweep whose new runs would take the queued + running runs of
  // all sweeps past this is refused as RESOURCE_EXHAUSTED.
  int64_t max_active_runs = 1000000;
  // Checkpoint uploads: the largest checkpoint accepted (a larger one is
  // INVALID_ARGUMENT), and how many PutCheckpointChunk calls of one worker may be in
  // progress at once (one more is RESOURCE_EXHAUSTED, which workers retry).
  int64_t max_checkpoint_bytes = int64_t{1} << 30;
  int max_uploads_per_worker = 4;
  // Artifact sweep-up (SweepArtifacts): an upload or an unrecorded checkpoint file
  // untouched this long is abandoned; the checkpoints of a failed or cancelled run are
  // kept this long after it ended (for `resweep retry`), then removed.
  int64_t stale_upload_ms = 3600 * 1000;
  int64_t finished_checkpoint_retention_ms = int64_t{7} * 24 * 3600 * 1000;
  // TEST ONLY: called with the name of each crash point the scheduler passes
  // ("checkpoint-after-rename": an upload's file is in place and not yet recorded;
  // "checkpoint-after-commit": recorded, older files not yet removed). The
  // coordinator sets it from RESWEEP_TEST_CRASH_AT (see main.cc) so tests can kill it
  // at exactly that point; empty in production.
  std::function<void(const std::string& point)> test_crash_point;
  // Worker registrations per caller identity (token and client certificate): at the
  // cap, the identity's oldest silent registrations are forgotten to make room, and
  // with none silent the registration is RESOURCE_EXHAUSTED.
  int max_workers_per_identity = 512;
  // Registrations with no contact for this long (wall clock, and at least a lease of
  // this coordinator's own running time) that hold no lease are forgotten by
  // ForgetSilentWorkers; 0 = never.
  int64_t forget_workers_after_ms = int64_t{7} * 24 * 3600 * 1000;
  // Host faults (FailRun with fault = host): the run goes back to the queue without
  // using up an attempt. A worker with this many host faults in a row (no success in
  // between) is quarantined: no leases for quarantine_base_ms, doubled with every
  // further quarantine before its next success, at most quarantine_max_ms.
  int quarantine_after_host_faults = 3;
  int64_t quarantine_base_ms = 60000;
  int64_t quarantine_max_ms = 3600000;
  // A run that had host faults on this many different workers (since it was last
  // queued afresh) fails, with every worker's reason.
  int host_fault_workers_to_fail = 2;
  // A lease whose heartbeats carry the same (non-zero) training progress for longer
  // than this is stopped and given back as a host fault (0 = never): the worker's
  // heartbeat thread is alive but its training is stuck. Workers enforce their own,
  // shorter deadline; this one catches a worker whose watchdog failed.
  int64_t progress_timeout_ms = 3600000;
};

// What one artifact sweep-up removed.
struct ArtifactSweepResult {
  int files_removed = 0;
  int64_t bytes_removed = 0;
  int checkpoints_dropped = 0;  // recorded checkpoints of long-finished runs forgotten
};

// Why Acquire gave a worker no lease although it may have had runs to give.
struct AcquireRefusal {
  std::string reason;    // empty: not refused (nothing queued, or a lease was given)
  int64_t until_ms = 0;  // the worker's quarantine ends then
};

struct SubmitOptions {
  bool dry_run = false;           // validate and list the runs; queue nothing
  bool allow_name_reuse = false;  // another sweep of the same name may exist
};

struct PlannedRun {
  std::string run_id;
  std::string cell_label;
  int64_t seed = 0;
};

struct SubmitResult {
  std::string sweep_id;
  std::string name;
  int runs_total = 0;
  int runs_new = 0;
  bool already_existed = false;
  std::vector<std::string> warnings;  // from the spec parser
  std::vector<PlannedRun> planned;    // dry runs only
  int64_t max_runs_per_sweep = 0;
  std::string name_reused_by;  // id of an earlier, different sweep of this name
  bool restored = false;       // the sweep had been deleted and is shown again
};

struct CancelResult {
  int runs_cancelled = 0;
  int runs_kept = 0;  // unfinished, held by another live sweep too
  bool already_finished = false;
  std::string message;
};

struct RetryRequest {
  bool failed = false;
  bool cancelled = false;
  std::vector<std::string> run_ids;  // ids or unique prefixes
  bool restart = false;              // from epoch 0 instead of the newest checkpoint
};

struct RetryResult {
  std::string sweep_id;
  int runs_queued = 0;
  std::vector<std::string> skipped;  // "run <id>: why"
  bool restored = false;             // the sweep had been deleted and is shown again
};

struct DeleteResult {
  std::string sweep_id;
  int runs_cancelled = 0;
  int runs_kept = 0;
  int checkpoints_removed = 0;
};

struct WorkerRegistration {
  std::string worker_id;
  int64_t lease_ms = 0;
  int64_t heartbeat_ms = 0;
};

struct Lease {
  std::string run_id;
  int attempt = 0;
  std::string config_json;
  int64_t seed = 0;
  int resume_epoch = 0;
  std::string resume_path;  // non-empty: the checkpoint is on the shared filesystem
  int64_t expires_ms = 0;
  std::string sweep_name;
  std::string cell_label;
  int slot = 0;  // the worker slot it is leased to
};

struct LeaseProgressReport {
  std::string run_id;
  int attempt = 0;
  int epoch = 0;
  int64_t progress = 0;  // grows with every batch and epoch trained; 0 = not reported
};

struct LeaseDecision {
  std::string run_id;
  int attempt = 0;
  bool stop = false;
  std::string reason;
};

struct HeartbeatResult {
  bool unknown_worker = false;
  std::vector<LeaseDecision> decisions;
};

class Scheduler {
 public:
  // `store`, `clock`, `checkpoints` and `reads` must outlive the scheduler. Without a
  // checkpoint store (nullptr) checkpoint calls are refused and runs restart from 0.
  // With a read pool (read-only connections to the same database), the read methods
  // below run on those, off the scheduler's lock: they neither wait for writers nor
  // make them wait. Without one, they run on `store` under the lock.
  Scheduler(Store* store, const Clock* clock, SchedulerOptions options,
            CheckpointStore* checkpoints = nullptr, ReadPool* reads = nullptr);

  // Users.
  // A sweep whose name an earlier, different sweep already has is refused
  // (FAILED_PRECONDITION) unless options.allow_name_reuse.
  StatusOr<SubmitResult> Submit(const std::string& spec_yaml, const std::string& source_name,
                                const SubmitOptions& options = {});
  // Reads: see Queries. `sweep` is an id, a unique id prefix, or a name. Each reads
  // one consistent snapshot of the database (a read transaction).
  StatusOr<SweepView> GetSweep(const std::string& sweep);
  // Lists are paged (see PageRequest); a page is one snapshot, later pages another.
  StatusOr<SweepsPageView> ListSweeps(bool include_archived = false, const PageRequest& page = {},
                                      SweepOrder order = SweepOrder::kOldestFirst);
  StatusOr<RunCountsRecord> CountRunsOfLiveSweeps();
  StatusOr<RunsPageView> ListRuns(const std::string& sweep, const std::string& state,
                                  const PageRequest& page = {});
  // last_k <= 0 uses the sweep's own setting.
  StatusOr<ResultsView> Results(const std::string& sweep, int last_k);
  StatusOr<RunDetailView> GetRun(const std::string& run);
  StatusOr<CurvesView> Curves(const std::string& sweep, int max_points);
  StatusOr<std::vector<WorkerView>> ListWorkers(bool include_gone);
  // The sweep `sweep` names and its change stamp (Store::SweepChangeStamp), read
  // before a sweep's reply is computed so that the reply can be cached under it: a
  // reply computed after reading stamp S shows the data of S or newer, and is the
  // reply of every later moment at which the stamp still reads S.
  StatusOr<SweepStampView> SweepChangeStamp(const std::string& sweep);

  // Cancels the sweep's unfinished runs that no other live sweep holds. A sweep
  // whose runs have all finished is left as it is (already_finished).
  StatusOr<CancelResult> Cancel(const std::string& sweep);
  // Queues finished runs of the sweep again with a fresh attempt budget (history
  // kept). Nothing selected (no flag, no id) means the failed runs. Succeeded runs
  // are never re-run. Un-cancels a cancelled sweep.
  StatusOr<RetryResult> Retry(const std::string& sweep, const RetryRequest& request);
  // Archives the sweep (see DeleteSweepRequest in the proto). A sweep with unfinished
  // runs needs `force`.
  StatusOr<DeleteResult> Delete(const std::string& sweep, bool force);

  // Workers. `identity` is the digest of the caller's credentials (CallerIdentity in
  // coordinator/auth.h): the registration is bound to it.
  StatusOr<WorkerRegistration> RegisterWorker(const std::string& name, const std::string& host,
                                              const std::vector<std::string>& devices,
                                              const std::string& identity = "");
  // OK when `worker_id` may be used by a caller of `identity`: it was registered by
  // that identity, or it is unknown (the call itself then says so). A registration
  // made without credentials is bound to the first identity that uses it.
  // PERMISSION_DENIED otherwise.
  Status CheckWorkerIdentity(const std::string& worker_id, const std::string& identity);
  // Leases the next queued run to the worker's `slot`; nullopt when nothing is
  // queued or the worker is quarantined (then *refusal, when given, says why and until
  // when). Runs this worker had a host fault on come last. If the slot already holds a
  // live lease, that lease is returned again (same attempt, restarting from its resume
  // point) and nothing new is leased. INVALID_ARGUMENT for a slot outside 0..slots-1.
  StatusOr<std::optional<Lease>> Acquire(const std::string& worker_id, int slot,
                                         AcquireRefusal* refusal = nullptr);
  // Acquire for a gang of up to `gang_size` runs of one grid cell, leased to the slots
  // first_slot .. first_slot + gang_size - 1 (all within the worker's slots, else
  // INVALID_ARGUMENT): the first run as Acquire chooses it; when its config is
  // SeedFusable (common/run_config.h), further queued runs of the same sweep cell
  // with the same config and resume point that this worker had no host fault on, in
  // queue order, each leased as Acquire leases one (own attempt, fence and lease).
  // If any slot of the range holds a live lease of the worker, those leases are
  // returned again, in slot order, and nothing new is leased. Empty: nothing queued,
  // or the worker is quarantined (*refusal says so).
  StatusOr<std::vector<Lease>> AcquireGang(const std::string& worker_id, int first_slot,
                                           int gang_size, AcquireRefusal* refusal = nullptr);
  static constexpr int kMaxGangSize = 64;
  StatusOr<HeartbeatResult> Heartbeat(const std::string& worker_id,
                                      const std::vector<LeaseProgressReport>& leases);
  Status ReportEpoch(const std::string& worker_id, const EpochRecord& epoch);
  Status Complete(const std::string& worker_id, const std::string& run_id, int attempt,
                  int64_t param_count);
  // checkpoint_unusable: the run's checkpoint could not be read; it falls back to an
  // older checkpoint file or to epoch 0, and the attempt is not counted (it is not
  // the run's fault, and each such fall-back moves further back).
  // log_tail (capped at kMaxLogTailBytes, oldest lines dropped) is kept with the attempt.
  Status Fail(const std::string& worker_id, const std::string& run_id, int attempt,
              const std::string& reason, bool retryable, bool checkpoint_unusable = false,
              const std::string& log_tail = "");
  static constexpr size_t kMaxLogTailBytes = 8192;
  // A failure of the worker's host, not of the run (see SchedulerOptions): the
  // attempt is closed as "host_fault" and the run queued again without using up an
  // attempt, unless host_fault_workers_to_fail different workers have now had one
  // on it: then it fails, naming each worker's reason. Counts against the worker,
  // which may be quarantined.
  Status HostFault(const std::string& worker_id, const std::string& run_id, int attempt,
                   const std::string& reason, const std::string& log_tail = "");
  // Reasons (FailRun, ReleaseRun) are cut to this many bytes, noting the cut.
  static constexpr size_t kMaxReasonBytes = 2048;
  // Registration strings: longer ones are refused.
  static constexpr size_t kMaxHostBytes = 255;
  static constexpr size_t kMaxDeviceBytes = 64;
  // A worker that gives the same run back this many times without a fault uses up
  // one of the run's attempts with every further release.
  static constexpr int kFreeReleasesPerWorker = 2;
  // Gives the lease back without using up an attempt, unless this worker already
  // gave this run back kFreeReleasesPerWorker times.
  Status Release(const std::string& worker_id, const std::string& run_id, int attempt,
                 const std::string& reason);

  // Checkpoint upload of `epoch` (an epoch this attempt has reported): chunks are
  // appended at `offset`; the `last` one, with the whole file's SHA-256, commits it
  // as the run's resume point. Returns the next offset expected. The file is put in
  // place before the database records it, and the older one removed only after: a
  // failed or interrupted commit keeps the previous checkpoint, and its retry (the
  // same last chunk again) commits the file already in place. Writing and hashing
  // run outside the scheduler's lock.
  StatusOr<int64_t> PutCheckpointChunk(const std::string& worker_id, const std::string& run_id,
                                       int attempt, int epoch, int64_t offset,
                                       const std::string& data, bool last,
                                       const std::string& sha256, int64_t iteration = 0);
  // A checkpoint of `epoch` the worker wrote to the shared filesystem at
  // `relative_path` (under every worker's --checkpoint-dir) becomes the run's resume
  // point. Same epoch rules as an upload; recording the same one again is harmless.
  Status RecordSharedCheckpoint(const std::string& worker_id, const std::string& run_id,
                                int attempt, int epoch, const std::string& relative_path,
                                int64_t iteration = 0);
  // Reads the run's committed checkpoint (the one its lease said to resume from);
  // NOT_FOUND when its file is gone (the worker then reports it unusable).
  Status GetCheckpointChunk(const std::string& worker_id, const std::string& run_id, int attempt,
                            int epoch, int64_t offset, int max_bytes, std::string* data,
                            int64_t* total_size);

  // Removes what the artifact directory holds that no run will read: uploads of
  // attempts that no longer hold their run's lease or untouched for stale_upload_ms;
  // checkpoint files older than the run's recorded one; unrecorded newer ones and
  // files of unknown runs untouched for stale_upload_ms; everything of succeeded runs;
  // and the checkpoints of runs failed or cancelled more than
  // finished_checkpoint_retention_ms ago (forgotten in the database first, so a later
  // retry starts afresh). Directory scans and removals run outside the lock. The
  // coordinator calls this periodically.
  StatusOr<ArtifactSweepResult> SweepArtifacts();

  // Closes every lease that expired; returns how many. The coordinator calls this
  // periodically; fenced calls also expire the lease they touch.
  StatusOr<int> ExpireLeases();
  // Forgets registrations silent for options.forget_workers_after_ms that hold no
  // lease; returns how many. The coordinator calls this periodically.
  StatusOr<int> ForgetSilentWorkers();

  // Computes and stores the statistics of up to `max_sweeps` sweeps (oldest first)
  // whose outcomes changed since theirs were stored, so that results, also after a
  // restart and offline (`--db`), find them instead of computing them. The inputs are
  // read in one short read transaction; computing holds no lock and no transaction
  // (statistics already in memory or stored are not computed again); storing is one
  // short transaction that records the outcomes version computed from, so a sweep
  // that changed meanwhile stays stale. A sweep that cannot be refreshed is logged
  // and skipped. `stop` is polled between
  // statistics: the refresh then ends early. Returns how many sweeps were stored.
  // The coordinator calls this periodically from a thread of its own.
  StatusOr<int> RefreshStatistics(int max_sweeps, const std::function<bool()>& stop = {});

  // Writes the worker contacts that acquires and heartbeats kept in memory only (they
  // write nothing for it) to the store, in one transaction. The coordinator calls this
  // periodically and at shutdown; ListWorkers calls it first.
  Status FlushWorkerContacts();

  // Group commit: runs `calls` on this thread (each a call of this scheduler's public
  // methods, each taking the lock as always) with the store transactions of all of
  // them in one batch (see Store::BeginBatch): a call that fails rolls back only its
  // own writes, and none is durable before the batch commits once at the end. Returns
  // the commit's status; not OK means the calls' writes since the batch's last commit
  // are lost (some may have been made durable earlier by another thread's
  // transaction, which commits the batch so far), and the in-memory state is made
  // conservative as after a restart: every lease the store holds gets at least a
  // full lease_ms from now, and quarantines are taken from the store again.
  Status RunBatch(const std::function<void()>& calls);
  // As RunBatch, except that the commit is not durable yet when it returns
  // (Store::CommitBatchBeforeSync): the calls' replies wait for SyncCommitted, which
  // another thread runs while the next batch goes on here.
  Status RunBatchBeforeSync(const std::function<void()>& calls);
  // Makes every batch committed so far durable (Store::SyncCommitted). Any thread;
  // takes no lock of the scheduler's. Not OK: their durability is unknown.
  Status SyncCommitted();

  // Called (with the scheduler's lock held: it must not call the scheduler, and must
  // be quick) whenever runs may have become leasable, with how many: runs submitted or
  // queued again (retry, a lost, released or failed lease, a host fault). It may be
  // called before the change is durable, and spuriously. Set before the scheduler is
  // used.
  void SetRunsQueuedListener(std::function<void(int64_t runs)> listener);

  const SchedulerOptions& options() const { return options_; }

 private:
  // Tells the listener (SetRunsQueuedListener), if any, that `runs` runs may be
  // leasable.
  void NoteRunsQueuedLocked(int64_t runs = 1) RESWEEP_REQUIRES(mutex_) {
    if (runs_queued_listener_) runs_queued_listener_(runs);
  }
  // After a batch's commit failed: see RunBatch.
  void ForgetUncommittedStateLocked() RESWEEP_REQUIRES(mutex_);
  Status FlushWorkerContactsLocked() RESWEEP_REQUIRES(mutex_);
  // Takes one submission token, or says when the next one is due.
  Status TakeSubmitTokenLocked() RESWEEP_REQUIRES(mutex_);
  // Submit, less handing memory back afterwards; *runs_parsed: the sweep's runs, once
  // its file parsed.
  StatusOr<SubmitResult> SubmitParsing(const std::string& spec_yaml, const std::string& source_name,
                                       const SubmitOptions& submit_options, size_t* runs_parsed)
      RESWEEP_EXCLUDES(mutex_);
  // Cancels `sweep`'s unfinished runs that no other live sweep holds, inside the
  // caller's transaction; counts into *result. `count_only`: writes nothing, only
  // counts what it would cancel and keep.
  Status CancelRunsLocked(const SweepRecord& sweep, CancelResult* result, bool count_only = false)
      RESWEEP_REQUIRES(mutex_);
  // Loads the run and checks the attempt fence: the attempt is current, held by
  // this worker, and its lease has not run out.
  StatusOr<RunRecord> FencedRunLocked(const std::string& worker_id, const std::string& run_id,
                                      int attempt) RESWEEP_REQUIRES(mutex_);
  // The same check on a run already read (`run`: none when there is no such run).
  StatusOr<RunRecord> FenceLocked(const std::optional<RunRecord>& run, const std::string& worker_id,
                                  const std::string& run_id, int attempt) RESWEEP_REQUIRES(mutex_);
  // Closes the run's lease as lost if it has run out, in its own transaction, so a
  // late call is refused and the run is queued again even before the reaper runs.
  Status ExpireIfDueLocked(const std::string& run_id) RESWEEP_REQUIRES(mutex_);
  // ExpireIfDueLocked, then the run as the store holds it (none: no such run).
  StatusOr<std::optional<RunRecord>> ExpireIfDueAndReadLocked(const std::string& run_id)
      RESWEEP_REQUIRES(mutex_);
  // Whether a checkpoint at (epoch, iteration) may become `run`'s resume point:
  // newer than its current one and of an epoch the attempt has reported.
  static Status CheckCheckpointOrder(const RunRecord& run, int epoch, int64_t iteration);
  Status LoseLeaseLocked(RunRecord run, const std::string& why) RESWEEP_REQUIRES(mutex_);
  // Makes the newest checkpoint file in the artifact directory older than `run`'s
  // recorded checkpoint its resume point, or none (epoch 0), because the recorded one
  // cannot be used (`why`). Changes *run only; the caller stores it.
  void FallBackToOlderCheckpoint(RunRecord* run, const std::string& why);
  // Runs `query` on a read connection from the pool inside one read transaction, or,
  // without a pool, on the scheduler's store under its lock.
  template <typename T>
  StatusOr<T> Read(const std::function<StatusOr<T>(Queries&)>& query) RESWEEP_EXCLUDES(mutex_);
  // Reads the statistics the store remembers for `sweep_id`, in a read of its own.
  PersistedStatistics::Loader StoredStatisticsLoader(const std::string& sweep_id);
  void CrashPoint(const std::string& point) const {
    if (options_.test_crash_point) options_.test_crash_point(point);
  }
  // When the worker's quarantine ends on the monotonic clock (in the past when it is
  // not quarantined). Quarantines imposed before this scheduler started are taken
  // from the stored wall-clock end, at most quarantine_max_ms from now.
  int64_t QuarantineEndMonoLocked(const WorkerHealthRecord& health) RESWEEP_REQUIRES(mutex_);
  // Whether this process's deadline for run_id's lease is for `attempt` and still
  // ahead: then that attempt's lease, if the store holds it, has not run out.
  bool LeaseDeadlineAheadLocked(const std::string& run_id, int attempt) const
      RESWEEP_REQUIRES(mutex_);
  // Whether `run`'s lease has run out on the monotonic clock.
  bool LeaseExpiredLocked(const RunRecord& run) const RESWEEP_REQUIRES(mutex_);
  // Extends `run`'s lease by lease_ms from now (the monotonic deadline that decides,
  // and the wall-clock one stored for display).
  void RenewLeaseLocked(RunRecord* run) RESWEEP_REQUIRES(mutex_);
  // The Lease a worker is handed for `run`'s current attempt.
  StatusOr<Lease> LeaseOfRunLocked(const RunRecord& run) RESWEEP_REQUIRES(mutex_);
  // Inside the caller's transaction: leases `run` to the worker's `slot` as a new
  // attempt (queued run) or `again` (the slot already holds this attempt), from its
  // resume point, and stores it.
  StatusOr<Lease> LeaseToSlotLocked(RunRecord run, const std::string& worker_id, int slot,
                                    bool again) RESWEEP_REQUIRES(mutex_);
  // Records a call from the worker (acquire, heartbeat) in memory; written to the
  // store by FlushWorkerContacts.
  Status TouchWorkerLocked(const std::string& worker_id) RESWEEP_REQUIRES(mutex_);
  // Whether the worker has been silent for at least `wall_ms` since its last recorded
  // contact on the wall clock, and for at least `monotonic_ms` on this scheduler's
  // monotonic clock since its last contact or, without one, since the start.
  bool SilentForLocked(const WorkerRecord& worker, int64_t wall_ms, int64_t monotonic_ms) const
      RESWEEP_REQUIRES(mutex_);
  // What a host fault did, for the log once its transaction has committed.
  struct HostFaultOutcome {
    std::string run_id, worker_id, reason;
    int attempt = 0;
    bool run_failed = false;
    int workers_with_faults = 0;
    bool quarantined_now = false;
    WorkerHealthRecord health;
    int64_t now_ms = 0;
  };
  // The host fault of `run`'s current attempt (see HostFault), inside the caller's
  // transaction.
  Status HostFaultLocked(RunRecord run, const std::string& reason, const std::string& log_tail,
                         HostFaultOutcome* out) RESWEEP_REQUIRES(mutex_);
  static void LogHostFault(const HostFaultOutcome& outcome);
  // Stores the last lines of `log_tail` with the run's current attempt.
  Status KeepLogTailLocked(const RunRecord& run, const std::string& log_tail)
      RESWEEP_REQUIRES(mutex_);
  Status CloseAttemptLocked(const RunRecord& run, const std::string& state,
                            const std::string& reason) RESWEEP_REQUIRES(mutex_);

  Store* const store_;
  const Clock* const clock_;
  const SchedulerOptions options_;
  CheckpointStore* const checkpoints_;
  ReadPool* const reads_;
  // Statistics remembered in memory across queries and refreshes. Entries of values
  // that have changed since are only dropped as the least recently used, so the bound
  // is what the coordinator's memory grows by: 64 MiB holds the statistics of about
  // ten sweeps of 1,000 cells x 100 seeds.
  analysis::StatisticsCache stats_cache_{int64_t{64} << 20};
  // When each sweep may be refreshed next (RefreshStatistics): a sweep is computed
  // again no sooner than ten times its last computation took, so that refreshing a
  // big sweep while its runs finish costs at most about a tenth of a core (monotonic
  // ms, at least 1 ms later; entries are dropped once past).
  std::atomic<bool> statistics_versions_checked_{false};  // see RefreshStatistics
  Mutex refresh_mutex_;
  std::map<std::string, int64_t> refresh_not_before_ms_ RESWEEP_GUARDED_BY(refresh_mutex_);

  // Serialises all store access and state changes. The bodies passed to
  // store_->RunInTransaction run while the calling method holds it, but the analysis
  // checks a lambda on its own: each begins with mutex_.AssertHeld().
  Mutex mutex_;
  Queries queries_ RESWEEP_GUARDED_BY(mutex_);
  // Submission token bucket, on the monotonic clock; always within 0..burst.
  double submit_tokens_ RESWEEP_GUARDED_BY(mutex_) = -1;  // -1: full, set on first use
  int64_t submit_refilled_mono_ms_ RESWEEP_GUARDED_BY(mutex_) = 0;
  // PutCheckpointChunk calls in progress, by worker id (entries at 0 are erased).
  std::map<std::string, int> uploads_in_flight_ RESWEEP_GUARDED_BY(mutex_);

  // Monotonic time of this scheduler's start: a lease it has not renewed itself
  // expires lease_ms after it.
  const int64_t started_mono_ms_;
  struct LeaseDeadline {
    int attempt = 0;
    int64_t mono_ms = 0;
  };
  // Monotonic deadline of each lease renewed since the start, by run id; an entry
  // counts only for its attempt. Entries go when the attempt is closed.
  std::map<std::string, LeaseDeadline> lease_deadlines_ RESWEEP_GUARDED_BY(mutex_);
  // Monotonic time of each worker's last contact since the start.
  std::map<std::string, int64_t> worker_contact_mono_ms_ RESWEEP_GUARDED_BY(mutex_);
  // Wall-clock time of each worker's last contact not yet written to the store
  // (FlushWorkerContacts); the silence rules read the newer of it and the stored one.
  std::map<std::string, int64_t> unflushed_contact_ms_ RESWEEP_GUARDED_BY(mutex_);
  std::function<void(int64_t)> runs_queued_listener_ RESWEEP_GUARDED_BY(mutex_);
  // The training progress each worker's leases last reported, and since when it has
  // not changed (in memory: a restarted coordinator starts counting afresh).
  struct ProgressSeen {
    int attempt = 0;
    int64_t progress = 0;
    int64_t since_ms = 0;  // monotonic
  };
  // Monotonic end of each worker's quarantine (the stored wall-clock end is for
  // display and for the next start).
  std::map<std::string, int64_t> quarantine_end_mono_ RESWEEP_GUARDED_BY(mutex_);
  // Credentials digest (WorkerRecord::identity_digest) of workers as the store holds
  // them, so that CheckWorkerIdentity needs no read per call. Holds only committed
  // state of workers the store has: set when a registration or a binding is written,
  // erased with every DeleteWorker, cleared when a batch fails to commit. A worker
  // missing here is looked up in the store.
  std::map<std::string, std::string> worker_identity_ RESWEEP_GUARDED_BY(mutex_);
  std::map<std::string, std::map<std::string, ProgressSeen>> progress_seen_
      RESWEEP_GUARDED_BY(mutex_);  // worker id -> run id -> progress
};

}  // namespace resweep
