/* JOBQ_PRIVATE marks the few internal functions of libjobq that
 * libjobq-stages calls: they are exported from libjobq.so under the version
 * node JOBQ_PRIVATE_<version> (lib/libjobq.map.in), which ties the two
 * libraries to one release. Not API: hosts must not call them. */
#ifndef JOBQ_UTIL_PRIVATE_H
#define JOBQ_UTIL_PRIVATE_H

#if defined(__GNUC__)
#  define JOBQ_PRIVATE __attribute__((visibility("default")))
#else
#  define JOBQ_PRIVATE
#endif

#endif
