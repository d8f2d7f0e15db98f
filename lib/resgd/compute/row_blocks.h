// The tuned backend's float64 products that OpenBLAS multiplies faster in two blocks of
// rows: the thin token products of a small model's FFN (G W_1, Phi W_2, their gradients).
//
// OpenBLAS (0.3.16 and later, AVX-512 kernels) multiplies a float64 product of M N K <=
// 10^6 multiply-adds with its small-matrix kernels, which neither pack the operands nor
// zero C first; above that it takes its general path, which does both. A product up to
// twice the limit (the small size's 256 x 16 x 256 ones, 1.05 x 10^6) is done as two
// halves of A's rows, each under it. Each entry is still one dot product summed by one
// kernel, so the halves agree with the whole product (bit for bit as measured).
#pragma once

#include <torch/torch.h>

namespace resgd::compute {

/// Whether A B is multiplied in two blocks of rows: a float64 CPU product of 1-2 x 10^6
/// multiply-adds that autograd need not see, where OpenBLAS has its small kernels.
bool row_blocks_multiply(const torch::Tensor& A, const torch::Tensor& B);

/// beta C + alpha A B (alpha A B where C is undefined) as two products of consecutive
/// halves of A's rows.
torch::Tensor addmm_in_row_blocks(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                                  double alpha);

}  // namespace resgd::compute
