/*
 * grpc_wire.h - the pure half of the grpc check kind (check_grpc.c): the
 * target "host:port[/service]", the grpc.health.v1.Health/Check request
 * frame, a streaming reader for the response's length-prefixed messages,
 * the response's head and trailer lines, and the one function that turns
 * what arrived into the check's status and output text. No loop, no
 * libcurl: bytes in, values out (tests/unit/test_grpc_wire.c).
 *
 * The two messages of grpc/health/v1/health.proto are small enough to
 * encode by hand (docs/checks.md says why no protobuf library):
 *
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }
 *
 * and every message on the wire is framed (gRPC over HTTP/2, "Length-
 * Prefixed-Message"): 1 byte compressed flag, 4 bytes big-endian length,
 * the message.
 */
#ifndef HR_GRPC_WIRE_H
#define HR_GRPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "healthreg/status.h"

/* The biggest response message kept; a HealthCheckResponse is 2 bytes. */
#define HR__GRPC_MSG_MAX 16384
/* The head of grpc-message kept (percent-encoded, as received). */
#define HR__GRPC_TEXT_MAX 512

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum hr__grpc_code {
	HR__GRPC_OK = 0,
	HR__GRPC_CANCELLED = 1,
	HR__GRPC_UNKNOWN = 2,
	HR__GRPC_INVALID_ARGUMENT = 3,
	HR__GRPC_DEADLINE_EXCEEDED = 4,
	HR__GRPC_NOT_FOUND = 5,
	HR__GRPC_ALREADY_EXISTS = 6,
	HR__GRPC_PERMISSION_DENIED = 7,
	HR__GRPC_RESOURCE_EXHAUSTED = 8,
	HR__GRPC_FAILED_PRECONDITION = 9,
	HR__GRPC_ABORTED = 10,
	HR__GRPC_OUT_OF_RANGE = 11,
	HR__GRPC_UNIMPLEMENTED = 12,
	HR__GRPC_INTERNAL = 13,
	HR__GRPC_UNAVAILABLE = 14,
	HR__GRPC_DATA_LOSS = 15,
	HR__GRPC_UNAUTHENTICATED = 16,
};

/* "NOT_FOUND" for 5; NULL for a code outside 0..16. */
const char *hr__grpc_code_name(long code);

/* HealthCheckResponse.ServingStatus. */
enum hr__grpc_serving {
	HR__GRPC_SERVING_UNKNOWN = 0,
	HR__GRPC_SERVING = 1,
	HR__GRPC_NOT_SERVING = 2,
	HR__GRPC_SERVICE_UNKNOWN = 3,
};

/* "SERVING" for 1; NULL for a value outside 0..3. */
const char *hr__grpc_serving_name(int64_t status);

/*
 * Split a check's target "host:port[/service]" (Consul's rule: the
 * service is everything after the first '/', "" when none or empty):
 * *hostport_len is the length of host:port, *service points into target.
 * -EINVAL when host:port is empty, has no port in 1..65535, an IPv6
 * address without brackets or a host with a character other than
 * letters, digits and ".-_" (and ":%" inside brackets), or the service
 * has a control character.
 */
int hr__grpc_target_split(const char *target, size_t *hostport_len,
			  const char **service);

/*
 * The request frame for service (len bytes): 5-byte prefix and a
 * HealthCheckRequest. Returns the frame's size; writes it when cap is
 * large enough (call with cap 0 to size a buffer).
 */
size_t hr__grpc_request(const char *service, size_t len, uint8_t *out,
			size_t cap);

/*
 * Decode a HealthCheckResponse message. 0 with *status (0, UNKNOWN, when
 * the field is absent, proto3's default; the last one wins when repeated;
 * as int32, protobuf's rule for an enum), or -EPROTO for bytes that are
 * not a well-formed message: a truncated or over-long varint or field, a
 * field number 0, a group or an unknown wire type, status on a wire type
 * other than varint. Unknown fields are skipped.
 */
int hr__grpc_health_decode(const uint8_t *p, size_t n, int32_t *status);

/* What went wrong with the message stream, in the order found. */
enum hr__grpc_wire_err {
	HR__GRPC_W_OK = 0,
	HR__GRPC_W_COMPRESSED, /* a compressed message: none was offered */
	HR__GRPC_W_TOO_LARGE,  /* longer than HR__GRPC_MSG_MAX */
	HR__GRPC_W_MALFORMED,  /* not a HealthCheckResponse */
	HR__GRPC_W_EXTRA,      /* a second message in a unary response */
	HR__GRPC_W_TRUNCATED,  /* the stream ended inside a frame */
};

/*
 * The response body as a stream of frames, fed in pieces of any size:
 * a pure state machine (states below), errors sticky.
 */
struct hr__grpc_reader {
	enum {
		HR__GRPC_R_PREFIX,  /* await the 5 prefix bytes */
		HR__GRPC_R_MESSAGE, /* await len message bytes */
	} state;
	enum hr__grpc_wire_err err;
	uint8_t prefix[5];
	size_t got;          /* of the prefix or the message */
	uint32_t len;        /* the message's, from its prefix */
	unsigned messages;   /* complete and decoded */
	int32_t status;      /* of the first message */
	uint8_t msg[HR__GRPC_MSG_MAX];
};

/* Cannot fail. */
void hr__grpc_reader_init(struct hr__grpc_reader *r);

/* Consume n bytes; false once the stream is bad (r->err says why; the
 * rest need not be read). */
bool hr__grpc_reader_feed(struct hr__grpc_reader *r, const void *p, size_t n);

/* The stream ended: a frame cut short is HR__GRPC_W_TRUNCATED. */
void hr__grpc_reader_end(struct hr__grpc_reader *r);

/*
 * What the response's head and trailers said. grpc-status and
 * grpc-message count from wherever they came: the trailers, or the head
 * of a Trailers-Only response.
 */
struct hr__grpc_meta {
	long grpc_status;           /* -1 absent, -2 not a number */
	bool has_content_type, content_type_grpc;
	char content_type[64];      /* its head, for the output */
	char message[HR__GRPC_TEXT_MAX]; /* grpc-message as received */
	size_t message_len;
};

/* Cannot fail. */
void hr__grpc_meta_init(struct hr__grpc_meta *m);

/* One header or trailer line ("name: value\r\n", as libcurl hands it
 * over; a status line or anything else is ignored). */
void hr__grpc_meta_line(struct hr__grpc_meta *m, const char *line, size_t n);

/*
 * grpc-message's percent-encoding undone (gRPC's rule: a '%' not
 * followed by two hex digits stays as is), control characters as spaces;
 * into out (NUL-terminated, cut to fit). Returns the length written.
 */
size_t hr__grpc_message_decode(const char *in, size_t n, char *out,
			       size_t cap);

/*
 * grpc-timeout's value for a deadline of ms milliseconds: at most 8
 * digits and a unit ("500m", "3600S" when ms would need more digits).
 * ms < 1 counts as 1. Returns the length written (cap >= 10).
 */
size_t hr__grpc_timeout(int64_t ms, char *out, size_t cap);

/* gRPC's rule for an HTTP status without a grpc-status (http-grpc-
 * status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, ... */
enum hr__grpc_code hr__grpc_code_of_http(long http_code);

/*
 * A completed HTTP/2 exchange -> the check's status and output:
 *   SERVING                     passing "gRPC check T: SERVING"
 *   another serving status      critical "gRPC check T: NOT_SERVING"
 *   a gRPC error                critical "gRPC check T: NOT_FOUND
 *                               (grpc-status 5): unknown service"
 *   a response that breaks the protocol: critical, named by the code a
 *   gRPC client reports for it (INTERNAL, UNKNOWN, UNIMPLEMENTED...)
 * target is the check's as written. Returns the status; the text goes
 * to out (NUL-terminated, cut to fit), its length in *len.
 */
enum hr_status hr__grpc_verdict(const char *target, long http_code,
				const struct hr__grpc_meta *m,
				const struct hr__grpc_reader *r, char *out,
				size_t cap, size_t *len);

#endif
