/*
 * publish.c - readiness, the reload hold and the maintenance gate of
 * publish.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/log.h"
#include "publish.h"
#include "sdnotify.h"

static void ready_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void hold_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents);

void hr_pub_init(struct hr_pub *p, struct ev_loop *loop, struct hr_agg *agg,
		 struct hr_bset *bset)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->agg = agg;
	p->bset = bset;
	ev_timer_init(&p->ready_timer, ready_timeout_cb, 0., 0.);
	p->ready_timer.data = p;
	ev_timer_init(&p->hold_timer, hold_timeout_cb, 0., 0.);
	p->hold_timer.data = p;
}

static void held_free(struct hr_pub *p)
{
	size_t i;

	for (i = 0; i < p->n_held; i++)
		free(p->held[i]);
	free(p->held);
	p->held = NULL;
	p->n_held = 0;
}

void hr_pub_dispose(struct hr_pub *p)
{
	if (p->loop) {
		ev_timer_stop(p->loop, &p->ready_timer);
		ev_timer_stop(p->loop, &p->hold_timer);
	}
	held_free(p);
	free(p->maint_reason);
	p->maint_reason = NULL;
}

/* A first run starts within 1 s of the add, then may take its timeout;
 * a ttl check's first push gets what a check without timeout gets. */
double hr_pub_check_wait(const struct hr_check_spec *spec)
{
	double wait = 1.0;

	if (spec->kind != HR_CHECK_TTL)
		wait += (double)spec->timeout_ms / 1000.0;
	return wait + 0.5;
}

double hr_pub_first_result_wait(const struct hr_service_conf *cfg)
{
	double wait = 1.5, w;
	size_t i;

	for (i = 0; i < cfg->n_checks; i++)
		if (cfg->checks[i].kind != HR_CHECK_TTL &&
		    (w = hr_pub_check_wait(&cfg->checks[i])) > wait)
			wait = w;
	return wait;
}

/* Every backend hears status and summary (critical in maintenance for
 * those without a maintenance mode of their own). */
static void tell(struct hr_pub *p, enum hr_status status, const char *summary)
{
	char why[1100];
	size_t i;

	snprintf(why, sizeof(why), "maintenance: %s",
		 p->maint_reason && *p->maint_reason ? p->maint_reason
						     : "(no reason given)");
	for (i = 0; i < p->bset->n; i++) {
		struct hr_backend *b = p->bset->v[i];

		if (p->maint && !b->ops->maintenance)
			b->ops->apply(b->r, HR_STATUS_CRITICAL, why);
		else
			b->ops->apply(b->r, status, summary);
	}
}

void hr_pub_publish(struct hr_pub *p)
{
	if (!p->ready || p->hold || p->stopping)
		return;
	p->told = true;
	p->told_status = hr_agg_status(p->agg);
	snprintf(p->told_output, sizeof(p->told_output), "%s",
		 hr_agg_output(p->agg));
	tell(p, p->told_status, p->told_output);
}

void hr_pub_backends_replaced(struct hr_pub *p)
{
	if (p->told && !p->stopping)
		tell(p, p->told_status, p->told_output);
}

/* ---- readiness --------------------------------------------------------- */

static bool all_known(const struct hr_agg *agg)
{
	struct hr_check_info info;
	size_t i;

	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		hr_agg_check_at(agg, i, &info);
		if (info.status == HR_STATUS_UNKNOWN &&
		    info.last_result == HR_STATUS_UNKNOWN &&
		    info.kind != HR_CHECK_TTL)
			return false;
	}
	return true;
}

/* "a, b" (cut to fit): the checks that are not passing and count. */
static void failing_names(const struct hr_agg *agg, char *buf, size_t len)
{
	struct hr_check_info info;
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < hr_agg_n_checks(agg) && o + 1 < len; i++) {
		hr_agg_check_at(agg, i, &info);
		if (info.status != HR_STATUS_PASSING &&
		    info.on_failure != HR_ON_FAILURE_IGNORE)
			o += (size_t)snprintf(buf + o, len - o, "%s%s",
					      o ? ", " : "", info.name);
	}
}

/* Ready, and some registry was told a status it does not register in
 * (a critical start): say which, and which checks are why. */
static void explain_unregistered(struct hr_pub *p)
{
	char names[256], failing[512];
	size_t i, o = 0;

	names[0] = '\0';
	for (i = 0; i < p->bset->n && o + 1 < sizeof(names); i++)
		if (p->bset->v[i]->stats.state == HR_REGISTRY_DEREGISTERED)
			o += (size_t)snprintf(names + o, sizeof(names) - o,
					      "%s%s", o ? ", " : "",
					      p->bset->v[i]->ops->name);
	if (!o)
		return;
	failing_names(p->agg, failing, sizeof(failing));
	hr_log(HR_LOG_WARN, "not_registered", "registries", names, "status",
	       hr_status_name(p->maint ? HR_STATUS_CRITICAL
				       : hr_agg_status(p->agg)),
	       "reason",
	       p->maint ? "maintenance" : "status not in register_when",
	       "failing", failing, "output", hr_agg_output(p->agg), "service",
	       p->service ? p->service : "", NULL);
}

static void become_ready(struct hr_pub *p)
{
	char n[32];

	if (p->ready)
		return;
	p->ready = true;
	ev_timer_stop(p->loop, &p->ready_timer);
	snprintf(n, sizeof(n), "%zu", hr_agg_n_checks(p->agg));
	hr_log(HR_LOG_INFO, "ready", "status",
	       hr_status_name(hr_agg_status(p->agg)), HR_LOG_NUM("checks"), n,
	       "output", hr_agg_output(p->agg), "service",
	       p->service ? p->service : "", NULL);
	if (p->on_ready)
		p->on_ready(p->ready_payload);
	else
		hr_sd_notify("READY=1\nSTATUS=checks running");
	hr_pub_publish(p);
	explain_unregistered(p);
}

static void ready_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	hr_log(HR_LOG_WARN, "ready_timeout", "reason",
	       "some checks have no result yet; publishing what is known",
	       NULL);
	become_ready(w->data);
}

void hr_pub_start(struct hr_pub *p, double wait)
{
	ev_timer_set(&p->ready_timer, wait, 0.);
	ev_timer_start(p->loop, &p->ready_timer);
	if (all_known(p->agg))
		become_ready(p);
}

/* ---- the reload hold --------------------------------------------------- */

/* A held check has its first result (a ttl check: a status to count). */
static bool first_known(const struct hr_pub *p, const char *name)
{
	struct hr_check_info info;

	if (hr_agg_check_get(p->agg, name, &info))
		return true; /* gone again: nothing to wait for */
	return info.last_run != 0 ||
	       (info.kind == HR_CHECK_TTL && info.status != HR_STATUS_UNKNOWN);
}

static bool held_known(const struct hr_pub *p)
{
	size_t i;

	for (i = 0; i < p->n_held; i++)
		if (!first_known(p, p->held[i]))
			return false;
	return true;
}

/* "a, b" (cut to fit): the held checks still without a first result. */
static void pending_names(const struct hr_pub *p, char *buf, size_t len)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < p->n_held && o + 1 < len; i++)
		if (!first_known(p, p->held[i]))
			o += (size_t)snprintf(buf + o, len - o, "%s%s",
					      o ? ", " : "", p->held[i]);
}

static void end_hold(struct hr_pub *p, const char *reason)
{
	char pending[512];

	if (!p->hold)
		return;
	pending_names(p, pending, sizeof(pending));
	held_free(p);
	p->hold = false;
	ev_timer_stop(p->loop, &p->hold_timer);
	if (*pending)
		/* They count as the aggregator counts them until they
		 * report: a changed one as before, a new one not at all. */
		hr_log(HR_LOG_WARN, "reload_settled", "reason", reason,
		       "pending", pending, "status",
		       hr_status_name(hr_agg_status(p->agg)), "output",
		       hr_agg_output(p->agg), NULL);
	else
		hr_log(HR_LOG_INFO, "reload_settled", "reason", reason,
		       "status", hr_status_name(hr_agg_status(p->agg)),
		       "output", hr_agg_output(p->agg), NULL);
	hr_pub_publish(p);
}

static void hold_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	end_hold(w->data, "timeout waiting for new checks");
}

void hr_pub_hold_begin(struct hr_pub *p)
{
	if (!p->hold)
		p->hold_until = ev_now(p->loop);
	p->hold = true;
	p->reloading = true;
}

static bool held_has(const struct hr_pub *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n_held; i++)
		if (!strcmp(p->held[i], name))
			return true;
	return false;
}

void hr_pub_hold_add(struct hr_pub *p, const char *name, double wait)
{
	char **v;

	if (ev_now(p->loop) + wait > p->hold_until)
		p->hold_until = ev_now(p->loop) + wait;
	if (held_has(p, name))
		return;
	v = realloc(p->held, (p->n_held + 1) * sizeof(*v));
	if (v) {
		p->held = v;
		v[p->n_held] = strdup(name);
	}
	if (!v || !v[p->n_held]) {
		hr_log(HR_LOG_WARN, "reload_hold_failed", "check", name, NULL);
		return;
	}
	p->n_held++;
}

void hr_pub_hold_settle(struct hr_pub *p)
{
	double left = p->hold_until - ev_now(p->loop);

	p->reloading = false;
	if (held_known(p)) {
		end_hold(p, p->n_held ? "new checks have results"
				      : "no new checks");
		return;
	}
	/* Every reload of this hold may have pushed the deadline out. */
	ev_timer_stop(p->loop, &p->hold_timer);
	ev_timer_set(&p->hold_timer, left > 0. ? left : 0., 0.);
	ev_timer_start(p->loop, &p->hold_timer);
	{
		char pending[512], why[256];

		pending_names(p, pending, sizeof(pending));
		snprintf(why, sizeof(why),
			 "reload: waiting up to %.1fs for the first results of "
			 "%.150s; the registry keeps the last state",
			 left > 0. ? left : 0., pending);
		hr_pub_decide(p, HR_DECISION_HELD, why);
	}
}

/* ---- events ------------------------------------------------------------ */

/* A result that did not change the check's status: no aggregate event
 * follows it, so it is the one to decide on. */
static bool settles(const struct hr_agg_event *ev)
{
	return ev->type == HR_EVENT_AGGREGATE ||
	       (ev->type == HR_EVENT_CHECK_RESULT &&
		ev->new_status == ev->old_status);
}

void hr_pub_event(struct hr_pub *p, const struct hr_agg_event *ev)
{
	if (ev->type == HR_EVENT_CHECK_STATUS && ev->check) {
		/* For the journal: the last change is the likely cause. */
		p->have_changed = true;
		hr_journal_excerpt(p->changed, sizeof(p->changed), ev->check);
		p->changed_from = ev->old_status;
		p->changed_to = ev->new_status;
	}
	if (p->stopping)
		return;
	if (!p->ready) {
		/* Status events come before the aggregate is recomputed;
		 * the aggregate event is the one to publish on. */
		if (settles(ev) && all_known(p->agg))
			become_ready(p);
		return;
	}
	if (p->hold) {
		if (p->reloading)
			return; /* the new set is not complete yet */
		/* The aggregate is recomputed before any event of a result
		 * goes out: any of them may end the hold. */
		if (held_known(p))
			end_hold(p, "new checks have results");
		return;
	}
	if (ev->type == HR_EVENT_AGGREGATE)
		hr_pub_publish(p);
}

/* ---- the maintenance gate ---------------------------------------------- */

int hr_pub_maint_copy(struct hr_pub *p, bool enable, const char *reason)
{
	char *r = strdup(reason ? reason : "");

	if (!r)
		return -ENOMEM;
	free(p->maint_reason);
	p->maint_reason = r;
	p->maint = enable;
	return 0;
}

void hr_pub_maint_apply(struct hr_pub *p)
{
	char why[1200];

	snprintf(why, sizeof(why), "maintenance %s: %s",
		 p->maint ? "enabled" : "disabled",
		 p->maint_reason && *p->maint_reason ? p->maint_reason
						     : "(no reason given)");
	hr_pub_decide(p, p->maint ? HR_DECISION_MAINT_ON
				  : HR_DECISION_MAINT_OFF, why);
	hr_bset_maintenance(p->bset, p->maint, p->maint_reason);
	hr_pub_publish(p);
}

/* ---- the journal ------------------------------------------------------- */

void hr_pub_decide(struct hr_pub *p, enum hr_decision d, const char *why)
{
	struct hr_journal_entry e;
	size_t i;

	for (i = 0; i < p->bset->n; i++) {
		const struct hr_backend *b = p->bset->v[i];
		bool own = b->ops->maintenance != NULL;

		memset(&e, 0, sizeof(e));
		e.decision = d;
		if (p->service)
			hr_journal_excerpt(e.service, sizeof(e.service),
					   p->service);
		snprintf(e.backend, sizeof(e.backend), "%s", b->ops->name);
		e.dry_run = b->stats.dry_run;
		e.have_status = p->told;
		e.status = p->told_status;
		if (d == HR_DECISION_MAINT_ON && !own)
			/* without a maintenance mode: told critical */
			snprintf(e.why, sizeof(e.why),
				 "%.180s; %s has no maintenance mode: told "
				 "critical", why, b->ops->name);
		else
			snprintf(e.why, sizeof(e.why), "%s", why);
		hr_journal_record(p->journal, &e);
	}
}

static void add_check(struct hr_journal_entry *e,
		      const struct hr_check_info *info)
{
	struct hr_journal_check *k = &e->checks[e->n_checks++];

	memset(k, 0, sizeof(*k));
	hr_journal_excerpt(k->name, sizeof(k->name), info->name);
	k->status = info->status;
	hr_journal_excerpt(k->output, sizeof(k->output), info->output);
}

void hr_pub_journal_fill(const struct hr_pub *p, struct hr_journal_entry *e)
{
	struct hr_check_info info;
	size_t i, k;
	bool listed = false;

	e->have_aggregate = true;
	e->aggregate = hr_agg_status(p->agg);
	hr_journal_excerpt(e->output, sizeof(e->output), hr_agg_output(p->agg));
	e->maintenance = p->maint;
	/* The checks that count and are not passing, leaving a place for
	 * the last one that changed. */
	for (i = 0; i < hr_agg_n_checks(p->agg) &&
		    e->n_checks < HR_JOURNAL_CHECKS - (p->have_changed ? 1 : 0);
	     i++) {
		hr_agg_check_at(p->agg, i, &info);
		if (info.status == HR_STATUS_PASSING ||
		    info.on_failure == HR_ON_FAILURE_IGNORE)
			continue;
		add_check(e, &info);
	}
	if (!p->have_changed ||
	    hr_agg_check_get(p->agg, p->changed, &info))
		return;
	for (k = 0; k < e->n_checks; k++)
		if (!strcmp(e->checks[k].name, p->changed))
			listed = true;
	if (!listed && e->n_checks < HR_JOURNAL_CHECKS)
		add_check(e, &info);
	for (k = 0; k < e->n_checks; k++) {
		if (strcmp(e->checks[k].name, p->changed))
			continue;
		e->checks[k].changed = true;
		e->checks[k].was = p->changed_from;
	}
}
