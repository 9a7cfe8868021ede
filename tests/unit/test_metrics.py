"""hookrun_hook_consecutive_failures: how a task's runs of failures are counted."""

import errno
import os
import sys

import pytest

from orchestrator.outcome import TaskRecord, TaskStatus
from orchestrator.report.metrics import consecutive_failures, render, run_samples, write_metrics


def test_failures_in_a_row_are_counted_back_to_the_last_run_that_did_not_fail():
    assert consecutive_failures(["failed", "timeout", "failed", "ok", "failed"]) == 3


def test_a_hook_that_gave_up_with_62_ends_the_run_of_failures():
    assert consecutive_failures(["failed", "aborted", "failed"]) == 1


def test_runs_where_the_task_did_not_run_neither_count_nor_end_the_run_of_failures():
    assert consecutive_failures(["skipped", "failed", None, "failed", "ok"]) == 2


def test_a_task_that_succeeded_last_has_no_failures_in_a_row():
    assert consecutive_failures(["ok", "failed", "failed"]) == 0


def test_run_samples_count_earlier_runs_per_phase_and_hook():
    tasks = [TaskRecord("pre", "10-dump", TaskStatus.FAILED),
             TaskRecord("post", "10-dump", TaskStatus.OK)]
    earlier = [{("pre", "10-dump"): "failed", ("post", "10-dump"): "failed"},
               {("pre", "10-dump"): "timeout"}]
    samples = run_samples("backup", status="failure", exit_code=69, finished=1.0, duration=1.0,
                          last_success=None, tasks=tasks, earlier=earlier)
    found = {label_text: value for name, label_text, value in samples
             if name == "hookrun_hook_consecutive_failures"}
    assert found == {'{event="backup",phase="pre",hook="10-dump"}': 3,
                     '{event="backup",phase="post",hook="10-dump"}': 0}
    assert "# HELP hookrun_hook_consecutive_failures " in render(samples)


def test_a_link_of_ones_own_is_followed_and_the_file_it_names_replaced(tmp_path):
    real = tmp_path / "textfile" / "hookrun.prom"
    real.parent.mkdir()
    link = tmp_path / "hookrun.prom"
    link.symlink_to(real)
    write_metrics(str(link), "backup", status="success", exit_code=0, finished=1.0,
                  duration=1.0, last_success=1.0, tasks=[])
    assert link.is_symlink() and 'hookrun_last_run_exit_code{event="backup"} 0' in \
        real.read_text()


def test_a_link_planted_after_the_last_look_is_never_read_or_written_through(tmp_path,
                                                                             monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text('hookrun_secret{event="other"} 42\n')
    path = tmp_path / "hookrun.prom"
    real_lstat = os.lstat
    planted = []

    def plant_after_look(entry, *args, **kwargs):
        # Planted at real_path's own last look: the checks of the way before it (chain,
        # which binds os.lstat when orchestrator.files is first imported, perhaps while this
        # stands in for it) have seen no link, as in the race this test stands for.
        last_look = sys._getframe(1).f_code.co_name == "real_path"
        try:
            return real_lstat(entry, *args, **kwargs)
        finally:
            if last_look and str(entry) == str(path) and not planted:
                planted.append(entry)
                path.symlink_to(victim)

    monkeypatch.setattr(os, "lstat", plant_after_look)
    with pytest.raises(OSError) as refused:
        write_metrics(str(path), "backup", status="success", exit_code=0, finished=1.0,
                      duration=1.0, last_success=1.0, tasks=[])
    monkeypatch.undo()
    assert refused.value.errno == errno.ELOOP
    assert victim.read_text() == 'hookrun_secret{event="other"} 42\n'
    assert planted and sorted(p.name for p in tmp_path.iterdir()) == ["hookrun.prom", "victim"]


def test_reading_the_metrics_file_back_asks_for_what_it_holds_not_16_mib(tmp_path):
    """Under a tight address-space limit a 16 MiB buffer for a small file is a MemoryError:
    the kept samples are read in buffers sized by the file (files.read_sized)."""
    import tracemalloc

    from orchestrator.report.metrics import kept_samples

    path = tmp_path / "hookrun.prom"
    path.write_text('hookrun_last_run_status{event="backup",status="success"} 1\n')
    tracemalloc.start()
    try:
        kept = kept_samples(str(path), lambda name, labels: False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kept == [("hookrun_last_run_status", '{event="backup",status="success"}', "1")]
    assert peak < 1 << 20
