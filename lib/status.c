/*
 * status.c - status names and ordering.
 */
#include <errno.h>
#include <string.h>

#include "healthreg/status.h"

const char *hr_status_name(enum hr_status s)
{
	switch (s) {
	case HR_STATUS_PASSING:
		return "passing";
	case HR_STATUS_WARNING:
		return "warning";
	case HR_STATUS_CRITICAL:
		return "critical";
	default:
		return "unknown";
	}
}

int hr_status_parse(const char *s, int allow_unknown, enum hr_status *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "passing"))
		*out = HR_STATUS_PASSING;
	else if (!strcmp(s, "warning"))
		*out = HR_STATUS_WARNING;
	else if (!strcmp(s, "critical"))
		*out = HR_STATUS_CRITICAL;
	else if (allow_unknown && !strcmp(s, "unknown"))
		*out = HR_STATUS_UNKNOWN;
	else
		return -EINVAL;
	return 0;
}

static int rank(enum hr_status s)
{
	return s == HR_STATUS_UNKNOWN ? HR_STATUS_CRITICAL : (int)s;
}

enum hr_status hr_status_worst(enum hr_status a, enum hr_status b)
{
	return rank(b) > rank(a) ? b : a;
}
