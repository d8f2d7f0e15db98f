// An LD_PRELOAD library for the file tests: it logs every fsync (with the path of the
// descriptor) and every rename to $RESGD_SYNC_LOG, one line each, then does the real call.
// The test reads the log to check that each file a run keeps reached the disk, and its
// directory entry after it, before summary.json said the run was done.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

void log_line(const std::string& line) {
  const char* path = std::getenv("RESGD_SYNC_LOG");
  if (!path) return;
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = line + "\n";
  (void)!::write(fd, text.data(), text.size());  // one write: lines from threads never interleave
  ::close(fd);
}

std::string path_of(int fd) {
  char link[64], target[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t length = ::readlink(link, target, sizeof target - 1);
  return length > 0 ? std::string(target, static_cast<size_t>(length)) : std::string("?");
}

}  // namespace

extern "C" int fsync(int fd) {
  static auto* real = reinterpret_cast<int (*)(int)>(dlsym(RTLD_NEXT, "fsync"));
  log_line("fsync " + path_of(fd));
  return real(fd);
}

extern "C" int rename(const char* from, const char* to) {
  static auto* real = reinterpret_cast<int (*)(const char*, const char*)>(dlsym(RTLD_NEXT, "rename"));
  log_line(std::string("rename ") + from + " " + to);
  return real(from, to);
}
