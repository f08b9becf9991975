/*
 * error.h - error reporting: a negative errno return plus an optional
 * one-line error buffer, and a diagnostics list for config validation.
 */
#ifndef HEALTHREG_ERROR_H
#define HEALTHREG_ERROR_H

#include <stddef.h>

#define HR_ERR_MAX 256

/* One line of context for a failed call. May be passed as NULL. */
struct hr_err {
	char msg[HR_ERR_MAX];
};

/** Format into err (NULL-safe). Returns rc unchanged, for `return`. */
int hr_err_set(struct hr_err *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

enum hr_diag_level { HR_DIAG_ERROR, HR_DIAG_WARNING };

struct hr_diag_entry {
	enum hr_diag_level level;
	char *text; /* "path: problem", owned by the list */
};

/* A growing list of config errors and warnings. Value type. */
struct hr_diag {
	struct hr_diag_entry *v;
	size_t n, cap;
	size_t errors, warnings;
};

/** Initialise an empty list. Cannot fail. */
void hr_diag_init(struct hr_diag *d);
/** Free every entry; the list is empty and reusable afterwards. */
void hr_diag_dispose(struct hr_diag *d);
/**
 * Add "path: message". path may be NULL or "" (no prefix). On allocation
 * failure the entry is dropped but the counters still move.
 */
void hr_diag_add(struct hr_diag *d, enum hr_diag_level level,
		 const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
