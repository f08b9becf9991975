/*
 * etcd_payload.c - pure helpers of the etcd registry backend: config,
 * key/value layout, request bodies and reply classification. See
 * etcd_payload.h for the contracts and docs/etcd.md for the wire format.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_payload.h"
#include "healthreg/confget.h"
#include "healthreg/duration.h"
#include "healthreg/regcore.h"

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);

	if (p)
		memcpy(p, s, n);
	return p;
}

/* A cJSON-printed string copied into malloc()ed memory. */
static char *print_json(cJSON *root)
{
	char *s, *copy;

	if (!root)
		return NULL;
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s)
		return NULL;
	copy = dup_str(s);
	cJSON_free(s);
	return copy;
}

/* ---- config ---------------------------------------------------------- */

static int parse_endpoints(const cJSON *arr, const char *path,
			   struct hr_diag *d, struct hr_etcd_conf *out);
static int parse_value_format(const cJSON *v, const char *path,
			      struct hr_diag *d, struct hr_etcd_conf *out);

/* The schema: the keys of "registry.etcd" besides endpoints (below) and
 * the common ones (struct hr_reg_conf), and where they go. */
#define AT(m) offsetof(struct hr_etcd_conf, m)
static const struct hr_reg_field fields[] = {
	{ "prefix", HR_REG_STRING, AT(prefix) },
	{ "lease_ttl", HR_REG_DURATION, AT(lease_ttl_ms) },
	{ "username", HR_REG_NONEMPTY, AT(username) },
	{ "password_file", HR_REG_NONEMPTY, AT(password_file) },
	{ "request_timeout", HR_REG_DURATION, AT(request_timeout_ms) },
};
#undef AT

/* One member of the object: 0, -EINVAL (in d) or -ENOMEM. */
static int parse_member(struct hr_etcd_conf *out, const cJSON *v,
			const char *path, struct hr_diag *d)
{
	char p[HR_CONF_PATH_MAX];

	hr_conf_path(p, path, v->string);
	if (strcmp(v->string, "endpoints") == 0)
		return parse_endpoints(v, p, d, out);
	if (strcmp(v->string, "value_format") == 0)
		return parse_value_format(v, p, d, out);
	if (strcmp(v->string, "min_healthy") == 0)
		return hr_conf_int(v, p, 0, HR_ETCD_MIN_HEALTHY_MAX, d,
				   &out->min_healthy);
	if (strcmp(v->string, "max_unhealthy_fraction") == 0) {
		/* The registry forgets an instance once it left: there is no
		 * denominator to take a fraction of (docs/etcd.md). */
		hr_diag_add(d, HR_DIAG_ERROR, p,
			    "is not supported: etcd keeps no record of "
			    "instances that left, so a fraction has nothing to "
			    "count from; use min_healthy (an absolute count)");
		return -EINVAL;
	}
	if (strcmp(v->string, "password") == 0) {
		hr_diag_add(d, HR_DIAG_ERROR, p,
			    "passwords are not accepted inline; use "
			    "password_file or the ETCD_PASSWORD environment "
			    "variable");
		return -EINVAL;
	}
	return hr_reg_conf_member(fields, HR_ARRAY_SIZE(fields), out,
				  &out->common, v, path, d);
}

/* One endpoint URL, copied without trailing '/'. */
static int parse_endpoint(const cJSON *it, const char *p, struct hr_diag *d,
			  char **out)
{
	const char *s;
	size_t len;
	int rc = hr_conf_string(it, p, d, out);

	if (rc < 0)
		return rc;
	s = *out;
	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
		hr_diag_add(d, HR_DIAG_ERROR, p,
			    "\"%.*s\" must start with http:// or https://",
			    hr_conf_shown_len(s, 128), s);
		rc = -EINVAL;
	} else if (strlen(s) <= (s[4] == 's' ? 8u : 7u)) {
		hr_diag_add(d, HR_DIAG_ERROR, p, "\"%s\" has no host", s);
		rc = -EINVAL;
	}
	if (rc < 0) {
		free(*out);
		*out = NULL;
		return rc;
	}
	len = strlen(s);
	while (len > 0 && (*out)[len - 1] == '/')
		(*out)[--len] = '\0';
	return 0;
}

/* The endpoint array is NULL-terminated (the n_endpoints read are dense). */
static void free_endpoints(struct hr_etcd_conf *c)
{
	hr_conf_strv_free(c->endpoints);
	c->endpoints = NULL;
	c->n_endpoints = 0;
}

/* A key given twice: the last one counts (what an earlier one read is
 * freed first). */
static int parse_endpoints(const cJSON *arr, const char *path,
			   struct hr_diag *d, struct hr_etcd_conf *out)
{
	char p[HR_CONF_PATH_MAX];
	const cJSON *it;
	size_t n, i = 0;
	int rc = 0, r;

	free_endpoints(out);
	if (!cJSON_IsArray(arr)) {
		hr_diag_add(d, HR_DIAG_ERROR, path, "must be a list of URLs");
		return -EINVAL;
	}
	n = (size_t)cJSON_GetArraySize(arr);
	if (n == 0) {
		hr_diag_add(d, HR_DIAG_ERROR, path, "must not be empty");
		return -EINVAL;
	}
	out->endpoints = calloc(n + 1, sizeof(char *));
	if (!out->endpoints)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr) {
		snprintf(p, sizeof(p), "%s[%zu]", path, i++);
		r = parse_endpoint(it, p, d, &out->endpoints[out->n_endpoints]);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			rc = r;
		else
			out->n_endpoints++;
	}
	return rc;
}

/* "grpc" (the default) or "document". */
static int parse_value_format(const cJSON *v, const char *path,
			      struct hr_diag *d, struct hr_etcd_conf *out)
{
	char *s = NULL;
	int rc = hr_conf_string(v, path, d, &s);

	if (rc < 0)
		return rc;
	if (strcmp(s, "grpc") == 0) {
		out->value_format = HR_ETCD_VALUE_GRPC;
	} else if (strcmp(s, "document") == 0) {
		out->value_format = HR_ETCD_VALUE_DOCUMENT;
	} else {
		hr_diag_add(d, HR_DIAG_ERROR, path,
			    "\"%.*s\" is not a value format (\"grpc\" or "
			    "\"document\")", hr_conf_shown_len(s, 64), s);
		rc = -EINVAL;
	}
	free(s);
	return rc;
}

/* Defaults for what was not given. 0 or -ENOMEM. */
static int apply_defaults(struct hr_etcd_conf *out)
{
	if (!out->endpoints) {
		out->endpoints = calloc(2, sizeof(char *));
		if (!out->endpoints)
			return -ENOMEM;
		out->endpoints[0] = dup_str(HR_ETCD_DEFAULT_ENDPOINT);
		if (!out->endpoints[0])
			return -ENOMEM;
		out->n_endpoints = 1;
	}
	if (!out->prefix && !(out->prefix = dup_str(HR_ETCD_DEFAULT_PREFIX)))
		return -ENOMEM;
	return 0;
}

/* Rules on the values once read (a value that did not parse kept its
 * default, which passes). */
static void check_values(const struct hr_etcd_conf *c, const char *path,
			 struct hr_diag *d)
{
	char p[HR_CONF_PATH_MAX];

	if (!hr_etcd_prefix_ok(c->prefix))
		hr_diag_add(d, HR_DIAG_ERROR, hr_conf_path(p, path, "prefix"),
			    "\"%.*s\" must be one or more non-empty segments, "
			    "each ending in \"/\" (like \"services/\"): the "
			    "key is the prefix, the service name, \"/\" and "
			    "the address", hr_conf_shown_len(c->prefix, 64),
			    c->prefix);
	hr_conf_path(p, path, "lease_ttl");
	if (c->lease_ttl_ms < HR_ETCD_MIN_LEASE_TTL_MS)
		hr_diag_add(d, HR_DIAG_ERROR, p,
			    "must be at least 2s (etcd's minimum)");
	else if (c->lease_ttl_ms % 1000 != 0)
		hr_diag_add(d, HR_DIAG_ERROR, p,
			    "must be a whole number of seconds");
	else if (c->lease_ttl_ms > 86400000)
		hr_diag_add(d, HR_DIAG_ERROR, p, "must be at most 24h");
	if (c->request_timeout_ms < 100)
		hr_diag_add(d, HR_DIAG_ERROR,
			    hr_conf_path(p, path, "request_timeout"),
			    "must be at least 100ms");
	hr_reg_conf_check(&c->common, path, d);
}

int hr_etcd_conf_parse(struct hr_etcd_conf *out, const cJSON *conf,
		       const char *path, struct hr_diag *diag)
{
	struct hr_diag local;
	struct hr_diag *d = diag ? diag : &local;
	size_t errors;
	const cJSON *it;
	int rc = 0;

	if (!path)
		path = "registry.etcd";
	hr_diag_init(&local);
	errors = d->errors;
	memset(out, 0, sizeof(*out));
	out->lease_ttl_ms = HR_ETCD_DEFAULT_LEASE_TTL_MS;
	out->request_timeout_ms = HR_ETCD_DEFAULT_REQUEST_TIMEOUT_MS;
	hr_reg_conf_init(&out->common);
	if (conf && !cJSON_IsObject(conf)) {
		hr_diag_add(d, HR_DIAG_ERROR, path, "must be an object");
		rc = -EINVAL;
		goto cleanup;
	}
	cJSON_ArrayForEach(it, conf) {
		if (parse_member(out, it, path, d) == -ENOMEM) {
			rc = -ENOMEM;
			goto cleanup;
		}
	}
	rc = apply_defaults(out);
	if (rc < 0)
		goto cleanup;
	check_values(out, path, d);
	rc = d->errors > errors ? -EINVAL : 0;
cleanup:
	hr_diag_dispose(&local);
	if (rc < 0)
		hr_etcd_conf_dispose(out);
	return rc;
}

void hr_etcd_conf_dispose(struct hr_etcd_conf *c)
{
	if (!c)
		return;
	free_endpoints(c);
	free(c->prefix);
	free(c->username);
	free(c->password_file);
	hr_reg_conf_dispose(&c->common);
	memset(c, 0, sizeof(*c));
}

bool hr_etcd_registrable(const struct hr_etcd_conf *c, enum hr_status s)
{
	if ((unsigned)s > 31)
		return false;
	return (c->common.register_when & (1u << s)) != 0;
}

/* ---- key and value --------------------------------------------------- */

int hr_etcd_addr(const struct hr_service_spec *svc, const char *fallback_host,
		 char *buf, size_t len)
{
	const char *host = svc->address && *svc->address ? svc->address
							   : fallback_host;
	int n;

	if (!host || !*host || svc->port <= 0 || svc->port > 65535)
		return -EINVAL;
	if (strchr(host, ':') && host[0] != '[')
		n = snprintf(buf, len, "[%s]:%d", host, svc->port);
	else
		n = snprintf(buf, len, "%s:%d", host, svc->port);
	if (n < 0 || (size_t)n >= len)
		return -ERANGE;
	return 0;
}

char *hr_etcd_key(const char *prefix, const char *service, const char *addr)
{
	size_t n = strlen(prefix) + strlen(service) + strlen(addr) + 2;
	char *k = malloc(n);

	if (k)
		snprintf(k, n, "%s%s/%s", prefix, service, addr);
	return k;
}

bool hr_etcd_prefix_ok(const char *prefix)
{
	const char *s = prefix;
	size_t n = strlen(prefix);

	if (*s == '/')
		s++;
	/* At least one segment; every '/' closes a non-empty one. */
	if (!*s || n == 0 || prefix[n - 1] != '/')
		return false;
	for (; *s; s++)
		if (*s == '/' && s[-1] == '/')
			return false;
	return true;
}

/* {"Op":0,"Addr":addr}: Go's field order (Op, Addr, Metadata). */
static cJSON *value_base(const char *addr)
{
	cJSON *root = cJSON_CreateObject();

	if (!root || !cJSON_AddNumberToObject(root, "Op", 0) ||
	    !cJSON_AddStringToObject(root, "Addr", addr)) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

char *hr_etcd_value(const struct hr_service_spec *svc, const char *addr,
		    enum hr_status status, enum hr_etcd_value_format format)
{
	return hr_etcd_value_note(svc, addr, status, format, NULL);
}

char *hr_etcd_value_note(const struct hr_service_spec *svc, const char *addr,
			 enum hr_status status,
			 enum hr_etcd_value_format format, const char *note)
{
	cJSON *root = value_base(addr);
	cJSON *md, *tags, *meta;
	size_t i;

	if (!root)
		return NULL;
	if (format == HR_ETCD_VALUE_GRPC)
		return print_json(root);
	md = cJSON_CreateObject();
	tags = cJSON_CreateArray();
	meta = cJSON_CreateObject();
	if (!md || !tags || !meta) {
		cJSON_Delete(md);
		cJSON_Delete(tags);
		cJSON_Delete(meta);
		cJSON_Delete(root);
		return NULL;
	}
	/* Ownership moves on Add. */
	if (!cJSON_AddStringToObject(md, "id", svc->id ? svc->id : svc->name) ||
	    !cJSON_AddStringToObject(md, "status", hr_status_name(status)) ||
	    (note && !cJSON_AddStringToObject(md, "note", note))) {
		cJSON_Delete(md);
		cJSON_Delete(tags);
		cJSON_Delete(meta);
		goto fail;
	}
	cJSON_AddItemToObject(md, "tags", tags);
	cJSON_AddItemToObject(md, "meta", meta);
	cJSON_AddItemToObject(root, "Metadata", md);
	for (i = 0; svc->tags && i < svc->n_tags && svc->tags[i]; i++) {
		cJSON *t = cJSON_CreateString(svc->tags[i]);

		if (!t)
			goto fail;
		cJSON_AddItemToArray(tags, t);
	}
	for (i = 0; i < svc->n_meta; i++)
		if (!cJSON_AddStringToObject(meta, svc->meta[i].name,
					     svc->meta[i].value))
			goto fail;
	return print_json(root);
fail:
	cJSON_Delete(root);
	return NULL;
}

/* ---- request bodies -------------------------------------------------- */

static bool add_int64(cJSON *obj, const char *name, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

static bool add_b64(cJSON *obj, const char *name, const char *s)
{
	char *b = hr_etcd_b64(s, strlen(s));
	bool ok;

	if (!b)
		return false;
	ok = cJSON_AddStringToObject(obj, name, b) != NULL;
	free(b);
	return ok;
}

char *hr_etcd_body_grant(int64_t ttl_s)
{
	cJSON *root = cJSON_CreateObject();

	if (!root || !add_int64(root, "TTL", ttl_s)) {
		cJSON_Delete(root);
		return NULL;
	}
	return print_json(root);
}

char *hr_etcd_body_lease(int64_t id)
{
	cJSON *root = cJSON_CreateObject();

	if (!root || !add_int64(root, "ID", id)) {
		cJSON_Delete(root);
		return NULL;
	}
	return print_json(root);
}

char *hr_etcd_body_put(const char *key, const char *value, int64_t lease)
{
	cJSON *root = cJSON_CreateObject();

	if (!root || !add_b64(root, "key", key) ||
	    !add_b64(root, "value", value) ||
	    !add_int64(root, "lease", lease)) {
		cJSON_Delete(root);
		return NULL;
	}
	return print_json(root);
}

char *hr_etcd_body_puts(const char *const *keys, const char *const *values,
			size_t n, int64_t lease)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *ops = cJSON_AddArrayToObject(root, "success");
	size_t i;

	if (!root || !ops || n == 0 || n > HR_ETCD_TXN_OPS_MAX)
		goto fail;
	for (i = 0; i < n; i++) {
		cJSON *op = cJSON_CreateObject();
		cJSON *put;

		if (!op)
			goto fail;
		cJSON_AddItemToArray(ops, op);
		put = cJSON_AddObjectToObject(op, "request_put");
		if (!put || !add_b64(put, "key", keys[i]) ||
		    !add_b64(put, "value", values[i]) ||
		    !add_int64(put, "lease", lease))
			goto fail;
	}
	return print_json(root);
fail:
	cJSON_Delete(root);
	return NULL;
}

char *hr_etcd_body_delete_if_lease(const char *key, int64_t lease)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *cmp_arr = cJSON_AddArrayToObject(root, "compare");
	cJSON *ok_arr = cJSON_AddArrayToObject(root, "success");
	cJSON *cmp = cJSON_CreateObject();
	cJSON *op = cJSON_CreateObject();
	cJSON *del = cJSON_AddObjectToObject(op, "request_delete_range");

	if (!root || !cmp_arr || !ok_arr || !cmp || !op || !del) {
		cJSON_Delete(cmp);
		cJSON_Delete(op);
		cJSON_Delete(root);
		return NULL;
	}
	cJSON_AddItemToArray(cmp_arr, cmp);
	cJSON_AddItemToArray(ok_arr, op);
	/* Enum names, not numbers: "target":3 is VALUE, a known pitfall. */
	if (!cJSON_AddStringToObject(cmp, "target", "LEASE") ||
	    !add_b64(cmp, "key", key) ||
	    !cJSON_AddStringToObject(cmp, "result", "EQUAL") ||
	    !add_int64(cmp, "lease", lease) || !add_b64(del, "key", key)) {
		cJSON_Delete(root);
		return NULL;
	}
	return print_json(root);
}

char *hr_etcd_body_auth(const char *user, const char *password)
{
	cJSON *root = cJSON_CreateObject();

	cJSON *pw = NULL;
	char *s, *copy = NULL;

	if (root && cJSON_AddStringToObject(root, "name", user))
		pw = cJSON_AddStringToObject(root, "password", password);
	s = pw ? cJSON_PrintUnformatted(root) : NULL;
	if (s) {
		copy = dup_str(s);
		hr_wipe(s, strlen(s));
		cJSON_free(s);
	}
	/* The tree's copy of the password, too. */
	if (pw && pw->valuestring)
		hr_wipe(pw->valuestring, strlen(pw->valuestring));
	cJSON_Delete(root);
	return copy;
}

/* ---- the fleet floor --------------------------------------------------- */

void hr_etcd_view_dispose(struct hr_etcd_view *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++)
		free(v->kvs[i].key);
	free(v->kvs);
	memset(v, 0, sizeof(*v));
}

char *hr_etcd_service_dir(const char *prefix, const char *service)
{
	size_t n = strlen(prefix) + strlen(service) + 2;
	char *k = malloc(n);

	if (k)
		snprintf(k, n, "%s%s/", prefix, service);
	return k;
}

char *hr_etcd_body_range_prefix(const char *dir, bool keys_only)
{
	cJSON *root = cJSON_CreateObject();
	size_t n = strlen(dir);
	char *end = n ? dup_str(dir) : NULL;
	bool ok;

	/* dir ends in '/': its successor byte '0' closes the range. */
	if (end)
		end[n - 1] = (char)(end[n - 1] + 1);
	ok = root && end && add_b64(root, "key", dir) &&
	     add_b64(root, "range_end", end) &&
	     (!keys_only || cJSON_AddTrueToObject(root, "keys_only"));
	free(end);
	if (!ok) {
		cJSON_Delete(root);
		return NULL;
	}
	return print_json(root);
}

/* The others: keys of v other than own_key. */
static bool is_own(const struct hr_etcd_kv *kv, const char *own_key)
{
	return strcmp(kv->key, own_key) == 0;
}

void hr_etcd_floor_decide(const struct hr_etcd_view *v, const char *own_key,
			  int64_t lease, int min_healthy,
			  struct hr_etcd_floor *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < v->n; i++) {
		out->registered++;
		if (is_own(&v->kvs[i], own_key)) {
			out->present = true;
			out->ours = v->kvs[i].lease == lease;
		} else if (!v->kvs[i].critical) {
			out->healthy++;
		}
	}
	out->leave = out->present && out->ours && min_healthy >= 0 &&
		     out->registered - 1 >= (size_t)min_healthy;
}

static cJSON *compare_int(const char *target, const char *key,
			  const char *field, int64_t v)
{
	cJSON *c = cJSON_CreateObject();

	/* Enum names, not numbers: "target":3 is VALUE. */
	if (!c || !cJSON_AddStringToObject(c, "target", target) ||
	    !add_b64(c, "key", key) ||
	    !cJSON_AddStringToObject(c, "result", "EQUAL") ||
	    !add_int64(c, field, v)) {
		cJSON_Delete(c);
		return NULL;
	}
	return c;
}

char *hr_etcd_body_floor_delete(const struct hr_etcd_view *v,
				const char *own_key, int64_t lease,
				int min_healthy)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *cmps = cJSON_AddArrayToObject(root, "compare");
	cJSON *ok = cJSON_AddArrayToObject(root, "success");
	cJSON *op = cJSON_CreateObject(), *del, *c;
	const struct hr_etcd_kv *own = NULL;
	size_t i;
	int others = 0;

	if (!cmps || !ok || !op) {
		cJSON_Delete(op);
		goto fail;
	}
	cJSON_AddItemToArray(ok, op);
	del = cJSON_AddObjectToObject(op, "request_delete_range");
	if (!del || !add_b64(del, "key", own_key))
		goto fail;
	for (i = 0; i < v->n; i++)
		if (is_own(&v->kvs[i], own_key))
			own = &v->kvs[i];
	if (!own || min_healthy < 0)
		goto fail;
	if (!(c = compare_int("LEASE", own_key, "lease", lease)))
		goto fail;
	cJSON_AddItemToArray(cmps, c);
	if (!(c = compare_int("MOD", own_key, "mod_revision",
			      own->mod_revision)))
		goto fail;
	cJSON_AddItemToArray(cmps, c);
	for (i = 0; i < v->n && others < min_healthy; i++) {
		if (&v->kvs[i] == own)
			continue;
		c = compare_int("MOD", v->kvs[i].key, "mod_revision",
				v->kvs[i].mod_revision);
		if (!c)
			goto fail;
		cJSON_AddItemToArray(cmps, c);
		others++;
	}
	if (others < min_healthy)
		goto fail;
	return print_json(root);
fail:
	cJSON_Delete(root);
	return NULL;
}

char *hr_etcd_body_delete_if_unchanged(const char *key, int64_t lease,
				       int64_t mod_revision)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *cmps = cJSON_AddArrayToObject(root, "compare");
	cJSON *ok = cJSON_AddArrayToObject(root, "success");
	cJSON *op = cJSON_CreateObject(), *del, *c;

	if (!cmps || !ok || !op) {
		cJSON_Delete(op);
		goto fail;
	}
	cJSON_AddItemToArray(ok, op);
	del = cJSON_AddObjectToObject(op, "request_delete_range");
	if (!del || !add_b64(del, "key", key))
		goto fail;
	if (!(c = compare_int("LEASE", key, "lease", lease)))
		goto fail;
	cJSON_AddItemToArray(cmps, c);
	if (mod_revision > 0) {
		if (!(c = compare_int("MOD", key, "mod_revision",
				      mod_revision)))
			goto fail;
		cJSON_AddItemToArray(cmps, c);
	}
	return print_json(root);
fail:
	cJSON_Delete(root);
	return NULL;
}

void hr_etcd_floor_note(const struct hr_etcd_floor *f, int min_healthy,
			char *buf, size_t len)
{
	snprintf(buf, len, "kept by fleet floor: %zu of %zu healthy "
		 "(min_healthy %d)", f->healthy, f->registered, min_healthy);
}

/* ---- base64 ---------------------------------------------------------- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *hr_etcd_b64(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	size_t i, o = 0;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
			     p[i + 2];

		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = b64chars[v >> 6 & 63];
		out[o++] = b64chars[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = b64chars[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

static int b64val(char ch)
{
	const char *p;

	if (!ch)
		return -1;
	p = strchr(b64chars, ch);
	return p ? (int)(p - b64chars) : -1;
}

char *hr_etcd_b64_decode(const char *s, size_t *len_out)
{
	size_t n = strlen(s), i, o = 0, pad = 0;
	uint32_t acc = 0;
	int bits = 0;
	char *out;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (n % 4 == 1)
		return NULL;
	if (pad && (n + pad) % 4 != 0)
		return NULL;
	out = malloc(n / 4 * 3 + 3);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		int v = b64val(s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = '\0';
	if (len_out)
		*len_out = o;
	return out;
}

/* ---- replies --------------------------------------------------------- */

int hr_etcd_int64(const cJSON *item, int64_t *out)
{
	const char *s;
	bool neg = false;
	uint64_t v = 0;

	if (cJSON_IsNumber(item)) {
		double d = item->valuedouble;

		/* Range first (NaN fails it too): converting an out-of-range
		 * double is undefined. Beyond 2^53 a double is not exact. */
		if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) ||
		    d != (double)(int64_t)d)
			return -EINVAL;
		*out = (int64_t)d;
		return 0;
	}
	if (!cJSON_IsString(item) || !item->valuestring)
		return -EINVAL;
	s = item->valuestring;
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_C(9223372036854775808) - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (!neg && v > (uint64_t)INT64_MAX)
		return -EINVAL;
	*out = neg ? (v == UINT64_C(9223372036854775808) ? INT64_MIN
							 : -(int64_t)v)
		   : (int64_t)v;
	return 0;
}

const char *hr_etcd_op_name(enum hr_etcd_op op)
{
	switch (op) {
	case HR_ETCD_OP_AUTH:
		return "authenticate";
	case HR_ETCD_OP_GRANT:
		return "grant";
	case HR_ETCD_OP_KEEPALIVE:
		return "keepalive";
	case HR_ETCD_OP_PUT:
		return "put";
	case HR_ETCD_OP_DELETE:
		return "delete";
	case HR_ETCD_OP_REVOKE:
		return "revoke";
	case HR_ETCD_OP_RANGE:
		return "range";
	case HR_ETCD_OP_FLOOR_DELETE:
		return "floor_delete";
	case HR_ETCD_OP_PUTS:
		return "puts";
	}
	return "?";
}

const char *hr_etcd_result_name(enum hr_etcd_result r)
{
	switch (r) {
	case HR_ETCD_OK:
		return "ok";
	case HR_ETCD_LEASE_LOST:
		return "lease_lost";
	case HR_ETCD_AUTH_EXPIRED:
		return "auth_expired";
	case HR_ETCD_AUTH_DENIED:
		return "auth_denied";
	case HR_ETCD_UNAVAILABLE:
		return "unavailable";
	case HR_ETCD_FAILED:
		return "failed";
	}
	return "?";
}

static void set_msg(struct hr_etcd_reply *r, const char *s)
{
	snprintf(r->message, sizeof(r->message), "%s", s ? s : "");
}

/* Classify an error by gRPC code and message, HTTP status as fallback. */
static enum hr_etcd_result classify_error(enum hr_etcd_op op, long http,
					  int code, const char *msg)
{
	if (!msg)
		msg = "";
	if (strstr(msg, "requested lease not found") ||
	    (code == 5 && op != HR_ETCD_OP_AUTH))
		return HR_ETCD_LEASE_LOST;
	if (code == 16 || http == 401 || strstr(msg, "invalid auth token") ||
	    strstr(msg, "user name is empty") ||
	    strstr(msg, "revision of auth store is old"))
		return op == HR_ETCD_OP_AUTH ? HR_ETCD_AUTH_DENIED
					     : HR_ETCD_AUTH_EXPIRED;
	if (code == 7 || http == 403 ||
	    strstr(msg, "authentication failed") ||
	    strstr(msg, "authentication is not enabled"))
		return HR_ETCD_AUTH_DENIED;
	if (code == 14 || code == 4 || http >= 500 || http == 0)
		return HR_ETCD_UNAVAILABLE;
	return HR_ETCD_FAILED;
}

/* Read an error in either shape; false when root carries none. */
static bool read_error(const cJSON *root, int *code, const char **msg)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *c, *m;
	int64_t v;

	if (!e)
		return false;
	if (cJSON_IsObject(e)) {
		/* stream shape: {"error":{"grpc_code":14,"message":...}} */
		c = cJSON_GetObjectItemCaseSensitive(e, "grpc_code");
		m = cJSON_GetObjectItemCaseSensitive(e, "message");
	} else if (cJSON_IsString(e)) {
		if (!e->valuestring || !*e->valuestring)
			return false; /* LeaseGrantResponse.error = "" */
		c = cJSON_GetObjectItemCaseSensitive(root, "code");
		m = e;
	} else {
		return false;
	}
	if (c && hr_etcd_int64(c, &v) == 0 && v >= INT_MIN && v <= INT_MAX)
		*code = (int)v;
	*msg = cJSON_IsString(m) && m->valuestring ? m->valuestring
						   : "etcd error";
	return true;
}

/* Fail the reply with msg. */
static void fail(struct hr_etcd_reply *out, enum hr_etcd_result r,
		 const char *msg)
{
	set_msg(out, msg);
	out->result = r;
}

static void parse_auth(const cJSON *root, struct hr_etcd_reply *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "token");

	if (!cJSON_IsString(it) || !it->valuestring || !*it->valuestring) {
		fail(out, HR_ETCD_FAILED, "no token in reply");
		return;
	}
	out->token = dup_str(it->valuestring);
	if (!out->token)
		fail(out, HR_ETCD_FAILED, "out of memory");
}

static void parse_grant(const cJSON *root, struct hr_etcd_reply *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "ID");

	if (!it || hr_etcd_int64(it, &out->id) < 0 || out->id == 0) {
		fail(out, HR_ETCD_FAILED, "no lease ID in reply");
		return;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "TTL");
	if (!it || hr_etcd_int64(it, &out->ttl) < 0 || out->ttl <= 0)
		fail(out, HR_ETCD_FAILED, "no TTL in reply");
}

static void parse_keepalive(const cJSON *root, struct hr_etcd_reply *out)
{
	/* One stream message: {"result":{...,"TTL":"10"}}. */
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
	const cJSON *it;

	if (!cJSON_IsObject(res)) {
		fail(out, HR_ETCD_FAILED, "no result in keepalive reply");
		return;
	}
	it = cJSON_GetObjectItemCaseSensitive(res, "ID");
	if (it)
		hr_etcd_int64(it, &out->id);
	it = cJSON_GetObjectItemCaseSensitive(res, "TTL");
	if (!it || hr_etcd_int64(it, &out->ttl) < 0 || out->ttl <= 0) {
		/* A dead or unknown lease still gets HTTP 200. */
		out->ttl = 0;
		fail(out, HR_ETCD_LEASE_LOST, "keepalive reply without TTL");
	}
}

/* A document value marked critical (a kept instance). */
static bool value_critical(const char *b64)
{
	char *raw = b64 ? hr_etcd_b64_decode(b64, NULL) : NULL;
	cJSON *root = raw ? cJSON_Parse(raw) : NULL;
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "Metadata");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(md, "status");
	bool crit = cJSON_IsString(st) && st->valuestring &&
		    strcmp(st->valuestring, "critical") == 0;

	cJSON_Delete(root);
	free(raw);
	return crit;
}

/* One kv of a range reply into kv: 0 or a reason. */
static const char *parse_kv(const cJSON *it, struct hr_etcd_kv *kv)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "key");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "mod_revision");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(it, "lease");
	const cJSON *val = cJSON_GetObjectItemCaseSensitive(it, "value");

	if (!cJSON_IsString(k) || !k->valuestring ||
	    !(kv->key = hr_etcd_b64_decode(k->valuestring, NULL)))
		return "range reply: a key is not base64";
	if (!m || hr_etcd_int64(m, &kv->mod_revision) < 0 ||
	    kv->mod_revision <= 0)
		return "range reply: a key without mod_revision";
	/* lease is omitted when 0 */
	if (l && hr_etcd_int64(l, &kv->lease) < 0)
		return "range reply: a bad lease";
	kv->critical = cJSON_IsString(val) && value_critical(val->valuestring);
	return NULL;
}

static void parse_range(const cJSON *root, struct hr_etcd_reply *out)
{
	const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(root, "header");
	const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(root, "kvs");
	const cJSON *it;
	const char *bad = NULL;
	size_t n;

	it = cJSON_GetObjectItemCaseSensitive(hdr, "revision");
	if (!it || hr_etcd_int64(it, &out->view.revision) < 0) {
		fail(out, HR_ETCD_FAILED, "range reply without a revision");
		return;
	}
	/* No key: "kvs" is omitted. */
	if (!kvs)
		return;
	if (!cJSON_IsArray(kvs)) {
		fail(out, HR_ETCD_FAILED, "range reply: kvs is not a list");
		return;
	}
	n = (size_t)cJSON_GetArraySize(kvs);
	out->view.kvs = n ? calloc(n, sizeof(*out->view.kvs)) : NULL;
	if (n && !out->view.kvs) {
		fail(out, HR_ETCD_FAILED, "out of memory");
		return;
	}
	cJSON_ArrayForEach(it, kvs) {
		bad = parse_kv(it, &out->view.kvs[out->view.n]);
		if (out->view.kvs[out->view.n].key)
			out->view.n++;
		if (bad)
			break;
	}
	if (bad) {
		hr_etcd_view_dispose(&out->view);
		fail(out, HR_ETCD_FAILED, bad);
	}
}

/* A 2xx reply without an error: what the op's answer must hold. */
static void parse_ok(enum hr_etcd_op op, const cJSON *root,
		     struct hr_etcd_reply *out)
{
	out->result = HR_ETCD_OK;
	switch (op) {
	case HR_ETCD_OP_AUTH:
		parse_auth(root, out);
		break;
	case HR_ETCD_OP_GRANT:
		parse_grant(root, out);
		break;
	case HR_ETCD_OP_KEEPALIVE:
		parse_keepalive(root, out);
		break;
	case HR_ETCD_OP_RANGE:
		parse_range(root, out);
		break;
	case HR_ETCD_OP_DELETE:
	case HR_ETCD_OP_FLOOR_DELETE:
	case HR_ETCD_OP_PUTS:
		out->succeeded = cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(root, "succeeded"));
		break;
	case HR_ETCD_OP_PUT:
	case HR_ETCD_OP_REVOKE:
		break;
	}
	/* A put's (or a txn's): the mod_revision of what it wrote. */
	if (op == HR_ETCD_OP_PUT || op == HR_ETCD_OP_PUTS) {
		const cJSON *hdr =
			cJSON_GetObjectItemCaseSensitive(root, "header");
		const cJSON *rev =
			cJSON_GetObjectItemCaseSensitive(hdr, "revision");

		if (!rev || hr_etcd_int64(rev, &out->revision) < 0 ||
		    out->revision < 0)
			out->revision = 0;
	}
}

void hr_etcd_reply_parse(enum hr_etcd_op op, long http_status,
			 const char *body, size_t len,
			 struct hr_etcd_reply *out)
{
	cJSON *root = NULL;
	const char *msg = NULL, *end = NULL;
	int code = -1;

	memset(out, 0, sizeof(*out));
	out->http_status = http_status;
	out->grpc_code = -1;
	if (http_status == 0) {
		fail(out, HR_ETCD_UNAVAILABLE, "no reply");
		return;
	}
	if (body && len)
		root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (root && read_error(root, &code, &msg)) {
		out->grpc_code = code;
		fail(out, classify_error(op, http_status, code, msg), msg);
	} else if (http_status < 200 || http_status > 299) {
		char buf[64];

		snprintf(buf, sizeof(buf), "HTTP %ld", http_status);
		fail(out, classify_error(op, http_status, -1, ""), buf);
	} else if (!root || !cJSON_IsObject(root)) {
		fail(out, HR_ETCD_FAILED, "reply is not a JSON object");
	} else {
		parse_ok(op, root, out);
	}
	cJSON_Delete(root);
}

void hr_etcd_reply_dispose(struct hr_etcd_reply *r)
{
	if (!r)
		return;
	free(r->token);
	r->token = NULL;
	hr_etcd_view_dispose(&r->view);
}
