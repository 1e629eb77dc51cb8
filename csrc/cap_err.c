/* cap_err.c: error messages for the negative-errno results of the module. */
#define _GNU_SOURCE
#include "cap_err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int cap_err(char *buf, size_t len, int err, const char *what)
{
    if (err < 0)
        err = -err;
    if (err == 0)
        err = EIO;
    if (buf != NULL && len > 0) {
        const char *why = (err == ENODEV || err == EIO || err == ENXIO) ? "device gone"
                                                                       : strerrordesc_np(err);
        snprintf(buf, len, "%s: %s", what, why ? why : "unknown error");
    }
    return -err;
}
