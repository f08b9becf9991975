/*
 * agent.c - `healthreg run`: wires the parts together and owns them.
 *
 * config -> aggregator (scheduled) -> publish.c tells the backends
 * (bset.c) the aggregate once every check has a first result, and again
 * on every change; reload.c applies SIGHUP and PUT /v1/reload; state.c
 * keeps maintenance across restarts; api.c serves the local API.
 * SIGTERM/SIGINT: stop the checks, let every backend deregister within
 * shutdown_timeout, exit 0; a second signal exits at once.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ev.h>

#include "agent.h"
#include "api.h"
#include "backends.h"
#include "bset.h"
#include "healthreg/aggregator.h"
#include "healthreg/log.h"
#include "healthreg/util.h"
#include "metrics.h"
#include "preflight.h"
#include "publish.h"
#include "reload.h"
#include "sdnotify.h"
#include "state.h"

/*
 * The running agent, on the stack of hr_agent_run(), which owns every
 * member: the loop, the configs (cfgs), the aggregator, the backends
 * (bset), the publisher, the API, the metrics.
 */
struct agent {
	struct ev_loop *loop;
	char *path;                 /* config file, for reloads */
	struct hr_agent_cfgs cfgs;
	struct hr_http *http;
	struct hr_agg *agg;
	struct hr_metrics *metrics;
	struct hr_api *api;
	struct hr_bset bset;
	struct hr_pub pub;
	struct hr_reload reload;
	struct hr_journal journal;  /* outlives every backend (regcore.h) */
	ev_timer watchdog;
	ev_signal sigterm, sigint, sighup;
};

static void on_event(struct hr_agg *agg, const struct hr_agg_event *ev,
		     void *payload)
{
	struct agent *a = payload;

	(void)agg;
	if (ev->type == HR_EVENT_CHECK_RESULT)
		hr_metrics_observe(a->metrics, ev->check, ev->duration_ms);
	hr_pub_event(&a->pub, ev);
}

/* The journal's context: the cause of a decision, from the checks. */
static void journal_context(void *payload, struct hr_journal_entry *e)
{
	struct agent *a = payload;
	const struct hr_service_spec *svc = &a->cfgs.cur->service;

	if (!e->service[0])
		hr_journal_excerpt(e->service, sizeof(e->service),
				   svc->id ? svc->id : svc->name);
	hr_pub_journal_fill(&a->pub, e);
}

/* agent.journal_size, at start and after a reload. */
static void journal_size(struct agent *a)
{
	int n = a->cfgs.cur->journal_size;

	if (hr_journal_resize(&a->journal, n > 0 ? (size_t)n : 0) < 0)
		hr_log(HR_LOG_WARN, "journal_resize_failed", "error",
		       "out of memory: the journal keeps its size", NULL);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	hr_sd_notify("WATCHDOG=1");
}

/* ---- shutdown and signals ---------------------------------------------- */

static void stopped(void *payload)
{
	struct agent *a = payload;

	ev_break(a->loop, EVBREAK_ALL);
}

static void start_shutdown(struct agent *a, const char *why)
{
	a->pub.stopping = true;
	hr_log(HR_LOG_INFO, "shutdown", "signal", why, NULL);
	hr_sd_notify("STOPPING=1");
	hr_agg_stop(a->agg);
	hr_bset_shutdown(&a->bset, a->cfgs.cur->shutdown_timeout_ms, stopped, a);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct agent *a = w->data;
	const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		char msg[2048];

		hr_log(HR_LOG_INFO, "reload", "signal", "SIGHUP", NULL);
		hr_reload(&a->reload, msg, sizeof(msg));
		journal_size(a);
		return;
	}
	if (a->pub.stopping) {
		hr_log(HR_LOG_WARN, "exit_now", "signal", name, NULL);
		_exit(HR_EXIT_OK);
	}
	start_shutdown(a, name);
}

/* ---- the API host -------------------------------------------------------- */

static struct hr_agg *host_agg(void *ctx)
{
	return ((struct agent *)ctx)->agg;
}

static const char *host_service(void *ctx)
{
	return ((struct agent *)ctx)->cfgs.cur->service.name;
}

static char *host_metrics(void *ctx)
{
	struct agent *a = ctx;
	struct hr_metrics_backend mb[HR_BSET_MAX];
	size_t i;

	for (i = 0; i < a->bset.n; i++) {
		mb[i].name = a->bset.v[i]->ops->name;
		mb[i].stats = &a->bset.v[i]->stats;
	}
	return hr_metrics_render(a->metrics, a->agg, a->pub.maint, mb,
				 a->bset.n);
}

static size_t host_registries(void *ctx, struct hr_api_registry *out,
			      size_t max)
{
	struct agent *a = ctx;
	size_t i;

	for (i = 0; i < a->bset.n && i < max; i++) {
		out[i].name = a->bset.v[i]->ops->name;
		out[i].stats = &a->bset.v[i]->stats;
	}
	return i;
}

/*
 * The state file first: a change a restart would undo is refused, with
 * nothing changed (the caller sees why in msg and can fix the file or
 * agent.state_file, then ask again).
 */
static int host_maint_set(void *ctx, bool enable, const char *reason,
			  char *msg, size_t len)
{
	struct agent *a = ctx;
	char *path;
	int rc;

	if (reason && strlen(reason) > HR_MAINT_REASON_MAX)
		return hr_pub_maint_set(&a->pub, enable, reason); /* refuses */
	path = hr_state_path(a->cfgs.cur);
	if (!path)
		return -ENOMEM;
	rc = hr_state_save(path, enable, reason);
	if (rc)
		snprintf(msg, len,
			 "maintenance unchanged: the state file %s cannot be written: %s",
			 path, strerror(-rc));
	if (!rc) {
		rc = hr_pub_maint_set(&a->pub, enable, reason);
		if (rc) /* the file says what the agent still is */
			hr_state_save(path, a->pub.maint, a->pub.maint_reason);
	}
	free(path);
	if (rc)
		return rc;
	hr_pub_maint_apply(&a->pub);
	return 0;
}

static bool host_maint_get(void *ctx, const char **reason)
{
	struct agent *a = ctx;

	if (reason)
		*reason = a->pub.maint_reason;
	return a->pub.maint;
}

static int host_reload(void *ctx, char *msg, size_t len)
{
	struct agent *a = ctx;
	int rc = hr_reload(&a->reload, msg, len);

	journal_size(a);
	return rc;
}

static const struct hr_journal *host_journal(void *ctx)
{
	return &((struct agent *)ctx)->journal;
}

/* The token file: unreadable or empty stops the agent (HR_EXIT_CONFIG). */
static int read_token(const char *path, char **token)
{
	struct hr_err err = { "" };
	int rc = hr_secret_read(path, "agent.api_token_file", HR_API_TOKEN_MAX, token,
				NULL, &err);
	const char *why = err.msg;
	size_t n;

	if (!rc)
		return 0;
	n = strlen(err.msg);
	if (rc == -EINVAL && n > 7 && !strcmp(err.msg + n - 7, ": empty"))
		why = "empty file";
	else if (rc != -EINVAL && rc != -EPERM)
		why = strerror(-rc);
	hr_log(HR_LOG_ERROR, "api_token_unreadable", "path", path, "error", why,
	       NULL);
	return rc;
}

/*
 * The local API, before anything else starts: returns 0 or an exit code.
 * An unreadable token file is a config error (writes must not silently
 * become open); an address that cannot be bound (in use: never shared,
 * see api.c) stops the start with 69 before any backend or check runs, so
 * a second agent on a taken port cannot answer for the first.
 */
static int start_api(struct agent *a)
{
	const struct hr_config *cfg = a->cfgs.cur;
	const char *listen = cfg->api_listen ? cfg->api_listen
					     : HR_API_DEFAULT_LISTEN;
	struct hr_api_host host = {
		.agg = host_agg,
		.service_name = host_service,
		.maint_get = host_maint_get,
		.maint_set = host_maint_set,
		.reload = host_reload,
		.metrics = host_metrics,
		.registries = host_registries,
		.journal = host_journal,
		.ctx = a,
	};
	struct hr_err err = { "" };
	char *token = NULL;
	char port[16];
	int rc;

	if (!*listen || !strcmp(listen, "off"))
		return 0;
	if (cfg->api_token_file && read_token(cfg->api_token_file, &token))
		return HR_EXIT_CONFIG;
	rc = hr_api_new(&a->api, a->loop, listen, token, &host, &err);
	hr_secret_free(token);
	if (rc) {
		hr_log(HR_LOG_ERROR, "api_failed", "error", err.msg, "action",
		       "not started (set agent.api_listen to a free address, or \"off\")",
		       NULL);
		return rc == -EINVAL ? HR_EXIT_CONFIG : HR_EXIT_UNAVAILABLE;
	}
	snprintf(port, sizeof(port), "%d", hr_api_port(a->api));
	hr_log(HR_LOG_INFO, "api_listening", "addr", listen,
	       HR_LOG_NUM("port"), port, "auth",
	       cfg->api_token_file ? "token" : "off", NULL);
	return 0;
}

/* ---- privileges ------------------------------------------------------------ */

/*
 * The process holds registry credentials and the API token: not dumpable
 * (no core, no ptrace or /proc/PID/mem by the same uid) and RLIMIT_CORE 0,
 * unless agent.allow_core_dumps. Again after a user switch, which resets
 * the dumpable flag.
 */
static void harden_process(const struct hr_config *cfg)
{
	struct rlimit none = { 0, 0 };

	if (cfg->allow_core_dumps) {
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		hr_log(HR_LOG_DEBUG, "process_hardening", "dumpable", "true",
		       "reason", "agent.allow_core_dumps", NULL);
		return;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
	    setrlimit(RLIMIT_CORE, &none) < 0)
		hr_log(HR_LOG_WARN, "process_hardening_failed", "error",
		       strerror(errno), NULL);
	hr_log(HR_LOG_DEBUG, "process_hardening", "dumpable",
	       prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) ? "true" : "false",
	       "core_limit", "0", NULL);
}

static int user_failed(const char *user, const char *why)
{
	hr_log(HR_LOG_ERROR, "user_switch_failed", "user", user, "error", why,
	       NULL);
	return -EPERM;
}

/*
 * agent.user: after the secrets are read and the API is bound, before
 * any check runs, become that user (its groups, then its uid; HOME, USER
 * and LOGNAME follow). Not root: fine if we already are that user
 * (hr_preflight_user(), the check validate makes too).
 */
static int drop_user(const char *user)
{
	const struct passwd *pw;
	struct hr_err err = { "" };
	char uid[24], gid[24];

	if (hr_preflight_user(user, &pw, &err))
		return user_failed(user, err.msg);
	if (geteuid() != 0)
		return 0;
	if (initgroups(user, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return user_failed(user, strerror(errno));
	if (pw->pw_uid != 0 && setuid(0) == 0)
		return user_failed(user, "root could be regained");
	setenv("HOME", pw->pw_dir, 1);
	setenv("USER", pw->pw_name, 1);
	setenv("LOGNAME", pw->pw_name, 1);
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)pw->pw_uid);
	snprintf(gid, sizeof(gid), "%lu", (unsigned long)pw->pw_gid);
	hr_log(HR_LOG_INFO, "user_switched", "user", user, HR_LOG_NUM("uid"),
	       uid, HR_LOG_NUM("gid"), gid, NULL);
	return 0;
}

/* ---- run ------------------------------------------------------------------ */

/* Loop, HTTP engine, metrics, aggregator with cfg's checks. */
static int setup_core(struct agent *a, const struct hr_config *cfg)
{
	struct hr_agg_opts opts;
	struct hr_err err = { "" };
	int rc;

	/* A private loop: libev's default loop reaps every child itself. */
	a->loop = ev_loop_new(EVFLAG_AUTO);
	if (!a->loop || !a->path || hr_http_new(&a->http, a->loop, &err) ||
	    hr_metrics_new(&a->metrics)) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error",
		       err.msg[0] ? err.msg : "out of memory", NULL);
		return -ENOMEM;
	}
	memset(&opts, 0, sizeof(opts));
	opts.enable_exec_checks = cfg->enable_exec_checks;
	opts.max_concurrent = cfg->max_concurrent;
	rc = hr_agg_new(&a->agg, a->loop, a->http, &opts, &err);
	if (!rc)
		rc = hr_agg_add_config(a->agg, cfg, &err);
	if (rc) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error", err.msg, NULL);
		return rc;
	}
	return hr_agg_listen(a->agg, on_event, a) < 0 ? -ENOMEM : 0;
}

/* Maintenance from the state file, the backends. */
static int setup_outputs(struct agent *a)
{
	struct hr_bset_fresh fresh;
	char *path = hr_state_path(a->cfgs.cur), *reason = NULL;

	if (hr_state_load(path, &reason) == 1) {
		a->pub.maint = true;
		a->pub.maint_reason = reason;
	}
	free(path);
	if (hr_bset_build(&a->bset, a->cfgs.cur, &fresh))
		return -EINVAL;
	hr_bset_install(&a->bset, &fresh, false, 0);
	if (a->pub.maint) {
		hr_pub_decide(&a->pub, HR_DECISION_MAINT_ON,
			      "maintenance restored from the state file");
		hr_bset_maintenance(&a->bset, true, a->pub.maint_reason);
	}
	return 0;
}

static void start_watchers(struct agent *a)
{
	uint64_t wd = hr_sd_watchdog_usec();

	ev_signal_init(&a->sigterm, signal_cb, SIGTERM);
	ev_signal_init(&a->sigint, signal_cb, SIGINT);
	ev_signal_init(&a->sighup, signal_cb, SIGHUP);
	a->sigterm.data = a->sigint.data = a->sighup.data = a;
	ev_signal_start(a->loop, &a->sigterm);
	ev_signal_start(a->loop, &a->sigint);
	ev_signal_start(a->loop, &a->sighup);
	if (wd) {
		ev_timer_init(&a->watchdog, watchdog_cb, 0., (double)wd / 2e6);
		ev_timer_again(a->loop, &a->watchdog);
	}
}

static void teardown(struct agent *a)
{
	if (a->loop) {
		ev_timer_stop(a->loop, &a->watchdog);
		ev_signal_stop(a->loop, &a->sigterm);
		ev_signal_stop(a->loop, &a->sigint);
		ev_signal_stop(a->loop, &a->sighup);
	}
	hr_api_free(a->api);
	hr_pub_dispose(&a->pub);
	hr_bset_dispose(&a->bset);
	hr_agg_free(a->agg);
	hr_http_free(a->http);
	hr_metrics_free(a->metrics);
	hr_agent_cfgs_dispose(&a->cfgs);
	hr_journal_dispose(&a->journal);
	free(a->path);
	if (a->loop)
		ev_loop_destroy(a->loop);
}

int hr_agent_run(const char *path, struct hr_config *cfg)
{
	struct agent a;
	char n[32];
	int code = HR_EXIT_SOFTWARE;

	memset(&a, 0, sizeof(a));
	hr_journal_init(&a.journal);
	a.cfgs.cur = cfg;
	a.path = strdup(path);
	/* The first line: what starts, before any part says it is up. */
	snprintf(n, sizeof(n), "%zu", cfg->n_checks);
	hr_log(HR_LOG_INFO, "start", "service", cfg->service.name, "id",
	       cfg->service.id, HR_LOG_NUM("checks"), n, "version", HR_VERSION,
	       NULL);
	signal(SIGPIPE, SIG_IGN);
	harden_process(cfg);
	ev_timer_init(&a.watchdog, watchdog_cb, 0., 0.);
	if (setup_core(&a, cfg))
		goto cleanup;
	hr_bset_init(&a.bset, a.loop, a.http);
	hr_pub_init(&a.pub, a.loop, a.agg, &a.bset);
	hr_journal_set_context(&a.journal, journal_context, &a);
	journal_size(&a);
	a.bset.journal = &a.journal;
	a.pub.journal = &a.journal;
	a.reload = (struct hr_reload){ a.path, a.agg, &a.pub, &a.bset, &a.cfgs };
	code = start_api(&a);
	if (code)
		goto cleanup;
	code = HR_EXIT_SOFTWARE;
	if (setup_outputs(&a) || (cfg->user && drop_user(cfg->user))) {
		code = HR_EXIT_CONFIG;
		goto cleanup;
	}
	if (cfg->user)
		harden_process(cfg);
	start_watchers(&a);
	if (!a.bset.n)
		/* Legitimate (a local health endpoint only), but say so. */
		hr_log(HR_LOG_WARN, "no_registry", "reason",
		       "no \"registry\" section: the checks and the local API run, nothing is registered anywhere",
		       NULL);
	hr_agg_start(a.agg);
	hr_pub_start(&a.pub, hr_pub_first_result_wait(cfg));
	ev_run(a.loop, 0);
	code = HR_EXIT_OK;
	hr_log(HR_LOG_INFO, "stopped", NULL);
cleanup:
	teardown(&a);
	return code;
}
