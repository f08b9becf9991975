/*
 * http_direct.h - the direct HTTP/1.1 engine of the http check kind: a
 * plain GET of an http:// URL with a numeric host, on the loop, without
 * libcurl (http_direct.c; why: docs/performance.md).
 */
#ifndef HR_HTTP_DIRECT_H
#define HR_HTTP_DIRECT_H

#include "http_run.h"

/*
 * Start a run: -EAGAIN when the check is not for this engine (nothing
 * done; use libcurl), else 0: in flight, or already over (done called).
 */
int hr__http_direct_start(struct hr_check *c, hr__http_done_cb done);

#endif
