"""hookrun as a container's entrypoint: PID 1 of a PID namespace of its own (``unshare --pid
--fork --mount-proc``, as a container runtime starts it), signalled from outside as the
runtime does on ``docker stop`` or a Kubernetes pod's termination.

PID 1 gets no default signal action from the kernel: a signal it has no handler for is
dropped. hookrun handles SIGINT, SIGTERM and SIGHUP while it runs, so SIGTERM still gives the
full wind-down. Every orphan of the namespace becomes PID 1's child: hookrun reaps them when
they end (on SIGCHLD), also while a hook or the command is still running, so no zombie
stays; when it exits, the kernel kills what is left in the namespace.

Also: orchestrator/contrib/docker/Dockerfile and orchestrator/contrib/kubernetes/cronjob.yaml,
which are documentation (no container engine here), parsed and held to what this file proves.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import hookrun_cmd, needs_root, run_hookrun
from tests.e2e.test_example_tree import require

CONTRIB = Path(__file__).resolve().parents[2] / "orchestrator" / "contrib"
SIGTERM_EXIT = 128 + signal.SIGTERM
# Generous upper bounds: a slow CI must not flake, a hang must not hang.
DEADLINE = 60
DEFAULT_KILL_GRACE = 10
# A hook that leaves an orphan behind: the subshell exits at once, its child (with no pipe
# of hookrun's open, so nothing waits for it) ends 0.3 s later and must then be reaped.
ORPHAN = "( sleep 0.3 </dev/null >/dev/null 2>&1 & )"
# A shell function printing the zombies among the children of process $1.
ZOMBIES = r"""zombies() {
    for status in /proc/[0-9]*/status; do
        if grep -qs '^State:.*Z' "$status" && grep -qs "^PPid:[[:space:]]*$1\$" "$status"
        then echo "$status"; fi
    done
}"""


def unshare_pid():
    """The unshare command that starts hookrun as PID 1, or a skip (a failure under
    HOOKRUN_REQUIRE_TOOLS=1) when PID namespaces are not available here."""
    unshare = require(shutil.which("unshare"), "unshare (util-linux)")
    needs_root("unshare --pid --mount-proc (a PID namespace with its own /proc)")
    argv = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
    probe = subprocess.run(argv + ["true"], capture_output=True, timeout=DEADLINE)
    require(probe.returncode == 0, "unshare --pid",
            f"does not work here ({probe.stderr.decode().strip()})")
    return argv


def child_of(pid):
    """The pid of the one child of ``pid`` (unshare's: hookrun, seen from outside)."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
        children = handle.read().split()
    return int(children[0]) if children else None


def wait_for(path, process):
    deadline = time.monotonic() + DEADLINE
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"hookrun ended ({process.returncode}) before {path.name} appeared:\n"
                        f"{process.communicate()[0]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} did not appear within {DEADLINE}s")
        time.sleep(0.05)


def backup_tree(tree):
    """pre- registers a cleanup and leaves an orphan; the command looks for zombies once the
    orphan has ended, says it is ready and sleeps; on-error.d and finally.d leave marks."""
    tree.hook("pre-backup.d/10-defer", f"""
        echo "$PPID" > "{tree.mark('pre-parent')}"
        hookrun defer touch "{tree.mark('cleanup')}"
        {ORPHAN}
        """)
    tree.hook("on-error.d/10-mark", f'touch "{tree.mark("on-error")}"')
    tree.hook("finally.d/90-mark", f"""
        {ZOMBIES}
        zombies "$PPID" > "{tree.mark('zombies-after')}"
        echo "$HOOKRUN_STATUS" > "{tree.mark('finally')}"
        """)
    command = tree.base / "backup-command"
    command.write_text(f"""#!/bin/sh
{ZOMBIES}
sleep 1
zombies "$PPID" > "{tree.mark('zombies-during')}"
touch "{tree.mark('ready')}"
exec sleep 60
""")
    command.chmod(0o755)
    return str(command)


def test_sigterm_to_hookrun_as_pid_1_runs_the_whole_wind_down_and_exits_143(tree):
    argv = unshare_pid()
    command = backup_tree(tree)
    started = time.monotonic()
    process = subprocess.Popen(argv + hookrun_cmd() + ["run", *tree.args(), "--", command],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(tree.mark("ready"), process)
        hookrun = child_of(process.pid)
        assert hookrun is not None
        os.kill(hookrun, signal.SIGTERM)
        output = process.communicate(timeout=DEADLINE)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(DEADLINE)
    assert process.returncode == SIGTERM_EXIT, output
    assert tree.read("pre-parent") == "1\n"
    assert tree.read("zombies-during") == ""
    assert tree.read("cleanup") is not None and tree.read("on-error") is not None
    assert tree.read("finally") == "interrupted\n"
    assert tree.read("zombies-after") == ""
    assert time.monotonic() - started < DEADLINE


def test_orphans_are_reaped_while_the_command_runs_outside_a_container_too(tree):
    """hookrun is a child subreaper: the same orphan becomes its child, and must not stay a
    zombie until the command ends."""
    tree.hook("pre-backup.d/10-orphan", ORPHAN)
    command = tree.base / "look"
    command.write_text(f'#!/bin/sh\n{ZOMBIES}\nsleep 1\n'
                       f'zombies "$PPID" > "{tree.mark("zombies")}"\n')
    command.chmod(0o755)
    result = run_hookrun("run", *tree.args(), "--", str(command), timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert tree.read("zombies") == ""


def test_a_daemon_left_by_a_hook_neither_hangs_pid_1_nor_outlives_the_container(tree):
    argv = unshare_pid()
    tag = f"299.{os.getpid()}"
    # It keeps the hook's stdout open: hookrun stops reading after 2 s and goes on.
    tree.hook("pre-backup.d/10-daemon", f"sleep {tag} &")
    result = subprocess.run(argv + hookrun_cmd() + ["run", *tree.args(), "--", "true"],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    import psutil

    left = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", tag]]
    assert left == []


# The container examples: documentation, held to what the tests above prove.

def test_the_dockerfile_makes_hookrun_itself_pid_1():
    lines = [line.strip() for line in (CONTRIB / "docker" / "Dockerfile").read_text()
             .splitlines() if line.strip() and not line.lstrip().startswith("#")]
    [entrypoint] = [line for line in lines if line.startswith("ENTRYPOINT ")]
    # The exec form (a JSON list): the shell form would make /bin/sh PID 1, which neither
    # forwards SIGTERM nor runs the wind-down.
    argv = json.loads(entrypoint[len("ENTRYPOINT "):])
    assert argv[:2] == ["hookrun", "run"]
    assert any(line.startswith("VOLUME ") and "/var/lib/hookrun" in line for line in lines)


def test_the_cronjob_never_overlaps_and_gives_the_wind_down_time():
    yaml = pytest.importorskip("yaml")
    from orchestrator.cli import build_parser

    documents = list(yaml.safe_load_all((CONTRIB / "kubernetes" / "cronjob.yaml").read_text()))
    [cronjob] = [d for d in documents if d and d["kind"] == "CronJob"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 6 * DEFAULT_KILL_GRACE
    assert pod["restartPolicy"] == "Never"
    # A stable host name: the Pushgateway groups by it, and a pod's own name changes each run.
    assert pod["hostname"]
    [container] = pod["containers"]
    args = build_parser().parse_args(["run", *container["args"]])
    assert args.metrics_push_url and args.event
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = {v["name"]: v for v in pod["volumes"]}[mounts["/var/lib/hookrun"]]
    assert claim["persistentVolumeClaim"]["claimName"]
