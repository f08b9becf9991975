/*
 * fuzz_consul_reply.c - what the Consul backend makes of an answer
 * (hr_consul_classify, hr_consul_excerpt) and of a check's output on its
 * way to Consul (hr_consul_output_prepare, hr_consul_update_body).
 *
 * Input: byte 0 picks the call, byte 1 the HTTP status (a table of the
 * ones Consul sends, or any value up to 1020), byte 2 the excerpt buffer
 * size, and also the output limit (the configured check_output_max_size:
 * 0 is the default 4096, else 1 + 33 * byte, from 1 to 8416 bytes); the
 * rest is the body (exactly its size, not NUL-terminated), and as a C
 * string the output.
 *
 * Properties: a verdict of the enum with a name, 2xx always OK; the
 * excerpt fits its buffer, is one line of printable ASCII and a prefix of
 * the body's first line with '?' for other bytes; the prepared output is
 * valid UTF-8 of at most the configured limit, the output itself
 * when that was valid and short enough; the update body is a JSON object
 * whose Output is the prepared output.
 */
#include <stdlib.h>
#include <string.h>

#include "consul_payload.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void excerpt(const char *body, size_t n, size_t len)
{
	char *buf = malloc(len ? len : 1);
	size_t i, m;

	FUZZ_CHECK(buf != NULL, "malloc");
	hr_consul_excerpt(buf, len, body, n);
	if (len) {
		m = strnlen(buf, len);
		FUZZ_CHECK(m < len, "the excerpt fits");
		for (i = 0; i < m; i++) {
			unsigned char c = (unsigned char)body[i];

			FUZZ_CHECK(c != '\n' && c != '\r', "one line");
			FUZZ_CHECK(buf[i] == (c >= 0x20 && c < 0x7f ? (char)c : '?'),
				   "printable ASCII of the body");
		}
	}
	free(buf);
}

static void output(const char *out, size_t max)
{
	size_t limit = max ? max : HR_CONSUL_OUTPUT_MAX;
	char *p = hr_consul_output_prepare(out, max), *body = NULL;
	size_t n = strlen(p ? p : "");
	cJSON *doc, *o;

	FUZZ_CHECK(p != NULL, "prepare");
	FUZZ_CHECK(n <= limit, "within the configured check_output_max_size");
	FUZZ_CHECK(hr_fuzz_utf8_valid(p, n), "valid UTF-8");
	if (strlen(out) <= limit && hr_fuzz_utf8_valid(out, strlen(out)))
		FUZZ_CHECK(!strcmp(p, out), "valid short output unchanged");
	FUZZ_CHECK(hr_consul_update_body(&body, HR_STATUS_WARNING, out,
					 max) == 0,
		   "update body");
	FUZZ_CHECK(hr_fuzz_utf8_valid(body, strlen(body)), "body UTF-8");
	doc = cJSON_Parse(body);
	FUZZ_CHECK(cJSON_IsObject(doc), "body is a JSON object");
	o = cJSON_GetObjectItemCaseSensitive(doc, "Output");
	FUZZ_CHECK(cJSON_IsString(o) && !strcmp(o->valuestring, p),
		   "Output is the prepared output");
	cJSON_Delete(doc);
	free(body);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum hr_consul_op op = hr_fuzz_take(&data, &size) % 4;
	long code = hr_fuzz_status(&data, &size);
	size_t len = hr_fuzz_take(&data, &size);
	char *body = hr_fuzz_copy(data, size, false);
	enum hr_consul_verdict v = hr_consul_classify(op, code, body, size);

	FUZZ_CHECK(v >= HR_CONSUL_OK && v <= HR_CONSUL_RETRY, "verdict");
	FUZZ_CHECK(hr_consul_verdict_name(v) != NULL, "verdict name");
	FUZZ_CHECK(hr_consul_op_name(op) != NULL, "op name");
	FUZZ_CHECK(code < 200 || code > 299 || v == HR_CONSUL_OK, "2xx is OK");
	excerpt(body, size, len);
	excerpt(NULL, 0, len);
	free(body);
	body = hr_fuzz_copy(data, size, true);
	output(body, len ? 1 + 33 * len : 0);
	free(body);
	return 0;
}
