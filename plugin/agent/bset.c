/*
 * bset.c - the backend set of bset.h: create, replace (destroy or retire),
 * maintenance, shutdown with a deadline, dispose.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "bset.h"
#include "healthreg/log.h"
#include "healthreg/regcore.h"

void hr_bset_init(struct hr_bset *s, struct ev_loop *loop,
		  struct hr_http *http)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->http = http;
	ev_timer_init(&s->stop_timer, NULL, 0., 0.);
}

static void backend_free(struct hr_backend *b)
{
	if (!b)
		return;
	if (b->r)
		b->ops->destroy(b->r);
	free(b);
}

static int backend_new(struct hr_bset *s, const struct hr_registry_ops *ops,
		       const cJSON *conf, struct hr_registry_env *env,
		       struct hr_backend **out)
{
	struct hr_err err = { "" };
	struct hr_backend *b = calloc(1, sizeof(*b));
	const char *name = ops->name; /* a literal: outlives b */

	*out = NULL;
	if (b) {
		/* "dry_run": true: the shared core decides, nothing is sent
		 * (regcore.h); the record keeps the ops table. */
		if (hr_reg_conf_dry_run(conf)) {
			hr_regcore_dry_ops(&b->dry_ops, ops);
			ops = &b->dry_ops;
		}
		b->ops = ops;
		b->set = s;
		b->stats.name = ops->name; /* a literal: outlives b */
		env->stats = &b->stats;
	} else {
		snprintf(err.msg, sizeof(err.msg), "out of memory");
	}
	if (!b || ops->abi != HR_REGISTRY_ABI ||
	    ops->create(&b->r, conf, env, &err)) {
		hr_log(HR_LOG_ERROR, "registry_create_failed", "registry",
		       name, "error", err.msg, NULL);
		if (b)
			b->r = NULL; /* create failed: nothing to destroy */
		free(b);
		return -EINVAL;
	}
	hr_log(HR_LOG_INFO, "registry_enabled", "registry", name, "service",
	       env->service && env->service->id ? env->service->id : "", NULL);
	*out = b;
	return 0;
}

void hr_bset_fresh_dispose(struct hr_bset_fresh *fresh)
{
	while (fresh->n)
		backend_free(fresh->v[--fresh->n]);
}

int hr_bset_build(struct hr_bset *s, const struct hr_service_conf *cfg,
		  int64_t shutdown_timeout_ms, struct hr_bset_fresh *out)
{
	struct hr_registry_env env;
	const cJSON *item;
	size_t i;
	int rc = 0;

	out->n = 0;
	if (!cfg->registry)
		return 0;
	memset(&env, 0, sizeof(env));
	env.loop = s->loop;
	env.http = s->http;
	env.service = &cfg->service;
	env.shutdown_timeout_ms = shutdown_timeout_ms;
	env.journal = s->journal;
	cJSON_ArrayForEach(item, cfg->registry) {
		for (i = 0; hr_registries[i] && !rc; i++) {
			if (strcmp(hr_registries[i]->name, item->string))
				continue;
			if (out->n == HR_BSET_MAX)
				rc = -ENOSPC;
			else
				rc = backend_new(s, hr_registries[i], item,
						 &env, &out->v[out->n]);
			if (!rc)
				out->n++;
		}
	}
	if (rc)
		hr_bset_fresh_dispose(out);
	return rc;
}

/* ---- retiring ---------------------------------------------------------- */

static void check_all_done(struct hr_bset *s);

static void retire_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_backend *b = w->data;
	struct hr_bset *s = b->set;
	struct hr_backend **p;

	(void)revents;
	ev_timer_stop(loop, w);
	for (p = &s->retiring; *p; p = &(*p)->next) {
		if (*p == b) {
			*p = b->next;
			break;
		}
	}
	backend_free(b);
	/* A shutdown waits for the retiring too (their deregistration). */
	if (s->stopped)
		check_all_done(s);
}

static void retire_done(void *payload)
{
	struct hr_backend *b = payload;

	/* Not from inside the backend's own callback: next iteration. */
	ev_timer_stop(b->set->loop, &b->timer);
	ev_timer_set(&b->timer, 0., 0.);
	ev_timer_start(b->set->loop, &b->timer);
}

static void retire(struct hr_bset *s, struct hr_backend *b,
		   int64_t shutdown_timeout_ms)
{
	if (!b->ops->shutdown) {
		backend_free(b);
		return;
	}
	b->next = s->retiring;
	s->retiring = b;
	ev_timer_init(&b->timer, retire_timer_cb,
		      (double)shutdown_timeout_ms / 1000.0, 0.);
	b->timer.data = b;
	ev_timer_start(s->loop, &b->timer);
	b->ops->shutdown(b->r, retire_done, b);
}

void hr_bset_install(struct hr_bset *s, struct hr_bset_fresh *fresh,
		     bool retire_old, int64_t shutdown_timeout_ms)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (retire_old)
			retire(s, s->v[i], shutdown_timeout_ms);
		else
			backend_free(s->v[i]);
	}
	for (i = 0; i < fresh->n; i++)
		s->v[i] = fresh->v[i];
	s->n = fresh->n;
	fresh->n = 0;
}

void hr_bset_maintenance(struct hr_bset *s, bool enable, const char *reason)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i]->ops->maintenance)
			s->v[i]->ops->maintenance(s->v[i]->r, enable,
						  reason ? reason : "");
}

/* ---- shutdown ---------------------------------------------------------- */

static void finish_stop(struct hr_bset *s)
{
	ev_timer_stop(s->loop, &s->stop_timer);
	if (s->stopped) {
		hr_bset_stopped_cb cb = s->stopped;

		s->stopped = NULL;
		cb(s->payload);
	}
}

/* Every current backend called done and no retiring one is left. */
static void check_all_done(struct hr_bset *s)
{
	size_t i;

	if (s->telling || s->retiring)
		return;
	for (i = 0; i < s->n; i++)
		if (!s->v[i]->done)
			return;
	finish_stop(s);
}

static void backend_done(void *payload)
{
	struct hr_backend *b = payload;

	b->done = true;
	check_all_done(b->set);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_bset *s = w->data;
	const struct hr_backend *b;
	size_t i;

	(void)loop;
	(void)revents;
	for (i = 0; i < s->n; i++)
		if (!s->v[i]->done)
			hr_log(HR_LOG_WARN, "shutdown_timeout", "registry",
			       s->v[i]->ops->name, "reason",
			       "deregistration did not finish in time", NULL);
	for (b = s->retiring; b; b = b->next)
		hr_log(HR_LOG_WARN, "shutdown_timeout", "registry",
		       b->ops->name, "reason",
		       "the retired registration's deregistration did not finish in time",
		       NULL);
	finish_stop(s);
}

void hr_bset_shutdown(struct hr_bset *s, int64_t timeout_ms,
		      hr_bset_stopped_cb cb, void *payload)
{
	size_t i;

	s->stopped = cb;
	s->payload = payload;
	ev_timer_init(&s->stop_timer, stop_timer_cb,
		      (double)timeout_ms / 1000.0, 0.);
	s->stop_timer.data = s;
	ev_timer_start(s->loop, &s->stop_timer);
	s->telling = true;
	for (i = 0; i < s->n; i++) {
		struct hr_backend *b = s->v[i];

		if (b->ops->shutdown)
			b->ops->shutdown(b->r, backend_done, b);
		else
			b->done = true;
	}
	s->telling = false;
	check_all_done(s);
}

void hr_bset_dispose(struct hr_bset *s)
{
	if (s->loop)
		ev_timer_stop(s->loop, &s->stop_timer);
	while (s->retiring) {
		struct hr_backend *b = s->retiring;

		s->retiring = b->next;
		ev_timer_stop(s->loop, &b->timer);
		backend_free(b);
	}
	while (s->n)
		backend_free(s->v[--s->n]);
	s->stopped = NULL;
}
