/*
 * state.c - the maintenance state file of state.h.
 */
#include <errno.h>
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
		     cfg->service.id) < 0)
		return NULL;
	return p;
}

static char *state_text(bool enabled, const char *reason)
{
	cJSON *doc = cJSON_CreateObject(), *m;
	char *text;

	m = cJSON_AddObjectToObject(doc, "maintenance");
	cJSON_AddBoolToObject(m, "enabled", enabled);
	cJSON_AddStringToObject(m, "reason", reason ? reason : "");
	text = cJSON_Print(doc);
	cJSON_Delete(doc);
	return text;
}

int hr_state_save(const char *path, bool enabled, const char *reason)
{
	char *tmp = NULL, *text = state_text(enabled, reason);
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

int hr_state_load(const char *path, char **reason)
{
	char buf[8192];
	size_t n;
	FILE *f;
	cJSON *doc, *m, *en, *why;
	int rc = 0;

	*reason = NULL;
	f = path ? fopen(path, "r") : NULL;
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	doc = cJSON_Parse(buf);
	m = cJSON_GetObjectItemCaseSensitive(doc, "maintenance");
	en = cJSON_GetObjectItemCaseSensitive(m, "enabled");
	why = cJSON_GetObjectItemCaseSensitive(m, "reason");
	if (cJSON_IsTrue(en)) {
		*reason = strdup(cJSON_IsString(why) ? why->valuestring : "");
		rc = *reason ? 1 : -ENOMEM;
		if (*reason)
			hr_log(HR_LOG_WARN, "maintenance_restored", "reason",
			       *reason, "path", path, NULL);
	} else if (!doc) {
		hr_log(HR_LOG_WARN, "state_unreadable", "path", path, NULL);
	}
	cJSON_Delete(doc);
	return rc;
}
