// The machine a run executes on: device and dtype selection, BLAS and thread report.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "resgd/config.h"

namespace resgd {

/// The device of `config.device`; `auto` picks cuda:0 when a GPU is usable, else cpu.
/// Asking for a CUDA device that is not there is a ConfigError naming where it was set.
torch::Device resolve_device(const ExperimentConfig& config);

torch::Dtype resolve_dtype(const std::string& dtype);

/// Process-wide settings made once at start-up: keeps freed tensor memory in the heap
/// instead of returning it to the kernel after every step (fresh pages cost ~13 us per
/// 4 KiB here, which dominated small GD steps).
void configure_process();  // also calls select_blas_kernels, limit_blas_spin, choose_intra_op_threads
                           // and match_blas_threads

/// Where OpenBLAS did not recognise the CPU and fell back to its generic SSE3 kernels,
/// re-selects the fastest kernel set the CPU supports (AVX-512, else AVX2). Must run
/// before the first matrix product; a no-op with any other BLAS or choice.
void select_blas_kernels();

/// Where OpenBLAS serves the products and OPENBLAS_THREAD_TIMEOUT is not set, lets its idle
/// pool threads spin for 2^20 TSC cycles (about 0.4 ms) after a threaded call instead of
/// 2^28 (0.1 s), so that they leave the core to a diagnosis beside a one-thread step.
/// Restarts the pool: call it before any other thread uses BLAS.
void limit_blas_spin();

/// Where OpenBLAS serves the products and OMP_NUM_THREADS is not set, gives LibTorch's
/// intra-op pool one thread: resgd's own BLAS threads, diagnosis worker and --jobs share
/// the cores out, and a pool of every core (LibTorch 2.x's default) beside them
/// oversubscribes the machine. compute_backend_summary says when it changed the count.
void choose_intra_op_threads();

/// Whether the BLAS in use is OpenBLAS 0.3.16 or later with its AVX-512 kernels (SkylakeX,
/// Cooperlake, SapphireRapids): the ones that multiply float64 products of up to 10^6
/// multiply-adds with small-matrix kernels (row_blocks.h).
bool blas_has_small_matrix_kernels();

/// Gives OpenBLAS (when it serves the products) as many threads as LibTorch's pool, the
/// count every run starts from (set_gd_blas_threads raises it for a lone GD loop).
void match_blas_threads();

/// OpenBLAS's thread count. It is one number for the whole process, read by every BLAS and
/// LAPACK call on every thread, so only a thread that knows no other one is in BLAS may
/// change it. Calls OpenBLAS only when the count changes; a no-op with any other BLAS.
void set_blas_threads(int threads);

/// Whether multiply(A, B, threads) gives the same products, bit for bit, for threads = 1
/// and for the cores a lone run's step would take (true with one core), for products of
/// `dtype` shaped like the GD step's: thin (K = 16, 64), wide, and a weight gradient's sum
/// over 2048 tokens, each also with A transposed.
bool thread_count_changes_no_product(
    torch::ScalarType dtype,
    const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, int threads)>& multiply);

/// Raises the calling thread's nice value to 10 (Linux schedules threads one by one): the
/// diagnosis worker, so that a step's threads take the cores whenever they run and the
/// worker fills the stretches where they leave one idle, instead of the step dropping to
/// one thread beside it (docs/performance.md, item 15). Not back down: an unprivileged
/// thread may not lower its nice value, so each diagnosis has a worker of its own. At 10,
/// not 19: beside other programs' busy threads the worker still gets a tenth of a core.
void lower_this_threads_priority();

/// Whether OpenBLAS's products of `dtype` (torch::mm) come out the same, bit for bit, on one
/// thread and on the cores a lone run's step would take (true with one core). The GD step
/// drops to one thread while a diagnosis runs beside it, so where they differ a run's numbers would
/// depend on its timing; train() then gives each diagnosis a fixed number of steps.
/// OpenBLAS's Haswell sgemm on AMD Zen 5 (OPENBLAS_CORETYPE=Haswell) differs in the last
/// bits; its SkylakeX, Cooperlake and Sandybridge kernels, and every dgemm seen, split a
/// product by blocks of the result and agree. Probed once.
bool blas_threads_change_no_number(torch::ScalarType dtype);

/// BLAS threads for one GD loop that has the machine to itself, whose step multiplies
/// matrices worth `step_flops`: OPENBLAS_NUM_THREADS if the user set it; else 1 for a step
/// under kThreadedStepFlops, whose thin products gain little from a second thread while
/// OpenBLAS's spinning pool slows the diagnoses beside it; else the cores LibTorch's
/// intra-op pool leaves (cores / its threads).
int lone_gd_blas_threads(double step_flops);

/// Between the sizes measured on 2 cores (docs/performance.md, "BLAS threads"): at 0.014
/// and 0.016 GFLOP per step a second thread saved at most 0.1 ms and made diagnostics every
/// 10 steps cost +38% to +68%; at 3.8 and 122 GFLOP it made steps 20-25% faster without
/// and 3-10% faster with diagnostics every 10.
constexpr double kThreadedStepFlops = 0.25e9;

/// How many BLAS threads `train` gives the GD step while no diagnosis runs beside it (it
/// drops to 1 while one does, and returns to this when it is done). Default 1; the runner
/// raises it for a single run or a sweep with --jobs 1, never when runs share the process.
void set_gd_blas_threads(int threads);
int gd_blas_threads();

/// E.g. "1.13.1".
std::string libtorch_version();

/// One line: the BLAS library that serves sgemm_ (found at run time), and thread counts.
std::string compute_backend_summary();

}  // namespace resgd
