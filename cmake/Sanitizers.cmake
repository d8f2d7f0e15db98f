# ASan + UBSan for the `asan` preset. LibTorch itself is not instrumented; its known
# benign reports are filtered in tests/sanitizer.supp.
if(RESGD_SANITIZERS)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
