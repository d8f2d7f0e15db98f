// The residual Transformer against its equations (docs/design.md, "The model") and the data.
#include "resgd/science/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

namespace resgd {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

BlockOptions small_block() {
  BlockOptions b;
  b.dim = 5;
  b.key_dim = 3;
  b.ffn_width = 7;
  b.out_dim = 5;
  b.temperature = std::sqrt(3.0);
  return b;
}

ModelOptions small_model(int64_t layers, int64_t out_dim) {
  ModelOptions o;
  o.layers = layers;
  o.block = small_block();
  o.out_dim = out_dim;
  o.init_seed = 7;
  return o;
}

torch::Tensor random_tokens(int64_t N, int64_t n, int64_t d, int64_t seed = 1) {
  auto generator = make_generator(seed, "test.X");
  return torch::randn({N, n, d}, generator, kF64);
}

TEST(Model, ParametersAreNamedAndShapedAsDesign) {
  ResidualTransformer model(small_model(/*layers=*/2, /*out_dim=*/2));
  const std::vector<std::string> expected = {"blocks.0.W_Q", "blocks.0.W_K", "blocks.0.W_V", "blocks.0.W_1",
                                             "blocks.0.W_2", "blocks.1.W_Q", "blocks.1.W_K", "blocks.1.W_V",
                                             "blocks.1.W_1", "blocks.1.W_2"};
  EXPECT_EQ(model->parameter_names(), expected);
  const auto params = model->named_parameters();
  EXPECT_EQ(params["blocks.0.W_Q"].sizes(), torch::IntArrayRef({5, 3}));
  EXPECT_EQ(params["blocks.0.W_V"].sizes(), torch::IntArrayRef({5, 5}));
  EXPECT_EQ(params["blocks.0.W_1"].sizes(), torch::IntArrayRef({5, 7}));
  EXPECT_EQ(params["blocks.0.W_2"].sizes(), torch::IntArrayRef({7, 5}));  // inner block keeps d
  EXPECT_EQ(params["blocks.1.W_2"].sizes(), torch::IntArrayRef({7, 2}));  // last block maps to d_y
  const auto X = random_tokens(4, 6, 5);
  EXPECT_EQ(model->forward(X).sizes(), torch::IntArrayRef({4, 6, 2}));
  model->options.readout = Readout::mean;
  EXPECT_EQ(model->forward(X).sizes(), torch::IntArrayRef({4, 2}));
}

TEST(Model, InitializationFollowsPerMatrixStd) {
  ModelOptions o = small_model(1, 5);
  o.block.ffn_width = 400;
  o.block.init.W_Q = 0.0;
  ResidualTransformer zero_q(o);
  auto p = zero_q->named_parameters();
  EXPECT_EQ(p["blocks.0.W_Q"].abs().max().item<double>(), 0.0);
  // Default std 1/sqrt(fan_in): W_2 has fan_in m = 400 and 2000 entries.
  EXPECT_NEAR(p["blocks.0.W_2"].std().item<double>(), 1.0 / 20.0, 0.005);
  // Changing one matrix's std leaves the others' draws unchanged.
  ResidualTransformer default_q(small_model(1, 5));
  o.block.ffn_width = 7;
  ResidualTransformer zero_q_small(o);
  EXPECT_TRUE(
      torch::equal(zero_q_small->named_parameters()["blocks.0.W_1"], default_q->named_parameters()["blocks.0.W_1"]));
}

/// One sample through one block, written out with explicit loops over heads and tokens:
/// an independent reading of docs/design.md's equations to check the batched code against.
torch::Tensor block_by_hand(const ResidualBlockImpl& b, const torch::Tensor& H_in) {  // (n, d)
  const auto& o = b.options;
  const int64_t n = H_in.size(0), e_k = o.key_dim / o.heads, e_v = o.dim / o.heads;
  // Pre-LN: each token shifted to mean 0 and scaled to variance 1 (+ eps) over its features.
  auto normalized = [&](const torch::Tensor& token) {
    if (!o.pre_layer_norm) return token;
    const auto centred = token - token.mean();
    return centred / torch::sqrt(centred.dot(centred) / static_cast<double>(o.dim) + kLayerNormEps);
  };
  auto H = torch::zeros_like(H_in);
  for (int64_t i = 0; i < n; ++i) H[i] = normalized(H_in[i]);
  auto out = torch::zeros({n, o.out_dim}, kF64);
  auto G = torch::zeros_like(H);
  for (int64_t i = 0; i < n; ++i) {
    auto a = torch::zeros({o.dim}, kF64);
    for (int64_t head = 0; head < o.heads; ++head) {  // its own columns of W_Q, W_K and W_V
      const auto W_Q = b.W_Q.narrow(1, head * e_k, e_k), W_K = b.W_K.narrow(1, head * e_k, e_k);
      const auto W_V = b.W_V.narrow(1, head * e_v, e_v);
      auto q = H[i].matmul(W_Q);  // (d_k / h)
      auto weights = torch::zeros({n}, kF64);
      for (int64_t j = 0; j < n; ++j) weights[j] = torch::exp(q.dot(H[j].matmul(W_K)) / o.temperature);
      weights = weights / weights.sum();
      auto a_head = a.narrow(0, head * e_v, e_v);
      for (int64_t j = 0; j < n; ++j) a_head += weights[j] * H[j].matmul(W_V);
    }
    G[i] = o.gamma_a * H_in[i] + a;
  }
  for (int64_t i = 0; i < n; ++i) {
    auto phi = activate(normalized(G[i]).matmul(b.W_1), o.activation, o.leaky_slope);
    out[i] = o.output_scale * phi.matmul(b.W_2);
    if (o.out_dim == o.dim) out[i] += o.gamma_f * G[i];
  }
  return out;
}

/// A block drawn from the test's own random stream.
ResidualBlock seeded_block(const BlockOptions& o) {
  ResidualBlock block(o);
  auto generator = make_generator(3, "test.init");
  block->initialize(generator);
  return block;
}

TEST(Model, BatchedForwardMatchesTheEquationsTokenByToken) {
  for (const bool pre_layer_norm : {false, true}) {
    for (double gamma_a : {0.0, 1.0, 0.5}) {
      for (double gamma_f : {0.0, 1.0, 0.25}) {
        BlockOptions o = small_block();
        o.pre_layer_norm = pre_layer_norm;
        o.gamma_a = gamma_a;
        o.gamma_f = gamma_f;
        o.output_scale = 0.3;
        o.activation = Activation::gelu;
        ResidualBlock block = seeded_block(o);
        const auto H = random_tokens(3, 4, 5);
        torch::NoGradGuard no_grad;
        const auto batched = block->forward(H);
        for (int64_t s = 0; s < 3; ++s)
          EXPECT_TRUE(torch::allclose(batched[s], block_by_hand(*block, H[s]), 1e-12, 1e-12))
              << "pre-LN " << pre_layer_norm << " gamma_a=" << gamma_a << " gamma_f=" << gamma_f << " sample " << s;
      }
    }
  }
}

TEST(Model, EachHeadAttendsWithItsOwnColumns) {
  const std::vector<std::pair<int64_t, int64_t>> key_dims_and_heads = {{4, 2}, {6, 3}, {12, 6}};
  for (const auto& [key_dim, heads] : key_dims_and_heads) {
    BlockOptions o = small_block();
    o.dim = 6;
    o.out_dim = 6;
    o.key_dim = key_dim;
    o.heads = heads;
    o.gamma_f = 1.0;
    o.temperature = std::sqrt(static_cast<double>(key_dim / heads));
    ResidualBlock block = seeded_block(o);
    const auto H = random_tokens(3, 4, 6);
    torch::NoGradGuard no_grad;
    const BlockTrace t = block->trace(H);
    EXPECT_EQ(t.S.sizes(), torch::IntArrayRef({3 * heads, 4, 4}));
    EXPECT_EQ(t.Q.sizes(), torch::IntArrayRef({3 * heads, 4, key_dim / heads}));
    EXPECT_EQ(t.V.sizes(), torch::IntArrayRef({3 * heads, 4, 6 / heads}));
    EXPECT_EQ(t.A.sizes(), torch::IntArrayRef({3, 4, 6}));
    // Per-head tensors: head j of sample i at index i h + j.
    const auto Q_sample_1 = H[1].matmul(block->W_Q);
    EXPECT_TRUE(torch::equal(t.Q[heads + 1], Q_sample_1.narrow(1, key_dim / heads, key_dim / heads)));
    for (int64_t s = 0; s < 3; ++s)
      EXPECT_TRUE(torch::allclose(t.H_out[s], block_by_hand(*block, H[s]), 1e-12, 1e-12))
          << heads << " heads, sample " << s;
    // The heads attend differently: h = 1 on the same matrices is another model.
    o.heads = 1;
    ResidualBlock one_head = seeded_block(o);
    EXPECT_GT((one_head->forward(H) - t.H_out).abs().max().item<double>(), 1e-3) << heads << " heads";
  }
  BlockOptions o = small_block();  // d = 5, d_k = 3
  o.heads = 2;
  EXPECT_THROW(ResidualBlock{o}, c10::Error);
  // The default temperature is sqrt of one head's key size: sqrt(d_k) for one head.
  ExperimentConfig config;  // d = d_k = 16
  EXPECT_EQ(model_options(config).block.temperature, 4.0);
  config.model.heads = 4;
  EXPECT_EQ(model_options(config).block.heads, 4);
  EXPECT_EQ(model_options(config).block.temperature, 2.0);
}

TEST(Model, UniformAttentionIsTheSameInEveryHead) {
  // With W_Q = W_K = 0 every head's S is the uniform 11^T / n, so A = S H W_V whatever the
  // number of heads: heads cannot lift the rank-one collapse of uniform attention.
  ModelOptions o = small_model(2, 6);
  o.block.dim = 6;
  o.block.out_dim = 6;
  o.block.key_dim = 6;
  o.block.gamma_a = 0.0;
  o.block.init.W_Q = 0.0;
  o.block.init.W_K = 0.0;
  const auto X = random_tokens(3, 5, 6);
  torch::NoGradGuard no_grad;
  ResidualTransformer one_head(o);
  const auto reference = one_head->trace(X);
  for (const int64_t heads : {2, 3, 6}) {
    o.block.heads = heads;
    ResidualTransformer model(o);  // the same draws: parameter shapes do not depend on h
    const auto trace = model->trace(X);
    EXPECT_TRUE(torch::allclose(trace.output, reference.output, 1e-13, 1e-13)) << heads << " heads";
    for (size_t l = 0; l < 2; ++l) {
      EXPECT_TRUE(torch::allclose(trace.blocks[l].A, reference.blocks[l].A, 1e-13, 1e-13)) << heads << " heads";
      // rank one: every token's row is the sequence's mean row
      const auto& A = trace.blocks[l].A;
      EXPECT_LT((A - A.mean(1, true)).abs().max().item<double>(), 1e-13) << heads << " heads, block " << l;
    }
  }
}

TEST(Model, UniformAttentionMapsEveryTokenToTheMeanToken) {
  ModelOptions o = small_model(1, 5);
  o.block.init.W_Q = 0.0;
  o.block.init.W_K = 0.0;
  ResidualTransformer model(o);
  const auto X = random_tokens(3, 6, 5);
  torch::NoGradGuard no_grad;
  const BlockTrace t = model->trace(X).blocks[0];
  EXPECT_TRUE(torch::allclose(t.S, torch::full_like(t.S, 1.0 / 6.0), 0, 1e-15));
  const torch::Tensor W_V = model->named_parameters()["blocks.0.W_V"];  // a copy: the dict is a temporary
  const auto expected_row = X.mean(1).matmul(W_V);                      // (N, d): mean(X) W_V
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_TRUE(torch::allclose(t.A.select(1, i), expected_row, 1e-13, 1e-13)) << "token " << i;
}

TEST(Model, ResidualSwitchesChangeTheOutputExactlyAsTheEquationsSay) {
  const auto X = random_tokens(2, 4, 5);
  torch::NoGradGuard no_grad;
  ModelOptions o = small_model(1, 5);
  ResidualTransformer plain(o);  // gamma_a = 1, gamma_f = 0 by default
  o.block.gamma_a = 0.0;
  ResidualTransformer no_attention_residual(o);  // same draws: same init seed
  o.block.gamma_a = 1.0;
  o.block.gamma_f = 1.0;
  ResidualTransformer both(o);
  const auto t1 = plain->trace(X).blocks[0];
  const auto t0 = no_attention_residual->trace(X).blocks[0];
  const auto tf = both->trace(X).blocks[0];
  EXPECT_TRUE(torch::allclose(t1.G - t0.G, X, 1e-14, 1e-14));             // G = gamma_a H + A
  EXPECT_TRUE(torch::allclose(tf.H_out - t1.H_out, t1.G, 1e-14, 1e-14));  // + gamma_f G
  // The last block changes the width to d_y: no FFN residual there, whatever gamma_f says.
  o.out_dim = 2;
  ResidualTransformer narrow(o);
  EXPECT_EQ(narrow->blocks[0]->as<ResidualBlockImpl>()->ffn_residual(), 0.0);
  const auto tn = narrow->trace(X).blocks[0];
  const torch::Tensor W_2 = narrow->named_parameters()["blocks.0.W_2"];  // a copy: the dict is a temporary
  EXPECT_TRUE(torch::allclose(tn.H_out, tn.Phi.matmul(W_2), 1e-14, 1e-14));
}

TEST(Model, CausalMaskAttendsOnlyToThePast) {
  ModelOptions o = small_model(1, 5);
  o.block.causal = true;
  ResidualTransformer model(o);
  torch::NoGradGuard no_grad;
  const auto S = model->trace(random_tokens(2, 5, 5)).blocks[0].S;
  EXPECT_EQ(S.triu(1).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::allclose(S.sum(-1), torch::ones({2, 5}, kF64)));
  EXPECT_EQ(S[0][0][0].item<double>(), 1.0);  // the first token sees only itself
}

TEST(Model, MeanReadoutAveragesTheLastBlockOverTokens) {
  ModelOptions o = small_model(2, 3);
  ResidualTransformer model(o);
  const auto X = random_tokens(2, 4, 5);
  torch::NoGradGuard no_grad;
  const auto tokens = model->forward(X);
  model->options.readout = Readout::mean;
  EXPECT_TRUE(torch::allclose(model->forward(X), tokens.mean(1), 1e-15, 1e-15));
}

TEST(Model, SumAndMeanLossesAreHalfSquaredError) {
  const auto Yhat = torch::tensor({{1.0, 2.0}, {3.0, 5.0}}, kF64);
  const auto Y = torch::tensor({{0.0, 2.0}, {3.0, 3.0}}, kF64);
  EXPECT_DOUBLE_EQ(objective(Yhat, Y, Loss::sum).item<double>(), 0.5 * (1.0 + 4.0));
  EXPECT_DOUBLE_EQ(objective(Yhat, Y, Loss::mean).item<double>(), 0.5 * (1.0 + 4.0) / 2.0);
}

}  // namespace
}  // namespace resgd
