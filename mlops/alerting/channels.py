"""Alert channels: one transport class per kind behind one base, looked up by kind.

A Channel is built from its stored config (validated on the way in, so a bad config fails where it
is saved, not when an alert fires) and delivers a Message. Failures raise ChannelError, whose
`permanent` flag tells the caller (a Celery task) whether a retry can help. Web-side dependencies
are injected: the email channel gets Django's send_mail from its caller, so this module stays
framework-free.

The webhook channel refuses private destinations (loopback, RFC 1918, link-local such as the cloud
metadata address...) unless told otherwise, never follows redirects, and signs its body Stripe-style
when it has a secret; receivers check the header with `verify_signature`. The address check runs
on the addresses the host resolves to just before sending; requests resolves the name again when
it connects, so a DNS server that answers differently the second time (DNS rebinding) is only
stopped by an egress proxy or firewall, not by this check.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import importlib
import ipaddress
import json
import logging
import math
import re
import smtplib
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from mlops.exceptions import InvalidInput, MlopsError

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
USER_AGENT = "Modelyard-Webhook/1"
SIGNATURE_HEADER = "X-Modelyard-Signature"
EVENT_HEADER = "X-Modelyard-Event"
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 30.0
MAX_URL_LENGTH = 2048
MAX_RECIPIENTS = 50
MAX_HEADERS = 20
EXCERPT_CHARS = 200
_EXCERPT_BYTES = 1024  # enough for EXCERPT_CHARS of UTF-8; the rest of a response is never read
DEFAULT_LOGGER = "modelyard.alerts"

_EVENT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
# Deliberately loose: one @, no spaces or characters that would split an address list or a header.
_ADDRESS_RE = re.compile(r'^[^@\s<>(),;:"\[\]\\]+@[^@\s<>(),;:"\[\]\\.]+(\.[^@\s<>(),;:"\[\]\\.]+)*$')
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Headers the webhook sets itself; a config may not override them (or forge a signature).
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "user-agent"})
_RESERVED_HEADER_PREFIX = "x-modelyard-"
# Addresses that translate to an embedded IPv4 address (NAT64 well-known prefix, RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# -- messages and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What a channel delivers: an alert firing/resolving, a test, or a registry event."""

    event: str
    title: str
    text: str
    severity: str = "info"
    url: str = ""
    payload: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not isinstance(self.event, str) or not _EVENT_RE.match(self.event):
            raise _bad_message(
                "event", f"a message event must be a dotted name like 'alert.firing', not {self.event!r}"
            )
        if self.severity not in SEVERITIES:
            raise _bad_message("severity", f"a message severity must be one of {SEVERITIES}, not {self.severity!r}")
        for name in ("title", "text", "url"):
            if not isinstance(getattr(self, name), str):
                raise _bad_message(name, f"a message {name} must be a string")
        if not isinstance(self.payload, Mapping):
            raise _bad_message("payload", "a message payload must be a mapping")
        object.__setattr__(self, "payload", dict(self.payload))

    def as_json(self) -> dict:
        """The stable JSON body of a webhook: these six keys, with a payload json.dumps always accepts.

        Values JSON cannot carry become strings, and NaN / infinities (a drift statistic can be NaN)
        become null, so that the body stays valid JSON.
        """
        return {
            "event": self.event,
            "title": self.title,
            "text": self.text,
            "severity": self.severity,
            "url": self.url,
            "payload": _json_safe(copy.deepcopy(self.payload)),
        }


@dataclass(frozen=True)
class Delivery:
    """A successful send: the HTTP status for webhooks, and a short note of where it went."""

    status_code: int | None = None
    detail: str = ""


class ChannelError(MlopsError):
    """A channel could not deliver a message.

    `permanent=True` means retrying cannot help (bad config, a 4xx other than 408/429, a refused
    private address); otherwise the caller may retry later. `status_code` is the HTTP status, if any.
    """

    code = "channel_error"
    status = 502

    def __init__(
        self, message: str, *, permanent: bool = False, status_code: int | None = None, details: dict | None = None
    ):
        super().__init__(message, details={"permanent": permanent, "status_code": status_code, **(details or {})})
        self.permanent = permanent
        self.status_code = status_code


# -- channels -----------------------------------------------------------------------------------

# Every option some channel kind accepts: channel_for passes the same options to any kind, so a
# channel ignores the options of other kinds but rejects names that no kind knows (typos).
_KNOWN_OPTIONS = frozenset({"send_mail", "secret", "allow_private", "session"})


class Channel(ABC):
    """Base of the transports: validates its config when built, then `send`s messages."""

    kind: ClassVar[str]

    def __init__(self, config: Mapping | None, **options):
        unknown = sorted(set(options) - _KNOWN_OPTIONS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown options {unknown}")
        self.config = self.validate(config)

    @abstractmethod
    def send(self, message: Message) -> Delivery:
        """Deliver one message; raises ChannelError when it could not."""

    @classmethod
    def validate(cls, config: Mapping | None) -> dict:
        """The cleaned config (defaults filled in); raises InvalidInput naming the bad field."""
        return _check_keys(cls.kind, config, ())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class LogChannel(Channel):
    """Writes the message to a logger, at WARNING for warnings, ERROR for critical, INFO otherwise."""

    kind = "log"
    LEVELS: ClassVar[dict[str, int]] = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}

    @classmethod
    def validate(cls, config: Mapping | None) -> dict:
        config = _check_keys(cls.kind, config, ("logger",))
        name = config.get("logger", DEFAULT_LOGGER)
        if not isinstance(name, str) or not name.strip():
            raise _bad_config(cls.kind, "logger", "must be a non-empty logger name")
        return {"logger": name.strip()}

    def send(self, message: Message) -> Delivery:
        name = self.config["logger"]
        lines = [message.title, message.text, message.url]
        logging.getLogger(name).log(
            self.LEVELS[message.severity],
            "%s",
            "\n".join(line for line in lines if line),
            extra={"alert_event": message.event, "alert_severity": message.severity, "alert_payload": message.payload},
        )
        return Delivery(detail=f"logged to {name}")


SendMail = Callable[[str, str, list[str]], None]


class EmailChannel(Channel):
    """Sends the message through an injected send_mail(subject, body, recipients), Django's in the app."""

    kind = "email"

    def __init__(self, config: Mapping | None, *, send_mail: SendMail | None = None, **options):
        super().__init__(config, **options)
        self._send_mail = send_mail

    @classmethod
    def validate(cls, config: Mapping | None) -> dict:
        config = _check_keys(cls.kind, config, ("to", "subject_prefix"))
        if "to" not in config:
            raise _bad_config(cls.kind, "to", "is required: a list of e-mail addresses")
        to = config["to"]
        if not isinstance(to, list | tuple) or not to:
            raise _bad_config(cls.kind, "to", "must be a non-empty list of e-mail addresses")
        recipients: list[str] = []
        for position, address in enumerate(to):
            if not isinstance(address, str) or not _ADDRESS_RE.match(address.strip()):
                raise _bad_config(cls.kind, "to", f"entry {position} ({address!r}) is not an e-mail address")
            if address.strip() not in recipients:
                recipients.append(address.strip())
        if len(recipients) > MAX_RECIPIENTS:
            raise _bad_config(cls.kind, "to", f"names more than {MAX_RECIPIENTS} addresses")
        prefix = config.get("subject_prefix", "")
        if not isinstance(prefix, str) or _CONTROL_RE.search(prefix) or len(prefix) > 100:
            raise _bad_config(cls.kind, "subject_prefix", "must be one line of at most 100 characters")
        return {"to": recipients, "subject_prefix": prefix.strip()}

    def send(self, message: Message) -> Delivery:
        if self._send_mail is None:
            raise ChannelError("the email channel was built without a send_mail function", permanent=True)
        recipients = list(self.config["to"])
        # One line whatever the title holds: a newline in a subject is a header injection.
        subject = " ".join(f"{self.config['subject_prefix']} {message.title}".split())
        body = f"{message.text}\n\n{message.url}\n" if message.url else f"{message.text}\n"
        try:
            self._send_mail(subject, body, recipients)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError) as exc:
            # Permanent, unless every code the server gave is a 4xx ("try again later").
            permanent = not _all_temporary(exc)
            raise ChannelError(
                f"the mail server refused the message: {_smtp_reason(exc)}", permanent=permanent
            ) from exc
        except OSError as exc:  # connection problems and every other smtplib.SMTPException
            raise ChannelError(f"sending mail failed: {_smtp_reason(exc)}") from exc
        logger.info("alert %s mailed to %d recipient(s)", message.event, len(recipients))
        return Delivery(detail=f"mailed to {', '.join(recipients)}")


class WebhookChannel(Channel):
    """POSTs the message as JSON (or a Slack incoming-webhook body) to a public http(s) URL."""

    kind = "webhook"
    FORMATS = ("json", "slack")

    def __init__(
        self,
        config: Mapping | None,
        *,
        secret: str = "",
        allow_private: bool = False,
        session: requests.Session | None = None,
        **options,
    ):
        super().__init__(config, **options)
        if not isinstance(secret, str):
            raise InvalidInput(
                "a webhook secret must be a string", code="invalid_channel_config", details={"field": "secret"}
            )
        self._secret = secret
        self._allow_private = allow_private
        self._session = session

    @classmethod
    def validate(cls, config: Mapping | None) -> dict:
        config = _check_keys(cls.kind, config, ("url", "format", "timeout", "headers"))
        if "url" not in config:
            raise _bad_config(cls.kind, "url", "is required")
        url = _check_url(config["url"])
        fmt = config.get("format", "json")
        if fmt not in cls.FORMATS:
            raise _bad_config(cls.kind, "format", f"must be one of {cls.FORMATS}, not {fmt!r}")
        timeout = config.get("timeout", DEFAULT_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            raise _bad_config(cls.kind, "timeout", f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
        return {"url": url, "format": fmt, "timeout": float(timeout), "headers": _check_headers(config.get("headers"))}

    def body(self, message: Message) -> bytes:
        """The exact bytes POSTed (and signed) for this message."""
        if self.config["format"] == "slack":
            lines = [_slack_escape(message.title), _slack_escape(message.text), message.url]
            document: dict[str, Any] = {"text": "\n".join(line for line in lines if line)}
        else:
            document = message.as_json()
        return json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8")

    def send(self, message: Message) -> Delivery:
        url = self.config["url"]
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not self._allow_private:
            _refuse_private(host, parts.port or (443 if parts.scheme == "https" else 80))
        body = self.body(message)
        headers = {
            **self.config["headers"],
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: message.event,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body, int(time.time()))
        session = requests.Session() if self._session is None else self._session
        try:
            with session.post(
                url, data=body, headers=headers, timeout=self.config["timeout"], allow_redirects=False, stream=True
            ) as response:
                excerpt = _excerpt(response)
                return self._outcome(message, host, response, excerpt)
        except requests.Timeout as exc:
            raise ChannelError(f"the webhook at {host} did not answer within {self.config['timeout']:g}s") from exc
        except requests.RequestException as exc:
            raise ChannelError(f"the webhook at {host} could not be reached: {type(exc).__name__}") from exc
        finally:
            if self._session is None:
                session.close()

    def _outcome(self, message: Message, host: str, response: requests.Response, excerpt: str) -> Delivery:
        status = response.status_code
        if 200 <= status < 300:
            logger.info("alert %s delivered to webhook at %s (%d)", message.event, host, status)
            return Delivery(status_code=status, detail=excerpt)
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise ChannelError(
                f"the webhook at {host} redirected ({status}) to {location or 'nowhere'}; redirects are not followed",
                permanent=True,
                status_code=status,
                details={"location": location},
            )
        details: dict[str, Any] = {"response": excerpt}
        if response.headers.get("Retry-After"):
            details["retry_after"] = response.headers["Retry-After"]
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise ChannelError(
            f"the webhook at {host} answered {status}" + (f": {excerpt}" if excerpt else ""),
            permanent=permanent,
            status_code=status,
            details=details,
        )


# -- signatures ---------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Modelyard-Signature value: "t=<ts>,v1=<hex HMAC-SHA256 of '<ts>.' + body>" (Stripe style)."""
    digest = hmac.new(secret.encode("utf-8"), f"{int(timestamp)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={digest}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """Whether `header` signs `body` with `secret` within `tolerance` seconds of `now`.

    Compares in constant time, accepts any of several v1 values (secret rotation) and rejects an
    empty secret, a malformed header and timestamps too far in the past or future (replays).
    """
    if not secret or not isinstance(header, str):
        return False
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and re.fullmatch(r"[0-9]{1,12}", value):
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    # Check every candidate so that timing does not reveal which one matched.
    matches = [hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates]
    return any(matches)


# -- registry -----------------------------------------------------------------------------------

# Kind -> "module:Class", imported on first use so a channel may live in a module of its own.
_CHANNELS: dict[str, str] = {
    "log": f"{__name__}:LogChannel",
    "email": f"{__name__}:EmailChannel",
    "webhook": f"{__name__}:WebhookChannel",
}
CHANNEL_KINDS: tuple[str, ...] = tuple(_CHANNELS)
_loaded: dict[str, type[Channel]] = {}


def channel_class(kind: str) -> type[Channel]:
    """The Channel class of a kind (the admin form calls its `validate`); unknown kind -> InvalidInput."""
    if kind not in _CHANNELS:
        raise InvalidInput(
            f"unknown channel kind {kind!r}; expected one of {CHANNEL_KINDS}",
            code="invalid_channel_config",
            details={"field": "kind"},
        )
    if kind not in _loaded:
        module, _, name = _CHANNELS[kind].partition(":")
        _loaded[kind] = getattr(importlib.import_module(module), name)
    return _loaded[kind]


def channel_for(kind: str, config: Mapping | None, **options) -> Channel:
    """A ready channel of that kind; raises InvalidInput for an unknown kind or a bad config."""
    return channel_class(kind)(config, **options)


# -- helpers ------------------------------------------------------------------------------------


def _bad_message(name: str, message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_message", details={"field": name})


def _bad_config(kind: str, name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{kind} channel: {name!r} {problem}", code="invalid_channel_config", details={"field": name})


def _check_keys(kind: str, config: Mapping | None, allowed: tuple[str, ...]) -> dict:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise _bad_config(kind, "config", "must be a mapping")
    for key in config:
        if key not in allowed:
            raise _bad_config(kind, str(key), f"is not a setting of this channel (settings: {list(allowed)})")
    return dict(config)


def _check_url(url: object) -> str:
    kind = WebhookChannel.kind
    if not isinstance(url, str) or not url.strip():
        raise _bad_config(kind, "url", "must be an http or https URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH or _CONTROL_RE.search(url) or " " in url:
        raise _bad_config(kind, "url", f"must be one URL without spaces, at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _bad_config(kind, "url", f"is not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise _bad_config(kind, "url", f"must use http or https, not {parts.scheme or 'no scheme'}")
    if not parts.hostname:
        raise _bad_config(kind, "url", "has no host")
    if parts.username is not None or parts.password is not None:
        raise _bad_config(kind, "url", "must not carry credentials (user:password@); use a header or the secret")
    return url


def _check_headers(headers: object) -> dict[str, str]:
    kind = WebhookChannel.kind
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise _bad_config(kind, "headers", "must be a mapping of header names to strings")
    if len(headers) > MAX_HEADERS:
        raise _bad_config(kind, "headers", f"may hold at most {MAX_HEADERS} headers")
    cleaned = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
            raise _bad_config(kind, "headers", f"{name!r} is not a valid header name")
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith(_RESERVED_HEADER_PREFIX):
            raise _bad_config(kind, "headers", f"{name!r} is set by the channel itself")
        if not isinstance(value, str) or _CONTROL_RE.search(value):
            raise _bad_config(kind, "headers", f"the value of {name!r} must be a one-line string")
        cleaned[name] = value
    return cleaned


def _refusal(address: str) -> str | None:
    """Why a resolved address is not a public destination, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 scope ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = _refusal(str(embedded))
            return f"{reason} (embedded in {ip})" if reason else None
    for reason in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{reason}"):
            return reason.replace("_", "-")
    if not ip.is_global:  # shared address space 100.64/10 and other special-purpose blocks
        return "not globally routable"
    return None


def _refuse_private(host: str, port: int) -> None:
    """Raise ChannelError unless every address `host` resolves to is public; connects to nothing."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise ChannelError(f"the webhook host {host!r} is not a valid host name", permanent=True) from exc
    except OSError as exc:  # socket.gaierror: unknown name, or no DNS right now
        raise ChannelError(f"the webhook host {host!r} could not be resolved: {exc}") from exc
    for info in infos:
        address = str(info[4][0])
        reason = _refusal(address)
        if reason:
            raise ChannelError(
                f"the webhook host {host!r} resolves to {address}, a {reason} address, which is refused",
                permanent=True,
                details={"address": address},
            )


def _excerpt(response: requests.Response) -> str:
    """The first EXCERPT_CHARS characters of the response body, reading at most _EXCERPT_BYTES."""
    try:
        head = next(response.iter_content(chunk_size=_EXCERPT_BYTES), b"")
    except requests.RequestException:
        return ""
    return head[:_EXCERPT_BYTES].decode("utf-8", errors="replace").strip()[:EXCERPT_CHARS]


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack asks (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item) for item in value]
    return str(value)


def _smtp_codes(exc: Exception) -> list[int]:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return [code for code, _ in exc.recipients.values()]
    code = getattr(exc, "smtp_code", None)
    return [code] if isinstance(code, int) else []


def _all_temporary(exc: Exception) -> bool:
    codes = _smtp_codes(exc)
    return bool(codes) and all(400 <= code < 500 for code in codes)


def _smtp_reason(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {_text(reply)}" for address, (code, reply) in sorted(exc.recipients.items())
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)
