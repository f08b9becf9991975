/*
 * etcd.c - the etcd registry backend: its "what to send next" decision on
 * top of the shared registry layer (healthreg/regcore.h), with the pure
 * functions of etcd_payload.c for everything on the wire, and the lease
 * it shares with every other etcd backend instance of the agent that
 * reaches etcd the same way (etcd_lease.h: authentication, the grant, the
 * keepalive, loss detection and the re-grant are the lease's).
 *
 * One request at a time (its own key only), driven by reconcile(), which
 * compares what we want (the key present with the current value, or
 * absent) with what we know etcd holds, and issues the next step:
 *
 *   reconcile()
 *     shutting down      -> the lease's verdict: every backend leaving ->
 *                           one revoke by the lease (REVOKED) -> done();
 *                           others stay -> txn: delete if LEASE == ours
 *                           (or hand the key to a new backend of the same
 *                           instance) -> done()
 *     lease not ready    -> wait for READY (granted, or a new token)
 *     key wanted, value differs from what we wrote -> put under the lease
 *                        (the default "grpc" value is the same for every
 *                        registrable status: passing <-> warning writes
 *                        nothing)
 *     key unwanted, we wrote it
 *       no floor, maintenance -> txn: delete if LEASE == ours
 *       floor (min_healthy)   -> range read of <prefix><name>/, then
 *                                hr_etcd_floor_decide():
 *         leave  -> txn: delete if LEASE == ours and the own key and
 *                   min_healthy others are unchanged (failed: read again)
 *         stay   -> kept: registered (document: status critical and a
 *                   note), read again after every keepalive (RENEWED)
 *     otherwise idle: no write while nothing changes
 *
 *   on_reply() -> hr_etcd_reply_parse() ->
 *     OK            forget failures, record the new state
 *     LEASE_LOST    tell the lease (hr_etcd_lease_lost_seen): LOST to
 *                   every backend on it, a new grant, READY, put again
 *     AUTH_EXPIRED  drop the token; the lease authenticates again, READY
 *     UNAVAILABLE   next endpoint at once; after a full round of failures
 *                   exponential backoff with jitter (<= 5 s and
 *                   <= TTL/3, so a lease etcd kept is kept)
 *     AUTH_DENIED / FAILED  backoff
 *   -> (the layer) reconcile()
 *
 *   on_lease(): READY -> reconcile; LOST -> forget the key; after the
 *   new grant the lease puts it back with the others' in txns
 *   (reput_value(), PUT_DONE; PUT_FAILED: our own put, spread over
 *   hr_etcd_lease_spread_ms); RENEWED -> a kept instance reads again;
 *   ADOPT -> the key a gone backend of this instance wrote is ours.
 *
 * The key is wanted while the aggregate is in register_when, and for
 * deregister_after once it left (the layer's grace period). During the
 * grace period the last registrable value stays as it is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>

#include "etcd.h"
#include "etcd_lease.h"
#include "etcd_payload.h"
#include "healthreg/duration.h"
#include "healthreg/log.h"
#include "healthreg/regcore.h"
#include "healthreg/status.h"

#define RESP_MAX (256 * 1024)
#define PASSWORD_MAX 4096
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000

struct hr_registry {
	struct hr_regcore core;  /* owns the service copy */
	struct hr_etcd_conf conf;
	char *user;
	char *password;        /* until attached (the lease keeps a copy) */
	char *token;           /* the lease's token, copied */
	unsigned token_gen;    /* ... of this generation */
	struct curl_slist *plain_hdrs; /* Content-Type */
	struct curl_slist *auth_hdrs;  /* and the token: wiped at free */
	struct hr_etcd_lease_member lm; /* the shared lease */
	char *key;
	char addr[320];

	int64_t shutdown_timeout_ms; /* 0: no deadline */
	size_t ep;             /* endpoint in use */
	unsigned failures;     /* consecutive unavailable replies */
	unsigned retries;      /* consecutive other failures (backoff) */
	unsigned auth_again;   /* 401s without progress */
	bool tls_failed;       /* the last transport failure was TLS's */

	char *written;         /* value stored under the lease, or NULL */
	int64_t written_rev;   /* ... its mod_revision (0: not known) */
	bool have_status;
	enum hr_status status;
	enum hr_status value_status; /* last registrable status */
	enum hr_status told;   /* the aggregate as the agent told it */
	bool maint;            /* maintenance: critical, the floor bypassed */
	char maint_reason[200];

	/* the fleet floor */
	char *dir;             /* "<prefix><name>/" */
	struct hr_etcd_view view; /* the last range read */
	bool view_fresh;       /* read since the last change: decide on it */
	bool kept;             /* staying registered for the floor */
	char reason[160];      /* why the next write happens, for logs */

	/* the request in flight */
	enum hr_etcd_op op;
	int64_t op_lease;      /* the lease the request named */
	unsigned op_token_gen; /* the token it carried */
	char *op_value;        /* put: the value being written */
	bool op_overtaken;     /* put: the lease wrote the key meanwhile
				  (ADOPT): its answer leaves written */
	enum hr_status op_status; /* put: the status in that value */
};

#define OWNER(c) hr_container_of(c, struct hr_registry, core)
#define LEASE(r) ((r)->lm.lease)

static void reconcile(struct hr_regcore *core);

static const char *lease_hex(int64_t id, char *buf, size_t len)
{
	/* etcdctl prints lease IDs in hex. */
	snprintf(buf, len, "%" PRIx64, (uint64_t)id);
	return buf;
}

static const char *endpoint(const struct hr_registry *r)
{
	return r->conf.endpoints[r->ep];
}

/*
 * The retry cap: 5 s, but never more than the keepalive period (TTL/3).
 * etcd coming back with its data (restart, quorum regained) extends every
 * lease by its TTL; a retry later than that would let a lease that could
 * have been kept expire and delete the key.
 */
static int64_t backoff_cap_ms(const struct hr_registry *r)
{
	int64_t third = r->conf.lease_ttl_ms / 3;

	return third < BACKOFF_CAP_MS ? third : BACKOFF_CAP_MS;
}

static void backoff(struct hr_registry *r)
{
	hr_regcore_backoff(&r->core, ++r->retries, BACKOFF_BASE_MS,
			   backoff_cap_ms(r));
}

/* Take tok (NULL: none) and rebuild the header list that carries it. */
static void set_token(struct hr_registry *r, char *tok)
{
	hr_secret_free(r->token);
	r->token = tok;
	hr_reg_headers_free(r->auth_hdrs);
	r->auth_hdrs = NULL;
	if (!tok)
		return;
	/* The raw token: "Bearer <token>" is rejected with 401. A list that
	 * cannot be built leaves auth_hdrs NULL: start_op() backs off. */
	if (hr_reg_header_add(&r->auth_hdrs, "Content-Type",
			      "application/json") < 0 ||
	    hr_reg_header_add(&r->auth_hdrs, "Authorization", tok) < 0) {
		hr_reg_headers_free(r->auth_hdrs);
		r->auth_hdrs = NULL;
	}
}

/* ---- requests -------------------------------------------------------- */

static const char *op_path(enum hr_etcd_op op)
{
	switch (op) {
	case HR_ETCD_OP_AUTH:
		return "/v3/auth/authenticate";
	case HR_ETCD_OP_GRANT:
		return "/v3/lease/grant";
	case HR_ETCD_OP_KEEPALIVE:
		return "/v3/lease/keepalive";
	case HR_ETCD_OP_PUT:
		return "/v3/kv/put";
	case HR_ETCD_OP_DELETE:
	case HR_ETCD_OP_FLOOR_DELETE:
	case HR_ETCD_OP_PUTS:
		return "/v3/kv/txn";
	case HR_ETCD_OP_RANGE:
		return "/v3/kv/range";
	case HR_ETCD_OP_REVOKE:
		return "/v3/lease/revoke";
	}
	return "/";
}

static void release_request(struct hr_registry *r)
{
	hr_regcore_cancel(&r->core);
	free(r->op_value);
	r->op_value = NULL;
	r->op_overtaken = false;
}

/* Start op with body (taken; wiped: the auth body holds the password).
 * value (taken) is the put's value. */
static void start_op(struct hr_registry *r, enum hr_etcd_op op, char *body,
		     char *value)
{
	char url[1024];
	struct hr_reg_req q;
	unsigned gen;
	const char *tok = hr_etcd_lease_token(LEASE(r), &gen);
	int rc = -ENOMEM;

	/* The lease's token, in headers of our own (a request borrows its
	 * list until it is answered). Without the copy the request would go
	 * without it, and its 401 would drop the lease's valid token: the
	 * generation stays (copied again next time), and we back off. */
	if (gen != r->token_gen) {
		set_token(r, tok ? strdup(tok) : NULL);
		if (tok && !r->auth_hdrs) {
			set_token(r, NULL);
			if (body)
				hr_wipe(body, strlen(body));
			free(body);
			free(value);
			hr_log(HR_LOG_ERROR, "etcd_request_failed", "op",
			       hr_etcd_op_name(op), "error", "out of memory",
			       NULL);
			backoff(r);
			return;
		}
		r->token_gen = gen;
	}
	q = (struct hr_reg_req){
		.method = "POST", .url = url, .body = body,
		.secret_body = true,
		.headers = op != HR_ETCD_OP_AUTH && r->auth_hdrs ?
			   r->auth_hdrs : r->plain_hdrs,
		.timeout_ms = (long)r->conf.request_timeout_ms,
		.http11 = true,
	};
	snprintf(url, sizeof(url), "%s%s", endpoint(r), op_path(op));
	r->op = op;
	r->op_lease = hr_etcd_lease_id(LEASE(r));
	r->op_token_gen = r->token_gen;
	free(r->op_value);
	r->op_value = value;
	if (body && (op != HR_ETCD_OP_PUT || value) && q.headers)
		rc = hr_regcore_send(&r->core, &q);
	if (body)
		hr_wipe(body, strlen(body));
	free(body);
	if (rc < 0) {
		hr_log(HR_LOG_ERROR, "etcd_request_failed", "op",
		       hr_etcd_op_name(op), "error", rc == -ENOMEM ?
		       "out of memory" : strerror(-rc), NULL);
		release_request(r);
		backoff(r);
	}
}

/* The floor lets go of the instance (gone, left, recovered). */
static void release_kept(struct hr_registry *r, const char *why)
{
	char n[24];

	if (!r->kept)
		return;
	r->kept = false;
	r->core.stats->floor_kept = false;
	snprintf(n, sizeof(n), "%d", r->conf.min_healthy);
	hr_log(HR_LOG_INFO, "fleet_floor_released", "registry", "etcd",
	       "service", r->core.service.name, "key", r->key, "reason", why,
	       HR_LOG_NUM("min_healthy"), n, NULL);
}

/* The key is not (or no longer) under the lease. */
static void forget_key(struct hr_registry *r)
{
	free(r->written);
	r->written = NULL;
	r->written_rev = 0;
}

/* ---- replies --------------------------------------------------------- */

/* Our put wrote op_value at rev (0: not known). When the lease wrote the
 * key meanwhile (adopt()), what etcd holds is the later of the two. */
static void put_answered(struct hr_registry *r, int64_t rev)
{
	if (r->op_overtaken && r->written &&
	    !(rev && r->written_rev && rev > r->written_rev)) {
		/* Theirs is the later, or which is not known: when the
		 * values differ, ours is written again (reconcile). */
		if (!strcmp(r->written, r->op_value) &&
		    (!rev || !r->written_rev))
			r->written_rev = 0;
		return;
	}
	free(r->written);
	r->written = r->op_value;
	r->written_rev = rev;
	r->op_value = NULL;
}

static void handle_ok(struct hr_registry *r, enum hr_etcd_op op,
		      struct hr_etcd_reply *rep)
{
	char hex[24];

	if (r->failures || r->retries)
		hr_log(HR_LOG_DEBUG, "etcd_reachable", "endpoint", endpoint(r),
		       NULL);
	r->failures = 0;
	r->retries = 0;
	if (op != HR_ETCD_OP_AUTH)
		r->auth_again = 0;
	switch (op) {
	case HR_ETCD_OP_AUTH:
	case HR_ETCD_OP_GRANT:
	case HR_ETCD_OP_KEEPALIVE:
	case HR_ETCD_OP_REVOKE:
	case HR_ETCD_OP_PUTS:
		break; /* the lease's (etcd_lease.c) */
	case HR_ETCD_OP_PUT:
		if (r->op_lease != hr_etcd_lease_id(LEASE(r)))
			/* under a lease lost meanwhile: gone with it */
			break;
		hr_log(HR_LOG_INFO, "etcd_registered", "key", r->key, "status",
		       hr_status_name(r->op_status), "lease",
		       lease_hex(r->op_lease, hex, sizeof(hex)), "reason",
		       r->reason, "endpoint", endpoint(r), NULL);
		put_answered(r, rep->revision);
		hr_regcore_state(&r->core, HR_REGISTRY_REGISTERED);
		break;
	case HR_ETCD_OP_DELETE:
		hr_log(HR_LOG_INFO, "etcd_deregistered", "key", r->key,
		       "reason", r->reason, "held",
		       rep->succeeded ? "true" : "false (gone or not ours)",
		       "endpoint", endpoint(r), NULL);
		forget_key(r);
		release_kept(r, "deregistered");
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
		break;
	case HR_ETCD_OP_RANGE:
		hr_etcd_view_dispose(&r->view);
		r->view = rep->view;
		memset(&rep->view, 0, sizeof(rep->view));
		r->view_fresh = true;
		break;
	case HR_ETCD_OP_FLOOR_DELETE:
		if (!rep->succeeded) {
			/* Another key changed since the read: read again. */
			hr_log(HR_LOG_DEBUG, "etcd_floor_conflict", "key",
			       r->key, NULL);
			r->view_fresh = false;
			break;
		}
		hr_log(HR_LOG_INFO, "etcd_deregistered", "key", r->key,
		       "reason", r->reason, "held", "true", "floor",
		       "others stay", "endpoint", endpoint(r), NULL);
		forget_key(r);
		release_kept(r, "enough others registered");
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
		break;
	}
}

/* The lease is gone (the lease object saw it, or one of its members). */
static void member_lost(struct hr_registry *r, const char *why)
{
	/* etcd deleted the key with the lease: for the journal, when it
	 * was there and is still wanted. */
	if (r->written && hr_regcore_wanted(&r->core) &&
	    !hr_regcore_shutting_down(&r->core)) {
		char text[240];

		snprintf(text, sizeof(text),
			 "etcd dropped the key with its lease (%.160s); "
			 "registering again", why ? why : "");
		hr_regcore_decide(&r->core, HR_DECISION_LOST, text);
	}
	if (r->written || r->core.stats->state == HR_REGISTRY_REGISTERED)
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
	forget_key(r);
	release_kept(r, "lease lost");
	r->retries = 0;
	r->failures = 0;
	snprintf(r->reason, sizeof(r->reason), "lease lost: %.140s",
		 why ? why : "");
	/* Shutting down: the key is gone, nothing left to delete. */
	if (hr_regcore_shutting_down(&r->core))
		hr_regcore_finish(&r->core);
}

static void auth_expired(struct hr_registry *r, enum hr_etcd_op op,
			 const struct hr_etcd_reply *rep)
{
	set_token(r, NULL);
	r->token_gen--; /* not the lease's: take its next one */
	if (!r->user) {
		hr_log(HR_LOG_ERROR, "etcd_auth_required", "op",
		       hr_etcd_op_name(op), "reason", rep->message,
		       "endpoint", endpoint(r), NULL);
		backoff(r);
		return;
	}
	hr_log(HR_LOG_INFO, "etcd_token_invalid", "op", hr_etcd_op_name(op),
	       "reason", rep->message, "endpoint", endpoint(r), NULL);
	/* The lease authenticates again and tells READY. */
	hr_etcd_lease_token_refused(LEASE(r), r->op_token_gen);
	if (r->auth_again++ > 0)
		backoff(r);
}

static void handle_failure(struct hr_registry *r, enum hr_etcd_op op,
			   const struct hr_etcd_reply *rep)
{
	const char *name = hr_etcd_op_name(op);
	unsigned n = (unsigned)r->conf.n_endpoints;
	char http[16];

	snprintf(http, sizeof(http), "%ld", rep->http_status);
	switch (rep->result) {
	case HR_ETCD_OK:
		break;
	case HR_ETCD_LEASE_LOST:
		/* The lease is the one to tell (LOST comes back to us);
		 * under an older lease, the key went with it. */
		if (r->op_lease == hr_etcd_lease_id(LEASE(r)))
			hr_etcd_lease_lost_seen(LEASE(r), r->op_lease,
						rep->message);
		else
			member_lost(r, rep->message);
		break;
	case HR_ETCD_AUTH_EXPIRED:
		auth_expired(r, op, rep);
		break;
	case HR_ETCD_AUTH_DENIED:
		if (op == HR_ETCD_OP_AUTH)
			set_token(r, NULL);
		hr_log(HR_LOG_DEBUG, "etcd_denied", "op", name, "user",
		       r->user, "reason", rep->message, HR_LOG_NUM("http"),
		       http, "endpoint", endpoint(r), NULL);
		backoff(r);
		break;
	case HR_ETCD_UNAVAILABLE:
		if (r->tls_failed)
			/* Not an outage: a certificate or setting to fix. */
			hr_log(HR_LOG_ERROR, "etcd_tls_failed", "registry",
			       "etcd", "op", name, "endpoint", endpoint(r),
			       "reason", rep->message, NULL);
		else
			/* the state change itself is regcore's
			 * registry_unreachable */
			hr_log(HR_LOG_DEBUG, "etcd_unavailable", "op", name,
			       "reason", rep->message, HR_LOG_NUM("http"),
			       http, "endpoint", endpoint(r), NULL);
		r->failures++;
		r->ep = (r->ep + 1) % n;
		/* A full round of endpoints failed: wait before the next. */
		if (r->failures % n == 0)
			hr_regcore_backoff(&r->core, r->failures / n,
					   BACKOFF_BASE_MS, backoff_cap_ms(r));
		break;
	case HR_ETCD_FAILED:
		hr_log(HR_LOG_DEBUG, "etcd_request_failed", "op", name,
		       "reason", rep->message, HR_LOG_NUM("http"), http,
		       "endpoint", endpoint(r), NULL);
		backoff(r);
		break;
	}
}

static bool on_reply(struct hr_regcore *core, const struct hr_reg_reply *a)
{
	struct hr_registry *r = OWNER(core);
	struct hr_etcd_reply rep;
	enum hr_etcd_op op = r->op;

	hr_etcd_reply_parse(op, a->status, a->body, a->len, &rep);
	r->tls_failed = a->rc != CURLE_OK &&
			hr_reg_tls_failed(a->rc, a->errbuf);
	if (a->rc != CURLE_OK)
		hr_reg_curl_reason(a->rc, a->errbuf, rep.message,
				   sizeof(rep.message));
	if (rep.result != HR_ETCD_OK)
		hr_regcore_why(core, rep.message);
	if (rep.result == HR_ETCD_OK) {
		handle_ok(r, op, &rep);
		/* Shutting down alone: the own key is deleted. */
		if (hr_regcore_shutting_down(core) && op == HR_ETCD_OP_DELETE)
			hr_regcore_finish(core);
	} else {
		handle_failure(r, op, &rep);
	}
	free(r->op_value);
	r->op_value = NULL;
	r->op_overtaken = false;
	hr_etcd_reply_dispose(&rep);
	return rep.result == HR_ETCD_OK;
}

/* ---- the state machine ----------------------------------------------- */

/*
 * Shutting down: the lease decides (etcd_lease.h). When every backend on
 * it leaves, it revokes the lease once (REVOKED finishes us); when others
 * stay, we delete our own key (delete-if-lease), then finish.
 */
static void reconcile_shutdown(struct hr_registry *r)
{
	if (r->lm.mode != HR_ETCD_MEMBER_ALONE)
		return; /* the verdict, or the revoke, is the lease's */
	if (r->written && hr_etcd_lease_hand_over(&r->lm, r->written,
						  r->written_rev, false)) {
		/* A reload's new backend for this instance has the key
		 * now, under the same lease: it is not ours to delete. */
		hr_log(HR_LOG_INFO, "etcd_key_handed_over", "key", r->key,
		       NULL);
		forget_key(r);
	}
	if (!r->written)
		hr_regcore_finish(&r->core);
	else if (hr_etcd_lease_ready(LEASE(r)))
		start_op(r, HR_ETCD_OP_DELETE,
			 hr_etcd_body_delete_if_lease(r->key,
				hr_etcd_lease_id(LEASE(r))), NULL);
	/* else: wait for READY (or LOST: the key is gone) */
}

/* Put value (taken; NULL: out of memory) written with status st, unless
 * it is what we wrote; why, when not NULL, becomes the reason logged. */
static void put_if_changed(struct hr_registry *r, char *value,
			   enum hr_status st, const char *why)
{
	if (!value) {
		backoff(r);
		return;
	}
	if (r->written && strcmp(r->written, value) == 0) {
		free(value);
		return;
	}
	r->op_status = st;
	if (why)
		snprintf(r->reason, sizeof(r->reason), "%s", why);
	start_op(r, HR_ETCD_OP_PUT,
		 hr_etcd_body_put(r->key, value, hr_etcd_lease_id(LEASE(r))),
		 value);
}

/* Put the current value if it differs from what we wrote. */
static void reconcile_key(struct hr_registry *r)
{
	put_if_changed(r, hr_etcd_value(&r->core.service, r->addr,
					r->value_status, r->conf.value_format),
		       r->value_status, NULL);
}

/* Stay for the floor: counted once per stay; the document value says so. */
static void keep(struct hr_registry *r, const struct hr_etcd_floor *f)
{
	char note[128], reg[24], healthy[24], min[24];

	hr_etcd_floor_note(f, r->conf.min_healthy, note, sizeof(note));
	if (!r->kept) {
		r->kept = true;
		r->core.stats->floor_kept = true;
		r->core.stats->floor_kept_total++;
		snprintf(reg, sizeof(reg), "%zu", f->registered);
		snprintf(healthy, sizeof(healthy), "%zu", f->healthy);
		snprintf(min, sizeof(min), "%d", r->conf.min_healthy);
		hr_log(HR_LOG_WARN, "fleet_floor_kept", "registry", "etcd",
		       "service", r->core.service.name, "key", r->key,
		       "status", hr_status_name(r->status),
		       HR_LOG_NUM("registered"), reg, HR_LOG_NUM("healthy"),
		       healthy, HR_LOG_NUM("min_healthy"), min, "note", note,
		       NULL);
		/* the journal: why this critical instance is still there */
		hr_regcore_decide(&r->core, HR_DECISION_KEPT, note);
	}
	if (r->conf.value_format != HR_ETCD_VALUE_DOCUMENT)
		return; /* the grpc value has no status: the key stays */
	put_if_changed(r, hr_etcd_value_note(&r->core.service, r->addr,
					     HR_STATUS_CRITICAL,
					     r->conf.value_format, note),
		       HR_STATUS_CRITICAL, note);
}

/*
 * The key is no longer wanted. Without a floor (and in maintenance) it
 * goes at once; with one, only after a read of the service's keys shows
 * that enough others stay, and then by a txn that fails if any key the
 * decision rests on changed meanwhile.
 */
static void reconcile_leave(struct hr_registry *r)
{
	struct hr_etcd_floor f;

	if (r->conf.min_healthy <= 0 || r->maint) {
		start_op(r, HR_ETCD_OP_DELETE,
			 hr_etcd_body_delete_if_lease(r->key,
				hr_etcd_lease_id(LEASE(r))), NULL);
		return;
	}
	if (!r->view_fresh) {
		start_op(r, HR_ETCD_OP_RANGE,
			 hr_etcd_body_range_prefix(r->dir,
				r->conf.value_format == HR_ETCD_VALUE_GRPC),
			 NULL);
		return;
	}
	hr_etcd_floor_decide(&r->view, r->key, hr_etcd_lease_id(LEASE(r)),
			     r->conf.min_healthy, &f);
	if (!f.present || !f.ours) {
		hr_log(HR_LOG_INFO, "etcd_deregistered", "key", r->key,
		       "reason", r->reason, "held", "false (gone or not ours)",
		       "endpoint", endpoint(r), NULL);
		forget_key(r);
		release_kept(r, "key gone");
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
		return;
	}
	if (!f.leave) {
		keep(r, &f);
		return;
	}
	/* One decision per read: a failed txn reads again. */
	r->view_fresh = false;
	start_op(r, HR_ETCD_OP_FLOOR_DELETE,
		 hr_etcd_body_floor_delete(&r->view, r->key,
					   hr_etcd_lease_id(LEASE(r)),
					   r->conf.min_healthy), NULL);
}

static void reconcile(struct hr_regcore *core)
{
	struct hr_registry *r = OWNER(core);

	if (!hr_regcore_idle(core) || r->lm.batched)
		return; /* busy, or the lease puts our key (PUT_DONE) */
	if (hr_regcore_shutting_down(core))
		reconcile_shutdown(r);
	else if (!hr_etcd_lease_ready(LEASE(r)))
		return; /* the lease tells READY */
	else if (!r->have_status)
		return;
	else if (hr_regcore_wanted(core)) {
		release_kept(r, "recovered");
		reconcile_key(r);
	}
	else if (r->written)
		reconcile_leave(r);
}

/* After a loss: the value our key should hold again (the lease puts it
 * with the others' in one txn), or NULL. */
static char *reput_value(struct hr_etcd_lease_member *m)
{
	struct hr_registry *r = hr_container_of(m, struct hr_registry, lm);

	if (!r->have_status || !hr_regcore_wanted(&r->core) || r->written ||
	    hr_regcore_shutting_down(&r->core) || !hr_regcore_idle(&r->core))
		return NULL;
	return hr_etcd_value(&r->core.service, r->addr, r->value_status,
			     r->conf.value_format);
}

/*
 * The key holds why, written by a gone backend of this instance (or by the
 * lease for it), in an order unknown against a put of ours: what etcd
 * holds is why, or ours if ours landed last. When they differ, take why
 * (ours is written again: one write too many at worst, never a value left
 * that we do not know of), also over the answer of a put in flight.
 */
static void adopt(struct hr_registry *r, const char *why, int64_t rev)
{
	bool putting = r->op == HR_ETCD_OP_PUT && hr_regcore_busy(&r->core);
	char *v;

	if (!why)
		return;
	if (!putting && r->written) {
		/* Ours is known to be the later write: it stays. */
		if (rev && r->written_rev && rev < r->written_rev)
			return;
		if (!strcmp(r->written, why)) {
			r->written_rev = rev && r->written_rev ? rev : 0;
			return;
		}
	}
	if (!(v = strdup(why)))
		return;
	free(r->written);
	r->written = v;
	r->written_rev = rev;
	r->op_overtaken = putting;
	hr_regcore_state(&r->core, HR_REGISTRY_REGISTERED);
	/* Not from here (ADOPT must not send): the next iteration
	 * compares. */
	if (hr_regcore_idle(&r->core))
		hr_regcore_retry_in(&r->core, 0);
}

/* What the shared lease tells every backend on it (etcd_lease.h). */
static void on_lease(struct hr_etcd_lease_member *m,
		     enum hr_etcd_lease_event ev, const char *why)
{
	struct hr_registry *r = hr_container_of(m, struct hr_registry, lm);
	int64_t spread;
	char *v;

	switch (ev) {
	case HR_ETCD_LEASE_EV_LOST:
		member_lost(r, why);
		break;
	case HR_ETCD_LEASE_EV_RENEWED:
		/* Kept: read the service's keys again after the keepalive. */
		if (r->kept)
			r->view_fresh = false;
		break;
	case HR_ETCD_LEASE_EV_READY:
		break;
	case HR_ETCD_LEASE_EV_PUT_DONE:
		/* Our key is back, in the lease's txn after a loss. */
		/* It holds why now, whatever an adoption said meanwhile. */
		if (why && r->written && (v = strdup(why))) {
			free(r->written);
			r->written = v;
			r->written_rev = m->rev;
		} else if (!r->written && why && (r->written = strdup(why))) {
			char h[24];

			r->written_rev = m->rev;
			hr_log(HR_LOG_INFO, "etcd_registered", "key", r->key,
			       "status", hr_status_name(r->value_status),
			       "lease", lease_hex(hr_etcd_lease_id(LEASE(r)), h,
						  sizeof(h)),
			       "reason", r->reason, "batched", "true", NULL);
			hr_regcore_state(&r->core, HR_REGISTRY_REGISTERED);
		}
		break;
	case HR_ETCD_LEASE_EV_PUT_FAILED:
		/* Our own put then, the backends on the lease spread over a
		 * window, not all at once. */
		spread = hr_etcd_lease_spread_ms(LEASE(r));
		if (spread > 0 && hr_regcore_idle(&r->core)) {
			hr_regcore_retry_in(&r->core,
				(int64_t)(hr_rng_unit(&r->core.rng) *
					  (double)spread));
			return;
		}
		break;
	case HR_ETCD_LEASE_EV_LEAVE_OWN:
		break;
	case HR_ETCD_LEASE_EV_ADOPT:
		/* The key a gone backend of this instance wrote: ours to
		 * rewrite (when the value differs) or to delete. */
		adopt(r, why, m->rev);
		return;
	case HR_ETCD_LEASE_EV_REVOKED:
		if (r->written)
			hr_log(HR_LOG_INFO, "etcd_deregistered", "key", r->key,
			       "reason", "shutdown: lease revoked", NULL);
		forget_key(r);
		hr_regcore_state(&r->core, HR_REGISTRY_DEREGISTERED);
		hr_regcore_finish(&r->core);
		return;
	}
	reconcile(&r->core);
}

static void grace_over(struct hr_regcore *core)
{
	struct hr_registry *r = OWNER(core);
	char d[32];

	r->view_fresh = false;
	hr_duration_format(r->conf.common.deregister_after_ms, d, sizeof(d));
	snprintf(r->reason, sizeof(r->reason), "%s for %s",
		 hr_status_name(r->status), d);
}

static void giveup(struct hr_regcore *core)
{
	struct hr_registry *r = OWNER(core);
	char ttl[24];

	snprintf(ttl, sizeof(ttl), "%" PRId64 "s",
		 hr_etcd_lease_ttl_s(LEASE(r)));
	hr_log(HR_LOG_WARN, "etcd_revoke_abandoned", "key", r->key,
	       "expires_within", ttl, NULL);
	release_request(r);
}

static const struct hr_regcore_ops core_ops = {
	.reply = on_reply,
	.kick = reconcile,
	.grace_over = grace_over,
	.deadline = giveup,
};

/* ---- validate / create ----------------------------------------------- */

static void etcd_validate(const cJSON *conf, const char *path,
			  struct hr_diag *diag)
{
	struct hr_etcd_conf c;

	if (hr_etcd_conf_parse(&c, conf, path, diag) == 0)
		hr_etcd_conf_dispose(&c);
}

/* Any https:// endpoint: the TLS settings matter. */
static bool uses_tls(const struct hr_etcd_conf *c)
{
	size_t i;

	for (i = 0; i < c->n_endpoints; i++)
		if (!strncmp(c->endpoints[i], "https://", 8))
			return true;
	return false;
}

/*
 * The user and password from conf and the environment (the password file
 * is read here): 0 with *user and *password (malloc'ed, either may be
 * NULL; the password is a secret), or -errno with both NULL.
 */
static int load_credentials(const struct hr_etcd_conf *c, char **user,
			    char **password, struct hr_err *err)
{
	const char *env_user = getenv("ETCD_USERNAME");
	const char *env_pass = getenv("ETCD_PASSWORD");
	int rc = 0;

	*user = NULL;
	*password = NULL;
	if (c->username)
		*user = strdup(c->username);
	else if (env_user && *env_user)
		*user = strdup(env_user);
	if (c->password_file) {
		rc = hr_secret_read(c->password_file,
				    "registry.etcd.password_file",
				    PASSWORD_MAX, password, NULL, err);
		if (rc == 0 && !*user)
			rc = hr_err_set(err, -EINVAL,
					"registry.etcd.password_file is set "
					"but no username (username or "
					"ETCD_USERNAME)");
	} else if (*user && env_pass && *env_pass) {
		*password = strdup(env_pass);
	}
	if (rc == 0 && *user && !*password)
		rc = hr_err_set(err, -EINVAL,
				"registry.etcd: username \"%s\" has no "
				"password (password_file or ETCD_PASSWORD)",
				*user);
	if (rc) {
		free(*user);
		hr_secret_free(*password);
		*user = NULL;
		*password = NULL;
	}
	return rc;
}

/* The instance address (into addr) and the key (malloc'ed) for svc. */
static int make_key(const struct hr_etcd_conf *c,
		    const struct hr_service_spec *svc, char *addr,
		    size_t alen, char **key, struct hr_err *err)
{
	char host[256] = "";
	int rc;

	*key = NULL;
	if (!svc->name)
		return hr_err_set(err, -EINVAL, "etcd: the service has no name");
	if ((!svc->address || !*svc->address) &&
	    gethostname(host, sizeof(host) - 1) < 0)
		host[0] = '\0';
	rc = hr_etcd_addr(svc, host, addr, alen);
	if (rc < 0)
		return hr_err_set(err, rc,
				  "registry.etcd needs service.port (and "
				  "service.address or a host name) for the key");
	*key = hr_etcd_key(c->prefix, svc->name, addr);
	return *key ? 0 : hr_err_set(err, -ENOMEM, "out of memory");
}

/* What create() checks beyond the parse: the key and the credentials
 * (kept in r when r is not NULL, else freed and wiped). */
static int etcd_check(struct hr_registry *r, const struct hr_etcd_conf *c,
		      const struct hr_service_spec *svc, struct hr_err *err)
{
	char addr[sizeof(r->addr)], *key = NULL, *user = NULL, *pass = NULL;
	int rc;

	/* The TLS files are checked by hr_reg_tls_check_files() (preflight,
	 * which run passes too) and hr_regcore_tls() (create, with https). */
	rc = make_key(c, svc, addr, sizeof(addr), &key, err);
	if (!rc)
		rc = load_credentials(c, &user, &pass, err);
	if (!rc && r) {
		memcpy(r->addr, addr, sizeof(addr));
		r->key = key;
		r->user = user;
		r->password = pass;
		return 0;
	}
	free(key);
	free(user);
	hr_secret_free(pass);
	return rc;
}

static void etcd_preflight(const cJSON *conf, const char *path,
			   const struct hr_service_spec *service,
			   struct hr_diag *diag)
{
	struct hr_etcd_conf c;
	struct hr_err err = { "" };

	/* validate() reported the parse: only the verdict here. */
	if (hr_etcd_conf_parse(&c, conf, path, NULL) < 0) {
		hr_diag_add(diag, HR_DIAG_ERROR, path, "invalid configuration");
		return;
	}
	if (etcd_check(NULL, &c, service, &err) < 0)
		hr_diag_add(diag, HR_DIAG_ERROR, NULL, "%s", err.msg);
	/* With an https endpoint, the TLS files must be usable (without
	 * one they are not read). */
	if (uses_tls(&c))
		hr_reg_tls_check_files(&c.common, path, NULL, diag);
	hr_etcd_conf_dispose(&c);
}

static void etcd_destroy(struct hr_registry *r);

static int etcd_create(struct hr_registry **out, const cJSON *conf,
		       const struct hr_registry_env *env, struct hr_err *err)
{
	struct hr_registry *r;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->shutdown_timeout_ms = env->shutdown_timeout_ms;
	rc = hr_regcore_init(&r->core, &core_ops, env, RESP_MAX);
	if (rc < 0) {
		hr_err_set(err, rc, "out of memory");
		goto fail;
	}
	rc = hr_etcd_conf_parse(&r->conf, conf, "registry.etcd", NULL);
	if (rc < 0) {
		hr_err_set(err, rc, "registry.etcd: invalid configuration");
		goto fail;
	}
	hr_regcore_grace_setup(&r->core, r->conf.common.register_when,
			       r->conf.common.deregister_after_ms);
	rc = etcd_check(r, &r->conf, &r->core.service, err);
	if (rc < 0)
		goto fail;
	r->dir = hr_etcd_service_dir(r->conf.prefix, r->core.service.name);
	if (!r->dir) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (uses_tls(&r->conf) &&
	    (rc = hr_regcore_tls(&r->core, &r->conf.common, "etcd",
				 endpoint(r), NULL, err)) < 0)
		goto fail;
	r->plain_hdrs = curl_slist_append(NULL,
					  "Content-Type: application/json");
	if (!r->plain_hdrs) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	/* The agent's one lease for every etcd backend that reaches the
	 * cluster the same way; the password stays with the lease only. */
	r->lm.core = &r->core;
	r->lm.cb = on_lease;
	r->lm.key = r->key;
	r->lm.value = reput_value;
	rc = hr_etcd_lease_attach(&r->lm, &r->conf, r->user, r->password,
				  err);
	if (rc < 0)
		goto fail;
	hr_secret_free(r->password);
	r->password = NULL;
	hr_log(HR_LOG_INFO, "etcd_start", "key", r->key, "endpoint",
	       endpoint(r), "auth", r->user ? "on" : "off", NULL);
	*out = r;
	reconcile(&r->core);
	return 0;
fail:
	etcd_destroy(r);
	return rc;
}

/* ---- the agent's calls ----------------------------------------------- */

/* status: the aggregate, or critical in maintenance. */
static void apply_status(struct hr_registry *r, enum hr_status status)
{
	bool first = !r->have_status;
	bool was_wanted = hr_regcore_wanted(&r->core);
	enum hr_status old = r->status;

	r->have_status = true;
	r->status = status;
	if (hr_etcd_registrable(&r->conf, status)) {
		if (first || !was_wanted)
			snprintf(r->reason, sizeof(r->reason), "status %s",
				 hr_status_name(status));
		else if (status != r->value_status)
			snprintf(r->reason, sizeof(r->reason),
				 "status %s -> %s",
				 hr_status_name(r->value_status),
				 hr_status_name(status));
		r->value_status = status;
	} else if (was_wanted && r->conf.common.deregister_after_ms <= 0) {
		snprintf(r->reason, sizeof(r->reason), "status %s",
			 hr_status_name(status));
	}
	if (r->maint)
		snprintf(r->reason, sizeof(r->reason), "maintenance: %.140s",
			 r->maint_reason);
	hr_regcore_status(&r->core, status, false);
	/* A decision to leave rests on a read made after the change. */
	if (!hr_regcore_wanted(&r->core))
		r->view_fresh = false;
	if (!first && old != status)
		hr_log(HR_LOG_DEBUG, "etcd_status", "status",
		       hr_status_name(status), NULL);
	reconcile(&r->core);
}

static void etcd_apply(struct hr_registry *r, enum hr_status status,
		       const char *output)
{
	(void)output; /* the summary is not part of the value: no rewrites */
	if (hr_regcore_shutting_down(&r->core))
		return;
	r->told = status;
	apply_status(r, r->maint ? HR_STATUS_CRITICAL : status);
}

/*
 * Maintenance takes the key away at once, past the floor (the floor only
 * governs leaving for bad health); leaving it applies the aggregate again.
 * Before the first status the agent has told nothing to apply yet.
 */
static void etcd_maintenance(struct hr_registry *r, bool enable,
			     const char *reason)
{
	if (hr_regcore_shutting_down(&r->core))
		return;
	r->maint = enable;
	snprintf(r->maint_reason, sizeof(r->maint_reason), "%s",
		 reason && *reason ? reason : "(no reason given)");
	if (enable)
		release_kept(r, "maintenance");
	if (r->have_status)
		apply_status(r, enable ? HR_STATUS_CRITICAL : r->told);
}

static void etcd_shutdown(struct hr_registry *r, hr_registry_done_cb done,
			  void *payload)
{
	if (hr_regcore_shutdown(&r->core, done, payload,
				r->shutdown_timeout_ms) < 0)
		return;
	release_kept(r, "shutdown");
	/* Whatever is in flight is overtaken by the revoke or the delete;
	 * a put may have landed: then there is a key to delete. */
	if (r->op == HR_ETCD_OP_PUT && r->op_value &&
	    hr_regcore_busy(&r->core) &&
	    r->op_lease == hr_etcd_lease_id(LEASE(r))) {
		free(r->written);
		r->written = r->op_value;
		r->written_rev = 0; /* not known */
		r->op_value = NULL;
	}
	release_request(r);
	r->failures = 0;
	r->retries = 0;
	snprintf(r->reason, sizeof(r->reason), "shutdown");
	hr_log(HR_LOG_INFO, "etcd_shutdown", "key", r->key, NULL);
	hr_etcd_lease_leave(&r->lm);
	reconcile(&r->core);
}

static void etcd_destroy(struct hr_registry *r)
{
	if (!r)
		return;
	release_request(r);
	/* Our key must not outlive us under a lease others keep alive. */
	if (r->written && hr_etcd_lease_hand_over(&r->lm, r->written,
						  r->written_rev, true))
		hr_log(HR_LOG_INFO, "etcd_key_handed_over", "key", r->key,
		       NULL);
	hr_etcd_lease_detach(&r->lm);
	hr_regcore_dispose(&r->core);
	set_token(r, NULL);
	hr_reg_headers_free(r->plain_hdrs);
	hr_secret_free(r->password);
	free(r->user);
	free(r->key);
	free(r->dir);
	hr_etcd_view_dispose(&r->view);
	free(r->written);
	hr_etcd_conf_dispose(&r->conf);
	free(r);
}

const struct hr_etcd_lease *hr_etcd_lease_of(const struct hr_registry *r)
{
	return LEASE(r);
}

const struct hr_registry_ops hr_registry_etcd = {
	.abi = HR_REGISTRY_ABI,
	.name = "etcd",
	.validate = etcd_validate,
	.preflight = etcd_preflight,
	.create = etcd_create,
	.apply = etcd_apply,
	.maintenance = etcd_maintenance,
	.shutdown = etcd_shutdown,
	.destroy = etcd_destroy,
};
