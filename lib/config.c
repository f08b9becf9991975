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
#include <sys/stat.h>

#include "healthreg/config.h"
#include "healthreg/confget.h"
#include "healthreg/duration.h"
#include "healthreg/journal.h"
#include "healthreg/log.h"
#include "grpc_wire.h"
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
	case HR_CHECK_GRPC:
		return "grpc";
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
	/* The service being parsed (one of cfg->services). */
	struct hr_service_conf *svc;
	/* The top-level "registry" object as written (NULL: none), and the
	 * backends the caller knows. */
	const cJSON *registry;
	const struct hr_config_backend *backends;
	size_t n_backends;
	/* The service and its checks as written, for paths (check_at). */
	char svc_path[PATH_MAX_LEN];
	const cJSON *check_item, *checks_item;
	/* registry.consul as this service sees it (merged with its
	 * overlay), and its own deregister_critical_service_after (see
	 * check_dcsa). */
	const cJSON *consul, *consul_dcsa;
	/* The smallest deregister_critical_service_after > 0 of the checks,
	 * as written, for registry.consul (see parse_registry). */
	const cJSON *dcsa;
	int64_t dcsa_ms;
};

static void err_at(struct ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void diag_at(struct ctx *c, enum hr_diag_level level,
		    const char *path, const char *fmt, va_list ap)
{
	char msg[768];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n >= (int)sizeof(msg)) /* cut short: on a character boundary */
		msg[hr_conf_utf8_prefix(msg, sizeof(msg) - 1)] = '\0';
	hr_diag_add(c->diag, level, path, "%s", msg);
}

static void err_at(struct ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_at(c, HR_DIAG_ERROR, path, fmt, ap);
	va_end(ap);
}

static void warn_at(struct ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void warn_at(struct ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_at(c, HR_DIAG_WARNING, path, fmt, ap);
	va_end(ap);
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

/* path into out (PATH_MAX_LEN bytes), cut on a character. */
static char *copy_path(char *out, const char *path)
{
	if (snprintf(out, PATH_MAX_LEN, "%s", path) >= PATH_MAX_LEN)
		out[hr_conf_utf8_prefix(out, PATH_MAX_LEN - 1)] = '\0';
	return out;
}

/* "<path>[<i>]" into out (PATH_MAX_LEN bytes), cut on a character. */
static char *index_path(char *out, const char *path, size_t i)
{
	int n = snprintf(out, PATH_MAX_LEN, "%s[%zu]", path, i);

	if (n >= PATH_MAX_LEN)
		out[hr_conf_utf8_prefix(out, PATH_MAX_LEN - 1)] = '\0';
	return out;
}

/*
 * Consul reads an array holding exactly one object where an object is
 * expected as that object (its HookWeakDecodeFromSlice): the JSON its
 * documentation generates from HCL is written so ("service": [{...}],
 * "meta": [{...}]). Returns the object, with its path in here, or v
 * itself with path.
 */
static const cJSON *one_object(const cJSON *v, const char *path, char *here)
{
	if (cJSON_IsArray(v) && v->child && !v->child->next &&
	    cJSON_IsObject(v->child)) {
		index_path(here, path, 0);
		return v->child;
	}
	copy_path(here, path);
	return v;
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
	char here[PATH_MAX_LEN];
	int rc = 0;

	v = one_object(v, path, here);
	path = here;
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

/* Why a key Consul knows is not used, where a reason helps; else the
 * warning says only that it is ignored. */
static const struct {
	const char *key; /* normalised */
	const char *why;
} ignored_why[] = {
	{ "token", "healthreg registers with registry.consul's token "
		   "(token_file, CONSUL_HTTP_TOKEN)" },
	{ "serviceid", "a check here belongs to this service" },
	{ "connect", "healthreg registers no sidecar and no Connect-native "
		     "service" },
	{ "proxy", "healthreg registers no proxy" },
	{ "outputmaxsize", "the output healthreg sends Consul is cut to "
			   "registry.consul.check_output_max_size" },
};

static void warn_ignored(struct ctx *c, const char *key, const char *p)
{
	char k[64];
	size_t i;

	norm_key(key, k, sizeof(k));
	for (i = 0; i < HR_ARRAY_SIZE(ignored_why); i++) {
		if (!strcmp(ignored_why[i].key, k)) {
			hr_diag_add(c->diag, HR_DIAG_WARNING, p,
				    "valid in Consul but not used by healthreg "
				    "(%s); ignored", ignored_why[i].why);
			return;
		}
	}
	hr_diag_add(c->diag, HR_DIAG_WARNING, p,
		    "valid in Consul but not used by healthreg; ignored");
}

/* Another member of the object that wrote row k's target already: two
 * spellings of one key ("args" and "ScriptArgs": rows that read the same
 * way into the same place), of which one would be lost. hit[i] is the
 * member that matched row i. */
static const cJSON *target_taken(const struct section *sec,
				 const cJSON *const *hit, size_t k,
				 const cJSON *it)
{
	const struct key *e = &sec->keys[k];
	size_t j;

	if (e->type == K_IGNORE)
		return NULL;
	for (j = 0; j < sec->n_keys; j++) {
		const struct key *o = &sec->keys[j];

		if (hit[j] && hit[j] != it && o->type == e->type &&
		    o->seen == e->seen && o->off == e->off && o->fn == e->fn)
			return hit[j];
	}
	return NULL;
}

/*
 * Read every member of obj by the section's table into target (and seen).
 * An array of one object stands for the object (see one_object). Returns
 * -EINVAL ("is not an object") when obj is not an object.
 */
static int parse_object(struct ctx *c, const cJSON *obj, const char *path,
			const struct section *sec, void *target, void *seen)
{
	char p[PATH_MAX_LEN], k[64], here[PATH_MAX_LEN];
	size_t i, m = 0, *twin = NULL;
	const cJSON **hit;
	const cJSON *it;

	obj = one_object(obj, path, here);
	path = here;
	if (!cJSON_IsObject(obj)) {
		err_at(c, path, "is not an object");
		return -EINVAL;
	}
	hit = calloc(sec->n_keys ? sec->n_keys : 1, sizeof(*hit));
	if (!hit) {
		err_at(c, path, "out of memory");
		return -ENOMEM;
	}
	if (sec->duplicates)
		twin = check_duplicates(c, obj, path);
	cJSON_ArrayForEach(it, obj) {
		const cJSON *other = NULL;
		bool found = false;

		/* a key given twice is an error already; reading it again
		 * would overwrite (and leak) what the first one read */
		if (twin && twin[m++] != NO_TWIN)
			continue;
		norm_key(it->string, k, sizeof(k));
		sub(p, path, it);
		for (i = 0; i < sec->n_keys && !other; i++)
			if (!strcmp(sec->keys[i].name, k))
				other = target_taken(sec, hit, i, it);
		if (other) {
			err_at(c, p, "duplicate key (also given as \"%s\")",
			       other->string);
			continue;
		}
		for (i = 0; i < sec->n_keys; i++) {
			const struct key *e = &sec->keys[i];

			if (strcmp(e->name, k))
				continue;
			hit[i] = it;
			apply_key(c, e, it, p, e->seen ? seen : target);
			found = true;
		}
		if (found)
			continue;
		if (sec->consul && in_list(it->string, sec->consul))
			warn_ignored(c, it->string, p);
		else
			err_at(c, p, "unknown key");
	}
	free(twin);
	free(hit);
	return 0;
}

/* ---- checks -------------------------------------------------------------- */

/* What a check's later steps look at together. */
struct check_seen {
	const cJSON *kind[5]; /* by enum hr_check_kind */
	const cJSON *interval, *timeout, *interval_down;
	const cJSON *cache_ttl, *failure_ttl;
	const cJSON *group, *on_failure, *fbw, *fbc;
	const cJSON *dcsa, *docker;
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

/* A string where "" means not set, as Consul reads it
 * ("tls_server_name": "" in its documented http check). */
static void set_optional_string(struct ctx *c, const cJSON *v, const char *p,
				void *field)
{
	char **s = field;

	if (hr_conf_string(v, p, c->diag, s) || **s)
		return;
	free(*s);
	*s = NULL;
}

#define SPEC(f) offsetof(struct hr_check_spec, f)
#define SEEN(f) offsetof(struct check_seen, f)

static const struct key check_keys[] = {
	{ "name", K_FN, false, SPEC(name), NO_COUNT, 0, 0, set_optional_string },
	{ "id", K_FN, true, SEEN(id), NO_COUNT, 0, 0, set_optional_string },
	{ "checkid", K_FN, true, SEEN(id), NO_COUNT, 0, 0, set_optional_string },
	{ "http", K_ITEM, true, SEEN(kind[HR_CHECK_HTTP]), NO_COUNT, 0, 0, NULL },
	{ "tcp", K_ITEM, true, SEEN(kind[HR_CHECK_TCP]), NO_COUNT, 0, 0, NULL },
	{ "args", K_ITEM, true, SEEN(kind[HR_CHECK_EXEC]), NO_COUNT, 0, 0, NULL },
	{ "scriptargs", K_ITEM, true, SEEN(kind[HR_CHECK_EXEC]), NO_COUNT, 0, 0, NULL },
	{ "ttl", K_ITEM, true, SEEN(kind[HR_CHECK_TTL]), NO_COUNT, 0, 0, NULL },
	{ "grpc", K_ITEM, true, SEEN(kind[HR_CHECK_GRPC]), NO_COUNT, 0, 0, NULL },
	{ "grpcusetls", K_BOOL, false, SPEC(grpc_use_tls), NO_COUNT, 0, 0, NULL },
	{ "interval", K_ITEM, true, SEEN(interval), NO_COUNT, 0, 0, NULL },
	{ "timeout", K_ITEM, true, SEEN(timeout), NO_COUNT, 0, 0, NULL },
	{ "intervaldown", K_ITEM, true, SEEN(interval_down), NO_COUNT, 0, 0, NULL },
	{ "cachettl", K_ITEM, true, SEEN(cache_ttl), NO_COUNT, 0, 0, NULL },
	{ "failurettl", K_ITEM, true, SEEN(failure_ttl), NO_COUNT, 0, 0, NULL },
	{ "method", K_FN, false, SPEC(method), NO_COUNT, 0, 0, set_method },
	{ "header", K_HEADERS, false, SPEC(headers), SPEC(n_headers), 1, 0, NULL },
	{ "body", K_STRING, false, SPEC(body), NO_COUNT, 0, 0, NULL },
	{ "tlsskipverify", K_BOOL, false, SPEC(tls_skip_verify), NO_COUNT, 0, 0, NULL },
	{ "tlsservername", K_FN, false, SPEC(tls_server_name), NO_COUNT, 0, 0, set_optional_string },
	{ "cafile", K_NONEMPTY, false, SPEC(ca_file), NO_COUNT, 0, 0, NULL },
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
	{ "deregistercriticalserviceafter", K_ITEM, true, SEEN(dcsa), NO_COUNT, 0, 0, NULL },
	{ "dockercontainerid", K_ITEM, true, SEEN(docker), NO_COUNT, 0, 0, NULL },
};

/* Valid in a Consul check definition, not used by healthreg: warn. */
static const char *const check_keys_consul[] = {
	"serviceid", "token", "namespace", "partition", "outputmaxsize",
	"tcpusetls", "udp", "h2ping", "h2pingusetls",
	"dockercontainerid", "shell", "aliasnode", "aliasservice",
	"osservice", "script", "expose", "type", NULL,
};

/* Check kinds Consul has and healthreg does not (an error when alone). */
static const char *const check_kinds_unsupported[] = {
	"udp", "h2ping", "dockercontainerid", "aliasnode",
	"aliasservice", "osservice", "script", NULL,
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

static int find_group(const struct hr_service_conf *cfg, const char *name)
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
	case HR_CHECK_GRPC: {
		size_t hostport_len;
		const char *service;

		if (!hr_conf_nonempty_string(v, p, c->diag, &s->target) &&
		    hr__grpc_target_split(s->target, &hostport_len, &service))
			err_at(c, p, "\"%s\" is not host:port or host:port/service",
			       s->target);
		break;
	}
	}
}

/* Exactly one kind, and its target. -EINVAL: the rest is not checked. */
static int check_kind(struct ctx *c, const cJSON *obj, const char *path,
		      struct hr_check_spec *s, const struct check_seen *seen)
{
	char p[PATH_MAX_LEN];
	const char *unsupported;
	int i, n_kinds = 0, kind = 0;

	for (i = 0; i < (int)HR_ARRAY_SIZE(seen->kind); i++) {
		if (seen->kind[i]) {
			n_kinds++;
			kind = i;
		}
	}
	if (n_kinds == 0) {
		unsupported = unsupported_kind(obj);
		if (unsupported)
			err_at(c, path, "check kind \"%s\" is not supported (healthreg runs http, tcp, grpc, args and ttl checks)",
			       unsupported);
		else
			err_at(c, path, "needs one of \"http\", \"tcp\", \"grpc\", \"args\", \"ttl\"");
		return -EINVAL;
	}
	if (n_kinds > 1) {
		err_at(c, path, "has more than one of \"http\", \"tcp\", \"grpc\", \"args\", \"ttl\"");
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
	if (ttl && seen->timeout) { /* Consul accepts it, unused */
		sub(p, path, seen->timeout);
		hr_diag_add(c->diag, HR_DIAG_WARNING, p,
			    "does not apply to ttl checks; ignored");
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
				/* Consul accepts it (its documented redis
				 * checks: interval 5s, timeout 20s) */
				warn_at(c, p,
					"\"%s\" is longer than the interval: "
					"a run that takes it delays the next "
					"(runs do not overlap)",
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
		"method", "header", "body", "disableredirects", NULL,
	};
	static const char *const tls[] = {
		"tlsskipverify", "tlsservername", "cafile", NULL,
	};
	static const char *const grpc_only[] = { "grpcusetls", NULL };
	bool http = s->kind == HR_CHECK_HTTP, grpc = s->kind == HR_CHECK_GRPC;
	char p[PATH_MAX_LEN];
	const cJSON *it;

	cJSON_ArrayForEach(it, obj) {
		sub(p, path, it);
		if (!http && in_list(it->string, http_only))
			err_at(c, p, "applies to http checks only");
		else if (!http && !grpc && in_list(it->string, tls))
			err_at(c, p, "applies to http and grpc checks only");
		else if (grpc && !s->grpc_use_tls && in_list(it->string, tls))
			/* Consul's grpc check takes it and has no TLS to use
			 * it for: a warning, so its definitions drop in */
			hr_diag_add(c->diag, HR_DIAG_WARNING, p,
				    "applies to a grpc check only with grpc_use_tls; ignored");
		else if (!grpc && in_list(it->string, grpc_only))
			err_at(c, p, "applies to grpc checks only");
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
	s->group = find_group(c->svc, group->valuestring);
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

/*
 * A check's deregister_critical_service_after. Consul removes the service
 * when that check has been critical this long. healthreg registers one
 * check for the service, which is critical when healthreg is gone: the
 * smallest value of the checks becomes that check's
 * deregister_critical_service_after, unless registry.consul sets one.
 */
static void check_dcsa(struct ctx *c, const char *path,
		       const struct check_seen *seen)
{
	char p[PATH_MAX_LEN];
	int64_t ms;

	if (!seen->dcsa)
		return;
	sub(p, path, seen->dcsa);
	if (hr_conf_duration(seen->dcsa, p, c->diag, &ms))
		return;
	if (!c->consul) {
		hr_diag_add(c->diag, HR_DIAG_WARNING, p,
			    "valid in Consul, used only with registry.consul; "
			    "ignored");
	} else if (c->consul_dcsa) {
		warn_at(c, p, "ignored: registry.consul.%s is set",
			c->consul_dcsa->string);
	} else if (ms == 0) {
		hr_diag_add(c->diag, HR_DIAG_WARNING, p,
			    "0s: this check makes Consul remove nothing; "
			    "ignored");
	} else {
		hr_diag_add(c->diag, HR_DIAG_WARNING, p,
			    "used for the service's one Consul check, as "
			    "registry.consul.deregister_critical_service_after"
			    " (the smallest value of the checks)");
		if (!c->dcsa || ms < c->dcsa_ms) {
			c->dcsa = seen->dcsa;
			c->dcsa_ms = ms;
		}
	}
}

/*
 * The name of a check written without "name" or "id": the CheckID Consul
 * gives it, "service:<service id>", numbered from 1 in the order of
 * "check" then "checks" when the service has several (agent.go,
 * addServiceInternal). Consul's Name for such a check, "Service '<name>'
 * check", is the same for all of them and cannot tell one from another.
 */
static char *default_check_name(const struct ctx *c, size_t i, size_t n)
{
	const char *id = c->svc->service.id ? c->svc->service.id : "";
	size_t len = strlen(id) + 32;
	char *s = malloc(len);

	if (!s)
		return NULL;
	if (n > 1)
		snprintf(s, len, "service:%s:%zu", id, i + 1);
	else
		snprintf(s, len, "service:%s", id);
	return s;
}

/* Consul runs the args of a check with docker_container_id in that
 * container; healthreg would run them on this host. */
static void check_docker(struct ctx *c, const char *path,
			 const struct hr_check_spec *s,
			 const struct check_seen *seen)
{
	char p[PATH_MAX_LEN];

	if (!seen->docker)
		return;
	sub(p, path, seen->docker);
	if (s->kind == HR_CHECK_EXEC)
		err_at(c, p, "docker checks are not supported (the args would run on this host, not in the container)");
	else
		warn_ignored(c, seen->docker->string, p);
}

/* Check i of the service's n (see default_check_name). */
static void parse_check(struct ctx *c, const cJSON *obj, const char *path,
			struct hr_check_spec *s, size_t i, size_t n)
{
	char here[PATH_MAX_LEN];
	struct check_seen seen;

	memset(s, 0, sizeof(*s));
	memset(&seen, 0, sizeof(seen));
	s->group = -1;
	obj = one_object(obj, path, here);
	path = here;
	if (parse_object(c, obj, path, &check_section, s, &seen))
		return;
	if (!s->name && seen.id) {
		s->name = seen.id;
		seen.id = NULL;
	}
	free(seen.id);
	if (!s->name) {
		s->name = default_check_name(c, i, n);
		if (!s->name)
			err_at(c, path, "out of memory");
	}
	check_dcsa(c, path, &seen);
	if (check_kind(c, obj, path, s, &seen))
		return;
	check_docker(c, path, s, &seen);
	check_timing(c, path, s, &seen);
	check_http_only(c, obj, path, s);
	check_thresholds(c, path, s, &seen);
	check_group(c, path, s, &seen);
}

/* ---- service, groups, agent ------------------------------------------ */

static const char *const service_keys_consul[] = {
	"taggedaddresses", "enabletagoverride", "weights", "token",
	"connect", "proxy", "socketpath", "locality", NULL,
};

/*
 * Consul keys that would change what is registered if ignored: healthreg
 * registers a typical service ("kind" "") in the default namespace and
 * partition. Any other value is an error; the default is accepted.
 */
static void set_consul_default(struct ctx *c, const cJSON *v, const char *p,
			       const char *what, const char *const *ok)
{
	char shown[80];

	if (cJSON_IsString(v))
		for (; *ok; ok++)
			if (!strcmp(v->valuestring, *ok))
				return;
	show(v, shown, sizeof(shown));
	err_at(c, p, "%s is not supported: healthreg registers %s", shown,
	       what);
}

static void set_kind(struct ctx *c, const cJSON *v, const char *p,
		     void *field)
{
	static const char *const ok[] = { "", "typical", NULL };

	(void)field;
	set_consul_default(c, v, p, "a typical service (no \"kind\")", ok);
}

static const char *const default_ok[] = { "", "default", NULL };

static void set_namespace(struct ctx *c, const cJSON *v, const char *p,
			  void *field)
{
	(void)field;
	set_consul_default(c, v, p, "in the default namespace", default_ok);
}

static void set_partition(struct ctx *c, const cJSON *v, const char *p,
			  void *field)
{
	(void)field;
	set_consul_default(c, v, p, "in the default partition", default_ok);
}

struct service_seen {
	const cJSON *checks, *check;
	const cJSON *groups, *registry; /* entries of "services" only */
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
	{ "groups", K_ITEM, true, SVC_SEEN(groups), NO_COUNT, 0, 0, NULL },
	{ "registry", K_ITEM, true, SVC_SEEN(registry), NO_COUNT, 0, 0, NULL },
	{ "kind", K_FN, false, 0, NO_COUNT, 0, 0, set_kind },
	{ "namespace", K_FN, false, 0, NO_COUNT, 0, 0, set_namespace },
	{ "partition", K_FN, false, 0, NO_COUNT, 0, 0, set_partition },
};

static const struct section service_section = {
	service_keys, HR_ARRAY_SIZE(service_keys), service_keys_consul, true,
};

/* The checks of arr ("checks"), or arr itself as the one check (single,
 * "check"), as checks first.. of the service's n. */
static void parse_checks_array(struct ctx *c, const cJSON *arr,
			       const char *path, int single, size_t first,
			       size_t n_all)
{
	struct hr_service_conf *cfg = c->svc;
	char p[PATH_MAX_LEN];
	const cJSON *e;
	size_t n = single ? 1 : (size_t)cJSON_GetArraySize(arr);
	struct hr_check_spec *v;
	size_t i = 0;

	if (single && cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 1) {
		err_at(c, path, "is an array: one check is an object (several go in \"checks\")");
		return;
	}
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
		parse_check(c, arr, path, &cfg->checks[cfg->n_checks++], first,
			    n_all);
		return;
	}
	cJSON_ArrayForEach(e, arr) {
		index_path(p, path, i);
		parse_check(c, e, p, &cfg->checks[cfg->n_checks++], first + i,
			    n_all);
		i++;
	}
}

static void parse_groups(struct ctx *c, const cJSON *obj, const char *path);
static void registry_merge(struct ctx *c, const cJSON *overlay,
			   const char *opath);
static void registry_validate(struct ctx *c, const cJSON *overlay,
			      const char *opath);
static void check_names(struct ctx *c);

/*
 * One service at path: its keys, then (an entry of "services") its own
 * groups and registry overlay, then its checks, whose names are unique
 * within it, then its merged registry section, validated.
 */
static void parse_service(struct ctx *c, const cJSON *obj, const char *path,
			  bool multi)
{
	struct hr_service_spec *s = &c->svc->service;
	struct service_seen seen = { NULL, NULL, NULL, NULL };
	char p[PATH_MAX_LEN], rp[PATH_MAX_LEN] = "";
	size_t n_single, n_all;

	obj = one_object(obj, path, c->svc_path);
	path = c->svc_path;
	if (parse_object(c, obj, path, &service_section, s, &seen))
		return;
	if (!s->name)
		err_at(c, path, "\"name\" is required");
	if (!s->id && s->name)
		s->id = strdup(s->name);
	if (!s->tags)
		s->tags = calloc(1, sizeof(*s->tags));
	if (!multi && (seen.groups || seen.registry)) {
		const cJSON *k = seen.groups ? seen.groups : seen.registry;

		sub(p, path, k);
		err_at(c, p, "only in an entry of \"services\" (with \"service\", use the top-level \"%s\")",
		       seen.groups ? "groups" : "registry");
		seen.groups = seen.registry = NULL;
	}
	if (seen.groups) {
		if (c->svc->n_groups) {
			err_at(c, "groups", "given at the top and in %s: with \"services\", each service has its own \"groups\"",
			       path);
		} else {
			sub(p, path, seen.groups);
			parse_groups(c, seen.groups, p);
		}
	}
	if (seen.registry)
		sub(rp, path, seen.registry);
	registry_merge(c, seen.registry, rp);
	/* Consul numbers the checks of "check" and "checks" as one list */
	n_single = seen.check ? 1 : 0;
	n_all = n_single;
	if (cJSON_IsArray(seen.checks))
		n_all += (size_t)cJSON_GetArraySize(seen.checks);
	if (seen.check) {
		sub(p, path, seen.check);
		parse_checks_array(c, seen.check, p, 1, 0, n_all);
		/* check_at: config check 0 is this one, if it was added */
		if (c->svc->n_checks)
			c->check_item = seen.check;
	}
	c->checks_item = seen.checks;
	if (seen.checks) {
		sub(p, path, seen.checks);
		parse_checks_array(c, seen.checks, p, 0, n_single, n_all);
	}
	if (!c->svc->n_checks && !c->diag->errors)
		err_at(c, path, "has no checks (\"checks\": [...])");
	check_names(c);
	registry_validate(c, seen.registry, rp);
}

#define GROUP(f) offsetof(struct hr_group_spec, f)

static const struct key group_keys[] = {
	{ "minpassing", K_INT, false, GROUP(min_passing), NO_COUNT, 1, 1000000, NULL },
	{ "onfailure", K_ON_FAILURE, false, GROUP(on_failure), NO_COUNT, 0, 0, NULL },
};

static const struct section group_section = {
	group_keys, HR_ARRAY_SIZE(group_keys), NULL, false,
};

static void parse_groups(struct ctx *c, const cJSON *obj, const char *path)
{
	struct hr_service_conf *cfg = c->svc;
	char p[PATH_MAX_LEN];
	const cJSON *g;
	size_t n;

	if (!cJSON_IsObject(obj)) {
		err_at(c, path, "is not an object");
		return;
	}
	n = (size_t)cJSON_GetArraySize(obj);
	cfg->groups = calloc(n ? n : 1, sizeof(*cfg->groups));
	if (!cfg->groups)
		return;
	cJSON_ArrayForEach(g, obj) {
		struct hr_group_spec *gs = &cfg->groups[cfg->n_groups++];

		sub(p, path, g);
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
	{ "journalsize", K_INT, false, CFG(journal_size), NO_COUNT, 0, HR_JOURNAL_SIZE_MAX, NULL },
};

static const struct section agent_section = {
	agent_keys, HR_ARRAY_SIZE(agent_keys), NULL, true,
};

/* ---- the registry section, per service ------------------------------- */

/* Drop every member of obj whose key is key as Consul matches keys. */
static void drop_key(cJSON *obj, const char *key)
{
	cJSON *it = obj->child, *next;

	for (; it; it = next) {
		next = it->next;
		if (!key_cmp(it->string, key))
			cJSON_Delete(cJSON_DetachItemViaPointer(obj, it));
	}
}

/*
 * The service's registry section: the top-level "registry" with the
 * service's overlay (at opath) laid over it, member by member and, in a
 * member both have, key by key; a member only in the overlay is this
 * service's alone. Then the consul member's deregister_critical_service_after
 * for check_dcsa.
 */
static void registry_merge(struct ctx *c, const cJSON *overlay,
			   const char *opath)
{
	char p[PATH_MAX_LEN];
	const cJSON *m, *k;
	cJSON *out;

	c->consul = c->consul_dcsa = NULL;
	if (overlay && !cJSON_IsObject(overlay)) {
		err_at(c, opath, "is not an object");
		overlay = NULL;
	}
	if (!c->registry && !overlay)
		return;
	out = c->registry ? cJSON_Duplicate(c->registry, 1)
			  : cJSON_CreateObject();
	if (!out) {
		err_at(c, opath[0] ? opath : "registry", "out of memory");
		return;
	}
	if (overlay)
		free(check_duplicates(c, overlay, opath));
	cJSON_ArrayForEach(m, overlay) {
		cJSON *base = cJSON_GetObjectItemCaseSensitive(out, m->string);

		sub(p, opath, m);
		if (!cJSON_IsObject(m)) {
			err_at(c, p, "is not an object");
			continue;
		}
		free(check_duplicates(c, m, p));
		if (!cJSON_IsObject(base)) {
			cJSON_DeleteItemFromObjectCaseSensitive(out, m->string);
			cJSON_AddItemToObject(out, m->string,
					      cJSON_Duplicate(m, 1));
			continue;
		}
		cJSON_ArrayForEach(k, m) {
			drop_key(base, k->string);
			cJSON_AddItemToObject(base, k->string,
					      cJSON_Duplicate(k, 1));
		}
	}
	c->svc->registry = out;
	c->consul = cJSON_GetObjectItemCaseSensitive(out, "consul");
	if (!cJSON_IsObject(c->consul)) {
		c->consul = NULL;
		return;
	}
	cJSON_ArrayForEach(k, c->consul)
		if (hr_conf_key_is(k->string, "deregistercriticalserviceafter"))
			c->consul_dcsa = k;
}

/*
 * Where a diagnostic of the merged section (written as "registry.<b>[.<key>
 * ...]: ...") was written: under opath when the overlay gave that member
 * (and that key, if the path names one), else at the top. out: the text.
 */
static void registry_where(const char *text, const cJSON *overlay,
			   const char *opath, char *out, size_t len)
{
	const char *b = text + strlen("registry."), *e = b, *ke;
	const cJSON *m = NULL;
	bool mine = false;

	snprintf(out, len, "%s", text);
	/* An overlay that is not an object (an error of its own) names no
	 * member: the diagnostic is the top's. */
	if (!cJSON_IsObject(overlay) || strncmp(text, "registry.", 9))
		return;
	while (*e && *e != '.' && *e != '[' && *e != ':')
		e++;
	cJSON_ArrayForEach(m, overlay)
		if (m->string && strlen(m->string) == (size_t)(e - b) &&
		    !strncmp(m->string, b, (size_t)(e - b)))
			break;
	if (!m)
		return;
	if (*e != '.') {
		mine = true;
	} else if (cJSON_IsObject(m)) {
		const cJSON *k;

		for (ke = e + 1; *ke && *ke != '.' && *ke != '[' && *ke != ':';
		     ke++)
			;
		cJSON_ArrayForEach(k, m)
			if (k->string &&
			    strlen(k->string) == (size_t)(ke - e - 1) &&
			    !strncmp(k->string, e + 1, (size_t)(ke - e - 1)))
				mine = true;
	}
	if (mine)
		snprintf(out, len, "%s%s", opath, text + strlen("registry"));
}

static bool diag_has(const struct hr_diag *d, const char *text)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].text, text))
			return true;
	return false;
}

/*
 * The service's merged registry section through the backends'
 * validators. Each diagnostic is named where its key was written: the
 * overlay's under opath; the top level's once, however many services
 * share it.
 */
static void registry_validate(struct ctx *c, const cJSON *overlay,
			      const char *opath)
{
	struct hr_diag tmp, *real = c->diag;
	char p[PATH_MAX_LEN], text[1200];
	cJSON *reg = c->svc->registry, *consul;
	const cJSON *it;
	size_t i;

	if (!reg)
		return;
	/* the checks' deregister_critical_service_after (check_dcsa),
	 * validated with the rest of registry.consul */
	consul = cJSON_GetObjectItemCaseSensitive(reg, "consul");
	if (c->dcsa && cJSON_IsObject(consul) &&
	    !cJSON_AddStringToObject(consul,
				     "deregister_critical_service_after",
				     c->dcsa->valuestring))
		err_at(c, "registry.consul", "out of memory");
	hr_diag_init(&tmp);
	c->diag = &tmp;
	cJSON_ArrayForEach(it, reg) {
		int found = 0;

		sub(p, "registry", it);
		for (i = 0; i < c->n_backends; i++) {
			if (strcmp(it->string, c->backends[i].name))
				continue;
			found = 1;
			if (c->backends[i].validate)
				c->backends[i].validate(it, p, &tmp);
			if (c->backends[i].validate_service &&
			    c->svc->service.name)
				c->backends[i].validate_service(
					&c->svc->service, c->svc_path, real);
		}
		if (!found) {
			char names[256] = "";
			size_t o = 0;

			for (i = 0; i < c->n_backends; i++)
				o += (size_t)snprintf(names + o, sizeof(names) - o,
						      "%s\"%s\"", i ? ", " : "",
						      c->backends[i].name);
			err_at(c, p, "unknown registry backend (this build knows: %s)",
			       c->n_backends ? names : "none");
		}
	}
	c->diag = real;
	for (i = 0; i < tmp.n; i++) {
		registry_where(tmp.v[i].text, overlay, opath, text,
			       sizeof(text));
		if (!diag_has(real, text))
			hr_diag_add(real, tmp.v[i].level, NULL, "%s", text);
	}
	hr_diag_dispose(&tmp);
}

/* Check i of the config as written (the object, its path in path). */
static const cJSON *check_at(const struct ctx *c, size_t i, char *path)
{
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];

	if (c->check_item && i == 0) {
		sub(p, c->svc_path, c->check_item);
		return one_object(c->check_item, p, path);
	}
	if (c->check_item)
		i--;
	sub(p, c->svc_path, c->checks_item);
	index_path(q, p, i);
	return one_object(cJSON_GetArrayItem(c->checks_item, (int)i), q, path);
}

/* Where check i's name is written: its "name", else its "id" (as read:
 * "" is not a name), else the check itself (a name Consul's rule gave
 * it); true when written. */
static bool name_at(const struct ctx *c, size_t i, char *path)
{
	static const char *const keys[] = { "name", "id", "checkid" };
	char p[PATH_MAX_LEN];
	const cJSON *obj = check_at(c, i, p), *it;
	size_t k;

	for (k = 0; k < HR_ARRAY_SIZE(keys); k++) {
		cJSON_ArrayForEach(it, obj) {
			if (hr_conf_key_is(it->string, keys[k]) &&
			    cJSON_IsString(it) && *it->valuestring) {
				sub(path, p, it);
				return true;
			}
		}
	}
	memcpy(path, p, PATH_MAX_LEN);
	return false;
}

static void check_names(struct ctx *c)
{
	const struct hr_service_conf *cfg = c->svc;
	const char **names = malloc((cfg->n_checks + 1) * sizeof(*names));
	char p[PATH_MAX_LEN];
	size_t i, *twin;

	for (i = 0; names && i < cfg->n_checks; i++)
		names[i] = cfg->checks[i].name ? cfg->checks[i].name : "";
	twin = names ? first_twins(names, cfg->n_checks, false) : NULL;
	if (!twin)
		err_at(c, c->svc_path, "out of memory");
	for (i = 0; twin && i < cfg->n_checks; i++) {
		if (twin[i] == NO_TWIN || !cfg->checks[i].name)
			continue;
		if (name_at(c, i, p))
			err_at(c, p, "duplicate check name \"%s\"",
			       cfg->checks[i].name);
		else
			err_at(c, p, "duplicate check name \"%s\" (Consul's "
				     "name for a check without \"name\" or \"id\")",
			       cfg->checks[i].name);
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
	struct ctx c;
	struct text_walk w = { &c, text, { text, text + len }, 0 };

	memset(&c, 0, sizeof(c));
	c.diag = diag;
	walk_text(&w, root, "");
	if (w.errors >= TEXT_ERRORS_MAX)
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "stopped after %d bad strings", TEXT_ERRORS_MAX);
	return w.errors ? -EINVAL : 0;
}

/* Service ids are unique within the agent: each registry names an
 * instance by its id. One sort (a thousand services cost n log n). */
static void service_ids(struct ctx *c, const cJSON *services)
{
	struct hr_config *cfg = c->cfg;
	const char **ids = malloc((cfg->n_services + 1) * sizeof(*ids));
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
	size_t i, *twin;

	for (i = 0; ids && i < cfg->n_services; i++)
		ids[i] = cfg->services[i].service.id ? cfg->services[i].service.id
						     : "";
	twin = ids ? first_twins(ids, cfg->n_services, false) : NULL;
	if (!twin)
		err_at(c, services->string, "out of memory");
	for (i = 0; twin && i < cfg->n_services; i++) {
		const cJSON *obj, *it, *at = NULL;

		if (twin[i] == NO_TWIN || !*ids[i])
			continue;
		index_path(p, services->string, i);
		obj = one_object(cJSON_GetArrayItem(services, (int)i), p, q);
		cJSON_ArrayForEach(it, obj)
			if (hr_conf_key_is(it->string, "id"))
				at = it;
		if (at) {
			sub(p, q, at);
			err_at(c, p, "duplicate service id \"%s\" (also %s[%zu])",
			       ids[i], services->string, twin[i]);
		} else {
			err_at(c, q, "duplicate service id \"%s\" (its name; "
				     "also %s[%zu]): give it an \"id\"",
			       ids[i], services->string, twin[i]);
		}
	}
	free(twin);
	free(ids);
}

/* Service i: what the ctx keeps per service starts afresh. */
static void begin_service(struct ctx *c, size_t i)
{
	c->svc = &c->cfg->services[i];
	c->check_item = c->checks_item = NULL;
	c->consul = c->consul_dcsa = c->dcsa = NULL;
	c->dcsa_ms = 0;
}

/*
 * "service" (one; the top-level "groups" and "registry" are its own) or
 * "services" (Consul's multi-service file: each entry a service with its
 * own "groups" and a "registry" overlay; the top-level "groups" only
 * when it holds one service without its own).
 */
static void parse_services(struct ctx *c, const cJSON *service,
			   const cJSON *services, const cJSON *groups)
{
	struct hr_config *cfg = c->cfg;
	char path[PATH_MAX_LEN];
	size_t n = 1, i = 0;
	const cJSON *e;

	if (service && services) {
		err_at(c, services->string, "and \"%s\" both given: one or the other",
		       service->string);
		return;
	}
	if (services && (!cJSON_IsArray(services) ||
			 !cJSON_GetArraySize(services))) {
		err_at(c, services->string, "must be an array of one or more services");
		return;
	}
	if (services)
		n = (size_t)cJSON_GetArraySize(services);
	if (services && groups && n > 1) {
		err_at(c, groups->string, "with several \"%s\", each service has its own \"groups\" (%s[i].groups)",
		       services->string, services->string);
		groups = NULL;
	}
	cfg->services = calloc(n, sizeof(*cfg->services));
	if (!cfg->services) {
		err_at(c, services ? services->string : service->string,
		       "out of memory");
		return;
	}
	cfg->n_services = n;
	if (service) {
		begin_service(c, 0);
		if (groups)
			parse_groups(c, groups, groups->string);
		copy_path(path, service->string);
		parse_service(c, service, path, false);
		return;
	}
	cJSON_ArrayForEach(e, services) {
		begin_service(c, i);
		if (groups)
			parse_groups(c, groups, groups->string);
		index_path(path, services->string, i);
		parse_service(c, e, path, true);
		i++;
	}
	service_ids(c, services);
}

/* The top-level registry members: objects, each key once. */
static void registry_top(struct ctx *c, const cJSON *registry)
{
	char p[PATH_MAX_LEN];
	const cJSON *it;

	cJSON_ArrayForEach(it, registry) {
		sub(p, "registry", it);
		if (cJSON_IsObject(it))
			free(check_duplicates(c, it, p));
	}
}

/* The four sections, in the order they depend on each other. */
static void parse_root(struct ctx *c, const cJSON *root)
{
	const cJSON *it, *service = NULL, *services = NULL, *groups = NULL;
	const cJSON *agent = NULL, *registry = NULL;

	free(check_duplicates(c, root, ""));
	cJSON_ArrayForEach(it, root) {
		if (hr_conf_key_is(it->string, "service"))
			service = it;
		else if (hr_conf_key_is(it->string, "services"))
			services = it;
		else if (hr_conf_key_is(it->string, "groups"))
			groups = it;
		else if (hr_conf_key_is(it->string, "agent"))
			agent = it;
		else if (hr_conf_key_is(it->string, "registry"))
			registry = it;
		else if (hr_conf_key_is(it->string, "check") ||
			 hr_conf_key_is(it->string, "checks"))
			err_at(c, it->string, "unknown key (in Consul, checks of the node; healthreg's checks go in \"service\")");
		else
			err_at(c, it->string, "unknown key (expected \"service\", \"services\", \"groups\", \"agent\", \"registry\")");
	}
	if (registry && !cJSON_IsObject(registry)) {
		err_at(c, "registry", "is not an object");
		registry = NULL;
	}
	if (registry)
		registry_top(c, registry);
	c->registry = registry;
	/* agent first: enable_exec_checks decides whether args checks are
	 * allowed; groups before checks, which refer to them. */
	if (agent)
		parse_object(c, agent, "agent", &agent_section, c->cfg, NULL);
	if (service || services)
		parse_services(c, service, services, groups);
	else
		hr_diag_add(c->diag, HR_DIAG_ERROR, NULL,
			    "\"service\" is required");
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
	cfg->journal_size = HR_JOURNAL_SIZE_DEFAULT;
	memset(&c, 0, sizeof(c));
	c.diag = diag;
	c.cfg = cfg;
	c.backends = backends;
	c.n_backends = n_backends;
	parse_root(&c, root);
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
	struct stat st;
	int rc;

	*out = NULL;
	f = fopen(path, "rb");
	if (!f) {
		rc = -errno;
		hr_diag_add(diag, HR_DIAG_ERROR, path, "%s", strerror(errno));
		return rc;
	}
	if (!fstat(fileno(f), &st) && S_ISDIR(st.st_mode)) {
		hr_diag_add(diag, HR_DIAG_ERROR, path,
			    "is a directory, not a config file");
		fclose(f);
		return -EISDIR;
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
	for (i = 0; i < cfg->n_services; i++) {
		struct hr_service_conf *s = &cfg->services[i];
		size_t k;

		hr_service_spec_dispose(&s->service);
		for (k = 0; k < s->n_checks; k++)
			hr_check_spec_dispose(&s->checks[k]);
		free(s->checks);
		for (k = 0; k < s->n_groups; k++)
			free(s->groups[k].name);
		free(s->groups);
		cJSON_Delete(s->registry);
	}
	free(cfg->services);
	free(cfg->api_listen);
	free(cfg->api_token_file);
	free(cfg->state_file);
	hr_conf_strv_free(cfg->exec_env);
	free(cfg->user);
	free(cfg);
}

int hr_service_find_check(const struct hr_service_conf *svc,
			  const char *name)
{
	size_t i;

	for (i = 0; i < svc->n_checks; i++)
		if (!strcmp(svc->checks[i].name, name))
			return (int)i;
	return -1;
}

int hr_config_find_check(const struct hr_config *cfg, const char *name)
{
	return cfg->n_services ? hr_service_find_check(&cfg->services[0], name)
			       : -1;
}

const struct hr_service_conf *hr_config_find_service(
	const struct hr_config *cfg, const char *id)
{
	size_t i;

	for (i = 0; i < cfg->n_services; i++)
		if (cfg->services[i].service.id &&
		    !strcmp(cfg->services[i].service.id, id))
			return &cfg->services[i];
	return NULL;
}
