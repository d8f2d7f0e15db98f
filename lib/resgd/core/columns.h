// What every column of metrics.csv, summary.json and sweep.csv means and how it is
// computed: `resgd metrics --explain`, docs/reference.md (docs/design.md has the detail).
#pragma once

#include <string>
#include <vector>

namespace resgd {

struct ColumnInfo {
  std::string name;     // as written; "<l>" stands for the block, 1..L
  std::string files;    // where it appears
  std::string meaning;  // one line, with its formula
};

/// Every column, in the order of the files.
const std::vector<ColumnInfo>& column_infos();

/// The entry for a column as a file writes it ("cond_g2" finds "cond_g<l>", summary.json's
/// list "cond_g" too); null where none.
const ColumnInfo* find_column(const std::string& name);

/// The reference text of one column (or of every column, for an empty `name`).
std::string explain_columns(const std::string& name = "");

}  // namespace resgd
