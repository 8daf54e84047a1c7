"""Applicants who can be told apart, and the check that none of them shows in a log or a metric."""
import random
import re
import string

import requests

MIN_VALUE_LENGTH = 6  # shorter values would match by accident (a port number, a count)


def unique_applicant(rng=random, **overrides):
    """An applicant whose PINFL, phone and name no other submission shares, so that finding one of
    them in a log means this submission's data leaked there."""
    surname = "".join(rng.choice(string.ascii_lowercase) for _ in range(10)).capitalize()
    applicant = {
        "pinfl": str(rng.randrange(10**13, 10**14)),
        "full_name": f"Zulfiya {surname}",
        "phone": f"+998{rng.randrange(10**8, 10**9)}",
        "language": rng.choice(["uz", "ru", "en"]),
        "channel": "sms",
    }
    applicant.update(overrides)
    return applicant


def personal_values(applicant):
    """What of an applicant must never be logged: PINFL, phone, name and e-mail (as given)."""
    return [value for key, value in applicant.items() if key in ("pinfl", "phone", "full_name", "email") and value]


def _forms(value):
    """A value as it might be written: as given and, for a phone, its digits without the `+` (the
    nine-digit national number alone would turn up by chance among millions of logged digits)."""
    forms = {value}
    if re.fullmatch(r"\+998\d{9}", value):
        forms.add(value[1:])
    return {form for form in forms if len(form) >= MIN_VALUE_LENGTH}


def assert_no_personal_data(processes, values):
    """Read every log file of `processes` (ServiceProcess objects, stopped ones included) and scrape
    the /metrics of those still running; fail naming where any of `values` (PINFLs, phone numbers,
    names, passport numbers) appears. Returns how many logs and metric pages were read."""
    forms = {form: value for value in values for form in _forms(str(value))}
    assert forms, "no personal data to look for"
    pattern = re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))
    found, read = [], 0
    for path in sorted({process.log_path for process in processes if process.log_path is not None}):
        if path.exists():
            read += 1
            for line_number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                for match in pattern.finditer(line):
                    found.append(f"{path.name}:{line_number}: {forms[match.group()]!r} in {line[:300]!r}")
    for process in processes:
        if process.metrics_port is None or process.process is None or process.process.poll() is not None:
            continue
        metrics = requests.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=10)
        assert metrics.status_code == 200, f"{process.name} /metrics answered {metrics.status_code}"
        read += 1
        for match in pattern.finditer(metrics.text):
            found.append(f"{process.name} /metrics: {forms[match.group()]!r}")
    assert not found, "personal data in logs or metrics:\n" + "\n".join(found[:20])
    assert read, "no log or metrics to read"
    return read
