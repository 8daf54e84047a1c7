"""The two ways a message leaves: e-mail over SMTP and SMS through an HTTP gateway.

Each `send` returns when the server or gateway accepted the message, and otherwise raises
TemporaryFailure (refused or dropped connections, 5xx, SMTP 4xx, no server configured yet: try
later) or PermanentFailure (refused message, or taken without an answer in time: repeating it
could make it arrive twice).
"""
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr

import requests

from services.notifications.domain import EMAIL, SMS
from services.notifications.exceptions import ChannelNotConfigured, PermanentFailure, TemporaryFailure

SMTP_SECURITY = ("none", "starttls", "ssl")
SMS_AUTH = ("bearer", "basic", "none")


def _smtp_failure(code, what):
    """SMTP 5xx replies are final; 4xx ones (and anything else) are worth another try."""
    if 500 <= int(code) < 600:
        return PermanentFailure(f"SMTP {code}: {what}")
    return TemporaryFailure(f"SMTP {code}: {what}")


class SmtpChannel:
    """E-mail through one SMTP server (SMTP_HOST/PORT/SECURITY/USER/PASSWORD/FROM)."""

    def __init__(self, host, port=25, security="none", user="", password="", sender="", timeout=10.0):
        if security not in SMTP_SECURITY:
            raise ValueError(f"SMTP security must be one of {', '.join(SMTP_SECURITY)}")
        self.host = host
        self.port = int(port)
        self.security = security
        self.user = user
        self.password = password
        self.sender = sender
        self.timeout = float(timeout)

    def send(self, address, message, key):
        if not self.host or not self.sender:
            raise ChannelNotConfigured("e-mail is not configured (SMTP_HOST, SMTP_FROM); held until it is")
        if not address:
            raise PermanentFailure("no e-mail address to send to")
        try:
            mail = self._compose(address, message, key).as_bytes(policy=SMTP_POLICY)
            address.encode("ascii")
        except (ValueError, TypeError):
            raise PermanentFailure("the e-mail address or message cannot be encoded for SMTP") from None
        try:
            server = self._open()
        except smtplib.SMTPResponseException as exc:
            raise _smtp_failure(exc.smtp_code, "the server refused the session") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"SMTP server unreachable ({type(exc).__name__})") from None
        try:
            self._transfer(server, address, mail)
        finally:
            try:
                server.quit()
            except (smtplib.SMTPException, OSError):
                server.close()

    def _open(self):
        if self.security == "ssl":
            server = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            server.ehlo()
            if self.security == "starttls":
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if self.user:
                server.login(self.user, self.password)
        except BaseException:
            server.close()
            raise
        return server

    def _transfer(self, server, address, mail):
        """MAIL, RCPT and DATA one by one. A server that closes the connection is down and is tried
        again; one that takes the message and never confirms it may have it, and is not."""
        try:
            code, _ = server.mail(parseaddr(self.sender)[1])
            if code != 250:
                raise _smtp_failure(code, "sender refused")
            code, _ = server.rcpt(address)
            if code not in (250, 251):
                raise _smtp_failure(code, "recipient refused")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise TemporaryFailure(f"SMTP connection lost ({type(exc).__name__})") from None
        try:
            code, _ = server.data(mail)
        except smtplib.SMTPResponseException as exc:
            raise _smtp_failure(exc.smtp_code, "message refused") from None
        except TimeoutError:
            raise PermanentFailure(f"SMTP server took the message and did not confirm it within {self.timeout:g}s; "
                                   "not sent again so that it cannot arrive twice") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"SMTP connection lost ({type(exc).__name__})") from None
        if code != 250:
            raise _smtp_failure(code, "message refused")

    def _compose(self, address, message, key):
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "oss.local"
        mail["Message-ID"] = f"<{key}@{domain}>"
        mail.set_content(message.body, charset="utf-8", cte="quoted-printable")
        return mail


def eskiz_payload(phone, text, sender, key):
    return {"mobile_phone": phone, "message": text, "from": sender}


def playmobile_payload(phone, text, sender, key):
    return {"messages": [{"recipient": phone, "message-id": key,
                          "sms": {"originator": sender, "content": {"text": text}}}]}


# The JSON body each provider's send endpoint expects (SMS_PAYLOAD).
SMS_PAYLOADS = {"eskiz": eskiz_payload, "playmobile": playmobile_payload}


class SmsGateway:
    """SMS through an HTTP gateway: POST of a provider-shaped JSON body to SMS_GATEWAY_URL.

    SMS_AUTH `bearer` sends `Authorization: Bearer <SMS_GATEWAY_TOKEN>` (Eskiz), `basic` takes the
    token as `login:password` (Playmobile). Numbers go as the providers want them: 998XXXXXXXXX.
    """

    def __init__(self, url, token="", auth="bearer", payload="eskiz", sender="", timeout=10.0):
        if auth not in SMS_AUTH:
            raise ValueError(f"SMS auth must be one of {', '.join(SMS_AUTH)}")
        if payload not in SMS_PAYLOADS:
            raise ValueError(f"SMS payload must be one of {', '.join(SMS_PAYLOADS)}")
        self.url = url
        self.token = token
        self.auth = auth
        self.payload = SMS_PAYLOADS[payload]
        self.sender = sender
        self.timeout = float(timeout)

    def send(self, phone, message, key):
        if not self.url:
            raise ChannelNotConfigured("SMS is not configured (SMS_GATEWAY_URL); held until it is")
        if not phone:
            raise PermanentFailure("no phone number to send to")
        headers, auth = {}, None
        if self.auth == "bearer":
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.auth == "basic":
            login, _, password = self.token.partition(":")
            auth = (login, password)
        body = self.payload(phone.lstrip("+"), message.body, self.sender, key)
        try:
            response = requests.post(self.url, json=body, headers=headers, auth=auth, timeout=self.timeout,
                                     allow_redirects=False)
        except requests.ReadTimeout:
            raise PermanentFailure(f"SMS gateway took the message and did not answer within {self.timeout:g}s; "
                                   "not sent again so that it cannot arrive twice") from None
        except requests.ConnectionError as exc:
            # Refused, reset or closed without an answer: the gateway is down (or going down).
            raise TemporaryFailure(f"SMS gateway unreachable ({_cause(exc)})") from None
        except requests.RequestException as exc:
            raise PermanentFailure(f"SMS request could not be made ({type(exc).__name__})") from None
        status = response.status_code
        response.close()
        if 200 <= status < 300:
            return
        if status >= 500 or status in (408, 429):
            raise TemporaryFailure(f"SMS gateway answered {status}")
        raise PermanentFailure(f"SMS gateway refused the message ({status})")


def _cause(exc):
    """The name of what lies under a requests error (ConnectionRefusedError, RemoteDisconnected ...),
    never its text, which may quote the URL."""
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)
    if isinstance(cause, Exception) and cause.args and isinstance(cause.args[-1], Exception):
        cause = cause.args[-1]
    return type(cause).__name__ if isinstance(cause, Exception) else type(exc).__name__


class ChannelSet:
    """Sends a message by the channel a delivery names."""

    def __init__(self, email: SmtpChannel, sms: SmsGateway):
        self.by_channel = {EMAIL: email, SMS: sms}

    def send(self, channel, address, message, key):
        self.by_channel[channel].send(address, message, key)

    def unconfigured(self):
        """The channels that have no server or gateway: their messages wait until one is configured."""
        return sorted(channel for channel, sender in self.by_channel.items()
                      if not (getattr(sender, "url", None) or (getattr(sender, "host", None) and getattr(sender, "sender", None))))
