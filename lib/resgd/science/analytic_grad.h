// Hand-derived gradients of the residual Transformer: docs/design.md, "Hand-derived gradients".
// block_backward mirrors ResidualBlockImpl::trace line by line, in reverse, and reuses the
// forward trace as its cache; no autograd inside.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "resgd/science/model.h"

namespace resgd {

/// The loss at the current parameters and its gradient for every parameter, in the
/// model's registration order (blocks.0.W_Q, blocks.0.W_K, ..., blocks.<L-1>.W_2).
struct LossAndGradients {
  torch::Tensor loss;                // 0-d
  std::vector<torch::Tensor> grads;  // same shapes as the parameters
  ForwardTrace trace;                // the forward pass they came from
};

/// Gradients of one block given dL/dH_out, plus dL/dH_in for the block below.
struct BlockGradients {
  torch::Tensor dW_Q, dW_K, dW_V, dW_1, dW_2;
  torch::Tensor dH_in;  // (N, n, d); undefined when not asked for
};

/// sigma'(U), matching PyTorch's own derivative exactly (relu'(0) = 0, ...).
torch::Tensor activation_derivative(const torch::Tensor& U, Activation activation, double leaky_slope);

/// dL/dU = dL/dPhi * sigma'(U), written over dPhi (one pass for relu), which it returns.
torch::Tensor& activation_backward_(torch::Tensor& dPhi, const torch::Tensor& U, Activation activation,
                                    double leaky_slope);

/// dL/dX from dL/dY for Y = layer_norm(X) (model.h): rstd (dY - mean(dY) - Y mean(dY Y)),
/// each mean over a token's features.
torch::Tensor layer_norm_backward(const torch::Tensor& dY, const LayerNormed& Y);

/// Forward pass of one block with its cache: the trace of ResidualBlockImpl (model.cpp),
/// so the forward maths exists once. H_in: (N, n, d).
BlockTrace block_forward(ResidualBlockImpl& block, const torch::Tensor& H_in);

/// Backward pass of one block from its forward cache. dH_out: (N, n, out_dim).
/// The first block skips dH_in (`need_dH_in` false): X takes no gradient.
BlockGradients block_backward(const ResidualBlockImpl& block, const BlockTrace& cache, const torch::Tensor& dH_out,
                              bool need_dH_in = true);

/// Loss and gradients by the hand-derived backward pass. X: (N, n, d); Y as the output.
LossAndGradients analytic_gradients(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                    Loss loss);

/// Loss and gradients by autograd (the reference).
LossAndGradients autograd_gradients(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                    Loss loss);

}  // namespace resgd
