/* enum.c: what a V4L2 node is (QUERYCAP) and every format, frame size and frame interval
 * it offers, flattened into rows. Opens the node only for the duration of the call. */
#define _GNU_SOURCE
#include "enum.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <string.h>

#include "cap_err.h"
#include "cap_sys.h"

enum { ENUM_MAX_INDEX = 256 };

static void copy_str(char *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
    size_t n = strnlen((const char *)src, src_len);
    if (n >= dst_len)
        n = dst_len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int cap_querycap(int fd, struct cap_devinfo *info)
{
    struct v4l2_capability cap;
    memset(&cap, 0, sizeof cap);
    int rc = cap_xioctl(fd, VIDIOC_QUERYCAP, &cap);
    if (rc < 0)
        return rc;
    memset(info, 0, sizeof *info);
    copy_str(info->driver, sizeof info->driver, cap.driver, sizeof cap.driver);
    copy_str(info->card, sizeof info->card, cap.card, sizeof cap.card);
    copy_str(info->bus_info, sizeof info->bus_info, cap.bus_info, sizeof cap.bus_info);
    info->version = cap.version;
    info->capabilities = cap.capabilities;
    uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps
                                                                : cap.capabilities;
    info->device_caps = caps;
    int single = (caps & V4L2_CAP_VIDEO_CAPTURE) != 0;
    int multi = (caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE) != 0;
    int m2m = (caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE)) != 0;
    int streaming = (caps & V4L2_CAP_STREAMING) != 0;
    info->is_capture = (single || multi) && streaming && !m2m;
    info->multiplanar = !single && multi;
    return 0;
}

struct rows {
    struct cap_mode *modes;
    size_t max;
    size_t count;
};

static void add_row(struct rows *rows, const struct cap_mode *mode)
{
    if (rows->count < rows->max)
        rows->modes[rows->count] = *mode;
    rows->count++;
}

/* Adds one row per frame interval of (fourcc, width, height); one row without interval
 * when the driver lists none. */
static int enum_intervals(int fd, struct rows *rows, struct cap_mode *mode)
{
    int found = 0;
    for (uint32_t i = 0; i < ENUM_MAX_INDEX; i++) {
        struct v4l2_frmivalenum iv;
        memset(&iv, 0, sizeof iv);
        iv.index = i;
        iv.pixel_format = mode->fourcc;
        iv.width = mode->width;
        iv.height = mode->height;
        int rc = cap_xioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &iv);
        if (rc < 0) {
            if (cap_is_gone(rc))
                return rc;
            break;
        }
        mode->ival_type = iv.type;
        if (iv.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
            mode->num = iv.discrete.numerator;
            mode->den = iv.discrete.denominator;
            mode->max_num = mode->max_den = mode->step_num = mode->step_den = 0;
            add_row(rows, mode);
            found = 1;
            continue;
        }
        mode->num = iv.stepwise.min.numerator;
        mode->den = iv.stepwise.min.denominator;
        mode->max_num = iv.stepwise.max.numerator;
        mode->max_den = iv.stepwise.max.denominator;
        mode->step_num = iv.stepwise.step.numerator;
        mode->step_den = iv.stepwise.step.denominator;
        add_row(rows, mode);
        found = 1;
        break;
    }
    if (!found) {
        mode->ival_type = CAP_RANGE_NONE;
        mode->num = mode->den = mode->max_num = mode->max_den = 0;
        mode->step_num = mode->step_den = 0;
        add_row(rows, mode);
    }
    return 0;
}

static int enum_sizes(int fd, struct rows *rows, struct cap_mode *mode)
{
    int found = 0;
    for (uint32_t i = 0; i < ENUM_MAX_INDEX; i++) {
        struct v4l2_frmsizeenum fs;
        memset(&fs, 0, sizeof fs);
        fs.index = i;
        fs.pixel_format = mode->fourcc;
        int rc = cap_xioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs);
        if (rc < 0) {
            if (cap_is_gone(rc))
                return rc;
            break;
        }
        found = 1;
        mode->size_type = fs.type;
        if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
            mode->width = fs.discrete.width;
            mode->height = fs.discrete.height;
            mode->max_width = mode->max_height = mode->step_width = mode->step_height = 0;
        } else {
            mode->width = fs.stepwise.min_width;
            mode->height = fs.stepwise.min_height;
            mode->max_width = fs.stepwise.max_width;
            mode->max_height = fs.stepwise.max_height;
            mode->step_width = fs.stepwise.step_width;
            mode->step_height = fs.stepwise.step_height;
        }
        rc = enum_intervals(fd, rows, mode);
        if (rc < 0)
            return rc;
        if (fs.type != V4L2_FRMSIZE_TYPE_DISCRETE)
            break;
    }
    if (!found) {
        memset(&mode->size_type, 0,
               sizeof *mode - offsetof(struct cap_mode, size_type));
        add_row(rows, mode);
    }
    return 0;
}

int cap_enum_device(const char *path, struct cap_devinfo *info, struct cap_mode *modes,
                    size_t max_modes, char *err, size_t err_len)
{
    int fd = cap_xopen(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return cap_err(err, err_len, fd, "open");
    int rc = cap_querycap(fd, info);
    if (rc < 0) {
        rc = cap_err(err, err_len, rc, "VIDIOC_QUERYCAP");
        goto out;
    }
    struct rows rows = {.modes = modes, .max = max_modes, .count = 0};
    if (!info->is_capture)
        goto out;
    uint32_t type = info->multiplanar ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE
                                      : V4L2_BUF_TYPE_VIDEO_CAPTURE;
    for (uint32_t i = 0; i < ENUM_MAX_INDEX; i++) {
        struct v4l2_fmtdesc fd_desc;
        memset(&fd_desc, 0, sizeof fd_desc);
        fd_desc.index = i;
        fd_desc.type = type;
        int erc = cap_xioctl(fd, VIDIOC_ENUM_FMT, &fd_desc);
        if (erc < 0) {
            if (cap_is_gone(erc)) {
                rc = cap_err(err, err_len, erc, "VIDIOC_ENUM_FMT");
                goto out;
            }
            break;
        }
        struct cap_mode mode;
        memset(&mode, 0, sizeof mode);
        mode.fourcc = fd_desc.pixelformat;
        mode.fmt_flags = fd_desc.flags;
        copy_str(mode.description, sizeof mode.description, fd_desc.description,
                 sizeof fd_desc.description);
        erc = enum_sizes(fd, &rows, &mode);
        if (erc < 0) {
            rc = cap_err(err, err_len, erc, "VIDIOC_ENUM_FRAMESIZES");
            goto out;
        }
    }
    rc = rows.count > (size_t)0x7fffffff ? 0x7fffffff : (int)rows.count;
out:
    cap_sys.close(fd);
    return rc;
}
