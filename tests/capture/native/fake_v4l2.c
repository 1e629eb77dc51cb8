/* fake_v4l2.c: see fake_v4l2.h. One camera (YUYV and MJPEG, 640x480 and 320x240, 30 and
 * 15 fps) and one metadata node. Frames are made on demand by fake_tick(). */
#define _GNU_SOURCE
#include "fake_v4l2.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <turbojpeg.h>

#include "cap_sys.h"

#define NBUF_MAX 8
#define FD_BASE 1000

/* NV12 is listed with a stepwise size and a continuous rate range (enumeration only). */
static const uint32_t formats[3] = {V4L2_PIX_FMT_MJPEG, V4L2_PIX_FMT_YUYV, V4L2_PIX_FMT_NV12};
static const uint32_t sizes[2][2] = {{640, 480}, {320, 240}};
static const uint32_t rates[2] = {30, 15};

/* Multi-planar mode: single-plane formats through the _MPLANE API, payload at this offset. */
#define MPLANE_OFFSET 64

static struct {
    enum fake_fault fault;
    int mplane;
    int eintr, eintr_pending;
    unsigned fail_at, ioctl_count;
    int fds[2];           /* open count per node */
    int owner;            /* fd that owns the stream, or -1 */
    uint32_t fourcc, width, height, fps;
    uint32_t nbuf;
    void *mem[NBUF_MAX];
    size_t len;
    int queued[NBUF_MAX], done[NBUF_MAX];
    uint32_t used[NBUF_MAX], seq_of[NBUF_MAX], flags_of[NBUF_MAX];
    uint32_t done_order[NBUF_MAX], n_done;
    int streaming;
    unsigned pending;
    uint32_t sequence;
    int mappings;
} fk;

static int eintr_once(void)
{
    if (!fk.eintr)
        return 0;
    fk.eintr_pending = !fk.eintr_pending;
    if (fk.eintr_pending) {
        errno = EINTR;
        return 1;
    }
    return 0;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

static uint32_t sizeimage(void)
{
    return fk.fourcc == V4L2_PIX_FMT_YUYV ? fk.width * fk.height * 2 : fk.width * fk.height;
}

static int fake_open(const char *path, int flags)
{
    (void)flags;
    if (eintr_once())
        return -1;
    if (fk.fault == FAKE_GONE)
        return fail(ENOENT);
    if (strcmp(path, FAKE_CAMERA) == 0) {
        fk.fds[0]++;
        return FD_BASE;
    }
    if (strcmp(path, FAKE_METADATA) == 0) {
        fk.fds[1]++;
        return FD_BASE + 1;
    }
    return fail(ENOENT);
}

static int fake_close(int fd)
{
    if (fd != FD_BASE && fd != FD_BASE + 1)
        return fail(EBADF);
    if (fk.fds[fd - FD_BASE] <= 0)
        abort(); /* double close */
    fk.fds[fd - FD_BASE]--;
    if (fd == FD_BASE && fk.fds[0] == 0) { /* last close: the stream stops */
        fk.owner = -1;
        fk.streaming = 0;
        if (fk.mappings == 0) {
            for (uint32_t i = 0; i < fk.nbuf; i++)
                free(fk.mem[i]);
            fk.nbuf = 0;
        }
    }
    return 0;
}

/* A picture whose pixels change with seq. */
static void fill_yuyv(uint8_t *p, uint32_t w, uint32_t h, uint32_t seq)
{
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x += 2) {
            uint8_t *s = p + ((size_t)y * w + x) * 2;
            s[0] = (uint8_t)(x + seq);
            s[1] = (uint8_t)(y * 2);
            s[2] = (uint8_t)(x + 1 + seq);
            s[3] = (uint8_t)(255 - y);
        }
}

static size_t strip_dht(uint8_t *j, size_t n)
{
    size_t pos = 2;
    while (pos + 4 <= n && j[pos] == 0xFF && j[pos + 1] != 0xDA) {
        size_t len = ((size_t)j[pos + 2] << 8) | j[pos + 3];
        if (j[pos + 1] == 0xC4) {
            memmove(j + pos, j + pos + 2 + len, n - pos - 2 - len);
            n -= 2 + len;
            continue;
        }
        pos += 2 + len;
    }
    return n;
}

static uint32_t make_mjpeg(uint8_t *dst, size_t cap, uint32_t w, uint32_t h, uint32_t seq)
{
    size_t ylen = (size_t)w * h, clen = (size_t)w / 2 * h;
    uint8_t *planes = malloc(ylen + 2 * clen);
    for (size_t i = 0; i < ylen; i++)
        planes[i] = (uint8_t)(i + seq);
    memset(planes + ylen, 100, 2 * clen);
    const unsigned char *pl[3] = {planes, planes + ylen, planes + ylen + clen};
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long size = 0;
    int rc = tjCompressFromYUVPlanes(tj, pl, (int)w, NULL, (int)h, TJSAMP_422, &out, &size, 80,
                                     0);
    if (rc < 0 || size + 16 > cap)
        abort();
    memcpy(dst, out, size);
    memset(dst + size, 0, 16); /* zero padding after EOI, as cameras do */
    tjFree(out);
    tjDestroy(tj);
    free(planes);
    return (uint32_t)size + 16;
}

static uint32_t buf_type(void)
{
    return fk.mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
}

static void complete_one(uint32_t i)
{
    uint8_t *p = (uint8_t *)fk.mem[i] + (fk.mplane ? MPLANE_OFFSET : 0);
    uint32_t seq = fk.sequence++;
    uint32_t used;
    if (fk.fourcc == V4L2_PIX_FMT_YUYV) {
        fill_yuyv(p, fk.width, fk.height, seq);
        used = sizeimage();
    } else {
        used = make_mjpeg(p, fk.len, fk.width, fk.height, seq);
    }
    fk.flags_of[i] = 0;
    switch (fk.fault) {
    case FAKE_ERROR_FLAG: fk.flags_of[i] = V4L2_BUF_FLAG_ERROR; break;
    case FAKE_EMPTY: used = 0; break;
    case FAKE_TRUNCATED: used /= 2; break;
    case FAKE_CORRUPT: p[0] = 0x00; break;
    case FAKE_NO_DHT:
        if (fk.fourcc == V4L2_PIX_FMT_MJPEG)
            used = (uint32_t)strip_dht(p, used);
        break;
    default: break;
    }
    fk.used[i] = used;
    fk.seq_of[i] = seq;
    fk.queued[i] = 0;
    fk.done[i] = 1;
    fk.done_order[fk.n_done++] = i;
}

static void produce(void)
{
    while (fk.pending > 0 && fk.streaming) {
        int found = -1;
        for (uint32_t i = 0; i < fk.nbuf; i++)
            if (fk.queued[i]) {
                found = (int)i;
                break;
            }
        if (found < 0)
            return; /* no buffer queued: frames are lost, as on a real device */
        fk.pending--;
        complete_one((uint32_t)found);
    }
}

static int ioctl_querycap(int fd, struct v4l2_capability *c)
{
    memset(c, 0, sizeof *c);
    strcpy((char *)c->driver, "fake");
    strcpy((char *)c->card, fd == FD_BASE ? "Fake Camera" : "Fake Metadata");
    strcpy((char *)c->bus_info, "platform:fake");
    c->version = 0x060100;
    uint32_t video = fk.mplane ? V4L2_CAP_VIDEO_CAPTURE_MPLANE : V4L2_CAP_VIDEO_CAPTURE;
    c->device_caps = fd == FD_BASE ? (video | V4L2_CAP_STREAMING)
                                   : (V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING);
    c->capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING |
                      V4L2_CAP_DEVICE_CAPS;
    return 0;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
    if (eintr_once())
        return -1;
    fk.ioctl_count++;
    if (fk.fail_at != 0 && fk.ioctl_count == fk.fail_at)
        return fail(EIO);
    if (fd != FD_BASE && fd != FD_BASE + 1)
        return fail(EBADF);
    if (fk.fault == FAKE_GONE)
        return fail(ENODEV);
    if (req == VIDIOC_QUERYCAP)
        return ioctl_querycap(fd, arg);
    if (fd != FD_BASE)
        return fail(ENOTTY);
    switch (req) {
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *f = arg;
        if (f->type != buf_type() || f->index >= 3)
            return fail(EINVAL);
        f->pixelformat = formats[f->index];
        f->flags = f->index == 0 ? V4L2_FMT_FLAG_COMPRESSED : 0;
        strcpy((char *)f->description, f->index == 0 ? "Motion-JPEG" : "raw");
        return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *s = arg;
        if (s->pixel_format == V4L2_PIX_FMT_NV12) {
            if (s->index >= 1)
                return fail(EINVAL);
            s->type = V4L2_FRMSIZE_TYPE_STEPWISE;
            s->stepwise.min_width = 160;
            s->stepwise.min_height = 120;
            s->stepwise.max_width = 1920;
            s->stepwise.max_height = 1080;
            s->stepwise.step_width = 16;
            s->stepwise.step_height = 8;
            return 0;
        }
        if (s->index >= 2)
            return fail(EINVAL);
        s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
        s->discrete.width = sizes[s->index][0];
        s->discrete.height = sizes[s->index][1];
        return 0;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *v = arg;
        if (v->pixel_format == V4L2_PIX_FMT_NV12) {
            if (v->index >= 1 || v->width != 160)
                return fail(EINVAL);
            v->type = V4L2_FRMIVAL_TYPE_CONTINUOUS;
            v->stepwise.min = (struct v4l2_fract){1, 60};
            v->stepwise.max = (struct v4l2_fract){1, 1};
            v->stepwise.step = (struct v4l2_fract){1, 1};
            return 0;
        }
        if (v->index >= 2)
            return fail(EINVAL);
        v->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        v->discrete.numerator = 1;
        v->discrete.denominator = rates[v->index];
        return 0;
    }
    case VIDIOC_S_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != buf_type())
            return fail(EINVAL);
        if (fk.fault == FAKE_EBUSY || (fk.owner >= 0 && fk.owner != fd) || fk.streaming)
            return fail(EBUSY);
        if (fk.mplane) {
            struct v4l2_pix_format_mplane *mp = &f->fmt.pix_mp;
            fk.fourcc = mp->pixelformat == V4L2_PIX_FMT_YUYV ? V4L2_PIX_FMT_YUYV
                                                             : V4L2_PIX_FMT_MJPEG;
            int small = mp->width <= 320;
            fk.width = sizes[small][0];
            fk.height = sizes[small][1];
            mp->pixelformat = fk.fourcc;
            mp->width = fk.width;
            mp->height = fk.height;
            mp->num_planes = 1;
            mp->plane_fmt[0].bytesperline = fk.fourcc == V4L2_PIX_FMT_YUYV ? fk.width * 2 : 0;
            mp->plane_fmt[0].sizeimage = sizeimage();
            mp->field = V4L2_FIELD_NONE;
            return 0;
        }
        fk.fourcc = f->fmt.pix.pixelformat == V4L2_PIX_FMT_YUYV ? V4L2_PIX_FMT_YUYV
                                                                 : V4L2_PIX_FMT_MJPEG;
        int small = f->fmt.pix.width <= 320;
        fk.width = sizes[small][0];
        fk.height = sizes[small][1];
        f->fmt.pix.pixelformat = fk.fourcc;
        f->fmt.pix.width = fk.width;
        f->fmt.pix.height = fk.height;
        f->fmt.pix.bytesperline = fk.fourcc == V4L2_PIX_FMT_YUYV ? fk.width * 2 : 0;
        f->fmt.pix.sizeimage = sizeimage();
        f->fmt.pix.field = V4L2_FIELD_NONE;
        return 0;
    }
    case VIDIOC_S_PARM:
    case VIDIOC_G_PARM: {
        struct v4l2_streamparm *p = arg;
        if (req == VIDIOC_S_PARM)
            fk.fps = p->parm.capture.timeperframe.denominator >= 30 ? 30 : 15;
        memset(&p->parm, 0, sizeof p->parm);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = fk.fps ? fk.fps : 30;
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *r = arg;
        if (fk.fault == FAKE_EBUSY || (fk.owner >= 0 && fk.owner != fd))
            return fail(EBUSY);
        if (r->count == 0) {
            if (fk.mappings > 0 || fk.streaming)
                return fail(EBUSY);
            for (uint32_t i = 0; i < fk.nbuf; i++)
                free(fk.mem[i]);
            fk.nbuf = 0;
            fk.owner = -1;
            return 0;
        }
        r->count = r->count > NBUF_MAX ? NBUF_MAX : r->count;
        fk.nbuf = r->count;
        fk.len = sizeimage() + 4096;
        for (uint32_t i = 0; i < fk.nbuf; i++) {
            fk.mem[i] = calloc(1, fk.len);
            fk.queued[i] = fk.done[i] = 0;
        }
        fk.n_done = 0;
        fk.owner = fd;
        return 0;
    }
    case VIDIOC_QUERYBUF: {
        struct v4l2_buffer *b = arg;
        if (b->index >= fk.nbuf || b->type != buf_type())
            return fail(EINVAL);
        if (fk.mplane) {
            if (b->length < 1 || b->m.planes == NULL)
                return fail(EINVAL);
            b->length = 1;
            b->m.planes[0].length = (uint32_t)fk.len;
            b->m.planes[0].m.mem_offset = b->index * 0x100000u;
            return 0;
        }
        b->length = (uint32_t)fk.len;
        b->m.offset = b->index * 0x100000u;
        return 0;
    }
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != buf_type() || b->index >= fk.nbuf || fk.queued[b->index] ||
            fk.done[b->index])
            return fail(EINVAL);
        fk.queued[b->index] = 1;
        produce();
        return 0;
    }
    case VIDIOC_DQBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != buf_type() || (fk.mplane && (b->length < 1 || b->m.planes == NULL)))
            return fail(EINVAL);
        produce();
        if (fk.n_done == 0)
            return fail(EAGAIN);
        uint32_t i = fk.done_order[0];
        memmove(fk.done_order, fk.done_order + 1, --fk.n_done * sizeof fk.done_order[0]);
        fk.done[i] = 0;
        b->index = i;
        b->bytesused = fk.used[i];
        if (fk.mplane) {
            b->bytesused = 0;
            b->m.planes[0].bytesused = fk.used[i] + MPLANE_OFFSET;
            b->m.planes[0].data_offset = MPLANE_OFFSET;
        }
        b->sequence = fk.seq_of[i];
        b->flags = fk.flags_of[i] | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        b->timestamp.tv_sec = fk.seq_of[i] / 30;
        b->timestamp.tv_usec = (fk.seq_of[i] % 30) * 33333;
        return 0;
    }
    case VIDIOC_STREAMON:
        if (fk.fault == FAKE_ENOSPC)
            return fail(ENOSPC);
        fk.streaming = 1;
        produce();
        return 0;
    case VIDIOC_STREAMOFF:
        fk.streaming = 0;
        for (uint32_t i = 0; i < fk.nbuf; i++)
            fk.queued[i] = fk.done[i] = 0;
        fk.n_done = 0;
        return 0;
    default:
        return fail(ENOTTY);
    }
}

static void *fake_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    (void)addr;
    (void)prot;
    (void)flags;
    if (fd != FD_BASE || length != fk.len)
        return (errno = EINVAL), MAP_FAILED;
    uint32_t i = (uint32_t)(offset / 0x100000);
    if (i >= fk.nbuf)
        return (errno = EINVAL), MAP_FAILED;
    fk.mappings++;
    return fk.mem[i];
}

static int fake_munmap(void *addr, size_t length)
{
    (void)addr;
    (void)length;
    if (fk.mappings <= 0)
        abort();
    fk.mappings--;
    return 0;
}

static int fake_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    (void)timeout_ms;
    if (eintr_once())
        return -1;
    int ready = 0;
    for (nfds_t k = 0; k < n; k++) {
        fds[k].revents = 0;
        if (fk.fault == FAKE_GONE) {
            fds[k].revents = POLLERR;
            ready++;
            continue;
        }
        produce();
        if (fk.n_done > 0) {
            fds[k].revents = POLLIN;
            ready++;
        }
    }
    return ready;
}

void fake_install(void)
{
    for (uint32_t i = 0; i < fk.nbuf; i++)
        free(fk.mem[i]);
    memset(&fk, 0, sizeof fk);
    fk.owner = -1;
    cap_sys.open = fake_open;
    cap_sys.close = fake_close;
    cap_sys.ioctl = fake_ioctl;
    cap_sys.mmap = fake_mmap;
    cap_sys.munmap = fake_munmap;
    cap_sys.poll = fake_poll;
}

void fake_fault(enum fake_fault fault) { fk.fault = fault; }
void fake_multiplanar(int on) { fk.mplane = on; }
void fake_tick(unsigned n) { fk.pending += n; }
void fake_fail_ioctl_at(unsigned nth)
{
    fk.ioctl_count = 0;
    fk.fail_at = nth;
}
void fake_eintr(int on) { fk.eintr = on; }
int fake_open_fds(void) { return fk.fds[0] + fk.fds[1]; }
int fake_mappings(void) { return fk.mappings; }
uint32_t fake_sequence(void) { return fk.sequence; }
