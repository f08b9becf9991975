/*
 * grpc_wire.c - gRPC health checking without a protobuf library: the
 * request frame, the response reader, the head and trailer lines and the
 * verdict (grpc_wire.h). Pure: every byte from the server is hostile, every
 * read is bounded by what arrived.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "grpc_wire.h"
#include "internal.h"

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
	"DATA_LOSS", "UNAUTHENTICATED",
};

static const char *const serving_names[] = {
	"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN",
};

const char *hr__grpc_code_name(long code)
{
	return code >= 0 && (size_t)code < HR_ARRAY_SIZE(code_names)
		       ? code_names[code]
		       : NULL;
}

const char *hr__grpc_serving_name(int64_t status)
{
	return status >= 0 && (size_t)status < HR_ARRAY_SIZE(serving_names)
		       ? serving_names[status]
		       : NULL;
}

/* ---- target ---------------------------------------------------------- */

static bool port_ok(const char *p, size_t n)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

int hr__grpc_target_split(const char *target, size_t *hostport_len,
			  const char **service)
{
	const char *slash = strchr(target, '/');
	size_t n = slash ? (size_t)(slash - target) : strlen(target);
	const char *colon, *s;

	*hostport_len = n;
	*service = slash ? slash + 1 : target + n;
	if (n == 0)
		return -EINVAL;
	if (target[0] == '[') {
		const char *close = memchr(target, ']', n);

		if (!close || close == target + 1 || close + 1 >= target + n ||
		    close[1] != ':')
			return -EINVAL;
		colon = close + 1;
	} else {
		colon = NULL;
		for (s = target; s < target + n; s++)
			if (*s == ':') {
				if (colon)
					return -EINVAL; /* v6 needs [] */
				colon = s;
			}
		if (!colon || colon == target)
			return -EINVAL;
	}
	if (!port_ok(colon + 1, (size_t)(target + n - colon - 1)))
		return -EINVAL;
	/* a host name or an address: nothing that would change the URL */
	if (target[0] == '[') {
		for (s = target + 1; s < colon - 1; s++)
			if (!isalnum((unsigned char)*s) && !strchr(".:%-_", *s))
				return -EINVAL;
	} else {
		for (s = target; s < colon; s++)
			if (!isalnum((unsigned char)*s) && !strchr(".-_", *s))
				return -EINVAL;
	}
	for (s = *service; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return -EINVAL;
	return 0;
}

/* ---- request ---------------------------------------------------------- */

static size_t varint_put(uint64_t v, uint8_t *out)
{
	size_t n = 0;

	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		if (out)
			out[n] = (uint8_t)(b | (v ? 0x80 : 0));
		n++;
	} while (v);
	return n;
}

size_t hr__grpc_request(const char *service, size_t len, uint8_t *out,
			size_t cap)
{
	/* proto3: an empty service (the default) is not written */
	size_t msg = len ? 1 + varint_put(len, NULL) + len : 0;
	size_t total = 5 + msg;
	size_t at = 5;

	if (!out || cap < total || msg > UINT32_MAX)
		return total;
	out[0] = 0; /* not compressed */
	out[1] = (uint8_t)(msg >> 24);
	out[2] = (uint8_t)(msg >> 16);
	out[3] = (uint8_t)(msg >> 8);
	out[4] = (uint8_t)msg;
	if (len) {
		out[at++] = 0x0a; /* field 1, length-delimited */
		at += varint_put(len, out + at);
		memcpy(out + at, service, len);
	}
	return total;
}

/* ---- response message ------------------------------------------------- */

/* A varint at p[*i..n): at most 10 bytes, the 10th at most 1. */
static int varint_get(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*i < n) {
		uint8_t b = p[(*i)++];

		if (shift == 63 && b > 1)
			return -EPROTO; /* past 64 bits */
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
		shift += 7;
		if (shift > 63)
			return -EPROTO;
	}
	return -EPROTO; /* cut short */
}

int hr__grpc_health_decode(const uint8_t *p, size_t n, int32_t *status)
{
	size_t i = 0;

	*status = 0;
	while (i < n) {
		uint64_t key, v;
		unsigned wire;

		if (varint_get(p, n, &i, &key))
			return -EPROTO;
		wire = (unsigned)(key & 7);
		if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
			return -EPROTO; /* not a field number */
		if ((key >> 3) == 1 && wire != 0)
			return -EPROTO; /* status is a varint */
		switch (wire) {
		case 0:
			if (varint_get(p, n, &i, &v))
				return -EPROTO;
			if ((key >> 3) == 1)
				*status = (int32_t)(uint32_t)v;
			break;
		case 1:
			if (n - i < 8)
				return -EPROTO;
			i += 8;
			break;
		case 2:
			if (varint_get(p, n, &i, &v) || v > n - i)
				return -EPROTO;
			i += (size_t)v;
			break;
		case 5:
			if (n - i < 4)
				return -EPROTO;
			i += 4;
			break;
		default:
			return -EPROTO; /* groups (3, 4), 6, 7 */
		}
	}
	return 0;
}

/* ---- response stream -------------------------------------------------- */

void hr__grpc_reader_init(struct hr__grpc_reader *r)
{
	r->state = HR__GRPC_R_PREFIX;
	r->err = HR__GRPC_W_OK;
	r->got = 0;
	r->len = 0;
	r->messages = 0;
	r->status = 0;
}

static void message_done(struct hr__grpc_reader *r)
{
	int32_t st;

	if (hr__grpc_health_decode(r->msg, r->len, &st)) {
		r->err = HR__GRPC_W_MALFORMED;
		return;
	}
	if (++r->messages > 1) {
		r->err = HR__GRPC_W_EXTRA;
		return;
	}
	r->status = st;
}

bool hr__grpc_reader_feed(struct hr__grpc_reader *r, const void *data,
			  size_t n)
{
	const uint8_t *p = data;

	while (n && !r->err) {
		size_t take;

		if (r->state == HR__GRPC_R_PREFIX) {
			r->prefix[r->got++] = *p++;
			n--;
			if (r->got < 5)
				continue;
			r->len = (uint32_t)r->prefix[1] << 24 |
				 (uint32_t)r->prefix[2] << 16 |
				 (uint32_t)r->prefix[3] << 8 | r->prefix[4];
			r->got = 0;
			if (r->prefix[0] != 0)
				r->err = HR__GRPC_W_COMPRESSED;
			else if (r->len > HR__GRPC_MSG_MAX)
				r->err = HR__GRPC_W_TOO_LARGE;
			else if (r->len == 0)
				message_done(r);
			else
				r->state = HR__GRPC_R_MESSAGE;
			continue;
		}
		take = r->len - r->got;
		if (take > n)
			take = n;
		memcpy(r->msg + r->got, p, take);
		r->got += take;
		p += take;
		n -= take;
		if (r->got == r->len) {
			r->state = HR__GRPC_R_PREFIX;
			r->got = 0;
			message_done(r);
		}
	}
	return !r->err;
}

void hr__grpc_reader_end(struct hr__grpc_reader *r)
{
	if (!r->err && (r->state != HR__GRPC_R_PREFIX || r->got))
		r->err = HR__GRPC_W_TRUNCATED;
}

/* ---- head and trailers ------------------------------------------------ */

void hr__grpc_meta_init(struct hr__grpc_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->grpc_status = -1;
}

/* Copy at most cap - 1 bytes, NUL-terminated; the length copied. */
static size_t copy_cut(char *out, size_t cap, const char *in, size_t n)
{
	if (n > cap - 1)
		n = cap - 1;
	memcpy(out, in, n);
	out[n] = '\0';
	return n;
}

static long status_value(const char *v, size_t n)
{
	long x = 0;
	size_t i;

	if (n == 0 || n > 9)
		return -2;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -2;
		x = x * 10 + (v[i] - '0');
	}
	return x;
}

static bool name_is(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && line[k] == ':' && !strncasecmp(line, name, k);
}

void hr__grpc_meta_line(struct hr__grpc_meta *m, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	const char *v;
	size_t vn, i;

	if (!colon || colon == line)
		return;
	v = colon + 1;
	vn = n - (size_t)(v - line);
	while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' ||
		      v[vn - 1] == ' ' || v[vn - 1] == '\t'))
		vn--;
	while (vn && (*v == ' ' || *v == '\t')) {
		v++;
		vn--;
	}
	if (name_is(line, n, "grpc-status")) {
		m->grpc_status = status_value(v, vn);
	} else if (name_is(line, n, "grpc-message")) {
		m->message_len =
			copy_cut(m->message, sizeof(m->message), v, vn);
	} else if (name_is(line, n, "content-type")) {
		m->has_content_type = true;
		/* application/grpc, optionally +proto (or any +subtype) or
		 * ;parameters */
		m->content_type_grpc =
			vn >= 16 && !strncasecmp(v, "application/grpc", 16) &&
			(vn == 16 || v[16] == '+' || v[16] == ';');
		copy_cut(m->content_type, sizeof(m->content_type), v, vn);
		for (i = 0; m->content_type[i]; i++) /* it goes into output */
			if ((unsigned char)m->content_type[i] < 0x20 ||
			    m->content_type[i] == 0x7f)
				m->content_type[i] = ' ';
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t hr__grpc_message_decode(const char *in, size_t n, char *out,
			       size_t cap)
{
	size_t i, o = 0;

	if (!cap)
		return 0;
	for (i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%' && i + 2 < n && hexval(in[i + 1]) >= 0 &&
		    hexval(in[i + 2]) >= 0) {
			c = (unsigned char)(hexval(in[i + 1]) * 16 +
					    hexval(in[i + 2]));
			i += 2;
		}
		out[o++] = (char)(c < 0x20 || c == 0x7f ? ' ' : c);
	}
	out[o] = '\0';
	return o;
}

size_t hr__grpc_timeout(int64_t ms, char *out, size_t cap)
{
	int n;

	if (ms < 1)
		ms = 1;
	/* rounded up: the server never sees a deadline shorter than ours */
	if (ms <= 99999999)
		n = snprintf(out, cap, "%lldm", (long long)ms);
	else if ((ms + 999) / 1000 <= 99999999)
		n = snprintf(out, cap, "%lldS", (long long)((ms + 999) / 1000));
	else if (ms / 3600000 < 99999999)
		n = snprintf(out, cap, "%lldH",
			     (long long)(ms / 3600000 + 1));
	else
		n = snprintf(out, cap, "99999999H");
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

enum hr__grpc_code hr__grpc_code_of_http(long http_code)
{
	switch (http_code) {
	case 400:
		return HR__GRPC_INTERNAL;
	case 401:
		return HR__GRPC_UNAUTHENTICATED;
	case 403:
		return HR__GRPC_PERMISSION_DENIED;
	case 404:
		return HR__GRPC_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return HR__GRPC_UNAVAILABLE;
	default:
		return HR__GRPC_UNKNOWN;
	}
}

/* ---- verdict ---------------------------------------------------------- */

static const char *wire_text(const struct hr__grpc_reader *r, char *buf,
			     size_t cap)
{
	switch (r->err) {
	case HR__GRPC_W_COMPRESSED:
		return "a compressed response message (no compression was offered)";
	case HR__GRPC_W_TOO_LARGE:
		snprintf(buf, cap, "a response message of %lu bytes (more than %d)",
			 (unsigned long)r->len, HR__GRPC_MSG_MAX);
		return buf;
	case HR__GRPC_W_MALFORMED:
		return "the response message is not a HealthCheckResponse";
	case HR__GRPC_W_EXTRA:
		return "more than one response message";
	case HR__GRPC_W_TRUNCATED:
		return "the response ended inside a message";
	case HR__GRPC_W_OK:
		break;
	}
	return "";
}

static size_t finish_text(char *out, size_t cap, int n)
{
	if (n < 0) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* "gRPC check T: CODE: text" */
static size_t say(char *out, size_t cap, const char *target,
		  enum hr__grpc_code code, const char *text)
{
	return finish_text(out, cap,
			   snprintf(out, cap, "gRPC check %s: %s: %s", target,
				    hr__grpc_code_name(code), text));
}

enum hr_status hr__grpc_verdict(const char *target, long http_code,
				const struct hr__grpc_meta *m,
				const struct hr__grpc_reader *r, char *out,
				size_t cap, size_t *len)
{
	char buf[HR__GRPC_TEXT_MAX + 128], msg[HR__GRPC_TEXT_MAX];
	const char *name;
	int n;

	if (http_code != 200) {
		snprintf(buf, sizeof(buf), "HTTP status %ld, not 200",
			 http_code);
		*len = say(out, cap, target, hr__grpc_code_of_http(http_code),
			   buf);
		return HR_STATUS_CRITICAL;
	}
	if (m->has_content_type && !m->content_type_grpc) {
		snprintf(buf, sizeof(buf), "not a gRPC response (content-type %s)",
			 m->content_type);
		*len = say(out, cap, target, HR__GRPC_UNKNOWN, buf);
		return HR_STATUS_CRITICAL;
	}
	if (m->grpc_status > 0) {
		name = hr__grpc_code_name(m->grpc_status);
		hr__grpc_message_decode(m->message, m->message_len, msg,
					sizeof(msg));
		if (name)
			snprintf(buf, sizeof(buf), "%s (grpc-status %ld)", name,
				 m->grpc_status);
		else
			snprintf(buf, sizeof(buf), "grpc-status %ld",
				 m->grpc_status);
		*len = finish_text(out, cap,
				   snprintf(out, cap, "gRPC check %s: %s%s%s",
					    target, buf, msg[0] ? ": " : "",
					    msg));
		return HR_STATUS_CRITICAL;
	}
	if (r->err) {
		*len = say(out, cap, target, HR__GRPC_INTERNAL,
			   wire_text(r, buf, sizeof(buf)));
		return HR_STATUS_CRITICAL;
	}
	if (m->grpc_status == -1) {
		*len = say(out, cap, target, HR__GRPC_INTERNAL,
			   m->has_content_type
				   ? "the response ended without grpc-status"
				   : "not a gRPC response (no content-type, no grpc-status)");
		return HR_STATUS_CRITICAL;
	}
	if (m->grpc_status == -2) {
		*len = say(out, cap, target, HR__GRPC_UNKNOWN,
			   "grpc-status is not a number");
		return HR_STATUS_CRITICAL;
	}
	if (r->messages == 0) {
		*len = say(out, cap, target, HR__GRPC_INTERNAL,
			   "grpc-status 0 without a response message");
		return HR_STATUS_CRITICAL;
	}
	name = hr__grpc_serving_name(r->status);
	if (name)
		n = snprintf(out, cap, "gRPC check %s: %s", target, name);
	else
		n = snprintf(out, cap, "gRPC check %s: serving status %ld",
			     target, (long)r->status);
	*len = finish_text(out, cap, n);
	return r->status == HR__GRPC_SERVING ? HR_STATUS_PASSING
					     : HR_STATUS_CRITICAL;
}
