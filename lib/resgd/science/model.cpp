// The residual Transformer: docs/design.md, "The model".
#include "resgd/science/model.h"

#include "resgd/compute/compute.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace resgd {

torch::Generator make_generator(int64_t seed, const std::string& stream) {
  // splitmix64 of the seed mixed with an FNV-1a hash of the stream name: independent
  // streams, so adding a draw to one purpose never shifts the numbers of another.
  uint64_t x = 14695981039346656037ULL;
  for (unsigned char ch : stream) x = (x ^ ch) * 1099511628211ULL;
  x ^= static_cast<uint64_t>(seed) + 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return at::make_generator<at::CPUGeneratorImpl>(x);
}

torch::Tensor split_heads(const torch::Tensor& M, int64_t heads) {
  if (heads == 1) return M;  // the single-head path stays as it was, copy-free
  const int64_t N = M.size(0), n = M.size(1), e = M.size(2) / heads;
  return M.view({N, n, heads, e}).transpose(1, 2).reshape({N * heads, n, e});
}

torch::Tensor merge_heads(const torch::Tensor& M, int64_t heads) {
  if (heads == 1) return M;
  const int64_t N = M.size(0) / heads, n = M.size(1), e = M.size(2);
  return M.view({N, heads, n, e}).transpose(1, 2).reshape({N, n, heads * e});
}

LayerNormed layer_norm(const torch::Tensor& X) {
  const auto mean = X.mean(-1, /*keepdim=*/true);
  const auto centred = X - mean;
  auto rstd = centred.pow(2).mean(-1, /*keepdim=*/true).add_(kLayerNormEps).rsqrt_();
  return {centred * rstd, rstd};
}

torch::Tensor activate(const torch::Tensor& U, Activation activation, double leaky_slope) {
  switch (activation) {
    case Activation::relu: return torch::relu(U);
    case Activation::gelu: return torch::gelu(U);          // exact erf form
    case Activation::softplus: return torch::softplus(U);  // beta 1, threshold 20
    case Activation::tanh: return torch::tanh(U);
    case Activation::leaky_relu: return torch::leaky_relu(U, leaky_slope);
    case Activation::identity: return U;
  }
  TORCH_CHECK(false, "unreachable activation");
}

// ---------------------------------------------------------------------------------------
ResidualBlockImpl::ResidualBlockImpl(const BlockOptions& options_) : options(options_) { reset(); }

void ResidualBlockImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.heads >= 1 && o.key_dim % o.heads == 0 && o.dim % o.heads == 0, o.heads,
              " heads must divide d_k = ", o.key_dim, " and d = ", o.dim);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  W_Q = register_parameter("W_Q", torch::zeros({o.dim, o.key_dim}, f64));
  W_K = register_parameter("W_K", torch::zeros({o.dim, o.key_dim}, f64));
  W_V = register_parameter("W_V", torch::zeros({o.dim, o.dim}, f64));
  W_1 = register_parameter("W_1", torch::zeros({o.dim, o.ffn_width}, f64));
  W_2 = register_parameter("W_2", torch::zeros({o.ffn_width, o.out_dim}, f64));
}

void ResidualBlockImpl::initialize(torch::Generator& generator) {
  torch::NoGradGuard no_grad;
  auto draw = [&](torch::Tensor& W, const std::optional<double>& std) {
    const double fan_in = static_cast<double>(W.size(0));
    const double scale = std.value_or(1.0 / std::sqrt(fan_in));
    // Always draw, even for std 0, so one matrix's std never shifts another's numbers.
    auto sample = torch::randn(W.sizes(), generator, torch::TensorOptions().dtype(torch::kFloat64));
    W.copy_(sample.mul_(scale));
  };
  draw(W_Q, options.init.W_Q);
  draw(W_K, options.init.W_K);
  draw(W_V, options.init.W_V);
  draw(W_1, options.init.W_1);
  draw(W_2, options.init.W_2);
}

// clang-format off: the block's equations, their shapes aligned beside them
BlockTrace ResidualBlockImpl::trace(const torch::Tensor& H_in) {
  TORCH_CHECK(H_in.dim() == 3 && H_in.size(2) == options.dim, "block input must be (N, n, ", options.dim, "), got ",
              H_in.sizes());
  const int64_t N = H_in.size(0), n = H_in.size(1), h = options.heads;
  // Token-wise products multiply all N n tokens at once: (N n, .) views of (N, n, .) tensors.
  auto tokens = [&](const torch::Tensor& M) { return M.reshape({N * n, M.size(-1)}); };
  auto per_sample = [&](const torch::Tensor& M) { return M.view({N, n, M.size(-1)}); };
  BlockTrace t;
  t.H_in = H_in;  // (N, n, d)
  t.attention_input = options.pre_layer_norm ? layer_norm(H_in) : LayerNormed{H_in, {}};
  const auto& E = t.attention_input.value;                                    // H, or LN(H)
  t.Q = split_heads(per_sample(compute::mm(tokens(E), W_Q)), h);              // (N h, n, d_k/h)
  t.K = split_heads(per_sample(compute::mm(tokens(E), W_K)), h);              // (N h, n, d_k/h)
  auto Z = compute::bmm(t.Q, t.K.transpose(1, 2)).div_(options.temperature);  // (N h, n, n)
  if (options.causal) {
    auto future = torch::ones({n, n}, torch::TensorOptions().dtype(torch::kBool).device(H_in.device())).triu(1);
    Z = Z.masked_fill(future, -std::numeric_limits<double>::infinity());
  }
  t.S = torch::softmax(Z, -1);                                                  // (N h, n, n)
  t.V = split_heads(per_sample(compute::mm(tokens(E), W_V)), h);                // (N h, n, d/h)
  t.A = merge_heads(compute::bmm(t.S, t.V), h);                                 // (N, n, d)
  t.G = options.gamma_a == 0.0 ? t.A : torch::add(t.A, H_in, options.gamma_a);  // gamma_a H + A
  t.ffn_input = options.pre_layer_norm ? layer_norm(t.G) : LayerNormed{t.G, {}};
  t.U = per_sample(compute::mm(tokens(t.ffn_input.value), W_1));   // (N, n, m)
  t.Phi = activate(t.U, options.activation, options.leaky_slope);  // (N, n, m)
  // H_out = gamma_f G + c Phi W_2: one product that accumulates onto gamma_f G
  const double c = options.output_scale, gamma_f = ffn_residual();
  auto out =
      gamma_f != 0.0 ? compute::addmm(tokens(t.G), tokens(t.Phi), W_2, gamma_f, c) : compute::mm(tokens(t.Phi), W_2);
  if (gamma_f == 0.0 && c != 1.0) out.mul_(c);
  t.H_out = per_sample(out);  // (N, n, out_dim)
  return t;
}
// clang-format on

// ---------------------------------------------------------------------------------------
ModelOptions model_options(const ExperimentConfig& config) {
  const ModelConfig& m = config.model;
  const int64_t d = config.data.dim;
  ModelOptions o;
  o.layers = m.layers;
  o.out_dim = config.data.target_dim;
  o.readout = m.readout;
  o.init_seed = config.seed;
  BlockOptions& b = o.block;
  b.dim = d;
  b.key_dim = m.key_dim.value_or(d);
  b.heads = m.heads;
  b.ffn_width = m.ffn_width;
  b.out_dim = d;
  b.gamma_a = m.residual_attention.value;
  b.gamma_f = m.residual_ffn.value;
  b.temperature = m.temperature.value_or(std::sqrt(static_cast<double>(b.key_dim / b.heads)));
  b.output_scale = m.output_scale;
  b.activation = m.activation;
  b.leaky_slope = m.leaky_slope;
  b.causal = m.causal;
  b.pre_layer_norm = m.layer_norm == LayerNorm::pre;
  b.init = m.init;
  return o;
}

ResidualTransformerImpl::ResidualTransformerImpl(const ModelOptions& options_) : options(options_) { reset(); }

void ResidualTransformerImpl::reset() {
  TORCH_CHECK(options.layers >= 1, "a model needs at least one block, got ", options.layers);
  blocks = register_module("blocks", torch::nn::ModuleList());
  auto generator = make_generator(options.init_seed, options.init_stream);
  for (int64_t l = 0; l < options.layers; ++l) {
    BlockOptions block = options.block;
    if (l == options.layers - 1) block.out_dim = options.out_dim;
    auto b = ResidualBlock(block);
    b->initialize(generator);
    blocks->push_back(b);
  }
}

ForwardTrace ResidualTransformerImpl::trace(const torch::Tensor& X) {
  ForwardTrace out;
  torch::Tensor H = X;
  for (const auto& module : *blocks) {
    out.blocks.push_back(module->as<ResidualBlockImpl>()->trace(H));
    H = out.blocks.back().H_out;
  }
  out.output = options.readout == Readout::mean ? H.mean(1) : H;  // (N, d_y) or (N, n, d_y)
  return out;
}

std::vector<std::string> ResidualTransformerImpl::parameter_names() const {
  std::vector<std::string> names;
  for (const auto& item : named_parameters()) names.push_back(item.key());
  return names;
}

torch::Tensor objective(const torch::Tensor& Yhat, const torch::Tensor& Y, Loss loss) {
  TORCH_CHECK(Yhat.sizes() == Y.sizes(), "prediction ", Yhat.sizes(), " and target ", Y.sizes(), " differ in shape");
  auto value = (Yhat - Y).pow(2).sum().mul(0.5);
  if (loss == Loss::mean) value = value.div(static_cast<double>(Y.size(0)));
  return value;
}

}  // namespace resgd
