/*
 * registry.c - helpers shared by registry backends.
 */
#include <stddef.h>
#include <sys/time.h>

#include "healthreg/registry.h"

void hr_registry_stats_record(struct hr_registry_stats *s, bool ok)
{
	struct timeval tv;

	if (!s)
		return;
	if (!ok) {
		s->errors++;
		return;
	}
	s->writes++;
	gettimeofday(&tv, NULL);
	s->last_success = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
