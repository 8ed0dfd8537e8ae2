#include "common/sweep_spec.h"
#include "common/run_config_json.h"

#include <yaml-cpp/yaml.h>

#include <sys/stat.h>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <variant>

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
  require(finite(t.max_run_seconds) && t.max_run_seconds >= 0 && t.max_run_seconds <= 31.0e6,
          "train.max_run_seconds", "must be in [0, 31000000] seconds (0 = no limit)");

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
  require(c.trainer.hang_at_epoch >= 0, "trainer.hang_at_epoch", "must be >= 0 (0 = never)");
  require((c.trainer.hang_at_epoch == 0 && !c.trainer.hang_ignores_stop) ||
              c.trainer.kind == "synthetic",
          "trainer.hang_at_epoch", "applies to the synthetic trainer only");
  return errors;
}

// Collects distinct lines "source:line:col: field: message" (errors or warnings).
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
  // Adds a line as Add made it (another Diagnostics' of the same source), unless held.
  void AddLine(const std::string& line) {
    if (seen_.insert(line).second) lines_.push_back(line);
  }
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }
  const std::vector<std::string>& lines() const { return lines_; }
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

// Typed reads of one YAML value into `*out`. On a wrong type or value they report
// to `diag` at the value's mark and leave `*out` as it was.
bool PlainScalar(const YAML::Node& v, const std::string& field, const char* want,
                 Diagnostics* diag) {
  if (!v.IsScalar()) {
    diag->Add(v.Mark(), field, std::string("must be ") + want + ", got " + NodeTypeName(v));
    return false;
  }
  if (v.Tag() == "!") {  // quoted: "3" is a string, not a number
    diag->Add(v.Mark(), field,
              std::string("must be ") + want + ", got the quoted string \"" + v.Scalar() + "\"");
    return false;
  }
  return true;
}

void ReadValue(const YAML::Node& v, const std::string& field, int64_t* out, Diagnostics* diag) {
  if (!PlainScalar(v, field, "an integer", diag)) return;
  try {
    *out = v.as<int64_t>();
  } catch (const YAML::Exception&) {
    diag->Add(v.Mark(), field, "must be an integer, got '" + v.Scalar() + "'");
  }
}
void ReadValue(const YAML::Node& v, const std::string& field, int* out, Diagnostics* diag) {
  int64_t wide = *out;
  const size_t before = diag->size();
  ReadValue(v, field, &wide, diag);
  if (diag->size() != before) return;
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    diag->Add(v.Mark(), field, "integer out of range: " + v.Scalar());
    return;
  }
  *out = static_cast<int>(wide);
}
void ReadValue(const YAML::Node& v, const std::string& field, double* out, Diagnostics* diag) {
  if (!PlainScalar(v, field, "a number", diag)) return;
  try {
    double d = v.as<double>();
    if (!std::isfinite(d)) {
      diag->Add(v.Mark(), field, "must be a finite number, got '" + v.Scalar() + "'");
      return;
    }
    *out = d;
  } catch (const YAML::Exception&) {
    diag->Add(v.Mark(), field, "must be a number, got '" + v.Scalar() + "'");
  }
}
void ReadValue(const YAML::Node& v, const std::string& field, bool* out, Diagnostics* diag) {
  if (!PlainScalar(v, field, "true or false", diag)) return;
  try {
    *out = v.as<bool>();
  } catch (const YAML::Exception&) {
    diag->Add(v.Mark(), field, "must be true or false, got '" + v.Scalar() + "'");
  }
}
void ReadValue(const YAML::Node& v, const std::string& field, std::string* out, Diagnostics* diag) {
  if (!v.IsScalar()) {
    diag->Add(v.Mark(), field, std::string("must be a string, got ") + NodeTypeName(v));
    return;
  }
  *out = v.Scalar();
}
void ReadValue(const YAML::Node& v, const std::string& field, std::vector<int64_t>* out,
               Diagnostics* diag) {
  if (!v.IsSequence()) {
    diag->Add(v.Mark(), field, std::string("must be a list of integers, got ") + NodeTypeName(v));
    return;
  }
  if (v.size() > 1000) {
    diag->Add(v.Mark(), field, "list too long (at most 1000 entries)");
    return;
  }
  std::vector<int64_t> values;
  for (const auto& item : v) {
    int64_t x = 0;
    const size_t before = diag->size();
    ReadValue(item, field, &x, diag);
    if (diag->size() != before) return;
    values.push_back(x);
  }
  *out = std::move(values);
}

// Where each field's value was written: full field path -> mark. A field absent
// from it keeps its default.
using Marks = std::map<std::string, YAML::Mark>;

// Reads one YAML mapping into typed fields. Each Read/Skip/Section call marks its
// key as known; Finish() reports every key that no call asked for, and duplicates.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path, Diagnostics* diag, Marks* marks)
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
    ReadValue(value, field, out, diag_);
  }

  // A known key whose value is read elsewhere (or replaced, and so not read at all).
  void Skip(const char* key) { known_.insert(key); }

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

  YAML::Node node_;
  std::string path_;
  Diagnostics* diag_;
  Marks* marks_;
  std::set<std::string> known_;
  bool valid_ = true;
};

// The config schema: every RunConfig field, by the dotted path that names it in
// sweep files, grid axes and the canonical JSON (RunConfig's member names are the
// YAML keys). The table's order is the order fields are read and reported in.
using FieldPtr = std::variant<int* (*)(RunConfig&), int64_t* (*)(RunConfig&),
                              double* (*)(RunConfig&), bool* (*)(RunConfig&),
                              std::string* (*)(RunConfig&), std::vector<int64_t>* (*)(RunConfig&)>;

struct FieldSpec {
  FieldSpec(const char* full_path, FieldPtr getter) : path(full_path), get(getter) {
    const size_t dot = path.rfind('.');
    section = path.substr(0, dot);
    key = path.substr(dot + 1);
  }
  std::string path;     // "train.optimizer.lr"
  std::string section;  // "train.optimizer"
  std::string key;      // "lr"
  FieldPtr get;
};

#define RESWEEP_FIELD(member) \
  FieldSpec(                  \
      #member, +[](RunConfig& c) { return &c.member; })

const std::vector<FieldSpec>& ConfigFields() {
  static const std::vector<FieldSpec> kFields = {
      RESWEEP_FIELD(dataset.kind),
      RESWEEP_FIELD(dataset.path),
      RESWEEP_FIELD(dataset.train_limit),
      RESWEEP_FIELD(dataset.test_limit),
      RESWEEP_FIELD(dataset.preprocess),
      RESWEEP_FIELD(dataset.augment_padding),
      RESWEEP_FIELD(dataset.augment_flip),
      RESWEEP_FIELD(model.block),
      RESWEEP_FIELD(model.depth_n),
      RESWEEP_FIELD(model.shortcut),
      RESWEEP_FIELD(model.base_width),
      RESWEEP_FIELD(train.epochs),
      RESWEEP_FIELD(train.batch_size),
      RESWEEP_FIELD(train.eval_every),
      RESWEEP_FIELD(train.label_smoothing),
      RESWEEP_FIELD(train.grad_clip_norm),
      RESWEEP_FIELD(train.deterministic),
      RESWEEP_FIELD(train.channels_last),
      RESWEEP_FIELD(train.amp),
      RESWEEP_FIELD(train.checkpoint_every),
      RESWEEP_FIELD(train.max_run_seconds),
      RESWEEP_FIELD(train.optimizer.name),
      RESWEEP_FIELD(train.optimizer.lr),
      RESWEEP_FIELD(train.optimizer.momentum),
      RESWEEP_FIELD(train.optimizer.nesterov),
      RESWEEP_FIELD(train.optimizer.weight_decay),
      RESWEEP_FIELD(train.optimizer.beta1),
      RESWEEP_FIELD(train.optimizer.beta2),
      RESWEEP_FIELD(train.optimizer.eps),
      RESWEEP_FIELD(train.optimizer.alpha),
      RESWEEP_FIELD(train.schedule.kind),
      RESWEEP_FIELD(train.schedule.milestones),
      RESWEEP_FIELD(train.schedule.milestone_unit),
      RESWEEP_FIELD(train.schedule.gamma),
      RESWEEP_FIELD(train.schedule.warmup_iterations),
      RESWEEP_FIELD(train.schedule.warmup_kind),
      RESWEEP_FIELD(train.schedule.warmup_lr),
      RESWEEP_FIELD(train.schedule.min_lr),
      RESWEEP_FIELD(trainer.kind),
      RESWEEP_FIELD(trainer.epoch_seconds),
      RESWEEP_FIELD(trainer.fail_probability),
      RESWEEP_FIELD(trainer.hang_at_epoch),
      RESWEEP_FIELD(trainer.hang_ignores_stop),
  };
  return kFields;
}

#undef RESWEEP_FIELD

// The config's mappings, parents before children. The top-level ones are the base
// config sections of a sweep file.
const std::vector<std::string>& ConfigSections() {
  static const std::vector<std::string> kSections = {
      "dataset", "model", "train", "train.optimizer", "train.schedule", "trainer"};
  return kSections;
}

bool IsTopLevel(const std::string& section) { return section.find('.') == std::string::npos; }

// "train" for "train.optimizer"; "" for a top-level section.
std::string ParentOf(const std::string& section) {
  const size_t dot = section.rfind('.');
  return dot == std::string::npos ? "" : section.substr(0, dot);
}

bool IsSection(const std::string& path) {
  const auto& all = ConfigSections();
  return std::find(all.begin(), all.end(), path) != all.end();
}

const FieldSpec* FindField(const std::string& path) {
  for (const auto& f : ConfigFields()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

// The keys a sweep file may write directly under `section`: its fields and subsections.
std::vector<std::string> KeysOf(const std::string& section) {
  std::vector<std::string> keys;
  for (const auto& f : ConfigFields()) {
    if (f.section == section) keys.push_back(f.key);
  }
  for (const auto& s : ConfigSections()) {
    if (ParentOf(s) == section) keys.push_back(s.substr(section.size() + 1));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Reads the mapping `node` as config section `section` (and its subsections) into
// `config`. Fields and subsections named in `replaced` are known keys but are not
// read: a grid axis supplies them.
void ReadSection(const YAML::Node& node, const std::string& section,
                 const std::set<std::string>& replaced, Diagnostics* diag, Marks* marks,
                 RunConfig* config) {
  MapReader r(node, section, diag, marks);
  for (const auto& f : ConfigFields()) {
    if (f.section != section) continue;
    if (replaced.count(f.path)) {
      r.Skip(f.key.c_str());
    } else {
      std::visit([&](auto get) { r.Read(f.key.c_str(), get(*config)); }, f.get);
    }
  }
  for (const auto& sub : ConfigSections()) {
    if (ParentOf(sub) != section) continue;
    const std::string key = sub.substr(section.size() + 1);
    if (replaced.count(sub)) {
      r.Skip(key.c_str());
    } else {
      ReadSection(r.Section(key.c_str()), sub, replaced, diag, marks, config);
    }
  }
  r.Finish();
}

// Reads the base config sections of the sweep file `root` (a mapping).
void ReadRunConfig(const YAML::Node& root, const std::set<std::string>& replaced, Diagnostics* diag,
                   Marks* marks, RunConfig* config) {
  for (const auto& section : ConfigSections()) {
    if (!IsTopLevel(section)) continue;
    YAML::Node node;
    for (const auto& kv : root) {
      if (kv.first.IsScalar() && kv.first.Scalar() == section) {
        node = kv.second;
        break;
      }
    }
    ReadSection(node, section, replaced, diag, marks, config);
  }
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "; did you mean X?" for the valid axis path closest to `path`, or "".
std::string Suggestion(const std::string& path) {
  if (path.size() > 100) return "";  // no typo of a parameter path; bounds the work
  std::vector<std::string> candidates;
  for (const auto& f : ConfigFields()) candidates.push_back(f.path);
  for (const auto& s : ConfigSections()) {
    if (!IsTopLevel(s)) candidates.push_back(s);
  }
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    const size_t d = EditDistance(path, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  if (best_distance <= std::max<size_t>(2, path.size() / 6)) return "; did you mean " + best + "?";
  // A bare or misplaced parameter name: "depth_n", "optimizer.lr".
  std::string tail;
  for (const auto& c : candidates) {
    if (c.size() > path.size() && c.compare(c.size() - path.size(), path.size(), path) == 0 &&
        c[c.size() - path.size() - 1] == '.') {
      if (!tail.empty()) return "";  // ambiguous
      tail = c;
    }
  }
  return tail.empty() ? "" : "; did you mean " + tail + "?";
}

// What a grid axis sets: one field, or every field of a nested section
// (train.optimizer, train.schedule), which each value of the axis replaces whole.
struct AxisTarget {
  std::vector<const FieldSpec*> fields;
  std::string section;  // the replaced section; empty for a single field
};

// Resolves a grid path against the schema. Returns "" and fills `target`, or
// returns why the path names no parameter.
std::string ResolveGridPath(const std::string& path, AxisTarget* target) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  const std::string sections = "sections: dataset, model, train, trainer";
  if (!IsSection(parts[0]) || !IsTopLevel(parts[0])) {
    return "not a parameter path: no section '" + parts[0] + "' (" + sections + ")" +
           Suggestion(path);
  }
  if (parts.size() == 1) {
    return "a whole top-level section cannot be an axis: name a parameter path such as "
           "model.depth_n";
  }
  std::string section = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string walked = section + "." + parts[i];
    if (IsSection(walked)) {
      section = walked;
      continue;
    }
    if (const FieldSpec* field = FindField(walked)) {
      if (i + 1 < parts.size()) {
        return walked + " is a single value, not a section: nothing lies below it";
      }
      target->fields = {field};
      return "";
    }
    std::string known;
    for (const auto& k : KeysOf(section)) known += (known.empty() ? "" : ", ") + k;
    return "unknown parameter '" + parts[i] + "' in " + section + " (known here: " + known + ")" +
           Suggestion(path);
  }
  target->section = section;
  for (const auto& f : ConfigFields()) {
    if (f.section == section || f.section.rfind(section + ".", 0) == 0) {
      target->fields.push_back(&f);
    }
  }
  return "";
}

// One value of a grid axis, read once: the fields it sets, in an otherwise default
// config, and where each was written.
struct AxisValue {
  RunConfig values;
  Marks marks;
};

// `from` is only read (the getters point into a config, they do not change it).
void CopyField(const FieldSpec& f, const RunConfig& from, RunConfig* to) {
  std::visit([&](auto get) { *get(*to) = *get(const_cast<RunConfig&>(from)); }, f.get);
}

bool SameField(const FieldSpec& f, RunConfig& a, RunConfig& b) {
  return std::visit([&](auto get) { return *get(a) == *get(b); }, f.get);
}

// Whether two paths set a common parameter: equal, or one a section holding the other.
bool PathsOverlap(const std::string& a, const std::string& b) {
  return a == b || a.rfind(b + ".", 0) == 0 || b.rfind(a + ".", 0) == 0;
}

// A grid key that is a name, not a path: a linked axis ("optimizer"). Never a
// config section's name, so that "model: [...]" keeps its own error.
bool IsLinkedAxisName(const std::string& key) {
  if (key.empty() || key.size() > 64 || !std::isalpha(static_cast<unsigned char>(key[0]))) {
    return false;
  }
  return !IsSection(key) && std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Labels of linked-axis values appear in "k=v k=v" cell labels, tables and plot
// legends: no spaces, no '=', nothing a terminal interprets.
bool IsSafeLabel(const std::string& label) {
  return !label.empty() && label.size() <= 64 &&
         std::all_of(label.begin(), label.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
                  c == '+' || c == '@' || c == ',' || c == ':' || c == '/';
         });
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

// The node at dotted `path` under `root` ("train.optimizer"), or an undefined node.
// Never modifies `root`.
YAML::Node NodeAt(const YAML::Node& root, const std::string& path) {
  YAML::Node node = root;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = std::min(path.find('.', start), path.size());
    const std::string key = path.substr(start, dot - start);
    if (!node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node next(YAML::NodeType::Undefined);
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && kv.first.Scalar() == key) {
        next = kv.second;
        break;
      }
    }
    node.reset(next);
    start = dot + 1;
  }
  return node;
}

// 12,345,678
std::string WithThousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return n < 0 ? "-" + digits : digits;
}

std::string ValueLabel(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Where each value of one cell was written: by an override that matches the cell,
// else by the grid axis that sets the field (at the cell's value), else by the base
// config or the file's top level.
struct CellSources {
  const Marks& base;
  const std::map<std::string, size_t>& axis_of_field;
  const std::vector<std::vector<AxisValue>>& axis_values;
  const std::vector<size_t>& index;  // the cell: one value per axis
  const Marks& overridden;           // the cell's fields set by overrides

  // The mark of `path`'s value; nullptr where it keeps its default. `from_grid`
  // (optional) says whether a grid value or an override set it.
  const YAML::Mark* Find(const std::string& path, bool* from_grid = nullptr) const {
    if (auto o = overridden.find(path); o != overridden.end()) {
      if (from_grid) *from_grid = true;
      return &o->second;
    }
    const Marks* marks = &base;
    auto a = axis_of_field.find(path);
    if (a != axis_of_field.end()) marks = &axis_values[a->second][index[a->second]].marks;
    if (from_grid) *from_grid = a != axis_of_field.end();
    auto m = marks->find(path);
    return m == marks->end() ? nullptr : &m->second;
  }

  // Where to point at a problem caused by `paths` together: the first of them a
  // grid value set (so each offending value gets its own line), else the first the
  // file wrote; nullptr when all keep their defaults.
  const YAML::Mark* Cause(std::initializer_list<const char*> paths) const {
    const YAML::Mark* written = nullptr;
    for (const char* path : paths) {
      bool from_grid = false;
      const YAML::Mark* m = Find(path, &from_grid);
      if (m && from_grid) return m;
      if (m && !written) written = m;
    }
    return written;
  }
};

std::string JoinInts(const std::vector<int64_t>& values) {
  std::string out;
  for (int64_t v : values) out += (out.empty() ? "" : ", ") + WithThousands(v);
  return out;
}

// Settings of one resolved cell that are valid but cannot do what their writer
// meant: warnings, not errors (docs/sweep-spec.md, "Warnings"). Each names the
// field and points at the value that causes it; defaults alone never warn.
void CheckTraps(const RunConfig& c, int last_k, const CellSources& sources, Diagnostics* warnings) {
  auto warn = [&](const YAML::Mark* mark, const std::string& field, const std::string& message) {
    if (mark) warnings->Add(*mark, field, message);
  };

  // The last-K mean of a run that evaluates fewer than K epochs is the mean of all
  // its evaluations, the first (worst) ones included.
  const bool synthetic = c.trainer.kind == "synthetic";
  const int64_t evaluated =
      synthetic ? c.train.epochs : (c.train.epochs + c.train.eval_every - 1) / c.train.eval_every;
  if (last_k > evaluated) {
    std::string why = "train.epochs is " + std::to_string(c.train.epochs);
    if (!synthetic && c.train.eval_every > 1) {
      why += ", train.eval_every " + std::to_string(c.train.eval_every);
    }
    warn(sources.Cause({"results.last_k", "train.epochs", "train.eval_every"}), "results.last_k",
         std::to_string(last_k) + " is more than the " + std::to_string(evaluated) +
             (evaluated == 1 ? " evaluated epoch" : " evaluated epochs") + " of a run (" + why +
             "): the last-K mean averages all of them, the first ones included");
  }

  // The synthetic trainer has no optimiser and no learning rate.
  if (synthetic) return;

  const auto& o = c.train.optimizer;
  struct OptimizerOption {
    const char* path;
    std::set<std::string> used_by;
    const char* used_by_text;
  };
  static const std::vector<OptimizerOption> kOptimizerOptions = {
      {"train.optimizer.momentum", {"sgd", "rmsprop"}, "sgd, rmsprop"},
      {"train.optimizer.nesterov", {"sgd"}, "sgd"},
      {"train.optimizer.beta1", {"adam", "adamw"}, "adam, adamw"},
      {"train.optimizer.beta2", {"adam", "adamw"}, "adam, adamw"},
      {"train.optimizer.eps", {"rmsprop", "adam", "adamw"}, "rmsprop, adam, adamw"},
      {"train.optimizer.alpha", {"rmsprop"}, "rmsprop"},
  };
  for (const auto& option : kOptimizerOptions) {
    if (option.used_by.count(o.name)) continue;
    warn(sources.Find(option.path), option.path,
         "has no effect with optimizer " + o.name + " (it applies to " + option.used_by_text + ")");
  }

  const auto& s = c.train.schedule;
  if (s.kind != "step") {
    for (const char* path :
         {"train.schedule.milestones", "train.schedule.milestone_unit", "train.schedule.gamma"}) {
      warn(sources.Find(path), path,
           "has no effect with schedule kind " + s.kind + " (it applies to kind step)");
    }
  }
  if (s.kind != "cosine") {
    warn(sources.Find("train.schedule.min_lr"), "train.schedule.min_lr",
         "has no effect with schedule kind " + s.kind + " (it applies to kind cosine)");
  }
  if (s.warmup_iterations == 0) {
    for (const char* path : {"train.schedule.warmup_kind", "train.schedule.warmup_lr"}) {
      warn(sources.Find(path), path,
           "has no effect without a warm-up (train.schedule.warmup_iterations is 0)");
    }
  }

  // Step milestones the run never reaches. Milestone m decays the rate once
  // position >= m, where position is the 0-based epoch (or iteration) index, so
  // m must be below the number of epochs (or iterations) to apply.
  if (s.kind == "step" && !s.milestones.empty()) {
    int64_t positions = c.train.epochs;
    std::string limit = "train.epochs = " + std::to_string(c.train.epochs);
    std::string hint = " (milestone m decays the rate from epoch m+1 on)";
    const YAML::Mark* cause = sources.Cause({"train.schedule.milestones", "train.epochs"});
    if (s.milestone_unit == "iteration") {
      // An upper bound: the data set's standard size, or train_limit if smaller.
      int64_t images = c.dataset.kind == "fashion-mnist" ? 60000 : 50000;
      if (c.dataset.train_limit > 0) images = std::min(images, c.dataset.train_limit);
      const int64_t per_epoch = (images + c.train.batch_size - 1) / c.train.batch_size;
      positions = c.train.epochs * per_epoch;
      hint.clear();
      limit = "the run's last iteration (at most " + WithThousands(positions) + ": " +
              std::to_string(c.train.epochs) + " epochs x " + WithThousands(per_epoch) +
              " batches of " + std::to_string(c.train.batch_size) + " from " +
              WithThousands(images) + " training images)";
      cause =
          sources.Cause({"train.schedule.milestones", "train.epochs", "train.batch_size",
                         "dataset.train_limit", "dataset.kind", "train.schedule.milestone_unit"});
    }
    std::vector<int64_t> unreached;
    for (int64_t m : s.milestones) {
      if (m >= positions) unreached.push_back(m);
    }
    const std::string field = "train.schedule.milestones";
    const std::string defaults = sources.Find(field) ? "" : " (the default)";
    if (unreached.size() == s.milestones.size()) {
      warn(cause, field,
           "the learning rate never decays: " +
               (unreached.size() == 1
                    ? "milestone " + JoinInts(unreached) + defaults + " is"
                    : "milestones " + JoinInts(unreached) + defaults + " are all") +
               " at or past " + limit + hint);
    } else if (!unreached.empty()) {
      warn(cause, field,
           (unreached.size() == 1 ? "milestone " : "milestones ") + JoinInts(unreached) + defaults +
               (unreached.size() == 1 ? " is" : " are") + " at or past " + limit + ", so " +
               (unreached.size() == 1 ? "it never applies" : "they never apply") + hint);
    }
  }
}

// A grid axis as written: an ordinary axis (key = a path, one component) or a
// linked axis (key = a name, one component per path its entries set).
struct Axis {
  std::string key;
  bool linked = false;
  std::vector<std::string> paths;   // the components: what each value sets
  std::vector<AxisTarget> targets;  // parallel to paths
  YAML::Mark mark;                  // of the key
  std::vector<YAML::Node> nodes;    // one per value: the value, or the linked entry
  std::vector<std::string> labels;  // linked: one per entry, "" until defaulted
  std::vector<YAML::Mark> label_marks;
};

// The value under `key` in the mapping `node` (keys compared whole: they hold dots).
YAML::Node ChildOf(const YAML::Node& node, const std::string& key) {
  for (const auto& kv : node) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string JoinStrings(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Checks the entries of the linked axis `axis` (a list whose first item is a
// mapping) and fills its paths, targets and written labels. The first entry names
// the paths; every other entry must set the same ones. Returns false after
// reporting what is wrong.
bool ReadLinkedAxisPaths(const YAML::Node& list, const std::string& field,
                         const std::function<std::string(const std::string&)>& overlapping,
                         Axis* axis, Diagnostics* diag) {
  const size_t errors_before = diag->size();
  std::vector<std::string> first_paths;
  int first_line = 0;
  size_t i = 0;
  for (const YAML::Node& entry : list) {
    const std::string entry_field = field + "[" + std::to_string(i++) + "]";
    if (!entry.IsMap()) {
      diag->Add(entry.Mark(), entry_field,
                std::string("must be a mapping of parameter paths to values (an entry of a "
                            "linked axis), got ") +
                    NodeTypeName(entry));
      continue;
    }
    MapReader duplicate_keys(entry, entry_field, diag, nullptr);
    std::vector<std::string> paths;
    std::string label;
    YAML::Mark label_mark = entry.Mark();
    for (const auto& kv : entry) {
      if (!kv.first.IsScalar()) continue;
      const std::string path = kv.first.Scalar();
      if (path != "label") {
        paths.push_back(path);
        continue;
      }
      label_mark = kv.second.Mark();
      if (!kv.second.IsScalar() || !IsSafeLabel(kv.second.Scalar())) {
        diag->Add(kv.second.Mark(), entry_field + ".label",
                  "must be 1 to 64 letters, digits or - _ . + @ , : / (it names the value in "
                  "cell labels)");
      } else {
        label = kv.second.Scalar();
      }
    }
    axis->labels.push_back(label);
    axis->label_marks.push_back(label_mark);
    if (paths.empty()) {
      diag->Add(entry.Mark(), entry_field,
                "sets no parameter: an entry maps the paths it sets together to their values, "
                "e.g. {train.optimizer.name: adam, train.optimizer.lr: 0.001}");
      continue;
    }
    if (first_paths.empty()) {  // the first entry names the axis's paths
      first_paths = paths;
      first_line = entry.Mark().line + 1;
      for (const auto& kv : entry) {
        if (!kv.first.IsScalar() || kv.first.Scalar() == "label") continue;
        const std::string path = kv.first.Scalar();
        const std::string path_field = entry_field + "." + path;
        AxisTarget target;
        if (std::string why = ResolveGridPath(path, &target); !why.empty()) {
          diag->Add(kv.first.Mark(), path_field, why);
          continue;
        }
        if (std::string other = overlapping(path); !other.empty()) {
          diag->Add(kv.first.Mark(), path_field,
                    "overlaps " + other + ": at most one axis may set a parameter");
          continue;
        }
        bool twice = false;
        for (const std::string& earlier : axis->paths) {
          if (PathsOverlap(path, earlier)) {
            diag->Add(kv.first.Mark(), path_field,
                      "overlaps " + earlier + " in the same entry: each parameter once");
            twice = true;
          }
        }
        if (twice) continue;
        axis->paths.push_back(path);
        axis->targets.push_back(std::move(target));
      }
      continue;
    }
    const std::set<std::string> want(first_paths.begin(), first_paths.end());
    const std::set<std::string> have(paths.begin(), paths.end());
    std::vector<std::string> missing, extra;
    for (const auto& p : want) {
      if (!have.count(p)) missing.push_back(p);
    }
    for (const auto& p : have) {
      if (!want.count(p)) extra.push_back(p);
    }
    const std::string rule = ": every entry of a linked axis sets the same parameters";
    if (!missing.empty()) {
      diag->Add(entry.Mark(), entry_field,
                "does not set " + JoinStrings(missing) + ", which the first entry (line " +
                    std::to_string(first_line) + ") sets" + rule);
    }
    if (!extra.empty()) {
      diag->Add(entry.Mark(), entry_field,
                "sets " + JoinStrings(extra) + ", which the first entry (line " +
                    std::to_string(first_line) + ") does not" + rule);
    }
  }
  return diag->size() == errors_before;
}

// One entry of `overrides`: the cells whose axis values match every `where` pair
// take the values of `set`, which writes single fields no axis sets.
struct Override {
  std::vector<std::pair<size_t, size_t>> where;  // (axis, index of its value)
  std::vector<const FieldSpec*> fields;          // what `set` writes, in file order
  AxisValue set;                                 // their values and marks
  YAML::Mark mark;                               // of the entry

  bool Matches(const std::vector<size_t>& cell) const {
    for (const auto& [axis, value] : where) {
      if (cell[axis] != value) return false;
    }
    return true;
  }
  // Whether some cell matches both: no axis on which they want different values.
  bool SharesCellsWith(const Override& other) const {
    for (const auto& [a, v] : where) {
      for (const auto& [b, w] : other.where) {
        if (a == b && v != w) return false;
      }
    }
    return true;
  }
  const FieldSpec* Sets(const std::string& path) const {
    for (const FieldSpec* f : fields) {
      if (f->path == path) return f;
    }
    return nullptr;
  }
};

// "; did you mean K?" for the grid axis key nearest `key`, or "".
std::string AxisSuggestion(const std::string& key, const std::vector<Axis>& axes) {
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const Axis& axis : axes) {
    const size_t d = EditDistance(key, axis.key);
    if (d < best_distance) {
      best = axis.key;
      best_distance = d;
    }
  }
  return best_distance <= std::max<size_t>(2, key.size() / 6) ? "; did you mean " + best + "?" : "";
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
  YAML::Node grid_node, seeds_node, overrides_node;
  Marks base_marks;  // where each top-level and base-config value was written
  {
    MapReader top(root, "", &diag, &base_marks);
    top.Read("name", &spec.name);
    top.Read("description", &spec.description);
    top.Read("max_attempts", &spec.max_attempts);
    for (const auto& section : ConfigSections()) {
      if (IsTopLevel(section)) top.Skip(section.c_str());
    }
    grid_node = top.Section("grid");
    seeds_node = top.Section("seeds");
    overrides_node = top.Section("overrides");
    MapReader results(top.Section("results"), "results", &diag, &base_marks);
    results.Read("last_k", &spec.last_k);
    results.Finish();
    top.Finish();
  }
  auto written = [&](const char* path) {
    auto m = base_marks.find(path);
    return m == base_marks.end() ? root.Mark() : m->second;
  };
  if (spec.name.empty()) {
    diag.Add(root.Mark(), "name", "required: a short name for the sweep");
  } else if (spec.name.size() > 128) {
    diag.Add(root.Mark(), "name", "at most 128 characters");
  } else {
    // Names are typed on command lines and printed in tables: no spaces, no control
    // characters (terminal escapes), no leading '-' (it would read as an option).
    const bool safe = std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
             c == '+' || c == '@';
    });
    if (!safe || spec.name[0] == '-' || spec.name[0] == '.') {
      diag.Add(written("name"), "name",
               "may use letters, digits and - _ . + @ only, and must not start with - or .");
    }
  }
  if (spec.last_k < 1 || spec.last_k > 1000) {
    diag.Add(written("results.last_k"), "results.last_k", "must be in [1, 1000]");
  }
  if (spec.max_attempts < 0 || spec.max_attempts > 100) {
    diag.Add(written("max_attempts"), "max_attempts",
             "must be in [0, 100] (0 = coordinator default)");
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

  // Grid axes. An ordinary axis maps a dotted path into the config sections (a
  // field, or a nested section that each value replaces whole) to a non-empty list
  // of values. A linked axis maps a name to a list of entries, each a mapping from
  // such paths to values (one value of each of several ordinary axes, moving
  // together) plus an optional label; every entry sets the same paths.
  std::vector<Axis> axes;
  // "the axis P (line N)" for the axis that already sets a parameter of `path`; "".
  auto overlapping = [&](const std::string& path) -> std::string {
    for (const Axis& axis : axes) {
      for (const std::string& other : axis.paths) {
        if (!PathsOverlap(path, other)) continue;
        return (axis.linked ? "the linked axis " + axis.key + " (its " + other + ", line "
                            : "the axis " + other + " (line ") +
               std::to_string(axis.mark.line + 1) + ")";
      }
    }
    return "";
  };
  if (grid_node.IsDefined() && !grid_node.IsNull()) {
    if (!grid_node.IsMap()) {
      diag.Add(grid_node.Mark(), "grid", "must map parameter paths to lists of values");
    } else {
      MapReader duplicate_check(grid_node, "grid", &diag, nullptr);  // reports duplicate paths
      for (const auto& kv : grid_node) {
        if (!kv.first.IsScalar()) continue;
        Axis axis;
        axis.key = kv.first.Scalar();
        axis.mark = kv.first.Mark();
        const std::string field = "grid." + axis.key;
        AxisTarget target;
        const std::string why = ResolveGridPath(axis.key, &target);
        axis.linked = !why.empty() && IsLinkedAxisName(axis.key) && kv.second.IsSequence() &&
                      kv.second.size() > 0 && kv.second.begin()->IsMap();
        if (!why.empty() && !axis.linked) {
          diag.Add(axis.mark, field, why);
          continue;
        }
        if (!axis.linked) {
          // Each field has at most one axis: with two, the order of the axes would
          // decide silently which value a cell gets.
          if (std::string other = overlapping(axis.key); !other.empty()) {
            diag.Add(axis.mark, field,
                     "overlaps " + other + ": at most one axis may set a parameter");
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
        }
        if (static_cast<int64_t>(kv.second.size()) > limits.max_axis_values) {
          diag.Add(kv.second.Mark(), field,
                   "axis has " + std::to_string(kv.second.size()) + " values; at most " +
                       std::to_string(limits.max_axis_values));
          continue;
        }
        if (!axis.linked) {
          axis.paths = {axis.key};
          axis.targets = {target};
        } else if (!ReadLinkedAxisPaths(kv.second, field, overlapping, &axis, &diag)) {
          continue;
        }
        for (const YAML::Node& value : kv.second) axis.nodes.push_back(value);
        spec.grid.push_back({axis.key, static_cast<int64_t>(axis.nodes.size()),
                             axis.linked ? axis.paths : std::vector<std::string>{}});
        axes.push_back(std::move(axis));
      }
      if (static_cast<int64_t>(spec.grid.size()) > limits.max_axes) {
        diag.Add(grid_node.Mark(), "grid", "at most " + std::to_string(limits.max_axes) + " axes");
      }
    }
  }
  if (!diag.empty()) return diag.ToStatus();

  // Size check before expanding anything. Counts saturate at kHuge: 16 axes of
  // 1,000 values are 10^48 cells.
  constexpr int64_t kHuge = 1'000'000'000'000'000'000;
  auto saturating_product = [](int64_t a, int64_t b) {
    return b > 0 && a > kHuge / b ? kHuge + 1 : a * b;
  };
  int64_t cells = 1;
  for (const auto& axis : spec.grid) cells = saturating_product(cells, axis.size);
  const int64_t seeds = static_cast<int64_t>(spec.seeds.size());
  const int64_t total = cells > kHuge ? cells : saturating_product(cells, seeds);
  if (total > limits.max_runs) {
    auto count = [](int64_t n, const char* unit) {
      return WithThousands(n) + " " + unit + (n == 1 ? "" : "s");
    };
    std::string made;
    if (cells > kHuge) {
      std::string sizes;
      for (const auto& axis : spec.grid)
        sizes += (sizes.empty() ? "" : " x ") + WithThousands(axis.size);
      made = "more than " + WithThousands(kHuge) + " runs (axes of " + sizes + " values, x " +
             count(seeds, "seed") + ")";
    } else {
      made = (total > kHuge ? "more than " + WithThousands(kHuge) : WithThousands(total)) +
             " runs (" + count(cells, "cell") + " x " + count(seeds, "seed") + ")";
    }
    diag.Add(grid_node.IsDefined() && !grid_node.IsNull() ? grid_node.Mark() : seeds_node.Mark(),
             "grid",
             "the grid x seeds makes " + made + "; the limit is " + WithThousands(limits.max_runs) +
                 " (the coordinator's --max-runs-per-sweep)");
    return diag.ToStatus();
  }

  // The file is parsed once. The base config is read without the fields the axes
  // set, and each axis value once, on its own; a cell is the base with its values
  // copied in, then the matching overrides' values, so its errors point at the
  // override, grid value or base line that set the offending field.
  std::set<std::string> replaced;
  for (const Axis& axis : axes) replaced.insert(axis.paths.begin(), axis.paths.end());
  RunConfig base_config;
  ReadRunConfig(root, replaced, &diag, &base_marks, &base_config);
  // Reads one value of one axis path (a field, or a section read whole) into `value`.
  auto read_component = [&](const YAML::Node& node, const AxisTarget& target, AxisValue* value) {
    if (target.section.empty()) {
      const FieldSpec& f = *target.fields[0];
      value->marks[f.path] = node.Mark();
      std::visit([&](auto get) { ReadValue(node, f.path, get(value->values), &diag); }, f.get);
    } else {
      ReadSection(node, target.section, {}, &diag, &value->marks, &value->values);
    }
  };
  auto pointer_of = [](const std::string& path) {
    std::string pointer = "/" + path;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    return nlohmann::json::json_pointer(pointer);
  };
  std::vector<std::vector<AxisValue>> axis_values(axes.size());
  std::vector<std::vector<const FieldSpec*>> axis_fields(axes.size());
  std::map<std::string, size_t> axis_of_field;
  std::vector<nlohmann::json::json_pointer> axis_pointers;  // an ordinary axis's value
  for (size_t a = 0; a < axes.size(); ++a) {
    Axis& axis = axes[a];
    for (size_t v = 0; v < axis.nodes.size(); ++v) {
      AxisValue value;
      if (!axis.linked) {
        read_component(axis.nodes[v], axis.targets[0], &value);
      } else {
        for (size_t c = 0; c < axis.paths.size(); ++c) {
          read_component(ChildOf(axis.nodes[v], axis.paths[c]), axis.targets[c], &value);
        }
        // Unlabelled entries are named by their first path's value ("adam").
        if (axis.labels[v].empty()) {
          axis.labels[v] = ValueLabel(RunConfigToJson(value.values).at(pointer_of(axis.paths[0])));
        }
      }
      axis_values[a].push_back(std::move(value));
    }
    for (const AxisTarget& target : axis.targets) {
      for (const FieldSpec* f : target.fields) {
        axis_fields[a].push_back(f);
        axis_of_field[f->path] = a;
      }
    }
    axis_pointers.push_back(pointer_of(axis.paths[0]));
    // Labels name a linked axis's values in cell labels and in `where`: distinct.
    std::map<std::string, size_t> label_owner;
    for (size_t v = 0; v < axis.labels.size() && axis.linked; ++v) {
      auto [it, fresh] = label_owner.emplace(axis.labels[v], v);
      if (fresh) continue;
      diag.Add(axis.label_marks[v], "grid." + axis.key + "[" + std::to_string(v) + "]",
               "labelled '" + axis.labels[v] + "' like the entry at line " +
                   std::to_string(axis.nodes[it->second].Mark().line + 1) +
                   ": give the entries distinct labels (label: NAME)");
    }
  }

  // An axis over a whole section replaces the base's section: what the base wrote
  // there is never used, not even for the fields the axis values leave out.
  Diagnostics warnings(source_name);
  for (const Axis& axis : axes) {
    for (const AxisTarget& target : axis.targets) {
      const std::string& section = target.section;
      if (section.empty()) continue;
      const YAML::Node base_section = NodeAt(root, section);
      if (!base_section.IsMap()) continue;
      for (const auto& kv : base_section) {
        if (!kv.first.IsScalar()) continue;
        warnings.Add(
            kv.first.Mark(), section + "." + kv.first.Scalar(),
            "not used: the " +
                std::string(axis.linked ? "linked axis " + axis.key : "grid axis " + section) +
                " (line " + std::to_string(axis.mark.line + 1) +
                ") replaces the whole section, and fields its values leave out take "
                "their defaults");
      }
    }
  }

  // Overrides: `where` picks one value of some grid axes, `set` writes single
  // fields no axis sets, in the cells that match.
  std::vector<Override> overrides;
  const size_t errors_before_overrides = diag.size();
  if (overrides_node.IsDefined() && !overrides_node.IsNull()) {
    if (!overrides_node.IsSequence()) {
      diag.Add(overrides_node.Mark(), "overrides",
               std::string("must be a list of {where: ..., set: ...}, got ") +
                   NodeTypeName(overrides_node));
    } else if (static_cast<int64_t>(overrides_node.size()) > limits.max_overrides) {
      diag.Add(overrides_node.Mark(), "overrides",
               "at most " + std::to_string(limits.max_overrides) + " overrides");
    } else {
      size_t i = 0;
      for (const YAML::Node& entry : overrides_node) {
        const std::string field = "overrides[" + std::to_string(i++) + "]";
        if (!entry.IsMap()) {
          diag.Add(
              entry.Mark(), field,
              std::string("must be a mapping {where: ..., set: ...}, got ") + NodeTypeName(entry));
          continue;
        }
        MapReader reader(entry, field, &diag, nullptr);
        const YAML::Node where = reader.Section("where");
        const YAML::Node set = reader.Section("set");
        reader.Finish();
        // A non-empty mapping with distinct keys, or false after saying what is wrong.
        auto nonempty_mapping = [&](const YAML::Node& node, const std::string& part,
                                    const std::string& example) {
          const std::string f = field + "." + part;
          const YAML::Mark mark = node.Mark().is_null() ? entry.Mark() : node.Mark();
          if (!node.IsDefined() || node.IsNull()) {
            diag.Add(mark, f, "required: " + example);
          } else if (!node.IsMap()) {
            diag.Add(mark, f, std::string("must be a mapping, got ") + NodeTypeName(node));
          } else if (node.size() == 0) {
            diag.Add(mark, f, "is empty: " + example);
          } else {
            MapReader duplicate_keys(node, f, &diag, nullptr);
            return true;
          }
          return false;
        };
        Override o;
        o.mark = entry.Mark();
        if (nonempty_mapping(where, "where",
                             "grid axis values that pick the cells to change, e.g. "
                             "{model.depth_n: 18} (a change for every cell belongs in the base "
                             "config)")) {
          for (const auto& kv : where) {
            if (!kv.first.IsScalar()) continue;
            const std::string key = kv.first.Scalar();
            const std::string f = field + ".where." + key;
            size_t a = 0;
            while (a < axes.size() && axes[a].key != key) ++a;
            if (a == axes.size()) {
              std::vector<std::string> keys;
              for (const Axis& axis : axes) keys.push_back(axis.key);
              diag.Add(kv.first.Mark(), f,
                       "not a grid axis: where matches values of grid axes (" +
                           (keys.empty() ? std::string("this sweep has no grid")
                                         : "axes: " + JoinStrings(keys)) +
                           ")" + AxisSuggestion(key, axes));
              continue;
            }
            const Axis& axis = axes[a];
            size_t match = axis.nodes.size();
            std::vector<std::string> values;
            std::string wanted_text;
            if (axis.linked) {
              values = axis.labels;
              wanted_text = kv.second.IsScalar() ? "'" + kv.second.Scalar() + "'" : "the value";
              for (size_t v = 0; v < axis.labels.size() && kv.second.IsScalar(); ++v) {
                if (axis.labels[v] == kv.second.Scalar()) match = v;
              }
            } else {
              AxisValue wanted;
              const size_t before = diag.size();
              read_component(kv.second, axis.targets[0], &wanted);
              if (diag.size() != before) continue;
              for (size_t v = 0; v < axis_values[a].size(); ++v) {
                const bool same = std::all_of(
                    axis_fields[a].begin(), axis_fields[a].end(), [&](const FieldSpec* fs) {
                      return SameField(*fs, wanted.values, axis_values[a][v].values);
                    });
                if (same && match == axis.nodes.size()) match = v;
                values.push_back(
                    ValueLabel(RunConfigToJson(axis_values[a][v].values).at(axis_pointers[a])));
              }
              wanted_text = ValueLabel(RunConfigToJson(wanted.values).at(axis_pointers[a]));
            }
            if (match == axis.nodes.size()) {
              diag.Add(kv.second.Mark(), f,
                       wanted_text + " matches no value of the axis, so no cell (" +
                           (axis.linked ? "labels: " : "values: ") + JoinStrings(values) + ")");
              continue;
            }
            o.where.push_back({a, match});
          }
        }
        if (nonempty_mapping(set, "set",
                             "the fields to change, e.g. {train.schedule.warmup_iterations: "
                             "400}")) {
          for (const auto& kv : set) {
            if (!kv.first.IsScalar()) continue;
            const std::string path = kv.first.Scalar();
            const std::string f = field + ".set." + path;
            AxisTarget target;
            if (IsSection(path)) {
              diag.Add(kv.first.Mark(), f,
                       "names a section: set single parameters, e.g. " +
                           Join(path, KeysOf(path).front()));
              continue;
            }
            if (std::string why = ResolveGridPath(path, &target); !why.empty()) {
              diag.Add(kv.first.Mark(), f, why);
              continue;
            }
            if (std::string other = overlapping(path); !other.empty()) {
              diag.Add(kv.first.Mark(), f,
                       "is set by " + other +
                           ": an override cannot change a parameter a grid axis sets");
              continue;
            }
            const size_t before = diag.size();
            read_component(kv.second, target, &o.set);
            if (diag.size() == before) o.fields.push_back(target.fields[0]);
          }
        }
        overrides.push_back(std::move(o));
      }
    }
  }
  // Overrides that match a common cell must agree on the fields both set: which
  // one would win is easy to miss when reading the file, so it is not a rule.
  for (size_t j = 0; j < overrides.size() && diag.size() == errors_before_overrides; ++j) {
    for (size_t i = 0; i < j; ++i) {
      if (!overrides[j].SharesCellsWith(overrides[i])) continue;
      for (const FieldSpec* f : overrides[j].fields) {
        if (!overrides[i].Sets(f->path)) continue;
        if (SameField(*f, overrides[i].set.values, overrides[j].set.values)) continue;
        diag.Add(overrides[j].set.marks.at(f->path),
                 "overrides[" + std::to_string(j) + "].set." + f->path,
                 "conflicts with the override at line " +
                     std::to_string(overrides[i].mark.line + 1) + ", which sets it to " +
                     ValueLabel(RunConfigToJson(overrides[i].set.values).at(pointer_of(f->path))) +
                     " in some of the same cells: overrides that match one cell must agree");
      }
    }
  }
  if (diag.size() != errors_before_overrides) return diag.ToStatus();

  // Expands cells [first, last) in grid order into `runs`, appending their ids to
  // `run_ids`, errors to `errors` (stopping once it holds some and cell 64 is past:
  // enough examples of what is wrong) and warnings to `cell_warnings`. Reads only
  // what is above: chunks of the grid can be expanded on several threads at once.
  auto expand_cells = [&](int64_t first, int64_t last, Diagnostics* errors,
                          Diagnostics* cell_warnings, std::vector<ExpandedRun>* runs,
                          std::string* run_ids) {
    std::vector<size_t> index(axes.size(), 0);  // the cell: one value per axis
    for (int64_t rest = first, a = static_cast<int64_t>(axes.size()) - 1; a >= 0; --a) {
      const int64_t size = static_cast<int64_t>(axis_values[a].size());
      index[a] = static_cast<size_t>(rest % size);  // last axis fastest
      rest /= size;
    }
    Marks cell_overrides;  // the current cell's fields set by overrides
    const CellSources sources{base_marks, axis_of_field, axis_values, index, cell_overrides};
    for (int64_t cell = first; cell < last; ++cell) {
      RunConfig config = base_config;
      for (size_t a = 0; a < axes.size(); ++a) {
        const AxisValue& value = axis_values[a][index[a]];
        for (const FieldSpec* f : axis_fields[a]) CopyField(*f, value.values, &config);
      }
      cell_overrides.clear();
      for (const Override& o : overrides) {  // in file order
        if (!o.Matches(index)) continue;
        for (const FieldSpec* f : o.fields) {
          CopyField(*f, o.set.values, &config);
          cell_overrides[f->path] = o.set.marks.at(f->path);
        }
      }
      for (const auto& e : CheckRunConfig(config)) {
        const YAML::Mark* m = sources.Find(e.path);
        errors->Add(m ? *m : YAML::Mark::null_mark(), e.path, e.message);
      }
      CheckTraps(config, spec.last_k, sources, cell_warnings);
      if (errors->empty()) {
        const nlohmann::json json = RunConfigToJson(config);
        auto shared = std::make_shared<ExpandedCell>();
        shared->config_json = json.dump();
        // cell_key = sha256(config_json), run_id = sha256(config_json + "\nseed=" + seed):
        // the config is hashed once per cell and each seed adds only its suffix.
        Sha256 config_hash;
        config_hash.Update(shared->config_json);
        shared->cell_key = config_hash.HexDigest().substr(0, 16);
        for (size_t a = 0; a < axes.size(); ++a) {
          const std::string& key = axes[a].key;
          const std::string value =
              axes[a].linked ? axes[a].labels[index[a]] : ValueLabel(json.at(axis_pointers[a]));
          shared->cell_label += (shared->cell_label.empty() ? "" : " ") + key + "=" + value;
          shared->cell_params[key] = value;
        }
        if (shared->cell_label.empty()) shared->cell_label = "base";
        shared->config = std::move(config);
        std::shared_ptr<const ExpandedCell> cell_of_runs = std::move(shared);
        for (const int64_t seed : spec.seeds) {
          Sha256 run_hash = config_hash;
          run_hash.Update("\nseed=" + std::to_string(seed));
          ExpandedRun& run = runs->emplace_back();
          run.seed = seed;
          run.run_id = run_hash.HexDigest().substr(0, 20);
          run.cell = cell_of_runs;
          *run_ids += run.run_id;
          *run_ids += '\n';
        }
      }
      if (errors->empty() == false && cell > 64) break;  // enough examples of what is wrong
      for (size_t a = spec.grid.size(); a-- > 0;) {      // odometer, last axis fastest
        if (++index[a] < axis_values[a].size()) break;
        index[a] = 0;
      }
    }
  };
  std::string all_run_ids;
  spec.runs.reserve(static_cast<size_t>(total));
  // A big grid is expanded in chunks on up to four threads, merged in grid order. A
  // chunk that finds an error makes the whole grid go again on one thread, so that
  // errors are reported exactly as one pass reports them.
  constexpr int64_t kCellsPerThread = 2048;
  const int64_t threads = std::min<int64_t>({static_cast<int64_t>(limits.max_expansion_threads),
                                             std::max(1u, std::thread::hardware_concurrency()),
                                             cells / kCellsPerThread});
  bool expanded = false;
  if (threads > 1) {
    struct Chunk {
      Diagnostics errors, warnings;
      std::vector<ExpandedRun> runs;
      std::string run_ids;
    };
    std::vector<Chunk> chunks;
    for (int64_t t = 0; t < threads; ++t)
      chunks.push_back({Diagnostics(source_name), Diagnostics(source_name), {}, {}});
    auto expand_chunk = [&](int64_t t) {
      Chunk& c = chunks[t];
      const int64_t first = cells * t / threads, last = cells * (t + 1) / threads;
      c.runs.reserve(static_cast<size_t>((last - first) * static_cast<int64_t>(spec.seeds.size())));
      expand_cells(first, last, &c.errors, &c.warnings, &c.runs, &c.run_ids);
    };
    // A chunk whose thread cannot start (the process is at its thread limit) is
    // expanded on this one: std::thread throws then, which must not leave the parser.
    std::vector<std::thread> helpers;
    std::vector<int64_t> here = {0};  // the chunks this thread expands
    for (int64_t t = 1; t < threads; ++t) {
      try {
        helpers.emplace_back(expand_chunk, t);
      } catch (const std::system_error&) {
        here.push_back(t);
      }
    }
    for (const int64_t t : here) expand_chunk(t);
    for (std::thread& h : helpers) h.join();
    expanded =
        std::all_of(chunks.begin(), chunks.end(), [](const Chunk& c) { return c.errors.empty(); });
    if (expanded) {
      for (Chunk& c : chunks) {
        for (const std::string& line : c.warnings.lines()) warnings.AddLine(line);
        std::move(c.runs.begin(), c.runs.end(), std::back_inserter(spec.runs));
        all_run_ids += c.run_ids;
      }
    }
  }
  if (!expanded) expand_cells(0, cells, &diag, &warnings, &spec.runs, &all_run_ids);
  if (!diag.empty()) return diag.ToStatus();

  // Two cells that resolve to the same config (e.g. a repeated grid value) would
  // silently merge; reject them instead, naming the later cell in grid order. (Views
  // into the runs: a set of 100,000 strings cost more than hashing them.)
  std::unordered_set<std::string_view> ids;
  ids.reserve(spec.runs.size());
  for (const auto& run : spec.runs) {
    if (!ids.insert(run.run_id).second) {
      diag.Add(grid_node.Mark(), "grid",
               "two grid cells resolve to the same configuration (" + run.cell->cell_label +
                   "): is a value listed twice?");
      return diag.ToStatus();
    }
  }
  spec.sweep_id = Sha256Hex(spec.name + "\n" + all_run_ids).substr(0, 12);
  spec.warnings = warnings.lines();
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
