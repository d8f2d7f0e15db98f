// A run's memory, estimated from its sizes, and what this machine has (cost.h).
#include "resgd/core/cost.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace resgd {
namespace {

/// A number from a /proc or /sys file: the value after `key` (a "Name:" line, in kB), or
/// the file's first word where `key` is empty. nullopt where it cannot be read.
std::optional<double> read_number(const std::string& path, const std::string& key = "") {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  while (std::getline(in, line)) {
    if (!key.empty() && line.rfind(key, 0) != 0) continue;
    std::istringstream words(key.empty() ? line : line.substr(key.size()));
    double value = 0;
    if (!(words >> value)) return std::nullopt;
    return key.empty() ? value : value * 1024;  // /proc's "kB"
  }
  return std::nullopt;
}

/// The room left under a resource limit of this process, given what it uses of it now.
std::optional<double> room_under(int resource, std::optional<double> used) {
  rlimit limit{};
  if (getrlimit(resource, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<double>(limit.rlim_cur) - used.value_or(0);
}

double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

}  // namespace

double gd_step_flops(const ExperimentConfig& c) {
  const double tokens = double(c.data.num_samples) * double(c.data.seq_len);
  const double n = double(c.data.seq_len), d = double(c.data.dim), m = double(c.model.ffn_width);
  const double d_k = double(c.model.key_dim.value_or(c.data.dim));
  double total = 0;
  for (int64_t l = 0; l < c.model.layers; ++l) {
    const double out = double(l == c.model.layers - 1 ? c.data.target_dim : c.data.dim);
    const double f_QK = 2 * 2 * tokens * d * d_k;  // H W_Q and H W_K
    const double f_Z = 2 * tokens * n * d_k;       // Q K^T per sequence
    const double f_V = 2 * tokens * d * d;         // H W_V
    const double f_A = 2 * tokens * n * d;         // S V
    const double f_U = 2 * tokens * d * m;         // G W_1
    const double f_out = 2 * tokens * m * out;     // Phi W_2
    const double forward = f_QK + f_Z + f_V + f_A + f_U + f_out;
    // Backward: each product yields the gradients of both factors, except that the first
    // block needs no gradient with respect to X (in H W_Q, H W_K, H W_V).
    total += forward + 2 * forward - (l == 0 ? f_QK + f_V : 0.0);
  }
  return total;
}

double output_count(const ExperimentConfig& c) {
  return double(c.data.num_samples) * double(c.model.readout == Readout::mean ? 1 : c.data.seq_len) *
         double(c.data.target_dim);
}

double parameter_count(const ExperimentConfig& c) {
  const double d = double(c.data.dim), d_k = double(c.model.key_dim.value_or(c.data.dim));
  const double m = double(c.model.ffn_width), L = double(c.model.layers);
  return L * (2 * d * d_k + d * d + d * m) + (L - 1) * m * d + m * double(c.data.target_dim);
}

void check_linearized(const ExperimentConfig& c) {
  // K, built once at theta_0 in float64: for the linearized trajectory, and for a step
  // size stated against the NTK's edge.
  for (const char* key : {"diagnostics.linearized", "train.lr_edge"}) {
    const bool builds = std::string(key) == "train.lr_edge" ? c.train.lr_edge == LrEdge::ntk : c.diagnostics.linearized;
    if (!builds) continue;
    const auto origin = c.origins.find(key);
    const std::string at = origin == c.origins.end() ? "default" : origin->second.str();
    const double R = output_count(c), P = parameter_count(c);
    if (R > kLinearizedMaxOutputs)
      throw ConfigError(
          fmt::format("{}: {}: its kernel K would be {:.0f} x {:.0f} (R = {} outputs: "
                      "N n d_y, or N d_y with the mean readout), {:.3g} GiB, more than the {:.0f} outputs "
                      "it takes; fewer samples, tokens or target features, or the mean readout",
                      at, key, R, R, R, gib(8 * R * R * 3), kLinearizedMaxOutputs));
    if (R * P > double(c.diagnostics.ntk_max_entries))
      throw ConfigError(
          fmt::format("{}: {}: its Jacobian would have {:.3g} entries ({:.0f} outputs x "
                      "{:.0f} parameters, {:.3g} GiB), above diagnostics.ntk_max_entries = {}",
                      at, key, R * P, R, P, gib(8 * R * P), c.diagnostics.ntk_max_entries));
  }
}

double MemoryEstimate::bytes() const {
  double total = 0;
  for (const auto& term : terms) total += term.bytes;
  return total;
}

const MemoryTerm& MemoryEstimate::largest() const {
  return *std::max_element(terms.begin(), terms.end(),
                           [](const MemoryTerm& a, const MemoryTerm& b) { return a.bytes < b.bytes; });
}

MemoryEstimate estimate_memory(const ExperimentConfig& c) {
  const double N = double(c.data.num_samples), n = double(c.data.seq_len), d = double(c.data.dim);
  const double d_k = double(c.model.key_dim.value_or(c.data.dim)), heads = double(c.model.heads);
  const double m = double(c.model.ffn_width), d_y = double(c.data.target_dim), L = double(c.model.layers);
  const double item = c.dtype == Dtype::float32 ? 4 : 8;  // the run's tensors; the diagnostics work in float64
  const double tokens = N * n;
  const double outputs = N * (c.model.readout == Readout::mean ? 1 : n) * d_y;
  const double params = parameter_count(c);
  const std::string N_key = "data.num_samples", n_key = "data.seq_len";
  MemoryEstimate e;
  // Activations: each block's trace and the gradients of its tensors; x 2 with the tuned
  // backend, whose diagnosis worker holds one step's trace while the next step makes its own.
  const double traces = (c.compute.backend == Backend::tuned ? 2 : 1) * L * item;
  e.terms.push_back({"the attention scores and their gradients (3 N h n^2 per block)",
                     traces * 3 * heads * N * n * n,
                     {N_key, n_key, "model.attention.heads", "model.layers"}});
  e.terms.push_back({"the queries and keys and their gradients (4 N n d_k per block)",
                     traces * 4 * tokens * d_k,
                     {"model.key_dim", N_key, n_key, "model.layers"}});
  e.terms.push_back({"the values, attention outputs and their gradients (6 N n d per block)",
                     traces * 6 * tokens * d,
                     {"data.dim", N_key, n_key, "model.layers"}});
  e.terms.push_back({"the FFN's activations and their gradient (3 N n m per block)",
                     traces * 3 * tokens * m,
                     {"model.ffn_width", N_key, n_key, "model.layers"}});
  e.terms.push_back({"the data and the outputs (N n (d + 2 d_y))",
                     item * tokens * (d + 2 * d_y),
                     {N_key, n_key, "data.dim", "data.target_dim"}});
  // theta, its gradient, theta_0, the update's and a checkpoint's copies
  e.terms.push_back({"the parameters, their gradients and copies (5 P)",
                     5 * item * params,
                     {"model.ffn_width", "data.dim", "model.key_dim", "model.layers", "data.target_dim"}});
  // The spectra of G, A and the stacked G, and of the features Phi, in float64, with a
  // QR's triangle of the features.
  const double short_side = std::min(tokens, m);
  e.terms.push_back({"the diagnostics' float64 copies (N n (3 d + m) + min(N n, m)^2)",
                     8 * (tokens * (3 * d + m) + short_side * short_side),
                     {"model.ffn_width", N_key, n_key, "data.dim"}});
  // J (outputs x P) and J J^T; a Jacobian above ntk_max_entries is never built (the column
  // is NaN), so neither is its Gram matrix.
  if (c.diagnostics.ntk && outputs * params <= double(c.diagnostics.ntk_max_entries))
    e.terms.push_back({"the NTK's Jacobian and Gram matrix (R P + 2 R^2, R outputs)",
                       item * (outputs * params + 2 * outputs * outputs),
                       {N_key, n_key, "data.target_dim", "diagnostics.ntk_max_entries"}});
  if (c.diagnostics.linearized || c.train.lr_edge == LrEdge::ntk)  // once, at the start: J, K, its eigenvectors
    e.terms.push_back(
        {"the NTK's Jacobian, kernel and eigenvectors at theta_0 (R P + 3 R^2)",
         8 * (outputs * params + 3 * outputs * outputs),
         {N_key, n_key, "data.target_dim", c.diagnostics.linearized ? "diagnostics.linearized" : "train.lr_edge"}});
  if (c.diagnostics.sharpness)  // Lanczos vectors (up to 101 rows of P), and the double-backward graph
    e.terms.push_back({"the sharpness's Lanczos vectors and double-backward graph",
                       item * 101 * params + traces * tokens * (3 * heads * n + 4 * d_k + 6 * d + 3 * m),
                       {"model.ffn_width", N_key, n_key, "model.layers"}});
  return e;
}

std::optional<double> available_memory() {
  std::vector<double> rooms;
  if (auto v = read_number("/proc/meminfo", "MemAvailable:")) rooms.push_back(*v);
  // cgroup v2, then v1: a container's limit, less what the cgroup uses already.
  for (const auto& [limit_file, usage_file] :
       {std::pair<const char*, const char*>{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const auto limit = read_number(limit_file), usage = read_number(usage_file);
    if (limit && usage && *limit < 1e18) rooms.push_back(*limit - *usage);  // v1 says "no limit" with 2^63
  }
  if (auto v = room_under(RLIMIT_AS, read_number("/proc/self/status", "VmSize:"))) rooms.push_back(*v);
  if (auto v = room_under(RLIMIT_DATA, read_number("/proc/self/status", "VmData:"))) rooms.push_back(*v);
  if (rooms.empty()) return std::nullopt;
  return std::max(0.0, *std::min_element(rooms.begin(), rooms.end()));
}

void check_memory(const ExperimentConfig& config, bool device_is_cpu) {
  check_linearized(config);
  if (!device_is_cpu) return;
  const MemoryEstimate estimate = estimate_memory(config);
  const auto available = available_memory();
  if (!available || estimate.bytes() <= *available) return;
  const MemoryTerm& largest = estimate.largest();
  // The key to point at: of the largest term's keys that the experiment set, the largest
  // value (the size that grew); the first key where none was set.
  std::string key = largest.keys.front();
  double key_value = -1;
  for (const auto& k : largest.keys) {
    const auto origin = config.origins.find(k);
    if (origin == config.origins.end()) continue;
    const std::string text = value_text(config, k);
    double value = 0;
    try {
      value = std::stod(text);
    } catch (const std::exception&) {
      continue;
    }
    if (value > key_value) key = k, key_value = value;
  }
  const auto origin = config.origins.find(key);
  throw ConfigError(fmt::format(
      "{}: {}: the run would need about {:.3g} GiB of memory, most of it {} ({:.3g} GiB), but {:.3g} GiB are "
      "available to this process; reduce the sizes (data.num_samples, data.seq_len, data.dim, model.key_dim, "
      "model.ffn_width, model.layers) or run on a machine with more memory",
      origin == config.origins.end() ? std::string("default") : origin->second.str(), key, gib(estimate.bytes()),
      largest.what, gib(largest.bytes), gib(*available)));
}

}  // namespace resgd
