// Plain files: regular-file reads, atomic writes, the directory lock (files.h).
#include "resgd/core/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace resgd {
namespace fs = std::filesystem;

int open_regular_file(const fs::path& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw IoError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    const int saved = errno;
    ::close(fd);
    const char* what = S_ISDIR(info.st_mode)    ? "a directory"
                       : S_ISFIFO(info.st_mode) ? "a FIFO (named pipe)"
                       : S_ISCHR(info.st_mode)  ? "a character device"
                       : S_ISBLK(info.st_mode)  ? "a block device"
                       : S_ISSOCK(info.st_mode) ? "a socket"
                                                : nullptr;
    throw IoError(what ? fmt::format("{}: is {}, not a regular file", path.string(), what)
                       : fmt::format("{}: cannot read: {}", path.string(), std::strerror(saved)));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

namespace {

/// fsync of an open descriptor; false with errno set on failure. EINVAL: a file system
/// that has nothing to sync (a pipe, some FUSE mounts).
bool sync_fd(int fd) { return ::fsync(fd) == 0 || errno == EINVAL; }

}  // namespace

std::string read_file(const fs::path& path) {
  const int fd = open_regular_file(path);
  std::string content;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got == 0) break;
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int saved = errno;
      ::close(fd);
      throw IoError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(saved)));
    }
    content.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return content;
}

std::FILE* open_for_writing(const fs::path& path, bool append) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0 && errno == ELOOP)
    throw IoError(
        fmt::format("{}: is a symbolic link; resgd writes only its own plain files (remove the link)", path.string()));
  if (fd < 0) throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw IoError(fmt::format("{}: is not a regular file; resgd writes only its own plain files", path.string()));
  }
  std::FILE* file = ::fdopen(fd, append ? "ab" : "wb");
  if (!file) {
    const int saved = errno;
    ::close(fd);
    throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(saved)));
  }
  return file;
}

bool sync_file(std::FILE* file) { return std::fflush(file) == 0 && sync_fd(fileno(file)); }

void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(fmt::format("{}: cannot open to sync: {}", path.string(), std::strerror(errno)));
  const bool synced = sync_fd(fd);
  const int saved = errno;
  ::close(fd);
  if (!synced) throw IoError(fmt::format("{}: cannot sync: {}", path.string(), std::strerror(saved)));
}

void write_file_atomic_with(const fs::path& path, const std::function<bool(std::FILE*)>& fill) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create directory: {}", dir.string(), ec.message()));
  const fs::path temporary = path.string() + ".tmp";
  std::FILE* file = open_for_writing(temporary, /*append=*/false);  // rename replaces a link at `path`, not its target
  bool written = false;
  try {
    written = fill(file) && sync_file(file);
  } catch (...) {
    std::fclose(file);
    std::remove(temporary.c_str());
    throw;
  }
  int failure = errno;
  const bool closed = std::fclose(file) == 0;  // a full disk often shows only here
  if (written && !closed) failure = errno;
  if (!written || !closed) {
    std::remove(temporary.c_str());
    throw IoError(fmt::format("{}: write failed: {}", path.string(), std::strerror(failure)));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    std::remove(temporary.c_str());
    throw IoError(fmt::format("{}: cannot rename into place: {}", path.string(), std::strerror(rename_errno)));
  }
  sync_path(dir);  // the rename itself
}

void write_file_atomic(const fs::path& path, const std::string& content) {
  write_file_atomic_with(
      path, [&](std::FILE* file) { return std::fwrite(content.data(), 1, content.size(), file) == content.size(); });
}

// ---------------------------------------------------------------------------------------
DirectoryLock::DirectoryLock(const fs::path& dir) {
  const fs::path path = dir / kFileName;
  // The lock is the file's inode: one that its holder unlinked (leaving a directory as it
  // found it) is locked by nobody else, so a lock taken on it is taken again on the file now
  // at the path. O_NOFOLLOW: a link planted at the path is refused, its target untouched.
  for (int attempt = 0;; ++attempt) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0 && errno == ELOOP)
      throw IoError(fmt::format("{}: is a symbolic link; resgd's lock file must be a plain file (remove the link)",
                                path.string()));
    if (fd_ < 0) throw IoError(fmt::format("{}: cannot create the lock file: {}", path.string(), std::strerror(errno)));
    struct stat opened {};
    if (::fstat(fd_, &opened) != 0 || !S_ISREG(opened.st_mode)) {
      ::close(fd_);
      fd_ = -1;
      throw IoError(fmt::format("{}: is not a regular file; resgd's lock file must be one", path.string()));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int saved = errno;
      char holder[32] = {};
      const ssize_t got = ::pread(fd_, holder, sizeof holder - 1, 0);
      ::close(fd_);
      fd_ = -1;
      if (saved != EWOULDBLOCK) throw IoError(fmt::format("{}: cannot lock: {}", path.string(), std::strerror(saved)));
      const std::string pid = got > 0 ? std::string(holder, static_cast<size_t>(got)) : std::string();
      throw IoError(
          fmt::format("{}: in use by another resgd process{}; wait for it to end, or choose another "
                      "directory",
                      dir.string(),
                      pid.find_first_not_of("0123456789\n") == std::string::npos && !pid.empty()
                          ? fmt::format(" (pid {})", pid.substr(0, pid.find('\n')))
                          : std::string()));
    }
    struct stat now {};
    if (::lstat(path.c_str(), &now) == 0 && now.st_dev == opened.st_dev && now.st_ino == opened.st_ino) break;
    ::close(fd_);  // unlinked (or replaced) by its last holder between our open and our lock
    fd_ = -1;
    if (attempt == 100) throw IoError(fmt::format("{}: the lock file keeps changing; cannot lock", path.string()));
  }
  path_ = path;
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int saved = errno;
    ::close(fd_);
    fd_ = -1;
    throw IoError(fmt::format("{}: cannot write the lock file: {}", path.string(), std::strerror(saved)));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays unless its holder removed it
}

void DirectoryLock::remove_file() {
  // Unlinked while still held: a process that opened the old file finds it gone once it
  // holds the lock, and takes the lock again on a new one (the loop above).
  if (fd_ >= 0) ::unlink(path_.c_str());
}

std::optional<int> lock_holder(const fs::path& dir) {
  // Read from the kernel's table of locks (/proc/locks), never by taking the lock: a look
  // that held it for a moment would refuse a run starting in that moment.
  struct stat info {};
  if (::lstat((dir / DirectoryLock::kFileName).c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
  const std::string file = fmt::format("{:02x}:{:02x}:{}", major(info.st_dev), minor(info.st_dev), info.st_ino);
  std::string table;
  try {
    table = read_file("/proc/locks");
  } catch (const IoError&) {
    return std::nullopt;
  }
  std::stringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    // "1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234567 0 EOF"; a waiter's line holds "->".
    if (line.find("FLOCK") == std::string::npos || line.find("->") != std::string::npos) continue;
    std::stringstream words(line);
    std::string number, kind, mode, access, pid, where;
    words >> number >> kind >> mode >> access >> pid >> where;
    if (where == file) return std::atoi(pid.c_str());
  }
  return std::nullopt;
}

std::optional<std::filesystem::path> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) return candidate;
  }
  return std::nullopt;
}

std::filesystem::path this_executable() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path("resgd") : exe;
}

std::filesystem::path resgd_executable() {
  const char* front = std::getenv("RESGD_EXECUTABLE");
  return front && *front ? std::filesystem::path(front) : this_executable();
}

}  // namespace resgd
