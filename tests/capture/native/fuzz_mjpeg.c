/* fuzz_mjpeg.c: libFuzzer target for the MJPEG check and Huffman-table fix-up, and the
 * decode-and-scale path behind it (csrc/mjpeg.c, csrc/jpeg.c). The first input byte picks
 * the scale; the rest is the frame. A fixed-up frame must check clean and carry a DHT. */
#include <linux/videodev2.h>
#include <stdint.h>
#include <stdlib.h>

#include "capture.h"

static cap_jpeg *jpeg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (jpeg == NULL)
        jpeg = cap_jpeg_new();
    int scale = (data[0] & 1) ? 2 : 1;
    data++;
    size--;
    struct cap_mjpeg_info info;
    int checked = cap_mjpeg_check(data, size, &info);
    if (checked == 0 && scale > 1 && (uint64_t)info.width * info.height > 1024 * 1024)
        scale = 1; /* keep each run fast: decode only small pictures */
    const uint8_t *out;
    size_t out_size;
    uint32_t ow, oh;
    int rc = cap_jpeg_encode(jpeg, data, size, V4L2_PIX_FMT_MJPEG, 0, 0, 0, 75, scale, &out,
                             &out_size, &ow, &oh);
    if ((checked == 0) != (rc == 0) && scale == 1)
        abort(); /* the fix-up accepts exactly what the check accepts */
    if (rc == 0 && scale == 1) {
        struct cap_mjpeg_info fixed;
        if (cap_mjpeg_check(out, out_size, &fixed) != 0 || !fixed.has_dht ||
            fixed.width != info.width || fixed.height != info.height)
            abort();
    }
    return 0;
}
