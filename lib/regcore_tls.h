/*
 * regcore_tls.h - the TLS part of the registry layer, shared between
 * lib/regcore.c (which applies it to every request) and lib/regcore_tls.c
 * (which checks and loads it). Never installed; the API is in
 * healthreg/regcore.h.
 */
#ifndef HR_REGCORE_TLS_H
#define HR_REGCORE_TLS_H

#include <curl/curl.h>

#include "healthreg/regcore.h"

/* Set t's options on the easy handle e (a fresh or reset handle): the CA
 * (file, or the ca_path blob, and no default CA path then), the client
 * certificate and key, and verification off only with skip_verify. */
void hr__reg_tls_apply(const struct hr_reg_tls *t, CURL *e);
/* Free t's copies; *t is zeroed. */
void hr__reg_tls_dispose(struct hr_reg_tls *t);

/* For lib/regcore_dry.c: read only the common keys of a registry config
 * object (the backend's validate() checked it all) into *common. 0 or
 * -EINVAL. */
int hr__reg_conf_common(const cJSON *conf, struct hr_reg_conf *common);

#endif
