// The same science on the GPU (issue 8): every CUDA number against the CPU's, in float64.
// CPU and CUDA sum in different orders, so nothing here is bit for bit except the data
// (drawn on the CPU, then moved) and tensors written to disk; everything else agrees to
// 1e-10 (one forward/backward pass) or 1e-8 (after many GD steps) relative.
// Where no CUDA device is usable every test is skipped with the reason (scripts/gpu_check.sh
// runs them on a GPU machine: `resgd_tests --gtest_filter='Cuda*'`).
#include <ATen/detail/CUDAHooksInterface.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "resgd/compute/compute.h"
#include "resgd/core/config.h"
#include "resgd/core/version.h"
#include "resgd/run/runner.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/gradcheck.h"
#include "resgd/science/model.h"
#include "resgd/science/tensor_io.h"
#include "resgd/science/training.h"
#include "test_util.h"

namespace resgd {
namespace {

constexpr double kOnePassTolerance = 1e-10;    // forward and gradients, float64
constexpr double kTrajectoryTolerance = 1e-8;  // losses and parameters after ~50 GD steps
constexpr double kDiagnosticsTolerance = 1e-8;
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const torch::Device kCuda(torch::kCUDA, 0);

/// Why CUDA cannot be used here, for the skip message.
std::string no_cuda_reason() {
  if (!at::detail::getCUDAHooks().hasCUDART())
    return "this LibTorch (" + std::string(libtorch_version()) +
           ") was built without CUDA (e.g. Debian's CPU-only package); build against a CUDA LibTorch, "
           "see scripts/gpu_check.sh";
  return "LibTorch " + std::string(libtorch_version()) +
         " has CUDA but sees no device (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them)";
}

/// Every test needs a GPU: SetUp skips it, with the reason, where there is none.
class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: " << no_cuda_reason();
  }
};

/// ||cuda - cpu||_F / ||cpu||_F (absolute when ||cpu|| = 0), compared on the CPU.
double relative_to_cpu(const torch::Tensor& on_cuda, const torch::Tensor& on_cpu) {
  const auto a = on_cuda.detach().to(torch::kCPU, torch::kFloat64);
  const auto b = on_cpu.detach().to(torch::kFloat64);
  const double scale = b.norm().item<double>();
  const double diff = (a - b).norm().item<double>();
  return scale > 0 ? diff / scale : diff;
}

/// |a - b| / max(|a|, |b|): 0 for equal values, including both inf or both NaN.
double relative_difference(double a, double b) {
  if (a == b || (std::isnan(a) && std::isnan(b))) return 0.0;
  return std::abs(a - b) / std::max(std::abs(a), std::abs(b));
}

/// A small two-block model exercising every term of the backward pass.
ModelOptions small_model(Readout readout, Activation activation, bool causal, int64_t heads = 1,
                         bool pre_layer_norm = false) {
  ModelOptions o;
  o.layers = 2;
  o.out_dim = 3;
  o.readout = readout;
  o.init_seed = 5;
  BlockOptions& b = o.block;
  b.dim = 6;
  b.key_dim = 4;
  b.heads = heads;
  b.pre_layer_norm = pre_layer_norm;
  b.ffn_width = 24;
  b.out_dim = 6;
  b.gamma_a = 1.0;
  b.gamma_f = 1.0;
  b.temperature = 2.0;
  b.output_scale = 0.7;
  b.activation = activation;
  b.causal = causal;
  return o;
}

struct Problem {
  torch::Tensor X, Y;  // on the CPU, float64
};

Problem small_problem(Readout readout) {
  auto generator = make_generator(3, "test.cuda");
  auto X = torch::randn({4, 5, 6}, generator, kF64);
  auto Y = readout == Readout::mean ? torch::randn({4, 3}, generator, kF64) : torch::randn({4, 5, 3}, generator, kF64);
  return {X, Y};
}

/// The settings the one-pass comparisons run over; `label` names each in failures.
struct Setting {
  std::string label;
  Readout readout;
  Activation activation;
  bool causal;
  int64_t heads = 1;
  bool pre_layer_norm = false;
};
const std::vector<Setting> kSettings = {
    {"tokens/relu", Readout::tokens, Activation::relu, false},
    {"mean/gelu/pre-LN", Readout::mean, Activation::gelu, false, 1, true},
    {"tokens/softplus/causal/2 heads", Readout::tokens, Activation::softplus, true, 2},
};

/// The model of a setting twice, from the same seed: one stays on the CPU, one moves to the GPU.
struct ModelPair {
  ResidualTransformer cpu, gpu;
};
ModelPair model_pair(const Setting& s) {
  ModelPair m{ResidualTransformer(small_model(s.readout, s.activation, s.causal, s.heads, s.pre_layer_norm)),
              ResidualTransformer(small_model(s.readout, s.activation, s.causal, s.heads, s.pre_layer_norm))};
  m.gpu->to(kCuda);
  return m;
}

ExperimentConfig tiny_experiment() {
  ExperimentConfig c;
  c.data.num_samples = 6;
  c.data.seq_len = 5;
  c.data.dim = 8;
  c.data.target = Target::teacher;
  c.data.target_dim = 2;
  c.model.ffn_width = 48;
  c.train.lr = 0.05;
  c.train.max_iters = 50;
  c.train.rel_tolerance = 0.0;  // always the full 50 steps
  c.diagnostics.every = 0;
  return c;
}

struct Trajectory {
  TrainResult result;
  std::vector<IterationRow> rows;
  std::vector<torch::Tensor> final_params;
};

Trajectory train_on(const ExperimentConfig& c, torch::Device device) {
  const Dataset data = make_dataset(c, device, torch::kFloat64);
  ResidualTransformer model(model_options(c));  // drawn on the CPU ...
  model->to(device);                            // ... then moved, as run_single does
  Trajectory out;
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) { out.rows.push_back(row); };
  out.result = train(*model, data, c, compute::policy_for(c, 1), hooks);
  for (const auto& p : model->parameters()) out.final_params.push_back(p.detach());
  return out;
}

// ---------------------------------------------------------------------------------------
TEST_F(Cuda, ForwardMatchesCpuInFloat64) {
  for (const auto& s : kSettings) {
    const Problem p = small_problem(s.readout);
    auto [cpu, gpu] = model_pair(s);
    ASSERT_TRUE(gpu->parameters()[0].is_cuda());
    torch::NoGradGuard no_grad;
    const ForwardTrace a = gpu->trace(p.X.to(kCuda)), b = cpu->trace(p.X);
    EXPECT_TRUE(a.output.is_cuda()) << s.label;
    EXPECT_LE(relative_to_cpu(a.output, b.output), kOnePassTolerance) << s.label << ": output";
    for (size_t l = 0; l < b.blocks.size(); ++l) {
      EXPECT_LE(relative_to_cpu(a.blocks[l].S, b.blocks[l].S), kOnePassTolerance) << s.label << ": S of block " << l;
      EXPECT_LE(relative_to_cpu(a.blocks[l].G, b.blocks[l].G), kOnePassTolerance) << s.label << ": G of block " << l;
    }
  }
}

TEST_F(Cuda, AutogradAndAnalyticGradientsMatchCpuInFloat64) {
  for (const auto& s : kSettings) {
    const Problem p = small_problem(s.readout);
    auto [cpu, gpu] = model_pair(s);
    const auto X = p.X.to(kCuda), Y = p.Y.to(kCuda);
    const auto names = cpu->parameter_names();
    const LossAndGradients reference = autograd_gradients(*cpu, p.X, p.Y, Loss::sum);
    const std::vector<std::pair<std::string, LossAndGradients>> on_cuda = {
        {"autograd", autograd_gradients(*gpu, X, Y, Loss::sum)},
        {"analytic", analytic_gradients(*gpu, X, Y, Loss::sum)}};
    for (const auto& [method, g] : on_cuda) {
      EXPECT_TRUE(g.loss.is_cuda()) << s.label << " " << method;
      EXPECT_LE(relative_to_cpu(g.loss, reference.loss), kOnePassTolerance) << s.label << " " << method << ": loss";
      ASSERT_EQ(g.grads.size(), names.size());
      for (size_t i = 0; i < names.size(); ++i) {
        EXPECT_TRUE(g.grads[i].is_cuda()) << s.label << " " << method << ": " << names[i];
        EXPECT_LE(relative_to_cpu(g.grads[i], reference.grads[i]), kOnePassTolerance)
            << s.label << " " << method << " on cuda vs autograd on cpu: " << names[i];
      }
    }
  }
}

TEST_F(Cuda, GradcheckCommandPassesOnCuda) {
  ExperimentConfig c = tiny_experiment();
  c.model.layers = 2;
  c.model.activation = Activation::gelu;
  std::ostringstream out;
  EXPECT_EQ(run_gradcheck(c, kCuda, out), 0) << out.str();
  EXPECT_NE(out.str().find("on cuda:0"), std::string::npos) << out.str();
}

TEST_F(Cuda, ShortTrainingRunFollowsTheCpuTrajectory) {
  for (const Gradients gradient_source : {Gradients::autograd, Gradients::analytic}) {
    const std::string gradients = to_string(gradient_source);
    ExperimentConfig c = tiny_experiment();
    c.train.gradients = gradient_source;
    const Trajectory gpu = train_on(c, kCuda), cpu = train_on(c, torch::kCPU);
    EXPECT_EQ(gpu.result.status, cpu.result.status) << gradients;
    EXPECT_EQ(gpu.result.iters, 50) << gradients;
    ASSERT_EQ(gpu.rows.size(), cpu.rows.size()) << gradients;
    EXPECT_LT(cpu.result.final_loss, 0.5 * cpu.result.initial_loss) << gradients << ": the run must move";
    for (size_t i = 0; i < cpu.rows.size(); ++i) {
      EXPECT_LE(relative_difference(gpu.rows[i].loss, cpu.rows[i].loss), kTrajectoryTolerance)
          << gradients << ", iteration " << i << ": loss cuda " << gpu.rows[i].loss << " cpu " << cpu.rows[i].loss;
      EXPECT_LE(relative_difference(gpu.rows[i].grad_norm, cpu.rows[i].grad_norm), kTrajectoryTolerance)
          << gradients << ", iteration " << i << ": grad_norm";
    }
    for (size_t i = 0; i < cpu.final_params.size(); ++i) {
      EXPECT_TRUE(gpu.final_params[i].is_cuda());
      EXPECT_LE(relative_to_cpu(gpu.final_params[i], cpu.final_params[i]), kTrajectoryTolerance)
          << gradients << ": parameter " << i << " after 50 steps";
    }
  }
}

TEST_F(Cuda, DatasetOnCudaEqualsTheCpuOneMoved) {
  // Drawn on the CPU in float64, then cast and moved: bit for bit the same numbers.
  struct Data {
    DataKind kind;
    Target target;
    Readout readout;
  };
  for (const auto& [kind, target, readout] : std::vector<Data>{{DataKind::gaussian, Target::random, Readout::tokens},
                                                               {DataKind::gaussian, Target::teacher, Readout::tokens},
                                                               {DataKind::gaussian, Target::linear, Readout::mean},
                                                               {DataKind::digits, Target::random, Readout::mean}}) {
    ExperimentConfig c;
    c.data.kind = kind;
    c.data.target = target;
    c.model.readout = readout;
    if (kind == DataKind::digits) {  // 8 rows of 8 pixels; one-hot labels
      c.data.seq_len = 8;
      c.data.dim = 8;
      c.data.target_dim = 10;
    }
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      const std::string label =
          to_string(kind) + "/" + to_string(target) + "/" + to_string(readout) + "/" + c10::toString(dtype);
      const Dataset gpu = make_dataset(c, kCuda, dtype), cpu = make_dataset(c, torch::kCPU, dtype);
      EXPECT_TRUE(gpu.X.is_cuda() && gpu.Y.is_cuda()) << label;
      EXPECT_EQ(gpu.X.scalar_type(), dtype) << label;
      EXPECT_TRUE(torch::equal(gpu.X.cpu(), cpu.X)) << label << ": X";
      EXPECT_TRUE(torch::equal(gpu.Y.cpu(), cpu.Y)) << label << ": Y";
    }
  }
}

TEST_F(Cuda, DiagnosticsMatchCpu) {
  for (const double gamma_a : {1.0, 0.0}) {  // well conditioned, and the low-rank plain arm
    ExperimentConfig c = tiny_experiment();
    c.model.residual_attention.value = gamma_a;
    c.model.layers = 2;
    c.model.residual_ffn.value = 1.0;
    c.train.lr = 0.01;  // 0.05 diverges with the FFN residual in two blocks
    c.train.max_iters = 20;
    c.diagnostics.every = 5;
    // 60 outputs: a small NTK. Only for the residual arm: without it the outputs of a
    // sequence nearly coincide, J J^T is nearly singular and its lambda_min is rounding.
    c.diagnostics.ntk = gamma_a == 1.0;
    c.diagnostics.sharpness = true;  // Lanczos from the same start vector on both devices
    const Trajectory gpu = train_on(c, kCuda), cpu = train_on(c, torch::kCPU);
    const auto columns = diagnostic_columns(c.model.layers, c.diagnostics);
    const auto label = "gamma_a=" + std::to_string(gamma_a);
    ASSERT_EQ(cpu.result.status, Status::max_iters) << label;
    ASSERT_EQ(gpu.rows.size(), cpu.rows.size());
    int diagnosed = 0;
    for (size_t r = 0; r < cpu.rows.size(); ++r) {
      ASSERT_EQ(gpu.rows[r].diagnosis.has_value(), cpu.rows[r].diagnosis.has_value()) << "iteration " << r;
      if (!cpu.rows[r].diagnosis) continue;
      ++diagnosed;
      const auto gpu_cells = to_cells(*gpu.rows[r].diagnosis, c.diagnostics),
                 cpu_cells = to_cells(*cpu.rows[r].diagnosis, c.diagnostics);
      ASSERT_EQ(gpu_cells.size(), columns.size());
      for (size_t k = 0; k < columns.size(); ++k) {
        const double a = gpu_cells[k].value(), b = cpu_cells[k].value();
        // dist_init is exactly 0 at iteration 0 on both; the rest are O(1) or inf.
        EXPECT_LE(relative_difference(a, b), kDiagnosticsTolerance)
            << label << ", iteration " << cpu.rows[r].iter << ", " << columns[k] << ": cuda " << a << " cpu " << b;
      }
    }
    EXPECT_EQ(diagnosed, 5) << "iterations 0, 5, 10, 15, 20";
  }
}

TEST_F(Cuda, TensorsSavedFromCudaReloadOnTheCpu) {
  resgd::testing::TempDir dir;
  ResidualTransformer model(small_model(Readout::tokens, Activation::relu, false));
  model->to(kCuda);
  const Problem p = small_problem(Readout::tokens);
  std::vector<std::pair<std::string, torch::Tensor>> saved = {{"X", p.X.to(kCuda)},
                                                              {"Y", p.Y.to(kCuda, torch::kFloat32)}};
  for (const auto& item : model->named_parameters()) saved.emplace_back(item.key(), item.value());
  save_tensors(dir / "t.pt", saved);
  const auto loaded = load_tensors(dir / "t.pt");
  ASSERT_EQ(loaded.size(), saved.size());
  for (const auto& [name, original] : saved) {
    ASSERT_EQ(loaded.count(name), 1u) << name;
    const torch::Tensor& t = loaded.at(name);
    EXPECT_TRUE(t.device().is_cpu()) << name << " came back on " << t.device();
    EXPECT_EQ(t.scalar_type(), original.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(t, original.detach().cpu())) << name;
  }
}

TEST_F(Cuda, RunOnCudaRecordsItsDeviceAndLeavesCpuReadableTensors) {
  resgd::testing::TempDir dir;
  ExperimentConfig c = tiny_experiment();
  c.device = "auto";  // picks cuda:0 here
  c.diagnostics.every = 10;
  const auto gpu = run_single(c, dir / "gpu", RunOptions{});
  c.device = "cpu";
  const auto cpu = run_single(c, dir / "cpu", RunOptions{});
  EXPECT_EQ(gpu["device"], "cuda:0");
  EXPECT_EQ(gpu["status"], cpu["status"]);
  EXPECT_EQ(gpu["iters"], cpu["iters"]);
  for (const char* key : {"initial_loss", "final_loss"})
    EXPECT_LE(relative_difference(gpu[key].get<double>(), cpu[key].get<double>()), kTrajectoryTolerance) << key;
  EXPECT_LE(relative_difference(gpu["cond_g"][0].get<double>(), cpu["cond_g"][0].get<double>()), kDiagnosticsTolerance);
  for (const char* file : {"init.pt", "final.pt"}) {
    const auto g = load_tensors(dir / "gpu" / "tensors" / file), k = load_tensors(dir / "cpu" / "tensors" / file);
    ASSERT_EQ(g.size(), k.size()) << file;
    for (const auto& [name, t] : g) {
      EXPECT_TRUE(t.device().is_cpu()) << file << " " << name;
      EXPECT_LE(relative_to_cpu(t, k.at(name)), kTrajectoryTolerance) << file << " " << name;
    }
  }
}

}  // namespace
}  // namespace resgd
