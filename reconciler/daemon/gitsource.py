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

import structlog

from reconciler.daemon.triggers import Clock, Coalescer, Sleep, Trigger, TriggerKind

log = structlog.get_logger("reconciler.daemon.git")

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_URL_CREDENTIALS = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@")


class GitError(Exception):
    """A git command failed; the message names the command and git's own words, never credentials."""


def redact_url(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\1***@", text)


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
        self.url = url
        self.ref = ref
        self.workdir = workdir
        self.timeout = timeout
        self.keep = max(1, keep)
        self.git = git
        self.cache = workdir / "cache.git"
        self.checkouts = workdir / "checkouts"
        self.current = workdir / "current"
        base = dict(environ if environ is not None else os.environ)
        base.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_PAGER": "cat",
                "GIT_ASKPASS": base.get("GIT_ASKPASS", "/bin/false"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "LC_ALL": "C",
            }
        )
        self.env = base
        self.last_error: str | None = None
        self.last_fetch_at: float | None = None

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
            env=self.env,
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
        if not (self.cache / "HEAD").exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            await self.run("init", "--bare", "--quiet", str(self.cache))
            await self.run("--git-dir", str(self.cache), "remote", "add", "origin", self.url)
        else:
            await self.run("--git-dir", str(self.cache), "remote", "set-url", "origin", self.url)
        ref = self.ref or "HEAD"
        if _SHA.match(ref):
            await self.run("--git-dir", str(self.cache), "fetch", "--quiet", "--force", "--no-tags", "origin")
            target = ref
        else:
            await self.run(
                "--git-dir", str(self.cache), "fetch", "--quiet", "--force", "--no-tags", "origin", ref
            )
            target = "FETCH_HEAD"
        sha = (
            await self.run("--git-dir", str(self.cache), "rev-parse", "--verify", f"{target}^{{commit}}")
        ).strip()
        if not _SHA.match(sha):
            raise GitError(f"git resolved {ref!r} to {sha!r}, not a commit")
        return sha

    async def sync(self) -> str | None:
        """Fetch; when the ref moved, check the new commit out and flip `current`. Returns the new sha."""
        sha = await self.fetch()
        if sha == self.current_sha() and (self.checkouts / sha).is_dir():
            return None
        await asyncio.to_thread(self._export, sha)
        self._flip(sha)
        await asyncio.to_thread(self._prune, sha)
        return sha

    def _export(self, sha: str) -> None:
        final = self.checkouts / sha
        if final.is_dir():
            return
        self.checkouts.mkdir(parents=True, exist_ok=True)
        staging = self.checkouts / f".{sha}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        command = [self.git, "--git-dir", str(self.cache), "archive", "--format=tar", sha]
        with subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
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
