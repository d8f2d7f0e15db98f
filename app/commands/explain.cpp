// `resgd config`, `resgd metrics --explain`: the keys and the columns, from the tables
// the code reads (no LibTorch: `resgd` answers them itself).
#include <fmt/format.h>

#include <iostream>

#include "commands.h"
#include "resgd/core/columns.h"

namespace resgd::app {

int config_command(const Cli& cli) {
  if (!cli.config_explain) {
    if (!cli.config_key.empty()) throw ConfigError("config: a key goes with --explain (resgd config --explain KEY)");
    std::cout << dump_yaml(ExperimentConfig{});
    return 0;
  }
  const std::string text = explain_keys(cli.config_key);
  if (text.empty())
    throw ConfigError(
        fmt::format("config --explain: unknown key '{}'; resgd config --explain lists them all", cli.config_key));
  std::cout << text;
  return 0;
}

int metrics_command(const Cli& cli) {
  const std::string text = explain_columns(cli.metric_name);
  if (text.empty())
    throw ConfigError(
        fmt::format("metrics --explain: unknown column '{}'; resgd metrics --explain lists them all", cli.metric_name));
  std::cout << text;
  return 0;
}

}  // namespace resgd::app
