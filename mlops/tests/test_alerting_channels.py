"""Alert channels against real servers: a local HTTP server for webhooks, aiosmtpd for e-mail."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import logging
import smtplib
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import requests
from aiosmtpd.controller import Controller

from mlops.alerting.channels import (
    CHANNEL_KINDS,
    SIGNATURE_HEADER,
    Channel,
    ChannelError,
    Delivery,
    EmailChannel,
    LogChannel,
    Message,
    WebhookChannel,
    channel_class,
    channel_for,
    sign,
    verify_signature,
)
from mlops.exceptions import InvalidInput, MlopsError

SLOW_SECONDS = 1.0

MESSAGE = Message(
    event="alert.firing",
    title="[critical] drift detected on fraud-model v3",
    text="share of drifted columns 0.62 > 0.5\nsince 2024-05-01 10:00 UTC",
    severity="critical",
    url="https://modelyard.example/alerts/17",
    payload={"alert_id": 17, "model": "fraud-model", "version": 3, "value": 0.62, "threshold": 0.5},
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a real HTTP receiver -----------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records every request; the path picks the answer (/hook, /status/<n>, /redirect, /slow)."""

    def do_GET(self):
        self._answer(b"")

    def do_POST(self):
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes):
        self.server.requests.append({"method": self.command, "path": self.path, "headers": self.headers, "body": body})
        status, headers, reply = 200, {}, b"ok, thanks"
        if self.path.startswith("/status/"):
            status, reply = int(self.path.rsplit("/", 1)[1]), b"no such hook"
            if status in (429, 503):
                headers["Retry-After"] = "30"
        elif self.path == "/redirect":
            status, headers = 302, {"Location": f"http://127.0.0.1:{self.server.server_port}/target"}
        elif self.path == "/slow":
            time.sleep(SLOW_SECONDS)
        elif self.path == "/long":
            reply = b"x" * 100_000
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        try:
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):  # the channel stopped reading (timeout, excerpt read)
            pass

    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def hook(server, path="/hook", *, secret="", **config) -> WebhookChannel:
    """A webhook channel to the local receiver (allow_private: the receiver is on loopback)."""
    return WebhookChannel(
        {"url": f"http://127.0.0.1:{server.server_port}{path}", **config}, secret=secret, allow_private=True
    )


# -- webhook: what is sent ----------------------------------------------------------------------


def test_json_body_round_trips_with_the_headers(web):
    channel = hook(web, headers={"Authorization": "Bearer abc"})
    delivery = channel.send(MESSAGE)

    assert delivery == Delivery(status_code=200, detail="ok, thanks")
    (request,) = web.requests
    assert request["method"] == "POST"
    assert request["path"] == "/hook"
    assert json.loads(request["body"]) == MESSAGE.as_json()
    assert set(json.loads(request["body"])) == {"event", "title", "text", "severity", "url", "payload"}
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Modelyard-Webhook/1"
    assert headers["X-Modelyard-Event"] == "alert.firing"
    assert headers["Authorization"] == "Bearer abc"
    assert SIGNATURE_HEADER not in headers  # no secret, no signature


def test_payload_values_json_cannot_carry_still_make_valid_json(web):
    message = Message("alert.test", "a test", "", payload={"p_value": float("nan"), "when": time.gmtime(0)[:3]})
    hook(web).send(message)
    body = json.loads(web.requests[0]["body"])
    assert body["payload"] == {"p_value": None, "when": [1970, 1, 1]}


def test_delivery_detail_is_a_short_excerpt_of_the_answer(web):
    delivery = hook(web, "/long").send(MESSAGE)
    assert delivery.status_code == 200
    assert delivery.detail == "x" * 200


def test_signature_verifies_and_fails_on_wrong_secret_tampering_and_age(web):
    before = int(time.time())
    hook(web, secret="s3cret").send(MESSAGE)
    request = web.requests[0]
    header, body = request["headers"][SIGNATURE_HEADER], request["body"]
    timestamp = int(header.split(",")[0].removeprefix("t="))

    assert before <= timestamp <= time.time()
    assert verify_signature("s3cret", body, header)
    assert not verify_signature("wrong", body, header)
    assert not verify_signature("s3cret", body.replace(b"0.62", b"0.12"), header)
    assert verify_signature("s3cret", body, header, now=timestamp + 299)
    assert not verify_signature("s3cret", body, header, now=timestamp + 301)  # a replay
    assert not verify_signature("s3cret", body, header, now=timestamp - 301)
    assert not verify_signature("", body, header)
    assert not verify_signature("s3cret", body, "garbage")


def test_sign_follows_the_published_recipe():
    expected = hmac.new(b"key", b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign("key", b'{"a":1}', 1700000000) == f"t=1700000000,v1={expected}"
    # A receiver rotating secrets may see two v1 values; either one matching is enough.
    rotated = f"t=1700000000,v1={'0' * 64},v1={expected}"
    assert verify_signature("key", b'{"a":1}', rotated, now=1700000010)


def test_slack_format_posts_text_with_title_text_and_link(web):
    message = Message("alert.resolved", "drift on <fraud> & co resolved", "back to normal", url="https://m.example/a/1")
    hook(web, format="slack").send(message)
    body = json.loads(web.requests[0]["body"])
    assert body == {"text": "drift on &lt;fraud&gt; &amp; co resolved\nback to normal\nhttps://m.example/a/1"}
    assert web.requests[0]["headers"]["X-Modelyard-Event"] == "alert.resolved"


# -- webhook: failures --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_server_errors_timeouts_and_rate_limits_are_transient(web, status):
    with pytest.raises(ChannelError) as caught:
        hook(web, f"/status/{status}").send(MESSAGE)
    assert caught.value.permanent is False
    assert caught.value.status_code == status
    assert isinstance(caught.value, MlopsError)
    assert caught.value.code == "channel_error"
    if status in (429, 503):
        assert caught.value.details["retry_after"] == "30"


@pytest.mark.parametrize("status", [404, 400, 410])
def test_other_client_errors_are_permanent(web, status):
    with pytest.raises(ChannelError) as caught:
        hook(web, f"/status/{status}").send(MESSAGE)
    assert caught.value.permanent is True
    assert caught.value.status_code == status
    assert "no such hook" in caught.value.message


def test_redirects_are_permanent_and_not_followed(web):
    with pytest.raises(ChannelError) as caught:
        hook(web, "/redirect").send(MESSAGE)
    assert caught.value.permanent is True
    assert caught.value.status_code == 302
    assert f"http://127.0.0.1:{web.server_port}/target" in caught.value.message
    assert [request["path"] for request in web.requests] == ["/redirect"]


def test_a_server_slower_than_the_timeout_is_transient(web):
    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        hook(web, "/slow", timeout=0.2).send(MESSAGE)
    assert time.monotonic() - started < SLOW_SECONDS
    assert caught.value.permanent is False
    assert caught.value.status_code is None


def test_nobody_listening_is_transient():
    channel = WebhookChannel({"url": f"http://127.0.0.1:{free_port()}/hook"}, allow_private=True)
    with pytest.raises(ChannelError) as caught:
        channel.send(MESSAGE)
    assert caught.value.permanent is False


# -- webhook: private destinations --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest",
        "http://[::1]:{port}/",
        "http://[::ffff:10.0.0.1]/",  # IPv4-mapped private
        "http://[2002:a00:1::]/",  # 6to4 address embedding 10.0.0.1
        "http://100.64.0.1/",  # shared address space (carrier NAT)
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",  # 127.0.0.1 as one number
    ],
)
def test_private_destinations_are_refused_before_connecting(web, url):
    channel = WebhookChannel({"url": url.format(port=web.server_port)})
    with pytest.raises(ChannelError) as caught:
        channel.send(MESSAGE)
    assert caught.value.permanent is True
    assert "refused" in caught.value.message
    assert web.requests == []


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> None:
    """Answer the given names with the given IPv4 addresses; every other name goes to the real resolver."""
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)


def test_a_public_destination_passes_the_guard(web, monkeypatch):
    """A name resolving to public addresses is sent to, here through the local receiver as egress proxy."""
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.215.14"]})
    session = requests.Session()
    session.proxies = {"http": f"http://127.0.0.1:{web.server_port}"}
    channel = WebhookChannel({"url": "http://hooks.example.com/hook"}, session=session)
    assert channel.send(MESSAGE).status_code == 200
    assert [request["path"] for request in web.requests] == ["http://hooks.example.com/hook"]


def test_a_name_with_any_private_address_is_refused(monkeypatch):
    """DNS answering a public and a private address: one private address is enough to refuse."""
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.215.14", "10.1.2.3"]})
    with pytest.raises(ChannelError) as caught:
        WebhookChannel({"url": "https://hooks.example.com/x"}).send(MESSAGE)
    assert caught.value.permanent is True
    assert caught.value.details["address"] == "10.1.2.3"


def test_an_unresolvable_host_is_transient(monkeypatch):
    def resolver(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(ChannelError) as caught:
        WebhookChannel({"url": "https://hooks.example.com/x"}).send(MESSAGE)
    assert caught.value.permanent is False


# -- webhook: config ----------------------------------------------------------------------------


def test_webhook_validate_fills_in_defaults():
    assert WebhookChannel.validate({"url": " https://hooks.example.com/x "}) == {
        "url": "https://hooks.example.com/x",
        "format": "json",
        "timeout": 5.0,
        "headers": {},
    }


@pytest.mark.parametrize(
    ("config", "bad_field"),
    [
        ({}, "url"),
        ({"url": "ftp://files.example.com/x"}, "url"),
        ({"url": "http://user:pw@hooks.example.com/"}, "url"),
        ({"url": "http:///no-host"}, "url"),
        ({"url": "https://hooks.example.com:99999/"}, "url"),
        ({"url": "https://hooks.example.com/a b"}, "url"),
        ({"url": "https://hooks.example.com/", "format": "xml"}, "format"),
        ({"url": "https://hooks.example.com/", "timeout": 0}, "timeout"),
        ({"url": "https://hooks.example.com/", "timeout": 31}, "timeout"),
        ({"url": "https://hooks.example.com/", "timeout": "5"}, "timeout"),
        ({"url": "https://hooks.example.com/", "timeout": True}, "timeout"),
        ({"url": "https://hooks.example.com/", "headers": {"X-Modelyard-Signature": "forged"}}, "headers"),
        ({"url": "https://hooks.example.com/", "headers": {"X-Token": "a\r\nHost: evil"}}, "headers"),
        ({"url": "https://hooks.example.com/", "headers": {"Bad Name": "x"}}, "headers"),
        ({"url": "https://hooks.example.com/", "retries": 3}, "retries"),
    ],
)
def test_webhook_validate_names_the_bad_field(config, bad_field):
    with pytest.raises(InvalidInput) as caught:
        WebhookChannel.validate(config)
    assert caught.value.details["field"] == bad_field
    assert bad_field in caught.value.message
    with pytest.raises(InvalidInput):
        WebhookChannel(config)


# -- email through a real SMTP server -----------------------------------------------------------


class Mailbox:
    """aiosmtpd handler: keeps what it accepts; refuses nobody@ (550) and defers later@ (451)."""

    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield mailbox, controller.port
    controller.stop()


def smtp_send_mail(port: int):
    """send_mail(subject, body, recipients) over smtplib, standing in for Django's email backend."""

    def send_mail(subject: str, body: str, recipients: list[str]) -> None:
        mail = EmailMessage()
        mail["Subject"], mail["From"], mail["To"] = subject, "modelyard@example.com", ", ".join(recipients)
        mail.set_content(body)
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.send_message(mail)

    return send_mail


def test_email_arrives_with_subject_and_body(smtp):
    mailbox, port = smtp
    mailbox.messages.clear()
    config = {"to": ["ops@example.com", "ml@example.com"], "subject_prefix": "[Modelyard]"}
    delivery = EmailChannel(config, send_mail=smtp_send_mail(port)).send(MESSAGE)

    assert delivery.status_code is None
    assert "ops@example.com" in delivery.detail
    ((recipients, mail),) = mailbox.messages
    assert recipients == ["ops@example.com", "ml@example.com"]
    assert mail["Subject"] == "[Modelyard] [critical] drift detected on fraud-model v3"
    body = mail.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line ends
    assert MESSAGE.text in body
    assert MESSAGE.url in body


def test_a_refused_recipient_is_permanent_and_a_deferred_one_transient(smtp):
    _, port = smtp
    with pytest.raises(ChannelError) as refused:
        EmailChannel({"to": ["nobody@example.com"]}, send_mail=smtp_send_mail(port)).send(MESSAGE)
    assert refused.value.permanent is True
    assert "550" in refused.value.message

    with pytest.raises(ChannelError) as deferred:
        EmailChannel({"to": ["later@example.com"]}, send_mail=smtp_send_mail(port)).send(MESSAGE)
    assert deferred.value.permanent is False


def test_no_mail_server_is_transient():
    channel = EmailChannel({"to": ["ops@example.com"]}, send_mail=smtp_send_mail(free_port()))
    with pytest.raises(ChannelError) as caught:
        channel.send(MESSAGE)
    assert caught.value.permanent is False


def test_email_without_send_mail_is_permanent():
    with pytest.raises(ChannelError) as caught:
        EmailChannel({"to": ["ops@example.com"]}).send(MESSAGE)
    assert caught.value.permanent is True


def test_a_newline_in_the_title_cannot_inject_headers():
    sent = []
    message = Message("alert.test", "hello\r\nBcc: everyone@example.com", "body")
    EmailChannel({"to": ["ops@example.com"]}, send_mail=lambda *args: sent.append(args)).send(message)
    assert sent == [("hello Bcc: everyone@example.com", "body\n", ["ops@example.com"])]


@pytest.mark.parametrize(
    ("config", "bad_field"),
    [
        ({}, "to"),
        ({"to": []}, "to"),
        ({"to": "ops@example.com"}, "to"),
        ({"to": ["not-an-address"]}, "to"),
        ({"to": ["ops@example.com", "two@@example.com"]}, "to"),
        ({"to": ["a@x\r\nBcc: b@y"]}, "to"),
        ({"to": ["ops@example.com"], "subject_prefix": "a\nb"}, "subject_prefix"),
        ({"to": ["ops@example.com"], "cc": ["x@example.com"]}, "cc"),
    ],
)
def test_email_validate_names_the_bad_field(config, bad_field):
    with pytest.raises(InvalidInput) as caught:
        EmailChannel.validate(config)
    assert caught.value.details["field"] == bad_field


def test_email_validate_cleans_the_addresses():
    assert EmailChannel.validate({"to": [" a@x ", "ops@example.com", "a@x"]}) == {
        "to": ["a@x", "ops@example.com"],
        "subject_prefix": "",
    }


# -- log ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level"), [("info", logging.INFO), ("warning", logging.WARNING), ("critical", logging.ERROR)]
)
def test_log_channel_writes_at_the_severity_level(caplog, severity, level):
    caplog.set_level(logging.INFO, logger="modelyard.alerts")
    message = Message("alert.firing", f"[{severity}] latency", "p95 above 300 ms", severity=severity)
    LogChannel({}).send(message)
    (record,) = [record for record in caplog.records if record.name == "modelyard.alerts"]
    assert record.levelno == level
    assert "latency" in record.getMessage()
    assert "p95 above 300 ms" in record.getMessage()
    assert record.alert_event == "alert.firing"


def test_log_channel_uses_the_configured_logger(caplog):
    caplog.set_level(logging.INFO, logger="ops.pager")
    delivery = channel_for("log", {"logger": "ops.pager"}).send(MESSAGE)
    assert delivery.detail == "logged to ops.pager"
    assert [(record.name, record.levelno) for record in caplog.records] == [("ops.pager", logging.ERROR)]


# -- messages and the registry ------------------------------------------------------------------


def test_message_rejects_an_unknown_severity_or_event():
    with pytest.raises(InvalidInput) as caught:
        Message("alert.firing", "t", "x", severity="error")
    assert caught.value.details["field"] == "severity"
    with pytest.raises(InvalidInput):
        Message("alert firing\r\nX-Evil: 1", "t", "x")


def test_registry_builds_every_kind():
    assert CHANNEL_KINDS == ("log", "email", "webhook")
    for kind in CHANNEL_KINDS:
        assert issubclass(channel_class(kind), Channel)
        assert channel_class(kind).kind == kind
    channel = channel_for("webhook", {"url": "https://hooks.example.com/x"}, secret="s", send_mail=print)
    assert isinstance(channel, WebhookChannel)
    assert isinstance(channel_for("email", {"to": ["a@x"]}, send_mail=print), EmailChannel)


def test_registry_refuses_unknown_kinds_and_options():
    with pytest.raises(InvalidInput) as caught:
        channel_for("pager", {})
    assert caught.value.details["field"] == "kind"
    with pytest.raises(TypeError):
        channel_for("log", {}, allow_privat=True)
