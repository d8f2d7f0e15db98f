// `resgd claims --explain`: the claims language of an experiment file's claims.expect.
#include <iostream>

#include "commands.h"
#include "resgd/report/claims.h"

namespace resgd::app {

int claims_command(const Cli&) {
  std::cout << explain_claims();
  return 0;
}

}  // namespace resgd::app
