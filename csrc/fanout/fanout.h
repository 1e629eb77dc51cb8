/* fanout.h: the public C API of camsvc._fanout, one buffer written to many sockets.
 * build_ext.py hands this file to cffi's cdef with the lines starting with '#' removed,
 * so it holds plain declarations only. */
#ifndef CAMSVC_FANOUT_H
#define CAMSVC_FANOUT_H
#include <stddef.h>
#include <sys/types.h>

/* Offer buf[0:len] to each of fds[0:n] with one non-blocking send(2) (retried on EINTR,
 * never raising SIGPIPE). sent[i] is the number of bytes fds[i] took, or a negative errno.
 * Returns how many fds did not take the whole buffer. */
size_t fanout_send(const int *fds, size_t n, const void *buf, size_t len, ssize_t *sent);

#endif
