# The dashboard (GET /) in headless Chromium, against a server with jobs in
# flight; keeps a screenshot in ${JOBQ_ARTIFACTS:-<build directory>/artifacts}.
add_test(NAME server_dashboard
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/dashboard.sh ${_server_program}
                 ${_cli_program})
set_tests_properties(server_dashboard PROPERTIES
  TIMEOUT 300 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
