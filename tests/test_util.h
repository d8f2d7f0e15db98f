// Small helpers shared by the test files: a temporary directory and running `resgd`.
#pragma once

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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

/// Expects `body` to throw E with `needle` in its message.
template <typename E, typename F>
void expect_error(F body, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "no exception; expected one containing: " << needle;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

/// Starts the built `resgd` with `args` inside `dir`, its output discarded; the child's pid.
inline pid_t spawn_resgd(const TempDir& dir, std::vector<std::string> args) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.path().c_str()) != 0) _exit(126);
    std::vector<char*> argv = {const_cast<char*>(RESGD_BINARY)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
    execv(RESGD_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

/// The exit code of a child started by spawn_resgd (-1 if a signal ended it).
inline int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The number of complete lines of a file (0 where it does not exist).
inline size_t line_count(const std::filesystem::path& path) {
  const std::string text = slurp(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// Waits up to `seconds` for `ready()`; whether it became true.
template <class Ready>
bool wait_until(Ready&& ready, double seconds = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
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

/// The cells of the markdown table under `heading`, header first.
inline std::vector<std::vector<std::string>> markdown_table(const std::string& text, const std::string& heading) {
  std::vector<std::vector<std::string>> rows;
  const size_t at = text.find(heading);
  if (at == std::string::npos) return rows;
  std::stringstream in(text.substr(at));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '|') {
      if (!rows.empty()) break;
      continue;
    }
    std::vector<std::string> cells;
    std::stringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(cell.substr(1, cell.size() - 2));
    if (cells.front() != "---") rows.push_back(cells);
  }
  return rows;
}

}  // namespace resgd::testing
