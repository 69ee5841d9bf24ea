"""The git source of the daemon: fetch a remote with the `git` command and switch checkouts atomically.

Layout under `--git-dir`: `cache.git` (a bare repository that fetches from the remote), `checkouts/<sha>/`
(one tree per commit, exported with `git archive`, so no index or worktree is shared), and `current`, a
symlink to the checkout of the latest commit, flipped with `os.replace` so a reader sees the old tree or the
new one and never half of each. Old checkouts are pruned, keeping the previous one for a pass that may still
read it.
Every git call has a timeout, no terminal prompt and no pager. The revision is the commit sha.

Used by `reconciler.daemon.cli` (the poller below feeds the trigger coalescer; the webhook pokes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import structlog

from reconciler.daemon.logging import REDACTOR
from reconciler.daemon.redact import redact_url
from reconciler.daemon.triggers import Clock, Coalescer, Sleep, Trigger, TriggerKind
from reconciler.model.text import shown

__all__ = ["GitError", "GitSource", "check_ref", "check_url", "redact_url", "run_git_poller"]

log = structlog.get_logger("reconciler.daemon.git")

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Characters `git check-ref-format` refuses anywhere in a ref, besides control characters.
_REF_FORBIDDEN = frozenset(" ~^:?*[\\")
_SCHEMES = ("https", "ssh", "file")
# `[user@]host:path`, git's scp-like syntax; the host cannot start with `-` (ssh would read an option).
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~%+-]+@)?[A-Za-z0-9_][A-Za-z0-9._-]*:(?!:)")
# `<transport>::<address>` makes git run `git-remote-<transport>`; `ext::` runs any command.
_TRANSPORT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
# The variables the credential helper reads; `RECONCILER_*` is never readable by manifests.
ENV_USERNAME = "RECONCILER_GIT_USERNAME"
ENV_PASSWORD = "RECONCILER_GIT_PASSWORD"
ENV_PASSWORD_FILE = "RECONCILER_GIT_PASSWORD_FILE"
# A helper that prints the credential from its environment: the secret is in no file, no config and no argv.
_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'test -n "$RECONCILER_GIT_USERNAME" && printf "username=%s\\n" "$RECONCILER_GIT_USERNAME"; '
    'test -n "$RECONCILER_GIT_PASSWORD" && printf "password=%s\\n" "$RECONCILER_GIT_PASSWORD"; '
    "exit 0; }; f"
)


class GitError(Exception):
    """A git command failed; the message names the command and git's own words, never credentials."""


def _shown(value: str) -> str:
    """`value` quoted for a message: escaped, bounded, credentials masked."""
    return shown(redact_url(value))


def check_ref(ref: str) -> str:
    """`ref` when git would accept it as a ref name (the rules of `git check-ref-format --allow-onelevel`)
    and it cannot be read as an option; else a ValueError saying what is wrong and what to write."""
    problem: str | None = None
    if not ref:
        problem = "it is empty"
    elif ref.startswith("-"):
        problem = "it starts with '-' (git would read it as an option)"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref):
        problem = "it contains a control character"
    elif any(c in _REF_FORBIDDEN for c in ref):
        problem = "it contains one of space ~ ^ : ? * [ \\"
    elif ".." in ref or "@{" in ref or ref == "@":
        problem = "it contains '..' or '@{' or is '@'"
    elif ref.endswith((".", "/")) or "//" in ref or ref.startswith("/"):
        problem = "it starts or ends with '/', ends with '.' or contains '//'"
    elif any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/")):
        problem = "a component starts with '.' or ends with '.lock'"
    if problem is not None:
        raise ValueError(
            f"--git-ref {_shown(ref)}: not a git ref name: {problem}; "
            "give a branch, a tag, a full ref such as refs/heads/main, or a commit sha"
        )
    return ref


def check_url(url: str) -> str:
    """`url` when it is a remote git may fetch without running anything but its transport; else a ValueError.
    Allowed: https://, ssh://, file:// (and absolute paths), and scp-like `[user@]host:path`."""
    problem: str | None = None
    if not url:
        problem = "it is empty"
    elif url.startswith("-"):
        problem = "it starts with '-' (git would read it as an option)"
    elif _TRANSPORT_PREFIX.match(url):
        problem = "'<transport>::' addresses (such as ext::) run helper programs"
    elif any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        problem = "it contains whitespace or a control character"
    elif "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            problem = f"the scheme {scheme!r} is not one of {', '.join(_SCHEMES)}"
        elif scheme != "file" and not parts.hostname:
            problem = "it names no host"
        elif (parts.hostname or "").startswith("-") or (parts.username or "").startswith("-"):
            problem = "its host or user starts with '-' (ssh would read it as an option)"
    elif url.startswith("/"):
        pass  # a local path: the same as file://
    elif not _SCP_LIKE.match(url):
        problem = "it is not a https://, ssh:// or file:// URL, an absolute path, or user@host:path"
    if problem is not None:
        raise ValueError(f"--git-url {_shown(url)}: refused: {problem}")
    return url


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` without its userinfo, and the user name and password it carried (percent-decoded)."""
    if "://" not in url:
        return url, None, None
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return urlunsplit(parts._replace(netloc=host)), user, password


class GitSource:
    def __init__(
        self,
        url: str,
        workdir: Path,
        *,
        ref: str | None = None,
        timeout: float = 120.0,
        keep: int = 2,
        git: str = "git",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        check_url(url)
        if ref is not None:
            check_ref(ref)
        # The remote is stored (in the cache's config, in /status) without credentials; git gets them
        # from the credential helper below, which reads them from its environment.
        self.url, user, password = split_credentials(url)
        self.ref = ref
        self.workdir = workdir
        self.timeout = timeout
        self.keep = max(1, keep)
        self.git = git
        self.cache = workdir / "cache.git"
        self.checkouts = workdir / "checkouts"
        self.current = workdir / "current"
        base = dict(environ if environ is not None else os.environ)
        self._user = user if user is not None else base.get(ENV_USERNAME) or None
        self._password = password
        self._password_file = None if password is not None else base.get(ENV_PASSWORD_FILE) or None
        if password is None and base.get(ENV_PASSWORD):
            self._password = base[ENV_PASSWORD]
        for name in (ENV_USERNAME, ENV_PASSWORD, ENV_PASSWORD_FILE):
            base.pop(name, None)
        if self._password:
            REDACTOR.add([self._password, quote(self._password, safe="")])
        base.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_PAGER": "cat",
                "GIT_ASKPASS": base.get("GIT_ASKPASS", "/bin/false"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "LC_ALL": "C",
            }
        )
        if self._user or self._password or self._password_file:
            # Scoped to the remote's own scheme and host: a redirect elsewhere never receives it.
            scope = urlsplit(self.url)
            key = (
                f"credential.{scope.scheme}://{scope.netloc}.helper"
                if "://" in self.url
                else "credential.helper"
            )
            count = int(base.get("GIT_CONFIG_COUNT", "0") or "0")
            base[f"GIT_CONFIG_KEY_{count}"] = key
            base[f"GIT_CONFIG_VALUE_{count}"] = _HELPER
            base["GIT_CONFIG_COUNT"] = str(count + 1)
        stored = redact_url(self.url)
        if stored != self.url:
            # A token in the query (`?private_token=`) is part of the address: the cache's config gets the
            # masked URL and git rewrites it to the real one from this environment-only setting.
            count = int(base.get("GIT_CONFIG_COUNT", "0") or "0")
            base[f"GIT_CONFIG_KEY_{count}"] = f"url.{self.url}.insteadOf"
            base[f"GIT_CONFIG_VALUE_{count}"] = stored
            base["GIT_CONFIG_COUNT"] = str(count + 1)
            self.url = stored
        self.env = base
        self.last_error: str | None = None
        self.last_fetch_at: float | None = None
        # Not an error: something a reader of /status and the log should know about the current commit.
        self.warning: str | None = None

    def _child_env(self) -> dict[str, str]:
        """The environment of one git command: the credential, read now (a rotated file is picked up)."""
        env = dict(self.env)
        if self._user:
            env[ENV_USERNAME] = self._user
        password = self._password
        if self._password_file:
            try:
                password = Path(self._password_file).read_text().strip()
            except OSError as err:
                raise GitError(
                    f"{ENV_PASSWORD_FILE}={self._password_file}: cannot read the git password: "
                    f"{err.strerror}; mount the file or unset the variable"
                ) from None
            REDACTOR.add([password])
        if password:
            env[ENV_PASSWORD] = password
        return env

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def current_sha(self) -> str | None:
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        sha = Path(target).name
        return sha if _SHA.match(sha) else None

    def tree(self) -> Path:
        """The checkout `current` points at now, resolved (a pass reads this one even if a flip happens)."""
        return self.current.resolve()

    async def _run(self, *args: str) -> str:
        command = [self.git, *args]
        shown = redact_url(" ".join(["git", *args]))
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._child_env(),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except BaseException:
            # A timeout, or cancellation at shutdown: git must not outlive the call.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(BaseException):
                await asyncio.shield(proc.wait())
            raise
        if proc.returncode != 0:
            detail = redact_url(
                err.decode(errors="replace").strip().splitlines()[-1:][0] if err.strip() else ""
            )
            raise GitError(f"`{shown}` failed (exit {proc.returncode}): {detail}")
        return out.decode(errors="replace")

    async def run(self, *args: str) -> str:
        try:
            return await self._run(*args)
        except TimeoutError:
            raise GitError(
                f"`{redact_url(' '.join(['git', *args]))}` timed out after {self.timeout:g}s"
            ) from None

    async def fetch(self) -> str:
        """Fetch the ref and return the commit it names."""
        # Only this process's user may read the cache: its config names the remote, its objects the manifests.
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.workdir, 0o700)
        if not (self.cache / "HEAD").exists():
            self.cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            await self.run("init", "--bare", "--quiet", "--", str(self.cache))
            await self.run("--git-dir", str(self.cache), "remote", "add", "--", "origin", self.url)
        else:
            # Also rewrites a remote that an older release stored with its credentials.
            await self.run("--git-dir", str(self.cache), "remote", "set-url", "--", "origin", self.url)
        ref = self.ref or "HEAD"
        fetch = ("--git-dir", str(self.cache), "fetch", "--quiet", "--force", "--no-tags")
        if _SHA.match(ref):
            await self.run(*fetch, "--", "origin")
            target = ref
        else:
            await self.run(*fetch, "--", "origin", ref)
            target = "FETCH_HEAD"
        sha = (
            await self.run(
                "--git-dir",
                str(self.cache),
                "rev-parse",
                "--verify",
                "--end-of-options",
                f"{target}^{{commit}}",
            )
        ).strip()
        if not _SHA.match(sha):
            raise GitError(f"git resolved {ref!r} to {sha!r}, not a commit")
        return sha

    async def sync(self) -> str | None:
        """Fetch; when the ref moved, check the new commit out and flip `current`. Returns the new sha."""
        sha = await self.fetch()
        if sha == self.current_sha() and (self.checkouts / sha).is_dir():
            return None
        listing = await self.run(
            "--git-dir", str(self.cache), "ls-tree", "--name-only", "--end-of-options", sha
        )
        # `git archive` of an empty tree is a tar stream Python cannot read; an empty commit is still one.
        empty = not listing.strip()
        self.warning = (
            f"commit {sha[:12]} of {self.display_url} has no files: nothing to reconcile; the empty-set "
            "guard refuses to prune the groups this instance manages unless --allow-empty is set"
            if empty
            else None
        )
        await asyncio.to_thread(self._export, sha, empty)
        self._flip(sha)
        await asyncio.to_thread(self._prune, sha)
        return sha

    def _export(self, sha: str, empty: bool = False) -> None:
        final = self.checkouts / sha
        if final.is_dir():
            return
        self.checkouts.mkdir(parents=True, exist_ok=True)
        if empty:
            final.mkdir()
            return
        staging = self.checkouts / f".{sha}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        command = [self.git, "--git-dir", str(self.cache), "archive", "--format=tar", sha]
        with subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._child_env(),
        ) as proc:
            assert proc.stdout is not None  # stdout=PIPE
            try:
                with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                    # "data": no absolute paths, no links out of the tree, no device files.
                    archive.extractall(staging, filter="data")
                proc.wait(timeout=self.timeout)
            except (tarfile.TarError, subprocess.TimeoutExpired) as err:
                proc.kill()
                shutil.rmtree(staging, ignore_errors=True)
                raise GitError(f"cannot check out {sha[:12]}: {err}") from err
            if proc.returncode != 0:
                stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                shutil.rmtree(staging, ignore_errors=True)
                raise GitError(
                    f"`git archive {sha[:12]}` failed (exit {proc.returncode}): {redact_url(stderr)}"
                )
        os.replace(staging, final)

    def _flip(self, sha: str) -> None:
        link = self.workdir / ".current.new"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(Path("checkouts") / sha, link)
        os.replace(link, self.current)

    def _prune(self, sha: str) -> None:
        entries = [p for p in self.checkouts.iterdir() if p.is_dir() and p.name != sha]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        # The previous checkouts stay: a pass that resolved `current` before the flip may still read them.
        for old in entries[self.keep - 1 :]:
            shutil.rmtree(old, ignore_errors=True)


async def run_git_poller(
    source: GitSource,
    coalescer: Coalescer,
    *,
    interval: float,
    sleep: Sleep,
    clock: Clock,
    poke: asyncio.Event,
) -> None:
    """Fetch every `interval` seconds, or at once when poked (webhook); a new commit fires a GIT trigger."""
    started = False
    while not coalescer.closed:
        poked = poke.is_set()
        poke.clear()
        try:
            sha = await source.sync()
            source.last_error = None
            source.last_fetch_at = clock()
        except GitError as err:
            source.last_error = str(err)
            log.error("git fetch failed", url=source.display_url, ref=source.ref, error=str(err))
            sha = None
        if not started and sha is None and source.current_sha() is not None:
            # A restart finds the commit already checked out: the first pass still has to run.
            sha = source.current_sha()
        if sha is not None:
            started = True
            log.info("git revision", url=source.display_url, ref=source.ref, revision=sha)
            if source.warning is not None:
                log.warning(source.warning, url=source.display_url, ref=source.ref, revision=sha)
            coalescer.fire(
                Trigger(TriggerKind.GIT, f"commit {sha[:12]}" + (" (webhook)" if poked else ""), clock())
            )
        elif poked:
            # The webhook asked for a pass even when nothing new was fetched (e.g. a re-delivery).
            coalescer.fire(Trigger(TriggerKind.WEBHOOK, "webhook; no new commit", clock()))
        await _wait_poke_or_sleep(poke, interval, sleep)


async def _wait_poke_or_sleep(poke: asyncio.Event, interval: float, sleep: Sleep) -> None:
    waiter = asyncio.ensure_future(poke.wait())
    waiter.set_name("daemon-git-poke")
    timer = asyncio.ensure_future(sleep(interval))
    timer.set_name("daemon-git-interval")
    try:
        await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, timer):
            task.cancel()
        await asyncio.gather(waiter, timer, return_exceptions=True)
