// The tuned backend's float32 products: oneDNN's sgemm, which LibTorch links, found at
// run time. It picks its kernels from the CPU itself (AVX-512 where there is one).
// Where it is not loaded (LibTorch's official builds link their own copy and need not
// export it), float32 products stay with torch::mm.
//
// A product runs in up to `threads` parts of C's longer side, each one oneDNN call on one
// thread: the caller's and ResGD's own helpers. Where parts would change the numbers
// (probed once per count), it runs whole, so no number depends on how many runs share
// the process. Where autograd must see a product it is recorded as one operation whose
// backward multiplies on oneDNN too, so `train.gradients: autograd` runs its products
// where the hand-derived gradients do.
#pragma once

#include <torch/torch.h>

#include <string>

namespace resgd::compute {

/// Whether oneDNN's sgemm is loaded in this process.
bool onednn_available();

/// Whether A B can go to oneDNN: float32 CPU matrices, non-empty, where it is loaded.
bool onednn_multiplies(const torch::Tensor& A, const torch::Tensor& B);

/// beta C + alpha A B (C undefined: alpha A B; C of the result's shape otherwise) in up
/// to `threads` parts, recorded for autograd where an operand needs it.
torch::Tensor onednn_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                           double alpha, int threads);

/// C += A B in place in up to `threads` parts, where nothing needs autograd and C is a
/// contiguous float32 matrix of the result's shape; false (nothing done) otherwise.
bool onednn_addmm_into(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, int threads);

/// The parts a product asked for `threads` runs in: `threads`, or 1 where parts would
/// change its numbers.
int onednn_parts(int threads);

/// E.g. "oneDNN 2.6.3".
std::string onednn_version();

}  // namespace resgd::compute
