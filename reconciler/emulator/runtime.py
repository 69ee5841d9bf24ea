"""What a job container's program does, simulated: its output over time, how long it runs, its exit code.

`store.py` calls `simulate` when a container of a job group (restart policy `Never` or `OnFailure`) starts
and reads the resulting `Program` lazily: the output written by a given time, whether it has ended. It is
pure and deterministic (no clock, no I/O, no randomness), so a fake clock drives it and a run can be
recomputed from the spec and its start time. The grammar is documented in the emulator's README
("Job containers"); in short:

- `echo [-n] [-e] ARGS`, `printf FORMAT ARGS` (`%s %b %c %d %i %u %x %X %o %e %f %g %%`, flags, width and
  precision; the format is reused while arguments remain, as in sh), `sleep N[s|m|h|d]...` (fractions;
  `inf`), `exit [N]`, `true`, `false`, `:`, `cd`, `export`, `set -e/-x/+e/+x`, `exec`, `NAME=value`;
- `sh|bash|dash|ash [-ex...] -c SCRIPT [NAME ARGS...]` (also as `/bin/sh` etc.), where SCRIPT is made of
  those commands separated by `;`, newlines, `&&` and `||`, with POSIX quoting, `$NAME`, `${NAME}`, `$?`,
  `$0`...`$9`, `$#`, `$@`, `$*` and `$$` expanded (the environment is the container's
  `environmentVariables`), redirections `>&2`, `1>&2`, `2>&1` kept in the log (ACI's log has stdout and
  stderr together) and `>FILE`, `2>FILE`, `>/dev/null` taking that stream out of it;
- any other command prints its command line as one line, runs for `run_time` seconds and exits 0; so does
  a script that uses shell syntax beyond the above (pipes, `&`, subshells, `$(...)`, `if`/`for`/`while`...),
  as one opaque program. A stray `done`, `fi`, `then`... or an unterminated quote is a syntax error, as in
  sh: the message and exit code 2 (the `echo hello; sleep 15; done` of the recorded azure-cli `attach`
  test exits 2 on Azure).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Shells whose `-c SCRIPT` is interpreted.
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
# Words that open a compound command the simulator does not model: the script runs as an opaque program.
_OPENERS = frozenset({"if", "while", "until", "for", "case", "select", "function", "{", "!", "[["})
# Words that only close or continue one: on their own, sh's syntax error.
_CLOSERS = frozenset({"then", "else", "elif", "fi", "do", "done", "esac", "}"})
# printf widths and precisions beyond this are clamped, so a stray `%999999999d` cannot eat the memory.
_MAX_FIELD = 10_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_INTERVAL = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Chunk:
    """Text the program wrote, `at` seconds after it started."""

    at: float
    text: str


@dataclass(frozen=True)
class LogLine:
    """One line of a log (with its newline, unless it is the unfinished last one) and when it was written."""

    at: float
    text: str


@dataclass(frozen=True)
class Program:
    """A simulated run: what it writes and when, how long it takes (`math.inf`: it never ends) and its exit
    code (0 to 255)."""

    chunks: tuple[Chunk, ...]
    exit_code: int
    duration: float

    def lines(self, start: float, until: float) -> list[LogLine]:
        """The log of a run that started at `start`, as written by `until` (both epoch seconds); each line
        is stamped with the time its last piece was written."""
        out: list[LogLine] = []
        pending, pending_at = "", start
        for chunk in self.chunks:
            at = start + chunk.at
            if at > until:
                break
            *complete, rest = chunk.text.split("\n")
            for piece in complete:
                out.append(LogLine(at, pending + piece + "\n"))
                pending = ""
            if rest:
                pending, pending_at = pending + rest, at
        if pending:
            out.append(LogLine(pending_at, pending))
        return out


def opaque(line: str, run_time: float) -> Program:
    """A program the simulator does not model: it prints `line`, runs for `run_time` and exits 0."""
    return Program((Chunk(0.0, line + "\n"),), 0, max(0.0, run_time))


def simulate(
    command: Sequence[str] | None,
    *,
    image: str,
    env: Mapping[str, str] | None = None,
    run_time: float = 1.0,
) -> Program:
    """The program a container with this `command` (ARM's list of strings; None or empty: the image's
    entrypoint) runs."""
    if not command:
        return opaque(image, run_time)
    argv = [str(a) for a in command]
    shell = _Shell(dict(env or {}), run_time)
    try:
        status = shell.run_argv(argv, dict(_DEFAULT_FDS))
    except _Exit as done:
        status = done.status
    except _Unsupported:
        return opaque(shlex.join(argv), run_time)
    return Program(tuple(shell.out), status & 255, shell.t)


# -- the shell ---------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """Shell syntax the simulator does not model: the whole command runs as an opaque program."""


class _SyntaxError(Exception):
    """A script sh would refuse before running any of it."""


@dataclass
class _Exit(Exception):
    """`exit`, an `errexit` failure or a `sleep` that never ends: the shell stops with `status`."""

    status: int


@dataclass(frozen=True)
class _Segment:
    kind: str  # "lit" or "var"
    value: str
    quoted: bool


@dataclass
class _Word:
    segments: list[_Segment] = field(default_factory=list)

    def plain(self) -> str | None:
        """The word's text when it is all unquoted literal (a keyword or an fd number can only be that)."""
        if all(s.kind == "lit" and not s.quoted for s in self.segments):
            return "".join(s.value for s in self.segments)
        return None


@dataclass(frozen=True)
class _Op:
    value: str  # ";", "\n", "&&", "||"


@dataclass(frozen=True)
class _Redir:
    fd: int
    op: str  # ">", ">>", ">|", ">&", "<", "<&", "<>", "&>"


_Token = _Word | _Op | _Redir


@dataclass
class _Command:
    words: list[_Word] = field(default_factory=list)
    redirs: list[tuple[_Redir, _Word]] = field(default_factory=list)


# An and-or list: its first command, then (operator, command) pairs.
_AndOr = list[tuple[str, _Command]]
_DEFAULT_FDS = {0: "log", 1: "log", 2: "log"}


def _tokenize(script: str) -> list[_Token]:
    tokens: list[_Token] = []
    word: _Word | None = None
    lit: list[str] = []
    quoted_lit = False
    i, n = 0, len(script)

    def flush_lit(quoted: bool) -> None:
        nonlocal word
        if lit:
            word = word or _Word()
            word.segments.append(_Segment("lit", "".join(lit), quoted))
            lit.clear()

    def add(ch: str, quoted: bool) -> None:
        nonlocal quoted_lit, word
        if lit and quoted != quoted_lit:
            flush_lit(quoted_lit)
        quoted_lit = quoted
        lit.append(ch)
        word = word or _Word()

    def end_word() -> None:
        nonlocal word
        flush_lit(quoted_lit)
        if word is not None:
            tokens.append(word)
        word = None

    def variable(j: int, quoted: bool) -> int:
        """Read the expansion after the `$` at `j - 1`; return the index after it."""
        nonlocal word
        if j < n and script[j] == "(":
            raise _Unsupported("command substitution")
        if j < n and script[j] == "{":
            close = script.find("}", j)
            name = script[j + 1 : close] if close >= 0 else ""
            if close < 0:
                raise _SyntaxError("missing '}'")
            if not (_NAME.fullmatch(name) or (name in "?#@*$!-0123456789" and len(name) == 1)):
                raise _Unsupported("parameter expansion")
            end = close + 1
        elif j < n and script[j] in "?#@*$!-0123456789":
            name, end = script[j], j + 1
        else:
            match = _NAME.match(script, j)
            if match is None:
                add("$", quoted)
                return j
            name, end = match.group(), match.end()
        flush_lit(quoted_lit)
        word = word or _Word()
        word.segments.append(_Segment("var", name, quoted))
        return end

    while i < n:
        ch = script[i]
        if ch == "\\":
            if i + 1 < n and script[i + 1] == "\n":
                i += 2  # a line continuation
                continue
            add(script[i + 1] if i + 1 < n else "\\", True)
            i += 2
        elif ch == "'":
            close = script.find("'", i + 1)
            if close < 0:
                raise _SyntaxError("unterminated quoted string")
            for c in script[i + 1 : close] or [""]:
                add(c, True)  # `''` adds an empty piece: an empty but present word
            i = close + 1
        elif ch == '"':
            i += 1
            empty = True
            while True:
                if i >= n:
                    raise _SyntaxError("unterminated quoted string")
                c = script[i]
                if c == '"':
                    i += 1
                    break
                empty = False
                if c == "\\" and i + 1 < n and script[i + 1] in '$`"\\\n':
                    if script[i + 1] != "\n":
                        add(script[i + 1], True)
                    i += 2
                elif c == "`":
                    raise _Unsupported("command substitution")
                elif c == "$":
                    i = variable(i + 1, True)
                else:
                    add(c, True)
                    i += 1
            if empty:
                add("", True)
        elif ch == "$":
            i = variable(i + 1, False)
        elif ch in " \t\r":
            end_word()
            i += 1
        elif ch == "\n":
            end_word()
            tokens.append(_Op("\n"))
            i += 1
        elif ch == "#" and word is None and not lit:
            while i < n and script[i] != "\n":
                i += 1
        elif ch == ";":
            if script.startswith(";;", i) or script.startswith(";&", i):
                raise _SyntaxError('unexpected ";;"')
            end_word()
            tokens.append(_Op(";"))
            i += 1
        elif ch in "&|":
            double = script.startswith(ch * 2, i)
            if ch == "&" and script.startswith("&>", i):
                end_word()
                tokens.append(_Redir(1, "&>"))
                i += 2
                continue
            if not double:
                raise _Unsupported("pipe" if ch == "|" else "background job")
            end_word()
            tokens.append(_Op(ch * 2))
            i += 2
        elif ch in "<>":
            digits = "".join(lit)
            if word is not None and not word.segments and not quoted_lit and re.fullmatch(r"\d{1,2}", digits):
                fd = int(digits)  # `2>&1`: the digits right before the operator name the stream
                word = None
                lit.clear()
            else:
                end_word()
                fd = 1 if ch == ">" else 0
            op = ch
            nxt = script[i + 1] if i + 1 < n else ""
            if ch == "<" and nxt == "<":
                raise _Unsupported("here-document")
            if nxt in ("&", ">", "|") if ch == ">" else nxt in ("&", ">"):
                op += nxt
            tokens.append(_Redir(fd, op))
            i += len(op)
        elif ch in "()`":
            raise _Unsupported("subshell or command substitution")
        else:
            add(ch, False)
            i += 1
    end_word()
    return tokens


def _parse(script: str) -> list[_AndOr]:
    """The script as lists of and-or lists; raises `_Unsupported` or `_SyntaxError`."""
    lists: list[_AndOr] = []
    current: _AndOr = []
    command: _Command | None = None
    pending_op = ""
    tokens = _tokenize(script)
    k = 0
    while k < len(tokens):
        token = tokens[k]
        if isinstance(token, _Word):
            command = command or _Command()
            if not command.words and not command.redirs:
                keyword = token.plain()
                if keyword in _OPENERS:
                    raise _Unsupported(keyword)
                if keyword in _CLOSERS:
                    raise _SyntaxError(f'unexpected "{keyword}"')
            command.words.append(token)
        elif isinstance(token, _Redir):
            target = tokens[k + 1] if k + 1 < len(tokens) else None
            if not isinstance(target, _Word):
                raise _SyntaxError("unexpected redirection")
            command = command or _Command()
            command.redirs.append((token, target))
            k += 1
        else:
            if command is None:
                if token.value == "\n" and not pending_op and not current:
                    k += 1
                    continue
                if token.value == "\n" and pending_op:
                    k += 1  # `a &&` newline `b` continues the list
                    continue
                raise _SyntaxError(f'unexpected "{token.value.strip() or "newline"}"')
            current.append((pending_op, command))
            command = None
            if token.value in ("&&", "||"):
                pending_op = token.value
            else:
                lists.append(current)
                current, pending_op = [], ""
        k += 1
    if command is not None:
        current.append((pending_op, command))
    elif pending_op:
        raise _SyntaxError("unexpected end of file")
    if current:
        lists.append(current)
    return lists


class _Shell:
    """Runs commands on a simulated clock (`t`, seconds since the program started), collecting output."""

    def __init__(self, env: dict[str, str], run_time: float) -> None:
        self.vars = env
        self.run_time = max(0.0, run_time)
        self.t = 0.0
        self.out: list[Chunk] = []
        self.status = 0
        self.errexit = False
        self.xtrace = False
        self.positional: list[str] = []
        self.name = "sh"

    # output

    def write(self, text: str, fd: int, fds: Mapping[int, str]) -> None:
        if text and fds.get(fd) == "log":
            if self.out and self.out[-1].at == self.t:
                self.out[-1] = Chunk(self.t, self.out[-1].text + text)
            else:
                self.out.append(Chunk(self.t, text))

    def error(self, message: str, fds: Mapping[int, str]) -> None:
        self.write(message + "\n", 2, fds)

    # running

    def run_argv(self, argv: list[str], fds: dict[int, str]) -> int:
        """Run one command (already expanded); returns its status, raises `_Exit` when the shell ends."""
        name = argv[0].rsplit("/", 1)[-1] if argv[0] else ""
        if name in SHELLS and len(argv) > 1:
            return self.run_shell(argv, fds)
        builtin = _BUILTINS.get(name)
        if builtin is None:
            self.write(shlex.join(argv) + "\n", 1, fds)
            self.advance(self.run_time)
            return 0
        return builtin(self, argv, fds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        if math.isinf(self.t):
            raise _Exit(0)  # never reached: the program runs until it is stopped

    def run_shell(self, argv: list[str], fds: dict[int, str]) -> int:
        """`sh [-opts] -c SCRIPT [NAME ARGS...]`; other uses of a shell (a script file) are opaque."""
        errexit, xtrace, script_next, k = False, False, False, 1
        while k < len(argv) and argv[k][:1] in ("-", "+") and argv[k] not in ("-", "--"):
            if argv[k].startswith("--"):
                k += 1  # `bash --login -c ...`
                continue
            flags = argv[k][1:]
            on = argv[k][0] == "-"
            k += 1
            for flag in flags:
                if flag == "c":
                    script_next = True
                elif flag == "e":
                    errexit = on
                elif flag == "x":
                    xtrace = on
                elif flag == "o":
                    k += 1  # `-o pipefail` and friends: an option name follows
        if k < len(argv) and argv[k] == "--":
            k += 1
        if not script_next or k >= len(argv):
            raise _Unsupported("a shell without -c")
        script = argv[k]
        child = _Shell(dict(self.vars), self.run_time)
        child.t, child.out = self.t, self.out
        child.errexit, child.xtrace = errexit, xtrace
        child.name = argv[k + 1] if k + 1 < len(argv) else argv[0]
        child.positional = argv[k + 2 :]
        try:
            lists = _parse(script)
        except _SyntaxError as exc:
            child.error(f"{child.name.rsplit('/', 1)[-1]}: syntax error: {exc}", fds)
            return 2
        try:
            status = child.run_lists(lists, fds)
        except _Exit as done:
            status = done.status
            if math.isinf(child.t):
                self.t = child.t
                raise
        finally:
            self.t = child.t
        return status & 255

    def run_lists(self, lists: list[_AndOr], fds: dict[int, str]) -> int:
        for and_or in lists:
            last_ran_final = True
            for index, (op, command) in enumerate(and_or):
                if (op == "&&" and self.status != 0) or (op == "||" and self.status == 0):
                    last_ran_final = False
                    continue
                self.status = self.run_command(command, fds)
                last_ran_final = index == len(and_or) - 1
            if self.errexit and self.status != 0 and last_ran_final:
                raise _Exit(self.status)
        return self.status

    def run_command(self, command: _Command, parent: dict[int, str]) -> int:
        fds = dict(parent)
        for redir, target in command.redirs:
            dest = "".join(self.expand(target))
            if redir.op in ("<", "<>", "<&"):
                continue  # input: nothing reads it
            if redir.op == ">&" and dest == "-":
                fds[redir.fd] = "closed"
            elif redir.op == ">&" and dest.isdigit():
                fds[redir.fd] = fds.get(int(dest), "closed")
            elif redir.op == "&>":
                fds[1] = fds[2] = "file"
            else:
                fds[redir.fd] = "file"
        argv: list[str] = []
        assigning = True
        for word in command.words:
            fields = self.expand(word)
            first = word.segments[0] if word.segments else None
            if assigning and first is not None and first.kind == "lit" and not first.quoted:
                match = _ASSIGNMENT.fullmatch(first.value)
                if match:
                    rest = _Word([_Segment("lit", match.group(2), True), *word.segments[1:]])
                    self.vars[match.group(1)] = "".join(self.expand(rest))
                    continue
            assigning = False
            argv.extend(fields)
        if not argv:
            return 0
        if self.xtrace:
            self.write("+ " + " ".join(argv) + "\n", 2, parent)
        return self.run_argv(argv, fds)

    def expand(self, word: _Word) -> list[str]:
        """The fields a word expands to: unquoted expansions are split on blanks, as sh does."""
        fields: list[str] = []
        current: str | None = None
        for seg in word.segments:
            if seg.kind == "lit":
                current = (current or "") + seg.value
                continue
            value = self.parameter(seg.value)
            if seg.quoted:
                current = (current or "") + value
                continue
            parts = value.split()
            if not parts:
                if value and current is not None:
                    fields.append(current)  # blanks alone still separate fields
                    current = None
                continue
            if value[:1].isspace() and current is not None:
                fields.append(current)
                current = None
            for j, part in enumerate(parts):
                if j == 0:
                    current = (current or "") + part
                else:
                    if current is not None:
                        fields.append(current)
                    current = part
            if value[-1:].isspace():
                fields.append(current or "")
                current = None
        if current is not None:
            fields.append(current)
        return fields

    def parameter(self, name: str) -> str:
        if name == "?":
            return str(self.status)
        if name == "#":
            return str(len(self.positional))
        if name in ("@", "*"):
            return " ".join(self.positional)
        if name == "$":
            return "1"  # the container's first process
        if name == "!":
            return ""
        if name == "-":
            return ("e" if self.errexit else "") + ("x" if self.xtrace else "")
        if name.isdigit():
            index = int(name)
            if index == 0:
                return self.name
            return self.positional[index - 1] if index <= len(self.positional) else ""
        return self.vars.get(name, "")


# -- the commands ------------------------------------------------------------------------------------------


def _echo(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    args = argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for flag in args.pop(0)[1:]:
            if flag == "n":
                newline = False
            else:
                escapes = flag == "e"
    text = " ".join(args)
    if escapes:
        text, stop = _unescape(text, echo=True)
        newline = newline and not stop
    shell.write(text + ("\n" if newline else ""), 1, fds)
    return 0


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def _unescape(text: str, *, echo: bool) -> tuple[str, bool]:
    """Backslash escapes of `echo -e`, `printf %b` (`echo=True`: octal as `\\0NNN`) and printf's format
    (`\\NNN`). Returns the text and whether `\\c` asked to stop all output."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out), True
        if nxt in _SIMPLE_ESCAPES and not (echo and nxt in "\"'"):
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and i + 2 < n and text[i + 2] in "0123456789abcdefABCDEF":
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2 :])
            assert digits is not None
            out.append(chr(int(digits.group(), 16)))
            i += 2 + len(digits.group())
        elif nxt in "01234567" and (not echo or nxt == "0"):
            start = i + 2 if echo else i + 1
            digits = re.match(r"[0-7]{0,3}", text[start:])
            assert digits is not None
            out.append(chr(int(digits.group() or "0", 8) & 0xFF))
            i = start + len(digits.group())
        else:
            out.append(ch)
            i += 1
    return "".join(out), False


_DIRECTIVE = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d*))?([a-zA-Z%]?)")


def _integer(text: str) -> int:
    text = text.strip()
    if text[:1] in ("'", '"'):
        return ord(text[1]) if len(text) > 1 else 0
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", body):
        return sign * int(body, 16)
    if re.fullmatch(r"0[0-7]+", body):
        return sign * int(body, 8)
    if re.fullmatch(r"\d+", body) and len(body) <= 100:
        return sign * int(body)
    raise ValueError(text)


def _number(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _printf(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    if len(argv) < 2:
        shell.error("printf: usage: printf format [arguments]", fds)
        return 2
    fmt, args = argv[1], argv[2:]
    status, used = 0, 0
    while True:
        text, consumed, status_now, stop = _format_once(shell, fmt, args[used:], fds)
        shell.write(text, 1, fds)
        status = status or status_now
        used += consumed
        if stop or consumed == 0 or used >= len(args):
            return status


def _format_once(shell: _Shell, fmt: str, args: list[str], fds: dict[int, str]) -> tuple[str, int, int, bool]:
    """One pass over the format: (text, arguments used, status, stop)."""
    out: list[str] = []
    used, status, i = 0, 0, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "\\":
            end = i + 2
            if i + 1 < len(fmt) and fmt[i + 1] in "01234567":
                octal = re.match(r"[0-7]{1,3}", fmt[i + 1 :])
                end = i + 1 + len(octal.group()) if octal else end
            elif i + 1 < len(fmt) and fmt[i + 1] == "x":
                hexa = re.match(r"[0-9a-fA-F]{1,2}", fmt[i + 2 :])
                end = i + 2 + (len(hexa.group()) if hexa else 0)
            piece, stop = _unescape(fmt[i:end], echo=False)
            out.append(piece)
            if stop:
                return "".join(out), used, status, True
            i = end
            continue
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        match = _DIRECTIVE.match(fmt, i)
        assert match is not None
        flags, width, precision, conv = match.groups()
        if conv == "%":
            out.append("%")
            i = match.end()
            continue
        if conv not in tuple("sbcdiuxXoeEfgG"):
            shell.error(f"printf: %{conv or fmt[i + 1 : i + 2]}: invalid format character", fds)
            return "".join(out), used, 1, True
        arg = args[used] if used < len(args) else None
        used += 1 if arg is not None else 0
        spec = "%" + flags + str(min(int(width), _MAX_FIELD)) if width else "%" + flags
        if precision is not None:
            spec += "." + str(min(int(precision or "0"), _MAX_FIELD))
        try:
            if conv in "sb":
                value = arg or ""
                if conv == "b":
                    value, stop = _unescape(value, echo=True)
                    if stop:
                        out.append(value)
                        return "".join(out), used, status, True
                out.append((spec + "s") % value)
            elif conv == "c":
                out.append((spec.split(".")[0] + "s") % (arg or "")[:1])
            elif conv in "dixXou":
                number = _integer(arg) if arg not in (None, "") else 0
                if conv in "xXou" and number < 0:
                    number &= (1 << 64) - 1
                out.append((spec + ("d" if conv in "iu" else conv)) % number)
            else:
                out.append((spec + conv) % (_number(arg) if arg not in (None, "") else 0.0))
        except (ValueError, OverflowError, TypeError):
            shell.error(f"printf: {arg}: invalid number", fds)
            status = 1
            out.append((spec + "s") % "0" if conv in "dixXou" else "0")
        i = match.end()
    return "".join(out), used, status, False


def _sleep(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    if len(argv) < 2:
        shell.error("sleep: missing operand", fds)
        return 1
    total = 0.0
    for arg in argv[1:]:
        if arg.lower() in ("inf", "infinity"):
            total = math.inf
            continue
        match = _INTERVAL.fullmatch(arg)
        if match is None:
            shell.error(f"sleep: invalid time interval '{arg}'", fds)
            return 1
        total += float(match.group(1)) * _UNIT[match.group(2)]
    shell.advance(total)
    return 0


def _exit(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    if len(argv) < 2:
        raise _Exit(shell.status)
    if re.fullmatch(r"[+-]?\d{1,100}", argv[1].strip()) is None:
        shell.error(f"{shell.name.rsplit('/', 1)[-1]}: exit: Illegal number: {argv[1]}", fds)
        raise _Exit(2)
    raise _Exit(int(argv[1].strip()) & 255)


def _set(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    for arg in argv[1:]:
        if arg[:1] in ("-", "+") and arg not in ("-", "--"):
            on = arg[0] == "-"
            for flag in arg[1:]:
                if flag == "e":
                    shell.errexit = on
                elif flag == "x":
                    shell.xtrace = on
    return 0


def _export(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    for arg in argv[1:]:
        match = _ASSIGNMENT.fullmatch(arg)
        if match:
            shell.vars[match.group(1)] = match.group(2)
    return 0


def _exec(shell: _Shell, argv: list[str], fds: dict[int, str]) -> int:
    if len(argv) < 2:
        return 0
    raise _Exit(shell.run_argv(argv[1:], fds))


_BUILTINS = {
    "echo": _echo,
    "printf": _printf,
    "sleep": _sleep,
    "exit": _exit,
    "true": lambda shell, argv, fds: 0,
    ":": lambda shell, argv, fds: 0,
    "false": lambda shell, argv, fds: 1,
    "cd": lambda shell, argv, fds: 0,
    "set": _set,
    "export": _export,
    "exec": _exec,
}


def go_duration(seconds: float) -> str:
    """A back-off as Kubernetes words it ("10s", "1m20s", "5m0s")."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:g}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"
