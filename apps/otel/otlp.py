"""OTLP/HTTP wire format: reading export requests and writing their responses.

Follows the OTLP specification (opentelemetry.io/docs/specs/otlp/#otlphttp):
- bodies are `application/x-protobuf` or `application/json` (proto3 JSON mapping with the OTLP
  exceptions: trace and span ids are hex strings, not base64; enum values may be integers);
- `Content-Encoding: gzip` (and `deflate`, which the Python exporter also offers);
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

    The wire size is capped by OTLP_MAX_REQUEST_BYTES before anything is read, and the
    decompressed size by OTLP_MAX_DECOMPRESSED_BYTES while inflating, so a small gzip bomb is
    refused without being expanded.
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
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise OtlpError(413, f"Request body over the limit of {limit} bytes.")
    data = _decompress(raw, (request.headers.get("Content-Encoding") or "").strip().lower())
    if not data:
        raise OtlpError(400, "Empty body: send an OTLP export request.")
    return OtlpBody(encoding=encoding, data=data)


def _decompress(raw: bytes, content_encoding: str) -> bytes:
    if content_encoding in ("", "identity", "none"):
        return raw
    if content_encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif content_encoding == "deflate":
        # HTTP "deflate" is the zlib format; a few senders use raw deflate, which wbits<0 reads.
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        raise OtlpError(415, f"Unsupported Content-Encoding {content_encoding!r}: use gzip, deflate or none.")
    limit = settings.OTLP_MAX_DECOMPRESSED_BYTES
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(raw, limit + 1)
        if len(data) <= limit and not inflater.unconsumed_tail:
            data += inflater.flush()
    except zlib.error as exc:
        raise OtlpError(400, f"The body is not valid {content_encoding} data: {exc}.") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise OtlpError(413, f"The body inflates to more than {limit} bytes.")
    if not inflater.eof:
        raise OtlpError(400, f"The {content_encoding} body is truncated.")
    return data


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
        return message
    try:
        document = json_loads_strict(body.data)
    except UnicodeDecodeError as exc:
        raise OtlpError(400, "Invalid JSON: the body is not UTF-8.") from exc
    except ValueError as exc:
        raise OtlpError(400, f"Invalid JSON: {exc}.") from exc
    if not isinstance(document, dict):
        raise OtlpError(400, f"Expected a JSON object ({type(message).__name__}).")
    try:
        json_format.ParseDict(_ids_hex_to_base64(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError, binascii.Error) as exc:
        raise OtlpError(400, f"Not a valid OTLP JSON {type(message).__name__}: {exc}") from exc
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
