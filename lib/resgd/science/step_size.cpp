// The step size from the curvature at theta_0 (step_size.h).
#include "resgd/science/step_size.h"

#include <fmt/format.h>

#include <iostream>

#include "resgd/core/files.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/linearized.h"
#include "resgd/science/training.h"

namespace resgd {

StepSize step_size(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                   const std::atomic<bool>* stop) {
  const TrainConfig& tc = config.train;
  if (tc.lr_edge == LrEdge::none) return {tc.lr, std::nullopt};
  double edge = 0;
  if (tc.lr_edge == LrEdge::ntk) {
    std::vector<torch::Tensor> theta_0;
    for (const auto& p : model.parameters()) theta_0.push_back(p.detach().clone());
    const std::vector<size_t> trained = trained_parameters(model, tc.freeze);
    edge = LinearizedLoss(model, data.X, data.Y, tc.loss, 1.0, theta_0, stop, &trained).edge();
  } else {
    const LargestEigenvalue top = sharpness(model, data.X, data.Y, tc.loss);
    if (!top.converged || !(top.value > 0))
      throw IoError(
          fmt::format("train.lr_edge: sharpness: the Hessian's largest eigenvalue at initialization did "
                      "not converge (estimate {:.6g}, residual {:.3g} after {} products); state train.lr "
                      "as a number, or as a fraction of lr_edge: ntk",
                      top.ritz_value, top.residual, top.iterations));
    edge = 2 / top.value;
  }
  if (tc.lr > 1)
    std::cerr << fmt::format("warning: train.lr = {:.6g} times the {} edge ({:.6g}) is a step of {:.6g}, past it\n",
                             tc.lr, to_string(tc.lr_edge), edge, tc.lr * edge);
  return {tc.lr * edge, edge};
}

}  // namespace resgd
