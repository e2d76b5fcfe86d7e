/* jobq_poll_fd and jobq_poll_ack: one file descriptor that an event loop
 * of another runtime (asyncio's add_reader, a Node net.Socket, epoll) can
 * watch instead of parking a thread in jobq_wait, jobq_next_event or
 * jobq_claim.
 *
 * A pipe rather than an eventfd: runtimes that wrap a descriptor in a
 * stream (Node's net.Socket, libuv's uv_pipe_open) accept a pipe and
 * refuse an anonymous inode. The write end is written at most once per
 * ack: `armed` says a byte went in since the last ack, so a busy queue
 * costs one atomic exchange per signal and no system call.
 *
 * Ordering (why no wake-up is lost): the ack first empties the pipe, then
 * clears `armed`; the caller drains what is pending only after the ack. A
 * signal before the clear finds armed set and writes nothing, but what it
 * signals is already pending and the drain sees it; a signal after the
 * clear writes a byte, and the descriptor is readable again. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pipe2 */
#endif
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

void jobq__poll_signal_slow(jobq_t *q) {
  if (atomic_exchange_explicit(&q->poll.armed, 1, memory_order_acq_rel)) return;
  char b = 1;
  /* EAGAIN: the pipe is full, hence readable; nothing more to do. */
  while (write(q->poll.wr, &b, 1) < 0 && errno == EINTR) {
  }
}

void jobq__poll_free(jobq_t *q) {
  if (q->poll.rd >= 0) close(q->poll.rd);
  if (q->poll.wr >= 0) close(q->poll.wr);
  q->poll.rd = q->poll.wr = -1;
}

static int nonblocking_pipe(int fds[2]) {
#if defined(__linux__)
  return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
#else
  if (pipe(fds) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    if (fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
      close(fds[0]);
      close(fds[1]);
      return -1;
    }
  }
  return 0;
#endif
}

JOBQ_API int jobq_poll_fd(jobq_t *q, int *out_fd) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_poll_fd: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_poll_fd");
  if (out_fd == NULL) return jobq__err(JOBQ_EINVAL, "jobq_poll_fd: out_fd is NULL");
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_poll_fd: the queue is closing");
  }
  if (q->poll.rd < 0) {
    int fds[2];
    if (nonblocking_pipe(fds) != 0) {
      int e = errno;
      uv_mutex_unlock(&q->mu);
      return jobq__err(e == EMFILE || e == ENFILE ? JOBQ_ENOMEM : JOBQ_EIO,
                       "jobq_poll_fd: cannot create a pipe (%s)", strerror(e));
    }
    q->poll.rd = fds[0];
    q->poll.wr = fds[1];
    /* Readable at once: whatever was pending before the descriptor existed
     * (queued jobs, buffered events) is news to its first reader. */
    atomic_store(&q->poll.armed, 0);
    atomic_store_explicit(&q->poll.on, 1, memory_order_release);
    jobq__poll_signal_slow(q);
  }
  *out_fd = q->poll.rd;
  uv_mutex_unlock(&q->mu);
  return 0;
}

JOBQ_API int jobq_poll_ack(jobq_t *q) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_poll_ack: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_poll_ack");
  /* The pipe lives as long as q and never changes once made, so no lock:
   * an ack is as cheap as a read. */
  if (!atomic_load_explicit(&q->poll.on, memory_order_acquire))
    return jobq__err(JOBQ_EINVAL, "jobq_poll_ack: no poll fd (call jobq_poll_fd first)");
  /* From shutdown on the descriptor stays readable, so that every poller
   * wakes and learns the news from this call. */
  if (q->closed) return jobq__err(JOBQ_ECLOSED, "jobq_poll_ack: the queue is closing");
  char buf[64];
  for (;;) {
    ssize_t n = read(q->poll.rd, buf, sizeof buf);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break; /* EAGAIN: empty */
  }
  atomic_store_explicit(&q->poll.armed, 0, memory_order_release);
  /* Shutdown began during the drain: readable again for the next look. */
  if (q->closed) jobq__poll_signal_slow(q);
  return 0;
}
