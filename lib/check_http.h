/*
 * check_http.h - shared by the two engines of the http check kind:
 * check_http.c (libcurl, and the kind's entry points) and
 * check_http_direct.c (the direct HTTP/1.1 engine).
 */
#ifndef HR_CHECK_HTTP_H
#define HR_CHECK_HTTP_H

#include <stddef.h>

#include "check.h"

/* First member of each engine's per-run state, so cancel can tell. */
enum { HR__HTTP_ENGINE_CURL = 1, HR__HTTP_ENGINE_DIRECT = 2 };

/** The check's method, "GET" by default. */
const char *hr__http_method(const struct hr_check_spec *s);

/**
 * Finish the run with a response: Consul's classification and the output
 * "HTTP <M> <url>: <code> <reason> Output: <body>" (len bytes of body
 * kept, total read). The run slot must already be cleared.
 */
void hr__http_report(struct hr_check *c, long code, const char *reason,
		     const char *body, size_t len, size_t total);

/** Finish the run critical with "HTTP <M> <url>: <msg>". */
void hr__http_report_error(struct hr_check *c, const char *msg);

/**
 * Start (or continue, after a redirect handed over by the direct engine,
 * redirects already used) a run on libcurl. 0 or a negative errno.
 */
int hr__http_curl_start(struct hr_check *c, const char *url, long redirects,
			struct hr_err *err);

/**
 * Start a run on the direct engine: -EAGAIN when the check is not for it
 * (the caller uses libcurl), else 0 (in flight, or already finished).
 */
int hr__http_direct_start(struct hr_check *c);
void hr__http_direct_cancel(struct hr_check *c);

#endif
