/*
 * config.c - JSON text -> struct hr_config, with complete validation.
 *
 * Keys are matched the way Consul matches them: case-insensitively and
 * ignoring underscores, so "tls_skip_verify", "TLSSkipVerify" and
 * "tlsskipverify" are one key. Every problem is reported with its JSON
 * path; keys Consul knows but healthreg does not use are warnings; any
 * other unknown key is an error.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/config.h"
#include "healthreg/confget.h"
#include "healthreg/duration.h"
#include "healthreg/log.h"
#include "internal.h"

#define PATH_MAX_LEN HR_CONF_PATH_MAX
#define DEFAULT_INTERVAL_MS 10000
#define MIN_INTERVAL_MS 100
#define DEFAULT_TIMEOUT_MS 5000

const char *hr_check_kind_name(enum hr_check_kind k)
{
	switch (k) {
	case HR_CHECK_HTTP:
		return "http";
	case HR_CHECK_TCP:
		return "tcp";
	case HR_CHECK_EXEC:
		return "args";
	case HR_CHECK_TTL:
		return "ttl";
	}
	return "?";
}

const char *hr_on_failure_name(enum hr_on_failure f)
{
	switch (f) {
	case HR_ON_FAILURE_WARNING:
		return "warning";
	case HR_ON_FAILURE_IGNORE:
		return "ignore";
	default:
		return "critical";
	}
}

#define norm_key hr_conf_key_norm
#define show hr_conf_show

static int in_list(const char *key, const char *const *list)
{
	char k[64];

	norm_key(key, k, sizeof(k));
	for (; *list; list++)
		if (!strcmp(k, *list))
			return 1;
	return 0;
}

struct ctx {
	struct hr_diag *diag;
	struct hr_config *cfg;
};

static void err_at(struct ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_at(struct ctx *c, const char *path, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(msg)) /* cut short: on a character boundary */
		msg[hr_conf_utf8_prefix(msg, sizeof(msg) - 1)] = '\0';
	hr_diag_add(c->diag, HR_DIAG_ERROR, path, "%s", msg);
}

static void sub(char *out, const char *path, const cJSON *item)
{
	hr_conf_path(out, path, item->string);
}

/* ---- names given twice ------------------------------------------------ */

/* Compare keys as hr_conf_key_norm() leaves them (case, '_' and '-'
 * ignored, the first 63 characters), without copying them. */
static int key_cmp(const char *a, const char *b)
{
	size_t n;

	for (n = 0; n < 63; n++, a++, b++) {
		int x, y;

		while (*a == '_' || *a == '-')
			a++;
		while (*b == '_' || *b == '-')
			b++;
		x = tolower((unsigned char)*a);
		y = tolower((unsigned char)*b);
		if (x != y || !x)
			return x - y;
	}
	return 0;
}

struct named {
	const char *s;
	size_t i;
};

static int by_key(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = key_cmp(x->s, y->s);

	return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int by_name(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->s, y->s);

	return c ? c : (x->i > y->i) - (x->i < y->i);
}

#define NO_TWIN ((size_t)-1)

/*
 * For each of the n names, the index of the first equal name before it,
 * or NO_TWIN (keys: equal as Consul matches keys). malloc'ed; NULL on
 * ENOMEM. One sort, so a long object or check list costs n log n.
 */
static size_t *first_twins(const char *const *names, size_t n, bool keys)
{
	int (*cmp)(const char *, const char *) = keys ? key_cmp : strcmp;
	struct named *v = malloc((n ? n : 1) * sizeof(*v));
	size_t *twin = malloc((n ? n : 1) * sizeof(*twin));
	size_t i, lead = 0;

	if (!v || !twin) {
		free(v);
		free(twin);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		v[i].s = names[i];
		v[i].i = i;
		twin[i] = NO_TWIN;
	}
	qsort(v, n, sizeof(*v), keys ? by_key : by_name);
	for (i = 1; i < n; i++) {
		if (cmp(v[i].s, v[lead].s))
			lead = i;
		else
			twin[v[i].i] = v[lead].i;
	}
	free(v);
	return twin;
}

/*
 * Duplicate keys (after normalisation) are reported: one would be lost.
 * Returns, for the caller to free, each member's earlier twin (see
 * first_twins); the sections read only the first (see parse_object).
 */
static size_t *check_duplicates(struct ctx *c, const cJSON *obj,
				const char *path)
{
	size_t n = (size_t)cJSON_GetArraySize(obj), i = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	size_t *twin = NULL;
	const cJSON *a;

	if (keys) {
		cJSON_ArrayForEach(a, obj)
			keys[i++] = a->string;
		twin = first_twins(keys, n, true);
	}
	if (!twin) {
		free(keys);
		err_at(c, path, "out of memory");
		return NULL;
	}
	i = 0;
	cJSON_ArrayForEach(a, obj) {
		char p[PATH_MAX_LEN];

		if (twin[i] != NO_TWIN) {
			sub(p, path, a);
			err_at(c, p, "duplicate key (also given as \"%s\")",
			       keys[twin[i]]);
		}
		i++;
	}
	free(keys);
	return twin;
}

static int get_on_failure(struct ctx *c, const cJSON *v, const char *path,
			  enum hr_on_failure *out)
{
	char shown[80];

	if (cJSON_IsString(v)) {
		if (!strcmp(v->valuestring, "critical")) {
			*out = HR_ON_FAILURE_CRITICAL;
			return 0;
		}
		if (!strcmp(v->valuestring, "warning")) {
			*out = HR_ON_FAILURE_WARNING;
			return 0;
		}
		if (!strcmp(v->valuestring, "ignore")) {
			*out = HR_ON_FAILURE_IGNORE;
			return 0;
		}
	}
	show(v, shown, sizeof(shown));
	err_at(c, path, "%s is not one of \"critical\", \"warning\", \"ignore\"",
	       shown);
	return -EINVAL;
}

/* Consul's header form is {"Name": ["v1", "v2"]}; a plain string is
 * accepted too. */
static int get_headers(struct ctx *c, const cJSON *v, const char *path,
		       struct hr_header **out, size_t *n_out, int multi)
{
	char p[PATH_MAX_LEN];
	const cJSON *h, *e;
	size_t n = 0, cap = 0;
	struct hr_header *arr = NULL;
	int rc = 0;

	if (!cJSON_IsObject(v)) {
		err_at(c, path, "is not an object");
		return -EINVAL;
	}
	cJSON_ArrayForEach(h, v) {
		const cJSON *vals = h;
		int single = cJSON_IsString(h);

		sub(p, path, h);
		if (!single && !(multi && cJSON_IsArray(h))) {
			err_at(c, p, multi ? "is not a string or an array of strings"
					   : "is not a string");
			rc = -EINVAL;
			continue;
		}
		for (e = single ? vals : vals->child; e;
		     e = single ? NULL : e->next) {
			if (!cJSON_IsString(e)) {
				err_at(c, p, "is not a string or an array of strings");
				rc = -EINVAL;
				break;
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				struct hr_header *na =
					realloc(arr, ncap * sizeof(*arr));

				if (!na) {
					rc = -ENOMEM;
					goto out;
				}
				arr = na;
				cap = ncap;
			}
			arr[n].name = strdup(h->string);
			arr[n].value = strdup(e->valuestring);
			if (!arr[n].name || !arr[n].value) {
				free(arr[n].name);
				free(arr[n].value);
				err_at(c, p, "out of memory");
				rc = -ENOMEM;
				goto out;
			}
			n++;
		}
	}
out:
	*out = arr;
	*n_out = n;
	return rc;
}


/* ---- key tables ---------------------------------------------------------- */

/*
 * One row per key of a section: its normalised name, how its value is
 * read (all through the shared getters of healthreg/confget.h) and where
 * it goes: at off in the section's target struct, or, with seen, in a
 * record of values that a later step looks at together (a check's kind
 * and timing). Several rows may name one key; each applies.
 */
enum key_type {
	K_STRING,     /* char * */
	K_NONEMPTY,   /* char *, "" is an error */
	K_BOOL,       /* bool */
	K_INT,        /* int in [min, max] */
	K_DURATION,   /* int64_t milliseconds */
	K_STRV,       /* char ** (NULL-terminated), count at off_n; min: "" ok */
	K_HEADERS,    /* struct hr_header *, count at off_n; min: lists ok */
	K_ON_FAILURE, /* enum hr_on_failure */
	K_ITEM,       /* const cJSON *: the value itself, for a later step */
	K_IGNORE,     /* documentation only */
	K_FN,         /* fn(c, value, path, field) */
};

#define NO_COUNT ((size_t)-1)

struct key {
	const char *name;
	enum key_type type;
	bool seen;     /* off is into the seen record, not the target */
	size_t off;
	size_t off_n;  /* K_STRV, K_HEADERS: the size_t count, or NO_COUNT */
	int min, max;
	void (*fn)(struct ctx *c, const cJSON *v, const char *path, void *field);
};

struct section {
	const struct key *keys;
	size_t n_keys;
	const char *const *consul; /* valid in Consul, unused here: a warning */
	bool duplicates;           /* report keys given twice */
};

static void apply_key(struct ctx *c, const struct key *k, const cJSON *v,
		      const char *p, void *base)
{
	void *f = (char *)base + k->off;
	size_t *n = k->off_n == NO_COUNT ? NULL
					 : (size_t *)(void *)((char *)base + k->off_n);

	switch (k->type) {
	case K_STRING:
		hr_conf_string(v, p, c->diag, f);
		break;
	case K_NONEMPTY:
		hr_conf_nonempty_string(v, p, c->diag, f);
		break;
	case K_BOOL:
		hr_conf_bool(v, p, c->diag, f);
		break;
	case K_INT:
		hr_conf_int(v, p, k->min, k->max, c->diag, f);
		break;
	case K_DURATION:
		hr_conf_duration(v, p, c->diag, f);
		break;
	case K_STRV:
		hr_conf_string_array(v, p, k->min, c->diag, f, n);
		break;
	case K_HEADERS:
		get_headers(c, v, p, f, n, k->min);
		break;
	case K_ON_FAILURE:
		get_on_failure(c, v, p, f);
		break;
	case K_ITEM:
		*(const cJSON **)f = v;
		break;
	case K_IGNORE:
		break;
	case K_FN:
		k->fn(c, v, p, f);
		break;
	}
}

/*
 * Read every member of obj by the section's table into target (and seen).
 * Returns -EINVAL ("is not an object") when obj is not an object.
 */
static int parse_object(struct ctx *c, const cJSON *obj, const char *path,
			const struct section *sec, void *target, void *seen)
{
	char p[PATH_MAX_LEN], k[64];
	size_t i, m = 0, *twin = NULL;
	const cJSON *it;

	if (!cJSON_IsObject(obj)) {
		err_at(c, path, "is not an object");
		return -EINVAL;
	}
	if (sec->duplicates)
		twin = check_duplicates(c, obj, path);
	cJSON_ArrayForEach(it, obj) {
		bool found = false;

		/* a key given twice is an error already; reading it again
		 * would overwrite (and leak) what the first one read */
		if (twin && twin[m++] != NO_TWIN)
			continue;
		norm_key(it->string, k, sizeof(k));
		sub(p, path, it);
		for (i = 0; i < sec->n_keys; i++) {
			const struct key *e = &sec->keys[i];

			if (strcmp(e->name, k))
				continue;
			apply_key(c, e, it, p, e->seen ? seen : target);
			found = true;
		}
		if (found)
			continue;
		if (sec->consul && in_list(it->string, sec->consul))
			hr_diag_add(c->diag, HR_DIAG_WARNING, p,
				    "valid in Consul but not used by healthreg; ignored");
		else
			err_at(c, p, "unknown key");
	}
	free(twin);
	return 0;
}

/* ---- checks -------------------------------------------------------------- */

/* What a check's later steps look at together. */
struct check_seen {
	const cJSON *kind[4]; /* by enum hr_check_kind */
	const cJSON *interval, *timeout, *interval_down;
	const cJSON *cache_ttl, *failure_ttl;
	const cJSON *group, *on_failure, *fbw, *fbc;
	char *id;
};

static void set_method(struct ctx *c, const cJSON *v, const char *p,
		       void *field)
{
	char **method = field, *m;

	if (hr_conf_nonempty_string(v, p, c->diag, method))
		return;
	for (m = *method; *m; m++) {
		if (!isalpha((unsigned char)*m)) {
			err_at(c, p, "\"%s\" is not an HTTP method", *method);
			break;
		}
		*m = (char)toupper((unsigned char)*m);
	}
}

static void set_initial_status(struct ctx *c, const cJSON *v, const char *p,
			       void *field)
{
	struct hr_check_spec *s = hr_container_of(field, struct hr_check_spec,
						  initial_status);
	char shown[80];

	if (cJSON_IsString(v) &&
	    !hr_status_parse(v->valuestring, 0, &s->initial_status)) {
		s->has_initial_status = true;
		return;
	}
	show(v, shown, sizeof(shown));
	err_at(c, p, "%s is not one of \"passing\", \"warning\", \"critical\"",
	       shown);
}

#define SPEC(f) offsetof(struct hr_check_spec, f)
#define SEEN(f) offsetof(struct check_seen, f)

static const struct key check_keys[] = {
	{ "name", K_NONEMPTY, false, SPEC(name), NO_COUNT, 0, 0, NULL },
	{ "id", K_NONEMPTY, true, SEEN(id), NO_COUNT, 0, 0, NULL },
	{ "checkid", K_NONEMPTY, true, SEEN(id), NO_COUNT, 0, 0, NULL },
	{ "http", K_ITEM, true, SEEN(kind[HR_CHECK_HTTP]), NO_COUNT, 0, 0, NULL },
	{ "tcp", K_ITEM, true, SEEN(kind[HR_CHECK_TCP]), NO_COUNT, 0, 0, NULL },
	{ "args", K_ITEM, true, SEEN(kind[HR_CHECK_EXEC]), NO_COUNT, 0, 0, NULL },
	{ "ttl", K_ITEM, true, SEEN(kind[HR_CHECK_TTL]), NO_COUNT, 0, 0, NULL },
	{ "interval", K_ITEM, true, SEEN(interval), NO_COUNT, 0, 0, NULL },
	{ "timeout", K_ITEM, true, SEEN(timeout), NO_COUNT, 0, 0, NULL },
	{ "intervaldown", K_ITEM, true, SEEN(interval_down), NO_COUNT, 0, 0, NULL },
	{ "cachettl", K_ITEM, true, SEEN(cache_ttl), NO_COUNT, 0, 0, NULL },
	{ "failurettl", K_ITEM, true, SEEN(failure_ttl), NO_COUNT, 0, 0, NULL },
	{ "method", K_FN, false, SPEC(method), NO_COUNT, 0, 0, set_method },
	{ "header", K_HEADERS, false, SPEC(headers), SPEC(n_headers), 1, 0, NULL },
	{ "body", K_STRING, false, SPEC(body), NO_COUNT, 0, 0, NULL },
	{ "tlsskipverify", K_BOOL, false, SPEC(tls_skip_verify), NO_COUNT, 0, 0, NULL },
	{ "tlsservername", K_NONEMPTY, false, SPEC(tls_server_name), NO_COUNT, 0, 0, NULL },
	{ "disableredirects", K_BOOL, false, SPEC(disable_redirects), NO_COUNT, 0, 0, NULL },
	{ "status", K_FN, false, SPEC(initial_status), NO_COUNT, 0, 0, set_initial_status },
	{ "successbeforepassing", K_INT, false, SPEC(success_before_passing), NO_COUNT, 0, 1000000, NULL },
	{ "failuresbeforewarning", K_INT, false, SPEC(failures_before_warning), NO_COUNT, 0, 1000000, NULL },
	{ "failuresbeforewarning", K_ITEM, true, SEEN(fbw), NO_COUNT, 0, 0, NULL },
	{ "failuresbeforecritical", K_INT, false, SPEC(failures_before_critical), NO_COUNT, 0, 1000000, NULL },
	{ "failuresbeforecritical", K_ITEM, true, SEEN(fbc), NO_COUNT, 0, 0, NULL },
	{ "onfailure", K_ON_FAILURE, false, SPEC(on_failure), NO_COUNT, 0, 0, NULL },
	{ "onfailure", K_ITEM, true, SEEN(on_failure), NO_COUNT, 0, 0, NULL },
	{ "group", K_ITEM, true, SEEN(group), NO_COUNT, 0, 0, NULL },
	{ "notes", K_IGNORE, false, 0, NO_COUNT, 0, 0, NULL },
};

/* Valid in a Consul check definition, not used by healthreg: warn. */
static const char *const check_keys_consul[] = {
	"serviceid", "deregistercriticalserviceafter", "outputmaxsize",
	"tcpusetls", "udp", "grpc", "grpcusetls", "h2ping", "h2pingusetls",
	"dockercontainerid", "shell", "aliasnode", "aliasservice",
	"osservice", "scriptargs", "script", "expose", "type", NULL,
};

/* Check kinds Consul has and healthreg does not (an error when alone). */
static const char *const check_kinds_unsupported[] = {
	"udp", "grpc", "h2ping", "dockercontainerid", "aliasnode",
	"aliasservice", "osservice", "script", "scriptargs", NULL,
};

static const struct section check_section = {
	check_keys, HR_ARRAY_SIZE(check_keys), check_keys_consul, true,
};

static int parse_hostport(const char *s)
{
	const char *colon;
	char *end;
	long port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
		return -EINVAL;
	return 0;
}

static int find_group(const struct hr_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_groups; i++)
		if (!strcmp(cfg->groups[i].name, name))
			return (int)i;
	return -1;
}

/* The last key naming a check kind Consul has and healthreg has not. */
static const char *unsupported_kind(const cJSON *obj)
{
	const char *found = NULL;
	const cJSON *it;

	cJSON_ArrayForEach(it, obj)
		if (in_list(it->string, check_kinds_unsupported))
			found = it->string;
	return found;
}

static void check_target(struct ctx *c, const cJSON *v, const char *p,
			 struct hr_check_spec *s)
{
	switch (s->kind) {
	case HR_CHECK_HTTP:
		if (!hr_conf_nonempty_string(v, p, c->diag, &s->target) &&
		    strncmp(s->target, "http://", 7) &&
		    strncmp(s->target, "https://", 8))
			err_at(c, p, "\"%s\" is not an http:// or https:// URL",
			       s->target);
		break;
	case HR_CHECK_TCP:
		if (!hr_conf_nonempty_string(v, p, c->diag, &s->target) &&
		    parse_hostport(s->target))
			err_at(c, p, "\"%s\" is not host:port", s->target);
		break;
	case HR_CHECK_EXEC:
		hr_conf_string_array(v, p, false, c->diag, &s->args, NULL);
		if (!c->cfg->enable_exec_checks)
			err_at(c, p, "exec checks are disabled; set agent.enable_exec_checks to true to allow them");
		break;
	case HR_CHECK_TTL:
		if (!hr_conf_duration(v, p, c->diag, &s->ttl_ms) &&
		    s->ttl_ms <= 0)
			err_at(c, p, "must be greater than 0");
		break;
	}
}

/* Exactly one kind, and its target. -EINVAL: the rest is not checked. */
static int check_kind(struct ctx *c, const cJSON *obj, const char *path,
		      struct hr_check_spec *s, const struct check_seen *seen)
{
	char p[PATH_MAX_LEN];
	const char *unsupported;
	int i, n_kinds = 0, kind = 0;

	for (i = 0; i < 4; i++) {
		if (seen->kind[i]) {
			n_kinds++;
			kind = i;
		}
	}
	if (n_kinds == 0) {
		unsupported = unsupported_kind(obj);
		if (unsupported)
			err_at(c, path, "check kind \"%s\" is not supported (healthreg runs http, tcp, args and ttl checks)",
			       unsupported);
		else
			err_at(c, path, "needs one of \"http\", \"tcp\", \"args\", \"ttl\"");
		return -EINVAL;
	}
	if (n_kinds > 1) {
		err_at(c, path, "has more than one of \"http\", \"tcp\", \"args\", \"ttl\"");
		return -EINVAL;
	}
	s->kind = (enum hr_check_kind)kind;
	sub(p, path, seen->kind[kind]);
	check_target(c, seen->kind[kind], p, s);
	return 0;
}

/* A duration at least MIN_INTERVAL_MS. */
static void get_interval(struct ctx *c, const cJSON *v, const char *path,
			 int64_t *out)
{
	char p[PATH_MAX_LEN];

	sub(p, path, v);
	if (!hr_conf_duration(v, p, c->diag, out) && *out < MIN_INTERVAL_MS)
		err_at(c, p, "\"%s\" is below the minimum of 100ms",
		       v->valuestring);
}

/* Interval, timeout and cache lifetimes with their defaults; ttl checks
 * have no schedule. */
static void check_timing(struct ctx *c, const char *path,
			 struct hr_check_spec *s, const struct check_seen *seen)
{
	char p[PATH_MAX_LEN];
	bool ttl = s->kind == HR_CHECK_TTL;

	if (ttl && seen->interval) {
		sub(p, path, seen->interval);
		err_at(c, p, "does not apply to ttl checks");
	}
	if (ttl && seen->timeout) {
		sub(p, path, seen->timeout);
		err_at(c, p, "does not apply to ttl checks");
	}
	s->interval_ms = DEFAULT_INTERVAL_MS;
	if (seen->interval && !ttl)
		get_interval(c, seen->interval, path, &s->interval_ms);
	if (seen->interval_down)
		get_interval(c, seen->interval_down, path, &s->interval_down_ms);
	s->timeout_ms = s->interval_ms < DEFAULT_TIMEOUT_MS ? s->interval_ms
							    : DEFAULT_TIMEOUT_MS;
	if (seen->timeout && !ttl) {
		sub(p, path, seen->timeout);
		if (!hr_conf_duration(seen->timeout, p, c->diag, &s->timeout_ms)) {
			if (s->timeout_ms <= 0)
				err_at(c, p, "must be greater than 0");
			else if (s->timeout_ms > s->interval_ms)
				err_at(c, p, "\"%s\" is longer than the interval",
				       seen->timeout->valuestring);
		}
	}
	s->cache_ttl_ms = s->interval_ms;
	s->failure_ttl_ms = s->interval_down_ms ? s->interval_down_ms
						: s->interval_ms;
	if (seen->cache_ttl) {
		sub(p, path, seen->cache_ttl);
		hr_conf_duration(seen->cache_ttl, p, c->diag, &s->cache_ttl_ms);
	}
	if (seen->failure_ttl) {
		sub(p, path, seen->failure_ttl);
		hr_conf_duration(seen->failure_ttl, p, c->diag, &s->failure_ttl_ms);
	}
}

static void check_http_only(struct ctx *c, const cJSON *obj, const char *path,
			    const struct hr_check_spec *s)
{
	static const char *const http_only[] = {
		"method", "header", "body", "tlsskipverify", "tlsservername",
		"disableredirects", NULL,
	};
	char p[PATH_MAX_LEN];
	const cJSON *it;

	if (s->kind == HR_CHECK_HTTP)
		return;
	cJSON_ArrayForEach(it, obj) {
		if (in_list(it->string, http_only)) {
			sub(p, path, it);
			err_at(c, p, "applies to http checks only");
		}
	}
}

static void check_group(struct ctx *c, const char *path,
			struct hr_check_spec *s, const struct check_seen *seen)
{
	const cJSON *group = seen->group;
	char p[PATH_MAX_LEN];

	if (!group)
		return;
	sub(p, path, group);
	if (!cJSON_IsString(group)) {
		err_at(c, p, "is not a string");
		return;
	}
	s->group = find_group(c->cfg, group->valuestring);
	if (s->group < 0) {
		err_at(c, p, "group \"%s\" is not defined in \"groups\"",
		       group->valuestring);
	} else if (seen->on_failure) {
		sub(p, path, seen->on_failure);
		err_at(c, p, "a grouped check takes on_failure from its group \"%s\"",
		       group->valuestring);
	}
}

/* The value at v was read into x (it is the number x). */
static bool read_as(const cJSON *v, int x)
{
	return cJSON_IsNumber(v) && v->valuedouble == (double)x;
}

/* failures_before_warning defaults to failures_before_critical and may
 * not exceed it (Consul rejects the check). */
static void check_thresholds(struct ctx *c, const char *path,
			     struct hr_check_spec *s,
			     const struct check_seen *seen)
{
	char p[PATH_MAX_LEN];

	if (!seen->fbw) {
		s->failures_before_warning = s->failures_before_critical;
		return;
	}
	if (!read_as(seen->fbw, s->failures_before_warning) ||
	    (seen->fbc && !read_as(seen->fbc, s->failures_before_critical)) ||
	    s->failures_before_warning <= s->failures_before_critical)
		return; /* a value that did not read is reported already */
	sub(p, path, seen->fbw);
	err_at(c, p, "%d is greater than failures_before_critical (%d%s)",
	       s->failures_before_warning, s->failures_before_critical,
	       seen->fbc ? "" : ", the default");
}

static void parse_check(struct ctx *c, const cJSON *obj, const char *path,
			struct hr_check_spec *s)
{
	struct check_seen seen;

	memset(s, 0, sizeof(*s));
	memset(&seen, 0, sizeof(seen));
	s->group = -1;
	if (parse_object(c, obj, path, &check_section, s, &seen))
		return;
	if (!s->name && seen.id) {
		s->name = seen.id;
		seen.id = NULL;
	}
	free(seen.id);
	if (!s->name)
		err_at(c, path, "\"name\" is required");
	if (check_kind(c, obj, path, s, &seen))
		return;
	check_timing(c, path, s, &seen);
	check_http_only(c, obj, path, s);
	check_thresholds(c, path, s, &seen);
	check_group(c, path, s, &seen);
}

/* ---- service, groups, agent ------------------------------------------ */

static const char *const service_keys_consul[] = {
	"kind", "taggedaddresses", "enabletagoverride", "weights", "token",
	"namespace", "partition", "connect", "proxy", "socketpath",
	"locality", NULL,
};

struct service_seen {
	const cJSON *checks, *check;
};

#define SVC(f) offsetof(struct hr_service_spec, f)
#define SVC_SEEN(f) offsetof(struct service_seen, f)

static const struct key service_keys[] = {
	{ "name", K_NONEMPTY, false, SVC(name), NO_COUNT, 0, 0, NULL },
	{ "id", K_NONEMPTY, false, SVC(id), NO_COUNT, 0, 0, NULL },
	{ "address", K_STRING, false, SVC(address), NO_COUNT, 0, 0, NULL },
	{ "port", K_INT, false, SVC(port), NO_COUNT, 0, 65535, NULL },
	{ "tags", K_STRV, false, SVC(tags), SVC(n_tags), 1, 0, NULL },
	{ "meta", K_HEADERS, false, SVC(meta), SVC(n_meta), 0, 0, NULL },
	{ "checks", K_ITEM, true, SVC_SEEN(checks), NO_COUNT, 0, 0, NULL },
	{ "check", K_ITEM, true, SVC_SEEN(check), NO_COUNT, 0, 0, NULL },
};

static const struct section service_section = {
	service_keys, HR_ARRAY_SIZE(service_keys), service_keys_consul, true,
};

static void parse_checks_array(struct ctx *c, const cJSON *arr,
			       const char *path, int single)
{
	struct hr_config *cfg = c->cfg;
	char p[PATH_MAX_LEN];
	const cJSON *e;
	size_t n = single ? 1 : (size_t)cJSON_GetArraySize(arr);
	struct hr_check_spec *v;
	size_t i = 0;

	if (!single && !cJSON_IsArray(arr)) {
		err_at(c, path, "is not an array");
		return;
	}
	if (!n)
		return;
	v = realloc(cfg->checks, (cfg->n_checks + n) * sizeof(*v));
	if (!v) {
		err_at(c, path, "out of memory");
		return;
	}
	cfg->checks = v;
	if (single) {
		parse_check(c, arr, path, &cfg->checks[cfg->n_checks++]);
		return;
	}
	cJSON_ArrayForEach(e, arr) {
		snprintf(p, sizeof(p), "%s[%zu]", path, i++);
		parse_check(c, e, p, &cfg->checks[cfg->n_checks++]);
	}
}

static void parse_service(struct ctx *c, const cJSON *obj)
{
	struct hr_service_spec *s = &c->cfg->service;
	struct service_seen seen = { NULL, NULL };
	const char *path = "service";
	char p[PATH_MAX_LEN];

	if (parse_object(c, obj, path, &service_section, s, &seen))
		return;
	if (!s->name)
		err_at(c, path, "\"name\" is required");
	if (!s->id && s->name)
		s->id = strdup(s->name);
	if (!s->tags)
		s->tags = calloc(1, sizeof(*s->tags));
	if (seen.check) {
		sub(p, path, seen.check);
		parse_checks_array(c, seen.check, p, 1);
	}
	if (seen.checks) {
		sub(p, path, seen.checks);
		parse_checks_array(c, seen.checks, p, 0);
	}
	if (!c->cfg->n_checks && !c->diag->errors)
		err_at(c, path, "has no checks (\"checks\": [...])");
}

#define GROUP(f) offsetof(struct hr_group_spec, f)

static const struct key group_keys[] = {
	{ "minpassing", K_INT, false, GROUP(min_passing), NO_COUNT, 1, 1000000, NULL },
	{ "onfailure", K_ON_FAILURE, false, GROUP(on_failure), NO_COUNT, 0, 0, NULL },
};

static const struct section group_section = {
	group_keys, HR_ARRAY_SIZE(group_keys), NULL, false,
};

static void parse_groups(struct ctx *c, const cJSON *obj)
{
	struct hr_config *cfg = c->cfg;
	char p[PATH_MAX_LEN];
	const cJSON *g;
	size_t n;

	if (!cJSON_IsObject(obj)) {
		err_at(c, "groups", "is not an object");
		return;
	}
	n = (size_t)cJSON_GetArraySize(obj);
	cfg->groups = calloc(n ? n : 1, sizeof(*cfg->groups));
	if (!cfg->groups)
		return;
	cJSON_ArrayForEach(g, obj) {
		struct hr_group_spec *gs = &cfg->groups[cfg->n_groups++];

		sub(p, "groups", g);
		gs->name = strdup(g->string);
		gs->min_passing = 1;
		if (!*g->string)
			err_at(c, p, "group name must not be empty");
		parse_object(c, g, p, &group_section, gs, NULL);
	}
}

static void set_log_level(struct ctx *c, const cJSON *v, const char *p,
			  void *field)
{
	if (!cJSON_IsString(v) || hr_log_level_parse(v->valuestring, field))
		err_at(c, p, "is not one of \"error\", \"warn\", \"info\", \"debug\"");
}

static void set_log_format(struct ctx *c, const cJSON *v, const char *p,
			   void *field)
{
	enum hr_log_format *f = field;

	if (cJSON_IsString(v) && !strcmp(v->valuestring, "logfmt"))
		*f = HR_LOG_LOGFMT;
	else if (cJSON_IsString(v) && !strcmp(v->valuestring, "json"))
		*f = HR_LOG_JSON;
	else
		err_at(c, p, "is not one of \"logfmt\", \"json\"");
}

#define CFG(f) offsetof(struct hr_config, f)

static const struct key agent_keys[] = {
	{ "enableexecchecks", K_BOOL, false, CFG(enable_exec_checks), NO_COUNT, 0, 0, NULL },
	{ "loglevel", K_FN, false, CFG(log_level), NO_COUNT, 0, 0, set_log_level },
	{ "logformat", K_FN, false, CFG(log_format), NO_COUNT, 0, 0, set_log_format },
	{ "maxconcurrentchecks", K_INT, false, CFG(max_concurrent), NO_COUNT, 1, 100000, NULL },
	{ "shutdowntimeout", K_DURATION, false, CFG(shutdown_timeout_ms), NO_COUNT, 0, 0, NULL },
	{ "apilisten", K_STRING, false, CFG(api_listen), NO_COUNT, 0, 0, NULL },
	{ "apitokenfile", K_NONEMPTY, false, CFG(api_token_file), NO_COUNT, 0, 0, NULL },
	{ "statefile", K_NONEMPTY, false, CFG(state_file), NO_COUNT, 0, 0, NULL },
	{ "execenv", K_STRV, false, CFG(exec_env), CFG(n_exec_env), 1, 0, NULL },
	{ "allowcoredumps", K_BOOL, false, CFG(allow_core_dumps), NO_COUNT, 0, 0, NULL },
	{ "user", K_NONEMPTY, false, CFG(user), NO_COUNT, 0, 0, NULL },
};

static const struct section agent_section = {
	agent_keys, HR_ARRAY_SIZE(agent_keys), NULL, true,
};

static void parse_registry(struct ctx *c, const cJSON *obj,
			   const struct hr_config_backend *backends,
			   size_t n_backends)
{
	char p[PATH_MAX_LEN];
	const cJSON *it;
	size_t i;

	if (!cJSON_IsObject(obj)) {
		err_at(c, "registry", "is not an object");
		return;
	}
	cJSON_ArrayForEach(it, obj) {
		int found = 0;

		sub(p, "registry", it);
		for (i = 0; i < n_backends; i++) {
			if (!strcmp(it->string, backends[i].name)) {
				found = 1;
				if (cJSON_IsObject(it))
					free(check_duplicates(c, it, p));
				if (backends[i].validate)
					backends[i].validate(it, p, c->diag);
				if (backends[i].validate_service &&
				    c->cfg->service.name)
					backends[i].validate_service(
						&c->cfg->service, "service",
						c->diag);
			}
		}
		if (!found) {
			char names[256] = "";
			size_t o = 0;

			for (i = 0; i < n_backends; i++)
				o += (size_t)snprintf(names + o, sizeof(names) - o,
						      "%s\"%s\"", i ? ", " : "",
						      backends[i].name);
			err_at(c, p, "unknown registry backend (this build knows: %s)",
			       n_backends ? names : "none");
		}
	}
	c->cfg->registry = cJSON_Duplicate(obj, 1);
}

static void check_names(struct ctx *c)
{
	const struct hr_config *cfg = c->cfg;
	const char **names = malloc((cfg->n_checks + 1) * sizeof(*names));
	char p[PATH_MAX_LEN];
	size_t i, *twin;

	for (i = 0; names && i < cfg->n_checks; i++)
		names[i] = cfg->checks[i].name ? cfg->checks[i].name : "";
	twin = names ? first_twins(names, cfg->n_checks, false) : NULL;
	if (!twin)
		err_at(c, "service.checks", "out of memory");
	for (i = 0; twin && i < cfg->n_checks; i++) {
		if (twin[i] == NO_TWIN || !cfg->checks[i].name)
			continue;
		snprintf(p, sizeof(p), "service.checks[%zu].name", i);
		err_at(c, p, "duplicate check name \"%s\"", cfg->checks[i].name);
	}
	free(twin);
	free(names);
}

static void line_col(const char *text, const char *at, int *line, int *col)
{
	const char *p;

	*line = 1;
	*col = 1;
	for (p = text; p < at && *p; p++) {
		if (*p == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)*p & 0xC0) != 0x80) { /* characters */
			(*col)++;
		}
	}
}

/* The document as JSON: an object, with nothing after it. */
static cJSON *parse_json(const char *text, size_t len, struct hr_diag *diag)
{
	const char *end = NULL, *at;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	int line, col;

	if (!root) {
		at = cJSON_GetErrorPtr();
		line_col(text, at ? at : text, &line, &col);
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "invalid JSON at line %d, column %d", line, col);
		return NULL;
	}
	while (end && (size_t)(end - text) < len &&
	       isspace((unsigned char)*end))
		end++;
	if (end && (size_t)(end - text) < len && *end) {
		line_col(text, end, &line, &col);
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "invalid JSON at line %d, column %d: unexpected data after the document",
			    line, col);
	} else if (!cJSON_IsObject(root)) {
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "the config must be a JSON object");
	} else {
		return root;
	}
	cJSON_Delete(root);
	return NULL;
}

/* ---- the text: every string valid UTF-8 and bounded ---------------- */

/* Errors the text check reports before it stops looking. */
#define TEXT_ERRORS_MAX 20

/*
 * The string literals of the raw text, in document order. cJSON's tree
 * visited depth first, each key before its value, meets its strings in
 * the same order, so the walk knows where each one is written. Only used
 * on text cJSON accepted, so every literal is well formed.
 */
struct literals {
	const char *p, *end;
};

/* The next literal: where it starts, and whether it holds \u0000 or a
 * raw NUL byte (a NUL that would silently cut the string short). */
static const char *next_literal(struct literals *l, bool *nul)
{
	const char *start;

	*nul = false;
	while (l->p < l->end && *l->p != '"')
		l->p++;
	start = l->p++;
	while (l->p < l->end && *l->p != '"') {
		if (!*l->p)
			*nul = true;
		if (*l->p == '\\') {
			if (l->end - l->p >= 6 && !memcmp(l->p, "\\u0000", 6))
				*nul = true;
			l->p++;
		}
		l->p++;
	}
	l->p++;
	return start;
}

struct text_walk {
	struct ctx *c;
	const char *text;
	struct literals lit;
	size_t errors;
};

/* One string (a value, or a key named by where) checked; false if bad. */
static bool text_ok(struct text_walk *w, const char *s, bool nul,
		    const char *path)
{
	if (nul)
		err_at(w->c, path, "contains a NUL character (\\u0000)");
	else if (!hr_conf_text(s, path, w->c->diag))
		return true;
	w->errors++;
	return false;
}

/* The literals of v's subtree, passed over (under a key that is bad). */
static void skip_text(struct text_walk *w, const cJSON *v)
{
	const cJSON *it;
	bool nul;

	if (cJSON_IsString(v))
		next_literal(&w->lit, &nul);
	cJSON_ArrayForEach(it, v) {
		if (cJSON_IsObject(v))
			next_literal(&w->lit, &nul);
		skip_text(w, it);
	}
}

/* A key is named by where it is written: its path may not be text. */
static bool key_ok(struct text_walk *w, const cJSON *it, const char *path)
{
	char where[PATH_MAX_LEN];
	const char *at;
	int line, col;
	size_t n;
	bool nul;

	at = next_literal(&w->lit, &nul);
	n = strlen(it->string);
	if (!nul && n <= HR_CONF_STRING_MAX &&
	    hr_conf_utf8_prefix(it->string, n) == n)
		return true; /* the common case, without counting lines */
	line_col(w->text, at, &line, &col);
	snprintf(where, sizeof(where), "%s%skey at line %d, column %d", path,
		 *path ? ", " : "", line, col);
	return text_ok(w, it->string, nul, where);
}

static void walk_text(struct text_walk *w, const cJSON *v, const char *path)
{
	char p[PATH_MAX_LEN];
	const cJSON *it;
	size_t i = 0;
	bool nul;

	if (cJSON_IsString(v)) {
		next_literal(&w->lit, &nul);
		text_ok(w, v->valuestring, nul, path);
		return;
	}
	cJSON_ArrayForEach(it, v) {
		if (w->errors >= TEXT_ERRORS_MAX)
			return;
		if (cJSON_IsArray(v)) {
			snprintf(p, sizeof(p), "%s[%zu]", path, i++);
		} else if (!key_ok(w, it, path)) {
			skip_text(w, it);
			continue;
		} else if (*path) {
			sub(p, path, it);
		} else {
			snprintf(p, sizeof(p), "%s", it->string);
		}
		walk_text(w, it, p);
	}
}

/*
 * JSON text is UTF-8 (RFC 8259) and a config's strings are short: every
 * string, key or value, must be valid UTF-8 without \u0000 and at most
 * HR_CONF_STRING_MAX bytes, or the document is rejected before any
 * section is read. Values are named by their path, keys by line:column.
 */
static int check_text(struct hr_diag *diag, const cJSON *root,
		      const char *text, size_t len)
{
	struct ctx c = { diag, NULL };
	struct text_walk w = { &c, text, { text, text + len }, 0 };

	walk_text(&w, root, "");
	if (w.errors >= TEXT_ERRORS_MAX)
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "stopped after %d bad strings", TEXT_ERRORS_MAX);
	return w.errors ? -EINVAL : 0;
}

/* The four sections, in the order they depend on each other. */
static void parse_root(struct ctx *c, const cJSON *root,
		       const struct hr_config_backend *backends,
		       size_t n_backends)
{
	const cJSON *it, *service = NULL, *groups = NULL, *agent = NULL;
	const cJSON *registry = NULL;

	free(check_duplicates(c, root, ""));
	cJSON_ArrayForEach(it, root) {
		if (hr_conf_key_is(it->string, "service"))
			service = it;
		else if (hr_conf_key_is(it->string, "groups"))
			groups = it;
		else if (hr_conf_key_is(it->string, "agent"))
			agent = it;
		else if (hr_conf_key_is(it->string, "registry"))
			registry = it;
		else
			err_at(c, it->string, "unknown key (expected \"service\", \"groups\", \"agent\", \"registry\")");
	}
	/* agent first: enable_exec_checks decides whether args checks are
	 * allowed; groups before checks, which refer to them. */
	if (agent)
		parse_object(c, agent, "agent", &agent_section, c->cfg, NULL);
	if (groups)
		parse_groups(c, groups);
	if (service)
		parse_service(c, service);
	else
		hr_diag_add(c->diag, HR_DIAG_ERROR, NULL,
			    "\"service\" is required");
	if (registry)
		parse_registry(c, registry, backends, n_backends);
	check_names(c);
}

int hr_config_parse(struct hr_config **out, const char *text, size_t len,
		    const struct hr_config_backend *backends,
		    size_t n_backends, struct hr_diag *diag)
{
	struct hr_config *cfg = NULL;
	struct ctx c;
	cJSON *root;
	int rc = -EINVAL;
	size_t errors_before = diag->errors;

	*out = NULL;
	if (len > HR_CONF_FILE_MAX) {
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "the config is %zu bytes, more than the limit of %u (16 MiB)",
			    len, HR_CONF_FILE_MAX);
		return -EINVAL;
	}
	root = parse_json(text, len, diag);
	if (!root)
		return -EINVAL;
	if (check_text(diag, root, text, len))
		goto cleanup;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		rc = -ENOMEM;
		goto cleanup;
	}
	cfg->log_level = HR_LOG_INFO;
	cfg->log_format = HR_LOG_LOGFMT;
	cfg->max_concurrent = 64;
	cfg->shutdown_timeout_ms = 5000;
	c.diag = diag;
	c.cfg = cfg;
	parse_root(&c, root, backends, n_backends);
	if (diag->errors > errors_before)
		goto cleanup;
	*out = cfg;
	cfg = NULL;
	rc = 0;
cleanup:
	hr_config_free(cfg);
	cJSON_Delete(root);
	return rc;
}

int hr_config_load(struct hr_config **out, const char *path,
		   const struct hr_config_backend *backends,
		   size_t n_backends, struct hr_diag *diag)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc;

	*out = NULL;
	f = fopen(path, "rb");
	if (!f) {
		rc = -errno;
		hr_diag_add(diag, HR_DIAG_ERROR, path, "%s", strerror(errno));
		return rc;
	}
	for (;;) {
		size_t n;

		if (len + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 16384;
			nb = realloc(buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				hr_diag_add(diag, HR_DIAG_ERROR, path, "out of memory");
				goto cleanup;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
		if (len > HR_CONF_FILE_MAX) {
			rc = -EINVAL;
			hr_diag_add(diag, HR_DIAG_ERROR, NULL,
				    "the file is larger than %u bytes (16 MiB), the limit for a config",
				    HR_CONF_FILE_MAX);
			goto cleanup;
		}
	}
	if (ferror(f)) {
		rc = -EIO;
		hr_diag_add(diag, HR_DIAG_ERROR, path, "read error");
		goto cleanup;
	}
	buf[len] = '\0';
	rc = hr_config_parse(out, buf, len, backends, n_backends, diag);
cleanup:
	free(buf);
	fclose(f);
	return rc;
}

void hr_config_free(struct hr_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	hr_service_spec_dispose(&cfg->service);
	for (i = 0; i < cfg->n_checks; i++)
		hr_check_spec_dispose(&cfg->checks[i]);
	free(cfg->checks);
	for (i = 0; i < cfg->n_groups; i++)
		free(cfg->groups[i].name);
	free(cfg->groups);
	cJSON_Delete(cfg->registry);
	free(cfg->api_listen);
	free(cfg->api_token_file);
	free(cfg->state_file);
	hr_conf_strv_free(cfg->exec_env);
	free(cfg->user);
	free(cfg);
}

int hr_config_find_check(const struct hr_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_checks; i++)
		if (!strcmp(cfg->checks[i].name, name))
			return (int)i;
	return -1;
}
