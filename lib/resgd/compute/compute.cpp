// The compute seam's dispatch: each operation to the reference's LibTorch call, or to the
// tuned backend's route where the policy uses it and it applies (compute.h).
#include "resgd/compute/compute.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <thread>

#include "resgd/compute/loops.h"
#include "resgd/compute/onednn.h"
#include "resgd/compute/process.h"
#include "resgd/compute/row_blocks.h"
#include "resgd/core/cost.h"

namespace resgd::compute {
namespace {

thread_local const Policy* current = nullptr;
std::atomic<uint64_t> g_taken[std::size(kTunings)];

/// Counts a route taken; true, so that a branch reads `if (route applies && taken(...))`.
bool taken(Tuning tuning) {
  g_taken[static_cast<size_t>(tuning)].fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool needs_autograd(const torch::Tensor& M) { return torch::GradMode::is_enabled() && M.requires_grad(); }

/// Whether C can be the addend of A B in a tuned route: a CPU matrix of the product's
/// shape and dtype.
bool addend_fits(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B) {
  return C.dim() == 2 && C.device().is_cpu() && C.scalar_type() == A.scalar_type() && C.size(0) == A.size(0) &&
         C.size(1) == B.size(1);
}

/// gram += M M^T through dsyrk where the BLAS exports it: half the multiply-adds of a
/// product, as one triangle is summed, each entry the same dot product. False where it
/// does not apply (no dsyrk, a layout it cannot read, sizes past a Fortran int).
bool add_lower_gram_by_syrk(torch::Tensor& gram, const torch::Tensor& M) {
  using Dsyrk = void(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
                     const double* A, const int* lda, const double* beta, double* C, const int* ldc);
  static auto* dsyrk = reinterpret_cast<Dsyrk*>(dlsym(RTLD_DEFAULT, "dsyrk_"));
  const int64_t k = M.size(1), l = M.size(2), limit = std::numeric_limits<int>::max();
  if (!dsyrk || !gram.is_contiguous() || !M.is_cpu() || M.scalar_type() != torch::kFloat64 ||
      k * std::max(M.stride(1), M.stride(2)) >= limit || l >= limit)
    return false;
  // Column-major terms: gram[b], row-major, is its own transpose, and its row-major lower
  // triangle is the column-major upper one ('U'). A row-major M[b] (stride 1 along l) is
  // the column-major l x k matrix M[b]^T ('T': gram = (M^T)^T M^T); one with stride 1
  // along k is the column-major k x l matrix M[b] itself ('N': gram = M M^T).
  const bool row_major = M.stride(2) == 1 && M.stride(1) >= l;
  const bool column_major = !row_major && M.stride(1) == 1 && M.stride(2) >= k;
  const auto A = row_major || column_major ? M : M.contiguous();
  const char trans = column_major ? 'N' : 'T';
  const int n = static_cast<int>(k), depth = static_cast<int>(l), ldc = n;
  const int lda = static_cast<int>(column_major ? A.stride(2) : A.stride(1));
  const double one = 1.0;
  for (int64_t b = 0; b < M.size(0); ++b)
    dsyrk("U", &trans, &n, &depth, &one, A[b].data_ptr<double>(), &lda, &one, gram[b].data_ptr<double>(), &ldc);
  return true;
}

/// Sum of squares of a CPU tensor's entries in double, four partial sums wide so that the
/// compiler keeps four multiply-adds in flight without reordering any one sum.
template <class Scalar>
double sum_of_squares(const torch::Tensor& t) {
  const auto contiguous = t.contiguous();
  const Scalar* x = contiguous.data_ptr<Scalar>();
  const int64_t count = contiguous.numel();
  double partial[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= count; i += 4)
    for (int k = 0; k < 4; ++k) partial[k] += static_cast<double>(x[i + k]) * static_cast<double>(x[i + k]);
  for (; i < count; ++i) partial[0] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

}  // namespace

std::string to_string(Tuning tuning) {
  switch (tuning) {
    case Tuning::loops: return "loops";
    case Tuning::row_blocks: return "row_blocks";
    case Tuning::onednn: return "onednn";
    case Tuning::gram: return "gram";
    case Tuning::host_norm: return "host_norm";
    case Tuning::worker: return "worker";
  }
  return "?";
}

int usable_cores() {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = std::max(1, CPU_COUNT(&set));
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK")) {
    char* end = nullptr;
    const long granted = std::strtol(slurm, &end, 10);
    if (end != slurm && *end == '\0' && granted > 0) cores = std::min(cores, static_cast<int>(granted));
  }
  return cores;
}

Policy policy_for(const ExperimentConfig& config, int runs_at_once) {
  Policy p;
  p.backend = config.compute.backend;
  // A run alone in the process spreads its products over the cores; for steps below a
  // quarter GFLOP the parts cost more than they save.
  p.threads = runs_at_once == 1 && gd_step_flops(config) >= kThreadedStepFlops ? usable_cores() : 1;
  return p;
}

Scope::Scope(const Policy& policy) : previous_(current) { current = &policy; }
Scope::~Scope() { current = previous_; }

const Policy& policy() {
  static const Policy reference;
  return current ? *current : reference;
}

torch::Tensor mm(const torch::Tensor& A, const torch::Tensor& B) {
  const Policy& p = policy();
  if (p.uses(Tuning::onednn) && onednn_multiplies(A, B) && taken(Tuning::onednn))
    return onednn_addmm({}, A, B, 0.0, 1.0, p.threads);
  if (p.uses(Tuning::row_blocks) && row_blocks_multiply(A, B) && taken(Tuning::row_blocks))
    return addmm_in_row_blocks({}, A, B, 0.0, 1.0);
  return A.mm(B);
}

torch::Tensor addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta, double alpha) {
  const Policy& p = policy();
  if (addend_fits(C, A, B)) {
    if (p.uses(Tuning::onednn) && onednn_multiplies(A, B) && taken(Tuning::onednn))
      return onednn_addmm(C, A, B, beta, alpha, p.threads);
    if (p.uses(Tuning::row_blocks) && row_blocks_multiply(A, B) && !needs_autograd(C) && taken(Tuning::row_blocks))
      return addmm_in_row_blocks(C, A, B, beta, alpha);
  }
  return torch::addmm(C, A, B, beta, alpha);
}

torch::Tensor& addmm_(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B) {
  const Policy& p = policy();
  if (p.uses(Tuning::onednn) && onednn_multiplies(A, B) && onednn_addmm_into(C, A, B, p.threads) &&
      taken(Tuning::onednn))
    return C;
  return C.addmm_(A, B);
}

torch::Tensor bmm(const torch::Tensor& A, const torch::Tensor& B) {
  if (policy().uses(Tuning::loops) && loop_multiplies(A, B) && taken(Tuning::loops)) return loop_bmm(A, B);
  return A.bmm(B);
}

std::pair<double, double> loss_and_norm(const torch::Tensor& loss, const std::vector<torch::Tensor>& grads) {
  const bool on_host =
      loss.device().is_cpu() && std::all_of(grads.begin(), grads.end(), [](const torch::Tensor& g) {
        return g.device().is_cpu() && (g.scalar_type() == torch::kFloat64 || g.scalar_type() == torch::kFloat32);
      });
  if (policy().uses(Tuning::host_norm) && on_host &&
      taken(Tuning::host_norm)) {  // LibTorch's norm, stack and copy take ~10 calls
    double squares = 0;
    for (const auto& g : grads)
      squares += g.scalar_type() == torch::kFloat64 ? sum_of_squares<double>(g) : sum_of_squares<float>(g);
    return {loss.item<double>(), std::sqrt(squares)};
  }
  const torch::Tensor norm = torch::stack(at::_foreach_norm(grads)).norm();
  const torch::Tensor host = torch::stack({loss.reshape({}), norm}).to(torch::kCPU, torch::kFloat64);  // one transfer
  return {host[0].item<double>(), host[1].item<double>()};
}

void add_lower_gram_(torch::Tensor& gram, const torch::Tensor& M) {
  if (policy().uses(Tuning::gram) && add_lower_gram_by_syrk(gram, M) && taken(Tuning::gram)) return;
  gram.baddbmm_(M, M.transpose(1, 2));
}

uint64_t times_taken(Tuning tuning) { return g_taken[static_cast<size_t>(tuning)].load(); }

std::string describe(const Policy& policy, bool verbose) {
  if (policy.backend == Backend::reference) return "compute: reference backend (plain LibTorch operations)";
  std::vector<std::string> routes;
  if (policy.uses(Tuning::onednn) && onednn_available())
    routes.push_back(
        fmt::format("float32 products through {}'s sgemm on {} thread(s)", onednn_version(), policy.threads));
  if (policy.uses(Tuning::row_blocks) && blas_has_small_matrix_kernels())
    routes.emplace_back("float64 products of 1-2 x 10^6 multiply-adds in two row blocks");
  if (policy.uses(Tuning::loops)) routes.emplace_back("small batched products in one loop");
  if (policy.uses(Tuning::gram)) routes.emplace_back("Gram matrices by dsyrk");
  if (policy.uses(Tuning::host_norm)) routes.emplace_back("||grad|| summed on the host");
  if (policy.uses(Tuning::worker)) routes.emplace_back("diagnoses on a worker thread beside GD");
  std::string line = "compute: tuned backend";
  for (size_t i = 0; i < routes.size(); ++i) line += (i ? ", " : ": ") + routes[i];
  if (verbose) line += "\n" + process_summary();
  return line;
}

}  // namespace resgd::compute
