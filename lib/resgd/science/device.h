// Where a run computes: its device and dtype, and which LibTorch it uses.
#pragma once

#include <torch/torch.h>

#include <string>

#include "resgd/core/config.h"

namespace resgd {

/// The device of `config.device`; `auto` picks cuda:0 when a GPU is usable, else cpu.
/// Asking for a CUDA device that is not there is a ConfigError naming where it was set.
torch::Device resolve_device(const ExperimentConfig& config);

torch::Dtype resolve_dtype(Dtype dtype);

}  // namespace resgd
