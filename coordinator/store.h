// Durable coordinator state behind one interface.
//
// The only implementation is SQLite (sqlite_store.h), where all of the project's SQL
// lives. A Store is not thread-safe: its owner (the Scheduler) serialises calls.
// Multi-step changes go through RunInTransaction so that a crash leaves either all
// of them or none.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace resweep {

enum class RunState { kQueued, kLeased, kRunning, kSucceeded, kFailed, kCancelled };
const char* RunStateName(RunState state);
std::optional<RunState> ParseRunState(const std::string& name);
inline bool IsTerminal(RunState s) {
  return s == RunState::kSucceeded || s == RunState::kFailed || s == RunState::kCancelled;
}
inline bool HoldsLease(RunState s) { return s == RunState::kLeased || s == RunState::kRunning; }

struct SweepRecord {
  std::string sweep_id;
  std::string name;
  std::string spec_yaml;
  std::string source_name;
  int64_t created_ms = 0;
  bool cancelled = false;  // a cancel was requested
  int last_k = 5;
  std::vector<std::string> grid_axes;  // dotted paths, in file order
  bool archived = false;               // deleted by the user: hidden from lists, kept for results
};

// A run's durable state. A run may belong to several sweeps (identical config and
// seed); its cell label is per sweep and lives in SweepRunRecord.
struct RunRecord {
  std::string run_id;
  std::string config_json;
  // Set to store the config once for every run that shares it (InsertRunsIfAbsent):
  // a hash of config_json (the scheduler's cell key). Write-only: reads leave it empty
  // and fill config_json wherever it is stored.
  std::string config_key;
  int64_t seed = 0;
  RunState state = RunState::kQueued;
  int attempt = 0;   // number of the newest lease; 0 = never leased
  int failures = 0;  // lost leases + retryable failures, counted against max_attempts
  int max_attempts = 3;
  std::string worker_id;  // holder of the current lease, if any
  int64_t lease_expires_ms = 0;
  int epoch = 0;  // newest epoch recorded
  int epochs_total = 0;
  double last_test_error = -1;
  int checkpoint_epoch = 0;  // newest checkpoint the coordinator can hand out
  // Where that checkpoint is: "" = the coordinator's artifact directory, else a path
  // relative to the workers' shared --checkpoint-dir.
  std::string checkpoint_path;
  int64_t checkpoint_iteration = 0;  // orders checkpoints of one epoch
  int64_t param_count = 0;
  std::string error;  // why it failed or was cancelled
  // Worker of the newest attempt, open or closed. Derived (read by ListSweepRuns
  // only, never written): worker_id above is cleared when a lease ends.
  std::string last_worker_id;
  int64_t queue_position = 0;  // lower is leased first
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // Results summary, kept by the store as epochs are recorded or removed (read-only
  // for callers): the test error of the newest evaluated epoch and the mean over the
  // last summary_k evaluated epochs; -1 when none was evaluated. summary_k is the
  // last_k of the sweep that first queued the run.
  int summary_k = 5;
  double final_test_error = -1;
  double last_k_test_error = -1;

  // The run's lease as this record was read from the store (set by the store's
  // reads; attempt -1 = not read from the store). UpdateRun is a compare-and-set on
  // it: a write based on a read that is no longer true (the attempt, its worker or
  // the run's state changed since) changes nothing and is FAILED_PRECONDITION,
  // whoever holds which lock.
  struct Fence {
    int attempt = -1;
    std::string worker_id;
    RunState state = RunState::kQueued;
  };
  Fence read_as;
};

struct SweepRunRecord {
  std::string sweep_id;
  std::string run_id;
  std::string cell_key;
  std::string cell_label;
  std::string cell_params_json;  // {"model.depth_n": "3", ...}
  // Where the link stands in its sweep (grid order: cells, then seeds): increasing
  // in the order links were made, never reused. Set by ListSweepRuns; 0 elsewhere.
  int64_t position = 0;
};

// One lease of a run, closed with how it ended.
struct AttemptRecord {
  std::string run_id;
  int attempt = 0;
  std::string worker_id;
  std::string state;  // leased | running | succeeded | failed | lost | released | cancelled |
                      // host_fault
  int64_t started_ms = 0;
  int64_t ended_ms = 0;
  std::string reason;
  std::string log_tail;  // last lines of the trainer's log (failed attempts)
};

struct EpochRecord {
  std::string run_id;
  int epoch = 0;
  int attempt = 0;
  double train_loss = 0;
  double train_error = 0;
  double test_error = -1;
  double test_loss = -1;
  double lr = 0;
  double seconds = 0;
  double images_per_sec = 0;
};

struct WorkerRecord {
  std::string worker_id;
  std::string name;
  std::string host;
  std::string devices;  // comma-separated
  int64_t registered_ms = 0;
  int64_t last_seen_ms = 0;
  // Digest of the credentials that registered it (see CallerIdentity in
  // coordinator/auth.h); every later call naming this worker must carry the same.
  // "" = registered without credentials.
  std::string identity_digest;
};

// How a worker has fared: host faults since its last success, and its quarantine.
// A worker without a record has had none.
struct WorkerHealthRecord {
  std::string worker_id;
  int consecutive_host_faults = 0;   // since the worker's last successful run
  int quarantine_level = 0;          // quarantines since then; each doubles the back-off
  int64_t quarantined_until_ms = 0;  // no leases before this time
  std::string last_fault;            // the newest host fault's reason
};

// Epoch-level progress of a sweep.
struct SweepProgressRecord {
  int64_t epochs_done = 0;  // epochs recorded, over the sweep's runs
  int64_t epochs_total = 0;
  int64_t epochs_left = 0;  // still to train: of queued, leased and running runs only
  // Mean duration of each run's newest recorded epoch; 0 when none was recorded.
  double mean_epoch_seconds = 0;
};

// A grid cell of a sweep, as results show it.
struct SweepCellRecord {
  int ordinal = 0;  // grid order: cells are numbered in the order of their first links
  std::string cell_key;
  std::string cell_label;
  std::string cell_params_json;
  std::string config_json;  // the cell's first run's: names its dataset and network
  int runs_total = 0;       // runs linked to the cell
};

// What results need of one succeeded run of a sweep: its results summary.
struct SweepOutcomeRecord {
  int cell_ordinal = 0;
  std::string run_id;
  int summary_k = 0;  // the K of last_k_test_error
  double final_test_error = -1;
  double last_k_test_error = -1;
  int64_t param_count = 0;
};

// One statistic remembered for a sweep (see analysis::StatisticsBacking): `value`
// is what the computation keyed by `key` gave. `id` names the stored row.
struct StatisticsEntryRecord {
  int64_t id = 0;
  std::string key;
  std::string value;
};

// The order of a listing of sweeps: submission order (created_ms, then insertion
// order), or its reverse.
enum class SweepOrder { kOldestFirst, kNewestFirst };

// Where a listing of sweeps stands: past the sweep created at created_ms with this
// insertion number (in the listing's order).
struct SweepCursor {
  int64_t created_ms = 0;
  int64_t rowid = 0;
};

struct SweepsPage {
  std::vector<SweepRecord> sweeps;  // spec_yaml left empty
  std::optional<SweepCursor> next;  // where the next page starts; none: this was the last
};

struct RunCountsRecord {
  int queued = 0, leased = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
  int total() const { return queued + leased + running + succeeded + failed + cancelled; }
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs `body` in one transaction: committed when it returns OK, rolled back
  // otherwise (including when a store call inside it failed). Nested inside another
  // transaction (or a batch, below) it is a savepoint: a failing body rolls back its
  // own writes only, and the outer transaction decides whether the rest is kept.
  virtual Status RunInTransaction(const std::function<Status()>& body) = 0;
  // RunInTransaction for a body that writes many pages (a big submission): the
  // store's page cache may grow to its bulk size for it (SqliteStoreOptions::
  // bulk_cache_kib) and goes back to its usual size afterwards, freeing the
  // difference (ReleaseMemory then returns freed memory to the system).
  virtual Status RunInBulkTransaction(const std::function<Status()>& body) = 0;

  // Runs `body` in one read transaction: every read inside it sees the same
  // snapshot of the database. Nested in a transaction, it is part of that one.
  virtual Status RunInReadTransaction(const std::function<Status()>& body) = 0;

  // Group commit: between BeginBatch and CommitBatch, every RunInTransaction made on
  // the thread that began the batch (its owner) is a savepoint of one transaction,
  // made durable only by CommitBatch (one durable write for all of them). Store calls
  // stay serialised by the store's owner as always; the batch only spans several of
  // them. A RunInTransaction on any other thread while the batch is open commits the
  // batch so far, runs as a transaction of its own (not a savepoint: its size is not
  // bounded) and is durable when it returns; the batch then goes on in a new one.
  // Reads and writes outside RunInTransaction on other threads join the batch (they
  // see, and write, what is not durable yet). FAILED_PRECONDITION when a transaction
  // or batch is open.
  virtual Status BeginBatch() = 0;
  // Commits the batch, on its owner's thread. Not OK: the writes since the batch's
  // last commit are rolled back (so are they when SQLite itself rolled the
  // transaction back after a failure inside the batch: then every later
  // RunInTransaction of the batch failed with UNAVAILABLE). Either way the batch is
  // over.
  virtual Status CommitBatch() = 0;
  // Rolls the batch back (the writes since its last commit) and ends it.
  virtual Status AbortBatch() = 0;
  // As CommitBatch, except that the commit need not be durable when it returns: it
  // is once a later SyncCommitted has returned OK (until then a power loss may undo
  // it; a crash of the process alone does not). The owner runs the next batch while
  // another thread makes this one durable (pipelined group commit). Not OK: as
  // CommitBatch.
  virtual Status CommitBatchBeforeSync() = 0;
  // Makes every commit so far durable (for one made by CommitBatchBeforeSync; every
  // other commit already is when it returns). The one Store call that may run on any
  // thread at any time, also while the owner writes: it touches no connection state.
  // Not OK: whether those commits are durable is unknown, and stays so: every later
  // SyncCommitted, BeginBatch and transaction fails with UNAVAILABLE until the store is
  // opened again (a later fdatasync returning OK would not say that the failed one's
  // writes, or those after them in the log, reached the disk).
  virtual Status SyncCommitted() = 0;
  // Hands back to the system what memory the store can do without now (cached pages
  // that are not being written, and the process's freed heap), at the cost of
  // reading those pages again when they are needed. Never fails.
  virtual void ReleaseMemory() = 0;

  // Sweeps.
  virtual Status InsertSweep(const SweepRecord& sweep) = 0;
  virtual StatusOr<std::optional<SweepRecord>> GetSweep(const std::string& sweep_id) = 0;
  // Every sweep with its spec, in submission order (for tests and tools; the
  // coordinator pages with ListSweepsPage).
  virtual StatusOr<std::vector<SweepRecord>> ListSweeps() = 0;
  // Lookups and listings below leave spec_yaml empty and never read it, so they cost
  // the same however large the sweep files were.
  // At most `limit` sweeps in `order` (submission order: created_ms, then insertion;
  // or its reverse) past `after` (none: from the first in that order), archived ones
  // only with `include_archived`. A cursor is meaningful only in the order it came from.
  virtual StatusOr<SweepsPage> ListSweepsPage(bool include_archived, SweepOrder order,
                                              const std::optional<SweepCursor>& after,
                                              int limit) = 0;
  // The newest live sweep named `name`, else the newest archived one, if any
  // (an indexed lookup: reads only sweeps of that name).
  virtual StatusOr<std::optional<SweepRecord>> NewestSweepNamed(const std::string& name) = 0;
  // Sweeps whose id starts with `prefix` (an id itself included), at most `limit`,
  // in id order (a range scan of the id index).
  virtual StatusOr<std::vector<SweepRecord>> SweepsWithIdPrefix(const std::string& prefix,
                                                                int limit) = 0;
  virtual Status SetSweepCancelled(const std::string& sweep_id, bool cancelled = true) = 0;
  virtual Status SetSweepArchived(const std::string& sweep_id, bool archived = true) = 0;
  // Both read one row of counters that the store keeps as runs change, however many
  // runs the sweep has (zeros for an unknown sweep).
  virtual StatusOr<RunCountsRecord> CountRuns(const std::string& sweep_id) = 0;
  // Runs by state over every sweep not archived, each run once however many of them
  // hold it.
  virtual StatusOr<RunCountsRecord> CountRunsOfLiveSweeps() = 0;
  virtual StatusOr<SweepProgressRecord> SweepProgress(const std::string& sweep_id) = 0;

  // Runs. Inserts each run, in order, unless a run with its id exists (left as it
  // is); element i of the result says whether runs[i] was new. A run with a config_key
  // has its config stored once under that key, shared with every run of that key
  // (consecutive runs of one key cost one config write), instead of in its own row;
  // one whose key already holds another config keeps its own.
  // Outside a transaction, atomic in one of its own; inside one, adds to it.
  virtual StatusOr<std::vector<bool>> InsertRunsIfAbsent(const std::vector<RunRecord>& runs) = 0;
  StatusOr<bool> InsertRunIfAbsent(const RunRecord& run) {
    RESWEEP_ASSIGN_OR_RETURN(std::vector<bool> inserted, InsertRunsIfAbsent({run}));
    return static_cast<bool>(inserted.at(0));
  }
  // Links each run to its sweep unless that link exists (an existing link is left as
  // it is), in order, and accounts for the new links in their sweeps' counters, cells
  // (a new cell takes the next ordinal and its first run's config) and outcomes (a
  // linked run that has succeeded already), as the store does for every change of a
  // run. Costs about one row insert per link: the accounting is set-based, once per
  // call; pass a sweep's links in batches (a few thousand a call). Outside a
  // transaction, atomic in one of its own; inside one, it adds to that transaction
  // with no savepoint, and a failure fails the transaction (its RunInTransaction body
  // must return the failure, which rolls the whole transaction back).
  virtual Status LinkRuns(const std::vector<SweepRunRecord>& links) = 0;
  Status LinkRun(const SweepRunRecord& link) { return LinkRuns({link}); }
  virtual StatusOr<std::optional<RunRecord>> GetRun(const std::string& run_id) = 0;
  // Writes `run` if the stored run still is as `run.read_as` says (see RunRecord::Fence):
  // FAILED_PRECONDITION naming both when it changed, NOT_FOUND when it is gone,
  // INVALID_ARGUMENT for a record not read from the store. Leaves the config (a run's
  // identity: it never changes) and the results summary (summary_k, final/last-K test
  // error) as they are.
  virtual Status UpdateRun(const RunRecord& run) = 0;
  virtual StatusOr<std::optional<RunRecord>> NextQueuedRun() = 0;
  // Leases are per worker slot: the slot is recorded when a run is leased and is
  // meaningful only while the run holds its lease (-1: leased before slots were
  // recorded; such a lease is no slot's but counts against the worker's slots).
  virtual Status SetLeaseSlot(const std::string& run_id, int slot) = 0;
  // The run leased to `worker_id` in `slot`, if any.
  virtual StatusOr<std::optional<std::string>> LeaseOfSlot(const std::string& worker_id,
                                                           int slot) = 0;
  // Runs leased to `worker_id` (leased or running).
  virtual StatusOr<int> CountLeasesOf(const std::string& worker_id) = 0;
  // The first queued run that `worker_id` has not had a host fault on (an attempt
  // closed as "host_fault"), if any.
  virtual StatusOr<std::optional<RunRecord>> NextQueuedRunWithoutHostFaultBy(
      const std::string& worker_id) = 0;
  // Queued runs that could train in one gang with `run`: of a grid cell (sweep,
  // cell key) that `run` belongs to, with its config and resume point (checkpoint
  // epoch and iteration), that `worker_id` had no host fault on; `run` itself not
  // included; in queue order, at most `limit`. Reads the cell's links only.
  virtual StatusOr<std::vector<RunRecord>> QueuedCellMates(const RunRecord& run,
                                                           const std::string& worker_id,
                                                           int limit) = 0;
  virtual StatusOr<int64_t> NextQueuePosition() = 0;
  // Runs queued, leased or running, over all sweeps.
  virtual StatusOr<int64_t> CountActiveRuns() = 0;
  // Runs of a sweep with their per-sweep cell, in grid order (link position);
  // `state` filters when set.
  virtual StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> ListSweepRuns(
      const std::string& sweep_id, std::optional<RunState> state) = 0;
  // A page of ListSweepRuns: at most `limit` (> 0) runs whose link's position is
  // after `after_position` (0: from the first), read with an indexed range scan
  // however large the sweep. Links made later (of other sweeps) never move the ones
  // listed, so paging by the last position sees every run of the sweep once.
  virtual StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> ListSweepRunsPage(
      const std::string& sweep_id, std::optional<RunState> state, int64_t after_position,
      int limit) = 0;
  // Results reads. The store keeps these as runs change (the runs' rows are never
  // read): ListSweepCells in grid order; ListSweepOutcomes, one record per succeeded
  // run of the sweep, in grid order (cells, then link order within each), whose run_id
  // is set only where summary_k != k (the runs whose last-K mean for k must be read
  // from their epochs; the others' ids are not copied out).
  virtual StatusOr<std::vector<SweepCellRecord>> ListSweepCells(const std::string& sweep_id) = 0;
  virtual StatusOr<std::vector<SweepOutcomeRecord>> ListSweepOutcomes(const std::string& sweep_id,
                                                                      int k) = 0;
  // Statistics remembered for a sweep's outcomes. The store bumps a sweep's outcomes
  // version whenever its outcomes change; the statistics version is the outcomes
  // version they were last computed from (-1: never).
  virtual StatusOr<std::vector<StatisticsEntryRecord>> ListSweepStatistics(
      const std::string& sweep_id) = 0;
  // Adds `added` (id ignored), removes the entries with ids `removed`, and records that
  // the sweep's statistics now are of outcomes version `version`.
  virtual Status UpdateSweepStatistics(const std::string& sweep_id, int64_t version,
                                       const std::vector<StatisticsEntryRecord>& added,
                                       const std::vector<int64_t>& removed) = 0;
  // (sweep_id, outcomes version) of up to `limit` sweeps (archived ones too: their
  // results stay readable) whose statistics are not of their current outcomes, oldest
  // sweep first.
  virtual StatusOr<std::vector<std::pair<std::string, int64_t>>> SweepsWithStaleStatistics(
      int limit) = 0;
  virtual StatusOr<int64_t> SweepOutcomesVersion(const std::string& sweep_id) = 0;
  // The change stamp of sweep `sweep_id` (exactly that id; nullopt: no such sweep):
  // it grows with every committed change of anything that the sweep's replies
  // (GetSweep, ListRuns, GetResults, GetCurves) show: its own record (a cancel, a
  // delete), a new link, and of each run linked to it (also through another sweep)
  // its shown fields (state, attempt, worker, epoch, results summary, error, ...) and
  // its epochs (appended, replaced, deleted). Heartbeats do not move it. Equal stamps
  // read at two moments mean equal replies: a reply cache keys on it.
  virtual StatusOr<std::optional<int64_t>> SweepChangeStamp(const std::string& sweep_id) = 0;
  // Marks stale every sweep that has a stored statistic whose key's second byte (the
  // statistics' version, analysis::kStatisticsKeyVersion) is not `version`, so that
  // its next refresh replaces them; returns how many sweeps.
  virtual StatusOr<int> MarkStatisticsOfOtherVersionsStale(char version) = 0;
  // The mean test error over the last `k` evaluated epochs of each run (-1 when it
  // has none), in the order given: one indexed scan of at most k epochs per run.
  virtual StatusOr<std::vector<double>> LastKTestErrors(const std::vector<std::string>& run_ids,
                                                        int k) = 0;
  // Run ids starting with `prefix`, at most `limit` of them, in id order.
  virtual StatusOr<std::vector<std::string>> RunIdsWithPrefix(const std::string& prefix,
                                                              int limit) = 0;
  // Every sweep link of a run, oldest sweep first.
  virtual StatusOr<std::vector<SweepRunRecord>> LinksOfRun(const std::string& run_id) = 0;
  // (run_id, worker_id) of every run that holds a lease.
  virtual StatusOr<std::vector<std::pair<std::string, std::string>>> ListLeaseHolders() = 0;
  // Every run that holds a lease, by worker, with the images/s its current attempt
  // reported for its latest epoch (0 before the attempt's first report).
  struct LeaseThroughput {
    std::string run_id;
    std::string worker_id;
    double images_per_sec = 0;
  };
  virtual StatusOr<std::vector<LeaseThroughput>> ListLeaseThroughput() = 0;
  // The earliest sweep link of a run (its cell label for logs), if any.
  virtual StatusOr<std::optional<SweepRunRecord>> FirstLinkOfRun(const std::string& run_id) = 0;
  // Sweeps (not cancelled) that hold the run, other than `except_sweep_id`.
  virtual StatusOr<int> CountOtherActiveSweeps(const std::string& run_id,
                                               const std::string& except_sweep_id) = 0;

  // Attempts.
  virtual Status InsertAttempt(const AttemptRecord& attempt) = 0;
  // Sets how an attempt stands or ended (ended_ms 0 while it is open).
  virtual Status UpdateAttempt(const std::string& run_id, int attempt, const std::string& state,
                               int64_t ended_ms, const std::string& reason) = 0;
  virtual Status SetAttemptLogTail(const std::string& run_id, int attempt,
                                   const std::string& log_tail) = 0;
  virtual StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& run_id) = 0;

  // Epochs: at most one record per (run, epoch); a newer attempt replaces it. Both
  // keep the run's results summary up to date in the same statement sequence.
  // PutEpoch is a compare-and-set on the lease: the epoch is recorded only while
  // epoch.attempt is the run's current attempt, held (leased or running) by
  // `worker_id`; FAILED_PRECONDITION otherwise.
  virtual Status PutEpoch(const EpochRecord& epoch, const std::string& worker_id) = 0;
  // Records `epoch` as the run's next one and moves the run to it (a worker's epoch
  // report), with one UPDATE of the run: a compare-and-set on `run.read_as` (as
  // UpdateRun), on the run holding a lease (leased or running, as PutEpoch) and on
  // the stored epoch being epoch.epoch - 1; FAILED_PRECONDITION naming what changed
  // otherwise (nothing written), NOT_FOUND when the run is gone, INVALID_ARGUMENT for
  // a record not read from the store, or whose epoch or attempt (new or read) is not
  // the epoch's, or whose new state holds no lease. Writes of `run` only its state,
  // epoch, last_test_error,
  // lease_expires_ms and updated_ms. Keeps the results summary as PutEpoch does, of
  // the run's epochs up to this one: from the new epoch and the summary_k - 1
  // evaluated epochs before it (or, for an epoch not evaluated, as it was), without
  // reading all of them. Epochs after this one that the run may still hold (an
  // abandoned attempt's, that the run's epoch went back before without
  // DeleteEpochsAfter; the scheduler never leaves any) are not counted.
  virtual Status AppendEpoch(const RunRecord& run, const EpochRecord& epoch) = 0;
  // The report path's common case without reading the run first: records `epoch` as
  // the run's next one when the run is `running` on epoch.attempt under `worker_id`,
  // at epoch epoch.epoch - 1 of at least epoch.epoch, with one compare-and-set UPDATE
  // of exactly that (then the epoch's row). The run moves as AppendEpoch moves it:
  // its epoch, last_test_error (when the epoch was evaluated), last_epoch_seconds,
  // results summary, and the given lease_expires_ms and updated_ms. Returns false,
  // having written nothing, when the run is in any other state (gone, another lease,
  // leased but not running yet, another epoch): the caller reads it and decides.
  // Inside the caller's own batch (BeginBatch) the epoch may be recorded in a log
  // first, durable with the batch, and moved to the run, its epochs and its sweeps'
  // counters later (SqliteStoreOptions::epoch_log_defer_rate): every other call
  // on this store sees it moved; another connection may see it up to that late. A
  // run the store cannot tell the log's last epoch of (after a rollback) is refused
  // (false) until the caller's read of it.
  virtual StatusOr<bool> AppendNextEpoch(const std::string& worker_id, const EpochRecord& epoch,
                                         int64_t lease_expires_ms, int64_t updated_ms) = 0;
  // A heartbeat's renewal without reading the run: sets its lease_expires_ms and
  // updated_ms (neither ever moves back) when the run is leased or running on
  // `attempt` under `worker_id`, with one compare-and-set UPDATE. Returns false,
  // having written nothing, otherwise. Changes nothing a sweep's counters or change
  // stamp follow.
  virtual StatusOr<bool> RenewLease(const std::string& worker_id, const std::string& run_id,
                                    int attempt, int64_t lease_expires_ms, int64_t updated_ms) = 0;
  // Whether epochs AppendNextEpoch recorded may not be visible to other connections
  // yet. Thread-safe: true from the moment such an epoch is recorded.
  virtual bool HoldsUnappliedEpochs() const = 0;
  // Makes them visible to other connections, in a transaction of its own (as
  // RunInTransaction: another thread's open batch is committed first).
  virtual Status ApplyLoggedEpochs() = 0;
  virtual Status DeleteEpochsAfter(const std::string& run_id, int epoch) = 0;
  virtual StatusOr<std::vector<EpochRecord>> ListEpochs(const std::string& run_id) = 0;
  // The epochs of every run of a sweep in one query, ordered by run id, then epoch.
  virtual StatusOr<std::vector<EpochRecord>> ListSweepEpochs(const std::string& sweep_id) = 0;

  // Workers.
  virtual Status UpsertWorker(const WorkerRecord& worker) = 0;
  virtual StatusOr<std::optional<WorkerRecord>> GetWorker(const std::string& worker_id) = 0;
  virtual Status TouchWorker(const std::string& worker_id, int64_t now_ms) = 0;
  virtual StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;
  // Forgets a registration (its runs are not touched).
  virtual Status DeleteWorker(const std::string& worker_id) = 0;
  // A worker's health; a zero record (with the id) when none was stored.
  virtual StatusOr<WorkerHealthRecord> GetWorkerHealth(const std::string& worker_id) = 0;
  virtual Status PutWorkerHealth(const WorkerHealthRecord& health) = 0;
  virtual StatusOr<std::vector<WorkerHealthRecord>> ListWorkerHealth() = 0;
};

}  // namespace resweep
