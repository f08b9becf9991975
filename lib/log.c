/*
 * log.c - structured log lines (logfmt or JSON), one per event.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "healthreg/log.h"

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

struct out {
	char *buf;
	size_t len, pos;
};

static void put(struct out *o, const char *s, size_t n)
{
	size_t room;

	if (o->pos + 1 >= o->len)
		return;
	room = o->len - 1 - o->pos;
	if (n > room)
		n = room;
	memcpy(o->buf + o->pos, s, n);
	o->pos += n;
	o->buf[o->pos] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/*
 * A quoted string with '"', '\\' and newlines escaped; other control bytes
 * as \u00XX (JSON) or \xXX (logfmt).
 */
static void put_quoted(struct out *o, const char *v, int json)
{
	const char *p;

	put(o, "\"", 1);
	for (p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", c);
			puts_(o, esc);
		} else {
			put(o, p, 1);
		}
	}
	put(o, "\"", 1);
}

/* logfmt: quote when the value has a space, '=', '"' or is empty. */
static void put_logfmt_value(struct out *o, const char *v)
{
	const char *p;
	int quote = !*v;

	for (p = v; *p && !quote; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == 0x7f)
			quote = 1;
	if (quote)
		put_quoted(o, v, 0);
	else
		puts_(o, v);
}

static void put_json_string(struct out *o, const char *v)
{
	put_quoted(o, v, 1);
}

void hr_log_format_line(char *buf, size_t len, enum hr_log_format format,
			int level, const char *event, const char *const *kv)
{
	struct out o = { buf, len, 0 };
	char ts[64];
	struct timespec now;
	struct tm tm;
	size_t i;

	if (!len)
		return;
	buf[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (long)(now.tv_nsec / 1000000) % 1000);
	if (format == HR_LOG_JSON) {
		puts_(&o, "{\"ts\":\"");
		puts_(&o, ts);
		puts_(&o, "\",\"level\":\"");
		puts_(&o, level_name(level));
		puts_(&o, "\",\"event\":");
		put_json_string(&o, event);
		for (i = 0; kv && kv[i]; i += 2) {
			put(&o, ",", 1);
			put_json_string(&o, kv[i]);
			put(&o, ":", 1);
			put_json_string(&o, kv[i + 1] ? kv[i + 1] : "");
		}
		puts_(&o, "}");
	} else {
		puts_(&o, "ts=");
		puts_(&o, ts);
		puts_(&o, " level=");
		puts_(&o, level_name(level));
		puts_(&o, " event=");
		put_logfmt_value(&o, event);
		for (i = 0; kv && kv[i]; i += 2) {
			put(&o, " ", 1);
			puts_(&o, kv[i]);
			put(&o, "=", 1);
			put_logfmt_value(&o, kv[i + 1] ? kv[i + 1] : "");
		}
	}
	/* Always end with a newline, even when the line was cut. */
	if (o.pos + 1 >= len)
		o.pos = len - 2;
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
