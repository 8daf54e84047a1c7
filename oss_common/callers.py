"""Who calls an RPC: the caller's bearer token travels in the call's context data (an AMQP header
nameko passes on), and an operation that reads personal data or changes state checks it with the
same roles and scopes as HTTP. The name a caller gives itself counts for nothing.

A worker serving an HTTP request passes its caller's token on to the RPCs it makes (nameko copies a
worker's context data into every call), so the national reporting asks each region with the
analyst's own token. A command (`oss catalogue load`) sends its own: caller_context(token).
"""
from nameko.extensions import DependencyProvider
from nameko.containers import WorkerContext

from oss_common.auth import Principal, Unauthorized, VerifiedTokens, authorize, trusted_keys

CONTEXT_KEY = "auth_token"


def caller_context(token: str) -> dict:
    """Context data for nameko's ClusterRpcProxy(context_data=...): calls made as `token`'s principal."""
    return {CONTEXT_KEY: token}


class Caller:
    """One worker's view of its caller; `require(*roles)` is the check an operation makes."""

    def __init__(self, provider, token):
        self._provider = provider
        self._token = token

    def require(self, *roles: str) -> Principal:
        """The calling Principal if it has one of `roles` (and, for regional staff, belongs to this
        instance's region); Unauthorized without a valid token, Forbidden otherwise."""
        if not self._token or not isinstance(self._token, str):
            raise Unauthorized("this operation needs the caller's token in the call's context data "
                               f"({CONTEXT_KEY})", fields={CONTEXT_KEY: ["required"]})
        principal = self._provider.tokens.read(self._provider.keys, self._token)
        return authorize(principal, roles, self._provider.region)


class RpcCaller(DependencyProvider):
    """Gives a service its RPC caller (`self.caller.require(OPERATOR)`). Verified tokens are
    remembered for a minute (oss_common.auth.VerifiedTokens): a busy caller's calls cost one
    signature check a minute, not one each."""

    def setup(self) -> None:
        config = self.container.config
        self.keys = trusted_keys(config)
        self.region = config.get("REGION") or None
        self.tokens = VerifiedTokens()

    def get_dependency(self, worker_ctx: WorkerContext) -> "Caller":
        return Caller(self, worker_ctx.context_data.get(CONTEXT_KEY))
