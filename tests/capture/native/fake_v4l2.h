/* fake_v4l2.h: an in-process fake V4L2 device behind the capture module's syscall table,
 * for the sanitizer and valgrind harness (test-only; globals are fine here). */
#ifndef FAKE_V4L2_H
#define FAKE_V4L2_H
#include <stdint.h>

enum fake_fault {
    FAKE_OK = 0,
    FAKE_ERROR_FLAG,   /* buffers come back flagged V4L2_BUF_FLAG_ERROR */
    FAKE_EMPTY,        /* bytesused 0 */
    FAKE_TRUNCATED,    /* half a frame */
    FAKE_CORRUPT,      /* MJPEG without SOI */
    FAKE_NO_DHT,       /* MJPEG without Huffman tables */
    FAKE_EBUSY,        /* S_FMT/REQBUFS: EBUSY */
    FAKE_ENOSPC,       /* STREAMON: ENOSPC */
    FAKE_GONE,         /* everything: ENODEV */
};

#define FAKE_CAMERA "/fake/video0"
#define FAKE_METADATA "/fake/video1"

/* Installs the fake into cap_sys and resets its state. */
void fake_install(void);
void fake_fault(enum fake_fault fault);
/* Offer the camera through the multi-planar API (one plane, payload at an offset). */
void fake_multiplanar(int on);
/* The device completes up to n more frames (as many as buffers are queued). */
void fake_tick(unsigned n);
/* Make the nth ioctl from now fail with EIO (0: never). */
void fake_fail_ioctl_at(unsigned nth);
/* Every call into the fake fails once with EINTR before it succeeds. */
void fake_eintr(int on);
/* Open descriptors and mappings still outstanding. */
int fake_open_fds(void);
int fake_mappings(void);
/* Sequence number the next frame will carry. */
uint32_t fake_sequence(void);

#endif
