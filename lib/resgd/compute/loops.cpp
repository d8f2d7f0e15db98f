// The small batched products' loop (loops.h), over the kernel of loops_kernel.cpp.
#include "resgd/compute/loops.h"

#include "resgd/compute/loops_kernel.h"

namespace resgd::compute {
namespace {

// Multiply-adds per matrix up to which the loop is used: it is 5-6x faster than
// torch::bmm for the small size's 32 x (8 x 16 x 8) and even at the medium size's.
constexpr int64_t kLoopMaxWork = 32 * 32 * 64;

kernel::Strides strides_of(const torch::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

}  // namespace

bool loop_multiplies(const torch::Tensor& A, const torch::Tensor& B) {
  const bool needs_autograd = torch::GradMode::is_enabled() && (A.requires_grad() || B.requires_grad());
  const auto dtype = A.scalar_type();
  return !needs_autograd && A.device().is_cpu() && B.device().is_cpu() && A.dim() == 3 && B.dim() == 3 &&
         dtype == B.scalar_type() && (dtype == torch::kFloat64 || dtype == torch::kFloat32) && A.size(0) == B.size(0) &&
         A.size(2) == B.size(1) && A.size(1) * A.size(2) * B.size(2) <= kLoopMaxWork;
}

torch::Tensor loop_bmm(const torch::Tensor& A, const torch::Tensor& B) {
  const int64_t count = A.size(0), rows = A.size(1), inner = A.size(2), cols = B.size(2);
  auto C = torch::empty({count, rows, cols}, A.options());
  // The kernel walks rows of B, or takes dot products of A's rows with a transposed view's
  // (K^T, V^T): any other layout of B is laid out once, here.
  const bool usable = B.stride(2) == 1 || (B.stride(1) == 1 && A.stride(2) == 1);
  const torch::Tensor b = usable ? B : B.contiguous();
  if (A.scalar_type() == torch::kFloat64)
    kernel::batched_matmul(A.data_ptr<double>(), strides_of(A), b.data_ptr<double>(), strides_of(b),
                           C.data_ptr<double>(), count, rows, inner, cols);
  else
    kernel::batched_matmul(A.data_ptr<float>(), strides_of(A), b.data_ptr<float>(), strides_of(b), C.data_ptr<float>(),
                           count, rows, inner, cols);
  return C;
}

}  // namespace resgd::compute
