"""A real SMTP server for hapwatch's tests: Debian's aiosmtpd, with STARTTLS
required and AUTH (user/pass) required. Run with /usr/bin/python3:

    smtp_server.py PORT CERT KEY OUT.jsonl [starttls|tls|plain] [STALL_SECONDS]

Each accepted message is appended to OUT.jsonl; "ready PORT" is printed once
listening (PORT 0: the kernel picks); it stops when stdin closes. With STALL_SECONDS, the first message's
DATA is answered only after that long (a slow server): a client that gives up
first has its connection closed, and that message is not kept.
"""
import asyncio
import email
import email.policy
import json
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
mode = sys.argv[5] if len(sys.argv) > 5 else "starttls"
stall = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0


class Handler:
    def __init__(self):
        self.stalled = False

    async def handle_DATA(self, server, session, envelope):
        if stall and not self.stalled:
            self.stalled = True
            # Cancelled if the client hangs up meanwhile: nothing is kept.
            await asyncio.sleep(stall)
        text = envelope.content.decode("utf-8", "replace")
        msg = email.message_from_string(text, policy=email.policy.default)
        header = lambda name: str(msg[name]) if msg[name] else None
        with open(out, "a") as f:
            f.write(json.dumps({
                "subject": header("Subject"),
                "message_id": header("Message-ID"),
                "in_reply_to": header("In-Reply-To"),
                "references": header("References"),
                "body": msg.get_content(),
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "login": session.auth_data.decode() if session.authenticated and session.auth_data else None,
            }) + "\n")
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    # Every attempt, so a test can tell credentials were never sent.
    with open(out + ".auth", "a") as f:
        f.write(mechanism + "\n")
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"hapwatch" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, auth_data=auth_data.login if ok else None)


class Controller(Controller):
    """With port 0, the port the kernel picked, before aiosmtpd's own
    readiness probe connects to it."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
if mode == "plain":
    # A local relay without TLS (and so without AUTH).
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
elif mode == "tls":
    # Implicit TLS (SMTPS, port 465 style): TLS from the first byte. aiosmtpd
    # only counts STARTTLS as TLS when offering AUTH, hence auth_require_tls off.
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, ssl_context=context,
        authenticator=authenticate, auth_required=True, auth_require_tls=False,
    )
else:
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, tls_context=context,
        require_starttls=True, authenticator=authenticate, auth_required=True,
    )
controller.start()
# Port 0: the kernel picked one; the test reads which.
print("ready", controller.port, flush=True)
sys.stdin.read()
controller.stop()
