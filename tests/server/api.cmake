# The general API (/v1) and its errors, with curl and a `jobq work` process.
add_test(NAME server_api
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/api.sh ${_server_program}
                 ${_cli_program})
set_tests_properties(server_api PROPERTIES
  TIMEOUT 180 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
