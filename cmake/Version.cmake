# Writes OUT (version.cpp) from IN with the project's version and the git commit of SRC,
# at every build: a commit made since cmake ran is still the one baked in. The file is
# rewritten only when its text changes, so an unchanged commit rebuilds nothing.
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12 --match "v[0-9]*"
                OUTPUT_VARIABLE RESGD_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE git_result ERROR_QUIET)
if(NOT git_result EQUAL 0 OR RESGD_GIT_COMMIT STREQUAL "")
  set(RESGD_GIT_COMMIT "unknown")  # a source tarball: no git
endif()
configure_file("${IN}" "${OUT}" @ONLY)
