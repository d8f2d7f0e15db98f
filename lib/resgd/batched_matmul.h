// Products of many small matrices, one per sample: the attention's S V and Q K^T and their
// gradients in the hand-derived backward pass.
#pragma once

#include <torch/torch.h>

namespace resgd {

/// A.bmm(B) for (N, r, k) and (N, k, c). On the CPU, for matrices small enough that
/// torch::bmm's per-sample BLAS call costs more than the arithmetic (it slices and calls
/// BLAS once per sample, about 2.5 us each here, 50 times the work of an 8 x 8 attention
/// product), a plain loop over the batch does the products instead. It sums each entry
/// in order (for a transposed B, as dot products in one vector's width of partial sums),
/// so it agrees with BLAS to rounding. Anything autograd must see, any other
/// device or dtype, and larger matrices go to torch::bmm.
torch::Tensor batched_matmul(const torch::Tensor& A, const torch::Tensor& B);

/// Whether batched_matmul multiplies (N, r, k) by (N, k, c) itself rather than through
/// torch::bmm (for tests and benchmarks).
bool uses_batched_kernel(const torch::Tensor& A, const torch::Tensor& B);

}  // namespace resgd
