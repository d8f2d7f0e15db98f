// Other programs: a time limit and a stop of resgd end them, with what they started; their
// output and exit status come back.
#include "resgd/core/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Whether process `pid` still exists (a zombie counts as gone: it runs nothing).
bool alive(pid_t pid) {
  const std::string state = testing::slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = state.rfind(')');
  return close != std::string::npos && close + 2 < state.size() && state[close + 2] != 'Z';
}

TEST(Subprocess, OutputAndExitStatusComeBack) {
  const ProgramResult ok = run_program({{"sh", "-c", "echo out; echo err >&2"}, {}, {}, 10});
  EXPECT_TRUE(ok.succeeded());
  EXPECT_EQ(ok.output, "out\nerr\n");
  const ProgramResult failed = run_program({{"sh", "-c", "exit 3"}, {}, {}, 10});
  EXPECT_FALSE(failed.succeeded());
  EXPECT_EQ(failed.status, 3);
  EXPECT_EQ(failed.failure(), "exited with status 3");
  const ProgramResult missing = run_program({{"no-such-program-resgd"}, {}, {}, 10});
  EXPECT_FALSE(missing.started);
  EXPECT_EQ(missing.failure(), "could not be started");
}

TEST(Subprocess, AProgramPastItsTimeLimitIsKilledWithWhatItStarted) {
  // A program that ignores SIGTERM and leaves a child of its own: both end, within the
  // limit and the second it is given after SIGTERM.
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  const ProgramResult r = run_program(
      {{"sh", "-c", "trap '' TERM; sleep 100 & echo $! > child; wait"}, dir.path(), dir / "log", /*limit=*/0.5});
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.succeeded());
  EXPECT_EQ(r.failure(), "did not finish in time and was killed");
  const pid_t child = std::stoi(testing::slurp(dir / "child"));
  ASSERT_TRUE(testing::wait_until([&] { return !alive(child); }, 5)) << "the program's own child outlived it";
}

TEST(Subprocess, AStopOfResgdKillsTheProgramItWaitsFor) {
  const auto start = std::chrono::steady_clock::now();
  std::thread stopper([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop_flag() = true;
  });
  const ProgramResult r = run_program({{"sleep", "100"}, {}, {}, 600});
  stopper.join();
  stop_flag() = false;
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.failure(), "was stopped with resgd");
}

}  // namespace
}  // namespace resgd
