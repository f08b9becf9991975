/*
 * spec.c - check, service and group specs: copy, dispose, compare. The one
 * place that walks every field; a new field is added here and in config.c's
 * parser, nowhere else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/config.h"
#include "healthreg/confget.h"

static char *sdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool str_eq(const char *x, const char *y)
{
	if (!x || !y)
		return x == y;
	return !strcmp(x, y);
}

#define free_strv hr_conf_strv_free

static void free_headers(struct hr_header *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

void hr_check_spec_dispose(struct hr_check_spec *s)
{
	free(s->name);
	free(s->target);
	free_strv(s->args);
	free(s->method);
	free_headers(s->headers, s->n_headers);
	free(s->body);
	free(s->tls_server_name);
	free(s->ca_file);
}

static int copy_args(char ***dst, char *const *src)
{
	size_t i, n = 0;

	*dst = NULL;
	if (!src)
		return 0;
	while (src[n])
		n++;
	*dst = calloc(n + 1, sizeof(char *));
	if (!*dst)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (!((*dst)[i] = strdup(src[i])))
			return -ENOMEM;
	return 0;
}

/* A deep copy of n headers; on -ENOMEM *dst holds what was copied (NULL
 * where a string failed) for the caller's dispose. */
static int copy_headers(struct hr_header **dst, size_t *n_dst,
			const struct hr_header *src, size_t n)
{
	size_t i;

	*dst = NULL;
	*n_dst = 0;
	if (!n)
		return 0;
	*dst = calloc(n, sizeof(**dst));
	if (!*dst)
		return -ENOMEM;
	*n_dst = n;
	for (i = 0; i < n; i++) {
		(*dst)[i].name = sdup(src[i].name);
		(*dst)[i].value = sdup(src[i].value);
		if (!(*dst)[i].name || !(*dst)[i].value)
			return -ENOMEM;
	}
	return 0;
}

int hr_check_spec_copy(struct hr_check_spec *dst,
		       const struct hr_check_spec *src)
{
	int rc;

	*dst = *src;
	dst->name = sdup(src->name);
	dst->target = sdup(src->target);
	dst->method = sdup(src->method);
	dst->body = sdup(src->body);
	dst->tls_server_name = sdup(src->tls_server_name);
	dst->ca_file = sdup(src->ca_file);
	dst->headers = NULL;
	dst->n_headers = 0;
	rc = copy_args(&dst->args, src->args);
	if (!rc)
		rc = copy_headers(&dst->headers, &dst->n_headers, src->headers,
				  src->n_headers);
	if (!rc && (!dst->name || (src->target && !dst->target) ||
		    (src->method && !dst->method) || (src->body && !dst->body) ||
		    (src->tls_server_name && !dst->tls_server_name) ||
		    (src->ca_file && !dst->ca_file)))
		rc = -ENOMEM;
	if (rc)
		hr_check_spec_dispose(dst);
	return rc;
}

static bool strv_equal(char *const *x, char *const *y)
{
	size_t i;

	if (!x || !y)
		return x == y;
	for (i = 0; x[i] || y[i]; i++)
		if (!str_eq(x[i], y[i]))
			return false;
	return true;
}

static bool headers_equal(const struct hr_header *x, size_t nx,
			  const struct hr_header *y, size_t ny)
{
	size_t i;

	if (nx != ny)
		return false;
	for (i = 0; i < nx; i++)
		if (!str_eq(x[i].name, y[i].name) ||
		    !str_eq(x[i].value, y[i].value))
			return false;
	return true;
}

bool hr_check_spec_equal(const struct hr_check_spec *x,
			 const struct hr_check_spec *y)
{
	return str_eq(x->name, y->name) && x->kind == y->kind &&
	       str_eq(x->target, y->target) && strv_equal(x->args, y->args) &&
	       x->interval_ms == y->interval_ms &&
	       x->interval_down_ms == y->interval_down_ms &&
	       x->timeout_ms == y->timeout_ms && x->ttl_ms == y->ttl_ms &&
	       x->cache_ttl_ms == y->cache_ttl_ms &&
	       x->failure_ttl_ms == y->failure_ttl_ms &&
	       str_eq(x->method, y->method) &&
	       headers_equal(x->headers, x->n_headers, y->headers,
			     y->n_headers) &&
	       str_eq(x->body, y->body) &&
	       x->tls_skip_verify == y->tls_skip_verify &&
	       str_eq(x->tls_server_name, y->tls_server_name) &&
	       str_eq(x->ca_file, y->ca_file) &&
	       x->disable_redirects == y->disable_redirects &&
	       x->grpc_use_tls == y->grpc_use_tls &&
	       x->has_initial_status == y->has_initial_status &&
	       (!x->has_initial_status ||
		x->initial_status == y->initial_status) &&
	       x->success_before_passing == y->success_before_passing &&
	       x->failures_before_warning == y->failures_before_warning &&
	       x->failures_before_critical == y->failures_before_critical &&
	       x->on_failure == y->on_failure && x->group == y->group;
}

bool hr_groups_equal(const struct hr_service_conf *x,
		     const struct hr_service_conf *y)
{
	size_t i;

	if (x->n_groups != y->n_groups)
		return false;
	for (i = 0; i < x->n_groups; i++)
		if (!str_eq(x->groups[i].name, y->groups[i].name) ||
		    x->groups[i].min_passing != y->groups[i].min_passing ||
		    x->groups[i].on_failure != y->groups[i].on_failure)
			return false;
	return true;
}

bool hr_service_spec_equal(const struct hr_service_spec *x,
			   const struct hr_service_spec *y)
{
	size_t i;

	if (!str_eq(x->name, y->name) || !str_eq(x->id, y->id) ||
	    !str_eq(x->address, y->address) || x->port != y->port ||
	    x->n_tags != y->n_tags)
		return false;
	for (i = 0; i < x->n_tags; i++)
		if (!str_eq(x->tags[i], y->tags[i]))
			return false;
	return headers_equal(x->meta, x->n_meta, y->meta, y->n_meta);
}

void hr_service_spec_dispose(struct hr_service_spec *s)
{
	free(s->name);
	free(s->id);
	free(s->address);
	free_strv(s->tags);
	free_headers(s->meta, s->n_meta);
	memset(s, 0, sizeof(*s));
}

int hr_service_spec_copy(struct hr_service_spec *dst,
			 const struct hr_service_spec *src)
{
	int rc;

	memset(dst, 0, sizeof(*dst));
	dst->port = src->port;
	dst->name = sdup(src->name);
	dst->id = sdup(src->id);
	dst->address = sdup(src->address);
	rc = copy_args(&dst->tags, src->tags);
	while (!rc && dst->tags && dst->tags[dst->n_tags])
		dst->n_tags++;
	if (!rc)
		rc = copy_headers(&dst->meta, &dst->n_meta, src->meta,
				  src->n_meta);
	if (!rc && ((src->name && !dst->name) || (src->id && !dst->id) ||
		    (src->address && !dst->address)))
		rc = -ENOMEM;
	if (rc)
		hr_service_spec_dispose(dst);
	return rc;
}
