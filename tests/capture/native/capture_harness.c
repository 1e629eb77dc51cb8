/* capture_harness.c: drives the capture module (csrc/) against the in-process fake device,
 * for AddressSanitizer/UBSan and valgrind: enumeration, both formats, a capture loop of
 * N frames (argv[1], default 300) with JPEG output, every fault, EINTR on every call, a
 * failure at each ioctl of open (to walk every unwind path), and unplug mid-stream.
 * Prints "N passed, N failed" and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "cap_sys.h"
#include "capture.h"
#include "fake_v4l2.h"

static int passed, failed;
static int multiplanar; /* what the fake offers now */

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

static int decodes(const uint8_t *jpeg, size_t size, uint32_t w, uint32_t h)
{
    tjhandle tj = tjInitDecompress();
    int jw, jh, sub, cs, ok = 0;
    if (tjDecompressHeader3(tj, jpeg, size, &jw, &jh, &sub, &cs) == 0 && (uint32_t)jw == w &&
        (uint32_t)jh == h) {
        unsigned char *rgb = malloc((size_t)jw * jh * 3);
        ok = tjDecompress2(tj, jpeg, size, rgb, jw, 0, jh, TJPF_RGB, 0) == 0;
        free(rgb);
    }
    tjDestroy(tj);
    return ok;
}

static int has_dht(const uint8_t *j, size_t n)
{
    struct cap_mjpeg_info info;
    return cap_mjpeg_check(j, n, &info) == 0 && info.has_dht;
}

static void test_enum(void)
{
    struct cap_devinfo info;
    struct cap_mode modes[9];
    char err[CAP_ERR_LEN];
    int n = cap_enum_device(FAKE_CAMERA, &info, modes, 4, err, sizeof err);
    CHECK(n == 9); /* 2 formats x 2 sizes x 2 intervals + 1 stepwise row; 4 stored */
    CHECK(info.is_capture && !info.multiplanar && strcmp(info.card, "Fake Camera") == 0);
    CHECK(modes[0].fourcc == V4L2_PIX_FMT_MJPEG && modes[0].width == 640 && modes[0].den == 30);
    CHECK(modes[3].width == 320 && modes[3].den == 15);
    n = cap_enum_device(FAKE_CAMERA, &info, modes, 9, err, sizeof err);
    const struct cap_mode *nv12 = &modes[8];
    CHECK(n == 9 && nv12->fourcc == V4L2_PIX_FMT_NV12 && nv12->size_type == CAP_RANGE_STEPWISE);
    CHECK(nv12->width == 160 && nv12->max_width == 1920 && nv12->step_height == 8);
    CHECK(nv12->ival_type == CAP_RANGE_CONTINUOUS && nv12->den == 60 && nv12->max_den == 1);
    n = cap_enum_device(FAKE_METADATA, &info, modes, 4, err, sizeof err);
    CHECK(n == 0 && !info.is_capture);
    n = cap_enum_device("/fake/nothing", &info, modes, 4, err, sizeof err);
    CHECK(n == -ENOENT && strstr(err, "open") != NULL);
    CHECK(fake_open_fds() == 0);
}

static void capture_loop(uint32_t fourcc, uint32_t width, unsigned frames, cap_jpeg *jpeg)
{
    cap_camera *cam = cap_camera_new();
    struct cap_request req = {.width = width, .height = width * 3 / 4, .fourcc = fourcc,
                              .fps_num = 15, .fps_den = 1};
    struct cap_format fmt;
    int rc = cap_camera_open(cam, FAKE_CAMERA, &req, &fmt);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", cap_camera_error(cam));
        cap_camera_free(cam);
        return;
    }
    CHECK(fmt.fourcc == fourcc && fmt.width == width && fmt.buffers == 4 && fmt.fps_num == 15);
    CHECK(fmt.multiplanar == multiplanar);
    struct cap_frame frame;
    CHECK(cap_camera_read(cam, &frame) == 0); /* nothing yet */
    CHECK(cap_camera_wait(cam, 0) == 0);
    unsigned bad = 0;
    uint64_t made = 0;
    for (unsigned i = 0; i < frames; i++) {
        unsigned burst = 1 + i % 3; /* sometimes several frames between reads */
        made += burst;
        uint32_t newest = fake_sequence() + burst - 1;
        fake_tick(burst);
        if (cap_camera_wait(cam, 100) != 1 || cap_camera_read(cam, &frame) != 1 ||
            frame.sequence != newest) {
            bad++;
            continue;
        }
        int scale = i % 10 == 0 ? 2 : 1;
        const uint8_t *out;
        size_t out_size;
        uint32_t ow, oh;
        rc = cap_jpeg_encode(jpeg, frame.data, frame.size, frame.fourcc, frame.width,
                             frame.height, frame.bytesperline, 80, scale, &out, &out_size, &ow,
                             &oh);
        if (rc != 0 || ow != width / scale || (i % 50 == 0 && !decodes(out, out_size, ow, oh)))
            bad++;
    }
    CHECK(bad == 0);
    struct cap_stats st;
    cap_camera_stats(cam, &st);
    CHECK(st.dropped == 0 && st.frames == made);
    cap_camera_close(cam);
    cap_camera_close(cam); /* idempotent */
    CHECK(cap_camera_read(cam, &frame) == -EBADF);
    cap_camera_free(cam);
    CHECK(fake_open_fds() == 0 && fake_mappings() == 0);
}

/* Frames under a fault are dropped (or, for no_dht, fixed up). */
static void test_frame_fault(enum fake_fault fault, uint32_t fourcc, cap_jpeg *jpeg)
{
    cap_camera *cam = cap_camera_new();
    struct cap_request req = {.width = 320, .height = 240, .fourcc = fourcc};
    struct cap_frame frame;
    CHECK(cap_camera_open(cam, FAKE_CAMERA, &req, NULL) == 0);
    fake_fault(fault);
    fake_tick(3);
    int rc = cap_camera_read(cam, &frame);
    struct cap_stats st;
    cap_camera_stats(cam, &st);
    if (fault == FAKE_NO_DHT) {
        CHECK(rc == 1 && !has_dht(frame.data, frame.size));
        const uint8_t *out;
        size_t out_size;
        uint32_t ow, oh;
        CHECK(cap_jpeg_encode(jpeg, frame.data, frame.size, frame.fourcc, 320, 240, 0, 80, 1,
                              &out, &out_size, &ow, &oh) == 0);
        CHECK(has_dht(out, out_size) && decodes(out, out_size, 320, 240));
        CHECK(cap_jpeg_encode(jpeg, frame.data, frame.size, frame.fourcc, 320, 240, 0, 80, 4,
                              &out, &out_size, &ow, &oh) == 0);
        CHECK(ow == 80 && oh == 60 && decodes(out, out_size, 80, 60));
    } else {
        CHECK(rc == 0 && st.dropped == 3);
    }
    fake_fault(FAKE_OK);
    fake_tick(1);
    CHECK(cap_camera_read(cam, &frame) == 1);
    cap_camera_free(cam);
    CHECK(fake_open_fds() == 0 && fake_mappings() == 0);
}

static void test_open_faults(void)
{
    cap_camera *cam = cap_camera_new();
    fake_fault(FAKE_EBUSY);
    CHECK(cap_camera_open(cam, FAKE_CAMERA, NULL, NULL) == -EBUSY);
    fake_fault(FAKE_ENOSPC);
    CHECK(cap_camera_open(cam, FAKE_CAMERA, NULL, NULL) == -ENOSPC);
    CHECK(strstr(cap_camera_error(cam), "STREAMON") != NULL);
    CHECK(fake_open_fds() == 0 && fake_mappings() == 0);
    fake_fault(FAKE_OK);

    /* A second owner is refused while the first streams. */
    cap_camera *other = cap_camera_new();
    CHECK(cap_camera_open(cam, FAKE_CAMERA, NULL, NULL) == 0);
    CHECK(cap_camera_open(other, FAKE_CAMERA, NULL, NULL) == -EBUSY);
    CHECK(cap_camera_fd(other) == -1);
    cap_camera_free(other);
    cap_camera_close(cam);

    /* Fail each ioctl of open in turn: every unwind path leaves nothing behind. */
    int opened = 0;
    for (unsigned k = 1; k < 40 && !opened; k++) {
        fake_fail_ioctl_at(k);
        int rc = cap_camera_open(cam, FAKE_CAMERA, NULL, NULL);
        if (rc == 0)
            opened = 1;
        else
            CHECK(rc == -EIO && cap_camera_fd(cam) == -1);
        cap_camera_close(cam);
        CHECK(fake_open_fds() == 0 && fake_mappings() == 0);
    }
    CHECK(opened);
    fake_fail_ioctl_at(0);
    cap_camera_free(cam);
}

static void test_unplug(void)
{
    cap_camera *cam = cap_camera_new();
    struct cap_frame frame;
    int rc = cap_camera_open(cam, FAKE_CAMERA, NULL, NULL);
    CHECK(rc == 0);
    if (rc != 0)
        fprintf(stderr, "open: %s\n", cap_camera_error(cam));
    fake_tick(1);
    CHECK(cap_camera_read(cam, &frame) == 1);
    fake_fault(FAKE_GONE);
    CHECK(cap_camera_wait(cam, 100) == -ENODEV);
    CHECK(cap_camera_read(cam, &frame) == -ENODEV);
    CHECK(strstr(cap_camera_error(cam), "device gone") != NULL);
    cap_camera_close(cam);
    cap_camera_free(cam);
    fake_fault(FAKE_OK);
    CHECK(fake_open_fds() == 0 && fake_mappings() == 0);
}

static void test_jpeg_errors(cap_jpeg *jpeg)
{
    static const uint8_t junk[] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x02, 0xFF, 0xD9};
    const uint8_t *out;
    size_t out_size;
    uint32_t ow, oh;
    CHECK(cap_jpeg_encode(jpeg, junk, sizeof junk, V4L2_PIX_FMT_MJPEG, 0, 0, 0, 80, 1, &out,
                          &out_size, &ow, &oh) == -EBADMSG);
    uint8_t yuyv[64] = {0};
    CHECK(cap_jpeg_encode(jpeg, yuyv, sizeof yuyv, V4L2_PIX_FMT_YUYV, 8, 8, 16, 80, 1, &out,
                          &out_size, &ow, &oh) == -EINVAL); /* 8x8 YUYV needs 128 bytes */
    CHECK(cap_jpeg_encode(jpeg, yuyv, sizeof yuyv, V4L2_PIX_FMT_YUYV, 4, 4, 8, 80, 3, &out,
                          &out_size, &ow, &oh) == -EINVAL);
    CHECK(cap_jpeg_encode(jpeg, yuyv, sizeof yuyv, V4L2_PIX_FMT_NV12, 4, 4, 4, 80, 1, &out,
                          &out_size, &ow, &oh) == 0);
    CHECK(decodes(out, out_size, 4, 4));
    CHECK(cap_jpeg_encode(jpeg, yuyv, sizeof yuyv, V4L2_PIX_FMT_NV12, 4, 4, 4, 80, 8, &out,
                          &out_size, &ow, &oh) == 0 && ow == 1 && oh == 1);
}

int main(int argc, char **argv)
{
    unsigned frames = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 300;
    cap_jpeg *jpeg = cap_jpeg_new();
    fake_install();
    test_enum();
    fake_eintr(1); /* every call below is interrupted once first */
    capture_loop(V4L2_PIX_FMT_MJPEG, 640, frames, jpeg);
    capture_loop(V4L2_PIX_FMT_YUYV, 640, frames, jpeg);
    fake_eintr(0);
    capture_loop(V4L2_PIX_FMT_YUYV, 320, frames / 10 + 1, jpeg);
    fake_multiplanar(multiplanar = 1);
    capture_loop(V4L2_PIX_FMT_YUYV, 320, frames / 10 + 1, jpeg);
    capture_loop(V4L2_PIX_FMT_MJPEG, 320, frames / 10 + 1, jpeg);
    test_frame_fault(FAKE_TRUNCATED, V4L2_PIX_FMT_YUYV, jpeg);
    fake_multiplanar(multiplanar = 0);
    test_frame_fault(FAKE_ERROR_FLAG, V4L2_PIX_FMT_YUYV, jpeg);
    test_frame_fault(FAKE_EMPTY, V4L2_PIX_FMT_YUYV, jpeg);
    test_frame_fault(FAKE_TRUNCATED, V4L2_PIX_FMT_YUYV, jpeg);
    test_frame_fault(FAKE_TRUNCATED, V4L2_PIX_FMT_MJPEG, jpeg);
    test_frame_fault(FAKE_CORRUPT, V4L2_PIX_FMT_MJPEG, jpeg);
    test_frame_fault(FAKE_NO_DHT, V4L2_PIX_FMT_MJPEG, jpeg);
    test_open_faults();
    test_unplug();
    test_jpeg_errors(jpeg);
    cap_jpeg_free(jpeg);
    fake_install(); /* frees what the fake still holds */
    cap_sys_reset();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
