// Data sets: shapes, scales, target kinds, and independence from the student.
#include "resgd/data.h"

#include <gtest/gtest.h>

#include <cmath>

namespace resgd {
namespace {

TEST(Data, TargetsDoNotDependOnTheStudentsSwitchesOrStepSize) {
  ExperimentConfig base;
  base.data.num_samples = 4;
  base.data.dim = 6;
  base.data.target = "teacher";
  base.data.target_dim = 2;
  base.model.ffn_width = 9;
  const Dataset reference = make_dataset(base, torch::kCPU, torch::kFloat64);
  for (int variant = 0; variant < 4; ++variant) {
    ExperimentConfig c = base;
    if (variant == 0) c.model.residual_attention.value = 0.0;
    if (variant == 1) c.model.residual_ffn.value = 1.0;
    if (variant == 2) c.model.init.W_Q = 0.0;
    if (variant == 3) c.train.lr = 0.5;
    const Dataset d = make_dataset(c, torch::kCPU, torch::kFloat64);
    EXPECT_TRUE(torch::equal(d.X, reference.X)) << "variant " << variant;
    EXPECT_TRUE(torch::equal(d.Y, reference.Y)) << "variant " << variant;
  }
  ExperimentConfig other_seed = base;
  other_seed.seed = 1;
  EXPECT_FALSE(torch::equal(make_dataset(other_seed, torch::kCPU, torch::kFloat64).Y, reference.Y));
}

TEST(Data, ShapesScalesAndTargetKindsFollowTheConfig) {
  ExperimentConfig c;
  c.data.num_samples = 400;
  c.data.seq_len = 5;
  c.data.dim = 10;
  c.data.target_dim = 3;
  Dataset d = make_dataset(c, torch::kCPU, torch::kFloat64);
  EXPECT_EQ(d.X.sizes(), torch::IntArrayRef({400, 5, 10}));
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({400, 5, 3}));
  EXPECT_NEAR(d.X.std().item<double>(), 1.0 / std::sqrt(10.0), 0.01);  // tokens N(0, 1/d)
  EXPECT_NEAR(d.Y.std().item<double>(), 1.0 / std::sqrt(3.0), 0.02);   // targets N(0, 1/d_y)

  c.data.normalize_tokens = true;
  c.model.readout = "mean";
  c.data.target = "linear";
  d = make_dataset(c, torch::kCPU, torch::kFloat32);
  EXPECT_EQ(d.X.scalar_type(), torch::kFloat32);
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({400, 3}));
  EXPECT_TRUE(torch::allclose(d.X.norm(2, {-1}), torch::ones({400, 5}), 1e-5, 1e-5));
}

}  // namespace
}  // namespace resgd
