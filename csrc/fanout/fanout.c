/* fanout.c: one notification to many WebSocket clients (camsvc.server.fanout).
 * A loop of send(2) in Python costs a few microseconds per socket on top of the system
 * call itself; here it costs none, and the caller releases the GIL for the whole loop.
 * Threads share a job by taking chunks from one atomic counter, so a thread that starts
 * late simply takes fewer. */
#include "fanout.h"

#include <errno.h>
#include <sys/socket.h>

size_t fanout_run(struct fanout_job *job, size_t chunk)
{
    size_t short_count = 0;
    if (chunk == 0)
        chunk = 1;
    for (;;) {
        size_t start = __atomic_fetch_add(&job->next, chunk, __ATOMIC_RELAXED);
        if (start >= job->n)
            break;
        size_t end = job->n - start < chunk ? job->n : start + chunk;
        for (size_t i = start; i < end; i++) {
            ssize_t r;
            do {
                r = send(job->fds[i], job->buf, job->len, MSG_DONTWAIT | MSG_NOSIGNAL);
            } while (r < 0 && errno == EINTR);
            job->sent[i] = r < 0 ? -errno : r;
            short_count += (size_t)r != job->len;
        }
    }
    return short_count;
}
