"""A three-node RabbitMQ cluster on this machine, beside (never touching) the main node on 5672:
nodes `oss-cluster-<tag>-<i>@localhost` on their own AMQP and distribution ports, each with its own
data and log folders, config file and Erlang cookie (so neither rabbitmqctl of the main node nor the
main node itself can reach them, nor they it). Run by the current user with the broker's own scripts."""
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

RABBITMQ_BIN = Path(os.environ.get("OSS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BrokerCluster:
    def __init__(self, workdir, size=3):
        self.workdir = Path(workdir)
        self.tag = uuid.uuid4().hex[:6]
        self.amqp_ports = [_free_port() for _ in range(size)]
        self.dist_ports = [_free_port() for _ in range(size)]
        self.nodes = [f"oss-cluster-{self.tag}-{index + 1}@localhost" for index in range(size)]
        self.home = self.workdir / "home"
        self.processes = {}

    @staticmethod
    def available():
        return (RABBITMQ_BIN / "rabbitmq-server").exists() and (RABBITMQ_BIN / "rabbitmqctl").exists()

    def env(self, index):
        node_dir = self.workdir / f"node{index + 1}"
        config = node_dir / "rabbitmq.conf"
        return dict(
            os.environ,
            HOME=str(self.home),
            RABBITMQ_NODENAME=self.nodes[index],
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_ports[index]),
            RABBITMQ_DIST_PORT=str(self.dist_ports[index]),
            RABBITMQ_MNESIA_BASE=str(node_dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(node_dir / "log"),
            RABBITMQ_CONFIG_FILE=str(config.with_suffix("")),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(node_dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(node_dir / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(node_dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(node_dir / "rabbitmq.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )

    def ctl(self, index, *args, timeout=120, check=True):
        """rabbitmqctl (or another CLI, as `args[0]` when it names one) against node `index`."""
        tool = "rabbitmqctl"
        if args and args[0] in ("rabbitmq-queues", "rabbitmq-diagnostics"):
            tool, args = args[0], args[1:]
        result = subprocess.run([str(RABBITMQ_BIN / tool), "-n", self.nodes[index], *args], env=self.env(index),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            if check:
                raise RuntimeError(f"{tool} {' '.join(args)} on {self.nodes[index]}: {result.stdout}{result.stderr}")
            return None
        return result.stdout

    def start(self):
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper(), encoding="ascii")
        cookie.chmod(0o400)
        for index in range(len(self.nodes)):
            node_dir = self.workdir / f"node{index + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{self.amqp_ports[index]}\n"
                "loopback_users = none\n"
                "cluster_partition_handling = pause_minority\n"
                "queue_leader_locator = balanced\n", encoding="utf-8")
            (node_dir / "advanced.config").write_text("[].\n", encoding="utf-8")
            (node_dir / "rabbitmq-env.conf").write_text("", encoding="utf-8")
            (node_dir / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        for index in range(len(self.nodes)):
            self.start_node(index, wait=False)
        for index in range(len(self.nodes)):
            self.wait_node(index)
        for index in range(1, len(self.nodes)):
            self.ctl(index, "stop_app")
            self.ctl(index, "join_cluster", self.nodes[0])
            self.ctl(index, "start_app")
        running = self.ctl(0, "cluster_status", "--formatter", "json")
        assert set(json.loads(running)["running_nodes"]) == set(self.nodes), running
        return self

    def start_node(self, index, wait=True):
        log = open(self.workdir / f"node{index + 1}.out", "ab")
        self.processes[index] = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env(index),
                                                 cwd=self.workdir / f"node{index + 1}", stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_node(index)

    def wait_node(self, index, timeout=120):
        """Until the node's VM answers (rabbitmqctl cannot wait for that itself), then until the broker has booted."""
        deadline = time.monotonic() + timeout
        while self.ctl(index, "ping", check=False, timeout=30) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.nodes[index]} did not start; see {self.workdir / f'node{index + 1}.out'}")
            time.sleep(0.5)
        self.ctl(index, "await_startup", "--timeout", str(timeout), timeout=timeout + 10)

    def stop_node(self, index):
        """Stops the whole node (its Erlang VM), as a machine going away would, but cleanly."""
        self.ctl(index, "stop", check=False)
        process = self.processes.pop(index, None)
        if process is not None:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def leaders(self, vhost):
        """Quorum queue name -> the node leading it, as the first node that answers sees it."""
        for index in range(len(self.nodes)):
            listing = self.ctl(index, "list_queues", "-p", vhost, "name", "type", "leader", "--formatter", "json", check=False)
            if listing is not None:
                return {queue["name"]: queue["leader"] for queue in json.loads(listing) if queue["type"] == "quorum"}
        raise RuntimeError("no node of the cluster answers")

    def uri(self, user="guest", password="guest", vhost="%2F"):
        """An AMQP_URI naming every node (kombu fails over in this order)."""
        return ";".join(f"amqp://{user}:{password}@127.0.0.1:{port}/{vhost}" for port in self.amqp_ports)

    def import_definitions(self, document):
        path = self.workdir / f"definitions-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        self.ctl(0, "import_definitions", str(path))

    def close(self):
        for index in list(self.processes):
            self.stop_node(index)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        shutil.rmtree(self.workdir / "home", ignore_errors=True)
