"""Reads the recorded Azure traffic kept verbatim under `tests/emulator/evidence/` into one typed list.

The recordings come from the test suites of other official clients (Azure PowerShell, the .NET, Java and
JavaScript SDKs; `evidence/SOURCE.md` says where each file comes from). Each suite stores its traffic in its
own format, so this module turns every format into the same `Interaction`, in the order it was recorded:

* Azure PowerShell (autorest modules): an object whose keys are `"<test>+<n>"` and whose values hold
  `Request`/`Response` with `Content` as a JSON string, headers as lists of strings and content headers
  apart.
* .NET (`{"Entries": [...]}`): the old test framework keeps bodies as JSON strings and headers as lists, the
  newer test proxy keeps bodies as parsed JSON and headers as strings (a few as lists). Old entries give a
  path-only `RequestUri`. The JavaScript SDK's test-proxy recordings use the same layout.
* Java (`{"networkCallRecords": [...]}`): response headers and `StatusCode`/`Body` share one flat object and
  no request body is kept.
* JavaScript, older recorder (`*.js`): nock calls, `nock(scope).get(path).query(...).reply(status, body,
  [name, value, ...])`, where a gzip-encoded body is kept as a list of hex strings.

Header values are joined into one string per name, bodies are parsed as JSON where they are JSON (base64
ones are decoded first) and kept as text otherwise. Callers: `test_evidence_corpus.py` and the emulator's
replay tests.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

EVIDENCE = Path(__file__).parent / "evidence"

# Clients whose folders hold recordings; SOURCE.md and FINDINGS.md are documentation beside them.
CLIENTS = ("azure-powershell", "azure-sdk-for-net", "azure-sdk-for-java", "azure-sdk-for-js")

_CONTAINER_GROUP = re.compile(
    r"/providers/microsoft\.containerinstance/containergroups(?:/[^/?]+(?:/(?:restart|stop|start)"
    r"|/containers/[^/?]+/(?:logs|exec|attach))?)?/?(?:\?|$)",
    re.IGNORECASE,
)
_OPERATION_POLL = re.compile(
    r"/providers/microsoft\.containerinstance/locations/[^/?]+/operations/[^/?]+/?(?:\?|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Interaction:
    """One recorded request and Azure's answer to it."""

    client: str
    file: str
    index: int
    method: str
    uri: str
    api_version: str | None
    request_headers: dict[str, str]
    request_body: object | None
    status: int
    response_headers: dict[str, str]
    response_body: object | None

    def header(self, name: str) -> str | None:
        """A response header looked up without regard to case, as HTTP names are."""
        for key, value in self.response_headers.items():
            if key.lower() == name.lower():
                return value
        return None


def is_container_group(interaction: Interaction) -> bool:
    """True for calls on container groups: the collection, one group, its actions and its containers."""
    return _CONTAINER_GROUP.search(interaction.uri) is not None


def is_operation_poll(interaction: Interaction) -> bool:
    """True for a poll of `Microsoft.ContainerInstance/locations/<loc>/operations/<id>`."""
    return _OPERATION_POLL.search(interaction.uri) is not None


def evidence_files() -> list[Path]:
    """Every recording kept under the client folders, in a stable order."""
    found: list[Path] = []
    for client in CLIENTS:
        folder = EVIDENCE / client
        if folder.is_dir():
            # Recordings are JSON (and the JS SDK's old nock recordings, JavaScript); a client folder may also
            # hold its SOURCE.md and LICENSE.
            found.extend(sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".js")))
    return found


def load_interactions() -> list[Interaction]:
    """All interactions of all recordings; within a file they keep the order in which they were recorded."""
    interactions: list[Interaction] = []
    for path in evidence_files():
        interactions.extend(load_file(path))
    return interactions


def load_file(path: Path) -> list[Interaction]:
    """The interactions of one recording, whatever its format."""
    client = path.relative_to(EVIDENCE).parts[0]
    name = path.relative_to(EVIDENCE).as_posix()
    text = path.read_text(encoding="utf-8")
    document = None if path.suffix == ".js" else json.loads(text)
    if path.suffix == ".js":
        raw = list(_nock_records(text))
    elif isinstance(document, dict) and isinstance(document.get("Entries"), list):
        raw = list(_dotnet_entries(document["Entries"]))
    elif isinstance(document, dict) and isinstance(document.get("networkCallRecords"), list):
        raw = list(_java_records(document["networkCallRecords"]))
    elif isinstance(document, dict) and all(
        isinstance(value, dict) and "Request" in value and "Response" in value for value in document.values()
    ):
        raw = list(_powershell_records(document))
    else:
        raise ValueError(f"{name}: not a recording format this loader knows")
    return [
        Interaction(
            client=client,
            file=name,
            index=index,
            method=method.upper(),
            uri=uri,
            api_version=api_version(uri),
            request_headers=request_headers,
            request_body=request_body,
            status=status,
            response_headers=response_headers,
            response_body=response_body,
        )
        for index, (method, uri, request_headers, request_body, status, response_headers, response_body) in (
            enumerate(raw)
        )
    ]


def api_version(uri: str) -> str | None:
    """The `api-version` query parameter of a URI, if it has one."""
    values = parse_qs(urlsplit(uri).query).get("api-version")
    return values[0] if values else None


_Raw = tuple[str, str, dict[str, str], object | None, int, dict[str, str], object | None]


def _powershell_records(document: Mapping[str, object]) -> Iterator[_Raw]:
    for value in document.values():
        assert isinstance(value, dict)
        request, response = value["Request"], value["Response"]
        request_headers = {**_headers(request.get("Headers")), **_headers(request.get("ContentHeaders"))}
        response_headers = {**_headers(response.get("Headers")), **_headers(response.get("ContentHeaders"))}
        yield (
            str(request["Method"]),
            str(request["RequestUri"]),
            request_headers,
            _body(request.get("Content"), base64_encoded=bool(request.get("isContentBase64"))),
            int(response["StatusCode"]),
            response_headers,
            _body(response.get("Content"), base64_encoded=bool(response.get("isContentBase64"))),
        )


def _dotnet_entries(entries: list[object]) -> Iterator[_Raw]:
    for entry in entries:
        assert isinstance(entry, dict)
        uri = str(entry["RequestUri"])
        if uri.startswith("/"):
            # The old .NET test framework records the path only; the host is always ARM's.
            uri = "https://management.azure.com" + uri
        yield (
            str(entry["RequestMethod"]),
            uri,
            _headers(entry.get("RequestHeaders")),
            _body(entry.get("RequestBody")),
            int(entry["StatusCode"]),
            _headers(entry.get("ResponseHeaders")),
            _body(entry.get("ResponseBody")),
        )


# Keys of a Java record's flat `Response` object that are not response headers.
_JAVA_NON_HEADERS = {"StatusCode", "Body"}


def _java_records(records: list[object]) -> Iterator[_Raw]:
    for record in records:
        assert isinstance(record, dict)
        response = record.get("Response") or {}
        assert isinstance(response, dict)
        yield (
            str(record["Method"]),
            str(record["Uri"]),
            _headers(record.get("Headers")),
            None,
            int(response["StatusCode"]),
            _headers({k: v for k, v in response.items() if k not in _JAVA_NON_HEADERS}),
            _body(response.get("Body")),
        )


_JS_SCALAR = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "merge"}


def _nock_records(text: str) -> Iterator[_Raw]:
    """The calls of a nock recording: each `nock(scope, options)` starts one chain ending in `.reply(...)`."""
    for start in re.finditer(r"(?<![\w.])nock\(", text):
        reader = _JsReader(text, start.end() - 1)
        scope = reader.arguments()[0]
        assert isinstance(scope, str)
        method, path, request_body, query = "", "", None, None
        status, reply_body = 0, None
        reply_headers: object = []
        while reader.chained():
            name = reader.identifier()
            arguments = reader.arguments()
            if name in _HTTP_METHODS:
                method, path = name, str(arguments[0])
                request_body = arguments[1] if len(arguments) > 1 else None
            elif name == "query":
                query = arguments[0] if arguments else None
            elif name == "reply":
                status = int(str(arguments[0]))
                reply_body = arguments[1] if len(arguments) > 1 else None
                reply_headers = arguments[2] if len(arguments) > 2 else []
        uri = re.sub(r":443$", "", scope) + path
        if isinstance(query, dict):
            uri += ("&" if "?" in uri else "?") + urlencode({str(k): str(v) for k, v in query.items()})
        headers: dict[str, str] = {}
        if isinstance(reply_headers, list):
            # Headers come as a flat [name, value, name, value, ...] list; repeated names are joined.
            for header, value in zip(reply_headers[::2], reply_headers[1::2], strict=True):
                key = str(header)
                headers[key] = f"{headers[key]}, {value}" if key in headers else str(value)
        elif isinstance(reply_headers, dict):
            headers = _headers(reply_headers)
        encoding = next((v for k, v in headers.items() if k.lower() == "content-encoding"), "")
        if encoding == "gzip" and isinstance(reply_body, list):
            compressed = bytes.fromhex("".join(str(part) for part in reply_body))
            reply_body = gzip.decompress(compressed).decode("utf-8")
        yield (method, uri, {}, _body(request_body), status, headers, _body(reply_body))


class _JsReader:
    """Reads the JavaScript literals a nock recording is written in: JSON plus single-quoted strings."""

    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.position = position

    def _skip(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def _peek(self) -> str:
        self._skip()
        return self.text[self.position] if self.position < len(self.text) else ""

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise ValueError(f"expected {char!r} at {self.position} in a nock recording")
        self.position += 1

    def chained(self) -> bool:
        """Moves past a `.` that chains one more call; False at the end of the statement."""
        if self._peek() == ".":
            self.position += 1
            return True
        return False

    def identifier(self) -> str:
        self._skip()
        match = re.compile(r"[A-Za-z_$][\w$]*").match(self.text, self.position)
        if match is None:
            raise ValueError(f"expected a name at {self.position} in a nock recording")
        self.position = match.end()
        return match.group()

    def arguments(self) -> list[object]:
        """The arguments of a call, from its `(` to its `)`."""
        self._expect("(")
        values: list[object] = []
        while self._peek() != ")":
            values.append(self.value())
            if self._peek() == ",":
                self.position += 1
        self.position += 1
        return values

    def value(self) -> object:
        char = self._peek()
        if char == "{":
            self.position += 1
            result: dict[str, object] = {}
            while self._peek() != "}":
                key = self.value() if self._peek() in "'\"" else self.identifier()
                self._expect(":")
                result[str(key)] = self.value()
                if self._peek() == ",":
                    self.position += 1
            self.position += 1
            return result
        if char == "[":
            self.position += 1
            items: list[object] = []
            while self._peek() != "]":
                items.append(self.value())
                if self._peek() == ",":
                    self.position += 1
            self.position += 1
            return items
        if char == '"':
            decoded, end = json.JSONDecoder().raw_decode(self.text, self.position)
            self.position = end
            return decoded
        if char == "'":
            return self._single_quoted()
        match = _JS_SCALAR.match(self.text, self.position)
        if match is None:
            raise ValueError(f"unexpected {char!r} at {self.position} in a nock recording")
        self.position = match.end()
        return json.loads(match.group())

    def _single_quoted(self) -> str:
        self.position += 1
        parts: list[str] = []
        while self.text[self.position] != "'":
            if self.text[self.position] == "\\":
                escaped = self.text[self.position + 1]
                parts.append({"n": "\n", "t": "\t", "r": "\r"}.get(escaped, escaped))
                self.position += 2
            else:
                parts.append(self.text[self.position])
                self.position += 1
        self.position += 1
        return "".join(parts)


def _headers(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, list):
            headers[str(name)] = ", ".join(str(item) for item in value)
        elif value is not None:
            headers[str(name)] = str(value)
    return headers


def _body(raw: object, *, base64_encoded: bool = False) -> object | None:
    """A recorded body as JSON where it is JSON: parsed objects stay, strings are parsed when they parse."""
    if raw is None or raw in ("", []):
        # An empty array is how the .NET test proxy writes an empty body.
        return None
    if isinstance(raw, list) and all(isinstance(part, str) for part in raw):
        # Some recorders split a long text body into a list of lines.
        raw = "".join(raw)
    if not isinstance(raw, str):
        return raw
    text = raw
    if base64_encoded:
        try:
            text = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return raw
    try:
        parsed: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return parsed
