// Run-directory files: tensors reload unchanged, atomic writes, CSV cells.
#include "resgd/core/csv.h"
#include "resgd/science/tensor_io.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace resgd {
namespace {

using testing::TempDir;

TEST(Io, TensorsWrittenReloadUnchanged) {
  TempDir dir;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto X = torch::randn({3, 4, 5}, generator, torch::kFloat64);
  const auto W = torch::randn({5, 2}, generator, torch::kFloat32);
  const auto strided = torch::randn({4, 6}, generator, torch::kFloat64).t();  // non-contiguous
  save_tensors(dir / "t.pt", {{"X", X}, {"blocks.0.W_Q", W}, {"S", strided}});
  const auto loaded = load_tensors(dir / "t.pt");
  ASSERT_EQ(loaded.size(), 3u);
  EXPECT_TRUE(torch::equal(loaded.at("X"), X));
  EXPECT_EQ(loaded.at("blocks.0.W_Q").scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(loaded.at("blocks.0.W_Q"), W));
  EXPECT_TRUE(torch::equal(loaded.at("S"), strided));
  // The raw bytes are a pickle archive that torch::pickle_load reads as a dict.
  const std::string bytes = testing::slurp(dir / "t.pt");
  const auto value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  EXPECT_TRUE(value.isGenericDict());
}

TEST(Io, UnreadableTensorFileNamesThePath) {
  TempDir dir;
  testing::write_text(dir / "bad.pt", "not a tensor archive");
  try {
    load_tensors(dir / "bad.pt");
    FAIL() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "bad.pt").string()), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_tensors(dir / "missing.pt"), IoError);
}

TEST(Io, AtomicWriteReplacesWholeAndLeavesNoTemporary) {
  TempDir dir;
  write_file_atomic(dir / "sub" / "a.txt", "first");
  write_file_atomic(dir / "sub" / "a.txt", "second");
  EXPECT_EQ(read_file(dir / "sub" / "a.txt"), "second");
  EXPECT_FALSE(std::filesystem::exists(dir / "sub" / "a.txt.tmp"));
}

TEST(Io, UnwritablePathIsAnErrorNamingIt) {
  TempDir dir;
  testing::write_text(dir / "file", "x");
  try {
    write_file_atomic(dir / "file" / "inside.txt", "y");  // a file where a directory should be
    FAIL() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("file"), std::string::npos) << e.what();
  }
}

TEST(Io, CsvCellsKeepFullPrecisionAndNonFiniteValues) {
  TempDir dir;
  {
    CsvWriter csv(dir / "m.csv", {"iter", "loss", "cond"});
    csv.write_row({0.0, 0.1 + 0.2, std::numeric_limits<double>::infinity()});
    csv.write_row({1.0, 1e-300, std::nullopt});
    csv.close();
  }
  EXPECT_EQ(read_file(dir / "m.csv"), "iter,loss,cond\n0,0.30000000000000004,inf\n1,1e-300,\n");
  const CsvTable table = read_csv(dir / "m.csv");
  EXPECT_EQ(table.rows.size(), 2u);
  EXPECT_EQ(table.rows[1][table.column("cond")], "");
  EXPECT_EQ(std::stod(table.rows[0][table.column("loss")]), 0.1 + 0.2);
  EXPECT_THROW(table.column("nope"), IoError);
}

}  // namespace
}  // namespace resgd
