/*
 * What the emulated camera is: capabilities, formats, frame sizes and intervals,
 * format and rate negotiation, inputs. Answers follow uvcvideo (nearest discrete size,
 * unknown fourcc falls back to the default format, privileges taken by S_FMT/S_PARM/
 * S_INPUT); format and rate live in the control page because a USB camera has one
 * current format shared by every file handle and process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "emu.h"

static const struct {
	uint32_t fourcc;
	const char *desc;
	uint32_t flags;
} FORMATS[] = {
	{V4L2_PIX_FMT_MJPEG, "Motion-JPEG", V4L2_FMT_FLAG_COMPRESSED},
	{V4L2_PIX_FMT_YUYV, "YUYV 4:2:2", 0},
	{V4L2_PIX_FMT_NV12, "Y/CbCr 4:2:0", 0},
};
#define NFORMATS (sizeof FORMATS / sizeof FORMATS[0])

static const uint32_t SIZES[][2] = {{640, 480}, {1280, 720}, {1920, 1080}};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

/* Descriptor order of a UVC camera: shortest interval first. */
static const uint32_t RATES[] = {60, 30, 15};
#define NRATES (sizeof RATES / sizeof RATES[0])

#define META_BUFSIZE 10240u /* UVC_METADATA_BUF_SIZE */

static bool known_fourcc(uint32_t f)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (FORMATS[i].fourcc == f)
			return true;
	return false;
}

static bool known_size(uint32_t w, uint32_t h)
{
	for (size_t i = 0; i < NSIZES; i++)
		if (SIZES[i][0] == w && SIZES[i][1] == h)
			return true;
	return false;
}

static bool known_rate(uint32_t fps)
{
	for (size_t i = 0; i < NRATES; i++)
		if (RATES[i] == fps)
			return true;
	return false;
}

void emu_cur_format(const struct emu_dev *dev, uint32_t *fourcc, uint32_t *w, uint32_t *h,
		    uint32_t *fps)
{
	const struct emu_ctl *c = dev->ctl;
	*fourcc = known_fourcc(c->fourcc) ? c->fourcc : FORMATS[0].fourcc;
	if (known_size(c->width, c->height)) {
		*w = c->width;
		*h = c->height;
	} else {
		*w = SIZES[0][0];
		*h = SIZES[0][1];
	}
	*fps = known_rate(c->fps) ? c->fps : 30;
}

uint32_t emu_bytesperline(uint32_t fourcc, uint32_t w)
{
	switch (fourcc) {
	case V4L2_PIX_FMT_YUYV:
		return w * 2;
	case V4L2_PIX_FMT_NV12:
		return w;
	default:
		return 0; /* compressed */
	}
}

uint32_t emu_sizeimage(uint32_t fourcc, uint32_t w, uint32_t h)
{
	switch (fourcc) {
	case V4L2_PIX_FMT_YUYV:
		return w * h * 2;
	case V4L2_PIX_FMT_NV12:
		return w * h * 3 / 2;
	default:
		return w * h * 2; /* dwMaxVideoFrameBufferSize of a typical UVC camera */
	}
}

static bool is_meta(const struct emu_dev *dev)
{
	return dev->ctl->kind == EMU_KIND_METADATA;
}

static uint32_t kernel_version(void)
{
	struct utsname u;
	unsigned a = 0, b = 0, c = 0;
	if (uname(&u) == 0)
		sscanf(u.release, "%u.%u.%u", &a, &b, &c);
	return (a << 16) | (b << 8) | (c > 255 ? 255 : c);
}

static int querycap(struct emu_dev *dev, struct v4l2_capability *cap)
{
	memset(cap, 0, sizeof *cap);
	snprintf((char *)cap->driver, sizeof cap->driver, "uvcvideo");
	snprintf((char *)cap->card, sizeof cap->card, "%.31s", dev->ctl->card);
	snprintf((char *)cap->bus_info, sizeof cap->bus_info, "usb-0000:00:14.0-%d",
		 dev->index + 1);
	cap->version = kernel_version();
	cap->device_caps = (is_meta(dev) ? V4L2_CAP_META_CAPTURE : V4L2_CAP_VIDEO_CAPTURE) |
			   V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT;
	/* The physical device: a UVC function has a video and a metadata node. */
	cap->capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING |
			    V4L2_CAP_EXT_PIX_FORMAT | V4L2_CAP_DEVICE_CAPS;
	return 0;
}

static int enum_fmt(struct emu_dev *dev, struct v4l2_fmtdesc *f)
{
	uint32_t index = f->index, type = f->type;
	if (is_meta(dev)) {
		if (type != V4L2_BUF_TYPE_META_CAPTURE || index != 0)
			return EMU_ERR(EINVAL);
		memset(f, 0, sizeof *f);
		f->type = type;
		f->pixelformat = V4L2_META_FMT_UVC;
		snprintf((char *)f->description, sizeof f->description,
			 "UVC Payload Header Metadata");
		return 0;
	}
	if (type != V4L2_BUF_TYPE_VIDEO_CAPTURE || index >= NFORMATS)
		return EMU_ERR(EINVAL);
	memset(f, 0, sizeof *f);
	f->index = index;
	f->type = type;
	f->flags = FORMATS[index].flags;
	f->pixelformat = FORMATS[index].fourcc;
	snprintf((char *)f->description, sizeof f->description, "%s", FORMATS[index].desc);
	return 0;
}

static int enum_framesizes(struct emu_dev *dev, struct v4l2_frmsizeenum *fs)
{
	if (is_meta(dev) || !known_fourcc(fs->pixel_format) || fs->index >= NSIZES)
		return EMU_ERR(EINVAL);
	uint32_t index = fs->index, pf = fs->pixel_format;
	memset(fs, 0, sizeof *fs);
	fs->index = index;
	fs->pixel_format = pf;
	fs->type = V4L2_FRMSIZE_TYPE_DISCRETE;
	fs->discrete.width = SIZES[index][0];
	fs->discrete.height = SIZES[index][1];
	return 0;
}

static int enum_frameintervals(struct emu_dev *dev, struct v4l2_frmivalenum *fi)
{
	if (is_meta(dev) || !known_fourcc(fi->pixel_format) ||
	    !known_size(fi->width, fi->height) || fi->index >= NRATES)
		return EMU_ERR(EINVAL);
	uint32_t index = fi->index;
	fi->type = V4L2_FRMIVAL_TYPE_DISCRETE;
	fi->discrete.numerator = 1;
	fi->discrete.denominator = RATES[index];
	memset(fi->reserved, 0, sizeof fi->reserved);
	return 0;
}

static void fill_pix(struct v4l2_pix_format *pix, uint32_t fourcc, uint32_t w, uint32_t h)
{
	memset(pix, 0, sizeof *pix);
	pix->width = w;
	pix->height = h;
	pix->pixelformat = fourcc;
	pix->field = V4L2_FIELD_NONE;
	pix->bytesperline = emu_bytesperline(fourcc, w);
	pix->sizeimage = emu_sizeimage(fourcc, w, h);
	pix->colorspace = V4L2_COLORSPACE_SRGB;
	pix->priv = V4L2_PIX_FMT_PRIV_MAGIC; /* set by the V4L2 core for EXT_PIX_FORMAT */
	pix->xfer_func = V4L2_XFER_FUNC_SRGB;
	pix->ycbcr_enc = V4L2_YCBCR_ENC_601;
	pix->quantization = V4L2_QUANTIZATION_DEFAULT;
}

static int meta_fmt(struct emu_dev *dev, struct v4l2_format *f)
{
	(void)dev;
	if (f->type != V4L2_BUF_TYPE_META_CAPTURE)
		return EMU_ERR(EINVAL);
	memset(&f->fmt, 0, sizeof f->fmt);
	f->fmt.meta.dataformat = V4L2_META_FMT_UVC;
	f->fmt.meta.buffersize = META_BUFSIZE;
	return 0;
}

static int g_fmt(struct emu_dev *dev, struct v4l2_format *f)
{
	if (is_meta(dev))
		return meta_fmt(dev, f);
	if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
		return EMU_ERR(EINVAL);
	uint32_t fourcc, w, h, fps;
	emu_cur_format(dev, &fourcc, &w, &h, &fps);
	fill_pix(&f->fmt.pix, fourcc, w, h);
	return 0;
}

/* uvc_v4l2_try_format: the frame size closest to the request (by area overlap). */
static int try_fmt(struct emu_dev *dev, struct v4l2_format *f)
{
	if (is_meta(dev))
		return meta_fmt(dev, f);
	if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
		return EMU_ERR(EINVAL);
	uint32_t fourcc = f->fmt.pix.pixelformat;
	if (!known_fourcc(fourcc))
		fourcc = FORMATS[0].fourcc;
	uint64_t rw = f->fmt.pix.width, rh = f->fmt.pix.height, best = UINT64_MAX;
	size_t pick = 0;
	for (size_t i = 0; i < NSIZES; i++) {
		uint64_t w = SIZES[i][0], h = SIZES[i][1];
		uint64_t overlap = (w < rw ? w : rw) * (h < rh ? h : rh);
		uint64_t d = w * h + rw * rh - 2 * overlap;
		if (d < best) {
			best = d;
			pick = i;
		}
	}
	fill_pix(&f->fmt.pix, fourcc, SIZES[pick][0], SIZES[pick][1]);
	return 0;
}

static int s_fmt(struct emu_dev *dev, struct v4l2_format *f)
{
	if (f->type != (is_meta(dev) ? V4L2_BUF_TYPE_META_CAPTURE : V4L2_BUF_TYPE_VIDEO_CAPTURE))
		return EMU_ERR(EINVAL);
	if (emu_acquire(dev) < 0)
		return -1;
	if (dev->nbufs > 0 || dev->streaming)
		return EMU_ERR(EBUSY); /* uvc: buffers allocated */
	if (try_fmt(dev, f) < 0)
		return -1;
	if (!is_meta(dev)) {
		dev->ctl->fourcc = f->fmt.pix.pixelformat;
		dev->ctl->width = f->fmt.pix.width;
		dev->ctl->height = f->fmt.pix.height;
	}
	return 0;
}

static void fill_parm(struct emu_dev *dev, struct v4l2_streamparm *p)
{
	uint32_t fourcc, w, h, fps;
	emu_cur_format(dev, &fourcc, &w, &h, &fps);
	memset(&p->parm, 0, sizeof p->parm);
	p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
	p->parm.capture.timeperframe.numerator = 1;
	p->parm.capture.timeperframe.denominator = fps;
}

static int g_parm(struct emu_dev *dev, struct v4l2_streamparm *p)
{
	if (is_meta(dev))
		return EMU_ERR(ENOTTY);
	if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
		return EMU_ERR(EINVAL);
	fill_parm(dev, p);
	return 0;
}

static int s_parm(struct emu_dev *dev, struct v4l2_streamparm *p)
{
	if (is_meta(dev))
		return EMU_ERR(ENOTTY);
	if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
		return EMU_ERR(EINVAL);
	if (emu_acquire(dev) < 0)
		return -1;
	if (dev->streaming)
		return EMU_ERR(EBUSY);
	uint32_t num = p->parm.capture.timeperframe.numerator;
	uint32_t den = p->parm.capture.timeperframe.denominator;
	uint32_t pick = 30;
	if (num && den) {
		double want = (double)num / den, best = 1e9;
		for (size_t i = 0; i < NRATES; i++) {
			double d = want - 1.0 / RATES[i];
			if (d < 0)
				d = -d;
			if (d < best) {
				best = d;
				pick = RATES[i];
			}
		}
	}
	dev->ctl->fps = pick;
	fill_parm(dev, p);
	return 0;
}

static int enum_input(struct emu_dev *dev, struct v4l2_input *in)
{
	if (is_meta(dev))
		return EMU_ERR(ENOTTY);
	if (in->index != 0)
		return EMU_ERR(EINVAL);
	memset(in, 0, sizeof *in);
	snprintf((char *)in->name, sizeof in->name, "Camera 1");
	in->type = V4L2_INPUT_TYPE_CAMERA;
	return 0;
}

int emu_fmt_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	switch (req) {
	case VIDIOC_QUERYCAP:
		return querycap(dev, arg);
	case VIDIOC_ENUM_FMT:
		return enum_fmt(dev, arg);
	case VIDIOC_ENUM_FRAMESIZES:
		return enum_framesizes(dev, arg);
	case VIDIOC_ENUM_FRAMEINTERVALS:
		return enum_frameintervals(dev, arg);
	case VIDIOC_G_FMT:
		return g_fmt(dev, arg);
	case VIDIOC_TRY_FMT:
		return try_fmt(dev, arg);
	case VIDIOC_S_FMT:
		return s_fmt(dev, arg);
	case VIDIOC_G_PARM:
		return g_parm(dev, arg);
	case VIDIOC_S_PARM:
		return s_parm(dev, arg);
	case VIDIOC_ENUMINPUT:
		return enum_input(dev, arg);
	case VIDIOC_G_INPUT:
		if (is_meta(dev))
			return EMU_ERR(ENOTTY);
		*(int *)arg = 0;
		return 0;
	case VIDIOC_S_INPUT:
		if (is_meta(dev))
			return EMU_ERR(ENOTTY);
		if (emu_acquire(dev) < 0)
			return -1;
		return *(int *)arg == 0 ? 0 : EMU_ERR(EINVAL);
	default:
		return EMU_ERR(ENOTTY);
	}
}
