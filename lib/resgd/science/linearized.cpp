// The loss of GD on the linearized model (linearized.h).
#include "resgd/science/linearized.h"

#include <cmath>

#include "resgd/science/diagnostics.h"

namespace resgd {

LinearizedLoss::LinearizedLoss(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                               Loss loss, double lr, const std::vector<torch::Tensor>& theta_0,
                               const std::atomic<bool>* stop, const std::vector<size_t>* trained)
    : scale_(loss == Loss::mean ? 1.0 / static_cast<double>(Y.size(0)) : 1.0), lr_(lr) {
  auto params = model.parameters();
  TORCH_CHECK(params.size() == theta_0.size(), "linearized: ", theta_0.size(), " initial parameters for ",
              params.size());
  std::vector<torch::Tensor> now;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      now.push_back(params[i].detach().clone());
      params[i].copy_(theta_0[i]);
    }
  }
  torch::Tensor K;
  try {
    K = ntk_gram(model, X, stop, trained).to(torch::kCPU, torch::kFloat64);  // (R, R)
  } catch (const Stopped&) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(now[i]);  // as it was given
    throw;
  }
  torch::Tensor r0;
  {
    torch::NoGradGuard no_grad;
    r0 = (model.forward(X) - Y).flatten().to(torch::kCPU, torch::kFloat64);  // the rows of K, in order
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(now[i]);
  }
  const auto [lambda, U] = torch::linalg::eigh(K, "L");
  const torch::Tensor w = U.t().matmul(r0).pow(2);
  eigenvalues_.assign(lambda.data_ptr<double>(), lambda.data_ptr<double>() + lambda.numel());
  weights_.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
}

double LinearizedLoss::at(int64_t t) const {
  double sum = 0;
  for (size_t i = 0; i < eigenvalues_.size(); ++i) {
    const double step = 1 - lr_ * scale_ * eigenvalues_[i];  // the factor r's i-th component takes per step
    sum += weights_[i] * std::pow(step * step, static_cast<double>(t));
  }
  return 0.5 * scale_ * sum;
}

}  // namespace resgd
