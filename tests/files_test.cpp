// Plain files: only regular files are read, writes are whole or absent and reach the disk,
// and one process at a time writes a directory.
#include "resgd/core/files.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <map>
#include <sstream>

#include "resgd/core/csv.h"
#include "resgd/science/tensor_io.h"
#include "test_util.h"

namespace resgd {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

TEST(Files, OnlyRegularFilesAreReadAndTheRestIsRefusedAtOnce) {
  TempDir dir;
  testing::write_text(dir / "plain.txt", "text");
  EXPECT_EQ(read_file(dir / "plain.txt"), "text");
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);  // opening it to read would wait for a writer
  const std::pair<fs::path, std::string> refused[] = {{dir / "fifo", "is a FIFO (named pipe), not a regular file"},
                                                      {dir.path(), "is a directory, not a regular file"},
                                                      {"/dev/null", "is a character device, not a regular file"},
                                                      {dir / "missing", "cannot read: No such file or directory"}};
  for (const auto& [path, why] : refused) {
    try {
      read_file(path);
      ADD_FAILURE() << path << " was read";
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()), path.string() + ": " + why);
    }
  }
}

TEST(Files, ASecondWriterOfADirectoryIsRefusedNamingTheHolder) {
  TempDir dir;
  {
    const DirectoryLock first(dir.path());
    EXPECT_EQ(testing::slurp(dir / DirectoryLock::kFileName), std::to_string(getpid()) + "\n");
    try {
      const DirectoryLock second(dir.path());
      ADD_FAILURE() << "a second lock was taken";
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()), dir.path().string() + ": in use by another resgd process (pid " +
                                           std::to_string(getpid()) +
                                           "); wait for it to end, or choose another "
                                           "directory");
    }
  }
  EXPECT_NO_THROW(DirectoryLock again(dir.path())) << "released with its holder";
}

TEST(Files, ALinkInPlaceOfALockOrAWrittenFileIsRefusedAndItsTargetKept) {
  // A link planted where resgd writes (its lock file, a file's temporary, metrics.csv) is
  // refused by name, and the file it points to keeps every byte.
  TempDir dir;
  testing::write_text(dir / "victim", "precious\n");
  fs::create_directories(dir / "run");
  fs::create_symlink(dir / "victim", dir / "run" / DirectoryLock::kFileName);
  testing::expect_error<IoError>([&] { DirectoryLock lock(dir / "run"); }, "is a symbolic link");
  fs::create_symlink(dir / "victim", dir / "run" / "summary.json.tmp");
  testing::expect_error<IoError>([&] { write_file_atomic(dir / "run" / "summary.json", "{}"); }, "is a symbolic link");
  fs::create_symlink(dir / "victim", dir / "run" / "metrics.csv");
  testing::expect_error<IoError>([&] { CsvWriter csv(dir / "run" / "metrics.csv", {"iter"}, /*append=*/true); },
                                 "is a symbolic link");
  // A link at the destination itself is replaced by the file, not written through.
  fs::create_symlink(dir / "victim", dir / "run" / "config.yaml");
  write_file_atomic(dir / "run" / "config.yaml", "name: x\n");
  EXPECT_FALSE(fs::is_symlink(dir / "run" / "config.yaml"));
  EXPECT_EQ(testing::slurp(dir / "victim"), "precious\n");

  // The commands that take a directory's lock, each refused with the link named.
  testing::write_text(dir / "exp.yaml", "data: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 3}\n");
  ASSERT_EQ(testing::run_resgd(dir, "run exp.yaml --out done").exit_code, 0);
  fs::remove(dir / "done" / DirectoryLock::kFileName);
  fs::create_symlink(dir / "victim", dir / "done" / DirectoryLock::kFileName);
  fs::create_directories(dir / "fresh");
  fs::create_symlink(dir / "victim", dir / "fresh" / DirectoryLock::kFileName);
  for (const std::string command : {"report done", "run exp.yaml --out done --resume", "run exp.yaml --out fresh"}) {
    const auto r = testing::run_resgd(dir, command);
    EXPECT_EQ(r.exit_code, 1) << command << ": " << r.err;
    EXPECT_NE(r.err.find(".resgd.lock: is a symbolic link"), std::string::npos) << command << ": " << r.err;
  }
  EXPECT_EQ(testing::slurp(dir / "victim"), "precious\n");
}

/// In a death-test child: `write` under a file size limit of 4 KiB (writes fail part way,
/// EFBIG, as on a full disk, ENOSPC), exiting 0 where it threw the IoError `expected` and
/// left nothing at `path`.
template <class Write>
[[noreturn]] void write_past_a_size_limit(const fs::path& path, Write&& write) {
  std::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{4096, 4096};
  setrlimit(RLIMIT_FSIZE, &limit);
  try {
    write(path);
  } catch (const IoError& e) {
    const bool named = std::string(e.what()) == path.string() + ": write failed: File too large";
    const bool nothing_left = !fs::exists(path) && !fs::exists(path.string() + ".tmp");
    std::exit(named && nothing_left ? 0 : 3);
  }
  std::exit(4);
}

TEST(Files, AWriteThatFailsMidFileLeavesNothingAndNamesThePath) {
  TempDir dir;
  auto text = [](const fs::path& path) { write_file_atomic(path, std::string(100000, 'x')); };
  auto tensors = [](const fs::path& path) { save_tensors(path, {{"X", torch::ones({100000}, torch::kFloat64)}}); };
  EXPECT_EXIT(write_past_a_size_limit(dir / "big.txt", text), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(write_past_a_size_limit(dir / "big.pt", tensors), ::testing::ExitedWithCode(0), "");
}

/// In a death-test child: saves 512 MiB of tensor with 256 MiB of address space to spare.
[[noreturn]] void save_with_little_room(const fs::path& path) {
  const torch::Tensor big = torch::ones({64 << 20}, torch::kFloat64);
  std::ifstream status("/proc/self/status");
  std::string line;
  double used_kib = 0;
  while (std::getline(status, line))
    if (line.rfind("VmSize:", 0) == 0) used_kib = std::stod(line.substr(7));
  const auto room = static_cast<rlim_t>(used_kib * 1024 + 256.0 * (1 << 20));
  const rlimit limit{room, room};
  setrlimit(RLIMIT_AS, &limit);
  save_tensors(path, {{"X", big}});
  std::exit(fs::file_size(path) > (512u << 20) ? 0 : 3);
}

TEST(Files, SavingALargeTensorKeepsNoCopyOfTheArchiveInMemory) {
  // The tensor is streamed into the file. Gathering the archive in memory first ran out
  // of memory inside LibTorch's zip writer, whose destructor then aborted the process.
  TempDir dir;
  EXPECT_EXIT(save_with_little_room(dir / "big.pt"), ::testing::ExitedWithCode(0), "");
}

TEST(Files, EveryFileARunKeepsReachesTheDiskBeforeItsSummary) {
  // The preloaded spy logs each fsync and rename of `resgd run`: every file the run
  // keeps is synced, then renamed into place (or, metrics.csv, synced where it is), then
  // its directory synced; summary.json comes last, so a power cut can never leave a
  // summary that says "done" beside files that are not.
  TempDir dir;
  testing::write_text(dir / "exp.yaml",
                      "data: {num_samples: 2, seq_len: 3, dim: 4, target_dim: 2}\nmodel: {ffn_width: 4}\n"
                      "train: {max_iters: 5}\n");
  const auto result = testing::run_resgd(dir, "run exp.yaml --out out --device cpu",
                                         std::string("RESGD_SYNC_LOG=") + (dir / "sync.log").string() +
                                             " LD_PRELOAD=" RESGD_FSYNC_SPY " ASAN_OPTIONS=verify_asan_link_order=0");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<std::string> log;
  {
    std::istringstream in(testing::slurp(dir / "sync.log"));
    for (std::string line; std::getline(in, line);) log.push_back(line);
  }
  const fs::path out = fs::canonical(dir / "out");  // the spy logs fsync's paths from /proc, renames as given
  auto first_after = [&](long start, const std::string& line) -> long {
    for (size_t i = static_cast<size_t>(start + 1); i < log.size(); ++i)
      if (log[i] == line) return static_cast<long>(i);
    return -1;
  };
  const std::string rename_summary = "rename out/summary.json.tmp out/summary.json";
  const long summary_renamed = first_after(-1, rename_summary);
  ASSERT_GE(summary_renamed, 0) << testing::slurp(dir / "sync.log");
  EXPECT_EQ(first_after(summary_renamed, rename_summary), -1) << "written once";
  for (const std::string name : {"config.yaml", "tensors/init.pt", "tensors/final.pt", "summary.json"}) {
    const long renamed = first_after(-1, "rename out/" + name + ".tmp out/" + name);
    const long synced = first_after(-1, "fsync " + (out / name).string() + ".tmp");
    EXPECT_GE(synced, 0) << name;
    EXPECT_GT(renamed, synced) << name << ": its content is on disk before it takes the name";
    EXPECT_GT(first_after(renamed, "fsync " + (out / name).parent_path().string()), renamed)
        << name << ": its directory entry is synced after the rename";
    EXPECT_LE(renamed, summary_renamed) << name;
  }
  const long metrics_synced = first_after(-1, "fsync " + (out / "metrics.csv").string());
  EXPECT_GE(metrics_synced, 0);
  EXPECT_LT(metrics_synced, summary_renamed);
}

}  // namespace
}  // namespace resgd
