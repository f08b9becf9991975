/*
 * status.h - the health status model shared by checks, the aggregate and
 * the registry backends.
 */
#ifndef HEALTHREG_STATUS_H
#define HEALTHREG_STATUS_H

/*
 * Ordered from best to worst, except UNKNOWN (no result yet), which the
 * aggregate counts as critical unless the check declared an initial status.
 */
enum hr_status {
	HR_STATUS_PASSING = 0,
	HR_STATUS_WARNING = 1,
	HR_STATUS_CRITICAL = 2,
	HR_STATUS_UNKNOWN = 3,
};

/** "passing", "warning", "critical" or "unknown". Never NULL. */
const char *hr_status_name(enum hr_status s);

/**
 * Parse a status word (exactly "passing", "warning", "critical"; "unknown"
 * only when allow_unknown). Returns 0 or -EINVAL.
 */
int hr_status_parse(const char *s, int allow_unknown, enum hr_status *out);

/** The worse of two statuses, with UNKNOWN ranked as CRITICAL. */
enum hr_status hr_status_worst(enum hr_status a, enum hr_status b);

#endif
