# Keep-alive across answers of every status (Content-Length on each).
add_test(NAME server_keepalive
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/keepalive.sh ${_server_program})
set_tests_properties(server_keepalive PROPERTIES
  TIMEOUT 60 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
