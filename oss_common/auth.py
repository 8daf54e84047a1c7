"""Who may do what: bearer tokens signed with a private key (JWT, EdDSA) and the roles of the platform
(over 300 lines because the key sets, the platform's own tokens and an OpenID Connect provider's are read
by one set of rules, which belong together).

- `operator`: one region, one or more OSS centres; files applications at those centres and reads
  the region's applications filed there.
- `officer`: one region, one or more agencies; moves its agencies' applications through the workflow.
- `region-admin`: one region's IT team; exports the region's event history (`oss reporting rebuild`) and
  declares any of its centres' closure days.
- `centre-head`: one region, one or more OSS centres it heads; declares their closure days (a power cut),
  which the legal clock of their applications skips. Sees no applicant's personal data.
- `analyst`: the ministry; reads every region's reports, never an applicant's personal data.
- `catalogue-admin`: edits the national catalogue.

A token carries `iss`, `sub` (who), `role`, `region` (regional roles), `centres`/`agencies`, `iat`
and `exp` (required, at most MAX_TTL_SECONDS apart), and in its header the `kid` of the key that
signed it. Only an issuer holds a private key (a signing key file, `oss keys new`); services hold
the public keys (a JWKS: AUTH_JWKS, files or URLs). The ministry's issuer (`iss` "oss") signs
tokens for every role; an oblast's own issuer (a key whose JWKS entry names the oblast in
`oss_region`, `iss` "oss-<slug>") signs its own staff's tokens only, and they count for that oblast
alone. A JWKS may list several keys: a new key is added before it signs and the old one removed
once its last tokens have expired, so keys rotate without downtime.

The services also accept the access tokens of one standard OpenID Connect provider (Keycloak,
OneID, the demo's deploy/local/oidc): AUTH_OIDC_ISSUER names it, its discovery document gives the
JWKS URL, AUTH_OIDC_AUDIENCE is the audience its tokens must name, and AUTH_OIDC_CLAIMS maps its
claims to the platform's (role, region, centres, agencies; dotted paths reach nested claims).
Such a token is checked as strictly as the platform's own: signature, issuer, audience, expiry,
lifetime, and claims that fit the role.
"""
import base64
import hashlib
import json
import logging
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from oss_common.config import ConfigurationError, as_list
from oss_common.errors import ApiError
from oss_common.regions import load_registry

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
NATIONAL_ISSUER = "oss"
REGION_MEMBER = "oss_region"  # the JWKS member that scopes a key to one oblast's issuer
OIDC_ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "PS256")  # what a standard provider may sign with
PLATFORM_CLAIMS = ("role", "region", "centres", "agencies")
# The algorithm of a published key that does not name one, by its type and curve.
_IMPLIED_ALGORITHMS = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384",
                       ("RSA", None): "RS256"}
OPERATOR, OFFICER, REGION_ADMIN, CENTRE_HEAD = "operator", "officer", "region-admin", "centre-head"
ANALYST, CATALOGUE_ADMIN = "analyst", "catalogue-admin"
ROLES = (OPERATOR, OFFICER, REGION_ADMIN, CENTRE_HEAD, ANALYST, CATALOGUE_ADMIN)
REGIONAL_ROLES = (OPERATOR, OFFICER, REGION_ADMIN, CENTRE_HEAD)
STAFF = (OPERATOR, OFFICER)  # the region's own staff: the only ones who see an applicant's personal data
DEFAULT_TTL_SECONDS = 8 * 3600
MAX_TTL_SECONDS = 12 * 3600  # a working day: a token that leaks is useless by the next one
LEEWAY_SECONDS = 30  # clock skew between the token's issuer and the service
KEYSET_RELOAD_SECONDS = 30.0  # at most this often a token with an unknown `kid` makes the JWKS be read again
DEFAULT_JWKS_MAX_AGE_SECONDS = 300.0  # AUTH_JWKS_MAX_AGE_SECONDS: how long a retired key may still count
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
    def actor(self) -> str:
        """How audit trails name the caller: `role:subject`."""
        return f"{self.role}:{self.subject}"

    def is_staff_of(self, region_slug: str) -> bool:
        return self.role in STAFF and self.region == region_slug


def regional_issuer(slug: str) -> str:
    return f"{NATIONAL_ISSUER}-{slug}"


def key_id(public_jwk: dict) -> str:
    """RFC 7638 thumbprint of an Ed25519 public key: the `kid` its tokens carry."""
    canonical = json.dumps({"crv": public_jwk["crv"], "kty": public_jwk["kty"], "x": public_jwk["x"]},
                           separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def new_key_pair(region: str | None = None) -> tuple[dict, dict]:
    """(private JWK, public JWK) of a new Ed25519 key; `region` makes it an oblast's own issuer."""
    private_key = Ed25519PrivateKey.generate()
    public = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
    public.update(kid=key_id(public), alg=ALGORITHM, use="sig")
    if region is not None:
        if region not in load_registry():
            raise ValueError(f"{region!r} is not a region of the registry")
        public[REGION_MEMBER] = region
    return dict(json.loads(OKPAlgorithm.to_jwk(private_key)), **public), public


@dataclass(frozen=True)
class SigningKey:
    """An issuer's private key, its `kid`, and the oblast it signs for (None: the ministry's issuer)."""

    key: object
    kid: str
    region: str | None = None

    @property
    def issuer(self):
        return regional_issuer(self.region) if self.region else NATIONAL_ISSUER

    @classmethod
    def from_jwk(cls, jwk):
        if "d" not in jwk:
            raise ConfigurationError("the signing key file holds no private key (it is a public JWK)")
        public = {name: jwk[name] for name in ("kty", "crv", "x")}
        return cls(key=jwt.PyJWK(jwk, algorithm=ALGORITHM).key, kid=key_id(public), region=jwk.get(REGION_MEMBER))

    @classmethod
    def load(cls, path):
        try:
            return cls.from_jwk(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, jwt.PyJWKError) as exc:
            raise ConfigurationError(f"cannot read the signing key {path}: {exc}") from None


class TrustedKeys:
    """The public keys tokens may be signed with: JWKS documents from files or http(s) URLs.

    Read when first needed, again every `max_age` seconds (so a retired key stops counting), and
    again when a token names a `kid` not among them (at most every `reload_seconds`, so a new key
    counts from its first token without a restart). A JWKS that cannot be read at start stops the
    service; later, the keys read before go on serving.
    """

    def __init__(self, sources, max_age=DEFAULT_JWKS_MAX_AGE_SECONDS, reload_seconds=KEYSET_RELOAD_SECONDS,
                 clock=time.monotonic):
        self.sources = as_list(sources)
        if not self.sources:
            raise ConfigurationError(
                "AUTH_JWKS must name the token issuers' public keys (a JWKS file or URL, comma-separated for "
                "several); `make run` keeps one in var/auth/jwks.json")
        self.max_age = max_age
        self.reload_seconds = reload_seconds
        self.clock = clock
        self._keys = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self.oidc = None  # an OidcIssuer whose access tokens count too (trusted_keys, from AUTH_OIDC_ISSUER)

    def key(self, kid: str) -> tuple:
        """(PyJWK, oblast or None) for `kid`; Unauthorized when no trusted key has it."""
        keys, age = self._keys, self.clock() - self._loaded_at
        if keys is None or age >= self.max_age or (kid not in keys and age >= self.reload_seconds):
            keys = self._refresh()
        try:
            return keys[kid]
        except KeyError:
            raise Unauthorized("the token is signed with a key this service does not trust",
                               fields={"Authorization": ["unknown signing key"]}) from None

    def _refresh(self):
        try:
            return self.reload()
        except ConfigurationError as exc:
            if self._keys is None:
                raise
            log.warning("token keys not re-read, the ones read before still count: %s", exc)
            self._loaded_at = self.clock()
            return self._keys

    def reload(self) -> None:
        with self._lock:
            keys = {}
            for source in self.sources:
                for jwk in _read_jwks(source).get("keys", []):
                    if "d" in jwk:
                        raise ConfigurationError(f"{source} holds a private key: publish public keys only")
                    if jwk.get("kid") != key_id(jwk):
                        raise ConfigurationError(f"{source}: a key's kid is not its thumbprint ({jwk.get('kid')!r})")
                    region = jwk.get(REGION_MEMBER)
                    if region is not None and region not in load_registry():
                        raise ConfigurationError(f"{source}: key {jwk['kid']} names an unknown oblast {region!r}")
                    keys[jwk["kid"]] = (jwt.PyJWK(jwk, algorithm=ALGORITHM), region)
            self._keys, self._loaded_at = keys, self.clock()
            return keys


def _read_jwks(source):
    try:
        if source.startswith(("https://", "http://")):
            with urllib.request.urlopen(source, timeout=10) as response:
                return json.load(response)
        return json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the JWKS {source}: {exc}") from None


_TRUSTED = {}
_TRUSTED_LOCK = threading.Lock()


def trusted_keys(config: dict) -> "TrustedKeys":
    """The process's one TrustedKeys for the config's AUTH_JWKS (shared by every entrypoint), read
    once here so that a service with no readable JWKS does not start."""
    sources = config.get("AUTH_JWKS")
    max_age = float(config.get("AUTH_JWKS_MAX_AGE_SECONDS") or DEFAULT_JWKS_MAX_AGE_SECONDS)
    oidc = (str(config.get("AUTH_OIDC_ISSUER") or "").rstrip("/"), str(config.get("AUTH_OIDC_AUDIENCE") or ""),
            str(config.get("AUTH_OIDC_CLAIMS") or ""))
    key = (",".join(as_list(sources)), max_age, oidc)
    with _TRUSTED_LOCK:
        if key not in _TRUSTED:
            keys = TrustedKeys(sources, max_age=max_age)
            keys.reload()
            if oidc[0]:
                keys.oidc = OidcIssuer(*oidc, max_age=max_age)
                keys.oidc.reload()
            _TRUSTED[key] = keys
        return _TRUSTED[key]


def claim_mapping(text: str | None) -> dict[str, str]:
    """AUTH_OIDC_CLAIMS, `platform=provider` pairs comma-separated (e.g. `role=oss_role,
    centres=attributes.centres`), over the identity mapping of role, region, centres and agencies."""
    mapping = {claim: claim for claim in PLATFORM_CLAIMS}
    for item in as_list(text):
        ours, _, theirs = item.partition("=")
        if ours.strip() not in PLATFORM_CLAIMS or not re.fullmatch(r"[A-Za-z0-9_:/.-]+", theirs.strip()):
            raise ConfigurationError(
                f"AUTH_OIDC_CLAIMS takes claim=provider-claim pairs for {', '.join(PLATFORM_CLAIMS)}; not {item!r}")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _claim(claims, path):
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class OidcIssuer(TrustedKeys):
    """A standard OpenID Connect provider whose access tokens count: its issuer URL, the audience
    its tokens must name, its JWKS (the URL its discovery document gives, read again as TrustedKeys
    reads the platform's), and the claim mapping."""

    def __init__(self, issuer, audience, claims="", max_age=DEFAULT_JWKS_MAX_AGE_SECONDS,
                 reload_seconds=KEYSET_RELOAD_SECONDS, clock=time.monotonic):
        if not issuer.startswith(("https://", "http://")) or not audience:
            raise ConfigurationError("AUTH_OIDC_ISSUER is the provider's issuer URL and AUTH_OIDC_AUDIENCE the "
                                     "audience its access tokens name for the services")
        super().__init__([issuer], max_age=max_age, reload_seconds=reload_seconds, clock=clock)
        self.issuer, self.audience, self.mapping = issuer, audience, claim_mapping(claims)
        self.discovery = {}  # its endpoints, for the pages' sign-in (oss_common.web_sessions)

    def reload(self) -> None:
        with self._lock:
            discovery = _read_jwks(f"{self.issuer}/.well-known/openid-configuration")
            if discovery.get("issuer", "").rstrip("/") != self.issuer or not discovery.get("jwks_uri"):
                raise ConfigurationError(f"{self.issuer} does not describe itself as that issuer with a jwks_uri")
            self.discovery = discovery
            keys = {}
            for jwk in _read_jwks(discovery["jwks_uri"]).get("keys", []):
                algorithm = jwk.get("alg") or _IMPLIED_ALGORITHMS.get((jwk.get("kty"), jwk.get("crv")))
                # Encryption keys and algorithms the platform does not take are left out, not trusted.
                if jwk.get("use", "sig") == "sig" and algorithm in OIDC_ALGORITHMS and isinstance(jwk.get("kid"), str):
                    keys[jwk["kid"]] = (jwt.PyJWK(jwk, algorithm=algorithm), None)
            self._keys, self._loaded_at = keys, self.clock()
            return keys

    def claims(self, token, header):
        """The token's claims mapped to the platform's, once its signature, issuer, audience and expiry hold."""
        if header.get("alg") not in OIDC_ALGORITHMS or not isinstance(header.get("kid"), str):
            raise Unauthorized("the token must be signed with an asymmetric key and name it (kid)",
                               fields={"Authorization": ["invalid token"]})
        public_key, _region = self.key(header["kid"])
        if public_key.algorithm_name != header["alg"]:  # a key serves the one algorithm it is published for
            raise Unauthorized("the token's algorithm is not its key's", fields={"Authorization": ["invalid token"]})
        claims = jwt.decode(token, public_key.key, algorithms=[header["alg"]], issuer=self.issuer,
                            audience=self.audience, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                            leeway=LEEWAY_SECONDS)
        mapped = {name: claims[name] for name in ("sub", "iss", "iat", "exp")}
        for ours, theirs in self.mapping.items():
            value = _claim(claims, theirs)
            if ours == "role" and isinstance(value, list):  # a provider's list of roles: the one the platform knows
                known = [role for role in value if role in ROLES]
                value = known[0] if len(known) == 1 else None
            if value is not None:
                mapped[ours] = value
        return mapped


def _codes(values, what):
    values = tuple(values or ())
    for value in values:
        if not isinstance(value, str) or not SCOPE_CODE.match(value):
            raise ValueError(f"{what} must be lower-case codes, got {value!r}")
    return values


def issue_token(signing_key, role, subject, region=None, centres=(), agencies=(), ttl_seconds=DEFAULT_TTL_SECONDS,
                now=None):
    """A token for `subject` in `role`, signed by `signing_key`; ValueError when the claims do not fit
    the role or the issuer."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(subject, str) or not SUBJECT.match(subject):
        raise ValueError("subject must be 1 to 64 letters, digits or _.@:-")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 second and {MAX_TTL_SECONDS // 3600} hours")
    centres, agencies = _codes(centres, "centres"), _codes(agencies, "agencies")
    if role in REGIONAL_ROLES and region not in load_registry():
        raise ValueError(f"an {role} token needs a region of the registry, got {region!r}")
    if role in (OPERATOR, CENTRE_HEAD) and not centres:
        raise ValueError(f"an {role} token needs at least one OSS centre")
    if role == OFFICER and not agencies:
        raise ValueError("an officer token needs at least one agency")
    if role == REGION_ADMIN and (centres or agencies):
        raise ValueError("a region-admin token has no centres or agencies")
    if role not in REGIONAL_ROLES and (region or centres or agencies):
        raise ValueError(f"an {role} token is national: no region, centres or agencies")
    if signing_key.region and (role not in REGIONAL_ROLES or region != signing_key.region):
        raise ValueError(f"this key is {signing_key.region}'s own issuer: it signs that oblast's staff only")
    issued = int(now if now is not None else time.time())
    claims = {"iss": signing_key.issuer, "sub": subject, "role": role, "iat": issued, "exp": issued + int(ttl_seconds)}
    if region:
        claims["region"] = region
    if centres:
        claims["centres"] = list(centres)
    if agencies:
        claims["agencies"] = list(agencies)
    return jwt.encode(claims, signing_key.key, algorithm=ALGORITHM, headers={"kid": signing_key.kid})


def read_token(keys: "TrustedKeys", token: str) -> Principal:
    """The Principal of a valid token; Unauthorized (401) for a missing, forged, expired or malformed one."""
    return _verify(keys, token)[0]


def _verify(keys, token):
    """(Principal, the moment after which it is no longer accepted) of a valid token."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid", fields={"Authorization": ["invalid token"]}) from None
    oidc = getattr(keys, "oidc", None)
    key_region = None
    try:
        if oidc is not None and _unverified_issuer(token) == oidc.issuer:
            claims = oidc.claims(token, header)
        else:
            if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
                raise Unauthorized(f"the token must be signed with {ALGORITHM} and name its key (kid)",
                                   fields={"Authorization": ["invalid token"]})
            public_key, key_region = keys.key(header["kid"])
            claims = jwt.decode(token, public_key.key, algorithms=[ALGORITHM],
                                issuer=regional_issuer(key_region) if key_region else NATIONAL_ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]}, leeway=LEEWAY_SECONDS)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; ask for a new one", fields={"Authorization": ["expired"]}) from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid", fields={"Authorization": ["invalid token"]}) from None
    role = claims.get("role")
    centres, agencies = claims.get("centres", []), claims.get("agencies", [])
    if (role not in ROLES or not isinstance(claims["sub"], str) or not SUBJECT.match(claims["sub"])
            or not isinstance(centres, list)
            or not isinstance(agencies, list) or not all(isinstance(value, str) for value in centres + agencies)
            or (role in REGIONAL_ROLES and claims.get("region") not in load_registry())):
        raise Unauthorized("the token's claims do not fit its role", fields={"Authorization": ["invalid claims"]})
    if not isinstance(claims["iat"], int) or not isinstance(claims["exp"], int) or \
            claims["exp"] - claims["iat"] > MAX_TTL_SECONDS:
        raise Unauthorized(f"the token lives longer than {MAX_TTL_SECONDS // 3600} hours",
                           fields={"Authorization": ["lifetime too long"]})
    if key_region and (role not in REGIONAL_ROLES or claims.get("region") != key_region):
        raise Unauthorized(f"{key_region}'s own issuer vouches for {key_region}'s staff only",
                           fields={"Authorization": ["issuer may not sign for this region or role"]})
    principal = Principal(subject=claims["sub"], role=role, region=claims.get("region") if role in REGIONAL_ROLES else None,
                          centres=tuple(centres), agencies=tuple(agencies))
    return principal, claims["exp"] + LEEWAY_SECONDS


class VerifiedTokens:
    """read_token with a short memory: a token verified in the last `ttl` seconds is not verified again.

    Checking the signature and the claims costs about 0.1-0.2 ms, paid by every API request of an
    operator filing applications with the same token all day, and by every RPC that carries one.
    An entry is kept under the exact token and key set and never past the token's own expiry, so a
    cached answer is the one read_token gave at most `ttl` seconds ago; invalid tokens are not
    remembered.
    """

    def __init__(self, ttl=60.0, max_entries=4096, clock=time.time):
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries = {}

    def read(self, keys: "TrustedKeys", token: str) -> Principal:
        now = self.clock()
        entry = self._entries.get(token)
        if entry is not None and entry[0] is keys and now < entry[1]:
            return entry[2]
        principal, valid_until = _verify(keys, token)
        if len(self._entries) >= self.max_entries:
            self._entries = {key: value for key, value in self._entries.items() if now < value[1]}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[token] = (keys, min(now + self.ttl, valid_until), principal)
        return principal


def _unverified_issuer(token):
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("iss") or "").rstrip("/")
    except jwt.InvalidTokenError:
        return None


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthorized when absent or malformed."""
    if not header:
        raise Unauthorized("sign in: send Authorization: Bearer <token>", fields={"Authorization": ["required"]})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use Authorization: Bearer <token>", fields={"Authorization": ["must be Bearer <token>"]})
    return token.strip()


def authorize(principal: Principal, roles: tuple[str, ...], region: str | None = None) -> Principal:
    """Forbidden (403) unless the principal has one of `roles` and, for regional staff, belongs to
    `region` (the serving instance's region; None on national instances)."""
    if principal.role not in roles:
        raise Forbidden(f"a {principal.role} may not do this; needs {' or '.join(roles)}",
                        fields={"Authorization": [f"role must be one of: {', '.join(roles)}"]})
    if region and principal.role in REGIONAL_ROLES and principal.region != region:
        raise Forbidden(f"this token is for {principal.region}, not {region}",
                        fields={"Authorization": [f"token is for region {principal.region}"]})
    return principal
