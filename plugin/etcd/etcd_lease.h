/*
 * etcd_lease.h - one etcd lease shared by every etcd backend instance of
 * an agent that talks to the same cluster in the same way: one grant and
 * one keepalive per TTL/3 for all of the agent's keys (one per service),
 * however many backend instances there are.
 *
 * A lease is found by identity: the same loop, the same struct hr_http
 * and the same connection settings (endpoints in order, username and
 * password, lease_ttl, request_timeout, the TLS settings as the backend's
 * core holds them: files, the certificates read from ca_path,
 * tls_skip_verify). Backends that differ in any of these get leases of
 * their own. The prefix, value_format, register_when, deregister_after
 * and min_healthy are the backend's and play no part.
 *
 * The lease owns: authentication and the token (every attached backend
 * sends it; a backend told 401 hands it back with
 * hr_etcd_lease_token_refused()), the grant, the keepalive schedule, loss
 * detection (a keepalive answered without TTL or "lease not found", or a
 * backend's own write told "lease not found": hr_etcd_lease_lost_seen())
 * and the re-grant, with the backoff and jitter the backend had (next
 * endpoint at once, exponential backoff after a full round, capped at
 * TTL/3). Each backend writes and deletes only its own key, through its
 * own core, one request at a time as before.
 *
 *   attach ---> (first: grant) --READY--> backends put their keys
 *   keepalive timer (TTL/3) -> keepalive --RENEWED--> (the floor re-reads)
 *        TTL 0 / not found  --LOST--> backends forget their keys
 *                           -> grant -> the keys every backend wants
 *                              (member->value) in txns of <= 128 puts
 *                              --PUT_DONE--> each backend (PUT_FAILED:
 *                              each puts its own, spread over
 *                              [0, min(TTL/3, 2 ms x backends)))
 *   hr_etcd_lease_leave() .. next loop iteration, the verdict:
 *        every attached backend is leaving --REVOKED--> after one revoke
 *        (the lease is no longer found by new attaches from then on)
 *        others stay                       --LEAVE_OWN--> the backend
 *                                             deletes its own key
 *
 * Every answer to a lease request is accounted to every attached
 * backend's core (hr_regcore_note()): its stats count it, and its
 * up/down state and registry_* log lines follow the keepalive as they
 * followed its own keepalive before.
 *
 * Lifetime rules:
 *  - The lease is refcounted by its members: hr_etcd_lease_attach() takes
 *    one, hr_etcd_lease_detach() drops it; the last detach cancels the
 *    lease's request in flight, stops its timers and frees it (without a
 *    revoke: a destroyed backend leaves its key to expire with the lease
 *    when it was the last). The loop and http are borrowed from the first
 *    member's env and must outlive every member (they do: every member
 *    borrows the same ones).
 *  - A member is embedded in its backend and borrowed from attach to
 *    detach; member->core must stay valid as long.
 *  - The callback runs on the loop, from the lease's own transfer, timer
 *    or from hr_etcd_lease_lost_seen() / hr_etcd_lease_token_refused()
 *    (inside the member's reply: it must not send then; its kick
 *    follows). It must not attach or detach any member. It may send on
 *    its own core otherwise.
 */
#ifndef HR_ETCD_LEASE_H
#define HR_ETCD_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "etcd_payload.h"
#include "healthreg/regcore.h"
#include "healthreg/registry.h"
#include "healthreg/util.h"

struct hr_etcd_lease;

enum hr_etcd_lease_event {
	HR_ETCD_LEASE_EV_READY,     /* a lease (a new one after a loss) or a
				    new token: send what waits */
	HR_ETCD_LEASE_EV_LOST,      /* the lease is gone, every key under it
				    too (why: etcd's words) */
	HR_ETCD_LEASE_EV_RENEWED,   /* a keepalive was answered */
	HR_ETCD_LEASE_EV_LEAVE_OWN, /* the shutdown verdict: others stay;
				    delete the own key, then finish */
	HR_ETCD_LEASE_EV_REVOKED,   /* the shutdown verdict: the lease was
				    revoked (or is gone, or there was none):
				    finish */
	HR_ETCD_LEASE_EV_ADOPT,     /* the member's key holds why (a value)
				    under the lease, written by a member
				    that went (or by the lease for it), in
				    an order unknown against the member's
				    own put: it is this member's now.
				    Must not send. */
	HR_ETCD_LEASE_EV_PUT_DONE,  /* the re-put after a loss holds why
				    (the value member->value gave) under
				    the current lease */
	HR_ETCD_LEASE_EV_PUT_FAILED, /* it did not happen: put it yourself */
};

struct hr_etcd_lease_member;
typedef void (*hr_etcd_lease_cb)(struct hr_etcd_lease_member *m,
				 enum hr_etcd_lease_event ev,
				 const char *why);

enum hr_etcd_member_mode {
	HR_ETCD_MEMBER_ACTIVE,
	HR_ETCD_MEMBER_LEAVING,  /* shut down, waiting for the verdict */
	HR_ETCD_MEMBER_ALONE,    /* told LEAVE_OWN */
	HR_ETCD_MEMBER_REVOKE,   /* waiting for the lease's revoke */
};

/* Embedded in a backend; the fields are the lease's (read-only). */
struct hr_etcd_lease_member {
	struct hr_link link;
	struct hr_regcore *core;
	hr_etcd_lease_cb cb;
	const char *key;         /* the member's key (borrowed) */
	enum hr_etcd_member_mode mode;
	struct hr_etcd_lease *lease;
	/* Set by the caller (may be NULL): after a loss, right after the
	 * new grant, the value the member's key should hold now (malloc'ed,
	 * taken), or NULL for none; the lease puts it in a txn with the
	 * others' and tells PUT_DONE or PUT_FAILED. */
	char *(*value)(struct hr_etcd_lease_member *m);
	bool batched;            /* its re-put is the lease's: wait */
	int64_t rev;             /* with ADOPT and PUT_DONE: the
				    mod_revision of why (0: not known) */
};

/*
 * Attach m (its core, cb and key set by the caller) to the open lease that
 * matches conf, user, password (NULL: no auth) and core's loop, http and
 * TLS, or to a new one (which starts authenticating or granting at once).
 * password is copied (and wiped at free). Returns 0 with m->lease set, or
 * -ENOMEM (m is not attached). When the lease is ready already, no event
 * follows: check hr_etcd_lease_ready().
 */
int hr_etcd_lease_attach(struct hr_etcd_lease_member *m,
			 const struct hr_etcd_conf *conf, const char *user,
			 const char *password, struct hr_err *err);
/* Drop m; the last member frees the lease. NULL-safe for an m never
 * attached (m->lease NULL). */
void hr_etcd_lease_detach(struct hr_etcd_lease_member *m);

/* The lease ID (0: none now) and whether members may write under it (an
 * ID and, with auth, a token). */
int64_t hr_etcd_lease_id(const struct hr_etcd_lease *l);
bool hr_etcd_lease_ready(const struct hr_etcd_lease *l);
/* The TTL etcd granted, in seconds (the configured one before a grant). */
int64_t hr_etcd_lease_ttl_s(const struct hr_etcd_lease *l);
/* The token (NULL: none; borrowed until the next event) and its
 * generation, which changes with every new or dropped token. */
const char *hr_etcd_lease_token(const struct hr_etcd_lease *l,
				unsigned *gen);
/* After a loss, the window over which members spread their own re-puts
 * when the lease's txn failed (0: put at once). */
int64_t hr_etcd_lease_spread_ms(const struct hr_etcd_lease *l);

/* A member's request under lease id was answered "lease not found": if
 * id is the current lease, it is lost (LOST to every member, a new
 * grant). */
void hr_etcd_lease_lost_seen(struct hr_etcd_lease *l, int64_t id,
			     const char *why);
/* A member's request with the token of generation gen got 401: drop it
 * (if it is still the current one) and authenticate again; READY
 * follows. */
void hr_etcd_lease_token_refused(struct hr_etcd_lease *l, unsigned gen);

/*
 * m goes (destroyed, or shutting down alone) while its key holds value
 * (copied) under the lease, written at mod_revision rev (0: not known). Another active member with the same key (a
 * reload's new backend for the same instance) adopts it (ADOPT, why =
 * value): the delete-if-lease txn would hold, the lease being the same,
 * and would take that member's registration. Returns true then. Else,
 * when m is destroyed (queue true) and others stay on the lease, the
 * lease deletes the key itself (delete-if-lease, and if rev is known
 * only while the key is unchanged since: a later put of another member
 * stays), as the keepalive the
 * others keep going would otherwise keep it forever; a member with that
 * key attaching before the delete is sent adopts it instead. Returns
 * false (nothing adopted). A re-put after a loss whose member went is
 * likewise adopted when it is answered (or else deleted), and so is a
 * gone member's key when a member for it is there by the time its delete
 * would be sent.
 */
bool hr_etcd_lease_hand_over(struct hr_etcd_lease_member *m,
			     const char *value, int64_t rev, bool queue);

/* The member's backend is shutting down (mode LEAVING). On the next loop
 * iteration the lease gives its verdict (LEAVE_OWN or REVOKED). */
void hr_etcd_lease_leave(struct hr_etcd_lease_member *m);

/* Counters for tests and the benchmark: requests the lease sent. */
struct hr_etcd_lease_counts {
	uint64_t grants, keepalives, revokes, auths;
	uint64_t put_txns, deletes;
	size_t members;
};
void hr_etcd_lease_counts(const struct hr_etcd_lease *l,
			  struct hr_etcd_lease_counts *out);
/* The number of open leases on every loop (tests). */
size_t hr_etcd_lease_open_count(void);

#endif
