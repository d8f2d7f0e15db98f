// The machine a run executes on: device and dtype selection, BLAS and thread report.
#pragma once

#include <torch/torch.h>

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
void configure_process();  // also calls select_blas_kernels and match_blas_threads

/// Where OpenBLAS did not recognise the CPU and fell back to its generic SSE3 kernels,
/// re-selects the fastest kernel set the CPU supports (AVX-512, else AVX2). Must run
/// before the first matrix product; a no-op with any other BLAS or choice.
void select_blas_kernels();

/// Gives OpenBLAS (when it serves the products) as many threads as LibTorch's pool.
void match_blas_threads();

/// E.g. "1.13.1".
std::string libtorch_version();

/// One line: the BLAS library that serves sgemm_ (found at run time), and thread counts.
std::string compute_backend_summary();

}  // namespace resgd
