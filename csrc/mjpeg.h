/* mjpeg.h: walking the segments of a camera's JPEG frame and adding the standard Huffman
 * tables (JPEG Annex K.3) when the camera leaves them out, as UVC MJPEG cameras may. */
#ifndef CAMSVC_MJPEG_H
#define CAMSVC_MJPEG_H
#include <stddef.h>
#include <stdint.h>

#include "capture.h"

/* Size of the DHT segment that cap_mjpeg_fix() inserts. */
#define CAP_STD_DHT_SIZE 420

/* Like cap_mjpeg_check(), also giving the offset of the first SOS marker. */
int cap_mjpeg_walk(const uint8_t *data, size_t size, struct cap_mjpeg_info *info,
                   size_t *sos_offset);

/* Copies a checked frame into dst (capacity dst_cap >= size + CAP_STD_DHT_SIZE), inserting
 * the standard DHT before SOS when the frame has none and dropping what follows EOI.
 * Returns the bytes written, or -EBADMSG / -ENOSPC. */
long cap_mjpeg_fix(const uint8_t *data, size_t size, uint8_t *dst, size_t dst_cap,
                   struct cap_mjpeg_info *info);

#endif
