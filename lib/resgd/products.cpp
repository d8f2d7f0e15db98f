// The GD step's 2-D products and the kernel that multiplies each (products.h).
#include "resgd/products.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "resgd/row_blocks.h"
#include "resgd/system.h"

namespace resgd {
namespace {

// oneDNN's C API as dnnl.h declares it (unchanged from oneDNN 1.0 to 3.x): row-major
// C = alpha op(A) op(B) + beta C, op given by 'N' or 'T'; 0 is dnnl_success. C is not read
// where beta is 0.
using Sgemm = int(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
struct OnednnVersion {  // the head of dnnl_version_t
  int major, minor, patch;
};

/// oneDNN's and OpenMP's functions, found at run time among the libraries LibTorch loaded.
/// Debian's oneDNN threads through OpenMP, whose count is per calling thread: the products
/// set it around each call, so LibTorch's own operations keep theirs.
struct Onednn {
  Sgemm* sgemm = nullptr;
  const OnednnVersion* (*version)() = nullptr;
  int (*omp_get_max_threads)() = nullptr;
  void (*omp_set_num_threads)(int) = nullptr;
  bool usable() const { return sgemm && omp_get_max_threads && omp_set_num_threads; }
};

const Onednn& onednn() {
  static const Onednn found = [] {
    Onednn o;
    o.sgemm = reinterpret_cast<Sgemm*>(dlsym(RTLD_DEFAULT, "dnnl_sgemm"));
    o.version = reinterpret_cast<const OnednnVersion* (*)()>(dlsym(RTLD_DEFAULT, "dnnl_version"));
    o.omp_get_max_threads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    o.omp_set_num_threads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    return o;
  }();
  return found;
}

/// A 2-D matrix as sgemm reads it: row-major ('N', leading dimension its row stride), the
/// transpose of a row-major matrix ('T'; K^T and W^T views), or else a row-major copy.
struct Operand {
  char trans;
  int64_t leading;
  torch::Tensor values;  // keeps a copy alive
};

Operand operand(const torch::Tensor& M) {
  const int64_t rows = M.size(0), cols = M.size(1);
  if (M.stride(1) == 1 && M.stride(0) >= std::max<int64_t>(cols, 1)) return {'N', M.stride(0), M};
  if (M.stride(0) == 1 && M.stride(1) >= std::max<int64_t>(rows, 1)) return {'T', M.stride(1), M};
  return {'N', std::max<int64_t>(cols, 1), M.contiguous()};
}

/// C = alpha A B + beta C for a contiguous float32 C of the result's shape.
void onednn_sgemm_into(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double alpha, double beta) {
  const Onednn& o = onednn();
  TORCH_CHECK(o.usable(), "oneDNN's sgemm is not loaded in this process");
  const Operand a = operand(A), b = operand(B);
  const int threads = blas_threads(), before = o.omp_get_max_threads();
  if (before != threads) o.omp_set_num_threads(threads);
  const int status = o.sgemm(a.trans, b.trans, A.size(0), B.size(1), A.size(1), static_cast<float>(alpha),
                             a.values.data_ptr<float>(), a.leading, b.values.data_ptr<float>(), b.leading,
                             static_cast<float>(beta), C.data_ptr<float>(), std::max<int64_t>(C.size(1), 1));
  if (before != threads) o.omp_set_num_threads(before);
  TORCH_CHECK(status == 0, "oneDNN's sgemm failed (status ", status, ") on ", A.sizes(), " x ", B.sizes());
}

bool needs_autograd(const torch::Tensor& M) { return torch::GradMode::is_enabled() && M.requires_grad(); }

}  // namespace

bool onednn_serves_float32_products() {
  static const bool serves = [] {
    const char* setting = std::getenv("RESGD_ONEDNN");
    return onednn().usable() && !(setting && std::string(setting) == "off");
  }();
  return serves;
}

ProductRoute product_route(const torch::Tensor& A, const torch::Tensor& B) {
  if (needs_autograd(A) || needs_autograd(B) || A.dim() != 2 || B.dim() != 2 || A.size(1) != B.size(0) ||
      !A.device().is_cpu() || !B.device().is_cpu() || A.scalar_type() != B.scalar_type())
    return ProductRoute::torch_mm;
  if (A.scalar_type() == torch::kFloat32 && onednn_serves_float32_products() && A.numel() > 0 && B.numel() > 0)
    return ProductRoute::onednn;
  return product_row_blocks(A, B) == 2 ? ProductRoute::row_blocks : ProductRoute::torch_mm;
}

torch::Tensor onednn_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                           double alpha) {
  TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0), "onednn_addmm: cannot multiply ", A.sizes(),
              " by ", B.sizes());
  TORCH_CHECK(A.scalar_type() == torch::kFloat32 && B.scalar_type() == torch::kFloat32 && A.device().is_cpu() &&
                  B.device().is_cpu(),
              "onednn_addmm: float32 CPU matrices only");
  torch::Tensor out;
  if (C.defined()) {
    TORCH_CHECK(C.sizes() == torch::IntArrayRef({A.size(0), B.size(1)}) && C.scalar_type() == torch::kFloat32,
                "onednn_addmm: C must be float32 of the product's shape, got ", C.sizes());
    out = C.clone(torch::MemoryFormat::Contiguous);
  } else {
    out = torch::empty({A.size(0), B.size(1)}, A.options());
    beta = 0.0;  // nothing to add, and the fresh entries are not read
  }
  onednn_sgemm_into(out, A, B, alpha, beta);
  return out;
}

torch::Tensor token_mm(const torch::Tensor& A, const torch::Tensor& B) {
  switch (product_route(A, B)) {
    case ProductRoute::onednn: return onednn_addmm(torch::Tensor(), A, B, 0.0, 1.0);
    case ProductRoute::row_blocks: return addmm_in_row_blocks(torch::Tensor(), A, B, 0.0, 1.0, 2);
    case ProductRoute::torch_mm: break;
  }
  return A.mm(B);
}

torch::Tensor token_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                          double alpha) {
  const bool plain_C = !needs_autograd(C) && C.dim() == 2 && C.device().is_cpu() &&
                       C.scalar_type() == A.scalar_type() && C.size(0) == A.size(0) && C.size(1) == B.size(1);
  switch (plain_C ? product_route(A, B) : ProductRoute::torch_mm) {
    case ProductRoute::onednn: return onednn_addmm(C, A, B, beta, alpha);
    case ProductRoute::row_blocks: return addmm_in_row_blocks(C, A, B, beta, alpha, 2);
    case ProductRoute::torch_mm: break;
  }
  return torch::addmm(C, A, B, beta, alpha);
}

torch::Tensor& token_addmm_(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B) {
  const bool in_place = !needs_autograd(C) && C.dim() == 2 && C.is_contiguous() && C.scalar_type() == A.scalar_type() &&
                        C.size(0) == A.size(0) && C.size(1) == B.size(1);
  if (in_place && product_route(A, B) == ProductRoute::onednn) {
    onednn_sgemm_into(C, A, B, 1.0, 1.0);
    return C;
  }
  return C.addmm_(A, B);
}

bool token_products_change_no_number(torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 || !onednn_serves_float32_products()) return blas_threads_change_no_number(dtype);
  static const bool onednn_agrees = thread_count_changes_no_product(torch::kFloat32, token_mm);
  return onednn_agrees;
}

std::string token_products_summary() {
  if (!onednn_serves_float32_products()) return "";
  const Onednn& o = onednn();
  const std::string version =
      o.version ? fmt::format("oneDNN {}.{}.{}", o.version()->major, o.version()->minor, o.version()->patch)
                : std::string("oneDNN");
  return fmt::format(", float32 token products through {}'s sgemm (RESGD_ONEDNN=off leaves them to the BLAS)",
                     version);
}

}  // namespace resgd
