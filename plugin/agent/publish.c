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

/* First runs start within 1 s; then each may take its timeout. */
double hr_pub_first_result_wait(const struct hr_config *cfg)
{
	double wait = 1.0;
	size_t i;

	for (i = 0; i < cfg->n_checks; i++)
		if (cfg->checks[i].kind != HR_CHECK_TTL &&
		    1.0 + (double)cfg->checks[i].timeout_ms / 1000.0 > wait)
			wait = 1.0 + (double)cfg->checks[i].timeout_ms / 1000.0;
	return wait + 0.5;
}

void hr_pub_publish(struct hr_pub *p)
{
	char why[1100];
	size_t i;

	if (!p->ready || p->hold || p->stopping)
		return;
	snprintf(why, sizeof(why), "maintenance: %s",
		 p->maint_reason && *p->maint_reason ? p->maint_reason
						     : "(no reason given)");
	for (i = 0; i < p->bset->n; i++) {
		struct hr_backend *b = p->bset->v[i];

		/* A backend with its own maintenance mode hears the real
		 * status; the others see critical while in maintenance. */
		if (p->maint && !b->ops->maintenance)
			b->ops->apply(b->r, HR_STATUS_CRITICAL, why);
		else
			b->ops->apply(b->r, hr_agg_status(p->agg),
				      hr_agg_output(p->agg));
	}
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

static void become_ready(struct hr_pub *p)
{
	char n[32];

	if (p->ready)
		return;
	p->ready = true;
	ev_timer_stop(p->loop, &p->ready_timer);
	snprintf(n, sizeof(n), "%zu", hr_agg_n_checks(p->agg));
	hr_log(HR_LOG_INFO, "ready", "status", hr_status_name(hr_agg_status(p->agg)),
	       "checks", n, "output", hr_agg_output(p->agg), NULL);
	hr_sd_notify("READY=1\nSTATUS=checks running");
	hr_pub_publish(p);
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

static void end_hold(struct hr_pub *p, const char *reason)
{
	if (!p->hold)
		return;
	held_free(p);
	p->hold = false;
	ev_timer_stop(p->loop, &p->hold_timer);
	hr_log(HR_LOG_INFO, "reload_settled", "reason", reason, "status",
	       hr_status_name(hr_agg_status(p->agg)), "output",
	       hr_agg_output(p->agg), NULL);
	hr_pub_publish(p);
}

static bool held_known(const struct hr_pub *p)
{
	struct hr_check_info info;
	size_t i;

	for (i = 0; i < p->n_held; i++)
		if (!hr_agg_check_get(p->agg, p->held[i], &info) &&
		    info.last_result == HR_STATUS_UNKNOWN &&
		    info.status == HR_STATUS_UNKNOWN)
			return false;
	return true;
}

static void hold_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	end_hold(w->data, "timeout waiting for new checks");
}

void hr_pub_hold_begin(struct hr_pub *p)
{
	p->hold = true;
	p->reloading = true;
}

void hr_pub_hold_add(struct hr_pub *p, const char *name)
{
	char **v = realloc(p->held, (p->n_held + 1) * sizeof(*v));

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

void hr_pub_hold_settle(struct hr_pub *p, double wait)
{
	p->reloading = false;
	if (!ev_is_active(&p->hold_timer)) {
		ev_timer_set(&p->hold_timer, wait, 0.);
		ev_timer_start(p->loop, &p->hold_timer);
	}
	if (held_known(p))
		end_hold(p, p->n_held ? "new checks have results"
				      : "no new checks");
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
		if (settles(ev) && held_known(p))
			end_hold(p, "new checks have results");
		return;
	}
	if (ev->type == HR_EVENT_AGGREGATE)
		hr_pub_publish(p);
}

/* ---- the maintenance gate ---------------------------------------------- */

int hr_pub_maint_set(struct hr_pub *p, bool enable, const char *reason)
{
	char *r = strdup(reason ? reason : "");

	if (!r)
		return -ENOMEM;
	free(p->maint_reason);
	p->maint_reason = r;
	p->maint = enable;
	hr_log(HR_LOG_WARN, enable ? "maintenance_enabled" : "maintenance_disabled",
	       "reason", r, NULL);
	return 0;
}

void hr_pub_maint_apply(struct hr_pub *p)
{
	hr_bset_maintenance(p->bset, p->maint, p->maint_reason);
	hr_pub_publish(p);
}
