/*
 * agent.c - `healthreg run` and `healthreg check`.
 *
 * run: config -> aggregator (scheduled) -> once every check has a first
 * result, each registry backend is told the aggregate, and again on every
 * change. SIGTERM/SIGINT: stop checks, let every backend deregister within
 * shutdown_timeout, exit 0; a second signal exits at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "agent.h"
#include "backends.h"
#include "healthreg/aggregator.h"
#include "healthreg/log.h"
#include "healthreg/registry.h"
#include "api.h"
#include "metrics.h"
#include "sdnotify.h"

#define MAX_BACKENDS 8

int hr_agent_load_config(const char *path, struct hr_config **out)
{
	struct hr_config_backend vals[MAX_BACKENDS];
	struct hr_diag diag;
	size_t i, n = 0;
	int rc;

	for (i = 0; hr_registries[i] && n < MAX_BACKENDS; i++) {
		vals[n].name = hr_registries[i]->name;
		vals[n].validate = hr_registries[i]->validate;
		n++;
	}
	hr_diag_init(&diag);
	rc = hr_config_load(out, path, vals, n, &diag);
	for (i = 0; i < diag.n; i++)
		fprintf(stderr, "healthreg: %s: %s: %s\n",
			diag.v[i].level == HR_DIAG_ERROR ? "error" : "warning",
			path, diag.v[i].text);
	if (rc && diag.errors)
		fprintf(stderr, "healthreg: %s: %zu error%s, nothing started\n",
			path, diag.errors, diag.errors == 1 ? "" : "s");
	hr_diag_dispose(&diag);
	return rc ? HR_EXIT_CONFIG : 0;
}

/* ---- run --------------------------------------------------------------- */

struct agent;

struct backend {
	const struct hr_registry_ops *ops;
	struct hr_registry *r;
	struct agent *agent;
	struct hr_registry_stats *stats; /* owned: lives as long as r */
	bool done;
};

/* Destroy the instance, then the counters it wrote to. */
static void backend_destroy(struct backend *b)
{
	b->ops->destroy(b->r);
	free(b->stats);
	b->r = NULL;
	b->stats = NULL;
}

/* A backend whose instance was renamed by a reload: deregistering. */
struct retiring {
	struct backend b;
	ev_timer timer;       /* deadline, then a zero-delay destroy */
	struct retiring *next;
};

struct agent {
	struct ev_loop *loop;
	struct retiring *retiring;
	struct hr_config **graveyard; /* configs retiring backends borrow */
	size_t n_graveyard;
	char *path;                 /* config file, for reloads */
	struct hr_config *cfg;      /* current */
	struct hr_config *reg_cfg;  /* the config the backends borrow from */
	struct hr_http *http;
	struct hr_agg *agg;
	struct hr_metrics *metrics;
	struct hr_api *api;
	struct backend backends[MAX_BACKENDS];
	size_t n_backends;
	bool maint;
	char *maint_reason;
	bool ready;           /* first aggregate known and published */
	bool hold;            /* reload: new checks have no result yet */
	bool reloading;       /* inside do_reload() */
	char **held;          /* names of those checks */
	size_t n_held;
	bool stopping;
	bool telling;         /* inside the shutdown() calls */
	ev_timer ready_timer; /* publish even if some check never answers */
	ev_timer hold_timer;
	ev_timer stop_timer;
	ev_timer watchdog;
	ev_signal sigterm, sigint, sighup;
};

static void publish(struct agent *a)
{
	char why[1100];
	size_t i;

	if (!a->ready || a->hold || a->stopping)
		return;
	snprintf(why, sizeof(why), "maintenance: %s",
		 a->maint_reason && *a->maint_reason ? a->maint_reason
						     : "(no reason given)");
	for (i = 0; i < a->n_backends; i++) {
		struct backend *b = &a->backends[i];

		/* A backend with its own maintenance mode hears the real
		 * status; the others see critical while in maintenance. */
		if (a->maint && !b->ops->maintenance)
			b->ops->apply(b->r, HR_STATUS_CRITICAL, why);
		else
			b->ops->apply(b->r, hr_agg_status(a->agg),
				      hr_agg_output(a->agg));
	}
}

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

static void become_ready(struct agent *a)
{
	char n[32];

	if (a->ready)
		return;
	a->ready = true;
	ev_timer_stop(a->loop, &a->ready_timer);
	snprintf(n, sizeof(n), "%zu", hr_agg_n_checks(a->agg));
	hr_log(HR_LOG_INFO, "ready", "status", hr_status_name(hr_agg_status(a->agg)),
	       "checks", n, "output", hr_agg_output(a->agg), NULL);
	hr_sd_notify("READY=1\nSTATUS=checks running");
	publish(a);
}

static void end_hold(struct agent *a, const char *reason)
{
	size_t i;

	if (!a->hold)
		return;
	for (i = 0; i < a->n_held; i++)
		free(a->held[i]);
	free(a->held);
	a->held = NULL;
	a->n_held = 0;
	a->hold = false;
	ev_timer_stop(a->loop, &a->hold_timer);
	hr_log(HR_LOG_INFO, "reload_settled", "reason", reason, "status",
	       hr_status_name(hr_agg_status(a->agg)), "output",
	       hr_agg_output(a->agg), NULL);
	publish(a);
}

static bool held_known(struct agent *a)
{
	struct hr_check_info info;
	size_t i;

	for (i = 0; i < a->n_held; i++)
		if (!hr_agg_check_get(a->agg, a->held[i], &info) &&
		    info.last_result == HR_STATUS_UNKNOWN &&
		    info.status == HR_STATUS_UNKNOWN)
			return false;
	return true;
}

static void on_event(struct hr_agg *agg, const struct hr_agg_event *ev,
		     void *payload)
{
	struct agent *a = payload;

	if (ev->type == HR_EVENT_CHECK_RESULT)
		hr_metrics_observe(a->metrics, ev->check, ev->duration_ms);
	if (a->stopping)
		return;
	if (!a->ready) {
		/* Status events come before the aggregate is recomputed;
		 * the aggregate event is the one to publish on. */
		if (ev->type == HR_EVENT_AGGREGATE && all_known(agg))
			become_ready(a);
		else if (ev->type == HR_EVENT_CHECK_RESULT && all_known(agg) &&
			 ev->new_status == ev->old_status)
			become_ready(a);
		return;
	}
	if (a->hold) {
		if (a->reloading)
			return; /* the new set is not complete yet */
		if ((ev->type == HR_EVENT_AGGREGATE ||
		     (ev->type == HR_EVENT_CHECK_RESULT &&
		      ev->new_status == ev->old_status)) &&
		    held_known(a))
			end_hold(a, "new checks have results");
		return;
	}
	if (ev->type == HR_EVENT_AGGREGATE)
		publish(a);
}

static void ready_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;

	(void)loop;
	(void)revents;
	hr_log(HR_LOG_WARN, "ready_timeout", "reason",
	       "some checks have no result yet; publishing what is known",
	       NULL);
	become_ready(a);
}

static void hold_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	end_hold(w->data, "timeout waiting for new checks");
}

/* How long the first results may take: first runs start within 1 s. */
static double first_result_wait(const struct hr_config *cfg)
{
	double wait = 1.0;
	size_t i;

	for (i = 0; i < cfg->n_checks; i++)
		if (cfg->checks[i].kind != HR_CHECK_TTL &&
		    1.0 + (double)cfg->checks[i].timeout_ms / 1000.0 > wait)
			wait = 1.0 + (double)cfg->checks[i].timeout_ms / 1000.0;
	return wait + 0.5;
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	hr_sd_notify("WATCHDOG=1");
}

/* ---- maintenance --------------------------------------------------------- */

static char *state_path(const struct hr_config *cfg)
{
	const char *dir = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
	char *p = NULL;

	if (cfg->state_file)
		return strdup(cfg->state_file);
	if (asprintf(&p, "%s/%s.state", dir && *dir ? dir : "/var/lib/healthreg",
		     cfg->service.id) < 0)
		return NULL;
	return p;
}

static int save_state(struct agent *a)
{
	char *path = state_path(a->cfg), *tmp = NULL, *text = NULL;
	cJSON *doc = cJSON_CreateObject(), *m;
	FILE *f = NULL;
	int rc = -ENOMEM;

	m = cJSON_AddObjectToObject(doc, "maintenance");
	cJSON_AddBoolToObject(m, "enabled", a->maint);
	cJSON_AddStringToObject(m, "reason", a->maint_reason ? a->maint_reason : "");
	text = cJSON_Print(doc);
	if (!path || !text || asprintf(&tmp, "%s.tmp", path) < 0)
		goto cleanup;
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", text) < 0 || fflush(f) || fsync(fileno(f))) {
		rc = -errno;
		goto cleanup;
	}
	fclose(f);
	f = NULL;
	if (rename(tmp, path)) {
		rc = -errno;
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (f)
		fclose(f);
	if (rc) {
		hr_log(HR_LOG_ERROR, "state_save_failed", "path", path, "error",
		       strerror(-rc), NULL);
		if (tmp)
			unlink(tmp);
	}
	cJSON_free(text);
	cJSON_Delete(doc);
	free(tmp);
	free(path);
	return rc;
}

static void load_state(struct agent *a)
{
	char *path = state_path(a->cfg);
	char buf[8192];
	size_t n;
	FILE *f;
	cJSON *doc, *m, *en, *why;

	if (!path)
		return;
	f = fopen(path, "r");
	if (!f) {
		free(path);
		return;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	doc = cJSON_Parse(buf);
	m = cJSON_GetObjectItemCaseSensitive(doc, "maintenance");
	en = cJSON_GetObjectItemCaseSensitive(m, "enabled");
	why = cJSON_GetObjectItemCaseSensitive(m, "reason");
	if (cJSON_IsTrue(en)) {
		a->maint = true;
		free(a->maint_reason);
		a->maint_reason = strdup(cJSON_IsString(why) ? why->valuestring : "");
		hr_log(HR_LOG_WARN, "maintenance_restored", "reason",
		       a->maint_reason, "path", path, NULL);
	} else if (!doc) {
		hr_log(HR_LOG_WARN, "state_unreadable", "path", path, NULL);
	}
	cJSON_Delete(doc);
	free(path);
}

static void tell_maintenance(struct agent *a)
{
	size_t i;

	for (i = 0; i < a->n_backends; i++)
		if (a->backends[i].ops->maintenance)
			a->backends[i].ops->maintenance(a->backends[i].r, a->maint,
							a->maint_reason ? a->maint_reason : "");
}

static int maint_set(void *ctx, bool enable, const char *reason)
{
	struct agent *a = ctx;
	char *r = strdup(reason ? reason : "");

	if (!r)
		return -ENOMEM;
	free(a->maint_reason);
	a->maint_reason = r;
	a->maint = enable;
	hr_log(HR_LOG_WARN, enable ? "maintenance_enabled" : "maintenance_disabled",
	       "reason", r, NULL);
	save_state(a);
	tell_maintenance(a);
	publish(a);
	return 0;
}

static bool maint_get(void *ctx, const char **reason)
{
	struct agent *a = ctx;

	if (reason)
		*reason = a->maint_reason;
	return a->maint;
}

/* ---- backends -------------------------------------------------------------- */

static void finish_stop(struct agent *a)
{
	ev_timer_stop(a->loop, &a->stop_timer);
	ev_break(a->loop, EVBREAK_ALL);
}

static void check_all_done(struct agent *a)
{
	size_t i;

	if (a->telling)
		return;
	for (i = 0; i < a->n_backends; i++)
		if (!a->backends[i].done)
			return;
	finish_stop(a);
}

static void backend_done(void *payload)
{
	struct backend *b = payload;

	b->done = true;
	check_all_done(b->agent);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	size_t i;

	(void)loop;
	(void)revents;
	for (i = 0; i < a->n_backends; i++)
		if (!a->backends[i].done)
			hr_log(HR_LOG_WARN, "shutdown_timeout", "registry",
			       a->backends[i].ops->name, "reason",
			       "deregistration did not finish in time", NULL);
	finish_stop(a);
}

static void start_shutdown(struct agent *a, const char *why)
{
	size_t i;

	a->stopping = true;
	hr_log(HR_LOG_INFO, "shutdown", "signal", why, NULL);
	hr_sd_notify("STOPPING=1");
	hr_agg_stop(a->agg);
	ev_timer_init(&a->stop_timer, stop_timer_cb,
		      (double)a->cfg->shutdown_timeout_ms / 1000.0, 0.);
	a->stop_timer.data = a;
	ev_timer_start(a->loop, &a->stop_timer);
	a->telling = true;
	for (i = 0; i < a->n_backends; i++) {
		struct backend *b = &a->backends[i];

		if (b->ops->shutdown)
			b->ops->shutdown(b->r, backend_done, b);
		else
			b->done = true;
	}
	a->telling = false;
	check_all_done(a);
}

/* Create every configured backend from cfg into out (n_out set). */
static int create_backends(struct agent *a, const struct hr_config *cfg,
			   struct backend *out, size_t *n_out)
{
	struct hr_registry_env env;
	const cJSON *item;
	size_t i, n = 0;

	*n_out = 0;
	if (!cfg->registry)
		return 0;
	memset(&env, 0, sizeof(env));
	env.loop = a->loop;
	env.http = a->http;
	env.service = &cfg->service;
	env.shutdown_timeout_ms = cfg->shutdown_timeout_ms;
	cJSON_ArrayForEach(item, cfg->registry) {
		for (i = 0; hr_registries[i]; i++) {
			const struct hr_registry_ops *ops = hr_registries[i];
			struct hr_err err = { "" };
			struct backend *b;

			if (strcmp(ops->name, item->string))
				continue;
			if (n == MAX_BACKENDS)
				return -ENOSPC;
			b = &out[n];
			memset(b, 0, sizeof(*b));
			b->ops = ops;
			b->agent = a;
			b->stats = calloc(1, sizeof(*b->stats));
			env.stats = b->stats;
			if (!b->stats)
				snprintf(err.msg, sizeof(err.msg), "out of memory");
			if (!b->stats || ops->abi != HR_REGISTRY_ABI ||
			    ops->create(&b->r, item, &env, &err)) {
				hr_log(HR_LOG_ERROR, "registry_create_failed",
				       "registry", ops->name, "error", err.msg,
				       NULL);
				free(b->stats);
				while (n--)
					backend_destroy(&out[n]);
				return -EINVAL;
			}
			hr_log(HR_LOG_INFO, "registry_enabled", "registry",
			       ops->name, NULL);
			n++;
		}
	}
	*n_out = n;
	return 0;
}

/* ---- reload ----------------------------------------------------------------- */

static void retire_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct retiring *r = w->data;
	struct agent *a = r->b.agent;
	struct retiring **p;

	(void)revents;
	ev_timer_stop(loop, w);
	for (p = &a->retiring; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	backend_destroy(&r->b);
	free(r);
}

static void retire_done(void *payload)
{
	struct retiring *r = payload;

	/* Not from inside the backend's own callback: next iteration. */
	ev_timer_stop(r->b.agent->loop, &r->timer);
	ev_timer_set(&r->timer, 0., 0.);
	ev_timer_start(r->b.agent->loop, &r->timer);
}

static void retire(struct agent *a, struct backend *b)
{
	struct retiring *r = calloc(1, sizeof(*r));

	if (!r || !b->ops->shutdown) {
		free(r);
		backend_destroy(b);
		return;
	}
	r->b = *b;
	r->next = a->retiring;
	a->retiring = r;
	ev_timer_init(&r->timer, retire_timer_cb,
		      (double)a->cfg->shutdown_timeout_ms / 1000.0, 0.);
	r->timer.data = r;
	ev_timer_start(a->loop, &r->timer);
	b->ops->shutdown(r->b.r, retire_done, r);
}

static bool str_eq(const char *x, const char *y)
{
	if (!x || !y)
		return x == y;
	return !strcmp(x, y);
}

static int hold_add(struct agent *a, const char *name)
{
	char **v = realloc(a->held, (a->n_held + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	a->held = v;
	v[a->n_held] = strdup(name);
	if (!v[a->n_held])
		return -ENOMEM;
	a->n_held++;
	return 0;
}

static void config_errors(struct hr_diag *d, char *msg, size_t len)
{
	size_t i, o = 0;

	msg[0] = '\0';
	for (i = 0; i < d->n && o + 1 < len; i++)
		if (d->v[i].level == HR_DIAG_ERROR)
			o += (size_t)snprintf(msg + o, len - o, "%s%s",
					      o ? "; " : "", d->v[i].text);
}

/*
 * Apply a new config without ever deregistering: unchanged checks keep
 * their state, removed checks stop, new and changed checks start and the
 * registries are not told anything until they have a first result
 * (make-before-break). Registry backends are recreated only when the
 * service or the registry section changed.
 */
static int do_reload(void *ctx, char *msg, size_t len)
{
	struct agent *a = ctx;
	struct hr_config_backend vals[MAX_BACKENDS];
	struct hr_config *next = NULL, *old = a->cfg;
	struct hr_err err = { "" };
	struct hr_diag d;
	size_t i, nb = 0;
	bool groups_changed, reg_changed;
	int rc, added = 0, removed = 0, changed = 0, kept = 0;
	char counts[160];

	if (a->stopping)
		return snprintf(msg, len, "shutting down"), -EINVAL;
	hr_sd_notify("RELOADING=1");
	for (i = 0; hr_registries[i] && nb < MAX_BACKENDS; i++) {
		vals[nb].name = hr_registries[i]->name;
		vals[nb].validate = hr_registries[i]->validate;
		nb++;
	}
	hr_diag_init(&d);
	rc = hr_config_load(&next, a->path, vals, nb, &d);
	if (rc) {
		config_errors(&d, msg, len);
		hr_log(HR_LOG_ERROR, "reload_failed", "path", a->path, "errors",
		       msg, "action", "kept the running config", NULL);
		hr_diag_dispose(&d);
		hr_sd_notify("READY=1");
		return -EINVAL;
	}
	hr_diag_dispose(&d);
	if (next->enable_exec_checks != old->enable_exec_checks ||
	    !str_eq(next->api_listen, old->api_listen) ||
	    !str_eq(next->api_token_file, old->api_token_file) ||
	    !str_eq(next->state_file, old->state_file))
		hr_log(HR_LOG_WARN, "reload_needs_restart", "keys",
		       "agent.enable_exec_checks, agent.api_listen, agent.api_token_file, agent.state_file",
		       "action", "kept the running values", NULL);
	if (!next->enable_exec_checks && old->enable_exec_checks)
		next->enable_exec_checks = true;
	for (i = 0; i < next->n_checks; i++) {
		if (next->checks[i].kind == HR_CHECK_EXEC && !old->enable_exec_checks) {
			snprintf(msg, len, "service.checks[%zu]: exec checks need agent.enable_exec_checks at start; restart healthreg",
				 i);
			hr_log(HR_LOG_ERROR, "reload_failed", "errors", msg,
			       "action", "kept the running config", NULL);
			hr_config_free(next);
			hr_sd_notify("READY=1");
			return -EINVAL;
		}
	}
	/* Nothing reaches the registries until the new set has settled. */
	a->hold = true;
	a->reloading = true;
	groups_changed = !hr_groups_equal(old, next);
	reg_changed = !hr_service_spec_equal(&old->service, &next->service) ||
		      !cJSON_Compare(old->registry, next->registry, 1);

	/* Remove checks that went away or changed (grouped ones too when
	 * the groups changed: their indices may differ). */
	for (i = 0; i < old->n_checks; i++) {
		const struct hr_check_spec *o = &old->checks[i];
		int j = hr_config_find_check(next, o->name);

		if (j >= 0 && hr_check_spec_equal(o, &next->checks[j]) &&
		    !(groups_changed && o->group >= 0)) {
			kept++;
			continue;
		}
		hr_agg_remove_check(a->agg, o->name);
		if (j >= 0)
			changed++;
		else
			removed++;
	}
	if (groups_changed &&
	    hr_agg_set_groups(a->agg, next->groups, next->n_groups, &err))
		hr_log(HR_LOG_ERROR, "reload_groups_failed", "error", err.msg, NULL);
	for (i = 0; i < next->n_checks; i++) {
		struct hr_check_info info;

		if (!hr_agg_check_get(a->agg, next->checks[i].name, &info))
			continue; /* kept */
		if (hr_agg_add_check(a->agg, &next->checks[i], &err)) {
			hr_log(HR_LOG_ERROR, "reload_add_failed", "check",
			       next->checks[i].name, "error", err.msg, NULL);
			continue;
		}
		if (hold_add(a, next->checks[i].name))
			hr_log(HR_LOG_WARN, "reload_hold_failed", "check",
			       next->checks[i].name, NULL);
		if (hr_config_find_check(old, next->checks[i].name) < 0)
			added++;
	}
	hr_log_setup(next->log_level, next->log_format, stderr);

	if (reg_changed) {
		struct backend fresh[MAX_BACKENDS];
		size_t n_fresh = 0;
		bool same_identity = str_eq(old->service.id, next->service.id) &&
				     str_eq(old->service.name, next->service.name);

		if (create_backends(a, next, fresh, &n_fresh)) {
			snprintf(msg, len, "registry backends could not be created from the new config; kept the running ones");
			hr_log(HR_LOG_ERROR, "reload_registry_failed", "action",
			       "kept the running registry backends", NULL);
		} else {
			/* The new backends register the same instance again
			 * (a replace); a renamed instance's old registration
			 * is removed by a deregistering shutdown. */
			for (i = 0; i < a->n_backends; i++) {
				if (same_identity)
					backend_destroy(&a->backends[i]);
				else
					retire(a, &a->backends[i]);
			}
			/* Each record owns its counters (on the heap), so the
			 * copy moves nothing the backends point at. */
			memcpy(a->backends, fresh, sizeof(fresh));
			a->n_backends = n_fresh;
			if (!same_identity) {
				/* Retiring backends still borrow it. */
				struct hr_config **g = realloc(a->graveyard,
					(a->n_graveyard + 1) * sizeof(*g));

				if (g) {
					a->graveyard = g;
					g[a->n_graveyard++] = a->reg_cfg;
				}
			} else if (a->reg_cfg != old) {
				hr_config_free(a->reg_cfg);
			}
			if (!same_identity && a->reg_cfg == old)
				old = NULL; /* now in the graveyard */
			a->reg_cfg = next;
			if (a->maint)
				tell_maintenance(a);
		}
	}
	a->cfg = next;
	if (old && a->reg_cfg != old)
		hr_config_free(old);
	snprintf(counts, sizeof(counts), "kept=%d added=%d changed=%d removed=%d",
		 kept, added, changed, removed);
	hr_log(HR_LOG_INFO, "reloaded", "path", a->path, "checks", counts,
	       "registry", reg_changed ? "recreated" : "unchanged", NULL);
	a->reloading = false;
	if (!ev_is_active(&a->hold_timer)) {
		ev_timer_init(&a->hold_timer, hold_timeout_cb,
			      first_result_wait(next), 0.);
		a->hold_timer.data = a;
		ev_timer_start(a->loop, &a->hold_timer);
	}
	if (held_known(a))
		end_hold(a, a->n_held ? "new checks have results"
				      : "no new checks");
	hr_sd_notify("READY=1");
	return 0;
}

/* ---- signals --------------------------------------------------------------- */

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct agent *a = w->data;
	const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		char msg[2048];

		hr_log(HR_LOG_INFO, "reload", "signal", "SIGHUP", NULL);
		do_reload(a, msg, sizeof(msg));
		return;
	}
	if (a->stopping) {
		hr_log(HR_LOG_WARN, "exit_now", "signal", name, NULL);
		_exit(HR_EXIT_OK);
	}
	start_shutdown(a, name);
}

/* ---- API host ---------------------------------------------------------------- */

static struct hr_agg *host_agg(void *ctx)
{
	return ((struct agent *)ctx)->agg;
}

static const char *host_service(void *ctx)
{
	return ((struct agent *)ctx)->cfg->service.name;
}

static char *host_metrics(void *ctx)
{
	struct agent *a = ctx;
	struct hr_metrics_backend mb[MAX_BACKENDS];
	size_t i;

	for (i = 0; i < a->n_backends; i++) {
		mb[i].name = a->backends[i].ops->name;
		mb[i].stats = a->backends[i].stats;
	}
	return hr_metrics_render(a->metrics, a->agg, a->maint, mb, a->n_backends);
}

static int read_token(const char *path, char **out)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	*out = NULL;
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (!n)
		return -EINVAL;
	*out = strdup(buf);
	memset(buf, 0, sizeof(buf));
	return *out ? 0 : -ENOMEM;
}

static int start_api(struct agent *a)
{
	const char *listen = a->cfg->api_listen ? a->cfg->api_listen
						: HR_API_DEFAULT_LISTEN;
	struct hr_api_host host = {
		.agg = host_agg,
		.service_name = host_service,
		.maint_get = maint_get,
		.maint_set = maint_set,
		.reload = do_reload,
		.metrics = host_metrics,
		.ctx = a,
	};
	struct hr_err err = { "" };
	char *token = NULL;
	char port[16];
	int rc;

	if (!*listen || !strcmp(listen, "off"))
		return 0;
	if (a->cfg->api_token_file) {
		rc = read_token(a->cfg->api_token_file, &token);
		if (rc) {
			hr_log(HR_LOG_ERROR, "api_token_unreadable", "path",
			       a->cfg->api_token_file, "error",
			       rc == -EINVAL ? "empty file" : strerror(-rc), NULL);
			return rc;
		}
	}
	rc = hr_api_new(&a->api, a->loop, listen, token, &host, &err);
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	if (rc) {
		/* Registration is the primary job: keep running without
		 * the local API rather than stop registering. */
		hr_log(HR_LOG_ERROR, "api_failed", "error", err.msg, "action",
		       "running without the local API", NULL);
		return 0;
	}
	snprintf(port, sizeof(port), "%d", hr_api_port(a->api));
	hr_log(HR_LOG_INFO, "api_listening", "addr", listen, "port", port,
	       "auth", a->cfg->api_token_file ? "token" : "off", NULL);
	return 0;
}

int hr_agent_run(const char *path, struct hr_config *cfg)
{
	struct agent a;
	struct hr_agg_opts opts;
	struct hr_err err = { "" };
	uint64_t wd;
	size_t i;
	int rc, code = HR_EXIT_SOFTWARE;

	memset(&a, 0, sizeof(a));
	a.cfg = a.reg_cfg = cfg;
	a.path = strdup(path);
	/* A private loop: libev's default loop reaps every child itself. */
	a.loop = ev_loop_new(EVFLAG_AUTO);
	signal(SIGPIPE, SIG_IGN);
	if (!a.loop || !a.path || hr_http_new(&a.http, a.loop, &err) ||
	    hr_metrics_new(&a.metrics)) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error",
		       err.msg[0] ? err.msg : "out of memory", NULL);
		goto cleanup;
	}
	memset(&opts, 0, sizeof(opts));
	opts.enable_exec_checks = cfg->enable_exec_checks;
	opts.max_concurrent = cfg->max_concurrent;
	rc = hr_agg_new(&a.agg, a.loop, a.http, &opts, &err);
	if (!rc)
		rc = hr_agg_add_config(a.agg, cfg, &err);
	if (rc) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error", err.msg, NULL);
		goto cleanup;
	}
	if (hr_agg_listen(a.agg, on_event, &a) < 0)
		goto cleanup;
	load_state(&a);
	if (create_backends(&a, cfg, a.backends, &a.n_backends)) {
		code = HR_EXIT_CONFIG;
		goto cleanup;
	}
	if (a.maint)
		tell_maintenance(&a);
	if (start_api(&a)) {
		code = HR_EXIT_CONFIG;
		goto cleanup;
	}
	ev_signal_init(&a.sigterm, signal_cb, SIGTERM);
	ev_signal_init(&a.sigint, signal_cb, SIGINT);
	ev_signal_init(&a.sighup, signal_cb, SIGHUP);
	a.sigterm.data = a.sigint.data = a.sighup.data = &a;
	ev_signal_start(a.loop, &a.sigterm);
	ev_signal_start(a.loop, &a.sigint);
	ev_signal_start(a.loop, &a.sighup);
	ev_timer_init(&a.ready_timer, ready_timeout_cb, first_result_wait(cfg), 0.);
	a.ready_timer.data = &a;
	ev_timer_start(a.loop, &a.ready_timer);
	wd = hr_sd_watchdog_usec();
	if (wd) {
		ev_timer_init(&a.watchdog, watchdog_cb, 0., (double)wd / 2e6);
		ev_timer_again(a.loop, &a.watchdog);
	}
	{
		char n[32];

		snprintf(n, sizeof(n), "%zu", cfg->n_checks);
		hr_log(HR_LOG_INFO, "start", "service", cfg->service.name,
		       "id", cfg->service.id, "checks", n, "version",
		       HR_VERSION, NULL);
	}
	hr_agg_start(a.agg);
	if (all_known(a.agg))
		become_ready(&a);
	ev_run(a.loop, 0);
	code = HR_EXIT_OK;
	hr_log(HR_LOG_INFO, "stopped", NULL);
cleanup:
	if (a.loop) {
		ev_timer_stop(a.loop, &a.ready_timer);
		ev_timer_stop(a.loop, &a.hold_timer);
		ev_timer_stop(a.loop, &a.stop_timer);
		ev_timer_stop(a.loop, &a.watchdog);
		ev_signal_stop(a.loop, &a.sigterm);
		ev_signal_stop(a.loop, &a.sigint);
		ev_signal_stop(a.loop, &a.sighup);
	}
	hr_api_free(a.api);
	while (a.retiring) {
		struct retiring *r = a.retiring;

		a.retiring = r->next;
		ev_timer_stop(a.loop, &r->timer);
		backend_destroy(&r->b);
		free(r);
	}
	for (i = 0; i < a.n_backends; i++)
		backend_destroy(&a.backends[i]);
	hr_agg_free(a.agg);
	hr_http_free(a.http);
	hr_metrics_free(a.metrics);
	for (i = 0; i < a.n_held; i++)
		free(a.held[i]);
	free(a.held);
	free(a.maint_reason);
	if (a.reg_cfg != a.cfg)
		hr_config_free(a.reg_cfg);
	for (i = 0; i < a.n_graveyard; i++)
		hr_config_free(a.graveyard[i]);
	free(a.graveyard);
	hr_config_free(a.cfg);
	free(a.path);
	if (a.loop)
		ev_loop_destroy(a.loop);
	return code;
}

/* ---- check ------------------------------------------------------------- */

struct once {
	int json;
	int code;
};

static void print_json(struct hr_agg *agg, enum hr_status st,
		       const char *output)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "checks");
	struct hr_check_info info;
	char *s;
	size_t i;

	cJSON_AddStringToObject(root, "status", hr_status_name(st));
	cJSON_AddStringToObject(root, "output", output);
	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		cJSON *o = cJSON_CreateObject();

		hr_agg_check_at(agg, i, &info);
		cJSON_AddStringToObject(o, "name", info.name);
		cJSON_AddStringToObject(o, "kind", hr_check_kind_name(info.kind));
		cJSON_AddStringToObject(o, "status", hr_status_name(info.status));
		cJSON_AddNumberToObject(o, "duration_ms", info.duration_ms);
		cJSON_AddStringToObject(o, "output", info.output);
		if (info.group)
			cJSON_AddStringToObject(o, "group", info.group);
		cJSON_AddStringToObject(o, "on_failure",
					hr_on_failure_name(info.on_failure));
		cJSON_AddItemToArray(arr, o);
	}
	s = cJSON_Print(root);
	if (s)
		printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(root);
}

/* One line of output for the table: first line, at most width bytes. */
static void clip(const char *in, char *out, size_t width)
{
	size_t i;

	for (i = 0; in[i] && in[i] != '\n' && in[i] != '\r' && i < width; i++)
		out[i] = in[i];
	out[i] = '\0';
	if (in[i] && i == width && width > 3)
		memcpy(out + width - 3, "...", 4);
}

static void print_table(struct hr_agg *agg, enum hr_status st,
			const char *output)
{
	struct hr_check_info info;
	size_t i, w = 4;
	char line[81];

	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		hr_agg_check_at(agg, i, &info);
		if (strlen(info.name) > w)
			w = strlen(info.name);
	}
	if (w > 40)
		w = 40;
	printf("%-*s  %-4s  %-8s  %9s  %s\n", (int)w, "NAME", "KIND", "STATUS",
	       "DURATION", "OUTPUT");
	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		char dur[32];

		hr_agg_check_at(agg, i, &info);
		snprintf(dur, sizeof(dur), "%.1fms", info.duration_ms);
		clip(info.output, line, 80);
		printf("%-*.*s  %-4s  %-8s  %9s  %s\n", (int)w, (int)w, info.name,
		       hr_check_kind_name(info.kind), hr_status_name(info.status),
		       dur, line);
	}
	printf("\naggregate: %s (%s)\n", hr_status_name(st), output);
}

static void once_cb(struct hr_agg *agg, enum hr_status st, const char *output,
		    void *payload)
{
	struct once *o = payload;

	if (o->json)
		print_json(agg, st, output);
	else
		print_table(agg, st, output);
	o->code = st == HR_STATUS_PASSING   ? HR_EXIT_OK
		  : st == HR_STATUS_WARNING ? HR_EXIT_WARNING
					    : HR_EXIT_CRITICAL;
	ev_break(hr_agg_loop(agg), EVBREAK_ALL);
}

int hr_agent_check_once(const struct hr_config *cfg, int json)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct hr_agg *agg = NULL;
	struct hr_agg_opts opts;
	struct hr_err err = { "" };
	struct once o = { json, HR_EXIT_SOFTWARE };
	int rc;

	signal(SIGPIPE, SIG_IGN);
	memset(&opts, 0, sizeof(opts));
	opts.enable_exec_checks = cfg->enable_exec_checks;
	opts.max_concurrent = cfg->max_concurrent;
	rc = hr_agg_new(&agg, loop, NULL, &opts, &err);
	if (!rc)
		rc = hr_agg_add_config(agg, cfg, &err);
	if (!rc)
		rc = hr_agg_evaluate(agg, once_cb, &o);
	if (rc) {
		fprintf(stderr, "healthreg: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		hr_agg_free(agg);
		return HR_EXIT_SOFTWARE;
	}
	if (o.code == HR_EXIT_SOFTWARE)
		ev_run(loop, 0);
	hr_agg_free(agg);
	return o.code;
}
