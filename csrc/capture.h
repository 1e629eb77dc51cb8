/* capture.h: the public C API of camsvc._capture (V4L2 enumeration, the streaming ring,
 * JPEG output). build_ext.py hands this file to cffi's cdef with the lines starting
 * with '#' removed, so it holds plain declarations only: no macros, no inline code. */
#ifndef CAMSVC_CAPTURE_H
#define CAMSVC_CAPTURE_H
#include <stddef.h>
#include <stdint.h>

enum {
    CAP_ERR_LEN = 160,         /* size of an error message buffer */
    CAP_MAX_BUFFERS = 16,      /* most mmap buffers a camera may ask for */
    CAP_RANGE_NONE = 0,        /* size_type / ival_type values: V4L2's own numbers */
    CAP_RANGE_DISCRETE = 1,
    CAP_RANGE_CONTINUOUS = 2,
    CAP_RANGE_STEPWISE = 3
};

/* What VIDIOC_QUERYCAP says about a node. */
struct cap_devinfo {
    char driver[16];
    char card[32];
    char bus_info[32];
    uint32_t version;
    uint32_t capabilities;
    uint32_t device_caps;
    int is_capture;            /* video capture (single or multi-planar) + streaming, no M2M */
    int multiplanar;
};

/* One (format, frame size, frame interval) row of a node's enumeration. */
struct cap_mode {
    uint32_t fourcc;
    uint32_t fmt_flags;
    char description[32];
    uint32_t size_type;
    uint32_t width, height, max_width, max_height, step_width, step_height;
    uint32_t ival_type;
    uint32_t num, den, max_num, max_den, step_num, step_den;
};

/* Queries a node; stores up to max_modes rows and returns how many there are (possibly
 * more than max_modes), or -errno with a message in err. */
int cap_enum_device(const char *path, struct cap_devinfo *info, struct cap_mode *modes,
                    size_t max_modes, char *err, size_t err_len);

/* What the caller asks for; 0 means "no preference". */
struct cap_request {
    uint32_t width, height;
    uint32_t fourcc;
    uint32_t fps_num, fps_den; /* frames per second as a fraction */
    uint32_t buffers;
};

/* What the driver actually set. */
struct cap_format {
    uint32_t width, height;
    uint32_t fourcc;
    uint32_t bytesperline;
    uint32_t sizeimage;
    uint32_t fps_num, fps_den; /* 0/0 when the driver does not say */
    uint32_t buffers;
    int multiplanar;
};

/* The newest good frame; data points into the mmap ring and stays valid until the next
 * cap_camera_read() or cap_camera_close(). */
struct cap_frame {
    const uint8_t *data;
    size_t size;
    uint32_t sequence;
    int64_t timestamp_ns;      /* CLOCK_MONOTONIC */
    uint32_t width, height, fourcc, bytesperline;
    uint32_t index;
};

struct cap_stats {
    uint64_t frames;           /* good frames dequeued */
    uint64_t dropped;          /* bad frames (error flag, empty, truncated, broken JPEG) */
    uint64_t replaced;         /* good frames replaced by a newer one before being read */
};

typedef struct cap_camera cap_camera;

cap_camera *cap_camera_new(void);
void cap_camera_free(cap_camera *cam);
int cap_camera_open(cap_camera *cam, const char *path, const struct cap_request *req,
                    struct cap_format *fmt);
int cap_camera_fd(const cap_camera *cam);
int cap_camera_read(cap_camera *cam, struct cap_frame *frame);
int cap_camera_latest(const cap_camera *cam, struct cap_frame *frame);
int cap_camera_wait(cap_camera *cam, int timeout_ms);
void cap_camera_stats(const cap_camera *cam, struct cap_stats *stats);
void cap_camera_close(cap_camera *cam);
const char *cap_camera_error(const cap_camera *cam);

/* Facts about an MJPEG frame, from walking its segments. */
struct cap_mjpeg_info {
    uint32_t width, height;
    size_t length;             /* up to and including EOI */
    int has_dht;
    int components;
};

int cap_mjpeg_check(const uint8_t *data, size_t size, struct cap_mjpeg_info *info);

typedef struct cap_jpeg cap_jpeg;

cap_jpeg *cap_jpeg_new(void);
void cap_jpeg_free(cap_jpeg *jpeg);
int cap_jpeg_encode(cap_jpeg *jpeg, const uint8_t *data, size_t size, uint32_t fourcc,
                    uint32_t width, uint32_t height, uint32_t bytesperline, int quality,
                    int scale_denom, const uint8_t **out, size_t *out_size,
                    uint32_t *out_width, uint32_t *out_height);
const char *cap_jpeg_error(const cap_jpeg *jpeg);

#endif
