/*
 * Emulated V4L2 capture device, loaded with LD_PRELOAD into test processes.
 *
 * A node is a regular file named videoN inside $CAMSVC_EMU_DIR. Opening it hands out
 * a real eventfd (so poll/select/epoll work unchanged) and keeps the node file open:
 * its first bytes are the control page shared with tests/emulator/control.py (faults,
 * manual clock ticks, current format and control values, shared by every process
 * that opens the node, as a real device's state is). control.py writes the page
 * through a hard link, .videoN.ctl, because opening videoN itself gives the device.
 * Deleting videoN is an unplug.
 * Test-only code: a producer thread and one global lock are fine here.
 */
#ifndef EMU_H
#define EMU_H

#include <linux/videodev2.h>
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/types.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#define EMU_MAGIC 0x554d4543u /* "CEMU" little-endian */
#define EMU_VERSION 1u
#define EMU_MAX_BUFS 32u
#define EMU_MAX_CTRLS 16u
#define EMU_MAX_EVENTS 32u

enum emu_kind { EMU_KIND_CAPTURE = 0, EMU_KIND_METADATA = 1 };

enum emu_fault {
	EMU_FAULT_NONE = 0,
	EMU_FAULT_EBUSY,
	EMU_FAULT_ENOSPC_STREAMON,
	EMU_FAULT_STALL,
	EMU_FAULT_NO_DHT,
	EMU_FAULT_CORRUPT,
	EMU_FAULT_TRUNCATED,
	EMU_FAULT_EIO,
};

/* Layout of the node file's first bytes; control.py writes the same offsets. */
struct emu_ctl {
	uint32_t magic;        /* 0 */
	uint32_t version;      /* 4 */
	uint32_t kind;         /* 8 */
	uint32_t fault;        /* 12 */
	uint32_t manual_clock; /* 16 */
	uint32_t ticks;        /* 20: frames the test asked for, manual clock only */
	uint32_t fourcc;       /* 24: current format, 0 = default */
	uint32_t width;        /* 28 */
	uint32_t height;       /* 32 */
	uint32_t fps;          /* 36 */
	uint32_t ctrl_set;     /* 40: bit i set = ctrl_val[i] holds a value */
	uint32_t prio_count[4]; /* 44: open handles per priority (v4l2_prio_state) */
	uint32_t reserved;     /* 60 */
	char card[32];         /* 64 */
	int32_t ctrl_val[EMU_MAX_CTRLS]; /* 96 */
};

enum emu_buf_state { EMU_BUF_DEQUEUED = 0, EMU_BUF_QUEUED, EMU_BUF_FILLING, EMU_BUF_DONE };

struct emu_buf {
	enum emu_buf_state state;
	int memfd;
	uint8_t *mem;
	uint32_t bytesused;
	uint32_t sequence;
	uint32_t flags;
	uint32_t mapped;          /* live app mappings: V4L2_BUF_FLAG_MAPPED */
	struct timeval timestamp;
};

struct emu_fifo {
	uint32_t idx[EMU_MAX_BUFS];
	uint32_t head;
	uint32_t count;
};

/* One open of a node: the state a struct file would hold in the kernel. */
struct emu_dev {
	struct emu_dev *next;
	uint64_t id;              /* epoll cookie, never reused */
	int fd;                   /* the app's eventfd */
	int shadow;               /* our dup of it: kcmp identity and waiting */
	int ctlfd;                /* the node file: control page and ownership lock */
	struct emu_ctl *ctl;      /* mapped control page, or &local */
	struct emu_ctl local;     /* used when the node file has no control page */
	int index;                /* N of videoN */
	char path[4096];
	ino_t ino;                /* the node file's identity at open */
	dev_t devno;
	bool privileged;          /* owns the device (UVC "privileges") */
	bool gone;
	bool signaled;            /* the eventfd counter is non-zero */
	bool streaming;
	int priority;
	bool prio_counted;
	/* control events (V4L2_EVENT_CTRL) */
	uint32_t subscribed;      /* bit i: control i, as in controls.c */
	uint32_t feedback;        /* bit i: subscribed with ALLOW_FEEDBACK */
	struct v4l2_event events[EMU_MAX_EVENTS];
	uint32_t nevents;
	uint32_t event_sequence;
	/* buffers */
	uint32_t nbufs;
	uint32_t buf_len;         /* sizeimage at REQBUFS time */
	uint32_t buf_stride;      /* offset cookie step, page aligned */
	uint32_t generation;      /* bumped by every REQBUFS: old mappings are orphans */
	struct emu_buf bufs[EMU_MAX_BUFS];
	struct emu_fifo queued;
	struct emu_fifo done;
	uint32_t filling;         /* buffers being rendered outside the lock */
	uint32_t sequence;
	uint32_t ticks_seen;
	int timerfd;
};

/* libc functions we wrap, resolved with dlsym(RTLD_NEXT). */
struct emu_real {
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*open_2)(const char *, int);
	int (*open64_2)(const char *, int);
	int (*openat_2)(int, const char *, int);
	int (*openat64_2)(int, const char *, int);
	int (*close)(int);
	int (*ioctl)(int, unsigned long, ...);
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	void *(*mmap64)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
};
extern struct emu_real emu_real;
void emu_real_init(void);

/* registry.c: the global lock guards every emu_dev. */
extern pthread_mutex_t emu_lock;
extern pthread_cond_t emu_cond;
bool emu_any_device(void);
struct emu_dev *emu_lookup(int fd); /* lock held; checks fd identity */
void emu_register(struct emu_dev *dev);
void emu_unregister(struct emu_dev *dev);
void emu_free(struct emu_dev *dev);
struct emu_dev *emu_first(void);
void emu_forget_all(void);
void emu_sync_signal(struct emu_dev *dev);
bool emu_check_gone(struct emu_dev *dev);

/* node.c */
bool emu_is_node_path(int dirfd, const char *path, int *index, char *abs);
int emu_open_node(const char *path, int index, int flags);
int emu_acquire(struct emu_dev *dev);
void emu_release(struct emu_dev *dev);

/* ioctl.c / controls.c / formats.c */
int emu_ioctl(struct emu_dev *dev, unsigned long req, void *arg);
int emu_ctrl_ioctl(struct emu_dev *dev, unsigned long req, void *arg);
int emu_fmt_ioctl(struct emu_dev *dev, unsigned long req, void *arg);
void emu_cur_format(const struct emu_dev *dev, uint32_t *fourcc, uint32_t *w, uint32_t *h,
		    uint32_t *fps);
uint32_t emu_sizeimage(uint32_t fourcc, uint32_t w, uint32_t h);
uint32_t emu_bytesperline(uint32_t fourcc, uint32_t w);

/* events.c: control events; emu_ctrl_changed notifies the other handles. */
int emu_event_ioctl(struct emu_dev *dev, unsigned long req, void *arg);
void emu_ctrl_changed(struct emu_dev *setter, uint32_t ctrl_index, uint32_t changes);
int emu_ctrl_describe(const struct emu_dev *dev, uint32_t id, struct v4l2_event_ctrl *ev,
		      uint32_t *index);

/* priority (ioctl.c) */
void emu_prio_open(struct emu_dev *dev);
void emu_prio_close(struct emu_dev *dev);

/* stream.c */
int emu_stream_ioctl(struct emu_dev *dev, unsigned long req, void *arg);
void *emu_stream_mmap(struct emu_dev *dev, void *addr, size_t len, int prot, int flags,
		      off_t off);
void emu_stream_free(struct emu_dev *dev);
void emu_stream_unmapped(void *addr, size_t len);
void emu_produce(struct emu_dev *dev, uint32_t frames);

/* producer.c */
int emu_producer_start(void);
void emu_producer_watch(const char *dir);
int emu_producer_add_timer(struct emu_dev *dev, uint32_t fps);
void emu_producer_del_timer(struct emu_dev *dev);
void emu_producer_fork_child(void);

/* pattern.c: renders frame `seq`; returns bytes used, 0 on failure. */
size_t emu_render(uint32_t fourcc, uint32_t w, uint32_t h, uint32_t seq, uint32_t fault,
		  uint8_t *dst, size_t cap);

#define EMU_ERR(e) (errno = (e), -1)

#endif
