/*
 * check_core.c - one check: a run from start to finish, the schedule
 * (first-run spread, interval, jitter, interval_down), ttl deadlines,
 * thresholds and the stored result. Implements lib/check.h for the kinds
 * and lib/check_core.h for the set (lib/aggregator.c).
 *
 *   timer fires / hr__check_run() -> run_start() -> kind->start()
 *   kind ... -> hr__check_finish() -> record (check, then set)
 *            -> schedule the next run -> emit (set: listeners, evaluations)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_core.h"
#include "healthreg/log.h"
#include "internal.h"

#define FIRST_RUN_SPREAD 1.0 /* seconds */

/* ---- parking: frees deferred while the set's callbacks run ------------ */

void hr__host_hold(struct hr__check_host *h)
{
	h->busy++;
}

static void check_dispose(struct hr_check *c)
{
	free(c->waiters);
	hr_check_spec_dispose(&c->spec);
	free(c->output);
	free(c);
}

bool hr__host_release(struct hr__check_host *h)
{
	size_t i;

	if (--h->busy)
		return false;
	while (h->dead) {
		struct hr_check *c = h->dead;

		h->dead = c->run;
		check_dispose(c);
	}
	for (i = 0; i < h->n_old_outputs; i++)
		free(h->old_outputs[i]);
	h->n_old_outputs = 0;
	return true;
}

/* Free an output that an event in delivery may point at, or park it. */
static void output_drop(struct hr__check_host *h, char *s)
{
	char **v;

	if (!s || !h->busy) {
		free(s);
		return;
	}
	if (h->n_old_outputs == h->cap_old_outputs) {
		size_t cap = h->cap_old_outputs ? h->cap_old_outputs * 2 : 4;

		v = realloc(h->old_outputs, cap * sizeof(*v));
		if (!v)
			return; /* leaked rather than freed under a listener */
		h->old_outputs = v;
		h->cap_old_outputs = cap;
	}
	h->old_outputs[h->n_old_outputs++] = s;
}

/* ---- for the kinds (check.h) ------------------------------------------ */

const struct hr_check_spec *hr__check_spec(const struct hr_check *c)
{
	return &c->spec;
}

struct ev_loop *hr__check_loop(const struct hr_check *c)
{
	return c->host->loop;
}

struct hr_http *hr__check_http_glue(const struct hr_check *c)
{
	return c->host->http;
}

void **hr__check_run_slot(struct hr_check *c)
{
	return &c->run;
}

char *hr__output_store(const char *out, size_t len, size_t total)
{
	char marker[80];
	size_t mlen = 0, keep = len;
	char *s;

	if (total < len)
		total = len;
	if (total > HR_OUTPUT_MAX) {
		if (keep > HR_OUTPUT_MAX)
			keep = HR_OUTPUT_MAX;
		mlen = (size_t)snprintf(marker, sizeof(marker),
					" ... (captured %d of %zu bytes)",
					HR_OUTPUT_MAX, total);
	}
	s = malloc(keep + mlen + 1);
	if (!s)
		return NULL;
	memcpy(s, out, keep);
	memcpy(s + keep, marker, mlen);
	s[keep + mlen] = '\0';
	return s;
}

/* ---- record ------------------------------------------------------------ */

static void set_output(struct hr_check *c, char *owned, size_t len)
{
	output_drop(c->host, c->output);
	c->output = owned;
	c->output_len = owned ? len : SIZE_MAX;
}

/*
 * A probe's output is usually the same text run after run: keep the
 * stored copy then, so a steady check allocates nothing per run.
 */
static void store_output(struct hr_check *c, const char *out, size_t len,
			 size_t total)
{
	if (total <= len && c->output && c->output_len == len &&
	    !memcmp(c->output, out, len))
		return;
	set_output(c, hr__output_store(out, len, total),
		   total <= len && len <= HR_OUTPUT_MAX ? len : SIZE_MAX);
}

/* The result (its output already stored), the status after thresholds,
 * then the set's part of recording. */
static void record(struct hr_check *c, enum hr_status raw, double duration_ms,
		   struct hr__check_change *chg)
{
	enum hr_status st;

	chg->before = c->status;
	c->last_result = raw;
	c->result_at = ev_now(c->host->loop);
	c->result_wall = hr_wall_now();
	c->duration_ms = duration_ms;
	c->runs[raw == HR_STATUS_UNKNOWN ? HR_STATUS_CRITICAL : raw]++;
	if (raw == HR_STATUS_CRITICAL) {
		c->consecutive_failures++;
		c->consecutive_successes = 0;
	} else {
		c->consecutive_successes++;
		c->consecutive_failures = 0;
	}
	if (c->spec.kind == HR_CHECK_TTL)
		st = raw;
	else
		st = hr__thresh_apply(&c->thresh, &c->spec, c->status, raw);
	c->status = st;
	chg->name = c->spec.name;
	chg->output = c->output ? c->output : "";
	chg->raw = raw;
	chg->after = st;
	chg->duration_ms = duration_ms;
	if (st != chg->before)
		hr_log(st == HR_STATUS_PASSING ? HR_LOG_INFO : HR_LOG_WARN,
		       "check_status", "check", c->spec.name, "from",
		       hr_status_name(chg->before), "to", hr_status_name(st),
		       "output", chg->output, NULL);
	c->host->ops->record(c->host, c, chg);
}

/* ---- schedule ------------------------------------------------------------ */

static double rnd(struct hr__check_host *h)
{
	return hr_rng_unit(&h->rng);
}

static void schedule(struct hr_check *c, double delay)
{
	struct ev_loop *loop = c->host->loop;

	c->ideal = ev_now(loop) + delay; /* callers may refine it */
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, delay, 0.);
	ev_timer_start(loop, &c->timer);
}

/*
 * The first run: soon (spread at random over at most 1 s, or the
 * interval if shorter), so that the first aggregate is known quickly.
 * The schedule then takes its own phase: the second run is due 0.5 to
 * 1.5 intervals after the first (uniform: an interval on average), so
 * that checks started together spread evenly over their interval at
 * once instead of by the slow walk of the jitter.
 */
void hr__check_schedule_first(struct hr_check *c)
{
	struct hr__check_host *h = c->host;
	double ival = (double)c->spec.interval_ms / 1000.0;

	if (c->spec.kind == HR_CHECK_TTL) {
		schedule(c, (double)c->spec.ttl_ms / 1000.0);
		return;
	}
	schedule(c, rnd(h) * (ival < FIRST_RUN_SPREAD ? ival
						      : FIRST_RUN_SPREAD));
	c->ideal += ival * (rnd(h) - 0.5);
}

/* After a run: interval (interval_down while not passing) from when this
 * run was due, on the shared grid (hr__next_run). */
static void schedule_next(struct hr_check *c, double now)
{
	struct hr__check_host *h = c->host;
	int64_t ival = c->spec.interval_ms;
	double ideal = c->ideal;

	if (c->status != HR_STATUS_PASSING && c->spec.interval_down_ms)
		ival = c->spec.interval_down_ms;
	schedule(c, hr__next_run(&ideal, (double)ival / 1000.0, now, h->phase,
				 rnd(h)));
	c->ideal = ideal;
}

/* ---- a run ------------------------------------------------------------- */

void hr__check_finish(struct hr_check *c, enum hr_status raw,
		      const char *output, size_t len, size_t total)
{
	struct hr__check_host *h = c->host;
	struct hr__check_change chg;
	double now;

	ev_now_update(h->loop);
	now = ev_now(h->loop);
	c->running = false;
	c->run = NULL;
	store_output(c, output ? output : "", len, total);
	record(c, raw, (now - c->started) * 1000.0, &chg);
	if (h->started)
		schedule_next(c, now);
	h->ops->emit(h, &chg); /* c may be gone */
}

/*
 * by_timer: the timer started this run; the next one is then due
 * `interval` after this one was due (before jitter), not after it actually
 * started, so that the wakeup's lateness, the runs started before this one
 * in the same wakeup and the jitter do not add up: the rate stays
 * 1/interval on average (hr__next_run). A run started otherwise
 * (evaluate) counts from its start.
 */
static void run_start(struct hr_check *c, bool by_timer)
{
	struct ev_loop *loop = c->host->loop;
	struct hr_err err = { "" };
	const char *msg;
	int rc;

	if (c->running || !c->kind)
		return;
	ev_now_update(loop);
	c->started = ev_now(loop);
	if (!by_timer)
		c->ideal = c->started;
	c->running = true;
	ev_timer_stop(loop, &c->timer);
	rc = c->kind->start(c, &err);
	if (rc >= 0)
		return; /* c may be gone: the run may have ended already */
	msg = err.msg[0] ? err.msg : strerror(-rc);
	hr__check_finish(c, HR_STATUS_CRITICAL, msg, strlen(msg), strlen(msg));
}

void hr__check_run(struct hr_check *c)
{
	run_start(c, false);
}

/* No push within the ttl: critical, with Consul's texts. */
static void ttl_expired(struct hr_check *c)
{
	struct hr__check_change chg;
	char *out = NULL;

	if (c->output && *c->output) {
		if (asprintf(&out, "TTL expired (last output before timeout follows): %s",
			     c->output) < 0)
			out = NULL;
	} else {
		out = strdup("TTL expired");
	}
	hr_log(HR_LOG_WARN, "check_ttl_expired", "check", c->spec.name, NULL);
	set_output(c, out, SIZE_MAX);
	record(c, HR_STATUS_CRITICAL, 0, &chg);
	c->host->ops->emit(c->host, &chg); /* c may be gone */
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_check *c = container_of(w, struct hr_check, timer);

	(void)loop;
	(void)revents;
	if (c->spec.kind == HR_CHECK_TTL)
		ttl_expired(c);
	else
		run_start(c, true);
}

void hr__check_push(struct hr_check *c, enum hr_status st, const char *output)
{
	struct hr__check_change chg;
	const char *o = output ? output : "";

	ev_now_update(c->host->loop);
	set_output(c, hr__output_store(o, strlen(o), strlen(o)), SIZE_MAX);
	record(c, st, 0, &chg);
	schedule(c, (double)c->spec.ttl_ms / 1000.0);
	c->host->ops->emit(c->host, &chg); /* c may be gone */
}

/* ---- lifecycle and views -------------------------------------------------- */

static int spec_check(const struct hr_check_spec *spec, struct hr_err *err)
{
	if ((spec->kind == HR_CHECK_HTTP || spec->kind == HR_CHECK_TCP ||
	     spec->kind == HR_CHECK_GRPC) &&
	    !spec->target)
		return hr_err_set(err, -EINVAL, "check \"%s\": no target",
				  spec->name);
	if (spec->kind == HR_CHECK_EXEC && (!spec->args || !spec->args[0]))
		return hr_err_set(err, -EINVAL, "check \"%s\": no args",
				  spec->name);
	if (spec->kind != HR_CHECK_TTL && spec->interval_ms <= 0)
		return hr_err_set(err, -EINVAL, "check \"%s\": no interval",
				  spec->name);
	if (spec->kind == HR_CHECK_TTL && spec->ttl_ms <= 0)
		return hr_err_set(err, -EINVAL, "check \"%s\": no ttl",
				  spec->name);
	return 0;
}

int hr__check_new(struct hr_check **out, struct hr__check_host *host,
		  const struct hr_check_spec *spec,
		  const struct hr__check_kind *kind, struct hr_err *err)
{
	struct hr_check *c;
	int rc;

	*out = NULL;
	rc = spec_check(spec, err);
	if (rc)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return hr_err_set(err, -ENOMEM, "out of memory");
	c->output_len = SIZE_MAX;
	if (hr_check_spec_copy(&c->spec, spec)) {
		free(c);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	c->host = host;
	c->kind = kind;
	c->status = spec->has_initial_status ? spec->initial_status
					     : HR_STATUS_UNKNOWN;
	c->last_result = HR_STATUS_UNKNOWN;
	hr__thresh_init(&c->thresh, spec);
	ev_init(&c->timer, timer_cb);
	*out = c;
	return 0;
}

bool hr__check_halt(struct hr_check *c)
{
	bool was = c->running && c->kind;

	ev_timer_stop(c->host->loop, &c->timer);
	if (was)
		c->kind->cancel(c);
	c->running = false;
	c->run = NULL;
	return was;
}

void hr__check_free(struct hr_check *c)
{
	struct hr__check_host *h;

	if (!c)
		return;
	h = c->host;
	hr__check_halt(c);
	if (!h->busy) {
		check_dispose(c);
		return;
	}
	c->run = h->dead; /* no run can be in flight any more */
	h->dead = c;
}

bool hr__check_stale(const struct hr_check *c, double now)
{
	double ttl_ms;

	if (c->spec.kind == HR_CHECK_TTL)
		return false; /* pushed, never probed */
	if (c->result_at == 0)
		return true;
	ttl_ms = (c->last_result == HR_STATUS_PASSING ||
		  c->last_result == HR_STATUS_WARNING)
			 ? (double)c->spec.cache_ttl_ms
			 : (double)c->spec.failure_ttl_ms;
	return (now - c->result_at) * 1000.0 >= ttl_ms;
}

void hr__check_info(const struct hr_check *c, struct hr_check_info *o)
{
	memset(o, 0, sizeof(*o));
	o->name = c->spec.name;
	o->kind = c->spec.kind;
	o->status = c->status;
	o->last_result = c->last_result;
	o->output = c->output ? c->output : "";
	o->on_failure = c->spec.on_failure;
	o->last_run = c->result_at ? c->result_wall : 0;
	o->duration_ms = c->duration_ms;
	o->consecutive_failures = c->consecutive_failures;
	o->consecutive_successes = c->consecutive_successes;
	o->runs_passing = c->runs[HR_STATUS_PASSING];
	o->runs_warning = c->runs[HR_STATUS_WARNING];
	o->runs_critical = c->runs[HR_STATUS_CRITICAL];
	o->running = c->running;
}
