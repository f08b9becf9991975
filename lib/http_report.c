/*
 * http_report.c - result -> output text and raw status for both HTTP
 * engines (see http_report.h). The failure texts are libcurl 7.88's, so
 * that outputs read as they always have; they live only here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http_report.h"

/* What a text is filled with. */
enum text_args {
	A_NONE,      /* fixed text */
	A_CONNECT,   /* host, port, ms */
	A_MS,        /* ms */
	A_TIMEOUT,   /* ms, received [, expected] */
	A_ERRNO,     /* strerror(os_errno) */
	A_REMAINING, /* expected - received */
	A_REDIRECTS, /* HR__HTTP_MAX_REDIRECTS */
	A_TEXT,      /* res->text */
};

static const struct {
	enum text_args args;
	const char *fmt;
	const char *fmt_of; /* A_TIMEOUT with a known Content-Length */
} texts[HR__HTTP_E_COUNT] = {
	[HR__HTTP_OK] = { A_NONE, "", NULL },
	[HR__HTTP_E_CONNECT] = { A_CONNECT, "Failed to connect to %.*s port "
				 "%u after %ld ms: Couldn't connect to server",
				 NULL },
	[HR__HTTP_E_CONNECT_ETIMEDOUT] = { A_CONNECT, "Failed to connect to "
					   "%.*s port %u after %ld ms: "
					   "Timeout was reached", NULL },
	[HR__HTTP_E_CONNECT_TIMEOUT] = { A_MS, "Connection timed out after "
					 "%ld milliseconds", NULL },
	[HR__HTTP_E_RESOLVE_TIMEOUT] = { A_MS, "Resolving timed out after "
					 "%ld milliseconds", NULL },
	[HR__HTTP_E_TIMEOUT] = { A_TIMEOUT, "Operation timed out after %ld "
				 "milliseconds with %lld bytes received",
				 "Operation timed out after %ld milliseconds "
				 "with %lld out of %lld bytes received" },
	[HR__HTTP_E_SEND] = { A_ERRNO, "Send failure: %s", NULL },
	[HR__HTTP_E_RECV] = { A_ERRNO, "Recv failure: %s", NULL },
	[HR__HTTP_E_EMPTY] = { A_NONE, "Empty reply from server", NULL },
	[HR__HTTP_E_WEIRD] = { A_NONE, "Weird server reply", NULL },
	[HR__HTTP_E_HTTP09] = { A_NONE, "Received HTTP/0.9 when not allowed",
				NULL },
	[HR__HTTP_E_NUL_HEADER] = { A_NONE, "Nul byte in header", NULL },
	[HR__HTTP_E_NO_COLON] = { A_NONE, "Header without colon", NULL },
	[HR__HTTP_E_BAD_LENGTH] = { A_NONE, "Invalid Content-Length: value",
				    NULL },
	[HR__HTTP_E_HEAD_TOO_LARGE] = { A_NONE, "Too large response headers",
					NULL },
	[HR__HTTP_E_CHUNK_HEX] = { A_NONE, "Illegal or missing hexadecimal "
				   "sequence in chunked-encoding", NULL },
	[HR__HTTP_E_CHUNK_TOO_LONG] = { A_NONE, "Too long hexadecimal number "
					"in chunked-encoding", NULL },
	[HR__HTTP_E_CHUNK_BAD] = { A_NONE, "Malformed encoding found in "
				   "chunked-encoding", NULL },
	[HR__HTTP_E_PARTIAL] = { A_REMAINING, "transfer closed with %lld "
				 "bytes remaining to read", NULL },
	[HR__HTTP_E_PARTIAL_CHUNKED] = { A_NONE, "transfer closed with "
					 "outstanding read data remaining",
					 NULL },
	[HR__HTTP_E_REDIRECTS] = { A_REDIRECTS, "Maximum (%d) redirects "
				   "followed", NULL },
	[HR__HTTP_E_OOM] = { A_NONE, "Out of memory", NULL },
	[HR__HTTP_E_OTHER] = { A_TEXT, "%s", NULL },
};

static int connect_text(const struct hr__http_result *res, const char *fmt,
			char *buf, size_t len)
{
	struct hr__http_url u;

	if (!res->url || hr__http_url_split(res->url, &u)) {
		u.host = "";
		u.host_len = 0;
		u.port = 0;
	}
	return snprintf(buf, len, fmt, (int)u.host_len, u.host, u.port,
			res->ms);
}

size_t hr__http_fail_text(const struct hr__http_result *res, char *buf,
			  size_t len)
{
	enum hr__http_fail f = res->fail;
	const char *fmt;
	int n;

	if ((unsigned)f >= HR__HTTP_E_COUNT)
		f = HR__HTTP_E_OTHER;
	fmt = texts[f].fmt;
	switch (texts[f].args) {
	case A_CONNECT:
		n = connect_text(res, fmt, buf, len);
		break;
	case A_MS:
		n = snprintf(buf, len, fmt, res->ms);
		break;
	case A_TIMEOUT:
		if (res->expected >= 0)
			n = snprintf(buf, len, texts[f].fmt_of, res->ms,
				     (long long)res->received,
				     (long long)res->expected);
		else
			n = snprintf(buf, len, fmt, res->ms,
				     (long long)res->received);
		break;
	case A_ERRNO:
		n = snprintf(buf, len, fmt, strerror(res->os_errno));
		break;
	case A_REMAINING:
		n = snprintf(buf, len, fmt,
			     (long long)(res->expected - res->received));
		break;
	case A_REDIRECTS:
		n = snprintf(buf, len, fmt, HR__HTTP_MAX_REDIRECTS);
		break;
	case A_TEXT:
		n = snprintf(buf, len, fmt, res->text ? res->text : "");
		break;
	default:
		n = snprintf(buf, len, "%s", fmt);
		break;
	}
	if (n < 0)
		n = 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

static const char *method_of(const struct hr_check_spec *s)
{
	return s->method ? s->method : "GET";
}

static void report_failure(struct hr_check *c,
			   const struct hr__http_result *res)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	char out[1024];
	int n;

	n = snprintf(out, sizeof(out), "HTTP %s %s: ", method_of(s),
		     s->target);
	if (n < 0 || (size_t)n >= sizeof(out))
		n = (int)strlen(out);
	n += (int)hr__http_fail_text(res, out + n, sizeof(out) - (size_t)n);
	hr__check_finish(c, HR_STATUS_CRITICAL, out, (size_t)n, (size_t)n);
}

static void report_response(struct hr_check *c,
			    const struct hr__http_result *res)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	const char *reason = res->reason ? res->reason : "";
	enum hr_status st;
	char prefix[1024];
	char *out;
	size_t plen, olen;

	/* Consul's rule: 2xx passing, 429 warning, anything else critical. */
	if (res->code >= 200 && res->code < 300)
		st = HR_STATUS_PASSING;
	else if (res->code == 429)
		st = HR_STATUS_WARNING;
	else
		st = HR_STATUS_CRITICAL;
	plen = (size_t)snprintf(prefix, sizeof(prefix),
				"HTTP %s %s: %ld%s%s Output: ", method_of(s),
				s->target, res->code, reason[0] ? " " : "",
				reason);
	if (plen >= sizeof(prefix))
		plen = sizeof(prefix) - 1;
	olen = plen + res->len;
	if (olen <= sizeof(prefix)) {
		/* the common small body: no allocation */
		if (res->len)
			memcpy(prefix + plen, res->body, res->len);
		hr__check_finish(c, st, prefix, olen, plen + res->total);
		return;
	}
	out = malloc(olen);
	if (!out) {
		hr__check_finish(c, st, prefix, plen, plen);
		return;
	}
	memcpy(out, prefix, plen);
	memcpy(out + plen, res->body, res->len);
	hr__check_finish(c, st, out, olen, plen + res->total);
	free(out);
}

void hr__http_report(struct hr_check *c, const struct hr__http_result *res)
{
	if (res->fail != HR__HTTP_OK)
		report_failure(c, res);
	else
		report_response(c, res);
}
