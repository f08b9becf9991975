/*
 * fuzz_grpc_wire.c - the grpc check's wire half (lib/grpc_wire.c) on any
 * bytes: the input's first two bytes are cut points, the next one an
 * HTTP status; the rest is split at its first "\n\n" into head and
 * trailer lines (one per "\n") and a response body.
 * Properties: the body fed whole and in three pieces reads alike; a good
 * stream holds at most one message; hr__grpc_health_decode() returns 0
 * or -EPROTO; the verdict is one NUL-terminated line without control
 * characters, passing only for SERVING; hr__grpc_target_split() on the
 * body as a string keeps its pointers inside it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "grpc_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed(struct hr__grpc_reader *r, const uint8_t *p, size_t n,
		 size_t a, size_t b)
{
	size_t cuts[3] = { a, b, n }, from = 0, i;

	hr__grpc_reader_init(r);
	for (i = 0; i < 3; i++) {
		char *piece = hr_fuzz_copy(p + from, cuts[i] - from, false);
		bool ok = hr__grpc_reader_feed(r, piece, cuts[i] - from);

		free(piece);
		from = cuts[i];
		if (!ok)
			break;
	}
	hr__grpc_reader_end(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hr__grpc_reader whole, cut;
	uint8_t c1 = hr_fuzz_take(&data, &size), c2 = hr_fuzz_take(&data, &size);
	long http = hr_fuzz_status(&data, &size);
	const uint8_t *body = data, *sep;
	size_t body_n = size, a, b, hp;
	struct hr__grpc_meta m;
	char out[1024], *s, *line;
	const char *service;
	enum hr_status st;
	int32_t status;
	size_t len = 0;
	int rc;

	hr__grpc_meta_init(&m);
	sep = size >= 2 ? memmem(data, size, "\n\n", 2) : NULL;
	if (sep) {
		const uint8_t *p = data;

		while (p < sep) {
			const uint8_t *nl = memchr(p, '\n', (size_t)(sep - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(sep - p);

			line = hr_fuzz_copy(p, n, false);
			hr__grpc_meta_line(&m, line, n);
			free(line);
			p += n + 1;
		}
		body = sep + 2;
		body_n = size - (size_t)(body - data);
	}
	a = body_n ? c1 % (body_n + 1) : 0;
	b = a + (body_n - a ? c2 % (body_n - a + 1) : 0);
	feed(&whole, body, body_n, body_n, body_n);
	feed(&cut, body, body_n, a, b);
	FUZZ_CHECK(whole.err == cut.err, "split changed the error");
	FUZZ_CHECK(whole.messages == cut.messages, "split changed the count");
	FUZZ_CHECK(whole.status == cut.status, "split changed the status");
	FUZZ_CHECK(whole.err || whole.messages <= 1, "two good messages");

	s = hr_fuzz_copy(body, body_n, false);
	rc = hr__grpc_health_decode((const uint8_t *)s, body_n, &status);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO, "decode rc");
	free(s);

	st = hr__grpc_verdict("T", http, &m, &whole, out, sizeof(out), &len);
	FUZZ_CHECK(len == strlen(out), out);
	FUZZ_CHECK(len < sizeof(out), out);
	FUZZ_CHECK(hr_fuzz_no_controls(out, len, ""), out);
	FUZZ_CHECK(st == HR_STATUS_PASSING || st == HR_STATUS_CRITICAL, out);
	FUZZ_CHECK(st != HR_STATUS_PASSING || !strcmp(out, "gRPC check T: SERVING"),
		   out);

	s = hr_fuzz_copy(body, body_n, true);
	rc = hr__grpc_target_split(s, &hp, &service);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, s);
	FUZZ_CHECK(hp <= strlen(s), s);
	FUZZ_CHECK(service >= s && service <= s + strlen(s), s);
	free(s);
	return 0;
}
