/*
 * The pure half of the grpc check (lib/grpc_wire.c): the request frame,
 * the HealthCheckResponse decoder, the frame reader (every input fed
 * whole, split in two at every byte and byte by byte, each piece in its
 * own heap buffer so that ASan sees a read past it), head and trailer
 * lines, grpc-message and grpc-timeout, and the verdict texts.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_wire.h"
#include "healthreg/util.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ })

/* ---- request --------------------------------------------------------- */

Test(grpc_wire, request_frames)
{
	const struct {
		const char *service;
		size_t n;
		const uint8_t *want;
	} cases[] = {
		/* proto3: the empty default is not written */
		{ "", 5, B(0, 0, 0, 0, 0) },
		{ "a", 8, B(0, 0, 0, 0, 3, 0x0a, 1, 'a') },
		{ "my.Service", 17,
		  B(0, 0, 0, 0, 12, 0x0a, 10, 'm', 'y', '.', 'S', 'e', 'r',
		    'v', 'i', 'c', 'e') },
	};
	uint8_t out[64];
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(cases); i++) {
		size_t len = strlen(cases[i].service);

		cr_assert_eq(hr__grpc_request(cases[i].service, len, NULL, 0),
			     cases[i].n, "%s", cases[i].service);
		memset(out, 0xee, sizeof(out));
		cr_assert_eq(hr__grpc_request(cases[i].service, len, out,
					      sizeof(out)),
			     cases[i].n);
		cr_assert_arr_eq(out, cases[i].want, cases[i].n, "%s",
				 cases[i].service);
		cr_assert_eq(out[cases[i].n], 0xee, "wrote past the frame");
	}
}

/* A 200-byte name: a two-byte length varint (200 = 0xc8 0x01). */
Test(grpc_wire, request_long_service)
{
	char name[201];
	uint8_t out[300];

	memset(name, 'x', 200);
	name[200] = '\0';
	cr_assert_eq(hr__grpc_request(name, 200, out, sizeof(out)), 208);
	cr_assert_arr_eq(out, B(0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01), 8);
	cr_assert_eq(out[8], 'x');
	cr_assert_eq(out[207], 'x');
	/* too small a buffer: sized, not written */
	memset(out, 0xee, sizeof(out));
	cr_assert_eq(hr__grpc_request(name, 200, out, 207), 208);
	cr_assert_eq(out[0], 0xee);
}

/* ---- response message ------------------------------------------------ */

struct msg_case {
	const char *name;
	const uint8_t *in;
	size_t n;
	int rc;
	int32_t status;
};

#define M(nm, rc, st, ...)                                                 \
	{ nm, B(__VA_ARGS__), sizeof(B(__VA_ARGS__)), rc, st }

Test(grpc_wire, health_decode_table)
{
	const struct msg_case msg_cases[] = {
		M("serving", 0, 1, 0x08, 0x01),
		M("not serving", 0, 2, 0x08, 0x02),
		M("service unknown", 0, 3, 0x08, 0x03),
		M("a value the enum lacks", 0, 7, 0x08, 0x07),
		M("multi-byte varint", 0, 300, 0x08, 0xac, 0x02),
		M("non-minimal varint", 0, 1, 0x08, 0x81, 0x80, 0x80, 0x00),
		M("negative (10 bytes)", 0, -1, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff, 0xff, 0xff, 0x01),
		M("int32 truncation", 0, 1, 0x08, 0x81, 0x80, 0x80, 0x80, 0x10),
		M("last one wins", 0, 2, 0x08, 0x01, 0x08, 0x02),
		M("unknown varint field", 0, 1, 0x10, 0x05, 0x08, 0x01),
		M("unknown bytes field", 0, 1, 0x1a, 0x02, 0xaa, 0xbb, 0x08, 0x01),
		M("unknown fixed64", 0, 1, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 0x01),
		M("unknown fixed32", 0, 1, 0x2d, 1, 2, 3, 4, 0x08, 0x01),
		M("big field number", 0, 1, 0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x08,
		  0x01),
		M("varint cut short", -EPROTO, 0, 0x08),
		M("varint continues at the end", -EPROTO, 0, 0x08, 0x80),
		M("key cut short", -EPROTO, 0, 0x08, 0x01, 0x88),
		M("varint of 11 bytes", -EPROTO, 0, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff, 0xff, 0xff, 0x81, 0x01),
		M("10th byte past 64 bits", -EPROTO, 0, 0x08, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff, 0xff, 0xff, 0xff, 0x02),
		M("field number 0", -EPROTO, 0, 0x00, 0x01),
		M("field number past 2^29", -EPROTO, 0, 0x80, 0x80, 0x80, 0x80, 0x10,
		  0x00),
		M("status as bytes", -EPROTO, 0, 0x0a, 0x01, 0x01),
		M("status as fixed32", -EPROTO, 0, 0x0d, 1, 0, 0, 0),
		M("length past the end", -EPROTO, 0, 0x1a, 0x05, 0xaa),
		M("length of 2^64-1", -EPROTO, 0, 0x1a, 0xff, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff, 0xff, 0xff, 0x01),
		M("fixed64 cut short", -EPROTO, 0, 0x21, 1, 2, 3),
		M("fixed32 cut short", -EPROTO, 0, 0x2d, 1),
		M("group start", -EPROTO, 0, 0x13, 0x14),
		M("group end", -EPROTO, 0, 0x14),
		M("wire type 6", -EPROTO, 0, 0x16, 0x00),
		M("wire type 7", -EPROTO, 0, 0x17, 0x00),
	};
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(msg_cases); i++) {
		const struct msg_case *c = &msg_cases[i];
		uint8_t *copy = malloc(c->n);
		int32_t st = 42;
		int rc;

		memcpy(copy, c->in, c->n);
		rc = hr__grpc_health_decode(copy, c->n, &st);
		free(copy);
		cr_expect_eq(rc, c->rc, "%s: rc %d", c->name, rc);
		if (!rc)
			cr_expect_eq(st, c->status, "%s: status %d", c->name,
				     st);
	}
}

Test(grpc_wire, health_decode_empty_is_unknown)
{
	int32_t st = 42;

	cr_assert_eq(hr__grpc_health_decode(NULL, 0, &st), 0);
	cr_assert_eq(st, HR__GRPC_SERVING_UNKNOWN);
}

/* ---- frame reader ---------------------------------------------------- */

struct got {
	enum hr__grpc_wire_err err;
	unsigned messages;
	int32_t status;
};

static void feed_cut(const uint8_t *in, size_t n, const size_t *cuts,
		     size_t ncuts, struct got *g)
{
	struct hr__grpc_reader *r = malloc(sizeof(*r));
	size_t i, from = 0;

	cr_assert_not_null(r);
	hr__grpc_reader_init(r);
	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		uint8_t *piece = malloc(to - from + 1);
		bool ok;

		if (to > from)
			memcpy(piece, in + from, to - from);
		ok = hr__grpc_reader_feed(r, piece, to - from);
		free(piece);
		from = to;
		cr_assert_eq(ok, r->err == HR__GRPC_W_OK);
		if (!ok)
			break;
	}
	hr__grpc_reader_end(r);
	g->err = r->err;
	g->messages = r->messages;
	g->status = r->status;
	free(r);
}

/* Whole, every split in two, byte by byte: the same outcome. */
static void feed_all_ways(const char *name, const uint8_t *in, size_t n,
			  struct got *want)
{
	size_t *cuts = malloc((n + 1) * sizeof(*cuts));
	struct got g;
	size_t i;

	feed_cut(in, n, NULL, 0, want);
	for (i = 0; i <= n; i++) {
		feed_cut(in, n, &i, 1, &g);
		cr_assert_eq(g.err, want->err, "%s: cut at %zu", name, i);
		cr_assert_eq(g.messages, want->messages, "%s: cut at %zu",
			     name, i);
		cr_assert_eq(g.status, want->status, "%s: cut at %zu", name, i);
	}
	for (i = 0; i < n; i++)
		cuts[i] = i + 1;
	feed_cut(in, n, cuts, n ? n - 1 : 0, &g);
	cr_assert_eq(g.err, want->err, "%s: byte by byte", name);
	cr_assert_eq(g.messages, want->messages, "%s: byte by byte", name);
	cr_assert_eq(g.status, want->status, "%s: byte by byte", name);
	free(cuts);
}

struct stream_case {
	const char *name;
	const uint8_t *in;
	size_t n;
	enum hr__grpc_wire_err err;
	unsigned messages;
	int32_t status;
};

#define S(nm, err, msgs, st, ...)                                          \
	{ nm, B(__VA_ARGS__), sizeof(B(__VA_ARGS__)), err, msgs, st }

Test(grpc_wire, reader_every_split)
{
	const struct stream_case stream_cases[] = {
		S("serving", HR__GRPC_W_OK, 1, 1, 0, 0, 0, 0, 2, 0x08, 0x01),
		S("not serving", HR__GRPC_W_OK, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x02),
		S("empty message: UNKNOWN", HR__GRPC_W_OK, 1, 0, 0, 0, 0, 0, 0),
		S("two messages", HR__GRPC_W_EXTRA, 2, 1, 0, 0, 0, 0, 2, 0x08, 0x01,
		  0, 0, 0, 0, 2, 0x08, 0x02),
		S("compressed", HR__GRPC_W_COMPRESSED, 0, 0, 1, 0, 0, 0, 2, 0x08,
		  0x01),
		S("a flag byte other than 0 or 1", HR__GRPC_W_COMPRESSED, 0, 0, 0x80,
		  0, 0, 0, 0),
		S("4 GiB length", HR__GRPC_W_TOO_LARGE, 0, 0, 0, 0xff, 0xff, 0xff,
		  0xff),
		S("one byte over the limit", HR__GRPC_W_TOO_LARGE, 0, 0, 0, 0, 0, 0x40,
		  0x01),
		S("malformed message", HR__GRPC_W_MALFORMED, 0, 0, 0, 0, 0, 0, 1, 0x08),
		S("prefix cut short", HR__GRPC_W_TRUNCATED, 0, 0, 0, 0, 0),
		S("message cut short", HR__GRPC_W_TRUNCATED, 0, 0, 0, 0, 0, 0, 2,
		  0x08),
		S("a message, then a cut prefix", HR__GRPC_W_TRUNCATED, 1, 1, 0, 0, 0,
		  0, 2, 0x08, 0x01, 0),
	};
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(stream_cases); i++) {
		const struct stream_case *c = &stream_cases[i];
		struct got g;

		feed_all_ways(c->name, c->in, c->n, &g);
		cr_expect_eq(g.err, c->err, "%s: err %d", c->name, g.err);
		cr_expect_eq(g.messages, c->messages, "%s: %u messages",
			     c->name, g.messages);
		if (c->messages == 1)
			cr_expect_eq(g.status, c->status, "%s", c->name);
	}
}

Test(grpc_wire, reader_empty_stream)
{
	struct got g;

	feed_cut(NULL, 0, NULL, 0, &g);
	cr_assert_eq(g.err, HR__GRPC_W_OK);
	cr_assert_eq(g.messages, 0);
}

/* A message exactly at the limit is read (unknown fields skipped). */
Test(grpc_wire, reader_message_at_limit)
{
	size_t n = 5 + HR__GRPC_MSG_MAX;
	uint8_t *in = calloc(1, n);
	size_t body = HR__GRPC_MSG_MAX - 2 - 3; /* field 2 bytes + status */
	struct got g;

	cr_assert_not_null(in);
	in[3] = HR__GRPC_MSG_MAX >> 8;
	in[4] = HR__GRPC_MSG_MAX & 0xff;
	in[5] = 0x12; /* field 2, bytes */
	in[6] = (uint8_t)(0x80 | (body & 0x7f));
	in[7] = (uint8_t)(body >> 7);
	in[n - 2] = 0x08;
	in[n - 1] = 0x01;
	feed_cut(in, n, NULL, 0, &g);
	cr_assert_eq(g.err, HR__GRPC_W_OK);
	cr_assert_eq(g.messages, 1);
	cr_assert_eq(g.status, 1);
	free(in);
}

/* Hostile bytes: random streams (fixed seed) whole and cut in three
 * agree, and the reader never claims more than one good message. */
Test(grpc_wire, reader_random_bytes)
{
	struct hr_rng rng;
	uint8_t in[64];
	int k;

	hr_rng_seed(&rng, 12345);
	for (k = 0; k < 20000; k++) {
		size_t n = hr_rng_u32(&rng) % sizeof(in), i, cuts[2];
		struct got whole, cut;

		for (i = 0; i < n; i++)
			in[i] = (uint8_t)hr_rng_u32(&rng);
		if (n > 4 && hr_rng_u32(&rng) % 2) {
			in[0] = 0; /* a plausible prefix, often */
			in[1] = in[2] = in[3] = 0;
			in[4] = (uint8_t)(hr_rng_u32(&rng) % (n - 4));
		}
		cuts[0] = n ? hr_rng_u32(&rng) % (n + 1) : 0;
		cuts[1] = cuts[0] + (n - cuts[0] ? hr_rng_u32(&rng) % (n - cuts[0] + 1) : 0);
		feed_cut(in, n, NULL, 0, &whole);
		feed_cut(in, n, cuts, 2, &cut);
		cr_assert_eq(whole.err, cut.err);
		cr_assert_eq(whole.messages, cut.messages);
		cr_assert_eq(whole.status, cut.status);
		cr_assert(whole.messages <= 2);
		if (whole.err == HR__GRPC_W_OK)
			cr_assert(whole.messages <= 1);
	}
}

/* ---- head, trailers, texts ------------------------------------------ */

static void lines(struct hr__grpc_meta *m, const char *const *v)
{
	hr__grpc_meta_init(m);
	for (; *v; v++) {
		size_t n = strlen(*v);
		char *copy = malloc(n);

		memcpy(copy, *v, n); /* not NUL-terminated, as from libcurl */
		hr__grpc_meta_line(m, copy, n);
		free(copy);
	}
}

Test(grpc_wire, meta_lines)
{
	struct hr__grpc_meta m;

	lines(&m, (const char *const[]){ "HTTP/2 200 \r\n",
					 "content-type: application/grpc\r\n",
					 "\r\n", "grpc-status: 0\r\n", NULL });
	cr_assert_eq(m.grpc_status, 0);
	cr_assert(m.has_content_type && m.content_type_grpc);
	cr_assert_eq(m.message_len, 0);

	lines(&m, (const char *const[]){ "Content-Type: application/grpc+proto\r\n",
					 "GRPC-Status:   5 \r\n",
					 "grpc-message: unknown%20service\r\n",
					 NULL });
	cr_assert_eq(m.grpc_status, 5);
	cr_assert(m.content_type_grpc);
	cr_assert_str_eq(m.message, "unknown%20service");

	lines(&m, (const char *const[]){ "content-type: application/grpcx\r\n",
					 "grpc-status: 1x\r\n", NULL });
	cr_assert(m.has_content_type && !m.content_type_grpc);
	cr_assert_eq(m.grpc_status, -2);

	lines(&m, (const char *const[]){ "content-type: text/html; charset=utf-8\r\n",
					 "grpc-status: 1234567890\r\n",
					 "grpc-statusx: 3\r\n", "grpc-status 4\r\n",
					 "no colon\r\n", ": empty name\r\n", NULL });
	cr_assert(!m.content_type_grpc);
	cr_assert_str_eq(m.content_type, "text/html; charset=utf-8");
	cr_assert_eq(m.grpc_status, -2);

	lines(&m, (const char *const[]){ "content-type: application/grpc;x=y\r\n",
					 "grpc-status:\r\n", NULL });
	cr_assert(m.content_type_grpc);
	cr_assert_eq(m.grpc_status, -2);
}

Test(grpc_wire, meta_long_message_cut)
{
	size_t n = 10000;
	char *line = malloc(n);
	struct hr__grpc_meta m;

	memcpy(line, "grpc-message: ", 14);
	memset(line + 14, 'a', n - 14);
	hr__grpc_meta_init(&m);
	hr__grpc_meta_line(&m, line, n);
	cr_assert_eq(m.message_len, HR__GRPC_TEXT_MAX - 1);
	cr_assert_eq(strlen(m.message), HR__GRPC_TEXT_MAX - 1);
	free(line);
}

Test(grpc_wire, message_decode)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "unknown%20service", "unknown service" },
		{ "caf%C3%A9", "caf\xc3\xa9" },
		{ "100%", "100%" },
		{ "%4", "%4" },
		{ "%zz%2", "%zz%2" },
		{ "a%0Ab%00c\td", "a b c d" },
		{ "%7f", " " },
		{ "", "" },
	};
	char out[64];
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(cases); i++) {
		size_t n = hr__grpc_message_decode(cases[i].in,
						   strlen(cases[i].in), out,
						   sizeof(out));

		cr_expect_str_eq(out, cases[i].want, "%s", cases[i].in);
		cr_expect_eq(n, strlen(cases[i].want));
	}
	cr_assert_eq(hr__grpc_message_decode("abcdef", 6, out, 4), 3);
	cr_assert_str_eq(out, "abc");
}

Test(grpc_wire, timeout_header)
{
	static const struct {
		int64_t ms;
		const char *want;
	} cases[] = {
		{ 500, "500m" },      { 0, "1m" },         { -5, "1m" },
		{ 99999999, "99999999m" }, { 100000000, "100000S" },
		{ 100000001, "100001S" },
		{ INT64_C(99999999000), "99999999S" },
		{ INT64_C(99999999001), "27778H" },
	};
	char out[16];
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(cases); i++) {
		size_t n = hr__grpc_timeout(cases[i].ms, out, sizeof(out));

		cr_expect_str_eq(out, cases[i].want, "%lld",
				 (long long)cases[i].ms);
		cr_expect_eq(n, strlen(cases[i].want));
		cr_expect_leq(n, 9);
	}
}

Test(grpc_wire, code_of_http)
{
	cr_assert_eq(hr__grpc_code_of_http(400), HR__GRPC_INTERNAL);
	cr_assert_eq(hr__grpc_code_of_http(401), HR__GRPC_UNAUTHENTICATED);
	cr_assert_eq(hr__grpc_code_of_http(403), HR__GRPC_PERMISSION_DENIED);
	cr_assert_eq(hr__grpc_code_of_http(404), HR__GRPC_UNIMPLEMENTED);
	cr_assert_eq(hr__grpc_code_of_http(429), HR__GRPC_UNAVAILABLE);
	cr_assert_eq(hr__grpc_code_of_http(502), HR__GRPC_UNAVAILABLE);
	cr_assert_eq(hr__grpc_code_of_http(503), HR__GRPC_UNAVAILABLE);
	cr_assert_eq(hr__grpc_code_of_http(504), HR__GRPC_UNAVAILABLE);
	cr_assert_eq(hr__grpc_code_of_http(500), HR__GRPC_UNKNOWN);
	cr_assert_str_eq(hr__grpc_code_name(16), "UNAUTHENTICATED");
	cr_assert_null(hr__grpc_code_name(17));
	cr_assert_null(hr__grpc_code_name(-1));
	cr_assert_str_eq(hr__grpc_serving_name(3), "SERVICE_UNKNOWN");
	cr_assert_null(hr__grpc_serving_name(4));
	cr_assert_null(hr__grpc_serving_name(-1));
}

Test(grpc_wire, target_split)
{
	static const struct {
		const char *t;
		int rc;
		size_t hostport;
		const char *service;
	} cases[] = {
		{ "127.0.0.1:9000", 0, 14, "" },
		{ "127.0.0.1:9000/", 0, 14, "" },
		{ "127.0.0.1:9000/my.Service", 0, 14, "my.Service" },
		{ "127.0.0.1:9000/a/b", 0, 14, "a/b" },
		{ "[::1]:9000/x", 0, 10, "x" },
		{ "[fe80::1%eth0]:1", 0, 16, "" },
		{ "localhost:65535", 0, 15, "" },
		{ "my-host_1.example:1", 0, 19, "" },
		{ "", -EINVAL, 0, "" },
		{ "/svc", -EINVAL, 0, "svc" },
		{ "127.0.0.1", -EINVAL, 9, "" },
		{ "127.0.0.1:", -EINVAL, 10, "" },
		{ ":9000", -EINVAL, 5, "" },
		{ "127.0.0.1:0", -EINVAL, 11, "" },
		{ "127.0.0.1:65536", -EINVAL, 15, "" },
		{ "127.0.0.1:123456", -EINVAL, 16, "" },
		{ "127.0.0.1:9x", -EINVAL, 12, "" },
		{ "::1:9000", -EINVAL, 8, "" },
		{ "[::1]9000", -EINVAL, 9, "" },
		{ "[::1]:", -EINVAL, 6, "" },
		{ "[]:1", -EINVAL, 4, "" },
		{ "[::1:9000", -EINVAL, 9, "" },
		{ "user@host:1", -EINVAL, 11, "" },
		{ "host?x:1", -EINVAL, 8, "" },
		{ "ho st:1", -EINVAL, 7, "" },
		{ "a]b:1", -EINVAL, 5, "" },
		{ "a%b:1", -EINVAL, 5, "" },
		{ "[::1]]:1", -EINVAL, 8, "" },
		{ "[::1[]:1", -EINVAL, 8, "" },
		{ "[a b]:1", -EINVAL, 7, "" },
		{ "h:1/a\nb", -EINVAL, 3, "a\nb" },
	};
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(cases); i++) {
		size_t hp = 99;
		const char *svc = NULL;
		int rc = hr__grpc_target_split(cases[i].t, &hp, &svc);

		cr_expect_eq(rc, cases[i].rc, "%s: rc %d", cases[i].t, rc);
		cr_expect_eq(hp, cases[i].hostport, "%s: %zu", cases[i].t, hp);
		cr_expect_str_eq(svc, cases[i].service, "%s", cases[i].t);
	}
}

/* ---- verdict --------------------------------------------------------- */

struct verdict_case {
	const char *name;
	long http;
	const char *const *lines;
	const uint8_t *body;
	size_t n;
	enum hr_status st;
	const char *out;
};

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define CT "content-type: application/grpc\r\n"
#define OK_BODY B(0, 0, 0, 0, 2, 0x08, 0x01), 7

Test(grpc_wire, verdict_table)
{
	const struct verdict_case verdict_cases[] = {
		{ "serving", 200, L(CT, "grpc-status: 0\r\n"), OK_BODY,
		  HR_STATUS_PASSING, "gRPC check T: SERVING" },
		{ "not serving", 200, L(CT, "grpc-status: 0"),
		  B(0, 0, 0, 0, 2, 0x08, 0x02), 7, HR_STATUS_CRITICAL,
		  "gRPC check T: NOT_SERVING" },
		{ "service unknown", 200, L(CT, "grpc-status: 0"),
		  B(0, 0, 0, 0, 2, 0x08, 0x03), 7, HR_STATUS_CRITICAL,
		  "gRPC check T: SERVICE_UNKNOWN" },
		{ "unknown (empty message)", 200, L(CT, "grpc-status: 0"),
		  B(0, 0, 0, 0, 0), 5, HR_STATUS_CRITICAL, "gRPC check T: UNKNOWN" },
		{ "a status the enum lacks", 200, L(CT, "grpc-status: 0"),
		  B(0, 0, 0, 0, 2, 0x08, 0x09), 7, HR_STATUS_CRITICAL,
		  "gRPC check T: serving status 9" },
		{ "negative status", 200, L(CT, "grpc-status: 0"),
		  B(0, 0, 0, 0, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0x01), 16, HR_STATUS_CRITICAL,
		  "gRPC check T: serving status -1" },
		{ "trailers-only NOT_FOUND", 200,
		  L(CT, "grpc-status: 5", "grpc-message: unknown%20service"), NULL, 0,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: NOT_FOUND (grpc-status 5): unknown service" },
		{ "an error without message", 200, L(CT, "grpc-status: 12"), NULL, 0,
		  HR_STATUS_CRITICAL, "gRPC check T: UNIMPLEMENTED (grpc-status 12)" },
		{ "a code past 16", 200, L(CT, "grpc-status: 99", "grpc-message: x"),
		  NULL, 0, HR_STATUS_CRITICAL, "gRPC check T: grpc-status 99: x" },
		{ "error wins over the message", 200,
		  L(CT, "grpc-status: 14", "grpc-message: db down"), OK_BODY,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: UNAVAILABLE (grpc-status 14): db down" },
		{ "no grpc-status", 200, L(CT), OK_BODY, HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: the response ended without grpc-status" },
		{ "nothing gRPC at all", 200, L("x: y"), NULL, 0, HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: not a gRPC response (no content-type, no grpc-status)" },
		{ "grpc-status not a number", 200, L(CT, "grpc-status: OK"), OK_BODY,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: UNKNOWN: grpc-status is not a number" },
		{ "OK without a message", 200, L(CT, "grpc-status: 0"), NULL, 0,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: grpc-status 0 without a response message" },
		{ "two messages", 200, L(CT, "grpc-status: 0"),
		  B(0, 0, 0, 0, 2, 0x08, 0x01, 0, 0, 0, 0, 2, 0x08, 0x01), 14,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: more than one response message" },
		{ "compressed", 200, L(CT, "grpc-status: 0"),
		  B(1, 0, 0, 0, 2, 0x08, 0x01), 7, HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: a compressed response message (no compression was offered)" },
		{ "too large", 200, L(CT), B(0, 0, 1, 0, 0), 5, HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: a response message of 65536 bytes (more than 16384)" },
		{ "malformed", 200, L(CT, "grpc-status: 0"), B(0, 0, 0, 0, 1, 0x08), 6,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: the response message is not a HealthCheckResponse" },
		{ "cut short", 200, L(CT, "grpc-status: 0"), B(0, 0, 0, 0, 2, 0x08), 6,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: INTERNAL: the response ended inside a message" },
		{ "html", 200, L("content-type: text/html\r\n"), NULL, 0,
		  HR_STATUS_CRITICAL,
		  "gRPC check T: UNKNOWN: not a gRPC response (content-type text/html)" },
		{ "HTTP 404", 404, L("content-type: text/plain"), NULL, 0,
		  HR_STATUS_CRITICAL, "gRPC check T: UNIMPLEMENTED: HTTP status 404, not 200" },
		{ "HTTP 503 with grpc", 503, L(CT, "grpc-status: 0"), OK_BODY,
		  HR_STATUS_CRITICAL, "gRPC check T: UNAVAILABLE: HTTP status 503, not 200" },
		{ "hostile message text", 200,
		  L(CT, "grpc-status: 2", "grpc-message: a%0D%0Ab\x01"), NULL, 0,
		  HR_STATUS_CRITICAL, "gRPC check T: UNKNOWN (grpc-status 2): a  b " },
	};
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(verdict_cases); i++) {
		const struct verdict_case *c = &verdict_cases[i];
		struct hr__grpc_reader *r = malloc(sizeof(*r));
		struct hr__grpc_meta m;
		char out[256];
		size_t len = 999;
		enum hr_status st;

		lines(&m, c->lines);
		hr__grpc_reader_init(r);
		if (hr__grpc_reader_feed(r, c->body, c->n))
			hr__grpc_reader_end(r);
		st = hr__grpc_verdict("T", c->http, &m, r, out, sizeof(out),
				      &len);
		cr_expect_eq(st, c->st, "%s: status %d", c->name, st);
		cr_expect_str_eq(out, c->out, "%s", c->name);
		cr_expect_eq(len, strlen(out), "%s", c->name);
		free(r);
	}
}

/* A long target and message: cut to the buffer, still terminated. */
Test(grpc_wire, verdict_cut_to_buffer)
{
	struct hr__grpc_reader r;
	struct hr__grpc_meta m;
	char out[32];
	size_t len = 0;

	lines(&m, L(CT, "grpc-status: 14", "grpc-message: a long message"));
	hr__grpc_reader_init(&r);
	cr_assert_eq(hr__grpc_verdict("127.0.0.1:9000/a.very.long.Service", 200,
				      &m, &r, out, sizeof(out), &len),
		     HR_STATUS_CRITICAL);
	cr_assert_eq(len, sizeof(out) - 1);
	cr_assert_eq(strlen(out), len);
}
