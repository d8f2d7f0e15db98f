// Data sets (docs/design.md, "Data"): gaussian tokens with random, teacher or linear
// targets; the UCI digits; X and Y from a .pt file.
#include "resgd/science/data.h"

#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "resgd/core/files.h"
#include "resgd/science/model.h"
#include "resgd/science/tensor_io.h"

// Where the project's data/ folder was at build time (lib/CMakeLists.txt sets it).

namespace resgd {
namespace fs = std::filesystem;
namespace {

const auto kFloat64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr int64_t kDigitsSide = 8;  // 8 rows (tokens) of 8 pixels (features)
constexpr int64_t kDigitsMaxPixel = 16;
constexpr int64_t kDigitsClasses = 10;

/// Tokens i.i.d. N(0, 1/d), optionally scaled to unit norm. (N, n, d)
torch::Tensor gaussian_tokens(const DataConfig& data, int64_t seed) {
  auto generator = make_generator(seed, "data.X");
  auto X = torch::randn({data.num_samples, data.seq_len, data.dim}, generator, kFloat64)
               .div_(std::sqrt(static_cast<double>(data.dim)));
  if (data.normalize_tokens) X = X / X.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-300);
  return X;
}

/// The teacher: a random model of the student's shape (its sizes, depth and readout) with
/// its own fixed switches: both residuals on, relu, one attention head with the default
/// temperature and no mask, no layer norm, output scale 1, default initialization, its own
/// stream. Changing any of the student's switches or its step size never changes the
/// targets, so a sweep over one compares models on the same data.
torch::Tensor teacher_targets(const ExperimentConfig& config, const torch::Tensor& X) {
  // Its switches are set in its configuration, so the defaults that follow them (the
  // temperature follows the heads) follow them here too.
  ExperimentConfig teacher_config = config;
  ModelConfig& m = teacher_config.model;
  m.residual_attention.value = 1.0;
  m.residual_ffn.value = 1.0;
  m.activation = Activation::relu;
  m.heads = 1;
  m.temperature.reset();
  m.causal = false;
  m.layer_norm = LayerNorm::none;
  m.output_scale = 1.0;
  m.init = InitConfig{};
  ModelOptions options = model_options(teacher_config);
  options.init_stream = "data.teacher";
  ResidualTransformer teacher(options);
  torch::NoGradGuard no_grad;
  return teacher->forward(X);
}

/// Gaussian tokens with random, teacher or linear targets, on the CPU in float64.
Dataset gaussian_dataset(const ExperimentConfig& config) {
  const DataConfig& data = config.data;
  const bool pooled = config.model.readout == Readout::mean;
  torch::Tensor X = gaussian_tokens(data, config.seed);
  torch::Tensor Y;
  auto noise = make_generator(config.seed, "data.Y");
  if (data.target == Target::random) {
    const double std = data.target_std.value_or(1.0 / std::sqrt(static_cast<double>(data.target_dim)));
    std::vector<int64_t> shape = {data.num_samples, data.seq_len, data.target_dim};
    if (pooled) shape = {data.num_samples, data.target_dim};
    Y = torch::randn(shape, noise, kFloat64).mul_(std);
  } else {
    if (data.target == Target::teacher) {
      Y = teacher_targets(config, X);
    } else {  // linear: X B, B of shape (d, d_y), entries N(0, 1/d)
      auto B =
          torch::randn({data.dim, data.target_dim}, noise, kFloat64).div_(std::sqrt(static_cast<double>(data.dim)));
      Y = X.matmul(B);
      if (pooled) Y = Y.mean(1);
    }
    if (data.noise > 0) Y = Y + torch::randn(Y.sizes(), noise, kFloat64).mul_(data.noise);
  }
  return {X, Y};
}

/// The config disagrees with a data file: a ConfigError at the place the key was set.
[[noreturn]] void config_mismatch(const ExperimentConfig& config, const std::string& key, const std::string& what) {
  const auto it = config.origins.find(key);
  throw ConfigError(fmt::format("{}: {}: {}", it == config.origins.end() ? "default" : it->second.str(), key, what));
}

void check_num_samples(const ExperimentConfig& config, int64_t available, const fs::path& path) {
  if (config.data.num_samples > available)
    config_mismatch(
        config, "data.num_samples",
        fmt::format("{} requested, but {} holds only {}", config.data.num_samples, path.string(), available));
}

/// The first num_samples digits; targets one-hot (d_y 10) or the label (d_y 1), per token
/// for the tokens readout.
Dataset digits_dataset(const ExperimentConfig& config) {
  const DataConfig& data = config.data;
  const fs::path path = digits_path(data);
  const Digits digits = load_digits(path);
  check_num_samples(config, digits.labels.size(0), path);
  const int64_t N = data.num_samples;
  const torch::Tensor labels = digits.labels.slice(0, 0, N);
  // validate() admits only these two target widths for digits.
  torch::Tensor Y = data.target_dim == kDigitsClasses
                        ? torch::one_hot(labels, kDigitsClasses).to(torch::kFloat64)  // (N, 10)
                        : labels.to(torch::kFloat64).unsqueeze(1);                    // (N, 1)
  if (config.model.readout == Readout::tokens)
    Y = Y.unsqueeze(1).expand({N, kDigitsSide, data.target_dim}).contiguous();
  return {digits.images.slice(0, 0, N), Y};
}

/// X and Y of a torch.save file's `tensors`, checked against each other and the config.
Dataset checked_tensors(const ExperimentConfig& config, const std::map<std::string, torch::Tensor>& tensors) {
  const DataConfig& data = config.data;
  const fs::path path = data.path.value_or("");  // validate() requires data.path for tensors
  auto fail = [&](const std::string& what) {
    throw IoError(
        fmt::format("{}: {}; expected a file written by torch.save({{'X': X, 'Y': Y}}) with X of shape "
                    "(N, n, d) and Y of shape (N, n, d_y) for the tokens readout or (N, d_y) for mean",
                    path.string(), what));
  };
  auto get = [&](const char* name) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) fail(fmt::format("no tensor '{}'", name));
    const torch::Tensor& t = it->second;
    if (!t.is_floating_point())
      fail(fmt::format("{} has dtype {}, not a floating-point type", name, c10::toString(t.scalar_type())));
    if (!torch::isfinite(t).all().item<bool>()) fail(fmt::format("{} contains NaN or inf", name));
    return t.to(torch::kFloat64);
  };
  const torch::Tensor X = get("X"), Y = get("Y");
  const bool pooled = config.model.readout == Readout::mean;
  if (X.dim() != 3) fail(fmt::format("X has shape {}", c10::str(X.sizes())));
  if (Y.dim() != (pooled ? 2 : 3) || Y.size(0) != X.size(0) || (!pooled && Y.size(1) != X.size(1)))
    fail(fmt::format("Y has shape {} with X of shape {} and model.readout {}", c10::str(Y.sizes()), c10::str(X.sizes()),
                     to_string(config.model.readout)));
  const std::tuple<const char*, int64_t, int64_t, const char*> sizes[] = {
      {"data.seq_len", data.seq_len, X.size(1), "n"},
      {"data.dim", data.dim, X.size(2), "d"},
      {"data.target_dim", data.target_dim, Y.size(-1), "d_y"}};
  for (const auto& [key, configured, found, symbol] : sizes)
    if (configured != found)
      config_mismatch(config, key,
                      fmt::format("is {}, but {} has {} = {} (X {}, Y {}); set {}: {}", configured, path.string(),
                                  symbol, found, c10::str(X.sizes()), c10::str(Y.sizes()), key, found));
  check_num_samples(config, X.size(0), path);
  return {X.slice(0, 0, data.num_samples), Y.slice(0, 0, data.num_samples)};
}

Dataset tensors_dataset(const ExperimentConfig& config) {
  return checked_tensors(config, load_tensors(config.data.path.value_or("")));
}

}  // namespace

namespace {

/// A data.path that is not a file is the configuration's mistake: refused where it was set,
/// with the path as resolved (an experiment file's relative path is to the file's folder).
void require_data_file(const ExperimentConfig& config) {
  if (!config.data.path) return;
  std::error_code ec;
  if (fs::exists(*config.data.path, ec)) return;  // a directory or FIFO is load's error, with the path
  const auto origin = config.origins.find("data.path");
  const bool from_file = origin != config.origins.end() && origin->second.line > 0;
  throw ConfigError(fmt::format("{}data.path: {}: no such file{}",
                                origin == config.origins.end() ? "" : origin->second.str() + ": ", *config.data.path,
                                from_file ? " (a relative data.path is read from the experiment file's folder)"
                                          : " (a relative --set data.path is read from the working directory)"));
}

}  // namespace

void forget_tensors_sizes(ExperimentConfig& config) {
  if (config.data.kind != DataKind::tensors) return;
  for (const char* key : {"data.num_samples", "data.seq_len", "data.dim", "data.target_dim"}) config.origins.erase(key);
}

void read_data_sizes(ExperimentConfig& config) {
  DataConfig& data = config.data;
  require_data_file(config);
  if (data.kind == DataKind::digits) {  // a file the run could not read is refused now, as for tensors
    const fs::path path = digits_path(data);
    check_num_samples(config, load_digits(path).labels.size(0), path);
    return;
  }
  if (data.kind != DataKind::tensors || !data.path) return;
  const auto tensors = load_tensors(*data.path);
  const auto X = tensors.find("X"), Y = tensors.find("Y");
  if (X != tensors.end() && Y != tensors.end() && X->second.dim() == 3 && Y->second.dim() >= 2) {
    const std::tuple<const char*, int64_t&, int64_t> sizes[] = {
        {"data.num_samples", data.num_samples, X->second.size(0)},
        {"data.seq_len", data.seq_len, X->second.size(1)},
        {"data.dim", data.dim, X->second.size(2)},
        {"data.target_dim", data.target_dim, Y->second.size(-1)}};
    for (const auto& [key, size, found] : sizes) {
      if (config.origins.count(key) || found <= 0) continue;  // an empty file is checked_tensors' error
      size = found;
      config.origins[key] = Origin{*data.path};  // set now, by the file
    }
  }
  validate(config);                  // the size limits, now with the file's sizes
  checked_tensors(config, tensors);  // and a file the run would refuse, refused now
}

fs::path bundled_data_dir() {
  const fs::path exe = this_executable();
  return exe.has_parent_path() ? (exe.parent_path().parent_path() / "share" / "resgd").lexically_normal()
                               : fs::path("share/resgd");
}

fs::path digits_path(const DataConfig& data) {
  if (data.path) return *data.path;
  const fs::path bundled = bundled_data_dir() / "digits.csv.gz";
  if (fs::exists(bundled)) return bundled;
  throw IoError(
      fmt::format("{}: the bundled digits file is not there (data.path is null); set data.path to a copy "
                  "of data/digits.csv.gz, or reinstall resgd",
                  bundled.string()));
}

Digits load_digits(const fs::path& path) {
  // gzread also reads an uncompressed file as it is; a regular file only (a FIFO would
  // block the read forever).
  const int fd = open_regular_file(path);
  gzFile file = gzdopen(fd, "rb");
  if (!file) {
    ::close(fd);
    throw IoError(fmt::format("{}: cannot open the digits file: {}", path.string(), std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  int got = 0;
  while ((got = gzread(file, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(got));
  int code = Z_OK;
  const std::string zlib_message = got < 0 ? gzerror(file, &code) : "";
  gzclose(file);
  if (got < 0) throw IoError(fmt::format("{}: cannot decompress: {}", path.string(), zlib_message));

  constexpr int64_t kPixels = kDigitsSide * kDigitsSide;
  std::vector<double> pixels;
  std::vector<int64_t> labels;
  std::istringstream lines(text);
  std::string line;
  for (int64_t line_no = 1; std::getline(lines, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<int64_t> values;
    std::istringstream cells(line);
    bool ok = true;
    for (std::string cell; ok && std::getline(cells, cell, ',');) {
      char* end = nullptr;
      values.push_back(std::strtoll(cell.c_str(), &end, 10));
      ok = !cell.empty() && *end == '\0';
    }
    for (int64_t i = 0; ok && i < static_cast<int64_t>(values.size()); ++i)
      ok = values[static_cast<size_t>(i)] >= 0 &&
           values[static_cast<size_t>(i)] <= (i < kPixels ? kDigitsMaxPixel : kDigitsClasses - 1);
    if (!ok || static_cast<int64_t>(values.size()) != kPixels + 1)
      throw IoError(fmt::format("{}:{}: expected {} integers (64 pixels 0..16, then the label 0..9), got '{}'",
                                path.string(), line_no, kPixels + 1, line.substr(0, 80)));
    pixels.insert(pixels.end(), values.begin(), values.end() - 1);
    labels.push_back(values.back());
  }
  if (labels.empty()) throw IoError(fmt::format("{}: no images in the digits file", path.string()));
  const auto N = static_cast<int64_t>(labels.size());
  return {torch::tensor(pixels, kFloat64).view({N, kDigitsSide, kDigitsSide}).div_(double(kDigitsMaxPixel)),
          torch::tensor(labels, torch::kInt64)};
}

uint64_t data_fingerprint(const Dataset& data) {
  uint64_t hash = 14695981039346656037ULL;
  auto mix = [&](const void* bytes, size_t count) {
    const auto* p = static_cast<const unsigned char*>(bytes);
    for (size_t i = 0; i < count; ++i) hash = (hash ^ p[i]) * 1099511628211ULL;
  };
  for (const torch::Tensor& t : {data.X, data.Y}) {
    const torch::Tensor host = t.to(torch::kCPU).contiguous();
    for (int64_t size : host.sizes()) mix(&size, sizeof size);
    const auto dtype = static_cast<int>(host.scalar_type());
    mix(&dtype, sizeof dtype);
    mix(host.data_ptr(), host.nbytes());
  }
  return hash;
}

Dataset make_dataset(const ExperimentConfig& config, torch::Device device, torch::Dtype dtype) {
  const DataKind kind = config.data.kind;
  Dataset out = kind == DataKind::digits    ? digits_dataset(config)
                : kind == DataKind::tensors ? tensors_dataset(config)
                                            : gaussian_dataset(config);
  out.X = out.X.to(device, dtype);
  out.Y = out.Y.to(device, dtype);
  return out;
}

}  // namespace resgd
