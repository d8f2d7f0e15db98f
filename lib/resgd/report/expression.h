// Arithmetic of a run's numbers, for `resgd plot --y EXPR`: "one_minus_rate / train.lr",
// "final_loss / within_sequence_loss", "2 * lr * pl_ratio_median". Numbers, names (a
// summary column, a derived metric or a configuration key), + - * / and parentheses; a name
// is looked up per run, and a run where one has no value, or a division by 0, has none.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace resgd {

class Expression {
 public:
  /// Parses `text`; ConfigError naming `flag` and the position of what is not an expression.
  Expression(const std::string& text, const std::string& flag);
  ~Expression();
  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;

  /// The names it reads, in order of first appearance.
  const std::vector<std::string>& names() const { return names_; }
  /// Its value with each name's from `lookup`; none where a name has none, or the result
  /// is not finite.
  std::optional<double> evaluate(const std::function<std::optional<double>(const std::string&)>& lookup) const;
  /// The text as written, for labels.
  const std::string& text() const { return text_; }

  struct Node;

 private:
  std::string text_;
  std::vector<std::string> names_;
  std::unique_ptr<Node> root_;
};

}  // namespace resgd
