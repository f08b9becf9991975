/*
 * registry.c - the stats every registry backend records (the rest of the
 * shared layer is regcore.c).
 */
#include <stddef.h>

#include "healthreg/registry.h"
#include "healthreg/util.h"

void hr_registry_stats_record(struct hr_registry_stats *s, bool ok)
{
	if (!s)
		return;
	if (!ok) {
		s->errors++;
		return;
	}
	s->writes++;
	s->last_success = hr_wall_now();
}
