"""process.WatchState, the state machine of a watched process, driven by a fake clock: no process,
no sleeping. Every transition of running -> terminating -> killing -> draining -> done."""

import signal

from hypothesis import given
from hypothesis import strategies as st

from orchestrator import constants as c
from orchestrator import process as p

TIMEOUT, GRACE = 10.0, 2.0


def timed(shielded=False):
    return p.WatchState(now=100.0, timeout=TIMEOUT, grace=GRACE, shielded=shielded)


def untimed():
    return p.WatchState(now=100.0, timeout=None, grace=GRACE)


def test_a_process_that_exits_and_closes_its_output_is_done_without_an_action():
    stop = timed()
    assert (stop.state, stop.deadline) == (p.RUNNING, 110.0)
    stop.process_exited(101.0)
    assert stop.state == p.DRAINING
    stop.output_closed(101.0)
    assert stop.done and stop.deadline is None
    assert not stop.timed_out and stop.interrupted_by is None


def test_output_that_closes_first_ends_it_when_the_process_exits():
    stop = timed()
    stop.output_closed(101.0)
    assert stop.state == p.RUNNING
    stop.process_exited(102.0)
    assert stop.done


def test_a_stray_holding_the_output_open_is_given_the_drain_time_then_named():
    stop = timed()
    stop.process_exited(101.0)
    assert (stop.state, stop.deadline) == (p.DRAINING, 101.0 + c.STRAY_DRAIN_SECONDS)
    assert stop.due(101.0 + c.STRAY_DRAIN_SECONDS - 0.001) is None
    assert stop.due(101.0 + c.STRAY_DRAIN_SECONDS) == p.STOP_READING
    assert stop.done and not stop.timed_out


def test_a_timeout_terminates_then_kills_then_gives_up_each_at_its_deadline():
    stop = timed()
    assert stop.wait(100.0) == TIMEOUT
    assert stop.due(109.999) is None
    assert stop.due(110.0) == p.TERMINATE
    assert (stop.state, stop.deadline, stop.signum) == (p.TERMINATING, 112.0, signal.SIGTERM)
    assert stop.timed_out
    assert stop.due(111.0) is None
    assert stop.due(112.0) == p.KILL
    assert (stop.state, stop.deadline) == (p.KILLING, 112.0 + p.AFTER_KILL_WAIT)
    assert stop.due(112.0 + p.AFTER_KILL_WAIT) == p.GIVE_UP
    assert stop.done


def test_a_terminated_process_is_done_once_its_whole_tree_is_gone():
    stop = timed()
    stop.due(110.0)
    stop.process_exited(110.5)
    assert stop.state == p.TERMINATING and not stop.watching_tree  # output still open
    stop.output_closed(110.6)
    assert stop.watching_tree
    stop.tree_gone(110.7)
    assert stop.done and stop.timed_out


def test_tree_gone_means_nothing_while_the_process_itself_runs():
    stop = timed()
    stop.due(110.0)
    stop.tree_gone(110.5)
    assert stop.state == p.TERMINATING


def test_a_first_signal_terminates_with_that_signal_and_a_second_kills():
    stop = untimed()
    assert stop.signalled(signal.SIGINT, hard_stop=False, now=105.0) == p.TERMINATE
    assert (stop.state, stop.signum, stop.interrupted_by) == (
        p.TERMINATING, signal.SIGINT, signal.SIGINT)
    assert stop.deadline == 105.0 + GRACE
    assert stop.signalled(signal.SIGTERM, hard_stop=True, now=105.5) == p.KILL
    assert stop.state == p.KILLING
    assert stop.interrupted_by == signal.SIGINT  # the first signal is the one reported
    assert not stop.timed_out


def test_a_shielded_process_ignores_the_first_signal_but_not_the_second():
    stop = timed(shielded=True)
    assert stop.signalled(signal.SIGTERM, hard_stop=False, now=101.0) is None
    assert stop.state == p.RUNNING and stop.interrupted_by is None
    assert stop.signalled(signal.SIGTERM, hard_stop=True, now=102.0) == p.KILL
    assert stop.state == p.KILLING and stop.interrupted_by == signal.SIGTERM


def test_a_signal_while_terminating_after_a_timeout_waits_for_the_grace():
    stop = timed()
    stop.due(110.0)
    assert stop.signalled(signal.SIGINT, hard_stop=False, now=111.0) is None
    assert (stop.state, stop.deadline) == (p.TERMINATING, 112.0)
    assert stop.interrupted_by == signal.SIGINT


def test_a_signal_while_draining_stops_reading_at_once():
    stop = timed()
    stop.process_exited(101.0)
    assert stop.signalled(signal.SIGINT, hard_stop=False, now=101.5) == p.GIVE_UP
    assert stop.done


def test_nothing_happens_after_done():
    stop = timed()
    stop.process_exited(101.0)
    stop.output_closed(101.0)
    assert stop.signalled(signal.SIGINT, hard_stop=True, now=102.0) is None
    assert stop.due(10_000.0) is None
    assert stop.wait(102.0) is None


def test_without_a_timeout_the_clock_alone_never_stops_it():
    stop = untimed()
    assert stop.wait(100.0) is None
    assert stop.due(1e12) is None
    assert stop.state == p.RUNNING


def test_a_long_wait_is_cut_into_steps_poll_can_take():
    stop = p.WatchState(now=0.0, timeout=10 * p.MAX_WAIT, grace=GRACE)
    assert stop.wait(0.0) == p.MAX_WAIT
    assert stop.wait(20 * p.MAX_WAIT) == 0.0


EVENTS = st.lists(st.tuples(
    st.sampled_from(["exited", "closed", "tree_gone", "signal", "tick"]),
    st.floats(min_value=0.0, max_value=30.0)), max_size=12)


@given(events=EVENTS, shielded=st.booleans(), timeout=st.sampled_from([None, 1.0, 10.0]))
def test_any_order_of_events_keeps_the_machine_sound(events, shielded, timeout):
    """Whatever happens in whatever order: SIGTERM goes at most once and before any SIGKILL,
    done is final, a deadline exists in every state but done, and once the process has
    exited, its output closed and its tree gone, the clock alone brings it to done."""
    now = 0.0
    stop = p.WatchState(now, timeout, GRACE, shielded)
    actions, signals = [], 0
    for event, step in events:
        was_done = stop.done
        now += step
        if event == "exited" and not stop.exited:
            stop.process_exited(now)
        elif event == "closed" and stop.reading:
            stop.output_closed(now)
        elif event == "tree_gone" and stop.exited:
            stop.tree_gone(now)
        elif event == "signal":
            signals += 1
            actions.append(stop.signalled(signal.SIGTERM, signals >= 2, now))
        else:
            actions.append(stop.due(now))
        assert not was_done or stop.done
        assert stop.done or stop.deadline is not None or stop.state == p.RUNNING
    taken = [a for a in actions if a]
    assert taken.count(p.TERMINATE) <= 1
    if p.TERMINATE in taken and p.KILL in taken:
        assert taken.index(p.TERMINATE) < taken.index(p.KILL)
    if not stop.exited:
        stop.process_exited(now)
    if stop.reading:
        stop.output_closed(now)
    stop.tree_gone(now)
    for _ in range(4):
        if stop.done:
            break
        now += p.AFTER_KILL_WAIT + c.STRAY_DRAIN_SECONDS + GRACE
        stop.due(now)
    assert stop.done


def test_a_stall_is_a_timeout_that_output_pushes_back():
    stop = p.WatchState(now=100.0, timeout=TIMEOUT, grace=GRACE, stall=3.0)
    assert stop.deadline == 103.0
    stop.output_seen(102.0)
    assert stop.deadline == 105.0
    assert stop.due(104.0) is None
    assert stop.due(105.0) == p.TERMINATE
    assert stop.timed_out and stop.stalled
    assert stop.state == p.TERMINATING and stop.deadline == 105.0 + GRACE


def test_output_never_pushes_the_stall_past_the_timeout():
    stop = p.WatchState(now=100.0, timeout=TIMEOUT, grace=GRACE, stall=3.0)
    for now in (102.0, 104.0, 106.0, 108.0, 109.5):
        stop.output_seen(now)
    assert stop.deadline == 110.0
    assert stop.due(110.0) == p.TERMINATE
    assert stop.timed_out and not stop.stalled


def test_without_a_stall_output_changes_no_deadline():
    stop = untimed()
    stop.output_seen(150.0)
    assert stop.deadline is None and not stop.stalled
