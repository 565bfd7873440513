# Finds LibTorch. Order: Torch_DIR or CMAKE_PREFIX_PATH given by the user (an unzipped LibTorch, a
# conda or system install), then the torch package of TORCHQUANT_PYTHON
# (torch.utils.cmake_prefix_path). The project's setup script creates .venv/ with the pinned wheel.

if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/.venv/bin/python")
  set(_tq_default_python "${CMAKE_CURRENT_SOURCE_DIR}/.venv/bin/python")
else()
  find_program(_tq_default_python NAMES python3 python)
endif()
set(TORCHQUANT_PYTHON "${_tq_default_python}" CACHE FILEPATH
    "Python whose torch package provides LibTorch when Torch_DIR / CMAKE_PREFIX_PATH do not")

if(NOT Torch_DIR AND TORCHQUANT_PYTHON)
  execute_process(
    COMMAND "${TORCHQUANT_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _tq_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _tq_rc ERROR_QUIET)
  if(_tq_rc EQUAL 0 AND _tq_torch_prefix)
    # Appended, so that a LibTorch the user points at comes first.
    list(APPEND CMAKE_PREFIX_PATH "${_tq_torch_prefix}")
  endif()
endif()

# Torch's own CUDA detection reads TORCH_CUDA_ARCH_LIST; without a GPU it cannot pick one.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "${TORCHQUANT_CUDA_ARCH_LIST}")
endif()

find_package(Torch REQUIRED CONFIG)

if(Torch_VERSION VERSION_LESS 2.1)
  message(FATAL_ERROR "torchquant needs LibTorch >= 2.1, found ${Torch_VERSION} in ${Torch_DIR}")
endif()
if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
  message(FATAL_ERROR "torchquant needs the cxx11 ABI build of LibTorch; ${Torch_DIR} uses the "
                      "pre-cxx11 ABI (-D_GLIBCXX_USE_CXX11_ABI=0)")
endif()
set(TORCHQUANT_TORCH_CXX11_ABI 1)
message(STATUS "torchquant: LibTorch ${Torch_VERSION} from ${Torch_DIR}")
