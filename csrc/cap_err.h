/* cap_err.h: writing "negative errno + short message" results into a caller's buffer. */
#ifndef CAMSVC_CAP_ERR_H
#define CAMSVC_CAP_ERR_H
#include <stddef.h>

/* Formats "what: strerror(err)" into buf (if any) and returns -err (err may be +/-). */
int cap_err(char *buf, size_t len, int err, const char *what);

#endif
