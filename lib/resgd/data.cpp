// Data sets: gaussian tokens with random, teacher or linear targets.
#include "resgd/data.h"

#include <cmath>

#include "resgd/model.h"

namespace resgd {
namespace {

const auto kFloat64 = torch::TensorOptions().dtype(torch::kFloat64);

/// Tokens i.i.d. N(0, 1/d), optionally scaled to unit norm. (N, n, d)
torch::Tensor gaussian_tokens(const DataConfig& data, int64_t seed) {
  auto generator = make_generator(seed, "data.X");
  auto X = torch::randn({data.num_samples, data.seq_len, data.dim}, generator, kFloat64)
               .div_(std::sqrt(static_cast<double>(data.dim)));
  if (data.normalize_tokens) X = X / X.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-300);
  return X;
}

/// The teacher: a random model of the student's shape with its own fixed switches (both
/// residuals on, default initialization, its own stream), so that changing the student's
/// residuals, init or step size never changes the targets.
torch::Tensor teacher_targets(const ExperimentConfig& config, const torch::Tensor& X) {
  ModelOptions options = model_options(config);
  options.block.gamma_a = 1.0;
  options.block.gamma_f = 1.0;
  options.block.init = InitConfig{};
  options.init_stream = "data.teacher";
  ResidualTransformer teacher(options);
  torch::NoGradGuard no_grad;
  return teacher->forward(X);
}

}  // namespace

Dataset make_dataset(const ExperimentConfig& config, torch::Device device, torch::Dtype dtype) {
  const DataConfig& data = config.data;
  TORCH_CHECK(data.kind == "gaussian", "data kind '", data.kind, "' is not available");
  const bool pooled = config.model.readout == "mean";
  Dataset out;
  torch::Tensor X = gaussian_tokens(data, config.seed);
  torch::Tensor Y;
  auto noise = make_generator(config.seed, "data.Y");
  if (data.target == "random") {
    const double std = data.target_std.value_or(1.0 / std::sqrt(static_cast<double>(data.target_dim)));
    std::vector<int64_t> shape = {data.num_samples, data.seq_len, data.target_dim};
    if (pooled) shape = {data.num_samples, data.target_dim};
    Y = torch::randn(shape, noise, kFloat64).mul_(std);
  } else {
    if (data.target == "teacher") {
      Y = teacher_targets(config, X);
    } else {  // linear: X B, B of shape (d, d_y), entries N(0, 1/d)
      auto B = torch::randn({data.dim, data.target_dim}, noise, kFloat64)
                   .div_(std::sqrt(static_cast<double>(data.dim)));
      Y = X.matmul(B);
      if (pooled) Y = Y.mean(1);
    }
    if (data.noise > 0) Y = Y + torch::randn(Y.sizes(), noise, kFloat64).mul_(data.noise);
  }
  out.X = X.to(device, dtype);
  out.Y = Y.to(device, dtype);
  return out;
}

}  // namespace resgd
