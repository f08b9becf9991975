/*
 * aggregator.c - the set of checks behind healthreg/aggregator.h: the
 * check list, groups, the tallies the aggregate is computed from
 * (lib/aggregate.c), listeners, and on-demand evaluation with its result
 * cache. One check's run, schedule and thresholds are lib/check_core.c.
 *
 *   check_core: record -> set_record(): tallies, aggregate, waiters
 *               schedule
 *               emit   -> set_emit(): RESULT, STATUS, AGGREGATE events,
 *                         then evaluations whose checks are done go on
 *
 * While a callback (listener or evaluation) runs, host.busy is non-zero:
 * removed checks and replaced outputs are parked (check_core.h), and
 * listeners that unsubscribe are only marked; both are cleaned up when the
 * outermost callback returns.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "check_core.h"
#include "healthreg/log.h"
#include "internal.h"

#define DEFAULT_MAX_CONCURRENT 64

struct listener {
	int id;
	hr_agg_listener_cb cb; /* NULL: unsubscribed during a callback */
	void *payload;
};

struct eval {
	struct hr_link link;       /* in agg->evals */
	struct hr_agg *agg;
	hr_agg_eval_cb cb;
	void *payload;
	struct hr_check **queue;   /* to start, in order; NULL = removed */
	size_t n_queue, next;
	unsigned pending;          /* checks not yet finished */
	unsigned inflight;         /* started by this evaluation */
	bool pumping;              /* inside eval_pump() */
	bool dirty;                /* a check it waits for is done */
};

struct hr_agg {
	struct hr__check_host host;
	bool own_http;
	struct hr_agg_opts opts;
	struct hr_check **checks;
	size_t n_checks, cap_checks;
	struct hr_group_spec *groups;
	size_t n_groups;
	struct listener *listeners;
	size_t n_listeners;
	int next_listener_id;
	bool listeners_dirty;       /* some cb NULL: compact when not busy */
	struct hr_link *evals;
	/* Kept as statuses change, so that a recompute costs O(groups + the
	 * checks scanned for names), not a pass over every check. */
	struct hr__tally tally;
	enum hr_status status;
	char summary[1024];
	enum hr_status told;        /* the status the last AGGREGATE event gave */
	bool untold;                /* status or summary changed since */
	bool batch;                 /* add_config: one recompute at the end */
	int deferred;               /* hr_agg_batch_begin() depth */
	/* Checks hr_agg_replace_check() added: unknown until their first
	 * result without counting against the aggregate. Few, and only
	 * while a reload's new checks have not run yet. */
	struct hr_check **prov;
	size_t n_prov;
};

static struct hr_agg *agg_of(struct hr__check_host *h)
{
	return container_of(h, struct hr_agg, host);
}

/* ---- listeners ------------------------------------------------------------ */

static void hold(struct hr_agg *agg)
{
	hr__host_hold(&agg->host);
}

static void compact_listeners(struct hr_agg *agg)
{
	size_t i, k = 0;

	for (i = 0; i < agg->n_listeners; i++)
		if (agg->listeners[i].cb)
			agg->listeners[k++] = agg->listeners[i];
	agg->n_listeners = k;
	agg->listeners_dirty = false;
}

static void release(struct hr_agg *agg)
{
	if (hr__host_release(&agg->host) && agg->listeners_dirty)
		compact_listeners(agg);
}

/*
 * Call every listener subscribed when the event began, in order, inside
 * hold(): a listener may subscribe (heard from the next event on) or
 * unsubscribe itself or others (not heard any more), remove checks and
 * push results; the array may move, so it is indexed afresh each time.
 */
static void emit(struct hr_agg *agg, const struct hr_agg_event *ev)
{
	size_t i, n = agg->n_listeners;

	hold(agg);
	for (i = 0; i < n && i < agg->n_listeners; i++)
		if (agg->listeners[i].cb)
			agg->listeners[i].cb(agg, ev,
					     agg->listeners[i].payload);
	release(agg);
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
		if (agg->listeners[i].id != id || !agg->listeners[i].cb)
			continue;
		agg->listeners[i].cb = NULL;
		agg->listeners_dirty = true;
		if (!agg->host.busy)
			compact_listeners(agg);
		return;
	}
}

/* ---- the aggregate --------------------------------------------------------- */

static bool provisional(const struct hr_agg *agg, const struct hr_check *c)
{
	size_t i;

	for (i = 0; i < agg->n_prov; i++)
		if (agg->prov[i] == c)
			return true;
	return false;
}

/* c counts normally from now on (it has a status, or goes away). */
static void unprovision(struct hr_agg *agg, const struct hr_check *c)
{
	size_t i;

	for (i = 0; i < agg->n_prov; i++) {
		if (agg->prov[i] == c) {
			agg->prov[i] = agg->prov[--agg->n_prov];
			return;
		}
	}
}

/* A provisional check while unknown is listed, ungrouped and ignored. */
static void tally(struct hr_agg *agg, const struct hr_check *c,
		  enum hr_status st, int delta)
{
	if (st == HR_STATUS_UNKNOWN && agg->n_prov && provisional(agg, c)) {
		hr__tally_count(&agg->tally, st, HR_ON_FAILURE_IGNORE, -1,
				delta);
		hr__tally_left_out(&agg->tally, c->spec.group, delta);
	} else
		hr__tally_count(&agg->tally, st, c->spec.on_failure,
				c->spec.group, delta);
}

/* The per-group tally arrays for n groups: 0 (both NULL when n is 0) or
 * -ENOMEM with nothing allocated. */
static int tally_arrays(size_t n, size_t (**g)[2], size_t (**m)[2])
{
	*g = NULL;
	*m = NULL;
	if (!n)
		return 0;
	*g = calloc(n, sizeof(**g));
	*m = calloc(n, sizeof(**m));
	if (!*g || !*m) {
		free(*g);
		free(*m);
		*g = NULL;
		*m = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Count every check again into fresh arrays for agg->n_groups groups
 * (from tally_arrays(), taken). Cannot fail. */
static void retally(struct hr_agg *agg, size_t (*g)[2], size_t (*m)[2])
{
	size_t i;

	free(agg->tally.groups);
	free(agg->tally.members);
	memset(&agg->tally, 0, sizeof(agg->tally));
	agg->tally.n_groups = agg->n_groups;
	agg->tally.groups = g;
	agg->tally.members = m;
	for (i = 0; i < agg->n_checks; i++)
		tally(agg, agg->checks[i], agg->checks[i]->status, +1);
}

/* The aggregate from the tallies; summary names in check order. */
static void recompute(struct hr_agg *agg)
{
	char summary[sizeof(agg->summary)];
	enum hr_status st, old = agg->status;
	struct hr__names nm;
	size_t i;

	if (agg->deferred)
		return; /* hr_agg_batch_end() computes it once */
	hr__names_init(&nm, &agg->tally);
	for (i = 0; i < agg->n_checks && nm.missing; i++)
		hr__names_add(&nm, agg->checks[i]->status,
			      agg->checks[i]->spec.name);
	st = hr__aggregate(&agg->tally, agg->groups, &nm, summary,
			   sizeof(summary));
	if (st == old && !strcmp(summary, agg->summary))
		return;
	agg->status = st;
	memcpy(agg->summary, summary, sizeof(summary));
	agg->untold = true;
	if (st != old && agg->host.started)
		hr_log(st == HR_STATUS_PASSING ? HR_LOG_INFO : HR_LOG_WARN,
		       "aggregate_status", "from", hr_status_name(old), "to",
		       hr_status_name(st), "output", summary, NULL);
}

/* HR_EVENT_AGGREGATE when the aggregate changed since it was last told;
 * listeners all read the same text even if one changes the aggregate. */
static void announce(struct hr_agg *agg)
{
	char summary[sizeof(agg->summary)];
	struct hr_agg_event ev;

	if (!agg->untold || agg->deferred)
		return;
	agg->untold = false;
	memset(&ev, 0, sizeof(ev));
	ev.type = HR_EVENT_AGGREGATE;
	ev.old_status = agg->told;
	ev.new_status = agg->status;
	agg->told = agg->status;
	memcpy(summary, agg->summary, strlen(agg->summary) + 1);
	ev.output = summary;
	emit(agg, &ev);
}

/* ---- evaluation ------------------------------------------------------------ */

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

/* A run of c ended (or c is going away): its evaluations have one check
 * less to wait for. They go on in settle(), after the events. */
static void release_waiters(struct hr_check *c)
{
	unsigned i;

	for (i = 0; i < c->n_waiters; i++) {
		struct eval *e = c->waiters[i];

		if (e->inflight)
			e->inflight--;
		e->pending--;
		e->dirty = true;
	}
	free(c->waiters);
	c->waiters = NULL;
	c->n_waiters = 0;
}

static void eval_finish(struct eval *e)
{
	struct hr_agg *agg = e->agg;

	hr_link_unlink(&agg->evals, &e->link);
	free(e->queue);
	hold(agg);
	e->cb(agg, agg->status, agg->summary, e->payload);
	release(agg);
	free(e);
}

/* Start queued checks up to the bound; call back when none is pending. */
static void eval_pump(struct eval *e)
{
	int max = e->agg->opts.max_concurrent;

	/* A run may finish synchronously inside hr__check_run() and settle
	 * evaluations: it must not finish (free) e under us. */
	if (e->pumping)
		return;
	e->pumping = true;
	e->dirty = false;
	while (e->next < e->n_queue && (int)e->inflight < max) {
		struct hr_check *c = e->queue[e->next++];

		if (!c)
			continue; /* removed meanwhile */
		e->inflight++;
		if (c->running)
			continue; /* a scheduled run will finish it */
		hr__check_run(c);
	}
	e->pumping = false;
	if (e->pending == 0)
		eval_finish(e);
}

/* Let every evaluation that a finished or removed check concerned go on.
 * A callback may start, finish or free evaluations: start over after
 * each. */
static void settle(struct hr_agg *agg)
{
	struct hr_link *l;

	if (agg->deferred)
		return; /* evaluations hear the batch's aggregate */
again:
	for (l = agg->evals; l; l = l->next) {
		struct eval *e = container_of(l, struct eval, link);

		if (e->dirty && !e->pumping) {
			eval_pump(e);
			goto again;
		}
	}
}

static int eval_queue(struct hr_agg *agg, struct eval *e)
{
	double now;
	size_t i;

	e->queue = calloc(agg->n_checks ? agg->n_checks : 1, sizeof(*e->queue));
	if (!e->queue)
		return -ENOMEM;
	ev_now_update(agg->host.loop);
	now = ev_now(agg->host.loop);
	for (i = 0; i < agg->n_checks; i++) {
		struct hr_check *c = agg->checks[i];

		if (c->running) {
			if (add_waiter(c, e) == 0)
				e->inflight++; /* counts against the bound */
		} else if (hr__check_stale(c, now)) {
			if (add_waiter(c, e) == 0)
				e->queue[e->n_queue++] = c;
		}
	}
	return 0;
}

int hr_agg_evaluate(struct hr_agg *agg, hr_agg_eval_cb cb, void *payload)
{
	struct eval *e;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->agg = agg;
	e->cb = cb;
	e->payload = payload;
	if (eval_queue(agg, e)) {
		free(e);
		return -ENOMEM;
	}
	hr_link_push(&agg->evals, &e->link);
	eval_pump(e); /* calls back at once when nothing is stale */
	return 0;
}

/* ---- the check core's calls (check_core.h) ----------------------------------- */

static void set_record(struct hr__check_host *h, struct hr_check *c,
		       const struct hr__check_change *chg)
{
	struct hr_agg *agg = agg_of(h);

	if (chg->after != chg->before) {
		tally(agg, c, chg->before, -1);
		tally(agg, c, chg->after, +1);
		if (agg->n_prov && chg->after != HR_STATUS_UNKNOWN)
			unprovision(agg, c);
		recompute(agg);
	}
	release_waiters(c);
}

/* RESULT, then STATUS if it changed, then AGGREGATE if that changed; a
 * listener that removes the check stops nothing: the events were made
 * before the first one went out and their strings are parked. */
static void set_emit(struct hr__check_host *h,
		     const struct hr__check_change *chg)
{
	struct hr_agg *agg = agg_of(h);
	struct hr_agg_event ev;

	hold(agg);
	memset(&ev, 0, sizeof(ev));
	ev.type = HR_EVENT_CHECK_RESULT;
	ev.check = chg->name;
	ev.old_status = chg->before;
	ev.new_status = chg->raw;
	ev.output = chg->output;
	ev.duration_ms = chg->duration_ms;
	emit(agg, &ev);
	if (chg->after != chg->before) {
		ev.type = HR_EVENT_CHECK_STATUS;
		ev.new_status = chg->after;
		ev.duration_ms = 0;
		emit(agg, &ev);
	}
	announce(agg);
	release(agg);
	settle(agg);
}

static const struct hr__check_host_ops set_ops = {
	.record = set_record,
	.emit = set_emit,
};

/* ---- lifecycle ---------------------------------------------------------------- */

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
	agg->host.ops = &set_ops;
	agg->host.loop = loop;
	if (opts)
		agg->opts = *opts;
	if (agg->opts.max_concurrent <= 0)
		agg->opts.max_concurrent = DEFAULT_MAX_CONCURRENT;
	hr_rng_seed(&agg->host.rng, agg->opts.seed);
	agg->host.phase = hr_rng_unit(&agg->host.rng) * 3600.0;
	if (http) {
		agg->host.http = http;
	} else {
		rc = hr_http_new(&agg->host.http, loop, err);
		if (rc) {
			free(agg);
			return rc;
		}
		agg->own_http = true;
	}
	agg->status = HR_STATUS_PASSING;
	recompute(agg);
	agg->told = agg->status;
	agg->untold = false;
	*out = agg;
	return 0;
}

static void free_groups(struct hr_group_spec *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

void hr_agg_free(struct hr_agg *agg)
{
	size_t i;

	if (!agg)
		return;
	assert(!agg->host.busy && "hr_agg_free() from an aggregator callback");
	for (i = 0; i < agg->n_checks; i++)
		hr__check_halt(agg->checks[i]);
	/* Pending evaluations are dropped without a callback. */
	while (agg->evals) {
		struct eval *e = container_of(agg->evals, struct eval, link);

		hr_link_unlink(&agg->evals, &e->link);
		free(e->queue);
		free(e);
	}
	for (i = 0; i < agg->n_checks; i++)
		hr__check_free(agg->checks[i]);
	free(agg->checks);
	free(agg->prov);
	free(agg->tally.groups);
	free(agg->tally.members);
	free_groups(agg->groups, agg->n_groups);
	free(agg->listeners);
	free(agg->host.old_outputs);
	if (agg->own_http)
		hr_http_free(agg->host.http);
	free(agg);
}

int hr_agg_add_group(struct hr_agg *agg, const struct hr_group_spec *g,
		     struct hr_err *err)
{
	struct hr_group_spec *v;
	size_t (*tg)[2], (*tm)[2];
	char *name;
	size_t i;

	for (i = 0; i < agg->n_groups; i++)
		if (!strcmp(agg->groups[i].name, g->name))
			return hr_err_set(err, -EEXIST,
					  "group \"%s\" already exists", g->name);
	/* Everything that can fail comes first: on -ENOMEM nothing
	 * changed (a grown groups array is no change). */
	if (tally_arrays(agg->n_groups + 1, &tg, &tm))
		return hr_err_set(err, -ENOMEM, "out of memory");
	v = realloc(agg->groups, (agg->n_groups + 1) * sizeof(*v));
	if (v)
		agg->groups = v;
	name = v ? strdup(g->name) : NULL;
	if (!name) {
		free(tg);
		free(tm);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	v[agg->n_groups] = *g;
	v[agg->n_groups].name = name;
	agg->n_groups++;
	retally(agg, tg, tm);
	recompute(agg);
	announce(agg);
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

/* What the set decides about a new spec; the check core checks the rest. */
static int admit(struct hr_agg *agg, const struct hr_check_spec *spec,
		 struct hr_err *err)
{
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
	if (agg->n_checks == agg->cap_checks) {
		size_t cap = agg->cap_checks ? agg->cap_checks * 2 : 16;
		struct hr_check **v = realloc(agg->checks, cap * sizeof(*v));

		if (!v)
			return hr_err_set(err, -ENOMEM, "out of memory");
		agg->checks = v;
		agg->cap_checks = cap;
	}
	return 0;
}

/* The kind that runs a spec; NULL for ttl checks (pushed, not run). */
static const struct hr__check_kind *kind_of(enum hr_check_kind k)
{
	switch (k) {
	case HR_CHECK_HTTP:
		return &hr__check_http;
	case HR_CHECK_TCP:
		return &hr__check_tcp;
	case HR_CHECK_EXEC:
		return &hr__check_exec;
	case HR_CHECK_GRPC:
		return &hr__check_grpc;
	case HR_CHECK_TTL:
		break;
	}
	return NULL;
}

int hr_agg_add_check(struct hr_agg *agg, const struct hr_check_spec *spec,
		     struct hr_err *err)
{
	struct hr_check *c;
	int rc;

	rc = admit(agg, spec, err);
	if (rc)
		return rc;
	rc = hr__check_new(&c, &agg->host, spec, kind_of(spec->kind), err);
	if (rc)
		return rc;
	tally(agg, c, c->status, +1);
	agg->checks[agg->n_checks++] = c;
	if (agg->host.started)
		hr__check_schedule_first(c);
	if (!agg->batch) {
		recompute(agg);
		announce(agg);
	}
	return 0;
}

/* Forget c in evaluation queues before it goes away. */
static void forget_queued(struct hr_agg *agg, const struct hr_check *c)
{
	struct hr_link *l;
	size_t j;

	for (l = agg->evals; l; l = l->next) {
		struct eval *e = container_of(l, struct eval, link);

		for (j = e->next; j < e->n_queue; j++)
			if (e->queue[j] == c)
				e->queue[j] = NULL;
	}
}

int hr_agg_remove_check(struct hr_agg *agg, const char *name)
{
	struct hr_check *c;
	size_t i;

	c = find(agg, name, &i);
	if (!c)
		return -ENOENT;
	forget_queued(agg, c);
	memmove(&agg->checks[i], &agg->checks[i + 1],
		(agg->n_checks - i - 1) * sizeof(*agg->checks));
	agg->n_checks--;
	tally(agg, c, c->status, -1);
	unprovision(agg, c);
	hr__check_halt(c);
	release_waiters(c);
	hr__check_free(c); /* parked while a callback runs */
	recompute(agg);
	announce(agg);
	settle(agg);
	return 0;
}

/* A new check that counts only from its first result. */
static int add_provisional(struct hr_agg *agg, const struct hr_check_spec *spec,
			   struct hr_err *err)
{
	struct hr_check **v = realloc(agg->prov, (agg->n_prov + 1) * sizeof(*v));
	struct hr_check *c;
	size_t n = agg->n_checks;
	int rc;

	if (!v)
		return hr_err_set(err, -ENOMEM, "out of memory");
	agg->prov = v;
	agg->batch = true; /* one recompute, once it is provisional */
	rc = hr_agg_add_check(agg, spec, err);
	agg->batch = false;
	if (rc)
		return rc;
	c = agg->checks[n];
	if (c->status == HR_STATUS_UNKNOWN) {
		/* Tallied as an ordinary check by the add: move it. */
		tally(agg, c, c->status, -1);
		agg->prov[agg->n_prov++] = c;
		tally(agg, c, c->status, +1);
	}
	recompute(agg);
	announce(agg);
	return 0;
}

int hr_agg_replace_check(struct hr_agg *agg, const struct hr_check_spec *spec,
			 struct hr_err *err)
{
	struct hr_check *old, *c;
	bool prov;
	size_t i;
	int rc;

	old = spec->name ? find(agg, spec->name, &i) : NULL;
	if (!old)
		return add_provisional(agg, spec, err);
	agg->batch = true; /* admit(): the name is taken, by old */
	rc = admit(agg, spec, err);
	agg->batch = false;
	if (!rc)
		rc = hr__check_new(&c, &agg->host, spec, kind_of(spec->kind),
				   err);
	if (rc)
		return rc;
	/* c counts as old did until its first result: same tallies. */
	prov = old->status == HR_STATUS_UNKNOWN && provisional(agg, old);
	tally(agg, old, old->status, -1);
	unprovision(agg, old);
	if (old->status != HR_STATUS_UNKNOWN) {
		/* ... and goes on from old's threshold counters: a check
		 * one failure short of critical does not start afresh. */
		c->status = old->status;
		if (old->last_result != HR_STATUS_UNKNOWN)
			c->thresh = old->thresh;
	}
	else if (prov && c->status == HR_STATUS_UNKNOWN)
		agg->prov[agg->n_prov++] = c; /* old's slot */
	tally(agg, c, c->status, +1);
	agg->checks[i] = c;
	forget_queued(agg, old);
	hr__check_halt(old);
	release_waiters(old);
	hr__check_free(old); /* parked while a callback runs */
	if (agg->host.started)
		hr__check_schedule_first(c);
	recompute(agg);
	announce(agg);
	settle(agg);
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
static bool names_unique(const struct hr_agg *agg, const struct hr_service_conf *cfg)
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
	return hr_agg_add_service(agg, &cfg->services[0], err);
}

int hr_agg_add_service(struct hr_agg *agg, const struct hr_service_conf *cfg,
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
		announce(agg);
	}
	return rc;
}

/* The index of the group called name in v[0..n), or -1. */
static int group_index(const struct hr_group_spec *v, size_t n,
		       const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return (int)i;
	return -1;
}

int hr_agg_set_groups(struct hr_agg *agg, const struct hr_group_spec *groups,
		      size_t n, struct hr_err *err)
{
	struct hr_group_spec *v = NULL;
	size_t (*tg)[2], (*tm)[2];
	size_t i;

	/* Everything that can fail comes first: on -ENOMEM nothing
	 * changed. */
	if (tally_arrays(n, &tg, &tm))
		return hr_err_set(err, -ENOMEM, "out of memory");
	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v) {
			free(tg);
			free(tm);
			return hr_err_set(err, -ENOMEM, "out of memory");
		}
		for (i = 0; i < n; i++) {
			v[i] = groups[i];
			v[i].name = strdup(groups[i].name);
			if (!v[i].name) {
				free_groups(v, i);
				free(tg);
				free(tm);
				return hr_err_set(err, -ENOMEM, "out of memory");
			}
		}
	}
	/* Every check keeps its group by name (and with it its status in
	 * the group's count): a reload that changes a group's quorum or
	 * adds a group leaves the members' results where they are. */
	for (i = 0; i < agg->n_checks; i++) {
		struct hr_check *c = agg->checks[i];

		if (c->spec.group >= 0)
			c->spec.group = group_index(
				v, n, agg->groups[c->spec.group].name);
	}
	free_groups(agg->groups, agg->n_groups);
	agg->groups = v;
	agg->n_groups = n;
	retally(agg, tg, tm);
	recompute(agg);
	announce(agg);
	return 0;
}

void hr_agg_batch_begin(struct hr_agg *agg)
{
	agg->deferred++;
}

void hr_agg_batch_end(struct hr_agg *agg)
{
	assert(agg->deferred > 0);
	if (--agg->deferred)
		return;
	recompute(agg);
	announce(agg);
	settle(agg);
}

void hr_agg_start(struct hr_agg *agg)
{
	size_t i;

	if (agg->host.started)
		return;
	agg->host.started = true;
	for (i = 0; i < agg->n_checks; i++)
		hr__check_schedule_first(agg->checks[i]);
}

void hr_agg_stop(struct hr_agg *agg)
{
	size_t i;

	agg->host.started = false;
	for (i = 0; i < agg->n_checks; i++)
		if (hr__check_halt(agg->checks[i]))
			release_waiters(agg->checks[i]);
	settle(agg);
}

int hr_agg_ttl_update(struct hr_agg *agg, const char *name,
		      enum hr_status status, const char *output)
{
	struct hr_check *c = find(agg, name, NULL);

	if (!c)
		return -ENOENT;
	if (c->spec.kind != HR_CHECK_TTL || status == HR_STATUS_UNKNOWN)
		return -EINVAL;
	hr__check_push(c, status, output); /* c may be gone */
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
	hr__check_info(c, o);
	if (c->spec.group >= 0) {
		o->group = agg->groups[c->spec.group].name;
		o->on_failure = agg->groups[c->spec.group].on_failure;
	}
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

struct ev_loop *hr_agg_loop(const struct hr_agg *agg)
{
	return agg->host.loop;
}

struct hr_http *hr_agg_http(const struct hr_agg *agg)
{
	return agg->host.http;
}
