/*
 * log.c - structured log lines (logfmt or JSON), one per event.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "healthreg/log.h"
#include "healthreg/util.h"

#define HR_LOG_MAX_KV 32

static int log_level = HR_LOG_INFO;
static enum hr_log_format log_format = HR_LOG_LOGFMT;
static FILE *log_stream;
static hr_log_sink_cb log_sink;
static void *log_payload;

void hr_log_setup(int level, enum hr_log_format format, FILE *stream)
{
	log_level = level;
	log_format = format;
	log_stream = stream;
}

void hr_log_set_sink(hr_log_sink_cb sink, void *payload)
{
	log_sink = sink;
	log_payload = payload;
}

int hr_log_level_parse(const char *s, int *out)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "error", HR_LOG_ERROR }, { "warn", HR_LOG_WARN },
		{ "warning", HR_LOG_WARN }, { "info", HR_LOG_INFO },
		{ "debug", HR_LOG_DEBUG },
	};
	size_t i;

	for (i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i].name)) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

int hr_log_enabled(int level)
{
	return level <= log_level;
}

static const char *level_name(int level)
{
	if (level <= HR_LOG_ERROR)
		return "error";
	if (level <= HR_LOG_WARN)
		return "warn";
	if (level <= HR_LOG_INFO)
		return "info";
	return "debug";
}

/*
 * The line being written. Every piece goes in whole or not at all (an
 * escape, a UTF-8 sequence, a key), and `reserve` bytes stay free for what
 * closes the constructs already open (a quote, the JSON object), plus two
 * for "\n" and the NUL: a cut line is still one line of valid UTF-8 and,
 * in JSON, a complete object. Invariant: pos + reserve + 2 <= len.
 */
struct out {
	char *buf;
	size_t len, pos;
	size_t reserve;
	bool full; /* a piece did not fit: nothing more goes in */
};

static bool put(struct out *o, const char *s, size_t n)
{
	if (o->full || n + o->reserve + 2 > o->len - o->pos) {
		o->full = true;
		return false;
	}
	memcpy(o->buf + o->pos, s, n);
	o->pos += n;
	o->buf[o->pos] = '\0';
	return true;
}

static bool puts_(struct out *o, const char *s)
{
	return put(o, s, strlen(s));
}

/* Write `open` and hold room for `close`; false (nothing written) when
 * both do not fit. */
static bool open_(struct out *o, const char *open, const char *close)
{
	size_t c = strlen(close);

	if (o->full)
		return false;
	o->reserve += c;
	if (!puts_(o, open)) {
		o->reserve -= c;
		return false;
	}
	return true;
}

/* Write what open_() held room for: always fits. */
static void close_(struct out *o, const char *close)
{
	size_t c = strlen(close);

	o->reserve -= c;
	memcpy(o->buf + o->pos, close, c);
	o->pos += c;
	o->buf[o->pos] = '\0';
}

/* Forget everything after mark (a piece that came only partly). */
static void rollback(struct out *o, size_t mark)
{
	o->pos = mark;
	o->buf[mark] = '\0';
}

/*
 * One character of a quoted string at p (n bytes left): '"', '\\' and
 * newlines escaped, other control bytes as \u00XX (JSON) or \xXX (logfmt),
 * a byte that starts no well-formed UTF-8 sequence as U+FFFD. Returns the
 * bytes consumed, 0 when the piece did not fit.
 */
static size_t put_char(struct out *o, const unsigned char *p, size_t n,
		       int json)
{
	size_t l = hr_utf8_len(p, n);
	char esc[8];

	if (!l)
		return put(o, HR_UTF8_REPLACEMENT, 3) ? 1 : 0;
	if (l > 1)
		return put(o, (const char *)p, l) ? l : 0;
	if (*p == '"' || *p == '\\') {
		esc[0] = '\\';
		esc[1] = (char)*p;
		return put(o, esc, 2) ? 1 : 0;
	}
	if (*p == '\n')
		return put(o, "\\n", 2) ? 1 : 0;
	if (*p < 0x20 || *p == 0x7f) {
		snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", *p);
		return puts_(o, esc) ? 1 : 0;
	}
	return put(o, (const char *)p, 1) ? 1 : 0;
}

/* A quoted string, cut on a character boundary when it does not fit.
 * False when not even the quotes fit (nothing written). */
static bool put_quoted(struct out *o, const char *v, int json)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v), used;

	if (!open_(o, "\"", "\""))
		return false;
	for (; n; p += used, n -= used) {
		used = put_char(o, p, n, json);
		if (!used)
			break;
	}
	close_(o, "\"");
	return true;
}

/* logfmt: quote when the value is empty or has a byte that is not
 * printable ASCII, or a space, '=' or '"'. */
static bool put_logfmt_value(struct out *o, const char *v)
{
	const unsigned char *p;
	int quote = !*v;

	for (p = (const unsigned char *)v; *p && !quote; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '=' || *p == '"')
			quote = 1;
	if (quote)
		return put_quoted(o, v, 0);
	/* Printable ASCII: any byte is a character boundary. */
	for (p = (const unsigned char *)v; *p; p++)
		if (!put(o, (const char *)p, 1))
			return p != (const unsigned char *)v;
	return true;
}

/* v is a number by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?. Pure. */
static bool json_number(const char *v)
{
	const char *p = v;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		if (!(*++p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* ,"key":"value" (JSON) or ` key=value` (logfmt); a pair whose key does
 * not fit is left out whole. A key marked HR_LOG_NUM() loses its mark,
 * and in JSON its value goes unquoted when it is a number (a number is
 * ASCII, so any byte of it is a boundary: put() takes it whole or not). */
static void put_pair(struct out *o, enum hr_log_format format,
		     const char *sep, const char *k, const char *v)
{
	size_t mark = o->pos;
	bool num = *k == HR_LOG_NUM_MARK, ok;

	if (num)
		k++;
	if (format == HR_LOG_JSON)
		ok = puts_(o, sep) && put_quoted(o, k, 1) && !o->full &&
		     put(o, ":", 1) &&
		     (num && json_number(v) ? puts_(o, v)
					    : put_quoted(o, v, 1));
	else
		ok = puts_(o, sep) && put_logfmt_value(o, k) && !o->full &&
		     put(o, "=", 1) && put_logfmt_value(o, v);
	if (!ok)
		rollback(o, mark);
}

void hr_log_format_line(char *buf, size_t len, enum hr_log_format format,
			int level, const char *event, const char *const *kv)
{
	struct out o = { buf, len, 0, 0, false };
	bool json = format == HR_LOG_JSON;
	char ts[64];
	struct timespec now;
	struct tm tm;
	size_t i;

	if (len < 2) {
		if (len)
			buf[0] = '\0';
		return;
	}
	buf[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (long)(now.tv_nsec / 1000000) % 1000);
	if (!json || open_(&o, "{", "}")) {
		put_pair(&o, format, "", "ts", ts);
		put_pair(&o, format, json ? "," : " ", "level", level_name(level));
		put_pair(&o, format, json ? "," : " ", "event", event);
		for (i = 0; kv && kv[i]; i += 2)
			put_pair(&o, format, json ? "," : " ", kv[i],
				 kv[i + 1] ? kv[i + 1] : "");
		if (json)
			close_(&o, "}");
	}
	/* Always end with a newline, even when the line was cut. */
	buf[o.pos++] = '\n';
	buf[o.pos] = '\0';
}

void hr_log(int level, const char *event, ...)
{
	const char *kv[HR_LOG_MAX_KV * 2 + 1];
	char line[8192];
	va_list ap;
	size_t n = 0;
	const char *k;

	if (!hr_log_enabled(level))
		return;
	va_start(ap, event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);

		if (n < HR_LOG_MAX_KV * 2) {
			kv[n++] = k;
			kv[n++] = v ? v : "";
		}
	}
	va_end(ap);
	kv[n] = NULL;
	if (log_sink) {
		log_sink(level, event, kv, log_payload);
		return;
	}
	hr_log_format_line(line, sizeof(line), log_format, level, event, kv);
	fputs(line, log_stream ? log_stream : stderr);
	fflush(log_stream ? log_stream : stderr);
}
