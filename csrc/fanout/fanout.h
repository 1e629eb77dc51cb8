/* fanout.h: the public C API of camsvc._fanout, one buffer written to many sockets.
 * build_ext.py hands this file to cffi's cdef with the lines starting with '#' removed,
 * so it holds plain declarations only. */
#ifndef CAMSVC_FANOUT_H
#define CAMSVC_FANOUT_H
#include <stddef.h>
#include <sys/types.h>

/* One buffer for many sockets, shared by every thread that runs it. */
struct fanout_job {
    const int *fds;
    size_t n;
    const void *buf;
    size_t len;
    ssize_t *sent;    /* sent[i]: the bytes fds[i] took, or a negative errno */
    size_t next;      /* the first socket no thread has taken yet (changed atomically) */
};

/* Take `chunk` sockets of `job` at a time until none is left, offering each the buffer
 * with one non-blocking send(2) (retried on EINTR, never raising SIGPIPE). Several threads
 * may run the same job at once; each socket is sent to once. Returns how many of the
 * sockets this call took did not take the whole buffer. */
size_t fanout_run(struct fanout_job *job, size_t chunk);

#endif
