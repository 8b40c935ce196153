"""The sandbox student code runs in during autograding: bubblewrap, no Docker.

``command(argv, ...)`` wraps a command line in ``bwrap`` (Debian's ``bubblewrap``) so that it sees:

- read-only: ``/usr``, the Python installation, the virtual environment and the ``seqmem``
  package, each at its own path, and nothing else of the machine: no home folders, no course
  folder, so no gradebook, no ``solutions/``, no other submission;
- read-only at ``/submission``: the files handed in beside the notebook (a copy);
- writable: ``/home/student`` (its home and working folder) and ``/tmp``, both fresh tmpfs
  that vanish with the sandbox, the first of ``Limits.scratch`` bytes;
- its own namespaces for processes (it sees only its own), network (no interface but a loopback
  of its own: no other machine and no server of this one), IPC and host name.

It runs as an unprivileged uid with no capabilities and ``no_new_privs`` (as root, bwrap sets the
mounts up and ``setpriv`` drops to a uid of the grading process's own, ``host_uid()``; otherwise
bwrap maps the instructor's uid to 65534 in a user namespace), in a user namespace that cannot make
another (``--disable-userns``; as root, a second, unprivileged bwrap adds it where the kernel allows
unprivileged user namespaces), under
rlimits on address space, CPU time, processes, file size and open files (``Limits``). The caller
adds the wall-clock limits and kills the whole sandbox (bwrap's process group) when they pass.

``check()`` refuses with ``SandboxUnavailable`` where bubblewrap is missing or cannot create its
namespaces, and where a folder the sandbox would see holds the gradebook or the course.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import seqmem

UID = 65534  # nobody: the uid student code sees inside a user namespace


def host_uid() -> int:
    """The uid a sandbox runs as when bwrap runs as root: one of its own per grading process, with no
    account on the machine, so that the process limit of one sandbox never counts another's."""
    return 100_000 + os.getpid() % 60_000

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make test` does it "
                "as root) on a kernel that allows user namespaces, or opt out explicitly with "
                "`c.SandboxedExecute.unsandboxed = True` in nbgrader_config.py (student code then "
                "runs with your permissions: never do that for a real class)")


class SandboxUnavailable(RuntimeError):
    """Autograding refuses to run: the sandbox cannot be built here."""


@dataclass
class Limits:
    """What one sandbox may use (per process where rlimits are per process)."""

    memory: int = 4 << 30  # bytes of address space
    cpu_seconds: int = 600  # CPU time of one process
    processes: int = 256  # processes and threads of the sandbox's uid
    file_size: int = 64 << 20  # the largest file it may write
    scratch: int = 256 << 20  # bytes of its home folder (a tmpfs)
    open_files: int = 256

    def rlimits(self) -> dict:
        """The limits the worker sets on itself before any student code runs (not on bwrap: a
        process limit there would count every process of the instructor's uid)."""
        return {"memory": self.memory, "cpu_seconds": self.cpu_seconds, "processes": self.processes,
                "file_size": self.file_size, "open_files": self.open_files}


def visible_paths() -> list[str]:
    """The folders the sandbox sees read-only: the Python installation, the virtual environment
    and the folder that holds ``seqmem`` (an editable install's source), outermost first."""
    candidates = [sys.base_prefix, sys.prefix, str(Path(seqmem.__file__).resolve().parent)]
    paths: list[str] = []
    for path in sorted({os.path.realpath(p) for p in candidates}, key=len):
        if not any(path == p or path.startswith(p + os.sep) for p in paths):
            paths.append(path)
    return paths


def _parents(path: str) -> list[str]:
    """The folders above ``path`` (not /), outermost first: made world-readable in the sandbox."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def _mounts(submission: str | None, limits: Limits) -> list[str]:
    # the tmpfs first: a Python environment that lives under /tmp is bound on top of it, not hidden
    args = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(64 << 20), "--tmpfs", "/tmp",
            "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            args += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    made = {"/usr", "/tmp"}
    for path in visible_paths():
        for parent in _parents(path):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", path, path]
    args += ["--perms", "0777", "--size", str(limits.scratch), "--tmpfs", "/home/student"]
    if submission is not None:
        args += ["--ro-bind", submission, "/submission"]
    return args


def command(argv: list[str], env: dict[str, str], submission: str | None = None,
            limits: Limits | None = None) -> list[str]:
    """``argv`` wrapped in bwrap as the module's docstring describes; ``env`` is its whole
    environment."""
    limits = limits or Limits()
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
    namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:  # no user namespace: drop to the uid with setpriv once the mounts are made
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxUnavailable(f"setpriv (util-linux) is needed to drop root's privileges: {INSTALL_HINT}")
        uid = host_uid()
        drop = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all"]
        if nested_user_namespace():  # and, unprivileged now, one user namespace that can make no other
            drop += [bwrap, "--unshare-user", "--uid", str(uid), "--gid", str(uid), "--disable-userns",
                     "--bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--"]
    else:
        namespaces += ["--unshare-user", "--uid", str(UID), "--gid", str(UID), "--disable-userns"]
        drop = []
    environment = ["--clearenv"] + [a for k, v in env.items() for a in ("--setenv", k, v)]
    return [bwrap, *namespaces, "--die-with-parent", "--new-session", *_mounts(submission, limits),
            "--chdir", "/home/student", *environment, "--", *drop, *argv]


_NESTED: list = []


def nested_user_namespace() -> bool:
    """Whether an unprivileged bwrap can make a user namespace here (so that, run by root, the
    sandbox can forbid student code to make its own, which would open more of the kernel to it)."""
    if not _NESTED:
        bwrap = shutil.which("bwrap")
        probe = [bwrap, "--unshare-user", "--disable-userns", "--bind", "/", "/", "--", "/bin/true"]
        try:
            result = subprocess.run(probe, capture_output=True, timeout=30,
                                    user=host_uid() if os.geteuid() == 0 else None)
            _NESTED.append(result.returncode == 0)
        except (OSError, subprocess.TimeoutExpired):
            _NESTED.append(False)
    return _NESTED[0]


def check(*private: str | os.PathLike) -> None:
    """Raise ``SandboxUnavailable`` unless a sandbox starts here and none of the folders it sees
    holds one of ``private`` (the gradebook, the course folder)."""
    for secret in private:
        secret = os.path.realpath(secret)
        for path in ["/usr", *visible_paths()]:
            if secret == path or secret.startswith(path + os.sep):
                raise SandboxUnavailable(f"the sandbox would see {path}, which holds {secret}: keep the "
                                         "course and its gradebook outside the Python environment")
    argv = command(["/bin/true"], {"PATH": "/usr/bin"})
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailable(f"bubblewrap could not start ({err}): {INSTALL_HINT}") from None
    if result.returncode != 0:
        raise SandboxUnavailable(f"bubblewrap could not build the sandbox ({result.stderr.strip()[:300]}): "
                                 f"{INSTALL_HINT}")
