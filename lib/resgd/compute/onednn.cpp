// float32 products through oneDNN's sgemm, in parts on ResGD's own threads (onednn.h).
#include "resgd/compute/onednn.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace resgd::compute {
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
/// Debian's oneDNN threads through OpenMP, whose count is per calling thread: each call
/// runs on one (the parts of a product are resgd's own threads), and LibTorch's own
/// operations keep their count.
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

/// Threads that multiply the parts of a product beside the thread that calls run(). Each
/// waits for its next part spinning for kSpin, then asleep on a condition variable, so
/// that the serial stretches of a step (softmax, the attention's loops, elementwise work)
/// leave the core to the diagnosis worker: OpenMP's own team spins for milliseconds after
/// each product and took those stretches. 200 us keeps a step's products from waking
/// sleepers.
class ProductThreads {
 public:
  static ProductThreads& instance() {
    static ProductThreads threads;
    return threads;
  }

  /// part(0) on this thread and part(1), ..., part(parts - 1) on helpers, all at once;
  /// returns when every part is done. part must not throw.
  void run(int parts, const std::function<void(int)>& part) {
    std::lock_guard<std::mutex> one_product_at_a_time(run_mutex_);
    while (static_cast<int>(helpers_.size()) < parts - 1) {
      const int index = static_cast<int>(helpers_.size()) + 1;
      helpers_.emplace_back([this, index] { serve(index); });
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);  // a helper reads a product's fields with its generation
      part_ = &part;
      parts_ = parts;
      pending_.store(parts - 1);
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    part(0);
    if (!spin_until([&] { return pending_.load() == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return pending_.load() == 0; });
    }
  }

 private:
  static constexpr std::chrono::microseconds kSpin{200};

  ProductThreads() = default;
  ~ProductThreads() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& helper : helpers_) helper.join();
  }

  /// Polls `ready` for up to kSpin; whether it became true.
  template <class Ready>
  static bool spin_until(const Ready& ready) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int spin = 1;; ++spin) {
      if (ready()) return true;
      if (spin % 256 == 0 && std::chrono::steady_clock::now() > until) return false;
    }
  }

  void serve(int index) {
    onednn().omp_set_num_threads(1);  // this thread's own OpenMP count
    uint64_t seen = 0;
    for (;;) {
      if (!spin_until([&] { return generation_.load() != seen; })) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
      }
      const std::function<void(int)>* part = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        seen = generation_.load();
        if (stopping_) return;
        if (index >= parts_) continue;  // a product in fewer parts than there are helpers
        part = part_;
      }
      (*part)(index);
      if (pending_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> helpers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* part_ = nullptr;  // these three change with generation_, under mutex_
  int parts_ = 1;
  bool stopping_ = false;
};

/// How a product is cut: into parts of C's longer side of at least kMinPartSide each, at
/// most kMaxParts of them, a function of the product's shape alone. The threads only share
/// the parts out, so every entry is the same oneDNN call on the same operands whatever the
/// thread count: no number depends on --jobs, on the cores a task was given, or on whether
/// oneDNN's kernels for this CPU would sum a part as they sum the whole (AVX2's did not).
constexpr int64_t kMinPartSide = 128;
constexpr int64_t kMaxParts = 16;

int parts_of(int64_t side) { return static_cast<int>(std::clamp<int64_t>(side / kMinPartSide, 1, kMaxParts)); }

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

/// C = alpha A B + beta C for a contiguous float32 C of the result's shape, in the parts
/// of C's longer side that its shape sets (parts_of), each one oneDNN call on one thread,
/// shared out over up to `threads` threads.
void onednn_sgemm_into(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double alpha, double beta,
                       int threads) {
  const Onednn& o = onednn();
  TORCH_CHECK(o.usable(), "oneDNN's sgemm is not loaded in this process");
  const Operand a = operand(A), b = operand(B);
  const int64_t M = A.size(0), N = B.size(1), K = A.size(1), ldc = std::max<int64_t>(N, 1);
  const bool by_rows = M >= N;
  const int64_t side = by_rows ? M : N;
  const int parts = parts_of(side);
  const int64_t length = (side + parts - 1) / parts;
  std::atomic<int> status{0};
  auto part = [&](int p) {
    const int64_t start = p * length, size = std::min(length, side - start);
    if (size <= 0) return;
    const float* a_part = a.values.data_ptr<float>();
    const float* b_part = b.values.data_ptr<float>();
    float* c_part = C.data_ptr<float>();
    int64_t m = M, n = N;
    if (by_rows) {  // rows start .. start + size of op(A) and of C
      a_part += a.trans == 'N' ? start * a.leading : start;
      c_part += start * ldc;
      m = size;
    } else {  // columns of op(B) and of C
      b_part += b.trans == 'N' ? start : start * b.leading;
      c_part += start;
      n = size;
    }
    const int result = o.sgemm(a.trans, b.trans, m, n, K, static_cast<float>(alpha), a_part, a.leading, b_part,
                               b.leading, static_cast<float>(beta), c_part, ldc);
    if (result != 0) status = result;
  };
  const int before = o.omp_get_max_threads();
  if (before != 1) o.omp_set_num_threads(1);
  // Thread w multiplies parts w, w + workers, ...: the same parts, in any order.
  const int workers = std::min(parts, std::max(threads, 1));
  auto share = [&](int w) {
    for (int p = w; p < parts; p += workers) part(p);
  };
  if (workers == 1)
    share(0);
  else
    ProductThreads::instance().run(workers, share);
  if (before != 1) o.omp_set_num_threads(before);
  TORCH_CHECK(status == 0, "oneDNN's sgemm failed (status ", status.load(), ") on ", A.sizes(), " x ", B.sizes());
}

torch::Tensor onednn_addmm_on(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                              double alpha, int threads) {
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
  onednn_sgemm_into(out, A, B, alpha, beta, threads);
  return out;
}

bool needs_autograd(const torch::Tensor& M) { return torch::GradMode::is_enabled() && M.requires_grad(); }

torch::Tensor onednn_product(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                             double alpha, int threads);

/// dA and dB of a product where autograd asks for them; A and B are inputs `first` and
/// `first` + 1, saved in that order.
std::pair<torch::Tensor, torch::Tensor> onednn_operand_grads(torch::autograd::AutogradContext* ctx,
                                                             const torch::Tensor& dOut, size_t first) {
  const auto saved = ctx->get_saved_variables();
  const double alpha = ctx->saved_data["alpha"].toDouble();
  const int threads = static_cast<int>(ctx->saved_data["threads"].toInt());
  torch::Tensor dA, dB;
  if (ctx->needs_input_grad(first)) dA = onednn_product({}, dOut, saved[1].t(), 0.0, alpha, threads);
  if (ctx->needs_input_grad(first + 1)) dB = onednn_product({}, saved[0].t(), dOut, 0.0, alpha, threads);
  return {dA, dB};
}

/// alpha A B (OnednnMm) and beta C + alpha A B (OnednnAddmm) on oneDNN as one autograd
/// operation each, so that `train.gradients: autograd` multiplies its float32 products
/// where the hand-derived gradients do. The backward, dC = beta dOut, dA = alpha dOut B^T
/// and dB = alpha A^T dOut, goes through onednn_product again, which records those
/// products too where the backward itself is recorded (create_graph: the Hessian-vector
/// products of diagnostics.sharpness). Two operations, as an autograd operation's tensor
/// inputs must all be defined.
struct OnednnMm : torch::autograd::Function<OnednnMm> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& A, const torch::Tensor& B,
                               double alpha, int64_t threads) {
    ctx->save_for_backward({A, B});
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["threads"] = threads;
    return onednn_addmm_on({}, A, B, 0.0, alpha, static_cast<int>(threads));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto [dA, dB] = onednn_operand_grads(ctx, grads[0], 0);
    return {dA, dB, torch::Tensor(), torch::Tensor()};
  }
};

struct OnednnAddmm : torch::autograd::Function<OnednnAddmm> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& C, const torch::Tensor& A,
                               const torch::Tensor& B, double beta, double alpha, int64_t threads) {
    ctx->save_for_backward({A, B});
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["threads"] = threads;
    return onednn_addmm_on(C, A, B, beta, alpha, static_cast<int>(threads));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const double beta = ctx->saved_data["beta"].toDouble();
    torch::Tensor dC;
    if (ctx->needs_input_grad(0)) dC = beta == 1.0 ? grads[0] : grads[0] * beta;
    auto [dA, dB] = onednn_operand_grads(ctx, grads[0], 1);
    return {dC, dA, dB, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// beta C + alpha A B on oneDNN (C undefined: alpha A B), recorded for autograd where an
/// operand needs it.
torch::Tensor onednn_product(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                             double alpha, int threads) {
  if (!needs_autograd(A) && !needs_autograd(B) && !(C.defined() && needs_autograd(C)))
    return onednn_addmm_on(C, A, B, beta, alpha, threads);
  return C.defined() ? OnednnAddmm::apply(C, A, B, beta, alpha, int64_t{threads})
                     : OnednnMm::apply(A, B, alpha, int64_t{threads});
}

}  // namespace

bool onednn_available() { return onednn().usable(); }

bool onednn_multiplies(const torch::Tensor& A, const torch::Tensor& B) {
  return onednn_available() && A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0) && A.device().is_cpu() &&
         B.device().is_cpu() && A.scalar_type() == torch::kFloat32 && B.scalar_type() == torch::kFloat32 &&
         A.numel() > 0 && B.numel() > 0;
}

torch::Tensor onednn_addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta,
                           double alpha, int threads) {
  return onednn_product(C, A, B, beta, alpha, threads);
}

bool onednn_addmm_into(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, int threads) {
  if (needs_autograd(C) || needs_autograd(A) || needs_autograd(B) || C.dim() != 2 || !C.is_contiguous() ||
      C.scalar_type() != torch::kFloat32 || C.size(0) != A.size(0) || C.size(1) != B.size(1))
    return false;
  onednn_sgemm_into(C, A, B, 1.0, 1.0, threads);
  return true;
}

std::string onednn_version() {
  const Onednn& o = onednn();
  if (!o.version) return "oneDNN";
  return fmt::format("oneDNN {}.{}.{}", o.version()->major, o.version()->minor, o.version()->patch);
}

}  // namespace resgd::compute
