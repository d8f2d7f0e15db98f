// row_blocks: products split into blocks of rows against the whole product, and when
// they are split at all.
#include <gtest/gtest.h>

#include "resgd/products.h"
#include "resgd/row_blocks.h"
#include "resgd/system.h"
#include "test_util.h"

namespace resgd {
namespace {

torch::Tensor draw(std::vector<int64_t> shape, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn(shape, generator, torch::TensorOptions().dtype(torch::kFloat64));
}

double max_relative_difference(const torch::Tensor& ours, const torch::Tensor& reference) {
  return (ours - reference).abs().max().item<double>() / std::max(reference.abs().max().item<double>(), 1.0);
}

TEST(RowBlocks, BlocksAgreeWithTheWholeProductInEveryLayout) {
  // The small size's FFN products: G W_1, Phi W_2, Phi^T dH (A transposed), dH W_2^T
  // (B transposed), G^T dU (a few rows, transposed); row counts that divide and do not.
  const auto G = draw({257, 16}, 1), W_1 = draw({16, 256}, 2), Phi = draw({257, 256}, 3), W_2 = draw({256, 16}, 4);
  const auto dH = draw({257, 16}, 5), C16 = draw({257, 16}, 6), C256 = draw({257, 256}, 7);
  const std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor, torch::Tensor>> products = {
      {"G W_1", G, W_1, C256},           {"Phi W_2", Phi, W_2, C16},
      {"Phi^T dH", Phi.t(), dH, draw({256, 16}, 8)}, {"dH W_2^T", dH, W_2.t(), C256},
      {"G^T Phi", G.t(), Phi, draw({16, 256}, 9)}};
  for (const auto& [name, A, B, C] : products) {
    for (const int64_t blocks : {1, 2, 3, 7}) {
      EXPECT_LE(max_relative_difference(addmm_in_row_blocks({}, A, B, 0.0, 1.0, blocks), A.mm(B)), 1e-14)
          << name << " in " << blocks << " blocks";
      EXPECT_LE(max_relative_difference(addmm_in_row_blocks(C, A, B, 0.5, -2.0, blocks), torch::addmm(C, A, B, 0.5, -2.0)),
                1e-14)
          << name << " in " << blocks << " blocks, with C";
    }
  }
}

TEST(RowBlocks, SplitsOnlyProductsJustAboveOpenBlasSmallKernelLimit) {
  const int64_t split = blas_has_small_matrix_kernels() ? 2 : 1;  // 1: nothing to gain here
  const auto G = draw({256, 16}, 1), W_1 = draw({16, 256}, 2);
  EXPECT_EQ(product_row_blocks(G, W_1), split);                                     // 1.05e6 multiply-adds
  EXPECT_EQ(product_row_blocks(draw({128, 16}, 3), W_1), 1);                         // 0.52e6: small already
  EXPECT_EQ(product_row_blocks(draw({1024, 16}, 4), W_1), 1);                        // 4.2e6: general path
  EXPECT_EQ(product_row_blocks(G.to(torch::kFloat32), W_1.to(torch::kFloat32)), 1);  // not measured
  const auto tracked = G.clone().requires_grad_(true);
  EXPECT_EQ(product_row_blocks(tracked, W_1), 1);  // autograd must see the product
  {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(product_row_blocks(tracked, W_1), split);
  }
  // What autograd sees still differentiates: torch::mm and torch::addmm, taped.
  auto product = token_addmm(draw({256, 256}, 5), tracked, W_1, 1.0, 1.0);
  ASSERT_TRUE(product.requires_grad());
  product.sum().backward();
  EXPECT_LE(max_relative_difference(tracked.grad(), W_1.sum(1).expand({256, 16})), 1e-14);
  EXPECT_LE(max_relative_difference(token_mm(G, W_1), G.mm(W_1)), 1e-14);
}

TEST(RowBlocks, GradcheckPassesAtTheSmallBenchSize) {
  // The `resgd` process chooses OpenBLAS's kernels for the CPU (configure_process), so
  // there, unlike in this test process, the small size's FFN products are split where
  // OpenBLAS has the small-matrix kernels: hand-derived gradients through the blocks
  // against autograd through torch::mm, and finite differences.
  testing::TempDir dir;
  const auto result = testing::run_resgd(dir,
                                         "gradcheck --set data.num_samples=32 --set data.seq_len=8 --set data.dim=16 "
                                         "--set data.target_dim=16 --set model.ffn_width=256 --set model.layers=1");
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("blocks.0.W_1"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("gradcheck passed"), std::string::npos) << result.out;
}

TEST(RowBlocks, RejectsWhatCannotBeMultiplied) {
  EXPECT_THROW(addmm_in_row_blocks({}, draw({4, 3}, 1), draw({4, 3}, 2), 0.0, 1.0, 2), c10::Error);
  EXPECT_THROW(addmm_in_row_blocks({}, draw({4, 3}, 1), draw({3, 4}, 2), 0.0, 1.0, 0), c10::Error);
}

}  // namespace
}  // namespace resgd
