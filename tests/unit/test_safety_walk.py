"""The trust checks walk a hooks directory once: a hook in a directory already walked costs
one lstat, and the walk found is the one the kernel's own path resolution takes (chain)."""

import os

from orchestrator.files import chain
from orchestrator.plan.safety import Checker


def tree(tmp_path):
    hooks = tmp_path / "hooks" / "pre-backup.d"
    hooks.mkdir(parents=True)
    (hooks / "10-plain").write_text("#!/bin/sh\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "real").write_text("#!/bin/sh\n")
    (hooks / "20-link").symlink_to(tmp_path / "elsewhere" / "real")
    (tmp_path / "via").symlink_to(hooks)
    return hooks


def test_a_walk_through_a_walked_directory_is_the_kernels_walk(tmp_path):
    hooks = tree(tmp_path)
    checker = Checker()
    checker.check(str(hooks))
    checker.check(str(tmp_path / "via"))
    for path in (hooks / "10-plain", hooks / "20-link", hooks / "30-missing",
                 tmp_path / "via" / "10-plain"):
        walked = checker.walk(os.path.abspath(str(path)))
        assert walked == chain(os.path.abspath(str(path))), path


def test_a_hook_in_a_walked_directory_is_not_walked_from_the_root_again(tmp_path,
                                                                          monkeypatch):
    from orchestrator.plan import safety

    hooks = tree(tmp_path)
    checker = Checker()
    checker.check(str(hooks))
    walks = []
    monkeypatch.setattr(safety, "chain", lambda path, *a: walks.append(path) or chain(path, *a))
    assert checker.check(str(hooks / "10-plain"))
    assert checker.check(str(hooks / "20-link"))  # a link: walked, to see where it leads
    assert walks == [str(hooks / "20-link")]


def test_a_hook_in_a_world_writable_directory_is_still_a_problem(tmp_path):
    hooks = tree(tmp_path)
    hooks.chmod(0o777)
    try:
        checker = Checker()
        checker.check(str(hooks))
        checker.check(str(hooks / "10-plain"))
        assert any("writable" in problem for problem in checker.problems), checker.problems
    finally:
        hooks.chmod(0o755)
