/*
 * journal.c - the decision journal of healthreg/journal.h: a ring of
 * fixed-size entries, the "decision" log line and the JSON shape.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "healthreg/journal.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

static const char *const decision_names[] = {
	[HR_DECISION_REGISTER] = "register",
	[HR_DECISION_DEREGISTER] = "deregister",
	[HR_DECISION_DEREGISTER_PENDING] = "deregister_pending",
	[HR_DECISION_KEPT] = "kept_by_floor",
	[HR_DECISION_HELD] = "held_for_reload",
	[HR_DECISION_MAINT_ON] = "maintenance_on",
	[HR_DECISION_MAINT_OFF] = "maintenance_off",
	[HR_DECISION_SHUTDOWN] = "shutdown",
	[HR_DECISION_LOST] = "registration_lost",
};

const char *hr_decision_name(enum hr_decision d)
{
	if ((unsigned)d >= sizeof(decision_names) / sizeof(decision_names[0]))
		return "unknown";
	return decision_names[d];
}

void hr_journal_init(struct hr_journal *j)
{
	memset(j, 0, sizeof(*j));
}

int hr_journal_resize(struct hr_journal *j, size_t cap)
{
	struct hr_journal_entry *v = NULL;
	size_t keep, i;

	if (cap > HR_JOURNAL_SIZE_MAX)
		return -ERANGE;
	if (cap == j->cap)
		return 0;
	if (cap && !(v = calloc(cap, sizeof(*v))))
		return -ENOMEM;
	keep = j->n < cap ? j->n : cap;
	/* The newest keep entries, oldest first. */
	for (i = 0; i < keep; i++)
		v[i] = *hr_journal_at(j, j->n - keep + i);
	free(j->v);
	j->v = v;
	j->cap = cap;
	j->n = keep;
	j->head = cap ? keep % cap : 0;
	return 0;
}

void hr_journal_dispose(struct hr_journal *j)
{
	free(j->v);
	hr_journal_init(j);
}

void hr_journal_set_context(struct hr_journal *j, hr_journal_context_cb cb,
			    void *payload)
{
	j->context = cb;
	j->payload = payload;
}

size_t hr_journal_count(const struct hr_journal *j)
{
	return j ? j->n : 0;
}

const struct hr_journal_entry *hr_journal_at(const struct hr_journal *j,
					     size_t i)
{
	if (!j || i >= j->n)
		return NULL;
	/* The oldest sits at head once the ring is full, else at 0. */
	return &j->v[(j->head + j->cap - j->n + i) % j->cap];
}

void hr_journal_excerpt(char *dst, size_t len, const char *src)
{
	const unsigned char *s = (const unsigned char *)(src ? src : "");
	size_t o = 0, left = strlen((const char *)s), k;

	if (!len)
		return;
	while (left && *s != '\n' && *s != '\r') {
		k = hr_utf8_len(s, left);
		if (o + (k ? k : 1) >= len)
			break;
		if (k)
			memcpy(dst + o, s, k);
		else
			dst[o] = '?';
		o += k ? k : 1;
		s += k ? k : 1;
		left -= k ? k : 1;
	}
	dst[o] = '\0';
}

void hr_journal_checks_text(const struct hr_journal_entry *e, char *buf,
			    size_t len)
{
	size_t i, o = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (i = 0; i < e->n_checks && o + 1 < len; i++) {
		const struct hr_journal_check *c = &e->checks[i];
		int w;

		if (c->changed)
			w = snprintf(buf + o, len - o, "%s%s=%s (was %s): %s",
				     o ? "; " : "", c->name,
				     hr_status_name(c->status),
				     hr_status_name(c->was), c->output);
		else
			w = snprintf(buf + o, len - o, "%s%s=%s: %s",
				     o ? "; " : "", c->name,
				     hr_status_name(c->status), c->output);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	if (o >= len)
		buf[len - 1] = '\0';
}

static void log_entry(const struct hr_journal_entry *e)
{
	char checks[1024];

	hr_journal_checks_text(e, checks, sizeof(checks));
	hr_log(HR_LOG_INFO, "decision", "decision",
	       hr_decision_name(e->decision), "service", e->service,
	       "backend", e->backend, "status",
	       e->have_status ? hr_status_name(e->status) : "none",
	       "aggregate",
	       e->have_aggregate ? hr_status_name(e->aggregate) : "none",
	       "why", e->why, "checks", checks, "dry_run",
	       e->dry_run ? "true" : "false", NULL);
}

const struct hr_journal_entry *hr_journal_record(struct hr_journal *j,
						 const struct hr_journal_entry *e)
{
	struct hr_journal_entry tmp = *e, *at;

	tmp.time = hr_wall_now();
	tmp.n_checks = 0;
	tmp.have_aggregate = false;
	if (j) {
		tmp.seq = ++j->seq;
		if (j->context)
			j->context(j->payload, &tmp);
	}
	if (tmp.n_checks > HR_JOURNAL_CHECKS)
		tmp.n_checks = HR_JOURNAL_CHECKS;
	log_entry(&tmp);
	if (!j || !j->cap)
		return NULL;
	at = &j->v[j->head];
	*at = tmp;
	j->head = (j->head + 1) % j->cap;
	if (j->n < j->cap)
		j->n++;
	return at;
}

static void add_time(cJSON *o, const char *key, double t)
{
	char ts[40];
	time_t s = (time_t)t;
	struct tm tm;
	size_t n;

	gmtime_r(&s, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ",
		 (int)((t - (double)s) * 1000.0) % 1000);
	cJSON_AddStringToObject(o, key, ts);
}

cJSON *hr_journal_entry_json(const struct hr_journal_entry *e)
{
	cJSON *o = cJSON_CreateObject(), *arr, *c;
	size_t i;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "seq", (double)e->seq);
	add_time(o, "time", e->time);
	cJSON_AddNumberToObject(o, "unix_time", e->time);
	cJSON_AddStringToObject(o, "decision", hr_decision_name(e->decision));
	cJSON_AddStringToObject(o, "service", e->service);
	cJSON_AddStringToObject(o, "backend", e->backend);
	cJSON_AddBoolToObject(o, "dry_run", e->dry_run);
	if (e->have_status)
		cJSON_AddStringToObject(o, "status", hr_status_name(e->status));
	else
		cJSON_AddNullToObject(o, "status");
	if (e->have_aggregate) {
		cJSON_AddStringToObject(o, "aggregate",
					hr_status_name(e->aggregate));
		cJSON_AddStringToObject(o, "output", e->output);
	} else {
		cJSON_AddNullToObject(o, "aggregate");
		cJSON_AddNullToObject(o, "output");
	}
	cJSON_AddBoolToObject(o, "maintenance", e->maintenance);
	cJSON_AddStringToObject(o, "why", e->why);
	arr = cJSON_AddArrayToObject(o, "checks");
	for (i = 0; arr && i < e->n_checks && i < HR_JOURNAL_CHECKS; i++) {
		const struct hr_journal_check *k = &e->checks[i];

		c = cJSON_CreateObject();
		if (!c)
			break;
		cJSON_AddStringToObject(c, "name", k->name);
		cJSON_AddStringToObject(c, "status", hr_status_name(k->status));
		cJSON_AddBoolToObject(c, "changed", k->changed);
		if (k->changed)
			cJSON_AddStringToObject(c, "was",
						hr_status_name(k->was));
		cJSON_AddStringToObject(c, "output", k->output);
		cJSON_AddItemToArray(arr, c);
	}
	return o;
}
