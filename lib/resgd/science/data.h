// Data sets: docs/design.md, "Data".
// Gaussian tokens are drawn on the CPU in float64 from streams of the run's seed, then cast
// and moved, so the data never depend on the device, the dtype, or the student's residuals,
// initialization or step size.
//
// `digits`: the UCI handwritten digits (data/digits.csv.gz, 1,797 images). Each 8x8 image
// is 8 tokens (its rows) of 8 features, pixels / 16 in [0, 1]; the first num_samples images
// are used (the file cycles through the classes, so any prefix is nearly balanced). The
// target is decided by target_dim: 10 = one-hot label, 1 = the label 0..9 as a number. With
// the mean readout Y is (N, d_y); with the tokens readout every token gets a copy, (N, 8, d_y).
// For this kind seq_len and dim default to 8 and target_dim to 10 (config_validate.cpp).
// data.path null means <source dir>/data/digits.csv.gz (baked in at build time), else
// ./data/digits.csv.gz; a relative data.path is relative to the working directory.
//
// `tensors`: X (N_file, n, d) and Y ((N_file, n, d_y) for tokens, (N_file, d_y) for mean)
// from a torch.save({'X': X, 'Y': Y}) file. read_data_sizes fills the sizes an experiment
// leaves unset from the file (num_samples: all of its sequences), before the configuration
// is written, so config.yaml always records the real shapes. A size that is set must match
// the file (a ConfigError naming the key); num_samples <= N_file takes the first sequences.
#pragma once

#include <torch/torch.h>

#include <filesystem>

#include "resgd/core/config.h"

namespace resgd {

struct Dataset {
  torch::Tensor X;  // (N, n, d)
  torch::Tensor Y;  // (N, n, d_y) for the tokens readout, (N, d_y) for mean
};

/// For `tensors` data, sets data.num_samples, seq_len, dim and target_dim, where the
/// experiment (file, --set or sweep) did not set them, to N, n, d and d_y of the file's X and
/// Y, then checks the file as make_dataset will (IoError, or ConfigError for a size the
/// experiment set that the file contradicts), so a run refuses it before writing anything.
/// Other kinds are left as they are.
void read_data_sizes(ExperimentConfig& config);
/// A configuration read back from a sweep directory's config.yaml (resgd run --point)
/// holds the sizes of the base configuration, not those of its tensors files, which may
/// differ from point to point: they count as unset, to be read from the files again.
void forget_tensors_sizes(ExperimentConfig& config);

/// A fingerprint of the data a run trains on: FNV-1a (64 bit) over the shapes, the dtype
/// and the bytes of X and Y. A resumed run compares it with its checkpoint's, so that a
/// tensors file changed in between is noticed.
uint64_t data_fingerprint(const Dataset& data);

/// Builds the experiment's data set on `device` in `dtype`. Throws IoError for a missing or
/// malformed file, ConfigError when the file disagrees with the config.
Dataset make_dataset(const ExperimentConfig& config, torch::Device device, torch::Dtype dtype);

/// The UCI digits: images (N, 8, 8) float64 in [0, 1] and labels (N) int64 in 0..9.
struct Digits {
  torch::Tensor images;
  torch::Tensor labels;
};
/// Reads a digits CSV, gzip-compressed or plain (65 integers a row: 64 pixels, the label).
Digits load_digits(const std::filesystem::path& path);
/// Where the bundled data lies: share/resgd beside the executable's bin/ folder, in the
/// build tree (build/release/share/resgd) as in an installed prefix.
std::filesystem::path bundled_data_dir();
/// The digits file of a config: data.path, or the bundled copy (IoError naming it when it
/// is not there).
std::filesystem::path digits_path(const DataConfig& data);

}  // namespace resgd
