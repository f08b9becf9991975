/*
 * consul_payload.c - pure functions of the Consul backend: "registry.consul"
 * validation (with the rules that keep Consul's reaper from looping), the
 * service fields as Consul's register handler checks them, the register and
 * TTL-update bodies, URLs, output preparation (UTF-8 repair, truncation to
 * the agent's check_output_max_size on a character boundary) and the
 * classification of the agent's answers into what the state machine in
 * consul.c does next.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul_payload.h"
#include "healthreg/confget.h"
#include "healthreg/duration.h"
#include "healthreg/regcore.h"
#include "healthreg/util.h"

#define BIT(s) (1u << (unsigned)(s))

/* A growing NUL-terminated byte string; ok is cleared on ENOMEM. */
struct buf {
	char *p;
	size_t n, cap;
	int ok;
};

static void buf_init(struct buf *b)
{
	b->p = NULL;
	b->n = b->cap = 0;
	b->ok = 1;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
	if (!b->ok)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->ok = 0;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* Hand the string over (malloc'd), or NULL after ENOMEM. */
static char *buf_take(struct buf *b)
{
	if (!b->ok) {
		free(b->p);
		return NULL;
	}
	if (!b->p)
		return strdup("");
	return b->p;
}

/* ---- configuration ---------------------------------------------------- */

void hr_consul_conf_init(struct hr_consul_conf *c)
{
	memset(c, 0, sizeof(*c));
}

void hr_consul_conf_dispose(struct hr_consul_conf *c)
{
	free(c->address);
	free(c->unix_path);
	free(c->token_file);
	hr_secret_free(c->token);
	hr_reg_conf_dispose(&c->common);
	free(c->tls_server_name);
	hr_consul_conf_init(c);
}

int hr_consul_addr_split(const char *addr, bool *tls, char *host,
			 size_t host_len, int *port)
{
	const char *p, *h, *end;
	size_t hl;

	if (!strncmp(addr, "http://", 7)) {
		*tls = false;
		p = addr + 7;
	} else if (!strncmp(addr, "https://", 8)) {
		*tls = true;
		p = addr + 8;
	} else {
		return -EINVAL;
	}
	*port = *tls ? 443 : 80;
	if (*p == '[') {
		h = p + 1;
		end = strchr(h, ']');
		if (!end)
			return -EINVAL;
		hl = (size_t)(end - h);
		p = end + 1;
	} else {
		h = p;
		hl = strcspn(p, ":/?#@");
		p += hl;
	}
	if (!hl || hl >= host_len)
		return -EINVAL;
	if (*p == ':') {
		long v = 0;
		int digits = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			v = v * 10 + (*p - '0');
			if (v > 65535)
				return -EINVAL;
		}
		if (!digits || v < 1)
			return -EINVAL;
		*port = (int)v;
	}
	if (*p && strcmp(p, "/"))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	return 0;
}

/* The schema: the keys of "registry.consul" besides the common ones
 * (struct hr_reg_conf), and where they go. */
#define AT(m) offsetof(struct hr_consul_conf, m)
static const struct hr_reg_field fields[] = {
	{ "address", HR_REG_NONEMPTY, AT(address) },
	{ "token_file", HR_REG_NONEMPTY, AT(token_file) },
	{ "tls_server_name", HR_REG_NONEMPTY, AT(tls_server_name) },
	{ "check_ttl", HR_REG_DURATION, AT(check_ttl_ms) },
	{ "deregister_critical_service_after", HR_REG_DURATION, AT(dcsa_ms) },
};
#undef AT

/*
 * Consul's reaper removes a service once one of its checks has been
 * critical for deregister_critical_service_after (raised to 1m, checked
 * every 30s); healthreg then gets 404 and registers again. A service that
 * healthreg keeps registered while critical (register_when contains
 * "critical", or a deregister_after grace) would be reaped and registered
 * again for ever. An explicit DCSA that allows that is an error naming
 * both keys; without one, the DCSA is derived: not sent when critical is
 * kept, else longer than the grace by a minute.
 */
static int check_reap(struct hr_consul_conf *c, bool dcsa_set,
		      const char *path, struct hr_diag *diag)
{
	bool crit = (c->common.register_when & BIT(HR_STATUS_CRITICAL)) != 0;
	char p[HR_CONF_PATH_MAX], a[32], b[32];
	int64_t eff;

	if (!dcsa_set) {
		c->dcsa_ms = HR_CONSUL_DEFAULT_DCSA_MS;
		if (crit) {
			c->dcsa_ms = 0;
			hr_diag_add(diag, HR_DIAG_WARNING,
				    hr_conf_path(p, path,
						 "deregister_critical_service_after"),
				    "not sent, because register_when contains "
				    "\"critical\" (Consul would remove the "
				    "critical service healthreg keeps "
				    "registered): a crashed healthreg's service "
				    "stays, critical, until deregistered");
		} else if (c->common.deregister_after_ms >=
			   HR_CONSUL_DEFAULT_DCSA_MS) {
			c->dcsa_ms = c->common.deregister_after_ms + 60000;
		}
		return 0;
	}
	if (c->dcsa_ms == 0)
		return 0;
	hr_duration_format(c->dcsa_ms, b, sizeof(b));
	if (crit) {
		hr_diag_add(diag, HR_DIAG_ERROR,
			    hr_conf_path(p, path, "register_when"),
			    "contains \"critical\", but "
			    "deregister_critical_service_after (%s) makes Consul "
			    "remove a service whose check stays critical, and "
			    "healthreg would register it again and again: drop "
			    "\"critical\" or set "
			    "deregister_critical_service_after to \"0s\"", b);
		return -EINVAL;
	}
	eff = c->dcsa_ms < HR_CONSUL_DCSA_FLOOR_MS ? HR_CONSUL_DCSA_FLOOR_MS :
						      c->dcsa_ms;
	if (c->common.deregister_after_ms >= eff) {
		hr_duration_format(c->common.deregister_after_ms, a, sizeof(a));
		hr_diag_add(diag, HR_DIAG_ERROR,
			    hr_conf_path(p, path, "deregister_after"),
			    "(%s) must be shorter than "
			    "deregister_critical_service_after (%s%s): Consul "
			    "would remove the critical service first and "
			    "healthreg would register it again", a, b,
			    eff != c->dcsa_ms ? ", raised to 1m by Consul" :
						"");
		return -EINVAL;
	}
	return 0;
}

/* Rules between values, after every member was read. */
static int check_values(struct hr_consul_conf *c, bool dcsa_set,
			const char *path, struct hr_diag *diag)
{
	struct hr_reg_conf common;
	char p[HR_CONF_PATH_MAX];
	int rc = 0;

	if (c->check_ttl_ms < HR_CONSUL_MIN_TTL_MS) {
		hr_diag_add(diag, HR_DIAG_ERROR,
			    hr_conf_path(p, path, "check_ttl"),
			    "must be at least 1s");
		rc = -EINVAL;
	}
	hr_conf_path(p, path, "deregister_critical_service_after");
	if (dcsa_set && c->dcsa_ms == 0)
		hr_diag_add(diag, HR_DIAG_WARNING, p,
			    "0s disables Consul's removal of a crashed "
			    "healthreg's service");
	else if (dcsa_set && c->dcsa_ms < HR_CONSUL_DCSA_FLOOR_MS)
		hr_diag_add(diag, HR_DIAG_WARNING, p,
			    "Consul raises values below 1m to 1m");
	if (check_reap(c, dcsa_set, path, diag) < 0)
		rc = -EINVAL;
	/* key_file needs a certificate, which CONSUL_CLIENT_CERT may give:
	 * that rule waits for the environment (hr_consul_conf_parse). */
	common = c->common;
	common.key_file = NULL;
	if (hr_reg_conf_check(&common, path, diag) < 0)
		rc = -EINVAL;
	return rc;
}

/* ---- the environment -------------------------------------------------- */

void hr_consul_env_read(struct hr_consul_env *env, hr_consul_getenv_cb get,
			void *payload)
{
	env->http_addr = get("CONSUL_HTTP_ADDR", payload);
	env->http_token = get("CONSUL_HTTP_TOKEN", payload);
	env->http_token_file = get("CONSUL_HTTP_TOKEN_FILE", payload);
	env->http_ssl = get("CONSUL_HTTP_SSL", payload);
	env->http_ssl_verify = get("CONSUL_HTTP_SSL_VERIFY", payload);
	env->cacert = get("CONSUL_CACERT", payload);
	env->capath = get("CONSUL_CAPATH", payload);
	env->client_cert = get("CONSUL_CLIENT_CERT", payload);
	env->client_key = get("CONSUL_CLIENT_KEY", payload);
	env->tls_server_name = get("CONSUL_TLS_SERVER_NAME", payload);
}

static bool set(const char *v)
{
	return v && v[0];
}

/* Go's strconv.ParseBool, which the official client applies to
 * CONSUL_HTTP_SSL and CONSUL_HTTP_SSL_VERIFY. Unset leaves *out. */
static int env_bool(const char *name, const char *v, bool *out,
		    const char *path, struct hr_diag *diag)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true",
					   "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false",
					  "False" };
	size_t i;

	if (!set(v))
		return 0;
	for (i = 0; i < HR_ARRAY_SIZE(yes); i++) {
		if (!strcmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	hr_diag_add(diag, HR_DIAG_ERROR, path,
		    "%s=\"%.*s\" is not a boolean (true, false, 1, 0, t, f)",
		    name, hr_conf_shown_len(v, 32), v);
	return -EINVAL;
}

/* Fill *dst (unset) from the variable; record where it came from. */
static int env_str(char **dst, const char *v, const char *name,
		   const char **from)
{
	if (*dst || !set(v))
		return 0;
	if (!(*dst = strdup(v)))
		return -ENOMEM;
	if (from)
		*from = name;
	return 0;
}

#define UNIX_PATH_MAX 107 /* sizeof(sun_path) - 1 */

/*
 * out->address (the config's, else the variable's, else the default)
 * into its final form: scheme, tls, unix_path. 0 or -EINVAL/-ENOMEM.
 */
static int resolve_address(struct hr_consul_conf *out, bool from_env,
			   bool ssl, const char *path, struct hr_diag *diag)
{
	const char *a = out->address, *from = from_env ?
		" (from CONSUL_HTTP_ADDR)" : "";
	const char *rest;
	char p[HR_CONF_PATH_MAX], host[256];
	struct buf b;
	bool tls;
	int port;

	hr_conf_path(p, path, "address");
	buf_init(&b);
	if (!strncmp(a, "unix://", 7)) {
		rest = a + 7;
		if (rest[0] != '/' || strlen(rest) > UNIX_PATH_MAX) {
			hr_diag_add(diag, HR_DIAG_ERROR, p,
				    "\"%.*s\"%s: a unix:// address needs an "
				    "absolute socket path of at most %d bytes "
				    "(unix:///run/consul/http.sock)",
				    hr_conf_shown_len(a, 128), a, from,
				    UNIX_PATH_MAX);
			return -EINVAL;
		}
		if (!(out->unix_path = strdup(rest)))
			return -ENOMEM;
		out->tls = ssl;
		return 0;
	}
	if (!strncmp(a, "https://", 8)) {
		tls = true;
		rest = a + 8;
	} else if (!strncmp(a, "http://", 7)) {
		/* The official client: "Never revert to http if TLS was
		 * explicitly requested" (for its environment's address). */
		tls = from_env && ssl;
		rest = a + 7;
	} else if (strstr(a, "://")) {
		rest = NULL;
		tls = false;
	} else {
		tls = ssl;
		rest = a;
	}
	if (rest) {
		buf_str(&b, tls ? "https://" : "http://");
		buf_str(&b, rest);
		if (b.ok && b.n > 0 && b.p[b.n - 1] == '/')
			b.p[--b.n] = '\0';
		if (!b.ok)
			return -ENOMEM;
	}
	if (!rest || hr_consul_addr_split(b.p, &tls, host, sizeof(host),
					  &port) < 0) {
		free(b.p);
		/* shown cut short on a character boundary (the environment's
		 * address is not checked like a config string) */
		hr_diag_add(diag, HR_DIAG_ERROR, p,
			    "\"%.*s\"%s is not an http://, https:// or "
			    "unix:// address with a host and optional port "
			    "(no path)",
			    hr_conf_shown_len(a, 128), a, from);
		return -EINVAL;
	}
	free(out->address);
	out->address = b.p;
	out->tls = tls;
	return 0;
}

/* A host name or IPv4 address for SNI and the certificate check; a
 * variable's port is dropped, as the official client does. */
static int check_server_name(struct hr_consul_conf *out, bool from_env,
			     const char *path, struct hr_diag *diag)
{
	char p[HR_CONF_PATH_MAX], *n = out->tls_server_name;
	const char *what = from_env ? "CONSUL_TLS_SERVER_NAME" :
		hr_conf_path(p, path, "tls_server_name");
	char *colon = strrchr(n, ':');
	size_t len;

	if (from_env && colon && !strchr(n, ']'))
		*colon = '\0';
	len = strlen(n);
	if (len && len <= 253 && strspn(n, "abcdefghijklmnopqrstuvwxyz"
				       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "0123456789.-_") == len)
		return 0;
	hr_diag_add(diag, HR_DIAG_ERROR, from_env ? path : p,
		    "%s%s\"%.*s\" is not a host name (letters, digits, '.', "
		    "'-'; at most 253 bytes)", from_env ? what : "",
		    from_env ? ": " : "", hr_conf_shown_len(n, 128), n);
	return -EINVAL;
}

/* With TLS, the CONSUL_* TLS variables where the config is silent. */
static int apply_tls_env(struct hr_consul_conf *out, bool skip_in_conf,
			 const struct hr_consul_env *env, const char *path,
			 struct hr_diag *diag)
{
	struct hr_reg_conf *c = &out->common;
	struct hr_reg_tls_names *n = &out->tls_names;
	bool from_env = false, verify = true;
	int rc = 0;

	if (env_str(&c->ca_file, env->cacert, "CONSUL_CACERT", &n->ca_file) ||
	    env_str(&c->ca_path, env->capath, "CONSUL_CAPATH", &n->ca_path) ||
	    env_str(&c->cert_file, env->client_cert, "CONSUL_CLIENT_CERT",
		    &n->cert_file) ||
	    env_str(&c->key_file, env->client_key, "CONSUL_CLIENT_KEY",
		    &n->key_file))
		return -ENOMEM;
	if (!out->tls_server_name && set(env->tls_server_name)) {
		if (!(out->tls_server_name = strdup(env->tls_server_name)))
			return -ENOMEM;
		from_env = true;
	}
	if (from_env && check_server_name(out, true, path, diag) < 0)
		rc = -EINVAL;
	if (!skip_in_conf) {
		if (env_bool("CONSUL_HTTP_SSL_VERIFY", env->http_ssl_verify,
			     &verify, path, diag) < 0)
			rc = -EINVAL;
		else if (!verify) {
			c->tls_skip_verify = true;
			hr_diag_add(diag, HR_DIAG_WARNING, path,
				    "CONSUL_HTTP_SSL_VERIFY=%s: the agent's "
				    "certificate and host name are not "
				    "verified; anyone on the network path can "
				    "impersonate it", env->http_ssl_verify);
		}
	}
	if (c->ca_path && c->ca_file && (n->ca_path || n->ca_file))
		hr_diag_add(diag, HR_DIAG_WARNING, path,
			    "%s is ignored: %s is set (as Consul's client "
			    "does)", n->ca_path ? n->ca_path : "ca_path",
			    n->ca_file ? n->ca_file : "ca_file");
	return rc;
}

/*
 * The address, TLS and token, each from the config or else from the
 * environment (see hr_consul_conf_parse()). skip_in_conf: the config has
 * tls_skip_verify. 0, -EINVAL or -ENOMEM.
 */
static int apply_env(struct hr_consul_conf *out, bool skip_in_conf,
		     const char *path, const struct hr_consul_env *env,
		     struct hr_diag *diag)
{
	bool from_env = false, ssl = false;
	int rc = 0, r;

	if (env_bool("CONSUL_HTTP_SSL", env->http_ssl, &ssl, path, diag) < 0)
		rc = -EINVAL;
	if (!out->address) {
		const char *a = "127.0.0.1:8500";

		if (set(env->http_addr)) {
			a = env->http_addr;
			from_env = true;
		}
		if (!(out->address = strdup(a)))
			return -ENOMEM;
	}
	r = resolve_address(out, from_env, ssl, path, diag);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		rc = r;
	else if (!out->tls && (out->common.ca_file || out->common.ca_path ||
			       out->common.cert_file || out->common.key_file ||
			       out->common.tls_skip_verify ||
			       out->tls_server_name))
		hr_diag_add(diag, HR_DIAG_WARNING, path,
			    "TLS settings are ignored: the address is not "
			    "https:// (nor CONSUL_HTTP_SSL=true)");
	else if (out->tls && (r = apply_tls_env(out, skip_in_conf, env, path,
						diag)) < 0)
		rc = r;
	if (rc == -ENOMEM)
		return rc;
	if (!out->token_file && set(env->http_token_file)) {
		if (!(out->token_file = strdup(env->http_token_file)))
			return -ENOMEM;
		out->token_file_from_env = true;
	}
	if (!out->token_file && set(env->http_token) &&
	    !(out->token = strdup(env->http_token)))
		return -ENOMEM;
	return rc;
}

/* check_output_max_size: an integer, not one of the shared kinds. */
static int output_max_member(struct hr_consul_conf *out, const cJSON *e,
			     const char *path, struct hr_diag *diag)
{
	char p[HR_CONF_PATH_MAX];

	return hr_conf_int(e, hr_conf_path(p, path, e->string), 1,
			   HR_CONSUL_OUTPUT_MAX_MAX, diag, &out->output_max);
}

/* max_unhealthy_fraction: a number from 0 to 1. */
static int fraction_member(struct hr_consul_conf *out, const cJSON *e,
			   const char *path, struct hr_diag *diag)
{
	char p[HR_CONF_PATH_MAX];

	hr_conf_path(p, path, e->string);
	if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0.0) ||
	    e->valuedouble > 1.0) {
		hr_diag_add(diag, HR_DIAG_ERROR, p,
			    "must be a number from 0 to 1 (the largest share "
			    "of the fleet that may be unhealthy, like 0.5)");
		return -EINVAL;
	}
	out->max_unhealthy_fraction = e->valuedouble;
	return 0;
}

int hr_consul_conf_parse(struct hr_consul_conf *out, const cJSON *conf,
			 const char *path, const struct hr_consul_env *env,
			 struct hr_diag *diag)
{
	static const struct hr_consul_env no_env;
	const cJSON *e;
	bool dcsa_set = false;
	int rc = 0, r;

	hr_consul_conf_init(out);
	out->check_ttl_ms = HR_CONSUL_DEFAULT_TTL_MS;
	out->dcsa_ms = HR_CONSUL_DEFAULT_DCSA_MS;
	out->output_max = HR_CONSUL_OUTPUT_MAX;
	out->max_unhealthy_fraction = 1.0;
	hr_reg_conf_init(&out->common);
	if (conf && !cJSON_IsObject(conf)) {
		hr_diag_add(diag, HR_DIAG_ERROR, path, "must be an object");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, conf) {
		if (e->string && !strcmp(e->string, "check_output_max_size")) {
			if (output_max_member(out, e, path, diag) < 0)
				rc = -EINVAL;
			continue;
		}
		if (e->string && !strcmp(e->string, "min_healthy")) {
			char p[HR_CONF_PATH_MAX];

			if (hr_conf_int(e, hr_conf_path(p, path, e->string), 0,
					HR_CONSUL_FLOOR_MAX, diag,
					&out->min_healthy) < 0)
				rc = -EINVAL;
			continue;
		}
		if (e->string && !strcmp(e->string, "max_unhealthy_fraction")) {
			if (fraction_member(out, e, path, diag) < 0)
				rc = -EINVAL;
			continue;
		}
		if (e->string &&
		    !strcmp(e->string, "deregister_critical_service_after"))
			dcsa_set = true;
		r = hr_reg_conf_member(fields, HR_ARRAY_SIZE(fields), out,
				       &out->common, e, path, diag);
		if (r == -ENOMEM)
			goto nomem;
		if (r < 0)
			rc = r;
	}
	if (check_values(out, dcsa_set, path, diag) < 0)
		rc = -EINVAL;
	if (out->tls_server_name &&
	    check_server_name(out, false, path, diag) < 0)
		rc = -EINVAL;
	r = apply_env(out, cJSON_GetObjectItemCaseSensitive(conf,
							    "tls_skip_verify")
			   != NULL, path, env ? env : &no_env, diag);
	if (r == -ENOMEM)
		goto nomem;
	if (r < 0)
		rc = r;
	if (out->common.key_file && !out->common.cert_file) {
		char p[HR_CONF_PATH_MAX];
		bool env_key = out->tls_names.key_file != NULL;

		hr_diag_add(diag, HR_DIAG_ERROR,
			    env_key ? path : hr_conf_path(p, path, "key_file"),
			    "%sneeds a client certificate (cert_file or "
			    "CONSUL_CLIENT_CERT)", env_key ? "CONSUL_CLIENT_KEY "
							   : "");
		rc = -EINVAL;
	}
	if (rc < 0)
		hr_consul_conf_dispose(out);
	return rc;
nomem:
	hr_consul_conf_dispose(out);
	hr_diag_add(diag, HR_DIAG_ERROR, path, "out of memory");
	return -ENOMEM;
}

int64_t hr_consul_update_period_ms(const struct hr_consul_conf *c)
{
	return c->check_ttl_ms / 3;
}

bool hr_consul_wants(const struct hr_consul_conf *c, enum hr_status s)
{
	if (s == HR_STATUS_UNKNOWN)
		s = HR_STATUS_CRITICAL;
	return (c->common.register_when & BIT(s)) != 0;
}

const char *hr_consul_status_word(enum hr_status s)
{
	switch (s) {
	case HR_STATUS_PASSING:
		return "passing";
	case HR_STATUS_WARNING:
		return "warning";
	default:
		return "critical";
	}
}

/* ---- the service, as Consul checks it --------------------------------- */

/* Consul's structs.ValidateServiceMetadata (agent/structs/structs.go). */
#define META_PAIRS_MAX 64
#define META_KEY_MAX 128
#define META_VALUE_MAX 512
#define META_RESERVED "consul-"

static bool meta_key_chars_ok(const char *k)
{
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'))
			return false;
	return true;
}

static int check_meta(const struct hr_service_spec *svc, const char *path,
		      struct hr_diag *diag)
{
	char mp[HR_CONF_PATH_MAX], p[HR_CONF_PATH_MAX];
	const char *why;
	size_t i;
	int rc = 0;

	hr_conf_path(mp, path, "meta");
	if (svc->n_meta > META_PAIRS_MAX) {
		hr_diag_add(diag, HR_DIAG_ERROR, mp,
			    "has %zu pairs; Consul accepts at most %d",
			    svc->n_meta, META_PAIRS_MAX);
		rc = -EINVAL;
	}
	for (i = 0; i < svc->n_meta; i++) {
		const char *k = svc->meta[i].name ? svc->meta[i].name : "";
		const char *v = svc->meta[i].value ? svc->meta[i].value : "";

		why = NULL;
		if (!k[0])
			why = "the key is empty; Consul refuses it";
		else if (!meta_key_chars_ok(k))
			why = "the key may hold only letters, digits, '_' and "
			      "'-' (Consul: Key contains invalid characters)";
		else if (strlen(k) > META_KEY_MAX)
			why = "the key is longer than 128 bytes, Consul's limit";
		else if (!strncmp(k, META_RESERVED, strlen(META_RESERVED)))
			why = "keys starting with \"consul-\" are reserved by "
			      "Consul";
		else if (strlen(v) > META_VALUE_MAX)
			why = "the value is longer than 512 bytes, Consul's limit";
		if (why) {
			hr_diag_add(diag, HR_DIAG_ERROR,
				    k[0] ? hr_conf_path(p, mp, k) : mp, "%s",
				    why);
			rc = -EINVAL;
		}
	}
	return rc;
}

/* The register handler refuses ipaddr.IsAny; anything else is stored as
 * is, so what clients could not dial is only warned about. */
static int check_service_address(const char *a, const char *path,
				 struct hr_diag *diag)
{
	unsigned char bin[16];
	char p[HR_CONF_PATH_MAX];
	int shown;

	if (!a || !a[0])
		return 0;
	hr_conf_path(p, path, "address");
	shown = hr_conf_shown_len(a, 128);
	if (!strcmp(a, "0.0.0.0") || !strcmp(a, "::") || !strcmp(a, "[::]")) {
		hr_diag_add(diag, HR_DIAG_ERROR, p,
			    "\"%s\" is an any-address, which Consul refuses "
			    "(Invalid service address): give the instance's "
			    "own address, or leave it out for the node's", a);
		return -EINVAL;
	}
	if (inet_pton(AF_INET, a, bin) == 1 || inet_pton(AF_INET6, a, bin) == 1)
		return 0;
	if (a[0] == '[' || strchr(a, ':') || strchr(a, '/') ||
	    strpbrk(a, " \t\r\n"))
		hr_diag_add(diag, HR_DIAG_WARNING, p,
			    "\"%.*s\" is neither an IP address nor a host name "
			    "(no scheme, port, path or brackets): Consul stores "
			    "it as is and clients cannot dial it", shown, a);
	return 0;
}

int hr_consul_service_check(const struct hr_service_spec *svc,
			    const char *path, struct hr_diag *diag)
{
	int rc = 0;

	if (check_meta(svc, path, diag) < 0)
		rc = -EINVAL;
	if (check_service_address(svc->address, path, diag) < 0)
		rc = -EINVAL;
	return rc;
}

/* ---- URLs -------------------------------------------------------------- */

static void put_escaped(struct buf *b, const char *s, const char *keep)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) ||
		    (keep && strchr(keep, ch))) {
			buf_put(b, s, 1);
		} else {
			char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };

			buf_put(b, e, 3);
		}
	}
}

char *hr_consul_check_id(const char *service_id)
{
	struct buf b;

	buf_init(&b);
	buf_str(&b, "service:");
	buf_str(&b, service_id);
	buf_str(&b, HR_CONSUL_CHECK_SUFFIX);
	return buf_take(&b);
}

static char *url_with_id(const char *base, const char *prefix,
			 const char *id)
{
	struct buf b;

	buf_init(&b);
	buf_str(&b, base);
	buf_str(&b, prefix);
	put_escaped(&b, id, ":");
	return buf_take(&b);
}

char *hr_consul_url_register(const char *base)
{
	struct buf b;

	buf_init(&b);
	buf_str(&b, base);
	/* No replace-existing-checks: it would remove the maintenance check
	 * an operator set (consul maint) and any check someone else put on
	 * the service; healthreg's own check ID is stable, so nothing of its
	 * own is left behind. */
	buf_str(&b, "/v1/agent/service/register");
	return buf_take(&b);
}

char *hr_consul_url_update(const char *base, const char *check_id)
{
	return url_with_id(base, "/v1/agent/check/update/", check_id);
}

char *hr_consul_url_deregister(const char *base, const char *service_id)
{
	return url_with_id(base, "/v1/agent/service/deregister/", service_id);
}

char *hr_consul_url_maintenance(const char *base, const char *service_id,
				bool enable, const char *reason)
{
	struct buf b;

	buf_init(&b);
	buf_str(&b, base);
	buf_str(&b, "/v1/agent/service/maintenance/");
	put_escaped(&b, service_id, ":");
	buf_str(&b, enable ? "?enable=true" : "?enable=false");
	if (enable && reason && reason[0]) {
		buf_str(&b, "&reason=");
		put_escaped(&b, reason, NULL);
	}
	return buf_take(&b);
}

/* ---- output ------------------------------------------------------------ */

/* The longest n <= max bytes of s that end on a character boundary. */
static size_t char_cut(const char *s, size_t n, size_t max)
{
	size_t keep = n < max ? n : max;

	while (keep > 0 && keep < n && ((unsigned char)s[keep] & 0xC0) == 0x80)
		keep--;
	return keep;
}

char *hr_consul_output_prepare(const char *output, size_t max)
{
	char marker[64];
	char *s = hr_utf8_clean(output);
	size_t n, keep, m;
	int i;

	if (!s)
		return NULL;
	if (!max)
		max = HR_CONSUL_OUTPUT_MAX;
	n = strlen(s);
	if (n <= max)
		return s;
	m = (size_t)snprintf(marker, sizeof(marker),
			     " ... (captured %zu of %zu bytes)", max, n);
	if (m >= max) {
		/* No room for the marker: the head alone. */
		s[char_cut(s, n, max)] = '\0';
		return s;
	}
	/* The marker's length depends on the kept length: settle it. */
	keep = max;
	for (i = 0; i < 3; i++) {
		m = (size_t)snprintf(marker, sizeof(marker),
				     " ... (captured %zu of %zu bytes)", keep, n);
		keep = max - m;
	}
	keep = char_cut(s, n, keep);
	m = (size_t)snprintf(marker, sizeof(marker),
			     " ... (captured %zu of %zu bytes)", keep, n);
	memcpy(s + keep, marker, m + 1);
	return s;
}

/* ---- bodies ------------------------------------------------------------ */

/* A cJSON string built from a cleaned copy of s; NULL on ENOMEM. */
static cJSON *add_str(cJSON *obj, const char *key, const char *s)
{
	char *c = hr_utf8_clean(s);
	cJSON *v;

	if (!c)
		return NULL;
	v = cJSON_AddStringToObject(obj, key, c);
	free(c);
	return v;
}

/* Print obj into a malloc'd string; deletes obj. */
static int print_take(cJSON *obj, char **out)
{
	char *txt = obj ? cJSON_PrintUnformatted(obj) : NULL;

	*out = NULL;
	cJSON_Delete(obj);
	if (!txt)
		return -ENOMEM;
	*out = strdup(txt);
	cJSON_free(txt);
	return *out ? 0 : -ENOMEM;
}

int hr_consul_register_body(char **out, const struct hr_service_spec *svc,
			    const struct hr_consul_conf *c, enum hr_status s)
{
	const char *id = svc->id ? svc->id : svc->name;
	cJSON *root = cJSON_CreateObject();
	cJSON *tags, *check, *meta;
	char *check_id = NULL;
	char dur[32];
	size_t i;
	int ok = 1;

	*out = NULL;
	if (!root)
		return -ENOMEM;
	ok &= add_str(root, "ID", id) != NULL;
	ok &= add_str(root, "Name", svc->name) != NULL;
	tags = cJSON_AddArrayToObject(root, "Tags");
	ok &= tags != NULL;
	for (i = 0; ok && svc->tags && i < svc->n_tags; i++) {
		char *t = hr_utf8_clean(svc->tags[i]);
		cJSON *v = t ? cJSON_CreateString(t) : NULL;

		free(t);
		ok &= v != NULL && cJSON_AddItemToArray(tags, v);
	}
	if (ok && svc->address)
		ok &= add_str(root, "Address", svc->address) != NULL;
	if (ok && svc->port > 0)
		ok &= cJSON_AddNumberToObject(root, "Port", svc->port) != NULL;
	if (ok && svc->n_meta) {
		meta = cJSON_AddObjectToObject(root, "Meta");
		ok &= meta != NULL;
		for (i = 0; ok && i < svc->n_meta; i++)
			ok &= add_str(meta, svc->meta[i].name,
				      svc->meta[i].value) != NULL;
	}
	check = ok ? cJSON_AddObjectToObject(root, "Check") : NULL;
	check_id = ok ? hr_consul_check_id(id) : NULL;
	ok &= check != NULL && check_id != NULL;
	if (ok) {
		ok &= add_str(check, "CheckID", check_id) != NULL;
		ok &= add_str(check, "Name", "healthreg aggregate") != NULL;
		ok &= add_str(check, "Notes",
			      "Aggregate of the healthreg checks; each "
			      "check's status is in Output") != NULL;
		hr_duration_format(c->check_ttl_ms, dur, sizeof(dur));
		ok &= add_str(check, "TTL", dur) != NULL;
		ok &= add_str(check, "Status",
			      hr_consul_status_word(s)) != NULL;
	}
	if (ok && c->dcsa_ms > 0) {
		hr_duration_format(c->dcsa_ms, dur, sizeof(dur));
		ok &= add_str(check, "DeregisterCriticalServiceAfter",
			      dur) != NULL;
	}
	free(check_id);
	if (!ok) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	return print_take(root, out);
}

int hr_consul_update_body(char **out, enum hr_status s, const char *output,
			  size_t max)
{
	cJSON *root = cJSON_CreateObject();
	char *o = hr_consul_output_prepare(output, max);
	int ok = root && o;

	*out = NULL;
	if (ok) {
		ok &= cJSON_AddStringToObject(root, "Status",
					      hr_consul_status_word(s)) != NULL;
		ok &= cJSON_AddStringToObject(root, "Output", o) != NULL;
	}
	free(o);
	if (!ok) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	return print_take(root, out);
}

/* ---- answers ----------------------------------------------------------- */

const char *hr_consul_op_name(enum hr_consul_op op)
{
	switch (op) {
	case HR_CONSUL_OP_REGISTER:
		return "register";
	case HR_CONSUL_OP_UPDATE:
		return "update";
	case HR_CONSUL_OP_DEREGISTER:
		return "deregister";
	case HR_CONSUL_OP_MAINTENANCE:
		return "maintenance";
	case HR_CONSUL_OP_FLOOR_READ:
		return "floor_read";
	case HR_CONSUL_OP_FLEET_READ:
		return "fleet_read";
	case HR_CONSUL_OP_FLOOR_WRITE:
		return "floor_write";
	}
	return "?";
}

const char *hr_consul_verdict_name(enum hr_consul_verdict v)
{
	switch (v) {
	case HR_CONSUL_OK:
		return "ok";
	case HR_CONSUL_LOST:
		return "lost";
	case HR_CONSUL_FORBIDDEN:
		return "forbidden";
	case HR_CONSUL_TOKEN_UNKNOWN:
		return "token_unknown";
	case HR_CONSUL_REJECTED:
		return "rejected";
	case HR_CONSUL_RETRY:
		return "retry";
	}
	return "?";
}

static bool has(const char *body, size_t len, const char *needle)
{
	return body && memmem(body, len, needle, strlen(needle)) != NULL;
}

enum hr_consul_verdict hr_consul_classify(enum hr_consul_op op, long code,
					  const char *body, size_t len)
{
	if (code >= 200 && code <= 299)
		return HR_CONSUL_OK;
	switch (op) {
	case HR_CONSUL_OP_UPDATE:
		/* Current agents: 404 Unknown check ID; older ones: 500. */
		if (code == 404 ||
		    (code == 500 &&
		     has(body, len, "does not have associated TTL")))
			return HR_CONSUL_LOST;
		break;
	case HR_CONSUL_OP_MAINTENANCE:
		if (code == 404)
			return HR_CONSUL_LOST;
		break;
	case HR_CONSUL_OP_DEREGISTER:
		/* Nothing to deregister is success (older agents: 500). */
		if (code == 404 ||
		    (code == 500 && has(body, len, "Unknown service")))
			return HR_CONSUL_OK;
		break;
	case HR_CONSUL_OP_FLOOR_READ:
		/* No key yet: the empty list. */
		if (code == 404)
			return HR_CONSUL_OK;
		break;
	case HR_CONSUL_OP_REGISTER:
	case HR_CONSUL_OP_FLEET_READ:
	case HR_CONSUL_OP_FLOOR_WRITE:
		break;
	}
	/* The agent's wrapper maps both texts to 403 (ref 0, 7). */
	if (code == 403 && has(body, len, "ACL not found"))
		return HR_CONSUL_TOKEN_UNKNOWN;
	if (code == 401 || code == 403)
		return HR_CONSUL_FORBIDDEN;
	if (code == 408 || code == 429)
		return HR_CONSUL_RETRY;
	if (code >= 400 && code <= 499)
		return HR_CONSUL_REJECTED;
	return HR_CONSUL_RETRY;
}

void hr_consul_excerpt(char *buf, size_t len, const char *body, size_t n)
{
	size_t i, o = 0;

	if (!len)
		return;
	for (i = 0; body && i < n && o + 1 < len; i++) {
		unsigned char ch = (unsigned char)body[i];

		if (ch == '\n' || ch == '\r')
			break;
		buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	buf[o] = '\0';
}

/* ---- the fleet floor ------------------------------------------------- */

bool hr_consul_floor_on(const struct hr_consul_conf *c)
{
	return c->min_healthy > 0 || c->max_unhealthy_fraction < 1.0;
}

static bool kv_segment_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(",-_.", *s)))
			return false;
	return true;
}

int hr_consul_floor_check(const struct hr_consul_conf *c,
			  const struct hr_service_spec *svc, const char *path,
			  struct hr_diag *diag)
{
	char p[HR_CONF_PATH_MAX];
	const char *key = c->min_healthy > 0 ? "min_healthy" :
					       "max_unhealthy_fraction";
	int rc = 0;

	if (!hr_consul_floor_on(c) || !svc || !svc->name)
		return 0;
	hr_conf_path(p, path, key);
	if (!svc->name[0] || !kv_segment_ok(svc->name)) {
		hr_diag_add(diag, HR_DIAG_ERROR, p,
			    "the fleet floor keeps its list under the KV key "
			    "\"" HR_CONSUL_FLOOR_KEY "<service.name>\", and "
			    "Consul accepts only letters, digits and \",-_.\" "
			    "there; service.name \"%.*s\" has others",
			    hr_conf_shown_len(svc->name, 128), svc->name);
		rc = -EINVAL;
	}
	if (!svc->id || !strcmp(svc->id, svc->name)) {
		hr_diag_add(diag, HR_DIAG_ERROR, p,
			    "the fleet floor tells the instances of a service "
			    "apart by their service ID: set service.id, "
			    "different on every instance (%s)",
			    svc->id ? "it equals service.name" : "it is unset "
			    "and would default to the name");
		rc = -EINVAL;
	}
	return rc;
}

char *hr_consul_url_floor(const char *base, const char *name, bool cas,
			  uint64_t index)
{
	struct buf b;
	char q[40];

	buf_init(&b);
	buf_str(&b, base);
	buf_str(&b, "/v1/kv/" HR_CONSUL_FLOOR_KEY);
	put_escaped(&b, name, "");
	if (cas) {
		snprintf(q, sizeof(q), "?cas=%llu", (unsigned long long)index);
		buf_str(&b, q);
	}
	return buf_take(&b);
}

char *hr_consul_url_fleet(const char *base, const char *name)
{
	return url_with_id(base, "/v1/health/service/", name);
}

void hr_consul_floor_doc_dispose(struct hr_consul_floor_doc *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		free(d->v[i].id);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64 (Go's []byte in JSON), padding optional; NUL-terminated
 * malloc'd result or NULL (bad input, ENOMEM: *oom tells). */
static char *b64_decode(const char *s, size_t *out_len, bool *oom)
{
	size_t n = strlen(s), o = 0, i;
	unsigned acc = 0;
	int bits = 0;
	char *out = malloc(n / 4 * 3 + 4);

	*oom = !out;
	if (!out)
		return NULL;
	for (i = 0; i < n && s[i] != '='; i++) {
		int v = b64val((unsigned char)s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* The value's {"leavers":[...]} into d. 0, -EPROTO or -ENOMEM. */
static int doc_value_parse(struct hr_consul_floor_doc *d, const char *txt,
			   size_t len)
{
	cJSON *root = cJSON_ParseWithLength(txt, len);
	const cJSON *list, *e;
	int rc = 0;

	if (!root)
		return -EPROTO;
	list = cJSON_GetObjectItemCaseSensitive(root, "leavers");
	if (!cJSON_IsObject(root) || !cJSON_IsArray(list)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	d->v = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*d->v));
	if (!d->v) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	cJSON_ArrayForEach(e, list) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		const cJSON *at = cJSON_GetObjectItemCaseSensitive(e, "at");

		/* at: whole seconds, in range before the cast */
		if (!cJSON_IsString(id) || !id->valuestring[0] ||
		    !cJSON_IsNumber(at) || !(at->valuedouble >= 0.0) ||
		    at->valuedouble > 1e15 ||
		    at->valuedouble != (double)(int64_t)at->valuedouble)
			continue;
		d->v[d->n].id = strdup(id->valuestring);
		if (!d->v[d->n].id) {
			rc = -ENOMEM;
			break;
		}
		d->v[d->n++].at = (int64_t)at->valuedouble;
	}
	cJSON_Delete(root);
	return rc;
}

int hr_consul_floor_doc_parse(struct hr_consul_floor_doc *out, long code,
			      const char *body, size_t len)
{
	cJSON *root = NULL;
	const cJSON *e, *idx, *val;
	char *raw = NULL;
	size_t rlen = 0;
	bool oom = false;
	int rc = -EPROTO;

	memset(out, 0, sizeof(*out));
	if (code == 404)
		return 0;
	if (code != 200 || !body)
		return -EPROTO;
	root = cJSON_ParseWithLength(body, len);
	e = cJSON_IsArray(root) && cJSON_GetArraySize(root) == 1 ?
		    cJSON_GetArrayItem(root, 0) : NULL;
	idx = cJSON_GetObjectItemCaseSensitive(e, "ModifyIndex");
	val = cJSON_GetObjectItemCaseSensitive(e, "Value");
	/* A Raft index as a JSON number: exact below 2^53, which no cluster
	 * reaches; anything not an index in range is not Consul's answer. */
	if (!cJSON_IsNumber(idx) || !(idx->valuedouble >= 1.0) ||
	    idx->valuedouble >= 18446744073709551616.0 ||
	    !(cJSON_IsNull(val) || cJSON_IsString(val)))
		goto done;
	out->index = (uint64_t)idx->valuedouble;
	if (cJSON_IsNull(val)) {
		rc = 0;
		goto done;
	}
	raw = b64_decode(val->valuestring, &rlen, &oom);
	if (!raw) {
		rc = oom ? -ENOMEM : -EPROTO;
		goto done;
	}
	rc = rlen ? doc_value_parse(out, raw, rlen) : 0;
done:
	free(raw);
	cJSON_Delete(root);
	if (rc < 0)
		hr_consul_floor_doc_dispose(out);
	return rc;
}

bool hr_consul_floor_doc_has(const struct hr_consul_floor_doc *d,
			     const char *id)
{
	size_t i;

	for (i = 0; d && id && i < d->n; i++)
		if (!strcmp(d->v[i].id, id))
			return true;
	return false;
}

int64_t hr_consul_floor_stale_after_s(const struct hr_consul_conf *c)
{
	int64_t ttl3 = c->check_ttl_ms / 1000 * 3;

	return ttl3 > HR_CONSUL_FLOOR_STALE_S ? ttl3 : HR_CONSUL_FLOOR_STALE_S;
}

static bool expired(const struct hr_consul_leaver *l, int64_t now,
		    int64_t stale_after_s)
{
	return l->at + stale_after_s < now;
}

static bool add_leaver(cJSON *list, const char *id, int64_t at)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "id", id) ||
	    !cJSON_AddNumberToObject(o, "at", (double)at) ||
	    !cJSON_AddItemToArray(list, o)) {
		cJSON_Delete(o);
		return false;
	}
	return true;
}

char *hr_consul_floor_doc_body(const struct hr_consul_floor_doc *d,
			       const char *add, const char *remove,
			       int64_t now, int64_t stale_after_s)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *list = root ? cJSON_AddArrayToObject(root, "leavers") : NULL;
	char *out = NULL;
	size_t i;
	bool ok = list != NULL;

	for (i = 0; ok && d && i < d->n; i++) {
		const struct hr_consul_leaver *l = &d->v[i];

		if (expired(l, now, stale_after_s) ||
		    (remove && !strcmp(l->id, remove)) ||
		    (add && !strcmp(l->id, add)))
			continue;
		ok = add_leaver(list, l->id, l->at);
	}
	if (ok && add)
		ok = add_leaver(list, add, now);
	if (!ok) {
		cJSON_Delete(root);
		return NULL;
	}
	return print_take(root, &out) < 0 ? NULL : out;
}

void hr_consul_fleet_dispose(struct hr_consul_fleet *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->n; i++)
		free(f->v[i].id);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* The worst status of an entry's Checks (node checks included). */
static enum hr_status entry_status(const cJSON *checks)
{
	enum hr_status worst = HR_STATUS_PASSING;
	const cJSON *c;

	cJSON_ArrayForEach(c, checks) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(c, "Status");
		const char *w = cJSON_IsString(st) ? st->valuestring : "";

		if (!strcmp(w, "passing"))
			continue;
		if (!strcmp(w, "warning"))
			worst = HR_STATUS_WARNING;
		else
			return HR_STATUS_CRITICAL;
	}
	return worst;
}

int hr_consul_fleet_parse(struct hr_consul_fleet *out, const char *body,
			  size_t len)
{
	cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *e;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsArray(root)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	out->v = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof(*out->v));
	if (!out->v) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	cJSON_ArrayForEach(e, root) {
		const cJSON *svc = cJSON_GetObjectItemCaseSensitive(e, "Service");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(svc, "ID");

		if (!cJSON_IsString(id))
			continue;
		out->v[out->n].id = strdup(id->valuestring);
		if (!out->v[out->n].id) {
			rc = -ENOMEM;
			break;
		}
		out->v[out->n++].status = entry_status(
			cJSON_GetObjectItemCaseSensitive(e, "Checks"));
	}
	cJSON_Delete(root);
	if (rc < 0)
		hr_consul_fleet_dispose(out);
	return rc;
}

static bool listed_live(const struct hr_consul_floor_doc *d, const char *id,
			int64_t now, int64_t stale_after_s)
{
	size_t i;

	for (i = 0; d && i < d->n; i++)
		if (!strcmp(d->v[i].id, id) &&
		    !expired(&d->v[i], now, stale_after_s))
			return true;
	return false;
}

static bool in_fleet(const struct hr_consul_fleet *f, const char *id)
{
	size_t i;

	for (i = 0; f && i < f->n; i++)
		if (!strcmp(f->v[i].id, id))
			return true;
	return false;
}

void hr_consul_floor_decide(const struct hr_consul_fleet *f,
			    const struct hr_consul_floor_doc *d,
			    const char *self_id, int min_healthy,
			    double max_unhealthy_fraction, int64_t now,
			    int64_t stale_after_s, struct hr_consul_floor *out)
{
	size_t i, may_fail;
	bool self_seen = false;

	memset(out, 0, sizeof(*out));
	for (i = 0; f && i < f->n; i++) {
		const struct hr_consul_instance *in = &f->v[i];

		out->fleet++;
		if (!strcmp(in->id, self_id)) {
			self_seen = true;
			continue;
		}
		if (in->status != HR_STATUS_CRITICAL &&
		    !listed_live(d, in->id, now, stale_after_s))
			out->healthy++;
	}
	for (i = 0; d && i < d->n; i++) {
		const struct hr_consul_leaver *l = &d->v[i];

		if (!strcmp(l->id, self_id) || expired(l, now, stale_after_s))
			continue;
		out->listed++;
		if (!in_fleet(f, l->id))
			out->fleet++;
	}
	if (!self_seen)
		out->fleet++;
	if (!(max_unhealthy_fraction >= 0.0))
		max_unhealthy_fraction = 0.0;
	if (max_unhealthy_fraction > 1.0)
		max_unhealthy_fraction = 1.0;
	/* floor(f * fleet), with a hair for 0.1 * 10 in binary */
	may_fail = (size_t)(max_unhealthy_fraction * (double)out->fleet +
			    1e-9);
	if (may_fail > out->fleet)
		may_fail = out->fleet;
	out->need = out->fleet - may_fail;
	if (min_healthy > 0 && (size_t)min_healthy > out->need)
		out->need = (size_t)min_healthy;
	out->leave = out->healthy >= out->need;
}

void hr_consul_floor_note(const struct hr_consul_floor *f, int min_healthy,
			  double max_unhealthy_fraction, char *buf,
			  size_t len)
{
	char frac[48] = "";

	if (max_unhealthy_fraction < 1.0)
		snprintf(frac, sizeof(frac), "%smax_unhealthy_fraction %g",
			 min_healthy > 0 ? ", " : "", max_unhealthy_fraction);
	if (min_healthy > 0)
		snprintf(buf, len, "kept by fleet floor: %zu of %zu healthy "
			 "(min_healthy %d%s)", f->healthy, f->fleet,
			 min_healthy, frac);
	else
		snprintf(buf, len, "kept by fleet floor: %zu of %zu healthy "
			 "(%s)", f->healthy, f->fleet, frac);
}
