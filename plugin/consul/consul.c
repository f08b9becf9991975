/*
 * consul.c - the Consul registry backend: its "what to send next"
 * decision on top of the shared registry layer (healthreg/regcore.h),
 * with the pure functions of consul_payload.c for everything on the wire.
 *
 * One request at a time. Every event (apply, maintenance, a finished
 * request, a timer) calls kick(), which compares what the agent is known
 * to hold with what it should hold and sends the one next request:
 *
 *   shutting down ............ deregister (if anything may be registered)
 *   service wanted:
 *     not registered ......... register (initially critical while in
 *                              maintenance; other checks of the service,
 *                              such as an operator's maintenance, stay)
 *     maintenance differs .... maintenance (before any update, so an
 *                              instance in maintenance is never passing)
 *     status/output changed,
 *     or a third of the TTL
 *     since the last update .. check update
 *     else ................... arm the refresh timer
 *     listed in the floor's
 *     leaver list ............ read the list, remove the own ID (?cas=)
 *   service not wanted (status outside register_when for deregister_after):
 *     fleet floor on, registered, not in maintenance, not yet cleared:
 *       read the leaver list (KV, with its ModifyIndex), then the
 *       service's health entries; hr_consul_floor_decide():
 *         leave -> write the list with the own ID, ?cas=<index>; true:
 *                  cleared (below); false: read both again
 *         stay  -> kept: check update (warning, "kept by fleet floor:
 *                  ..."), decided again every third of the TTL and on
 *                  every status change; a read that fails also stays
 *     check not critical ..... check update (critical)
 *     may be registered ...... deregister
 *
 * Answers are classified by hr_consul_classify(): LOST clears "registered"
 * (so the next kick registers again), RETRY arms a capped jittered backoff,
 * FORBIDDEN, TOKEN_UNKNOWN and REJECTED log once and retry slowly; on a 403
 * the token file is read again, and a new token is tried at once. While the retry timer
 * runs nothing is sent; apply() only records the newest state. The layer
 * owns the request plumbing, the grace period (deregister_after), the
 * shutdown deadline and done().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consul.h"
#include "consul_payload.h"
#include "healthreg/log.h"
#include "healthreg/regcore.h"

#define RESP_MAX (1024 * 1024)  /* response bytes kept: the fleet read */
#define TOKEN_MAX 4096
#define SLOW_RETRY_MIN_MS 2000  /* after 403 / 4xx: about once a TTL */
#define SLOW_RETRY_MAX_MS 60000
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define SHUTDOWN_RETRY_MS 200

/* What the request in flight sent. */
struct sent {
	enum hr_consul_op op;
	enum hr_status status; /* update */
	char *output;          /* update */
	bool maint_enable;     /* maintenance */
	bool floor_add;        /* floor write: the own ID in (else out) */
	ev_tstamp at;
};

struct hr_registry {
	struct hr_regcore core;       /* owns the service copy */
	struct hr_consul_conf conf;
	const char *service_id;       /* in core.service */
	char *check_id;
	char *base;                   /* URL base requests go to */
	struct curl_slist *headers;   /* may hold the token: wiped at free */
	struct curl_slist *connect_to;
	int64_t period_ms, timeout_ms, backoff_cap_ms, slow_ms, shutdown_ms;

	/* wanted */
	bool have_status;
	enum hr_status status;
	char *output;
	bool maint_want;
	char *maint_reason;

	/* known about the agent */
	bool registered;              /* service and check are there */
	bool maybe_registered;        /* a register may have landed */
	bool maint_on;
	bool reported;
	enum hr_status rep_status;
	char *rep_output;
	ev_tstamp rep_at;

	struct sent sent;
	ev_timer refresh;
	unsigned failures, lost_streak;
	bool logged_down, logged_forbidden, logged_token, logged_rejected;
	bool tls_failed;              /* the last failure was TLS's */
	bool logged_tls;              /* consul_tls_failed this episode */

	/* the fleet floor: all per backend instance (one per service) */
	bool floor_on;
	int64_t stale_after_s;
	struct hr_consul_floor_doc doc;  /* the last list read */
	bool doc_fresh;                  /* read for the decision at hand */
	struct hr_consul_fleet fleet;    /* the last health read */
	bool fleet_fresh;
	bool cleared;      /* the list holds our ID: leave by the old path */
	bool listed;       /* our ID may be in the list: remove it once
			      registered and wanted (a new backend checks) */
	bool kept;         /* staying registered for the floor */
	ev_tstamp decided_at;            /* kept: when it was decided */
	char *kept_output;               /* the kept check's Output */
	bool logged_floor_fail;
	bool floor_failed;               /* a floor read failed: stay */
	ev_tstamp unlist_at;             /* not before (a failed attempt) */
	char floor_why[200];

	struct hr_link link;             /* live_backends, while created */
	bool linked;
};

/* Every backend of this process between create and destroy: a reload
 * builds the new backends before it destroys the old ones, and an old one
 * that leaves a registration behind hands it to its successor (see
 * hand_over()). */
static struct hr_link *live_backends;

#define OWNER(c) hr_container_of(c, struct hr_registry, core)

static int replace_str(char **dst, const char *src)
{
	char *c = strdup(src ? src : "");

	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static ev_tstamp now(const struct hr_registry *r)
{
	return ev_now(r->core.loop);
}

static void sent_clear(struct hr_registry *r)
{
	free(r->sent.output);
	memset(&r->sent, 0, sizeof(r->sent));
}

static void arm_refresh(struct hr_registry *r);

/* ---- sending ----------------------------------------------------------- */

/* url and body are the caller's (freed here). 0 or a negative errno. */
static int send_req(struct hr_registry *r, enum hr_consul_op op, char *url,
		    char *body)
{
	const struct hr_consul_conf *c = &r->conf;
	bool get = op == HR_CONSUL_OP_FLOOR_READ ||
		   op == HR_CONSUL_OP_FLEET_READ;
	struct hr_reg_req q = {
		.method = get ? "GET" : "PUT", .url = url, .body = body,
		.headers = r->headers, .connect_to = r->connect_to,
		.unix_socket = c->unix_path,
		.timeout_ms = (long)r->timeout_ms,
		.connect_timeout_ms = (long)(r->timeout_ms < 5000 ?
					     r->timeout_ms : 5000),
	};
	int rc = -ENOMEM;

	sent_clear(r);
	if (url && (body || get || op == HR_CONSUL_OP_DEREGISTER ||
		    op == HR_CONSUL_OP_MAINTENANCE))
		rc = hr_regcore_send(&r->core, &q);
	free(url);
	free(body);
	if (!rc) {
		r->sent.op = op;
		r->sent.at = now(r);
	}
	return rc;
}

static int send_register(struct hr_registry *r)
{
	char *body = NULL;

	/* In maintenance the new check starts critical: it must not show
	 * passing before the maintenance check lands. */
	if (hr_consul_register_body(&body, &r->core.service, &r->conf,
				    r->maint_want ? HR_STATUS_CRITICAL :
						    r->status) < 0)
		return -ENOMEM;
	r->maybe_registered = true;
	return send_req(r, HR_CONSUL_OP_REGISTER,
			hr_consul_url_register(r->base), body);
}

/* A check update with s and text (NULL: the aggregate's output). */
static int send_update_text(struct hr_registry *r, enum hr_status s,
			    const char *text)
{
	char *body = NULL;
	char *out = strdup(text ? text : r->output ? r->output : "");
	int rc;

	if (!out || hr_consul_update_body(&body, s, out,
					  (size_t)r->conf.output_max) < 0) {
		free(out);
		return -ENOMEM;
	}
	rc = send_req(r, HR_CONSUL_OP_UPDATE,
		      hr_consul_url_update(r->base, r->check_id), body);
	if (rc < 0) {
		free(out);
		return rc;
	}
	r->sent.status = s;
	r->sent.output = out;
	return 0;
}

static int send_update(struct hr_registry *r, enum hr_status s)
{
	return send_update_text(r, s, NULL);
}

static int send_deregister(struct hr_registry *r)
{
	return send_req(r, HR_CONSUL_OP_DEREGISTER,
			hr_consul_url_deregister(r->base, r->service_id),
			NULL);
}

static int send_maintenance(struct hr_registry *r)
{
	int rc = send_req(r, HR_CONSUL_OP_MAINTENANCE,
			  hr_consul_url_maintenance(r->base, r->service_id,
						    r->maint_want,
						    r->maint_reason),
			  NULL);

	if (!rc)
		r->sent.maint_enable = r->maint_want;
	return rc;
}

static int send_floor_read(struct hr_registry *r)
{
	return send_req(r, HR_CONSUL_OP_FLOOR_READ,
			hr_consul_url_floor(r->base, r->core.service.name,
					    false, 0), NULL);
}

static int send_fleet_read(struct hr_registry *r)
{
	return send_req(r, HR_CONSUL_OP_FLEET_READ,
			hr_consul_url_fleet(r->base, r->core.service.name),
			NULL);
}

/* Write the list read last with our ID in (add) or out, guarded by the
 * ModifyIndex it was read at: only one writer per index wins. */
static int send_floor_write(struct hr_registry *r, bool add)
{
	char *body = hr_consul_floor_doc_body(&r->doc,
					      add ? r->service_id : NULL,
					      add ? NULL : r->service_id,
					      (int64_t)time(NULL),
					      r->stale_after_s);
	int rc;

	r->doc_fresh = r->fleet_fresh = false; /* one decision per read */
	rc = send_req(r, HR_CONSUL_OP_FLOOR_WRITE,
		      hr_consul_url_floor(r->base, r->core.service.name, true,
					  r->doc.index), body);
	if (!rc)
		r->sent.floor_add = add;
	/* From the moment it is sent the list may hold our ID, even when
	 * the answer is lost: taken out again once wanted (next_unlist
	 * reads first). */
	if (!rc && add)
		r->listed = true;
	return rc;
}

/* ---- the fleet floor --------------------------------------------------- */

/* The floor lets go of the instance (left, recovered, gone). */
static void release_kept(struct hr_registry *r, const char *why)
{
	char n[24];

	if (!r->kept)
		return;
	r->kept = false;
	r->core.stats->floor_kept = false;
	snprintf(n, sizeof(n), "%d", r->conf.min_healthy);
	hr_log(HR_LOG_INFO, "fleet_floor_released", "registry", "consul",
	       "service", r->service_id, "reason", why,
	       HR_LOG_NUM("min_healthy"), n, NULL);
}

/* Stay for the floor: counted, logged and journaled once per stay; the
 * check shows warning with the note until the next decision. */
static int keep(struct hr_registry *r, const char *note,
		const struct hr_consul_floor *f)
{
	char fleet[24], healthy[24], min[24], *out;
	size_t n;

	/* The note, then what the checks say; allocated before anything
	 * is marked, so that out of memory leaves the instance as it was. */
	n = strlen(note) + strlen(r->output ? r->output : "") + 3;
	out = malloc(n);
	if (!out)
		return -ENOMEM;
	snprintf(out, n, "%s%s%s", note, r->output && *r->output ? "; " : "",
		 r->output ? r->output : "");
	if (!r->kept) {
		r->kept = true;
		r->core.stats->floor_kept = true;
		r->core.stats->floor_kept_total++;
		snprintf(fleet, sizeof(fleet), "%zu", f ? f->fleet : 0);
		snprintf(healthy, sizeof(healthy), "%zu", f ? f->healthy : 0);
		snprintf(min, sizeof(min), "%d", r->conf.min_healthy);
		hr_log(HR_LOG_WARN, "fleet_floor_kept", "registry", "consul",
		       "service", r->service_id, "status",
		       hr_status_name(r->status), HR_LOG_NUM("fleet"), fleet,
		       HR_LOG_NUM("healthy"), healthy,
		       HR_LOG_NUM("min_healthy"), min, "note", note, NULL);
		hr_regcore_decide(&r->core, HR_DECISION_KEPT, note);
	}
	r->decided_at = now(r);
	free(r->kept_output);
	r->kept_output = out;
	return send_update_text(r, HR_STATUS_WARNING, out);
}

/* A floor read failed while the instance is unwanted: stay (the safe
 * side), decided again after a third of the TTL. */
static int keep_unknown(struct hr_registry *r, const char *why)
{
	char note[200];

	snprintf(note, sizeof(note),
		 "kept by fleet floor: the fleet cannot be read (%.140s)", why);
	return keep(r, note, NULL);
}

/* Does the floor decide what happens to this unwanted instance? Not in
 * maintenance (it always goes), not once the list holds our ID, and only
 * while the service is there to keep. */
static bool floor_governs(const struct hr_registry *r)
{
	return r->floor_on && !r->maint_want && !r->cleared && r->registered;
}

static int next_floor(struct hr_registry *r)
{
	struct hr_consul_floor f;
	char note[200];

	if (r->kept && now(r) - r->decided_at <
			       (double)r->period_ms / 1000.0 - 0.001) {
		if (!r->reported || r->rep_status != HR_STATUS_WARNING ||
		    strcmp(r->rep_output ? r->rep_output : "",
			   r->kept_output ? r->kept_output : ""))
			return send_update_text(r, HR_STATUS_WARNING,
						r->kept_output);
		arm_refresh(r);
		return 0;
	}
	if (r->floor_failed) {
		r->floor_failed = false;
		r->doc_fresh = r->fleet_fresh = false;
		return keep_unknown(r, r->floor_why);
	}
	if (!r->doc_fresh)
		return send_floor_read(r);
	if (!r->fleet_fresh)
		return send_fleet_read(r);
	hr_consul_floor_decide(&r->fleet, &r->doc, r->service_id,
			       r->conf.min_healthy,
			       r->conf.max_unhealthy_fraction,
			       (int64_t)time(NULL), r->stale_after_s, &f);
	if (f.leave)
		return send_floor_write(r, true);
	r->doc_fresh = r->fleet_fresh = false;
	hr_consul_floor_note(&f, r->conf.min_healthy,
			     r->conf.max_unhealthy_fraction, note,
			     sizeof(note));
	return keep(r, note, &f);
}

/* Registered and wanted again: take the own ID out of the list. */
static int next_unlist(struct hr_registry *r)
{
	if (!r->doc_fresh)
		return send_floor_read(r);
	if (!hr_consul_floor_doc_has(&r->doc, r->service_id)) {
		r->doc_fresh = false;
		r->listed = false;
		return 1; /* nothing sent */
	}
	return send_floor_write(r, false);
}

/* ---- deciding ---------------------------------------------------------- */

static bool update_due(const struct hr_registry *r)
{
	if (!r->reported || r->rep_status != r->status ||
	    strcmp(r->rep_output ? r->rep_output : "",
		   r->output ? r->output : ""))
		return true;
	return now(r) - r->rep_at >= (double)r->period_ms / 1000.0 - 0.001;
}

static void arm_refresh(struct hr_registry *r)
{
	double after = r->rep_at + (double)r->period_ms / 1000.0 - now(r);

	ev_timer_stop(r->core.loop, &r->refresh);
	ev_timer_set(&r->refresh, after > 0 ? after : 0., 0.);
	ev_timer_start(r->core.loop, &r->refresh);
}

/* The next request while the service is wanted; 0 when none is due. */
static int next_wanted(struct hr_registry *r)
{
	if (!r->registered)
		return send_register(r);
	if (r->maint_want != r->maint_on)
		return send_maintenance(r);
	if (update_due(r))
		return send_update(r, r->status);
	if (r->listed && now(r) >= r->unlist_at) {
		int rc = next_unlist(r);

		if (rc <= 0)
			return rc;
	}
	arm_refresh(r);
	return 0;
}

/* The next request while the service is not wanted and the floor does not
 * hold it (off, maintenance, or our ID is in the leaver list). */
static int next_unwanted(struct hr_registry *r)
{
	release_kept(r, r->maint_want ? "maintenance" : "leaving");
	if (r->registered && (!r->reported ||
			      r->rep_status != HR_STATUS_CRITICAL))
		/* Let watchers see critical before the service goes away. */
		return send_update(r, HR_STATUS_CRITICAL);
	if (r->maybe_registered)
		return send_deregister(r);
	ev_timer_stop(r->core.loop, &r->refresh);
	return 0;
}

static void kick(struct hr_regcore *core)
{
	struct hr_registry *r = OWNER(core);
	int rc = 0;

	if (!hr_regcore_idle(&r->core))
		return;
	if (hr_regcore_shutting_down(&r->core)) {
		if (!r->maybe_registered)
			hr_regcore_finish(&r->core);
		else
			rc = send_deregister(r);
	} else if (hr_regcore_wanted(&r->core)) {
		release_kept(r, "recovered");
		r->cleared = false;
		r->fleet_fresh = false;
		rc = next_wanted(r);
	} else if (floor_governs(r)) {
		rc = next_floor(r);
	} else {
		rc = next_unwanted(r);
	}
	if (rc < 0) {
		hr_log(HR_LOG_ERROR, "consul_request_failed", "service",
		       r->service_id, "error", strerror(-rc), NULL);
		hr_regcore_retry_in(&r->core, BACKOFF_CAP_MS);
	}
}

/* ---- answers ----------------------------------------------------------- */

static void on_ok(struct hr_registry *r, struct sent *q)
{
	if (r->logged_down)
		hr_log(HR_LOG_DEBUG, "consul_reachable", "service",
		       r->service_id, "address", r->conf.address, NULL);
	r->failures = 0;
	r->logged_down = r->logged_forbidden = r->logged_rejected = false;
	r->logged_tls = false;
	r->logged_token = false;
	switch (q->op) {
	case HR_CONSUL_OP_REGISTER:
		r->registered = true;
		r->reported = false;
		/* The register keeps the service's other checks: a maintenance
		 * check there stays (maint_on keeps what is known; a lost or
		 * new service has none). */
		hr_log(HR_LOG_INFO, "consul_registered", "service",
		       r->service_id, "check", r->check_id, "address",
		       r->conf.address, NULL);
		/* A re-registration (token rotated, service lost) keeps a
		 * maintenance check the service still has. */
		hr_regcore_state(&r->core, r->maint_on
						   ? HR_REGISTRY_MAINTENANCE
						   : HR_REGISTRY_REGISTERED);
		break;
	case HR_CONSUL_OP_UPDATE:
		r->lost_streak = 0;
		r->reported = true;
		r->rep_status = q->status;
		r->rep_at = q->at;
		free(r->rep_output);
		r->rep_output = q->output;
		q->output = NULL;
		break;
	case HR_CONSUL_OP_DEREGISTER:
		r->registered = r->maybe_registered = false;
		r->reported = false;
		r->maint_on = false;
		release_kept(r, "deregistered");
		hr_log(HR_LOG_INFO, "consul_deregistered", "service",
		       r->service_id, NULL);
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
		break;
	case HR_CONSUL_OP_FLOOR_READ:
	case HR_CONSUL_OP_FLEET_READ:
		break; /* parsed by on_floor_ok() */
	case HR_CONSUL_OP_FLOOR_WRITE:
		break; /* on_floor_ok() */
	case HR_CONSUL_OP_MAINTENANCE:
		r->maint_on = q->maint_enable;
		hr_log(HR_LOG_INFO, "consul_maintenance", "service",
		       r->service_id, "enable",
		       q->maint_enable ? "true" : "false", NULL);
		hr_regcore_state(&r->core, q->maint_enable
						   ? HR_REGISTRY_MAINTENANCE
						   : HR_REGISTRY_REGISTERED);
		break;
	}
}

static void slow_retry(struct hr_registry *r)
{
	hr_regcore_backoff(&r->core, 1, r->slow_ms, r->slow_ms);
}

static int read_token(struct hr_consul_conf *c, struct hr_err *err);
static int setup_headers(struct hr_registry *r, struct hr_err *err);

/*
 * After a 403: read the token file again (an operator rotates a revoked
 * token by rewriting it). true when it now holds another token, which is
 * put in the headers; the old one is kept when the file cannot be read.
 */
static bool token_reread(struct hr_registry *r)
{
	struct hr_consul_conf *c = &r->conf;
	struct curl_slist *old = r->headers;
	char *prev = c->token;
	struct hr_err err = { 0 };
	bool same;

	if (!c->token_file)
		return false;
	c->token = NULL;
	if (read_token(c, &err) < 0) {
		c->token = prev;
		hr_log(HR_LOG_ERROR, "consul_token_unreadable", "service",
		       r->service_id, "file", c->token_file, "error",
		       err.msg[0] ? err.msg : "unreadable", NULL);
		return false;
	}
	same = prev && c->token && !strcmp(prev, c->token);
	if (same) {
		hr_secret_free(prev);
		return false;
	}
	r->headers = NULL;
	if (setup_headers(r, &err) < 0) {
		/* keep the old token with the old headers */
		hr_reg_headers_free(r->headers);
		r->headers = old;
		hr_secret_free(c->token);
		c->token = prev;
		hr_log(HR_LOG_ERROR, "consul_token_unusable", "service",
		       r->service_id, "file", c->token_file, "error", err.msg,
		       NULL);
		return false;
	}
	hr_secret_free(prev);
	hr_reg_headers_free(old);
	/* The agent keeps the registering token with the service and uses
	 * it to sync the catalog: register again so it holds the new one
	 * (status, output and the maintenance check stay). A refusal of
	 * the new token is logged again. */
	r->registered = false;
	r->logged_token = r->logged_forbidden = false;
	hr_log(HR_LOG_INFO, "consul_token_reloaded", "service", r->service_id,
	       "file", c->token_file, NULL);
	return true;
}

/* LOST, FORBIDDEN, REJECTED: true when handled. */
static bool on_refusal(struct hr_registry *r, enum hr_consul_verdict v,
		       const char *op, const char *code, const char *detail)
{
	switch (v) {
	case HR_CONSUL_LOST:
		r->registered = false;
		r->reported = false;
		r->maint_on = false;
		release_kept(r, "registration lost");
		hr_log(HR_LOG_WARN, "consul_registration_lost", "service",
		       r->service_id, "op", op, HR_LOG_NUM("code"), code,
		       "error", detail, NULL);
		if (hr_regcore_wanted(&r->core) &&
		    !hr_regcore_shutting_down(&r->core)) {
			char why[240];

			snprintf(why, sizeof(why),
				 "Consul no longer has the service (%s: "
				 "%.120s); registering again", op, detail);
			hr_regcore_decide(&r->core, HR_DECISION_LOST, why);
		}
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
		/* A registration that never sticks must not spin. */
		if (++r->lost_streak > 1)
			hr_regcore_backoff(&r->core, r->lost_streak - 1,
					   BACKOFF_BASE_MS, r->backoff_cap_ms);
		return true;
	case HR_CONSUL_TOKEN_UNKNOWN:
		if (!r->logged_token)
			hr_log(HR_LOG_ERROR, "consul_token_not_found", "service",
			       r->service_id, "op", op, HR_LOG_NUM("code"), code,
			       "needs", "a token the agent knows (it was "
			       "deleted, expired or mistyped)", "token_file",
			       r->conf.token_file ? r->conf.token_file :
						    "(none)", "error", detail,
			       NULL);
		r->logged_token = true;
		if (token_reread(r))
			hr_regcore_retry_in(&r->core, BACKOFF_BASE_MS);
		else
			slow_retry(r);
		return true;
	case HR_CONSUL_FORBIDDEN:
		if (!r->logged_forbidden)
			hr_log(HR_LOG_ERROR, "consul_forbidden", "service",
			       r->service_id, "op", op,
			       HR_LOG_NUM("code"), code, "needs", "service:write on the service",
			       "name", r->core.service.name, "error", detail,
			       NULL);
		r->logged_forbidden = true;
		if (token_reread(r))
			hr_regcore_retry_in(&r->core, BACKOFF_BASE_MS);
		else
			slow_retry(r);
		return true;
	case HR_CONSUL_REJECTED:
		if (!r->logged_rejected)
			hr_log(HR_LOG_ERROR, "consul_rejected", "service",
			       r->service_id, "op", op,
			       HR_LOG_NUM("code"), code, "error", detail,
			       NULL);
		r->logged_rejected = true;
		slow_retry(r);
		return true;
	case HR_CONSUL_RETRY:
	case HR_CONSUL_OK:
		break;
	}
	return false;
}

static bool is_floor_op(enum hr_consul_op op)
{
	return op == HR_CONSUL_OP_FLOOR_READ || op == HR_CONSUL_OP_FLEET_READ ||
	       op == HR_CONSUL_OP_FLOOR_WRITE;
}

/* A floor request failed. While the instance would leave it stays (the
 * safe side) and decides again after a third of the TTL; while it is
 * wanted, taking its ID out of the list waits as long. No backoff: the TTL
 * updates go on. Logged once per episode, naming what the token needs. */
static void floor_failed(struct hr_registry *r, const struct sent *q,
			 const char *code, const char *detail)
{
	char key[300];

	snprintf(key, sizeof(key), "key:write on " HR_CONSUL_FLOOR_KEY "%s; "
		 "service:read on it and node:read (the health read)",
		 r->core.service.name);
	if (!r->logged_floor_fail)
		hr_log(HR_LOG_WARN, "consul_floor_unavailable", "service",
		       r->service_id, "op", hr_consul_op_name(q->op),
		       HR_LOG_NUM("code"), code, "error", detail, "needs", key,
		       "decision", hr_regcore_wanted(&r->core) ?
		       "unlist later" : "stay registered", NULL);
	r->logged_floor_fail = true;
	r->doc_fresh = r->fleet_fresh = false;
	if (hr_regcore_wanted(&r->core)) {
		r->unlist_at = now(r) + (double)r->period_ms / 1000.0;
		return;
	}
	r->floor_failed = true;
	if (strcmp(code, "0"))
		snprintf(r->floor_why, sizeof(r->floor_why), "HTTP %s: %.150s",
			 code, detail);
	else
		snprintf(r->floor_why, sizeof(r->floor_why), "%.180s", detail);
}

/* The answer of a floor request that Consul accepted. false: it did not
 * parse (handled as a failure). */
static bool on_floor_ok(struct hr_registry *r, const struct sent *q,
			const struct hr_reg_reply *a)
{
	int rc = 0;

	if (a->truncated)
		return false;
	switch (q->op) {
	case HR_CONSUL_OP_FLOOR_READ:
		hr_consul_floor_doc_dispose(&r->doc);
		rc = hr_consul_floor_doc_parse(&r->doc, a->status, a->body,
					       a->len);
		r->doc_fresh = rc == 0;
		r->fleet_fresh = false;
		break;
	case HR_CONSUL_OP_FLEET_READ:
		hr_consul_fleet_dispose(&r->fleet);
		rc = hr_consul_fleet_parse(&r->fleet, a->body, a->len);
		r->fleet_fresh = rc == 0;
		break;
	case HR_CONSUL_OP_FLOOR_WRITE:
		if (a->len >= 4 && !strncmp(a->body, "true", 4)) {
			if (q->floor_add) {
				r->cleared = r->listed = true;
				hr_log(HR_LOG_INFO, "consul_floor_leaving",
				       "service", r->service_id, "key",
				       HR_CONSUL_FLOOR_KEY, "name",
				       r->core.service.name, NULL);
				release_kept(r, "enough others healthy");
			} else {
				r->listed = false;
			}
		} else if (a->len >= 5 && !strncmp(a->body, "false", 5)) {
			/* Someone wrote the list since our read: again. */
			hr_log(HR_LOG_DEBUG, "consul_floor_conflict",
			       "service", r->service_id, NULL);
		} else {
			rc = -EPROTO;
		}
		break;
	default:
		break;
	}
	r->logged_floor_fail = r->logged_floor_fail && rc < 0;
	return rc == 0;
}

static void on_failure(struct hr_registry *r, const struct sent *q,
		       enum hr_consul_verdict v, long code,
		       const char *detail)
{
	const char *op = hr_consul_op_name(q->op);
	char code_s[16];

	snprintf(code_s, sizeof(code_s), "%ld", code);
	if (hr_regcore_shutting_down(&r->core) && v != HR_CONSUL_RETRY) {
		hr_log(HR_LOG_ERROR, "consul_deregister_failed", "service",
		       r->service_id, HR_LOG_NUM("code"), code_s, "error",
		       detail, NULL);
		r->maybe_registered = false; /* give up */
		return;
	}
	if (is_floor_op(q->op)) {
		floor_failed(r, q, code_s, detail);
		return;
	}
	if (on_refusal(r, v, op, code_s, detail))
		return;
	r->failures++;
	if (q->op == HR_CONSUL_OP_REGISTER)
		r->registered = false;
	if (r->tls_failed && !r->logged_tls) {
		/* Not an outage: a certificate or setting to fix. Logged once
		 * per episode, also after a first failure that did not look
		 * like TLS (a TLS 1.3 server refuses a client certificate
		 * after the client's half of the handshake: the first write
		 * may fail before the alert is read). */
		hr_log(HR_LOG_ERROR, "consul_tls_failed", "registry", "consul",
		       "service", r->service_id, "op", op, "address",
		       r->conf.address, "error", detail, NULL);
		r->logged_tls = true;
	} else if (!r->logged_down)
		/* the state change itself is regcore's registry_unreachable */
		hr_log(HR_LOG_DEBUG, "consul_unavailable", "service",
		       r->service_id, "op", op, HR_LOG_NUM("code"), code_s,
		       "error", detail, "address", r->conf.address, NULL);
	else
		hr_log(HR_LOG_DEBUG, "consul_retry", "service", r->service_id,
		       "op", op, HR_LOG_NUM("code"), code_s, "error", detail,
		       NULL);
	r->logged_down = true;
	if (hr_regcore_shutting_down(&r->core))
		hr_regcore_retry_in(&r->core, SHUTDOWN_RETRY_MS);
	else
		hr_regcore_backoff(&r->core, r->failures, BACKOFF_BASE_MS,
				   r->backoff_cap_ms);
}

static bool on_reply(struct hr_regcore *core, const struct hr_reg_reply *a)
{
	struct hr_registry *r = OWNER(core);
	enum hr_consul_verdict v;
	char detail[256];

	r->tls_failed = a->rc != CURLE_OK &&
			hr_reg_tls_failed(a->rc, a->errbuf);
	if (a->rc != CURLE_OK) {
		v = HR_CONSUL_RETRY;
		hr_reg_curl_reason(a->rc, a->errbuf, detail, sizeof(detail));
	} else {
		v = hr_consul_classify(r->sent.op, a->status, a->body, a->len);
		hr_consul_excerpt(detail, sizeof(detail), a->body, a->len);
	}
	if (v == HR_CONSUL_OK && is_floor_op(r->sent.op) &&
	    !on_floor_ok(r, &r->sent, a)) {
		char head[160];

		v = HR_CONSUL_RETRY;
		hr_consul_excerpt(head, sizeof(head), a->body, a->len);
		snprintf(detail, sizeof(detail), "unexpected answer%s: %s",
			 a->truncated ? " (too long)" : "", head);
		hr_regcore_why(core, detail);
		on_failure(r, &r->sent, v, 0, detail);
	} else if (v == HR_CONSUL_OK) {
		on_ok(r, &r->sent);
	} else {
		char why[300];

		if (a->rc == CURLE_OK)
			snprintf(why, sizeof(why), "HTTP %ld: %s", a->status,
				 detail);
		hr_regcore_why(core, a->rc == CURLE_OK ? why : detail);
		on_failure(r, &r->sent, v, a->status, detail);
	}
	sent_clear(r);
	return v == HR_CONSUL_OK;
}

static void on_deadline(struct hr_regcore *core)
{
	struct hr_registry *r = OWNER(core);

	hr_log(HR_LOG_WARN, "consul_deregister_timeout", "service",
	       r->service_id, NULL);
}

static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	kick(&hr_container_of(w, struct hr_registry, refresh)->core);
}

static const struct hr_regcore_ops core_ops = {
	.reply = on_reply,
	.kick = kick,
	.deadline = on_deadline,
};

/* ---- the ops ----------------------------------------------------------- */

static const char *process_getenv(const char *name, void *payload)
{
	(void)payload;
	return getenv(name);
}

static void env_from_process(struct hr_consul_env *env)
{
	hr_consul_env_read(env, process_getenv, NULL);
}

static const char *token_field(const struct hr_consul_conf *c)
{
	return c->token_file_from_env ? "CONSUL_HTTP_TOKEN_FILE" :
					"registry.consul.token_file";
}

static void consul_validate(const cJSON *conf, const char *path,
			    struct hr_diag *diag)
{
	struct hr_consul_conf c;
	struct hr_consul_env env;

	env_from_process(&env);
	if (!hr_consul_conf_parse(&c, conf, path, &env, diag))
		hr_consul_conf_dispose(&c);
}

static void consul_validate_service(const struct hr_service_spec *svc,
				    const char *path, struct hr_diag *diag)
{
	hr_consul_service_check(svc, path, diag);
}

/* Parse conf into out; the first error becomes err (validate() reported
 * them all, warnings too). */
static int parse_conf(struct hr_consul_conf *out, const cJSON *conf,
		      struct hr_err *err)
{
	struct hr_consul_env penv;
	struct hr_diag diag;
	size_t i;
	int rc;

	env_from_process(&penv);
	hr_diag_init(&diag);
	rc = hr_consul_conf_parse(out, conf, "registry.consul", &penv, &diag);
	if (rc < 0) {
		for (i = 0; i < diag.n; i++)
			if (diag.v[i].level == HR_DIAG_ERROR && diag.v[i].text)
				break;
		hr_err_set(err, rc, "%s",
			   i < diag.n ? diag.v[i].text : "invalid config");
	}
	hr_diag_dispose(&diag);
	return rc;
}

/* Read the token file (first line, trimmed) into conf->token. */
static int read_token(struct hr_consul_conf *c, struct hr_err *err)
{
	char *tok = NULL;
	int rc;

	/* hr_secret_read() refuses a file group or others may read. */
	rc = hr_secret_read(c->token_file, token_field(c), TOKEN_MAX, &tok,
			    NULL, err);
	if (rc < 0)
		return rc;
	hr_secret_free(c->token);
	c->token = tok;
	return 0;
}

/* A token that cannot be a header line (CONSUL_HTTP_TOKEN with a
 * newline) is refused here, not at the first request. */
static int token_usable(const char *token, struct hr_err *err)
{
	struct curl_slist *l = NULL;
	int rc;

	if (!token)
		return 0;
	rc = hr_reg_header_add(&l, "X-Consul-Token", token);
	hr_reg_headers_free(l);
	if (rc == -EINVAL)
		return hr_err_set(err, rc, "consul token is malformed");
	return rc ? hr_err_set(err, rc, "out of memory") : 0;
}

/* The token c names, read into c->token and usable as a header.
 * create() and preflight both; the TLS files are checked by
 * hr_reg_tls_check_files() (preflight, which run passes too) and
 * hr_regcore_tls() (create, with https). */
static int read_files(struct hr_consul_conf *c, struct hr_err *err)
{
	int rc = 0;

	if (c->token_file)
		rc = read_token(c, err);
	if (!rc)
		rc = token_usable(c->token, err);
	return rc;
}

static void consul_preflight(const cJSON *conf, const char *path,
			     const struct hr_service_spec *service,
			     struct hr_diag *diag)
{
	struct hr_consul_conf c;
	struct hr_err err = { "" };

	if (!service || !service->name) {
		hr_diag_add(diag, HR_DIAG_ERROR, NULL, "consul: no service name");
		return;
	}
	hr_consul_conf_init(&c);
	if (parse_conf(&c, conf, &err) < 0) {
		hr_diag_add(diag, HR_DIAG_ERROR, NULL, "%s", err.msg);
		hr_consul_conf_dispose(&c);
		return;
	}
	if (read_files(&c, &err) < 0)
		hr_diag_add(diag, HR_DIAG_ERROR, NULL, "%s", err.msg);
	hr_consul_floor_check(&c, service, path, diag);
	/* With https, the TLS files must be usable (without it they are
	 * ignored, with validate's warning). */
	if (c.tls)
		hr_reg_tls_check_files(&c.common, path, &c.tls_names, diag);
	hr_consul_conf_dispose(&c);
}

/* Base URL and CONNECT_TO: the URL host is tls_server_name when set, and
 * CONNECT_TO sends the connection to the configured host. Over a Unix
 * socket the URL names tls_server_name or localhost. */
static int setup_base(struct hr_registry *r, struct hr_err *err)
{
	const struct hr_consul_conf *c = &r->conf;
	char host[256], line[600];
	bool tls;
	int port;

	if (c->unix_path) {
		snprintf(line, sizeof(line), "%s://%s", c->tls ? "https" :
			 "http", c->tls_server_name ? c->tls_server_name :
			 "localhost");
		r->base = strdup(line);
		return r->base ? 0 : hr_err_set(err, -ENOMEM, "out of memory");
	}
	if (hr_consul_addr_split(c->address, &tls, host, sizeof(host),
				 &port) < 0)
		return hr_err_set(err, -EINVAL, "consul address %s is invalid",
				  c->address);
	if (tls && c->tls_server_name) {
		bool v6 = strchr(host, ':') != NULL;

		snprintf(line, sizeof(line), "https://%s:%d",
			 c->tls_server_name, port);
		r->base = strdup(line);
		snprintf(line, sizeof(line), "%s:%d:%s%s%s:%d",
			 c->tls_server_name, port, v6 ? "[" : "", host,
			 v6 ? "]" : "", port);
		r->connect_to = curl_slist_append(NULL, line);
		if (!r->connect_to)
			return hr_err_set(err, -ENOMEM, "out of memory");
	} else {
		r->base = strdup(c->address);
	}
	return r->base ? 0 : hr_err_set(err, -ENOMEM, "out of memory");
}

static int setup_headers(struct hr_registry *r, struct hr_err *err)
{
	struct curl_slist *l;
	int rc;

	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (l)
		r->headers = l;
	l = l ? curl_slist_append(r->headers, "Expect:") : NULL;
	if (!l)
		return hr_err_set(err, -ENOMEM, "out of memory");
	if (!r->conf.token)
		return 0;
	rc = hr_reg_header_add(&r->headers, "X-Consul-Token", r->conf.token);
	if (rc == -EINVAL)
		return hr_err_set(err, rc, "consul token is malformed");
	return rc ? hr_err_set(err, rc, "out of memory") : 0;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void setup_timing(struct hr_registry *r, int64_t shutdown_timeout_ms)
{
	r->period_ms = hr_consul_update_period_ms(&r->conf);
	r->timeout_ms = clamp(r->period_ms, 1000, 10000);
	r->backoff_cap_ms = clamp(r->period_ms, 1000, BACKOFF_CAP_MS);
	r->slow_ms = clamp(r->conf.check_ttl_ms, SLOW_RETRY_MIN_MS,
			   SLOW_RETRY_MAX_MS);
	r->shutdown_ms = shutdown_timeout_ms > 0 ? shutdown_timeout_ms : 5000;
	hr_regcore_grace_setup(&r->core, r->conf.common.register_when,
			       r->conf.common.deregister_after_ms);
}

/* The fleet floor, when configured: checked against the service (the
 * first problem becomes err; validate reported them all). */
static int setup_floor(struct hr_registry *r, struct hr_err *err)
{
	struct hr_diag diag;
	int rc;

	r->floor_on = hr_consul_floor_on(&r->conf);
	if (!r->floor_on)
		return 0;
	hr_diag_init(&diag);
	rc = hr_consul_floor_check(&r->conf, &r->core.service,
				   "registry.consul", &diag);
	if (rc < 0)
		hr_err_set(err, rc, "%s",
			   diag.n && diag.v[0].text ? diag.v[0].text :
						      "registry.consul: invalid");
	hr_diag_dispose(&diag);
	r->stale_after_s = hr_consul_floor_stale_after_s(&r->conf);
	/* A previous run may have left our ID in the list. */
	r->listed = true;
	return rc;
}

static void consul_destroy(struct hr_registry *r);

static int consul_create(struct hr_registry **out, const cJSON *conf,
			 const struct hr_registry_env *env,
			 struct hr_err *err)
{
	struct hr_registry *r;
	int rc;

	*out = NULL;
	if (!env->service || !env->service->name)
		return hr_err_set(err, -EINVAL, "consul: no service name");
	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	ev_init(&r->refresh, refresh_cb);
	rc = hr_regcore_init(&r->core, &core_ops, env, RESP_MAX);
	if (rc < 0) {
		hr_err_set(err, rc, "out of memory");
		goto fail;
	}
	r->service_id = r->core.service.id ? r->core.service.id :
					     r->core.service.name;
	/* With https, the shared layer checks and takes the TLS settings
	 * (and logs a disabled verification loudly). */
	if ((rc = parse_conf(&r->conf, conf, err)) < 0 ||
	    (rc = read_files(&r->conf, err)) < 0 ||
	    (r->conf.tls &&
	     (rc = hr_regcore_tls(&r->core, &r->conf.common, "consul",
				  r->conf.address, &r->conf.tls_names,
				  err)) < 0) ||
	    (rc = setup_base(r, err)) < 0 || (rc = setup_headers(r, err)) < 0)
		goto fail;
	r->check_id = hr_consul_check_id(r->service_id);
	if (!r->check_id) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	setup_timing(r, env->shutdown_timeout_ms);
	if ((rc = setup_floor(r, err)) < 0)
		goto fail;
	hr_link_push(&live_backends, &r->link);
	r->linked = true;
	*out = r;
	return 0;
fail:
	consul_destroy(r);
	return rc;
}

static void consul_apply(struct hr_registry *r, enum hr_status status,
			 const char *output)
{
	enum hr_status s = status == HR_STATUS_UNKNOWN ? HR_STATUS_CRITICAL :
							 status;

	bool changed;

	if (hr_regcore_shutting_down(&r->core))
		return;
	changed = status != r->status ||
		  strcmp(output ? output : "", r->output ? r->output : "");
	if (replace_str(&r->output, output) < 0) {
		hr_log(HR_LOG_ERROR, "consul_apply_failed", "service",
		       r->service_id, "error", strerror(ENOMEM), NULL);
		return;
	}
	/* Kept: a change is decided again at once. */
	if (r->kept && changed)
		r->decided_at = 0;
	r->status = status;
	r->have_status = true;
	/* Nothing registered: nothing to keep through a grace period. */
	hr_regcore_status(&r->core, s, !r->maybe_registered);
	kick(&r->core);
}

static void consul_maintenance(struct hr_registry *r, bool enable,
			       const char *reason)
{
	if (hr_regcore_shutting_down(&r->core))
		return;
	if (replace_str(&r->maint_reason, reason) < 0)
		return;
	r->maint_want = enable;
	kick(&r->core);
}

static void consul_shutdown(struct hr_registry *r, hr_registry_done_cb done,
			    void *payload)
{
	int64_t ms = r->shutdown_ms - 100;

	if (hr_regcore_shutdown(&r->core, done, payload,
				ms > 100 ? ms : 100) < 0)
		return;
	ev_timer_stop(r->core.loop, &r->refresh);
	release_kept(r, "shutdown");
	/* Stop the updater first so no update races the deregistration. */
	if (hr_regcore_busy(&r->core) &&
	    r->sent.op != HR_CONSUL_OP_DEREGISTER) {
		hr_regcore_cancel(&r->core);
		sent_clear(r);
	}
	r->failures = 0;
	kick(&r->core);
}

/*
 * r is destroyed without a shutdown (a reload replaced it) while the
 * agent holds its registration: with the fleet floor, the successor (the
 * same loop, agent address and service ID, not registered itself) takes
 * the registration over, so that a kept instance is decided again through
 * the floor instead of being left to its TTL and Consul's reaper. The
 * successor decides afresh (the floor's reads), from a fresh iteration.
 */
static void hand_over(struct hr_registry *r)
{
	struct hr_link *l;

	if (!r->floor_on || !r->registered ||
	    hr_regcore_shutting_down(&r->core))
		return;
	for (l = live_backends; l; l = l->next) {
		struct hr_registry *n = hr_container_of(l, struct hr_registry,
							link);

		if (n == r || n->core.loop != r->core.loop || !n->floor_on ||
		    n->maybe_registered || hr_regcore_shutting_down(&n->core) ||
		    strcmp(n->base, r->base) ||
		    strcmp(n->conf.unix_path ? n->conf.unix_path : "",
			   r->conf.unix_path ? r->conf.unix_path : "") ||
		    strcmp(n->service_id, r->service_id))
			continue;
		n->registered = n->maybe_registered = true;
		n->reported = false;
		n->listed = n->listed || r->listed;
		n->cleared = r->cleared;
		hr_log(HR_LOG_DEBUG, "consul_registration_handed_over",
		       "service", r->service_id, NULL);
		if (!hr_regcore_busy(&n->core))
			hr_regcore_retry_in(&n->core, 0);
		return;
	}
}

static void consul_destroy(struct hr_registry *r)
{
	if (!r)
		return;
	if (r->linked) {
		hr_link_unlink(&live_backends, &r->link);
		r->linked = false;
		hand_over(r);
	}
	ev_timer_stop(r->core.loop, &r->refresh);
	hr_regcore_dispose(&r->core);
	hr_reg_headers_free(r->headers);
	curl_slist_free_all(r->connect_to);
	hr_consul_conf_dispose(&r->conf);
	sent_clear(r);
	free(r->check_id);
	free(r->base);
	free(r->output);
	free(r->rep_output);
	free(r->maint_reason);
	free(r->kept_output);
	hr_consul_floor_doc_dispose(&r->doc);
	hr_consul_fleet_dispose(&r->fleet);
	free(r);
}

const struct hr_registry_ops hr_registry_consul = {
	.abi = HR_REGISTRY_ABI,
	.name = "consul",
	.validate = consul_validate,
	.preflight = consul_preflight,
	.create = consul_create,
	.apply = consul_apply,
	.maintenance = consul_maintenance,
	.shutdown = consul_shutdown,
	.destroy = consul_destroy,
	.validate_service = consul_validate_service,
};
