// Plain files, free of LibTorch (the config loader and its fuzzer use them): reading only
// regular files, atomic writes that survive a power cut, and one writer per directory.
//
// Whole files are written atomically: a temporary file beside the target, fsync, rename,
// fsync of the directory; the file is either complete or absent. Every file read must be a
// regular file: a FIFO or a device would block the reader forever.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace resgd {

/// A file could not be read or written; the message names the path and why.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Opens `path` for reading, only if it is a regular file (symbolic links followed): a
/// FIFO, a device or a directory is refused at once, naming the path and what it is. The
/// caller owns the returned file descriptor.
int open_regular_file(const std::filesystem::path& path);

/// The whole of a regular file (open_regular_file).
std::string read_file(const std::filesystem::path& path);

/// Writes `content` to `path` atomically (see above).
void write_file_atomic(const std::filesystem::path& path, const std::string& content);
/// The same, with the content written by `fill` into the temporary file; `fill` returns
/// false with errno set on a failure. Nothing is left at `path` if anything fails.
void write_file_atomic_with(const std::filesystem::path& path, const std::function<bool(std::FILE*)>& fill);

/// Opens `path` for writing (truncated, or appended to), creating it: never through a
/// symbolic link (refused by name, its target untouched) nor into anything but a regular
/// file. The caller closes it.
std::FILE* open_for_writing(const std::filesystem::path& path, bool append);

/// fsync of a file or a directory by its path (IoError on failure).
void sync_path(const std::filesystem::path& path);
/// Flushes and fsyncs an open file; false with errno set on failure.
bool sync_file(std::FILE* file);

/// One writer per output directory: an exclusive advisory lock (flock) on DIR/.resgd.lock,
/// held for the object's lifetime and released by the kernel if the process dies. The lock
/// file holds the holder's process id, which a second process's error names. Only the
/// holder removes the file (remove_file); a process refused the lock touches nothing. A
/// lock file that is a symbolic link, or not a regular file, is refused.
class DirectoryLock {
 public:
  /// Takes the lock on `dir` (which must exist), or throws IoError naming the directory
  /// and the process that holds it.
  explicit DirectoryLock(const std::filesystem::path& dir);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

  /// Unlinks the lock file while still holding it: a directory left as the holder found it.
  void remove_file();

  static constexpr const char* kFileName = ".resgd.lock";

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

/// The process that holds `dir`'s lock now (the pid its lock file names), or none where no
/// process does, read from the kernel's table of locks: it creates nothing and takes no
/// lock, so it never refuses a run that starts meanwhile.
std::optional<int> lock_holder(const std::filesystem::path& dir);

/// The executable `name` as the shell finds it on PATH (an empty entry is the working
/// directory); none where it is not there.
std::optional<std::filesystem::path> find_program(const std::string& name);

/// The absolute path of the running executable (/proc/self/exe); "resgd" where unreadable.
std::filesystem::path this_executable();
/// The `resgd` a user runs (and a Slurm task should run): the front binary that handed this
/// process over to resgd-torch says so in RESGD_EXECUTABLE; else this executable.
std::filesystem::path resgd_executable();

}  // namespace resgd
