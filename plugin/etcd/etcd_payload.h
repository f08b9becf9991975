/*
 * etcd_payload.h - the pure half of the etcd registry backend: config
 * parsing, key/value and request-body building, and the classification of
 * etcd v3 JSON-gateway replies. No loop, no curl, no I/O: buffer in,
 * struct or string out, so every function is unit-tested on its own
 * (tests/unit/test_etcd_payload.c). etcd.c is the I/O shell around it.
 *
 * Strings returned as `char *` are allocated with malloc() and owned by
 * the caller (free()). A NULL return always means out of memory.
 */
#ifndef HR_ETCD_PAYLOAD_H
#define HR_ETCD_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "healthreg/config.h"
#include "healthreg/error.h"
#include "healthreg/regcore.h"
#include "healthreg/status.h"

#define HR_ETCD_DEFAULT_ENDPOINT "http://127.0.0.1:2379"
#define HR_ETCD_DEFAULT_PREFIX "services/"
#define HR_ETCD_DEFAULT_LEASE_TTL_MS 10000
#define HR_ETCD_DEFAULT_REQUEST_TIMEOUT_MS 2000
/* etcd raises any lease TTL below this (with default election timeouts). */
#define HR_ETCD_MIN_LEASE_TTL_MS 2000

/* What the value under the key holds (docs/etcd.md, "Key and value"). */
enum hr_etcd_value_format {
	/* {"Op":0,"Addr":"host:port"}: what etcd's gRPC resolver and every
	 * standard balancer take; it does not change with the status. */
	HR_ETCD_VALUE_GRPC,
	/* The same with "Metadata":{id,status,tags,meta}, for custom
	 * watchers: round_robin clients panic on it (a map as metadata). */
	HR_ETCD_VALUE_DOCUMENT,
};

/* The parsed "registry.etcd" object. Every string is owned. */
struct hr_etcd_conf {
	char **endpoints;          /* base URLs without a trailing '/' */
	size_t n_endpoints;
	char *prefix;              /* "a/", "/a/b/": segments, each with '/' */
	enum hr_etcd_value_format value_format;
	int64_t lease_ttl_ms;      /* a whole number of seconds */
	struct hr_reg_conf common; /* TLS files, register_when,
				      deregister_after */
	char *username;            /* NULL: use ETCD_USERNAME if set */
	char *password_file;       /* NULL: use ETCD_PASSWORD if set */
	int64_t request_timeout_ms;
	/* The fleet floor (docs/etcd.md, "The fleet floor"): 0 = off, else
	 * an instance that turns critical leaves only while at least this
	 * many other keys of the service stay registered. */
	int min_healthy;
};

/* etcd's default --max-txn-ops is 128, and it bounds the compares too:
 * the floor's txn compares the own key twice (LEASE, MOD) and
 * min_healthy others, 2 + 126 = 128. */
#define HR_ETCD_MIN_HEALTHY_MAX 126

/**
 * Parse and validate conf (the "registry.etcd" object; NULL means all
 * defaults) named path in messages ("registry.etcd"). Every problem is
 * added to diag as "registry.etcd.key: problem"; unknown keys are errors.
 * Returns 0 with *out filled (dispose it), or -EINVAL with *out empty, or
 * -ENOMEM. diag may be NULL.
 */
int hr_etcd_conf_parse(struct hr_etcd_conf *out, const cJSON *conf,
		       const char *path, struct hr_diag *diag);

/** Free every member; the struct is zeroed and reusable. NULL-safe. */
void hr_etcd_conf_dispose(struct hr_etcd_conf *c);

/** True when status is one of conf's register_when statuses. */
bool hr_etcd_registrable(const struct hr_etcd_conf *c, enum hr_status s);

/**
 * The instance address "host:port" ("[v6]:port" for IPv6 literals) into
 * buf. host falls back to fallback_host when svc->address is NULL or "".
 * Returns 0, -EINVAL when there is no host or no port, or -ERANGE when
 * buf is too small.
 */
int hr_etcd_addr(const struct hr_service_spec *svc, const char *fallback_host,
		 char *buf, size_t len);

/** "<prefix><service name>/<addr>". */
char *hr_etcd_key(const char *prefix, const char *service, const char *addr);

/**
 * True when prefix can carry "<service>/<addr>": not empty, ending in
 * '/', no empty segment (an optional leading '/' aside), so "services"
 * ("servicesweb/..."), "", "/" and "services//" are refused.
 */
bool hr_etcd_prefix_ok(const char *prefix);

/**
 * The gRPC naming-resolver value (etcd's endpoints.Update):
 *   HR_ETCD_VALUE_GRPC      {"Op":0,"Addr":addr}  (svc, status unused)
 *   HR_ETCD_VALUE_DOCUMENT  {"Op":0,"Addr":addr,"Metadata":{"id":..,
 *                           "status":..,"tags":[..],"meta":{..}}}
 */
char *hr_etcd_value(const struct hr_service_spec *svc, const char *addr,
		    enum hr_status status, enum hr_etcd_value_format format);
/** The same with "note" (when not NULL) in the document's Metadata, after
 * "status"; the grpc value has no room for it (note unused). */
char *hr_etcd_value_note(const struct hr_service_spec *svc, const char *addr,
			 enum hr_status status,
			 enum hr_etcd_value_format format, const char *note);

/* Request bodies (int64 values are sent as decimal strings). */
char *hr_etcd_body_grant(int64_t ttl_s);
/** keepalive and revoke: {"ID":"<id>"} */
char *hr_etcd_body_lease(int64_t id);
char *hr_etcd_body_put(const char *key, const char *value, int64_t lease);
/**
 * A txn of n puts under lease, without compares (etcd applies them
 * together, at one revision): keys[i] = values[i]. n must be 1..128
 * (etcd's default --max-txn-ops); NULL when it is not, or out of memory.
 */
#define HR_ETCD_TXN_OPS_MAX 128
char *hr_etcd_body_puts(const char *const *keys, const char *const *values,
			size_t n, int64_t lease);
/** A txn deleting key only while it is still attached to lease. */
char *hr_etcd_body_delete_if_lease(const char *key, int64_t lease);
/** The same, and only while key is unchanged since the write at
 * mod_revision (MOD == mod_revision; 0: unknown, LEASE only). */
char *hr_etcd_body_delete_if_unchanged(const char *key, int64_t lease,
				       int64_t mod_revision);
char *hr_etcd_body_auth(const char *user, const char *password);

/* ---- the fleet floor ---------------------------------------------------- */

/* One key as a range read returned it. */
struct hr_etcd_kv {
	char *key;             /* decoded, owned */
	int64_t mod_revision;
	int64_t lease;         /* 0: none */
	bool critical;         /* a document value with status "critical" */
};

/* The keys under a service's directory, in etcd's (byte) order. */
struct hr_etcd_view {
	struct hr_etcd_kv *kvs;
	size_t n;
	int64_t revision;      /* the header's: the read's revision */
};

/** Free the keys; the view is zeroed. NULL-safe. */
void hr_etcd_view_dispose(struct hr_etcd_view *v);

/** "<prefix><service>/": the directory of a service's instance keys. */
char *hr_etcd_service_dir(const char *prefix, const char *service);

/**
 * A range read of every key under dir (range_end: dir with its last byte
 * + 1). keys_only: without the values (the grpc format has nothing in
 * them for the floor).
 */
char *hr_etcd_body_range_prefix(const char *dir, bool keys_only);

/* What the floor makes of a view for the own key. */
struct hr_etcd_floor {
	bool present;          /* the own key is in the view */
	bool ours;             /* ... under our lease */
	size_t registered;     /* keys in the view, the own one included */
	size_t healthy;        /* of them, not marked critical, own excluded */
	bool leave;            /* leaving keeps >= min_healthy others */
};

/**
 * Pure: may the instance at own_key (under lease) leave, with min_healthy
 * the floor? It may when the view holds at least min_healthy keys besides
 * its own. A key absent from the view, or under another lease, is not
 * ours to delete (present/ours false, leave false).
 */
void hr_etcd_floor_decide(const struct hr_etcd_view *v, const char *own_key,
			  int64_t lease, int min_healthy,
			  struct hr_etcd_floor *out);

/**
 * The txn that deletes own_key only if the view still holds for the
 * floor: own_key still under lease and unchanged (MOD == its
 * mod_revision), and the first min_healthy other keys of the view still
 * there, unchanged (MOD == their mod_revision; a deleted key's is 0, so
 * its compare fails). If they are, at least min_healthy others exist when
 * the delete happens: several instances deleting at once are serialized
 * by etcd, and a txn that fails is re-read and decided again. NULL on out
 * of memory, or when the view has no such keys (the caller decided
 * wrongly).
 */
char *hr_etcd_body_floor_delete(const struct hr_etcd_view *v,
				const char *own_key, int64_t lease,
				int min_healthy);

/** "kept by fleet floor: 1 of 3 healthy (min_healthy 2)" into buf. */
void hr_etcd_floor_note(const struct hr_etcd_floor *f, int min_healthy,
			char *buf, size_t len);

/** Standard base64 with padding. */
char *hr_etcd_b64(const void *data, size_t len);
/**
 * Decode standard base64 (padding optional). Returns a NUL-terminated
 * buffer (length in *len_out, may be NULL) or NULL on bad input or OOM.
 */
char *hr_etcd_b64_decode(const char *s, size_t *len_out);

/**
 * An int64 as etcd's gateway sends it: a decimal string ("-1", "10",
 * "7587870000000000001") or an integral JSON number. 0 or -EINVAL.
 */
int hr_etcd_int64(const cJSON *item, int64_t *out);

/* Which call a reply answers: classification depends on it. */
enum hr_etcd_op {
	HR_ETCD_OP_AUTH,
	HR_ETCD_OP_GRANT,
	HR_ETCD_OP_KEEPALIVE,
	HR_ETCD_OP_PUT,
	HR_ETCD_OP_DELETE,   /* the delete-if-lease txn */
	HR_ETCD_OP_REVOKE,
	HR_ETCD_OP_RANGE,    /* the floor's read of the service's keys */
	HR_ETCD_OP_FLOOR_DELETE, /* the floor's guarded delete txn */
	HR_ETCD_OP_PUTS,     /* a txn of puts (the shared lease's re-puts) */
};

/** "authenticate", "grant", ... for logs. */
const char *hr_etcd_op_name(enum hr_etcd_op op);

/* What the backend should do about a reply. */
enum hr_etcd_result {
	HR_ETCD_OK,
	HR_ETCD_LEASE_LOST,    /* grant a new lease and register again */
	HR_ETCD_AUTH_EXPIRED,  /* token missing/invalid: authenticate again */
	HR_ETCD_AUTH_DENIED,   /* bad credentials or permission: config */
	HR_ETCD_UNAVAILABLE,   /* transport error or 5xx: next endpoint */
	HR_ETCD_FAILED,        /* anything else: retry later */
};

const char *hr_etcd_result_name(enum hr_etcd_result r);

struct hr_etcd_reply {
	enum hr_etcd_result result;
	long http_status;
	int grpc_code;         /* -1 when the body named none */
	char message[160];     /* etcd's error text, or ours */
	int64_t id;            /* grant, keepalive: lease ID (0 absent) */
	int64_t ttl;           /* grant, keepalive: TTL s (0 absent) */
	bool succeeded;        /* delete txn: compare held */
	int64_t revision;      /* put, txn of puts: the header's revision,
				  the mod_revision of what it wrote (0:
				  absent) */
	char *token;           /* auth: owned; hr_etcd_reply_dispose() */
	struct hr_etcd_view view; /* range: owned; hr_etcd_reply_dispose() */
};

/**
 * Classify one reply. http_status 0 means no HTTP reply at all (the
 * caller's transport error): UNAVAILABLE. Cannot fail; out of memory while
 * parsing is reported as FAILED.
 */
void hr_etcd_reply_parse(enum hr_etcd_op op, long http_status,
			 const char *body, size_t len,
			 struct hr_etcd_reply *out);

/** Free the token and the view. NULL-safe, idempotent. */
void hr_etcd_reply_dispose(struct hr_etcd_reply *r);

#endif
