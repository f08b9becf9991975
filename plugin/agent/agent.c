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
#include "unit.h"

/*
 * The running agent, on the stack of hr_agent_run(), which owns every
 * member: the loop, the configs (cfgs), one unit per service (unit.h:
 * aggregator, backends, publisher), the units a reload removed until
 * their backends are done, the API, the metrics, the journal.
 */
struct agent {
	struct ev_loop *loop;
	char *path;                 /* config file, for reloads */
	char *state_path;           /* the state file, resolved at start */
	struct hr_agent_cfgs cfgs;
	struct hr_http *http;
	struct hr_metrics *metrics;
	struct hr_api *api;
	struct hr_unit **units;     /* live, in config order */
	size_t n_units, cap_units;
	struct hr_unit **gone;      /* removed by a reload, deregistering */
	size_t n_gone, cap_gone;
	size_t busy;                /* units whose backends are shutting down */
	bool stopping;
	bool told_ready;            /* systemd heard READY=1 */
	bool maint;                 /* agent-wide maintenance */
	char *maint_reason;         /* owned */
	struct hr_reload reload;
	struct hr_journal journal;  /* outlives every backend (regcore.h) */
	ev_timer watchdog;
	ev_timer reap;              /* frees gone units on a fresh iteration */
	ev_signal sigterm, sigint, sighup;
};

static void on_event(struct hr_agg *agg, const struct hr_agg_event *ev,
		     void *payload)
{
	struct hr_unit *u = payload;
	struct agent *a = u->owner;

	(void)agg;
	if (ev->type == HR_EVENT_CHECK_RESULT)
		hr_metrics_observe(a->metrics, u->id, ev->check,
				   ev->duration_ms);
	hr_pub_event(&u->pub, ev);
}

/* The live unit of service id, else a removed one still deregistering,
 * else NULL. Linear: only decisions and reloads ask. */
static struct hr_unit *unit_find(struct agent *a, const char *id, bool gone)
{
	size_t i;

	for (i = 0; i < a->n_units; i++)
		if (!strcmp(a->units[i]->id, id))
			return a->units[i];
	for (i = 0; gone && i < a->n_gone; i++)
		if (!strcmp(a->gone[i]->id, id))
			return a->gone[i];
	return NULL;
}

/* The journal's context: the cause of a decision, from the checks of the
 * service it names (regcore and publish.c set e->service). */
static void journal_context(void *payload, struct hr_journal_entry *e)
{
	struct agent *a = payload;
	struct hr_unit *u;

	if (!e->service[0] && a->n_units)
		hr_journal_excerpt(e->service, sizeof(e->service),
				   a->units[0]->id);
	u = unit_find(a, e->service, true);
	if (u)
		hr_pub_journal_fill(&u->pub, e);
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

/* ---- units --------------------------------------------------------------- */

static void unit_free(struct hr_unit *u)
{
	if (!u)
		return;
	hr_pub_dispose(&u->pub);
	hr_bset_dispose(&u->bset);
	hr_agg_free(u->agg);
	free(u->maint_reason);
	free(u->id);
	free(u);
}

static bool grow(struct hr_unit ***v, size_t n, size_t *cap)
{
	struct hr_unit **nv;
	size_t c;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 8;
	nv = realloc(*v, c * sizeof(*nv));
	if (!nv)
		return false;
	*v = nv;
	*cap = c;
	return true;
}

/* A unit is ready: systemd hears READY=1 once every unit is (a unit a
 * reload adds later changes nothing: the agent is running). */
static void unit_ready(void *payload)
{
	struct hr_unit *u = payload;
	struct agent *a = u->owner;
	size_t i;

	for (i = 0; i < a->n_units && !a->told_ready; i++)
		if (!a->units[i]->pub.ready && a->units[i] != u)
			return;
	if (a->told_ready)
		return;
	a->told_ready = true;
	hr_sd_notify("READY=1\nSTATUS=checks running");
}

/* The unit's publisher in the maintenance it is in: its own, else the
 * agent's. 0 or -ENOMEM. */
static int unit_maint_sync(struct agent *a, struct hr_unit *u)
{
	if (u->maint)
		return hr_pub_maint_copy(&u->pub, true, u->maint_reason);
	return hr_pub_maint_copy(&u->pub, a->maint, a->maint_reason);
}

/*
 * A unit for svc, a service of cfg (the running config at start, the new
 * one during a reload: its max_concurrent and shutdown_timeout apply):
 * its aggregator with the service's checks, its backends built and
 * installed (told nothing yet), maintenance as the agent's. NULL (logged)
 * when it cannot be made. Not started, not listed.
 */
static struct hr_unit *unit_make(struct agent *a, const struct hr_config *cfg,
				 const struct hr_service_conf *svc)
{
	struct hr_unit *u = calloc(1, sizeof(*u));
	struct hr_agg_opts opts;
	struct hr_bset_fresh fresh;
	struct hr_err err = { "" };

	if (!u || !(u->id = strdup(svc->service.id))) {
		free(u);
		hr_log(HR_LOG_ERROR, "startup_failed", "service",
		       svc->service.id, "error", "out of memory", NULL);
		return NULL;
	}
	u->owner = a;
	u->conf = svc;
	hr_bset_init(&u->bset, a->loop, a->http);
	u->bset.journal = &a->journal;
	memset(&opts, 0, sizeof(opts));
	opts.enable_exec_checks = cfg->enable_exec_checks;
	opts.max_concurrent = cfg->max_concurrent;
	if (hr_agg_new(&u->agg, a->loop, a->http, &opts, &err) ||
	    hr_agg_add_service(u->agg, svc, &err) ||
	    hr_agg_listen(u->agg, on_event, u) < 0) {
		hr_log(HR_LOG_ERROR, "startup_failed", "service", u->id,
		       "error", err.msg[0] ? err.msg : "out of memory", NULL);
		unit_free(u);
		return NULL;
	}
	hr_pub_init(&u->pub, a->loop, u->agg, &u->bset);
	u->pub.service = u->id;
	u->pub.on_ready = unit_ready;
	u->pub.ready_payload = u;
	u->pub.journal = &a->journal;
	if (unit_maint_sync(a, u)) {
		unit_free(u);
		return NULL;
	}
	if (hr_bset_build(&u->bset, svc, cfg->shutdown_timeout_ms, &fresh)) {
		unit_free(u);
		return NULL;
	}
	hr_bset_install(&u->bset, &fresh, false, 0);
	if (u->pub.maint)
		hr_bset_maintenance(&u->bset, true, u->pub.maint_reason);
	return u;
}

/* List u and start its checks; it publishes after its first results. */
static int unit_start(struct agent *a, struct hr_unit *u)
{
	if (!grow(&a->units, a->n_units, &a->cap_units))
		return -ENOMEM;
	a->units[a->n_units++] = u;
	hr_agg_start(u->agg);
	hr_pub_start(&u->pub, hr_pub_first_result_wait(u->conf));
	return 0;
}

static void reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	size_t i, k = 0;

	(void)loop;
	(void)revents;
	for (i = 0; i < a->n_gone; i++) {
		if (a->gone[i]->stopped)
			unit_free(a->gone[i]);
		else
			a->gone[k++] = a->gone[i];
	}
	a->n_gone = k;
}

/* A unit's backends are done (or timed out): from the backends' own
 * callback, so a gone unit is freed on a fresh iteration (reap). */
static void unit_stopped(void *payload)
{
	struct hr_unit *u = payload;
	struct agent *a = u->owner;

	u->stopped = true;
	if (a->busy)
		a->busy--;
	if (!u->conf) {
		ev_timer_stop(a->loop, &a->reap);
		ev_timer_set(&a->reap, 0., 0.);
		ev_timer_start(a->loop, &a->reap);
	}
	if (a->stopping && !a->busy)
		ev_break(a->loop, EVBREAK_ALL);
}

/* Stop u's checks and shut its backends down (deregistering). */
static void unit_shutdown(struct agent *a, struct hr_unit *u)
{
	if (u->stopping)
		return;
	u->stopping = true;
	u->pub.stopping = true;
	hr_agg_stop(u->agg);
	a->busy++;
	hr_bset_shutdown(&u->bset, a->cfgs.cur->shutdown_timeout_ms,
			 unit_stopped, u);
}

/* ---- the reload host ----------------------------------------------------- */

static struct hr_unit *rh_find(void *ctx, const char *id)
{
	return unit_find(ctx, id, false);
}

static struct hr_unit *rh_make(void *ctx, const struct hr_config *cfg,
			       const struct hr_service_conf *svc)
{
	return unit_make(ctx, cfg, svc);
}

static void rh_discard(void *ctx, struct hr_unit *u)
{
	(void)ctx;
	unit_free(u);
}

static void rh_start(void *ctx, struct hr_unit *u)
{
	struct agent *a = ctx;

	hr_log(HR_LOG_INFO, "service_added", "service", u->id, NULL);
	if (unit_start(a, u)) {
		hr_log(HR_LOG_ERROR, "service_add_failed", "service", u->id,
		       "error", "out of memory", NULL);
		unit_free(u);
	}
}

/* Out of the live list, into gone; freed once its backends are done. */
static void rh_remove(void *ctx, struct hr_unit *u)
{
	struct agent *a = ctx;
	size_t i;

	for (i = 0; i < a->n_units; i++)
		if (a->units[i] == u)
			break;
	if (i == a->n_units)
		return;
	memmove(&a->units[i], &a->units[i + 1],
		(a->n_units - i - 1) * sizeof(*a->units));
	a->n_units--;
	hr_log(HR_LOG_INFO, "service_removed", "service", u->id, "action",
	       "deregistering", NULL);
	if (!grow(&a->gone, a->n_gone, &a->cap_gone)) {
		unit_free(u); /* no room to wait: destroyed, not deregistered */
		return;
	}
	a->gone[a->n_gone++] = u;
	unit_shutdown(a, u);
}

/* A removed unit of service id is still deregistering. */
static bool rh_leaving(void *ctx, const char *id)
{
	struct agent *a = ctx;
	size_t i;

	for (i = 0; i < a->n_gone; i++)
		if (!a->gone[i]->stopped && !strcmp(a->gone[i]->id, id))
			return true;
	return false;
}

static bool rh_stopping(void *ctx)
{
	return ((struct agent *)ctx)->stopping;
}

/* ---- shutdown and signals ---------------------------------------------- */

/* Every service deregisters, each within the one shutdown_timeout from
 * now (their deadlines start together). */
static void start_shutdown(struct agent *a, const char *why)
{
	size_t i;

	a->stopping = true;
	hr_log(HR_LOG_INFO, "shutdown", "signal", why, NULL);
	hr_sd_notify("STOPPING=1");
	for (i = 0; i < a->n_units; i++)
		unit_shutdown(a, a->units[i]);
	if (!a->busy)
		ev_break(a->loop, EVBREAK_ALL);
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
	if (a->stopping) {
		hr_log(HR_LOG_WARN, "exit_now", "signal", name, NULL);
		_exit(HR_EXIT_OK);
	}
	start_shutdown(a, name);
}

/* ---- the API host -------------------------------------------------------- */

static size_t host_n_services(void *ctx)
{
	return ((struct agent *)ctx)->n_units;
}

static void host_service(void *ctx, size_t i, struct hr_api_service *out)
{
	struct hr_unit *u = ((struct agent *)ctx)->units[i];
	size_t k;

	out->id = u->id;
	out->name = u->conf ? u->conf->service.name : u->id;
	out->agg = u->agg;
	for (k = 0; k < u->bset.n && k < HR_API_REGISTRIES_MAX; k++) {
		out->regs[k].name = u->bset.v[k]->ops->name;
		out->regs[k].stats = &u->bset.v[k]->stats;
	}
	out->n_regs = k;
}

static char *host_metrics(void *ctx)
{
	struct agent *a = ctx;
	struct hr_metrics_service *sv = calloc(a->n_units ? a->n_units : 1,
					       sizeof(*sv));
	struct hr_metrics_backend *mb = calloc(
		(a->n_units ? a->n_units : 1) * HR_BSET_MAX, sizeof(*mb));
	char *text = NULL;
	size_t i, k;

	if (!sv || !mb)
		goto cleanup;
	for (i = 0; i < a->n_units; i++) {
		struct hr_unit *u = a->units[i];

		sv[i].id = u->id;
		sv[i].agg = u->agg;
		sv[i].backends = &mb[i * HR_BSET_MAX];
		for (k = 0; k < u->bset.n; k++) {
			mb[i * HR_BSET_MAX + k].name = u->bset.v[k]->ops->name;
			mb[i * HR_BSET_MAX + k].stats = &u->bset.v[k]->stats;
		}
		sv[i].n_backends = u->bset.n;
		sv[i].maintenance = u->pub.maint;
	}
	text = hr_metrics_render(a->metrics, sv, a->n_units, a->maint);
cleanup:
	free(sv);
	free(mb);
	return text;
}

/* The state file as the agent is: its maintenance and every service's
 * own. 0, -ENOMEM or the write's -errno (msg says why). */
static int save_state(struct agent *a, char *msg, size_t len)
{
	struct hr_state_service *own = calloc(a->n_units ? a->n_units : 1,
					      sizeof(*own));
	const char *path = a->state_path;
	size_t i, n = 0;
	int rc = -ENOMEM;

	if (own && path) {
		for (i = 0; i < a->n_units; i++) {
			if (!a->units[i]->maint)
				continue;
			own[n].id = a->units[i]->id;
			own[n++].reason = a->units[i]->maint_reason;
		}
		rc = hr_state_save_services(path, a->maint, a->maint_reason,
					    own, n);
		if (rc)
			snprintf(msg, len,
				 "maintenance unchanged: the state file %s cannot be written: %s",
				 path, strerror(-rc));
	}
	free(own);
	return rc;
}

/*
 * Maintenance of the agent (service NULL: every service) or of one
 * service of its own. The state file first: a change a restart would
 * undo is refused, with nothing changed (the caller sees why in msg and
 * can fix the file or agent.state_file, then ask again).
 */
static int host_maint_set(void *ctx, const char *service, bool enable,
			  const char *reason, char *msg, size_t len)
{
	struct agent *a = ctx;
	struct hr_unit *u = NULL;
	size_t n = reason ? strlen(reason) : 0, i;
	char *r, **why, *old_why, bytes[32];
	bool *on, old_on;
	int rc;

	if (service && !(u = unit_find(a, service, false)))
		return -ENOENT;
	if (n > HR_MAINT_REASON_MAX) {
		snprintf(bytes, sizeof(bytes), "%zu", n);
		hr_log(HR_LOG_WARN, "maintenance_rejected", "error",
		       "reason longer than 1024 bytes", HR_LOG_NUM("bytes"),
		       bytes, "service", service ? service : "", NULL);
		return -EMSGSIZE;
	}
	if (!(r = strdup(reason ? reason : "")))
		return -ENOMEM;
	on = u ? &u->maint : &a->maint;
	why = u ? &u->maint_reason : &a->maint_reason;
	old_on = *on;
	old_why = *why;
	*on = enable;
	*why = r;
	rc = save_state(a, msg, len);
	if (rc) {
		*on = old_on;
		*why = old_why;
		free(r);
		return rc;
	}
	free(old_why);
	if (u)
		hr_log(HR_LOG_WARN,
		       enable ? "maintenance_enabled" : "maintenance_disabled",
		       "reason", r, "service", u->id, NULL);
	else
		hr_log(HR_LOG_WARN,
		       enable ? "maintenance_enabled" : "maintenance_disabled",
		       "reason", r, NULL);
	for (i = 0; i < a->n_units; i++) {
		if (u && a->units[i] != u)
			continue;
		if (unit_maint_sync(a, a->units[i]))
			hr_log(HR_LOG_ERROR, "maintenance_failed", "service",
			       a->units[i]->id, "error", "out of memory", NULL);
		hr_pub_maint_apply(&a->units[i]->pub);
	}
	return 0;
}

static bool host_maint_get(void *ctx, const char *service,
			   const char **reason)
{
	struct agent *a = ctx;
	struct hr_unit *u = service ? unit_find(a, service, false) : NULL;

	if (reason)
		*reason = u ? u->pub.maint_reason : a->maint_reason;
	if (service)
		return u && u->pub.maint;
	return a->maint;
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
		.n_services = host_n_services,
		.service = host_service,
		.maint_get = host_maint_get,
		.maint_set = host_maint_set,
		.reload = host_reload,
		.metrics = host_metrics,
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

/* Loop, HTTP engine, metrics. */
static int setup_core(struct agent *a)
{
	struct hr_err err = { "" };

	/* A private loop: libev's default loop reaps every child itself. */
	a->loop = ev_loop_new(EVFLAG_AUTO);
	if (!a->loop || !a->path || hr_http_new(&a->http, a->loop, &err) ||
	    hr_metrics_new(&a->metrics)) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error",
		       err.msg[0] ? err.msg : "out of memory", NULL);
		return -ENOMEM;
	}
	ev_timer_init(&a->reap, reap_cb, 0., 0.);
	a->reap.data = a;
	return 0;
}

/* A service in maintenance of its own, from the state file (an id this
 * config does not run: ignored, and dropped at the next save). */
static void restore_own(const char *id, const char *reason, void *payload)
{
	struct hr_unit *u = id ? unit_find(payload, id, false) : NULL;
	char *r;

	if (!u || !(r = strdup(reason)))
		return;
	free(u->maint_reason);
	u->maint_reason = r;
	u->maint = true;
}

/* Maintenance from the state file, then a unit per service (aggregator
 * and backends; started later). The state file's path is resolved here,
 * once: by default it is named after the first service at start, and a
 * reload that reorders the services does not move it (vet_next() keeps
 * agent.state_file too). */
static int setup_units(struct agent *a)
{
	const struct hr_config *cfg = a->cfgs.cur;
	char *reason = NULL;
	size_t i;

	if (!(a->state_path = hr_state_path(cfg))) {
		hr_log(HR_LOG_ERROR, "startup_failed", "error", "out of memory",
		       NULL);
		return -ENOMEM;
	}
	if (hr_state_load(a->state_path, &reason) == 1) {
		a->maint = true;
		a->maint_reason = reason;
	}
	if (!(a->units = calloc(cfg->n_services, sizeof(*a->units))))
		return -ENOMEM;
	a->cap_units = cfg->n_services;
	for (i = 0; i < cfg->n_services; i++) {
		struct hr_unit *u = unit_make(a, cfg, &cfg->services[i]);

		if (!u)
			return -EINVAL;
		a->units[a->n_units++] = u;
	}
	hr_state_load_services(a->state_path, restore_own, a);
	for (i = 0; i < a->n_units; i++) {
		struct hr_unit *u = a->units[i];

		if (u->maint && !unit_maint_sync(a, u))
			hr_bset_maintenance(&u->bset, true, u->pub.maint_reason);
		if (u->pub.maint)
			hr_pub_decide(&u->pub, HR_DECISION_MAINT_ON,
				      "maintenance restored from the state file");
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
	while (a->n_units)
		unit_free(a->units[--a->n_units]);
	while (a->n_gone)
		unit_free(a->gone[--a->n_gone]);
	free(a->units);
	free(a->gone);
	free(a->maint_reason);
	free(a->state_path);
	if (a->loop)
		ev_timer_stop(a->loop, &a->reap);
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
	char n[32], m[32];
	size_t i, checks = 0, regs = 0;
	int code = HR_EXIT_SOFTWARE;

	memset(&a, 0, sizeof(a));
	hr_journal_init(&a.journal);
	a.cfgs.cur = cfg;
	a.path = strdup(path);
	/* The first line: what starts, before any part says it is up. */
	for (i = 0; i < cfg->n_services; i++)
		checks += cfg->services[i].n_checks;
	snprintf(n, sizeof(n), "%zu", checks);
	snprintf(m, sizeof(m), "%zu", cfg->n_services);
	hr_log(HR_LOG_INFO, "start", "service", cfg->services[0].service.name,
	       "id", cfg->services[0].service.id, HR_LOG_NUM("services"), m,
	       HR_LOG_NUM("checks"), n, "version", HR_VERSION, NULL);
	signal(SIGPIPE, SIG_IGN);
	harden_process(cfg);
	ev_timer_init(&a.watchdog, watchdog_cb, 0., 0.);
	if (setup_core(&a))
		goto cleanup;
	hr_journal_set_context(&a.journal, journal_context, &a);
	journal_size(&a);
	a.reload = (struct hr_reload){
		a.path, &a.cfgs,
		{ rh_find, rh_make, rh_discard, rh_start, rh_remove,
		  rh_leaving, rh_stopping, &a },
	};
	code = start_api(&a);
	if (code)
		goto cleanup;
	code = HR_EXIT_SOFTWARE;
	if (setup_units(&a) || (cfg->user && drop_user(cfg->user))) {
		code = HR_EXIT_CONFIG;
		goto cleanup;
	}
	if (cfg->user)
		harden_process(cfg);
	start_watchers(&a);
	for (i = 0; i < a.n_units; i++)
		regs += a.units[i]->bset.n;
	if (!regs)
		/* Legitimate (a local health endpoint only), but say so. */
		hr_log(HR_LOG_WARN, "no_registry", "reason",
		       "no \"registry\" section: the checks and the local API run, nothing is registered anywhere",
		       NULL);
	for (i = 0; i < a.n_units; i++) {
		hr_agg_start(a.units[i]->agg);
		hr_pub_start(&a.units[i]->pub,
			     hr_pub_first_result_wait(a.units[i]->conf));
	}
	ev_run(a.loop, 0);
	code = HR_EXIT_OK;
	hr_log(HR_LOG_INFO, "stopped", NULL);
cleanup:
	teardown(&a);
	return code;
}
