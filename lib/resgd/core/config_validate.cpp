// Validation: every value's range and choices, the defaults that depend on another key, and the sweep's size.
#include "resgd/core/config.h"

#include "resgd/core/config_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace resgd {

using namespace config_detail;

namespace {

// A sweep larger than this is a typo, not an experiment (each run takes seconds to hours);
// refusing it early also keeps expand_sweep from exhausting memory.
constexpr double kMaxSweepRuns = 10'000;

void require(bool ok, const ExperimentConfig& config, const std::string& key, const std::string& what) {
  if (ok) return;
  auto it = config.origins.find(key);
  const Origin at = it == config.origins.end() ? Origin{"default"} : it->second;
  fail(at, fmt::format("{}: {}", key, what));
}

}  // namespace

/// Defaults that depend on another key: the digits are 8 rows of 8 pixels (seq_len and dim
/// 8) with one-hot labels (target_dim 10) unless the experiment sets them; any other kind
/// gets the plain defaults back (a --set data.kind=gaussian after a digits file). Applied
/// before every validation, so the order of --set and sweep values does not matter.
void config_detail::fill_kind_defaults(ExperimentConfig& config) {
  const DataConfig plain;
  const bool digits = config.data.kind == DataKind::digits;
  const std::tuple<const char*, int64_t&, int64_t, int64_t> sizes[] = {
      {"data.seq_len", config.data.seq_len, plain.seq_len, 8},
      {"data.dim", config.data.dim, plain.dim, 8},
      {"data.target_dim", config.data.target_dim, plain.target_dim, 10}};
  for (const auto& [key, size, plain_default, digits_default] : sizes)
    if (!config.origins.count(key)) size = digits ? digits_default : plain_default;
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
  require(!c.diagnostics.ntk_spectrum || c.diagnostics.ntk, c, "diagnostics.ntk_spectrum",
          "needs diagnostics.ntk: true (the spectrum is that of the NTK it measures)");

  double runs = double(std::max<size_t>(c.sweep.seeds.size(), 1));
  for (size_t extent : sweep_shape(c.sweep).extents) runs *= double(extent);
  if (runs > kMaxSweepRuns)
    fail(c.sweep.axes.empty() ? Origin{"sweep"} : c.sweep.axes.front().origins.front(),
         fmt::format("sweep: the product of the swept values gives {:.3g} runs, more than {:.0f}; sweep fewer values",
                     runs, kMaxSweepRuns));
  require_distinct_run_directories(c.sweep);
}

}  // namespace resgd
