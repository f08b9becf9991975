/*
 * preflight.c - the one path from a config file to a config `run` would
 * start (preflight.h): validate, run and reload all come through here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "api.h"
#include "backends.h"
#include "bset.h"
#include "healthreg/util.h"
#include "preflight.h"

int hr_preflight_user(const char *user, const struct passwd **pw,
		      struct hr_err *err)
{
	const struct passwd *p;

	*pw = NULL;
	errno = 0;
	p = getpwnam(user);
	if (!p && errno)
		return hr_err_set(err, -errno, "agent.user: \"%s\": %s", user,
				  strerror(errno));
	if (!p)
		return hr_err_set(err, -ENOENT, "agent.user: no such user \"%s\"",
				  user);
	if (geteuid() != 0 && geteuid() != p->pw_uid)
		return hr_err_set(err, -EPERM,
				  "agent.user: cannot become \"%s\": not started as root (uid %lu)",
				  user, (unsigned long)geteuid());
	*pw = p;
	return 0;
}

static void add_err(struct hr_diag *diag, const struct hr_err *err)
{
	hr_diag_add(diag, HR_DIAG_ERROR, NULL, "%s", err->msg);
}

void hr_preflight_service(const struct hr_config *cfg, size_t k,
			  struct hr_diag *diag)
{
	const struct hr_service_conf *svc = &cfg->services[k];
	struct hr_diag mine, *out = diag;
	const cJSON *item;
	char path[160];
	size_t i;

	/* With several services, a backend's message that does not name
	 * its path ("registry.etcd needs service.port ...") is named by
	 * the service it is about. */
	hr_diag_init(&mine);
	if (cfg->n_services > 1)
		diag = &mine;
	cJSON_ArrayForEach(item, svc->registry) {
		for (i = 0; hr_registries[i]; i++) {
			if (strcmp(hr_registries[i]->name, item->string) ||
			    !hr_registries[i]->preflight)
				continue;
			if (cfg->n_services == 1)
				snprintf(path, sizeof(path), "registry.%s",
					 item->string);
			else
				snprintf(path, sizeof(path),
					 "services[%zu].registry.%s", k,
					 item->string);
			hr_registries[i]->preflight(item, path, &svc->service,
						    diag);
		}
	}
	snprintf(path, sizeof(path), "services[%zu]", k);
	for (i = 0; i < mine.n; i++) {
		const char *t = mine.v[i].text;

		if (!strncmp(t, path, strlen(path)))
			hr_diag_add(out, mine.v[i].level, NULL, "%s", t);
		else
			hr_diag_add(out, mine.v[i].level, path, "%s", t);
	}
	hr_diag_dispose(&mine);
}

/* What start_api() and drop_user() (agent.c) refuse. */
static void agent_section(const struct hr_config *cfg, struct hr_diag *diag)
{
	const char *listen = cfg->api_listen ? cfg->api_listen
					     : HR_API_DEFAULT_LISTEN;
	struct hr_err err = { "" };
	const struct passwd *pw;
	char *token = NULL;

	if (*listen && strcmp(listen, "off")) {
		if (hr_api_check_listen(listen, &err))
			add_err(diag, &err);
		if (cfg->api_token_file) {
			if (hr_secret_read(cfg->api_token_file,
					   "agent.api_token_file",
					   HR_API_TOKEN_MAX, &token, NULL,
					   &err))
				add_err(diag, &err);
			hr_secret_free(token);
		}
	}
	if (cfg->user && hr_preflight_user(cfg->user, &pw, &err))
		add_err(diag, &err);
}

int hr_preflight_run(const struct hr_config *cfg, unsigned what,
		     struct hr_diag *diag)
{
	size_t before = diag->errors, i;

	if (what & HR_LOAD_AGENT)
		agent_section(cfg, diag);
	for (i = 0; (what & HR_LOAD_BACKENDS) && i < cfg->n_services; i++)
		hr_preflight_service(cfg, i, diag);
	return diag->errors > before ? -EINVAL : 0;
}

int hr_preflight_load(const char *path, unsigned what,
		      struct hr_config **out, struct hr_diag *diag)
{
	struct hr_config_backend vals[HR_BSET_MAX];
	size_t n = hr_backends_validators(vals, HR_BSET_MAX);
	int rc;

	rc = hr_config_load(out, path, vals, n, diag);
	if (rc)
		return rc;
	if (hr_preflight_run(*out, what, diag)) {
		hr_config_free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

int hr_agent_load_config(const char *path, unsigned what,
			 struct hr_config **out)
{
	struct hr_diag diag;
	size_t i;
	int rc;

	hr_diag_init(&diag);
	rc = hr_preflight_load(path, what, out, &diag);
	for (i = 0; i < diag.n; i++) {
		/* The file itself: one line, its text names the file. */
		if (rc && rc != -EINVAL)
			fprintf(stderr, "healthreg: %s\n", diag.v[i].text);
		else
			fprintf(stderr, "healthreg: %s: %s: %s\n",
				diag.v[i].level == HR_DIAG_ERROR ? "error"
								 : "warning",
				path, diag.v[i].text);
	}
	if (rc == -EINVAL && diag.errors)
		fprintf(stderr, "healthreg: %s: %zu error%s, nothing started\n",
			path, diag.errors, diag.errors == 1 ? "" : "s");
	hr_diag_dispose(&diag);
	return rc ? HR_EXIT_CONFIG : 0;
}
