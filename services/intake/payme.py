"""Payme's merchant API (JSON-RPC 2.0 over HTTPS POST, https://developer.help.paycom.uz): Payme calls
the region's intake to check, create, perform, cancel and look up transactions paying an invoice.

The protocol, as Payme's documentation states it:
- Every request carries `Authorization: Basic base64("Paycom:<merchant key>")`; anything else is
  answered with error -32504 (insufficient privileges). Answers are HTTP 200 whatever happened.
- Amounts are tiyin (integers); times are milliseconds since the epoch.
- Account field `invoice`: the invoice number. Errors -31050..-31099 are about the account:
  -31050 no such invoice, -31051 the invoice is not payable (paid, refunded, cancelled),
  -31052 another transaction for the invoice is under way. -31001 wrong amount.
- Transaction states: 1 created, 2 performed, -1 cancelled before perform, -2 cancelled after
  perform; cancel reasons 1..5 and 10 (4: timed out, 5: refund). A created transaction times out
  12 hours (43 200 000 ms) after Payme's `time`: creating or performing it after that cancels it
  (reason 4) and answers -31008. -31003 no such transaction, -31007 cannot cancel (the work has
  started), -31008 the operation is not possible in the transaction's state.
- CreateTransaction, PerformTransaction and CancelTransaction are idempotent: asked again they
  answer what they answered the first time (a duplicate perform pays nothing twice).
"""
import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

from oss_common.config import setting
from services.intake.domain import InvoiceState, Status
from services.intake.exceptions import InvoicePaid
from services.intake.metrics import count_fee
from services.intake.unit_of_work import IntakeUnitOfWork
from services.intake.use_cases import is_expired, mark_paid, reverse_payment

TIMEOUT_MS = 43_200_000
LOGIN = "Paycom"
ACCOUNT_FIELD = "invoice"
CREATED, PERFORMED, CANCELLED, CANCELLED_AFTER_PERFORM = 1, 2, -1, -2
REASON_TIMEOUT, REASON_REFUND = 4, 5
ACTOR = "payme"


@dataclass(frozen=True)
class PaymeSettings:
    merchant_id: str
    key: str
    checkout_url: str = "https://checkout.paycom.uz"

    @classmethod
    def from_config(cls, config):
        return cls(setting(config, "PAYME_MERCHANT_ID", ""), setting(config, "PAYME_KEY", ""),
                   setting(config, "PAYME_CHECKOUT_URL", cls.checkout_url).rstrip("/"))

    @property
    def enabled(self):
        return bool(self.merchant_id and self.key)

    def pay_url(self, invoice):
        """Payme's checkout for the invoice (GET: base64 of `m=<merchant>;ac.invoice=<number>;a=<tiyin>`)."""
        if not self.enabled:
            return None
        params = f"m={self.merchant_id};ac.{ACCOUNT_FIELD}={invoice.invoice_number};a={invoice.amount_tiyin}"
        return f"{self.checkout_url}/{base64.b64encode(params.encode()).decode()}"

    def authorized(self, header):
        """Whether `Authorization` is Basic with login Paycom and this merchant's key."""
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic" or not self.key:
            return False
        try:
            login, _, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(login.encode(), LOGIN.encode()) & hmac.compare_digest(password.encode(), self.key.encode())


def authenticated_caller(config):
    """The check exempting Payme's calls with the merchant key from the anonymous per-address rate
    limit (its servers are few addresses); a call with wrong credentials still counts, so guessing
    the key stays limited."""
    settings = PaymeSettings.from_config(config)
    return lambda request: settings.authorized(request.headers.get("Authorization"))


class PaymeError(Exception):
    def __init__(self, code, ru, uz, en, data=None):
        super().__init__(en)
        self.code, self.message, self.data = code, {"ru": ru, "uz": uz, "en": en}, data


def _error(code, data=None):
    texts = {
        -32700: ("Ошибка разбора JSON", "JSON tahlil xatosi", "Parse error"),
        -32600: ("Неверный запрос JSON-RPC", "Noto‘g‘ri JSON-RPC so‘rovi", "Invalid JSON-RPC request"),
        -32601: ("Метод не найден", "Metod topilmadi", "Method not found"),
        -32504: ("Недостаточно привилегий", "Ruxsat yetarli emas", "Insufficient privileges"),
        -31001: ("Неверная сумма", "Noto‘g‘ri summa", "Wrong amount"),
        -31003: ("Транзакция не найдена", "Tranzaksiya topilmadi", "Transaction not found"),
        -31007: ("Невозможно отменить: услуга оказывается", "Bekor qilib bo‘lmaydi: xizmat ko‘rsatilmoqda",
                 "Cannot cancel: the work has started"),
        -31008: ("Невозможно выполнить операцию", "Amalni bajarib bo‘lmaydi", "Unable to perform the operation"),
        -31050: ("Счёт не найден", "Hisob-faktura topilmadi", "Invoice not found"),
        -31051: ("Счёт уже оплачен, закрыт или просрочен", "Hisob-faktura to‘langan, yopilgan yoki muddati o‘tgan",
                 "Invoice already paid, closed or expired"),
        -31052: ("Счёт ожидает оплаты другой транзакцией", "Hisob-faktura boshqa tranzaksiya bilan to‘lanmoqda",
                 "Invoice is being paid by another transaction"),
    }
    return PaymeError(code, *texts[code], data=data)


def answer(request_id, result=None, error=None):
    if error is not None:
        body = {"code": error.code, "message": error.message}
        if error.data is not None:
            body["data"] = error.data
        return {"jsonrpc": "2.0", "id": request_id, "error": body}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def handle(new_uow, settings: PaymeSettings, authorization, payload, now_ms: int) -> dict:
    """One JSON-RPC call from Payme: its answer, an error included (never an exception)."""
    request_id = payload.get("id") if isinstance(payload, dict) else None
    if not settings.authorized(authorization):
        return answer(request_id, error=_error(-32504))
    if not isinstance(payload, dict) or not isinstance(payload.get("method"), str) or not isinstance(payload.get("params"), dict):
        return answer(request_id, error=_error(-32600))
    method = METHODS.get(payload["method"])
    if method is None:
        return answer(request_id, error=_error(-32601, payload["method"][:64]))
    try:
        return answer(request_id, result=method(new_uow, payload["params"], now_ms))
    except PaymeError as exc:
        return answer(request_id, error=exc)


MAX_INTEGER = 2**53 - 1  # what a JSON number holds exactly; more is not a time, amount or reason Payme sends
MAX_ID = 64


def _param(params, name, kind):
    """A parameter of the call, of its JSON type and within what Payme sends (else -32600 naming it)."""
    value = params.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _error(-32600, name)
    if (kind is int and not -MAX_INTEGER <= value <= MAX_INTEGER) or (kind is str and not 0 < len(value) <= MAX_ID):
        raise _error(-32600, name)
    return value


def _payable(uow: IntakeUnitOfWork, params, now_ms, for_update=False):
    """The invoice the account names, outstanding and not past its due date, checked for the amount;
    the error Payme expects otherwise."""
    amount = _param(params, "amount", int)
    account = params.get("account")
    number = account.get(ACCOUNT_FIELD) if isinstance(account, dict) else None
    if not isinstance(number, (str, int)) or isinstance(number, bool):
        raise _error(-31050, ACCOUNT_FIELD)
    invoice = uow.invoices.by_number(str(number), for_update=for_update)
    if invoice is None:
        raise _error(-31050, ACCOUNT_FIELD)
    if invoice.state != InvoiceState.ISSUED or is_expired(invoice, _instant(now_ms)):
        raise _error(-31051, ACCOUNT_FIELD)
    if amount != invoice.amount_tiyin:
        raise _error(-31001, "amount")
    return invoice


def check_perform_transaction(new_uow, params, now_ms):
    with new_uow() as uow:
        invoice = _payable(uow, params, now_ms)
        if uow.invoices.active_transaction(invoice.invoice_number) is not None:
            raise _error(-31052, ACCOUNT_FIELD)
    return {"allow": True}


def create_transaction(new_uow, params, now_ms):
    payme_id, time_ms = _param(params, "id", str), _param(params, "time", int)
    with new_uow() as uow:
        transaction = uow.invoices.transaction(payme_id, for_update=True)
        if transaction is not None:
            _refuse_unless_waiting(uow, transaction, now_ms)
            return _created(transaction)
        invoice = _payable(uow, params, now_ms, for_update=True)
        if uow.invoices.active_transaction(invoice.invoice_number) is not None:
            raise _error(-31052, ACCOUNT_FIELD)
        if now_ms - time_ms >= TIMEOUT_MS:
            raise _error(-31008)
        transaction = uow.invoices.add_transaction(
            payme_id=payme_id, payme_time=time_ms, invoice_number=invoice.invoice_number, amount_tiyin=invoice.amount_tiyin,
            state=CREATED, reason=None, create_time=now_ms, perform_time=0, cancel_time=0)
        uow.commit()
        return _created(transaction)


def _refuse_unless_waiting(uow, transaction, now_ms):
    """-31008 for a transaction acted on again that no longer waits to be performed; one still
    waiting past Payme's 12-hour timeout is cancelled first (and that is committed)."""
    if transaction.state != CREATED:
        raise _error(-31008)
    if now_ms - transaction.payme_time >= TIMEOUT_MS:
        _cancel(transaction, REASON_TIMEOUT, now_ms)
        uow.commit()
        raise _error(-31008)


def perform_transaction(new_uow, params, now_ms):
    payme_id = _param(params, "id", str)
    with new_uow() as uow:
        transaction = uow.invoices.transaction(payme_id, for_update=True)
        if transaction is None:
            raise _error(-31003)
        if transaction.state == PERFORMED:
            return _performed(transaction)
        _refuse_unless_waiting(uow, transaction, now_ms)
        invoice = uow.invoices.by_number(transaction.invoice_number, for_update=True)
        application = uow.applications.get(invoice.tracking_number, for_update=True)
        try:
            mark_paid(uow, application, invoice, "payme", payme_id, ACTOR, _instant(now_ms))
        except InvoicePaid:
            raise _error(-31008) from None
        transaction.state, transaction.perform_time = PERFORMED, now_ms
        uow.commit()
        count_fee(uow.region.slug, invoice.service_code, "paid", invoice.amount_tiyin)
        return _performed(transaction)


def cancel_transaction(new_uow, params, now_ms):
    payme_id, reason = _param(params, "id", str), _param(params, "reason", int)
    refunded = None
    with new_uow() as uow:
        transaction = uow.invoices.transaction(payme_id, for_update=True)
        if transaction is None:
            raise _error(-31003)
        if transaction.state == CREATED:
            _cancel(transaction, reason, now_ms)
        elif transaction.state == PERFORMED:
            invoice = uow.invoices.by_number(transaction.invoice_number, for_update=True)
            application = uow.applications.get(invoice.tracking_number, for_update=True)
            if application.status != Status.SUBMITTED or invoice.state != InvoiceState.PAID:
                raise _error(-31007)
            reverse_payment(uow, application, invoice, f"payment cancelled by Payme (reason {reason})", ACTOR,
                            _instant(now_ms))
            _cancel(transaction, reason, now_ms)
            refunded = invoice
        uow.commit()
        if refunded is not None:
            count_fee(uow.region.slug, refunded.service_code, "refunded", refunded.amount_tiyin)
        return {"transaction": str(transaction.id), "cancel_time": transaction.cancel_time, "state": transaction.state}


def check_transaction(new_uow, params, now_ms):
    with new_uow() as uow:
        transaction = uow.invoices.transaction(_param(params, "id", str))
        if transaction is None:
            raise _error(-31003)
        return {"create_time": transaction.create_time, "perform_time": transaction.perform_time,
                "cancel_time": transaction.cancel_time, "transaction": str(transaction.id), "state": transaction.state,
                "reason": transaction.reason}


def get_statement(new_uow, params, now_ms):
    start, end = _param(params, "from", int), _param(params, "to", int)
    with new_uow() as uow:
        return {"transactions": [
            {"id": row.payme_id, "time": row.payme_time, "amount": row.amount_tiyin,
             "account": {ACCOUNT_FIELD: row.invoice_number}, "create_time": row.create_time,
             "perform_time": row.perform_time, "cancel_time": row.cancel_time, "transaction": str(row.id),
             "state": row.state, "reason": row.reason}
            for row in uow.invoices.transactions_between(start, end)]}


def _cancel(transaction, reason, now_ms):
    transaction.state = CANCELLED_AFTER_PERFORM if transaction.state == PERFORMED else CANCELLED
    transaction.reason, transaction.cancel_time = reason, now_ms


def _created(transaction):
    return {"create_time": transaction.create_time, "transaction": str(transaction.id), "state": transaction.state}


def _performed(transaction):
    return {"transaction": str(transaction.id), "perform_time": transaction.perform_time, "state": transaction.state}


def _instant(now_ms):
    return datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)


METHODS = {
    "CheckPerformTransaction": check_perform_transaction,
    "CreateTransaction": create_transaction,
    "PerformTransaction": perform_transaction,
    "CancelTransaction": cancel_transaction,
    "CheckTransaction": check_transaction,
    "GetStatement": get_statement,
}
