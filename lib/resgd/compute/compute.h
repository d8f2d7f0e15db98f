// The one seam between the science and the machine. The model, the hand-derived backward,
// training and the diagnostics multiply through these functions, and know nothing of
// kernels, threads or allocators: docs/internals.md.
//
// Two backends (compute.backend):
//   reference  plain LibTorch operations: A.mm(B), torch::addmm, A.bmm(B). What a reader
//              checks the other against.
//   tuned      the routes that pay on the machines ResGD runs on, each measured against
//              the reference in `resgd bench` (docs/performance.md): small batched
//              products in one loop, float64 products in two row blocks where OpenBLAS's
//              small kernels then take them, float32 products through oneDNN's sgemm in
//              parts on the run's threads.
// Both give the same numbers to rounding (tests: float64 runs to 1e-12, float32 to 1e-5).
//
// A run's choices travel as a Policy, made by the runner for the run and installed by
// train() on its thread (Scope): nothing here is process-wide but what process.h sets up.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "resgd/core/config.h"

namespace resgd::compute {

/// The tuned backend's routes and rules, each one that `resgd bench` can switch off to
/// measure what it gains.
enum class Tuning {
  loops,       // small batched products (the attention's) in one loop, not torch::bmm
  row_blocks,  // float64 products of 1-2 x 10^6 multiply-adds in two blocks of rows
  onednn,      // float32 products through oneDNN's sgemm (recorded for autograd where it must see them)
  gram,        // the spectra's float64 Gram matrices through the BLAS's dsyrk, one triangle summed
  host_norm,   // ||grad|| summed on the host from the gradients in place, not by LibTorch's norms
  worker,      // diagnoses on a worker thread, at a lower priority, while GD goes on
};
constexpr Tuning kTunings[] = {Tuning::loops, Tuning::row_blocks, Tuning::onednn,
                               Tuning::gram,  Tuning::host_norm,  Tuning::worker};
std::string to_string(Tuning tuning);

/// How one run computes.
struct Policy {
  Backend backend = Backend::reference;
  /// Threads a product may take (oneDNN's parts): the cores for a run alone in the
  /// process, 1 for runs side by side. Fixed for the run, so no number depends on timing.
  int threads = 1;
  /// The tunings in use (tuned backend only); bench's "without" variants clear one.
  bool use[std::size(kTunings)] = {true, true, true, true, true, true};

  bool uses(Tuning tuning) const { return backend == Backend::tuned && use[static_cast<size_t>(tuning)]; }
};

/// The cores this process may use: its CPU affinity (what a cluster's scheduler or taskset
/// grants), at most SLURM_CPUS_PER_TASK where Slurm set it.
int usable_cores();

/// The policy of a run of `config` with `runs_at_once` runs side by side in the process.
Policy policy_for(const ExperimentConfig& config, int runs_at_once);

/// Installs `policy` for the calling thread while the object lives (train() does, for its
/// run; the diagnosis worker for its job).
class Scope {
 public:
  explicit Scope(const Policy& policy);
  explicit Scope(Policy&&) = delete;  // it keeps a pointer: the policy must outlive it
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const Policy* previous_;
};

/// The calling thread's policy: a Scope's, else the reference backend.
const Policy& policy();

/// A B for 2-D (M, K) and (K, N).
torch::Tensor mm(const torch::Tensor& A, const torch::Tensor& B);
/// beta C + alpha A B.
torch::Tensor addmm(const torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B, double beta = 1.0,
                    double alpha = 1.0);
/// C += A B, in place where nothing needs autograd.
torch::Tensor& addmm_(torch::Tensor& C, const torch::Tensor& A, const torch::Tensor& B);
/// A B for batches (N, r, k) and (N, k, c).
torch::Tensor bmm(const torch::Tensor& A, const torch::Tensor& B);
/// The loss and the Frobenius norm of all `grads` together, read back to the host: the
/// two numbers GD logs at each iteration.
std::pair<double, double> loss_and_norm(const torch::Tensor& loss, const std::vector<torch::Tensor>& grads);
/// gram += M M^T for each matrix of a float64 CPU batch M (B, k, l), lower triangle only
/// (what linalg_eigvalsh reads): the spectra's Gram matrices.
void add_lower_gram_(torch::Tensor& gram, const torch::Tensor& M);

/// How many operations took `tuning`'s route in this process so far: a backend asked for
/// is the one that computed (the tests count them; `worker` is not an operation, 0).
uint64_t times_taken(Tuning tuning);

/// One line on what multiplies: device-independent, for the start of `resgd run`; with
/// `verbose`, every choice and why.
std::string describe(const Policy& policy, bool verbose);

}  // namespace resgd::compute
