// The linearized trajectory: the loss GD would have on the model linearized at its
// initialization, f(theta) ~ f(theta_0) + J (theta - theta_0), beside the real one
// (docs/design.md, "The linearized trajectory"). With K = J J^T = U diag(lambda) U^T and
// r_0 = f(theta_0) - Y, GD with step lr on the loss (c / 2) ||r||^2 (c = 1 for the sum,
// 1 / N for the mean) moves the residual as r_t = U (1 - lr c lambda)^t U^T r_0, so
//   loss_lin(t) = (c / 2) sum_i (1 - lr c lambda_i)^(2t) (U^T r_0)_i^2,
// from one eigendecomposition of K at the start.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/science/model.h"

namespace resgd {

class LinearizedLoss {
 public:
  /// Off: no value.
  LinearizedLoss() = default;
  /// At theta_0 (copied into the model for the measurement, its parameters restored after):
  /// K from the Jacobian of the flattened outputs (ntk_gram), in float64. A set `stop`
  /// ends the Jacobian between two rows (Stopped); its eigendecomposition, one LAPACK
  /// call, runs to its end.
  /// `trained`: the parameters GD moves (train.freeze holds the others), by index; K is then
  /// their kernel alone. Null: every parameter.
  LinearizedLoss(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y, Loss loss, double lr,
                 const std::vector<torch::Tensor>& theta_0, const std::atomic<bool>* stop = nullptr,
                 const std::vector<size_t>* trained = nullptr);

  bool on() const { return !eigenvalues_.empty(); }
  /// loss_lin at iteration t (inf where the linearized GD has blown up).
  double at(int64_t t) const;
  /// K's largest and smallest eigenvalue: GD on the linearized model is stable while
  /// lr c lambda_max < 2.
  double lambda_max() const { return eigenvalues_.back(); }
  double lambda_min() const { return eigenvalues_.front(); }
  /// The largest lr at which GD on the linearized model is stable: 2 / (c lambda_max).
  double edge() const { return 2 / (scale_ * lambda_max()); }

 private:
  std::vector<double> eigenvalues_;  // of K, ascending
  std::vector<double> weights_;      // (U^T r_0)_i^2
  double scale_ = 1;                 // c
  double lr_ = 0;
};

}  // namespace resgd
