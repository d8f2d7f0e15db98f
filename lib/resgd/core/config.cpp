// Experiment configuration: strict YAML loading, --set, sweeps, validation, dump.
// docs/design.md, "Experiments and sweeps". Every key is declared once, in visit_fields().
#include "resgd/core/config.h"

#include "resgd/core/files.h"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace resgd {

std::string Origin::str() const {
  if (line > 0) return fmt::format("{}:{}:{}", file, line, column);
  return file.empty() ? std::string("default") : file;
}

namespace {

// A sweep larger than this is a typo, not an experiment (each run takes seconds to hours);
// refusing it early also keeps expand_sweep from exhausting memory.
constexpr double kMaxSweepRuns = 10'000;

// ---------------------------------------------------------------------------------------
// The one list of keys. `v(path, field)` is called for every option, in dump order;
// sections must stay contiguous so the dump can nest them.
template <class Config, class Visitor>
void visit_fields(Config& c, Visitor&& v) {
  v("name", c.name, "the experiment's name: output paths and reports use it");
  v("seed", c.seed, "fixes the data and the initialization (each drawn from a named stream of it)");
  v("device", c.device, "cpu, cuda, cuda:N, or auto (cuda:0 where a GPU is usable, else cpu)");
  v("dtype", c.dtype, "the floating-point type of the data, the parameters and every step");
  v("data.kind", c.data.kind, "gaussian tokens, the UCI digits, or X and Y from a .pt file (data.path)");
  v("data.num_samples", c.data.num_samples, "N, the sequences (full batch)");
  v("data.seq_len", c.data.seq_len, "n, the tokens of a sequence");
  v("data.dim", c.data.dim, "d, the features of a token");
  v("data.normalize_tokens", c.data.normalize_tokens, "scale each gaussian token to unit norm");
  v("data.target", c.data.target,
    "gaussian targets: random N(0, target_std^2), a teacher model's output, or X B (linear)");
  v("data.target_dim", c.data.target_dim, "d_y, the features of a target");
  v("data.target_std", c.data.target_std, "the std of random targets; null means 1/sqrt(d_y)");
  v("data.noise", c.data.noise, "std of the noise added to teacher and linear targets");
  v("data.path", c.data.path, "the .pt file of kind tensors, or the digits file; relative to the experiment file");
  v("model.layers", c.model.layers, "L, the blocks (attention then FFN, each with its residual)");
  v("model.key_dim", c.model.key_dim, "d_k, the columns of W_Q and W_K over all heads; null means d");
  v("model.ffn_width", c.model.ffn_width, "m, the FFN's hidden width (W_1 is d x m)");
  v("model.activation", c.model.activation, "sigma, the FFN's activation");
  v("model.leaky_slope", c.model.leaky_slope, "the slope of leaky_relu below 0");
  v("model.readout", c.model.readout, "Yhat is the last block's tokens, or their mean (one target per sequence)");
  v("model.layer_norm", c.model.layer_norm, "pre: the attention reads LN(H) and the FFN LN(G); none: neither");
  v("model.residual.attention", c.model.residual_attention,
    "gamma_a in G = gamma_a H + S H W_V: true (1), false (0) or a scale");
  v("model.residual.ffn", c.model.residual_ffn,
    "gamma_f in H_out = gamma_f G + c sigma(G W_1) W_2, where W_2 keeps the width d");
  v("model.attention.heads", c.model.heads, "h, the attention heads; it divides d_k and d");
  v("model.attention.temperature", c.model.temperature, "tau, the scores' divisor; null means sqrt(d_k / h)");
  v("model.attention.causal", c.model.causal, "mask the scores so that token i attends to tokens 0..i only");
  v("model.ffn.output_scale", c.model.output_scale, "c in c sigma(G W_1) W_2; 1/sqrt(m) is the NTK parametrization");
  v("model.init.W_Q", c.model.init.W_Q, "std of W_Q's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_K", c.model.init.W_K, "std of W_K's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_V", c.model.init.W_V, "std of W_V's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_1", c.model.init.W_1, "std of W_1's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_2", c.model.init.W_2, "std of W_2's entries at init; null means 1/sqrt(fan_in)");
  v("train.lr", c.train.lr,
    "eta, the step size of theta <- theta - eta grad L(theta); with train.lr_edge, the fraction of that edge "
    "(0.5: half the largest stable step)");
  v("train.lr_edge", c.train.lr_edge,
    "none, or the curvature edge train.lr is a fraction of, measured at theta_0 before the first step: ntk, "
    "2 / (c lambda_max(K)), where GD on the linearized model turns unstable (K over the trained parameters); "
    "sharpness, 2 / the loss's largest Hessian eigenvalue (the edge of stability). summary.json records the "
    "edge (lr_edge) and the step taken (lr)");
  v("train.max_iters", c.train.max_iters, "the GD steps at most (status max_iters when reached)");
  v("train.tolerance", c.train.tolerance, "stop (converged) when the loss is at most this");
  v("train.rel_tolerance", c.train.rel_tolerance, "stop (converged) when the loss is at most this times the initial");
  v("train.divergence_factor", c.train.divergence_factor,
    "stop (diverged) when the loss exceeds this times the initial, or is not finite");
  v("train.stall_window", c.train.stall_window,
    "stop (stalled) when the gradient has been exactly zero, at a positive loss, for this many steps (every "
    "ReLU dead, an exact stationary point): GD's step is then zero and every later one repeats it; 0: never");
  v("train.loss", c.train.loss, "0.5 sum of squared errors, or that divided by N (mean)");
  v("train.gradients", c.train.gradients, "autograd, or the hand-derived backward pass (the same trajectory)");
  v("train.log_every", c.train.log_every, "a metrics.csv row (and a stop-rule check) every this many steps");
  v("train.checkpoint_every", c.train.checkpoint_every, "write checkpoint.pt every this many steps; 0: off");
  v("train.freeze", c.train.freeze,
    "weights GD leaves at theta_0: attention (every block's W_Q, W_K, W_V) or ffn (W_1, W_2); their gradients "
    "are still computed, grad_norm and the diagnostics cover every parameter, and loss_lin follows GD on the "
    "others alone");
  v("diagnostics.every", c.diagnostics.every,
    "diagnose every this many steps, and at the first and last; 0: first and last only");
  v("diagnostics.ntk", c.diagnostics.ntk, "record ntk_lambda_min, the smallest eigenvalue of J J^T");
  v("diagnostics.ntk_every", c.diagnostics.ntk_every,
    "measure the NTK every this many steps, and at the first and last; null means diagnostics.every");
  v("diagnostics.ntk_max_entries", c.diagnostics.ntk_max_entries,
    "the largest Jacobian (entries) the NTK is formed for; larger leaves the column NaN");
  v("diagnostics.sharpness", c.diagnostics.sharpness, "record the largest eigenvalue of the loss's Hessian");
  v("diagnostics.sharpness_every", c.diagnostics.sharpness_every,
    "measure the sharpness every this many steps, and at the first and last; null means diagnostics.every");
  v("diagnostics.linearized", c.diagnostics.linearized,
    "record loss_lin, the loss GD would have on the model linearized at initialization (small problems only)");
  v("compute.backend", c.compute.backend,
    "tuned (the kernel routes and threads that pay on this machine) or reference (plain LibTorch)");
}

const std::vector<std::string>& all_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    ExperimentConfig c;
    visit_fields(c, [&](const char* path, auto&, const char*) { out.emplace_back(path); });
    return out;
  }();
  return keys;
}

bool is_field(const std::string& path) {
  const auto& keys = all_keys();
  return std::find(keys.begin(), keys.end(), path) != keys.end();
}

/// The names directly below `section` ("" for the top level), sweep included.
std::vector<std::string> children_of(const std::string& section) {
  std::vector<std::string> out;
  const std::string prefix = section.empty() ? "" : section + ".";
  auto add = [&](const std::string& name) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  };
  for (const auto& key : all_keys()) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    add(key.substr(prefix.size(), key.find('.', prefix.size()) - prefix.size()));
  }
  if (section.empty()) add("sweep"), add("claims");
  return out;
}

bool is_section(const std::string& path) {
  const std::string prefix = path + ".";
  for (const auto& key : all_keys())
    if (key.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

[[noreturn]] void fail(const Origin& where, const std::string& what) {
  throw ConfigError(fmt::format("{}: {}", where.str(), what));
}

[[noreturn]] void fail_unknown(const Origin& where, const std::string& section, const std::string& name) {
  const auto known = children_of(section);
  std::string hint;
  size_t best = 3;  // suggest only close matches: typos, not different words
  for (const auto& k : known) {
    const size_t dist = edit_distance(name, k);
    if (dist < best) best = dist, hint = fmt::format(" (did you mean '{}'?)", k);
  }
  fail(where, fmt::format("unknown key '{}'{}{}; known keys{}: {}", name,
                          section.empty() ? "" : " in section '" + section + "'", hint,
                          section.empty() ? "" : " of '" + section + "'", join(known, ", ")));
}

Origin origin_of(const YAML::Node& node, const std::string& file) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return Origin{file, 0, 0};
  return Origin{file, mark.line + 1, mark.column + 1};
}

// ---------------------------------------------------------------------------------------
// Scalar parsing: one overload per field type. Each rejects anything but its own type.
std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a map";
  return "'" + node.Scalar() + "'";
}

void parse(const YAML::Node& node, std::string& out, const std::string& key, const Origin& at) {
  if (!node.IsScalar()) fail(at, fmt::format("{}: expected a string, got {}", key, describe(node)));
  out = node.Scalar();
  try {  // dump_yaml writes strings as JSON, which takes UTF-8 only (found by fuzz/config_fuzz)
    (void)nlohmann::json(out).dump();
  } catch (const nlohmann::json::exception&) {
    fail(at, fmt::format("{}: not valid UTF-8 text", key));
  }
}

void parse(const YAML::Node& node, int64_t& out, const std::string& key, const Origin& at) {
  try {
    if (node.IsScalar()) {
      out = node.as<int64_t>();
      return;
    }
  } catch (const YAML::Exception&) {
  }
  fail(at, fmt::format("{}: expected an integer, got {}", key, describe(node)));
}

void parse(const YAML::Node& node, double& out, const std::string& key, const Origin& at) {
  bool ok = false;
  try {
    if (node.IsScalar()) out = node.as<double>(), ok = true;
  } catch (const YAML::Exception&) {
  }
  if (!ok) fail(at, fmt::format("{}: expected a number, got {}", key, describe(node)));
  if (!std::isfinite(out)) fail(at, fmt::format("{}: must be a finite number, got {}", key, describe(node)));
}

void parse(const YAML::Node& node, bool& out, const std::string& key, const Origin& at) {
  try {
    if (node.IsScalar()) {
      out = node.as<bool>();
      return;
    }
  } catch (const YAML::Exception&) {
  }
  fail(at, fmt::format("{}: expected true or false, got {}", key, describe(node)));
}

void parse(const YAML::Node& node, Gain& out, const std::string& key, const Origin& at) {
  bool as_bool = false;
  try {
    if (node.IsScalar()) {
      as_bool = node.as<bool>();
      out.value = as_bool ? 1.0 : 0.0;
      return;
    }
  } catch (const YAML::Exception&) {
  }
  try {
    parse(node, out.value, key, at);
  } catch (const ConfigError&) {
    fail(at, fmt::format("{}: expected true, false or a number, got {}", key, describe(node)));
  }
}

template <class E, class = decltype(EnumNames<E>::names)>
void parse(const YAML::Node& node, E& out, const std::string& key, const Origin& at) {
  std::string name;
  parse(node, name, key, at);
  const auto value = parse_enum<E>(name);
  if (!value) {
    std::vector<std::string> names(std::begin(EnumNames<E>::names), std::end(EnumNames<E>::names));
    fail(at, fmt::format("{}: unknown value '{}'; expected one of: {}", key, name, join(names, ", ")));
  }
  out = *value;
}

template <class T>
void parse(const YAML::Node& node, std::optional<T>& out, const std::string& key, const Origin& at) {
  if (node.IsNull()) {
    out.reset();
    return;
  }
  T value{};
  parse(node, value, key, at);
  out = value;
}

/// Sets the field at `path` from `node`. Returns false if there is no such field.
bool set_field(ExperimentConfig& config, const std::string& path, const YAML::Node& node, const Origin& at) {
  bool found = false;
  visit_fields(config, [&](const char* key, auto& field, const char*) {
    if (found || path != key) return;
    parse(node, field, path, at);
    found = true;
  });
  if (found) config.origins[path] = at;
  return found;
}

// ---------------------------------------------------------------------------------------
// Dump: every key, nested by section, numbers in their shortest exact form.
std::string quote_if_needed(const std::string& s) {
  static const std::set<std::string> keywords = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ""};
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  bool plain = !keywords.count(lower) && !std::isdigit(static_cast<unsigned char>(s[0])) && s[0] != '-' && s[0] != '.';
  for (char ch : s) plain = plain && (std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("_-./:", ch));
  if (plain) return s;
  return nlohmann::json(s).dump();  // a JSON string is a valid YAML double-quoted scalar
}

std::string to_text(const std::string& v) { return quote_if_needed(v); }
std::string to_text(int64_t v) { return std::to_string(v); }
std::string to_text(double v) { return fmt::format("{}", v); }
std::string to_text(bool v) { return v ? "true" : "false"; }
// A gain of 1 or 0 is the residual on or off, as experiment files write it.
std::string to_text(const Gain& v) {
  return v.value == 1.0 ? "true" : v.value == 0.0 ? "false" : fmt::format("{}", v.value);
}
template <class E, class = decltype(EnumNames<E>::names)>
std::string to_text(E v) {
  return to_string(v);
}
template <class T>
std::string to_text(const std::optional<T>& v) {
  return v ? to_text(*v) : std::string("null");
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  return parts;
}

// ---------------------------------------------------------------------------------------
// Loading.
/// Defaults that depend on another key: the digits are 8 rows of 8 pixels (seq_len and dim
/// 8) with one-hot labels (target_dim 10) unless the experiment sets them; any other kind
/// gets the plain defaults back (a --set data.kind=gaussian after a digits file). Applied
/// before every validation, so the order of --set and sweep values does not matter.
void fill_kind_defaults(ExperimentConfig& config) {
  const DataConfig plain;
  const bool digits = config.data.kind == DataKind::digits;
  const std::tuple<const char*, int64_t&, int64_t, int64_t> sizes[] = {
      {"data.seq_len", config.data.seq_len, plain.seq_len, 8},
      {"data.dim", config.data.dim, plain.dim, 8},
      {"data.target_dim", config.data.target_dim, plain.target_dim, 10}};
  for (const auto& [key, size, plain_default, digits_default] : sizes)
    if (!config.origins.count(key)) size = digits ? digits_default : plain_default;
}

/// The sweep's zip as a --set value, `key`'s list replaced by `value` at every point: the
/// other zipped lists keep their pairing.
std::string zip_with(const SweepConfig& sweep, const std::string& key, const std::string& value) {
  std::vector<std::string> entries;
  for (const auto& axis : sweep.axes) {
    if (!axis.zipped) continue;
    const std::vector<std::string> values =
        axis.key == key ? std::vector<std::string>(axis.values.size(), value) : axis.values;
    entries.push_back(fmt::format("{}: [{}]", axis.key, join(values, ", ")));
  }
  return "{" + join(entries, ", ") + "}";
}

/// One swept key's values, each type-checked where it stands (ranges are checked per point).
SweepAxis read_axis(const ExperimentConfig& config, const std::string& key, const YAML::Node& values,
                    const Origin& key_at, const std::string& file, bool zipped) {
  // compute.backend sets up the process once, before any run: not per point.
  auto sweepable_key = [](const std::string& k) { return k != "name" && k != "seed" && k != "compute.backend"; };
  if (!is_field(key) || !sweepable_key(key)) {
    std::vector<std::string> sweepable = {"seeds", "zip"};
    for (const auto& k : all_keys())
      if (sweepable_key(k)) sweepable.push_back(k);
    const char* why = key == "seed"              ? " (use 'seeds' to repeat runs)"
                      : key == "compute.backend" ? " (it sets up the process: compare the backends with two runs)"
                      : key.rfind("zip.", 0) == 0
                          ? " (zipped lists are set together: --set sweep.zip={KEY: [...], KEY: [...]})"
                          : "";
    fail(key_at, fmt::format("sweep: '{}' is not a key that can be swept{}; sweepable keys: {}", key, why,
                             join(sweepable, ", ")));
  }
  if (!values.IsSequence() || values.size() == 0)
    fail(origin_of(values, file),
         fmt::format("sweep.{}{}: expected a non-empty list, got {}", zipped ? "zip." : "", key, describe(values)));
  SweepAxis axis{key, {}, {}, zipped};
  for (const auto& value : values) {
    const Origin at = origin_of(value, file);
    ExperimentConfig probe = config;
    set_field(probe, key, value, at);
    // A quoted scalar ('[x', "true") stays quoted, so config_for_point reads back the same string.
    axis.values.push_back(value.IsNull()       ? "null"
                          : value.Tag() == "!" ? quote_if_needed(value.Scalar())
                                               : value.Scalar());
    axis.origins.push_back(at);
  }
  return axis;
}

/// Adds an axis, or replaces an earlier axis of the same key where it stands (a --set over
/// the file's keeps the file's order of axes, and so its run directories' names).
void put_axis(SweepConfig& sweep, SweepAxis axis) {
  const auto same =
      std::find_if(sweep.axes.begin(), sweep.axes.end(), [&](const SweepAxis& a) { return a.key == axis.key; });
  if (same != sweep.axes.end())
    *same = std::move(axis);
  else
    sweep.axes.push_back(std::move(axis));
}

/// sweep.zip: keys whose lists are read in step (the i-th values form one point), e.g. a
/// depth with the step size that suits it. It replaces any earlier zip as a whole; an empty
/// one (--set sweep.zip={}) drops it.
void load_zip(ExperimentConfig& config, const YAML::Node& node, std::set<std::string>& seen, const std::string& file) {
  if (!node.IsMap())
    fail(origin_of(node, file), fmt::format("sweep.zip: expected a map of dotted keys to lists of one length, "
                                            "moved together, got {}",
                                            describe(node)));
  std::vector<SweepAxis> zip;
  std::string first;
  size_t length = 0;
  for (const auto& item : node) {
    const Origin key_at = origin_of(item.first, file);
    const std::string key = item.first.Scalar();
    if (key == "seeds" || key == "zip")
      fail(key_at, fmt::format("sweep.zip: '{}' cannot be zipped; it belongs directly under sweep", key));
    if (!seen.insert(key).second) fail(key_at, fmt::format("duplicate key 'sweep.{}' (in and beside sweep.zip)", key));
    SweepAxis axis = read_axis(config, key, item.second, key_at, file, /*zipped=*/true);
    if (first.empty()) {
      first = key;
      length = axis.values.size();
    } else if (axis.values.size() != length) {
      fail(origin_of(item.second, file),
           fmt::format("sweep.zip.{}: {} value{}, but sweep.zip.{} has {}; zipped lists are read in step, so they "
                       "must be of one length",
                       key, axis.values.size(), axis.values.size() == 1 ? "" : "s", first, length));
    }
    zip.push_back(std::move(axis));
  }
  // The zip takes the place of the one it replaces (--set sweep.zip=...), and of any axis
  // of its keys, so that the file's order of axes, and its directories' names, stay.
  auto& axes = config.sweep.axes;
  auto replaced = [&](const SweepAxis& a) {
    return a.zipped || std::any_of(zip.begin(), zip.end(), [&](const SweepAxis& z) { return z.key == a.key; });
  };
  const auto place = std::find_if(axes.begin(), axes.end(), replaced) - axes.begin();  // none removed before it
  axes.erase(std::remove_if(axes.begin(), axes.end(), replaced), axes.end());
  axes.insert(axes.begin() + place, std::make_move_iterator(zip.begin()), std::make_move_iterator(zip.end()));
}

void load_sweep(ExperimentConfig& config, const YAML::Node& node, const std::string& file) {
  if (!node.IsMap()) fail(origin_of(node, file), "sweep: expected a map of dotted keys to lists of values");
  std::set<std::string> seen;
  for (const auto& item : node) {
    const Origin key_at = origin_of(item.first, file);
    const std::string key = item.first.Scalar();
    if (key == "zip") {
      load_zip(config, item.second, seen, file);
      continue;
    }
    if (!seen.insert(key).second) fail(key_at, fmt::format("duplicate key 'sweep.{}'", key));
    const YAML::Node& values = item.second;
    for (const auto& axis : config.sweep.axes)  // a --set over a file whose zip holds the key
      if (axis.key == key && axis.zipped && values.IsSequence() && values.size() > 0)
        fail(key_at, fmt::format("sweep.{}: is zipped in sweep.zip ({}), and a list of its own would drop the "
                                 "pairing; set the zip as a whole, e.g. --set 'sweep.zip={}'",
                                 key, axis.origins.front().str(),
                                 zip_with(config.sweep, key, values[0].IsScalar() ? values[0].Scalar() : "...")));
    if (key == "seeds") {
      if (!values.IsSequence() || values.size() == 0)
        fail(origin_of(values, file), fmt::format("sweep.seeds: expected a non-empty list, got {}", describe(values)));
      config.sweep.seeds.clear();
      for (const auto& value : values) {
        int64_t seed = 0;
        parse(value, seed, "sweep.seeds", origin_of(value, file));
        if (seed < 0) fail(origin_of(value, file), "sweep.seeds: seeds must be >= 0");
        if (std::count(config.sweep.seeds.begin(), config.sweep.seeds.end(), seed))
          fail(origin_of(value, file), fmt::format("sweep.seeds: seed {} is listed twice; each run needs a directory "
                                                   "of its own",
                                                   seed));
        config.sweep.seeds.push_back(seed);
      }
      continue;
    }
    put_axis(config.sweep, read_axis(config, key, values, key_at, file, /*zipped=*/false));
  }
}

/// Loads one map of the file. `keys_at` holds every key the file has set so far, by its
/// full dotted path, with where: a key may be spelled nested (`model: {residual: {ffn:
/// ..}}`) or dotted (`model.residual.ffn: ..`), and either spelling twice is a duplicate.
/// The `claims:` section: `expect:` kept item by item as YAML text (claims.cpp reads it),
/// `quick:` as key=value assignments, `figure:` a plot's name.
void load_claims(ExperimentConfig& config, const YAML::Node& node, const std::string& file) {
  if (!node.IsMap())
    fail(origin_of(node, file),
         fmt::format("claims: expected a map with keys expect, quick, figure, got {}", describe(node)));
  for (const auto& item : node) {
    const Origin key_at = origin_of(item.first, file);
    const std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
    const YAML::Node& value = item.second;
    if (name == "expect") {
      if (!value.IsSequence())
        fail(origin_of(value, file), fmt::format("claims.expect: expected a list of claims, got {}", describe(value)));
      for (const auto& entry : value) {
        YAML::Emitter out;
        out << YAML::Flow << entry;
        config.claims.expect.push_back({out.c_str(), origin_of(entry, file)});
      }
    } else if (name == "quick") {
      if (!value.IsMap())
        fail(origin_of(value, file),
             fmt::format("claims.quick: expected a map of keys to values, got {}", describe(value)));
      config.claims.quick.clear();
      config.claims.quick_at = origin_of(value, file).str();
      for (const auto& setting : value) {
        YAML::Emitter out;
        out << YAML::Flow << setting.second;
        config.claims.quick.push_back(setting.first.Scalar() + "=" + out.c_str());
      }
    } else if (name == "figure") {
      parse(value, config.claims.figure, "claims.figure", origin_of(value, file));
    } else {
      fail(key_at, fmt::format("claims: unknown key '{}'; known keys: expect, quick, figure", name));
    }
  }
}

void load_map(ExperimentConfig& config, const YAML::Node& map, const std::string& section, const std::string& file,
              std::map<std::string, Origin>& keys_at) {
  std::set<std::string> seen;  // this map's own names: one twice is a duplicate, section or key
  for (const auto& item : map) {
    const Origin key_at = origin_of(item.first, file);
    if (!item.first.IsScalar()) fail(key_at, "keys must be plain names");
    const std::string name = item.first.Scalar();
    const std::string path = section.empty() ? name : section + "." + name;
    if (!seen.insert(name).second) fail(key_at, fmt::format("duplicate key '{}'", path));
    if (is_field(path)) {
      const auto [first, fresh] = keys_at.emplace(path, key_at);
      if (!fresh) fail(key_at, fmt::format("duplicate key '{}' (also set at {})", path, first->second.str()));
    }
    if (path == "sweep") {
      load_sweep(config, item.second, file);
    } else if (path == "claims") {
      load_claims(config, item.second, file);
    } else if (is_field(path)) {
      set_field(config, path, item.second, origin_of(item.second, file));
    } else if (is_section(path)) {
      if (!item.second.IsMap())
        fail(origin_of(item.second, file), fmt::format("'{}' is a section: expected a map with keys {}, got {}", path,
                                                       join(children_of(path), ", "), describe(item.second)));
      load_map(config, item.second, path, file, keys_at);
    } else {
      fail_unknown(key_at, section, name);
    }
  }
}

void require(bool ok, const ExperimentConfig& config, const std::string& key, const std::string& what) {
  if (ok) return;
  auto it = config.origins.find(key);
  const Origin at = it == config.origins.end() ? Origin{"default"} : it->second;
  fail(at, fmt::format("{}: {}", key, what));
}

/// Where a second YAML document starts, if there is one. Parses at most two documents:
/// yaml-cpp 0.7's LoadAll can loop forever on garbage (found by fuzz/config_fuzz).
std::optional<YAML::Mark> second_document(const std::string& yaml_text) {
  struct DocumentStarts : YAML::EventHandler {
    std::vector<YAML::Mark> starts;
    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } handler;
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  if (!parser.HandleNextDocument(handler) || !parser.HandleNextDocument(handler) || handler.starts.size() < 2)
    return std::nullopt;
  return handler.starts[1];
}

}  // namespace

std::vector<std::string> known_keys() { return all_keys(); }

ExperimentConfig load_config_text(const std::string& yaml_text, const std::string& source) {
  // yaml-cpp stops reading at a NUL byte, which would silently drop the rest of the file.
  if (const size_t nul = yaml_text.find('\0'); nul != std::string::npos) {
    const size_t line_start = yaml_text.rfind('\n', nul);
    const auto line =
        static_cast<int>(std::count(yaml_text.begin(), yaml_text.begin() + static_cast<std::ptrdiff_t>(nul), '\n'));
    fail(Origin{source, line + 1, static_cast<int>(line_start == std::string::npos ? nul + 1 : nul - line_start)},
         "not a text file (NUL byte); an experiment file is YAML text");
  }
  YAML::Node root;
  std::optional<YAML::Mark> second;
  try {
    root = YAML::Load(yaml_text);
    second = second_document(yaml_text);
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp's guard against a stack overflow
    fail(Origin{source, e.mark.line + 1, e.mark.column + 1},
         "YAML nesting too deep for the parser; an experiment file nests at most 4 levels");
  } catch (const YAML::ParserException& e) {
    fail(Origin{source, e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg);
  }
  if (second)
    fail(Origin{source, second->line + 1, second->column + 1},
         "a second YAML document ('---'); an experiment file holds one");
  ExperimentConfig config;
  if (root.IsNull()) return config;  // an empty file means all defaults
  if (!root.IsMap())
    fail(origin_of(root, source), fmt::format("an experiment file must be a map of sections (known keys: {}), got {}",
                                              join(children_of(""), ", "), describe(root)));
  std::map<std::string, Origin> keys_at;
  load_map(config, root, "", source, keys_at);
  fill_kind_defaults(config);
  validate(config);
  return config;
}

namespace {

/// A data.path written in an experiment file is relative to that file's folder: made
/// absolute here, so that the run reads the same file from any working directory. A path
/// given by --set, or absolute, stays as it is (--set is relative to the working directory).
void resolve_data_path(ExperimentConfig& config) {
  const auto origin = config.origins.find("data.path");
  if (!config.data.path || config.data.path->empty() || origin == config.origins.end() || origin->second.line == 0)
    return;
  const std::filesystem::path path = *config.data.path, file = origin->second.file;
  std::error_code ec;
  if (path.is_absolute() || !std::filesystem::is_regular_file(file, ec)) return;  // not from a file on disk
  config.data.path = std::filesystem::absolute(file.parent_path() / path, ec).lexically_normal().string();
}

}  // namespace

ExperimentConfig load_config_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);  // a regular file only: a FIFO would block the read forever
  } catch (const IoError& e) {
    throw ConfigError(fmt::format("{}; an experiment file is a YAML text file", e.what()));
  }
  ExperimentConfig config = load_config_text(text, path);
  resolve_data_path(config);
  for (auto& axis : config.sweep.axes) {  // swept data files too, relative to this file
    if (axis.key != "data.path") continue;
    for (size_t i = 0; i < axis.values.size(); ++i) {
      const YAML::Node value = YAML::Load(axis.values[i]);
      if (!value.IsScalar()) continue;  // null: no file
      ExperimentConfig point;
      point.data.path = value.Scalar();
      point.origins["data.path"] = axis.origins[i];
      resolve_data_path(point);
      axis.values[i] = quote_if_needed(*point.data.path);
    }
  }
  return config;
}

namespace {

/// One key=value, with its type and key checks; the ranges and choices are left to
/// validate, so that the value may depend on overrides that follow it.
void set_from_assignment(ExperimentConfig& config, const std::string& assignment) {
  const Origin at{"--set " + assignment};
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) fail(at, "expected key=value, e.g. --set model.residual.attention=false");
  const std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::DeepRecursion&) {
    fail(at, "cannot parse the value as YAML: nesting too deep for the parser");
  } catch (const YAML::Exception& e) {
    fail(at, "cannot parse the value as YAML: " + e.msg);
  }
  if (key == "sweep") {
    // Dropping the file's sweep runs one point of it (with --set on the swept keys); axes
    // are set one by one, so a whole sweep here would be a second syntax for them.
    if (!value.IsNull() && !(value.IsMap() && value.size() == 0))
      fail(at,
           "only sweep={} (or sweep=null) is accepted whole: it drops the file's sweep; set an axis with "
           "--set sweep.KEY=[...], e.g. --set sweep.train.lr=[0.1,0.01]");
    config.sweep = SweepConfig{};
  } else if (key.rfind("sweep.", 0) == 0) {
    YAML::Node sweep;
    sweep[key.substr(6)] = value;
    load_sweep(config, sweep, at.file);
  } else if (is_section(key)) {
    fail(at, fmt::format("'{}' is a section, not a key: set one of its keys ({}), e.g. --set {}.{}=...", key,
                         join(children_of(key), ", "), key, children_of(key).front()));
  } else if (!set_field(config, key, value, at)) {
    const auto dot = key.rfind('.');
    const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
    if (!section.empty() && !is_section(section))
      fail(at, fmt::format("unknown section '{}'; known keys: {}", section, join(children_of(""), ", ")));
    fail_unknown(at, section, dot == std::string::npos ? key : key.substr(dot + 1));
  }
}

}  // namespace

void apply_overrides(ExperimentConfig& config, const std::vector<std::string>& assignments) {
  // A key set twice to different values, or set beside a sweep that sets it for every
  // run, would leave one of the values unused without a word: both are refused.
  std::map<std::string, std::pair<std::string, std::string>> set_to;  // key -> (value, assignment)
  for (const auto& assignment : assignments) {
    set_from_assignment(config, assignment);
    const std::string key = assignment.substr(0, assignment.find('='));
    if (!is_field(key)) continue;  // sweep.*, sweep: checked below
    const std::string value = value_text(config, key);
    const auto [first, fresh] = set_to.emplace(key, std::pair{value, assignment});
    if (!fresh && first->second.first != value)
      fail(Origin{"--set " + assignment},
           fmt::format("{} is also set by --set {}, to another value; set it once", key, first->second.second));
  }
  for (const auto& [key, setting] : set_to) {
    if (key == "seed" && !config.sweep.seeds.empty())
      fail(Origin{"--set " + setting.second},
           fmt::format("seed is swept by sweep.seeds: [{}], which sets every run's seed, so this value would vanish; "
                       "to run it alone use --set sweep.seeds=[{}]",
                       fmt::join(config.sweep.seeds, ", "), setting.first));
    for (const auto& axis : config.sweep.axes) {
      if (axis.key != key) continue;
      // A zipped key's value moves with its partners: the advice keeps the pairing.
      const std::string alone = axis.zipped
                                    ? fmt::format("--set 'sweep.zip={}' (each of the zip's points at this value)",
                                                  zip_with(config.sweep, key, setting.first))
                                    : fmt::format("--set sweep.{}=[{}]", key, setting.first);
      fail(
          Origin{"--set " + setting.second},
          fmt::format("{} is swept by {} (sweep.{}{}: [{}]), which sets it for every run, so this value would "
                      "vanish; to run it alone use {}, or drop the sweep with --set sweep={{}}",
                      key, axis.origins.front().str(), axis.zipped ? "zip." : "", key, join(axis.values, ", "), alone));
    }
  }
  fill_kind_defaults(config);
  validate(config);
}

void apply_override(ExperimentConfig& config, const std::string& assignment) { apply_overrides(config, {assignment}); }

namespace {

/// The dimensions of a sweep's grid: each Cartesian axis is one, the zipped axes share one.
struct SweepShape {
  std::vector<size_t> dimension_of;  // per axis
  std::vector<size_t> extents;       // per dimension, in order of first appearance
};

SweepShape sweep_shape(const SweepConfig& sweep) {
  SweepShape shape;
  std::optional<size_t> zip_dimension;
  for (const auto& axis : sweep.axes) {
    if (axis.zipped && zip_dimension) {
      shape.dimension_of.push_back(*zip_dimension);
      continue;
    }
    if (axis.zipped) zip_dimension = shape.extents.size();
    shape.dimension_of.push_back(shape.extents.size());
    shape.extents.push_back(axis.values.size());
  }
  for (size_t a = 0; a < sweep.axes.size(); ++a)  // load_zip refuses this in files and --set
    if (sweep.axes[a].values.size() != shape.extents[shape.dimension_of[a]])
      throw std::logic_error("sweep_shape: zipped lists of different lengths (sweep.zip." + sweep.axes[a].key + ")");
  return shape;
}

/// A swept key or value as part of a run directory's name: characters other than letters,
/// digits and "._-" become '_'.
std::string directory_safe(std::string text) {
  for (char& ch : text)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr("._-", ch)) ch = '_';
  return text;
}

/// How a swept value names a run's directory: directory_safe of its text, but a data file
/// by its name alone (its folder is made absolute on loading).
std::string directory_value(const std::string& key, const std::string& value) {
  if (key != "data.path") return directory_safe(value);
  const std::string unquoted = value.size() >= 2 && value.front() == '"' ? value.substr(1, value.size() - 2) : value;
  return directory_safe(std::filesystem::path(unquoted).filename().string());
}

/// Two points of a sweep with one directory name would train into one run directory. A
/// point's name joins key=value parts with ',', and directory_safe leaves neither ',' nor '='
/// in a part, so two points share a name exactly when they agree on every dimension of the
/// grid (after directory_safe): a Cartesian axis must list each value once, a zip each
/// tuple once.
void require_distinct_run_directories(const SweepConfig& sweep) {
  const SweepShape shape = sweep_shape(sweep);
  for (size_t d = 0; d < shape.extents.size(); ++d) {
    std::vector<const SweepAxis*> axes;  // one Cartesian axis, or every zipped one
    for (size_t a = 0; a < sweep.axes.size(); ++a)
      if (shape.dimension_of[a] == d) axes.push_back(&sweep.axes[a]);
    std::map<std::string, size_t> first_of;  // the entry's directory names, joined by ',' -> first index
    for (size_t j = 0; j < shape.extents[d]; ++j) {
      std::string name;
      for (const SweepAxis* axis : axes) name += directory_value(axis->key, axis->values[j]) + ",";
      const auto [it, fresh] = first_of.emplace(name, j);
      if (fresh) continue;
      const SweepAxis& first = *axes.front();
      if (!first.zipped) {
        const std::string& a = first.values[it->second];
        const std::string& b = first.values[j];
        fail(first.origins[j],
             fmt::format("sweep.{}: {}; each run needs a directory of its own", first.key,
                         a == b ? fmt::format("{} is listed twice", a)
                                : fmt::format("{} and {} give one directory name (characters other than letters, "
                                              "digits and '._-' become '_')",
                                              a, b)));
      }
      std::string pairs;
      for (const SweepAxis* axis : axes) pairs += (pairs.empty() ? "" : ", ") + axis->key + "=" + axis->values[j];
      fail(first.origins[j], fmt::format("sweep.zip: entries {} and {} ({}) are one point; each run needs a "
                                         "directory of its own",
                                         it->second + 1, j + 1, pairs));
    }
  }
}

}  // namespace

namespace {

std::string type_of(const std::string&) { return "text"; }
std::string type_of(int64_t) { return "integer"; }
std::string type_of(double) { return "number"; }
std::string type_of(bool) { return "true or false"; }
std::string type_of(const Gain&) { return "gain: true (1), false (0) or a number"; }
template <class E, class = decltype(EnumNames<E>::names)>
std::string type_of(E) {
  return fmt::format("one of {}", fmt::join(EnumNames<E>::names, ", "));
}
template <class T>
std::string type_of(const std::optional<T>& v) {
  return type_of(v.value_or(T{})) + " or null";
}

// The values validate() accepts, where the type alone does not say: numeric bounds as
// "> x" or ">= x" (a test probes each at its edge) and the rules that are not bounds.
const std::map<std::string, std::string>& allowed_values() {
  static const std::map<std::string, std::string> allowed = {
      {"name", "not empty, no '/'"},
      {"seed", ">= 0"},
      {"device", "cpu, cuda, cuda:N or auto"},
      {"data.num_samples", "> 0"},
      {"data.seq_len", "> 0 (8 for digits)"},
      {"data.dim", "> 0 (8 for digits)"},
      {"data.target", "random only unless data.kind is gaussian"},
      {"data.target_dim", "> 0 (10 or 1 for digits)"},
      {"data.target_std", ">= 0"},
      {"data.noise", ">= 0"},
      {"data.path", "needed for tensors; a relative path is read from the experiment file's folder"},
      {"model.layers", "> 0"},
      {"model.key_dim", "> 0"},
      {"model.ffn_width", "> 0"},
      {"model.attention.heads", "> 0, dividing d_k and d"},
      {"model.attention.temperature", "> 0"},
      {"model.init.W_Q", ">= 0"},
      {"model.init.W_K", ">= 0"},
      {"model.init.W_V", ">= 0"},
      {"model.init.W_1", ">= 0"},
      {"model.init.W_2", ">= 0"},
      {"train.lr", "> 0"},
      {"train.max_iters", ">= 0"},
      {"train.tolerance", ">= 0"},
      {"train.rel_tolerance", ">= 0"},
      {"train.divergence_factor", "> 1"},
      {"train.stall_window", ">= 0"},
      {"train.log_every", ">= 1"},
      {"train.checkpoint_every", ">= 0"},
      {"diagnostics.every", ">= 0"},
      {"diagnostics.ntk_every", ">= 0"},
      {"diagnostics.ntk_max_entries", "> 0"},
      {"diagnostics.sharpness_every", ">= 0"},
  };
  return allowed;
}

}  // namespace

std::vector<KeyInfo> key_infos() {
  std::vector<KeyInfo> out;
  const ExperimentConfig defaults;
  visit_fields(defaults, [&](const char* key, const auto& field, const char* meaning) {
    const auto allowed = allowed_values().find(key);
    out.push_back(
        {key, type_of(field), to_text(field), allowed == allowed_values().end() ? "" : allowed->second, meaning});
  });
  return out;
}

std::string explain_keys(const std::string& key) {
  std::string out;
  for (const auto& info : key_infos()) {
    if (!key.empty() && info.key != key) continue;
    out += fmt::format("{}\n  {}; default {}{}\n  {}\n", info.key, info.type, info.default_value,
                       info.allowed.empty() ? "" : "; allowed " + info.allowed, info.meaning);
  }
  const std::pair<const char*, const char*> sweep[] = {
      {"sweep.<key>", "a list of values of <key>; the runs are the product of the lists, the first slowest"},
      {"sweep.zip.<key>", "lists of one length that move together: their i-th values form one point"},
      {"sweep.seeds", "a list of seeds: every point once per seed (without it, seed)"}};
  for (const auto& [name, meaning] : sweep)
    if (key.empty() || key == name) out += fmt::format("{}\n  list; default none\n  {}\n", name, meaning);
  return out;
}

void validate(const ExperimentConfig& c) {
  require(!c.name.empty(), c, "name", "must not be empty");
  require(c.name.find('/') == std::string::npos, c, "name", "must not contain '/'");
  require(c.seed >= 0, c, "seed", "must be >= 0");
  const bool device_ok = c.device == "cpu" || c.device == "auto" || c.device == "cuda" ||
                         (c.device.rfind("cuda:", 0) == 0 && c.device.size() > 5 &&
                          c.device.find_first_not_of("0123456789", 5) == std::string::npos);
  require(device_ok, c, "device", fmt::format("unknown device '{}'; expected cpu, cuda, cuda:N or auto", c.device));

  const DataConfig& d = c.data;
  if (d.kind != DataKind::gaussian) {  // the target generators and token scaling are for gaussian tokens only
    const std::string only = fmt::format("applies to gaussian data only, not to {}", to_string(d.kind));
    require(d.target == Target::random, c, "data.target", only);
    require(!d.target_std, c, "data.target_std", only);
    require(d.noise == 0, c, "data.noise", only);
    require(!d.normalize_tokens, c, "data.normalize_tokens", only);
  }
  if (d.kind == DataKind::digits) {  // data.h: 8 image rows as 8 tokens; one-hot or numeric label
    require(d.seq_len == 8, c, "data.seq_len", fmt::format("must be 8 for digits (8 image rows), got {}", d.seq_len));
    require(d.dim == 8, c, "data.dim", fmt::format("must be 8 for digits (8 pixels a row), got {}", d.dim));
    require(d.target_dim == 10 || d.target_dim == 1, c, "data.target_dim",
            fmt::format("must be 10 (one-hot label) or 1 (the label as a number) for digits, got {}", d.target_dim));
  }
  require(d.kind != DataKind::tensors || (d.path && !d.path->empty()), c, "data.path",
          "tensors data needs the .pt file: set data.path");
  require(d.num_samples > 0, c, "data.num_samples", fmt::format("must be a positive integer, got {}", d.num_samples));
  require(d.seq_len > 0, c, "data.seq_len", fmt::format("must be a positive integer, got {}", d.seq_len));
  require(d.dim > 0, c, "data.dim", fmt::format("must be a positive integer, got {}", d.dim));
  require(d.target_dim > 0, c, "data.target_dim", fmt::format("must be a positive integer, got {}", d.target_dim));
  require(!d.target_std || *d.target_std >= 0, c, "data.target_std", "must be >= 0");
  require(d.noise >= 0, c, "data.noise", "must be >= 0");
  require(d.noise == 0 || d.target != Target::random, c, "data.noise",
          "applies to teacher and linear targets; random targets have their own spread (data.target_std)");

  const ModelConfig& m = c.model;
  require(m.layers > 0, c, "model.layers", fmt::format("must be a positive integer, got {}", m.layers));
  require(!m.key_dim || *m.key_dim > 0, c, "model.key_dim", "must be a positive integer or null");
  require(m.ffn_width > 0, c, "model.ffn_width", fmt::format("must be a positive integer, got {}", m.ffn_width));
  require(m.heads > 0, c, "model.attention.heads", fmt::format("must be a positive integer, got {}", m.heads));
  // Each head attends with d_k / h query and key columns and writes d / h value columns. A
  // tensors file's d is known once read_data_sizes has read it and given data.dim an origin.
  if (d.kind != DataKind::tensors || c.origins.count("data.dim")) {
    const int64_t key_dim = m.key_dim.value_or(d.dim);
    require(key_dim % m.heads == 0 && d.dim % m.heads == 0, c, "model.attention.heads",
            fmt::format("{} heads must divide the key size d_k = {} and the token size d = {} evenly", m.heads, key_dim,
                        d.dim));
  }
  require(!m.temperature || *m.temperature > 0, c, "model.attention.temperature", "must be > 0 or null");
  const std::pair<const char*, const std::optional<double>*> stds[] = {{"model.init.W_Q", &m.init.W_Q},
                                                                       {"model.init.W_K", &m.init.W_K},
                                                                       {"model.init.W_V", &m.init.W_V},
                                                                       {"model.init.W_1", &m.init.W_1},
                                                                       {"model.init.W_2", &m.init.W_2}};
  for (const auto& [key, std] : stds) require(!*std || **std >= 0, c, key, "an init std must be >= 0 or null");
  const TrainConfig& t = c.train;
  require(t.lr > 0, c, "train.lr", fmt::format("must be > 0, got {}", t.lr));
  require(t.max_iters >= 0, c, "train.max_iters", "must be >= 0");
  require(t.tolerance >= 0, c, "train.tolerance", "must be >= 0");
  require(t.rel_tolerance >= 0, c, "train.rel_tolerance", "must be >= 0");
  require(t.divergence_factor > 1, c, "train.divergence_factor", "must be > 1");
  require(t.stall_window >= 0, c, "train.stall_window", "must be >= 0 (0 = never)");
  require(t.log_every >= 1, c, "train.log_every", "must be >= 1");
  require(t.checkpoint_every >= 0, c, "train.checkpoint_every", "must be >= 0 (0 = off)");

  require(c.diagnostics.every >= 0, c, "diagnostics.every", "must be >= 0 (0 = first and last iteration only)");
  for (const auto& [key, every] : {std::pair{"diagnostics.ntk_every", c.diagnostics.ntk_every},
                                   {"diagnostics.sharpness_every", c.diagnostics.sharpness_every}})
    require(!every || *every >= 0, c, key, "must be >= 0 (0 = first and last iteration only) or null");
  require(c.diagnostics.ntk_max_entries > 0, c, "diagnostics.ntk_max_entries", "must be > 0");

  double runs = double(std::max<size_t>(c.sweep.seeds.size(), 1));
  for (size_t extent : sweep_shape(c.sweep).extents) runs *= double(extent);
  if (runs > kMaxSweepRuns)
    fail(c.sweep.axes.empty() ? Origin{"sweep"} : c.sweep.axes.front().origins.front(),
         fmt::format("sweep: the product of the swept values gives {:.3g} runs, more than {:.0f}; sweep fewer values",
                     runs, kMaxSweepRuns));
  require_distinct_run_directories(c.sweep);
}

std::string dump_yaml(const ExperimentConfig& config, bool include_sweep) {
  std::string out;
  std::vector<std::string> open;  // the sections of the previous key
  visit_fields(config, [&](const char* key, const auto& field, const char*) {
    auto parts = split_path(key);
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) ++common;
    for (size_t i = common; i + 1 < parts.size(); ++i) out += std::string(2 * i, ' ') + parts[i] + ":\n";
    out += std::string(2 * (parts.size() - 1), ' ') + parts.back() + ": " + to_text(field) + "\n";
    open.assign(parts.begin(), parts.end() - 1);
  });
  if (include_sweep && !config.sweep.empty()) {
    out += "sweep:\n";
    bool zip_written = false;
    for (const auto& axis : config.sweep.axes) {
      if (!axis.zipped) {
        out += fmt::format("  {}: [{}]\n", axis.key, join(axis.values, ", "));
      } else if (!std::exchange(zip_written, true)) {
        out += "  zip:\n";
        for (const auto& partner : config.sweep.axes)
          if (partner.zipped) out += fmt::format("    {}: [{}]\n", partner.key, join(partner.values, ", "));
      }
    }
    if (!config.sweep.seeds.empty()) out += fmt::format("  seeds: [{}]\n", fmt::join(config.sweep.seeds, ", "));
  }
  return out;
}

std::string value_text(const ExperimentConfig& config, const std::string& key) {
  std::optional<std::string> text;
  visit_fields(config, [&](const char* path, const auto& field, const char*) {
    if (!text && key == path) text = to_text(field);
  });
  if (!text) throw std::logic_error("value_text: no key '" + key + "'");
  return *text;
}

std::string config_hash(const ExperimentConfig& config) {
  uint64_t hash = 14695981039346656037ULL;  // FNV-1a, 64 bit
  for (unsigned char ch : dump_yaml(config, false)) hash = (hash ^ ch) * 1099511628211ULL;
  return fmt::format("{:016x}", hash);
}

std::string SweepPoint::dir_name() const {
  std::vector<std::string> parts;
  for (const auto& [key, value] : values) parts.push_back(directory_safe(key) + "=" + directory_value(key, value));
  const std::string seed_dir = fmt::format("seed={}", seed);
  return parts.empty() ? seed_dir : join(parts, ",") + "/" + seed_dir;
}

std::vector<SweepPoint> expand_sweep(const ExperimentConfig& config) {
  const auto& axes = config.sweep.axes;
  const auto [dimension_of, extents] = sweep_shape(config.sweep);
  // Every index tuple, the first dimension slowest.
  std::vector<std::vector<size_t>> tuples(1);
  for (size_t extent : extents) {
    std::vector<std::vector<size_t>> next;
    for (const auto& tuple : tuples)
      for (size_t i = 0; i < extent; ++i) {
        next.push_back(tuple);
        next.back().push_back(i);
      }
    tuples = std::move(next);
  }
  std::vector<SweepPoint> points;
  for (const auto& tuple : tuples) {
    SweepPoint p;
    for (size_t a = 0; a < axes.size(); ++a) p.values.emplace_back(axes[a].key, axes[a].values[tuple[dimension_of[a]]]);
    points.push_back(std::move(p));
  }
  const std::vector<int64_t> seeds =
      config.sweep.seeds.empty() ? std::vector<int64_t>{config.seed} : config.sweep.seeds;
  std::vector<SweepPoint> out;
  for (const auto& point : points)
    for (int64_t seed : seeds) {
      SweepPoint p = point;
      p.seed = seed;
      out.push_back(std::move(p));
    }
  return out;
}

Origin sweep_value_origin(const SweepConfig& sweep, const std::string& key, const std::string& value) {
  Origin at{"sweep"};
  for (const auto& axis : sweep.axes)
    for (size_t i = 0; i < axis.values.size(); ++i)
      if (axis.key == key && axis.values[i] == value) at = axis.origins[i];
  return at;
}

ExperimentConfig config_for_point(const ExperimentConfig& base, const SweepPoint& point) {
  ExperimentConfig config = base;
  config.sweep = SweepConfig{};
  for (const auto& [key, value] : point.values) {
    const Origin at = sweep_value_origin(base.sweep, key, value);
    YAML::Node node;
    try {
      node = YAML::Load(value);
    } catch (const YAML::Exception& e) {
      fail(at, fmt::format("sweep.{}: cannot read back the value '{}': {}", key, value, e.msg));
    }
    set_field(config, key, node, at);
  }
  config.seed = point.seed;
  fill_kind_defaults(config);
  validate(config);
  return config;
}

std::vector<ExperimentConfig> resolve_sweep(const ExperimentConfig& config,
                                            const std::function<void(ExperimentConfig&)>& complete) {
  std::vector<ExperimentConfig> out;
  const auto points = expand_sweep(config);
  std::map<std::string, size_t> first_of;  // a point's resolved configuration -> its index
  for (size_t i = 0; i < points.size(); ++i) {
    out.push_back(config_for_point(config, points[i]));
    if (complete) complete(out.back());
    const auto [it, fresh] = first_of.emplace(dump_yaml(out.back()), i);
    if (fresh) continue;
    // Values spelled apart that read the same (0.1 and 1e-1, true and 1.0): the sweep
    // would train one configuration twice and call the copies two settings.
    const SweepPoint& first = points[it->second];
    for (size_t k = 0; k < points[i].values.size(); ++k) {
      const auto& [key, value] = points[i].values[k];
      if (value == first.values[k].second) continue;
      throw ConfigError(
          fmt::format("{}: sweep.{}: {} gives the same configuration as {} (run {} and run {}); "
                      "each setting would train the same runs",
                      sweep_value_origin(config.sweep, key, value).str(), key, value, first.values[k].second,
                      first.dir_name(), points[i].dir_name()));
    }
    throw ConfigError(fmt::format("sweep: runs {} and {} have the same configuration", first.dir_name(),
                                  points[i].dir_name()));  // not reached: equal texts are refused on loading
  }
  return out;
}

}  // namespace resgd
