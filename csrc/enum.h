/* enum.h: capability checks shared by enumeration and the camera. */
#ifndef CAMSVC_ENUM_H
#define CAMSVC_ENUM_H
#include <stdint.h>

#include "capture.h"

/* Fills info from VIDIOC_QUERYCAP on an open fd; 0 or -errno. */
int cap_querycap(int fd, struct cap_devinfo *info);

#endif
