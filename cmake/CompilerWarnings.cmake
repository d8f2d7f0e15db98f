# Warnings live on an INTERFACE target that each of our targets links PRIVATE, so
# third-party headers (included as system headers) stay quiet.
add_library(resgd_warnings INTERFACE)
target_compile_options(resgd_warnings INTERFACE
  -Wall        # the usual suspects
  -Wextra      # unused parameters, signed/unsigned comparisons
  -Wpedantic   # non-standard extensions
  -Wshadow     # a local hiding a member or outer variable
  -Wconversion # silent narrowing, e.g. int64_t sizes into int
  -Wno-sign-conversion  # tensor sizes are int64_t while std containers use size_t
)
if(RESGD_WARNINGS_AS_ERRORS)
  target_compile_options(resgd_warnings INTERFACE -Werror)
endif()

add_library(resgd_options INTERFACE)
target_compile_features(resgd_options INTERFACE cxx_std_17)
