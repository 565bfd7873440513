# Installs the built torchquant into a scratch prefix, then configures, builds and runs the
# consumer project against it through find_package(TorchQuant).
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/install")
macro(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endmacro()
run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DTorch_DIR=${TORCH_DIR}" -DCMAKE_BUILD_TYPE=Release
    -DTORCH_CUDA_ARCH_LIST=8.0)
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")

# The package refuses a LibTorch other than the one it was built with, at configure time, with a
# clear message: a stand-in Torch package of another version, then one with the old ABI.
function(expect_refused name version cxx_flags expected)
  set(fake "${WORK_DIR}/fake-torch-${name}")
  file(WRITE "${fake}/TorchConfigVersion.cmake"
       "set(PACKAGE_VERSION ${version})\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n")
  file(WRITE "${fake}/TorchConfig.cmake"
       "add_library(torch INTERFACE IMPORTED)\nset(TORCH_CXX_FLAGS \"${cxx_flags}\")\n")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build-${name}" -G "${GENERATOR}"
            "-DCMAKE_PREFIX_PATH=${prefix}" "-DTorch_DIR=${fake}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE "\n" " " all "${out} ${err}")
  string(REGEX REPLACE " +" " " all "${all}")
  if(rc EQUAL 0 OR NOT all MATCHES "${expected}")
    message(FATAL_ERROR "expected a refusal matching '${expected}', got rc=${rc}: ${all}")
  endif()
  message(STATUS "refused as expected: ${expected}")
endfunction()
expect_refused(version 2.0.0 ""
  "TorchQuant was built against LibTorch ${TORCH_VERSION} but this project found LibTorch 2.0.0")
expect_refused(abi ${TORCH_VERSION} "-D_GLIBCXX_USE_CXX11_ABI=0"
  "built with the cxx11 ABI but the LibTorch found .* uses _GLIBCXX_USE_CXX11_ABI=0")
