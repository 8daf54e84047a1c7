"""Who may do what: signed bearer tokens (JWT, HS256) and the four roles of the platform.

- `operator`: one region, one or more OSS centres; files applications at those centres and reads
  the region's applications filed there.
- `officer`: one region, one or more agencies; moves its agencies' applications through the workflow.
- `analyst`: the ministry; reads every region's reports, never an applicant's personal data.
- `catalogue-admin`: edits the national catalogue.

A token carries `sub` (who), `role`, `region` (operator/officer), `centres`/`agencies`, `iat` and
`exp` (required). The key is the deployment's AUTH_SECRET (every service of a deployment shares
it); `oss token issue` makes tokens.
"""
import re
import secrets
import time
from dataclasses import dataclass

import jwt

from oss_common.config import ConfigurationError
from oss_common.errors import ApiError
from oss_common.regions import load_registry

ALGORITHM = "HS256"
ISSUER = "oss"
OPERATOR, OFFICER, ANALYST, CATALOGUE_ADMIN = "operator", "officer", "analyst", "catalogue-admin"
ROLES = (OPERATOR, OFFICER, ANALYST, CATALOGUE_ADMIN)
REGIONAL_ROLES = (OPERATOR, OFFICER)
STAFF = REGIONAL_ROLES  # the region's own staff: the only ones who see an applicant's personal data
MIN_SECRET_LENGTH = 32
DEFAULT_TTL_SECONDS = 8 * 3600
MAX_TTL_SECONDS = 366 * 24 * 3600
LEEWAY_SECONDS = 30  # clock skew between the token's issuer and the service
SUBJECT = re.compile(r"^[A-Za-z0-9_.@:-]{1,64}$")
SCOPE_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    """The caller a valid token names."""

    subject: str
    role: str
    region: str | None = None
    centres: tuple = ()
    agencies: tuple = ()

    @property
    def actor(self):
        """How audit trails name the caller: `role:subject`."""
        return f"{self.role}:{self.subject}"

    def is_staff_of(self, region_slug):
        return self.role in STAFF and self.region == region_slug


def check_secret(secret):
    """The deployment key, or a ConfigurationError saying what to set."""
    if not secret or len(str(secret)) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"AUTH_SECRET must be set to at least {MIN_SECRET_LENGTH} characters, the same for every service "
            "of the deployment (e.g. `openssl rand -hex 32`); `make run` keeps one in var/auth-secret")
    return str(secret)


def new_secret():
    return secrets.token_hex(32)


def _codes(values, what):
    values = tuple(values or ())
    for value in values:
        if not isinstance(value, str) or not SCOPE_CODE.match(value):
            raise ValueError(f"{what} must be lower-case codes, got {value!r}")
    return values


def issue_token(secret, role, subject, region=None, centres=(), agencies=(), ttl_seconds=DEFAULT_TTL_SECONDS, now=None):
    """A signed token for `subject` in `role`; ValueError when the claims do not fit the role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(subject, str) or not SUBJECT.match(subject):
        raise ValueError("subject must be 1 to 64 letters, digits or _.@:-")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 second and {MAX_TTL_SECONDS} seconds")
    centres, agencies = _codes(centres, "centres"), _codes(agencies, "agencies")
    if role in REGIONAL_ROLES and region not in load_registry():
        raise ValueError(f"an {role} token needs a region of the registry, got {region!r}")
    if role == OPERATOR and not centres:
        raise ValueError("an operator token needs at least one OSS centre")
    if role == OFFICER and not agencies:
        raise ValueError("an officer token needs at least one agency")
    if role not in REGIONAL_ROLES and (region or centres or agencies):
        raise ValueError(f"an {role} token is national: no region, centres or agencies")
    issued = int(now if now is not None else time.time())
    claims = {"iss": ISSUER, "sub": subject, "role": role, "iat": issued, "exp": issued + int(ttl_seconds)}
    if region:
        claims["region"] = region
    if centres:
        claims["centres"] = list(centres)
    if agencies:
        claims["agencies"] = list(agencies)
    return jwt.encode(claims, check_secret(secret), algorithm=ALGORITHM)


def read_token(secret, token):
    """The Principal of a valid token; Unauthorized (401) for a missing, forged, expired or malformed one."""
    return _verify(secret, token)[0]


def _verify(secret, token):
    """(Principal, the moment after which it is no longer accepted) of a valid token."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "iss"]}, leeway=LEEWAY_SECONDS)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; ask for a new one", fields={"Authorization": ["expired"]}) from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid", fields={"Authorization": ["invalid token"]}) from None
    role = claims.get("role")
    centres, agencies = claims.get("centres", []), claims.get("agencies", [])
    if (role not in ROLES or not isinstance(claims["sub"], str) or not isinstance(centres, list)
            or not isinstance(agencies, list) or not all(isinstance(value, str) for value in centres + agencies)
            or (role in REGIONAL_ROLES and claims.get("region") not in load_registry())):
        raise Unauthorized("the token's claims do not fit its role", fields={"Authorization": ["invalid claims"]})
    principal = Principal(subject=claims["sub"], role=role, region=claims.get("region") if role in REGIONAL_ROLES else None,
                          centres=tuple(centres), agencies=tuple(agencies))
    return principal, claims["exp"] + LEEWAY_SECONDS


class VerifiedTokens:
    """read_token with a short memory: a token verified in the last `ttl` seconds is not verified again.

    Checking the HS256 signature and the claims costs about 0.1-0.2 ms, paid by every API request of
    an operator filing applications with the same token all day. An entry is kept under the exact
    token and key and never past the token's own expiry, so a cached answer is always the one
    read_token would give; invalid tokens are not remembered.
    """

    def __init__(self, ttl=60.0, max_entries=4096, clock=time.time):
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries = {}

    def read(self, secret, token):
        now = self.clock()
        entry = self._entries.get(token)
        if entry is not None and entry[0] == secret and now < entry[1]:
            return entry[2]
        principal, valid_until = _verify(secret, token)
        if len(self._entries) >= self.max_entries:
            self._entries = {key: value for key, value in self._entries.items() if now < value[1]}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[token] = (secret, min(now + self.ttl, valid_until), principal)
        return principal


def bearer_token(header):
    """The token of an `Authorization: Bearer <token>` header; Unauthorized when absent or malformed."""
    if not header:
        raise Unauthorized("sign in: send Authorization: Bearer <token>", fields={"Authorization": ["required"]})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use Authorization: Bearer <token>", fields={"Authorization": ["must be Bearer <token>"]})
    return token.strip()


def authorize(principal, roles, region=None):
    """Forbidden (403) unless the principal has one of `roles` and, for regional staff, belongs to
    `region` (the serving instance's region; None on national instances)."""
    if principal.role not in roles:
        raise Forbidden(f"a {principal.role} may not do this; needs {' or '.join(roles)}",
                        fields={"Authorization": [f"role must be one of: {', '.join(roles)}"]})
    if region and principal.role in REGIONAL_ROLES and principal.region != region:
        raise Forbidden(f"this token is for {principal.region}, not {region}",
                        fields={"Authorization": [f"token is for region {principal.region}"]})
    return principal
