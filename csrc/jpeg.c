/* jpeg.c: frames to JPEG bytes. MJPEG is checked and fixed up (mjpeg.c), and re-encoded
 * only to scale it down; YUYV and NV12 go to TurboJPEG as raw Y/U/V planes (YUYV repacked
 * to planar 4:2:2, NV12's interleaved chroma split), with an optional box downscale of the
 * planes by 2, 4 or 8. No RGB detour. One cap_jpeg per thread at a time. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "cap_err.h"
#include "capture.h"
#include "mjpeg.h"

struct cap_jpeg {
    tjhandle compressor;
    tjhandle decompressor;
    uint8_t *planes[3];        /* scratch Y, U, V planes */
    size_t plane_cap[3];
    unsigned char *out;        /* tjAlloc'ed output, reused */
    size_t out_cap;
    char error[CAP_ERR_LEN];
};

cap_jpeg *cap_jpeg_new(void)
{
    return calloc(1, sizeof(cap_jpeg));
}

void cap_jpeg_free(cap_jpeg *j)
{
    if (j == NULL)
        return;
    if (j->compressor != NULL)
        tjDestroy(j->compressor);
    if (j->decompressor != NULL)
        tjDestroy(j->decompressor);
    for (int i = 0; i < 3; i++)
        free(j->planes[i]);
    tjFree(j->out);
    free(j);
}

const char *cap_jpeg_error(const cap_jpeg *j) { return j->error; }

static int fail(cap_jpeg *j, int err, const char *what)
{
    return cap_err(j->error, sizeof j->error, err, what);
}

static int fail_tj(cap_jpeg *j, tjhandle h, const char *what)
{
    cap_err(j->error, sizeof j->error, EINVAL, what);
    size_t n = strlen(j->error);
    if (n + 3 < sizeof j->error)
        snprintf(j->error + n, sizeof j->error - n, " (%s)", tjGetErrorStr2(h));
    return -EINVAL;
}

static int reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    uint8_t *p = realloc(*buf, need);
    if (p == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = need;
    return 0;
}

static int reserve_out(cap_jpeg *j, size_t need)
{
    if (j->out_cap >= need)
        return 0;
    tjFree(j->out);
    j->out = tjAlloc((int)need);
    j->out_cap = j->out ? need : 0;
    return j->out ? 0 : -ENOMEM;
}

static int reserve_planes(cap_jpeg *j, int w, int h, int subsamp)
{
    int n = subsamp == TJSAMP_GRAY ? 1 : 3;
    for (int c = 0; c < n; c++) {
        unsigned long sz = tjPlaneSizeYUV(c, w, 0, h, subsamp);
        if (sz == (unsigned long)-1 || reserve(&j->planes[c], &j->plane_cap[c], sz) < 0)
            return fail(j, ENOMEM, "plane buffers");
    }
    return 0;
}

/* Averages d x d blocks of a plane of 1-byte samples `step` bytes apart; the source block
 * is clamped at the right and bottom edges. */
static void box_plane(const uint8_t *src, int sw, int sh, size_t sstride, int step, uint8_t *dst,
                      int dw, int dh, int d)
{
    int shift = d == 2 ? 2 : d == 4 ? 4 : 6;
    for (int oy = 0; oy < dh; oy++) {
        uint8_t *drow = dst + (size_t)oy * (size_t)dw;
        for (int ox = 0; ox < dw; ox++) {
            unsigned sum = 0;
            for (int j = 0; j < d; j++) {
                int y = oy * d + j;
                if (y >= sh)
                    y = sh - 1;
                const uint8_t *srow = src + (size_t)y * sstride;
                for (int i = 0; i < d; i++) {
                    int x = ox * d + i;
                    if (x >= sw)
                        x = sw - 1;
                    sum += srow[(size_t)x * (size_t)step];
                }
            }
            drow[ox] = (uint8_t)(sum >> shift);
        }
    }
}

static int compress_planes(cap_jpeg *j, const uint8_t **planes, const int *strides, int w, int h,
                           int subsamp, int quality, const uint8_t **out, size_t *out_size)
{
    if (j->compressor == NULL && (j->compressor = tjInitCompress()) == NULL)
        return fail(j, ENOMEM, "tjInitCompress");
    unsigned long cap = tjBufSize(w, h, subsamp);
    if (cap == (unsigned long)-1 || reserve_out(j, cap) < 0)
        return fail(j, ENOMEM, "JPEG buffer");
    unsigned long size = cap;
    unsigned char *dst = j->out;
    if (tjCompressFromYUVPlanes(j->compressor, planes, w, strides, h, subsamp, &dst, &size,
                                quality, TJFLAG_NOREALLOC | TJFLAG_FASTDCT) < 0)
        return fail_tj(j, j->compressor, "tjCompressFromYUVPlanes");
    *out = j->out;
    *out_size = size;
    return 0;
}

static int encode_yuyv(cap_jpeg *j, const uint8_t *data, size_t size, int w, int h, size_t bpl,
                       int quality, int d, const uint8_t **out, size_t *out_size)
{
    if (w % 2 != 0)
        return fail(j, EINVAL, "YUYV width must be even");
    if (bpl < (size_t)w * 2 || size < bpl * (size_t)h)
        return fail(j, EINVAL, "YUYV frame is shorter than its format");
    int ow = w / d > 0 ? w / d : 1, oh = h / d > 0 ? h / d : 1;
    int rc = reserve_planes(j, ow, oh, TJSAMP_422);
    if (rc < 0)
        return rc;
    int ocw = tjPlaneWidth(1, ow, TJSAMP_422);
    uint8_t *Y = j->planes[0], *U = j->planes[1], *V = j->planes[2];
    if (d == 1) {
        int cw = w / 2;
        for (int y = 0; y < h; y++) {
            const uint8_t *s = data + (size_t)y * bpl;
            uint8_t *yr = Y + (size_t)y * (size_t)w;
            uint8_t *ur = U + (size_t)y * (size_t)cw;
            uint8_t *vr = V + (size_t)y * (size_t)cw;
            for (int x = 0; x < cw; x++, s += 4) {
                yr[2 * x] = s[0];
                ur[x] = s[1];
                yr[2 * x + 1] = s[2];
                vr[x] = s[3];
            }
        }
    } else {
        box_plane(data, w, h, bpl, 2, Y, ow, oh, d);
        box_plane(data + 1, w / 2, h, bpl, 4, U, ocw, oh, d);
        box_plane(data + 3, w / 2, h, bpl, 4, V, ocw, oh, d);
    }
    const uint8_t *planes[3] = {Y, U, V};
    int strides[3] = {ow, ocw, ocw};
    return compress_planes(j, planes, strides, ow, oh, TJSAMP_422, quality, out, out_size);
}

static int encode_nv12(cap_jpeg *j, const uint8_t *data, size_t size, int w, int h, size_t bpl,
                       int quality, int d, const uint8_t **out, size_t *out_size)
{
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    if (bpl < (size_t)w || bpl < (size_t)cw * 2 || size < bpl * (size_t)(h + ch))
        return fail(j, EINVAL, "NV12 frame is shorter than its format");
    const uint8_t *uv = data + bpl * (size_t)h;
    int ow = w / d > 0 ? w / d : 1, oh = h / d > 0 ? h / d : 1;
    int rc = reserve_planes(j, ow, oh, TJSAMP_420);
    if (rc < 0)
        return rc;
    int ocw = tjPlaneWidth(1, ow, TJSAMP_420), och = tjPlaneHeight(1, oh, TJSAMP_420);
    const uint8_t *Y = j->planes[0];
    int ystride = ow;
    if (d == 1) {
        Y = data; /* the luma plane goes to TurboJPEG as it is */
        ystride = (int)bpl;
        for (int y = 0; y < ch; y++) {
            const uint8_t *s = uv + (size_t)y * bpl;
            uint8_t *ur = j->planes[1] + (size_t)y * (size_t)cw;
            uint8_t *vr = j->planes[2] + (size_t)y * (size_t)cw;
            for (int x = 0; x < cw; x++) {
                ur[x] = s[2 * x];
                vr[x] = s[2 * x + 1];
            }
        }
    } else {
        box_plane(data, w, h, bpl, 1, j->planes[0], ow, oh, d);
        box_plane(uv, cw, ch, bpl, 2, j->planes[1], ocw, och, d);
        box_plane(uv + 1, cw, ch, bpl, 2, j->planes[2], ocw, och, d);
    }
    const uint8_t *planes[3] = {Y, j->planes[1], j->planes[2]};
    int strides[3] = {ystride, ocw, ocw};
    return compress_planes(j, planes, strides, ow, oh, TJSAMP_420, quality, out, out_size);
}

/* MJPEG: the checked, fixed-up frame as it is, or decoded at 1/d and encoded again. */
static int encode_mjpeg(cap_jpeg *j, const uint8_t *data, size_t size, int quality, int d,
                        const uint8_t **out, size_t *out_size, uint32_t *ow_out,
                        uint32_t *oh_out)
{
    if (size > (size_t)0x7fffffff - CAP_STD_DHT_SIZE)
        return fail(j, EFBIG, "MJPEG frame");
    size_t need = size + CAP_STD_DHT_SIZE;
    if (reserve_out(j, need) < 0)
        return fail(j, ENOMEM, "JPEG buffer");
    struct cap_mjpeg_info mi;
    long n = cap_mjpeg_fix(data, size, j->out, j->out_cap, &mi);
    if (n < 0)
        return fail(j, (int)n, "MJPEG frame is not a whole JPEG");
    *ow_out = mi.width;
    *oh_out = mi.height;
    if (d == 1) {
        *out = j->out;
        *out_size = (size_t)n;
        return 0;
    }
    /* Scale down: decode to planes at 1/d (TurboJPEG's IDCT scaling), encode again. The
     * fixed frame moves out of j->out first, since compress_planes() writes there. */
    unsigned char *fixed = tjAlloc((int)n);
    if (fixed == NULL)
        return fail(j, ENOMEM, "JPEG buffer");
    memcpy(fixed, j->out, (size_t)n);
    int rc = 0;
    if (j->decompressor == NULL && (j->decompressor = tjInitDecompress()) == NULL) {
        rc = fail(j, ENOMEM, "tjInitDecompress");
        goto done;
    }
    int w, h, subsamp, colorspace;
    if (tjDecompressHeader3(j->decompressor, fixed, (unsigned long)n, &w, &h, &subsamp,
                            &colorspace) < 0) {
        rc = fail_tj(j, j->decompressor, "tjDecompressHeader3");
        goto done;
    }
    if (subsamp < 0 || w > 16384 || h > 16384) {
        rc = fail(j, ENOTSUP, "unsupported MJPEG subsampling or size");
        goto done;
    }
    int sw = (w + d - 1) / d, sh = (h + d - 1) / d;
    rc = reserve_planes(j, sw, sh, subsamp);
    if (rc < 0)
        goto done;
    int n_planes = subsamp == TJSAMP_GRAY ? 1 : 3;
    int strides[3] = {0, 0, 0};
    for (int c = 0; c < n_planes; c++)
        strides[c] = tjPlaneWidth(c, sw, subsamp);
    unsigned char *dplanes[3] = {j->planes[0], j->planes[1], j->planes[2]};
    if (tjDecompressToYUVPlanes(j->decompressor, fixed, (unsigned long)n, dplanes, sw, strides,
                                sh, TJFLAG_FASTDCT) < 0) {
        rc = fail_tj(j, j->decompressor, "tjDecompressToYUVPlanes");
        goto done;
    }
    const uint8_t *cplanes[3] = {j->planes[0], j->planes[1], j->planes[2]};
    rc = compress_planes(j, cplanes, strides, sw, sh, subsamp, quality, out, out_size);
    *ow_out = (uint32_t)sw;
    *oh_out = (uint32_t)sh;
done:
    tjFree(fixed);
    return rc;
}

int cap_jpeg_encode(cap_jpeg *j, const uint8_t *data, size_t size, uint32_t fourcc,
                    uint32_t width, uint32_t height, uint32_t bytesperline, int quality,
                    int scale_denom, const uint8_t **out, size_t *out_size,
                    uint32_t *out_width, uint32_t *out_height)
{
    j->error[0] = '\0';
    if (data == NULL || size == 0)
        return fail(j, EINVAL, "empty frame");
    if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8)
        return fail(j, EINVAL, "scale must be 1, 2, 4 or 8");
    if (quality < 1)
        quality = 1;
    if (quality > 100)
        quality = 100;
    if (fourcc == V4L2_PIX_FMT_MJPEG || fourcc == V4L2_PIX_FMT_JPEG)
        return encode_mjpeg(j, data, size, quality, scale_denom, out, out_size, out_width,
                            out_height);
    if (width == 0 || height == 0 || width > 16384 || height > 16384)
        return fail(j, EINVAL, "frame size");
    int w = (int)width, h = (int)height, d = scale_denom;
    *out_width = (uint32_t)(w / d > 0 ? w / d : 1);
    *out_height = (uint32_t)(h / d > 0 ? h / d : 1);
    if (fourcc == V4L2_PIX_FMT_YUYV)
        return encode_yuyv(j, data, size, w, h, bytesperline, quality, d, out, out_size);
    if (fourcc == V4L2_PIX_FMT_NV12)
        return encode_nv12(j, data, size, w, h, bytesperline, quality, d, out, out_size);
    return fail(j, ENOTSUP, "pixel format has no JPEG encoder");
}
