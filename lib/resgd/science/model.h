// The residual Transformer of docs/design.md, "The model", as torch::nn modules.
//
// One block maps H^{l-1} (N, n, d) to H^l:
//   Z = H W_Q (H W_K)^T / tau,  S = softmax_rows(Z),  A = S H W_V,
//   G = gamma_a H + A                         (the attention output matrix)
//   H_out = gamma_f G + c sigma(G W_1) W_2    (gamma_f only where W_2 keeps the width d)
// With h heads (model.attention.heads), head j uses columns j d_k/h .. (j+1) d_k/h - 1 of
// W_Q and W_K for its own Z_j and S_j, and columns j d/h .. of W_V: A is the h products
// S_j H W_V^(j) side by side. One head is the equations above.
// Pre-LayerNorm (model.layer_norm: pre) feeds the attention LN(H) instead of H and the FFN
// LN(G) instead of G; the residual terms gamma_a H and gamma_f G stay unnormalized.
// The forward pass can return a trace of every intermediate, so the maths exists once and
// serves training, the hand-derived backward pass and the diagnostics.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd {

/// A CPU random stream for one purpose ("data.X", "model.init", ...) of a run's seed.
/// Everything random is drawn on the CPU in float64 and then moved, so a run draws the
/// same numbers on every device and dtype.
torch::Generator make_generator(int64_t seed, const std::string& stream);

/// (N, n, h e) -> (N h, n, e): the h column groups of each sample as matrices of their own.
torch::Tensor split_heads(const torch::Tensor& M, int64_t heads);
/// The inverse of split_heads: (N h, n, e) -> (N, n, h e).
torch::Tensor merge_heads(const torch::Tensor& M, int64_t heads);

/// A layer norm without affine parameters: each token (row of the last dimension) minus
/// its mean, times rstd = 1 / sqrt(its biased variance + kLayerNormEps).
struct LayerNormed {
  torch::Tensor value;  // the normalized tokens, the input's shape
  torch::Tensor rstd;   // (..., 1)
};
constexpr double kLayerNormEps = 1e-5;  // torch.nn.LayerNorm's default
LayerNormed layer_norm(const torch::Tensor& X);

/// sigma(U), elementwise.
torch::Tensor activate(const torch::Tensor& U, Activation activation, double leaky_slope);

struct BlockOptions {
  int64_t dim = 16;           // d
  int64_t key_dim = 16;       // d_k, over all heads
  int64_t heads = 1;          // h: divides d_k and d
  int64_t ffn_width = 256;    // m
  int64_t out_dim = 16;       // width of W_2's output: d, or d_y in the last block
  double gamma_a = 1.0;       // attention residual
  double gamma_f = 0.0;       // FFN residual; forced to 0 when out_dim != dim
  double temperature = 4.0;   // tau
  double output_scale = 1.0;  // c
  Activation activation = Activation::relu;
  double leaky_slope = 0.01;
  bool causal = false;
  bool pre_layer_norm = false;  // LN(H) into the attention, LN(G) into the FFN
  InitConfig init;              // per-matrix std; null = 1/sqrt(fan_in)
};

/// Every intermediate of one block's forward pass, in docs/design.md's symbols.
struct BlockTrace {
  // Per-head tensors hold head j of sample i at index i h + j (see split_heads); with one
  // head they are simply (N, ., .).
  torch::Tensor H_in;  // (N, n, d)
  // What the attention and the FFN read: LN(H_in) and LN(G) under pre-LayerNorm (with
  // their rstd), otherwise H_in and G themselves (rstd undefined).
  LayerNormed attention_input, ffn_input;
  torch::Tensor Q, K;   // (N h, n, d_k/h): E W_Q, E W_K per head, E = attention_input
  torch::Tensor S;      // (N h, n, n)     row-stochastic attention, per head
  torch::Tensor V;      // (N h, n, d/h)   E W_V, per head
  torch::Tensor A;      // (N, n, d)       S V, the heads side by side: the attention part
  torch::Tensor G;      // (N, n, d)   gamma_a H + A, the attention output matrix
  torch::Tensor U;      // (N, n, m)   G W_1 (LN(G) W_1 under pre-LN)
  torch::Tensor Phi;    // (N, n, m)   sigma(U)
  torch::Tensor H_out;  // (N, n, out_dim)
};

class ResidualBlockImpl : public torch::nn::Module {
 public:
  explicit ResidualBlockImpl(const BlockOptions& options);

  /// Registers W_Q, W_K, W_V, W_1, W_2 (zeros); `initialize` draws them.
  void reset();
  /// Draws every matrix i.i.d. N(0, std^2) from `generator`, in the order W_Q..W_2.
  void initialize(torch::Generator& generator);

  torch::Tensor forward(const torch::Tensor& H_in) { return trace(H_in).H_out; }
  BlockTrace trace(const torch::Tensor& H_in);

  /// The FFN residual gain actually applied (0 when the block changes the width).
  double ffn_residual() const { return options.out_dim == options.dim ? options.gamma_f : 0.0; }

  BlockOptions options;
  torch::Tensor W_Q, W_K, W_V, W_1, W_2;
};
TORCH_MODULE(ResidualBlock);

struct ModelOptions {
  int64_t layers = 1;
  BlockOptions block;    // shared by every block; the last gets out_dim = d_y
  int64_t out_dim = 16;  // d_y
  Readout readout = Readout::tokens;
  int64_t init_seed = 0;
  std::string init_stream = "model.init";  // the random stream of the initialization
};

/// The model options of an experiment (d and d_y from the data section).
ModelOptions model_options(const ExperimentConfig& config);

/// Forward trace of the whole model.
struct ForwardTrace {
  std::vector<BlockTrace> blocks;
  torch::Tensor output;  // Yhat: (N, n, d_y) for tokens readout, (N, d_y) for mean
};

class ResidualTransformerImpl : public torch::nn::Module {
 public:
  explicit ResidualTransformerImpl(const ModelOptions& options);
  void reset();

  torch::Tensor forward(const torch::Tensor& X) { return trace(X).output; }
  ForwardTrace trace(const torch::Tensor& X);

  /// Parameters in registration order, with their names (blocks.<l>.W_Q, ...).
  std::vector<std::string> parameter_names() const;

  ModelOptions options;
  torch::nn::ModuleList blocks;
};
TORCH_MODULE(ResidualTransformer);

/// The training objective: 0.5 * sum ||Yhat - Y||^2, divided by N for `mean`.
torch::Tensor objective(const torch::Tensor& Yhat, const torch::Tensor& Y, Loss loss);

}  // namespace resgd
