# The Node binding (bindings/node): its node:test suite and the type check
# of its declarations, against the library just built (JOBQ_LIBRARY);
# examples/node/podcast.mjs runs beside the C podcast worker.
add_test(NAME binding_node
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/bindings/node/run.sh test)
set_tests_properties(binding_node PROPERTIES
  TIMEOUT 300 LABELS bindings SKIP_RETURN_CODE 77
  ENVIRONMENT "${JOBQ_TEST_ENV};JOBQ_LIBRARY=$<TARGET_FILE:jobq>;JOBQ_PODCAST_PROGRAM=${_podcast_program}")
add_test(NAME binding_node_tsc
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/bindings/node/run.sh tsc)
set_tests_properties(binding_node_tsc PROPERTIES
  TIMEOUT 120 LABELS bindings SKIP_RETURN_CODE 77)
