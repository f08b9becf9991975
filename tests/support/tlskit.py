"""tlskit - a private PKI for TLS tests, made with the openssl command line.

    pki = tlskit.Pki()               # a temp dir; pki.close() removes it
    pki.ca                           # CA certificate (PEM) the tests trust
    pki.server                       # (cert, key): SAN localhost, 127.0.0.1, ::1
                                     # (serverAuth and clientAuth, for etcd)
    pki.server_wrong_name            # (cert, key): SAN wrong.invalid only
    pki.server_expired               # (cert, key): valid 2020-01-01..2021-01-01
    pki.server_other_ca              # (cert, key) signed by another CA
    pki.other_ca                     # that other CA's certificate
    pki.client                       # (cert, key): clientAuth, CN healthreg
    pki.client_other_ca              # (cert, key) signed by the other CA
    pki.ca_dir()                     # a directory holding only the CA (ca_path)

Every file lives in one temp directory (mode 0700, keys 0600) that close()
removes; the module also removes it at exit. The expired certificate is
issued with `openssl ca -startdate/-enddate`, so no clock is touched.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import unittest

OPENSSL = os.environ.get("HR_OPENSSL_BIN", "openssl")

_live = set()


def _cleanup_all():
    for p in list(_live):
        p.close()


atexit.register(_cleanup_all)


def have_openssl():
    try:
        subprocess.run([OPENSSL, "version"], capture_output=True, check=True,
                       timeout=10)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


class Pki:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hr-pki-")
        _live.add(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        _live.discard(self)

    def path(self, name):
        return os.path.join(self.dir, name)

    # -- building ----------------------------------------------------------
    def _ssl(self, *args):
        r = subprocess.run([OPENSSL] + list(args), cwd=self.dir,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], r.stderr.strip()))
        return r.stdout

    def _key(self, name):
        key = self.path(name + ".key")
        self._ssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", key)
        os.chmod(key, 0o600)
        return key

    def _make_ca(self, name, cn):
        key = self._key(name)
        cert = self.path(name + ".pem")
        self._ssl("req", "-x509", "-new", "-key", key, "-out", cert,
                  "-days", "3650", "-subj", "/CN=" + cn,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        db = self.path(name + ".db")
        os.mkdir(db)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as f:
            f.write("1000\n")
        return cert, key

    def _issue(self, ca, name, cn, san, usage, start=None, end=None):
        """A certificate for name signed by ca ("ca" or "other"), through
        `openssl ca` (which takes explicit validity dates)."""
        key = self._key(name)
        csr = self.path(name + ".csr")
        self._ssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn)
        ca_cert, ca_key = (self.ca, self.ca_key) if ca == "ca" else \
            (self.other_ca, self.other_ca_key)
        db = self.path(ca + ".db")
        ext = ["[ext]", "basicConstraints=CA:FALSE",
               "keyUsage=critical,digitalSignature,keyEncipherment",
               "extendedKeyUsage=" + usage]
        if san:
            ext.append("subjectAltName=" + san)
        conf = self.path(name + ".cnf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "[ca]", "default_ca=c",
                "[c]", "dir=" + db, "database=$dir/index.txt",
                "serial=$dir/serial", "new_certs_dir=$dir",
                "certificate=" + ca_cert, "private_key=" + ca_key,
                "default_md=sha256", "policy=p", "unique_subject=no",
                "copy_extensions=none", "default_days=3650",
                "[p]", "commonName=supplied"] + ext) + "\n")
        cert = self.path(name + ".pem")
        args = ["ca", "-batch", "-config", conf, "-extensions", "ext",
                "-in", csr, "-out", cert, "-notext"]
        if start:
            args += ["-startdate", start]
        if end:
            args += ["-enddate", end]
        self._ssl(*args)
        return cert, key

    def _build(self):
        self.ca, self.ca_key = self._make_ca("ca", "healthreg test CA")
        self.other_ca, self.other_ca_key = self._make_ca("other",
                                                         "some other CA")
        good = "DNS:localhost,IP:127.0.0.1,IP:::1"
        # clientAuth too: etcd's gateway dials its own gRPC port with the
        # server certificate, which --client-cert-auth then checks.
        self.server = self._issue("ca", "server", "localhost", good,
                                  "serverAuth,clientAuth")
        self.server_wrong_name = self._issue("ca", "wrongname",
                                             "wrong.invalid",
                                             "DNS:wrong.invalid",
                                             "serverAuth")
        self.server_expired = self._issue("ca", "expired", "localhost", good,
                                          "serverAuth",
                                          start="20200101000000Z",
                                          end="20210101000000Z")
        self.server_other_ca = self._issue("other", "server-other",
                                           "localhost", good, "serverAuth")
        self.client = self._issue("ca", "client", "healthreg", None,
                                  "clientAuth")
        self.client_other_ca = self._issue("other", "client-other",
                                           "healthreg", None, "clientAuth")

    def ca_dir(self, name="cadir", certs=None):
        """A directory holding copies of certs (default: the CA), for
        ca_path / CONSUL_CAPATH."""
        d = self.path(name)
        os.makedirs(d, exist_ok=True)
        for i, c in enumerate(certs or [self.ca]):
            shutil.copy(c, os.path.join(d, "ca%d.pem" % i))
        return d

    def combined(self, cert_key, name):
        """cert and key in one file (cert_file without key_file)."""
        p = self.path(name)
        with open(p, "w") as out:
            for f in cert_key:
                with open(f) as src:
                    out.write(src.read())
        os.chmod(p, 0o600)
        return p


class PkiCase(unittest.TestCase):
    """A test class with one Pki for all its tests (cls.pki), skipped
    when openssl is missing."""

    @classmethod
    def setUpClass(cls):
        if not have_openssl():
            raise unittest.SkipTest("openssl not installed")
        cls.pki = Pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.close()
