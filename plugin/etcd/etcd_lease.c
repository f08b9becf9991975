/*
 * etcd_lease.c - the lease every etcd backend instance of one agent
 * shares (see etcd_lease.h for the contract and the lifetime rules): its
 * own core (healthreg/regcore.h) for authenticate, grant, keepalive,
 * the re-puts after a loss, the keys of members that went, and revoke,
 * one request at a time, and the members it tells about them.
 *
 *   reconcile()
 *     closing (every member left) -> [authenticate] -> revoke -> REVOKED
 *     no token (auth on)          -> authenticate  -> READY
 *     no lease                    -> grant         -> READY (after a
 *                                    loss: collect the re-puts)
 *     keepalive due               -> keepalive     -> RENEWED
 *     re-puts waiting             -> txn of <= 128 puts -> PUT_DONE
 *                                    (failed: PUT_FAILED)
 *     a gone member's key         -> txn: delete if LEASE == ours (and
 *                                    MOD == its put's, when known)
 *
 *   replies: OK as above; LEASE_LOST -> LOST, grant again at once;
 *   AUTH_EXPIRED -> authenticate again; UNAVAILABLE -> next endpoint,
 *   backoff after a full round (<= 5 s and <= TTL/3); others backoff.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <ev.h>

#include "etcd_lease.h"
#include "healthreg/log.h"

#define RESP_MAX (256 * 1024) /* a txn of 128 puts answers 128 responses */
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
/* After a loss each member waits a random part of this per member before
 * its re-put (at most TTL/3): 1,000 services spread over 2 s. */
#define SPREAD_PER_MEMBER_MS 2

struct hr_etcd_lease {
	struct hr_link link;       /* in open_leases while not closing */
	struct hr_regcore core;    /* quiet: answers go to the members */
	struct hr_link *members;
	size_t n_members;

	/* identity (besides core.loop, core.http and core.tls) */
	char **endpoints;
	size_t n_endpoints;
	char *user;
	char *password;
	int64_t ttl_ms;
	int64_t request_timeout_ms;

	size_t ep;
	unsigned failures, retries, auth_again;
	bool tls_failed;
	char *token;
	unsigned token_gen;
	struct curl_slist *plain_hdrs, *auth_hdrs;

	int64_t id;                /* 0: none */
	int64_t ttl_s;
	bool keepalive_due;
	bool granted_before;       /* a grant after this one follows a loss */
	int64_t spread_ms;
	bool closing;              /* every member left: revoke */
	bool linked;

	enum hr_etcd_op op;
	int64_t op_id;             /* the lease a keepalive/revoke named */
	struct hr_link *orphans;   /* keys to delete */
	struct orphan *op_orphan;  /* the one being deleted */
	struct hr_link *reputs;    /* re-puts after a loss, in order */
	struct hr_link *reputs_tail;

	ev_timer keepalive_timer;
	ev_timer verdict_timer;
	struct hr_etcd_lease_counts counts;
};

/* A gone member's key that the lease deletes (hr_etcd_lease_hand_over). */
struct orphan {
	struct hr_link link;
	char *key;
	char *value;
	int64_t rev;            /* its mod_revision (0: not known) */
	/* The member that left it, until it is detached (compared, never
	 * followed): not a taker for its own key. */
	const struct hr_etcd_lease_member *from;
};

/* A member's re-put after a loss, waiting for (or in) a txn. */
struct reput {
	struct hr_link link;
	struct hr_etcd_lease_member *m; /* NULL: detached meanwhile */
	char *key;
	char *value;
	bool sent;
};

static struct hr_link *open_leases;
static size_t n_open;

#define LEASE_OF(c) hr_container_of(c, struct hr_etcd_lease, core)
#define MEMBER_OF(l) hr_container_of(l, struct hr_etcd_lease_member, link)

static void reconcile(struct hr_regcore *core);

static const char *hex(int64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIx64, (uint64_t)id);
	return buf;
}

static const char *endpoint(const struct hr_etcd_lease *l)
{
	return l->endpoints[l->ep];
}

static void notify(struct hr_etcd_lease *l, enum hr_etcd_lease_event ev,
		   const char *why)
{
	struct hr_link *k, *next;

	for (k = l->members; k; k = next) {
		next = k->next;
		MEMBER_OF(k)->cb(MEMBER_OF(k), ev, why);
	}
}

/* An active member other than except whose key is key (a reload's new
 * backend for the same instance), or NULL. */
static struct hr_etcd_lease_member *
active_with_key(const struct hr_etcd_lease *l, const char *key,
		const struct hr_etcd_lease_member *except)
{
	struct hr_link *k;

	for (k = l->members; k && key; k = k->next) {
		struct hr_etcd_lease_member *m = MEMBER_OF(k);

		if (m != except && m->mode == HR_ETCD_MEMBER_ACTIVE &&
		    m->key && strcmp(m->key, key) == 0)
			return m;
	}
	return NULL;
}

static int64_t backoff_cap_ms(const struct hr_etcd_lease *l)
{
	int64_t third = l->ttl_ms / 3;

	return third < BACKOFF_CAP_MS ? third : BACKOFF_CAP_MS;
}

static void backoff(struct hr_etcd_lease *l)
{
	hr_regcore_backoff(&l->core, ++l->retries, BACKOFF_BASE_MS,
			   backoff_cap_ms(l));
}

static void set_token(struct hr_etcd_lease *l, char *tok)
{
	hr_secret_free(l->token);
	l->token = tok;
	l->token_gen++;
	hr_reg_headers_free(l->auth_hdrs);
	l->auth_hdrs = NULL;
	if (!tok)
		return;
	if (hr_reg_header_add(&l->auth_hdrs, "Content-Type",
			      "application/json") < 0 ||
	    hr_reg_header_add(&l->auth_hdrs, "Authorization", tok) < 0) {
		hr_reg_headers_free(l->auth_hdrs);
		l->auth_hdrs = NULL;
	}
}

static void orphan_free(struct hr_etcd_lease *l, struct orphan *o)
{
	hr_link_unlink(&l->orphans, &o->link);
	if (l->op_orphan == o)
		l->op_orphan = NULL;
	free(o->key);
	free(o->value);
	free(o);
}

static void reput_free(struct hr_etcd_lease *l, struct reput *p)
{
	if (l->reputs_tail == &p->link)
		l->reputs_tail = p->link.prev;
	hr_link_unlink(&l->reputs, &p->link);
	if (p->m)
		p->m->batched = false;
	free(p->key);
	free(p->value);
	free(p);
}

/* Drop every re-put (the lease is gone or closing); nobody is told. */
static void reputs_clear(struct hr_etcd_lease *l)
{
	while (l->reputs)
		reput_free(l, hr_container_of(l->reputs, struct reput, link));
}

/* Append in member order: hr_link_push() puts first. */
static void reput_append(struct hr_etcd_lease *l, struct reput *p)
{
	struct hr_link *t = l->reputs_tail;

	if (!t) {
		hr_link_push(&l->reputs, &p->link);
	} else {
		p->link.prev = t;
		p->link.next = NULL;
		t->next = &p->link;
	}
	l->reputs_tail = &p->link;
}

/* After a grant that follows a loss: the keys the members want back. */
static void reputs_collect(struct hr_etcd_lease *l)
{
	struct hr_link *k;

	for (k = l->members; k; k = k->next) {
		struct hr_etcd_lease_member *m = MEMBER_OF(k);
		struct reput *p;
		char *v;

		if (m->mode != HR_ETCD_MEMBER_ACTIVE || !m->value || !m->key ||
		    m->batched || !(v = m->value(m)))
			continue;
		p = calloc(1, sizeof(*p));
		if (p)
			p->key = strdup(m->key);
		if (!p || !p->key) {
			free(p);
			free(v);
			continue; /* the member puts its own */
		}
		p->m = m;
		p->value = v;
		m->batched = true;
		reput_append(l, p);
	}
}

static void forget(struct hr_etcd_lease *l)
{
	/* Every key under the lease is gone with it. */
	while (l->orphans)
		orphan_free(l, hr_container_of(l->orphans, struct orphan,
					       link));
	l->id = 0;
	l->keepalive_due = false;
	ev_timer_stop(l->core.loop, &l->keepalive_timer);
}

/* The next keepalive: TTL/3, drawn from [0.8, 1) of it, so that agents
 * granted together (a cluster that came back) drift apart instead of
 * keeping alive in step for ever. */
static double keepalive_every(struct hr_etcd_lease *l)
{
	return (double)l->ttl_s / 3.0 *
	       (0.8 + 0.2 * hr_rng_unit(&l->core.rng));
}

static void arm_keepalive(struct hr_etcd_lease *l)
{
	double every = keepalive_every(l);

	ev_timer_stop(l->core.loop, &l->keepalive_timer);
	ev_timer_set(&l->keepalive_timer, every, every);
	ev_timer_start(l->core.loop, &l->keepalive_timer);
}

/* ---- requests ---------------------------------------------------------- */

static const char *op_path(enum hr_etcd_op op)
{
	switch (op) {
	case HR_ETCD_OP_AUTH:
		return "/v3/auth/authenticate";
	case HR_ETCD_OP_GRANT:
		return "/v3/lease/grant";
	case HR_ETCD_OP_KEEPALIVE:
		return "/v3/lease/keepalive";
	case HR_ETCD_OP_REVOKE:
		return "/v3/lease/revoke";
	case HR_ETCD_OP_DELETE:
	case HR_ETCD_OP_PUTS:
		return "/v3/kv/txn";
	default:
		return "/";
	}
}

/* Start op with body (taken and wiped: the auth body holds the
 * password). */
static void start_op(struct hr_etcd_lease *l, enum hr_etcd_op op,
		     char *body)
{
	char url[1024];
	struct hr_reg_req q = {
		.method = "POST", .url = url, .body = body,
		.secret_body = true,
		.headers = op != HR_ETCD_OP_AUTH && l->auth_hdrs ?
			   l->auth_hdrs : l->plain_hdrs,
		.timeout_ms = (long)l->request_timeout_ms,
		.http11 = true,
		.urgent = true, /* serves every backend on the lease */
	};
	int rc = -ENOMEM;

	snprintf(url, sizeof(url), "%s%s", endpoint(l), op_path(op));
	l->op = op;
	l->op_id = l->id;
	if (body && q.headers)
		rc = hr_regcore_send(&l->core, &q);
	if (body)
		hr_wipe(body, strlen(body));
	free(body);
	if (rc < 0) {
		hr_log(HR_LOG_ERROR, "etcd_request_failed", "op",
		       hr_etcd_op_name(op), "error", rc == -ENOMEM ?
		       "out of memory" : strerror(-rc), NULL);
		backoff(l);
		return;
	}
	switch (op) {
	case HR_ETCD_OP_AUTH:
		l->counts.auths++;
		break;
	case HR_ETCD_OP_GRANT:
		l->counts.grants++;
		break;
	case HR_ETCD_OP_KEEPALIVE:
		l->counts.keepalives++;
		break;
	case HR_ETCD_OP_REVOKE:
		l->counts.revokes++;
		break;
	case HR_ETCD_OP_PUTS:
		l->counts.put_txns++;
		break;
	case HR_ETCD_OP_DELETE:
		l->counts.deletes++;
		break;
	default:
		break;
	}
}

/* ---- replies ----------------------------------------------------------- */

static void ok_reply(struct hr_etcd_lease *l, enum hr_etcd_op op,
		     struct hr_etcd_reply *rep)
{
	char h[24], ttl[24], n[24];

	if (l->failures || l->retries)
		hr_log(HR_LOG_DEBUG, "etcd_reachable", "endpoint",
		       endpoint(l), NULL);
	l->failures = 0;
	l->retries = 0;
	if (op != HR_ETCD_OP_AUTH)
		l->auth_again = 0;
	switch (op) {
	case HR_ETCD_OP_AUTH:
		set_token(l, rep->token);
		rep->token = NULL;
		hr_log(HR_LOG_INFO, "etcd_authenticated", "user", l->user,
		       "endpoint", endpoint(l), NULL);
		if (l->id && !l->closing)
			notify(l, HR_ETCD_LEASE_EV_READY, NULL);
		break;
	case HR_ETCD_OP_GRANT:
		forget(l);
		l->id = rep->id;
		l->ttl_s = rep->ttl;
		l->spread_ms = 0;
		if (l->granted_before && l->n_members > 1) {
			l->spread_ms = (int64_t)l->n_members *
				       SPREAD_PER_MEMBER_MS;
			if (l->spread_ms > l->ttl_s * 1000 / 3)
				l->spread_ms = l->ttl_s * 1000 / 3;
		}
		if (l->granted_before)
			reputs_collect(l);
		l->granted_before = true;
		snprintf(ttl, sizeof(ttl), "%" PRId64 "s", rep->ttl);
		snprintf(n, sizeof(n), "%zu", l->n_members);
		hr_log(HR_LOG_INFO, "etcd_lease_granted", "lease",
		       hex(l->id, h, sizeof(h)), "ttl", ttl,
		       HR_LOG_NUM("backends"), n, "endpoint", endpoint(l),
		       NULL);
		arm_keepalive(l);
		notify(l, HR_ETCD_LEASE_EV_READY, NULL);
		break;
	case HR_ETCD_OP_KEEPALIVE:
		if (l->op_id != l->id)
			break; /* a lease given up meanwhile */
		l->keepalive_due = false;
		if (rep->ttl != l->ttl_s && rep->ttl > 0) {
			l->ttl_s = rep->ttl;
			arm_keepalive(l);
		}
		notify(l, HR_ETCD_LEASE_EV_RENEWED, NULL);
		break;
	case HR_ETCD_OP_DELETE:
		if (l->op_orphan) {
			hr_log(HR_LOG_INFO, "etcd_deregistered", "key",
			       l->op_orphan->key, "reason", "backend removed",
			       "held", rep->succeeded ? "true" :
			       "false (gone or not ours)", "endpoint",
			       endpoint(l), NULL);
			orphan_free(l, l->op_orphan);
		}
		break;
	case HR_ETCD_OP_REVOKE:
		snprintf(n, sizeof(n), "%zu", l->n_members);
		hr_log(HR_LOG_INFO, "etcd_lease_revoked", "lease",
		       hex(l->id, h, sizeof(h)), HR_LOG_NUM("backends"), n,
		       "endpoint", endpoint(l), NULL);
		forget(l);
		break;
	default:
		break;
	}
}

static void lost(struct hr_etcd_lease *l, enum hr_etcd_op op,
		 const char *why)
{
	char h[24];

	hr_log(HR_LOG_WARN, "etcd_lease_lost", "lease",
	       hex(l->id, h, sizeof(h)), "op", hr_etcd_op_name(op), "reason",
	       why, "endpoint", endpoint(l), NULL);
	forget(l);
	reputs_clear(l);
	l->retries = 0;
	l->failures = 0;
	if (!l->closing)
		notify(l, HR_ETCD_LEASE_EV_LOST, why);
}

/* The re-puts of the txn answered (written at rev, 0: not known): tell
 * their members. */
static void reputs_answered(struct hr_etcd_lease *l, bool ok, int64_t rev)
{
	struct hr_link *k, *next;

	for (k = l->reputs; k; k = next) {
		struct reput *p = hr_container_of(k, struct reput, link);
		struct hr_etcd_lease_member *m = p->m;

		next = k->next;
		if (!p->sent && ok)
			continue;
		if (m) {
			m->batched = false;
			m->rev = rev;
			m->cb(m, ok ? HR_ETCD_LEASE_EV_PUT_DONE :
				      HR_ETCD_LEASE_EV_PUT_FAILED, p->value);
			p->m = NULL;
		} else if (ok && (m = active_with_key(l, p->key, NULL))) {
			/* Its member went, replaced by one for the same key
			 * (a reload), which may have put it meanwhile: its
			 * key, never a gone one's to delete. */
			m->rev = rev;
			m->cb(m, HR_ETCD_LEASE_EV_ADOPT, p->value);
		} else if (ok && l->n_members) {
			/* Its member went: nobody keeps the key. */
			struct orphan *o = calloc(1, sizeof(*o));

			if (o) {
				o->key = p->key;
				o->value = p->value;
				o->rev = rev;
				p->key = NULL;
				p->value = NULL;
				hr_link_push(&l->orphans, &o->link);
			}
		}
		reput_free(l, p);
	}
}

static void reputs_unsend(struct hr_etcd_lease *l)
{
	struct hr_link *k;

	for (k = l->reputs; k; k = k->next)
		hr_container_of(k, struct reput, link)->sent = false;
}

static void failed_reply(struct hr_etcd_lease *l, enum hr_etcd_op op,
			 const struct hr_etcd_reply *rep)
{
	const char *name = hr_etcd_op_name(op);
	unsigned n = (unsigned)l->n_endpoints;
	char http[16];

	snprintf(http, sizeof(http), "%ld", rep->http_status);
	switch (rep->result) {
	case HR_ETCD_OK:
		break;
	case HR_ETCD_LEASE_LOST:
		/* A keepalive for a lease given up meanwhile says nothing. */
		if (op == HR_ETCD_OP_GRANT || l->op_id == l->id)
			lost(l, op, rep->message);
		break;
	case HR_ETCD_AUTH_EXPIRED:
		set_token(l, NULL);
		if (!l->user) {
			hr_log(HR_LOG_ERROR, "etcd_auth_required", "op", name,
			       "reason", rep->message, "endpoint",
			       endpoint(l), NULL);
			backoff(l);
			break;
		}
		hr_log(HR_LOG_INFO, "etcd_token_invalid", "op", name,
		       "reason", rep->message, "endpoint", endpoint(l), NULL);
		if (l->auth_again++ > 0)
			backoff(l);
		break;
	case HR_ETCD_AUTH_DENIED:
		if (op == HR_ETCD_OP_AUTH)
			set_token(l, NULL);
		hr_log(HR_LOG_DEBUG, "etcd_denied", "op", name, "user",
		       l->user, "reason", rep->message, HR_LOG_NUM("http"),
		       http, "endpoint", endpoint(l), NULL);
		backoff(l);
		break;
	case HR_ETCD_UNAVAILABLE:
		if (l->tls_failed)
			hr_log(HR_LOG_ERROR, "etcd_tls_failed", "registry",
			       "etcd", "op", name, "endpoint", endpoint(l),
			       "reason", rep->message, NULL);
		else
			hr_log(HR_LOG_DEBUG, "etcd_unavailable", "op", name,
			       "reason", rep->message, HR_LOG_NUM("http"),
			       http, "endpoint", endpoint(l), NULL);
		l->failures++;
		l->ep = (l->ep + 1) % n;
		if (l->failures % n == 0)
			hr_regcore_backoff(&l->core, l->failures / n,
					   BACKOFF_BASE_MS, backoff_cap_ms(l));
		break;
	case HR_ETCD_FAILED:
		hr_log(HR_LOG_DEBUG, "etcd_request_failed", "op", name,
		       "reason", rep->message, HR_LOG_NUM("http"), http,
		       "endpoint", endpoint(l), NULL);
		backoff(l);
		break;
	}
}

static bool on_reply(struct hr_regcore *core, const struct hr_reg_reply *a)
{
	struct hr_etcd_lease *l = LEASE_OF(core);
	struct hr_etcd_reply rep;
	enum hr_etcd_op op = l->op;
	struct hr_link *k;
	bool ok, revoked;

	hr_etcd_reply_parse(op, a->status, a->body, a->len, &rep);
	l->tls_failed = a->rc != CURLE_OK &&
			hr_reg_tls_failed(a->rc, a->errbuf);
	if (a->rc != CURLE_OK)
		hr_reg_curl_reason(a->rc, a->errbuf, rep.message,
				   sizeof(rep.message));
	ok = rep.result == HR_ETCD_OK;
	/* Every member's state follows the lease's answers. */
	for (k = l->members; k; k = k->next)
		hr_regcore_note(MEMBER_OF(k)->core, a, ok,
				ok ? NULL : rep.message);
	if (ok)
		ok_reply(l, op, &rep);
	else
		failed_reply(l, op, &rep);
	if (op == HR_ETCD_OP_DELETE)
		l->op_orphan = NULL; /* deleted, or tried again later */
	/* A lost lease has dropped them already. Unreachable, or a token
	 * to renew: the lease sends them again (after its backoff); a
	 * refusal of the txn itself: each member puts its own. */
	if (op == HR_ETCD_OP_PUTS && l->reputs) {
		if (ok || (rep.result != HR_ETCD_UNAVAILABLE &&
			   rep.result != HR_ETCD_AUTH_EXPIRED))
			reputs_answered(l, ok, rep.revision);
		else
			reputs_unsend(l);
	}
	/* Closing: a revoke answered, or nothing left to revoke. */
	revoked = l->closing && op == HR_ETCD_OP_REVOKE &&
		  (ok || rep.result == HR_ETCD_LEASE_LOST);
	if (revoked) {
		forget(l);
		notify(l, HR_ETCD_LEASE_EV_REVOKED, NULL);
	}
	hr_etcd_reply_dispose(&rep);
	return ok;
}

/* ---- the state machine ------------------------------------------------- */

/* The next txn of at most HR_ETCD_TXN_OPS_MAX re-puts. */
static void send_reputs(struct hr_etcd_lease *l)
{
	const char *keys[HR_ETCD_TXN_OPS_MAX], *values[HR_ETCD_TXN_OPS_MAX];
	struct hr_link *k;
	size_t n = 0;

	for (k = l->reputs; k && n < HR_ETCD_TXN_OPS_MAX; k = k->next) {
		struct reput *p = hr_container_of(k, struct reput, link);

		p->sent = true;
		keys[n] = p->key;
		values[n++] = p->value;
	}
	start_op(l, HR_ETCD_OP_PUTS, hr_etcd_body_puts(keys, values, n,
						       l->id));
}

/* The next gone member's key to delete, unless a member for the same key
 * came meanwhile (then the key is its own). */
static void send_orphan(struct hr_etcd_lease *l)
{
	while (l->orphans) {
		struct orphan *o = hr_container_of(l->orphans, struct orphan,
						   link);
		struct hr_etcd_lease_member *m = active_with_key(l, o->key,
								 o->from);

		if (!m) {
			l->op_orphan = o;
			start_op(l, HR_ETCD_OP_DELETE,
				 hr_etcd_body_delete_if_unchanged(o->key, l->id,
								  o->rev));
			return;
		}
		m->rev = o->rev;
		m->cb(m, HR_ETCD_LEASE_EV_ADOPT, o->value);
		orphan_free(l, o);
	}
}

static void reconcile(struct hr_regcore *core)
{
	struct hr_etcd_lease *l = LEASE_OF(core);

	if (!hr_regcore_idle(core))
		return;
	if (l->closing) {
		if (!l->id)
			return; /* told REVOKED; waiting to be freed */
		if (l->user && !l->token)
			start_op(l, HR_ETCD_OP_AUTH,
				 hr_etcd_body_auth(l->user, l->password));
		else
			start_op(l, HR_ETCD_OP_REVOKE,
				 hr_etcd_body_lease(l->id));
	} else if (l->user && !l->token) {
		start_op(l, HR_ETCD_OP_AUTH,
			 hr_etcd_body_auth(l->user, l->password));
	} else if (!l->id) {
		start_op(l, HR_ETCD_OP_GRANT,
			 hr_etcd_body_grant(l->ttl_ms / 1000));
	} else if (l->keepalive_due) {
		start_op(l, HR_ETCD_OP_KEEPALIVE, hr_etcd_body_lease(l->id));
	} else if (l->reputs) {
		send_reputs(l);
	} else if (l->orphans) {
		send_orphan(l);
	}
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_etcd_lease *l =
		hr_container_of(w, struct hr_etcd_lease, keepalive_timer);

	(void)revents;
	w->repeat = keepalive_every(l);
	ev_timer_again(loop, w);
	l->keepalive_due = true;
	reconcile(&l->core);
}

static void unlink_open(struct hr_etcd_lease *l)
{
	if (!l->linked)
		return;
	hr_link_unlink(&open_leases, &l->link);
	l->linked = false;
	n_open--;
}

/*
 * The shutdown verdict, a loop iteration after the first leave (so that
 * an agent stopping every backend at once is seen as one): when every
 * member is leaving, one revoke takes every key; otherwise each leaving
 * member deletes its own.
 */
static void verdict_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_etcd_lease *l =
		hr_container_of(w, struct hr_etcd_lease, verdict_timer);
	struct hr_link *k, *next;
	bool all = true;

	(void)loop;
	(void)revents;
	for (k = l->members; k; k = k->next)
		if (MEMBER_OF(k)->mode == HR_ETCD_MEMBER_ACTIVE)
			all = false;
	if (all) {
		l->closing = true;
		unlink_open(l);
		for (k = l->members; k; k = k->next)
			MEMBER_OF(k)->mode = HR_ETCD_MEMBER_REVOKE;
		/* The revoke overtakes a keepalive, grant or re-put in
		 * flight. */
		hr_regcore_cancel(&l->core);
		reputs_clear(l);
		hr_regcore_retry_stop(&l->core);
		l->keepalive_due = false;
		ev_timer_stop(l->core.loop, &l->keepalive_timer);
		if (!l->id) {
			notify(l, HR_ETCD_LEASE_EV_REVOKED, NULL);
			return;
		}
		reconcile(&l->core);
		return;
	}
	for (k = l->members; k; k = next) {
		struct hr_etcd_lease_member *m = MEMBER_OF(k);

		next = k->next;
		if (m->mode != HR_ETCD_MEMBER_LEAVING)
			continue;
		m->mode = HR_ETCD_MEMBER_ALONE;
		m->cb(m, HR_ETCD_LEASE_EV_LEAVE_OWN, NULL);
	}
}

static const struct hr_regcore_ops lease_ops = {
	.reply = on_reply,
	.kick = reconcile,
};

/* ---- identity ---------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool tls_eq(const struct hr_reg_tls *a, const struct hr_reg_tls *b)
{
	return str_eq(a->ca_file, b->ca_file) &&
	       str_eq(a->cert_file, b->cert_file) &&
	       str_eq(a->key_file, b->key_file) &&
	       a->skip_verify == b->skip_verify &&
	       a->ca_blob_len == b->ca_blob_len &&
	       (!a->ca_blob_len ||
		memcmp(a->ca_blob, b->ca_blob, a->ca_blob_len) == 0);
}

static bool matches(const struct hr_etcd_lease *l,
		    const struct hr_regcore *core,
		    const struct hr_etcd_conf *c, const char *user,
		    const char *password)
{
	size_t i;

	if (l->closing || l->core.loop != core->loop ||
	    l->core.http != core->http || l->ttl_ms != c->lease_ttl_ms ||
	    l->request_timeout_ms != c->request_timeout_ms ||
	    l->n_endpoints != c->n_endpoints || !str_eq(l->user, user) ||
	    !str_eq(l->password, password) ||
	    !tls_eq(&l->core.tls, &core->tls))
		return false;
	for (i = 0; i < c->n_endpoints; i++)
		if (strcmp(l->endpoints[i], c->endpoints[i]))
			return false;
	return true;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static int tls_copy(struct hr_reg_tls *dst, const struct hr_reg_tls *src)
{
	bool oom = false;

	dst->ca_file = dup_or_null(src->ca_file, &oom);
	dst->cert_file = dup_or_null(src->cert_file, &oom);
	dst->key_file = dup_or_null(src->key_file, &oom);
	dst->skip_verify = src->skip_verify;
	if (src->ca_blob) {
		dst->ca_blob = malloc(src->ca_blob_len + 1);
		if (!dst->ca_blob)
			return -ENOMEM;
		memcpy(dst->ca_blob, src->ca_blob, src->ca_blob_len);
		dst->ca_blob[src->ca_blob_len] = '\0';
		dst->ca_blob_len = src->ca_blob_len;
	}
	return oom ? -ENOMEM : 0;
}

static void lease_free(struct hr_etcd_lease *l)
{
	size_t i;

	if (!l)
		return;
	unlink_open(l);
	ev_timer_stop(l->core.loop, &l->keepalive_timer);
	ev_timer_stop(l->core.loop, &l->verdict_timer);
	hr_regcore_dispose(&l->core);
	forget(l);
	reputs_clear(l);
	set_token(l, NULL);
	hr_reg_headers_free(l->plain_hdrs);
	for (i = 0; l->endpoints && i < l->n_endpoints; i++)
		free(l->endpoints[i]);
	free(l->endpoints);
	free(l->user);
	hr_secret_free(l->password);
	free(l);
}

static int lease_new(struct hr_etcd_lease **out,
		     const struct hr_regcore *member,
		     const struct hr_etcd_conf *c, const char *user,
		     const char *password)
{
	struct hr_registry_env env = {
		.loop = member->loop, .http = member->http,
	};
	struct hr_etcd_lease *l;
	bool oom = false;
	size_t i;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	ev_init(&l->keepalive_timer, keepalive_cb);
	ev_init(&l->verdict_timer, verdict_cb);
	if (hr_regcore_init(&l->core, &lease_ops, &env, RESP_MAX) < 0)
		goto oom;
	l->core.quiet = true;
	l->core.own_stats.name = "etcd";
	if (tls_copy(&l->core.tls, &member->tls) < 0)
		goto oom;
	l->endpoints = calloc(c->n_endpoints, sizeof(*l->endpoints));
	if (!l->endpoints)
		goto oom;
	l->n_endpoints = c->n_endpoints;
	for (i = 0; i < c->n_endpoints; i++)
		l->endpoints[i] = dup_or_null(c->endpoints[i], &oom);
	l->user = dup_or_null(user, &oom);
	l->password = dup_or_null(password, &oom);
	l->plain_hdrs = curl_slist_append(NULL,
					  "Content-Type: application/json");
	if (oom || !l->plain_hdrs)
		goto oom;
	l->ttl_ms = c->lease_ttl_ms;
	l->ttl_s = c->lease_ttl_ms / 1000;
	l->request_timeout_ms = c->request_timeout_ms;
	hr_link_push(&open_leases, &l->link);
	l->linked = true;
	n_open++;
	*out = l;
	return 0;
oom:
	lease_free(l);
	return -ENOMEM;
}

/* ---- the members' calls ------------------------------------------------ */

static void verdict_soon(struct hr_etcd_lease *l)
{
	if (ev_is_active(&l->verdict_timer))
		return;
	ev_timer_set(&l->verdict_timer, 0., 0.);
	ev_timer_start(l->core.loop, &l->verdict_timer);
}

int hr_etcd_lease_attach(struct hr_etcd_lease_member *m,
			 const struct hr_etcd_conf *conf, const char *user,
			 const char *password, struct hr_err *err)
{
	struct hr_etcd_lease *l = NULL;
	struct hr_link *k;
	bool fresh = false;

	m->lease = NULL;
	m->mode = HR_ETCD_MEMBER_ACTIVE;
	for (k = open_leases; k && !l; k = k->next) {
		struct hr_etcd_lease *c =
			hr_container_of(k, struct hr_etcd_lease, link);

		if (matches(c, m->core, conf, user, password))
			l = c;
	}
	if (!l) {
		if (lease_new(&l, m->core, conf, user, password) < 0)
			return hr_err_set(err, -ENOMEM, "out of memory");
		fresh = true;
	}
	hr_link_push(&l->members, &m->link);
	l->n_members++;
	m->lease = l;
	if (fresh) {
		reconcile(&l->core);
		return 0;
	}
	/* A key a gone member left, not yet being deleted: ours now. */
	for (k = l->orphans; k && m->key; k = k->next) {
		struct orphan *o = hr_container_of(k, struct orphan, link);

		if (o != l->op_orphan && strcmp(o->key, m->key) == 0) {
			m->rev = o->rev;
			m->cb(m, HR_ETCD_LEASE_EV_ADOPT, o->value);
			orphan_free(l, o);
			break;
		}
	}
	return 0;
}

void hr_etcd_lease_detach(struct hr_etcd_lease_member *m)
{
	struct hr_etcd_lease *l = m->lease;
	struct hr_link *k, *next;

	if (!l)
		return;
	hr_link_unlink(&l->members, &m->link);
	l->n_members--;
	m->lease = NULL;
	/* A re-put not sent is dropped; one in flight may land: then the
	 * lease deletes the key (reputs_answered). */
	for (k = l->reputs; k; k = next) {
		struct reput *p = hr_container_of(k, struct reput, link);

		next = k->next;
		if (p->m != m)
			continue;
		p->m = NULL;
		if (!p->sent)
			reput_free(l, p);
	}
	m->batched = false;
	for (k = l->orphans; k; k = k->next) {
		struct orphan *o = hr_container_of(k, struct orphan, link);

		if (o->from == m)
			o->from = NULL;
	}
	if (!l->n_members) {
		lease_free(l);
		return;
	}
	/* The verdict may now be that every remaining member is leaving. */
	if (m->mode == HR_ETCD_MEMBER_ACTIVE && !l->closing) {
		for (k = l->members; k; k = k->next)
			if (MEMBER_OF(k)->mode == HR_ETCD_MEMBER_LEAVING) {
				verdict_soon(l);
				break;
			}
	}
}

int64_t hr_etcd_lease_id(const struct hr_etcd_lease *l)
{
	return l->id;
}

bool hr_etcd_lease_ready(const struct hr_etcd_lease *l)
{
	return l->id && !l->closing && (!l->user || l->token);
}

int64_t hr_etcd_lease_ttl_s(const struct hr_etcd_lease *l)
{
	return l->ttl_s;
}

const char *hr_etcd_lease_token(const struct hr_etcd_lease *l,
				unsigned *gen)
{
	*gen = l->token_gen;
	return l->token;
}

int64_t hr_etcd_lease_spread_ms(const struct hr_etcd_lease *l)
{
	return l->spread_ms;
}

void hr_etcd_lease_lost_seen(struct hr_etcd_lease *l, int64_t id,
			     const char *why)
{
	if (!id || id != l->id || l->closing)
		return;
	/* The keepalive in flight belongs to the lost lease; a backoff
	 * waits for no one: grant at once. */
	if (l->op == HR_ETCD_OP_KEEPALIVE)
		hr_regcore_cancel(&l->core);
	hr_regcore_retry_stop(&l->core);
	lost(l, HR_ETCD_OP_PUT, why);
	reconcile(&l->core);
}

void hr_etcd_lease_token_refused(struct hr_etcd_lease *l, unsigned gen)
{
	if (gen != l->token_gen || !l->token)
		return;
	/* The lease's own request (waiting in its lane or in flight)
	 * borrows the header list that goes with the token, and carries the
	 * refused token anyway: drop it first; it is sent again after the
	 * authentication (a keepalive stays due, a grant or revoke follows
	 * from the state, the re-puts and the orphan wait unsent). */
	if (hr_regcore_busy(&l->core)) {
		hr_regcore_cancel(&l->core);
		if (l->op == HR_ETCD_OP_PUTS)
			reputs_unsend(l);
		else if (l->op == HR_ETCD_OP_DELETE)
			l->op_orphan = NULL;
	}
	set_token(l, NULL); /* the member logged etcd_token_invalid */
	reconcile(&l->core);
}

bool hr_etcd_lease_hand_over(struct hr_etcd_lease_member *m,
			     const char *value, int64_t rev, bool queue)
{
	struct hr_etcd_lease *l = m->lease;
	struct hr_etcd_lease_member *other;
	struct orphan *o;

	if (!l || !m->key || !value || l->closing || !l->id)
		return false;
	if ((other = active_with_key(l, m->key, m))) {
		other->rev = rev;
		other->cb(other, HR_ETCD_LEASE_EV_ADOPT, value);
		return true;
	}
	if (!queue || l->n_members < 2)
		return false; /* the last one: the key expires with the lease */
	o = calloc(1, sizeof(*o));
	if (!o)
		return false;
	o->key = strdup(m->key);
	o->value = strdup(value);
	o->rev = rev;
	o->from = m;
	if (!o->key || !o->value) {
		free(o->key);
		free(o->value);
		free(o);
		return false;
	}
	hr_link_push(&l->orphans, &o->link);
	reconcile(&l->core);
	return false;
}

void hr_etcd_lease_leave(struct hr_etcd_lease_member *m)
{
	struct hr_etcd_lease *l = m->lease;

	if (!l || m->mode != HR_ETCD_MEMBER_ACTIVE)
		return;
	m->mode = HR_ETCD_MEMBER_LEAVING;
	if (!l->closing)
		verdict_soon(l);
}

void hr_etcd_lease_counts(const struct hr_etcd_lease *l,
			  struct hr_etcd_lease_counts *out)
{
	*out = l->counts;
	out->members = l->n_members;
}

size_t hr_etcd_lease_open_count(void)
{
	return n_open;
}
