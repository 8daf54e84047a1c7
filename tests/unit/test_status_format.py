"""`oss status` shows, per process, the events waiting out a back-off (per queue, with the back-off's
ceiling) beside the dead letters."""
from oss_common.status import ProcessStatus, QueueDepth, format_status, metric_by_label


def test_retrying_with_its_ceiling_and_dead_events_have_their_own_columns():
    status = ProcessStatus("notifications_jizzakh", 8204, 9204, up=True, rpc=QueueDepth("rpc-notifications_jizzakh", 0, 1),
                           events=[QueueDepth("notifications_jizzakh.applications", 4)],
                           dead=[QueueDepth("notifications_jizzakh.applications.dead", 0)],
                           retrying=[QueueDepth("notifications_jizzakh.applications.retry", 7, ceiling=60.0)],
                           outbox_pending=2)
    header, line = format_status([status]).splitlines()
    assert header.split() == ["SERVICE", "HTTP", "STATE", "RPC", "QUEUE", "EVENT", "QUEUES", "RETRY", "(CEILING)", "DEAD",
                              "OUTBOX"]
    assert line.split()[-4:] == ["7", "<=60s", "0", "2"]
    never_ran = ProcessStatus("reporting_jizzakh", 8304, None, up=False, retrying=[QueueDepth("x.retry", None, ceiling=2.5)])
    assert format_status([never_ran]).splitlines()[1].split()[-4:] == ["-", "<=2.5s", "-", "-"]


def test_a_process_with_several_event_queues_shows_each_queues_retries():
    status = ProcessStatus("intake_jizzakh", 8104, None, up=True,
                           retrying=[QueueDepth("intake_jizzakh.catalogue.retry", 3, ceiling=60.0),
                                     QueueDepth("intake_jizzakh.other.retry", 0, ceiling=30.0)])
    assert "catalogue: 3 <=60s, other: 0 <=30s" in format_status([status])


def test_the_ceiling_a_running_process_reports_is_read_per_queue():
    page = ('# HELP oss_event_retry_ceiling_seconds x\n# TYPE oss_event_retry_ceiling_seconds gauge\n'
            'oss_event_retry_ceiling_seconds{queue="a.events.retry",region="jizzakh",service="a"} 60.0\n'
            'oss_event_retry_ceiling_seconds{queue="a.other.retry",region="jizzakh",service="a"} 5.0\n')
    assert metric_by_label(page, "oss_event_retry_ceiling_seconds", "queue") == {"a.events.retry": 60.0,
                                                                                 "a.other.retry": 5.0}
