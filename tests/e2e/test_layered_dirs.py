"""Layered hooks directories (design.md 12): hooks from several directories, earliest lowest,
merged by name; a later file replaces an earlier one, a later link to /dev/null masks it.
Through the installed ``hookrun``, as a package's /usr/lib/hookrun and the admin's
/etc/hookrun would be used, in directories of the test's own."""

import json
import os

from tests.conftest import run_hookrun, show_last

EXIT_UNSAFE = 77


def hook(directory, relative, text):
    path = directory / relative
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{text}\n")
    path.chmod(0o755)
    return path


def layers(tmp_path):
    """(vendor, admin, marks, state): two hooks directories and where hooks leave marks."""
    vendor, admin, marks = tmp_path / "vendor", tmp_path / "admin", tmp_path / "marks"
    for directory in (vendor, admin, marks):
        directory.mkdir(mode=0o755)
    return vendor, admin, marks, tmp_path / "state"


def marker(marks, text):
    return f'echo {text} >> "{marks}/order"'


def args(state, *dirs):
    return [arg for d in dirs for arg in ("-d", str(d))] + ["--state-dir", str(state)]


def test_layers_merge_by_name_replace_and_mask(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-vendor", marker(marks, "vendor-10"))
    hook(vendor, "pre-backup.d/20-dump", marker(marks, "vendor-20"))
    hook(vendor, "pre-backup.d/30-stop", marker(marks, "vendor-30"))
    hook(admin, "pre-backup.d/15-admin", marker(marks, "admin-15"))
    hook(admin, "pre-backup.d/20-dump", marker(marks, "admin-20"))
    os.symlink(os.devnull, admin / "pre-backup.d" / "30-stop")
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0, result.stderr
    assert (marks / "order").read_text().split() == ["vendor-10", "admin-15", "admin-20"]
    names = [t["name"] for t in show_last(tree_like(state, admin))["tasks"] if t["phase"] == "pre"]
    assert names == ["10-vendor", "15-admin", "20-dump"]

    listing = run_hookrun("list", "--json", "--all", *args(state, vendor, admin))
    items = {item["name"]: item for item in json.loads(listing.stdout)}
    assert items["10-vendor"]["origin"] == str(vendor) and items["10-vendor"]["overrides"] == []
    assert items["20-dump"]["origin"] == str(admin)
    assert items["20-dump"]["overrides"] == [str(vendor / "pre-backup.d" / "20-dump")]
    mask = items["30-stop"]
    assert mask["runs"] is False
    assert mask["reason"] == f"masked by {admin / 'pre-backup.d' / '30-stop'}"
    text = run_hookrun("list", *args(state, vendor, admin)).stdout
    assert f"replaces {vendor / 'pre-backup.d' / '20-dump'}" in text


def test_a_link_that_resolves_to_dev_null_masks_however_it_is_spelled(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(admin, "pre-backup.d/40-kept", marker(marks, "40-kept"))
    spellings = {"10-relative": os.path.relpath(os.devnull, admin / "pre-backup.d"),
                 "20-doubled": "/dev//null", "30-dotted": "/dev/./null"}
    for name, target in spellings.items():
        hook(vendor, f"pre-backup.d/{name}", marker(marks, name))
        os.symlink(target, admin / "pre-backup.d" / name)
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0 and result.stderr == ""
    assert (marks / "order").read_text().split() == ["40-kept"]
    assert show_last(tree_like(state, admin))["status"] == "success"
    listing = run_hookrun("list", "--json", "--all", *args(state, vendor, admin))
    items = {item["name"]: item for item in json.loads(listing.stdout)}
    for name in spellings:
        assert items[name]["reason"] == f"masked by {admin / 'pre-backup.d' / name}"


def tree_like(state, hooks):
    """What show_last() needs of a Tree: its arguments."""
    class Shown:
        @staticmethod
        def args(*extra):
            return ["-d", str(hooks), "--state-dir", str(state), *extra]
    return Shown


def test_hookrun_dir_takes_a_colon_list_and_the_last_config_counts(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-env", f'echo "$WHO" >> "{marks}/order"')
    (vendor / "hookrun.conf").write_text("[env]\nWHO = vendor\n")
    (admin / "hookrun.conf").write_text("[env]\nWHO = admin\n")
    for conf in (vendor / "hookrun.conf", admin / "hookrun.conf"):
        conf.chmod(0o644)
    env = {"HOOKRUN_DIR": f"{vendor}:{admin}"}
    result = run_hookrun("run", "--state-dir", str(state), "--", "true", env=env)
    assert result.returncode == 0, result.stderr
    assert (marks / "order").read_text().split() == ["admin"]
    (admin / "hookrun.conf").unlink()
    assert run_hookrun("run", "--state-dir", str(state), "--", "true", env=env).returncode == 0
    assert (marks / "order").read_text().split() == ["admin", "vendor"]


def test_each_hookignore_hides_only_its_own_directorys_files(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-a", marker(marks, "vendor-a"))
    hook(admin, "pre-backup.d/10-a", marker(marks, "admin-a"))
    hook(admin, "pre-backup.d/20-b", marker(marks, "admin-b"))
    (admin / ".hookignore").write_text("pre-backup.d/10-a\n")
    (vendor / ".hookignore").write_text("pre-backup.d/20-b\n")
    for ignore in (admin / ".hookignore", vendor / ".hookignore"):
        ignore.chmod(0o644)
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0, result.stderr
    # The admin's ignored 10-a replaces nothing; the vendor's pattern does not hide 20-b.
    assert (marks / "order").read_text().split() == ["vendor-a", "admin-b"]


def test_a_config_or_hookignore_linked_to_dev_null_is_masked_not_unsafe(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-env", f'echo "who=$WHO" >> "{marks}/order"')
    hook(vendor, "pre-backup.d/20-b", marker(marks, "vendor-b"))
    (vendor / "hookrun.conf").write_text("[env]\nWHO = vendor\n")
    (vendor / "hookrun.conf").chmod(0o644)
    (vendor / ".hookignore").write_text("pre-backup.d/20-b\n")
    os.symlink(os.devnull, admin / "hookrun.conf")
    (vendor / ".hookignore").unlink()
    os.symlink(os.devnull, vendor / ".hookignore")
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0 and "chmod" not in result.stderr, result.stderr
    # No settings from the masked config, none from the earlier one it hides; no pattern.
    assert (marks / "order").read_text().split() == ["who=", "vendor-b"]
    assert show_last(tree_like(state, admin))["status"] == "success"
    for argv in (["check"], ["list"], ["history"], ["check", "-c", str(admin / "hookrun.conf")],
                 ["check", "-c", os.devnull]):
        checked = run_hookrun(argv[0], *args(state, vendor, admin), *argv[1:])
        assert checked.returncode == 0 and "/dev/null" not in checked.stderr, checked.stderr


def test_a_config_linked_to_dev_null_from_a_directory_others_can_write_is_refused(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-a", marker(marks, "vendor-a"))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    os.symlink(os.devnull, shared / "hookrun.conf")
    for subcommand in ("run", "check"):
        result = run_hookrun(subcommand, *args(state, vendor), "-c", str(shared / "hookrun.conf"),
                             *(["--", "true"] if subcommand == "run" else []))
        assert result.returncode == EXIT_UNSAFE and f"chmod go-w {shared}" in result.stderr
        assert "/dev/null" not in result.stderr
    assert not (marks / "order").exists()


def test_an_unsafe_second_directory_is_refused(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-a", marker(marks, "vendor-a"))
    hook(admin, "pre-backup.d/20-b", marker(marks, "admin-b"))
    (admin / "pre-backup.d").chmod(0o777)
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert str(admin / "pre-backup.d") in result.stderr
    assert not (marks / "order").exists()


def test_a_missing_named_directory_is_78_and_hooks_get_the_last_directory(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-a", f'echo "$HOOKRUN_HOOKS_DIR" >> "{marks}/order"')
    result = run_hookrun("run", *args(state, vendor, tmp_path / "nope"), "--", "true")
    assert result.returncode == 78 and "nope" in result.stderr
    assert run_hookrun("run", *args(state, vendor, admin), "--", "true").returncode == 0
    assert (marks / "order").read_text().split() == [str(admin)]


def test_a_hookrun_dir_of_colons_alone_is_no_internal_error(tmp_path):
    """``HOOKRUN_DIR=:`` used to be an IndexError (exit 70) in every subcommand, the
    emergency ``run --no-hooks`` too."""
    state = tmp_path / "state"
    result = run_hookrun("run", "--no-hooks", "--state-dir", str(state), "--log-file",
                         str(tmp_path / "log"), "--", "true", env={"HOOKRUN_DIR": ":"})
    assert result.returncode == 0, result.stderr


def test_a_phase_directory_linked_to_dev_null_masks_that_of_every_earlier_directory(tmp_path):
    """``ln -s /dev/null /etc/hookrun/post-backup.d``, systemd's way: no earlier file runs
    in it, list shows each as masked by it, and nothing asks to chmod /dev/null (run, check
    and phase used to refuse with 77 and that advice)."""
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-pre", marker(marks, "pre"))
    hook(vendor, "post-backup.d/10-p", marker(marks, "vendor-post"))
    later = tmp_path / "later"
    later.mkdir(mode=0o755)
    hook(later, "post-backup.d/20-late", marker(marks, "later-post"))
    os.symlink(os.devnull, admin / "post-backup.d")
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0 and "/dev/null" not in result.stderr, result.stderr
    assert (marks / "order").read_text().split() == ["pre"]
    assert show_last(tree_like(state, admin))["status"] == "success"
    checked = run_hookrun("check", *args(state, vendor, admin))
    assert checked.returncode == 0 and "/dev/null" not in checked.stderr, checked.stderr
    phased = run_hookrun("phase", "post-backup", *args(state, vendor, admin))
    assert phased.returncode == 0 and "/dev/null" not in phased.stderr, phased.stderr
    only = run_hookrun("phase", "post-backup", "--only", "10-p", *args(state, vendor, admin))
    assert only.returncode == 2 and "masked by" in only.stderr
    assert (marks / "order").read_text().split() == ["pre"]

    mask = admin / "post-backup.d"
    listing = run_hookrun("list", "--json", "--all", *args(state, vendor, admin))
    assert listing.returncode == 0, listing.stderr
    items = {item["name"]: item for item in json.loads(listing.stdout)}
    masked = items["10-p"]
    assert masked["runs"] is False and masked["reason"] == f"masked by {mask}"
    assert masked["origin"] == str(admin)
    assert masked["overrides"] == [str(vendor / "post-backup.d" / "10-p")]
    plain = run_hookrun("list", *args(state, vendor, admin))
    assert "10-p " not in plain.stdout and "10-pre " in plain.stdout
    assert f"masked by {mask}" in run_hookrun("list", "--all",
                                              *args(state, vendor, admin)).stdout

    # A later directory than the mask adds its hooks again.
    (marks / "order").unlink()
    result = run_hookrun("run", *args(state, vendor, admin, later), "--", "true")
    assert result.returncode == 0, result.stderr
    assert (marks / "order").read_text().split() == ["pre", "later-post"]


def test_a_phase_directory_mask_in_a_directory_others_can_write_is_still_refused(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "post-backup.d/10-p", marker(marks, "vendor-post"))
    admin.chmod(0o777)
    os.symlink(os.devnull, admin / "post-backup.d")
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == EXIT_UNSAFE and f"chmod go-w {admin}" in result.stderr
    assert "chmod go-w /dev/null" not in result.stderr
    assert not (marks / "order").exists()


def test_a_later_hookignore_shows_its_hidden_file_while_the_earlier_one_runs(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/20-x", marker(marks, "vendor-x"))
    hook(admin, "pre-backup.d/20-x", marker(marks, "admin-x"))
    (admin / ".hookignore").write_text("pre-backup.d/20-x\n")
    (admin / ".hookignore").chmod(0o644)
    result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0, result.stderr
    assert (marks / "order").read_text().split() == ["vendor-x"]
    assert [t["name"] for t in show_last(tree_like(state, admin))["tasks"]
            if t["phase"] == "pre"] == ["20-x"]

    listing = run_hookrun("list", "--json", "--all", *args(state, vendor, admin))
    items = [item for item in json.loads(listing.stdout) if item["name"] == "20-x"]
    assert [(i["path"], i["runs"], i["reason"], i["origin"], i["overrides"]) for i in items] == [
        (str(vendor / "pre-backup.d" / "20-x"), True, None, str(vendor), []),
        (str(admin / "pre-backup.d" / "20-x"), False, "matched by .hookignore", str(admin), [])]
    text = run_hookrun("list", "--all", *args(state, vendor, admin)).stdout
    assert f"skip  20-x  matched by .hookignore  [from {admin}]" in text
    assert "matched by" not in run_hookrun("list", *args(state, vendor, admin)).stdout
    only = run_hookrun("phase", "pre-backup", "--only", "20-x", *args(state, vendor, admin))
    assert only.returncode == 0, only.stderr
    assert (marks / "order").read_text().split() == ["vendor-x", "vendor-x"]


def test_check_gives_a_packaged_hook_that_cannot_start_the_admins_fix_too(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-a", marker(marks, "a")).chmod(0o644)
    (admin / "pre-backup.d").mkdir(mode=0o755)
    result = run_hookrun("check", "--json", *args(state, vendor, admin))
    assert result.returncode == 1
    (problem,) = json.loads(result.stdout)["problems"]
    mine = admin / "pre-backup.d" / "10-a"
    assert problem["path"] == str(vendor / "pre-backup.d" / "10-a")
    assert problem["fix"].startswith(f"chmod +x {vendor / 'pre-backup.d' / '10-a'}")
    assert f"replacement of that name at {mine}" in problem["fix"]
    assert f"ln -s /dev/null {mine}" in problem["fix"]
    # Following it works: the mask it names switches the hook off, and check passes.
    os.symlink(os.devnull, mine)
    assert run_hookrun("check", *args(state, vendor, admin)).returncode == 0
    # The file of the last directory gets its own fix only.
    hook(admin, "pre-backup.d/20-b", marker(marks, "b")).chmod(0o644)
    result = run_hookrun("check", "--json", *args(state, vendor, admin))
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["path"] == str(admin / "pre-backup.d" / "20-b")
    assert "/dev/null" not in problem["fix"] and "replacement" not in problem["fix"]


def test_a_phase_directory_name_taken_by_a_file_is_a_warning_and_a_check_problem(tmp_path):
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "post-backup.d/10-p", marker(marks, "vendor-post"))
    (admin / "post-backup.d").write_text("")
    os.symlink(tmp_path / "nowhere", admin / "pre-backup.d")
    for path in (admin / "post-backup.d", admin / "pre-backup.d"):
        result = run_hookrun("run", *args(state, vendor, admin), "--", "true")
        assert result.returncode == 0
        assert f"warning: {path} is a " in result.stderr, result.stderr
        listed = run_hookrun("list", *args(state, vendor, admin))
        assert listed.returncode == 0 and f"warning: {path} is a " in listed.stderr
        checked = run_hookrun("check", "--json", *args(state, vendor, admin))
        assert checked.returncode == 1
        problems = {p["path"]: p for p in json.loads(checked.stdout)["problems"]}
        assert "no hook in it runs" in problems[str(path)]["what"]
        assert f"ln -sfn /dev/null {path}" in problems[str(path)]["fix"]
    # What is there does not run; the earlier directory's hooks still do.
    assert (marks / "order").read_text().split() == ["vendor-post", "vendor-post"]
    # A single hooks directory: no mask is suggested, there is nothing earlier to mask.
    checked = run_hookrun("check", "--json", *args(state, admin))
    fixes = [p["fix"] for p in json.loads(checked.stdout)["problems"]]
    assert checked.returncode == 1 and fixes and not any("/dev/null" in f for f in fixes)


def test_a_phase_directory_that_is_a_symlink_loop_is_refused_or_warned_never_an_internal_error(
        tmp_path):
    """It made every command end with an internal error (exit 70) before. The permission
    checks cannot judge such a path (77); without them it is a warning and the run one."""
    vendor, admin, marks, state = layers(tmp_path)
    hook(vendor, "pre-backup.d/10-v", marker(marks, "vendor-pre"))
    loop = admin / "pre-backup.d"
    os.symlink("pre-backup.d", loop)
    refused = run_hookrun("run", *args(state, vendor, admin), "--", "true")
    assert refused.returncode == 77 and "internal error" not in refused.stderr
    assert f"{loop}: too many levels of symbolic links" in refused.stderr
    result = run_hookrun("run", "--insecure", *args(state, vendor, admin), "--", "true")
    assert result.returncode == 0, result.stderr
    assert f"warning: {loop} is a symbolic link loop, not a directory" in result.stderr
    assert show_last(tree_like(state, admin))["status"] == "warning"
    assert (marks / "order").read_text().split() == ["vendor-pre"]
    checked = run_hookrun("check", "--json", *args(state, vendor, admin))
    assert checked.returncode == 77, checked.stderr
    problems = json.loads(checked.stdout)["problems"]
    assert any(p["path"] == str(loop) and "symbolic link loop" in p["what"] for p in problems)
    listed = run_hookrun("list", *args(state, admin))
    assert listed.returncode == 0 and "symbolic link loop" in listed.stderr
    phase = run_hookrun("phase", "pre-backup", "--insecure", *args(state, admin))
    assert phase.returncode == 2 and "is a symbolic link loop" in phase.stderr, phase.stderr
