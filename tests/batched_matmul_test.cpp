// batched_matmul: its loop kernel against torch::bmm, and when it hands over to bmm.
#include <gtest/gtest.h>

#include "resgd/batched_matmul.h"

namespace resgd {
namespace {

torch::Tensor draw(std::vector<int64_t> shape, torch::Dtype dtype, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn(shape, generator, torch::TensorOptions().dtype(torch::kFloat64)).to(dtype);
}

struct Shape {
  int64_t batch, rows, inner, cols;
};

class BatchedMatmulShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(BatchedMatmulShapes, LoopAgreesWithBmmForEveryLayout) {
  const Shape s = GetParam();
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double tolerance = dtype == torch::kFloat64 ? 1e-14 : 1e-5;
    const auto A = draw({s.batch, s.rows, s.inner}, dtype, 1);
    const auto B = draw({s.batch, s.inner, s.cols}, dtype, 2);
    // The attention's layouts: plain (S V), B transposed (Q K^T), A transposed (S^T dA).
    const auto At = A.transpose(1, 2).contiguous().transpose(1, 2);
    const auto Bt = B.transpose(1, 2).contiguous().transpose(1, 2);
    for (const auto& [a, b] : {std::pair{A, B}, std::pair{A, Bt}, std::pair{At, B}, std::pair{At, Bt}}) {
      ASSERT_TRUE(uses_batched_kernel(a, b));
      const auto ours = batched_matmul(a, b);
      const auto reference = a.bmm(b);
      ASSERT_EQ(ours.sizes(), reference.sizes());
      if (reference.numel() == 0) continue;  // an empty batch: the shape is the whole answer
      const double scale = std::max(reference.abs().max().item<double>(), 1.0);
      EXPECT_LE((ours - reference).abs().max().item<double>(), tolerance * scale)
          << torch::toString(dtype) << " " << a.strides() << " x " << b.strides();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, BatchedMatmulShapes,
                         ::testing::Values(Shape{32, 8, 16, 8}, Shape{32, 8, 8, 16}, Shape{3, 1, 1, 1},
                                           Shape{5, 7, 3, 13}, Shape{256, 16, 64, 16}, Shape{2, 16, 16, 64},
                                           Shape{4, 5, 37, 6}, Shape{0, 4, 4, 4}));

TEST(BatchedMatmul, HandsOverToBmmWhereTheLoopDoesNotApply) {
  const auto A = draw({4, 8, 16}, torch::kFloat64, 3);
  const auto B = draw({4, 16, 8}, torch::kFloat64, 4);
  EXPECT_TRUE(uses_batched_kernel(A, B));
  EXPECT_FALSE(uses_batched_kernel(A.to(torch::kFloat16), B.to(torch::kFloat16)));  // dtype
  EXPECT_FALSE(uses_batched_kernel(draw({2, 128, 128}, torch::kFloat64, 5),
                                   draw({2, 128, 128}, torch::kFloat64, 6)));  // large: BLAS is faster
  // Autograd must see the product: the loop is never taped.
  const auto tracked = A.clone().requires_grad_(true);
  EXPECT_FALSE(uses_batched_kernel(tracked, B));
  auto product = batched_matmul(tracked, B);
  ASSERT_TRUE(product.requires_grad());
  product.sum().backward();
  EXPECT_LE((tracked.grad() - B.sum(2).unsqueeze(1).expand_as(A)).abs().max().item<double>(), 1e-13);
  {
    torch::NoGradGuard no_grad;  // without grad mode the loop serves tracked tensors too
    EXPECT_TRUE(uses_batched_kernel(tracked, B));
  }
}

}  // namespace
}  // namespace resgd
