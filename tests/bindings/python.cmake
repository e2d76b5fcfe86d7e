# The Python package (bindings/python): its pytest suite and an offline
# install into a virtual environment, against this build's libraries.
# Skipped (77) only when there is no Python interpreter.
set(_py_env "${JOBQ_TEST_ENV}")
if(JOBQ_SANITIZER_FLAGS)
  # An instrumented libjobq inside an uninstrumented interpreter: the
  # sanitizer's runtime must be loaded first. The interpreter's own
  # allocations are not ours to report (detect_leaks=0).
  if(JOBQ_ASAN)
    set(_rt libasan.so)
  else()
    set(_rt libtsan.so)
  endif()
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${_rt}
                  OUTPUT_VARIABLE _rt_path OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(FILTER _py_env EXCLUDE REGEX "^(ASAN|LSAN)_OPTIONS=")
  list(APPEND _py_env "JOBQ_PRELOAD=${_rt_path}" "ASAN_OPTIONS=detect_leaks=0")
endif()
set(_py_stages NOT_BUILT)
if(TARGET jobq_stages)
  set(_py_stages $<TARGET_FILE:jobq_stages>)
endif()
add_test(NAME python_binding
         COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/bindings/python.sh
                 $<TARGET_FILE:jobq> ${_py_stages})
set_tests_properties(python_binding PROPERTIES
  TIMEOUT 600 LABELS "bindings;python" SKIP_RETURN_CODE 77 ENVIRONMENT "${_py_env}")
# The install test checks packaging, not libjobq: it runs without the
# sanitizer runtime in the interpreter, so it only runs in plain builds.
if(NOT JOBQ_SANITIZER_FLAGS)
  add_test(NAME python_install
           COMMAND ${JOBQ_BASH} ${PROJECT_SOURCE_DIR}/tests/bindings/python_install.sh
                   $<TARGET_FILE:jobq>)
  set_tests_properties(python_install PROPERTIES
    TIMEOUT 300 LABELS "bindings;python" SKIP_RETURN_CODE 77 ENVIRONMENT "${_py_env}")
endif()
