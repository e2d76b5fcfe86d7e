# The Node binding (bindings/node): its node:test suite and the type check
# of its declarations, against the library just built (JOBQ_LIBRARY);
# examples/node/podcast.mjs runs beside the C podcast worker.
# Under ASan the sanitizer's runtime is loaded into node first (node is not
# instrumented: its own allocations are not ours to report). Under TSan the
# suite is left out: V8's own threads, uninstrumented, make reports with no
# libjobq frame in them; libjobq's side of the calls is covered by the C
# tests and the Python suite there.
set(_node_env "${JOBQ_TEST_ENV}")
set(_node_suite ON)
if(JOBQ_SANITIZER_FLAGS)
  if(JOBQ_ASAN)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE _node_rt OUTPUT_STRIP_TRAILING_WHITESPACE)
    list(FILTER _node_env EXCLUDE REGEX "^(ASAN|LSAN)_OPTIONS=")
    list(APPEND _node_env "JOBQ_PRELOAD=${_node_rt}" "ASAN_OPTIONS=detect_leaks=0")
  else()
    set(_node_suite OFF)
  endif()
endif()
if(_node_suite)
  add_test(NAME binding_node
           COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/bindings/node/run.sh test)
  set_tests_properties(binding_node PROPERTIES
    TIMEOUT 300 LABELS bindings SKIP_RETURN_CODE 77 RESOURCE_LOCK jobq_node_modules
    ENVIRONMENT "${_node_env};JOBQ_LIBRARY=$<TARGET_FILE:jobq>;JOBQ_PODCAST_PROGRAM=${_podcast_program}")
endif()
add_test(NAME binding_node_tsc
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/bindings/node/run.sh tsc)
set_tests_properties(binding_node_tsc PROPERTIES
  TIMEOUT 120 LABELS bindings SKIP_RETURN_CODE 77
  # Both install bindings/node/node_modules first (npm ci): never at once.
  RESOURCE_LOCK jobq_node_modules)
