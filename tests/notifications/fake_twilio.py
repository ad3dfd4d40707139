"""A fake Twilio REST API on 127.0.0.1: a real HTTP server in a thread, scripted per test.

Implements what Segmint uses of the Messages resource:
  POST /2010-04-01/Accounts/{sid}/Messages.json  (create; answer taken from the script)
  GET  /2010-04-01/Accounts/{sid}/Messages.json  (list, newest first, filtered by To)
with HTTP basic auth (wrong credentials: 401, code 20003, like Twilio). Every request is
recorded. Script actions, consumed one per POST (per recipient when scripted with `to=`), and
"success" once the script is empty:
  "success"        201 with a new message (status queued)
  "429" / "500"    Twilio's error JSON with that status (codes 20429 / 20500); nothing created
  "500_created"    the message IS created, then answered with the 500 error JSON
  "500_created_down"  like "500_created", but the server stops listening before it answers
                   (an outage: every later connection is refused until `restart()`)
  "21610", "21211", "21614"   400 with that error code; nothing created
  "timeout"        the message IS created, then the answer is held for `hold_seconds` (longer
                   than the client's timeout): the client cannot know whether it was sent
  "timeout_lost"   held the same way but nothing created
GET (list) requests consume their own script (`script_list`, "429" / "500" only) the same way.
`on_create(form)`, when set, is called in the server's thread as a create request arrives,
before it is answered (something else happening while a send is in flight); `after_create(message)`
is called once a message is created, before the answer is sent (Twilio calling back early).
With `prefix="/proxy"` the server answers under that path (a Twilio API behind a proxy path).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC\w+)/Messages\.json$")
ERRORS = {
    "429": (429, 20429, "Too Many Requests"),
    "500": (500, 20500, "Internal Server Error"),
    "21610": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "21211": (400, 21211, "The 'To' number is not a valid phone number."),
    "21614": (400, 21614, "'To' number is not a valid mobile number"),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    authorized: bool
    at: float = field(default_factory=time.monotonic)


class FakeTwilio:
    def __init__(self, *, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 hold_seconds: float = 2.0, prefix: str = "") -> None:
        self.account_sid, self.auth_token, self.hold_seconds = account_sid, auth_token, hold_seconds
        self.prefix = prefix
        self.on_create: Callable[[dict[str, str]], None] | None = None
        self.after_create: Callable[[dict[str, Any]], None] | None = None
        self._list_script: deque[str] = deque()
        self.requests: list[Recorded] = []
        self.messages: list[dict[str, Any]] = []
        self._script: deque[str] = deque()
        self._per_recipient: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._handler: type[BaseHTTPRequestHandler] | None = None
        self._port = 0

    # -- test-facing API -------------------------------------------------------------------
    def script(self, *actions: str, to: str | None = None) -> None:
        with self._lock:
            for action in actions:
                if action not in ERRORS and action not in ("success", "timeout", "timeout_lost",
                                                           "500_created",
                                                           "500_created_down"):
                    raise ValueError(f"unknown fake twilio action {action!r}")
            (self._per_recipient.setdefault(to, deque()) if to else self._script).extend(actions)

    def script_list(self, *actions: str) -> None:
        """Answers for the next GET (list) requests: "429" or "500"; then pages as usual."""
        with self._lock:
            for action in actions:
                if action not in ("429", "500"):
                    raise ValueError(f"unknown fake twilio list action {action!r}")
            self._list_script.extend(actions)

    def lists(self) -> list[Recorded]:
        """GET (list) requests received."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment that points Segmint's real twilio client at this server."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_FROM_NUMBER": "+15005550006", "SEGMINT_TWILIO_BASE_URL": self.base_url,
                **extra}

    def creates(self, to: str | None = None) -> list[Recorded]:
        """POST requests received (attempts), optionally only those to one number."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST"
                    and (to is None or r.form.get("To") == to)]

    def created(self, to: str | None = None) -> list[dict[str, Any]]:
        """Messages the fake 'sent' (what a customer would receive)."""
        with self._lock:
            return [m for m in self.messages if to is None or m["to"] == to]

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

        self._handler = Handler
        self._listen(0)
        return self

    def _listen(self, port: int) -> None:
        assert self._handler is not None
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def restart(self) -> None:
        """Listen again on the same port after a "500_created_down" outage."""
        assert self._handler is not None
        self._listen(self._port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- server side -------------------------------------------------------------------------
    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) == (self.account_sid, self.auth_token)

    def _next_action(self, to: str) -> str:
        with self._lock:
            queue = self._per_recipient.get(to)
            if queue:
                return queue.popleft()
            return self._script.popleft() if self._script else "success"

    def _new_message(self, form: dict[str, str]) -> dict[str, Any]:
        now = datetime.now(UTC)
        message = {
            "sid": "SM" + uuid.uuid4().hex, "account_sid": self.account_sid,
            "to": form.get("To"), "from": form.get("From"), "body": form.get("Body"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "date_created": format_datetime(now, usegmt=True),
            "date_updated": format_datetime(now, usegmt=True), "date_sent": None,
            "error_code": None, "error_message": None, "price": None, "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/x.json",
        }
        with self._lock:
            self.messages.append(message)
        if self.after_create is not None:
            self.after_create(message)
        return message

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        form = {key: values[-1] for key, values in parse_qs(raw).items()}
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        authorized = self._authorized(handler.headers.get("Authorization"))
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, form, authorized))
        path = parts.path
        if self.prefix:
            path = path[len(self.prefix):] if path.startswith(self.prefix + "/") else ""
        match = MESSAGES_PATH.match(path)
        if not match:
            return self._reply(handler, 404, {"code": 20404, "message": "Not found", "status": 404})
        if not authorized or match["sid"] != self.account_sid:
            return self._reply(handler, 401, {"code": 20003, "message": "Authenticate",
                                              "status": 401})
        if method == "GET":
            with self._lock:
                listed = self._list_script.popleft() if self._list_script else "success"
            if listed in ERRORS:
                status, code, text = ERRORS[listed]
                return self._reply(handler, status, {"code": code, "message": text,
                                                     "status": status})
            return self._reply(handler, 200, self._page(query))
        if self.on_create is not None:
            self.on_create(form)
        action = self._next_action(form.get("To", ""))
        if action == "500_created_down":
            self._new_message(form)
            self.stop()  # the listening socket is closed before this answer goes out
            return self._reply(handler, 500, {"code": 20500, "message": "Internal Server Error",
                                              "status": 500}, close=True)
        if action == "500_created":
            self._new_message(form)
            action = "500"
        if action in ERRORS:
            status, code, text = ERRORS[action]
            return self._reply(handler, status, {"code": code, "message": text, "status": status,
                                                 "more_info": f"https://www.twilio.com/docs/errors/{code}"})
        if action == "timeout":
            message = self._new_message(form)
            time.sleep(self.hold_seconds)
            return self._reply(handler, 201, message)
        if action == "timeout_lost":
            time.sleep(self.hold_seconds)
            return self._reply(handler, 500, {"code": 20500, "message": "late", "status": 500})
        return self._reply(handler, 201, self._new_message(form))

    def _page(self, query: dict[str, str]) -> dict[str, Any]:
        to = query.get("To")
        size = int(query.get("PageSize", 50))
        with self._lock:
            found = [m for m in reversed(self.messages) if to is None or m["to"] == to][:size]
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        return {"messages": found, "page": 0, "page_size": size, "first_page_uri": path,
                "next_page_uri": None, "previous_page_uri": None, "uri": path, "start": 0,
                "end": max(len(found) - 1, 0)}

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], *,
               close: bool = False) -> None:
        body = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            if close:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the "timeout" actions)
