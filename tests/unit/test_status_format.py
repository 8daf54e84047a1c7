"""`oss status` shows, per process, the events waiting out a back-off beside the dead letters."""
from oss_common.status import ProcessStatus, QueueDepth, format_status


def test_retrying_and_dead_events_have_their_own_columns():
    status = ProcessStatus("notifications_jizzakh", 8204, 9204, up=True, rpc=QueueDepth("rpc-notifications_jizzakh", 0, 1),
                           events=[QueueDepth("notifications_jizzakh.applications", 4)],
                           dead=[QueueDepth("notifications_jizzakh.applications.dead", 0)],
                           retrying=[QueueDepth("notifications_jizzakh.applications.retry", 7)], outbox_pending=2)
    header, line = format_status([status]).splitlines()
    assert header.split() == ["SERVICE", "HTTP", "STATE", "RPC", "QUEUE", "EVENT", "QUEUES", "RETRY", "DEAD", "OUTBOX"]
    assert line.split()[-3:] == ["7", "0", "2"]
    never_ran = ProcessStatus("reporting_jizzakh", 8304, None, up=False, retrying=[QueueDepth("x.retry", None)])
    assert format_status([never_ran]).splitlines()[1].split()[-3:] == ["-", "-", "-"]
