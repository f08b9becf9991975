"""gobuild - build the Go test programs of tests/go offline (stdlib only).

    bins = gobuild.build()   # {"resolverclient": path, "healthserver": path}

GOPATH mode (GO111MODULE=off) against Debian's packaged sources only:
GOPATH=<out>/gopath:/usr/share/gocode, GOPROXY=off, GOCACHE in <out>.
<out> is $HR_BUILD_DIR/go (the ctest build directory), else a temp dir;
a binary is rebuilt only when its source changed (a sha256 stamp), so the
compile (~45 s cold on 2 cores) is paid once per build directory.

What is missing (go, golang-etcd-server-dev, golang-google-grpc-dev)
raises Missing; the caller skips loudly, or fails when CI=true (like
scripts/fuzz.sh). As a program: exit 0 built, 77 skipped, 1 failed."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

GOCODE = "/usr/share/gocode/src"
NEEDS = {
    "golang-etcd-server-dev": "go.etcd.io/etcd/clientv3/naming/resolver",
    "golang-google-grpc-dev": "google.golang.org/grpc/health/grpc_health_v1",
}
PROGRAMS = ("resolverclient", "healthserver")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "go"))


class Missing(Exception):
    """A package the Go programs need is not installed."""


def in_ci():
    return os.environ.get("CI") == "true"


def missing():
    """The reason the programs cannot be built here, or None."""
    if not shutil.which("go"):
        return "go is not installed (golang-go)"
    for pkg, path in NEEDS.items():
        if not os.path.isdir(os.path.join(GOCODE, path)):
            return "%s is not installed (no %s)" % (pkg, path)
    return None


def _digest(srcdir):
    h = hashlib.sha256()
    for name in sorted(os.listdir(srcdir)):
        if name.endswith(".go"):
            with open(os.path.join(srcdir, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()


def out_dir():
    base = os.environ.get("HR_BUILD_DIR")
    if base:
        d = os.path.join(base, "go")
        os.makedirs(d, exist_ok=True)
        return d
    return tempfile.mkdtemp(prefix="hr-go-")


def build(timeout=600):
    """Build (or reuse) every program; returns {name: binary path}."""
    why = missing()
    if why:
        raise Missing(why)
    out = out_dir()
    env = dict(os.environ)
    env.update({"GO111MODULE": "off", "GOPROXY": "off", "GOFLAGS": "",
                "GOPATH": os.path.join(out, "gopath") + ":/usr/share/gocode",
                "GOCACHE": os.path.join(out, "cache")})
    bins = {}
    for name in PROGRAMS:
        src = os.path.join(SOURCE, name)
        binary = os.path.join(out, name)
        stamp = binary + ".sha256"
        digest = _digest(src)
        try:
            with open(stamp) as f:
                fresh = f.read() == digest and os.access(binary, os.X_OK)
        except OSError:
            fresh = False
        if not fresh:
            p = subprocess.run(["go", "build", "-o", binary, "."], cwd=src,
                               env=env, capture_output=True, text=True,
                               timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError("go build %s failed:\n%s%s"
                                   % (name, p.stdout, p.stderr))
            with open(stamp, "w") as f:
                f.write(digest)
        bins[name] = binary
    return bins


def main():
    try:
        bins = build()
    except Missing as e:
        if in_ci():
            print("gobuild: in CI the Go programs must build "
                  "(scripts/deps.sh installs them): %s" % e, file=sys.stderr)
            return 1
        print("gobuild: SKIPPED, %s" % e, file=sys.stderr)
        return 77
    for name, path in sorted(bins.items()):
        print("%s %s" % (name, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
