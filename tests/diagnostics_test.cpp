// Tests of the diagnostics (docs/design.md, "Diagnostics"): each test is one claim, on tiny
// seeded float64 problems.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "resgd/science/analytic_grad.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/model.h"

namespace resgd {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kInf = std::numeric_limits<double>::infinity();

torch::Tensor randn(torch::IntArrayRef sizes, int64_t seed) {
  auto generator = make_generator(seed, "diagnostics_test");
  return torch::randn(sizes, generator, kF64);
}

/// A one-block model: d = 6, d_k = 4, m = 8, d_y = 2, default init; `edit` changes options.
ResidualTransformer make_model(const std::function<void(ModelOptions&)>& edit = {}) {
  ModelOptions o;
  o.layers = 1;
  o.block.dim = 6;
  o.block.key_dim = 4;
  o.block.ffn_width = 8;
  o.block.out_dim = 6;  // blocks below the last keep the width d
  o.block.temperature = 2.0;
  o.out_dim = 2;
  o.init_seed = 7;
  if (edit) edit(o);
  return ResidualTransformer(o);
}

/// One diagnosed iteration, the way the training loop makes it.
struct Probe {
  ResidualTransformer model;
  torch::Tensor X, Y;
  std::vector<torch::Tensor> theta_0;
  DiagnosticsConfig config;
  DiagnosticsRunState run_state;

  Probe(ResidualTransformer m, torch::Tensor X_) : model(std::move(m)), X(std::move(X_)) {
    const auto& o = model->options;
    Y = randn({X.size(0), X.size(1), o.out_dim}, 99);
    for (const auto& p : model->parameters()) theta_0.push_back(p.detach().clone());
  }
  /// The diagnosis as metrics.csv's cells.
  std::vector<double> run() {
    auto state = autograd_gradients(*model, X, Y, Loss::sum);
    torch::NoGradGuard no_grad;
    std::vector<double> values;
    for (const auto& cell :
         to_cells(compute_diagnostics({*model, X, Y, Loss::sum, state, theta_0, config, &run_state}), config))
      values.push_back(cell.value());  // every value is measured: all are due
    return values;
  }
  /// The cell of column `name`, found by its name in diagnostic_columns.
  double value(const std::vector<double>& values, const std::string& name) const {
    const auto columns = diagnostic_columns(model->options.layers, config);
    const auto it = std::find(columns.begin(), columns.end(), name);
    EXPECT_NE(it, columns.end()) << name;
    return it == columns.end() ? std::numeric_limits<double>::quiet_NaN()
                               : values.at(static_cast<size_t>(it - columns.begin()));
  }
};

TEST(Diagnostics, ColumnsComeInDesignOrderAndMatchValues) {
  DiagnosticsConfig every_column;
  every_column.ntk = every_column.sharpness = true;
  const auto columns = diagnostic_columns(2, every_column);
  ASSERT_EQ(columns.size(), 2u * 11u + 5u);
  EXPECT_EQ(columns[0], "sigma_min_g1");
  EXPECT_EQ(columns[8], "cond_gstack1");
  EXPECT_EQ(columns[10], "rank1_res1");
  EXPECT_EQ(columns[11], "sigma_min_g2");
  EXPECT_EQ(columns[22], "sigma_min_phi");
  EXPECT_EQ(columns[25], "ntk_lambda_min");
  EXPECT_EQ(columns[26], "sharpness");
  EXPECT_EQ(diagnostic_columns(1, DiagnosticsConfig{}).back(), "dist_init");

  // The typed row's fields land in the columns of their names, and read back the same.
  Probe probe(make_model([](ModelOptions& o) { o.layers = 2; }), randn({3, 4, 6}, 1));
  probe.config = every_column;
  auto state = autograd_gradients(*probe.model, probe.X, probe.Y, Loss::sum);
  const Diagnosis d = compute_diagnostics(
      {*probe.model, probe.X, probe.Y, Loss::sum, state, probe.theta_0, probe.config, &probe.run_state});
  const auto cells = to_cells(d, every_column);
  ASSERT_EQ(cells.size(), columns.size());
  ASSERT_EQ(d.blocks.size(), 2u);
  EXPECT_EQ(*cells[0], d.blocks[0].sigma_min_g);
  EXPECT_EQ(*cells[8], d.blocks[0].cond_gstack);
  EXPECT_EQ(*cells[10], d.blocks[0].rank1_res);
  EXPECT_EQ(*cells[11], d.blocks[1].sigma_min_g);
  EXPECT_EQ(*cells[22], d.sigma_min_phi);
  EXPECT_EQ(*cells[23], d.pl_ratio);
  EXPECT_EQ(*cells[24], d.dist_init);
  EXPECT_EQ(*cells[25], *d.ntk_lambda_min);
  EXPECT_EQ(*cells[26], *d.sharpness);
  const auto again = to_cells(from_cells(cells, 2, every_column), every_column);
  for (size_t i = 0; i < cells.size(); ++i)
    EXPECT_TRUE(again[i] == cells[i] || std::isnan(cells[i].value())) << columns[i];
  EXPECT_THROW(from_cells(cells, 1, every_column), c10::Error);  // 27 cells are not one block's columns
}

TEST(Diagnostics, IdenticalTokensGiveZeroSigmaMinAndInfiniteCond) {
  auto rows = randn({3, 1, 6}, 4).expand({3, 5, 6});  // every token of a sequence the same
  const auto stats = spectrum_stats(rows);
  EXPECT_EQ(stats.sigma_min.item<double>(), 0.0);  // exactly 0, not 1e-17
  EXPECT_EQ(stats.cond.item<double>(), kInf);

  // Through the model: equal tokens get uniform attention, so G has equal rows too.
  Probe probe(make_model(), rows.contiguous());
  const auto values = probe.run();
  EXPECT_EQ(probe.value(values, "sigma_min_g1"), 0.0);
  EXPECT_EQ(probe.value(values, "cond_g1"), kInf);
  EXPECT_EQ(probe.value(values, "cond_gstack1"), kInf);  // rank N = 3 < d = 6
  EXPECT_GT(probe.value(values, "sigma_max_g1"), 0.0);
  EXPECT_LT(probe.value(values, "rank1_res1"), 1e-14);
}

TEST(Diagnostics, UniformAttentionHasFullEntropyAndRankOneAttentionPart) {
  auto zero_qk = [](ModelOptions& o) { o.block.init.W_Q = 0.0, o.block.init.W_K = 0.0; };
  const auto X = randn({3, 4, 6}, 5);
  Probe probe(make_model(zero_qk), X);
  const auto values = probe.run();
  EXPECT_NEAR(probe.value(values, "attn_entropy1"), 1.0, 1e-14);
  EXPECT_EQ(probe.value(values, "cond_a1"), kInf);    // A = 1 xbar^T W_V has rank 1
  EXPECT_GT(probe.value(values, "rank1_res1"), 0.1);  // the residual keeps G away from it
  EXPECT_LT(rank1_residual(probe.model->trace(X).blocks[0].A).item<double>(), 1e-14);

  // Without the residual G = A, and the column itself reports rank one.
  // Without the residual G = A: the column itself reports rank one, and since every token
  // of a sequence then gets the same output, the NTK is exactly singular.
  Probe plain(make_model([&](ModelOptions& o) { zero_qk(o), o.block.gamma_a = 0.0; }), X);
  plain.config.ntk = true;
  const auto plain_values = plain.run();
  EXPECT_LT(plain.value(plain_values, "rank1_res1"), 1e-14);
  EXPECT_EQ(plain.value(plain_values, "ntk_lambda_min"), 0.0);
}

TEST(Diagnostics, CausalUniformAttentionHasEntropyOne) {
  // Query i spreads evenly over its i + 1 admissible keys: uniform, as far as it may be.
  const int64_t n = 5;
  auto S = torch::ones({n, n}, kF64).tril();
  S = (S / S.sum(1, /*keepdim=*/true)).expand({2, n, n});
  EXPECT_NEAR(attention_entropy(S, /*causal=*/true).item<double>(), 1.0, 1e-14);
  // One-hot attention has no entropy either way; a single token counts as uniform.
  auto one_hot = torch::eye(n, kF64).expand({2, n, n});
  EXPECT_EQ(attention_entropy(one_hot, /*causal=*/true).item<double>(), 0.0);
  EXPECT_EQ(attention_entropy(one_hot, /*causal=*/false).item<double>(), 0.0);
  EXPECT_EQ(attention_entropy(torch::ones({3, 1, 1}, kF64), false).item<double>(), 1.0);
}

TEST(Diagnostics, ResidualRaisesSigmaMin) {
  // Same seed, so the same weights: only gamma_a differs.
  const auto X = randn({4, 4, 6}, 6);
  Probe residual(make_model(), X);
  Probe plain(make_model([](ModelOptions& o) { o.block.gamma_a = 0.0; }), X);
  const auto with = residual.run(), without = plain.run();
  EXPECT_TRUE(torch::equal(residual.model->parameters()[2], plain.model->parameters()[2]));
  EXPECT_GT(residual.value(with, "sigma_min_g1"), 3 * plain.value(without, "sigma_min_g1"));
  EXPECT_LT(residual.value(with, "cond_g1"), plain.value(without, "cond_g1"));
}

TEST(Diagnostics, PlRatioIsSquaredGradNormOverTwiceLoss) {
  Probe probe(make_model(), randn({3, 4, 6}, 8));
  auto state = autograd_gradients(*probe.model, probe.X, probe.Y, Loss::sum);
  double grad_sq = 0;
  for (const auto& g : state.grads) grad_sq += g.pow(2).sum().item<double>();
  const double expected = grad_sq / (2 * state.loss.item<double>());
  EXPECT_NEAR(probe.value(probe.run(), "pl_ratio"), expected, 1e-12 * expected);
}

TEST(Diagnostics, DistInitIsZeroAtStartAndTheNormOfTheStep) {
  Probe probe(make_model(), randn({3, 4, 6}, 9));
  EXPECT_EQ(probe.value(probe.run(), "dist_init"), 0.0);
  auto params = probe.model->parameters();
  const auto dV = randn(params[2].sizes(), 10), d1 = randn(params[3].sizes(), 11);
  {
    torch::NoGradGuard no_grad;
    params[2].add_(dV), params[3].add_(d1);
  }
  const double expected = std::sqrt(dV.pow(2).sum().item<double>() + d1.pow(2).sum().item<double>());
  EXPECT_NEAR(probe.value(probe.run(), "dist_init"), expected, 1e-12 * expected);
}

TEST(Diagnostics, NtkGramMatchesClosedFormUnderUniformAttention) {
  // With W_Q = W_K = 0, identity sigma and gamma_f = 0 the Jacobian is analytic for ALL
  // parameters. dZ = X dW_Q (X W_K)^T + ... vanishes, so the W_Q and W_K columns are exactly
  // 0 (only that those columns are present and zero is checked). S = 11^T / n, so
  // G_it = gamma_a x_it + W_V^T xbar_i, Phi = G W_1, Yhat_itk = c (Phi W_2)_tk, and with
  // M = W_1 W_2 the kernel of outputs (i,t,k), (j,s,l) is
  //   c^2 [ <Phi_it, Phi_js> delta_kl + <G_it, G_js> (W_2^T W_2)_kl + <xbar_i, xbar_j> (M^T M)_kl ]
  // from the W_2, W_1 and W_V columns respectively.
  const double c = 0.7;
  auto model = make_model([&](ModelOptions& o) {
    o.block.init.W_Q = 0.0, o.block.init.W_K = 0.0;
    o.block.activation = Activation::identity;
    o.block.output_scale = c;
    o.block.gamma_a = 0.8;
  });
  const auto X = randn({2, 3, 6}, 12);
  const auto K = ntk_gram(*model, X);  // (12, 12)

  torch::NoGradGuard no_grad;
  const auto& b = model->blocks->at<ResidualBlockImpl>(0);
  const auto t = model->trace(X).blocks[0];
  const auto xbar = X.mean(1);           // (N, d)
  const auto M = b.W_1.matmul(b.W_2);    // (d, d_y)
  const auto eye = torch::eye(2, kF64);  // d_y = 2
  auto expected = torch::einsum("ita,jsa,kl->itkjsl", {t.Phi, t.Phi, eye}) +
                  torch::einsum("ita,jsa,kl->itkjsl", {t.G, t.G, b.W_2.t().matmul(b.W_2)}) +
                  torch::einsum("ia,ja,kl->ikjl", {xbar, xbar, M.t().matmul(M)})
                      .view({2, 1, 2, 2, 1, 2})
                      .expand({2, 3, 2, 2, 3, 2});
  expected = (c * c) * expected.reshape({12, 12});
  EXPECT_LT((K - expected).abs().max().item<double>(), 1e-12 * expected.abs().max().item<double>());
  EXPECT_NEAR(ntk_lambda_min(*model, X).item<double>(), torch::linalg_eigvalsh(expected).min().item<double>(),
              1e-10 * expected.abs().max().item<double>());
}

TEST(Diagnostics, NtkGramMatchesFiniteDifferences) {
  // A general two-block model (tanh, both residuals, mean readout) against a Jacobian of
  // central differences: h = 1e-6 leaves about 1e-10 of error per entry.
  auto model = make_model([](ModelOptions& o) {
    o.layers = 2, o.readout = Readout::mean, o.block.activation = Activation::tanh, o.block.gamma_f = 1.0;
  });
  const auto X = randn({2, 3, 6}, 13);
  auto params = model->parameters();
  std::vector<torch::Tensor> columns;
  torch::NoGradGuard no_grad;
  const double h = 1e-6;
  for (auto& p : params) {
    auto flat = p.view({-1});
    for (int64_t k = 0; k < flat.numel(); ++k) {
      const double saved = flat[k].item<double>();
      flat[k].fill_(saved + h);
      auto plus = model->forward(X).flatten();
      flat[k].fill_(saved - h);
      auto minus = model->forward(X).flatten();
      flat[k].fill_(saved);
      columns.push_back((plus - minus) / (2 * h));
    }
  }
  const auto J = torch::stack(columns, 1);  // (R, P)
  EXPECT_EQ(ntk_jacobian_entries(*model, X), J.numel());
  const auto expected = J.matmul(J.t());
  const auto K = ntk_gram(*model, X);
  EXPECT_LT((K - expected).abs().max().item<double>(), 1e-7 * expected.abs().max().item<double>());
}

TEST(Diagnostics, NtkRefusedAboveSizeLimitIsNanAndWarnsOncePerRun) {
  Probe probe(make_model(), randn({2, 3, 6}, 14));
  probe.config.ntk = true;
  probe.config.ntk_max_entries = 10;
  testing::internal::CaptureStderr();
  const auto first = probe.run(), second = probe.run();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::isnan(probe.value(first, "ntk_lambda_min")));
  EXPECT_TRUE(std::isnan(probe.value(second, "ntk_lambda_min")));
  EXPECT_FALSE(std::isnan(probe.value(second, "pl_ratio")));  // the rest goes on
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("ntk_max_entries"), std::string::npos) << err;

  probe.config.ntk_max_entries = 50'000'000;  // allowed: a finite, positive eigenvalue
  EXPECT_GT(probe.value(probe.run(), "ntk_lambda_min"), 0.0);
}

/// Central differences of autograd's gradient along v: (g(theta + h v) - g(theta - h v)) / 2h,
/// flat over all parameters. Independent of the double backward behind hessian_vector_product.
torch::Tensor gradient_difference(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                  const torch::Tensor& v, double h) {
  auto params = model.parameters();
  const auto direction = split_like(v, params);
  auto shift = [&](double by) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].add_(direction[i], by);
  };
  auto flat_gradient = [&] {
    std::vector<torch::Tensor> flat;
    for (const auto& g : autograd_gradients(model, X, Y, Loss::sum).grads) flat.push_back(g.flatten());
    return torch::cat(flat);
  };
  shift(h);
  const auto plus = flat_gradient();
  shift(-2 * h);
  const auto minus = flat_gradient();
  shift(h);
  return (plus - minus) / (2 * h);
}

/// H v by Richardson's extrapolation of two central differences, which cancels their h^2
/// term: what is left, O(h^4) and O(eps / h), is about 1e-12 of |H v| for the model below.
torch::Tensor differenced_hessian_times(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                        const torch::Tensor& v) {
  return (4 * gradient_difference(model, X, Y, v, 5e-5) - gradient_difference(model, X, Y, v, 1e-4)) / 3;
}

/// A smooth two-block model with everything switched on that changes the Hessian's graph:
/// gelu, both residuals, a causal mask, two heads and pre-LayerNorm.
ResidualTransformer make_curved_model() {
  return make_model([](ModelOptions& o) {
    o.layers = 2, o.block.activation = Activation::gelu, o.block.gamma_f = 1.0, o.block.causal = true;
    o.block.heads = 2, o.block.pre_layer_norm = true;
  });
}

TEST(Diagnostics, HessianVectorProductsAreDifferencesOfTheGradient) {
  auto model = make_curved_model();
  const auto X = randn({3, 4, 6}, 16), Y = randn({3, 4, 2}, 17);
  const int64_t P = parameter_count(*model);
  for (int64_t seed : {18, 19}) {
    const auto v = randn({P}, seed);
    const auto Hv = hessian_vector_product(*model, X, Y, Loss::sum, v);
    const auto expected = differenced_hessian_times(*model, X, Y, v);
    ASSERT_EQ(Hv.sizes(), expected.sizes());
    EXPECT_LT((Hv - expected).norm().item<double>(), 1e-10 * expected.norm().item<double>()) << seed;
  }
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.requires_grad());  // left as it was
  EXPECT_THROW(hessian_vector_product(*model, X, Y, Loss::sum, torch::ones({P + 1}, kF64)), c10::Error);
}

TEST(Diagnostics, SharpnessIsTheLargestEigenvalueOfTheHessian) {
  // The whole Hessian from central differences of the gradient along each coordinate,
  // against Lanczos on double-backward products: two routes that share only autograd's
  // first derivative.
  auto model = make_curved_model();
  const auto X = randn({3, 4, 6}, 20), Y = randn({3, 4, 2}, 21);
  const int64_t P = parameter_count(*model);
  std::vector<torch::Tensor> columns;
  for (int64_t k = 0; k < P; ++k)
    columns.push_back(
        differenced_hessian_times(*model, X, Y, torch::zeros({P}, kF64).index_fill_(0, torch::tensor({k}), 1.0)));
  auto H = torch::stack(columns, 1);
  EXPECT_LT((H - H.t()).abs().max().item<double>(),
            1e-10 * H.abs().max().item<double>());                // symmetric: a check of the differences
  const auto lambda = torch::linalg_eigvalsh(0.5 * (H + H.t()));  // ascending
  const double top = lambda[-1].item<double>(), bottom = lambda[0].item<double>();
  ASSERT_LT(bottom, 0.0);  // indefinite: the largest eigenvalue is not the largest in size by accident
  const auto found = sharpness(*model, X, Y, Loss::sum);
  ASSERT_TRUE(found.converged);
  EXPECT_NEAR(found.value, top, 1e-10 * top);
  EXPECT_LT(found.iterations, kSharpnessMaxProducts);
  EXPECT_EQ(sharpness(*model, X, Y, Loss::sum).value, found.value);  // a fixed start: the same number again

  // The mean loss is the sum loss over N.
  EXPECT_NEAR(sharpness(*model, X, Y, Loss::mean).value, found.value / 3, 1e-10 * top);
}

TEST(Diagnostics, GdNearAMinimumIsStableJustBelowTwoOverTheSharpnessAndNotJustAbove) {
  // What the number means: at a minimum of zero loss the Hessian is J^T J, GD is a linear
  // map of the displacement, and the component along the top eigenvector is multiplied by
  // 1 - lr lambda_max each step. At lr = 1.9 / sharpness every component shrinks; at 2.1 /
  // sharpness the top one grows 1.1-fold a step. Targets of the model's own output make
  // theta* an exact minimum; a displacement of 1e-8 keeps GD in the quadratic regime.
  auto model = make_model([](ModelOptions& o) { o.block.activation = Activation::gelu; });
  const auto X = randn({3, 4, 6}, 23);
  torch::Tensor Y;
  {
    torch::NoGradGuard no_grad;
    Y = model->forward(X).detach();
  }
  ASSERT_LT(autograd_gradients(*model, X, Y, Loss::sum).loss.item<double>(), 1e-28);  // zero but for rounding
  const double lambda_max = sharpness(*model, X, Y, Loss::sum).value;
  ASSERT_GT(lambda_max, 0.0);
  auto params = model->parameters();
  std::vector<torch::Tensor> minimum;
  for (const auto& p : params) minimum.push_back(p.detach().clone());
  auto loss_ratio_after = [&](double lr, int steps) {
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i)
        params[i].copy_(minimum[i] + 1e-8 * randn(minimum[i].sizes(), 24 + static_cast<int64_t>(i)));
    }
    const double start = autograd_gradients(*model, X, Y, Loss::sum).loss.item<double>();
    for (int t = 0; t < steps; ++t) {
      const auto state = autograd_gradients(*model, X, Y, Loss::sum);
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) params[i].sub_(lr * state.grads[i]);
    }
    return autograd_gradients(*model, X, Y, Loss::sum).loss.item<double>() / start;
  };
  EXPECT_LT(loss_ratio_after(1.9 / lambda_max, 100), 1.0);    // 0.012 here
  EXPECT_GT(loss_ratio_after(2.1 / lambda_max, 100), 100.0);  // 6.6e6 here
}

TEST(Diagnostics, SharpnessColumnIsTheSharpnessAndConvergesWithoutAWarning) {
  Probe probe(make_model(), randn({2, 3, 6}, 22));
  probe.config.sharpness = true;
  const double expected = sharpness(*probe.model, probe.X, probe.Y, Loss::sum).value;
  testing::internal::CaptureStderr();
  EXPECT_EQ(probe.value(probe.run(), "sharpness"), expected);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Diagnostics, DivergedStateGivesNanNotAnException) {
  Probe probe(make_model(), randn({2, 3, 6}, 15));
  probe.config.ntk = probe.config.sharpness = true;
  {
    torch::NoGradGuard no_grad;
    probe.model->parameters()[2].fill_(std::numeric_limits<double>::quiet_NaN());  // W_V
  }
  std::vector<double> values;
  ASSERT_NO_THROW(values = probe.run());
  for (const char* name : {"sigma_min_g1", "cond_g1", "cond_gstack1", "sigma_min_phi", "ntk_lambda_min", "sharpness"})
    EXPECT_TRUE(std::isnan(probe.value(values, name))) << name;
}

TEST(Diagnostics, LinearRateOfGeometricSequenceIsItsRatio) {
  std::vector<int64_t> iters;
  std::vector<double> losses;
  for (int64_t t = 0; t <= 2000; ++t) iters.push_back(t), losses.push_back(5.0 * std::pow(0.97, t));
  EXPECT_NEAR(linear_rate(iters, losses, std::nullopt), 0.97, 1e-12);
  // Far from iteration 0 the centred fit keeps its accuracy.
  for (auto& t : iters) t += 10'000'000;  // uncentred sums lose 1e-10 here
  EXPECT_NEAR(linear_rate(iters, losses, std::nullopt), 0.97, 1e-12);
  EXPECT_TRUE(std::isnan(linear_rate({0}, {1.0}, std::nullopt)));
}

TEST(Diagnostics, LinearRateStopsAtItersToTol) {
  // Geometric until iteration 300, then a plateau the fit must not see.
  std::vector<int64_t> iters;
  std::vector<double> losses;
  for (int64_t t = 0; t <= 1000; ++t) iters.push_back(t), losses.push_back(std::pow(0.9, std::min<int64_t>(t, 300)));
  EXPECT_NEAR(linear_rate(iters, losses, 300), 0.9, 1e-12);
  EXPECT_GT(linear_rate(iters, losses, std::nullopt), 0.95);
}

}  // namespace
}  // namespace resgd
