// One finished run as the runner returns it and the tables read it.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "resgd/core/config.h"

namespace resgd {

/// One finished run: where it lives, which sweep point it was, and its summary.json.
struct RunRecord {
  SweepPoint point;
  std::filesystem::path dir;
  nlohmann::json summary;
};

}  // namespace resgd
