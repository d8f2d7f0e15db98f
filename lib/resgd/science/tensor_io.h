// Tensor dictionaries (.pt) a run reads and writes: init.pt, final.pt, checkpoints and a
// `tensors` data file, readable by Python's torch.load.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resgd/core/files.h"  // IoError

namespace resgd {

/// The entry of final.pt that holds the run's resolved configuration as YAML text.
constexpr const char* kConfigEntry = "config";

/// Saves named tensors as a dictionary readable by torch.load in Python and by
/// load_tensors, streaming them into the file (no copy of the whole archive in memory).
/// Tensors are copied to the CPU first. An allocation or write failure is an IoError
/// naming the path, and nothing is left at `path`.
/// `texts` go into the same dictionary as strings: final.pt's kConfigEntry, which
/// load_tensors passes over.
void save_tensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::vector<std::pair<std::string, std::string>>& texts = {});
/// Loads a dictionary of tensors written by save_tensors or by torch.save in Python (a
/// string under kConfigEntry passed over).
/// Every tensor's storage offset, sizes and strides are checked against the bytes its
/// storage record holds before any element is read; a file that fails is an IoError
/// naming it.
std::map<std::string, torch::Tensor> load_tensors(const std::filesystem::path& path);
/// The same, from the file's bytes; `source` names it in errors (the fuzz target's entry).
std::map<std::string, torch::Tensor> load_tensors_from_bytes(const std::string& bytes, const std::string& source);

}  // namespace resgd
