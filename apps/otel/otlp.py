"""OTLP/HTTP wire format: reading export requests and writing their responses.

Follows the OTLP specification (opentelemetry.io/docs/specs/otlp/#otlphttp):
- bodies are `application/x-protobuf` or `application/json` (proto3 JSON mapping with the OTLP
  exceptions: trace and span ids are hex strings, not base64; enum values may be integers);
- `Content-Encoding: gzip` (and `deflate`, which the Python exporter also offers), inflated
  step by step under a size and a ratio cap;
- the work one request can cause is bounded before it is stored: spans, log records and
  attributes per request are capped (413: the exporter must send smaller batches), attributes
  and events per span (or log record) too (that item is rejected in partial_success);
- the response uses the request's encoding; errors carry a `google.rpc.Status`.

Nothing here touches the database: `OtlpError` says which 4xx to answer.
"""

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from apps.core.json import json_loads_strict

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = {PROTOBUF, "application/protobuf"}
_MAX_REPORTED_ERRORS = 5


class OtlpError(Exception):
    """A request the server cannot accept; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class ExportResult:
    """What an export did with its items: the partial success the response reports."""

    accepted: int = 0  # GenAI spans / log events used (stored, replayed or kept for later)
    rejected: int = 0
    ignored: int = 0  # not GenAI: counted, not stored
    errors: list[str] = field(default_factory=list)

    def reject(self, what: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < _MAX_REPORTED_ERRORS:
            self.errors.append(f"{what}: {reason}")

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.errors)
        return "; ".join(self.errors) + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class OtlpBody:
    encoding: str  # PROTOBUF or JSON: also the encoding of the answer
    data: bytes  # decompressed


def response_encoding(request: HttpRequest) -> str:
    """The encoding to answer in: the request's when it is one we speak, else JSON (readable)."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    return PROTOBUF if content_type in _PROTOBUF_TYPES else JSON


def body_read(request: HttpRequest) -> OtlpBody:
    """The decompressed body, or OtlpError 413 / 415 / 400.

    The wire size is capped by OTLP_MAX_REQUEST_BYTES before anything is read; inflating stops
    at the first byte past the smaller of OTLP_MAX_DECOMPRESSED_BYTES and
    OTLP_MAX_DECOMPRESSION_RATIO × the compressed size (never below 1 MiB), so a gzip bomb is
    refused after inflating at most that much, never in full.
    """
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type in _PROTOBUF_TYPES:
        encoding = PROTOBUF
    elif content_type == JSON:
        encoding = JSON
    else:
        raise OtlpError(415, f"Unsupported content type {content_type or '(none)'!r}: "
                             f"send {PROTOBUF} or {JSON}.")
    limit = settings.OTLP_MAX_REQUEST_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise OtlpError(413, f"Request body is {declared} bytes; the limit is {limit}. "
                             "Lower the exporter's batch size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).")
    # request.read() rather than request.body: the OTLP cap is its own setting, independent of
    # DATA_UPLOAD_MAX_MEMORY_SIZE which governs form and JSON API bodies.
    raw = _chunked_body_read(request, limit) if _is_chunked_without_length(request) else request.read(limit + 1)
    if len(raw) > limit:
        raise OtlpError(413, f"Request body over the limit of {limit} bytes.")
    data = body_decompress(raw, (request.headers.get("Content-Encoding") or "").strip().lower())
    if not data:
        raise OtlpError(400, "Empty body: send an OTLP export request.")
    return OtlpBody(encoding=encoding, data=data)


def _is_chunked_without_length(request: HttpRequest) -> bool:
    return (not request.META.get("CONTENT_LENGTH")
            and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower())


def _chunked_body_read(request: HttpRequest, limit: int) -> bytes:
    """A `Transfer-Encoding: chunked` body (OpenTelemetry JS's OTLP/HTTP exporter always streams
    one, so the Langfuse JS SDK does too), which Django reads as empty: it trusts CONTENT_LENGTH.

    1. Behind deploy/nginx.conf the body arrives with a length (nginx buffers it), never here.
    2. A server that decodes the chunks itself and says so (`wsgi.input_terminated`: gunicorn)
       hands over wsgi.input read to its end: read it directly, at most limit + 1 bytes.
    3. Any other server (runserver) passes the chunk framing on or nothing: 411, with the fix.
    """
    if not request.META.get("wsgi.input_terminated"):
        raise OtlpError(411, "Chunked request bodies need a server that decodes them: run chatmon "
                             "behind deploy/nginx.conf (or gunicorn), or send Content-Length.")
    return request.META["wsgi.input"].read(limit + 1)


# A body may always inflate this far, whatever its ratio: small exports compress very well.
RATIO_FLOOR_BYTES = 1024 * 1024
_INFLATE_CHUNK = 64 * 1024  # compressed bytes fed to the inflater per step
# `cat a.gz b.gz` is one valid gzip body of two members; a body of thousands of empty members
# would only cost a Python loop per member, so their number is bounded too.
MAX_GZIP_MEMBERS = 64


def body_decompress(raw: bytes, content_encoding: str) -> bytes:
    """Inflate `raw` step by step, never past the cap (zlib's max_length), 413 beyond it.

    1. The cap is min(OTLP_MAX_DECOMPRESSED_BYTES, max(1 MiB, ratio × len(raw))), for the
       whole body: every gzip member counts against the same cap.
    2. Compressed input goes in 64 KiB at a time; each step may produce at most what is left
       under the cap plus one byte, so memory and CPU stop growing at the cap.
    3. A gzip member that ends before the body does is followed by the next member (RFC 1952
       §2.2), up to MAX_GZIP_MEMBERS; bytes after the end that are not a gzip member (or any
       after a deflate stream) are a 400, as is a stream that does not end. One byte past the
       cap is a 413.
    """
    if content_encoding in ("", "identity", "none"):
        return raw
    if content_encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif content_encoding == "deflate":
        # HTTP "deflate" is the zlib format; a few senders use raw deflate, which wbits<0 reads.
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        raise OtlpError(415, f"Unsupported Content-Encoding {content_encoding!r}: use gzip, deflate or none.")
    ratio = settings.OTLP_MAX_DECOMPRESSION_RATIO
    cap = min(settings.OTLP_MAX_DECOMPRESSED_BYTES, max(RATIO_FLOOR_BYTES, ratio * len(raw)))
    out = bytearray()
    offset = 0  # the next compressed byte not fed to an inflater yet
    members = 0
    try:
        while True:
            members += 1
            inflater = zlib.decompressobj(wbits)
            while not inflater.eof and offset < len(raw):
                pending = raw[offset:offset + _INFLATE_CHUNK]
                offset += len(pending)
                while pending and not inflater.eof:
                    out += inflater.decompress(pending, cap + 1 - len(out))
                    if len(out) > cap:
                        raise _inflated_too_far(cap, ratio)
                    pending = inflater.unconsumed_tail
            if not inflater.eof:
                out += inflater.flush(cap + 1 - len(out))
                if len(out) > cap:
                    raise _inflated_too_far(cap, ratio)
                if not inflater.eof:
                    raise OtlpError(400, f"The {content_encoding} body is truncated.")
            # What was fed past this member's end: the next member starts there.
            offset -= len(inflater.unused_data)
            if offset >= len(raw):
                return bytes(out)
            if content_encoding != "gzip" or raw[offset:offset + 2] != b"\x1f\x8b":
                raise OtlpError(400, f"The {content_encoding} body has {len(raw) - offset} bytes after the end of "
                                     "its compressed data that are not a gzip member.")
            if members >= MAX_GZIP_MEMBERS:
                raise OtlpError(400, f"The gzip body has more than {MAX_GZIP_MEMBERS} members.")
    except zlib.error as exc:
        raise OtlpError(400, f"The body is not valid {content_encoding} data: {exc}.") from exc


def _inflated_too_far(cap: int, ratio: int) -> OtlpError:
    return OtlpError(413, f"The body inflates to more than {cap} bytes (the limits: "
                          f"OTLP_MAX_DECOMPRESSED_BYTES, and {ratio}× the compressed size).")


def items_within_limits(message: Message) -> None:
    """OtlpError 413 when an export holds more spans or log records than one request may, or
    more elements than OTLP_MAX_ATTRIBUTES_PER_REQUEST: attributes (KeyValues, nested ones
    included), events, links, scopes and resources all count.

    Runs on the parsed message (protobuf parsing is C) before anything walks it in Python. Each
    container's length is paid from the budget before its items are visited (len() is C), so
    the walk stops at the first element past the cap: its cost is bounded by the cap, not by
    the body.
    """
    budget = settings.OTLP_MAX_ATTRIBUTES_PER_REQUEST
    spent = 0
    attribute_lists: list[Any] = []

    def spend(count: int) -> None:
        nonlocal spent
        spent += count
        if spent > budget:
            raise OtlpError(413, f"The export holds more than {budget} attributes, events and other elements "
                                 "(OTLP_MAX_ATTRIBUTES_PER_REQUEST). Send smaller batches.")

    if isinstance(message, ExportTraceServiceRequest):
        most, what, hint = settings.OTLP_MAX_SPANS_PER_REQUEST, "spans", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
        groups, items_of = message.resource_spans, "scope_spans"
    elif isinstance(message, ExportLogsServiceRequest):
        most, what, hint = settings.OTLP_MAX_LOG_RECORDS_PER_REQUEST, "log records", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"
        groups, items_of = message.resource_logs, "scope_logs"
    else:
        return
    items = 0
    spend(len(groups))
    for group in groups:
        spend(len(group.resource.attributes))
        attribute_lists.append(group.resource.attributes)
        scopes = getattr(group, items_of)
        spend(len(scopes))
        for scope in scopes:
            members = scope.spans if what == "spans" else scope.log_records
            items += len(members)
            if items > most:
                raise OtlpError(413, f"The export holds more than {most} {what} (at most {most} per request). "
                                     f"Lower the exporter's batch size ({hint}).")
            spend(len(members) + len(scope.scope.attributes))
            attribute_lists.append(scope.scope.attributes)
            for member in members:
                spend(len(member.attributes))
                attribute_lists.append(member.attributes)
                if what == "spans":
                    spend(len(member.events) + len(member.links))
                    attribute_lists.extend(event.attributes for event in member.events)
                    attribute_lists.extend(link.attributes for link in member.links)
                elif member.HasField("body"):
                    attribute_lists.append([_BodyHolder(member.body)])
    while attribute_lists:
        for kv in attribute_lists.pop():
            value = kv.value
            kind = value.WhichOneof("value")
            if kind == "kvlist_value":
                spend(len(value.kvlist_value.values))
                attribute_lists.append(value.kvlist_value.values)
            elif kind == "array_value":
                spend(len(value.array_value.values))
                attribute_lists.append([_BodyHolder(v) for v in value.array_value.values])


class _BodyHolder:
    """An AnyValue where a KeyValue is expected (log bodies, array items): walked like one."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def json_attributes_within_limit(data: bytes) -> None:
    """OtlpError 413 when OTLP JSON holds more KeyValues than OTLP_MAX_ATTRIBUTES_PER_REQUEST,
    counted on the bytes before any parsing (json.loads and ParseDict of 1.6 M tiny attributes
    take a minute and over a gigabyte). A cheap first pass: a KeyValue's member written plainly
    is `"key"`. It can also be written escaped (`"\\u006bey"`), which this pass does not see;
    json_document_attributes_within_limit counts the decoded document before ParseDict."""
    budget = settings.OTLP_MAX_ATTRIBUTES_PER_REQUEST
    found = data.count(b'"key"')
    if found > budget:
        raise OtlpError(413, f"The export holds {found} attributes; at most {budget} per request "
                             "(OTLP_MAX_ATTRIBUTES_PER_REQUEST).")


def json_document_attributes_within_limit(document: Any) -> None:
    """OtlpError 413 when the decoded OTLP JSON holds more KeyValues than the request budget,
    counted without recursion, before ParseDict (the slow part) ever sees them."""
    budget = settings.OTLP_MAX_ATTRIBUTES_PER_REQUEST
    found, pending = 0, [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            found += "key" in value
            if found > budget:
                raise OtlpError(413, f"The export holds more than {budget} attributes per request "
                                     "(OTLP_MAX_ATTRIBUTES_PER_REQUEST).")
            pending.extend(item for item in value.values() if isinstance(item, dict | list))
        elif isinstance(value, list):
            pending.extend(item for item in value if isinstance(item, dict | list))


# Paths of the OTLP JSON id fields, per signal: hex in OTLP JSON, base64 in proto3 JSON.
_ID_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _ids_hex_to_base64(value: Any) -> Any:
    """Rewrite hex trace/span ids (OTLP JSON) as base64 for json_format, everywhere they occur."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _ID_FIELDS and isinstance(item, str):
                out[key] = _hex_to_base64(item, key)
            else:
                out[key] = _ids_hex_to_base64(item)
        return out
    if isinstance(value, list):
        return [_ids_hex_to_base64(item) for item in value]
    return value


def _hex_to_base64(text: str, field_name: str) -> str:
    if text == "":
        return ""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise OtlpError(400, f"{field_name} {text[:40]!r} is not a hex string (OTLP JSON ids are hex).") from exc
    return base64.b64encode(raw).decode()


def message_parse(body: OtlpBody, message: Message) -> Message:
    """Fill `message` (an Export…ServiceRequest) from the body, or OtlpError 400."""
    if body.encoding == PROTOBUF:
        try:
            message.ParseFromString(body.data)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpError(400, f"The body is not a valid {type(message).__name__} protobuf: {exc}.") from exc
        items_within_limits(message)
        return message
    json_attributes_within_limit(body.data)
    try:
        document = json_loads_strict(body.data)
    except UnicodeDecodeError as exc:
        raise OtlpError(400, "Invalid JSON: the body is not UTF-8.") from exc
    except ValueError as exc:
        raise OtlpError(400, f"Invalid JSON: {exc}.") from exc
    json_document_attributes_within_limit(document)
    if not isinstance(document, dict):
        raise OtlpError(400, f"Expected a JSON object ({type(message).__name__}).")
    try:
        json_format.ParseDict(_ids_hex_to_base64(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError, binascii.Error) as exc:
        raise OtlpError(400, f"Not a valid OTLP JSON {type(message).__name__}: {exc}") from exc
    items_within_limits(message)
    return message


def message_response(message: Message, encoding: str, *, status: int = 200) -> HttpResponse:
    if encoding == PROTOBUF:
        return HttpResponse(message.SerializeToString(), status=status, content_type=PROTOBUF)
    document = json_format.MessageToDict(message)
    return HttpResponse(json.dumps(document), status=status, content_type=JSON)


def error_response(error: OtlpError, encoding: str) -> HttpResponse:
    """A `google.rpc.Status` with the message, as the OTLP spec asks for failed requests.

    Encoded by hand (two fields) so production needs no googleapis-common-protos.
    """
    code = _GRPC_CODE.get(error.status, 2)  # 2 = UNKNOWN
    if encoding == PROTOBUF:
        text = error.message.encode()
        body = b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
        response = HttpResponse(body, status=error.status, content_type=PROTOBUF)
    else:
        response = HttpResponse(json.dumps({"code": code, "message": error.message}),
                                status=error.status, content_type=JSON)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="chatmon"'
    return response


# HTTP status → google.rpc.Code, for the Status body.
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
