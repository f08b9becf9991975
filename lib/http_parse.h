/*
 * http_parse.h - a pure HTTP/1.1 response parser (no I/O, no loop, no
 * libcurl), the failure classes every HTTP engine reports, and the split
 * of an http(s) URL's authority. The direct engine (http_direct.c) feeds
 * it the bytes it receives; tests/unit/test_http_parse.c feeds it every
 * input split at every byte.
 *
 * The parser reads one response to a GET (or, with no_body, to a HEAD):
 *
 *   P_STATUS   "HTTP/1.x NNN reason" (anything not starting "HTTP/" fails
 *              at once: "Received HTTP/0.9 when not allowed")
 *   P_HEADER   header lines up to the empty line; a 1xx other than 101 is
 *              skipped and the next status line awaited
 *   then one of
 *   P_BODY_LEN      Content-Length bytes
 *   P_BODY_EOF      until the peer closes (hr__http_parse_eof)
 *   P_CHUNK_HEX     chunk size digits
 *   P_CHUNK_EXT     the rest of the chunk-size line (extensions)
 *   P_CHUNK_DATA    chunk bytes
 *   P_CHUNK_POSTLF  the CRLF after a chunk
 *   P_TRAILER ...   trailer lines up to the empty line
 *   P_DONE          complete; later bytes are ignored
 *
 * Limits (the direct engine's, and libcurl's 100 KiB): the head bytes of
 * one response, interim 1xx responses included, at most HR__HTTP_HEAD_MAX;
 * at most 16 hex digits of chunk size. Nothing else is stored: a header
 * line is looked at in the bytes given when it is whole there, and only a
 * line that spans feeds is copied (into a buffer that grows to at most
 * the head limit). A redirect's Location is the one other allocation.
 *
 * Lifetime: hr__http_parse_init() cannot fail; hr__http_parse_dispose()
 * frees what the parser holds (the span buffer, the Location). The body
 * callback gets pointers into the bytes given to the feed call that it
 * runs inside; it must copy what it keeps.
 */
#ifndef HR_HTTP_PARSE_H
#define HR_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HR__HTTP_HEAD_MAX (100 * 1024)
#define HR__HTTP_MAX_REDIRECTS 10
#define HR__HTTP_REASON_MAX 64

/*
 * Why a run failed. Texts (libcurl 7.88's words) and their parameters are
 * in http_report.c, and both engines name their failures only by class.
 */
enum hr__http_fail {
	HR__HTTP_OK = 0,            /* a response (status and body) */
	HR__HTTP_E_CONNECT,         /* refused, unreachable */
	HR__HTTP_E_CONNECT_ETIMEDOUT, /* the kernel gave up connecting */
	HR__HTTP_E_CONNECT_TIMEOUT, /* the check's timeout, not connected */
	HR__HTTP_E_RESOLVE_TIMEOUT, /* the check's timeout, name lookup */
	HR__HTTP_E_TIMEOUT,         /* the check's timeout, connected */
	HR__HTTP_E_SEND,
	HR__HTTP_E_RECV,
	HR__HTTP_E_EMPTY,           /* closed before a final status line */
	HR__HTTP_E_WEIRD,           /* closed after it, inside the head */
	HR__HTTP_E_HTTP09,          /* not an HTTP/1.x status line */
	HR__HTTP_E_NUL_HEADER,
	HR__HTTP_E_NO_COLON,
	HR__HTTP_E_BAD_LENGTH,      /* invalid or conflicting Content-Length */
	HR__HTTP_E_HEAD_TOO_LARGE,
	HR__HTTP_E_CHUNK_HEX,
	HR__HTTP_E_CHUNK_TOO_LONG,
	HR__HTTP_E_CHUNK_BAD,
	HR__HTTP_E_PARTIAL,         /* closed before Content-Length bytes */
	HR__HTTP_E_PARTIAL_CHUNKED, /* closed before the last chunk */
	HR__HTTP_E_REDIRECTS,       /* more than HR__HTTP_MAX_REDIRECTS */
	HR__HTTP_E_OOM,
	HR__HTTP_E_OTHER,           /* libcurl-only failures, in its words */
	HR__HTTP_E_COUNT
};

enum hr__http_pstate {
	HR__P_STATUS, HR__P_HEADER, HR__P_BODY_LEN, HR__P_BODY_EOF,
	HR__P_CHUNK_HEX, HR__P_CHUNK_EXT, HR__P_CHUNK_DATA, HR__P_CHUNK_POSTLF,
	HR__P_TRAILER, HR__P_TRAILER_LINE, HR__P_TRAILER_CR, HR__P_DONE
};

/* hr__http_parse_feed / _eof results */
enum { HR__HTTP_FAILED = -1, HR__HTTP_MORE = 0, HR__HTTP_DONE = 1 };

/* Body bytes, as they arrive (n > 0). */
typedef void (*hr__http_body_cb)(const char *p, size_t n, void *payload);

struct hr__http_parser {
	enum hr__http_pstate state;
	enum hr__http_fail fail;  /* set when a call returned FAILED */
	bool no_body;             /* the response to a HEAD */
	bool chunked;
	int code;                 /* of the last status line */
	char reason[HR__HTTP_REASON_MAX];
	int64_t content_length;   /* -1: none */
	int64_t remaining;        /* P_BODY_LEN, P_CHUNK_DATA */
	int64_t body_total;       /* body bytes seen */
	unsigned hex_digits;      /* P_CHUNK_HEX */
	size_t head_bytes;        /* of this response, 1xx heads included */
	char *span;               /* a line that spans feeds (heap) */
	size_t span_len, span_cap;
	char *location;           /* a 3xx's Location (heap), else NULL */
	hr__http_body_cb body;
	void *payload;
};

/* Ready for one response. Cannot fail. */
void hr__http_parse_init(struct hr__http_parser *p, bool no_body,
			 hr__http_body_cb body, void *payload);
/*
 * Feed n received bytes (n may be 0). HR__HTTP_DONE once the response is
 * complete, HR__HTTP_MORE for more, HR__HTTP_FAILED with p->fail set.
 * After DONE or FAILED, further calls return the same and do nothing.
 */
int hr__http_parse_feed(struct hr__http_parser *p, const char *buf,
			size_t n);
/* The peer closed: DONE (a body read until close) or FAILED. */
int hr__http_parse_eof(struct hr__http_parser *p);
/* Frees what p holds; p may be initialised again. */
void hr__http_parse_dispose(struct hr__http_parser *p);

/*
 * The reason phrase of a status line (n bytes, with or without the line
 * end): what follows the second space, up to the line end, cut to fit
 * len (always NUL-terminated). The same rule for both engines.
 */
void hr__http_status_reason(const char *line, size_t n, char *reason,
			    size_t len);

/*
 * Whether a header line (n bytes, with or without its line end) is a
 * Content-Length, by the parser's rules, for the engine that does not
 * parse itself (http_curl.c): 1 with its value in *cl (-1 when too large
 * to count: then it is ignored), 0 for any other line, -1 for a value
 * that is not a number.
 */
int hr__http_content_length(const char *line, size_t n, int64_t *cl);

/* The parts of an http:// or https:// URL that the engines need. */
struct hr__http_url {
	const char *host;   /* not NUL-terminated, without [] */
	size_t host_len;
	bool bracketed;     /* an IPv6 literal */
	bool has_userinfo;
	unsigned port;      /* the scheme's default when none is given */
	bool port_given;
	bool https;
	const char *path;   /* from the first '/', '?' or '#' ("" if none) */
};

/* 0, or -1 when url is not http(s)://authority[...] with a valid port. */
int hr__http_url_split(const char *url, struct hr__http_url *u);

#endif
