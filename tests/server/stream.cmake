# Streams: SSE, /v1/events, long polls, Last-Event-ID across a restart, SIGTERM.
add_test(NAME server_stream
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/stream.sh ${_server_program}
                 ${_cli_program})
set_tests_properties(server_stream PROPERTIES
  TIMEOUT 180 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
