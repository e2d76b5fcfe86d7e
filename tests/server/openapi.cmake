# The OpenAPI document: served as it is, valid, and matching the answers of
# a running server (openapi.sh); the checker itself reports mismatches
# (openapi_check_test.py).
add_test(NAME server_openapi
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/openapi.sh ${_server_program}
                 ${_cli_program})
set_tests_properties(server_openapi PROPERTIES
  TIMEOUT 120 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
find_program(JOBQ_PYTHON3 NAMES python3)
if(JOBQ_PYTHON3)
  add_test(NAME server_openapi_check
           COMMAND ${JOBQ_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/server/openapi_check_test.py)
  set_tests_properties(server_openapi_check PROPERTIES
    TIMEOUT 120 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
endif()
