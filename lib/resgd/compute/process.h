// The process-wide settings of the tuned backend, made once at start-up before any product,
// and what the process multiplies with. The reference backend makes none of them.
#pragma once

#include <string>

#include "resgd/core/config.h"

namespace resgd::compute {

/// The process-wide settings, each one that `resgd bench` can leave out to measure it.
struct ProcessSetup {
  /// Where OpenBLAS did not recognise the CPU and fell back to its generic SSE3 kernels
  /// (Prescott), re-run its own kernel selection with OPENBLAS_CORETYPE set from the CPU's
  /// features (AVX-512, else AVX2). OpenBLAS 0.3.21 (Debian 12) does so on 2023 Xeons.
  bool kernels = true;
  /// OpenBLAS and LibTorch's intra-op pool on one thread: ResGD shares the cores out itself
  /// (product parts, the diagnosis worker, --jobs), and a pool of every core beside them
  /// (LibTorch 2.x's default) oversubscribes the machine. OPENBLAS_NUM_THREADS and
  /// OMP_NUM_THREADS, where set, win.
  bool one_pool_thread = true;
  /// Freed memory stays in the heap, and large tensors come from it too (mallopt): a
  /// fresh page costs a fault, and a step that maps its large tensors afresh pays one per
  /// 4 KiB every step.
  bool heap = true;
};

/// Applies `setup` where `backend` is tuned (and where the library it concerns is the one
/// loaded); nothing for the reference. Call once, before any product.
void configure_process(Backend backend, const ProcessSetup& setup = {});

/// Whether the BLAS is OpenBLAS 0.3.16 or later with its AVX-512 kernels, which multiply
/// float64 products of up to 10^6 multiply-adds with small-matrix kernels (row_blocks.h).
bool blas_has_small_matrix_kernels();

/// Raises the calling thread's nice value to 10 (Linux schedules threads one by one): the
/// diagnosis worker, so that the GD step's threads take the cores whenever they run. At
/// 10, not 19: beside other programs' busy threads the worker still gets a share.
void lower_this_threads_priority();

/// What multiplies in this process: the BLAS library and its kernels, oneDNN where it is
/// loaded, the pools' thread counts, and what configure_process changed.
std::string process_summary();

/// The BLAS in a few words, e.g. "OpenBLAS, SkylakeX kernels".
std::string blas_short_name();

}  // namespace resgd::compute
