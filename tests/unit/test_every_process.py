"""Listing processes while they end: psutil lets /proc's FileNotFoundError through when a
pid went to another process between two reads; the walk passes that one over and goes on."""

import os

import psutil

from orchestrator import process


def test_a_process_whose_proc_entry_vanishes_mid_walk_is_passed_over(monkeypatch):
    real = psutil.Process
    victim = os.getppid()

    class Flaky(real):
        def ppid(self):
            if self.pid == victim:
                raise FileNotFoundError(2, "No such file or directory")
            return super().ppid()

    monkeypatch.setattr(psutil, "Process", Flaky)
    found = dict((p.pid, ppid) for p, ppid in process.every_process("ppid"))
    assert os.getpid() in found and found[os.getpid()] == victim
    assert victim not in found


def test_a_cookie_that_cannot_be_read_for_that_reason_is_none():
    class Gone:
        def environ(self):
            raise FileNotFoundError(2, "No such file or directory")

    assert process.cookie_of(Gone()) is None
