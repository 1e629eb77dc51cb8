/*
 * The controls of a typical UVC webcam. Values live in the control page: a camera
 * has one brightness, whichever handle or process sets it. Integer writes clamp to
 * the range and booleans to 0/1 as uvcvideo does; a bad menu index is ERANGE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "emu.h"

struct ctrl_def {
	uint32_t id;
	const char *name;
	uint32_t type;
	int32_t min, max, step, def;
	const char *const *menu;
	uint32_t menu_skip; /* bit i: menu index i not offered */
};

static const char *const POWER_LINE[] = {"Disabled", "50 Hz", "60 Hz"};
static const char *const EXPOSURE_AUTO[] = {"Auto Mode", "Manual Mode", "Shutter Priority Mode",
					    "Aperture Priority Mode"};

/* Sorted by id: NEXT_CTRL enumeration walks the table in order. */
static const struct ctrl_def CTRLS[] = {
	{V4L2_CID_USER_CLASS, "User Controls", V4L2_CTRL_TYPE_CTRL_CLASS, 0, 0, 0, 0, NULL, 0},
	{V4L2_CID_BRIGHTNESS, "Brightness", V4L2_CTRL_TYPE_INTEGER, -64, 64, 1, 0, NULL, 0},
	{V4L2_CID_CONTRAST, "Contrast", V4L2_CTRL_TYPE_INTEGER, 0, 64, 1, 32, NULL, 0},
	{V4L2_CID_SATURATION, "Saturation", V4L2_CTRL_TYPE_INTEGER, 0, 128, 1, 64, NULL, 0},
	{V4L2_CID_HUE, "Hue", V4L2_CTRL_TYPE_INTEGER, -40, 40, 1, 0, NULL, 0},
	{V4L2_CID_AUTO_WHITE_BALANCE, "White Balance, Automatic", V4L2_CTRL_TYPE_BOOLEAN, 0, 1, 1,
	 1, NULL, 0},
	{V4L2_CID_GAMMA, "Gamma", V4L2_CTRL_TYPE_INTEGER, 72, 500, 1, 100, NULL, 0},
	{V4L2_CID_POWER_LINE_FREQUENCY, "Power Line Frequency", V4L2_CTRL_TYPE_MENU, 0, 2, 1, 1,
	 POWER_LINE, 0},
	{V4L2_CID_WHITE_BALANCE_TEMPERATURE, "White Balance Temperature", V4L2_CTRL_TYPE_INTEGER,
	 2800, 6500, 1, 4600, NULL, 0},
	{V4L2_CID_SHARPNESS, "Sharpness", V4L2_CTRL_TYPE_INTEGER, 0, 6, 1, 3, NULL, 0},
	{V4L2_CID_BACKLIGHT_COMPENSATION, "Backlight Compensation", V4L2_CTRL_TYPE_INTEGER, 0, 2, 1,
	 1, NULL, 0},
	{V4L2_CID_CAMERA_CLASS, "Camera Controls", V4L2_CTRL_TYPE_CTRL_CLASS, 0, 0, 0, 0, NULL, 0},
	{V4L2_CID_EXPOSURE_AUTO, "Auto Exposure", V4L2_CTRL_TYPE_MENU, 0, 3, 1, 3, EXPOSURE_AUTO,
	 (1u << 0) | (1u << 2)},
	{V4L2_CID_EXPOSURE_ABSOLUTE, "Exposure Time, Absolute", V4L2_CTRL_TYPE_INTEGER, 3, 2047, 1,
	 250, NULL, 0},
	{V4L2_CID_EXPOSURE_AUTO_PRIORITY, "Exposure, Dynamic Framerate", V4L2_CTRL_TYPE_BOOLEAN, 0,
	 1, 1, 0, NULL, 0},
};
#define NCTRLS (sizeof CTRLS / sizeof CTRLS[0])
_Static_assert(NCTRLS <= EMU_MAX_CTRLS, "control page too small");

#define NEXT_FLAGS (V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND)

static int find(uint32_t id)
{
	for (size_t i = 0; i < NCTRLS; i++)
		if (CTRLS[i].id == id)
			return (int)i;
	return -1;
}

/* QUERY*CTRL id: exact, or with NEXT_CTRL the first control after it. */
static int find_query(uint32_t id)
{
	if (!(id & NEXT_FLAGS))
		return find(id);
	if (!(id & V4L2_CTRL_FLAG_NEXT_CTRL))
		return -1; /* only compound controls asked for: we have none */
	uint32_t after = id & ~NEXT_FLAGS;
	for (size_t i = 0; i < NCTRLS; i++)
		if (CTRLS[i].id > after)
			return (int)i;
	return -1;
}

static int32_t get_value(const struct emu_dev *dev, int i)
{
	if (dev->ctl->ctrl_set & (1u << i))
		return dev->ctl->ctrl_val[i];
	return CTRLS[i].def;
}

static uint32_t flags_of(const struct emu_dev *dev, int i)
{
	const struct ctrl_def *c = &CTRLS[i];
	if (c->type == V4L2_CTRL_TYPE_CTRL_CLASS)
		return V4L2_CTRL_FLAG_READ_ONLY | V4L2_CTRL_FLAG_WRITE_ONLY;
	if (c->id == V4L2_CID_WHITE_BALANCE_TEMPERATURE &&
	    get_value(dev, find(V4L2_CID_AUTO_WHITE_BALANCE)) != 0)
		return V4L2_CTRL_FLAG_INACTIVE;
	if (c->id == V4L2_CID_EXPOSURE_ABSOLUTE &&
	    get_value(dev, find(V4L2_CID_EXPOSURE_AUTO)) != V4L2_EXPOSURE_MANUAL)
		return V4L2_CTRL_FLAG_INACTIVE;
	return 0;
}

/* The value a write would store, or -1 with errno (ERANGE/EINVAL/EACCES). */
static int check_value(int i, int32_t in, int32_t *out)
{
	const struct ctrl_def *c = &CTRLS[i];
	switch (c->type) {
	case V4L2_CTRL_TYPE_CTRL_CLASS:
		return EMU_ERR(EACCES);
	case V4L2_CTRL_TYPE_MENU:
		if (in < c->min || in > c->max)
			return EMU_ERR(ERANGE);
		if (c->menu_skip & (1u << in))
			return EMU_ERR(EINVAL);
		*out = in;
		return 0;
	case V4L2_CTRL_TYPE_BOOLEAN:
		*out = in ? 1 : 0;
		return 0;
	default: {
		int64_t v = in;
		if (v < c->min)
			v = c->min;
		if (v > c->max)
			v = c->max;
		v = c->min + (v - c->min + c->step / 2) / c->step * c->step;
		*out = (int32_t)v;
		return 0;
	}
	}
}

/* Stores a value and sends control events (VALUE, and FLAGS to what it (in)activates). */
static void set_value(struct emu_dev *dev, int i, int32_t v)
{
	bool changed = get_value(dev, i) != v;
	dev->ctl->ctrl_val[i] = v;
	dev->ctl->ctrl_set |= 1u << i;
	if (!changed)
		return;
	emu_ctrl_changed(dev, (uint32_t)i, V4L2_EVENT_CTRL_CH_VALUE);
	if (CTRLS[i].id == V4L2_CID_AUTO_WHITE_BALANCE)
		emu_ctrl_changed(dev, (uint32_t)find(V4L2_CID_WHITE_BALANCE_TEMPERATURE),
				 V4L2_EVENT_CTRL_CH_FLAGS);
	if (CTRLS[i].id == V4L2_CID_EXPOSURE_AUTO)
		emu_ctrl_changed(dev, (uint32_t)find(V4L2_CID_EXPOSURE_ABSOLUTE),
				 V4L2_EVENT_CTRL_CH_FLAGS);
}

int emu_ctrl_describe(const struct emu_dev *dev, uint32_t id, struct v4l2_event_ctrl *ev,
		      uint32_t *index)
{
	int i = find(id);
	if (i < 0)
		return EMU_ERR(EINVAL);
	const struct ctrl_def *c = &CTRLS[i];
	memset(ev, 0, sizeof *ev);
	ev->type = c->type;
	ev->value = c->type == V4L2_CTRL_TYPE_CTRL_CLASS ? 0 : get_value(dev, i);
	ev->flags = flags_of(dev, i);
	ev->minimum = c->min;
	ev->maximum = c->max;
	ev->step = c->step;
	ev->default_value = c->def;
	*index = (uint32_t)i;
	return 0;
}

static int queryctrl(struct emu_dev *dev, struct v4l2_queryctrl *q)
{
	int i = find_query(q->id);
	if (i < 0)
		return EMU_ERR(EINVAL);
	const struct ctrl_def *c = &CTRLS[i];
	memset(q, 0, sizeof *q);
	q->id = c->id;
	q->type = c->type;
	snprintf((char *)q->name, sizeof q->name, "%s", c->name);
	q->minimum = c->min;
	q->maximum = c->max;
	q->step = c->step;
	q->default_value = c->def;
	q->flags = flags_of(dev, i);
	return 0;
}

static int query_ext_ctrl(struct emu_dev *dev, struct v4l2_query_ext_ctrl *q)
{
	int i = find_query(q->id);
	if (i < 0)
		return EMU_ERR(EINVAL);
	const struct ctrl_def *c = &CTRLS[i];
	memset(q, 0, sizeof *q);
	q->id = c->id;
	q->type = c->type;
	snprintf(q->name, sizeof q->name, "%s", c->name);
	q->minimum = c->min;
	q->maximum = c->max;
	q->step = (uint64_t)c->step;
	q->default_value = c->def;
	q->flags = flags_of(dev, i);
	q->elem_size = sizeof(int32_t);
	q->elems = 1;
	return 0;
}

static int querymenu(struct v4l2_querymenu *m)
{
	int i = find(m->id);
	if (i < 0 || CTRLS[i].type != V4L2_CTRL_TYPE_MENU)
		return EMU_ERR(EINVAL);
	const struct ctrl_def *c = &CTRLS[i];
	if ((int64_t)m->index < c->min || (int64_t)m->index > c->max ||
	    (c->menu_skip & (1u << m->index)))
		return EMU_ERR(EINVAL);
	uint32_t id = m->id, index = m->index;
	memset(m, 0, sizeof *m);
	m->id = id;
	m->index = index;
	snprintf((char *)m->name, sizeof m->name, "%s", c->menu[index]);
	return 0;
}

static int g_ctrl(struct emu_dev *dev, struct v4l2_control *c)
{
	int i = find(c->id);
	if (i < 0)
		return EMU_ERR(EINVAL);
	if (CTRLS[i].type == V4L2_CTRL_TYPE_CTRL_CLASS)
		return EMU_ERR(EACCES);
	c->value = get_value(dev, i);
	return 0;
}

static int s_ctrl(struct emu_dev *dev, struct v4l2_control *c)
{
	int i = find(c->id);
	if (i < 0)
		return EMU_ERR(EINVAL);
	int32_t v;
	if (check_value(i, c->value, &v) < 0)
		return -1;
	set_value(dev, i, v);
	c->value = v;
	return 0;
}

static bool which_ok(uint32_t which)
{
	return which == V4L2_CTRL_WHICH_CUR_VAL || which == V4L2_CTRL_WHICH_DEF_VAL ||
	       which == V4L2_CTRL_CLASS_USER || which == V4L2_CTRL_CLASS_CAMERA;
}

/*
 * uvcvideo's rules: an unknown, write-only or wrong-class id fails the whole call with
 * error_idx = count (TRY: the index); a bad value fails with error_idx = its index.
 */
static int ext_ctrls(struct emu_dev *dev, unsigned long req, struct v4l2_ext_controls *e)
{
	if (!which_ok(e->which))
		return EMU_ERR(EINVAL);
	if (req != VIDIOC_G_EXT_CTRLS && e->which == V4L2_CTRL_WHICH_DEF_VAL)
		return EMU_ERR(EINVAL);
	int32_t vals[EMU_MAX_CTRLS];
	int idx[EMU_MAX_CTRLS];
	if (e->count > EMU_MAX_CTRLS) {
		e->error_idx = e->count;
		return EMU_ERR(EINVAL);
	}
	for (uint32_t n = 0; n < e->count; n++) {
		struct v4l2_ext_control *x = &e->controls[n];
		int i = find(x->id);
		bool class_ok = e->which == V4L2_CTRL_WHICH_CUR_VAL ||
				e->which == V4L2_CTRL_WHICH_DEF_VAL ||
				V4L2_CTRL_ID2WHICH(x->id) == e->which;
		if (i < 0 || !class_ok || CTRLS[i].type == V4L2_CTRL_TYPE_CTRL_CLASS) {
			e->error_idx = req == VIDIOC_TRY_EXT_CTRLS ? n : e->count;
			return EMU_ERR(i >= 0 && class_ok ? EACCES : EINVAL);
		}
		idx[n] = i;
	}
	/* Then the values: S_EXT_CTRLS is all or nothing. */
	for (uint32_t n = 0; n < e->count; n++) {
		if (req != VIDIOC_G_EXT_CTRLS && check_value(idx[n], e->controls[n].value, &vals[n]) < 0) {
			e->error_idx = n;
			return -1;
		}
	}
	for (uint32_t n = 0; n < e->count; n++) {
		struct v4l2_ext_control *x = &e->controls[n];
		if (req == VIDIOC_G_EXT_CTRLS)
			x->value = e->which == V4L2_CTRL_WHICH_DEF_VAL ? CTRLS[idx[n]].def
								       : get_value(dev, idx[n]);
		else if (req == VIDIOC_S_EXT_CTRLS)
			set_value(dev, idx[n], vals[n]);
		if (req != VIDIOC_G_EXT_CTRLS)
			x->value = vals[n];
	}
	return 0;
}

int emu_ctrl_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	if (dev->ctl->kind == EMU_KIND_METADATA)
		return EMU_ERR(ENOTTY); /* the metadata node has no controls */
	switch (req) {
	case VIDIOC_QUERYCTRL:
		return queryctrl(dev, arg);
	case VIDIOC_QUERY_EXT_CTRL:
		return query_ext_ctrl(dev, arg);
	case VIDIOC_QUERYMENU:
		return querymenu(arg);
	case VIDIOC_G_CTRL:
		return g_ctrl(dev, arg);
	case VIDIOC_S_CTRL:
		return s_ctrl(dev, arg);
	case VIDIOC_G_EXT_CTRLS:
	case VIDIOC_S_EXT_CTRLS:
	case VIDIOC_TRY_EXT_CTRLS:
		return ext_ctrls(dev, req, arg);
	default:
		return EMU_ERR(ENOTTY);
	}
}
