/* fanout.c: one notification to many WebSocket clients in one call (camsvc.server.fanout).
 * A loop of send(2) in Python costs a few microseconds per socket on top of the system
 * call itself; here it costs none, and the caller releases the GIL for the whole loop. */
#include "fanout.h"

#include <errno.h>
#include <sys/socket.h>

size_t fanout_send(const int *fds, size_t n, const void *buf, size_t len, ssize_t *sent)
{
    size_t short_count = 0;
    for (size_t i = 0; i < n; i++) {
        ssize_t r;
        do {
            r = send(fds[i], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (r < 0 && errno == EINTR);
        sent[i] = r < 0 ? -errno : r;
        short_count += (size_t)r != len;
    }
    return short_count;
}
