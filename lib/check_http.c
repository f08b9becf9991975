/*
 * check_http.c - the http check kind: chooses an engine for each run and
 * takes its result back (http_run.h draws the modules).
 *
 * - direct (http_direct.c), the common case: a plain GET of
 *   http://<numeric address>/... with no custom headers or body, a small
 *   HTTP/1.1 client on the loop (docs/performance.md says why).
 * - libcurl (http_curl.c): everything else (https, host names, methods,
 *   headers, bodies), and every redirect: a 3xx with a Location that the
 *   direct engine read continues on libcurl at the Location, with one of
 *   the HR__HTTP_MAX_REDIRECTS used, so redirect rules stay libcurl's,
 *   and with what is left of the check's timeout: one deadline per run,
 *   however many redirects (http_curl.c keeps it where libcurl does not).
 *
 * Both engines end in http_done(), which follows such a redirect or hands
 * the result to hr__http_report() (http_report.c), the one place that
 * builds the output and the raw status.
 */
#include <errno.h>

#include <curl/curl.h>

#include "check.h"
#include "http_run.h"
#include "http_curl.h"
#include "http_direct.h"
#include "http_report.h"

static void http_done(struct hr_check *c, const struct hr__http_result *res);

/* The Location against the check's URL, on libcurl, in the time left. */
static void follow(struct hr_check *c, const struct hr__http_result *got)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	long left = (long)s->timeout_ms - got->ms;
	struct hr_err err = { "" };
	CURLU *u;
	char *next = NULL;
	int rc = -ENOMEM;

	if (left < 1) {
		struct hr__http_result res = { .fail = HR__HTTP_E_TIMEOUT,
					       .ms = got->ms, .expected = -1 };

		hr__http_report(c, &res);
		return;
	}
	u = curl_url();
	if (u && !curl_url_set(u, CURLUPART_URL, s->target, 0) &&
	    !curl_url_set(u, CURLUPART_URL, got->location,
			  CURLU_NON_SUPPORT_SCHEME) &&
	    !curl_url_get(u, CURLUPART_URL, &next, 0))
		rc = 0;
	curl_url_cleanup(u);
	if (!rc)
		rc = hr__http_curl_start(c, next, 1, got->ms, http_done, &err);
	curl_free(next);
	if (rc) {
		struct hr__http_result res = {
			.fail = HR__HTTP_E_OTHER,
			.text = err.msg[0] ? err.msg : "redirect failed",
		};

		hr__http_report(c, &res);
	}
}

static void http_done(struct hr_check *c, const struct hr__http_result *res)
{
	if (res->fail == HR__HTTP_OK && res->location &&
	    !hr__check_spec(c)->disable_redirects)
		follow(c, res);
	else
		hr__http_report(c, res);
}

static void http_cancel(struct hr_check *c)
{
	struct hr__http_run *run = *hr__check_run_slot(c);

	if (run)
		run->engine->cancel(run);
}

static int http_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);

	if (hr__http_direct_start(c, http_done) != -EAGAIN)
		return 0; /* started, or already finished */
	return hr__http_curl_start(c, s->target, 0, 0, http_done, err);
}

const struct hr__check_kind hr__check_http = {
	.start = http_start,
	.cancel = http_cancel,
};
