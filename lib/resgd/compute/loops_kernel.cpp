// The loops behind loop_bmm (loops.h). Built with -O3 so that the innermost loop, over a
// row of B and of C, is vectorised; GCC builds it once per x86-64 vector width and picks
// the widest the CPU has at load.
#include "resgd/compute/loops_kernel.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RESGD_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RESGD_VECTOR_CLONES
#endif

namespace resgd::kernel {
namespace {

// Inlined into each clone below, so that each gets its own vector width.
template <class T>
[[gnu::always_inline]] inline void multiply(const T* a, Strides sa, const T* b, Strides sb, T* __restrict c,
                                            int64_t count, int64_t rows, int64_t inner, int64_t cols) {
  for (int64_t s = 0; s < count; ++s) {
    const T* A = a + s * sa.batch;
    const T* B = b + s * sb.batch;
    T* C = c + s * rows * cols;
    for (int64_t i = 0; i < rows; ++i) {
      T* __restrict row = C + i * cols;
      for (int64_t j = 0; j < cols; ++j) row[j] = T(0);
      for (int64_t p = 0; p < inner; ++p) {  // row_i(C) += A(i, p) row_p(B)
        const T a_ip = A[i * sa.row + p * sa.col];
        const T* __restrict b_p = B + p * sb.row;
        for (int64_t j = 0; j < cols; ++j) row[j] += a_ip * b_p[j];
      }
    }
  }
}

// B_s transposed: entry (i, j) is the dot product of row i of A_s and column j of B_s,
// both with unit stride. W partial sums, one 64-byte vector of T, are W independent
// multiply-adds per step that the compiler vectorises without reordering any one sum.
template <class T>
[[gnu::always_inline]] inline void multiply_nt(const T* a, Strides sa, const T* b, Strides sb, T* __restrict c,
                                               int64_t count, int64_t rows, int64_t inner, int64_t cols) {
  constexpr int W = 64 / sizeof(T);
  for (int64_t s = 0; s < count; ++s) {
    const T* A = a + s * sa.batch;
    const T* B = b + s * sb.batch;
    T* C = c + s * rows * cols;
    for (int64_t i = 0; i < rows; ++i) {
      const T* __restrict a_i = A + i * sa.row;
      for (int64_t j = 0; j < cols; ++j) {
        const T* __restrict b_j = B + j * sb.col;
        T partial[W] = {};
        int64_t p = 0;
        for (; p + W <= inner; p += W)
          for (int q = 0; q < W; ++q) partial[q] += a_i[p + q] * b_j[p + q];
        for (int q = 0; p < inner; ++p, ++q) partial[q] += a_i[p] * b_j[p];
        for (int width = W / 2; width > 0; width /= 2)
          for (int q = 0; q < width; ++q) partial[q] += partial[q + width];
        C[i * cols + j] = partial[0];
      }
    }
  }
}

// The layout decides the loop (batched_matmul_kernel.h).
template <class T>
[[gnu::always_inline]] inline void dispatch(const T* a, Strides sa, const T* b, Strides sb, T* __restrict c,
                                            int64_t count, int64_t rows, int64_t inner, int64_t cols) {
  if (sb.col != 1 && sb.row == 1 && sa.col == 1)
    multiply_nt(a, sa, b, sb, c, count, rows, inner, cols);
  else
    multiply(a, sa, b, sb, c, count, rows, inner, cols);
}

}  // namespace

RESGD_VECTOR_CLONES
void batched_matmul(const double* a, Strides sa, const double* b, Strides sb, double* c, int64_t count, int64_t rows,
                    int64_t inner, int64_t cols) {
  dispatch(a, sa, b, sb, c, count, rows, inner, cols);
}

RESGD_VECTOR_CLONES
void batched_matmul(const float* a, Strides sa, const float* b, Strides sb, float* c, int64_t count, int64_t rows,
                    int64_t inner, int64_t cols) {
  dispatch(a, sa, b, sb, c, count, rows, inner, cols);
}

}  // namespace resgd::kernel
