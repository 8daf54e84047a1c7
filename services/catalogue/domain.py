"""What a paid service costs, in plain Python: amounts are whole tiyin (1 so'm = 100 tiyin), never floats."""
from decimal import ROUND_HALF_UP, Decimal


def fee_in_tiyin(fee: dict, base_amount_tiyin: int) -> int | None:
    """The fee when the base calculation amount is `base_amount_tiyin`; None for a free service.

    The multiple (at most four decimal places) is read from its decimal text, so 0.002 is exactly
    two thousandths; a result between two tiyin is rounded half up."""
    if fee.get("free"):
        return None
    if fee.get("fixed_tiyin") is not None:
        return int(fee["fixed_tiyin"])
    multiple = Decimal(str(fee["bca_multiple"]))
    return int((multiple * base_amount_tiyin).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fee_schedule(fee: dict, base_amounts: list[tuple]) -> list[dict]:
    """The fee from each day a base amount took effect (`base_amounts`: (day, tiyin), oldest first);
    a fixed fee is one entry from the first of them; a free service has none."""
    if fee.get("free") or not base_amounts:
        return []
    if fee.get("fixed_tiyin") is not None:
        return [{"effective_from": base_amounts[0][0].isoformat(), "amount_tiyin": int(fee["fixed_tiyin"])}]
    return [{"effective_from": day.isoformat(), "amount_tiyin": fee_in_tiyin(fee, amount)} for day, amount in base_amounts]
