/* camera.c: open a capture node, choose and set a format, run an mmap ring, and dequeue
 * without blocking while keeping only the newest good frame (held out of the ring until a
 * newer good one replaces it). Errors: -errno plus a message in cam->error. */
#define _GNU_SOURCE
#include "camera.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cap_err.h"
#include "cap_sys.h"
#include "enum.h"

enum { DEFAULT_BUFFERS = 4, DEFAULT_WIDTH = 640, DEFAULT_HEIGHT = 480, MAX_FMT_INDEX = 256 };

static int fail(cap_camera *cam, int err, const char *what)
{
    return cap_err(cam->error, sizeof cam->error, err, what);
}

cap_camera *cap_camera_new(void)
{
    cap_camera *cam = calloc(1, sizeof *cam);
    if (cam == NULL)
        return NULL;
    cam->fd = -1;
    cam->held = -1;
    return cam;
}

void cap_camera_free(cap_camera *cam)
{
    if (cam == NULL)
        return;
    cap_camera_close(cam);
    free(cam);
}

int cap_camera_fd(const cap_camera *cam) { return cam->fd; }

const char *cap_camera_error(const cap_camera *cam) { return cam->error; }

void cap_camera_stats(const cap_camera *cam, struct cap_stats *stats) { *stats = cam->stats; }

static int is_multi(const cap_camera *cam)
{
    return cam->buf_type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
}

static int is_jpeg(uint32_t fourcc)
{
    return fourcc == V4L2_PIX_FMT_MJPEG || fourcc == V4L2_PIX_FMT_JPEG;
}

/* Idempotent: accepts a half-open camera and leaves it closed. */
void cap_camera_close(cap_camera *cam)
{
    if (cam == NULL)
        return;
    if (cam->fd >= 0 && cam->streaming) {
        uint32_t type = cam->buf_type;
        (void)cap_xioctl(cam->fd, VIDIOC_STREAMOFF, &type);
    }
    cam->streaming = 0;
    for (uint32_t i = 0; i < CAP_MAX_BUFFERS; i++) {
        if (cam->buffers[i].start != NULL)
            cap_sys.munmap(cam->buffers[i].start, cam->buffers[i].length);
        cam->buffers[i].start = NULL;
        cam->buffers[i].length = 0;
    }
    if (cam->fd >= 0 && cam->n_buffers > 0) {
        struct v4l2_requestbuffers rb;
        memset(&rb, 0, sizeof rb);
        rb.count = 0;
        rb.type = cam->buf_type;
        rb.memory = V4L2_MEMORY_MMAP;
        (void)cap_xioctl(cam->fd, VIDIOC_REQBUFS, &rb);
    }
    cam->n_buffers = 0;
    if (cam->fd >= 0)
        cap_sys.close(cam->fd);
    cam->fd = -1;
    cam->held = -1;
    memset(&cam->latest, 0, sizeof cam->latest);
}

/* Picks the pixel format: the requested one, else MJPEG > YUYV > NV12 among those listed. */
static int choose_fourcc(cap_camera *cam, uint32_t *fourcc)
{
    if (cam->req.fourcc != 0) {
        *fourcc = cam->req.fourcc;
        return 0;
    }
    static const uint32_t preference[] = {V4L2_PIX_FMT_MJPEG, V4L2_PIX_FMT_JPEG,
                                          V4L2_PIX_FMT_YUYV, V4L2_PIX_FMT_NV12};
    size_t best = sizeof preference / sizeof preference[0];
    for (uint32_t i = 0; i < MAX_FMT_INDEX; i++) {
        struct v4l2_fmtdesc desc;
        memset(&desc, 0, sizeof desc);
        desc.index = i;
        desc.type = cam->buf_type;
        int rc = cap_xioctl(cam->fd, VIDIOC_ENUM_FMT, &desc);
        if (rc < 0) {
            if (cap_is_gone(rc))
                return fail(cam, rc, "VIDIOC_ENUM_FMT");
            break;
        }
        for (size_t p = 0; p < best; p++) {
            if (desc.pixelformat == preference[p]) {
                best = p;
                break;
            }
        }
    }
    if (best == sizeof preference / sizeof preference[0])
        return fail(cam, ENOTSUP, "no MJPEG, YUYV or NV12 format");
    *fourcc = preference[best];
    return 0;
}

static int set_format(cap_camera *cam, uint32_t fourcc)
{
    struct v4l2_format f;
    memset(&f, 0, sizeof f);
    f.type = cam->buf_type;
    uint32_t width = cam->req.width ? cam->req.width : DEFAULT_WIDTH;
    uint32_t height = cam->req.height ? cam->req.height : DEFAULT_HEIGHT;
    if (is_multi(cam)) {
        f.fmt.pix_mp.width = width;
        f.fmt.pix_mp.height = height;
        f.fmt.pix_mp.pixelformat = fourcc;
        f.fmt.pix_mp.field = V4L2_FIELD_ANY;
        f.fmt.pix_mp.num_planes = 1;
    } else {
        f.fmt.pix.width = width;
        f.fmt.pix.height = height;
        f.fmt.pix.pixelformat = fourcc;
        f.fmt.pix.field = V4L2_FIELD_ANY;
    }
    int rc = cap_xioctl(cam->fd, VIDIOC_S_FMT, &f);
    if (rc < 0)
        return fail(cam, rc, "VIDIOC_S_FMT");
    if (is_multi(cam)) {
        if (f.fmt.pix_mp.num_planes != 1)
            return fail(cam, ENOTSUP, "multi-plane buffers are not supported");
        cam->fmt.width = f.fmt.pix_mp.width;
        cam->fmt.height = f.fmt.pix_mp.height;
        cam->fmt.fourcc = f.fmt.pix_mp.pixelformat;
        cam->fmt.bytesperline = f.fmt.pix_mp.plane_fmt[0].bytesperline;
        cam->fmt.sizeimage = f.fmt.pix_mp.plane_fmt[0].sizeimage;
    } else {
        cam->fmt.width = f.fmt.pix.width;
        cam->fmt.height = f.fmt.pix.height;
        cam->fmt.fourcc = f.fmt.pix.pixelformat;
        cam->fmt.bytesperline = f.fmt.pix.bytesperline;
        cam->fmt.sizeimage = f.fmt.pix.sizeimage;
    }
    if (cam->req.fourcc != 0 && cam->fmt.fourcc != cam->req.fourcc)
        return fail(cam, EINVAL, "the driver does not offer the requested format");
    if (cam->fmt.width == 0 || cam->fmt.height == 0)
        return fail(cam, EINVAL, "the driver set an empty frame size");
    if (!is_jpeg(cam->fmt.fourcc)) {
        uint32_t min_line = cam->fmt.fourcc == V4L2_PIX_FMT_YUYV ? cam->fmt.width * 2
                                                                  : cam->fmt.width;
        if (cam->fmt.bytesperline < min_line)
            cam->fmt.bytesperline = min_line;
    }
    cam->fmt.multiplanar = is_multi(cam);
    return 0;
}

/* S_PARM when a rate was asked for, then G_PARM to report what the driver runs at. */
static int set_rate(cap_camera *cam)
{
    struct v4l2_streamparm parm;
    int rc;
    if (cam->req.fps_num != 0 && cam->req.fps_den != 0) {
        memset(&parm, 0, sizeof parm);
        parm.type = cam->buf_type;
        parm.parm.capture.timeperframe.numerator = cam->req.fps_den;
        parm.parm.capture.timeperframe.denominator = cam->req.fps_num;
        rc = cap_xioctl(cam->fd, VIDIOC_S_PARM, &parm);
        if (rc < 0 && (cap_is_gone(rc) || rc == -EBUSY))
            return fail(cam, rc, "VIDIOC_S_PARM");
    }
    memset(&parm, 0, sizeof parm);
    parm.type = cam->buf_type;
    rc = cap_xioctl(cam->fd, VIDIOC_G_PARM, &parm);
    if (rc < 0) {
        if (cap_is_gone(rc))
            return fail(cam, rc, "VIDIOC_G_PARM");
        return 0; /* the driver has no notion of a rate */
    }
    const struct v4l2_fract *tpf = &parm.parm.capture.timeperframe;
    if (tpf->numerator != 0 && tpf->denominator != 0) {
        cam->fmt.fps_num = tpf->denominator;
        cam->fmt.fps_den = tpf->numerator;
    }
    return 0;
}

static void init_buffer(const cap_camera *cam, struct v4l2_buffer *b, struct v4l2_plane *plane,
                        uint32_t index)
{
    memset(b, 0, sizeof *b);
    b->type = cam->buf_type;
    b->memory = V4L2_MEMORY_MMAP;
    b->index = index;
    if (is_multi(cam)) {
        memset(plane, 0, sizeof *plane);
        b->m.planes = plane;
        b->length = 1;
    }
}

static int queue_buffer(cap_camera *cam, uint32_t index)
{
    struct v4l2_buffer b;
    struct v4l2_plane plane;
    init_buffer(cam, &b, &plane, index);
    int rc = cap_xioctl(cam->fd, VIDIOC_QBUF, &b);
    return rc < 0 ? fail(cam, rc, "VIDIOC_QBUF") : 0;
}

static int map_buffers(cap_camera *cam)
{
    struct v4l2_requestbuffers rb;
    memset(&rb, 0, sizeof rb);
    uint32_t want = cam->req.buffers ? cam->req.buffers : DEFAULT_BUFFERS;
    if (want < 2)
        want = 2;
    if (want > CAP_MAX_BUFFERS)
        want = CAP_MAX_BUFFERS;
    rb.count = want;
    rb.type = cam->buf_type;
    rb.memory = V4L2_MEMORY_MMAP;
    int rc = cap_xioctl(cam->fd, VIDIOC_REQBUFS, &rb);
    if (rc < 0)
        return fail(cam, rc, "VIDIOC_REQBUFS");
    cam->n_buffers = rb.count > CAP_MAX_BUFFERS ? CAP_MAX_BUFFERS : rb.count;
    if (rb.count < 2)
        return fail(cam, ENOMEM, "the driver granted fewer than 2 buffers");
    for (uint32_t i = 0; i < cam->n_buffers; i++) {
        struct v4l2_buffer b;
        struct v4l2_plane plane;
        init_buffer(cam, &b, &plane, i);
        rc = cap_xioctl(cam->fd, VIDIOC_QUERYBUF, &b);
        if (rc < 0)
            return fail(cam, rc, "VIDIOC_QUERYBUF");
        size_t length = is_multi(cam) ? plane.length : b.length;
        off_t offset = is_multi(cam) ? (off_t)plane.m.mem_offset : (off_t)b.m.offset;
        if (length == 0)
            return fail(cam, EINVAL, "the driver reported an empty buffer");
        void *p = cap_sys.mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, cam->fd,
                               offset);
        if (p == MAP_FAILED)
            return fail(cam, errno, "mmap");
        cam->buffers[i].start = p;
        cam->buffers[i].length = length;
    }
    for (uint32_t i = 0; i < cam->n_buffers; i++) {
        rc = queue_buffer(cam, i);
        if (rc < 0)
            return rc;
    }
    cam->fmt.buffers = cam->n_buffers;
    return 0;
}

int cap_camera_open(cap_camera *cam, const char *path, const struct cap_request *req,
                    struct cap_format *fmt)
{
    int rc;
    cap_camera_close(cam);
    cam->error[0] = '\0';
    memset(&cam->stats, 0, sizeof cam->stats);
    memset(&cam->fmt, 0, sizeof cam->fmt);
    if (req != NULL)
        cam->req = *req;
    else
        memset(&cam->req, 0, sizeof cam->req);

    rc = cap_xopen(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (rc < 0) {
        rc = fail(cam, rc, "open");
        goto error;
    }
    cam->fd = rc;

    struct cap_devinfo info;
    rc = cap_querycap(cam->fd, &info);
    if (rc < 0) {
        rc = fail(cam, rc, "VIDIOC_QUERYCAP");
        goto error;
    }
    if (!info.is_capture) {
        rc = fail(cam, ENOTTY, "not a streaming video capture device");
        goto error;
    }
    cam->buf_type = info.multiplanar ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE
                                     : V4L2_BUF_TYPE_VIDEO_CAPTURE;

    uint32_t fourcc = 0;
    rc = choose_fourcc(cam, &fourcc);
    if (rc < 0)
        goto error;
    rc = set_format(cam, fourcc);
    if (rc < 0)
        goto error;
    rc = set_rate(cam);
    if (rc < 0)
        goto error;
    rc = map_buffers(cam);
    if (rc < 0)
        goto error;

    uint32_t type = cam->buf_type;
    rc = cap_xioctl(cam->fd, VIDIOC_STREAMON, &type);
    if (rc < 0) {
        rc = fail(cam, rc, "VIDIOC_STREAMON");
        goto error;
    }
    cam->streaming = 1;
    if (fmt != NULL)
        *fmt = cam->fmt;
    return 0;

error:
    cap_camera_close(cam);
    return rc;
}

/* True when the dequeued buffer holds a whole frame worth keeping. */
static int frame_ok(const cap_camera *cam, const uint8_t *data, size_t used, uint32_t flags)
{
    if (flags & V4L2_BUF_FLAG_ERROR)
        return 0;
    if (used == 0)
        return 0;
    if (is_jpeg(cam->fmt.fourcc)) {
        if (used < 4 || data[0] != 0xFF || data[1] != 0xD8)
            return 0;
        size_t end = used;
        while (end > 2 && data[end - 1] == 0x00)
            end--;
        return end >= 4 && data[end - 2] == 0xFF && data[end - 1] == 0xD9;
    }
    size_t need = (size_t)cam->fmt.bytesperline * cam->fmt.height;
    if (cam->fmt.fourcc == V4L2_PIX_FMT_NV12)
        need += (size_t)cam->fmt.bytesperline * ((cam->fmt.height + 1) / 2);
    return used >= need;
}

/* The buffer's CLOCK_MONOTONIC timestamp; now, when the driver stamps with another clock
 * or not at all. */
static int64_t frame_time(const struct v4l2_buffer *b)
{
    int64_t ns = (int64_t)b->timestamp.tv_sec * 1000000000LL;
    ns += (int64_t)b->timestamp.tv_usec * 1000LL;
    if ((b->flags & V4L2_BUF_FLAG_TIMESTAMP_MASK) == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC && ns != 0)
        return ns;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int cap_camera_read(cap_camera *cam, struct cap_frame *frame)
{
    if (cam->fd < 0 || !cam->streaming)
        return fail(cam, EBADF, "camera is not open");
    int got = 0;
    for (uint32_t n = 0; n < 4 * CAP_MAX_BUFFERS; n++) {
        struct v4l2_buffer b;
        struct v4l2_plane plane;
        init_buffer(cam, &b, &plane, 0);
        int rc = cap_xioctl(cam->fd, VIDIOC_DQBUF, &b);
        if (rc == -EAGAIN)
            break;
        if (rc < 0)
            return fail(cam, rc, "VIDIOC_DQBUF");
        if (b.index >= cam->n_buffers || cam->buffers[b.index].start == NULL)
            return fail(cam, EIO, "VIDIOC_DQBUF returned an unknown buffer");
        size_t used = is_multi(cam) ? plane.bytesused : b.bytesused;
        size_t offset = is_multi(cam) ? plane.data_offset : 0;
        const struct cap_buffer *buf = &cam->buffers[b.index];
        if (offset > used || used > buf->length) {
            used = 0; /* nonsense from the driver: drop it */
            offset = 0;
        }
        const uint8_t *data = (const uint8_t *)buf->start + offset;
        if (!frame_ok(cam, data, used - offset, b.flags)) {
            cam->stats.dropped++;
            rc = queue_buffer(cam, b.index);
            if (rc < 0)
                return rc;
            continue;
        }
        if (cam->held >= 0) {
            int old = cam->held;
            cam->held = -1;
            if (got)
                cam->stats.replaced++; /* held since this call began: nobody saw it */
            rc = queue_buffer(cam, (uint32_t)old);
            if (rc < 0)
                return rc;
        }
        cam->held = (int)b.index;
        cam->stats.frames++;
        got = 1;
        cam->latest.data = data;
        cam->latest.size = used - offset;
        cam->latest.sequence = b.sequence;
        cam->latest.timestamp_ns = frame_time(&b);
        cam->latest.width = cam->fmt.width;
        cam->latest.height = cam->fmt.height;
        cam->latest.fourcc = cam->fmt.fourcc;
        cam->latest.bytesperline = cam->fmt.bytesperline;
        cam->latest.index = b.index;
    }
    if (got && frame != NULL)
        *frame = cam->latest;
    return got;
}

int cap_camera_latest(const cap_camera *cam, struct cap_frame *frame)
{
    if (cam->held < 0)
        return 0;
    *frame = cam->latest;
    return 1;
}

int cap_camera_wait(cap_camera *cam, int timeout_ms)
{
    if (cam->fd < 0)
        return fail(cam, EBADF, "camera is not open");
    int rc = cap_xpoll_in(cam->fd, timeout_ms);
    return rc < 0 ? fail(cam, rc, "poll") : rc;
}
