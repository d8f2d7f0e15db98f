// Matrix products that OpenBLAS multiplies faster in two blocks of rows: the thin token
// products of a small model's FFN (U = G W_1, Phi W_2 and their gradients).
//
// OpenBLAS (0.3.16 and later, AVX-512 kernels) multiplies a float64 product of M N K <=
// 10^6 multiply-adds with its small-matrix kernels, which neither pack the operands nor
// zero C first; above that it takes its general path, which does both. A product up to
// twice the limit (the small size's 256 x 16 x 256 ones, 1.05 x 10^6) is therefore done as
// two halves of A's rows, each under it: 30-40% faster here (docs/performance.md). Each
// entry of the result is still one dot product summed by one kernel, so the halves agree
// with the whole product to rounding (bit for bit as measured). token_mm (products.h)
// takes this route where product_row_blocks says 2.
#pragma once

#include <torch/torch.h>

namespace resgd {

/// beta C + alpha A B (alpha A B where C is undefined; C of the result's shape otherwise)
/// as `blocks` products of consecutive blocks of A's rows, the last one shorter where they
/// do not divide evenly.
torch::Tensor addmm_in_row_blocks(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                                  double alpha, int64_t blocks);

/// How many blocks of rows A B is best multiplied in: 1 (one product) or 2. Always 1 for
/// anything autograd must see, other devices and dtypes, and other BLAS.
int64_t product_row_blocks(const torch::Tensor& A, const torch::Tensor& B);

}  // namespace resgd
