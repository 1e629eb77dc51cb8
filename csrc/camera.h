/* camera.h: one streaming V4L2 capture device, owned by one handle.
 *
 * The public functions are declared in capture.h; this header holds the handle layout
 * (config apart from runtime state) for the other C files and the test harness. */
#ifndef CAMSVC_CAMERA_H
#define CAMSVC_CAMERA_H
#include <stddef.h>
#include <stdint.h>

#include "capture.h"

struct cap_buffer {
    void *start;
    size_t length;
};

struct cap_camera {
    /* what the caller asked for and what the driver set */
    struct cap_request req;
    struct cap_format fmt;
    uint32_t buf_type;

    /* runtime state; close() resets every field to "nothing held" */
    int fd;
    int streaming;
    uint32_t n_buffers;        /* buffers requested from the driver (REQBUFS count) */
    struct cap_buffer buffers[CAP_MAX_BUFFERS];
    int held;                  /* index of the buffer holding the newest frame, or -1 */
    struct cap_frame latest;
    struct cap_stats stats;
    char error[CAP_ERR_LEN];
};

#endif
