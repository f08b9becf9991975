/*
 * internal.h - declarations shared between lib/ files (hr__ prefix),
 * never installed.
 */
#ifndef HR_INTERNAL_H
#define HR_INTERNAL_H

#include <stddef.h>

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define HR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
