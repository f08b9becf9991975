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

#define PATH_MAX_LEN 256
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

static int key_is(const cJSON *item, const char *normalized)
{
	return hr_conf_key_is(item->string, normalized);
}

static int in_list(const char *key, const char *const *list)
{
	char k[64];

	norm_key(key, k, sizeof(k));
	for (; *list; list++)
		if (!strcmp(k, *list))
			return 1;
	return 0;
}

#define show hr_conf_show

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

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hr_diag_add(c->diag, HR_DIAG_ERROR, path, "%s", msg);
}

static void sub(char *out, const char *path, const cJSON *item)
{
	snprintf(out, PATH_MAX_LEN, "%s.%s", path, item->string);
}

/* Duplicate keys (after normalisation) are reported: one would be lost. */
static void check_duplicates(struct ctx *c, const cJSON *obj,
			     const char *path)
{
	const cJSON *a, *b;

	cJSON_ArrayForEach(a, obj) {
		char ka[64];

		norm_key(a->string, ka, sizeof(ka));
		for (b = obj->child; b != a; b = b->next) {
			char kb[64];

			norm_key(b->string, kb, sizeof(kb));
			if (!strcmp(ka, kb)) {
				char p[PATH_MAX_LEN];

				sub(p, path, a);
				err_at(c, p, "duplicate key (also given as \"%s\")",
				       b->string);
				break;
			}
		}
	}
}

static int get_string(struct ctx *c, const cJSON *v, const char *path,
		      char **out)
{
	return hr_conf_string(v, path, c->diag, out);
}

static int get_nonempty_string(struct ctx *c, const cJSON *v,
			       const char *path, char **out)
{
	return hr_conf_nonempty_string(v, path, c->diag, out);
}

static int get_bool(struct ctx *c, const cJSON *v, const char *path,
		    bool *out)
{
	return hr_conf_bool(v, path, c->diag, out);
}

static int get_int(struct ctx *c, const cJSON *v, const char *path, int min,
		   int max, int *out)
{
	return hr_conf_int(v, path, min, max, c->diag, out);
}

static int get_duration(struct ctx *c, const cJSON *v, const char *path,
			int64_t *out)
{
	return hr_conf_duration(v, path, c->diag, out);
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

static int get_string_array(struct ctx *c, const cJSON *v, const char *path,
			    char ***out, size_t *n_out, int allow_empty)
{
	return hr_conf_string_array(v, path, allow_empty, c->diag, out, n_out);
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
			n++;
		}
	}
out:
	*out = arr;
	*n_out = n;
	return rc;
}

static void free_headers(struct hr_header *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

#define free_strv hr_conf_strv_free

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

static void parse_check(struct ctx *c, const cJSON *obj, const char *path,
			struct hr_check_spec *s)
{
	char p[PATH_MAX_LEN];
	const cJSON *it;
	const cJSON *kinds[4] = { NULL, NULL, NULL, NULL };
	const cJSON *interval = NULL, *timeout = NULL, *group = NULL;
	const cJSON *on_failure = NULL, *interval_down = NULL;
	const cJSON *cache_ttl = NULL, *failure_ttl = NULL;
	bool has_fbw = false;
	char *id = NULL;
	int n_kinds = 0, i;
	const char *unsupported = NULL;

	memset(s, 0, sizeof(*s));
	s->group = -1;
	if (!cJSON_IsObject(obj)) {
		err_at(c, path, "is not an object");
		return;
	}
	check_duplicates(c, obj, path);
	cJSON_ArrayForEach(it, obj) {
		sub(p, path, it);
		if (key_is(it, "name")) {
			get_nonempty_string(c, it, p, &s->name);
		} else if (key_is(it, "id") || key_is(it, "checkid")) {
			get_nonempty_string(c, it, p, &id);
		} else if (key_is(it, "http")) {
			kinds[HR_CHECK_HTTP] = it;
		} else if (key_is(it, "tcp")) {
			kinds[HR_CHECK_TCP] = it;
		} else if (key_is(it, "args")) {
			kinds[HR_CHECK_EXEC] = it;
		} else if (key_is(it, "ttl")) {
			kinds[HR_CHECK_TTL] = it;
		} else if (key_is(it, "interval")) {
			interval = it;
		} else if (key_is(it, "timeout")) {
			timeout = it;
		} else if (key_is(it, "intervaldown")) {
			interval_down = it;
		} else if (key_is(it, "cachettl")) {
			cache_ttl = it;
		} else if (key_is(it, "failurettl")) {
			failure_ttl = it;
		} else if (key_is(it, "method")) {
			if (!get_nonempty_string(c, it, p, &s->method)) {
				char *m;

				for (m = s->method; *m; m++) {
					if (!isalpha((unsigned char)*m)) {
						err_at(c, p, "\"%s\" is not an HTTP method",
						       s->method);
						break;
					}
					*m = (char)toupper((unsigned char)*m);
				}
			}
		} else if (key_is(it, "header")) {
			get_headers(c, it, p, &s->headers, &s->n_headers, 1);
		} else if (key_is(it, "body")) {
			get_string(c, it, p, &s->body);
		} else if (key_is(it, "tlsskipverify")) {
			get_bool(c, it, p, &s->tls_skip_verify);
		} else if (key_is(it, "tlsservername")) {
			get_nonempty_string(c, it, p, &s->tls_server_name);
		} else if (key_is(it, "disableredirects")) {
			get_bool(c, it, p, &s->disable_redirects);
		} else if (key_is(it, "status")) {
			if (!cJSON_IsString(it) ||
			    hr_status_parse(it->valuestring, 0,
					    &s->initial_status)) {
				char shown[80];

				show(it, shown, sizeof(shown));
				err_at(c, p, "%s is not one of \"passing\", \"warning\", \"critical\"",
				       shown);
			} else {
				s->has_initial_status = true;
			}
		} else if (key_is(it, "successbeforepassing")) {
			get_int(c, it, p, 0, 1000000, &s->success_before_passing);
		} else if (key_is(it, "failuresbeforewarning")) {
			if (!get_int(c, it, p, 0, 1000000,
				     &s->failures_before_warning))
				has_fbw = true;
		} else if (key_is(it, "failuresbeforecritical")) {
			get_int(c, it, p, 0, 1000000,
				&s->failures_before_critical);
		} else if (key_is(it, "onfailure")) {
			on_failure = it;
			get_on_failure(c, it, p, &s->on_failure);
		} else if (key_is(it, "group")) {
			group = it;
		} else if (key_is(it, "notes")) {
			/* Documentation only. */
		} else if (in_list(it->string, check_keys_consul)) {
			if (in_list(it->string, check_kinds_unsupported))
				unsupported = it->string;
			hr_diag_add(c->diag, HR_DIAG_WARNING, p,
				    "valid in Consul but not used by healthreg; ignored");
		} else {
			err_at(c, p, "unknown key");
		}
	}

	if (!s->name && id) {
		s->name = id;
		id = NULL;
	}
	free(id);
	if (!s->name)
		err_at(c, path, "\"name\" is required");

	for (i = 0; i < 4; i++)
		if (kinds[i])
			n_kinds++;
	if (n_kinds == 0) {
		if (unsupported)
			err_at(c, path, "check kind \"%s\" is not supported (healthreg runs http, tcp, args and ttl checks)",
			       unsupported);
		else
			err_at(c, path, "needs one of \"http\", \"tcp\", \"args\", \"ttl\"");
		return;
	}
	if (n_kinds > 1) {
		err_at(c, path, "has more than one of \"http\", \"tcp\", \"args\", \"ttl\"");
		return;
	}
	for (i = 0; i < 4; i++) {
		if (!kinds[i])
			continue;
		s->kind = (enum hr_check_kind)i;
		sub(p, path, kinds[i]);
		switch (s->kind) {
		case HR_CHECK_HTTP:
			if (!get_nonempty_string(c, kinds[i], p, &s->target) &&
			    strncmp(s->target, "http://", 7) &&
			    strncmp(s->target, "https://", 8))
				err_at(c, p, "\"%s\" is not an http:// or https:// URL",
				       s->target);
			break;
		case HR_CHECK_TCP:
			if (!get_nonempty_string(c, kinds[i], p, &s->target) &&
			    parse_hostport(s->target))
				err_at(c, p, "\"%s\" is not host:port", s->target);
			break;
		case HR_CHECK_EXEC:
			get_string_array(c, kinds[i], p, &s->args, NULL, 0);
			if (!c->cfg->enable_exec_checks)
				err_at(c, p, "exec checks are disabled; set agent.enable_exec_checks to true to allow them");
			break;
		case HR_CHECK_TTL:
			if (!get_duration(c, kinds[i], p, &s->ttl_ms) &&
			    s->ttl_ms <= 0)
				err_at(c, p, "must be greater than 0");
			break;
		}
	}

	/* Timing. ttl checks have no schedule. */
	if (s->kind == HR_CHECK_TTL) {
		if (interval) {
			sub(p, path, interval);
			err_at(c, p, "does not apply to ttl checks");
		}
		if (timeout) {
			sub(p, path, timeout);
			err_at(c, p, "does not apply to ttl checks");
		}
	}
	s->interval_ms = DEFAULT_INTERVAL_MS;
	if (interval && s->kind != HR_CHECK_TTL) {
		sub(p, path, interval);
		if (!get_duration(c, interval, p, &s->interval_ms) &&
		    s->interval_ms < MIN_INTERVAL_MS)
			err_at(c, p, "\"%s\" is below the minimum of 100ms",
			       interval->valuestring);
	}
	if (interval_down) {
		sub(p, path, interval_down);
		if (!get_duration(c, interval_down, p, &s->interval_down_ms) &&
		    s->interval_down_ms < MIN_INTERVAL_MS)
			err_at(c, p, "\"%s\" is below the minimum of 100ms",
			       interval_down->valuestring);
	}
	s->timeout_ms = s->interval_ms < DEFAULT_TIMEOUT_MS ? s->interval_ms
							    : DEFAULT_TIMEOUT_MS;
	if (timeout && s->kind != HR_CHECK_TTL) {
		sub(p, path, timeout);
		if (!get_duration(c, timeout, p, &s->timeout_ms)) {
			if (s->timeout_ms <= 0)
				err_at(c, p, "must be greater than 0");
			else if (s->timeout_ms > s->interval_ms)
				err_at(c, p, "\"%s\" is longer than the interval",
				       timeout->valuestring);
		}
	}
	s->cache_ttl_ms = s->interval_ms;
	s->failure_ttl_ms = s->interval_down_ms ? s->interval_down_ms
						: s->interval_ms;
	if (cache_ttl) {
		sub(p, path, cache_ttl);
		get_duration(c, cache_ttl, p, &s->cache_ttl_ms);
	}
	if (failure_ttl) {
		sub(p, path, failure_ttl);
		get_duration(c, failure_ttl, p, &s->failure_ttl_ms);
	}
	if (s->kind != HR_CHECK_HTTP) {
		const char *http_only[] = { "method", "header", "body",
					    "tlsskipverify", "tlsservername",
					    "disableredirects", NULL };

		cJSON_ArrayForEach(it, obj) {
			if (in_list(it->string, http_only)) {
				sub(p, path, it);
				err_at(c, p, "applies to http checks only");
			}
		}
	}
	if (!has_fbw)
		s->failures_before_warning = s->failures_before_critical;

	if (group) {
		sub(p, path, group);
		if (!cJSON_IsString(group)) {
			err_at(c, p, "is not a string");
		} else {
			s->group = find_group(c->cfg, group->valuestring);
			if (s->group < 0)
				err_at(c, p, "group \"%s\" is not defined in \"groups\"",
				       group->valuestring);
			else if (on_failure) {
				sub(p, path, on_failure);
				err_at(c, p, "a grouped check takes on_failure from its group \"%s\"",
				       group->valuestring);
			}
		}
	}
}

static const char *const service_keys_consul[] = {
	"kind", "taggedaddresses", "enabletagoverride", "weights", "token",
	"namespace", "partition", "connect", "proxy", "socketpath",
	"locality", NULL,
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
	const char *path = "service";
	char p[PATH_MAX_LEN];
	const cJSON *it;
	const cJSON *checks = NULL, *check = NULL;

	if (!cJSON_IsObject(obj)) {
		err_at(c, path, "is not an object");
		return;
	}
	check_duplicates(c, obj, path);
	cJSON_ArrayForEach(it, obj) {
		sub(p, path, it);
		if (key_is(it, "name")) {
			get_nonempty_string(c, it, p, &s->name);
		} else if (key_is(it, "id")) {
			get_nonempty_string(c, it, p, &s->id);
		} else if (key_is(it, "address")) {
			get_string(c, it, p, &s->address);
		} else if (key_is(it, "port")) {
			get_int(c, it, p, 0, 65535, &s->port);
		} else if (key_is(it, "tags")) {
			get_string_array(c, it, p, &s->tags, &s->n_tags, 1);
		} else if (key_is(it, "meta")) {
			get_headers(c, it, p, &s->meta, &s->n_meta, 0);
		} else if (key_is(it, "checks")) {
			checks = it;
		} else if (key_is(it, "check")) {
			check = it;
		} else if (in_list(it->string, service_keys_consul)) {
			hr_diag_add(c->diag, HR_DIAG_WARNING, p,
				    "valid in Consul but not used by healthreg; ignored");
		} else {
			err_at(c, p, "unknown key");
		}
	}
	if (!s->name)
		err_at(c, path, "\"name\" is required");
	if (!s->id && s->name)
		s->id = strdup(s->name);
	if (!s->tags)
		s->tags = calloc(1, sizeof(*s->tags));
	if (check) {
		sub(p, path, check);
		parse_checks_array(c, check, p, 1);
	}
	if (checks) {
		sub(p, path, checks);
		parse_checks_array(c, checks, p, 0);
	}
	if (!c->cfg->n_checks && !c->diag->errors)
		err_at(c, path, "has no checks (\"checks\": [...])");
}

static void parse_groups(struct ctx *c, const cJSON *obj)
{
	struct hr_config *cfg = c->cfg;
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
	const cJSON *g, *it;
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
		if (!cJSON_IsObject(g)) {
			err_at(c, p, "is not an object");
			continue;
		}
		cJSON_ArrayForEach(it, g) {
			sub(q, p, it);
			if (key_is(it, "minpassing"))
				get_int(c, it, q, 1, 1000000, &gs->min_passing);
			else if (key_is(it, "onfailure"))
				get_on_failure(c, it, q, &gs->on_failure);
			else
				err_at(c, q, "unknown key");
		}
	}
}

static void parse_agent(struct ctx *c, const cJSON *obj)
{
	struct hr_config *cfg = c->cfg;
	char p[PATH_MAX_LEN];
	const cJSON *it;

	if (!cJSON_IsObject(obj)) {
		err_at(c, "agent", "is not an object");
		return;
	}
	check_duplicates(c, obj, "agent");
	cJSON_ArrayForEach(it, obj) {
		sub(p, "agent", it);
		if (key_is(it, "enableexecchecks")) {
			get_bool(c, it, p, &cfg->enable_exec_checks);
		} else if (key_is(it, "loglevel")) {
			if (!cJSON_IsString(it) ||
			    hr_log_level_parse(it->valuestring, &cfg->log_level))
				err_at(c, p, "is not one of \"error\", \"warn\", \"info\", \"debug\"");
		} else if (key_is(it, "logformat")) {
			if (cJSON_IsString(it) && !strcmp(it->valuestring, "logfmt"))
				cfg->log_format = HR_LOG_LOGFMT;
			else if (cJSON_IsString(it) && !strcmp(it->valuestring, "json"))
				cfg->log_format = HR_LOG_JSON;
			else
				err_at(c, p, "is not one of \"logfmt\", \"json\"");
		} else if (key_is(it, "maxconcurrentchecks")) {
			get_int(c, it, p, 1, 100000, &cfg->max_concurrent);
		} else if (key_is(it, "shutdowntimeout")) {
			get_duration(c, it, p, &cfg->shutdown_timeout_ms);
		} else if (key_is(it, "apilisten")) {
			get_string(c, it, p, &cfg->api_listen);
		} else if (key_is(it, "apitokenfile")) {
			get_nonempty_string(c, it, p, &cfg->api_token_file);
		} else if (key_is(it, "statefile")) {
			get_nonempty_string(c, it, p, &cfg->state_file);
		} else {
			err_at(c, p, "unknown key");
		}
	}
}

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
				if (backends[i].validate)
					backends[i].validate(it, p, c->diag);
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
	char p[PATH_MAX_LEN];
	size_t i, j;

	for (i = 0; i < cfg->n_checks; i++) {
		if (!cfg->checks[i].name)
			continue;
		for (j = 0; j < i; j++) {
			if (cfg->checks[j].name &&
			    !strcmp(cfg->checks[i].name, cfg->checks[j].name)) {
				snprintf(p, sizeof(p), "service.checks[%zu].name", i);
				err_at(c, p, "duplicate check name \"%s\"",
				       cfg->checks[i].name);
				break;
			}
		}
	}
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
		} else {
			(*col)++;
		}
	}
}

int hr_config_parse(struct hr_config **out, const char *text, size_t len,
		    const struct hr_config_backend *backends,
		    size_t n_backends, struct hr_diag *diag)
{
	struct hr_config *cfg = NULL;
	struct ctx c;
	cJSON *root = NULL;
	const char *end = NULL;
	const cJSON *it, *service = NULL, *groups = NULL, *agent = NULL;
	const cJSON *registry = NULL;
	int rc = -EINVAL;
	size_t errors_before = diag->errors;

	*out = NULL;
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		int line, col;
		const char *at = cJSON_GetErrorPtr();

		if (!at)
			at = text;
		line_col(text, at, &line, &col);
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "invalid JSON at line %d, column %d", line, col);
		goto cleanup;
	}
	/* Trailing garbage after the document. */
	while (end && (size_t)(end - text) < len &&
	       isspace((unsigned char)*end))
		end++;
	if (end && (size_t)(end - text) < len && *end) {
		int line, col;

		line_col(text, end, &line, &col);
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "invalid JSON at line %d, column %d: unexpected data after the document",
			    line, col);
		goto cleanup;
	}
	if (!cJSON_IsObject(root)) {
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "the config must be a JSON object");
		goto cleanup;
	}
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
	check_duplicates(&c, root, "");
	cJSON_ArrayForEach(it, root) {
		if (key_is(it, "service"))
			service = it;
		else if (key_is(it, "groups"))
			groups = it;
		else if (key_is(it, "agent"))
			agent = it;
		else if (key_is(it, "registry"))
			registry = it;
		else
			err_at(&c, it->string, "unknown key (expected \"service\", \"groups\", \"agent\", \"registry\")");
	}
	/* agent first: enable_exec_checks decides whether args checks are
	 * allowed; groups before checks, which refer to them. */
	if (agent)
		parse_agent(&c, agent);
	if (groups)
		parse_groups(&c, groups);
	if (service)
		parse_service(&c, service);
	else
		hr_diag_add(diag, HR_DIAG_ERROR, NULL,
			    "\"service\" is required");
	if (registry)
		parse_registry(&c, registry, backends, n_backends);
	check_names(&c);
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
	free(cfg->service.name);
	free(cfg->service.id);
	free(cfg->service.address);
	free_strv(cfg->service.tags);
	free_headers(cfg->service.meta, cfg->service.n_meta);
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
