/*
 * state.c - the maintenance state file of state.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "healthreg/log.h"
#include "state.h"

char *hr_state_path(const struct hr_config *cfg)
{
	const char *dir = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
	char *p = NULL;

	if (cfg->state_file)
		return strdup(cfg->state_file);
	if (asprintf(&p, "%s/%s.state", dir && *dir ? dir : "/var/lib/healthreg",
		     cfg->services[0].service.id) < 0)
		return NULL;
	return p;
}

static char *state_text(bool enabled, const char *reason,
			const struct hr_state_service *svcs, size_t n)
{
	cJSON *doc = cJSON_CreateObject(), *m, *all;
	char *text;
	size_t i;

	m = cJSON_AddObjectToObject(doc, "maintenance");
	cJSON_AddBoolToObject(m, "enabled", enabled);
	cJSON_AddStringToObject(m, "reason", reason ? reason : "");
	if (n) {
		all = cJSON_AddObjectToObject(doc, "services");
		for (i = 0; i < n; i++) {
			m = cJSON_AddObjectToObject(all, svcs[i].id);
			cJSON_AddBoolToObject(m, "enabled", 1);
			cJSON_AddStringToObject(m, "reason",
						svcs[i].reason ? svcs[i].reason
							       : "");
		}
	}
	text = cJSON_Print(doc);
	cJSON_Delete(doc);
	return text;
}

int hr_state_save(const char *path, bool enabled, const char *reason)
{
	return hr_state_save_services(path, enabled, reason, NULL, 0);
}

int hr_state_save_services(const char *path, bool enabled, const char *reason,
			   const struct hr_state_service *svcs, size_t n)
{
	char *tmp = NULL, *text = state_text(enabled, reason, svcs, n);
	FILE *f = NULL;
	int rc = -ENOMEM;

	if (!path || !text || asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		goto cleanup;
	}
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", text) < 0 || fflush(f) || fsync(fileno(f))) {
		rc = -errno;
		goto cleanup;
	}
	fclose(f);
	f = NULL;
	if (rename(tmp, path)) {
		rc = -errno;
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (f)
		fclose(f);
	if (rc) {
		hr_log(HR_LOG_ERROR, "state_save_failed", "path", path, "error",
		       strerror(-rc), NULL);
		if (tmp)
			unlink(tmp);
	}
	cJSON_free(text);
	free(tmp);
	return rc;
}

/* The whole file, NUL-terminated: 0, -ENOENT, -EFBIG (over
 * HR_STATE_FILE_MAX), -ENOMEM or another -errno. */
static int read_all(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	size_t n = 0, cap = 4096, got;
	char *buf = NULL, *v;
	int rc = 0;

	*out = NULL;
	if (!f)
		return -errno;
	for (;;) {
		if (n + 1 >= cap || !buf) {
			/* Room for one byte past the limit, to notice it. */
			cap = buf ? cap * 2 : cap;
			if (cap > HR_STATE_FILE_MAX + 2)
				cap = HR_STATE_FILE_MAX + 2;
			v = realloc(buf, cap);
			if (!v) {
				rc = -ENOMEM;
				break;
			}
			buf = v;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (n > HR_STATE_FILE_MAX)
			rc = -EFBIG;
		else if (!got && ferror(f))
			rc = -EIO;
		if (rc || !got)
			break;
	}
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

/* Keep at most HR_MAINT_REASON_MAX bytes, cut before a UTF-8 character
 * rather than inside one. */
static void bound_reason(char *r, const char *path)
{
	size_t n = strlen(r), cut = HR_MAINT_REASON_MAX;
	char len[32];

	if (n <= HR_MAINT_REASON_MAX)
		return;
	while (cut > 0 && ((unsigned char)r[cut] & 0xC0) == 0x80)
		cut--;
	r[cut] = '\0';
	snprintf(len, sizeof(len), "%zu", n);
	hr_log(HR_LOG_WARN, "state_reason_truncated", "path", path, "bytes",
	       len, "kept", "the first 1024 bytes", NULL);
}

/* "services" is absent, or {"<id>": {...}, ...}: an object of named
 * objects (an array's items have no name). */
static bool services_shaped(const cJSON *doc)
{
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(doc, "services");
	const cJSON *it;

	if (!all)
		return true;
	if (!cJSON_IsObject(all))
		return false;
	cJSON_ArrayForEach(it, all)
		if (!it->string || !cJSON_IsObject(it))
			return false;
	return true;
}

/* What the file says: 1 enabled (*reason set), 0 not, -EINVAL when it is
 * not a state file, -ENOMEM. */
static int parse_state(const char *text, const char *path, char **reason)
{
	cJSON *doc = cJSON_Parse(text), *m, *en, *why;
	int rc = -EINVAL;

	m = cJSON_GetObjectItemCaseSensitive(doc, "maintenance");
	en = cJSON_GetObjectItemCaseSensitive(m, "enabled");
	why = cJSON_GetObjectItemCaseSensitive(m, "reason");
	if (!cJSON_IsObject(doc) || !services_shaped(doc)) {
		rc = -EINVAL;
	} else if (cJSON_IsFalse(en)) {
		rc = 0;
	} else if (cJSON_IsTrue(en)) {
		*reason = strdup(cJSON_IsString(why) ? why->valuestring : "");
		rc = *reason ? 1 : -ENOMEM;
		if (*reason)
			bound_reason(*reason, path);
	}
	cJSON_Delete(doc);
	return rc;
}

int hr_state_load(const char *path, char **reason)
{
	char *text = NULL, why[128];
	int rc;

	*reason = NULL;
	rc = path ? read_all(path, &text) : -ENOENT;
	if (rc == -ENOENT || rc == -ENOMEM)
		return rc == -ENOENT ? 0 : rc;
	if (!rc)
		rc = parse_state(text, path, reason);
	free(text);
	if (rc == 1)
		hr_log(HR_LOG_WARN, "maintenance_restored", "reason", *reason,
		       "path", path, NULL);
	if (rc >= 0 || rc == -ENOMEM)
		return rc;
	/* Exists, but says nothing we understand: stay out of the registry. */
	snprintf(why, sizeof(why), "state file unreadable: %s",
		 rc == -EINVAL ? "not a healthreg state file" : strerror(-rc));
	hr_log(HR_LOG_ERROR, "state_unreadable", "path", path, "error", why,
	       "action", "staying in maintenance until `healthreg maint disable`",
	       NULL);
	*reason = strdup(why);
	return *reason ? 1 : -ENOMEM;
}

int hr_state_load_services(const char *path, hr_state_service_cb cb,
			   void *payload)
{
	char *text = NULL;
	cJSON *doc, *all, *it;
	int rc = path ? read_all(path, &text) : -ENOENT;

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	doc = cJSON_Parse(text);
	free(text);
	/* Another shape: hr_state_load() found the file unreadable and keeps
	 * every service in maintenance already; nothing to list. */
	all = services_shaped(doc)
		      ? cJSON_GetObjectItemCaseSensitive(doc, "services")
		      : NULL;
	cJSON_ArrayForEach(it, all) {
		const cJSON *why = cJSON_GetObjectItemCaseSensitive(it, "reason");
		char *r;

		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "enabled")))
			continue;
		r = strdup(cJSON_IsString(why) ? why->valuestring : "");
		if (!r) {
			rc = -ENOMEM;
			break;
		}
		bound_reason(r, path);
		hr_log(HR_LOG_WARN, "maintenance_restored", "reason", r, "path",
		       path, "service", it->string, NULL);
		cb(it->string, r, payload);
		free(r);
	}
	cJSON_Delete(doc);
	return rc;
}
