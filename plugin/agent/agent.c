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
	bool done;
};

struct agent {
	struct ev_loop *loop;
	const struct hr_config *cfg;
	struct hr_http *http;
	struct hr_agg *agg;
	struct backend backends[MAX_BACKENDS];
	size_t n_backends;
	bool ready;           /* first aggregate known and published */
	bool stopping;
	ev_timer ready_timer; /* publish even if some check never answers */
	ev_timer stop_timer;
	bool telling;         /* inside the shutdown() calls */
	ev_signal sigterm, sigint;
	int exit_code;
};

static void publish(struct agent *a)
{
	size_t i;

	for (i = 0; i < a->n_backends; i++)
		a->backends[i].ops->apply(a->backends[i].r,
					  hr_agg_status(a->agg),
					  hr_agg_output(a->agg));
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
	publish(a);
}

static void on_event(struct hr_agg *agg, const struct hr_agg_event *ev,
		     void *payload)
{
	struct agent *a = payload;

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

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct agent *a = w->data;
	size_t i;

	(void)revents;
	if (a->stopping) {
		hr_log(HR_LOG_WARN, "exit_now", "signal",
		       w->signum == SIGINT ? "SIGINT" : "SIGTERM", NULL);
		_exit(HR_EXIT_OK);
	}
	a->stopping = true;
	hr_log(HR_LOG_INFO, "shutdown", "signal",
	       w->signum == SIGINT ? "SIGINT" : "SIGTERM", NULL);
	hr_agg_stop(a->agg);
	ev_timer_init(&a->stop_timer, stop_timer_cb,
		      (double)a->cfg->shutdown_timeout_ms / 1000.0, 0.);
	a->stop_timer.data = a;
	ev_timer_start(loop, &a->stop_timer);
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

static int create_backends(struct agent *a)
{
	struct hr_registry_env env;
	const cJSON *item;
	size_t i;

	if (!a->cfg->registry)
		return 0;
	memset(&env, 0, sizeof(env));
	env.loop = a->loop;
	env.http = a->http;
	env.service = &a->cfg->service;
	env.shutdown_timeout_ms = a->cfg->shutdown_timeout_ms;
	cJSON_ArrayForEach(item, a->cfg->registry) {
		for (i = 0; hr_registries[i]; i++) {
			const struct hr_registry_ops *ops = hr_registries[i];
			struct hr_err err = { "" };
			struct backend *b;

			if (strcmp(ops->name, item->string))
				continue;
			if (a->n_backends == MAX_BACKENDS)
				return -ENOSPC;
			b = &a->backends[a->n_backends];
			b->ops = ops;
			b->agent = a;
			if (ops->abi != HR_REGISTRY_ABI ||
			    ops->create(&b->r, item, &env, &err)) {
				hr_log(HR_LOG_ERROR, "registry_create_failed",
				       "registry", ops->name, "error", err.msg,
				       NULL);
				return -EINVAL;
			}
			hr_log(HR_LOG_INFO, "registry_enabled", "registry",
			       ops->name, NULL);
			a->n_backends++;
		}
	}
	return 0;
}

int hr_agent_run(const struct hr_config *cfg)
{
	struct agent a;
	struct hr_agg_opts opts;
	struct hr_err err = { "" };
	size_t i;
	int rc, code = HR_EXIT_SOFTWARE;

	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.loop = ev_default_loop(EVFLAG_AUTO);
	signal(SIGPIPE, SIG_IGN);
	if (hr_http_new(&a.http, a.loop, &err)) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error", err.msg, NULL);
		return HR_EXIT_SOFTWARE;
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
	if (create_backends(&a)) {
		code = HR_EXIT_CONFIG;
		goto cleanup;
	}
	ev_signal_init(&a.sigterm, signal_cb, SIGTERM);
	ev_signal_init(&a.sigint, signal_cb, SIGINT);
	a.sigterm.data = a.sigint.data = &a;
	ev_signal_start(a.loop, &a.sigterm);
	ev_signal_start(a.loop, &a.sigint);
	/* Every check starts within 1 s; give the slowest its timeout. */
	{
		double wait = 1.0;

		for (i = 0; i < cfg->n_checks; i++)
			if (cfg->checks[i].kind != HR_CHECK_TTL &&
			    1.0 + (double)cfg->checks[i].timeout_ms / 1000.0 > wait)
				wait = 1.0 + (double)cfg->checks[i].timeout_ms / 1000.0;
		ev_timer_init(&a.ready_timer, ready_timeout_cb, wait + 0.5, 0.);
		a.ready_timer.data = &a;
		ev_timer_start(a.loop, &a.ready_timer);
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
	ev_timer_stop(a.loop, &a.ready_timer);
	ev_signal_stop(a.loop, &a.sigterm);
	ev_signal_stop(a.loop, &a.sigint);
	for (i = 0; i < a.n_backends; i++)
		a.backends[i].ops->destroy(a.backends[i].r);
	hr_agg_free(a.agg);
	hr_http_free(a.http);
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
