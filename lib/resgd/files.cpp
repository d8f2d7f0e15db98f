// Plain files: regular-file reads, atomic writes, the directory lock (files.h).
#include "resgd/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
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
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (!file) throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno)));
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
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(fmt::format("{}: cannot create the lock file: {}", path.string(), std::strerror(errno)));
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
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int saved = errno;
    ::close(fd_);
    throw IoError(fmt::format("{}: cannot write the lock file: {}", path.string(), std::strerror(saved)));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays, as another may hold it open
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

}  // namespace resgd
