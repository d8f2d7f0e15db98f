// The one way ResGD runs another program (gnuplot, sbatch, squeue, sacct): with a time
// limit, and killed, with everything it started, when the user stops resgd (SIGINT or
// SIGTERM). A program that never returns can then neither hang resgd nor outlive it.
#pragma once

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resgd {

/// Set (async-signal-safely) by resgd's SIGINT/SIGTERM handler: a run stops after its
/// iteration, and a program being waited for is killed.
std::atomic<bool>& stop_flag();

struct ProgramOptions {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH unless it holds a '/'
  std::filesystem::path dir;      // the working directory; empty: resgd's own
  std::filesystem::path log;      // stdout and stderr appended here; empty: captured
  double time_limit_s = 60;       // past it the program is killed
};

struct ProgramResult {
  bool started = false;    // false: it could not be started (not found, not executable)
  int status = -1;         // its exit status, or 128 + the signal that ended it
  bool timed_out = false;  // killed at time_limit_s
  bool stopped = false;    // killed because resgd was asked to stop
  std::string output;      // stdout and stderr together, where not logged to a file

  bool succeeded() const { return started && status == 0 && !timed_out && !stopped; }
  /// "exited with status 3", "did not finish within 60 s and was killed", ...
  std::string failure() const;
};

/// A program started in a process group of its own, reaped by wait().
class Program {
 public:
  explicit Program(ProgramOptions options);
  ~Program();  // kills and reaps a program still running: no child outlives its owner
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  /// Waits until it exits, its time limit passes or stop_flag() is set (then it and its
  /// group get SIGTERM, and SIGKILL a second later).
  ProgramResult wait();

 private:
  ProgramOptions options_;
  ProgramResult result_;
  int pid_ = -1, output_fd_ = -1;
  double started_at_ = 0;
  bool reaped_ = false;
};

/// Runs a program to its end (Program, then wait()).
ProgramResult run_program(ProgramOptions options);

}  // namespace resgd
