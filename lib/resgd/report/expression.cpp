// A small recursive-descent reader of run arithmetic (expression.h).
#include "resgd/report/expression.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "resgd/core/config.h"

namespace resgd {

struct Expression::Node {
  char op = 0;  // + - * /, 'n' a number, 'v' a name, '~' negation
  double number = 0;
  std::string name;
  std::unique_ptr<Node> left, right;
};

namespace {

using Node = Expression::Node;

/// expr := term (+|- term)*; term := unary (*|/ unary)*; unary := - unary | primary;
/// primary := number | name | ( expr ).
class Reader {
 public:
  Reader(const std::string& text, const std::string& flag, std::vector<std::string>& names)
      : text_(text), flag_(flag), names_(names) {}

  std::unique_ptr<Node> whole() {
    auto node = expr();
    skip_space();
    if (at_ < text_.size()) fail("unexpected '" + std::string(1, text_[at_]) + "'");
    return node;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(fmt::format("{} '{}': {} at character {}", flag_, text_, what, at_ + 1));
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  bool take(char op) {
    skip_space();
    if (at_ < text_.size() && text_[at_] == op) return ++at_, true;
    return false;
  }
  static std::unique_ptr<Node> binary(char op, std::unique_ptr<Node> left, std::unique_ptr<Node> right) {
    auto node = std::make_unique<Node>();
    node->op = op;
    node->left = std::move(left);
    node->right = std::move(right);
    return node;
  }
  std::unique_ptr<Node> expr() {
    auto node = term();
    for (;;) {
      if (take('+'))
        node = binary('+', std::move(node), term());
      else if (take('-'))
        node = binary('-', std::move(node), term());
      else
        return node;
    }
  }
  std::unique_ptr<Node> term() {
    auto node = unary();
    for (;;) {
      if (take('*'))
        node = binary('*', std::move(node), unary());
      else if (take('/'))
        node = binary('/', std::move(node), unary());
      else
        return node;
    }
  }
  std::unique_ptr<Node> unary() {
    if (take('-')) return binary('~', unary(), nullptr);
    return primary();
  }
  std::unique_ptr<Node> primary() {
    skip_space();
    if (take('(')) {
      auto node = expr();
      if (!take(')')) fail("expected ')'");
      return node;
    }
    if (at_ >= text_.size()) fail("expected a number or a name");
    auto node = std::make_unique<Node>();
    const char first = text_[at_];
    if (std::isdigit(static_cast<unsigned char>(first)) || first == '.') {
      const char* start = text_.c_str() + at_;
      char* end = nullptr;
      node->op = 'n';
      node->number = std::strtod(start, &end);
      if (end == start) fail("expected a number");
      at_ += static_cast<size_t>(end - start);
      return node;
    }
    if (!std::isalpha(static_cast<unsigned char>(first)) && first != '_') fail("expected a number or a name");
    const size_t start = at_;
    while (at_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[at_])) || text_[at_] == '_' || text_[at_] == '.'))
      ++at_;
    node->op = 'v';
    node->name = text_.substr(start, at_ - start);
    if (std::find(names_.begin(), names_.end(), node->name) == names_.end()) names_.push_back(node->name);
    return node;
  }

  const std::string& text_;
  const std::string& flag_;
  std::vector<std::string>& names_;
  size_t at_ = 0;
};

std::optional<double> value_of(const Node& node,
                               const std::function<std::optional<double>(const std::string&)>& lookup) {
  if (node.op == 'n') return node.number;
  if (node.op == 'v') return lookup(node.name);
  const auto left = value_of(*node.left, lookup);
  if (!left) return std::nullopt;
  if (node.op == '~') return -*left;
  const auto right = value_of(*node.right, lookup);
  if (!right) return std::nullopt;
  switch (node.op) {
    case '+': return *left + *right;
    case '-': return *left - *right;
    case '*': return *left * *right;
    default: return *right == 0 ? std::nullopt : std::optional<double>(*left / *right);
  }
}

}  // namespace

Expression::Expression(const std::string& text, const std::string& flag) : text_(text) {
  if (text.find_first_not_of(" \t") == std::string::npos) throw ConfigError(flag + ": an empty expression");
  root_ = Reader(text_, flag, names_).whole();
}
Expression::~Expression() = default;
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;

std::optional<double> Expression::evaluate(
    const std::function<std::optional<double>(const std::string&)>& lookup) const {
  const auto value = value_of(*root_, lookup);
  if (!value || !std::isfinite(*value)) return std::nullopt;
  return value;
}

}  // namespace resgd
