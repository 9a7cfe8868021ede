"""A hook as another user (design.md section 11): ``user=`` runs a hook with that user's
ids, groups and home, hands it its cleanup journal and HOOKRUN_ENV file as inherited
descriptors only, runs what it defers as that user, and kills its processes at a timeout;
through the installed hookrun, with the real second account and the test PostgreSQL."""

import errno
import os
import shutil
import struct
import subprocess
import tempfile

import psutil
import pytest

from tests.conftest import Tree, needs_root, run_hookrun, show_last
from tests.e2e.conftest import as_user, user_env
from tests.e2e.test_example_tree import pg_connection, psql


@pytest.fixture
def tree(sticky_dir):
    """A hooks tree the second user can reach (pytest's own directories are closed to it)."""
    base = sticky_dir / "base"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    return Tree(base)


def shared_marks(tree):
    """A directory the second user can write (the tree's own is under pytest's 0700 base)."""
    marks = tempfile.mkdtemp(prefix="hookrun-as-user-")
    os.chmod(marks, 0o1777)
    return marks


def test_a_hook_with_user_runs_with_that_users_ids_and_home_and_its_cleanup_too(
        tree, attacker):
    marks = shared_marks(tree)
    tree.hook("pre-backup.d/10-as-user", f"""
        id -u > "{marks}/uid"
        id -g > "{marks}/gid"
        echo "$HOME $USER $LOGNAME" > "{marks}/env"
        echo 'id -u > "{marks}/cleanup-uid"' >> "$HOOKRUN_CLEANUP"
        echo "HANDED=from-user" >> "$HOOKRUN_ENV"
        echo "files_new=5" >> "$HOOKRUN_STATS"
        """, header=f"user={attacker.pw_name}")
    tree.hook("pre-backup.d/20-root", f"""
        id -u > "{marks}/root-uid"
        echo "$HANDED" > "{marks}/handed"
        """)
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    read = lambda name: open(os.path.join(marks, name)).read().split()  # noqa: E731
    assert read("uid") == [str(attacker.pw_uid)]
    assert read("gid") == [str(attacker.pw_gid)]
    assert read("env") == [attacker.pw_dir, attacker.pw_name, attacker.pw_name]
    assert read("cleanup-uid") == [str(attacker.pw_uid)]
    assert read("root-uid") == ["0"]
    assert read("handed") == ["from-user"]
    record = show_last(tree)
    assert record["status"] == "success"
    assert [t["status"] for t in record["tasks"] if t["phase"] == "cleanup"] == ["ok"]
    # Its HOOKRUN_STATS is a file of its own too, read with the run's.
    assert record["stats"] == {"files_new": 5}


def test_hookrun_defer_from_a_user_hook_runs_as_that_user_at_the_wind_down(
        tree, attacker, user_hookrun):
    marks = shared_marks(tree)
    tree.hook("pre-backup.d/10-as-user", f"""
        set -e
        hookrun defer sh -c 'id -u > "$1"' sh "{marks}/deferred-uid"
        echo registered > "{marks}/registered"
        """, header=f"user={attacker.pw_name}")
    # root's hookrun from an interpreter the second user may run (the suite's own is
    # under /root): the hook's "hookrun defer" is that hookrun.
    result = subprocess.run(
        [user_hookrun, "run", *tree.args(), "--", "/bin/true"], capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert open(os.path.join(marks, "registered")).read() == "registered\n"
    assert open(os.path.join(marks, "deferred-uid")).read().split() == [str(attacker.pw_uid)]


def test_a_timeout_kills_the_user_hooks_sleeping_grandchild(tree, attacker):
    marks = shared_marks(tree)
    tree.hook("pre-backup.d/10-as-user", f"""
        sh -c 'echo $$ > "{marks}/grandchild"; exec sleep 300' &
        wait
        """, header=f"user={attacker.pw_name} timeout=2s")
    result = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "/bin/true")
    assert result.returncode == 69, result.stderr
    record = show_last(tree)
    assert record["tasks"][0]["status"] == "timeout"
    pid = int(open(os.path.join(marks, "grandchild")).read())
    assert not (psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)


def test_the_user_cannot_redirect_its_hand_off_file_onto_a_root_file(tree, attacker):
    marks = shared_marks(tree)
    victim = tree.base / "root-file"
    victim.write_text("root's\n")
    tree.hook("pre-backup.d/10-as-user", f"""
        real=$(readlink "/proc/self/fd/${{HOOKRUN_ENV#/dev/fd/}}")
        echo "$real" > "{marks}/real"
        rm -f "$real" 2>/dev/null; ln -sf "{victim}" "$real" 2>/dev/null
        echo "$?" > "{marks}/ln-status"
        echo "X=clobbered" >> "$HOOKRUN_ENV"
        """, header=f"user={attacker.pw_name}")
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "root's\n"
    assert open(os.path.join(marks, "ln-status")).read().strip() != "0"
    assert str(tree.state) in open(os.path.join(marks, "real")).read()


def test_user_postgres_runs_a_real_pg_dump_without_runuser(tree, postgres):
    needs_root("user= runs a hook as another account only when hookrun runs as root")
    marks = shared_marks(tree)
    psql(postgres, "postgres", "CREATE DATABASE hookrun_as_user")
    psql(postgres, "hookrun_as_user", "CREATE TABLE samples (id int, body text); "
                                     "INSERT INTO samples VALUES (1, 'hello')")
    connection = " ".join(f"{k}={v}" for k, v in pg_connection(postgres).items())
    tree.hook("pre-backup.d/10-dump", f"""
        set -e
        {connection} pg_dump -d hookrun_as_user -f "{marks}/dump.sql"
        """, header="user=postgres")
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    dump = os.path.join(marks, "dump.sql")
    assert "hello" in open(dump).read()
    assert os.stat(dump).st_uid == __import__("pwd").getpwnam("postgres").pw_uid


def test_a_non_root_hookrun_refuses_user_naming_someone_else(tmp_path, attacker,
                                                              user_hookrun, sticky_dir):
    base = sticky_dir / "tree"
    script = (f'mkdir -p "{base}/hooks/pre-backup.d" && cd "{base}/hooks/pre-backup.d" && '
              "printf '#!/bin/sh\\n# hookrun: user=root\\ntrue\\n' > 10-x && chmod 755 10-x "
              "&& chmod 755 .. . && printf '#!/bin/sh\\n# hookrun: user=%s\\ntrue\\n' \"$1\" "
              "> 20-self && chmod 755 20-self")
    assert as_user(attacker, ["/bin/sh", "-euc", script, "sh", attacker.pw_name]).returncode \
        == 0
    result = as_user(attacker, [user_hookrun, "run", "-d", f"{base}/hooks", "--state-dir",
                                f"{base}/state", "--", "/bin/true"], env=user_env(attacker))
    assert result.returncode == 78, result.stderr
    assert f"{base}/hooks/pre-backup.d/10-x:2" in result.stderr
    os.unlink(f"{base}/hooks/pre-backup.d/10-x")
    result = as_user(attacker, [user_hookrun, "run", "-d", f"{base}/hooks", "--state-dir",
                                f"{base}/state", "--", "/bin/true"], env=user_env(attacker))
    assert result.returncode == 0, result.stderr


def test_an_unknown_user_is_a_configuration_error(tree):
    path = tree.hook("pre-backup.d/10-x", "true", header="user=no-such-user-here")
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 78
    assert f"{path}:2" in result.stderr and "unknown user" in result.stderr


def cannot_start_as_user(tree, hook, reason):
    """Run and check ``tree``, whose ``hook`` (a pre- hook with user= and retries=2) its
    user may not start: a task failed at once with ``reason``, the run stopped (69), and
    ``check`` exits 1 naming it with a fix."""
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 69, result.stderr
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("failure", 69)
    task = next(t for t in record["tasks"] if t["name"] == hook.name)
    assert (task["status"], task["reason"], task["attempts"]) == ("failed", reason, 1)
    assert "retry" not in result.stderr
    check = run_hookrun("check", *tree.args())
    assert check.returncode == 1, check.stderr
    assert f"{hook}: {reason} (fix: " in check.stderr
    return record


def test_a_hook_its_user_may_not_execute_fails_at_once_and_check_names_it(tree, attacker):
    marks = shared_marks(tree)
    # The same mode without user= is root's to run, and runs as before.
    tree.hook("pre-backup.d/05-root", f'id -u > "{marks}/root"', mode=0o700)
    hook = tree.hook("pre-backup.d/10-as-user", f'id -u > "{marks}/user"', mode=0o700,
                     header=f"user={attacker.pw_name} retries=2 retry-delay=1s")
    record = cannot_start_as_user(tree, hook, f"not executable by user {attacker.pw_name}")
    assert open(os.path.join(marks, "root")).read().split() == ["0"]
    assert not os.path.exists(os.path.join(marks, "user"))
    assert [t["status"] for t in record["tasks"] if t["phase"] == "pre"] == ["ok", "failed"]
    # Once the user may execute it, it runs as that user.
    hook.chmod(0o755)
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    assert open(os.path.join(marks, "user")).read().split() == [str(attacker.pw_uid)]


def root_sh(path):
    shutil.copyfile("/bin/sh", path)
    path.chmod(0o700)


def wrapper_script(path):
    path.write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
    path.chmod(0o711)


# An interpreter the user may not execute (a copy of /bin/sh, 0700); one that is itself a
# #! script, read by what runs it, which 0711 lets the user execute but not run.
@pytest.mark.parametrize("make, refused", [(root_sh, "executable"),
                                           (wrapper_script, "readable")])
def test_a_hook_whose_interpreter_its_user_may_not_run_fails_at_once(tree, attacker, make,
                                                                      refused):
    marks = shared_marks(tree)
    interpreter = tree.base / "interpreter"
    make(interpreter)
    hook = tree.hook("pre-backup.d/10-as-user", f'id -u > "{marks}/user"',
                     shebang=f"#!{interpreter}",
                     header=f"user={attacker.pw_name} retries=2 retry-delay=1s")
    cannot_start_as_user(
        tree, hook, f"interpreter {interpreter} not {refused} by user {attacker.pw_name}")
    assert not os.path.exists(os.path.join(marks, "user"))


def test_a_hook_in_a_directory_its_user_may_not_search_fails_at_once(tree, attacker):
    marks = shared_marks(tree)
    hook = tree.hook("pre-backup.d/10-as-user", f'id -u > "{marks}/user"',
                     header=f"user={attacker.pw_name} retries=2 retry-delay=1s")
    hook.parent.chmod(0o700)
    cannot_start_as_user(tree, hook, f"not executable by user {attacker.pw_name}")
    assert not os.path.exists(os.path.join(marks, "user"))


def set_access_acl(path, uid, perms):
    """Give ``path`` (mode 0750) the POSIX access ACL user::rwx user:UID:PERMS group::r-x
    mask::PERMS other::---, written as the kernel's xattr (there is no setfacl here)."""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 7, undefined), (0x02, perms, uid), (0x04, 5, undefined),
               (0x10, perms, undefined), (0x20, 0, undefined)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    try:
        os.setxattr(path, "system.posix_acl_access", value)
    except OSError as error:
        if error.errno == errno.ENOTSUP:
            pytest.skip(f"the filesystem of {path} refuses POSIX ACLs")
        raise


def test_a_hook_its_user_may_execute_through_an_acl_runs_as_that_user(tree, attacker):
    marks = shared_marks(tree)
    hook = tree.hook("pre-backup.d/10-as-user", f'id -u > "{marks}/user"', mode=0o750,
                     header=f"user={attacker.pw_name}")
    set_access_acl(hook, attacker.pw_uid, 5)
    assert (hook.stat().st_uid, hook.stat().st_gid) == (0, 0)
    check = run_hookrun("check", *tree.args())
    assert check.returncode == 0, check.stderr
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    assert open(os.path.join(marks, "user")).read().split() == [str(attacker.pw_uid)]
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("success", 0)
    assert [t["status"] for t in record["tasks"] if t["phase"] == "pre"] == ["ok"]


def test_a_script_its_user_may_execute_but_not_read_fails_at_once(tree, attacker):
    marks = shared_marks(tree)
    # o+x without o+r: execve is allowed, but /bin/sh cannot open the script.
    hook = tree.hook("pre-backup.d/10-as-user", f'id -u > "{marks}/user"', mode=0o711,
                     header=f"user={attacker.pw_name} retries=2 retry-delay=1s")
    cannot_start_as_user(tree, hook, f"not readable by user {attacker.pw_name}")
    assert not os.path.exists(os.path.join(marks, "user"))
    check = run_hookrun("check", *tree.args())
    assert "chmod o+rx" in check.stderr
    # Once the user may read it too, it runs as that user.
    hook.chmod(0o755)
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    assert open(os.path.join(marks, "user")).read().split() == [str(attacker.pw_uid)]


def test_a_hook_through_links_in_a_directory_its_user_may_not_search_fails_at_once(
        tree, attacker):
    marks = shared_marks(tree)
    # hooks/pre-backup.d/10-as-user -> open/first -> closed/second -> real/10-as-user: the
    # hook as written and as resolved lie in directories the user may search; only the
    # link in between does not.
    real = tree.hook("real/10-as-user", f'id -u > "{marks}/user"',
                     header=f"user={attacker.pw_name} retries=2 retry-delay=1s")
    opened, closed = tree.base / "open", tree.base / "closed"
    opened.mkdir(mode=0o755)
    closed.mkdir(mode=0o700)
    (closed / "second").symlink_to(real)
    (opened / "first").symlink_to(closed / "second")
    hook = tree.hooks / "pre-backup.d" / "10-as-user"
    hook.parent.mkdir(mode=0o755)
    hook.symlink_to(opened / "first")
    cannot_start_as_user(tree, hook, f"not executable by user {attacker.pw_name}")
    assert not os.path.exists(os.path.join(marks, "user"))
    # Once the user may search it, the hook runs as that user.
    closed.chmod(0o755)
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    assert open(os.path.join(marks, "user")).read().split() == [str(attacker.pw_uid)]
