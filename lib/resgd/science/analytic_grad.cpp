// Hand-derived gradients: docs/design.md, "Hand-derived gradients".
// block_backward walks ResidualBlockImpl::trace (model.cpp) in reverse; each step restates
// the forward line it differentiates. Everything is batched over the N samples: a (N, n, .)
// tensor holds one matrix per sample, and a weight's gradient sums over samples.
#include "resgd/science/analytic_grad.h"

#include <cmath>

#include "resgd/compute/compute.h"

namespace resgd {
namespace {

// sum_i X_i^T Y_i over the batch: (N, n, a), (N, n, b) -> (a, b).
torch::Tensor batch_outer(const torch::Tensor& X, const torch::Tensor& Y) {
  return compute::mm(X.reshape({-1, X.size(-1)}).t(), Y.reshape({-1, Y.size(-1)}));
}

}  // namespace

torch::Tensor activation_derivative(const torch::Tensor& U, Activation activation, double leaky_slope) {
  // Each branch is PyTorch's own backward formula, so that sigma' agrees with autograd to
  // the last bit at kinks and thresholds, not just almost everywhere.
  switch (activation) {
    case Activation::relu:  // threshold_backward: 0 where the output is <= 0, so relu'(0) = 0
      return (U > 0).to(U.scalar_type());
    case Activation::leaky_relu:  // leaky_relu_backward: x > 0 ? 1 : slope, so slope at 0
      return torch::where(U > 0, torch::ones_like(U), torch::full_like(U, leaky_slope));
    case Activation::gelu: {  // exact form: Phi(x) + x phi(x), phi the standard normal pdf
      const double inv_sqrt_2pi = 0.5 * M_2_SQRTPI * M_SQRT1_2;
      auto cdf = 0.5 * (1.0 + torch::erf(U * M_SQRT1_2));
      auto pdf = inv_sqrt_2pi * torch::exp(-0.5 * U * U);
      return cdf + U * pdf;
    }
    case Activation::softplus: {  // beta 1, threshold 20: z / (z + 1) with z = e^x; 1 above 20
      auto z = torch::exp(U);
      return torch::where(U > 20.0, torch::ones_like(U), z / (z + 1.0));
    }
    case Activation::tanh: {  // tanh_backward: 1 - tanh(x)^2
      auto t = torch::tanh(U);
      return 1.0 - t * t;
    }
    case Activation::identity: return torch::ones_like(U);
  }
  TORCH_CHECK(false, "unreachable activation");
}

torch::Tensor layer_norm_backward(const torch::Tensor& dY, const LayerNormed& Y) {
  const auto dY_mean = dY.mean(-1, /*keepdim=*/true);
  const auto dY_Y_mean = (dY * Y.value).mean(-1, /*keepdim=*/true);
  return (dY - dY_mean - Y.value * dY_Y_mean) * Y.rstd;
}

BlockTrace block_forward(ResidualBlockImpl& block, const torch::Tensor& H_in) { return block.trace(H_in); }

torch::Tensor& activation_backward_(torch::Tensor& dPhi, const torch::Tensor& U, Activation activation,
                                    double leaky_slope) {
  // relu, the default, through PyTorch's own backward: one pass instead of three. In place,
  // because dPhi, just written, is in cache, and a fresh (N n) x m buffer would not be.
  if (activation == Activation::relu) return at::threshold_backward_out(dPhi, dPhi, U, 0);
  return dPhi.mul_(activation_derivative(U, activation, leaky_slope));
}

// clang-format off: the backward pass, its shapes aligned beside it
BlockGradients block_backward(const ResidualBlockImpl& block, const BlockTrace& cache, const torch::Tensor& dH_out,
                              bool need_dH_in) {
  const BlockOptions& o = block.options;
  const BlockTrace& t = cache;
  TORCH_CHECK(dH_out.sizes() == t.H_out.sizes(), "dH_out must have H_out's shape ", t.H_out.sizes(), ", got ",
              dH_out.sizes());
  const double c = o.output_scale, tau = o.temperature, gamma_f = block.ffn_residual();
  const int64_t N = dH_out.size(0), n = dH_out.size(1);
  auto tokens = [&](const torch::Tensor& M) { return M.reshape({N * n, M.size(-1)}); };  // (N n, .)
  auto per_sample = [&](const torch::Tensor& M) { return M.view({N, n, M.size(-1)}); };  // (N, n, .)
  BlockGradients g;

  // H_out = c Phi W_2 + gamma_f G
  g.dW_2 = batch_outer(t.Phi, dH_out);                                 // (m, out_dim)
  auto dPhi = per_sample(compute::mm(tokens(dH_out), block.W_2.t()));  // (N, n, m)
  if (c != 1.0) g.dW_2.mul_(c), dPhi.mul_(c);
  // Phi = sigma(U)
  const auto& dU = activation_backward_(dPhi, t.U, o.activation, o.leaky_slope);  // (N, n, m)
  // U = F W_1, F the FFN's input: G, or LN(G) under pre-LN
  const bool pre_ln = o.pre_layer_norm;
  g.dW_1 = batch_outer(t.ffn_input.value, dU);  // (d, m)
  // dG = dF + gamma_f dH_out: without LN, dF = dU W_1^T and one product does both terms
  auto dG =
      per_sample(gamma_f != 0.0 && !pre_ln ? compute::addmm(tokens(dH_out), tokens(dU), block.W_1.t(), gamma_f, 1.0)
                                           : compute::mm(tokens(dU), block.W_1.t()));  // (N, n, d)
  if (pre_ln) {                                                                        // F = LN(G)
    dG = layer_norm_backward(dG, t.ffn_input);
    if (gamma_f != 0.0) dG.add_(dH_out, gamma_f);
  }
  // G = gamma_a H_in + A; A = the heads' S_j V_j side by side, so head j's dA_j is its
  // columns of dA (per-head tensors: (N h, ., .), see BlockTrace)
  const int64_t h = o.heads;
  const auto dA = split_heads(dG, h);  // (N h, n, d/h)
  // A_j = S_j V_j
  auto dS = compute::bmm(dA, t.V.transpose(1, 2));                  // (N h, n, n)
  auto dV = merge_heads(compute::bmm(t.S.transpose(1, 2), dA), h);  // (N, n, d)
  // V = E W_V, E the attention's input: H_in, or LN(H_in) under pre-LN
  const auto& E = t.attention_input.value;  // (N, n, d)
  g.dW_V = batch_outer(E, dV);              // (d, d)
  // S = softmax_rows(Z): dZ = S * (dS - rowsum(dS * S)), PyTorch's own kernel. Masked
  // (future) entries have S = 0, so dZ = 0 there and the mask needs no branch.
  auto dZ = at::_softmax_backward_data(dS, t.S, -1, t.S.scalar_type());  // (N h, n, n)
  // Z = Q K^T / tau
  dZ.div_(tau);
  auto dQ = merge_heads(compute::bmm(dZ, t.K), h);                  // (N, n, d_k)
  auto dK = merge_heads(compute::bmm(dZ.transpose(1, 2), t.Q), h);  // (N, n, d_k)
  // Q = E W_Q, K = E W_K: dW_Q = sum_i E_i^T dZ_i K_i / tau = dP W_K, as in docs/design.md
  g.dW_Q = batch_outer(E, dQ);  // (d, d_k)
  g.dW_K = batch_outer(E, dK);  // (d, d_k)
  if (need_dH_in) {             // dH_in = gamma_a dG + dE, dE = dV W_V^T + dQ W_Q^T + dK W_K^T, accumulated
    // Without LN, E = H_in and the product starts from gamma_a dG; under pre-LN, dE goes
    // through LN's backward first and gamma_a dG is added after.
    auto dE = pre_ln ? compute::mm(tokens(dV), block.W_V.t())
                     : compute::addmm(tokens(dG), tokens(dV), block.W_V.t(), o.gamma_a, 1.0);
    compute::addmm_(compute::addmm_(dE, tokens(dQ), block.W_Q.t()), tokens(dK), block.W_K.t());
    g.dH_in = pre_ln ? layer_norm_backward(per_sample(dE), t.attention_input).add_(dG, o.gamma_a)
                     : per_sample(dE);  // (N, n, d)
  }
  return g;
}
// clang-format on

LossAndGradients analytic_gradients(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                    Loss loss) {
  torch::NoGradGuard no_grad;  // the forward pass only fills the cache; nothing is taped
  LossAndGradients out;
  out.trace = model.trace(X);
  const auto& Yhat = out.trace.output;
  out.loss = objective(Yhat, Y, loss);

  // L = 0.5 sum ||Yhat - Y||^2 (/ N for the mean loss)
  auto R = Yhat - Y;  // Yhat's shape
  if (loss == Loss::mean) R = R / static_cast<double>(Y.size(0));
  // Yhat = H^L (tokens) or mean_tokens(H^L): the mean spreads R / n over every token.
  const auto& H_L = out.trace.blocks.back().H_out;  // (N, n, d_y)
  torch::Tensor dH =
      model.options.readout == Readout::mean ? (R / static_cast<double>(H_L.size(1))).unsqueeze(1).expand_as(H_L) : R;

  const auto num_blocks = static_cast<int64_t>(model.blocks->size());
  std::vector<BlockGradients> per_block(static_cast<size_t>(num_blocks));
  for (int64_t l = num_blocks - 1; l >= 0; --l) {
    const auto idx = static_cast<size_t>(l);
    per_block[idx] =
        block_backward(*model.blocks[idx]->as<ResidualBlockImpl>(), out.trace.blocks[idx], dH, /*need_dH_in=*/l > 0);
    dH = per_block[idx].dH_in;  // the block below receives dL/dH^{l-1}
  }
  for (auto& g : per_block) {  // registration order: W_Q, W_K, W_V, W_1, W_2 per block
    for (auto* dW : {&g.dW_Q, &g.dW_K, &g.dW_V, &g.dW_1, &g.dW_2}) out.grads.push_back(*dW);
  }
  TORCH_CHECK(out.grads.size() == model.parameters().size(), "analytic gradients cover ", out.grads.size(),
              " tensors but the model has ", model.parameters().size(), " parameters");
  return out;
}

LossAndGradients autograd_gradients(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                    Loss loss) {
  LossAndGradients out;
  out.trace = model.trace(X);
  out.loss = objective(out.trace.output, Y, loss);
  out.grads = torch::autograd::grad({out.loss}, model.parameters());
  out.loss = out.loss.detach();
  return out;
}

}  // namespace resgd
