/*
 * confget.c - the typed config getters of healthreg/confget.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/confget.h"
#include "healthreg/duration.h"
#include "healthreg/status.h"
#include "healthreg/util.h"

void hr_conf_key_norm(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 1 < len; in++) {
		if (*in == '_' || *in == '-')
			continue;
		out[o++] = (char)tolower((unsigned char)*in);
	}
	out[o] = '\0';
}

bool hr_conf_key_is(const char *key, const char *normalized)
{
	char k[64];

	hr_conf_key_norm(key, k, sizeof(k));
	return !strcmp(k, normalized);
}

size_t hr_conf_utf8_prefix(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, l;

	while (i < n && (l = hr_utf8_len(u + i, n - i)))
		i += l;
	return i;
}

int hr_conf_shown_len(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	return (int)hr_conf_utf8_prefix(s, n);
}

int hr_conf_text(const char *s, const char *path, struct hr_diag *d)
{
	size_t n = strlen(s), ok;

	if (n > HR_CONF_STRING_MAX) {
		hr_diag_add(d, HR_DIAG_ERROR, path,
			    "is %zu bytes long, more than the limit of %d",
			    n, HR_CONF_STRING_MAX);
		return -EINVAL;
	}
	ok = hr_conf_utf8_prefix(s, n);
	if (ok < n) {
		hr_diag_add(d, HR_DIAG_ERROR, path,
			    "is not valid UTF-8 (at byte %zu)", ok);
		return -EINVAL;
	}
	return 0;
}

char *hr_conf_path(char *out, const char *path, const char *key)
{
	int n = snprintf(out, HR_CONF_PATH_MAX, "%s.%s", path, key);

	/* cut short: never in the middle of a character */
	if (n >= HR_CONF_PATH_MAX)
		out[hr_conf_utf8_prefix(out, HR_CONF_PATH_MAX - 1)] = '\0';
	return out;
}

void hr_conf_show(const cJSON *v, char *buf, size_t len)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s) {
		snprintf(buf, len, "(value)");
		return;
	}
	if (strlen(s) > 60) /* on a character boundary */
		strcpy(s + hr_conf_utf8_prefix(s, 57), "...");
	snprintf(buf, len, "%s", s);
	cJSON_free(s);
}

static int bad(const cJSON *v, const char *path, struct hr_diag *d,
	       const char *what)
{
	char shown[80];

	hr_conf_show(v, shown, sizeof(shown));
	hr_diag_add(d, HR_DIAG_ERROR, path, "%s %s", shown, what);
	return -EINVAL;
}

int hr_conf_string(const cJSON *v, const char *path, struct hr_diag *d,
		   char **out)
{
	char *s;

	if (!cJSON_IsString(v))
		return bad(v, path, d, "is not a string");
	if (hr_conf_text(v->valuestring, path, d))
		return -EINVAL;
	s = strdup(v->valuestring);
	if (!s)
		return -ENOMEM;
	free(*out);
	*out = s;
	return 0;
}

int hr_conf_nonempty_string(const cJSON *v, const char *path,
			    struct hr_diag *d, char **out)
{
	if (!cJSON_IsString(v))
		return bad(v, path, d, "is not a string");
	if (!v->valuestring[0]) {
		hr_diag_add(d, HR_DIAG_ERROR, path, "must not be empty");
		return -EINVAL;
	}
	return hr_conf_string(v, path, d, out);
}

int hr_conf_bool(const cJSON *v, const char *path, struct hr_diag *d,
		 bool *out)
{
	if (!cJSON_IsBool(v))
		return bad(v, path, d, "is not true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

int hr_conf_int(const cJSON *v, const char *path, int min, int max,
		struct hr_diag *d, int *out)
{
	double x;

	if (!cJSON_IsNumber(v))
		return bad(v, path, d, "is not an integer");
	x = v->valuedouble;
	/* Range first: converting an out-of-range double is undefined. */
	if (!(x >= (double)min && x <= (double)max)) {
		char shown[80];

		if (x != x)
			return bad(v, path, d, "is not an integer");
		/* 1e999 parses to infinity, which cJSON prints as null */
		if (x - x != 0)
			snprintf(shown, sizeof(shown), "%s", "the number");
		else
			hr_conf_show(v, shown, sizeof(shown));
		hr_diag_add(d, HR_DIAG_ERROR, path,
			    "%s is out of range (%d..%d)", shown, min, max);
		return -EINVAL;
	}
	if (x != (double)(int)x)
		return bad(v, path, d, "is not an integer");
	*out = (int)x;
	return 0;
}

int hr_conf_duration(const cJSON *v, const char *path, struct hr_diag *d,
		     int64_t *out)
{
	int64_t ms;
	int rc;

	if (!cJSON_IsString(v))
		return bad(v, path, d,
			   "is not a duration (like \"250ms\", \"10s\", \"1m30s\")");
	rc = hr_duration_parse(v->valuestring, &ms);
	if (rc == -ERANGE)
		return bad(v, path, d, "is too large");
	if (rc)
		return bad(v, path, d,
			   "is not a duration (like \"250ms\", \"10s\", \"1m30s\")");
	*out = ms;
	return 0;
}

void hr_conf_strv_free(char **v)
{
	char **p;

	for (p = v; p && *p; p++)
		free(*p);
	free(v);
}

int hr_conf_string_array(const cJSON *v, const char *path, bool allow_empty,
			 struct hr_diag *d, char ***out, size_t *n_out)
{
	char p[HR_CONF_PATH_MAX];
	const cJSON *e;
	char **arr;
	size_t n, i = 0;
	int rc = 0;

	if (!cJSON_IsArray(v)) {
		hr_diag_add(d, HR_DIAG_ERROR, path, "is not an array of strings");
		return -EINVAL;
	}
	n = (size_t)cJSON_GetArraySize(v);
	if (!n && !allow_empty) {
		hr_diag_add(d, HR_DIAG_ERROR, path, "must not be empty");
		return -EINVAL;
	}
	arr = calloc(n + 1, sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	hr_conf_strv_free(*out);
	*out = NULL;
	cJSON_ArrayForEach(e, v) {
		int r;

		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		r = hr_conf_string(e, p, d, &arr[i]);
		if (r == -ENOMEM) {
			hr_conf_strv_free(arr);
			return r;
		}
		if (r)
			rc = r;
		/* keep the array dense: a bad element is an empty string */
		if (!arr[i] && !(arr[i] = strdup(""))) {
			hr_conf_strv_free(arr);
			return -ENOMEM;
		}
		i++;
	}
	*out = arr;
	if (n_out)
		*n_out = n;
	return rc;
}

int hr_conf_statuses(const cJSON *v, const char *path, struct hr_diag *d,
		     unsigned *mask)
{
	char p[HR_CONF_PATH_MAX];
	const cJSON *e;
	unsigned m = 0;
	size_t i = 0;
	int rc = 0;

	if (!cJSON_IsArray(v) || !cJSON_GetArraySize(v)) {
		hr_diag_add(d, HR_DIAG_ERROR, path,
			    "must be a non-empty array of \"passing\", "
			    "\"warning\", \"critical\"");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, v) {
		enum hr_status s;

		snprintf(p, sizeof(p), "%s[%zu]", path, i++);
		if (!cJSON_IsString(e) ||
		    hr_status_parse(e->valuestring, 0, &s) < 0 ||
		    s == HR_STATUS_UNKNOWN) {
			rc = bad(e, p, d,
				 "is not one of \"passing\", \"warning\", "
				 "\"critical\"");
			continue;
		}
		m |= 1u << s;
	}
	if (!rc)
		*mask = m;
	return rc;
}
