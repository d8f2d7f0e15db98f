// Built with -O3 so that the innermost loop, over a row of B and of C, is vectorised;
// GCC builds it once per x86-64 vector width and picks the widest the CPU has at load.
#include "resgd/batched_matmul_kernel.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RESGD_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RESGD_VECTOR_CLONES
#endif

namespace resgd::kernel {
namespace {

// Inlined into each clone below, so that each gets its own vector width.
template <class T>
[[gnu::always_inline]] inline void multiply(const T* a, Strides sa, const T* b, Strides sb, T* __restrict c, int64_t count, int64_t rows,
              int64_t inner, int64_t cols) {
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

}  // namespace

RESGD_VECTOR_CLONES
void batched_matmul(const double* a, Strides sa, const double* b, Strides sb, double* c, int64_t count,
                    int64_t rows, int64_t inner, int64_t cols) {
  multiply(a, sa, b, sb, c, count, rows, inner, cols);
}

RESGD_VECTOR_CLONES
void batched_matmul(const float* a, Strides sa, const float* b, Strides sb, float* c, int64_t count,
                    int64_t rows, int64_t inner, int64_t cols) {
  multiply(a, sa, b, sb, c, count, rows, inner, cols);
}

}  // namespace resgd::kernel
