// The one list of keys, visit_fields: loading, --set, sweeps, validation, the dump and --explain walk it.
#pragma once

#include "resgd/core/config.h"

namespace resgd::config_detail {

// The one list of keys. `v(path, field)` is called for every option, in dump order;
// sections must stay contiguous so the dump can nest them.
template <class Config, class Visitor>
void visit_fields(Config& c, Visitor&& v) {
  v("name", c.name, "the experiment's name: output paths and reports use it");
  v("seed", c.seed, "fixes the data and the initialization (each drawn from a named stream of it)");
  v("device", c.device, "cpu, cuda, cuda:N, or auto (cuda:0 where a GPU is usable, else cpu)");
  v("dtype", c.dtype, "the floating-point type of the data, the parameters and every step");
  v("data.kind", c.data.kind, "gaussian tokens, the UCI digits, or X and Y from a .pt file (data.path)");
  v("data.num_samples", c.data.num_samples, "N, the sequences (full batch)");
  v("data.seq_len", c.data.seq_len, "n, the tokens of a sequence");
  v("data.dim", c.data.dim, "d, the features of a token");
  v("data.normalize_tokens", c.data.normalize_tokens, "scale each gaussian token to unit norm");
  v("data.target", c.data.target,
    "gaussian targets: random N(0, target_std^2), a teacher model's output, or X B (linear)");
  v("data.target_dim", c.data.target_dim, "d_y, the features of a target");
  v("data.target_std", c.data.target_std, "the std of random targets; null means 1/sqrt(d_y)");
  v("data.noise", c.data.noise, "std of the noise added to teacher and linear targets");
  v("data.path", c.data.path, "the .pt file of kind tensors, or the digits file; relative to the experiment file");
  v("model.layers", c.model.layers, "L, the blocks (attention then FFN, each with its residual)");
  v("model.key_dim", c.model.key_dim, "d_k, the columns of W_Q and W_K over all heads; null means d");
  v("model.ffn_width", c.model.ffn_width, "m, the FFN's hidden width (W_1 is d x m)");
  v("model.activation", c.model.activation, "sigma, the FFN's activation");
  v("model.leaky_slope", c.model.leaky_slope, "the slope of leaky_relu below 0");
  v("model.readout", c.model.readout, "Yhat is the last block's tokens, or their mean (one target per sequence)");
  v("model.layer_norm", c.model.layer_norm, "pre: the attention reads LN(H) and the FFN LN(G); none: neither");
  v("model.residual.attention", c.model.residual_attention,
    "gamma_a in G = gamma_a H + S H W_V: true (1), false (0) or a scale");
  v("model.residual.ffn", c.model.residual_ffn,
    "gamma_f in H_out = gamma_f G + c sigma(G W_1) W_2, where W_2 keeps the width d");
  v("model.attention.heads", c.model.heads, "h, the attention heads; it divides d_k and d");
  v("model.attention.temperature", c.model.temperature, "tau, the scores' divisor; null means sqrt(d_k / h)");
  v("model.attention.causal", c.model.causal, "mask the scores so that token i attends to tokens 0..i only");
  v("model.ffn.output_scale", c.model.output_scale, "c in c sigma(G W_1) W_2; 1/sqrt(m) is the NTK parametrization");
  v("model.init.W_Q", c.model.init.W_Q, "std of W_Q's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_K", c.model.init.W_K, "std of W_K's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_V", c.model.init.W_V, "std of W_V's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_1", c.model.init.W_1, "std of W_1's entries at init; null means 1/sqrt(fan_in)");
  v("model.init.W_2", c.model.init.W_2, "std of W_2's entries at init; null means 1/sqrt(fan_in)");
  v("train.lr", c.train.lr,
    "eta, the step size of theta <- theta - eta grad L(theta); with train.lr_edge, the fraction of that edge "
    "(0.5: half the largest stable step)");
  v("train.lr_edge", c.train.lr_edge,
    "none, or the curvature edge train.lr is a fraction of, measured at theta_0 before the first step: ntk, "
    "2 / (c lambda_max(K)), where GD on the linearized model turns unstable (K over the trained parameters); "
    "sharpness, 2 / the loss's largest Hessian eigenvalue (the edge of stability). summary.json records the "
    "edge (lr_edge) and the step taken (lr)");
  v("train.max_iters", c.train.max_iters, "the GD steps at most (status max_iters when reached)");
  v("train.tolerance", c.train.tolerance, "stop (converged) when the loss is at most this");
  v("train.rel_tolerance", c.train.rel_tolerance, "stop (converged) when the loss is at most this times the initial");
  v("train.divergence_factor", c.train.divergence_factor,
    "stop (diverged) when the loss exceeds this times the initial, or is not finite");
  v("train.stall_window", c.train.stall_window,
    "stop (stalled) when the gradient has been exactly zero, at a positive loss, for this many steps (every "
    "ReLU dead, an exact stationary point): GD's step is then zero and every later one repeats it; 0: never");
  v("train.loss", c.train.loss, "0.5 sum of squared errors, or that divided by N (mean)");
  v("train.gradients", c.train.gradients, "autograd, or the hand-derived backward pass (the same trajectory)");
  v("train.log_every", c.train.log_every, "a metrics.csv row (and a stop-rule check) every this many steps");
  v("train.checkpoint_every", c.train.checkpoint_every, "write checkpoint.pt every this many steps; 0: off");
  v("train.freeze", c.train.freeze,
    "weights GD leaves at theta_0: attention (every block's W_Q, W_K, W_V) or ffn (W_1, W_2); their gradients "
    "are still computed, grad_norm and the diagnostics cover every parameter, and loss_lin follows GD on the "
    "others alone");
  v("diagnostics.every", c.diagnostics.every,
    "diagnose every this many steps, and at the first and last; 0: first and last only");
  v("diagnostics.ntk", c.diagnostics.ntk, "record ntk_lambda_min, the smallest eigenvalue of J J^T");
  v("diagnostics.ntk_every", c.diagnostics.ntk_every,
    "measure the NTK every this many steps, and at the first and last; null means diagnostics.every");
  v("diagnostics.ntk_max_entries", c.diagnostics.ntk_max_entries,
    "the largest Jacobian (entries) the NTK is formed for; larger leaves the column NaN");
  v("diagnostics.ntk_spectrum", c.diagnostics.ntk_spectrum,
    "with diagnostics.ntk: at each NTK measurement, every eigenvalue of K = J J^T and the loss's share along "
    "each eigenvector, (c / 2) (u_i^T r)^2, into ntk_spectrum/<iter>.csv: the modes that limit the rate");
  v("diagnostics.sharpness", c.diagnostics.sharpness, "record the largest eigenvalue of the loss's Hessian");
  v("diagnostics.sharpness_every", c.diagnostics.sharpness_every,
    "measure the sharpness every this many steps, and at the first and last; null means diagnostics.every");
  v("diagnostics.linearized", c.diagnostics.linearized,
    "record loss_lin, the loss GD would have on the model linearized at initialization (small problems only)");
  v("compute.backend", c.compute.backend,
    "tuned (the kernel routes and threads that pay on this machine) or reference (plain LibTorch)");
}

}  // namespace resgd::config_detail
