// The tuned backend's float32 products: oneDNN's sgemm, which LibTorch links, found at
// run time. It picks its kernels from the CPU itself (AVX-512 where there is one).
// Where it is not loaded (LibTorch's official builds link their own copy and need not
// export it), float32 products stay with torch::mm.
//
// A product runs in parts of C's longer side that its shape alone sets, each one oneDNN
// call on one thread, shared out over up to `threads` threads: the caller's and ResGD's
// own helpers. Every entry is then the same call whatever the thread count, so no number
// depends on how many runs share the process or on how many cores a task was given.
// Where autograd must see a product it is recorded as one operation whose backward
// multiplies on oneDNN too, so `train.gradients: autograd` runs its products where the
// hand-derived gradients do.
#pragma once

#include <torch/torch.h>

#include <string>

namespace resgd::compute {

/// Whether oneDNN's sgemm is loaded in this process.
bool onednn_available();

/// Whether A B can go to oneDNN: float32 CPU matrices, non-empty, where it is loaded.
bool onednn_multiplies(const torch::Tensor& A, const torch::Tensor& B);

/// beta C + alpha A B (C undefined: alpha A B; C of the result's shape otherwise) on up to
/// `threads` threads, recorded for autograd where an operand needs it.
torch::Tensor onednn_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                           double alpha, int threads);

/// C += A B in place on up to `threads` threads, where nothing needs autograd and C is a
/// contiguous float32 matrix of the result's shape; false (nothing done) otherwise.
bool onednn_addmm_into(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, int threads);

/// E.g. "oneDNN 2.6.3".
std::string onednn_version();

}  // namespace resgd::compute
