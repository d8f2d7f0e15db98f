// Small helpers shared by the test files: a temporary directory and running `resgd`.
#pragma once

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace resgd::testing {

/// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "resgd-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

/// Runs the built `resgd` binary with `args` (shell words) inside `dir`; `env`, when given,
/// are arguments of env(1) before it (e.g. "OMP_NUM_THREADS=2", "-u OMP_NUM_THREADS").
inline CommandResult run_resgd(const TempDir& dir, const std::string& args, const std::string& env = "") {
  const auto out = dir / ".stdout", err = dir / ".stderr";
  const std::string command = "cd '" + dir.path().string() + "' && " + (env.empty() ? "" : "env " + env + " ") +
                              "'" RESGD_BINARY "' " + args + " >'" + out.string() + "' 2>'" + err.string() +
                              "' </dev/null";
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = slurp(out);
  result.err = slurp(err);
  return result;
}

/// Whether a thread of this process other than the calling one is runnable (state R in
/// /proc): a pool thread spinning on sched_yield is, however busy the machine; one asleep
/// on its condition variable is not.
inline bool another_thread_runnable() {
  const std::string self = std::to_string(::syscall(SYS_gettid));
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (task.path().filename() == self) continue;
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto name_end = line.rfind(')');  // "tid (name) state ..."
    if (name_end != std::string::npos && name_end + 2 < line.size() && line[name_end + 2] == 'R') return true;
  }
  return false;
}

}  // namespace resgd::testing
