/*
 * duration.h - Go/Consul duration strings ("250ms", "10s", "1m30s").
 */
#ifndef HEALTHREG_DURATION_H
#define HEALTHREG_DURATION_H

#include <stddef.h>
#include <stdint.h>

/**
 * Parse a Go duration string into milliseconds, rounded to the nearest ms.
 * Accepts units ns, us, µs, ms, s, m, h, fractions ("1.5s"), sequences
 * ("1h2m3.5s"), and "0". Negative durations are rejected.
 * Returns 0 or -EINVAL (not a duration) or -ERANGE (too large).
 */
int hr_duration_parse(const char *s, int64_t *ms_out);

/** Format ms as a Go-style duration ("1m30s", "250ms", "0s") into buf. */
void hr_duration_format(int64_t ms, char *buf, size_t len);

#endif
