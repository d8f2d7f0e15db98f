// Tests of the hand-derived gradients: docs/design.md, "Hand-derived gradients".
// In the order of STYLE.md: one block against autograd of sum(H_out * R); the whole model
// against autograd, and autograd against finite differences, over a grid of settings; GD
// trajectories; then the `gradcheck` command. Small seeded float64 problems throughout.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "resgd/compute/compute.h"
#include "resgd/core/config.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/gradcheck.h"
#include "resgd/science/model.h"

namespace resgd {
namespace {

constexpr int64_t kSamples = 3, kSeqLen = 4, kDim = 5, kKeyDim = 3, kWidth = 7, kTargetDim = 2;
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const std::vector<std::pair<std::string, Activation>> kActivations = {{"Relu", Activation::relu},
                                                                      {"Gelu", Activation::gelu},
                                                                      {"Softplus", Activation::softplus},
                                                                      {"Tanh", Activation::tanh},
                                                                      {"LeakyRelu", Activation::leaky_relu},
                                                                      {"Identity", Activation::identity}};

/// One model setting of the grid; `label` names it in failure messages.
struct Case {
  std::string label;
  int64_t layers = 2;
  double gamma_a = 1.0, gamma_f = 1.0;
  Activation activation = Activation::gelu;
  Readout readout = Readout::tokens;
  Loss loss = Loss::sum;
  int64_t seq_len = kSeqLen, key_dim = kKeyDim, target_dim = kTargetDim, heads = 1;
  bool causal = false, pre_layer_norm = false;
  double output_scale = 1.0;
  double temperature = std::sqrt(static_cast<double>(kKeyDim));
};

ModelOptions options_for(const Case& c) {
  ModelOptions o;
  o.layers = c.layers;
  o.out_dim = c.target_dim;
  o.readout = c.readout;
  BlockOptions& b = o.block;
  b.dim = kDim;
  b.key_dim = c.key_dim;
  b.heads = c.heads;
  b.ffn_width = kWidth;
  b.out_dim = kDim;
  b.gamma_a = c.gamma_a;
  b.gamma_f = c.gamma_f;
  b.temperature = c.temperature;
  b.output_scale = c.output_scale;
  b.activation = c.activation;
  b.leaky_slope = 0.1;  // large enough that a wrong slope would show
  b.causal = c.causal;
  b.pre_layer_norm = c.pre_layer_norm;
  return o;
}

struct Problem {
  ResidualTransformer model;
  torch::Tensor X, Y;
};

Problem make_problem(const Case& c, const ModelOptions& options) {
  auto gen = make_generator(0, "test.data");
  auto X = torch::randn({kSamples, c.seq_len, kDim}, gen, kF64);
  auto Y = c.readout == Readout::mean ? torch::randn({kSamples, c.target_dim}, gen, kF64)
                                      : torch::randn({kSamples, c.seq_len, c.target_dim}, gen, kF64);
  return {ResidualTransformer(options), X, Y};
}
Problem make_problem(const Case& c) { return make_problem(c, options_for(c)); }

bool all_zero(const torch::Tensor& t) { return t.eq(0).all().item<bool>(); }

// ---------------------------------------------------------------------------------------
TEST(AnalyticGrad, ActivationDerivativeMatchesAutogradAtKinksAndThresholds) {
  auto U = torch::tensor({-30.0, -2.0, -1e-3, 0.0, 1e-3, 0.7, 19.999, 20.0, 20.001, 30.0}, kF64);
  for (const auto& [name, a] : kActivations) {
    auto x = U.clone().requires_grad_(true);
    auto reference = torch::autograd::grad({activate(x, a, 0.1).sum()}, {x})[0];
    auto derivative = activation_derivative(U, a, 0.1);
    EXPECT_TRUE(torch::allclose(derivative, reference, /*rtol=*/1e-15, /*atol=*/0))
        << name << "\nanalytic " << derivative << "\nautograd " << reference;
  }
  EXPECT_EQ(activation_derivative(U, Activation::relu, 0.1)[3].item<double>(), 0.0);
  EXPECT_EQ(activation_derivative(U, Activation::leaky_relu, 0.1)[3].item<double>(), 0.1);
  EXPECT_LT(activation_derivative(U, Activation::softplus, 0.1)[7].item<double>(), 1.0);
  EXPECT_EQ(activation_derivative(U, Activation::softplus, 0.1)[8].item<double>(), 1.0);
}

TEST(AnalyticGrad, BlockBackwardMatchesAutogradOfRandomProjection) {
  // As llm.c checks layernorm: L = sum(H_out * R) for a random R has dL/dH_out = R.
  for (const int64_t out_dim : {kDim, kTargetDim}) {  // with and without the FFN residual
    for (const bool pre_layer_norm : {false, true}) {
      BlockOptions o = options_for(Case{}).block;
      o.out_dim = out_dim;
      o.pre_layer_norm = pre_layer_norm;
      o.gamma_a = 0.5;
      o.gamma_f = 0.7;
      o.causal = true;
      ResidualBlock block(o);
      auto gen = make_generator(1, "test.block");
      block->initialize(gen);
      auto H_in = torch::randn({kSamples, kSeqLen, kDim}, gen, kF64);
      auto R = torch::randn({kSamples, kSeqLen, out_dim}, gen, kF64);

      auto H = H_in.clone().requires_grad_(true);
      auto reference = torch::autograd::grad({(block->forward(H) * R).sum()},
                                             {block->W_Q, block->W_K, block->W_V, block->W_1, block->W_2, H});
      BlockGradients g;
      {
        torch::NoGradGuard no_grad;
        g = block_backward(*block, block_forward(*block, H_in), R);
      }
      const std::vector<std::pair<std::string, torch::Tensor>> analytic = {
          {"dW_Q", g.dW_Q}, {"dW_K", g.dW_K}, {"dW_V", g.dW_V}, {"dW_1", g.dW_1}, {"dW_2", g.dW_2}, {"dH_in", g.dH_in}};
      for (size_t i = 0; i < analytic.size(); ++i) {
        const double error = relative_error(analytic[i].second, reference[i]);
        EXPECT_LE(error, kAnalyticTolerance)
            << analytic[i].first << " (out_dim " << out_dim << ", pre-LN " << pre_layer_norm << ")";
      }
    }
  }
}

TEST(AnalyticGrad, LayerNormMatchesPytorchsForwardAndBackward) {
  // torch::layer_norm (no weight or bias) is PyTorch's own kernel and its own derivative.
  auto gen = make_generator(2, "test.layer_norm");
  const auto X = torch::randn({3, 4, 6}, gen, kF64).mul_(torch::rand({3, 4, 1}, gen, kF64) * 10);
  const auto dY = torch::randn({3, 4, 6}, gen, kF64);
  const auto x = X.clone().requires_grad_(true);
  const auto reference = torch::layer_norm(x, {6}, {}, {}, kLayerNormEps);
  const auto dX_reference = torch::autograd::grad({(reference * dY).sum()}, {x})[0];
  const LayerNormed normed = layer_norm(X);
  EXPECT_LE(relative_error(normed.value, reference.detach()), 1e-14);
  EXPECT_LE(relative_error(layer_norm_backward(dY, normed), dX_reference), 1e-13);
  EXPECT_EQ(normed.rstd.sizes(), torch::IntArrayRef({3, 4, 1}));
}

// ---------------------------------------------------------------------------------------
// The grid: activation (one TEST_P instance each, so ctest runs a handful of processes)
// x depth x residual switches x (readout, loss, shape) variants, looped inside.

std::vector<Case> grid_cases(Activation activation) {
  const std::vector<std::pair<std::string, std::pair<double, double>>> residuals = {{"NoResidual", {0.0, 0.0}},
                                                                                    {"AttnResidual", {1.0, 0.0}},
                                                                                    {"FfnResidual", {0.0, 1.0}},
                                                                                    {"BothResiduals", {1.0, 1.0}},
                                                                                    {"HalfResiduals", {0.5, 0.5}}};
  std::vector<Case> cases;
  for (const int64_t layers : {1, 2, 3}) {
    for (const auto& [residual, gammas] : residuals) {
      for (const int variant : {0, 1, 2, 3, 4, 5}) {
        Case c;
        c.layers = layers;
        c.gamma_a = gammas.first;
        c.gamma_f = gammas.second;
        c.activation = activation;
        c.label = "L" + std::to_string(layers) + residual;
        if (variant == 0) {  // the defaults: d_k != d, d_y != d (no FFN residual at the top)
          c.label += "TokensSum";
        } else if (variant == 1) {
          c.label += "MeanReadoutMeanLoss";
          c.readout = Readout::mean;
          c.loss = Loss::mean;
        } else if (variant == 2) {
          c.label += "CausalTokensMeanLossFullWidth";
          c.causal = true;
          c.loss = Loss::mean;
          c.target_dim = kDim;  // the last block keeps its FFN residual
        } else if (variant == 5) {
          c.label += "PreLayerNormFullWidthMeanReadout";
          c.pre_layer_norm = true;
          c.target_dim = kDim;  // the last block keeps its FFN residual
          c.readout = Readout::mean;
        } else if (variant == 4) {
          c.label += "FiveHeadsCausal";  // d = 5: one value column and two key columns a head
          c.heads = 5;
          c.key_dim = 10;
          c.causal = true;
          c.temperature = std::sqrt(2.0);
        } else {
          c.label += "SingleTokenCausalMeanReadoutWideKeys";
          c.seq_len = 1;
          c.causal = true;
          c.readout = Readout::mean;
          c.key_dim = 8;  // d_k > d
          c.output_scale = 0.5;
          c.temperature = 1.3;
        }
        cases.push_back(c);
      }
    }
  }
  return cases;
}

class AnalyticGradGrid : public ::testing::TestWithParam<std::pair<std::string, Activation>> {};

TEST_P(AnalyticGradGrid, AnalyticMatchesAutogradToRoundoff) {
  for (const Case& c : grid_cases(GetParam().second))
    for (const Backend backend : {Backend::reference, Backend::tuned}) {
      SCOPED_TRACE(c.label + " " + to_string(backend));
      compute::Policy policy;
      policy.backend = backend;
      const compute::Scope scope(policy);
      auto p = make_problem(c);
      const auto analytic = analytic_gradients(*p.model, p.X, p.Y, c.loss);
      const auto autograd = autograd_gradients(*p.model, p.X, p.Y, c.loss);
      // With the tuned backend the two forward passes differ in how the attention products
      // sum (the loop without autograd, BLAS with it): the losses agree to rounding.
      EXPECT_NEAR(analytic.loss.item<double>(), autograd.loss.item<double>(), 1e-13 * autograd.loss.item<double>());
      const auto names = p.model->parameter_names();
      const auto parameters = p.model->parameters();
      ASSERT_EQ(analytic.grads.size(), names.size());
      // gradcheck's yardstick: a parameter carrying under a thousandth of the gradient (W_Q of
      // a third block whose tokens the blocks below have nearly collapsed: 1e-6 of it under
      // pre-LN) is judged on that scale, where its rounding lives.
      double total = 0;
      for (const auto& g : autograd.grads) total += g.pow(2).sum().item<double>();
      for (size_t i = 0; i < names.size(); ++i) {
        ASSERT_EQ(analytic.grads[i].sizes(), parameters[i].sizes()) << names[i];
        EXPECT_LE(relative_error(analytic.grads[i], autograd.grads[i], kGradientFloor * std::sqrt(total)),
                  kAnalyticTolerance)
            << names[i];
      }
    }
}

TEST_P(AnalyticGradGrid, AutogradMatchesFiniteDifferences) {
  for (const Case& c : grid_cases(GetParam().second)) {
    // This checks the model (and autograd) rather than the hand-derived backward, so the
    // single-switch settings, the costliest half of the grid, are left to the test above.
    if (c.gamma_a != c.gamma_f) continue;
    SCOPED_TRACE(c.label);
    auto p = make_problem(c);
    const auto autograd = autograd_gradients(*p.model, p.X, p.Y, c.loss);
    const auto names = p.model->parameter_names();
    auto parameters = p.model->parameters();
    // The yardstick of gradcheck: ||g_p||, floored at a thousandth of the whole gradient.
    double total = 0;
    for (const auto& g : autograd.grads) total += g.pow(2).sum().item<double>();
    auto gen = make_generator(0, "test.directions");
    for (size_t i = 0; i < names.size(); ++i) {
      const auto& g = autograd.grads[i];
      const double scale = std::max(g.norm().item<double>(), kGradientFloor * std::sqrt(total));
      for (int k = 0; k < kFiniteDifferenceDirections; ++k) {
        auto v = torch::randn(g.sizes(), gen, kF64);
        v /= v.norm();
        const double fd = finite_difference(*p.model, parameters[i], v, p.X, p.Y, c.loss);
        const double exact = (g * v).sum().item<double>();
        EXPECT_LE(std::abs(fd - exact), kFiniteDifferenceTolerance * scale)
            << names[i] << " direction " << k << ": fd " << fd << " vs autograd " << exact;
      }
    }
  }
}

TEST_P(AnalyticGradGrid, HessianProductsMatchDifferencesOfTheGradient) {
  // The double backward behind diagnostics.sharpness, for every activation (relu's kinks:
  // the step shrinks until no unit changes sign) and every variant of the grid, against
  // gradcheck's differences of autograd's gradient: two routes that share only autograd's
  // first derivative.
  for (const Case& c : grid_cases(GetParam().second)) {
    if (c.gamma_a != c.gamma_f) continue;  // as for the gradient's differences above
    SCOPED_TRACE(c.label);
    auto p = make_problem(c);
    auto gen = make_generator(0, "test.hessian_directions");
    const HessianCheck check = compare_hessian_products(*p.model, p.X, p.Y, c.loss, gen, 1);
    EXPECT_GT(check.product_norm, 0.0);
    // gradcheck's tolerance is 1e-6, for any configuration; on these problems the worst
    // error is 7.5e-11 (softplus).
    EXPECT_LE(check.error, 1e-9);
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, AnalyticGradGrid, ::testing::ValuesIn(kActivations),
                         [](const auto& param_info) { return param_info.param.first; });

// ---------------------------------------------------------------------------------------
TEST(AnalyticGrad, UniformAttentionIsAFixedPointOfQueryAndKey) {
  Case c;
  c.layers = 2;
  auto options = options_for(c);
  options.block.init.W_Q = 0.0;
  options.block.init.W_K = 0.0;
  auto p = make_problem(c, options);
  auto is_query_or_key = [](const std::string& name) {
    return name.find("W_Q") != std::string::npos || name.find("W_K") != std::string::npos;
  };
  const auto names = p.model->parameter_names();
  // Z = H W_Q (H W_K)^T = 0 exactly, and dW_Q = sum_i H_i^T dZ_i K_i / tau with K = 0
  // (dW_K likewise with Q = 0): exact zeros, not merely small ones.
  const auto autograd = autograd_gradients(*p.model, p.X, p.Y, c.loss);
  for (int step = 0; step < 10; ++step) {
    const auto analytic = analytic_gradients(*p.model, p.X, p.Y, c.loss);
    torch::NoGradGuard no_grad;
    auto parameters = p.model->parameters();
    for (size_t i = 0; i < names.size(); ++i) {
      if (is_query_or_key(names[i])) {
        ASSERT_TRUE(all_zero(analytic.grads[i])) << names[i] << " at step " << step;
        if (step == 0) {
          EXPECT_TRUE(all_zero(autograd.grads[i])) << names[i] << " by autograd";
        }
      }
      parameters[i].sub_(0.02 * analytic.grads[i]);
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (is_query_or_key(names[i])) {
      EXPECT_TRUE(all_zero(p.model->parameters()[i])) << names[i];
    }
  }
}

TEST(AnalyticGrad, HundredAnalyticGdStepsTrackAutogradGd) {
  // Same model twice; by hand, theta <- theta - eta g, as training does.
  Case c;
  c.activation = Activation::relu;  // kinks included: the trajectories must not part there
  auto analytic_run = make_problem(c);
  auto autograd_run = make_problem(c);
  constexpr double kLearningRate = 0.02;
  constexpr int kSteps = 100;
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < kSteps; ++step) {
    auto a = analytic_gradients(*analytic_run.model, analytic_run.X, analytic_run.Y, c.loss);
    auto b = autograd_gradients(*autograd_run.model, autograd_run.X, autograd_run.Y, c.loss);
    const double la = a.loss.item<double>(), lb = b.loss.item<double>();
    ASSERT_LE(std::abs(la - lb), 1e-9 * std::abs(lb)) << "step " << step;
    if (step == 0) first_loss = lb;
    last_loss = lb;
    torch::NoGradGuard no_grad;
    auto pa = analytic_run.model->parameters();
    auto pb = autograd_run.model->parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      pa[i].sub_(kLearningRate * a.grads[i]);
      pb[i].sub_(kLearningRate * b.grads[i]);
    }
  }
  EXPECT_LT(last_loss, 0.5 * first_loss) << "the problem should actually train";
  const auto names = analytic_run.model->parameter_names();
  const auto pa = analytic_run.model->parameters();
  const auto pb = autograd_run.model->parameters();
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_LE(relative_error(pa[i], pb[i]), 1e-9) << names[i];
  }
}

TEST(AnalyticGrad, Float32GradientsMatchFloat64AutogradToFloat32Rounding) {
  // A float32 run's gradients go through the step's own products (token_mm: oneDNN where it
  // is loaded, in every layout the backward pass reads), the hand-derived ones and
  // autograd's alike (autograd records each product as one operation: products.h); the
  // reference is autograd of the same float32 parameters and data in float64. Two blocks,
  // 256 tokens, so every product sums 32 to 256 terms; a wrong operand layout would be off
  // by O(1). With the FFN residual, H_out = gamma_f G + Phi W_2 is one product onto G;
  // without it, c Phi W_2 scales the product in place (output scale c = 0.5).
  // Hessian-vector products (diagnostics.sharpness) differentiate autograd's backward
  // products again.
  for (const double gamma_f : {0.0, 1.0}) {
    SCOPED_TRACE("gamma_f " + std::to_string(gamma_f));
    ModelOptions o;
    o.layers = 2;
    o.out_dim = 16;
    o.block.dim = 32;
    o.block.key_dim = 32;
    o.block.ffn_width = 128;
    o.block.out_dim = 32;
    o.block.temperature = std::sqrt(32.0);
    o.block.activation = Activation::relu;
    o.block.gamma_f = gamma_f;
    o.block.output_scale = gamma_f == 0.0 ? 0.5 : 1.0;
    auto gen = make_generator(0, "test.data");
    const auto X = torch::randn({16, 16, 32}, gen, kF64).to(torch::kFloat32);
    const auto Y = torch::randn({16, 16, 16}, gen, kF64).to(torch::kFloat32);
    ResidualTransformer single(o), reference(o);
    single->to(torch::kFloat32);
    {
      torch::NoGradGuard no_grad;  // the reference holds the float32 parameters exactly
      auto from = single->parameters(), to = reference->parameters();
      for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i].to(torch::kFloat64));
    }
    const auto X64 = X.to(torch::kFloat64), Y64 = Y.to(torch::kFloat64);
    const auto exact = autograd_gradients(*reference, X64, Y64, Loss::sum);
    const auto names = single->parameter_names();
    for (const std::string source : {"analytic", "autograd"}) {
      const auto ours = source == "analytic" ? analytic_gradients(*single, X, Y, Loss::sum)
                                             : autograd_gradients(*single, X, Y, Loss::sum);
      for (size_t i = 0; i < names.size(); ++i) {
        const double error = (ours.grads[i].to(torch::kFloat64) - exact.grads[i]).norm().item<double>() /
                             exact.grads[i].norm().item<double>();
        EXPECT_LE(error, 2e-5) << source << ", " << names[i];  // float32 eps is 6e-8; measured 1.9e-7 to 6.0e-7
      }
      EXPECT_NEAR(ours.loss.item<double>(), exact.loss.item<double>(), 1e-5 * exact.loss.item<double>()) << source;
    }
    auto direction_gen = make_generator(0, "test.hessian_directions");
    const auto v = torch::randn({parameter_count(*reference)}, direction_gen, kF64);
    const auto Hv = hessian_vector_product(*single, X, Y, Loss::sum, v.to(torch::kFloat32)).to(torch::kFloat64);
    const auto Hv_exact = hessian_vector_product(*reference, X64, Y64, Loss::sum, v);
    const double error = (Hv - Hv_exact).norm().item<double>() / Hv_exact.norm().item<double>();
    std::cout << "[ MEASURED ] H v in float32, relative error " << error << "\n";
    EXPECT_LE(error, 2e-5);  // measured 2.4e-7 and 2.9e-7
  }
}

// ---------------------------------------------------------------------------------------
TEST(AnalyticGrad, GradcheckChecksTheBackendTheExperimentAsksFor) {
  // `compute.backend: tuned` checks the tuned routes' gradients: gradcheck takes them (the
  // small batched products' loop, counted at the seam); the reference backend takes none.
  ExperimentConfig config;
  config.data.num_samples = kSamples;
  config.data.seq_len = kSeqLen;
  config.data.dim = kDim;
  config.data.target_dim = kTargetDim;
  config.model.ffn_width = kWidth;
  config.model.key_dim = kKeyDim;
  std::map<std::string, uint64_t> taken;
  for (const Backend backend : {Backend::reference, Backend::tuned}) {
    config.compute.backend = backend;
    const uint64_t before = compute::times_taken(compute::Tuning::loops);
    std::ostringstream out;
    EXPECT_EQ(run_gradcheck(config, torch::kCPU, out), 0) << out.str();
    taken[to_string(backend)] = compute::times_taken(compute::Tuning::loops) - before;
  }
  EXPECT_EQ(taken["reference"], 0u);
  EXPECT_GT(taken["tuned"], 0u);
}

TEST(AnalyticGrad, GradcheckPassesAndNamesEveryParameter) {
  ExperimentConfig config;
  config.name = "gradcheck_test";
  config.dtype = Dtype::float32;  // gradcheck promotes to float64 regardless
  config.data.num_samples = kSamples;
  config.data.seq_len = kSeqLen;
  config.data.dim = kDim;
  config.data.target_dim = kTargetDim;
  config.model.layers = 2;
  config.model.ffn_width = kWidth;
  config.model.key_dim = kKeyDim;
  config.model.activation = Activation::gelu;
  config.model.residual_ffn = Gain{1.0};
  std::ostringstream out;
  EXPECT_EQ(run_gradcheck(config, torch::kCPU, out), 0) << out.str();
  EXPECT_NE(out.str().find("Hessian-vector products"), std::string::npos) << out.str();
  for (const std::string block : {"blocks.0.", "blocks.1."}) {
    for (const std::string matrix : {"W_Q", "W_K", "W_V", "W_1", "W_2"}) {
      EXPECT_NE(out.str().find(block + matrix), std::string::npos) << block + matrix << "\n" << out.str();
    }
  }
}

}  // namespace
}  // namespace resgd
