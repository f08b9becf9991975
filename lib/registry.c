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

const char *hr_registry_state_name(enum hr_registry_state s)
{
	switch (s) {
	case HR_REGISTRY_REGISTERED:
		return "registered";
	case HR_REGISTRY_DEREGISTERED:
		return "deregistered";
	case HR_REGISTRY_MAINTENANCE:
		return "maintenance";
	case HR_REGISTRY_PENDING:
		break;
	}
	return "pending";
}
