/*
 * http_report.h - the one place that turns an HTTP run's result into the
 * check's output text and raw status. Both engines (http_direct.c,
 * http_curl.c) describe what happened as a struct hr__http_result, with a
 * failure named only by its class (enum hr__http_fail, http_parse.h); the
 * texts are one table in http_report.c, so the engines cannot disagree.
 */
#ifndef HR_HTTP_REPORT_H
#define HR_HTTP_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"

struct hr_check;

/* Borrowed pointers: valid for the duration of the call they are passed to. */
struct hr__http_result {
	enum hr__http_fail fail; /* HR__HTTP_OK: a response */
	/* a response */
	long code;
	const char *reason;      /* "" when none */
	const char *body;        /* the first len body bytes */
	size_t len;
	size_t total;            /* body bytes received */
	const char *location;    /* a 3xx's Location the engine did not follow */
	/* what failure texts name */
	const char *url;         /* where it failed: host and port */
	long ms;                 /* since the run (or this hop) started;
				    with a location too */
	int64_t received;        /* body bytes */
	int64_t expected;        /* Content-Length, -1 unknown */
	int os_errno;            /* HR__HTTP_E_SEND, HR__HTTP_E_RECV */
	const char *text;        /* HR__HTTP_E_OTHER: libcurl's own words */
};

/* A failure's text (no "HTTP GET <url>: " prefix) into buf; its length. */
size_t hr__http_fail_text(const struct hr__http_result *res, char *buf,
			  size_t len);

/*
 * Finish the run: "HTTP <M> <url>: <code> <reason> Output: <body>" with
 * Consul's classification (2xx passing, 429 warning, else critical), or
 * "HTTP <M> <url>: <failure text>" critical. Calls hr__check_finish(), so
 * the caller must have released the check's run slot and must not touch
 * c afterwards (res's pointers may point into the caller's state).
 */
void hr__http_report(struct hr_check *c, const struct hr__http_result *res);

#endif
