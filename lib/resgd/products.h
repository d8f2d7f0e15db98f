// The 2-D products of a GD step: every token product (H W_Q, G W_1, Phi W_2, dU W_1^T, ...)
// multiplies all N n tokens at once, and every weight gradient (X^T dY) sums over them.
// Which kernel multiplies each: oneDNN's sgemm for float32, two row blocks for the float64
// products OpenBLAS's small kernels then take (row_blocks.h), torch::mm otherwise.
#pragma once

#include <torch/torch.h>

#include <string>

namespace resgd {

enum class ProductRoute {
  torch_mm,    // LibTorch's product: other devices, float64 that autograd must see, the rest
  row_blocks,  // float64, just above OpenBLAS's small-matrix limit: two blocks of A's rows
  onednn,      // float32 on the CPU where oneDNN's sgemm is loaded, recorded for autograd
};

/// How token_mm multiplies (M, K) by (K, N).
///
/// oneDNN's sgemm picks its kernels from the CPU itself (AVX-512 where there is one). On
/// AMD Zen 5, whose environment sets OpenBLAS's AVX2 Haswell kernels, it multiplied the
/// medium size's float32 products at 2x their speed (docs/performance.md, item 15).
/// Debian's LibTorch links it, and it is looked up at run time: where it is not found
/// (LibTorch's official builds link their own copy and need not export it), or
/// RESGD_ONEDNN=off, float32 goes to torch::mm.
///
/// A product on oneDNN runs in gd_blas_threads() parts of C's longer side, each one call
/// on one thread: the caller's and resgd's own helpers. That count is fixed for a whole
/// run, so unlike OpenBLAS's it does not drop while a diagnosis runs beside the step: the
/// worker runs at a lower priority instead (lower_this_threads_priority). Where parts
/// would change the numbers (probed at start-up), each product is one part.
///
/// Where autograd must see a float32 product, it is recorded as one operation whose
/// backward multiplies on oneDNN too, so `train.gradients: autograd` runs its token
/// products where the hand-derived gradients do (docs/performance.md, item 18).
ProductRoute product_route(const torch::Tensor& A, const torch::Tensor& B);

/// A B for (M, K) and (K, N), by product_route.
torch::Tensor token_mm(const torch::Tensor& A, const torch::Tensor& B);

/// beta C + alpha A B for C of the result's shape, by product_route (torch::addmm where C
/// has another shape, or needs autograd on the row_blocks route).
torch::Tensor token_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                          double alpha);

/// C += A B in place, by product_route where C is contiguous and autograd sees none of the
/// three (Tensor::addmm_ otherwise).
torch::Tensor& token_addmm_(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B);

/// beta C + alpha A B through oneDNN's sgemm in onednn_product_threads() parts, for float32
/// CPU matrices in any layout (C undefined: alpha A B). What the onednn route does; throws
/// where oneDNN's sgemm is not loaded.
torch::Tensor onednn_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                           double alpha);

/// Whether float32 token products go to oneDNN in this process.
bool onednn_serves_float32_products();

/// How many parts (threads) a product on the onednn route is split into now.
int onednn_product_threads();

/// Whether token_mm's products of `dtype` follow OpenBLAS's thread count (set_blas_threads),
/// which drops to one while a diagnosis runs: false where oneDNN multiplies them.
bool token_products_follow_blas_threads(torch::ScalarType dtype);

/// Whether token_mm's products of `dtype` come out the same, bit for bit, on one thread and
/// on a lone run's cores: the token products' counterpart of blas_threads_change_no_number
/// (which autograd's other products, such as its batched ones, follow). Probed once.
bool token_products_change_no_number(torch::ScalarType dtype);

/// For the compute line: e.g. ", float32 token products through oneDNN 2.6.3's sgemm";
/// empty where oneDNN serves none.
std::string token_products_summary();

}  // namespace resgd
