# Sanitizer and fuzzer builds (docs/reliability.md).
#   TORCHQUANT_SANITIZE: the -fsanitize= list for torchquant and its tests, e.g. address,undefined.
#   TORCHQUANT_BUILD_FUZZERS: the libFuzzer targets of tests/fuzz (clang only); they need the
#   library built with TORCHQUANT_SANITIZE too, so that it is instrumented for coverage.
# LibTorch itself is not instrumented; nothing of it needs a suppression (docs/reliability.md).
set(TORCHQUANT_SANITIZE "" CACHE STRING "Sanitizers for torchquant and its tests (-fsanitize=)")
option(TORCHQUANT_BUILD_FUZZERS "Build the libFuzzer targets (clang only)" OFF)

if(TORCHQUANT_BUILD_FUZZERS AND NOT TORCHQUANT_SANITIZE)
  message(STATUS "torchquant: TORCHQUANT_BUILD_FUZZERS without TORCHQUANT_SANITIZE: using "
                 "address,undefined")
  set(TORCHQUANT_SANITIZE "address,undefined" CACHE STRING
      "Sanitizers for torchquant and its tests (-fsanitize=)" FORCE)
endif()

if(TORCHQUANT_BUILD_FUZZERS AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "TORCHQUANT_BUILD_FUZZERS needs clang (libFuzzer); configure with "
                      "-DCMAKE_CXX_COMPILER=clang++")
endif()

# Compiles and links `target` with the sanitizers (and libFuzzer coverage in fuzzer builds).
function(torchquant_sanitize target)
  if(NOT TORCHQUANT_SANITIZE)
    return()
  endif()
  set(flags -fsanitize=${TORCHQUANT_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  if(TORCHQUANT_BUILD_FUZZERS)
    list(APPEND flags -fsanitize=fuzzer-no-link)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports -Wmaybe-uninitialized inside libstdc++'s <regex> once ASan instruments it
    # (a known false positive); the release build keeps the warning.
    list(APPEND flags -Wno-maybe-uninitialized)
  endif()
  target_compile_options(${target} PRIVATE ${flags})
  target_link_options(${target} PRIVATE -fsanitize=${TORCHQUANT_SANITIZE})
endfunction()
