// Matrix products that OpenBLAS multiplies faster in two blocks of rows: the thin token
// products of a small model's FFN (U = G W_1, Phi W_2 and their gradients).
#pragma once

#include <torch/torch.h>

namespace resgd {

/// A.mm(B) for (M, K) and (K, N). OpenBLAS (0.3.16 and later, AVX-512 kernels) multiplies a
/// float64 product of M N K <= 10^6 multiply-adds with its small-matrix kernels, which
/// neither pack the operands nor zero C first; above that it takes its general path, which
/// does both. A product up to twice the limit (the small size's 256 x 16 x 256 ones, 1.05 x
/// 10^6) is therefore done as two halves of A's rows, each under it: 30-40% faster here
/// (docs/performance.md). Each entry of the result is still one dot product summed by one
/// kernel, so the halves agree with the whole product to rounding (bit for bit as measured).
/// Anything autograd must see, other devices, dtypes and sizes, and other BLAS go to
/// torch::mm unchanged.
torch::Tensor row_blocked_mm(const torch::Tensor& A, const torch::Tensor& B);

/// beta C + alpha A B, for C of the result's shape (M, N), in the same blocks as
/// row_blocked_mm; otherwise torch::addmm.
torch::Tensor row_blocked_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                                double alpha);

/// beta C + alpha A B (alpha A B where C is undefined; C of the result's shape otherwise)
/// as `blocks` products of consecutive blocks of A's rows, the last one shorter where they
/// do not divide evenly. What the two above do when they split.
torch::Tensor addmm_in_row_blocks(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                                  double alpha, int64_t blocks);

/// How many blocks of rows row_blocked_mm splits A B into: 1 (torch::mm) or 2.
int64_t product_row_blocks(const torch::Tensor& A, const torch::Tensor& B);

}  // namespace resgd
