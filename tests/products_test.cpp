// products: oneDNN's float32 products against the float64 product of the same entries, in
// every layout the step passes; which route each product takes; thread counts.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "resgd/products.h"
#include "resgd/system.h"
#include "test_util.h"

namespace resgd {
namespace {

torch::Tensor draw(std::vector<int64_t> shape, uint64_t seed, torch::Dtype dtype = torch::kFloat32) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn(shape, generator, torch::TensorOptions().dtype(torch::kFloat64)).to(dtype);
}

/// The largest error of `ours` against beta C + alpha A B computed in float64 from the
/// same float32 entries, over what float32 rounding allows for each entry: any order of
/// summing K products, fused or not, stays within K eps32 (|beta C| + |alpha| |A| |B|)
/// plus one rounding of the result (Higham, Accuracy and Stability, 3.5). Below 1 passes.
double error_over_float32_bound(const torch::Tensor& ours, const torch::Tensor& C, const torch::Tensor& A,
                                const torch::Tensor& B, double beta, double alpha) {
  const double eps32 = std::ldexp(1.0, -24);
  const auto a = A.to(torch::kFloat64), b = B.to(torch::kFloat64);
  auto exact = a.mm(b).mul_(alpha);
  auto magnitude = a.abs().mm(b.abs()).mul_(std::abs(alpha));
  if (C.defined()) {
    exact.add_(C.to(torch::kFloat64), beta);
    magnitude.add_(C.to(torch::kFloat64).abs(), std::abs(beta));
  }
  const double K = static_cast<double>(A.size(1)) + 2;  // the sum, alpha, beta C
  const auto bound = magnitude.mul_(K * eps32).add_(exact.abs().mul(eps32)).add_(1e-30);
  return (ours.to(torch::kFloat64) - exact).abs().div_(bound).max().item<double>();
}

#define SKIP_WITHOUT_ONEDNN()                                                                        \
  if (!onednn_serves_float32_products())                                                             \
  GTEST_SKIP() << "oneDNN's sgemm is not loaded in this process (or RESGD_ONEDNN=off): float32 goes " \
                  "to torch::mm"

TEST(Products, OnednnAgreesWithTheFloat64ProductInEveryLayout) {
  SKIP_WITHOUT_ONEDNN();
  // The medium step's products at a quarter of its tokens: G W_1, Phi W_2 (accumulating
  // onto G), dH W_2^T (B transposed), Phi^T dH (A transposed: a weight gradient), dU W_1^T;
  // a column slice (leading dimension past its width) and a strided view that is copied.
  const auto G = draw({1024, 64}, 1), W_1 = draw({64, 512}, 2), Phi = draw({1024, 512}, 3), W_2 = draw({512, 64}, 4);
  const auto dH = draw({1024, 64}, 5), wide = draw({1024, 130}, 6), every_other = draw({64, 1024}, 7);
  const std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor>> products = {
      {"G W_1", G, W_1},
      {"Phi W_2", Phi, W_2},
      {"dH W_2^T", dH, W_2.t()},
      {"Phi^T dH", Phi.t(), dH},
      {"dU W_1^T", Phi, W_1.t()},
      {"column slice", wide.narrow(1, 3, 64), W_1},
      {"strided", every_other.slice(1, 0, 1024, 2), Phi.narrow(0, 0, 512)},
      {"one column", G, W_1.narrow(1, 0, 1)},
  };
  for (const auto& [name, A, B] : products) {
    ASSERT_EQ(product_route(A, B), ProductRoute::onednn) << name;
    const auto C = draw({A.size(0), B.size(1)}, 8);
    EXPECT_LT(error_over_float32_bound(token_mm(A, B), {}, A, B, 0.0, 1.0), 1.0) << name;
    EXPECT_LT(error_over_float32_bound(token_addmm(C, A, B, 0.5, -2.0), C, A, B, 0.5, -2.0), 1.0) << name << ", with C";
    auto accumulated = C.clone();
    token_addmm_(accumulated, A, B);
    EXPECT_LT(error_over_float32_bound(accumulated, C, A, B, 1.0, 1.0), 1.0) << name << ", in place";
  }
  // The bound is tight enough to see a wrong answer: one float32 rounding of B's entries.
  const auto B_rounded = W_1.to(torch::kFloat16).to(torch::kFloat32);
  EXPECT_GT(error_over_float32_bound(token_mm(G, B_rounded), {}, G, W_1, 0.0, 1.0), 1.0);
}

TEST(Products, EachProductTakesItsRoute) {
  const auto A = draw({64, 32}, 1), B = draw({32, 16}, 2);
  const auto A64 = A.to(torch::kFloat64), B64 = B.to(torch::kFloat64);
  const ProductRoute float32 = onednn_serves_float32_products() ? ProductRoute::onednn : ProductRoute::torch_mm;
  EXPECT_EQ(product_route(A, B), float32);
  EXPECT_EQ(product_route(A64, B64), ProductRoute::torch_mm);  // under OpenBLAS's small-kernel limit
  EXPECT_EQ(product_route(A, B64), ProductRoute::torch_mm);    // mixed dtypes: LibTorch's error
  // Where autograd must see a product: float32 still goes to oneDNN, recorded as one
  // operation; float64 to LibTorch's (row_blocks_test: never in row blocks).
  const auto tracked = A.clone().requires_grad_(true);
  EXPECT_EQ(product_route(tracked, B), float32);
  EXPECT_EQ(product_route(A64.clone().requires_grad_(true), B64), ProductRoute::torch_mm);
  // What autograd sees differentiates: d sum(C + 3 A B) / dA = 3 1 B^T, d / dC = 1.
  const auto C = draw({64, 16}, 3).requires_grad_(true);
  auto product = token_addmm(C, tracked, B, 1.0, 3.0);
  ASSERT_TRUE(product.requires_grad());
  if (float32 == ProductRoute::onednn) {
    EXPECT_NE(product.grad_fn()->name().find("OnednnAddmm"), std::string::npos);
  }
  product.sum().backward();
  EXPECT_TRUE(torch::allclose(tracked.grad(), 3 * B.sum(1).expand({64, 32}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(C.grad(), torch::ones_like(C)));
  auto alone = token_mm(tracked, B);
  if (float32 == ProductRoute::onednn) {
    EXPECT_NE(alone.grad_fn()->name().find("OnednnMm"), std::string::npos);
  }
  EXPECT_THROW(token_mm(A, A), c10::Error);  // (64, 32) by (64, 32): LibTorch names the shapes
}

TEST(Products, OnednnSplitsProductsOverTheGdStepsThreadsAndLeavesLibTorchsCount) {
  SKIP_WITHOUT_ONEDNN();
  // A product runs in gd_blas_threads() parts, each one oneDNN call on one thread (the
  // caller's and resgd's helpers), whatever OpenBLAS's count is; LibTorch's own OpenMP
  // count, which oneDNN reads too, is left as it was.
  const int libtorch_threads = at::get_num_threads();
  const auto A = draw({2048, 64}, 1), B = draw({64, 512}, 2), W = draw({2048, 512}, 3);
  set_gd_blas_threads(1);
  EXPECT_EQ(onednn_product_threads(), 1);
  const auto whole = token_mm(A, B), gradient_whole = token_mm(A.t(), W);  // rows, then columns split
  std::vector<int> counts = {2, 3, 5};  // more parts than cores, and uneven parts
  for (const int threads : counts) {
    set_gd_blas_threads(threads);
    set_blas_threads(1);  // as while a diagnosis runs: oneDNN's parts do not follow it
    const int parts = onednn_product_threads();
    EXPECT_EQ(parts, token_products_change_no_number(torch::kFloat32) ? threads : 1);
    for (int repeat = 0; repeat < 20; ++repeat) {  // the helpers wait asleep and awake alike
      const auto split = token_mm(A, B), gradient_split = token_mm(A.t(), W);
      EXPECT_EQ(at::get_num_threads(), libtorch_threads);
      if (token_products_change_no_number(torch::kFloat32)) {
        ASSERT_TRUE(torch::equal(split, whole)) << threads << " parts";
        ASSERT_TRUE(torch::equal(gradient_split, gradient_whole)) << threads << " parts, split by columns";
      } else {
        ASSERT_LT(error_over_float32_bound(split, {}, A, B, 0.0, 1.0), 1.0);
      }
      if (repeat % 5 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the helpers' spin
    }
  }
  set_gd_blas_threads(1);
}

TEST(Products, HelperThreadsSleepBetweenProducts) {
  SKIP_WITHOUT_ONEDNN();
  if (!token_products_change_no_number(torch::kFloat32) || std::thread::hardware_concurrency() < 2)
    GTEST_SKIP() << "products run whole on one thread here";
  // A helper waits for its next part spinning for 200 us, then asleep: over the 100 ms
  // after a product in parts, no other thread of the process should be runnable, so a
  // diagnosis beside the step has the core (OpenMP's own team spun for milliseconds).
  set_gd_blas_threads(2);
  const auto A = draw({1024, 256}, 1), B = draw({256, 512}, 2);
  const auto C = token_mm(A, B);
  int runnable = 0;
  for (int look = 0; look < 20; ++look) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    runnable += testing::another_thread_runnable();
  }
  set_gd_blas_threads(1);
  EXPECT_LT(error_over_float32_bound(C, {}, A, B, 0.0, 1.0), 1.0);
  EXPECT_LE(runnable, 2) << "of 20 looks";
}

TEST(Products, OnednnAddmmRejectsWhatItCannotMultiply) {
  SKIP_WITHOUT_ONEDNN();
  EXPECT_THROW(onednn_addmm({}, draw({4, 3}, 1), draw({4, 3}, 2), 0.0, 1.0), c10::Error);
  EXPECT_THROW(onednn_addmm({}, draw({4, 3}, 1, torch::kFloat64), draw({3, 4}, 2, torch::kFloat64), 0.0, 1.0),
               c10::Error);
  EXPECT_THROW(onednn_addmm(draw({4, 5}, 3), draw({4, 3}, 1), draw({3, 4}, 2), 1.0, 1.0), c10::Error);
}

}  // namespace
}  // namespace resgd
