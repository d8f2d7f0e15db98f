// Precompiled header: the heavy third-party headers every ResGD translation unit uses.
#pragma once
#include <fmt/format.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>
