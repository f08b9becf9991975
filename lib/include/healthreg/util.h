/*
 * util.h - small primitives that lib/ and the plugins share, each written
 * once: container_of, an intrusive list, the jitter PRNG, a capture that
 * keeps the first N bytes of a stream, secret files and the UTF-8 cleaner.
 *
 * Lifetimes: a struct hr_capture owns its data until hr_capture_take()
 * hands it over or hr_capture_dispose() frees it. A secret string from
 * hr_secret_read() is the caller's and goes back through hr_secret_free(),
 * which wipes it first. Nothing here keeps a pointer it was given.
 */
#ifndef HEALTHREG_UTIL_H
#define HEALTHREG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "healthreg/error.h"

#define hr_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define HR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- intrusive doubly linked list ------------------------------------- */

/* Embed one in each element; the list is a head pointer, NULL when empty. */
struct hr_link {
	struct hr_link *prev, *next;
};

/* Put l first in the list at *head. */
void hr_link_push(struct hr_link **head, struct hr_link *l);
/* Take l out of the list at *head; l's own pointers are cleared. */
void hr_link_unlink(struct hr_link **head, struct hr_link *l);

/* ---- jitter PRNG (xorshift64*), never for secrets --------------------- */

struct hr_rng {
	uint64_t s;
};

/* seed 0: from the clock and the pid. */
void hr_rng_seed(struct hr_rng *r, uint64_t seed);
uint32_t hr_rng_u32(struct hr_rng *r);
/* Uniform in [0, 1). */
double hr_rng_unit(struct hr_rng *r);

/* ---- capture: keep the first max bytes of a stream, count them all ---- */

struct hr_capture {
	char *data;   /* NULL until the first byte; NUL-terminated */
	size_t len;   /* bytes kept (<= max) */
	size_t total; /* bytes seen */
	size_t max;
	size_t cap;   /* allocated, without the NUL */
	bool oom;     /* an allocation failed: what is kept is a prefix */
};

void hr_capture_init(struct hr_capture *c, size_t max);
/* Counts n bytes and keeps what fits under max. Never fails: on an
 * allocation failure the bytes are counted, dropped and oom is set. */
void hr_capture_add(struct hr_capture *c, const void *p, size_t n);
/* Kept bytes ("" when none); valid until the next add, take or dispose. */
const char *hr_capture_str(const struct hr_capture *c);
/* Hand the kept bytes over (malloc'ed, NUL-terminated, NULL when none);
 * the capture is empty afterwards and may be reused. */
char *hr_capture_take(struct hr_capture *c);
/* Forget what was kept and counted; keeps max. */
void hr_capture_reset(struct hr_capture *c);
void hr_capture_dispose(struct hr_capture *c);

/* A libcurl CURLOPT_WRITEFUNCTION / HEADERFUNCTION over a capture passed
 * as userdata: keeps the head, reads and discards the rest. */
size_t hr_capture_curl_cb(char *ptr, size_t size, size_t nmemb, void *userp);

/* ---- secrets ----------------------------------------------------------- */

/* explicit_bzero: a wipe the compiler cannot drop. NULL-safe. */
void hr_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it. NULL-safe. */
void hr_secret_free(char *s);

/* Set to "1" in the environment: secret files group or others may access
 * are read anyway (the one override of the rule below). */
#define HR_SECRET_INSECURE_ENV "HR_ALLOW_INSECURE_SECRETS"

/*
 * Read a secret file: the first line, with surrounding blanks and the line
 * end removed. Errors (with -errno or -EINVAL) name `field` and the path:
 * unreadable, larger than max bytes, empty, or holding a NUL byte. A file
 * with any group or other permission bit (mode & 077) is refused with
 * -EPERM, as ssh refuses a private key, unless HR_SECRET_INSECURE_ENV is
 * "1". Every intermediate buffer is wiped. *mode_out (may be NULL) gets
 * st_mode.
 */
int hr_secret_read(const char *path, const char *field, size_t max,
		   char **out, unsigned *mode_out, struct hr_err *err);

/* ---- UTF-8 ------------------------------------------------------------ */

/* U+FFFD REPLACEMENT CHARACTER, what every invalid byte becomes. */
#define HR_UTF8_REPLACEMENT "\xEF\xBF\xBD"

/*
 * Length of the well-formed UTF-8 sequence at s (n >= 1 bytes left), 0 when
 * s[0] does not start one (stray continuation, overlong form, surrogate,
 * above U+10FFFF, cut short). The one decoder every JSON writer uses.
 */
size_t hr_utf8_len(const unsigned char *s, size_t n);
/* A malloc'ed copy of s (NULL: "") with every byte that does not start a
 * well-formed sequence replaced by U+FFFD. NULL on ENOMEM. */
char *hr_utf8_clean(const char *s);

/* Wall-clock seconds (gettimeofday). */
double hr_wall_now(void);

#endif
