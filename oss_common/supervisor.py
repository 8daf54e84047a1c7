"""Start service processes, wait until they answer, stop them cleanly: `oss demo` and the tests."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from oss_common.config import PROJECT_ROOT, var_dir
from oss_common.service_kinds import SERVICES, instances, process_name, service_config


class ServiceProcess:
    """One `oss run` process, with its own environment (region, ports, database)."""

    def __init__(self, service, region=None, env=None, http_port=None, log_path=None, migrate=True, national=False):
        self.service = service
        self.national = national
        self.metrics_port = None
        self.region = region
        self.env = dict(os.environ, **{key: str(value) for key, value in (env or {}).items()})
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.http_port = http_port
        self.log_path = Path(log_path) if log_path else None
        self.migrate = migrate
        self.process = None
        self._log_handle = None

    @property
    def name(self):
        return f"{self.service}_{self.region}" if self.region else self.service

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def summary(self) -> str:
        """Its line in the list `supervise` prints."""
        return f"{self.name:<24} {self.url}/api/v1/   metrics: http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> "ServiceProcess":
        command = [sys.executable, "-m", "oss_common.cli", "run", "--service", self.service]
        if self.region:
            command += ["--region", self.region]
        if self.national:
            command.append("--national")
        if not self.migrate:
            command.append("--no-migrate")
        output = None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = open(self.log_path, "ab")
            output = self._log_handle
        self.process = subprocess.Popen(command, env=self.env, cwd=PROJECT_ROOT, stdout=output,
                                        stderr=subprocess.STDOUT if output else None, start_new_session=True)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before answering"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer {self.url}/health within {timeout:.0f}s")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, so nameko finishes running workers; SIGKILL if it does not stop in time."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: a crash, as `kill -9` makes it."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def _close_log(self):
        if self._log_handle:
            self._log_handle.close()
            self._log_handle = None


def service_process(kind: str, region: str | None, log_dir: Path | None = None, migrate: bool = True) -> "ServiceProcess":
    """The process `oss run --service` starts for one kind and region (None: national), with the
    ports its configuration (defaults, deployment file, environment) gives it."""
    config = service_config(kind, region)
    process = ServiceProcess(kind.name, region=region.slug if region else None,
                             http_port=config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1],
                             log_path=log_dir / f"{process_name(kind, region)}.log" if log_dir else None,
                             national=kind.regional and region is None, migrate=migrate)
    process.metrics_port = config.get("METRICS_PORT")
    return process


def stack_processes(regions: list[str], log_dir: Path) -> list:
    """One process per national service and per region of each regional service, as `oss run` starts them."""
    return [service_process(kind, region, log_dir) for kind in SERVICES.values() for region in instances(kind, regions)]


def supervise(processes: list, title: str, start=None, banner: str = "") -> None:
    """Start the processes (`start` does it when order matters), list them, and watch them until
    Ctrl-C/SIGTERM or until one exits; then stop all, newest first. 0 on a requested stop, 1 when
    a process died (so a service manager restarts the group)."""
    stopping = False
    died = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if start is not None:
            start()
        else:
            for process in processes:
                process.start()
            for process in processes:
                process.wait_healthy()
        print(f"\n{title}:")
        for process in processes:
            print(f"  {process.summary}")
        if banner:
            print("\n" + banner, end="")
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping:
            for process in processes:
                if process.process.poll() is not None:
                    print(f"{process.name} exited with {process.process.returncode}"
                          + (f"; see {process.log_path}" if process.log_path else ""), file=sys.stderr)
                    stopping = died = True
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        stop_all(processes)
        print("stopped.")
    return 1 if died else 0


def stop_all(processes: list, timeout: float = 15.0) -> None:
    """SIGTERM to every process at once (newest first), so they finish their workers side by side;
    then wait for each, SIGKILL for one that does not stop in time."""
    for process in reversed(processes):
        if process.process and process.process.poll() is None:
            process.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in reversed(processes):
        if process.process:
            try:
                process.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        process._close_log()


def run_group(members: list[tuple], log_dir: Path | None = None, migrate: bool = True) -> None:
    """`oss run --region` / `--national`: each (kind, region) as its own child process."""
    processes = [service_process(kind, region, log_dir, migrate) for kind, region in members]
    names = ", ".join(process.name for process in processes)
    return supervise(processes, f"running {names}")


def run_stack(regions: list[str], seed: Path, banner: str = "", provider: "IdentityProviderProcess | None" = None) -> int:
    """Every service for the given regions until Ctrl-C; the identity provider first (when there is
    one: the services read its keys as they start), the catalogue, then the seed, then the rest.
    Idempotent across runs: data stays under var/, the seed loads without duplicates."""
    var_dir().mkdir(parents=True, exist_ok=True)
    processes = stack_processes(regions, var_dir() / "log")
    catalogue, others = processes[0], processes[1:]
    if provider is not None:
        processes.insert(0, provider)

    def start():
        if provider is not None:
            provider.start().wait_healthy()
        catalogue.start().wait_healthy()
        subprocess.run([sys.executable, "-m", "oss_common.cli", "catalogue", "load", str(seed)], check=True, cwd=PROJECT_ROOT)
        for process in others:
            process.start()
        for process in others:
            process.wait_healthy()

    return supervise(processes, "OSS platform demo is up (logs under var/log/, data under var/)", start, banner)


OIDC_DIR = PROJECT_ROOT / "deploy" / "local" / "oidc"
DEMO_ISSUER = "http://127.0.0.1:8400"


class IdentityProviderProcess(ServiceProcess):
    """The demo's OpenID Connect provider (deploy/local/oidc/server.js, run by node), provisioned with
    the demo staff of staff.json; its client may come back to the `pages` (their sign-in callbacks)."""

    def __init__(self, pages: list[str], issuer: str = DEMO_ISSUER, log_path: Path | None = None):
        super().__init__("oidc-provider", log_path=log_path, http_port=issuer.rsplit(":", 1)[1])
        self.issuer, self.pages = issuer, pages
        redirects = [uri for page in pages for uri in (page, f"{page}auth/callback")]
        self.env.update(OIDC_ISSUER=issuer, OIDC_KEYS_FILE=str(var_dir() / "oidc" / "signing-key.json"),
                        OIDC_REDIRECT_URIS=",".join(redirects))

    @classmethod
    def installed(cls) -> bool:
        """Whether node and the provider's packages (deploy/local/ensure-oidc.sh) are here."""
        return shutil.which("node") is not None and (OIDC_DIR / "node_modules" / "oidc-provider").is_dir()

    @property
    def name(self) -> str:
        return "oidc-provider"

    @property
    def url(self) -> str:
        return self.issuer

    @property
    def summary(self) -> str:
        return f"{self.name:<24} {self.issuer}/.well-known/openid-configuration"

    def start(self) -> "IdentityProviderProcess":
        output = None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = output = open(self.log_path, "ab")
        self.process = subprocess.Popen(["node", "server.js"], env=self.env, cwd=OIDC_DIR, stdout=output,
                                        stderr=subprocess.STDOUT if output else None, start_new_session=True)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> "IdentityProviderProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the identity provider exited with {self.process.returncode}"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the identity provider did not answer at {self.issuer} within {timeout:.0f}s")

    @staticmethod
    def staff() -> list[tuple]:
        """[(login, role, region)] of the demo's accounts."""
        document = json.loads((OIDC_DIR / "staff.json").read_text(encoding="utf-8"))
        return [(person["login"], person["role"], person.get("region")) for person in document["staff"]]
