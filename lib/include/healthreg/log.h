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

/*
 * A key whose value is a number: HR_LOG_NUM("port") is "\x1f" "port". In
 * JSON the value is then written as a number when it is one by JSON's
 * grammar (-?int frac? exp?), else as a string; logfmt writes it as
 * always. The line's key is the name without the marker. Keys are the
 * program's literals, so nothing from outside can mark one. Sinks get
 * the keys as given (marker included): hr_log_format_line() knows it.
 */
#define HR_LOG_NUM_MARK '\x1f'
#define HR_LOG_NUM(key) "\x1f" key

/**
 * Log event with key/value string pairs terminated by NULL, e.g.
 * hr_log(HR_LOG_INFO, "check_status", "check", name, "status", "passing",
 *        NULL). A NULL value is written as an empty string. Numbers are
 * given as text under an HR_LOG_NUM() key.
 */
void hr_log(int level, const char *event, ...) __attribute__((sentinel));

/**
 * Format one line into buf (always NUL-terminated, newline included when
 * it fits). Pure; used by the default sink and by tests.
 */
void hr_log_format_line(char *buf, size_t len, enum hr_log_format format,
			int level, const char *event, const char *const *kv);

#endif
