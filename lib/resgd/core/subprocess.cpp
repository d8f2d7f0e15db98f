// Other programs, run with a time limit and stopped with resgd (subprocess.h).
#include "resgd/core/subprocess.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

extern char** environ;

namespace resgd {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// The exit status of a reaped child as a shell reports it.
int exit_status(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

std::atomic<bool>& stop_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

std::string ProgramResult::failure() const {
  if (!started) return "could not be started";
  if (stopped) return "was stopped with resgd";
  if (timed_out) return "did not finish in time and was killed";
  if (status > 128) return fmt::format("was ended by signal {}", status - 128);
  return fmt::format("exited with status {}", status);
}

Program::Program(ProgramOptions options) : options_(std::move(options)) {
  int pipe_fds[2] = {-1, -1};
  const bool capture = options_.log.empty();
  if (capture && pipe2(pipe_fds, O_CLOEXEC) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!options_.dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, options_.dir.c_str());
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (capture)
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  else
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options_.log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  // A group of its own, so that a kill reaches whatever it starts; no signal blocked.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> argv;
  for (auto& a : options_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (capture) {
    ::close(pipe_fds[1]);
    output_fd_ = pipe_fds[0];
    ::fcntl(output_fd_, F_SETFL, ::fcntl(output_fd_, F_GETFL) | O_NONBLOCK);
  }
  if (spawned != 0) return;
  pid_ = pid;
  result_.started = true;
  started_at_ = now_s();
}

Program::~Program() {
  if (pid_ > 0 && !reaped_) {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (output_fd_ >= 0) ::close(output_fd_);
}

ProgramResult Program::wait() {
  if (pid_ <= 0 || reaped_) return result_;
  auto drain = [&] {
    char buffer[4096];
    for (ssize_t got; output_fd_ >= 0 && (got = ::read(output_fd_, buffer, sizeof buffer)) > 0;)
      result_.output.append(buffer, static_cast<size_t>(got));
  };
  double killed_at = -1;
  for (;;) {
    if (output_fd_ >= 0) {
      pollfd readable{output_fd_, POLLIN, 0};
      ::poll(&readable, 1, 20);
      drain();
    } else {
      ::usleep(20000);
    }
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      result_.status = exit_status(status);
      break;
    }
    if (done < 0 && errno != EINTR) {
      reaped_ = true;
      break;
    }
    const double t = now_s();
    if (killed_at < 0 && (stop_flag().load() || t - started_at_ > options_.time_limit_s)) {
      (stop_flag().load() ? result_.stopped : result_.timed_out) = true;
      ::kill(-pid_, SIGTERM);
      killed_at = t;
    } else if (killed_at >= 0 && t - killed_at > 1.0) {
      ::kill(-pid_, SIGKILL);  // it ignored SIGTERM
    }
  }
  drain();
  return result_;
}

ProgramResult run_program(ProgramOptions options) {
  Program program(std::move(options));
  return program.wait();
}

}  // namespace resgd
