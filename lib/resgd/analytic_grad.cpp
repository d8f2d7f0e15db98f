// Hand-derived gradients: DESIGN.md, "Hand-derived gradients".
#include "resgd/analytic_grad.h"

namespace resgd {

LossAndGradients autograd_gradients(ResidualTransformerImpl& model, const torch::Tensor& X,
                                    const torch::Tensor& Y, const std::string& loss) {
  LossAndGradients out;
  out.trace = model.trace(X);
  out.loss = objective(out.trace.output, Y, loss);
  out.grads = torch::autograd::grad({out.loss}, model.parameters());
  out.loss = out.loss.detach();
  return out;
}

LossAndGradients analytic_gradients(ResidualTransformerImpl&, const torch::Tensor&,
                                    const torch::Tensor&, const std::string&) {
  TORCH_CHECK(false, "analytic gradients are not implemented yet");
}

}  // namespace resgd
