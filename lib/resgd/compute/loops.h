// The tuned backend's small batched products: the attention's S V and Q K^T and their
// gradients, one small matrix per sample.
#pragma once

#include <torch/torch.h>

namespace resgd::compute {

/// Whether the loop multiplies (N, r, k) by (N, k, c): on the CPU, float32 or float64,
/// nothing autograd must see, at most kLoopMaxWork multiply-adds per matrix. torch::bmm
/// slices each sample and calls BLAS once per sample, about 2.5 us each, fifty times the
/// arithmetic of an 8 x 8 attention product; above that size the two are even.
bool loop_multiplies(const torch::Tensor& A, const torch::Tensor& B);

/// A.bmm(B) by the loop, where loop_multiplies. Each entry is summed in order (for a
/// transposed B, as a dot product in one vector's width of partial sums): equal to BLAS's
/// to rounding.
torch::Tensor loop_bmm(const torch::Tensor& A, const torch::Tensor& B);

}  // namespace resgd::compute
