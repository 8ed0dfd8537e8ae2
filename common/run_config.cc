#include "common/run_config_json.h"

namespace resweep {

using nlohmann::json;

namespace {

template <typename T>
void GetIfPresent(const json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it != j.end()) *out = it->get<T>();
}

}  // namespace

// Built member by member: nlohmann::json's initializer lists copy every value they
// hold once more, which made this a third of expanding a large grid.
json RunConfigToJson(const RunConfig& c) {
  json j = json::object();
  json& dataset = j["dataset"];
  dataset["kind"] = c.dataset.kind;
  dataset["path"] = c.dataset.path;
  dataset["train_limit"] = c.dataset.train_limit;
  dataset["test_limit"] = c.dataset.test_limit;
  dataset["preprocess"] = c.dataset.preprocess;
  dataset["augment_padding"] = c.dataset.augment_padding;
  dataset["augment_flip"] = c.dataset.augment_flip;
  json& model = j["model"];
  model["block"] = c.model.block;
  model["depth_n"] = c.model.depth_n;
  model["shortcut"] = c.model.shortcut;
  model["base_width"] = c.model.base_width;
  const auto& o = c.train.optimizer;
  const auto& s = c.train.schedule;
  json& train = j["train"];
  train["epochs"] = c.train.epochs;
  train["batch_size"] = c.train.batch_size;
  json& optimizer = train["optimizer"];
  optimizer["name"] = o.name;
  optimizer["lr"] = o.lr;
  optimizer["momentum"] = o.momentum;
  optimizer["nesterov"] = o.nesterov;
  optimizer["weight_decay"] = o.weight_decay;
  optimizer["beta1"] = o.beta1;
  optimizer["beta2"] = o.beta2;
  optimizer["eps"] = o.eps;
  optimizer["alpha"] = o.alpha;
  json& schedule = train["schedule"];
  schedule["kind"] = s.kind;
  schedule["milestones"] = s.milestones;
  schedule["milestone_unit"] = s.milestone_unit;
  schedule["gamma"] = s.gamma;
  schedule["warmup_iterations"] = s.warmup_iterations;
  schedule["warmup_kind"] = s.warmup_kind;
  schedule["warmup_lr"] = s.warmup_lr;
  schedule["min_lr"] = s.min_lr;
  train["eval_every"] = c.train.eval_every;
  train["label_smoothing"] = c.train.label_smoothing;
  train["grad_clip_norm"] = c.train.grad_clip_norm;
  train["deterministic"] = c.train.deterministic;
  train["channels_last"] = c.train.channels_last;
  train["amp"] = c.train.amp;
  train["checkpoint_every"] = c.train.checkpoint_every;
  json& trainer = j["trainer"];
  trainer["kind"] = c.trainer.kind;
  trainer["epoch_seconds"] = c.trainer.epoch_seconds;
  trainer["fail_probability"] = c.trainer.fail_probability;
  // Written only when set, so that the canonical JSON, and with it the run id, of
  // every config that does not use them stays what it was before they existed.
  if (c.train.max_run_seconds != 0) train["max_run_seconds"] = c.train.max_run_seconds;
  if (c.trainer.hang_at_epoch != 0) trainer["hang_at_epoch"] = c.trainer.hang_at_epoch;
  if (c.trainer.hang_ignores_stop) trainer["hang_ignores_stop"] = true;
  return j;
}

std::string RunConfigToCanonicalJson(const RunConfig& config) {
  // nlohmann::json objects are std::map-backed, so dump() sorts keys.
  return RunConfigToJson(config).dump();
}

StatusOr<RunConfig> RunConfigFromJson(const std::string& json_text) {
  RunConfig c;
  try {
    json j = json::parse(json_text);
    if (auto d = j.find("dataset"); d != j.end()) {
      GetIfPresent(*d, "kind", &c.dataset.kind);
      GetIfPresent(*d, "path", &c.dataset.path);
      GetIfPresent(*d, "train_limit", &c.dataset.train_limit);
      GetIfPresent(*d, "test_limit", &c.dataset.test_limit);
      GetIfPresent(*d, "preprocess", &c.dataset.preprocess);
      GetIfPresent(*d, "augment_padding", &c.dataset.augment_padding);
      GetIfPresent(*d, "augment_flip", &c.dataset.augment_flip);
    }
    if (auto m = j.find("model"); m != j.end()) {
      GetIfPresent(*m, "block", &c.model.block);
      GetIfPresent(*m, "depth_n", &c.model.depth_n);
      GetIfPresent(*m, "shortcut", &c.model.shortcut);
      GetIfPresent(*m, "base_width", &c.model.base_width);
    }
    if (auto t = j.find("train"); t != j.end()) {
      GetIfPresent(*t, "epochs", &c.train.epochs);
      GetIfPresent(*t, "batch_size", &c.train.batch_size);
      GetIfPresent(*t, "eval_every", &c.train.eval_every);
      GetIfPresent(*t, "label_smoothing", &c.train.label_smoothing);
      GetIfPresent(*t, "grad_clip_norm", &c.train.grad_clip_norm);
      GetIfPresent(*t, "deterministic", &c.train.deterministic);
      GetIfPresent(*t, "channels_last", &c.train.channels_last);
      GetIfPresent(*t, "amp", &c.train.amp);
      GetIfPresent(*t, "checkpoint_every", &c.train.checkpoint_every);
      GetIfPresent(*t, "max_run_seconds", &c.train.max_run_seconds);
      if (auto o = t->find("optimizer"); o != t->end()) {
        auto& oc = c.train.optimizer;
        GetIfPresent(*o, "name", &oc.name);
        GetIfPresent(*o, "lr", &oc.lr);
        GetIfPresent(*o, "momentum", &oc.momentum);
        GetIfPresent(*o, "nesterov", &oc.nesterov);
        GetIfPresent(*o, "weight_decay", &oc.weight_decay);
        GetIfPresent(*o, "beta1", &oc.beta1);
        GetIfPresent(*o, "beta2", &oc.beta2);
        GetIfPresent(*o, "eps", &oc.eps);
        GetIfPresent(*o, "alpha", &oc.alpha);
      }
      if (auto s = t->find("schedule"); s != t->end()) {
        auto& sc = c.train.schedule;
        GetIfPresent(*s, "kind", &sc.kind);
        GetIfPresent(*s, "milestones", &sc.milestones);
        GetIfPresent(*s, "milestone_unit", &sc.milestone_unit);
        GetIfPresent(*s, "gamma", &sc.gamma);
        GetIfPresent(*s, "warmup_iterations", &sc.warmup_iterations);
        GetIfPresent(*s, "warmup_kind", &sc.warmup_kind);
        GetIfPresent(*s, "warmup_lr", &sc.warmup_lr);
        GetIfPresent(*s, "min_lr", &sc.min_lr);
      }
    }
    if (auto tr = j.find("trainer"); tr != j.end()) {
      GetIfPresent(*tr, "kind", &c.trainer.kind);
      GetIfPresent(*tr, "epoch_seconds", &c.trainer.epoch_seconds);
      GetIfPresent(*tr, "fail_probability", &c.trainer.fail_probability);
      GetIfPresent(*tr, "hang_at_epoch", &c.trainer.hang_at_epoch);
      GetIfPresent(*tr, "hang_ignores_stop", &c.trainer.hang_ignores_stop);
    }
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("run config JSON: ") + e.what());
  }
  return c;
}

Status SeedFusable(const RunConfig& config) {
  if (config.trainer.kind != "libtorch") {
    return UnimplementedError("fused gangs are trained by the libtorch trainer, not " +
                              config.trainer.kind);
  }
  if (config.train.optimizer.name != "sgd") {
    return UnimplementedError("fused gangs train SGD only, not " + config.train.optimizer.name);
  }
  if (config.train.amp == "fp16") {
    return UnimplementedError(
        "fused gangs do not train fp16 (one loss scale would couple the seeds)");
  }
  if (config.train.grad_clip_norm > 0) {
    return UnimplementedError(
        "fused gangs do not clip gradients (one norm would couple the seeds)");
  }
  return Status::Ok();
}

}  // namespace resweep
