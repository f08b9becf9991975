/*
 * http_parse.c - the pure HTTP/1.1 response parser (see http_parse.h for
 * its states and limits) and the URL split the engines share. No I/O.
 *
 * Where a rule is a choice, it is libcurl 7.88's, so that the direct
 * engine and libcurl agree: a status line must start "HTTP/" from its
 * first byte; a NUL anywhere in a head, a header line without a colon or
 * a Content-Length that is not a number fail; a Content-Length too large
 * for 63 bits is ignored (the body runs until close); a chunk size has at
 * most 16 hex digits and anything after them up to the line end is an
 * extension. Two different Content-Length values fail (RFC 9112 6.3; here
 * libcurl is made to agree, through hr__http_content_length()). A close
 * before a whole final status line is an empty reply, a close after it
 * and before the empty line a weird one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

void hr__http_parse_init(struct hr__http_parser *p, bool no_body,
			 hr__http_body_cb body, void *payload)
{
	memset(p, 0, sizeof(*p));
	p->state = HR__P_STATUS;
	p->no_body = no_body;
	p->content_length = -1;
	p->body = body;
	p->payload = payload;
}

void hr__http_parse_dispose(struct hr__http_parser *p)
{
	free(p->span);
	free(p->location);
	p->span = p->location = NULL;
	p->span_len = p->span_cap = 0;
}

static int fail(struct hr__http_parser *p, enum hr__http_fail f)
{
	p->fail = f;
	return HR__HTTP_FAILED;
}

static void body_out(struct hr__http_parser *p, const char *s, size_t n)
{
	p->body_total += (int64_t)n;
	if (n && p->body)
		p->body(s, n, p->payload);
}

/* Keep part of a line that spans feeds; within the head limit. */
static int span_add(struct hr__http_parser *p, const char *s, size_t n)
{
	size_t need = p->span_len + n;

	if (need > p->span_cap) {
		size_t cap = p->span_cap ? p->span_cap * 2 : 256;
		char *b;

		while (cap < need)
			cap *= 2;
		b = realloc(p->span, cap);
		if (!b)
			return -1;
		p->span = b;
		p->span_cap = cap;
	}
	memcpy(p->span + p->span_len, s, n);
	p->span_len = need;
	return 0;
}

/*
 * The next whole line of a head from [*s, e) into *line, *len (without
 * the LF): HR__HTTP_DONE with a line, HR__HTTP_MORE when the bytes ran
 * out (what there was is kept for the next feed), or HR__HTTP_FAILED.
 */
static int head_line(struct hr__http_parser *p, const char **s,
		     const char *e, const char **line, size_t *len)
{
	const char *b = *s, *nl = memchr(b, '\n', (size_t)(e - b));
	size_t n = (size_t)((nl ? nl + 1 : e) - b);

	if (n > HR__HTTP_HEAD_MAX - p->head_bytes)
		return fail(p, HR__HTTP_E_HEAD_TOO_LARGE);
	if (memchr(b, '\0', n))
		return fail(p, HR__HTTP_E_NUL_HEADER);
	p->head_bytes += n;
	*s = b + n;
	if (!nl)
		return span_add(p, b, n) ? fail(p, HR__HTTP_E_OOM)
					 : HR__HTTP_MORE;
	if (!p->span_len) {
		*line = b;
		*len = n - 1;
		return HR__HTTP_DONE;
	}
	if (span_add(p, b, n - 1))
		return fail(p, HR__HTTP_E_OOM);
	*line = p->span;
	*len = p->span_len;
	return HR__HTTP_DONE;
}

/* Whether the first bytes of a status line cannot be "HTTP/". */
static bool status_prefix_bad(const struct hr__http_parser *p,
			      const char *s, const char *e)
{
	static const char want[] = "HTTP/";
	size_t i;

	for (i = 0; p->span_len + i < 5 && s + i < e; i++)
		if (s[i] != want[p->span_len + i])
			return true;
	return false;
}

void hr__http_status_reason(const char *line, size_t n, char *reason,
			    size_t len)
{
	const char *e = line + n, *sp = memchr(line, ' ', n);
	size_t i = 0;

	if (sp)
		sp = memchr(sp + 1, ' ', (size_t)(e - sp - 1));
	if (sp)
		for (sp++; sp + i < e && i + 1 < len && sp[i] != '\r' &&
			   sp[i] != '\n'; i++)
			reason[i] = sp[i];
	reason[i] = '\0';
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* "HTTP/1.x NNN[ reason]" */
static int parse_status(struct hr__http_parser *p, const char *l, size_t n)
{
	if (n < 12 || strncmp(l, "HTTP/1.", 7) || l[8] != ' ' ||
	    !is_digit(l[9]) || !is_digit(l[10]) || !is_digit(l[11]))
		return fail(p, HR__HTTP_E_HTTP09);
	p->code = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	hr__http_status_reason(l, n, p->reason, sizeof(p->reason));
	p->content_length = -1;
	p->chunked = false;
	free(p->location);
	p->location = NULL;
	p->state = HR__P_HEADER;
	return HR__HTTP_MORE;
}

/* A Content-Length value: 0 with *cl (-1: too large, ignored), -1 when
 * it does not start with a digit. */
static int length_value(const char *v, size_t n, int64_t *cl)
{
	size_t i;

	if (!n || !is_digit(v[0]))
		return -1;
	*cl = 0;
	for (i = 0; i < n && is_digit(v[i]); i++) {
		int d = v[i] - '0';

		if (*cl > (INT64_MAX - d) / 10) {
			*cl = -1;
			return 0;
		}
		*cl = *cl * 10 + d;
	}
	return 0;
}

static int parse_length(struct hr__http_parser *p, const char *v, size_t n)
{
	int64_t cl;

	if (length_value(v, n, &cl))
		return fail(p, HR__HTTP_E_BAD_LENGTH);
	if (cl < 0)
		return HR__HTTP_MORE; /* too large: ignored */
	if (p->content_length >= 0 && p->content_length != cl)
		return fail(p, HR__HTTP_E_BAD_LENGTH);
	p->content_length = cl;
	return HR__HTTP_MORE;
}

/* The empty line: skip an interim response, else pick the body's frame. */
static int head_done(struct hr__http_parser *p)
{
	int code = p->code;

	if (code >= 100 && code < 200 && code != 101) {
		p->state = HR__P_STATUS;
		return HR__HTTP_MORE;
	}
	if (p->chunked)
		p->content_length = -1;
	if (p->no_body || code == 204 || code == 304 || code == 101 ||
	    p->content_length == 0) {
		p->state = HR__P_DONE;
		return HR__HTTP_DONE;
	}
	if (p->chunked) {
		p->state = HR__P_CHUNK_HEX;
		p->remaining = 0;
		p->hex_digits = 0;
	} else if (p->content_length > 0) {
		p->state = HR__P_BODY_LEN;
		p->remaining = p->content_length;
	} else {
		p->state = HR__P_BODY_EOF;
	}
	return HR__HTTP_MORE;
}

static bool name_is(const char *l, size_t n, const char *name)
{
	return strlen(name) == n && !strncasecmp(l, name, n);
}

/* A header line without its LF: the name's length and the value without
 * surrounding blanks; false when it has no colon. */
static bool header_split(const char *l, size_t n, size_t *name_len,
			 const char **v, size_t *vlen)
{
	const char *colon, *b, *e;

	if (n && l[n - 1] == '\r')
		n--;
	colon = memchr(l, ':', n);
	if (!colon)
		return false;
	e = l + n;
	for (b = colon + 1; b < e && (*b == ' ' || *b == '\t'); b++)
		;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*name_len = (size_t)(colon - l);
	*v = b;
	*vlen = (size_t)(e - b);
	return true;
}

int hr__http_content_length(const char *line, size_t n, int64_t *cl)
{
	const char *v;
	size_t name_len, vlen;

	if (n && line[n - 1] == '\n')
		n--;
	if (!header_split(line, n, &name_len, &v, &vlen) ||
	    !name_is(line, name_len, "Content-Length"))
		return 0;
	return length_value(v, vlen, cl) ? -1 : 1;
}

static int parse_header(struct hr__http_parser *p, const char *l, size_t n)
{
	const char *v;
	size_t name_len, vlen;

	if (n == 0 || (n == 1 && l[0] == '\r'))
		return head_done(p);
	if (!header_split(l, n, &name_len, &v, &vlen))
		return l[0] == ' ' || l[0] == '\t' ? HR__HTTP_MORE
						   : fail(p, HR__HTTP_E_NO_COLON);
	if (name_is(l, name_len, "Content-Length"))
		return parse_length(p, v, vlen);
	if (name_is(l, name_len, "Transfer-Encoding"))
		p->chunked = vlen >= 7 &&
			     !strncasecmp(v + vlen - 7, "chunked", 7);
	else if (name_is(l, name_len, "Location") && p->code >= 300 &&
		 p->code < 400 && p->code != 304 && vlen) {
		free(p->location);
		p->location = strndup(v, vlen);
		if (!p->location)
			return fail(p, HR__HTTP_E_OOM);
	}
	return HR__HTTP_MORE;
}

static int head_step(struct hr__http_parser *p, const char **s,
		     const char *e)
{
	const char *line = NULL;
	size_t n = 0;
	int rc;

	if (p->state == HR__P_STATUS && status_prefix_bad(p, *s, e))
		return fail(p, HR__HTTP_E_HTTP09);
	rc = head_line(p, s, e, &line, &n);
	if (rc != HR__HTTP_DONE)
		return rc;
	if (p->state == HR__P_STATUS)
		rc = parse_status(p, line, n);
	else
		rc = parse_header(p, line, n);
	p->span_len = 0;
	return rc;
}

/* Up to p->remaining body bytes from [*s, e). */
static void take_remaining(struct hr__http_parser *p, const char **s,
			   const char *e)
{
	size_t k = (size_t)(e - *s);

	if ((int64_t)k > p->remaining)
		k = (size_t)p->remaining;
	body_out(p, *s, k);
	*s += k;
	p->remaining -= (int64_t)k;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int chunk_hex(struct hr__http_parser *p, const char **s)
{
	int d = hex_value(**s);

	if (d < 0) {
		if (!p->hex_digits)
			return fail(p, HR__HTTP_E_CHUNK_HEX);
		p->state = HR__P_CHUNK_EXT;
		return HR__HTTP_MORE;
	}
	if (p->hex_digits == 16)
		return fail(p, HR__HTTP_E_CHUNK_TOO_LONG);
	if (p->remaining > (INT64_MAX - d) / 16)
		return fail(p, HR__HTTP_E_CHUNK_HEX);
	p->remaining = p->remaining * 16 + d;
	p->hex_digits++;
	(*s)++;
	return HR__HTTP_MORE;
}

/* Skip to past the next LF; true when found. */
static bool skip_line(const char **s, const char *e)
{
	const char *nl = memchr(*s, '\n', (size_t)(e - *s));

	*s = nl ? nl + 1 : e;
	return nl != NULL;
}

static int chunk_step(struct hr__http_parser *p, const char **s,
		      const char *e)
{
	char ch;

	switch (p->state) {
	case HR__P_CHUNK_HEX:
		return chunk_hex(p, s);
	case HR__P_CHUNK_EXT:
		if (skip_line(s, e))
			p->state = p->remaining ? HR__P_CHUNK_DATA
						: HR__P_TRAILER;
		return HR__HTTP_MORE;
	case HR__P_CHUNK_DATA:
		take_remaining(p, s, e);
		if (!p->remaining)
			p->state = HR__P_CHUNK_POSTLF;
		return HR__HTTP_MORE;
	case HR__P_CHUNK_POSTLF:
		ch = *(*s)++;
		if (ch == '\n') {
			p->state = HR__P_CHUNK_HEX;
			p->hex_digits = 0;
		} else if (ch != '\r') {
			return fail(p, HR__HTTP_E_CHUNK_BAD);
		}
		return HR__HTTP_MORE;
	case HR__P_TRAILER:
		ch = **s;
		if (ch != '\r' && ch != '\n') {
			p->state = HR__P_TRAILER_LINE;
			return HR__HTTP_MORE;
		}
		(*s)++;
		p->state = ch == '\r' ? HR__P_TRAILER_CR : HR__P_DONE;
		return ch == '\r' ? HR__HTTP_MORE : HR__HTTP_DONE;
	case HR__P_TRAILER_LINE:
		if (skip_line(s, e))
			p->state = HR__P_TRAILER;
		return HR__HTTP_MORE;
	default: /* HR__P_TRAILER_CR */
		if (*(*s)++ != '\n')
			return fail(p, HR__HTTP_E_CHUNK_BAD);
		p->state = HR__P_DONE;
		return HR__HTTP_DONE;
	}
}

static int step(struct hr__http_parser *p, const char **s, const char *e)
{
	switch (p->state) {
	case HR__P_STATUS:
	case HR__P_HEADER:
		return head_step(p, s, e);
	case HR__P_BODY_LEN:
		take_remaining(p, s, e);
		if (p->remaining)
			return HR__HTTP_MORE;
		p->state = HR__P_DONE;
		return HR__HTTP_DONE;
	case HR__P_BODY_EOF:
		body_out(p, *s, (size_t)(e - *s));
		*s = e;
		return HR__HTTP_MORE;
	case HR__P_DONE:
		return HR__HTTP_DONE;
	default:
		return chunk_step(p, s, e);
	}
}

int hr__http_parse_feed(struct hr__http_parser *p, const char *buf,
			size_t n)
{
	const char *s = buf, *e = buf + n;
	int rc = HR__HTTP_MORE;

	if (p->fail)
		return HR__HTTP_FAILED;
	if (p->state == HR__P_DONE)
		return HR__HTTP_DONE;
	while (rc == HR__HTTP_MORE && s < e)
		rc = step(p, &s, e);
	return rc;
}

int hr__http_parse_eof(struct hr__http_parser *p)
{
	if (p->fail)
		return HR__HTTP_FAILED;
	switch (p->state) {
	case HR__P_DONE:
		return HR__HTTP_DONE;
	case HR__P_BODY_EOF:
		p->state = HR__P_DONE;
		return HR__HTTP_DONE;
	case HR__P_STATUS: /* nothing, or not a whole status line: libcurl's
			    * "Empty reply", whose callbacks see whole lines */
		return fail(p, HR__HTTP_E_EMPTY);
	case HR__P_HEADER:
		return fail(p, HR__HTTP_E_WEIRD);
	case HR__P_BODY_LEN:
		return fail(p, HR__HTTP_E_PARTIAL);
	default:
		return fail(p, HR__HTTP_E_PARTIAL_CHUNKED);
	}
}

/* ---- URL ---------------------------------------------------------------- */

static int url_port(const char *colon, const char *end, unsigned *port)
{
	unsigned long v = 0;
	const char *d;

	if (colon + 1 == end || end - colon > 6)
		return -1;
	for (d = colon + 1; d < end; d++) {
		if (!is_digit(*d))
			return -1;
		v = v * 10 + (unsigned long)(*d - '0');
	}
	if (!v || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

int hr__http_url_split(const char *url, struct hr__http_url *u)
{
	const char *a, *end, *at, *colon = NULL;

	memset(u, 0, sizeof(*u));
	if (!strncasecmp(url, "http://", 7)) {
		a = url + 7;
		u->port = 80;
	} else if (!strncasecmp(url, "https://", 8)) {
		a = url + 8;
		u->port = 443;
		u->https = true;
	} else {
		return -1;
	}
	end = a + strcspn(a, "/?#");
	at = memrchr(a, '@', (size_t)(end - a));
	if (at) {
		u->has_userinfo = true;
		a = at + 1;
	}
	if (*a == '[') {
		const char *close = memchr(a, ']', (size_t)(end - a));

		if (!close || (close + 1 < end && close[1] != ':'))
			return -1;
		u->bracketed = true;
		u->host = a + 1;
		u->host_len = (size_t)(close - a - 1);
		colon = close + 1 < end ? close + 1 : NULL;
	} else {
		colon = memchr(a, ':', (size_t)(end - a));
		u->host = a;
		u->host_len = (size_t)((colon ? colon : end) - a);
	}
	if (colon) {
		if (url_port(colon, end, &u->port))
			return -1;
		u->port_given = true;
	}
	u->path = end;
	return 0;
}
