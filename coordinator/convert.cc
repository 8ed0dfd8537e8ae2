#include "coordinator/convert.h"

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
}

void ToProto(const RunView& view, v1::RunInfo* out) {
  const RunRecord& r = view.run;
  out->set_run_id(r.run_id);
  out->set_sweep_id(view.link.sweep_id);
  out->set_cell_label(view.link.cell_label);
  out->set_seed(r.seed);
  out->set_state(RunStateName(r.state));
  out->set_attempt(r.attempt);
  out->set_worker_id(r.worker_id);
  out->set_epoch(r.epoch);
  out->set_epochs_total(r.epochs_total);
  out->set_last_test_error(r.last_test_error);
  out->set_error(r.error);
  out->set_param_count(r.param_count);
  out->set_checkpoint_epoch(r.checkpoint_epoch);
}

namespace {
void ToProto(const Summary& s, v1::Stat* out) {
  out->set_n(s.n);
  out->set_mean(s.mean);
  out->set_std(s.std);
  out->set_min(s.min);
  out->set_max(s.max);
}
}  // namespace

void ToProto(const ResultsView& view, v1::GetResultsResponse* out) {
  ToProto(view.sweep, out->mutable_sweep());
  out->set_last_k(view.last_k);
  for (const auto& c : view.cells) {
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
  }
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
}

}  // namespace resweep
