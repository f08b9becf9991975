/*
 * internal.h - declarations shared between lib/ files (hr__ prefix),
 * never installed.
 */
#ifndef HR_INTERNAL_H
#define HR_INTERNAL_H

#include <stddef.h>

#include "healthreg/util.h"

#define container_of hr_container_of

#endif
