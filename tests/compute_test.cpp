// The compute seam: the tuned backend's every route against the product of the same
// entries in a wider type, what autograd sees through it, and numbers that do not follow
// the thread count. The reference backend is plain LibTorch.
#include "resgd/compute/compute.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "resgd/compute/loops.h"
#include "resgd/compute/onednn.h"
#include "resgd/compute/process.h"
#include "resgd/compute/row_blocks.h"
#include "test_util.h"

namespace resgd {
namespace {

torch::Tensor draw(std::vector<int64_t> shape, uint64_t seed, torch::Dtype dtype) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn(shape, generator, torch::TensorOptions().dtype(torch::kFloat64)).to(dtype);
}

/// The tuned backend, every tuning on, with `threads` parts a product.
compute::Policy tuned(int threads = 1) {
  compute::Policy p;
  p.backend = Backend::tuned;
  p.threads = threads;
  return p;
}

/// The largest error of `ours` against beta C + alpha A B computed from the same entries
/// in float64 (long double for float64 entries: their products are exact there up to
/// 2^-64), over what rounding in the operands' dtype allows for each entry: any order of
/// summing K products, fused or not, stays within K eps (|beta C| + |alpha| |A| |B|) plus
/// one rounding of the result (Higham, Accuracy and Stability, 3.5). Below 1 passes.
double error_over_rounding_bound(const torch::Tensor& ours, const torch::Tensor& C, const torch::Tensor& A,
                                 const torch::Tensor& B, double beta, double alpha) {
  const bool wide = A.scalar_type() == torch::kFloat64;
  const double eps = std::ldexp(1.0, wide ? -53 : -24);
  const auto a = A.to(torch::kFloat64).contiguous(), b = B.to(torch::kFloat64).contiguous();
  auto exact = torch::empty({a.size(0), b.size(1)}, torch::kFloat64);
  auto magnitude = torch::empty_like(exact);
  const auto a_ = a.accessor<double, 2>(), b_ = b.accessor<double, 2>();
  auto exact_ = exact.accessor<double, 2>(), magnitude_ = magnitude.accessor<double, 2>();
  for (int64_t i = 0; i < a.size(0); ++i)  // long double: an independent product, not LibTorch's
    for (int64_t j = 0; j < b.size(1); ++j) {
      long double sum = 0, size = 0;
      for (int64_t k = 0; k < a.size(1); ++k) {
        const long double term = static_cast<long double>(a_[i][k]) * b_[k][j];
        sum += term;
        size += term < 0 ? -term : term;
      }
      exact_[i][j] = static_cast<double>(alpha * sum);
      magnitude_[i][j] = static_cast<double>(std::abs(alpha) * size);
    }
  if (C.defined()) {
    exact.add_(C.to(torch::kFloat64), beta);
    magnitude.add_(C.to(torch::kFloat64).abs(), std::abs(beta));
  }
  const double K = static_cast<double>(A.size(1)) + 2;  // the sum, alpha, beta C
  const auto bound = magnitude.mul_(K * eps).add_(exact.abs().mul(eps)).add_(1e-300);
  return (ours.to(torch::kFloat64) - exact).abs().div_(bound).max().item<double>();
}

TEST(Compute, EveryRouteOfTheTunedBackendIsTheProductToRounding) {
  // The step's products at small sizes (the bound's reference is a plain loop): G W_1, Phi
  // W_2 (accumulating onto G), dH W_2^T (B transposed), Phi^T dH (A transposed: a weight
  // gradient), a column slice (leading dimension past its width), a strided view; float32
  // (oneDNN where it is loaded) and float64 (in two row blocks at 1-2 x 10^6 multiply-adds).
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (const int64_t tokens : {96, 257}) {  // 257 x 16 x 256: just above OpenBLAS's small-kernel limit
      const auto G = draw({tokens, 16}, 1, dtype), W_1 = draw({16, 256}, 2, dtype);
      const auto Phi = draw({tokens, 256}, 3, dtype), W_2 = draw({256, 16}, 4, dtype),
                 dH = draw({tokens, 16}, 5, dtype);
      const auto wide = draw({tokens, 40}, 6, dtype), every_other = draw({16, 2 * tokens}, 7, dtype);
      const std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor>> products = {
          {"G W_1", G, W_1},
          {"Phi W_2", Phi, W_2},
          {"dH W_2^T", dH, W_2.t()},
          {"Phi^T dH", Phi.t(), dH},
          {"column slice", wide.narrow(1, 3, 16), W_1},
          {"strided", every_other.slice(1, 0, 2 * tokens, 2).t(), W_1}};
      const compute::Policy policy = tuned(2);
      const compute::Scope scope(policy);
      for (const auto& [name, A, B] : products) {
        SCOPED_TRACE(name + " " + c10::toString(dtype) + " " + std::to_string(tokens));
        const auto C = draw({A.size(0), B.size(1)}, 8, dtype);
        EXPECT_LT(error_over_rounding_bound(compute::mm(A, B), {}, A, B, 0.0, 1.0), 1.0);
        EXPECT_LT(error_over_rounding_bound(compute::addmm(C, A, B, 0.5, -2.0), C, A, B, 0.5, -2.0), 1.0);
        auto accumulated = C.clone();
        compute::addmm_(accumulated, A, B);
        EXPECT_LT(error_over_rounding_bound(accumulated, C, A, B, 1.0, 1.0), 1.0);
      }
    }
  }
  // The bound sees a wrong answer: one float16 rounding of B's entries.
  const auto G = draw({64, 16}, 1, torch::kFloat32), W_1 = draw({16, 64}, 2, torch::kFloat32);
  EXPECT_GT(error_over_rounding_bound(G.mm(W_1.to(torch::kFloat16).to(torch::kFloat32)), {}, G, W_1, 0.0, 1.0), 1.0);
}

TEST(Compute, SmallBatchedProductsInOneLoopAreBmmsToRoundingInEveryLayout) {
  const compute::Policy policy = tuned();
  const compute::Scope scope(policy);
  for (const auto& [batch, rows, inner, cols] : {std::array<int64_t, 4>{32, 8, 16, 8},
                                                 {32, 8, 8, 16},
                                                 {3, 1, 1, 1},
                                                 {5, 7, 3, 13},
                                                 {256, 16, 64, 16},
                                                 {4, 5, 37, 6},
                                                 {0, 4, 4, 4}}) {
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      const double tolerance = dtype == torch::kFloat64 ? 1e-14 : 1e-5;
      const auto A = draw({batch, rows, inner}, 1, dtype), B = draw({batch, inner, cols}, 2, dtype);
      // The attention's layouts: plain (S V), B transposed (Q K^T), A transposed (S^T dA).
      const auto At = A.transpose(1, 2).contiguous().transpose(1, 2);
      const auto Bt = B.transpose(1, 2).contiguous().transpose(1, 2);
      for (const auto& [a, b] : {std::pair{A, B}, std::pair{A, Bt}, std::pair{At, B}, std::pair{At, Bt}}) {
        ASSERT_TRUE(compute::loop_multiplies(a, b));
        const auto ours = compute::bmm(a, b), reference = a.bmm(b);
        ASSERT_EQ(ours.sizes(), reference.sizes());
        if (reference.numel() == 0) continue;
        const double scale = std::max(reference.abs().max().item<double>(), 1.0);
        EXPECT_LE((ours - reference).abs().max().item<double>(), tolerance * scale)
            << c10::toString(dtype) << " " << a.sizes() << " " << a.strides() << " x " << b.strides();
      }
    }
  }
  // Larger products and other dtypes go to torch::bmm.
  EXPECT_FALSE(
      compute::loop_multiplies(draw({2, 128, 128}, 5, torch::kFloat64), draw({2, 128, 128}, 6, torch::kFloat64)));
  EXPECT_FALSE(compute::loop_multiplies(draw({2, 4, 4}, 5, torch::kFloat16), draw({2, 4, 4}, 6, torch::kFloat16)));
}

TEST(Compute, WhatAutogradMustSeeIsRecordedAndDifferentiated) {
  // The routes found independently here: oneDNN's sgemm among the loaded symbols.
  const bool onednn = dlsym(RTLD_DEFAULT, "dnnl_sgemm") != nullptr;
  for (const Backend backend : {Backend::reference, Backend::tuned}) {
    compute::Policy policy = tuned();
    policy.backend = backend;
    const compute::Scope scope(policy);
    for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
      SCOPED_TRACE(to_string(backend) + " " + c10::toString(dtype));
      const auto A = draw({256, 16}, 1, dtype).requires_grad_(true), B = draw({16, 256}, 2, dtype);
      const auto C = draw({256, 256}, 3, dtype).requires_grad_(true);
      // d sum(C + 3 A B) / dA = 3 1 B^T, d / dC = 1.
      auto product = compute::addmm(C, A, B, 1.0, 3.0);
      ASSERT_TRUE(product.requires_grad());
      const bool on_onednn = backend == Backend::tuned && onednn && dtype == torch::kFloat32;
      EXPECT_EQ(product.grad_fn()->name().find("OnednnAddmm") != std::string::npos, on_onednn)
          << product.grad_fn()->name();
      product.sum().backward();
      const double tolerance = dtype == torch::kFloat32 ? 1e-4 : 1e-13;  // sums of 256 entries
      EXPECT_TRUE(torch::allclose(A.grad(), 3 * B.sum(1).expand({256, 16}), tolerance, tolerance));
      EXPECT_TRUE(torch::allclose(C.grad(), torch::ones_like(C)));
      // bmm under autograd: LibTorch's, whatever the backend.
      const auto S = draw({4, 8, 8}, 4, dtype).requires_grad_(true), V = draw({4, 8, 16}, 5, dtype);
      auto attended = compute::bmm(S, V);
      EXPECT_NE(attended.grad_fn()->name().find("Bmm"), std::string::npos) << attended.grad_fn()->name();
      attended.sum().backward();
      EXPECT_TRUE(torch::allclose(S.grad(), V.sum(2).unsqueeze(1).expand({4, 8, 8}), tolerance, tolerance));
    }
  }
  const compute::Policy policy = tuned();
  const compute::Scope scope(policy);
  EXPECT_THROW(compute::mm(draw({4, 3}, 1, torch::kFloat32), draw({4, 3}, 2, torch::kFloat32)), c10::Error);
}

TEST(Compute, AProductsNumbersDoNotFollowItsThreads) {
  // A run alone takes the cores, runs side by side one each: the same product must come
  // out the same bits either way, or a run's numbers would depend on --jobs.
  const auto A = draw({2048, 64}, 1, torch::kFloat32), B = draw({64, 512}, 2, torch::kFloat32);
  const auto W = draw({2048, 512}, 3, torch::kFloat32);
  auto products = [&](int threads) {
    const compute::Policy policy = tuned(threads);
    const compute::Scope scope(policy);
    return std::pair{compute::mm(A, B), compute::mm(A.t(), W)};  // split by rows, then by columns
  };
  const auto [whole, gradient_whole] = products(1);
  for (const int threads : {2, 3, 5}) {            // more parts than cores, and uneven parts
    for (int repeat = 0; repeat < 10; ++repeat) {  // the helpers wait awake and asleep alike
      const auto [split, gradient_split] = products(threads);
      ASSERT_TRUE(torch::equal(split, whole)) << threads << " threads";
      ASSERT_TRUE(torch::equal(gradient_split, gradient_whole)) << threads << " threads, split by columns";
      if (repeat % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

TEST(Compute, RowBlocksAreTheWholeProductToRounding) {
  // Each entry is one dot product either way (bit for bit with OpenBLAS's small kernels,
  // which this test process need not have chosen): the small size's FFN products, row
  // counts that divide and do not.
  const auto G = draw({257, 16}, 1, torch::kFloat64), W_1 = draw({16, 256}, 2, torch::kFloat64);
  const auto Phi = draw({257, 256}, 3, torch::kFloat64), W_2 = draw({256, 16}, 4, torch::kFloat64);
  auto difference = [](const torch::Tensor& ours, const torch::Tensor& reference) {
    return (ours - reference).abs().max().item<double>() / std::max(reference.abs().max().item<double>(), 1.0);
  };
  for (const auto& [A, B] : {std::pair{G, W_1}, std::pair{Phi, W_2}, std::pair{Phi, W_1.t()}}) {
    const auto C = draw({A.size(0), B.size(1)}, 8, torch::kFloat64);
    EXPECT_LE(difference(compute::addmm_in_row_blocks({}, A, B, 0.0, 1.0), A.mm(B)), 1e-14);
    EXPECT_LE(difference(compute::addmm_in_row_blocks(C, A, B, 0.5, -2.0), torch::addmm(C, A, B, 0.5, -2.0)), 1e-14);
  }
  // Only just above the small kernels' limit of 10^6 multiply-adds, never where autograd sees it.
  const bool small_kernels = compute::blas_has_small_matrix_kernels();
  EXPECT_EQ(compute::row_blocks_multiply(draw({256, 16}, 1, torch::kFloat64), W_1), small_kernels);  // 1.05e6
  EXPECT_FALSE(compute::row_blocks_multiply(draw({128, 16}, 1, torch::kFloat64), W_1));              // small already
  EXPECT_FALSE(compute::row_blocks_multiply(draw({1024, 16}, 1, torch::kFloat64), W_1));             // general path
  EXPECT_FALSE(compute::row_blocks_multiply(G.clone().requires_grad_(true), W_1));
}

TEST(Compute, OnednnRefusesWhatItCannotMultiply) {
  if (!compute::onednn_available()) GTEST_SKIP() << "oneDNN's sgemm is not loaded in this process";
  EXPECT_THROW(
      compute::onednn_addmm({}, draw({4, 3}, 1, torch::kFloat32), draw({4, 3}, 2, torch::kFloat32), 0.0, 1.0, 1),
      c10::Error);
  EXPECT_THROW(
      compute::onednn_addmm({}, draw({4, 3}, 1, torch::kFloat64), draw({3, 4}, 2, torch::kFloat64), 0.0, 1.0, 1),
      c10::Error);
  EXPECT_THROW(compute::onednn_addmm(draw({4, 5}, 3, torch::kFloat32), draw({4, 3}, 1, torch::kFloat32),
                                     draw({3, 4}, 2, torch::kFloat32), 1.0, 1.0, 1),
               c10::Error);
}

TEST(Compute, ARunAloneTakesTheCoresAndRunsSideBySideOneEach) {
  // Where the products are worth splitting (a quarter GFLOP a step and more).
  const ExperimentConfig large = load_config_text(
      "dtype: float32\ndata: {num_samples: 64, seq_len: 16, dim: 64, target_dim: 64}\nmodel: {ffn_width: 512}\n", "e");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(compute::policy_for(large, 1).threads, cores);
  EXPECT_EQ(compute::policy_for(large, 2).threads, 1);
  EXPECT_EQ(compute::policy_for(load_config_text("{}", "e"), 1).threads, 1) << "the default's steps are small";
  EXPECT_EQ(compute::policy_for(large, 1).backend, Backend::tuned);
  EXPECT_FALSE(compute::policy().uses(compute::Tuning::loops)) << "no scope: the reference backend";
}

TEST(OnThisMachine, ProductHelperThreadsSleepBetweenProducts) {
  if (!compute::onednn_available() || std::thread::hardware_concurrency() < 2)
    GTEST_SKIP() << "products run whole on one thread here";
  // A helper waits for its next part spinning for 200 us, then asleep: over the 100 ms
  // after a product in parts, no other thread of the process should be runnable, so a
  // diagnosis beside the step has the core.
  const compute::Policy policy = tuned(2);
  const compute::Scope scope(policy);
  const auto A = draw({1024, 256}, 1, torch::kFloat32), B = draw({256, 512}, 2, torch::kFloat32);
  const auto C = compute::mm(A, B);
  int runnable = 0;
  for (int look = 0; look < 20; ++look) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    runnable += testing::another_thread_runnable();
  }
  EXPECT_TRUE(torch::allclose(C, A.mm(B), 1e-4, 1e-4));
  EXPECT_LE(runnable, 2) << "of 20 looks";
}

}  // namespace
}  // namespace resgd
