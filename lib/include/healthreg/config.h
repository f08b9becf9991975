/*
 * config.h - the healthreg configuration: one JSON file whose "service"
 * object (or "services" array of them) uses Consul's service-definition
 * keys, plus healthreg's own "groups", "agent" and "registry" sections.
 *
 * hr_config_parse() validates everything before anything runs: every
 * problem is reported in a struct hr_diag as "json.path: problem".
 */
#ifndef HEALTHREG_CONFIG_H
#define HEALTHREG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "healthreg/error.h"
#include "healthreg/log.h"
#include "healthreg/status.h"

enum hr_check_kind {
	HR_CHECK_HTTP,
	HR_CHECK_TCP,
	HR_CHECK_EXEC,
	HR_CHECK_TTL,
	HR_CHECK_GRPC, /* grpc.health.v1.Health/Check */
};

/** "http", "tcp", "args", "ttl" or "grpc". */
const char *hr_check_kind_name(enum hr_check_kind k);

/* What a failing check (or group) does to the aggregate. */
enum hr_on_failure {
	HR_ON_FAILURE_CRITICAL = 0, /* default: a failing check fails the service */
	HR_ON_FAILURE_WARNING,      /* a failure only degrades the service */
	HR_ON_FAILURE_IGNORE,       /* reported, never counted */
};

const char *hr_on_failure_name(enum hr_on_failure f);

struct hr_header {
	char *name;
	char *value;
};

/* One check's definition. All strings are owned by the config. */
struct hr_check_spec {
	char *name;
	enum hr_check_kind kind;
	char *target;          /* http: URL; tcp: host:port; grpc:
				  host:port[/service]; ttl/exec: NULL */
	char **args;           /* exec: NULL-terminated argv */
	int64_t interval_ms;   /* default 10s, minimum 100ms */
	int64_t interval_down_ms; /* 0 = same as interval */
	int64_t timeout_ms;    /* default min(5s, interval) */
	int64_t ttl_ms;        /* ttl checks only */
	int64_t cache_ttl_ms;  /* evaluate(): reuse a success this young */
	int64_t failure_ttl_ms; /* evaluate(): reuse a failure this young */
	/* http */
	char *method;          /* default GET */
	struct hr_header *headers;
	size_t n_headers;
	char *body;
	bool tls_skip_verify;
	char *tls_server_name;
	char *ca_file;         /* http and grpc: CA bundle; NULL: the system's */
	bool disable_redirects;
	/* grpc (and tls_skip_verify, tls_server_name with TLS) */
	bool grpc_use_tls;
	/* status policy */
	bool has_initial_status;
	enum hr_status initial_status;
	int success_before_passing;
	int failures_before_warning; /* defaults to failures_before_critical */
	int failures_before_critical;
	enum hr_on_failure on_failure;
	int group; /* index into its hr_service_conf.groups, or -1 */
};

struct hr_group_spec {
	char *name;
	int min_passing;     /* default 1 */
	enum hr_on_failure on_failure;
};

struct hr_service_spec {
	char *name;
	char *id;           /* default: name */
	char *address;      /* may be NULL */
	int port;           /* 0 = none */
	char **tags;        /* NULL-terminated, may be empty */
	size_t n_tags;
	struct hr_header *meta; /* key/value pairs */
	size_t n_meta;
};

/*
 * One service of the agent: its spec, checks, groups and registry
 * section. All owned by the config.
 */
struct hr_service_conf {
	struct hr_service_spec service;
	struct hr_check_spec *checks;
	size_t n_checks;
	struct hr_group_spec *groups;
	size_t n_groups;
	/*
	 * The top-level "registry" object merged with the service's own
	 * "registry" overlay (services[i].registry: member by member, key by
	 * key), as each backend reads it; NULL when neither is given. Owned
	 * by the config; each backend reads its member through a borrowed
	 * pointer.
	 */
	cJSON *registry;
};

struct hr_config {
	/* "service" is services[0] (n_services 1); "services" lists them in
	 * file order, ids unique. Never empty in a parsed config. */
	struct hr_service_conf *services;
	size_t n_services;
	/* agent */
	bool enable_exec_checks;
	int log_level;  /* syslog-like: 3 error, 4 warn, 6 info, 7 debug */
	enum hr_log_format log_format;
	int max_concurrent; /* bound on checks in flight for evaluate() */
	int64_t shutdown_timeout_ms;
	char *api_listen;      /* default HR_API_DEFAULT_LISTEN; "" = off */
	char *api_token_file;  /* NULL = writes open on the local API */
	char *state_file;      /* maintenance state; NULL = the default path */
	char **exec_env;       /* exec children's allow-list; NULL = default */
	size_t n_exec_env;
	bool allow_core_dumps; /* false: not dumpable, RLIMIT_CORE 0 */
	char *user;            /* started as root: switch to this user */
	int journal_size;      /* decisions kept in memory; 0 = none */
};

/*
 * A registry backend's config validator (see registry.h). Called for each
 * member of "registry" whose key matches the validator's name.
 */
struct hr_config_backend {
	const char *name;
	void (*validate)(const cJSON *conf, const char *path,
			 struct hr_diag *diag);
	/* May be NULL: the service section as this backend's registry
	 * would check it, reported under "service" (or "services[i]"). */
	void (*validate_service)(const struct hr_service_spec *svc,
				 const char *path, struct hr_diag *diag);
};

/**
 * Parse and validate a config document. On success (*out set, return 0)
 * the diag list may hold warnings. On any error returns -EINVAL with every
 * problem in diag and *out = NULL. backends lists the registry sections the
 * caller understands (n_backends may be 0); any other key under "registry"
 * is an error. The caller frees *out with hr_config_free().
 */
int hr_config_parse(struct hr_config **out, const char *text, size_t len,
		    const struct hr_config_backend *backends,
		    size_t n_backends, struct hr_diag *diag);

/**
 * Read a file and parse it. A file that cannot be read (missing, a
 * directory, permission denied) returns its -errno (-EISDIR for a
 * directory) with one "<path>: why" line in diag; problems of the
 * content return -EINVAL, as hr_config_parse().
 */
int hr_config_load(struct hr_config **out, const char *path,
		   const struct hr_config_backend *backends,
		   size_t n_backends, struct hr_diag *diag);

/** NULL-safe. */
void hr_config_free(struct hr_config *cfg);

/*
 * Specs: copy, dispose and compare, the one place that knows every field
 * (lib/spec.c). A copy owns all its strings; dispose frees them and leaves
 * *s unusable until copied into again. Equality is field by field, strings
 * by content.
 */
int hr_check_spec_copy(struct hr_check_spec *dst,
		       const struct hr_check_spec *src);
void hr_check_spec_dispose(struct hr_check_spec *s);
bool hr_check_spec_equal(const struct hr_check_spec *x,
			 const struct hr_check_spec *y);
bool hr_service_spec_equal(const struct hr_service_spec *x,
			   const struct hr_service_spec *y);
/** A deep copy of src into dst: 0 or -ENOMEM (dst left empty). */
int hr_service_spec_copy(struct hr_service_spec *dst,
			 const struct hr_service_spec *src);
/** Free what a copy owns; *s is zeroed (reusable). */
void hr_service_spec_dispose(struct hr_service_spec *s);
/** Same groups, in the same order, with the same settings. */
bool hr_groups_equal(const struct hr_service_conf *x,
		     const struct hr_service_conf *y);

/** Index of the check named name in svc, or -1. */
int hr_service_find_check(const struct hr_service_conf *svc,
			  const char *name);
/** The same in the config's first service (the only one of "service"). */
int hr_config_find_check(const struct hr_config *cfg, const char *name);
/** The service whose id is id, or NULL. */
const struct hr_service_conf *hr_config_find_service(
	const struct hr_config *cfg, const char *id);

#endif
