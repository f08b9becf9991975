/*
 * aggregator.c - the generic layer: the check set, scheduling (first-run
 * spread, interval, jitter, interval_down), thresholds, ttl checks, the
 * result cache used by on-demand evaluation, the aggregate and listeners.
 *
 *   timer fires / evaluate() -> run_start() -> kind->start()
 *   kind ... -> hr__check_finish() -> thresholds -> status change?
 *            -> listeners, recompute aggregate -> schedule next run
 *            -> wake evaluations waiting for this check
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "healthreg/log.h"
#include "internal.h"

#define DEFAULT_MAX_CONCURRENT 64
#define FIRST_RUN_SPREAD 1.0 /* seconds */

struct eval;

struct hr_check {
	struct hr_agg *agg;
	struct hr_check_spec spec; /* deep copy */
	const struct hr__check_kind *kind;
	ev_timer timer;            /* next run, or ttl expiry */
	void *run;                 /* the kind's per-run state */
	char *output;              /* NULL = "" */
	size_t output_len;         /* bytes in output, SIZE_MAX = unknown */
	double started;            /* ev_now() at run start */
	double ideal;              /* when the (running) run is due, before jitter */
	double result_at;          /* ev_now() of the last result, 0 = none */
	double result_wall;
	double duration_ms;
	struct hr__thresh thresh;
	enum hr_status status, last_result;
	uint32_t consecutive_failures, consecutive_successes;
	uint64_t runs[3];
	struct eval **waiters;     /* evaluations waiting for this run */
	unsigned n_waiters;
	bool running;
	bool eval_queued;
};

struct listener {
	int id;
	hr_agg_listener_cb cb;
	void *payload;
};

struct eval {
	struct hr_agg *agg;
	hr_agg_eval_cb cb;
	void *payload;
	struct hr_check **queue;   /* to start, in order */
	size_t n_queue, next;
	unsigned pending;          /* checks not yet finished */
	unsigned inflight;         /* started by this evaluation */
	bool pumping;              /* inside eval_pump() */
	struct eval *prev, *next_eval;
};

struct hr_agg {
	struct ev_loop *loop;
	struct hr_http *http;
	bool own_http;
	struct hr_agg_opts opts;
	struct hr_check **checks;
	size_t n_checks, cap_checks;
	struct hr_group_spec *groups;
	size_t n_groups;
	struct listener *listeners;
	size_t n_listeners;
	int next_listener_id;
	struct eval *evals;
	enum hr_status status;
	char summary[1024];
	bool started;
	bool batch;                 /* add_config: one recompute at the end */
	unsigned rng;
	double phase;               /* origin of the run grid, hr__next_run() */
	/*
	 * Tallies of check statuses, kept as statuses change so that a
	 * recompute costs O(groups + the checks scanned for names), not a
	 * pass over every check: by status; ungrouped by (on_failure,
	 * status); per group: passing and warning members.
	 */
	size_t count[4];
	size_t ungrouped[3][4];
	size_t (*group_count)[2];
};

static void schedule(struct hr_check *c, double delay);
static void recompute(struct hr_agg *agg);
static void tally(struct hr_agg *agg, const struct hr_check *c, int delta);
static void eval_check_done(struct hr_check *c);

/* ---- small helpers ------------------------------------------------ */

static double rnd(struct hr_agg *agg)
{
	/* xorshift32: cheap, seedable for tests */
	unsigned x = agg->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	agg->rng = x;
	return (double)(x % 1000000u) / 1000000.0;
}

static double wall_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void emit(struct hr_agg *agg, const struct hr_agg_event *ev)
{
	size_t i;

	for (i = 0; i < agg->n_listeners; i++)
		agg->listeners[i].cb(agg, ev, agg->listeners[i].payload);
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

/* ---- accessors for kinds ---------------------------------------------- */

const struct hr_check_spec *hr__check_spec(const struct hr_check *c)
{
	return &c->spec;
}

struct ev_loop *hr__check_loop(const struct hr_check *c)
{
	return c->agg->loop;
}

struct hr_http *hr__check_http_glue(const struct hr_check *c)
{
	return c->agg->http;
}

void **hr__check_run_slot(struct hr_check *c)
{
	return &c->run;
}

/* ---- results ------------------------------------------------------------ */

static void set_output(struct hr_check *c, char *owned, size_t len)
{
	free(c->output);
	c->output = owned;
	c->output_len = owned ? len : SIZE_MAX;
}

/*
 * A probe's output is usually the same text run after run: keep the
 * stored copy then, so a steady check allocates nothing per run.
 */
static bool output_unchanged(const struct hr_check *c, const char *out,
			     size_t len, size_t total)
{
	return total <= len && c->output && c->output_len == len &&
	       !memcmp(c->output, out, len);
}

/* Apply a new status (after thresholds) and notify. */
static void apply_status(struct hr_check *c, enum hr_status st)
{
	struct hr_agg *agg = c->agg;
	enum hr_status old = c->status;
	struct hr_agg_event ev;

	if (st == old)
		return;
	tally(agg, c, -1);
	c->status = st;
	tally(agg, c, +1);
	hr_log(st == HR_STATUS_PASSING ? HR_LOG_INFO : HR_LOG_WARN,
	       "check_status", "check", c->spec.name, "from",
	       hr_status_name(old), "to", hr_status_name(st), "output",
	       c->output ? c->output : "", NULL);
	memset(&ev, 0, sizeof(ev));
	ev.type = HR_EVENT_CHECK_STATUS;
	ev.check = c->spec.name;
	ev.old_status = old;
	ev.new_status = st;
	ev.output = c->output ? c->output : "";
	emit(agg, &ev);
	recompute(agg);
}

/* owned_output: the new output (NULL = none), or keep the current one. */
static void record_result(struct hr_check *c, enum hr_status raw,
			  char *owned_output, size_t len, bool keep,
			  double duration_ms)
{
	struct hr_agg_event ev;
	enum hr_status st;

	c->last_result = raw;
	c->result_at = ev_now(c->agg->loop);
	c->result_wall = wall_now();
	c->duration_ms = duration_ms;
	c->runs[raw == HR_STATUS_UNKNOWN ? HR_STATUS_CRITICAL : raw]++;
	if (raw == HR_STATUS_CRITICAL) {
		c->consecutive_failures++;
		c->consecutive_successes = 0;
	} else {
		c->consecutive_successes++;
		c->consecutive_failures = 0;
	}
	if (!keep)
		set_output(c, owned_output, len);
	memset(&ev, 0, sizeof(ev));
	ev.type = HR_EVENT_CHECK_RESULT;
	ev.check = c->spec.name;
	ev.old_status = c->status;
	ev.new_status = raw;
	ev.output = c->output ? c->output : "";
	ev.duration_ms = duration_ms;
	emit(c->agg, &ev);
	if (c->spec.kind == HR_CHECK_TTL)
		st = raw;
	else
		st = hr__thresh_apply(&c->thresh, &c->spec, c->status, raw);
	apply_status(c, st);
}

void hr__check_finish(struct hr_check *c, enum hr_status raw,
		      const char *output, size_t len, size_t total)
{
	struct hr_agg *agg = c->agg;
	double now, ideal;
	int64_t ival;

	ev_now_update(agg->loop);
	now = ev_now(agg->loop);
	c->running = false;
	c->run = NULL;
	if (!output)
		output = "";
	if (output_unchanged(c, output, len, total))
		record_result(c, raw, NULL, 0, true,
			      (now - c->started) * 1000.0);
	else
		record_result(c, raw, hr__output_store(output, len, total),
			      total <= len && len <= HR_OUTPUT_MAX ? len
								   : SIZE_MAX,
			      false,
			      (now - c->started) * 1000.0);
	if (agg->started) {
		ival = c->spec.interval_ms;
		if (c->status != HR_STATUS_PASSING && c->spec.interval_down_ms)
			ival = c->spec.interval_down_ms;
		ideal = c->ideal;
		schedule(c, hr__next_run(&ideal, (double)ival / 1000.0, now,
					 agg->phase, rnd(agg)));
		c->ideal = ideal;
	}
	eval_check_done(c);
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
	struct hr_err err = { "" };
	int rc;

	if (c->running || !c->kind)
		return;
	ev_now_update(c->agg->loop);
	c->started = ev_now(c->agg->loop);
	if (!by_timer)
		c->ideal = c->started;
	c->running = true;
	ev_timer_stop(c->agg->loop, &c->timer);
	rc = c->kind->start(c, &err);
	if (rc < 0) {
		const char *msg = err.msg[0] ? err.msg : strerror(-rc);

		hr__check_finish(c, HR_STATUS_CRITICAL, msg, strlen(msg),
				 strlen(msg));
	}
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_check *c = container_of(w, struct hr_check, timer);

	(void)loop;
	(void)revents;
	if (c->spec.kind == HR_CHECK_TTL) {
		char *out = NULL;

		if (c->output && *c->output) {
			if (asprintf(&out, "TTL expired (last output before timeout follows): %s",
				     c->output) < 0)
				out = NULL;
		} else {
			out = strdup("TTL expired");
		}
		hr_log(HR_LOG_WARN, "check_ttl_expired", "check", c->spec.name,
		       NULL);
		record_result(c, HR_STATUS_CRITICAL, out, SIZE_MAX, false, 0);
		return;
	}
	run_start(c, true);
}

/*
 * The first run: soon (spread at random over at most 1 s, or the
 * interval if shorter), so that the first aggregate is known quickly.
 * The schedule then takes its own phase: the second run is due 0.5 to
 * 1.5 intervals after the first (uniform: an interval on average), so
 * that checks started together spread evenly over their interval at
 * once instead of by the slow walk of the jitter.
 */
static void schedule_first(struct hr_check *c)
{
	struct hr_agg *agg = c->agg;
	double ival = (double)c->spec.interval_ms / 1000.0;

	schedule(c, rnd(agg) * (ival < FIRST_RUN_SPREAD ? ival
							 : FIRST_RUN_SPREAD));
	c->ideal += ival * (rnd(agg) - 0.5);
}

static void schedule(struct hr_check *c, double delay)
{
	c->ideal = ev_now(c->agg->loop) + delay; /* callers may refine it */
	ev_timer_stop(c->agg->loop, &c->timer);
	ev_timer_set(&c->timer, delay, 0.);
	ev_timer_start(c->agg->loop, &c->timer);
}

/* ---- aggregate ------------------------------------------------------------ */

/* Count c (delta +1) or stop counting it (-1), under its current status. */
static void tally(struct hr_agg *agg, const struct hr_check *c, int delta)
{
	size_t d = (size_t)delta; /* wraps for -1: unsigned arithmetic */
	int g = c->spec.group;

	agg->count[c->status] += d;
	if (g < 0)
		agg->ungrouped[c->spec.on_failure][c->status] += d;
	else if (agg->group_count && (size_t)g < agg->n_groups &&
		 c->status <= HR_STATUS_WARNING)
		agg->group_count[g][c->status] += d;
}

/* Recount everything (the groups changed). -ENOMEM leaves no tallies. */
static int retally(struct hr_agg *agg)
{
	size_t i;

	free(agg->group_count);
	agg->group_count = NULL;
	memset(agg->count, 0, sizeof(agg->count));
	memset(agg->ungrouped, 0, sizeof(agg->ungrouped));
	if (agg->n_groups) {
		agg->group_count = calloc(agg->n_groups,
					  sizeof(*agg->group_count));
		if (!agg->group_count)
			return -ENOMEM;
	}
	for (i = 0; i < agg->n_checks; i++)
		tally(agg, agg->checks[i], +1);
	return 0;
}

/*
 * The aggregate and summary from the tallies: the same result as
 * hr__aggregate() over every check (see checks.md), and the same text.
 */
static enum hr_status aggregate_now(const struct hr_agg *agg, char *summary,
				    size_t len)
{
	const char *names[4][HR__SUMMARY_NAMES];
	size_t named[4] = { 0 }, need[4] = { 0 }, missing = 0, i;
	enum hr_status st = HR_STATUS_PASSING;
	int f, s;

	for (f = 0; f < 3; f++)
		for (s = 0; s < 4; s++)
			if (agg->ungrouped[f][s])
				st = hr_status_worst(
					st, hr__contribution((enum hr_status)s,
							     (enum hr_on_failure)f));
	for (i = 0; i < agg->n_groups; i++)
		st = hr_status_worst(
			st, hr__group_contribution(
				    &agg->groups[i],
				    agg->group_count ? agg->group_count[i][0] : 0,
				    agg->group_count ? agg->group_count[i][1] : 0));
	for (s = HR_STATUS_WARNING; s <= HR_STATUS_UNKNOWN; s++) {
		need[s] = agg->count[s] < HR__SUMMARY_NAMES ? agg->count[s]
							   : HR__SUMMARY_NAMES;
		missing += need[s];
	}
	/* the first names per status, in check order: stop once found */
	for (i = 0; i < agg->n_checks && missing; i++) {
		const struct hr_check *c = agg->checks[i];

		s = (int)c->status;
		if (s != HR_STATUS_PASSING && named[s] < need[s]) {
			names[s][named[s]++] = c->spec.name;
			missing--;
		}
	}
	hr__summary(agg->count, (const char *const (*)[HR__SUMMARY_NAMES])names,
		    summary, len);
	return st;
}

static void recompute(struct hr_agg *agg)
{
	char summary[sizeof(agg->summary)];
	enum hr_status st, old = agg->status;
	struct hr_agg_event ev;

	st = aggregate_now(agg, summary, sizeof(summary));
	if (st == old && !strcmp(summary, agg->summary))
		return;
	agg->status = st;
	memcpy(agg->summary, summary, sizeof(summary));
	if (st != old && agg->started)
		hr_log(st == HR_STATUS_PASSING ? HR_LOG_INFO : HR_LOG_WARN,
		       "aggregate_status", "from", hr_status_name(old), "to",
		       hr_status_name(st), "output", summary, NULL);
	memset(&ev, 0, sizeof(ev));
	ev.type = HR_EVENT_AGGREGATE;
	ev.old_status = old;
	ev.new_status = st;
	ev.output = agg->summary;
	emit(agg, &ev);
}

/* ---- evaluation ------------------------------------------------------------ */

static bool is_stale(const struct hr_check *c, double now)
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

static int add_waiter(struct hr_check *c, struct eval *e)
{
	struct eval **w = realloc(c->waiters, (c->n_waiters + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	c->waiters = w;
	c->waiters[c->n_waiters++] = e;
	e->pending++;
	return 0;
}

static void eval_finish(struct eval *e)
{
	struct hr_agg *agg = e->agg;

	if (e->prev)
		e->prev->next_eval = e->next_eval;
	else
		agg->evals = e->next_eval;
	if (e->next_eval)
		e->next_eval->prev = e->prev;
	free(e->queue);
	e->cb(agg, agg->status, agg->summary, e->payload);
	free(e);
}

static void eval_pump(struct eval *e)
{
	int max = e->agg->opts.max_concurrent;

	/* A run may finish synchronously inside run_start() and call back
	 * into eval_check_done(): it must not finish (free) e under us. */
	if (e->pumping)
		return;
	e->pumping = true;
	while (e->next < e->n_queue && (int)e->inflight < max) {
		struct hr_check *c = e->queue[e->next++];

		if (!c)
			continue; /* removed meanwhile */
		c->eval_queued = false;
		e->inflight++;
		if (c->running)
			continue; /* a scheduled run will finish it */
		run_start(c, false);
	}
	e->pumping = false;
	if (e->pending == 0)
		eval_finish(e);
}

/* A run of c ended (or c is going away): release waiting evaluations. */
static void eval_check_done(struct hr_check *c)
{
	struct eval **w = c->waiters;
	unsigned i, n = c->n_waiters;

	if (!n)
		return;
	c->waiters = NULL;
	c->n_waiters = 0;
	for (i = 0; i < n; i++) {
		struct eval *e = w[i];

		if (e->inflight)
			e->inflight--;
		e->pending--;
	}
	for (i = 0; i < n; i++) {
		struct eval *e = w[i];

		if (!e->pumping)
			eval_pump(e); /* finishes e when nothing is pending */
	}
	free(w);
}

int hr_agg_evaluate(struct hr_agg *agg, hr_agg_eval_cb cb, void *payload)
{
	struct eval *e;
	double now;
	size_t i;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->agg = agg;
	e->cb = cb;
	e->payload = payload;
	e->queue = calloc(agg->n_checks ? agg->n_checks : 1, sizeof(*e->queue));
	if (!e->queue) {
		free(e);
		return -ENOMEM;
	}
	e->next_eval = agg->evals;
	if (agg->evals)
		agg->evals->prev = e;
	agg->evals = e;
	ev_now_update(agg->loop);
	now = ev_now(agg->loop);
	for (i = 0; i < agg->n_checks; i++) {
		struct hr_check *c = agg->checks[i];

		if (c->running) {
			if (add_waiter(c, e) == 0)
				e->inflight++; /* counts against the bound */
		} else if (is_stale(c, now)) {
			if (add_waiter(c, e) == 0)
				e->queue[e->n_queue++] = c;
		}
	}
	eval_pump(e); /* calls back at once when nothing is stale */
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

int hr_agg_new(struct hr_agg **out, struct ev_loop *loop,
	       struct hr_http *http, const struct hr_agg_opts *opts,
	       struct hr_err *err)
{
	struct hr_agg *agg;
	int rc;

	*out = NULL;
	agg = calloc(1, sizeof(*agg));
	if (!agg)
		return hr_err_set(err, -ENOMEM, "out of memory");
	agg->loop = loop;
	if (opts)
		agg->opts = *opts;
	if (agg->opts.max_concurrent <= 0)
		agg->opts.max_concurrent = DEFAULT_MAX_CONCURRENT;
	agg->rng = agg->opts.seed ? agg->opts.seed
				  : (unsigned)(wall_now() * 1e6) ^ (unsigned)getpid();
	if (!agg->rng)
		agg->rng = 1;
	agg->phase = rnd(agg) * 3600.0;
	if (http) {
		agg->http = http;
	} else {
		rc = hr_http_new(&agg->http, loop, err);
		if (rc) {
			free(agg);
			return rc;
		}
		agg->own_http = true;
	}
	agg->status = HR_STATUS_PASSING;
	recompute(agg);
	*out = agg;
	return 0;
}

static void check_free(struct hr_check *c)
{
	ev_timer_stop(c->agg->loop, &c->timer);
	if (c->running && c->kind)
		c->kind->cancel(c);
	c->running = false;
	eval_check_done(c);
	hr_check_spec_dispose(&c->spec);
	free(c->output);
	free(c);
}

void hr_agg_free(struct hr_agg *agg)
{
	size_t i;

	if (!agg)
		return;
	for (i = 0; i < agg->n_checks; i++) {
		ev_timer_stop(agg->loop, &agg->checks[i]->timer);
		if (agg->checks[i]->running && agg->checks[i]->kind)
			agg->checks[i]->kind->cancel(agg->checks[i]);
		agg->checks[i]->running = false;
	}
	/* Pending evaluations are dropped without a callback. */
	while (agg->evals) {
		struct eval *e = agg->evals;

		agg->evals = e->next_eval;
		free(e->queue);
		free(e);
	}
	for (i = 0; i < agg->n_checks; i++) {
		free(agg->checks[i]->waiters);
		agg->checks[i]->waiters = NULL;
		agg->checks[i]->n_waiters = 0;
		hr_check_spec_dispose(&agg->checks[i]->spec);
		free(agg->checks[i]->output);
		free(agg->checks[i]);
	}
	free(agg->checks);
	free(agg->group_count);
	for (i = 0; i < agg->n_groups; i++)
		free(agg->groups[i].name);
	free(agg->groups);
	free(agg->listeners);
	if (agg->own_http)
		hr_http_free(agg->http);
	free(agg);
}

int hr_agg_add_group(struct hr_agg *agg, const struct hr_group_spec *g,
		     struct hr_err *err)
{
	struct hr_group_spec *v;
	size_t i;

	for (i = 0; i < agg->n_groups; i++)
		if (!strcmp(agg->groups[i].name, g->name))
			return hr_err_set(err, -EEXIST,
					  "group \"%s\" already exists", g->name);
	v = realloc(agg->groups, (agg->n_groups + 1) * sizeof(*v));
	if (!v)
		return hr_err_set(err, -ENOMEM, "out of memory");
	agg->groups = v;
	v[agg->n_groups] = *g;
	v[agg->n_groups].name = strdup(g->name);
	if (!v[agg->n_groups].name)
		return hr_err_set(err, -ENOMEM, "out of memory");
	agg->n_groups++;
	if (retally(agg))
		return hr_err_set(err, -ENOMEM, "out of memory");
	recompute(agg);
	return 0;
}

static struct hr_check *find(const struct hr_agg *agg, const char *name,
			     size_t *idx)
{
	size_t i;

	for (i = 0; i < agg->n_checks; i++) {
		if (!strcmp(agg->checks[i]->spec.name, name)) {
			if (idx)
				*idx = i;
			return agg->checks[i];
		}
	}
	return NULL;
}

int hr_agg_add_check(struct hr_agg *agg, const struct hr_check_spec *spec,
		     struct hr_err *err)
{
	struct hr_check *c;

	if (!spec->name || !*spec->name)
		return hr_err_set(err, -EINVAL, "a check needs a name");
	if (!agg->batch && find(agg, spec->name, NULL))
		return hr_err_set(err, -EEXIST, "check \"%s\" already exists",
				  spec->name);
	if (spec->group >= (int)agg->n_groups)
		return hr_err_set(err, -EINVAL, "check \"%s\": no group %d",
				  spec->name, spec->group);
	if (spec->kind == HR_CHECK_EXEC && !agg->opts.enable_exec_checks)
		return hr_err_set(err, -EPERM,
				  "check \"%s\": exec checks are disabled",
				  spec->name);
	if ((spec->kind == HR_CHECK_HTTP || spec->kind == HR_CHECK_TCP) &&
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
	if (agg->n_checks == agg->cap_checks) {
		size_t cap = agg->cap_checks ? agg->cap_checks * 2 : 16;
		struct hr_check **v = realloc(agg->checks, cap * sizeof(*v));

		if (!v)
			return hr_err_set(err, -ENOMEM, "out of memory");
		agg->checks = v;
		agg->cap_checks = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return hr_err_set(err, -ENOMEM, "out of memory");
	c->output_len = SIZE_MAX;
	if (hr_check_spec_copy(&c->spec, spec)) {
		free(c);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	c->agg = agg;
	switch (spec->kind) {
	case HR_CHECK_HTTP:
		c->kind = &hr__check_http;
		break;
	case HR_CHECK_TCP:
		c->kind = &hr__check_tcp;
		break;
	case HR_CHECK_EXEC:
		c->kind = &hr__check_exec;
		break;
	case HR_CHECK_TTL:
		c->kind = NULL;
		break;
	}
	c->status = spec->has_initial_status ? spec->initial_status
					     : HR_STATUS_UNKNOWN;
	tally(agg, c, +1);
	c->last_result = HR_STATUS_UNKNOWN;
	hr__thresh_init(&c->thresh, spec);
	ev_init(&c->timer, timer_cb);
	agg->checks[agg->n_checks++] = c;
	if (!agg->batch)
		recompute(agg);
	if (agg->started) {
		if (c->spec.kind == HR_CHECK_TTL)
			schedule(c, (double)c->spec.ttl_ms / 1000.0);
		else
			schedule_first(c);
	}
	return 0;
}

int hr_agg_remove_check(struct hr_agg *agg, const char *name)
{
	struct hr_check *c;
	struct eval *e;
	size_t i, j;

	c = find(agg, name, &i);
	if (!c)
		return -ENOENT;
	/* Forget it in evaluation queues before it goes away. */
	for (e = agg->evals; e; e = e->next_eval)
		for (j = e->next; j < e->n_queue; j++)
			if (e->queue[j] == c)
				e->queue[j] = NULL;
	memmove(&agg->checks[i], &agg->checks[i + 1],
		(agg->n_checks - i - 1) * sizeof(*agg->checks));
	agg->n_checks--;
	tally(agg, c, -1);
	check_free(c);
	recompute(agg);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * true when the config's check names are unique and new to agg (sorted
 * copy: O(n log n) instead of a linear find() per check).
 */
static bool names_unique(const struct hr_agg *agg, const struct hr_config *cfg)
{
	size_t n = agg->n_checks + cfg->n_checks, i, k = 0;
	const char **v = malloc((n ? n : 1) * sizeof(*v));
	bool ok = true;

	if (!v)
		return false;
	for (i = 0; i < agg->n_checks; i++)
		v[k++] = agg->checks[i]->spec.name;
	for (i = 0; i < cfg->n_checks; i++) {
		if (!cfg->checks[i].name) {
			ok = false;
			break;
		}
		v[k++] = cfg->checks[i].name;
	}
	if (ok) {
		qsort(v, k, sizeof(*v), cmp_name);
		for (i = 1; i < k && ok; i++)
			ok = strcmp(v[i - 1], v[i]) != 0;
	}
	free(v);
	return ok;
}

int hr_agg_add_config(struct hr_agg *agg, const struct hr_config *cfg,
		      struct hr_err *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < cfg->n_groups; i++) {
		rc = hr_agg_add_group(agg, &cfg->groups[i], err);
		if (rc)
			return rc;
	}
	/*
	 * Nobody can observe the aggregate between two adds when no one
	 * listens: then recompute once at the end, and check names in one
	 * sort, so a large config loads in O(n log n), not O(n^2).
	 */
	agg->batch = agg->n_listeners == 0 && names_unique(agg, cfg);
	for (i = 0; i < cfg->n_checks; i++) {
		rc = hr_agg_add_check(agg, &cfg->checks[i], err);
		if (rc)
			break;
	}
	if (agg->batch) {
		agg->batch = false;
		recompute(agg);
	}
	return rc;
}

void hr_agg_start(struct hr_agg *agg)
{
	size_t i;

	if (agg->started)
		return;
	agg->started = true;
	for (i = 0; i < agg->n_checks; i++) {
		struct hr_check *c = agg->checks[i];

		if (c->spec.kind == HR_CHECK_TTL) {
			schedule(c, (double)c->spec.ttl_ms / 1000.0);
			continue;
		}
		schedule_first(c);
	}
}

void hr_agg_stop(struct hr_agg *agg)
{
	size_t i;

	agg->started = false;
	for (i = 0; i < agg->n_checks; i++) {
		struct hr_check *c = agg->checks[i];

		ev_timer_stop(agg->loop, &c->timer);
		if (c->running && c->kind) {
			c->kind->cancel(c);
			c->running = false;
			c->run = NULL;
			eval_check_done(c);
		}
	}
}

int hr_agg_ttl_update(struct hr_agg *agg, const char *name,
		      enum hr_status status, const char *output)
{
	struct hr_check *c = find(agg, name, NULL);
	const char *o = output ? output : "";

	if (!c)
		return -ENOENT;
	if (c->spec.kind != HR_CHECK_TTL || status == HR_STATUS_UNKNOWN)
		return -EINVAL;
	ev_now_update(agg->loop);
	record_result(c, status, hr__output_store(o, strlen(o), strlen(o)),
		      SIZE_MAX, false, 0);
	schedule(c, (double)c->spec.ttl_ms / 1000.0);
	return 0;
}

/* ---- views ---------------------------------------------------------------- */

enum hr_status hr_agg_status(const struct hr_agg *agg)
{
	return agg->status;
}

const char *hr_agg_output(const struct hr_agg *agg)
{
	return agg->summary;
}

size_t hr_agg_n_checks(const struct hr_agg *agg)
{
	return agg->n_checks;
}

static void fill_info(const struct hr_agg *agg, const struct hr_check *c,
		      struct hr_check_info *o)
{
	memset(o, 0, sizeof(*o));
	o->name = c->spec.name;
	o->kind = c->spec.kind;
	o->status = c->status;
	o->last_result = c->last_result;
	o->output = c->output ? c->output : "";
	o->group = c->spec.group >= 0 ? agg->groups[c->spec.group].name : NULL;
	o->on_failure = c->spec.group >= 0 ? agg->groups[c->spec.group].on_failure
					   : c->spec.on_failure;
	o->last_run = c->result_at ? c->result_wall : 0;
	o->duration_ms = c->duration_ms;
	o->consecutive_failures = c->consecutive_failures;
	o->consecutive_successes = c->consecutive_successes;
	o->runs_passing = c->runs[HR_STATUS_PASSING];
	o->runs_warning = c->runs[HR_STATUS_WARNING];
	o->runs_critical = c->runs[HR_STATUS_CRITICAL];
	o->running = c->running;
}

int hr_agg_check_at(const struct hr_agg *agg, size_t i,
		    struct hr_check_info *out)
{
	if (i >= agg->n_checks)
		return -ERANGE;
	fill_info(agg, agg->checks[i], out);
	return 0;
}

int hr_agg_check_get(const struct hr_agg *agg, const char *name,
		     struct hr_check_info *out)
{
	const struct hr_check *c = find(agg, name, NULL);

	if (!c)
		return -ENOENT;
	fill_info(agg, c, out);
	return 0;
}

int hr_agg_listen(struct hr_agg *agg, hr_agg_listener_cb cb, void *payload)
{
	struct listener *v;

	v = realloc(agg->listeners, (agg->n_listeners + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	agg->listeners = v;
	v[agg->n_listeners].id = ++agg->next_listener_id;
	v[agg->n_listeners].cb = cb;
	v[agg->n_listeners].payload = payload;
	agg->n_listeners++;
	return agg->next_listener_id;
}

void hr_agg_unlisten(struct hr_agg *agg, int id)
{
	size_t i;

	for (i = 0; i < agg->n_listeners; i++) {
		if (agg->listeners[i].id == id) {
			memmove(&agg->listeners[i], &agg->listeners[i + 1],
				(agg->n_listeners - i - 1) *
					sizeof(*agg->listeners));
			agg->n_listeners--;
			return;
		}
	}
}

struct ev_loop *hr_agg_loop(const struct hr_agg *agg)
{
	return agg->loop;
}

struct hr_http *hr_agg_http(const struct hr_agg *agg)
{
	return agg->http;
}

int hr_agg_set_groups(struct hr_agg *agg, const struct hr_group_spec *groups,
		      size_t n, struct hr_err *err)
{
	struct hr_group_spec *v = NULL;
	size_t i;

	for (i = 0; i < agg->n_checks; i++)
		if (agg->checks[i]->spec.group >= (int)n)
			return hr_err_set(err, -EINVAL,
					  "check \"%s\" refers to group %d",
					  agg->checks[i]->spec.name,
					  agg->checks[i]->spec.group);
	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v)
			return hr_err_set(err, -ENOMEM, "out of memory");
		for (i = 0; i < n; i++) {
			v[i] = groups[i];
			v[i].name = strdup(groups[i].name);
			if (!v[i].name) {
				while (i--)
					free(v[i].name);
				free(v);
				return hr_err_set(err, -ENOMEM, "out of memory");
			}
		}
	}
	for (i = 0; i < agg->n_groups; i++)
		free(agg->groups[i].name);
	free(agg->groups);
	agg->groups = v;
	agg->n_groups = n;
	if (retally(agg))
		return hr_err_set(err, -ENOMEM, "out of memory");
	recompute(agg);
	return 0;
}
