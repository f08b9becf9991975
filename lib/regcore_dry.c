/*
 * regcore_dry.c - "dry_run": true. The backend the agent creates in place
 * of a registry's own (see hr_reg_conf_dry_run() in healthreg/regcore.h):
 * the shared core decides exactly as under the real backend (the
 * register_when set, the grace period, shutdown) and journals each
 * decision with dry_run true, but nothing is ever sent. The stats show
 * what would be registered.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/log.h"
#include "healthreg/regcore.h"
#include "internal.h"
#include "regcore_tls.h"

struct hr_registry {
	struct hr_regcore core;
	bool maint;            /* in the registry's own maintenance mode */
};

#define OWNER(c) hr_container_of(c, struct hr_registry, core)

static bool dry_reply(struct hr_regcore *c, const struct hr_reg_reply *r)
{
	(void)c;
	(void)r;
	return true; /* never called: nothing is sent */
}

/* What the registry would hold now. */
static void dry_kick(struct hr_regcore *c)
{
	struct hr_registry *r = OWNER(c);

	if (hr_regcore_shutting_down(c)) {
		hr_regcore_state(c, HR_REGISTRY_DEREGISTERED);
		hr_regcore_finish(c);
	} else if (r->maint) {
		hr_regcore_state(c, HR_REGISTRY_MAINTENANCE);
	} else if (hr_regcore_wanted(c)) {
		hr_regcore_state(c, HR_REGISTRY_REGISTERED);
	} else if (c->have_status) {
		hr_regcore_state(c, HR_REGISTRY_DEREGISTERED);
	}
}

static const struct hr_regcore_ops dry_core_ops = {
	.reply = dry_reply,
	.kick = dry_kick,
};

static void dry_destroy(struct hr_registry *r)
{
	if (!r)
		return;
	hr_regcore_dispose(&r->core);
	free(r);
}

static int dry_create(struct hr_registry **out, const cJSON *conf,
		      const struct hr_registry_env *env, struct hr_err *err)
{
	struct hr_registry *r = calloc(1, sizeof(*r));
	struct hr_reg_conf common;
	int rc;

	*out = NULL;
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	hr_reg_conf_init(&common);
	rc = hr__reg_conf_common(conf, &common);
	if (rc == 0)
		rc = hr_regcore_init(&r->core, &dry_core_ops, env, 0);
	if (rc < 0) {
		hr_reg_conf_dispose(&common);
		dry_destroy(r);
		return hr_err_set(err, rc, "dry run: %s",
				  rc == -ENOMEM ? "out of memory"
						: "invalid registry settings");
	}
	hr_regcore_grace_setup(&r->core, common.register_when,
			       common.deregister_after_ms);
	hr_reg_conf_dispose(&common);
	r->core.dry_run = true;
	r->core.stats->dry_run = true;
	hr_log(HR_LOG_WARN, "registry_dry_run", "registry",
	       r->core.stats->name ? r->core.stats->name : "registry",
	       "reason", "dry_run: decisions are journaled, nothing is sent",
	       NULL);
	*out = r;
	return 0;
}

static void dry_apply(struct hr_registry *r, enum hr_status status,
		      const char *output)
{
	(void)output;
	if (hr_regcore_shutting_down(&r->core))
		return;
	/* Nothing written yet: leave at once, as the backends do. */
	hr_regcore_status(&r->core, status,
			  r->core.stats->state != HR_REGISTRY_REGISTERED);
	dry_kick(&r->core);
}

static void dry_maintenance(struct hr_registry *r, bool enable,
			    const char *reason)
{
	(void)reason; /* the agent journals maintenance itself */
	if (hr_regcore_shutting_down(&r->core))
		return;
	r->maint = enable;
	dry_kick(&r->core);
}

static void dry_shutdown(struct hr_registry *r, hr_registry_done_cb done,
			 void *payload)
{
	if (hr_regcore_shutdown(&r->core, done, payload, 0) < 0)
		return;
	dry_kick(&r->core);
}

void hr_regcore_dry_ops(struct hr_registry_ops *out,
			const struct hr_registry_ops *real)
{
	memset(out, 0, sizeof(*out));
	out->abi = HR_REGISTRY_ABI;
	out->name = real->name;
	out->validate = real->validate;
	out->preflight = real->preflight;
	out->validate_service = real->validate_service;
	out->create = dry_create;
	out->apply = dry_apply;
	out->maintenance = real->maintenance ? dry_maintenance : NULL;
	out->shutdown = dry_shutdown;
	out->destroy = dry_destroy;
}
