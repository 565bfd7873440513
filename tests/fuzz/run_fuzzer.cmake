# Runs one libFuzzer target for SECONDS from a scratch copy of its committed seed corpus (the
# corpus in the repository is never modified) and prints how many inputs it executed.
# A fixed seed by default, so that CI is reproducible; -DSEED=0 lets libFuzzer pick one.
if(NOT DEFINED SEED)
  set(SEED 1)
endif()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus")
file(GLOB seeds "${CORPUS}/*")
file(COPY ${seeds} DESTINATION "${WORK}/corpus")
set(ENV{ASAN_OPTIONS} "detect_leaks=1:abort_on_error=1")
set(ENV{UBSAN_OPTIONS} "print_stacktrace=1:halt_on_error=1")
set(ENV{OMP_NUM_THREADS} "1")
execute_process(
  COMMAND "${FUZZER}" "${WORK}/corpus" -max_total_time=${SECONDS} -print_final_stats=1 -seed=${SEED}
          -timeout=20 -rss_limit_mb=4096 -artifact_prefix=${WORK}/
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" units "${err}")
message(STATUS "${FUZZER}: ${units}")
if(NOT rc EQUAL 0)
  message("${err}")
  message(FATAL_ERROR "${FUZZER} found a problem (exit ${rc}); the input is in ${WORK}/")
endif()
