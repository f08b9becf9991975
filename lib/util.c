/*
 * util.c - the primitives of healthreg/util.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "healthreg/util.h"

/* ---- list -------------------------------------------------------------- */

void hr_link_push(struct hr_link **head, struct hr_link *l)
{
	l->prev = NULL;
	l->next = *head;
	if (*head)
		(*head)->prev = l;
	*head = l;
}

void hr_link_unlink(struct hr_link **head, struct hr_link *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else if (*head == l)
		*head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

/* ---- PRNG -------------------------------------------------------------- */

void hr_rng_seed(struct hr_rng *r, uint64_t seed)
{
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000000007u) ^
		       (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	}
	/* splitmix64 step: any seed, including small ones, gives a good and
	 * non-zero state. */
	seed += UINT64_C(0x9e3779b97f4a7c15);
	seed = (seed ^ (seed >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	seed = (seed ^ (seed >> 27)) * UINT64_C(0x94d049bb133111eb);
	seed ^= seed >> 31;
	r->s = seed ? seed : UINT64_C(0x9e3779b97f4a7c15);
}

static uint64_t rng_next(struct hr_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * UINT64_C(2685821657736338717);
}

uint32_t hr_rng_u32(struct hr_rng *r)
{
	return (uint32_t)(rng_next(r) >> 32);
}

double hr_rng_unit(struct hr_rng *r)
{
	return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}

/* ---- capture ----------------------------------------------------------- */

void hr_capture_init(struct hr_capture *c, size_t max)
{
	memset(c, 0, sizeof(*c));
	c->max = max;
}

void hr_capture_add(struct hr_capture *c, const void *p, size_t n)
{
	size_t take = n;

	c->total += n;
	if (c->len >= c->max || !n)
		return;
	if (take > c->max - c->len)
		take = c->max - c->len;
	if (c->len + take > c->cap) {
		size_t want = c->cap ? c->cap * 2 : 256;
		char *np;

		if (want < c->len + take)
			want = c->len + take;
		if (want > c->max)
			want = c->max;
		np = realloc(c->data, want + 1);
		if (!np) {
			c->oom = true;
			return;
		}
		c->data = np;
		c->cap = want;
	}
	memcpy(c->data + c->len, p, take);
	c->len += take;
	c->data[c->len] = '\0';
}

const char *hr_capture_str(const struct hr_capture *c)
{
	return c->data ? c->data : "";
}

char *hr_capture_take(struct hr_capture *c)
{
	char *d = c->data;

	c->data = NULL;
	c->len = c->total = c->cap = 0;
	c->oom = false;
	return d;
}

void hr_capture_reset(struct hr_capture *c)
{
	free(hr_capture_take(c));
}

void hr_capture_dispose(struct hr_capture *c)
{
	hr_capture_reset(c);
}

size_t hr_capture_curl_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	size_t n = size * nmemb;

	hr_capture_add(userp, ptr, n);
	return n;
}

/* ---- secrets ----------------------------------------------------------- */

void hr_wipe(void *p, size_t n)
{
	if (p && n)
		explicit_bzero(p, n);
}

void hr_secret_free(char *s)
{
	if (!s)
		return;
	hr_wipe(s, strlen(s));
	free(s);
}

static bool insecure_ok(void)
{
	const char *v = getenv(HR_SECRET_INSECURE_ENV);

	return v && !strcmp(v, "1");
}

int hr_secret_read(const char *path, const char *field, size_t max,
		   char **out, unsigned *mode_out, struct hr_err *err)
{
	struct stat st;
	char *buf;
	size_t n = 0, start, end;
	ssize_t got;
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return hr_err_set(err, -errno, "%s: %s: %s", field, path,
				  strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = hr_err_set(err, -errno, "%s: %s: %s", field, path,
				strerror(errno));
		close(fd);
		return rc;
	}
	if (mode_out)
		*mode_out = (unsigned)st.st_mode;
	/* Like ssh with a private key: a secret others may read (or write)
	 * is refused unless the operator says otherwise. */
	if ((st.st_mode & 077) && !insecure_ok()) {
		close(fd);
		return hr_err_set(err, -EPERM, "%s: %s: permissions %04o are "
				  "too open (group or others have access); "
				  "chmod 600 it, or set "
				  HR_SECRET_INSECURE_ENV "=1", field, path,
				  (unsigned)(st.st_mode & 07777));
	}
	buf = malloc(max + 2);
	if (!buf) {
		close(fd);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	while (n <= max) {
		got = read(fd, buf + n, max + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = hr_err_set(err, -errno, "%s: %s: %s", field, path,
					strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > max) {
		rc = hr_err_set(err, -EINVAL, "%s: %s: larger than %zu bytes",
				field, path, max);
		goto out;
	}
	buf[n] = '\0';
	if (memchr(buf, '\0', n)) {
		rc = hr_err_set(err, -EINVAL, "%s: %s: holds a NUL byte",
				field, path);
		goto out;
	}
	end = strcspn(buf, "\r\n");
	start = strspn(buf, " \t");
	while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
		end--;
	if (end <= start) {
		rc = hr_err_set(err, -EINVAL, "%s: %s: empty", field, path);
		goto out;
	}
	*out = strndup(buf + start, end - start);
	if (!*out)
		rc = hr_err_set(err, -ENOMEM, "out of memory");
out:
	hr_wipe(buf, max + 2);
	free(buf);
	close(fd);
	return rc;
}

double hr_wall_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ---- UTF-8 ------------------------------------------------------------- */

size_t hr_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		len = 2;
		cp = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
		cp = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return len;
}

char *hr_utf8_clean(const char *s)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u), pos = 0;
	char *out;

	/* Each invalid byte grows to 3: at most 3n + 1. */
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	while (n) {
		size_t l = hr_utf8_len(u, n);

		if (l) {
			memcpy(out + pos, u, l);
			pos += l;
		} else {
			memcpy(out + pos, HR_UTF8_REPLACEMENT, 3);
			pos += 3;
			l = 1;
		}
		u += l;
		n -= l;
	}
	out[pos] = '\0';
	return out;
}
