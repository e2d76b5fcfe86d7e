# The podcast service (/api/podcast, /api/cron/pregenerate) with curl, its
# audio served with ranges, and examples/podcast as a separate worker.
# Needs espeak-ng (the offline voices): without, the script skips (77).
add_test(NAME server_podcast
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/server/podcast.sh ${_server_program}
                 ${_cli_program} ${_podcast_program})
set_tests_properties(server_podcast PROPERTIES
  TIMEOUT 300 LABELS server SKIP_RETURN_CODE 77 ENVIRONMENT "${JOBQ_TEST_ENV}")
