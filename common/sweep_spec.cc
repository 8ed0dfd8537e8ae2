#include "common/sweep_spec.h"
#include "common/run_config_json.h"

#include <yaml-cpp/yaml.h>

#include <sys/stat.h>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "common/hash.h"

namespace resweep {

namespace {

struct FieldError {
  std::string path;
  std::string message;
};

// Range and enum checks, one place for the parser and for workers.
std::vector<FieldError> CheckRunConfig(const RunConfig& c) {
  std::vector<FieldError> errors;
  auto require = [&](bool ok, const char* path, const std::string& message) {
    if (!ok) errors.push_back({path, message});
  };
  auto one_of = [&](const std::string& value, const char* path,
                    std::initializer_list<const char*> allowed) {
    for (const char* a : allowed) {
      if (value == a) return;
    }
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    errors.push_back({path, "'" + value + "' is not one of: " + list});
  };
  auto finite = [](double v) { return std::isfinite(v); };

  one_of(c.dataset.kind, "dataset.kind", {"cifar10", "fashion-mnist"});
  require(c.dataset.train_limit >= 0, "dataset.train_limit", "must be >= 0 (0 = all)");
  require(c.dataset.test_limit >= 0, "dataset.test_limit", "must be >= 0 (0 = all)");
  one_of(c.dataset.preprocess, "dataset.preprocess", {"per-channel", "per-pixel-mean", "none"});
  require(c.dataset.augment_padding >= 0 && c.dataset.augment_padding <= 16,
          "dataset.augment_padding", "must be in [0, 16]");

  one_of(c.model.block, "model.block",
         {"reference", "bn-after-add", "no-relu", "no-relu-bn-after-add", "preact"});
  require(c.model.depth_n >= 1 && c.model.depth_n <= 200, "model.depth_n",
          "must be in [1, 200] (layers = 6n+2)");
  one_of(c.model.shortcut, "model.shortcut", {"A", "B"});
  require(c.model.base_width >= 1 && c.model.base_width <= 256, "model.base_width",
          "must be in [1, 256]");

  const auto& t = c.train;
  require(t.epochs >= 1 && t.epochs <= 10000, "train.epochs", "must be in [1, 10000]");
  require(t.batch_size >= 1 && t.batch_size <= 65536, "train.batch_size", "must be in [1, 65536]");
  require(t.eval_every >= 1, "train.eval_every", "must be >= 1");
  require(finite(t.label_smoothing) && t.label_smoothing >= 0 && t.label_smoothing < 1,
          "train.label_smoothing", "must be in [0, 1)");
  require(finite(t.grad_clip_norm) && t.grad_clip_norm >= 0, "train.grad_clip_norm",
          "must be >= 0 (0 = off)");
  one_of(t.amp, "train.amp", {"off", "bf16", "fp16"});
  require(t.checkpoint_every >= 0, "train.checkpoint_every", "must be >= 0 (0 = never)");

  const auto& o = t.optimizer;
  one_of(o.name, "train.optimizer.name", {"sgd", "rmsprop", "adam", "adamw"});
  require(finite(o.lr) && o.lr > 0 && o.lr <= 10, "train.optimizer.lr", "must be in (0, 10]");
  require(finite(o.momentum) && o.momentum >= 0 && o.momentum < 1, "train.optimizer.momentum",
          "must be in [0, 1)");
  require(!o.nesterov || o.momentum > 0, "train.optimizer.nesterov",
          "needs train.optimizer.momentum > 0");
  require(finite(o.weight_decay) && o.weight_decay >= 0 && o.weight_decay < 1,
          "train.optimizer.weight_decay", "must be in [0, 1)");
  require(finite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, "train.optimizer.beta1",
          "must be in [0, 1)");
  require(finite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, "train.optimizer.beta2",
          "must be in [0, 1)");
  require(finite(o.eps) && o.eps > 0 && o.eps < 1, "train.optimizer.eps", "must be in (0, 1)");
  require(finite(o.alpha) && o.alpha > 0 && o.alpha < 1, "train.optimizer.alpha",
          "must be in (0, 1)");

  const auto& s = t.schedule;
  one_of(s.kind, "train.schedule.kind", {"step", "cosine", "constant"});
  one_of(s.milestone_unit, "train.schedule.milestone_unit", {"epoch", "iteration"});
  for (size_t i = 0; i < s.milestones.size(); ++i) {
    if (s.milestones[i] < 1) {
      errors.push_back({"train.schedule.milestones", "milestones must be >= 1"});
      break;
    }
    if (i > 0 && s.milestones[i] <= s.milestones[i - 1]) {
      errors.push_back({"train.schedule.milestones", "milestones must be strictly increasing"});
      break;
    }
  }
  require(finite(s.gamma) && s.gamma > 0 && s.gamma <= 1, "train.schedule.gamma",
          "must be in (0, 1]");
  require(s.warmup_iterations >= 0, "train.schedule.warmup_iterations", "must be >= 0");
  one_of(s.warmup_kind, "train.schedule.warmup_kind", {"constant", "linear"});
  require(finite(s.warmup_lr) && s.warmup_lr > 0 && s.warmup_lr <= 10, "train.schedule.warmup_lr",
          "must be in (0, 10]");
  require(finite(s.min_lr) && s.min_lr >= 0, "train.schedule.min_lr", "must be >= 0");

  one_of(c.trainer.kind, "trainer.kind", {"libtorch", "synthetic"});
  require(finite(c.trainer.epoch_seconds) && c.trainer.epoch_seconds >= 0 &&
              c.trainer.epoch_seconds <= 86400,
          "trainer.epoch_seconds", "must be in [0, 86400]");
  require(finite(c.trainer.fail_probability) && c.trainer.fail_probability >= 0 &&
              c.trainer.fail_probability <= 1,
          "trainer.fail_probability", "must be in [0, 1]");
  return errors;
}

// Collects errors, each prefixed with "source:line:col: field: ".
class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  void Add(const YAML::Mark& mark, const std::string& path, const std::string& message) {
    std::ostringstream out;
    out << source_;
    if (!mark.is_null()) out << ":" << mark.line + 1 << ":" << mark.column + 1;
    out << ": ";
    if (!path.empty()) out << path << ": ";
    out << message;
    std::string line = out.str();
    if (seen_.insert(line).second) lines_.push_back(line);
  }
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }
  Status ToStatus() const {
    std::string all;
    const size_t kMaxShown = 20;
    for (size_t i = 0; i < lines_.size() && i < kMaxShown; ++i) {
      all += (i ? "\n" : "") + lines_[i];
    }
    if (lines_.size() > kMaxShown) {
      all += "\n... and " + std::to_string(lines_.size() - kMaxShown) + " more errors";
    }
    return InvalidArgumentError(all);
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::string> lines_;
  std::set<std::string> seen_;
};

const char* NodeTypeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "undefined";
  }
}

std::string Join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Reads one YAML mapping into typed fields. Each Read*/Section call marks its key
// as known; Finish() reports every key that no call asked for, and duplicates.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path, Diagnostics* diag,
            std::map<std::string, YAML::Mark>* marks)
      : node_(node), path_(std::move(path)), diag_(diag), marks_(marks) {
    if (!node_.IsDefined() || node_.IsNull()) {
      valid_ = false;  // absent section: every field keeps its default
      return;
    }
    if (!node_.IsMap()) {
      diag_->Add(node_.Mark(), path_, std::string("must be a mapping, got ") + NodeTypeName(node_));
      valid_ = false;
      return;
    }
    std::set<std::string> keys;
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) {
        diag_->Add(kv.first.Mark(), path_, "keys must be plain names");
        continue;
      }
      const std::string key = kv.first.Scalar();
      if (!keys.insert(key).second) {
        diag_->Add(kv.first.Mark(), Join(path_, key), "duplicate key");
      }
    }
  }

  template <typename T>
  void Read(const char* key, T* out) {
    known_.insert(key);
    if (!valid_) return;
    YAML::Node value = Lookup(key);
    if (!value) return;
    const std::string field = Join(path_, key);
    if (marks_) (*marks_)[field] = value.Mark();
    ReadValue(value, field, out);
  }

  // A nested mapping; absent yields an undefined node (defaults apply).
  YAML::Node Section(const char* key) {
    known_.insert(key);
    if (!valid_) return YAML::Node();
    YAML::Node value = Lookup(key);
    return value ? value : YAML::Node();
  }

  void Finish() {
    if (!valid_) return;
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) continue;
      const std::string key = kv.first.Scalar();
      if (known_.count(key)) continue;
      std::string allowed;
      for (const auto& k : known_) allowed += (allowed.empty() ? "" : ", ") + k;
      diag_->Add(kv.first.Mark(), Join(path_, key), "unknown key (known here: " + allowed + ")");
    }
  }

  const std::string& path() const { return path_; }

 private:
  YAML::Node Lookup(const char* key) {
    for (const auto& kv : node_) {
      if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }

  bool PlainScalar(const YAML::Node& v, const std::string& field, const char* want) {
    if (!v.IsScalar()) {
      diag_->Add(v.Mark(), field, std::string("must be ") + want + ", got " + NodeTypeName(v));
      return false;
    }
    if (v.Tag() == "!") {  // quoted: "3" is a string, not a number
      diag_->Add(v.Mark(), field,
                 std::string("must be ") + want + ", got the quoted string \"" + v.Scalar() + "\"");
      return false;
    }
    return true;
  }

  void ReadValue(const YAML::Node& v, const std::string& field, int64_t* out) {
    if (!PlainScalar(v, field, "an integer")) return;
    try {
      *out = v.as<int64_t>();
    } catch (const YAML::Exception&) {
      diag_->Add(v.Mark(), field, "must be an integer, got '" + v.Scalar() + "'");
    }
  }
  void ReadValue(const YAML::Node& v, const std::string& field, int* out) {
    int64_t wide = *out;
    size_t before = diag_count();
    ReadValue(v, field, &wide);
    if (diag_count() != before) return;
    if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
      diag_->Add(v.Mark(), field, "integer out of range: " + v.Scalar());
      return;
    }
    *out = static_cast<int>(wide);
  }
  void ReadValue(const YAML::Node& v, const std::string& field, double* out) {
    if (!PlainScalar(v, field, "a number")) return;
    try {
      double d = v.as<double>();
      if (!std::isfinite(d)) {
        diag_->Add(v.Mark(), field, "must be a finite number, got '" + v.Scalar() + "'");
        return;
      }
      *out = d;
    } catch (const YAML::Exception&) {
      diag_->Add(v.Mark(), field, "must be a number, got '" + v.Scalar() + "'");
    }
  }
  void ReadValue(const YAML::Node& v, const std::string& field, bool* out) {
    if (!PlainScalar(v, field, "true or false")) return;
    try {
      *out = v.as<bool>();
    } catch (const YAML::Exception&) {
      diag_->Add(v.Mark(), field, "must be true or false, got '" + v.Scalar() + "'");
    }
  }
  void ReadValue(const YAML::Node& v, const std::string& field, std::string* out) {
    if (!v.IsScalar()) {
      diag_->Add(v.Mark(), field, std::string("must be a string, got ") + NodeTypeName(v));
      return;
    }
    *out = v.Scalar();
  }
  void ReadValue(const YAML::Node& v, const std::string& field, std::vector<int64_t>* out) {
    if (!v.IsSequence()) {
      diag_->Add(v.Mark(), field,
                 std::string("must be a list of integers, got ") + NodeTypeName(v));
      return;
    }
    if (v.size() > 1000) {
      diag_->Add(v.Mark(), field, "list too long (at most 1000 entries)");
      return;
    }
    std::vector<int64_t> values;
    for (const auto& item : v) {
      int64_t x = 0;
      size_t before = diag_count();
      ReadValue(item, field, &x);
      if (diag_count() != before) return;
      values.push_back(x);
    }
    *out = std::move(values);
  }

  size_t diag_count() const { return diag_->size(); }

  YAML::Node node_;
  std::string path_;
  Diagnostics* diag_;
  std::map<std::string, YAML::Mark>* marks_;
  std::set<std::string> known_;
  bool valid_ = true;
};

// The base config sections, in one place for both the parser and grid paths.
const std::set<std::string>& ConfigSections() {
  static const std::set<std::string> kSections = {"dataset", "model", "train", "trainer"};
  return kSections;
}

// Parses the config sections of `root` into `config`. `marks` records where each
// field's value came from so range errors can name a line.
void ReadRunConfig(const YAML::Node& root, Diagnostics* diag,
                   std::map<std::string, YAML::Mark>* marks, RunConfig* config) {
  auto section = [&](const char* key) -> YAML::Node {
    for (const auto& kv : root) {
      if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
    }
    return YAML::Node();
  };
  {
    MapReader r(section("dataset"), "dataset", diag, marks);
    auto& d = config->dataset;
    r.Read("kind", &d.kind);
    r.Read("path", &d.path);
    r.Read("train_limit", &d.train_limit);
    r.Read("test_limit", &d.test_limit);
    r.Read("preprocess", &d.preprocess);
    r.Read("augment_padding", &d.augment_padding);
    r.Read("augment_flip", &d.augment_flip);
    r.Finish();
  }
  {
    MapReader r(section("model"), "model", diag, marks);
    auto& m = config->model;
    r.Read("block", &m.block);
    r.Read("depth_n", &m.depth_n);
    r.Read("shortcut", &m.shortcut);
    r.Read("base_width", &m.base_width);
    r.Finish();
  }
  {
    MapReader r(section("train"), "train", diag, marks);
    auto& t = config->train;
    r.Read("epochs", &t.epochs);
    r.Read("batch_size", &t.batch_size);
    r.Read("eval_every", &t.eval_every);
    r.Read("label_smoothing", &t.label_smoothing);
    r.Read("grad_clip_norm", &t.grad_clip_norm);
    r.Read("deterministic", &t.deterministic);
    r.Read("channels_last", &t.channels_last);
    r.Read("amp", &t.amp);
    r.Read("checkpoint_every", &t.checkpoint_every);
    {
      MapReader o(r.Section("optimizer"), "train.optimizer", diag, marks);
      auto& oc = t.optimizer;
      o.Read("name", &oc.name);
      o.Read("lr", &oc.lr);
      o.Read("momentum", &oc.momentum);
      o.Read("nesterov", &oc.nesterov);
      o.Read("weight_decay", &oc.weight_decay);
      o.Read("beta1", &oc.beta1);
      o.Read("beta2", &oc.beta2);
      o.Read("eps", &oc.eps);
      o.Read("alpha", &oc.alpha);
      o.Finish();
    }
    {
      MapReader s(r.Section("schedule"), "train.schedule", diag, marks);
      auto& sc = t.schedule;
      s.Read("kind", &sc.kind);
      s.Read("milestones", &sc.milestones);
      s.Read("milestone_unit", &sc.milestone_unit);
      s.Read("gamma", &sc.gamma);
      s.Read("warmup_iterations", &sc.warmup_iterations);
      s.Read("warmup_kind", &sc.warmup_kind);
      s.Read("warmup_lr", &sc.warmup_lr);
      s.Read("min_lr", &sc.min_lr);
      s.Finish();
    }
    r.Finish();
  }
  {
    MapReader r(section("trainer"), "trainer", diag, marks);
    auto& tr = config->trainer;
    r.Read("kind", &tr.kind);
    r.Read("epoch_seconds", &tr.epoch_seconds);
    r.Read("fail_probability", &tr.fail_probability);
    r.Finish();
  }
}

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
size_t FindInvalidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t extra;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xe) {
      extra = 2;
    } else if ((c >> 3) == 0x1e) {
      extra = 3;
    } else {
      return i;
    }
    if (i + extra >= s.size()) return i;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return i;
    }
    i += extra + 1;
  }
  return std::string::npos;
}

std::string ValueLabel(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

Status ValidateRunConfig(const RunConfig& config) {
  auto errors = CheckRunConfig(config);
  if (errors.empty()) return Status::Ok();
  std::string all;
  for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e.path + ": " + e.message;
  return InvalidArgumentError(all);
}

StatusOr<SweepSpec> ParseSweepSpec(const std::string& yaml_text, const std::string& source_name,
                                   const SpecLimits& limits) {
  Diagnostics diag(source_name);
  if (static_cast<int64_t>(yaml_text.size()) > limits.max_bytes) {
    return InvalidArgumentError(source_name + ": file is " + std::to_string(yaml_text.size()) +
                                " bytes; sweep files are limited to " +
                                std::to_string(limits.max_bytes) + " bytes");
  }
  if (size_t bad = FindInvalidUtf8(yaml_text); bad != std::string::npos) {
    int line = 1 + static_cast<int>(std::count(yaml_text.begin(), yaml_text.begin() + bad, '\n'));
    return InvalidArgumentError(source_name + ":" + std::to_string(line) +
                                ": not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  }

  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    diag.Add(e.mark, "", "YAML syntax error: " + e.msg);
    return diag.ToStatus();
  } catch (const YAML::Exception& e) {
    diag.Add(YAML::Mark::null_mark(), "", std::string("YAML error: ") + e.what());
    return diag.ToStatus();
  }
  if (!root.IsMap()) {
    diag.Add(root.Mark(), "",
             std::string("a sweep file must be a mapping, got ") + NodeTypeName(root));
    return diag.ToStatus();
  }

  SweepSpec spec;
  YAML::Node grid_node, seeds_node;
  {
    MapReader top(root, "", &diag, nullptr);
    top.Read("name", &spec.name);
    top.Read("description", &spec.description);
    top.Read("max_attempts", &spec.max_attempts);
    for (const auto& section : ConfigSections()) top.Section(section.c_str());
    grid_node = top.Section("grid");
    seeds_node = top.Section("seeds");
    MapReader results(top.Section("results"), "results", &diag, nullptr);
    results.Read("last_k", &spec.last_k);
    results.Finish();
    top.Finish();
  }
  if (spec.name.empty()) {
    diag.Add(root.Mark(), "name", "required: a short name for the sweep");
  } else if (spec.name.size() > 128) {
    diag.Add(root.Mark(), "name", "at most 128 characters");
  }
  if (spec.last_k < 1 || spec.last_k > 1000) {
    diag.Add(root.Mark(), "results.last_k", "must be in [1, 1000]");
  }
  if (spec.max_attempts < 0 || spec.max_attempts > 100) {
    diag.Add(root.Mark(), "max_attempts", "must be in [0, 100] (0 = coordinator default)");
  }

  // Seeds: a count (seeds 0..N-1) or an explicit list of distinct non-negative integers.
  if (!seeds_node.IsDefined() || seeds_node.IsNull()) {
    spec.seeds = {0};
  } else if (seeds_node.IsScalar()) {
    int64_t count = 0;
    try {
      count = seeds_node.as<int64_t>();
    } catch (const YAML::Exception&) {
      diag.Add(seeds_node.Mark(), "seeds", "must be a count or a list of integers");
    }
    if (count < 1 || count > limits.max_seeds) {
      diag.Add(seeds_node.Mark(), "seeds",
               "count must be in [1, " + std::to_string(limits.max_seeds) + "]");
    } else {
      for (int64_t s = 0; s < count; ++s) spec.seeds.push_back(s);
    }
  } else if (seeds_node.IsSequence()) {
    std::set<int64_t> seen;
    if (seeds_node.size() == 0) diag.Add(seeds_node.Mark(), "seeds", "the list is empty");
    if (static_cast<int64_t>(seeds_node.size()) > limits.max_seeds) {
      diag.Add(seeds_node.Mark(), "seeds",
               "at most " + std::to_string(limits.max_seeds) + " seeds");
    } else {
      for (const auto& item : seeds_node) {
        int64_t s = -1;
        try {
          if (item.IsScalar() && item.Tag() != "!") s = item.as<int64_t>();
        } catch (const YAML::Exception&) {
        }
        if (s < 0) {
          diag.Add(item.Mark(), "seeds", "seeds must be non-negative integers");
        } else if (!seen.insert(s).second) {
          diag.Add(item.Mark(), "seeds", "duplicate seed " + std::to_string(s));
        } else {
          spec.seeds.push_back(s);
        }
      }
    }
  } else {
    diag.Add(seeds_node.Mark(), "seeds", "must be a count or a list of integers");
  }

  // Grid axes: dotted paths into the config sections, each a non-empty list.
  std::vector<std::vector<YAML::Node>> axis_values;
  if (grid_node.IsDefined() && !grid_node.IsNull()) {
    if (!grid_node.IsMap()) {
      diag.Add(grid_node.Mark(), "grid", "must map parameter paths to lists of values");
    } else {
      MapReader duplicate_check(grid_node, "grid", &diag, nullptr);  // reports duplicate paths
      for (const auto& kv : grid_node) {
        if (!kv.first.IsScalar()) continue;
        const std::string path = kv.first.Scalar();
        const std::string field = "grid." + path;
        const std::string section = path.substr(0, path.find('.'));
        if (!ConfigSections().count(section) || path.find('.') == std::string::npos) {
          diag.Add(kv.first.Mark(), field,
                   "axis must be a parameter path such as model.depth_n (sections: dataset, "
                   "model, train, trainer)");
          continue;
        }
        if (!kv.second.IsSequence()) {
          diag.Add(kv.second.Mark(), field,
                   std::string("must be a list of values, got ") + NodeTypeName(kv.second));
          continue;
        }
        if (kv.second.size() == 0) {
          diag.Add(kv.second.Mark(), field, "axis has no values");
          continue;
        }
        if (static_cast<int64_t>(kv.second.size()) > limits.max_axis_values) {
          diag.Add(kv.second.Mark(), field,
                   "axis has " + std::to_string(kv.second.size()) + " values; at most " +
                       std::to_string(limits.max_axis_values));
          continue;
        }
        spec.grid.push_back({path, static_cast<int64_t>(kv.second.size())});
        axis_values.emplace_back(kv.second.begin(), kv.second.end());
      }
      if (static_cast<int64_t>(spec.grid.size()) > limits.max_axes) {
        diag.Add(grid_node.Mark(), "grid", "at most " + std::to_string(limits.max_axes) + " axes");
      }
    }
  }
  if (!diag.empty()) return diag.ToStatus();

  // Size check before expanding anything.
  int64_t cells = 1;
  for (const auto& axis : spec.grid) {
    if (cells > limits.max_runs / axis.size) {
      cells = limits.max_runs + 1;
      break;
    }
    cells *= axis.size;
  }
  const int64_t total =
      cells > limits.max_runs ? cells : cells * static_cast<int64_t>(spec.seeds.size());
  if (total > limits.max_runs) {
    diag.Add(grid_node.Mark(), "grid",
             "the grid x seeds makes more than " + std::to_string(limits.max_runs) +
                 " runs (the configured limit)");
    return diag.ToStatus();
  }

  // Expand: for each cell, reload the base config, apply the cell's values, parse
  // and validate. Values keep their own marks, so errors point at the grid line.
  std::vector<size_t> index(spec.grid.size(), 0);
  std::string all_run_ids;
  for (int64_t cell = 0; cell < cells; ++cell) {
    YAML::Node cell_root = YAML::Load(yaml_text);
    bool applied = true;
    for (size_t a = 0; a < spec.grid.size(); ++a) {
      const std::string& path = spec.grid[a].path;
      std::vector<std::string> parts;
      std::stringstream ss(path);
      for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
      YAML::Node cursor = cell_root;
      std::string walked;
      for (size_t p = 0; p + 1 < parts.size() && applied; ++p) {
        walked = Join(walked, parts[p]);
        YAML::Node next = cursor[parts[p]];
        if (next.IsDefined() && !next.IsNull() && !next.IsMap()) {
          diag.Add(next.Mark(), "grid." + path, walked + " is not a mapping");
          applied = false;
          break;
        }
        if (!next.IsDefined() || next.IsNull()) cursor[parts[p]] = YAML::Node(YAML::NodeType::Map);
        cursor.reset(cursor[parts[p]]);
      }
      if (!applied) break;
      cursor[parts.back()] = axis_values[a][index[a]];
    }
    if (applied) {
      RunConfig config;
      std::map<std::string, YAML::Mark> marks;
      ReadRunConfig(cell_root, &diag, &marks, &config);
      for (const auto& e : CheckRunConfig(config)) {
        auto m = marks.find(e.path);
        diag.Add(m == marks.end() ? YAML::Mark::null_mark() : m->second, e.path, e.message);
      }
      if (diag.empty()) {
        const nlohmann::json json = RunConfigToJson(config);
        const std::string config_json = json.dump();
        ExpandedRun base;
        base.config = config;
        base.config_json = config_json;
        base.cell_key = Sha256Hex(config_json).substr(0, 16);
        for (const auto& axis : spec.grid) {
          std::string pointer = "/" + axis.path;
          std::replace(pointer.begin(), pointer.end(), '.', '/');
          const std::string value = ValueLabel(json.at(nlohmann::json::json_pointer(pointer)));
          base.cell_params[axis.path] = value;
          base.cell_label += (base.cell_label.empty() ? "" : " ") + axis.path + "=" + value;
        }
        if (base.cell_label.empty()) base.cell_label = "base";
        for (int64_t seed : spec.seeds) {
          ExpandedRun run = base;
          run.seed = seed;
          run.run_id = Sha256Hex(config_json + "\nseed=" + std::to_string(seed)).substr(0, 20);
          all_run_ids += run.run_id + "\n";
          spec.runs.push_back(std::move(run));
        }
      }
    }
    if (diag.empty() == false && cell > 64) break;  // enough examples of what is wrong
    for (size_t a = spec.grid.size(); a-- > 0;) {   // odometer, last axis fastest
      if (++index[a] < axis_values[a].size()) break;
      index[a] = 0;
    }
  }
  if (!diag.empty()) return diag.ToStatus();

  // Two cells that resolve to the same config (e.g. a repeated grid value) would
  // silently merge; reject them instead.
  std::set<std::string> ids;
  for (const auto& run : spec.runs) {
    if (!ids.insert(run.run_id).second) {
      diag.Add(grid_node.Mark(), "grid",
               "two grid cells resolve to the same configuration (" + run.cell_label +
                   "): is a value listed twice?");
      return diag.ToStatus();
    }
  }
  spec.sweep_id = Sha256Hex(spec.name + "\n" + all_run_ids).substr(0, 12);
  return spec;
}

StatusOr<SweepSpec> LoadSweepSpecFile(const std::string& path, const SpecLimits& limits) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return NotFoundError(path + ": no such file");
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": not a regular file");
  if (st.st_size > limits.max_bytes) {
    return InvalidArgumentError(path + ": file is " + std::to_string(st.st_size) +
                                " bytes; sweep files are limited to " +
                                std::to_string(limits.max_bytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return ParseSweepSpec(buffer.str(), path, limits);
}

}  // namespace resweep
