# The PostgreSQL server of the tests that have a "postgres" row or need
# PostgreSQL ("jobq-test-requires: postgres"): started once before them
# (FIXTURES_SETUP), stopped after (FIXTURES_CLEANUP). The tests find its URL
# in the file JOBQ_TEST_POSTGRES_URL_FILE names; when PostgreSQL is not
# installed the start is skipped (77), no URL file exists, and the tests
# skip their postgres cases.
if(JOBQ_WITH_POSTGRES AND JOBQ_PG_TESTS)
  set(_pgdir ${PROJECT_BINARY_DIR}/tests/pgserver)
  add_test(NAME postgres_start
           COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/servers/postgres.sh start ${_pgdir})
  add_test(NAME postgres_stop
           COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/servers/postgres.sh stop ${_pgdir})
  set_tests_properties(postgres_start PROPERTIES FIXTURES_SETUP postgres SKIP_RETURN_CODE 77
                       TIMEOUT 120 LABELS postgres)
  set_tests_properties(postgres_stop PROPERTIES FIXTURES_CLEANUP postgres TIMEOUT 120
                       LABELS postgres)
  foreach(t IN LISTS JOBQ_PG_TESTS)
    set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED postgres)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
                 "JOBQ_TEST_POSTGRES_URL_FILE=${_pgdir}/url")
  endforeach()
endif()
