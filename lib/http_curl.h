/*
 * http_curl.h - the libcurl engine of the http check kind (http_curl.c):
 * every http check the direct engine does not take, on the shared multi
 * handle (lib/http.c).
 */
#ifndef HR_HTTP_CURL_H
#define HR_HTTP_CURL_H

#include "http_run.h"

/*
 * Start a run at url (the check's URL, or a redirect's Location after
 * `redirects` redirects were followed already, elapsed_ms into the run:
 * the transfer gets what is left of the check's timeout, and the run ends
 * at that deadline even where libcurl would not). 0 (done will be called)
 * or a negative errno with err set (nothing to release, done not called).
 */
int hr__http_curl_start(struct hr_check *c, const char *url, long redirects,
			long elapsed_ms, hr__http_done_cb done,
			struct hr_err *err);

#endif
