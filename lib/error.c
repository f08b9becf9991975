/*
 * error.c - struct hr_err and the config diagnostics list.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/error.h"

int hr_err_set(struct hr_err *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

void hr_diag_init(struct hr_diag *d)
{
	memset(d, 0, sizeof(*d));
}

void hr_diag_dispose(struct hr_diag *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		free(d->v[i].text);
	free(d->v);
	hr_diag_init(d);
}

void hr_diag_add(struct hr_diag *d, enum hr_diag_level level,
		 const char *path, const char *fmt, ...)
{
	char msg[1024];
	char *text = NULL;
	va_list ap;
	int n;

	if (level == HR_DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path && *path)
		n = asprintf(&text, "%s: %s", path, msg);
	else
		n = asprintf(&text, "%s", msg);
	if (n < 0)
		return;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct hr_diag_entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v) {
			free(text);
			return;
		}
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n].level = level;
	d->v[d->n].text = text;
	d->n++;
}
