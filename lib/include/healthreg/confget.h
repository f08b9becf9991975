/*
 * confget.h - typed getters for config values, shared by the core config
 * (lib/config.c) and every registry backend's validator, so that each
 * section reports its errors alike: "<json.path>: <what is wrong>".
 *
 * Each getter takes the value (not its parent), the value's full JSON path
 * for messages, and the diag list that collects errors. It returns 0 and
 * sets *out, or -EINVAL (an error was added to d; *out untouched) or
 * -ENOMEM. Getters that produce strings replace *out, freeing what it held.
 * Pure: no I/O, no globals.
 */
#ifndef HEALTHREG_CONFGET_H
#define HEALTHREG_CONFGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "healthreg/error.h"

#define HR_CONF_PATH_MAX 256
/* Limits: one string (a value or a key, in bytes once decoded) and a
 * whole config file. */
#define HR_CONF_STRING_MAX 65536
#define HR_CONF_FILE_MAX (16u << 20)

/* Consul's key matching: "TLS_Skip_Verify" -> "tlsskipverify". */
void hr_conf_key_norm(const char *in, char *out, size_t len);
/* key, normalised, equals `normalized` (already lower case, no _ or -). */
bool hr_conf_key_is(const char *key, const char *normalized);
/* "<path>.<key>" into out (HR_CONF_PATH_MAX bytes); returns out. */
char *hr_conf_path(char *out, const char *path, const char *key);
/* A value shortened for messages (at most 60 characters). */
void hr_conf_show(const cJSON *v, char *buf, size_t len);

/* The length of the longest prefix of s[0..n) that is valid UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF);
 * n when all of it is. */
size_t hr_conf_utf8_prefix(const char *s, size_t n);
/* How many bytes of s to show in a message ("%.*s"): at most max, cut
 * on a character boundary. */
int hr_conf_shown_len(const char *s, size_t max);
/* s is text a config may hold: valid UTF-8, at most HR_CONF_STRING_MAX
 * bytes. 0, or -EINVAL with an error at path in d. */
int hr_conf_text(const char *s, const char *path, struct hr_diag *d);

/* A string that passes hr_conf_text(). */
int hr_conf_string(const cJSON *v, const char *path, struct hr_diag *d,
		   char **out);
/* As hr_conf_string, and "" is an error ("must not be empty"). */
int hr_conf_nonempty_string(const cJSON *v, const char *path,
			    struct hr_diag *d, char **out);
int hr_conf_bool(const cJSON *v, const char *path, struct hr_diag *d,
		 bool *out);
/* An integral JSON number in [min, max]; any double, however large, is
 * range-checked before it is converted. */
int hr_conf_int(const cJSON *v, const char *path, int min, int max,
		struct hr_diag *d, int *out);
/* A Go duration string ("250ms", "1m30s") in milliseconds. */
int hr_conf_duration(const cJSON *v, const char *path, struct hr_diag *d,
		     int64_t *out);
/* A NULL-terminated array of strings (*n_out may be NULL); what *out
 * held is freed. On -EINVAL *out is still set to what was read, for the
 * caller to free. */
int hr_conf_string_array(const cJSON *v, const char *path, bool allow_empty,
			 struct hr_diag *d, char ***out, size_t *n_out);
/* A non-empty array of "passing", "warning", "critical" as a bit mask
 * (1u << enum hr_status): register_when and the like. */
int hr_conf_statuses(const cJSON *v, const char *path, struct hr_diag *d,
		     unsigned *mask);

/* Free a NULL-terminated string array. NULL-safe. */
void hr_conf_strv_free(char **v);

#endif
