/*
 * regcore_tls.c - TLS for every registry backend, written once: the check
 * of the files a config names (for `healthreg validate` and create()), the
 * CA certificates of a ca_path directory read into memory, the loud
 * warning when verification is off, the options set on each request, and
 * the classification of a failed transfer as a TLS failure. See
 * healthreg/regcore.h for the contracts.
 *
 * Verification is libcurl's default (peer and host name) unless a config
 * sets tls_skip_verify. A configured CA replaces the default trust store,
 * the system's CA path included, so "trust this CA" means only this CA.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "healthreg/confget.h"
#include "healthreg/log.h"
#include "healthreg/regcore.h"
#include "internal.h"
#include "regcore_tls.h"

#define PEM_FILE_MAX (1024 * 1024)       /* bytes read of one file */
#define CA_DIR_MAX_BYTES (16 * 1024 * 1024)
#define CA_DIR_MAX_FILES 4096

/* ---- reading a file's head ---------------------------------------------- */

/*
 * Read at most max bytes of a regular file into *out (NUL-terminated,
 * malloc'd; the caller wipes and frees it). Returns 0 or a negative errno
 * with why filled ("No such file or directory", "is not a regular file").
 * Never blocks on a FIFO or a device.
 */
static int read_head(const char *file, size_t max, char **out, size_t *len,
		     char *why, size_t whylen)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	ssize_t got;
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		snprintf(why, whylen, "is not a regular file");
		goto out;
	}
	buf = malloc(max + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	while (n < max) {
		got = read(fd, buf + n, max - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			snprintf(why, whylen, "%s", strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	if (buf) {
		hr_wipe(buf, max + 1);
		free(buf);
	}
	close(fd);
	return rc;
}

static void wipe_free(char *p, size_t n)
{
	if (p) {
		hr_wipe(p, n);
		free(p);
	}
}

static bool has_cert(const char *text)
{
	return strstr(text, "-----BEGIN CERTIFICATE-----") ||
	       strstr(text, "-----BEGIN TRUSTED CERTIFICATE-----");
}

static bool has_key(const char *text)
{
	const char *b = strstr(text, "-----BEGIN ");

	return b && strstr(b, "PRIVATE KEY-----");
}

static bool key_encrypted(const char *text)
{
	return strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
	       strstr(text, "Proc-Type: 4,ENCRYPTED");
}

enum pem_want { WANT_CERT, WANT_KEY, WANT_CERT_AND_KEY };

/* One file's check; 0 or -EINVAL with why filled. */
static int check_pem(const char *file, enum pem_want want, char *why,
		     size_t whylen)
{
	char *text = NULL;
	size_t len;
	int rc = read_head(file, PEM_FILE_MAX, &text, &len, why, whylen);

	if (rc < 0)
		return rc;
	rc = -EINVAL;
	if (want != WANT_KEY && !has_cert(text))
		snprintf(why, whylen, "holds no PEM certificate "
			 "(-----BEGIN CERTIFICATE-----)");
	else if (want == WANT_CERT_AND_KEY && !has_key(text))
		snprintf(why, whylen, "holds no PEM private key and key_file "
			 "is not set");
	else if (want == WANT_KEY && !has_key(text))
		snprintf(why, whylen, "holds no PEM private key "
			 "(-----BEGIN PRIVATE KEY-----)");
	else if (want != WANT_CERT && key_encrypted(text))
		snprintf(why, whylen, "the private key is encrypted "
			 "(healthreg takes no key password)");
	else
		rc = 0;
	wipe_free(text, len);
	return rc;
}

/* ---- ca_path ------------------------------------------------------------ */

static int dir_entry_file(const char *dir, const char *name, char *buf,
			  size_t len)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * Every regular file in dir (symbolic links followed, subdirectories and
 * "." entries skipped) must hold a PEM certificate; their texts go into
 * *out (NULL: only check). At least one. 0, or -errno with why (naming
 * the file when one is at fault).
 */
static int load_ca_dir(const char *dir, struct hr_capture *out, char *why,
		       size_t whylen)
{
	char file[4096], what[200];
	struct dirent *de;
	size_t files = 0, total = 0;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return rc;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *text = NULL;
		size_t len;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (dir_entry_file(dir, de->d_name, file, sizeof(file)) < 0 ||
		    stat(file, &st) < 0 || S_ISDIR(st.st_mode))
			continue;
		if (++files > CA_DIR_MAX_FILES) {
			snprintf(why, whylen, "holds more than %d files",
				 CA_DIR_MAX_FILES);
			rc = -E2BIG;
			break;
		}
		rc = read_head(file, PEM_FILE_MAX, &text, &len, what,
			       sizeof(what));
		if (!rc && !has_cert(text)) {
			snprintf(what, sizeof(what),
				 "holds no PEM certificate");
			rc = -EINVAL;
		}
		if (!rc && (total += len) > CA_DIR_MAX_BYTES) {
			snprintf(what, sizeof(what), "the directory holds more "
				 "than %d bytes", CA_DIR_MAX_BYTES);
			rc = -E2BIG;
		}
		if (!rc && out) {
			hr_capture_add(out, text, len);
			hr_capture_add(out, "\n", 1);
			if (out->oom) {
				snprintf(what, sizeof(what), "out of memory");
				rc = -ENOMEM;
			}
		}
		free(text);
		if (rc < 0) {
			snprintf(why, whylen, "%.200s: %s", de->d_name, what);
			break;
		}
	}
	closedir(d);
	if (!rc && !files) {
		snprintf(why, whylen, "holds no certificate file");
		rc = -ENOENT;
	}
	return rc;
}

/* ---- checks -------------------------------------------------------------- */

static const char *name_of(const char *given, const char *path,
			   const char *key, char *buf)
{
	return given ? given : hr_conf_path(buf, path, key);
}

/* The checks of hr_reg_tls_check_files(); ca_path's certificates also
 * into ca when it is not NULL (one read of the directory). */
static int check_files(const struct hr_reg_conf *c, const char *path,
		       const struct hr_reg_tls_names *names,
		       struct hr_diag *d, struct hr_capture *ca)
{
	static const struct hr_reg_tls_names none;
	const struct hr_reg_tls_names *n = names ? names : &none;
	char p[HR_CONF_PATH_MAX], why[320];
	int rc = 0;

	if (c->ca_file && check_pem(c->ca_file, WANT_CERT, why,
				    sizeof(why)) < 0) {
		hr_diag_add(d, HR_DIAG_ERROR,
			    name_of(n->ca_file, path, "ca_file", p), "%s: %s",
			    c->ca_file, why);
		rc = -EINVAL;
	}
	if (c->ca_path && !c->ca_file &&
	    load_ca_dir(c->ca_path, ca, why, sizeof(why)) < 0) {
		hr_diag_add(d, HR_DIAG_ERROR,
			    name_of(n->ca_path, path, "ca_path", p), "%s: %s",
			    c->ca_path, why);
		rc = -EINVAL;
	}
	if (c->cert_file &&
	    check_pem(c->cert_file, c->key_file ? WANT_CERT : WANT_CERT_AND_KEY,
		      why, sizeof(why)) < 0) {
		hr_diag_add(d, HR_DIAG_ERROR,
			    name_of(n->cert_file, path, "cert_file", p),
			    "%s: %s", c->cert_file, why);
		rc = -EINVAL;
	}
	if (c->key_file && check_pem(c->key_file, WANT_KEY, why,
				     sizeof(why)) < 0) {
		hr_diag_add(d, HR_DIAG_ERROR,
			    name_of(n->key_file, path, "key_file", p), "%s: %s",
			    c->key_file, why);
		rc = -EINVAL;
	}
	return rc;
}

int hr_reg_tls_check_files(const struct hr_reg_conf *c, const char *path,
			   const struct hr_reg_tls_names *names,
			   struct hr_diag *d)
{
	return check_files(c, path, names, d, NULL);
}

/* ---- the core's copy ---------------------------------------------------- */

void hr__reg_tls_dispose(struct hr_reg_tls *t)
{
	free(t->ca_file);
	free(t->cert_file);
	free(t->key_file);
	free(t->ca_blob);
	memset(t, 0, sizeof(*t));
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int hr_regcore_tls(struct hr_regcore *core, const struct hr_reg_conf *c,
		   const char *registry, const char *where,
		   const struct hr_reg_tls_names *names, struct hr_err *err)
{
	struct hr_reg_tls *t = &core->tls;
	struct hr_capture ca;
	struct hr_diag d;
	char path[64];
	int rc;

	hr__reg_tls_dispose(t);
	hr_diag_init(&d);
	/* the directory's texts and a newline each, within its limits */
	hr_capture_init(&ca, (size_t)CA_DIR_MAX_BYTES + CA_DIR_MAX_FILES);
	snprintf(path, sizeof(path), "registry.%s", registry);
	rc = check_files(c, path, names, &d, &ca);
	if (rc < 0) {
		hr_err_set(err, rc, "%s",
			   d.n && d.v[0].text ? d.v[0].text : "TLS files");
		hr_diag_dispose(&d);
		hr_capture_dispose(&ca);
		return rc;
	}
	hr_diag_dispose(&d);
	t->ca_blob_len = ca.len;
	t->ca_blob = hr_capture_take(&ca); /* NULL without ca_path */
	if (dup_opt(&t->ca_file, c->ca_file) < 0 ||
	    dup_opt(&t->cert_file, c->cert_file) < 0 ||
	    dup_opt(&t->key_file, c->key_file) < 0) {
		hr__reg_tls_dispose(t);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	t->skip_verify = c->tls_skip_verify;
	if (t->skip_verify)
		hr_log(HR_LOG_WARN, "registry_tls_unverified", "registry",
		       registry, "address", where, "detail",
		       "TLS certificate and host name verification is OFF "
		       "(tls_skip_verify): anyone on the network path can "
		       "impersonate the registry", NULL);
	return 0;
}

void hr__reg_tls_apply(const struct hr_reg_tls *t, CURL *e)
{
	if (t->ca_file || t->ca_blob) {
		/* Only the configured CA: not the system's directory too. */
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		if (t->ca_file) {
			curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
		} else {
			struct curl_blob blob = { t->ca_blob, t->ca_blob_len,
						  CURL_BLOB_COPY };

			curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
			curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
		}
	}
	if (t->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLCERT, t->cert_file);
	if (t->key_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, t->key_file);
	else if (t->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, t->cert_file);
	if (t->skip_verify) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

/* ---- failures ----------------------------------------------------------- */

bool hr_reg_tls_failed(CURLcode rc, const char *errbuf)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return true;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		/* A TLS 1.3 server checks the client certificate after the
		 * client's side of the handshake is done: its alert comes
		 * with the first read ("tlsv13 alert certificate required").
		 * An OpenSSL error names "SSL routines"; a connection reset
		 * under TLS ("OpenSSL SSL_read: Connection reset by peer") is
		 * an outage, not a TLS problem. */
		return errbuf && (strstr(errbuf, "SSL routines") ||
				  strstr(errbuf, " alert "));
	default:
		return false;
	}
}

const char *hr_reg_curl_reason(CURLcode rc, const char *errbuf, char *buf,
			       size_t len)
{
	const char *s = curl_easy_strerror(rc);
	/* curl's detail is one line, sometimes with its line break. */
	int n = errbuf ? (int)strcspn(errbuf, "\r\n") : 0;

	if (!n)
		snprintf(buf, len, "%s", s);
	else if (strstr(errbuf, s))
		snprintf(buf, len, "%.*s", n, errbuf);
	else
		snprintf(buf, len, "%.*s (%s)", n, errbuf, s);
	return buf;
}
