// The tuned backend's process-wide settings (process.h).
#include "resgd/compute/process.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <tuple>

#include "resgd/compute/onednn.h"

namespace resgd::compute {
namespace {

/// OpenBLAS's own controls, looked up at run time: Debian's LibTorch links the generic
/// libblas.so.3, which may or may not be OpenBLAS.
template <class Function>
Function* openblas_function(const char* name) {
  return reinterpret_cast<Function*>(dlsym(RTLD_DEFAULT, name));
}

/// What configure_process changed, each a phrase for process_summary.
struct Changes {
  std::string kernels, threads, heap;
};
Changes& changes() {
  static Changes c;
  return c;
}

/// The best of OpenBLAS's x86-64 kernel sets that this CPU and its OS can run.
const char* kernels_for_this_cpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();  // libgcc also checks that the OS saves the AVX/AVX-512 registers
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  if (__builtin_cpu_supports("avx")) return "SandyBridge";
#endif
  return nullptr;
}

void select_blas_kernels() {
  // A user's OPENBLAS_CORETYPE is left alone, and so is any choice but the fallback.
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  auto* corename = openblas_function<char*()>("openblas_get_corename");
  auto* quit = openblas_function<void()>("gotoblas_dynamic_quit");
  auto* init = openblas_function<void()>("gotoblas_dynamic_init");
  if (!corename || !quit || !init || std::string(corename()) != "Prescott") return;
  const char* kernels = kernels_for_this_cpu();
  if (!kernels) return;
  setenv("OPENBLAS_CORETYPE", kernels, /*overwrite=*/0);
  quit();
  init();
  changes().kernels = " (chosen by resgd: OpenBLAS fell back to Prescott on this CPU)";
}

void use_one_pool_thread() {
  auto* set_threads = openblas_function<void(int)>("openblas_set_num_threads");
  if (set_threads && !std::getenv("OPENBLAS_NUM_THREADS")) set_threads(1);
  if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(1);
  changes().threads = " (resgd's choice: OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set them)";
}

void keep_memory_in_the_heap() {
  // Tensors of every size come from the heap (the largest threshold, and no mmap): one
  // mapped afresh is faulted in page by page and unmapped when freed, every step.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_MMAP_MAX, 0);
  // Never trim it: a diagnosis holds its step's trace while GD goes on, and the freed
  // trace would otherwise be given back and faulted in again at the next diagnosis.
  mallopt(M_TRIM_THRESHOLD, -1);
  mallopt(M_TOP_PAD, 64 << 20);  // and grow it in large steps
  changes().heap = "; freed memory stays in the heap";
}

}  // namespace

void configure_process(Backend backend, const ProcessSetup& setup) {
  if (backend != Backend::tuned) return;
  if (setup.kernels) select_blas_kernels();  // first: before any product runs
  if (setup.one_pool_thread) use_one_pool_thread();
  if (setup.heap) keep_memory_in_the_heap();
}

bool blas_has_small_matrix_kernels() {
  static const bool recent_enough = [] {  // the version never changes in a process; the kernels may
    auto* config = openblas_function<char*()>("openblas_get_config");
    int major = 0, minor = 0, patch = 0;
    if (!config || std::sscanf(config(), "OpenBLAS %d.%d.%d", &major, &minor, &patch) != 3) return false;
    return std::make_tuple(major, minor, patch) >= std::make_tuple(0, 3, 16);
  }();
  static auto* corename = openblas_function<char*()>("openblas_get_corename");
  if (!recent_enough || !corename) return false;
  const std::string core = corename();
  return core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
}

void lower_this_threads_priority() {
#if defined(__linux__)
  constexpr int kWorkerNice = 10;
  const auto thread = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, thread);
  if (errno == 0 && nice < kWorkerNice) setpriority(PRIO_PROCESS, thread, kWorkerNice);
#endif
}

std::string blas_short_name() {
  auto* core = openblas_function<char*()>("openblas_get_corename");
  if (core) return fmt::format("OpenBLAS, {} kernels", core());
  return dlsym(RTLD_DEFAULT, "mkl_get_version") ? "MKL" : "LibTorch's BLAS";
}

std::string process_summary() {
  // Debian's LibTorch calls whichever libblas.so.3 the system's alternatives select, so the
  // library is found at run time from the address of sgemm_.
  std::string blas = "a BLAS linked into LibTorch";
  if (void* symbol = dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info info{};
    if (dladdr(symbol, &info) && info.dli_fname) {
      std::error_code ec;  // the alternatives symlink hides which library it is
      const auto real = std::filesystem::canonical(info.dli_fname, ec);
      blas = ec ? std::string(info.dli_fname) : real.string();
    }
    if (blas.find("openblas") != std::string::npos)
      blas = "OpenBLAS (" + blas + ")";
    else if (blas.find("/blas/") != std::string::npos)
      blas = "the reference BLAS, slow: install libopenblas0-pthread (" + blas + ")";
  }
  if (auto* core = openblas_function<char*()>("openblas_get_corename"))
    blas += fmt::format(", {} kernels{}", core(), changes().kernels);
  if (auto* threads = openblas_function<int()>("openblas_get_num_threads"))
    blas += fmt::format(", {} thread(s)", threads());
  const std::string onednn = onednn_available() ? "; " + onednn_version() + "'s sgemm loaded" : "";
  return fmt::format("{}{}; LibTorch's intra-op pool {} thread(s){}{}", blas, onednn, at::get_num_threads(),
                     changes().threads, changes().heap);
}

}  // namespace resgd::compute
