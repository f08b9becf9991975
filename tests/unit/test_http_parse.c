/*
 * The pure HTTP/1.1 response parser (lib/http_parse.c). Every input is fed
 * whole, split in two at every byte position, and byte by byte (each piece
 * in its own heap buffer, so that ASan sees a read past a piece or a body
 * pointer kept beyond its feed), and every way must give the same result.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

struct outcome {
	int rc;
	enum hr__http_fail fail;
	int code;
	char reason[HR__HTTP_REASON_MAX];
	char *body;
	size_t body_len;
	int64_t body_total;
	int64_t content_length;
	char *location;
	size_t span_cap;
};

static void on_body(const char *p, size_t n, void *payload)
{
	struct outcome *o = payload;

	o->body = realloc(o->body, o->body_len + n + 1);
	cr_assert_not_null(o->body);
	memcpy(o->body + o->body_len, p, n);
	o->body_len += n;
	o->body[o->body_len] = '\0';
}

/* Feed in[0..n) cut at cuts[] (ascending), then EOF if eof. */
static void run(const char *in, size_t n, const size_t *cuts, size_t ncuts,
		bool no_body, bool eof, struct outcome *o)
{
	struct hr__http_parser p;
	size_t i, from = 0;
	int rc = HR__HTTP_MORE;

	memset(o, 0, sizeof(*o));
	hr__http_parse_init(&p, no_body, on_body, o);
	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		char *piece = malloc(to - from + 1);

		cr_assert_not_null(piece);
		memcpy(piece, in + from, to - from);
		rc = hr__http_parse_feed(&p, piece, to - from);
		free(piece);
		from = to;
		if (rc != HR__HTTP_MORE)
			break;
	}
	if (rc == HR__HTTP_MORE && eof)
		rc = hr__http_parse_eof(&p);
	o->rc = rc;
	o->fail = rc == HR__HTTP_FAILED ? p.fail : HR__HTTP_OK;
	o->code = p.code;
	memcpy(o->reason, p.reason, sizeof(o->reason));
	o->body_total = p.body_total;
	o->content_length = p.content_length;
	o->location = p.location ? strdup(p.location) : NULL;
	o->span_cap = p.span_cap;
	hr__http_parse_dispose(&p);
}

static void outcome_free(struct outcome *o)
{
	free(o->body);
	free(o->location);
}

static void same(const struct outcome *a, const struct outcome *b,
		 const char *name, const char *how)
{
	cr_assert_eq(a->rc, b->rc, "%s (%s): rc %d vs %d", name, how, a->rc,
		     b->rc);
	cr_assert_eq(a->fail, b->fail, "%s (%s): fail %d vs %d", name, how,
		     a->fail, b->fail);
	if (a->rc == HR__HTTP_FAILED)
		return;
	cr_assert_eq(a->code, b->code, "%s (%s)", name, how);
	cr_assert_str_eq(a->reason, b->reason, "%s (%s)", name, how);
	cr_assert_eq(a->body_len, b->body_len, "%s (%s): body %zu vs %zu",
		     name, how, a->body_len, b->body_len);
	cr_assert(!a->body_len || !memcmp(a->body, b->body, a->body_len),
		  "%s (%s): body differs", name, how);
	cr_assert_eq(a->body_total, b->body_total, "%s (%s)", name, how);
	cr_assert_eq(!a->location, !b->location, "%s (%s)", name, how);
	if (a->location)
		cr_assert_str_eq(a->location, b->location, "%s (%s)", name,
				 how);
}

/*
 * Whole, every two-way split (every stride-th one for long inputs) and
 * byte by byte; returns the whole-feed outcome (caller frees).
 */
static struct outcome feed_all_ways(const char *name, const char *in,
				    size_t n, bool no_body, bool eof)
{
	struct outcome whole, o;
	size_t cut, stride = n > 32768 ? 61 : 1, *cuts, i;
	char how[64];

	run(in, n, NULL, 0, no_body, eof, &whole);
	for (cut = 0; cut <= n; cut += stride) {
		run(in, n, &cut, 1, no_body, eof, &o);
		snprintf(how, sizeof(how), "split at %zu", cut);
		same(&whole, &o, name, how);
		outcome_free(&o);
	}
	cuts = malloc((n + 1) * sizeof(*cuts));
	cr_assert_not_null(cuts);
	for (i = 0; i < n; i++)
		cuts[i] = i + 1;
	run(in, n, cuts, n ? n - 1 : 0, no_body, eof, &o);
	same(&whole, &o, name, "byte by byte");
	outcome_free(&o);
	free(cuts);
	return whole;
}

struct good {
	const char *name, *in;
	bool no_body, eof;
	int code;
	const char *reason, *body, *location;
};

static const struct good goods[] = {
	{ "content-length",
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, false,
	  200, "OK", "hello", NULL },
	{ "bytes after the body are ignored",
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false, false,
	  200, "OK", "ok", NULL },
	{ "chunked, extensions, trailers",
	  "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
	  "3;ext=1\r\nhel\r\n2;a=\"b c\"\r\nlo\r\n0\r\nTrailer: t\r\n"
	  "X: y\r\n\r\n", false, false, 200, "OK", "hello", NULL },
	{ "chunked, LF only, upper-case hex",
	  "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\nA\n0123456789\n0\n\n",
	  false, false, 200, "OK", "0123456789", NULL },
	{ "chunked wins over Content-Length",
	  "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: "
	  "chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, false, 200, "OK", "ok",
	  NULL },
	{ "204", "HTTP/1.1 204 No Content\r\n\r\nignored", false, false, 204,
	  "No Content", "", NULL },
	{ "304 with a length",
	  "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false,
	  false, 304, "Not Modified", "", NULL },
	{ "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, false,
	  200, "OK", "", NULL },
	{ "Content-Length 0", "HTTP/1.1 503 Down\r\nContent-Length: 0\r\n\r\n",
	  false, false, 503, "Down", "", NULL },
	{ "until close", "HTTP/1.0 200 OK\r\n\r\nuntil close", false, true,
	  200, "OK", "until close", NULL },
	{ "too long a length is ignored: until close",
	  "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nab",
	  false, true, 200, "OK", "ab", NULL },
	{ "the same length twice",
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	  false, false, 200, "OK", "ok", NULL },
	{ "interim responses skipped",
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x"
	  "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false,
	  false, 200, "OK", "ok", NULL },
	{ "redirect",
	  "HTTP/1.1 302 Found\r\nLocation:  /next?a=1 \r\nContent-Length: 0"
	  "\r\n\r\n", false, false, 302, "Found", "", "/next?a=1" },
	{ "no Location kept for a 200",
	  "HTTP/1.1 200 OK\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
	  false, false, 200, "OK", "", NULL },
	{ "no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false,
	  false, 200, "", "", NULL },
	{ "folded header line",
	  "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 1\r\n\r\n!",
	  false, false, 200, "OK", "!", NULL },
	{ "binary body", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na\0b",
	  false, false, 200, "OK", "a\0b", NULL },
};

static size_t good_len(const struct good *g)
{
	/* "binary body" holds a NUL: its length is where its body ends */
	if (!strcmp(g->name, "binary body"))
		return strlen(g->in) + 2;
	return strlen(g->in);
}

Test(http_parse, good_responses_every_split)
{
	size_t i;

	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t blen = !strcmp(g->name, "binary body") ? 3
							      : strlen(g->body);
		struct outcome o = feed_all_ways(g->name, g->in, good_len(g),
						 g->no_body, g->eof);

		cr_assert_eq(o.rc, HR__HTTP_DONE, "%s: rc %d fail %d", g->name,
			     o.rc, o.fail);
		cr_assert_eq(o.code, g->code, "%s", g->name);
		cr_assert_str_eq(o.reason, g->reason, "%s", g->name);
		cr_assert_eq(o.body_len, blen, "%s: body %zu", g->name,
			     o.body_len);
		cr_assert(!blen || !memcmp(o.body, g->body, blen), "%s",
			  g->name);
		cr_assert_eq(o.body_total, (int64_t)blen, "%s", g->name);
		if (g->location)
			cr_assert_str_eq(o.location, g->location, "%s", g->name);
		else
			cr_assert_null(o.location, "%s", g->name);
		outcome_free(&o);
	}
}

struct bad {
	const char *name, *in;
	bool eof;
	enum hr__http_fail fail;
};

static const struct bad bads[] = {
	{ "garbage", "garbage\r\n\r\n", false, HR__HTTP_E_HTTP09 },
	{ "garbage, fails before a line end", "HTXP/1.1", false,
	  HR__HTTP_E_HTTP09 },
	{ "bad status code", "HTTP/1.1 2x0 OK\r\n\r\n", false,
	  HR__HTTP_E_HTTP09 },
	{ "short status line", "HTTP/1.1 20\r\n\r\n", false,
	  HR__HTTP_E_HTTP09 },
	{ "HTTP/2 in clear text", "HTTP/2 200\r\n\r\n", false,
	  HR__HTTP_E_HTTP09 },
	{ "negative length", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
	  false, HR__HTTP_E_BAD_LENGTH },
	{ "length not a number",
	  "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", false,
	  HR__HTTP_E_BAD_LENGTH },
	{ "empty length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", false,
	  HR__HTTP_E_BAD_LENGTH },
	{ "conflicting lengths",
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"
	  "okk", false, HR__HTTP_E_BAD_LENGTH },
	{ "bad chunk size",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
	  HR__HTTP_E_CHUNK_HEX },
	{ "chunk size of 17 digits",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "00000000000000001\r\n", false, HR__HTTP_E_CHUNK_TOO_LONG },
	{ "chunk size over 63 bits",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "8000000000000000\r\n", false, HR__HTTP_E_CHUNK_HEX },
	{ "no CRLF after a chunk",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n",
	  false, HR__HTTP_E_CHUNK_BAD },
	{ "CR without LF at the end",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rX",
	  false, HR__HTTP_E_CHUNK_BAD },
	{ "header without colon",
	  "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n", false,
	  HR__HTTP_E_NO_COLON },
	{ "empty reply", "", true, HR__HTTP_E_EMPTY },
	{ "empty after an interim response", "HTTP/1.1 100 Continue\r\n\r\n",
	  true, HR__HTTP_E_EMPTY },
	/* libcurl's words for both: its callbacks only see whole lines */
	{ "closed in the status line", "HTTP/1.1 200", true, HR__HTTP_E_EMPTY },
	{ "closed in the status line after an interim response",
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", true, HR__HTTP_E_EMPTY },
	{ "closed after the status line", "HTTP/1.1 200 OK\r\n", true,
	  HR__HTTP_E_WEIRD },
	{ "closed in the empty line",
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r", true,
	  HR__HTTP_E_WEIRD },
	{ "conflicting lengths, one chunked",
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: "
	  "chunked\r\nContent-Length: 7\r\n\r\n0\r\n\r\n", false,
	  HR__HTTP_E_BAD_LENGTH },
	{ "length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
	  false, HR__HTTP_E_BAD_LENGTH },
	{ "closed in the head", "HTTP/1.1 200 OK\r\nX-A: b", true,
	  HR__HTTP_E_WEIRD },
	{ "closed in the body",
	  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true,
	  HR__HTTP_E_PARTIAL },
	{ "closed in a chunk",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true,
	  HR__HTTP_E_PARTIAL_CHUNKED },
	{ "closed in the trailer",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y",
	  true, HR__HTTP_E_PARTIAL_CHUNKED },
};

Test(http_parse, bad_responses_every_split)
{
	size_t i;

	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		struct outcome o = feed_all_ways(b->name, b->in, strlen(b->in),
						 false, b->eof);

		cr_assert_eq(o.rc, HR__HTTP_FAILED, "%s: rc %d", b->name, o.rc);
		cr_assert_eq(o.fail, b->fail, "%s: fail %d, want %d", b->name,
			     o.fail, b->fail);
		outcome_free(&o);
	}
}

Test(http_parse, partial_body_counts)
{
	static const char in[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	struct outcome o = feed_all_ways("short", in, strlen(in), false, true);

	cr_assert_eq(o.fail, HR__HTTP_E_PARTIAL);
	cr_assert_eq(o.content_length, 10);
	cr_assert_eq(o.body_total, 3);
	outcome_free(&o);
}

Test(http_parse, nul_in_header)
{
	static const char in[] =
		"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n";
	struct outcome o = feed_all_ways("nul", in, sizeof(in) - 1, false,
					 false);

	cr_assert_eq(o.fail, HR__HTTP_E_NUL_HEADER, "fail %d", o.fail);
	outcome_free(&o);
}

/* A response whose head is n bytes long (a 200 with an empty body). */
static char *head_of(size_t n, size_t *len)
{
	static const char pre[] = "HTTP/1.1 200 OK\r\nX-Big: ";
	static const char post[] = "\r\nContent-Length: 0\r\n\r\n";
	size_t fill = n - (sizeof(pre) - 1) - (sizeof(post) - 1);
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memcpy(s, pre, sizeof(pre) - 1);
	memset(s + sizeof(pre) - 1, 'y', fill);
	memcpy(s + sizeof(pre) - 1 + fill, post, sizeof(post));
	*len = n;
	return s;
}

Test(http_parse, head_limit_exact_and_one_over, .timeout = 60)
{
	size_t n;
	char *in = head_of(HR__HTTP_HEAD_MAX, &n);
	struct outcome o = feed_all_ways("at the limit", in, n, false, false);

	cr_assert_eq(o.rc, HR__HTTP_DONE, "fail %d", o.fail);
	cr_assert(o.span_cap <= HR__HTTP_HEAD_MAX * 2);
	outcome_free(&o);
	free(in);
	in = head_of(HR__HTTP_HEAD_MAX + 1, &n);
	o = feed_all_ways("over the limit", in, n, false, false);
	cr_assert_eq(o.fail, HR__HTTP_E_HEAD_TOO_LARGE, "fail %d", o.fail);
	outcome_free(&o);
	free(in);
}

Test(http_parse, many_header_lines_count_together, .timeout = 60)
{
	/* 160 lines of 1 KB: each line is small, the head is not */
	size_t len = 0, i;
	char *in = malloc(200 * 1024);

	cr_assert_not_null(in);
	len += (size_t)sprintf(in, "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < 160; i++) {
		len += (size_t)sprintf(in + len, "X-H%zu: ", i);
		memset(in + len, 'y', 1000);
		len += 1000;
		len += (size_t)sprintf(in + len, "\r\n");
	}
	len += (size_t)sprintf(in + len, "Content-Length: 2\r\n\r\nok");
	struct outcome o = feed_all_ways("160 KB of headers", in, len, false,
					 false);
	cr_assert_eq(o.fail, HR__HTTP_E_HEAD_TOO_LARGE, "fail %d", o.fail);
	outcome_free(&o);
	free(in);
}

Test(http_parse, interim_flood_is_capped_without_growing, .timeout = 60)
{
	static const char one[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t k = HR__HTTP_HEAD_MAX / (sizeof(one) - 1) + 2, i, n = 0;
	char *in = malloc(k * (sizeof(one) - 1) + 1);
	struct outcome o;

	cr_assert_not_null(in);
	for (i = 0; i < k; i++) {
		memcpy(in + n, one, sizeof(one) - 1);
		n += sizeof(one) - 1;
	}
	o = feed_all_ways("100 Continue, repeated", in, n, false, false);
	cr_assert_eq(o.fail, HR__HTTP_E_HEAD_TOO_LARGE, "fail %d", o.fail);
	outcome_free(&o);
	/* byte by byte, the only buffer holds at most one line */
	{
		size_t *cuts = malloc(n * sizeof(*cuts));

		cr_assert_not_null(cuts);
		for (i = 0; i + 1 < n; i++)
			cuts[i] = i + 1;
		run(in, n, cuts, n - 1, false, false, &o);
		cr_assert_eq(o.fail, HR__HTTP_E_HEAD_TOO_LARGE);
		cr_assert(o.span_cap <= 256, "span grew to %zu", o.span_cap);
		outcome_free(&o);
		free(cuts);
	}
	free(in);
}

Test(http_parse, after_done_or_failed_nothing_more)
{
	struct hr__http_parser p;

	hr__http_parse_init(&p, false, NULL, NULL);
	cr_assert_eq(hr__http_parse_feed(&p, "HTTP/1.1 204 X\r\n\r\n", 18),
		     HR__HTTP_DONE);
	cr_assert_eq(hr__http_parse_feed(&p, "garbage", 7), HR__HTTP_DONE);
	cr_assert_eq(hr__http_parse_eof(&p), HR__HTTP_DONE);
	hr__http_parse_dispose(&p);
	hr__http_parse_init(&p, false, NULL, NULL);
	cr_assert_eq(hr__http_parse_feed(&p, "x", 1), HR__HTTP_FAILED);
	cr_assert_eq(hr__http_parse_feed(&p, "HTTP/1.1 200 OK\r\n", 17),
		     HR__HTTP_FAILED);
	cr_assert_eq(hr__http_parse_eof(&p), HR__HTTP_FAILED);
	cr_assert_eq(p.fail, HR__HTTP_E_HTTP09);
	hr__http_parse_dispose(&p);
}

Test(http_parse, status_reason)
{
	char r[8];

	hr__http_status_reason("HTTP/1.1 200 OK\r\n", 17, r, sizeof(r));
	cr_assert_str_eq(r, "OK");
	hr__http_status_reason("HTTP/2 200 \r\n", 13, r, sizeof(r));
	cr_assert_str_eq(r, "");
	hr__http_status_reason("HTTP/1.1 200", 12, r, sizeof(r));
	cr_assert_str_eq(r, "");
	hr__http_status_reason("HTTP/1.1 503 Service Unavailable", 32, r,
			       sizeof(r));
	cr_assert_str_eq(r, "Service"); /* cut to fit */
}

Test(http_parse, url_split)
{
	struct hr__http_url u;

	cr_assert_eq(hr__http_url_split("http://127.0.0.1:8080/a?b", &u), 0);
	cr_assert_eq(u.host_len, 9);
	cr_assert(!strncmp(u.host, "127.0.0.1", 9));
	cr_assert_eq(u.port, 8080);
	cr_assert(u.port_given && !u.bracketed && !u.https);
	cr_assert_str_eq(u.path, "/a?b");
	cr_assert_eq(hr__http_url_split("https://user@[::1]/x", &u), 0);
	cr_assert(u.https && u.bracketed && u.has_userinfo && !u.port_given);
	cr_assert_eq(u.port, 443);
	cr_assert(u.host_len == 3 && !strncmp(u.host, "::1", 3));
	cr_assert_eq(hr__http_url_split("http://h", &u), 0);
	cr_assert_eq(u.port, 80);
	cr_assert_str_eq(u.path, "");
	cr_assert_eq(hr__http_url_split("ftp://h/", &u), -1);
	cr_assert_eq(hr__http_url_split("http://h:/", &u), -1);
	cr_assert_eq(hr__http_url_split("http://h:0/", &u), -1);
	cr_assert_eq(hr__http_url_split("http://h:65536/", &u), -1);
	cr_assert_eq(hr__http_url_split("http://[::1/", &u), -1);
	cr_assert_eq(hr__http_url_split("http://[::1]x/", &u), -1);
}

/* The parser's Content-Length rule, as libcurl's header callback asks it. */
Test(http_parse, content_length_line)
{
	static const struct {
		const char *line;
		int rc;
		int64_t cl;
	} cases[] = {
		{ "Content-Length: 5\r\n", 1, 5 },
		{ "content-length:5", 1, 5 },
		{ "Content-Length: 0 \r\n", 1, 0 },
		{ "Content-Length: 99999999999999999999\r\n", 1, -1 },
		{ "Content-Length: -5\r\n", -1, 0 },
		{ "Content-Length: +5\r\n", -1, 0 },
		{ "Content-Length:\r\n", -1, 0 },
		{ "Content-Length : 5\r\n", 0, 0 },
		{ "X-Content-Length: 5\r\n", 0, 0 },
		{ "HTTP/1.1 200 OK\r\n", 0, 0 },
		{ "\r\n", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t cl = 0;
		int rc = hr__http_content_length(cases[i].line,
						 strlen(cases[i].line), &cl);

		cr_assert_eq(rc, cases[i].rc, "%s: rc %d", cases[i].line, rc);
		if (rc == 1)
			cr_assert_eq(cl, cases[i].cl, "%s: %lld", cases[i].line,
				     (long long)cl);
	}
}
