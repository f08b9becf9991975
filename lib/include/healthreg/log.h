/*
 * log.h - structured logging: one event name plus key/value pairs, written
 * as logfmt (default) or JSON, one line each, to stderr or a custom sink.
 * Never pass secrets as values.
 */
#ifndef HEALTHREG_LOG_H
#define HEALTHREG_LOG_H

#include <stdio.h>


enum hr_log_format { HR_LOG_LOGFMT, HR_LOG_JSON };

enum hr_log_level {
	HR_LOG_ERROR = 3,
	HR_LOG_WARN = 4,
	HR_LOG_INFO = 6,
	HR_LOG_DEBUG = 7,
};

/* kv is a NULL-terminated array: key, value, key, value, ..., NULL. */
typedef void (*hr_log_sink_cb)(int level, const char *event,
			       const char *const *kv, void *payload);

/** Messages above level are dropped. Default: HR_LOG_INFO, logfmt. */
void hr_log_setup(int level, enum hr_log_format format, FILE *stream);
/** Replace the default stream writer (NULL restores it). */
void hr_log_set_sink(hr_log_sink_cb sink, void *payload);
/** Parse "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int hr_log_level_parse(const char *s, int *out);
/** True when a message at level would be written. */
int hr_log_enabled(int level);

/**
 * Log event with key/value string pairs terminated by NULL, e.g.
 * hr_log(HR_LOG_INFO, "check_status", "check", name, "status", "passing",
 *        NULL). A NULL value is written as an empty string.
 */
void hr_log(int level, const char *event, ...) __attribute__((sentinel));

/**
 * Format one line into buf (always NUL-terminated, newline included when
 * it fits). Pure; used by the default sink and by tests.
 */
void hr_log_format_line(char *buf, size_t len, enum hr_log_format format,
			int level, const char *event, const char *const *kv);

#endif
