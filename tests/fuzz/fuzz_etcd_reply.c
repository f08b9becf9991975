/*
 * fuzz_etcd_reply.c - the etcd v3 gateway reply classifier
 * (hr_etcd_reply_parse) for every call, the int64 reader on every member
 * of the reply, and the base64 decoder (etcd's keys and values).
 *
 * Input: byte 0 picks the call, byte 1 the HTTP status (a table of the
 * ones etcd sends, or any value up to 1020); the rest is the body, in a
 * heap buffer of exactly its size (not NUL-terminated).
 *
 * Properties: the result is one of enum hr_etcd_result and has a name; no
 * HTTP reply is UNAVAILABLE; the message is NUL-terminated; a token comes
 * only with a successful authenticate; dispose is idempotent; an int64
 * read from a number equals the number; a decoded base64 string encodes
 * and decodes back to the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_payload.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void base64(const uint8_t *data, size_t size)
{
	char *s = hr_fuzz_copy(data, size, true);
	size_t n, n2;
	char *dec = hr_etcd_b64_decode(s, &n), *enc, *again;

	if (dec) {
		FUZZ_CHECK(dec[n] == '\0', "decoded bytes NUL-terminated");
		enc = hr_etcd_b64(dec, n);
		FUZZ_CHECK(enc != NULL, "encode");
		again = hr_etcd_b64_decode(enc, &n2);
		FUZZ_CHECK(again && n2 == n && !memcmp(again, dec, n),
			   "base64 round trip");
		free(again);
		free(enc);
		free(dec);
	}
	free(s);
}

static void ints(const cJSON *it)
{
	int64_t v;

	for (; it; it = it->next) {
		int rc = hr_etcd_int64(it, &v);

		FUZZ_CHECK(rc == 0 || rc == -EINVAL, "int64 result");
		if (!rc && cJSON_IsNumber(it))
			FUZZ_CHECK((double)v == it->valuedouble, "int64 value");
		ints(it->child);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum hr_etcd_op op = hr_fuzz_take(&data, &size) %
			   (HR_ETCD_OP_FLOOR_DELETE + 1);
	long status = hr_fuzz_status(&data, &size);
	char *body = hr_fuzz_copy(data, size, false);
	struct hr_etcd_reply r;
	cJSON *root;

	hr_etcd_reply_parse(op, status, body, size, &r);
	FUZZ_CHECK(r.result >= HR_ETCD_OK && r.result <= HR_ETCD_FAILED,
		   "result in range");
	FUZZ_CHECK(hr_etcd_result_name(r.result) != NULL, "result name");
	FUZZ_CHECK(hr_etcd_op_name(op) != NULL, "op name");
	FUZZ_CHECK(status || r.result == HR_ETCD_UNAVAILABLE, "no reply");
	FUZZ_CHECK(memchr(r.message, '\0', sizeof(r.message)) != NULL,
		   "message NUL-terminated");
	FUZZ_CHECK(!r.token || (op == HR_ETCD_OP_AUTH && r.result == HR_ETCD_OK),
		   "a token only from a successful authenticate");
	FUZZ_CHECK(!r.view.n || (op == HR_ETCD_OP_RANGE &&
				 r.result == HR_ETCD_OK),
		   "keys only from a successful range read");
	hr_etcd_reply_dispose(&r);
	hr_etcd_reply_dispose(&r);
	root = cJSON_ParseWithLength(body, size);
	ints(root);
	cJSON_Delete(root);
	free(body);
	base64(data, size);
	return 0;
}
