// Writes the seed corpus of the .pt fuzz target: valid tensor dictionaries as
// resgd::save_tensors writes them, the wrong-type files the reader must refuse, and the
// forged files of tests/forged_tensor_files.h (storage offsets, sizes and strides that
// reach outside their storage).
// With a second directory, it also writes each file's data.pkl there, and pickles nested
// deeper than a tensor file ever is (pickle_fuzz's seeds).
// Usage: make_tensor_seeds DIR [PICKLE_DIR]
#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>

#include "forged_tensor_files.h"
#include "resgd/science/tensor_io.h"

namespace {
void write_ivalue(const std::filesystem::path& path, const torch::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  resgd::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::cerr << "usage: make_tensor_seeds DIR [PICKLE_DIR]\n";
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
  if (argc == 2) return 0;
  const std::filesystem::path pickles = argv[2];
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    try {
      const std::string bytes = resgd::read_file(entry.path());
      std::istringstream stream(bytes);
      caffe2::serialize::PyTorchStreamReader reader(&stream);
      const auto [data, size] = reader.getRecord("data.pkl");
      resgd::write_file_atomic(pickles / (entry.path().stem().string() + ".pkl"),
                               std::string(static_cast<const char*>(data.get()), size));
    } catch (const std::exception&) {  // a forged zip: no pickle to take
    }
  }
  for (const int depth : {3, 99, 150}) {
    const std::string d = std::to_string(depth);
    resgd::write_file_atomic(pickles / ("nested-tuples-" + d + ".pkl"), resgd::testing::pickle_of_nested_tuples(depth));
    resgd::write_file_atomic(pickles / ("nested-lists-" + d + ".pkl"), resgd::testing::pickle_of_nested_lists(depth));
  }
  resgd::write_file_atomic(pickles / "growing-a-placed-list.pkl", resgd::testing::pickle_growing_a_placed_list(5));
  return 0;
}
