/*
 * The test pattern: three rows of 16 black/white cells at the top carry the frame
 * sequence number (high 16 bits, low 16 bits, and a check word), big enough to survive
 * JPEG at quality 50 and a 4x downscale; below them colour bars scroll 8 px a frame so
 * consecutive frames differ everywhere. Rendered straight into YUV; MJPEG frames are
 * compressed from the YUV 4:2:2 planes with TurboJPEG using the standard Huffman
 * tables, so dropping the DHT segment yields exactly what DHT-less UVC cameras send.
 * Runs only on the producer thread, which owns the scratch state below.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "emu.h"

#define CELLS 16u
#define BAND_ROWS 3u
#define BAND_DIV 12u /* each band row is height/12 tall */
#define CHECK_XOR 0xA5A5u
#define JPEG_QUALITY 85

struct yuv {
	uint8_t y, u, v;
};

/* 75% colour bars, BT.601 limited range. */
static const struct yuv BARS[8] = {
	{180, 128, 128}, {162, 44, 142}, {131, 156, 44}, {112, 72, 58},
	{84, 184, 198},  {65, 100, 212}, {35, 212, 114}, {16, 128, 128},
};

static uint16_t band_word(uint32_t seq, uint32_t row)
{
	uint16_t hi = (uint16_t)(seq >> 16), lo = (uint16_t)(seq & 0xffff);
	return row == 0 ? hi : row == 1 ? lo : (uint16_t)(hi ^ lo ^ CHECK_XOR);
}

/* Fills one row of luma and (horizontally halved) chroma for line y. */
static void pattern_row(uint32_t w, uint32_t h, uint32_t y, uint32_t seq, uint8_t *ly,
			uint8_t *lu, uint8_t *lv)
{
	uint32_t band_h = h / BAND_DIV;
	if (y < band_h * BAND_ROWS) {
		uint16_t word = band_word(seq, y / band_h);
		for (uint32_t x = 0; x < w; x++) {
			uint32_t cell = x * CELLS / w;
			ly[x] = ((word >> (CELLS - 1 - cell)) & 1) ? 235 : 16;
		}
		memset(lu, 128, w / 2);
		memset(lv, 128, w / 2);
		return;
	}
	uint32_t shift = (seq * 8u) % w;
	for (uint32_t x = 0; x < w; x += 2) {
		const struct yuv *c = &BARS[((x + shift) % w) * 8u / w];
		ly[x] = ly[x + 1] = c->y;
		lu[x / 2] = c->u;
		lv[x / 2] = c->v;
	}
}

struct scratch {
	uint32_t w;
	uint8_t *y, *u, *v; /* one line each; all band/bar lines repeat */
	uint8_t *planes;     /* full 4:2:2 planes for MJPEG */
	size_t planes_size;
	tjhandle tj;
	unsigned char *jpeg;
	unsigned long jpeg_cap;
};
static struct scratch S;

static bool scratch_line(uint32_t w)
{
	if (S.w >= w)
		return true;
	free(S.y);
	S.y = malloc((size_t)w * 2);
	S.u = S.y ? S.y + w : NULL;
	S.v = S.y ? S.y + w + w / 2 : NULL;
	S.w = S.y ? w : 0;
	return S.y != NULL;
}

/* Lines repeat within each band row and across the bars: render each distinct once. */
static uint32_t line_key(uint32_t h, uint32_t y)
{
	uint32_t band_h = h / BAND_DIV;
	return y < band_h * BAND_ROWS ? y / band_h : BAND_ROWS;
}

static size_t render_yuyv(uint32_t w, uint32_t h, uint32_t seq, uint8_t *dst)
{
	uint32_t key = UINT32_MAX;
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = dst + (size_t)y * w * 2;
		if (line_key(h, y) == key) {
			memcpy(row, row - (size_t)w * 2, (size_t)w * 2);
			continue;
		}
		key = line_key(h, y);
		pattern_row(w, h, y, seq, S.y, S.u, S.v);
		for (uint32_t x = 0; x < w; x += 2) {
			row[2 * x + 0] = S.y[x];
			row[2 * x + 1] = S.u[x / 2];
			row[2 * x + 2] = S.y[x + 1];
			row[2 * x + 3] = S.v[x / 2];
		}
	}
	return (size_t)w * h * 2;
}

static size_t render_nv12(uint32_t w, uint32_t h, uint32_t seq, uint8_t *dst)
{
	uint8_t *uv = dst + (size_t)w * h;
	uint32_t key = UINT32_MAX;
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = dst + (size_t)y * w;
		if (line_key(h, y) == key) {
			memcpy(row, row - w, w);
		} else {
			key = line_key(h, y);
			pattern_row(w, h, y, seq, S.y, S.u, S.v);
			memcpy(row, S.y, w);
		}
		if (y % 2 == 0) {
			/* Chroma of line y; the band is grey, so line y's chroma fits both. */
			uint8_t *line = uv + (size_t)(y / 2) * w;
			if (y > 0 && line_key(h, y) == line_key(h, y - 2)) {
				memcpy(line, line - w, w);
				continue;
			}
			for (uint32_t x = 0; x < w / 2; x++) {
				line[2 * x] = S.u[x];
				line[2 * x + 1] = S.v[x];
			}
		}
	}
	return (size_t)w * h * 3 / 2;
}

/* Copies a JPEG without its DHT segments (walks the segments up to SOS). */
static size_t strip_dht(const uint8_t *src, size_t n, uint8_t *dst)
{
	size_t i = 2, o = 2;
	memcpy(dst, src, 2); /* SOI */
	while (i + 4 <= n && src[i] == 0xFF) {
		uint8_t marker = src[i + 1];
		size_t len = 2 + ((size_t)src[i + 2] << 8 | src[i + 3]);
		if (marker == 0xDA) /* SOS: the rest is scan data and EOI */
			break;
		if (i + len > n)
			break;
		if (marker != 0xC4) {
			memcpy(dst + o, src + i, len);
			o += len;
		}
		i += len;
	}
	memcpy(dst + o, src + i, n - i);
	return o + (n - i);
}

static size_t render_mjpeg(uint32_t w, uint32_t h, uint32_t seq, uint32_t fault, uint8_t *dst,
			   size_t cap)
{
	size_t need = (size_t)w * h * 2;
	if (S.planes_size < need) {
		free(S.planes);
		S.planes = malloc(need);
		S.planes_size = S.planes ? need : 0;
		if (!S.planes)
			return 0;
	}
	if (!S.tj && !(S.tj = tjInitCompress()))
		return 0;
	unsigned long bound = tjBufSize((int)w, (int)h, TJSAMP_422);
	if (S.jpeg_cap < bound) {
		tjFree(S.jpeg);
		S.jpeg = tjAlloc((int)bound);
		S.jpeg_cap = S.jpeg ? bound : 0;
		if (!S.jpeg)
			return 0;
	}
	uint8_t *py = S.planes, *pu = py + (size_t)w * h, *pv = pu + (size_t)w * h / 2;
	uint32_t key = UINT32_MAX;
	for (uint32_t y = 0; y < h; y++) {
		if (line_key(h, y) != key) {
			key = line_key(h, y);
			pattern_row(w, h, y, seq, S.y, S.u, S.v);
		}
		memcpy(py + (size_t)y * w, S.y, w);
		memcpy(pu + (size_t)y * (w / 2), S.u, w / 2);
		memcpy(pv + (size_t)y * (w / 2), S.v, w / 2);
	}
	const unsigned char *planes[3] = {py, pu, pv};
	int strides[3] = {(int)w, (int)w / 2, (int)w / 2};
	unsigned char *out = S.jpeg;
	unsigned long size = S.jpeg_cap;
	if (tjCompressFromYUVPlanes(S.tj, planes, (int)w, strides, (int)h, TJSAMP_422, &out, &size,
				    JPEG_QUALITY, TJFLAG_NOREALLOC) < 0)
		return 0;
	if (size > cap)
		return 0;
	if (fault == EMU_FAULT_NO_DHT)
		return strip_dht(out, size, dst);
	memcpy(dst, out, size);
	return size;
}

size_t emu_render(uint32_t fourcc, uint32_t w, uint32_t h, uint32_t seq, uint32_t fault,
		  uint8_t *dst, size_t cap)
{
	if (!scratch_line(w))
		return 0;
	size_t n;
	switch (fourcc) {
	case V4L2_PIX_FMT_YUYV:
		n = cap >= (size_t)w * h * 2 ? render_yuyv(w, h, seq, dst) : 0;
		break;
	case V4L2_PIX_FMT_NV12:
		n = cap >= (size_t)w * h * 3 / 2 ? render_nv12(w, h, seq, dst) : 0;
		break;
	default:
		n = render_mjpeg(w, h, seq, fault, dst, cap);
		break;
	}
	if (n == 0)
		return 0;
	if (fault == EMU_FAULT_TRUNCATED)
		return n / 2; /* a short transfer: half the frame, no EOI for MJPEG */
	if (fault == EMU_FAULT_CORRUPT) {
		/* Garbage in the middle of the payload, as a damaged isochronous packet. */
		for (size_t i = n / 2; i < n / 2 + 64 && i + 2 < n; i++)
			dst[i] ^= 0x5A;
	}
	return n;
}
