// Experiment configuration: typed option structs with their defaults, strict YAML loading,
// `--set` overrides, sweeps and the resolved dump (docs/design.md, "Experiments and sweeps").
//
// Every key is registered once, in `visit_fields` (config_fields.h); loading, overriding,
// sweeping, validating and dumping all walk that one list, so a key cannot exist in one of
// them and be missing from another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace resgd {

/// A configuration mistake by the user: bad YAML, unknown key, wrong type, impossible
/// value. The message starts with `file:line:column:` where a position is known.
/// `resgd` exits with code 2 on it.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Where a value came from, for error messages: a file position or a command-line flag.
struct Origin {
  std::string file;  // file path, or e.g. "--set" for command-line overrides
  int line = 0;      // 1-based; 0 when there is no position
  int column = 0;    // 1-based
  std::string str() const;
};

/// A residual gain: 1 (on), 0 (off) or any scale. YAML `true`/`false` mean 1/0.
struct Gain {
  double value = 1.0;
};

// The configuration's choices, one enum each. EnumNames<E>::names spells its values in
// their order, as experiment files, summary.json and the reference write them.
enum class DataKind { gaussian, digits, tensors };
enum class Target { random, teacher, linear };
enum class Activation { relu, gelu, softplus, tanh, leaky_relu, identity };
enum class Readout { tokens, mean };
enum class LayerNorm { none, pre };
enum class Loss { sum, mean };
enum class Gradients { autograd, analytic };
enum class Dtype { float64, float32 };
enum class Backend { tuned, reference };
enum class Freeze { none, attention, ffn };
enum class LrEdge { none, ntk, sharpness };

template <class E>
struct EnumNames;
template <>
struct EnumNames<DataKind> {
  static constexpr const char* names[] = {"gaussian", "digits", "tensors"};
};
template <>
struct EnumNames<Target> {
  static constexpr const char* names[] = {"random", "teacher", "linear"};
};
template <>
struct EnumNames<Activation> {
  static constexpr const char* names[] = {"relu", "gelu", "softplus", "tanh", "leaky_relu", "identity"};
};
template <>
struct EnumNames<Readout> {
  static constexpr const char* names[] = {"tokens", "mean"};
};
template <>
struct EnumNames<LayerNorm> {
  static constexpr const char* names[] = {"none", "pre"};
};
template <>
struct EnumNames<Loss> {
  static constexpr const char* names[] = {"sum", "mean"};
};
template <>
struct EnumNames<Gradients> {
  static constexpr const char* names[] = {"autograd", "analytic"};
};
template <>
struct EnumNames<Dtype> {
  static constexpr const char* names[] = {"float64", "float32"};
};
template <>
struct EnumNames<Freeze> {
  static constexpr const char* names[] = {"none", "attention", "ffn"};
};
template <>
struct EnumNames<LrEdge> {
  static constexpr const char* names[] = {"none", "ntk", "sharpness"};
};
template <>
struct EnumNames<Backend> {
  static constexpr const char* names[] = {"tuned", "reference"};
};

/// The name of an enum value (EnumNames).
template <class E, class = decltype(EnumNames<E>::names)>
std::string to_string(E value) {
  return EnumNames<E>::names[static_cast<size_t>(value)];
}

/// The value named `name`, or nullopt.
template <class E>
std::optional<E> parse_enum(const std::string& name) {
  for (size_t i = 0; i < std::size(EnumNames<E>::names); ++i)
    if (name == EnumNames<E>::names[i]) return static_cast<E>(i);
  return std::nullopt;
}

struct DataConfig {
  DataKind kind = DataKind::gaussian;
  int64_t num_samples = 32;          // N
  int64_t seq_len = 8;               // n
  int64_t dim = 16;                  // d
  bool normalize_tokens = false;     // scale each token to unit norm
  Target target = Target::random;    // gaussian only
  int64_t target_dim = 16;           // d_y
  std::optional<double> target_std;  // random targets' std; null = 1/sqrt(d_y)
  double noise = 0.0;                // std of noise added to teacher/linear targets
  std::optional<std::string> path;   // .pt file for tensors; data file for digits
};

/// Per-matrix initialization std; null means 1/sqrt(fan_in).
struct InitConfig {
  std::optional<double> W_Q, W_K, W_V, W_1, W_2;
};

struct ModelConfig {
  int64_t layers = 1;              // L
  std::optional<int64_t> key_dim;  // d_k; null = d
  int64_t ffn_width = 256;         // m
  Activation activation = Activation::relu;
  double leaky_slope = 0.01;
  Readout readout = Readout::tokens;
  LayerNorm layer_norm = LayerNorm::none;  // pre: each token normalized before attention and FFN
  Gain residual_attention{1.0};            // gamma_a
  Gain residual_ffn{0.0};                  // gamma_f (the paper's single-layer model has none)
  int64_t heads = 1;                       // attention heads: d_k and d split evenly between them
  std::optional<double> temperature;       // tau; null = sqrt(d_k / heads), the key size of one head
  bool causal = false;
  double output_scale = 1.0;  // c; 1/sqrt(m) is the NTK parametrization
  InitConfig init;
};

struct TrainConfig {
  double lr = 0.01;
  LrEdge lr_edge = LrEdge::none;  // ntk or sharpness: lr is a fraction of that edge, measured at theta_0
  int64_t max_iters = 2000;
  double tolerance = 0.0;          // absolute: stop when loss <= tolerance
  double rel_tolerance = 1.0e-10;  // relative: stop when loss <= rel_tolerance * loss_0
  double divergence_factor = 1.0e6;
  int64_t stall_window = 10;  // stop (stalled) after this many steps of an exactly zero gradient; 0 = never
  Loss loss = Loss::sum;
  Gradients gradients = Gradients::autograd;
  int64_t log_every = 1;         // metrics.csv row cadence
  int64_t checkpoint_every = 0;  // 0 = off
  Freeze freeze = Freeze::none;  // weights held at theta_0 (their gradients still computed)
};

/// How a run multiplies: `tuned` (the routes that pay on this machine) or `reference`
/// (plain LibTorch, no process tuning): docs/internals.md.
struct ComputeConfig {
  Backend backend = Backend::tuned;
};

struct DiagnosticsConfig {
  int64_t every = 10;                    // 0 = only at the first and last iteration
  bool ntk = false;                      // smallest eigenvalue of J J^T (small problems only)
  std::optional<int64_t> ntk_every;      // null = every
  int64_t ntk_max_entries = 50'000'000;  // refuse the NTK above this many Jacobian entries
  bool ntk_spectrum = false;             // every eigenvalue of J J^T and the residual's energy on each
  bool sharpness = false;  // largest eigenvalue of the loss's Hessian (Lanczos on Hessian-vector products)
  std::optional<int64_t> sharpness_every;  // null = every
  bool linearized = false;                 // loss_lin: GD on the model linearized at initialization (linearized.h)
};

/// One swept key and its values, each kept as YAML text with its position in the file.
struct SweepAxis {
  std::string key;  // dotted path, e.g. "model.residual.attention"
  std::vector<std::string> values;
  std::vector<Origin> origins;
  bool zipped = false;  // under sweep.zip: its i-th value goes with the i-th of every zipped axis
};

struct SweepConfig {
  std::vector<SweepAxis> axes;  // Cartesian product, in file order; the zipped ones count as one
  std::vector<int64_t> seeds;   // repetitions of every point; empty = the run's seed
  bool empty() const { return axes.empty() && seeds.empty(); }
};

/// What an experiment claims (the file's `claims:` section), checked by `resgd reproduce`
/// (claims.h); no part of a run: config.yaml and config_hash leave it out.
struct ClaimsConfig {
  struct Entry {
    std::string yaml;  // one item of `expect:`, as YAML text
    Origin origin;
  };
  std::vector<Entry> expect;
  std::vector<std::string> quick;         // `quick:` overrides for --quick, as key=value assignments
  std::string quick_at = "claims.quick";  // where `quick:` stands, for its errors
  std::string figure = "loss";            // the report plot results.md shows
};

struct ExperimentConfig {
  std::string name = "example";
  int64_t seed = 0;
  std::string device = "auto";  // cpu | cuda | cuda:N | auto
  Dtype dtype = Dtype::float64;
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  DiagnosticsConfig diagnostics;
  ComputeConfig compute;
  SweepConfig sweep;
  ClaimsConfig claims;

  /// Where each key was last set (dotted path -> origin); keys never set are absent.
  std::map<std::string, Origin> origins;
};

/// Loads an experiment file: defaults, then the file's keys. Throws ConfigError.
ExperimentConfig load_config_file(const std::string& path);
/// Same, from YAML text; `source` names it in error messages.
ExperimentConfig load_config_text(const std::string& yaml_text, const std::string& source);

/// Applies `key=value` assignments (values parsed as YAML) in order, with the same checks
/// as the file: a key's type at once, the ranges and choices once all are applied, so
/// that their order never matters (data.kind=tensors may come before data.target=random).
void apply_overrides(ExperimentConfig& config, const std::vector<std::string>& assignments);
/// apply_overrides of one assignment.
void apply_override(ExperimentConfig& config, const std::string& assignment);

/// Checks every value's range and choices; errors name where the value was set.
void validate(const ExperimentConfig& config);

/// The fully resolved configuration as YAML (every key, defaults filled in).
std::string dump_yaml(const ExperimentConfig& config, bool include_sweep = true);
/// The value of one key as dump_yaml writes it (e.g. "0.015", "null", "true").
std::string value_text(const ExperimentConfig& config, const std::string& key);
/// A short stable hash (16 hex digits) of the resolved configuration, sweep excluded.
std::string config_hash(const ExperimentConfig& config);

/// The dotted keys of every option, in declaration order.
std::vector<std::string> known_keys();

/// One key as `resgd config --explain` shows it: its type, default (as dumped), the values
/// validate accepts where the type does not say, and what it means.
struct KeyInfo {
  std::string key, type, default_value, allowed, meaning;
};
/// Every key, in declaration order.
std::vector<KeyInfo> key_infos();
/// The reference text of `key` (every key for ""; "" for an unknown one).
std::string explain_keys(const std::string& key = "");

/// One point of a sweep: the values of the swept keys, and the seed.
struct SweepPoint {
  std::vector<std::pair<std::string, std::string>> values;  // (key, YAML text)
  int64_t seed = 0;
  std::string dir_name() const;  // "key=value,key=value/seed=S"
};

/// The Cartesian product of the sweep's axes (the zipped ones moving together, as one axis)
/// times its seeds (one point if no sweep). A point's values are in axis order.
std::vector<SweepPoint> expand_sweep(const ExperimentConfig& config);
/// The configuration of one sweep point: the base with the point's values applied.
ExperimentConfig config_for_point(const ExperimentConfig& base, const SweepPoint& point);
/// Every point's configuration, in sweep order: the base with the point's values applied,
/// then `complete` (runner.h's sweep_point_configs reads a tensors file's own sizes there).
/// ConfigError where two points read alike (values spelled apart: 0.1 and 1e-1).
std::vector<ExperimentConfig> resolve_sweep(const ExperimentConfig& config,
                                            const std::function<void(ExperimentConfig&)>& complete = {});
/// Where a swept key's value was written (file, line, column); Origin{"sweep"} if no axis
/// of `sweep` lists it.
Origin sweep_value_origin(const SweepConfig& sweep, const std::string& key, const std::string& value);

}  // namespace resgd
