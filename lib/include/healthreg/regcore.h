/*
 * regcore.h - the work every registry backend shares, written once (the
 * way curl's vtls.c serves every TLS backend): one request at a time on
 * the shared libcurl multi handle with a capped capture of the answer,
 * the stats the agent reports, retry backoff with jitter, the
 * register_when / deregister_after grace period, the shutdown deadline,
 * and done() delivered on a fresh loop iteration.
 *
 * A backend (plugin/consul, plugin/etcd) keeps only what is its own: its
 * config schema, payload builders, reply classifier and its decision of
 * what to send next. It embeds one struct hr_regcore in its instance and
 * gets its instance back in the callbacks with hr_container_of().
 *
 *   backend apply()/maintenance() ---------------------------.
 *   retry timer, grace timer ----> ops->kick(core) <---------'
 *                                    |  hr_regcore_send()
 *   transfer done ----> ops->reply(core, reply) -> stats -> ops->kick()
 *   shutdown: hr_regcore_shutdown() ... hr_regcore_finish() or deadline
 *             -> zero timer -> done(payload)   (never from inside a call)
 *
 * Lifetime rules:
 *  - The core owns: its copy of the service spec (c->service, copied from
 *    env->service at init: nothing points into the agent's struct
 *    hr_config afterwards), the request in flight (easy handle, body copy,
 *    captured answer) and every watcher. hr_regcore_dispose() cancels the
 *    request without a reply, stops every watcher and frees them; it never
 *    calls done().
 *  - Borrowed for the core's whole life: env->loop, env->http, env->stats
 *    (may be NULL; the agent owns it and keeps it valid until destroy).
 *  - Borrowed per request: the header and connect-to lists and the Unix
 *    socket path given to hr_regcore_send() must live until the reply
 *    arrives or the request is cancelled; the url and body are copied.
 *  - TLS (hr_regcore_tls()): the core keeps its own copy of the settings
 *    and of the CA certificates read from ca_path, and applies them to
 *    every request it sends, in one place for every backend.
 *  - Callbacks: ops->reply and ops->kick run on the loop, from libcurl's
 *    completion or a timer, never from inside a call of the backend into
 *    the core. reply() may not send (the core calls kick() right after
 *    it); kick() may send. None of them may destroy the backend.
 *  - done() runs from the core's own zero timer, on a loop iteration
 *    after the one in which the shutdown finished, exactly once per
 *    hr_regcore_shutdown(); the core touches nothing after calling it,
 *    so done() may dispose of the core (destroy the backend).
 */
#ifndef HEALTHREG_REGCORE_H
#define HEALTHREG_REGCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ev.h>

#include "healthreg/config.h"
#include "healthreg/journal.h"
#include "healthreg/registry.h"
#include "healthreg/util.h"

struct hr_regcore;

/* The answer, as ops->reply sees it. */
struct hr_reg_reply {
	CURLcode rc;
	long status;         /* HTTP status; 0 when rc != CURLE_OK */
	const char *body;    /* head of the body, NUL-terminated, never NULL */
	size_t len;          /* bytes in body */
	bool truncated;      /* more came than the capture keeps */
	const char *errbuf;  /* libcurl's detail ("" when none) */
};

/* What a backend plugs into the core. reply and kick are required. */
struct hr_regcore_ops {
	/*
	 * The request finished (reply is valid for the call only). Returns
	 * whether it succeeded: counted in env->stats as a write or an error.
	 * Must not send; the core calls kick() once reply() returns.
	 */
	bool (*reply)(struct hr_regcore *c, const struct hr_reg_reply *r);
	/* Decide and send what comes next (or nothing). */
	void (*kick)(struct hr_regcore *c);
	/* The grace period ran out (wanted is already false); kick() follows.
	 * May be NULL. */
	void (*grace_over)(struct hr_regcore *c);
	/* The shutdown deadline passed; the core finishes the shutdown once
	 * this returns (for a log line). May be NULL. */
	void (*deadline)(struct hr_regcore *c);
};

/* One request. Strings are copied except where noted. */
struct hr_reg_req {
	const char *method;       /* "PUT", "POST", "GET" (no body) */
	const char *url;
	const char *body;         /* NULL: empty */
	bool secret_body;         /* wipe the copy at release (passwords) */
	struct curl_slist *headers;    /* borrowed until reply/cancel */
	struct curl_slist *connect_to; /* borrowed likewise; may be NULL */
	const char *unix_socket;  /* connect here instead (borrowed); NULL */
	long timeout_ms;          /* whole transfer; 0: none */
	long connect_timeout_ms;  /* 0: libcurl's default */
	bool http11;              /* force HTTP/1.1 */
	/* Ahead of the requests waiting for the same registry (see
	 * HR_REGCORE_LANE_MAX): a request that serves every backend (etcd's
	 * shared lease: its keepalive must not wait behind 1,000 puts). */
	bool urgent;
};

/*
 * Requests in flight to one registry address (scheme://host:port, or the
 * Unix socket) from one struct hr_http, across every backend instance:
 * the others wait their turn (hr_http_start_lane()). An agent with 1,000
 * services opens at most this many connections to its registry, not
 * 1,000 (Consul's limits.http_max_conns_per_client is 200 by default,
 * and answers one more with 429).
 */
#define HR_REGCORE_LANE_MAX 8

/* TLS as the core applies it to every request (see hr_regcore_tls()). */
struct hr_reg_tls {
	char *ca_file;        /* NULL: see ca_blob */
	char *cert_file, *key_file;
	char *ca_blob;        /* the certificates of ca_path, PEM; NULL */
	size_t ca_blob_len;
	bool skip_verify;
};

struct hr_regcore {
	/* read-only for the backend */
	struct ev_loop *loop;
	struct hr_http *http;
	struct hr_registry_stats *stats; /* env->stats, or own_stats */
	/* Seconds between the reminders while the registry stays down
	 * (default HR_REGCORE_REMIND_S; tests shorten it). */
	double remind_every_s;
	struct hr_service_spec service; /* the core's own copy */
	struct hr_rng rng;

	/* private */
	const struct hr_regcore_ops *ops;
	CURL *easy;
	char *body;
	bool secret_body, in_reply;
	struct hr_capture resp;
	char errbuf[CURL_ERROR_SIZE];
	ev_timer retry, grace, deadline, done_timer;
	struct hr_reg_tls tls;
	unsigned register_when;
	int64_t deregister_after_ms;
	bool have_status, wanted;
	bool shutting_down, finished;
	hr_registry_done_cb done;
	void *done_payload;
	char why[256];          /* hr_regcore_why() for the reply at hand */
	struct hr_journal *journal; /* env->journal (borrowed), or NULL */
	bool dry_run;           /* decisions only: see hr_regcore_dry_run() */
	bool have_told;
	enum hr_status told;    /* the last status given to _status() */
	double remind_at;       /* ev_now() of the next reminder */
	struct hr_registry_stats own_stats; /* when env->stats is NULL */
	/* Set by the owner after init: no registry_unreachable/_reachable
	 * lines for this core's answers, because they are accounted to the
	 * cores they serve with hr_regcore_note() (etcd's shared lease). */
	bool quiet;
};

#define HR_REGCORE_REMIND_S 60.0

/*
 * Set up c for one backend instance: copies env->service (NULL: an empty
 * spec), borrows loop, http and stats, keeps at most resp_max bytes of
 * each answer. Returns 0 or -ENOMEM (c is disposed, dispose is harmless).
 */
int hr_regcore_init(struct hr_regcore *c, const struct hr_regcore_ops *ops,
		    const struct hr_registry_env *env, size_t resp_max);
/* Cancel the request (no reply), stop every watcher, free the copy.
 * done() is not called. Idempotent after init. */
void hr_regcore_dispose(struct hr_regcore *c);

/* ---- requests ---------------------------------------------------------- */

/*
 * Start q. Returns 0 (ops->reply follows, from the loop), -EBUSY (a
 * request is in flight, or called from reply()), -ECANCELED (the shutdown
 * has finished) or another negative errno (nothing started).
 */
int hr_regcore_send(struct hr_regcore *c, const struct hr_reg_req *q);
/* Drop the request in flight without a reply. Idempotent. */
void hr_regcore_cancel(struct hr_regcore *c);
/* A request is in flight. */
bool hr_regcore_busy(const struct hr_regcore *c);
/* Nothing in flight, no retry pending, shutdown not finished: the
 * backend may send now. */
bool hr_regcore_idle(const struct hr_regcore *c);

/* ---- state --------------------------------------------------------------- */

/*
 * The core keeps whether the registry is up in c->stats (failures,
 * unreachable, failing_since, last_error) from every reply, and logs the
 * changes only: registry_unreachable (warn; no answer, a timeout or a
 * 5xx) or registry_failing (error; a refusal) at the first failure,
 * registry_still_unreachable / registry_still_failing with the count of
 * failed attempts every remind_every_s while it lasts, and
 * registry_reachable with the count and the time it was down once a
 * request succeeds. A backend logs its own retries at debug level only.
 */

/* From ops->reply, before it returns false: why the request failed, one
 * line (copied, cut to 255 bytes). Without it the core says what libcurl
 * or the HTTP status and the head of the answer said. */
void hr_regcore_why(struct hr_regcore *c, const char *text);
/*
 * Account an answer that another core received on c's behalf (a request
 * several backends share: etcd's one lease for all of an agent's keys):
 * c->stats counts it, and c's up/down state and its log lines follow it
 * as if c had sent the request. why: as hr_regcore_why() (NULL or "":
 * the generic text). Cannot fail.
 */
void hr_regcore_note(struct hr_regcore *c, const struct hr_reg_reply *r,
		     bool ok, const char *why);
/* What the registry holds now: the backend calls it where it registered,
 * deregistered, entered maintenance or found its registration lost. */
void hr_regcore_state(struct hr_regcore *c, enum hr_registry_state s);

/* ---- decisions ---------------------------------------------------------- */

/*
 * Record a registry decision in the agent's journal (env->journal) and
 * the log: one entry with the time, the service id, the backend
 * (stats->name), the status last given to hr_regcore_status(), the
 * aggregate and the checks that caused it (filled by the journal's
 * context: the agent's checks), why (one line, cut to 255 bytes) and
 * whether the core is in a dry run.
 *
 * The core records by itself: "register" when the registration turns
 * wanted (and when a status comes back into register_when during the
 * grace period), "deregister" when it turns unwanted (a first status
 * outside register_when, a status without grace period, the grace period
 * over), "deregister_pending" when the grace period starts, "shutdown"
 * at hr_regcore_shutdown(). A backend calls this for what only it
 * sees or decides: HR_DECISION_LOST where the registry dropped a
 * registration that is still wanted (etcd's lease lost, Consul's
 * registration gone), HR_DECISION_KEPT when the fleet floor keeps the
 * instance: hr_regcore_decide(core, HR_DECISION_KEPT,
 * "kept by fleet floor: 1 of 3 healthy"). Cannot fail.
 */
void hr_regcore_decide(struct hr_regcore *c, enum hr_decision d,
		       const char *why);

/*
 * The registry's "dry_run": true (a common key, hr_reg_conf_dry_run()).
 * The agent then does not create the backend itself but hr_registry_dry
 * in its place (hr_regcore_dry_ops()): the same core (register_when, the
 * grace period, shutdown), so every decision is computed, journaled and
 * logged as the backend would make it, with dry_run true, and no request
 * at all reaches the registry. Its stats show dry_run true, state the
 * word "dry_run" (hr_api_registry_state) and registration what would be
 * registered; writes and errors stay 0.
 */
bool hr_reg_conf_dry_run(const cJSON *conf);
/* The ops of a dry run standing in for real (name, validate and preflight
 * are real's; a maintenance op only if real has one, so the agent treats
 * it alike). Cannot fail. */
void hr_regcore_dry_ops(struct hr_registry_ops *out,
			const struct hr_registry_ops *real);

/* ---- retries ------------------------------------------------------------ */

/*
 * Backoff for the attempt-th consecutive failure, counted from 1: base
 * doubled per attempt after the first, capped at cap, then jitter in
 * [d/2, d) with rnd uniform in [0, 1) (clamped). Pure.
 */
int64_t hr_reg_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms,
			  double rnd);
/* Arm the retry timer for ms; ops->kick runs when it fires. While it runs
 * hr_regcore_idle() is false. */
void hr_regcore_retry_in(struct hr_regcore *c, int64_t ms);
/* hr_regcore_retry_in(hr_reg_backoff_ms(attempt, base, cap, jitter)). */
void hr_regcore_backoff(struct hr_regcore *c, unsigned attempt,
			int64_t base_ms, int64_t cap_ms);
void hr_regcore_retry_stop(struct hr_regcore *c);

/* ---- register_when / deregister_after ----------------------------------- */

/* The statuses (1u << enum hr_status) to be registered in, and the grace
 * period after leaving them (0: none). */
void hr_regcore_grace_setup(struct hr_regcore *c, unsigned register_when,
			    int64_t deregister_after_ms);
/*
 * A new aggregate status. Returns whether it is in register_when. The
 * registration stays wanted while it is, and for deregister_after after
 * it left; then wanted turns false and ops->grace_over and ops->kick run.
 * now: leave at once, without a grace period (nothing is registered).
 */
bool hr_regcore_status(struct hr_regcore *c, enum hr_status s, bool now);
/* A status was given and the registration is wanted. */
bool hr_regcore_wanted(const struct hr_regcore *c);
bool hr_regcore_in_grace(const struct hr_regcore *c);

/* ---- shutdown ----------------------------------------------------------- */

/*
 * Begin the shutdown: remember done, stop the retry and grace timers and
 * arm the deadline (deadline_ms <= 0: none). The request in flight stays;
 * the backend cancels it if it must. Returns -EALREADY when a shutdown
 * was begun before (nothing changes), else 0.
 */
int hr_regcore_shutdown(struct hr_regcore *c, hr_registry_done_cb done,
			void *payload, int64_t deadline_ms);
/* Finish it: cancel the request, stop every timer, and schedule done()
 * for the next loop iteration. Idempotent. */
void hr_regcore_finish(struct hr_regcore *c);
bool hr_regcore_shutting_down(const struct hr_regcore *c);
bool hr_regcore_finished(const struct hr_regcore *c);

/* ---- config schema ------------------------------------------------------ */

enum hr_reg_field_kind {
	HR_REG_STRING,    /* char *, hr_conf_string */
	HR_REG_NONEMPTY,  /* char *, hr_conf_nonempty_string */
	HR_REG_DURATION,  /* int64_t ms, hr_conf_duration */
	HR_REG_STATUSES,  /* unsigned mask, hr_conf_statuses */
	HR_REG_BOOL,      /* bool, hr_conf_bool */
};

/* What every backend's config has: TLS and the grace period. Strings are
 * owned. */
struct hr_reg_conf {
	char *ca_file, *cert_file, *key_file; /* NULL: none */
	char *ca_path;               /* a directory of PEM CA certificates;
					ignored when ca_file is set */
	bool tls_skip_verify;        /* no certificate or host name check */
	unsigned register_when;      /* 1u << enum hr_status; default
					passing and warning */
	int64_t deregister_after_ms; /* default 0 */
	bool dry_run;                /* default false; see
					hr_reg_conf_dry_run() */
};

/* Defaults. Cannot fail. */
void hr_reg_conf_init(struct hr_reg_conf *c);
/* Free the strings; *c is zeroed. */
void hr_reg_conf_dispose(struct hr_reg_conf *c);
/* Rules between the common values (key_file needs cert_file; warnings for
 * tls_skip_verify and for a ca_path that ca_file overrides), reported under
 * path. 0 or -EINVAL. */
int hr_reg_conf_check(const struct hr_reg_conf *c, const char *path,
		      struct hr_diag *d);

/* One key of a backend's config object and the member it fills. */
struct hr_reg_field {
	const char *key;
	enum hr_reg_field_kind kind;
	size_t off;  /* offsetof() the member in the backend's conf struct */
};

/*
 * Read member v (a child of the object at path) with the shared getters of
 * healthreg/confget.h, so every backend words its errors alike
 * ("<path>.<key>: ..."): a key of fields goes into the struct at conf, a
 * common key (ca_file, cert_file, key_file, ca_path, tls_skip_verify,
 * register_when, deregister_after, dry_run) into *common, anything else is an "unknown key".
 * Pure. Returns 0, -EINVAL (reported in d) or -ENOMEM.
 */
int hr_reg_conf_member(const struct hr_reg_field *fields, size_t n,
		       void *conf, struct hr_reg_conf *common,
		       const cJSON *v, const char *path, struct hr_diag *d);

/* ---- TLS --------------------------------------------------------------- */

/*
 * I/O, for `healthreg validate` and create(): the TLS files of c can be
 * used. ca_file and cert_file are readable regular files holding a PEM
 * certificate; key_file (or, without it, cert_file) a PEM private key;
 * ca_path a directory whose every regular file holds PEM certificates (as
 * Consul's client reads CAPath; subdirectories are skipped). Each problem
 * goes to d as "<path>.<key>: <file>: <why>" (names[] may rename a key
 * for values that came from elsewhere, e.g. "CONSUL_CACERT"; NULL: the
 * config keys). Returns 0 or -EINVAL.
 */
struct hr_reg_tls_names {
	const char *ca_file, *ca_path, *cert_file, *key_file; /* NULL: key */
};
int hr_reg_tls_check_files(const struct hr_reg_conf *c, const char *path,
			   const struct hr_reg_tls_names *names,
			   struct hr_diag *d);

/*
 * Take c's TLS settings for every later request of core: copies the file
 * names, reads ca_path's certificates (when ca_file is not set) after the
 * checks of hr_reg_tls_check_files(), and with tls_skip_verify logs the
 * warning "registry_tls_unverified" naming registry and where (an
 * address), every time it is called (each backend built, reloads too).
 * Returns 0, or a negative errno with err naming the key and the file.
 */
int hr_regcore_tls(struct hr_regcore *core, const struct hr_reg_conf *c,
		   const char *registry, const char *where,
		   const struct hr_reg_tls_names *names, struct hr_err *err);

/*
 * Pure: did a transfer fail in TLS (handshake, certificate, verification,
 * a TLS alert such as "certificate required" read after the handshake)?
 * errbuf is libcurl's detail (may be NULL).
 */
bool hr_reg_tls_failed(CURLcode rc, const char *errbuf);

/* curl's reason for a failed transfer, one line: "<strerror>: <detail>"
 * (or either alone) into buf. Cannot fail. */
const char *hr_reg_curl_reason(CURLcode rc, const char *errbuf, char *buf,
			       size_t len);

/* ---- headers with secrets ----------------------------------------------- */

/*
 * Append "name: value" to *list (NULL: a new list); the temporary line is
 * wiped. Returns 0, -EINVAL (value holds CR or LF, or is over 8 KiB) or
 * -ENOMEM; on an error *list is unchanged.
 */
int hr_reg_header_add(struct curl_slist **list, const char *name,
		      const char *value);
/* Wipe every line (tokens), then free the list. NULL-safe. */
void hr_reg_headers_free(struct curl_slist *list);

#endif
