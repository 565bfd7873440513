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
