// Devices and dtypes (device.h).
#include "resgd/science/device.h"

#include <fmt/format.h>

namespace resgd {

torch::Device resolve_device(const ExperimentConfig& config) {
  const std::string& name = config.device;
  if (name == "cpu") return torch::kCPU;
  const bool have_cuda = torch::cuda::is_available();
  if (name == "auto") return have_cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  auto where = [&] {
    auto it = config.origins.find("device");
    return it == config.origins.end() ? std::string("--device") : it->second.str();
  };
  if (!have_cuda)
    throw ConfigError(
        fmt::format("{}: device: '{}' was asked for, but no usable CUDA device exists "
                    "(no GPU, no driver, or a CPU-only LibTorch such as Debian's); use cpu or auto",
                    where(), name));
  const int64_t index = name == "cuda" ? 0 : std::stoll(name.substr(5));
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (index >= count)
    throw ConfigError(
        fmt::format("{}: device: '{}' does not exist; this machine has {} CUDA device(s) (cuda:0..cuda:{})", where(),
                    name, count, count - 1));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::Dtype resolve_dtype(Dtype dtype) { return dtype == Dtype::float64 ? torch::kFloat64 : torch::kFloat32; }

}  // namespace resgd
