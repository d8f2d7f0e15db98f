// Products in two blocks of rows where OpenBLAS's small-matrix kernels then take them.
#include "resgd/compute/row_blocks.h"

#include <algorithm>

#include "resgd/compute/process.h"

namespace resgd::compute {
namespace {

// OpenBLAS's dgemm_small_kernel_permit for its AVX-512 kernels: M N K <= 100^3.
constexpr double kSmallKernelMaxWork = 1e6;

}  // namespace

bool row_blocks_multiply(const torch::Tensor& A, const torch::Tensor& B) {
  const bool needs_autograd = torch::GradMode::is_enabled() && (A.requires_grad() || B.requires_grad());
  if (needs_autograd || A.dim() != 2 || B.dim() != 2 || !A.device().is_cpu() || !B.device().is_cpu() ||
      A.scalar_type() != torch::kFloat64 || B.scalar_type() != torch::kFloat64 || A.size(0) < 2)
    return false;
  const double work = static_cast<double>(A.size(0)) * static_cast<double>(A.size(1)) * static_cast<double>(B.size(1));
  // Only just above the limit: further up, more and thinner blocks won as often as they lost.
  return work > kSmallKernelMaxWork && work <= 2 * kSmallKernelMaxWork && blas_has_small_matrix_kernels();
}

torch::Tensor addmm_in_row_blocks(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                                  double alpha) {
  TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0), "addmm_in_row_blocks: cannot multiply ",
              A.sizes(), " by ", B.sizes());
  // OpenBLAS keeps its small kernels from a transposed B (in its column-major terms, A)
  // with fewer than 32 rows: a weight's transpose is laid out once, here.
  const torch::Tensor b = B.contiguous();
  auto out = torch::empty({A.size(0), B.size(1)}, A.options());
  const int64_t rows = A.size(0), half = (rows + 1) / 2;
  for (int64_t start = 0; start < rows; start += half) {
    const int64_t length = std::min(half, rows - start);
    auto out_rows = out.narrow(0, start, length);
    if (C.defined()) {
      at::addmm_out(out_rows, C.narrow(0, start, length), A.narrow(0, start, length), b, beta, alpha);
    } else {
      at::mm_out(out_rows, A.narrow(0, start, length), b);
      if (alpha != 1.0) out_rows.mul_(alpha);
    }
  }
  return out;
}

}  // namespace resgd::compute
