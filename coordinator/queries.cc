#include "coordinator/queries.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <map>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/run_config_json.h"
#include "coordinator/persisted_statistics.h"

namespace resweep {

namespace {

constexpr size_t kMaxCandidatesListed = 10;

std::string DateOf(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// Batches per epoch of a run, as the trainer would count them for the data set's
// standard size (or train_limit if smaller); 0 when the config cannot be read.
int64_t IterationsPerEpoch(const std::string& config_json) {
  auto config = RunConfigFromJson(config_json);
  if (!config.ok() || config->train.batch_size <= 0) return 0;
  int64_t images = config->dataset.kind == "fashion-mnist" ? 60000 : 50000;
  if (config->dataset.train_limit > 0) images = std::min(images, config->dataset.train_limit);
  return (images + config->train.batch_size - 1) / config->train.batch_size;
}

// Page tokens. Callers treat them as opaque; inside, a runs token is
// "r1.<sweep id>.<position of the last link listed>" and a sweeps token
// "s1.<created_ms>.<rowid>" of the last sweep listed, "sn1." in place of "s1." when
// listed newest first ("1": the format's version). A token leads on only in the order
// it came from.
constexpr char kRunsTokenTag[] = "r1.";
constexpr char kSweepsTokenTag[] = "s1.";
constexpr char kNewestSweepsTokenTag[] = "sn1.";

const char* SweepsTokenTag(SweepOrder order) {
  return order == SweepOrder::kNewestFirst ? kNewestSweepsTokenTag : kSweepsTokenTag;
}

std::string RunsPageToken(const std::string& sweep_id, int64_t position) {
  return kRunsTokenTag + sweep_id + "." + std::to_string(position);
}

std::string SweepsPageToken(SweepOrder order, const SweepCursor& cursor) {
  return SweepsTokenTag(order) + std::to_string(cursor.created_ms) + "." +
         std::to_string(cursor.rowid);
}

// The whole of `text` as a decimal integer.
std::optional<int64_t> ParseInt64(std::string_view text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

Status MalformedPageToken(const std::string& token) {
  constexpr size_t kShown = 40;
  const std::string shown = token.size() > kShown ? token.substr(0, kShown) + "..." : token;
  return InvalidArgumentError("page_token '" + shown +
                              "' is not a page token of this list: pass the next_page_token of "
                              "the page before, or none for the first page");
}

struct RunsCursor {
  std::string sweep_id;
  int64_t position = 0;
};

StatusOr<RunsCursor> ParseRunsPageToken(const std::string& token) {
  const std::string_view tag = kRunsTokenTag;
  const size_t dot = token.rfind('.');
  if (token.compare(0, tag.size(), tag) != 0 || dot == std::string::npos || dot <= tag.size()) {
    return MalformedPageToken(token);
  }
  auto position = ParseInt64(std::string_view(token).substr(dot + 1));
  if (!position || *position <= 0) return MalformedPageToken(token);
  return RunsCursor{token.substr(tag.size(), dot - tag.size()), *position};
}

StatusOr<SweepCursor> ParseSweepsPageToken(SweepOrder order, const std::string& token) {
  const std::string_view tag = SweepsTokenTag(order);
  const size_t dot = token.rfind('.');
  if (token.compare(0, tag.size(), tag) != 0 || dot == std::string::npos || dot <= tag.size()) {
    return MalformedPageToken(token);
  }
  auto created_ms = ParseInt64(std::string_view(token).substr(tag.size(), dot - tag.size()));
  auto rowid = ParseInt64(std::string_view(token).substr(dot + 1));
  if (!created_ms || !rowid) return MalformedPageToken(token);
  return SweepCursor{*created_ms, *rowid};
}

// The rows a page holds: page_size, or the default for 0, at most `max`.
StatusOr<int> PageLimit(int page_size, int default_size, int max) {
  if (page_size < 0) {
    return InvalidArgumentError("page_size must be >= 0 (0 = the default of " +
                                std::to_string(default_size) + "), got " +
                                std::to_string(page_size));
  }
  return page_size == 0 ? default_size : std::min(page_size, max);
}

// About the bytes a run takes in a ListRuns response.
size_t EncodedSizeOf(const SweepRunRecord& link, const RunRecord& run) {
  const std::string& worker = run.worker_id.empty() ? run.last_worker_id : run.worker_id;
  return 64 + run.run_id.size() + link.sweep_id.size() + link.cell_label.size() + worker.size() +
         run.error.size();
}

}  // namespace

std::vector<EpochRecord> DownsampleEpochs(const std::vector<EpochRecord>& epochs, int stride) {
  if (stride <= 1) return epochs;
  std::vector<EpochRecord> out;
  for (size_t i = 0; i < epochs.size(); ++i) {
    if ((epochs[i].epoch - 1) % stride == 0 || i + 1 == epochs.size()) out.push_back(epochs[i]);
  }
  return out;
}

std::string SweepStateName(const RunCountsRecord& counts, bool cancel_requested) {
  if (counts.queued + counts.leased + counts.running > 0) return "active";
  if (cancel_requested && counts.cancelled > 0) return "cancelled";
  return "done";
}

double EstimateSecondsLeft(const SweepProgressRecord& progress, const RunCountsRecord& counts) {
  if (progress.epochs_left <= 0 || progress.mean_epoch_seconds <= 0) return -1;
  // Nothing running (no worker free, or none alive): no rate to extrapolate from.
  const int parallel = counts.leased + counts.running;
  if (parallel == 0) return -1;
  return static_cast<double>(progress.epochs_left) * progress.mean_epoch_seconds / parallel;
}

Queries::Queries(Store* store, const Clock* clock, int64_t lease_ms,
                 analysis::StatisticsCache* stats)
    : store_(store), clock_(clock), lease_ms_(lease_ms), stats_(stats) {}

StatusOr<SweepRecord> Queries::ResolveSweep(const std::string& sweep) {
  if (sweep.empty()) return InvalidArgumentError("no sweep given");
  // Sweeps whose id starts with `sweep`: an id equal to it sorts first.
  RESWEEP_ASSIGN_OR_RETURN(
      std::vector<SweepRecord> by_prefix,
      store_->SweepsWithIdPrefix(sweep, static_cast<int>(kMaxCandidatesListed) + 1));
  if (!by_prefix.empty() && by_prefix[0].sweep_id == sweep) return by_prefix[0];
  // An exact name wins over an id prefix: `resweep delete 9` on a sweep named "9" must
  // never reach a sweep whose id starts with 9.
  RESWEEP_ASSIGN_OR_RETURN(std::optional<SweepRecord> named, store_->NewestSweepNamed(sweep));
  if (named) return *named;
  if (by_prefix.size() == 1) return by_prefix[0];
  if (by_prefix.size() > 1) {
    const bool more = by_prefix.size() > kMaxCandidatesListed;
    if (more) by_prefix.resize(kMaxCandidatesListed);
    std::stable_sort(
        by_prefix.begin(), by_prefix.end(),
        [](const SweepRecord& a, const SweepRecord& b) { return a.created_ms < b.created_ms; });
    std::string message = "sweep id prefix '" + sweep + "' is ambiguous: it matches " +
                          (more ? "more than " + std::to_string(kMaxCandidatesListed)
                                : std::to_string(by_prefix.size())) +
                          " sweeps:";
    for (const auto& s : by_prefix) {
      message += "\n  " + s.sweep_id + "  " + s.name + "  (submitted " + DateOf(s.created_ms) +
                 (s.archived ? ", deleted" : "") + ")";
    }
    if (more) message += "\n  ...";
    message += "\ngive more characters of the id";
    return InvalidArgumentError(message);
  }
  return NotFoundError("no sweep '" + sweep +
                       "' (not an id, id prefix or name; `resweep status` "
                       "lists the sweeps)");
}

StatusOr<std::string> Queries::ResolveRunId(const std::string& run) {
  if (run.empty()) return InvalidArgumentError("no run given");
  auto ids = store_->RunIdsWithPrefix(run, static_cast<int>(kMaxCandidatesListed) + 1);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return NotFoundError("no run '" + run + "'");
  if (ids->size() == 1 || (*ids)[0] == run) return (*ids)[0];
  std::string message = "run id prefix '" + run + "' is ambiguous: it matches";
  for (size_t i = 0; i < ids->size() && i < kMaxCandidatesListed; ++i)
    message += "\n  " + (*ids)[i];
  if (ids->size() > kMaxCandidatesListed) message += "\n  ...";
  return InvalidArgumentError(message);
}

StatusOr<SweepStampView> Queries::SweepChangeStamp(const std::string& sweep) {
  RESWEEP_ASSIGN_OR_RETURN(SweepRecord record, ResolveSweep(sweep));
  RESWEEP_ASSIGN_OR_RETURN(std::optional<int64_t> stamp, store_->SweepChangeStamp(record.sweep_id));
  // Sweeps are never removed (a delete archives them): one just resolved has a stamp.
  if (!stamp) return InternalError("sweep " + record.sweep_id + " has no change stamp");
  return SweepStampView{record.sweep_id, *stamp};
}

StatusOr<SweepView> Queries::View(const SweepRecord& sweep) {
  auto counts = store_->CountRuns(sweep.sweep_id);
  if (!counts.ok()) return counts.status();
  auto progress = store_->SweepProgress(sweep.sweep_id);
  if (!progress.ok()) return progress.status();
  SweepView view;
  view.sweep = sweep;
  view.counts = *counts;
  view.state = SweepStateName(*counts, sweep.cancelled);
  view.progress = *progress;
  view.eta_seconds = EstimateSecondsLeft(*progress, *counts);
  return view;
}

StatusOr<SweepView> Queries::GetSweep(const std::string& sweep) {
  auto record = ResolveSweep(sweep);
  if (!record.ok()) return record.status();
  return View(*record);
}

StatusOr<SweepsPageView> Queries::ListSweeps(bool include_archived, const PageRequest& page,
                                             SweepOrder order) {
  RESWEEP_ASSIGN_OR_RETURN(int limit,
                           PageLimit(page.page_size, kDefaultSweepsPageSize, kMaxSweepsPageSize));
  std::optional<SweepCursor> after;
  if (!page.page_token.empty()) {
    RESWEEP_ASSIGN_OR_RETURN(after, ParseSweepsPageToken(order, page.page_token));
  }
  RESWEEP_ASSIGN_OR_RETURN(SweepsPage sweeps,
                           store_->ListSweepsPage(include_archived, order, after, limit));
  SweepsPageView out;
  for (const auto& s : sweeps.sweeps) {
    RESWEEP_ASSIGN_OR_RETURN(SweepView view, View(s));
    out.sweeps.push_back(std::move(view));
  }
  if (sweeps.next) out.next_page_token = SweepsPageToken(order, *sweeps.next);
  return out;
}

StatusOr<RunsPageView> Queries::ListRuns(const std::string& sweep, const std::string& state,
                                         const PageRequest& page) {
  std::optional<RunState> filter;
  if (!state.empty()) {
    filter = ParseRunState(state);
    if (!filter) {
      return InvalidArgumentError("state '" + state + "' is not a run state" +
                                  " (queued, leased, running, succeeded, failed, cancelled)");
    }
  }
  RESWEEP_ASSIGN_OR_RETURN(int limit,
                           PageLimit(page.page_size, kDefaultRunsPageSize, kMaxRunsPageSize));
  std::optional<RunsCursor> after;
  if (!page.page_token.empty()) {
    RESWEEP_ASSIGN_OR_RETURN(after, ParseRunsPageToken(page.page_token));
  }
  RESWEEP_ASSIGN_OR_RETURN(SweepRecord record, ResolveSweep(sweep));
  if (after && after->sweep_id != record.sweep_id) {
    return InvalidArgumentError("page_token continues the runs of sweep " + after->sweep_id +
                                ", not of " + record.sweep_id + " ('" + sweep +
                                "'): ask for the first page of this sweep without one");
  }
  // One row more than the page says whether another page follows.
  RESWEEP_ASSIGN_OR_RETURN(
      auto rows,
      store_->ListSweepRunsPage(record.sweep_id, filter, after ? after->position : 0, limit + 1));
  RunsPageView out;
  size_t bytes = 0;
  for (auto& [link, run] : rows) {
    const size_t size = EncodedSizeOf(link, run);
    if (static_cast<int>(out.runs.size()) == limit ||
        (!out.runs.empty() && bytes + size > kMaxRunsPageBytes)) {
      out.next_page_token = RunsPageToken(record.sweep_id, out.runs.back().link.position);
      break;
    }
    bytes += size;
    out.runs.push_back({std::move(link), std::move(run)});
  }
  return out;
}

StatusOr<ResultsInputs> Queries::ReadResultsInputs(const std::string& sweep, int last_k) {
  RESWEEP_ASSIGN_OR_RETURN(SweepRecord record, ResolveSweep(sweep));
  ResultsInputs in;
  RESWEEP_ASSIGN_OR_RETURN(in.sweep, View(record));
  in.last_k = last_k > 0 ? last_k : record.last_k;
  RESWEEP_ASSIGN_OR_RETURN(in.outcomes_version, store_->SweepOutcomesVersion(record.sweep_id));
  RESWEEP_ASSIGN_OR_RETURN(in.cells, store_->ListSweepCells(record.sweep_id));
  RESWEEP_ASSIGN_OR_RETURN(in.outcomes, store_->ListSweepOutcomes(record.sweep_id, in.last_k));
  // A run's summary is of the K of the first sweep it was linked to: another K (a
  // run shared with a sweep of another last_k, or an explicit --last-k) reads the
  // run's last epochs.
  std::vector<std::string> other_k;
  std::vector<size_t> other_k_rows;
  for (size_t i = 0; i < in.outcomes.size(); ++i) {
    if (in.outcomes[i].summary_k != in.last_k) {
      other_k.push_back(in.outcomes[i].run_id);
      other_k_rows.push_back(i);
    }
  }
  if (!other_k.empty()) {
    RESWEEP_ASSIGN_OR_RETURN(auto means, store_->LastKTestErrors(other_k, in.last_k));
    for (size_t i = 0; i < means.size(); ++i) {
      in.outcomes[other_k_rows[i]].last_k_test_error = means[i];
    }
  }
  return in;
}

StatusOr<ResultsView> SummarizeResults(ResultsInputs inputs, analysis::StatisticsCache* cache,
                                       analysis::StatisticsBacking* stored) {
  ResultsView out;
  out.last_k = inputs.last_k;
  try {
    out.cells = SummarizeCells(inputs.cells, inputs.outcomes, cache, stored);
  } catch (const StatisticsComputationStopped&) {
    throw;                             // for whoever asked to be able to stop it
  } catch (const std::exception& e) {  // e.g. boost::math on values it cannot take
    return InternalError("results of sweep " + inputs.sweep.sweep.sweep_id + ": " + e.what());
  }
  out.sweep = std::move(inputs.sweep);
  return out;
}

StatusOr<ResultsView> Queries::Results(const std::string& sweep, int last_k,
                                       analysis::StatisticsBacking* statistics) {
  RESWEEP_ASSIGN_OR_RETURN(ResultsInputs inputs, ReadResultsInputs(sweep, last_k));
  const std::string sweep_id = inputs.sweep.sweep.sweep_id;
  PersistedStatistics stored([this, sweep_id] { return store_->ListSweepStatistics(sweep_id); });
  return SummarizeResults(std::move(inputs), stats_, statistics ? statistics : &stored);
}

StatusOr<std::vector<StatisticsEntryRecord>> Queries::StoredStatistics(
    const std::string& sweep_id) {
  return store_->ListSweepStatistics(sweep_id);
}

StatusOr<std::vector<std::pair<std::string, int64_t>>> Queries::SweepsWithStaleStatistics(
    int limit) {
  return store_->SweepsWithStaleStatistics(limit);
}

StatusOr<RunDetailView> Queries::GetRun(const std::string& run) {
  auto id = ResolveRunId(run);
  if (!id.ok()) return id.status();
  auto record = store_->GetRun(*id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return NotFoundError("no run '" + run + "'");
  RunDetailView out;
  out.run = **record;
  auto links = store_->LinksOfRun(*id);
  if (!links.ok()) return links.status();
  out.links = std::move(*links);
  auto attempts = store_->ListAttempts(*id);
  if (!attempts.ok()) return attempts.status();
  out.attempts = std::move(*attempts);
  if (!out.attempts.empty()) out.run.last_worker_id = out.attempts.back().worker_id;
  auto epochs = store_->ListEpochs(*id);
  if (!epochs.ok()) return epochs.status();
  out.epochs = std::move(*epochs);
  return out;
}

StatusOr<CurvesView> Queries::Curves(const std::string& sweep, int max_points) {
  if (max_points < 0) {
    return InvalidArgumentError("max_points must be >= 0 (0 = every epoch), got " +
                                std::to_string(max_points));
  }
  auto record = ResolveSweep(sweep);
  if (!record.ok()) return record.status();
  auto view = View(*record);
  if (!view.ok()) return view.status();
  auto rows = store_->ListSweepRuns(record->sweep_id, std::nullopt);
  if (!rows.ok()) return rows.status();
  auto epochs = store_->ListSweepEpochs(record->sweep_id);
  if (!epochs.ok()) return epochs.status();
  std::map<std::string, std::vector<EpochRecord>> by_run;
  int longest = 0;
  for (auto& e : *epochs) {
    longest = std::max(longest, e.epoch);
    by_run[e.run_id].push_back(std::move(e));
  }
  // One stride for the whole sweep keeps the runs' epochs aligned.
  const int stride = max_points > 0 ? std::max(1, (longest + max_points - 1) / max_points) : 1;
  CurvesView out;
  out.sweep = std::move(*view);
  for (auto& [link, run] : *rows) {
    RunCurveView curve;
    try {
      curve.params =
          nlohmann::json::parse(link.cell_params_json).get<std::map<std::string, std::string>>();
    } catch (const std::exception&) {
      // An unreadable label map leaves params empty; the cell label still names the cell.
    }
    curve.iterations_per_epoch = IterationsPerEpoch(run.config_json);
    if (auto it = by_run.find(run.run_id); it != by_run.end()) {
      curve.epochs = DownsampleEpochs(it->second, stride);
    }
    curve.link = std::move(link);
    curve.run = std::move(run);
    out.runs.push_back(std::move(curve));
  }
  return out;
}

StatusOr<std::vector<WorkerView>> Queries::ListWorkers(bool include_gone) {
  auto workers = store_->ListWorkers();
  if (!workers.ok()) return workers.status();
  auto holders = store_->ListLeaseThroughput();
  if (!holders.ok()) return holders.status();
  std::map<std::string, std::vector<std::string>> held;
  std::map<std::string, double> images_per_sec;
  for (const auto& lease : *holders) {
    held[lease.worker_id].push_back(lease.run_id);
    images_per_sec[lease.worker_id] += lease.images_per_sec;
  }
  auto healths = store_->ListWorkerHealth();
  if (!healths.ok()) return healths.status();
  std::map<std::string, WorkerHealthRecord> health;
  for (auto& h : *healths) health[h.worker_id] = std::move(h);
  const int64_t now = clock_->NowMs();
  std::vector<WorkerView> out;
  for (auto& w : *workers) {
    WorkerView v;
    const int64_t age_ms = std::max<int64_t>(0, now - w.last_seen_ms);
    v.heartbeat_age_seconds = age_ms / 1000.0;
    v.state = age_ms <= lease_ms_ ? "alive" : age_ms <= 10 * lease_ms_ ? "silent" : "gone";
    if (auto it = held.find(w.worker_id); it != held.end()) {
      v.runs_held = it->second;
      v.images_per_sec = images_per_sec[w.worker_id];
    }
    if (auto it = health.find(w.worker_id); it != health.end()) v.health = it->second;
    v.quarantined = v.health.quarantined_until_ms > now;
    if (v.state == "gone" && v.runs_held.empty() && !include_gone) continue;
    v.worker = std::move(w);
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace resweep
