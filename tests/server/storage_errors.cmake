# The store failing under the server: busy (a lock held elsewhere) and full: 503s.
add_test(NAME server_storage_errors
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/storage_errors.sh ${_server_program})
set_tests_properties(server_storage_errors PROPERTIES
  TIMEOUT 120 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
