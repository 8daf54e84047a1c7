"""A nameko service that does nothing: the RPC round-trip baseline the pipeline is measured against."""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402
import signal  # noqa: E402

from nameko.rpc import rpc  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402

from oss_common.rpc import use_broker_permissions  # noqa: E402


class BenchNoop:
    name = "bench_noop"

    @rpc
    def ping(self, payload=None):
        return payload


if __name__ == "__main__":
    use_broker_permissions()  # its request queue a quorum queue, as every service's: the baseline pays what they pay
    runner = ServiceRunner({"AMQP_URI": os.environ["AMQP_URI"], "max_workers": int(os.environ.get("MAX_WORKERS", "10"))})
    runner.add_service(BenchNoop)
    signal.signal(signal.SIGTERM, lambda *_: eventlet.spawn_n(runner.stop))
    runner.start()
    runner.wait()
