#include "coordinator/convert.h"

#include <spdlog/fmt/fmt.h>

namespace resweep {

void ToProto(const SweepView& view, v1::SweepSummary* out) {
  out->set_sweep_id(view.sweep.sweep_id);
  out->set_name(view.sweep.name);
  out->set_state(view.state);
  out->set_created_unix_ms(view.sweep.created_ms);
  out->set_last_k(view.sweep.last_k);
  auto* c = out->mutable_counts();
  c->set_queued(view.counts.queued);
  c->set_leased(view.counts.leased);
  c->set_running(view.counts.running);
  c->set_succeeded(view.counts.succeeded);
  c->set_failed(view.counts.failed);
  c->set_cancelled(view.counts.cancelled);
  c->set_total(view.counts.total());
  out->set_cancel_requested(view.sweep.cancelled);
  out->set_archived(view.sweep.archived);
  out->set_epochs_done(view.progress.epochs_done);
  out->set_epochs_total(view.progress.epochs_total);
  out->set_mean_epoch_seconds(view.progress.mean_epoch_seconds);
  out->set_eta_seconds(view.eta_seconds);
}

void ToProto(const RunView& view, v1::RunInfo* out) {
  const RunRecord& r = view.run;
  out->set_run_id(r.run_id);
  out->set_sweep_id(view.link.sweep_id);
  out->set_cell_label(view.link.cell_label);
  out->set_seed(r.seed);
  out->set_state(RunStateName(r.state));
  out->set_attempt(r.attempt);
  out->set_worker_id(r.worker_id.empty() ? r.last_worker_id : r.worker_id);
  out->set_epoch(r.epoch);
  out->set_epochs_total(r.epochs_total);
  out->set_last_test_error(r.last_test_error);
  out->set_error(r.error);
  out->set_param_count(r.param_count);
  out->set_checkpoint_epoch(r.checkpoint_epoch);
}

void ToProto(const SweepsPageView& view, v1::ListSweepsResponse* out) {
  for (const auto& sweep : view.sweeps) ToProto(sweep, out->add_sweeps());
  out->set_next_page_token(view.next_page_token);
}

void ToProto(const RunsPageView& view, v1::ListRunsResponse* out) {
  for (const auto& run : view.runs) ToProto(run, out->add_runs());
  out->set_next_page_token(view.next_page_token);
}

namespace {
void ToProto(const analysis::Description& d, v1::Stat* out) {
  out->set_n(d.n);
  out->set_mean(d.mean);
  out->set_std(d.std);
  out->set_min(d.min);
  out->set_max(d.max);
  out->set_sem(d.sem);
  out->set_ci95_low(d.ci95.low);
  out->set_ci95_high(d.ci95.high);
  out->set_median(d.median);
  out->set_q1(d.q1);
  out->set_q3(d.q3);
  out->set_iqm(d.iqm);
  out->set_bootstrap_ci95_low(d.bootstrap_ci95.low);
  out->set_bootstrap_ci95_high(d.bootstrap_ci95.high);
  for (double v : d.values) out->add_values(v);
}

void ToProto(const analysis::CellVerdict& v, v1::CellComparison* out) {
  out->set_is_best(v.is_best);
  out->set_testable(v.testable);
  if (v.welch) {
    out->set_welch_t(v.welch->t);
    out->set_welch_dof(v.welch->dof);
    out->set_p_welch(v.welch->p);
    out->set_p_holm(v.p_holm);
  }
  out->set_indistinguishable_from_best(v.indistinguishable_from_best);
  if (const auto& poi = v.probability_better_than_best) {
    out->set_has_probability(true);
    out->set_probability_better(poi->estimate);
    out->set_probability_better_low(poi->ci95.low);
    out->set_probability_better_high(poi->ci95.high);
  }
  out->set_seeds_needed(v.seeds_needed.value_or(0));
}
}  // namespace

void ToProto(const ResultsView& view, v1::GetResultsResponse* out) {
  ToProto(view.sweep, out->mutable_sweep());
  out->set_last_k(view.last_k);
  out->set_best_cell(-1);
  out->set_alpha(analysis::kDefaultAlpha);
  for (const auto& c : view.cells) {
    if (c.comparison.is_best) out->set_best_cell(out->cells_size());
    auto* cell = out->add_cells();
    cell->set_cell_label(c.cell_label);
    for (const auto& [k, v] : c.params) (*cell->mutable_params())[k] = v;
    cell->set_runs_total(c.runs_total);
    cell->set_runs_succeeded(c.runs_succeeded);
    ToProto(c.final_test_error, cell->mutable_final_test_error());
    ToProto(c.last_k_test_error, cell->mutable_last_k_test_error());
    cell->set_dataset(c.dataset);
    cell->set_block(c.block);
    cell->set_layers(c.layers);
    cell->set_shortcut(c.shortcut);
    cell->set_paper_test_error(c.paper_test_error);
    cell->set_source_test_error(c.source_test_error);
    cell->set_mean_param_count(c.mean_param_count);
    ToProto(c.comparison, cell->mutable_comparison());
  }
  // The level CompareWithBest planned seeds at, from the number of cells it tested.
  int comparisons = 0;
  for (const auto& c : view.cells) comparisons += c.comparison.testable && !c.comparison.is_best;
  out->set_seeds_needed_alpha(analysis::SeedsNeededAlpha(analysis::kDefaultAlpha, comparisons));
}

void ToProto(const Lease& lease, v1::RunLease* out) {
  out->set_run_id(lease.run_id);
  out->set_attempt(lease.attempt);
  out->set_config_json(lease.config_json);
  out->set_seed(lease.seed);
  out->set_resume_epoch(lease.resume_epoch);
  out->set_resume_path(lease.resume_path);
  out->set_lease_expires_unix_ms(lease.expires_ms);
  out->set_sweep_name(lease.sweep_name);
  out->set_cell_label(lease.cell_label);
  out->set_slot(lease.slot);
}

}  // namespace resweep

namespace resweep {

void ToProto(const SubmitResult& r, v1::SubmitSweepResponse* out) {
  out->set_sweep_id(r.sweep_id);
  out->set_name(r.name);
  out->set_runs_total(r.runs_total);
  out->set_runs_new(r.runs_new);
  out->set_already_existed(r.already_existed);
  for (const auto& w : r.warnings) out->add_warnings(w);
  for (const auto& p : r.planned) {
    auto* run = out->add_runs();
    run->set_run_id(p.run_id);
    run->set_cell_label(p.cell_label);
    run->set_seed(p.seed);
  }
  out->set_max_runs_per_sweep(r.max_runs_per_sweep);
  out->set_name_reused_by(r.name_reused_by);
  out->set_restored(r.restored);
}

void ToProto(const WorkerView& view, v1::WorkerInfo* out) {
  const WorkerRecord& w = view.worker;
  out->set_worker_id(w.worker_id);
  out->set_name(w.name);
  out->set_host(w.host);
  size_t begin = 0;
  while (begin < w.devices.size()) {
    size_t end = w.devices.find(',', begin);
    if (end == std::string::npos) end = w.devices.size();
    out->add_devices(w.devices.substr(begin, end - begin));
    begin = end + 1;
  }
  for (const auto& run : view.runs_held) out->add_runs_held(run);
  out->set_images_per_sec(view.images_per_sec);
  out->set_registered_unix_ms(w.registered_ms);
  out->set_last_seen_unix_ms(w.last_seen_ms);
  out->set_heartbeat_age_seconds(view.heartbeat_age_seconds);
  out->set_state(view.state);
  out->set_consecutive_host_faults(view.health.consecutive_host_faults);
  out->set_quarantine_level(view.health.quarantine_level);
  if (view.quarantined) {
    out->set_quarantined_until_unix_ms(view.health.quarantined_until_ms);
    out->set_quarantine_reason(fmt::format("{} host faults in a row; last: {}",
                                           view.health.consecutive_host_faults,
                                           view.health.last_fault));
  }
}

void ToProto(const RunDetailView& view, v1::GetRunResponse* out) {
  RunView summary{view.links.empty() ? SweepRunRecord{} : view.links.front(), view.run};
  ToProto(summary, out->mutable_run());
  out->set_config_json(view.run.config_json);
  for (const auto& l : view.links) out->add_sweep_ids(l.sweep_id);
  for (const auto& a : view.attempts) {
    auto* info = out->add_attempts();
    info->set_attempt(a.attempt);
    info->set_worker_id(a.worker_id);
    info->set_state(a.state);
    info->set_started_unix_ms(a.started_ms);
    info->set_ended_unix_ms(a.ended_ms);
    info->set_reason(a.reason);
    info->set_log_tail(a.log_tail);
  }
  for (const auto& e : view.epochs) {
    auto* m = out->add_epochs();
    m->set_epoch(e.epoch);
    m->set_train_loss(e.train_loss);
    m->set_train_error(e.train_error);
    m->set_test_error(e.test_error);
    m->set_test_loss(e.test_loss);
    m->set_lr(e.lr);
    m->set_seconds(e.seconds);
    m->set_images_per_sec(e.images_per_sec);
  }
  out->set_failures(view.run.failures);
  out->set_max_attempts(view.run.max_attempts);
}

void ToProto(const CurvesView& view, v1::GetCurvesResponse* out) {
  ToProto(view.sweep, out->mutable_sweep());
  for (const auto& curve : view.runs) {
    auto* r = out->add_runs();
    r->set_run_id(curve.run.run_id);
    r->set_cell_label(curve.link.cell_label);
    r->set_cell_key(curve.link.cell_key);
    for (const auto& [k, v] : curve.params) (*r->mutable_params())[k] = v;
    r->set_seed(curve.run.seed);
    r->set_state(RunStateName(curve.run.state));
    for (const auto& e : curve.epochs) {
      auto* p = r->add_points();
      p->set_epoch(e.epoch);
      p->set_iteration(static_cast<int64_t>(e.epoch) * curve.iterations_per_epoch);
      p->set_train_loss(e.train_loss);
      p->set_train_error(e.train_error);
      p->set_test_loss(e.test_loss);
      p->set_test_error(e.test_error);
      p->set_lr(e.lr);
    }
  }
}

}  // namespace resweep
