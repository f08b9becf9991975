/*
 * fuzz_http_parse.c - the HTTP/1.1 response parser (lib/http_parse.c) on
 * any bytes, fed whole and in up to three pieces.
 *
 * Input: byte 0 holds the flags (bit 0: the response to a HEAD, bit 1:
 * the peer closes after the last byte), bytes 1-4 two cut points (taken
 * modulo the length); the rest is what the server sent. Each piece is
 * fed from its own heap buffer of exactly its size, so ASan sees a read
 * past a piece or a body pointer kept beyond its feed.
 *
 * Properties: every split gives the same verdict as one whole feed (the
 * result, failure class, status code, reason, Content-Length, body bytes
 * and Location); the body callback saw body_total bytes; a complete
 * Content-Length body (not a HEAD's, a 1xx's, 204's or 304's) has exactly
 * that length.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
	int rc;
	enum hr__http_fail fail;
	int code;
	char reason[HR__HTTP_REASON_MAX];
	bool chunked;
	int64_t content_length, body_total;
	char *body;
	size_t body_len;
	char *location;
};

static void on_body(const char *p, size_t n, void *payload)
{
	struct outcome *o = payload;

	FUZZ_CHECK(n > 0, "a body callback with no bytes");
	o->body = realloc(o->body, o->body_len + n);
	FUZZ_CHECK(o->body != NULL, "realloc");
	memcpy(o->body + o->body_len, p, n);
	o->body_len += n;
}

static void run(const char *in, size_t n, const size_t *cuts, size_t ncuts,
		unsigned flags, struct outcome *o)
{
	struct hr__http_parser p;
	size_t i, from = 0;
	int rc = HR__HTTP_MORE;

	memset(o, 0, sizeof(*o));
	hr__http_parse_init(&p, flags & 1, on_body, o);
	for (i = 0; i <= ncuts && rc == HR__HTTP_MORE; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		char *piece = hr_fuzz_copy(in + from, to - from, false);

		rc = hr__http_parse_feed(&p, piece, to - from);
		free(piece);
		from = to;
	}
	if (rc == HR__HTTP_MORE && (flags & 2))
		rc = hr__http_parse_eof(&p);
	o->rc = rc;
	o->fail = rc == HR__HTTP_FAILED ? p.fail : HR__HTTP_OK;
	o->code = p.code;
	FUZZ_CHECK(memchr(p.reason, '\0', sizeof(p.reason)) != NULL,
		   "reason NUL-terminated");
	memcpy(o->reason, p.reason, sizeof(o->reason));
	o->chunked = p.chunked;
	o->content_length = p.content_length;
	o->body_total = p.body_total;
	o->location = p.location ? strdup(p.location) : NULL;
	FUZZ_CHECK(o->body_total >= 0 && (size_t)o->body_total == o->body_len,
		   "body_total counts the bytes the callback saw");
	if (rc == HR__HTTP_DONE && !(flags & 1) && !p.chunked &&
	    p.content_length >= 0 && p.code >= 200 && p.code != 204 &&
	    p.code != 304)
		FUZZ_CHECK(p.body_total == p.content_length,
			   "a complete body has Content-Length bytes");
	hr__http_parse_dispose(&p);
}

static void same(const struct outcome *a, const struct outcome *b)
{
	FUZZ_CHECK(a->rc == b->rc, "result");
	FUZZ_CHECK(a->fail == b->fail, "failure class");
	FUZZ_CHECK(a->code == b->code, "status code");
	FUZZ_CHECK(!strcmp(a->reason, b->reason), "reason");
	FUZZ_CHECK(a->chunked == b->chunked, "chunked");
	FUZZ_CHECK(a->content_length == b->content_length, "Content-Length");
	FUZZ_CHECK(a->body_len == b->body_len &&
		   (!a->body_len || !memcmp(a->body, b->body, a->body_len)),
		   "body bytes");
	FUZZ_CHECK(!a->location == !b->location &&
		   (!a->location || !strcmp(a->location, b->location)),
		   "Location");
}

static void outcome_free(struct outcome *o)
{
	free(o->body);
	free(o->location);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned flags = hr_fuzz_take(&data, &size);
	size_t cuts[2], c0, c1;
	struct outcome whole, split;

	c0 = hr_fuzz_take(&data, &size);
	c0 = c0 << 8 | hr_fuzz_take(&data, &size);
	c1 = hr_fuzz_take(&data, &size);
	c1 = c1 << 8 | hr_fuzz_take(&data, &size);
	c0 = size ? c0 % (size + 1) : 0;
	c1 = size ? c1 % (size + 1) : 0;
	cuts[0] = c0 < c1 ? c0 : c1;
	cuts[1] = c0 < c1 ? c1 : c0;
	run((const char *)data, size, NULL, 0, flags, &whole);
	run((const char *)data, size, cuts, 2, flags, &split);
	same(&whole, &split);
	outcome_free(&split);
	/* The second cut alone. */
	run((const char *)data, size, cuts + 1, 1, flags, &split);
	same(&whole, &split);
	outcome_free(&split);
	outcome_free(&whole);
	return 0;
}
