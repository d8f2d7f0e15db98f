# Third-party packages. On Debian 12 all come from apt (scripts/setup.sh); for CUDA, point
# CMAKE_PREFIX_PATH at an official LibTorch 2.x (or a pip torch's share/cmake).
find_package(Torch REQUIRED)
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
if(RESGD_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# TorchConfig.cmake puts its flags into TORCH_CXX_FLAGS (e.g. the C++11 ABI switch of the
# official zips); targets linking torch inherit them through the imported target, the
# rest we apply here once.
set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")

# yaml-cpp 0.7 exports the target `yaml-cpp`; newer releases `yaml-cpp::yaml-cpp`.
if(TARGET yaml-cpp::yaml-cpp)
  set(RESGD_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(RESGD_YAML_TARGET yaml-cpp)
endif()
