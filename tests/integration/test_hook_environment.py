"""Every environment variable hooks and the command are given (design.md section 2)."""

import os

from tests.conftest import marker_hook

DUMP = ('env -0 > "{marks}/env-$HOOKRUN_PHASE-$HOOKRUN_HOOK"\n'
        '[ -z "$HOOKRUN_ERROR_LOG" ] || cp "$HOOKRUN_ERROR_LOG" "{marks}/log-$HOOKRUN_PHASE"')


def env_of(tree, phase, hook):
    raw = (tree.marks / f"env-{phase}-{hook}").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def dumping_tree(tree):
    for relative in ("pre-backup.d/10-a", "pre-backup.d/20-b", "post-backup.d/10-post",
                     "on-error.d/10-error", "on-success.d/10-success", "finally.d/10-finally"):
        tree.hook(relative, DUMP.format(marks=tree.marks))


def test_pre_hooks_get_the_run_variables(tree, hookrun_main):
    dumping_tree(tree)
    tree.config("[env]\nFROM_CONFIG = configured\n")
    hookrun_main("run", *tree.args(), "--", "echo", "it's quoted")
    env = env_of(tree, "pre", "20-b")
    assert env["HOOKRUN_EVENT"] == "backup"
    assert env["HOOKRUN_PHASE"] == "pre"
    assert env["HOOKRUN_HOOK"] == "20-b"
    assert env["HOOKRUN_HOOK_PATH"] == str(tree.hooks / "pre-backup.d" / "20-b")
    assert (env["HOOKRUN_INDEX"], env["HOOKRUN_COUNT"]) == ("2", "2")
    assert env["HOOKRUN_ATTEMPT"] == "1"
    assert env["HOOKRUN_HOOKS_DIR"] == str(tree.hooks)
    assert env["HOOKRUN_STATE_DIR"] == str(tree.state)
    assert env["HOOKRUN_COMMAND"] == "echo 'it'\"'\"'s quoted'"
    assert os.path.basename(env["HOOKRUN_CLEANUP"]) == "cleanup"
    assert env["HOOKRUN_ENV"] and env["HOOKRUN_RUN_ID"]
    assert env["FROM_CONFIG"] == "configured"
    assert env["HOOKRUN_PREVIOUS_RUN_ID"] == "" and env["HOOKRUN_PREVIOUS_STATUS"] == ""
    for later in ("HOOKRUN_STATUS", "BACKUP_STATUS", "HOOKRUN_EXIT_CODE", "HOOKRUN_ERROR"):
        assert later not in env


def test_the_command_gets_config_env_and_the_run_id_but_no_hook_variables(tree, hookrun_main):
    tree.config("[env]\nFROM_CONFIG = configured\n")
    hookrun_main("run", *tree.args(), "--", "sh", "-c", f'env -0 > "{tree.marks}/cmd-env"')
    raw = (tree.marks / "cmd-env").read_bytes().decode()
    env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    assert env["FROM_CONFIG"] == "configured"
    assert env["HOOKRUN_EVENT"] == "backup" and env["HOOKRUN_RUN_ID"]
    assert "HOOKRUN_PHASE" not in env and "HOOKRUN_CLEANUP" not in env


def test_previous_run_of_the_same_event_is_given(tree, hookrun_main):
    dumping_tree(tree)
    hookrun_main("run", *tree.args(), "--", "false")
    first = env_of(tree, "pre", "10-a")["HOOKRUN_RUN_ID"]
    hookrun_main("run", *tree.args(), "--", "true")
    env = env_of(tree, "pre", "10-a")
    assert env["HOOKRUN_PREVIOUS_RUN_ID"] == first
    assert env["HOOKRUN_PREVIOUS_STATUS"] == "failure"
    assert env["HOOKRUN_RUN_ID"] != first


def test_post_and_later_hooks_see_status_exit_code_and_error(tree, hookrun_main):
    dumping_tree(tree)
    hookrun_main("run", *tree.args(), "--", "sh", "-c", "echo boom-output >&2; exit 3")
    post = env_of(tree, "post", "10-post")
    assert post["HOOKRUN_STATUS"] == post["BACKUP_STATUS"] == "failure"
    assert post["HOOKRUN_EXIT_CODE"] == "3"
    error = env_of(tree, "on-error", "10-error")
    assert error["HOOKRUN_STATUS"] == error["BACKUP_STATUS"] == "failure"
    assert error["HOOKRUN_ERROR"] == error["BACKUP_ERROR"] == error["ERROR"]
    assert "sh" in error["ERROR"] and "3" in error["ERROR"]
    assert error["HOOKRUN_ERROR_PHASE"] == "command"
    assert error["HOOKRUN_ERROR_HOOK"] == "sh"
    assert error["HOOKRUN_ERROR_LOG"]
    assert "boom-output" in tree.read("log-on-error")
    assert env_of(tree, "finally", "10-finally")["HOOKRUN_STATUS"] == "failure"


def test_success_has_empty_error_variables(tree, hookrun_main):
    dumping_tree(tree)
    hookrun_main("run", *tree.args(), "--", "true")
    env = env_of(tree, "on-success", "10-success")
    assert env["HOOKRUN_STATUS"] == "success" and env["HOOKRUN_EXIT_CODE"] == "0"
    assert env["ERROR"] == env["HOOKRUN_ERROR_LOG"] == env["HOOKRUN_ERROR_HOOK"] == ""


def test_post_sees_not_run_when_pre_stopped_and_the_error_names_the_hook(tree, hookrun_main):
    dumping_tree(tree)
    (tree.hooks / "pre-backup.d" / "10-a").unlink()
    (tree.hooks / "pre-backup.d" / "20-b").unlink()
    tree.hook("pre-backup.d/10-fail", "echo dump failed: disk on fire; exit 2")
    tree.hook("post-backup.d/10-post", DUMP.format(marks=tree.marks), header="when=always")
    hookrun_main("run", *tree.args(), "--", "true")
    post = env_of(tree, "post", "10-post")
    assert post["HOOKRUN_STATUS"] == "not-run" and post["HOOKRUN_EXIT_CODE"] == ""
    error = env_of(tree, "on-error", "10-error")
    assert error["HOOKRUN_ERROR_PHASE"] == "pre" and error["HOOKRUN_ERROR_HOOK"] == "10-fail"
    assert "disk on fire" in tree.read("log-on-error")


def test_hook_stdin_is_dev_null_and_the_command_inherits_stdin(tree):
    from tests.conftest import run_hookrun

    tree.hook("pre-backup.d/10-read", f'cat > "{tree.marks}/hook-stdin"')
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c",
                         f'cat > "{tree.marks}/command-stdin"', input="fed to the command\n")
    assert result.returncode == 0, result.stderr
    assert tree.read("hook-stdin") == ""
    assert tree.read("command-stdin") == "fed to the command\n"


def test_hookrun_env_hands_values_to_later_hooks_and_the_command(tree, hookrun_main):
    tree.hook("pre-backup.d/10-mount", """
        echo "RESTIC_REPOSITORY=/mnt/usb-2/restic" >> "$HOOKRUN_ENV"
        echo "HOOKRUN_EVENT=hijack" >> "$HOOKRUN_ENV"
        echo "not a pair" >> "$HOOKRUN_ENV"
        """)
    tree.hook("pre-backup.d/20-see", f"""
        echo "$RESTIC_REPOSITORY" > "{tree.marks}/hook-saw"
        test ! -s "$HOOKRUN_ENV" && echo empty > "{tree.marks}/fresh"
        """)
    status, _out, err = hookrun_main(
        "run", *tree.args(), "--", "sh", "-c",
        f'echo "$RESTIC_REPOSITORY $HOOKRUN_EVENT $HOOKRUN_RUN_ID" > "{tree.marks}/cmd-saw"')
    assert status == 0
    assert tree.read("hook-saw").strip() == "/mnt/usb-2/restic"
    assert tree.read("fresh").strip() == "empty"
    saw = tree.read("cmd-saw").split()
    assert saw[:2] == ["/mnt/usb-2/restic", "backup"] and saw[2]
    assert err.count("HOOKRUN_ENV") == 2


def test_values_of_a_failed_hook_are_not_handed_on(tree, hookrun_main):
    tree.hook("pre-backup.d/10-fail", 'echo "LEAK=yes" >> "$HOOKRUN_ENV"; exit 1',
              header="critical=no")
    tree.hook("pre-backup.d/20-see", f'echo "${{LEAK:-unset}}" > "{tree.marks}/saw"')
    hookrun_main("run", *tree.args(), "--", "true")
    assert tree.read("saw").strip() == "unset"


def test_path_and_umask_settings_apply_to_hooks_and_command(tree, hookrun_main):
    tree.config("[hookrun]\npath = /usr/bin:/bin:/opt/custom\numask = 027\n")
    tree.hook("pre-backup.d/10-show", f'echo "$PATH $(umask)" > "{tree.marks}/hook"')
    hookrun_main("run", *tree.args(), "--", "sh", "-c",
                 f'echo "$PATH $(umask)" > "{tree.marks}/cmd"')
    hook_path, hook_umask = tree.read("hook").split()
    # Hooks get, last, the directory holding hookrun itself, for "hookrun defer".
    assert hook_path.startswith("/usr/bin:/bin:/opt/custom:") and hook_path.endswith("/bin")
    assert hook_umask == "0027"
    assert tree.read("cmd").split() == ["/usr/bin:/bin:/opt/custom", "0027"]


def test_scripts_without_a_shebang_run_under_bin_sh(tree, hookrun_main):
    tree.hook("pre-backup.d/10-plain", f'echo "plain $0" > "{tree.marks}/plain"', shebang=None)
    status, _out, _err = hookrun_main("run", *tree.args(), "--", "true")
    assert status == 0
    assert tree.read("plain").startswith("plain ")


def test_failed_retries_show_attempt_numbers(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-x", code=1, header="retries=2 retry-delay=0",
                extra=f'echo "$HOOKRUN_ATTEMPT" >> "{tree.marks}/attempts"')
    hookrun_main("run", *tree.args(), "--", "true")
    assert tree.read("attempts").split() == ["1", "2", "3"]


def test_the_error_log_is_private(tree, hookrun_main):
    tree.hook("on-error.d/10-mode", f'stat -c %a "$HOOKRUN_ERROR_LOG" > "{tree.marks}/mode"')
    hookrun_main("run", *tree.args(), "--", "false")
    assert tree.read("mode").strip() == "600"


def test_timeout_0_on_the_command_line_also_frees_cleanups(tree, hookrun_main):
    tree.config("[hookrun]\ntimeout = 1s\nkill_grace = 1s\n")
    tree.hook("pre-backup.d/10-a", f'hookrun defer sh -c \'sleep 2; touch "{tree.marks}/done"\'')
    assert hookrun_main("run", *tree.args("--timeout", "0"), "--", "true")[0] == 0
    assert tree.read("done") == ""
