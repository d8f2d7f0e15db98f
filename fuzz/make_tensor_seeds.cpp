// Writes the seed corpus of the .pt fuzz target: valid tensor dictionaries as
// resgd::save_tensors writes them, the wrong-type files the reader must refuse, and the
// forged files of tests/forged_tensor_files.h (storage offsets, sizes and strides that
// reach outside their storage).
// Usage: make_tensor_seeds DIR
#include <torch/serialize.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "forged_tensor_files.h"
#include "resgd/io.h"

namespace {
void write_ivalue(const std::filesystem::path& path, const torch::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  resgd::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_tensor_seeds DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  torch::manual_seed(0);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  // What data.kind tensors reads: X (N, n, d) and Y (N, n, d_y), small.
  resgd::save_tensors(dir / "xy_float64.pt",
                      {{"X", torch::randn({2, 3, 4}, f64)}, {"Y", torch::randn({2, 3, 1}, f64)}});
  resgd::save_tensors(dir / "xy_float32_mean.pt", {{"X", torch::randn({3, 2, 2})}, {"Y", torch::randn({3, 1})}});
  resgd::save_tensors(
      dir / "params.pt",
      {{"blocks.0.W_Q", torch::randn({4, 4}, f64)}, {"labels", torch::arange(5)}, {"scalar", torch::tensor(1.5)}});
  resgd::save_tensors(dir / "empty_dict.pt", {});
  c10::Dict<std::string, std::string> strings;
  strings.insert("X", "not a tensor");
  write_ivalue(dir / "dict_of_strings.pt", strings);
  write_ivalue(dir / "list_of_tensors.pt", c10::List<torch::Tensor>({torch::ones({2})}));
  write_ivalue(dir / "int.pt", int64_t{7});
  for (const auto& file : resgd::testing::forged_files())
    resgd::write_file_atomic(dir / ("forged-" + file.name + ".pt"), resgd::testing::forged_file_bytes(file));
  resgd::write_file_atomic(dir / "forged-zip-entry-larger-than-the-file.pt",
                           resgd::testing::file_with_an_oversized_zip_entry());
  resgd::write_file_atomic(dir / "honest-hand-written.pt",
                           resgd::testing::forged_tensor_file({resgd::testing::honest_tensor("X", {4, 3, 2}),
                                                               resgd::testing::honest_tensor("Y", {4, 3, 1})}));
  return 0;
}
