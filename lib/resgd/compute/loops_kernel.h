// The loops behind loop_bmm (loops.h), free of LibTorch so that they compile with their own
// optimisation flags (see lib/CMakeLists.txt).
#pragma once

#include <cstdint>

namespace resgd::kernel {

/// Strides, in elements, of a batch of matrices: element (s, i, j) is at
/// s * batch + i * row + j * col.
struct Strides {
  int64_t batch, row, col;
};

/// C_s = A_s B_s for s < count: A_s is rows x inner, B_s inner x cols, C contiguous
/// (count, rows, cols). B_s needs unit column stride, or unit row stride where A_s has unit
/// column stride: a transposed view (the attention's K^T and V^T as stored), whose entries
/// are then dot products of two contiguous rows. Each entry sums over `inner` in order, or
/// for a dot product in one vector's width of partial sums: equal to BLAS's to rounding.
void batched_matmul(const double* a, Strides sa, const double* b, Strides sb, double* c, int64_t count, int64_t rows,
                    int64_t inner, int64_t cols);
void batched_matmul(const float* a, Strides sa, const float* b, Strides sb, float* c, int64_t count, int64_t rows,
                    int64_t inner, int64_t cols);

}  // namespace resgd::kernel
