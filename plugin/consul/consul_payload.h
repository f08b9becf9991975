/*
 * consul_payload.h - the pure half of the Consul backend: configuration,
 * request URLs and bodies, output preparation and response classification.
 * No loop, no curl, no file or network I/O; consul.c is the thin I/O shell
 * around these functions.
 *
 * These names are shared between plugin/consul files and its unit tests
 * only; the backend's one public symbol is hr_registry_consul (consul.h).
 */
#ifndef HR_CONSUL_PAYLOAD_H
#define HR_CONSUL_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "healthreg/config.h"
#include "healthreg/error.h"
#include "healthreg/regcore.h"
#include "healthreg/status.h"

/* Consul's default check_output_max_size, in bytes, and the bounds of
 * registry.consul.check_output_max_size. */
#define HR_CONSUL_OUTPUT_MAX 4096
#define HR_CONSUL_OUTPUT_MAX_MAX (1024 * 1024)
/* Consul's check_deregister_interval_min: it raises a smaller DCSA to it. */
#define HR_CONSUL_DCSA_FLOOR_MS 60000

#define HR_CONSUL_DEFAULT_ADDR "http://127.0.0.1:8500"
#define HR_CONSUL_DEFAULT_TTL_MS 30000
#define HR_CONSUL_DEFAULT_DCSA_MS 60000
#define HR_CONSUL_MIN_TTL_MS 1000

/* Suffix of the one TTL check's ID: "service:<service-id>:healthreg". */
#define HR_CONSUL_CHECK_SUFFIX ":healthreg"

/*
 * The variables of the official Consul client (hashicorp/consul api/api.go)
 * that healthreg honours where the config is silent, passed in so parsing
 * stays pure. NULL or "" means unset, as for the official client. The
 * strings are borrowed for the parse only.
 */
struct hr_consul_env {
	const char *http_addr;       /* CONSUL_HTTP_ADDR */
	const char *http_token;      /* CONSUL_HTTP_TOKEN (a secret) */
	const char *http_token_file; /* CONSUL_HTTP_TOKEN_FILE */
	const char *http_ssl;        /* CONSUL_HTTP_SSL: a Go boolean */
	const char *http_ssl_verify; /* CONSUL_HTTP_SSL_VERIFY: likewise */
	const char *cacert;          /* CONSUL_CACERT */
	const char *capath;          /* CONSUL_CAPATH */
	const char *client_cert;     /* CONSUL_CLIENT_CERT */
	const char *client_key;      /* CONSUL_CLIENT_KEY */
	const char *tls_server_name; /* CONSUL_TLS_SERVER_NAME */
};

/* An environment lookup (getenv() in the agent, a table in tests). */
typedef const char *(*hr_consul_getenv_cb)(const char *name, void *payload);

/** Fill env with get(name) for every variable above. Pure given get;
 * the strings stay get's. Cannot fail. */
void hr_consul_env_read(struct hr_consul_env *env, hr_consul_getenv_cb get,
			void *payload);

/* The validated "registry.consul" object. Strings are owned. */
struct hr_consul_conf {
	char *address;          /* "http[s]://host[:port]", no trailing '/',
				   or "unix:///path" */
	char *unix_path;        /* unix://: the socket; NULL for TCP */
	bool tls;               /* https (also over a Unix socket) */
	char *token_file;       /* config key, else CONSUL_HTTP_TOKEN_FILE */
	bool token_file_from_env;
	char *token;            /* CONSUL_HTTP_TOKEN when no file; secret */
	char *tls_server_name;  /* config key, else CONSUL_TLS_SERVER_NAME */
	int64_t check_ttl_ms;
	int64_t dcsa_ms;        /* 0 = not sent (no crash safety net) */
	int output_max;         /* check_output_max_size, bytes */
	struct hr_reg_conf common; /* TLS, register_when, deregister_after:
				      with tls, the CONSUL_* TLS variables
				      fill what the config leaves unset */
	struct hr_reg_tls_names tls_names; /* the variable a TLS file came
					      from, for messages */
	/* The fleet floor (docs/consul.md, "The fleet floor"): off while
	 * min_healthy is 0 and max_unhealthy_fraction is 1. */
	int min_healthy;              /* 0..HR_CONSUL_FLOOR_MAX */
	double max_unhealthy_fraction; /* 0..1; 1 = no limit */
};

#define HR_CONSUL_FLOOR_MAX 10000

/** Zero a conf. Cannot fail. */
void hr_consul_conf_init(struct hr_consul_conf *c);
/** Free its strings (the token is wiped first); reusable afterwards. */
void hr_consul_conf_dispose(struct hr_consul_conf *c);

/**
 * Validate conf (the "registry.consul" value; NULL means {}) under path and
 * fill out with defaults applied, the environment filling what the config
 * leaves unset (the config wins):
 *   address  config, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500; forms
 *            host:port, http://, https://, unix:///path. Without a scheme
 *            CONSUL_HTTP_SSL=true means https; it also turns an http://
 *            CONSUL_HTTP_ADDR into https (as the official client never
 *            reverts to http when TLS was asked for), and unix:// into
 *            TLS over the socket. A config "http://" stays http.
 *   TLS      (only with tls) ca_file, ca_path, cert_file, key_file,
 *            tls_server_name, tls_skip_verify, else CONSUL_CACERT,
 *            CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY,
 *            CONSUL_TLS_SERVER_NAME (a port is dropped),
 *            CONSUL_HTTP_SSL_VERIFY=false.
 *   token    token_file, else CONSUL_HTTP_TOKEN_FILE, else
 *            CONSUL_HTTP_TOKEN.
 * A variable that is not a Go boolean (CONSUL_HTTP_SSL, _SSL_VERIFY) is an
 * error naming it. Every problem goes to diag as "<path>.<key>: problem"
 * (or "<path>: CONSUL_...: problem"). env may be NULL. Returns 0, -EINVAL
 * (errors in diag; out is disposed) or -ENOMEM.
 */
int hr_consul_conf_parse(struct hr_consul_conf *out, const cJSON *conf,
			 const char *path, const struct hr_consul_env *env,
			 struct hr_diag *diag);

/** The refresh period: a third of the TTL. */
int64_t hr_consul_update_period_ms(const struct hr_consul_conf *c);

/** Should the service be registered while the aggregate is s? UNKNOWN
 * counts as critical. */
bool hr_consul_wants(const struct hr_consul_conf *c, enum hr_status s);

/** Consul's status word for s; UNKNOWN maps to "critical". */
const char *hr_consul_status_word(enum hr_status s);

/** Split "http[s]://host[:port][/]" (host may be "[v6]"). The host is
 * written without brackets. Returns 0 or -EINVAL. */
int hr_consul_addr_split(const char *addr, bool *tls, char *host,
			 size_t host_len, int *port);

/** "service:<service_id>:healthreg", malloc'd; NULL on ENOMEM. */
char *hr_consul_check_id(const char *service_id);

/**
 * URLs, malloc'd (free()); NULL on ENOMEM. IDs are percent-encoded.
 *   register:    <base>/v1/agent/service/register (checks of the service
 *                that are not in the request, such as an operator's
 *                maintenance check, are kept)
 *   update:      <base>/v1/agent/check/update/<check_id>
 *   deregister:  <base>/v1/agent/service/deregister/<service_id>
 *   maintenance: <base>/v1/agent/service/maintenance/<id>?enable=..&reason=..
 */
char *hr_consul_url_register(const char *base);
char *hr_consul_url_update(const char *base, const char *check_id);
char *hr_consul_url_deregister(const char *base, const char *service_id);
char *hr_consul_url_maintenance(const char *base, const char *service_id,
				bool enable, const char *reason);

/**
 * Make output safe and small: invalid UTF-8 bytes become U+FFFD, and text
 * longer than max bytes (the agent's check_output_max_size; 0 means
 * HR_CONSUL_OUTPUT_MAX) keeps its head (cut on a character boundary)
 * followed by Consul's own marker " ... (captured K of N bytes)", the whole
 * fitting in max so the agent stores it as is and never cuts a character.
 * When max is too small for the marker, the head alone is kept. NULL means
 * "". Returns a malloc'd string, NULL on ENOMEM.
 */
char *hr_consul_output_prepare(const char *output, size_t max);

/**
 * Check service fields against Consul's own rules for a registration
 * (structs.ValidateServiceMetadata, the Address the register handler
 * refuses): every problem goes to diag under path ("service"), e.g.
 * "service.meta.<key>: ...". 0 or -EINVAL.
 */
int hr_consul_service_check(const struct hr_service_spec *svc,
			    const char *path, struct hr_diag *diag);

/**
 * The register body (ID, Name, Tags, Address, Port, Meta and one TTL Check
 * with initial Status s), malloc'd into *out. Returns 0 or -ENOMEM.
 */
int hr_consul_register_body(char **out, const struct hr_service_spec *svc,
			    const struct hr_consul_conf *c, enum hr_status s);

/** {"Status":..,"Output":..} with output prepared for max bytes (see
 * hr_consul_output_prepare). 0 or -ENOMEM. */
int hr_consul_update_body(char **out, enum hr_status s, const char *output,
			  size_t max);

enum hr_consul_op {
	HR_CONSUL_OP_REGISTER,
	HR_CONSUL_OP_UPDATE,
	HR_CONSUL_OP_DEREGISTER,
	HR_CONSUL_OP_MAINTENANCE,
	HR_CONSUL_OP_FLOOR_READ,  /* GET the leaver list (404: none) */
	HR_CONSUL_OP_FLEET_READ,  /* GET /v1/health/service/<name> */
	HR_CONSUL_OP_FLOOR_WRITE, /* PUT the leaver list ?cas= (true/false) */
};

/** "register", "update", "deregister", "maintenance". */
const char *hr_consul_op_name(enum hr_consul_op op);

enum hr_consul_verdict {
	HR_CONSUL_OK,        /* done (a deregister of nothing is done too) */
	HR_CONSUL_LOST,      /* our registration is gone: register again */
	HR_CONSUL_FORBIDDEN, /* 401/403 "Permission denied": token lacks a right */
	HR_CONSUL_TOKEN_UNKNOWN, /* 403 "ACL not found": no such token (deleted,
				    expired, mistyped) */
	HR_CONSUL_REJECTED,  /* other 4xx: the request itself is refused */
	HR_CONSUL_RETRY,     /* no answer, 5xx, 429, anything odd */
};

const char *hr_consul_verdict_name(enum hr_consul_verdict v);

/**
 * Classify an answer. code is the HTTP status, 0 when the transfer failed.
 * body (may be NULL, not NUL-terminated) is the plain-text error Consul
 * sends. Cannot fail.
 */
enum hr_consul_verdict hr_consul_classify(enum hr_consul_op op, long code,
					  const char *body, size_t len);

/**
 * A loggable excerpt of a response body: its first line, at most len-1
 * bytes, with anything but printable ASCII replaced by '?'. Cannot fail.
 */
void hr_consul_excerpt(char *buf, size_t len, const char *body, size_t n);

/* ---- the fleet floor ---------------------------------------------------- */

/* The KV key of a service's leaver list: "healthreg/floor/<service name>". */
#define HR_CONSUL_FLOOR_KEY "healthreg/floor/"
/* A leaver entry expires this long after its time stamp (at least; see
 * hr_consul_floor_stale_after_s()). */
#define HR_CONSUL_FLOOR_STALE_S 3600

/** Is the floor on (min_healthy > 0 or a fraction below 1)? */
bool hr_consul_floor_on(const struct hr_consul_conf *c);

/**
 * With the floor on, the service must be one the floor can guard: a name
 * that is a valid KV key segment (letters, digits, ",-_.", Consul's
 * validateKVKey) and an explicit service.id other than the name (the
 * leaver list tells instances apart by ID; Consul's default ID is the
 * name, the same on every node). Problems go to diag under path
 * ("registry.consul"). 0 or -EINVAL.
 */
int hr_consul_floor_check(const struct hr_consul_conf *c,
			  const struct hr_service_spec *svc, const char *path,
			  struct hr_diag *diag);

/** URLs (malloc'd, NULL on ENOMEM): <base>/v1/kv/healthreg/floor/<name>
 * (cas: with "?cas=<index>") and <base>/v1/health/service/<name>. */
char *hr_consul_url_floor(const char *base, const char *name, bool cas,
			  uint64_t index);
char *hr_consul_url_fleet(const char *base, const char *name);

/* One instance that left for bad health, as the list holds it. */
struct hr_consul_leaver {
	char *id;       /* service ID, owned */
	int64_t at;     /* unix seconds when it wrote itself in */
};

/* The leaver list: the KV value {"leavers":[{"id":"web-2","at":1764...}]}
 * and the ModifyIndex it was read at (0: no key, a cas=0 write creates
 * it). */
struct hr_consul_floor_doc {
	struct hr_consul_leaver *v;
	size_t n;
	uint64_t index;
};

/**
 * Parse a GET of the key: code 404 is the empty list at index 0; 200 is
 * Consul's [{..., "ModifyIndex": N, "Value": "<base64>"}] with the value
 * above (a null value is the empty list). Entries without a string id or
 * an integral at are skipped. Returns 0, -EPROTO (not that shape: the
 * caller stays, the safe side) or -ENOMEM; out is always valid to
 * dispose.
 */
int hr_consul_floor_doc_parse(struct hr_consul_floor_doc *out, long code,
			      const char *body, size_t len);
void hr_consul_floor_doc_dispose(struct hr_consul_floor_doc *d);
/** Does the list hold id (expired entries included)? */
bool hr_consul_floor_doc_has(const struct hr_consul_floor_doc *d,
			     const char *id);
/** The stale rule: an entry expires stale_after seconds after its at,
 * max(HR_CONSUL_FLOOR_STALE_S, 3 * check_ttl). */
int64_t hr_consul_floor_stale_after_s(const struct hr_consul_conf *c);

/**
 * The new value to write: d's entries that have not expired at now
 * (at + stale_after_s >= now), without remove (NULL: none), with add
 * appended at now (NULL: none; an existing entry of add gets the new
 * time). malloc'd JSON, NULL on ENOMEM.
 */
char *hr_consul_floor_doc_body(const struct hr_consul_floor_doc *d,
			       const char *add, const char *remove,
			       int64_t now, int64_t stale_after_s);

/* One entry of /v1/health/service/<name>. */
struct hr_consul_instance {
	char *id;              /* Service.ID, owned */
	enum hr_status status; /* worst of its Checks (node checks too);
				  anything but passing/warning is critical */
};

struct hr_consul_fleet {
	struct hr_consul_instance *v;
	size_t n;
};

/** Parse the health entries (a JSON array; entries without Service.ID are
 * skipped). 0, -EPROTO or -ENOMEM; out is always valid to dispose. */
int hr_consul_fleet_parse(struct hr_consul_fleet *out, const char *body,
			  size_t len);
void hr_consul_fleet_dispose(struct hr_consul_fleet *f);

/* What the floor makes of a read for one instance. */
struct hr_consul_floor {
	size_t fleet;    /* instances known: health entries, listed leavers
			    not among them (not expired), and self */
	size_t healthy;  /* other entries passing or warning, not listed */
	size_t listed;   /* other IDs in the list, not expired */
	size_t need;     /* healthy others needed for self to leave */
	bool leave;
};

/**
 * Pure: may self_id leave? The others that count are the health entries
 * other than self that pass or warn (a kept instance warns) and are not
 * in the unexpired list (a listed instance left or is leaving, whatever
 * the catalog still shows). need = max(min_healthy, fleet -
 * floor(max_unhealthy_fraction * fleet)); it may leave when healthy >=
 * need. Cannot fail.
 */
void hr_consul_floor_decide(const struct hr_consul_fleet *f,
			    const struct hr_consul_floor_doc *d,
			    const char *self_id, int min_healthy,
			    double max_unhealthy_fraction, int64_t now,
			    int64_t stale_after_s, struct hr_consul_floor *out);

/** "kept by fleet floor: 1 of 3 healthy (min_healthy 2)" into buf; with a
 * fraction below 1 also "max_unhealthy_fraction 0.5". */
void hr_consul_floor_note(const struct hr_consul_floor *f, int min_healthy,
			  double max_unhealthy_fraction, char *buf,
			  size_t len);

#endif
