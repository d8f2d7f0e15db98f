// Device, dtype and compute-backend reporting.
#include "resgd/system.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <thread>

#include <filesystem>
#include <fmt/format.h>
#include <torch/version.h>

#include "resgd/products.h"

namespace resgd {

torch::Device resolve_device(const ExperimentConfig& config) {
  const std::string& name = config.device;
  if (name == "cpu") return torch::kCPU;
  const bool have_cuda = torch::cuda::is_available();
  if (name == "auto") return have_cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  auto where = [&] {
    auto it = config.origins.find("device");
    return it == config.origins.end() ? std::string("--device") : it->second.str();
  };
  if (!have_cuda)
    throw ConfigError(fmt::format("{}: device: '{}' was asked for, but no usable CUDA device exists "
                                  "(no GPU, no driver, or a CPU-only LibTorch such as Debian's); use cpu or auto",
                                  where(), name));
  const int64_t index = name == "cuda" ? 0 : std::stoll(name.substr(5));
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (index >= count)
    throw ConfigError(fmt::format("{}: device: '{}' does not exist; this machine has {} CUDA device(s) (cuda:0..cuda:{})",
                                  where(), name, count, count - 1));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::Dtype resolve_dtype(const std::string& dtype) {
  if (dtype == "float64") return torch::kFloat64;
  if (dtype == "float32") return torch::kFloat32;
  throw ConfigError(fmt::format("dtype: unknown value '{}'; expected float64 or float32", dtype));
}

void configure_process() {
  select_blas_kernels();  // first: before any product runs
  limit_blas_spin();
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest allowed: tensors up to 32 MiB come from the heap
  // and larger ones too: otherwise each is mapped afresh and unmapped when freed, and the
  // large size's 128 MiB FFN tensors fault in about 190,000 new pages every step (0.1-0.2 s
  // of a 1 s step). glibc still maps what the heap cannot grow to hold.
  mallopt(M_MMAP_MAX, 0);
  // Never give the heap back (-1: trimming off). A diagnosis on the worker holds its step's
  // forward trace while GD goes on, so the steps beside it take new memory; freeing the
  // trace then left a free top of about 1 GiB at the large size, which a threshold of
  // 1 GiB still trimmed: every diagnosis faulted it in again (docs/performance.md, item 13).
  mallopt(M_TRIM_THRESHOLD, -1);
  mallopt(M_TOP_PAD, 64 << 20);         // grow it in large steps
  // Threads keep their own arenas. M_ARENA_MAX 1 would spare the diagnosis worker's arena
  // from mapping its 32 MiB pieces afresh (about 90 ms of a 2 s large diagnosis), but the
  // shared lock made diagnostics every 10 cost +18% to +33% at the small size against +11%
  // to +15% (docs/performance.md, item 13).
  choose_intra_op_threads();
  match_blas_threads();
}

std::string libtorch_version() { return TORCH_VERSION; }

namespace {

/// OpenBLAS's own controls, looked up at run time: Debian's LibTorch links the generic
/// libblas.so.3, which may or may not be OpenBLAS.
template <class Function>
Function* openblas_function(const char* name) {
  return reinterpret_cast<Function*>(dlsym(RTLD_DEFAULT, name));
}

/// What the start-up choices changed, each a phrase for compute_backend_summary; empty
/// where the choice left the default alone.
struct StartupNotes {
  std::string blas_kernels;  // select_blas_kernels
  std::string blas_spin;     // limit_blas_spin
  std::string intra_op;      // choose_intra_op_threads
};
StartupNotes& startup_notes() {
  static StartupNotes notes;
  return notes;
}

/// The best of OpenBLAS's x86-64 kernel sets that this CPU and its OS can run.
const char* kernels_for_this_cpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();  // libgcc also checks that the OS saves the AVX/AVX-512 registers
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  if (__builtin_cpu_supports("avx")) return "SandyBridge";
#endif
  return nullptr;
}

}  // namespace

void select_blas_kernels() {
  // A DYNAMIC_ARCH OpenBLAS picks its kernels from the CPU model when it is loaded; a
  // release older than the CPU does not know the model and falls back to its Prescott
  // (SSE3) kernels. OpenBLAS 0.3.21 (Debian 12) does so on 2023 Xeons, where its AVX-512
  // kernels run dgemm 10x and sgemm 7x faster. Re-run OpenBLAS's own selection with
  // OPENBLAS_CORETYPE, its documented override, set from the CPU's features; a value
  // the user set is left alone, and so is any kernel choice other than the fallback.
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
  startup_notes().blas_kernels = " (chosen by resgd, as OpenBLAS fell back to Prescott on this CPU; "
                       "OPENBLAS_CORETYPE=Prescott keeps its fallback)";
}

void limit_blas_spin() {
  // After each threaded call OpenBLAS's pool threads spin (sched_yield) for
  // OPENBLAS_THREAD_TIMEOUT, 2^28 TSC cycles (about 0.1 s) by default, before they sleep.
  // When the GD step drops to one BLAS thread for a diagnosis, the idle pool thread spun
  // on the core the diagnosis needed, and the step beside them took twice its time
  // (docs/performance.md, item 12). 2^20 cycles (about 0.4 ms) keeps the pool awake between
  // the products of one step. The pool reads the setting when it starts, so it is restarted.
  if (std::getenv("OPENBLAS_THREAD_TIMEOUT") || std::getenv("GOTO_THREAD_TIMEOUT")) return;
  auto* read_env = openblas_function<void()>("openblas_read_env");
  auto* shutdown = openblas_function<int()>("blas_thread_shutdown_");
  auto* start = openblas_function<int()>("blas_thread_init");
  if (!read_env || !shutdown || !start) return;
  setenv("OPENBLAS_THREAD_TIMEOUT", "20", /*overwrite=*/0);
  read_env();
  shutdown();
  start();
  startup_notes().blas_spin = ", idle BLAS threads sleep after 2^20 cycles (resgd's choice; OPENBLAS_THREAD_TIMEOUT sets it)";
}

void choose_intra_op_threads() {
  // resgd schedules the cores itself: OpenBLAS threads for a large GD step
  // (lone_gd_blas_threads), a worker for the diagnoses, --jobs for sweep runs. LibTorch's
  // intra-op pool on top of that oversubscribes them: Debian 12's LibTorch 1.13 starts it
  // with one thread on two cores, but Debian 13's 2.6 with every core, and there a
  // diagnosis on the worker competed with the step's own pool threads (diagnostics every
  // 10 steps cost +35% to +129% at the small sizes instead of under 8%, and a medium step
  // took 64-66 instead of 37-43 ms; docs/performance.md). Only with OpenBLAS: where the
  // products go to a BLAS that threads through the intra-op pool (MKL in the official
  // zips), one thread would make them serial.
  if (std::getenv("OMP_NUM_THREADS") || !openblas_function<void(int)>("openblas_set_num_threads")) return;
  const int before = at::get_num_threads();
  if (before == 1) return;
  at::set_num_threads(1);
  startup_notes().intra_op = fmt::format(" (resgd's choice, LibTorch's was {}; OMP_NUM_THREADS sets it)", before);
}

bool blas_has_small_matrix_kernels() {
  // The version never changes in a process; the kernels may (select_blas_kernels).
  static const bool recent_enough = [] {
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

namespace {
std::atomic<int> blas_threads_now{0};  // what set_blas_threads last gave OpenBLAS; 0: not yet
std::atomic<int> gd_blas_threads_setting{1};
}  // namespace

void set_blas_threads(int threads) {
  threads = std::max(threads, 1);
  if (blas_threads_now.exchange(threads) == threads) return;
  if (auto* set_threads = openblas_function<void(int)>("openblas_set_num_threads")) set_threads(threads);
}

void match_blas_threads() {
  // OpenBLAS starts its own thread pool; with LibTorch's threads beside it the two
  // oversubscribe the cores. Start from the same count as LibTorch's intra-op pool.
  set_blas_threads(at::get_num_threads());
}

namespace {
/// The BLAS threads a lone run's large step would take: the cores LibTorch's pool leaves.
int spare_cores() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, at::get_num_threads()));
}

}  // namespace

bool thread_count_changes_no_product(
    torch::ScalarType dtype,
    const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, int threads)>& multiply) {
  const int threads = spare_cores();
  if (threads == 1) return true;
  bool agree = true;
  // The entries are fixed (no random stream is drawn from) and inexact in every dtype.
  for (const auto& [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{256, 16, 256}, {256, 256, 16}, {512, 64, 512},
                                {64, 2048, 256}}) {
    const auto options = torch::TensorOptions().dtype(dtype);
    const auto A = torch::sin(torch::arange(m * k, options).mul_(0.37)).view({m, k});
    const auto B = torch::cos(torch::arange(k * n, options).mul_(0.53)).view({k, n});
    const auto At = A.t().contiguous().t();  // the same values, column-major: the transposed kernels
    agree = agree && torch::equal(multiply(A, B, 1), multiply(A, B, threads)) &&
            torch::equal(multiply(At, B, 1), multiply(At, B, threads));
  }
  return agree;
}

bool blas_threads_change_no_number(torch::ScalarType dtype) {
  // Decided once per process, before the runs: the kernels never change after start-up.
  auto torch_mm = [](const torch::Tensor& A, const torch::Tensor& B, int threads) {
    const int before = blas_threads_now.load();
    set_blas_threads(threads);
    auto C = A.mm(B);
    set_blas_threads(before > 0 ? before : 1);
    return C;
  };
  static const bool float64 = thread_count_changes_no_product(torch::kFloat64, torch_mm);
  static const bool float32 = thread_count_changes_no_product(torch::kFloat32, torch_mm);
  return dtype == torch::kFloat64 ? float64 : float32;
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

int lone_gd_blas_threads(double step_flops) {
  if (const char* env = std::getenv("OPENBLAS_NUM_THREADS")) {
    const int threads = std::atoi(env);
    if (threads > 0) return threads;
  }
  if (step_flops < kThreadedStepFlops) return 1;
  return spare_cores();
}

void set_gd_blas_threads(int threads) { gd_blas_threads_setting = std::max(threads, 1); }
int gd_blas_threads() { return gd_blas_threads_setting; }

std::string compute_backend_summary() {
  // Debian's LibTorch calls whichever libblas.so.3 the system's alternatives select, so the
  // library is found at run time from the address of sgemm_.
  std::string blas = "unknown BLAS";
  if (void* symbol = dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info info{};
    if (dladdr(symbol, &info) && info.dli_fname) {
      std::error_code ec;  // the alternatives symlink hides which library it is
      const auto real = std::filesystem::canonical(info.dli_fname, ec);
      blas = ec ? std::string(info.dli_fname) : real.string();
    }
    if (blas.find("openblas") != std::string::npos) blas = "OpenBLAS (" + blas + ")";
    else if (blas.find("libtorch") != std::string::npos) blas = "BLAS linked into LibTorch (" + blas + ")";
    else if (blas.find("/blas/") != std::string::npos) blas = "reference BLAS, slow: install libopenblas0-pthread (" + blas + ")";
  } else {
    blas = "BLAS linked statically into LibTorch (MKL or OpenBLAS)";
  }
  if (auto* core = openblas_function<char*()>("openblas_get_corename"))
    blas += fmt::format(", {} kernels{}", core(), startup_notes().blas_kernels);
  if (blas_has_small_matrix_kernels()) blas += ", float64 products of 1-2 x 10^6 multiply-adds in two row blocks";
  if (openblas_function<int()>("openblas_get_num_threads")) {
    blas += fmt::format(", BLAS threads: {} for the GD step of a lone run of {:.2g}+ GFLOP per step, else 1",
                        lone_gd_blas_threads(kThreadedStepFlops), kThreadedStepFlops / 1e9);
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      // as train() decides it: steps whose token products are on oneDNN keep one BLAS thread
      if (blas_threads_change_no_number(dtype) || !token_products_follow_blas_threads(dtype)) continue;
      blas += fmt::format(" ({}: a fixed number of steps beside each diagnosis, as its products differ in the "
                          "last bits with the thread count)",
                          dtype == torch::kFloat64 ? "float64" : "float32");
    }
  }
  blas += token_products_summary();
  blas += startup_notes().blas_spin;
  return fmt::format("compute: {}; {} intra-op thread(s){}; LibTorch {}", blas, at::get_num_threads(),
                     startup_notes().intra_op, libtorch_version());
}

}  // namespace resgd
