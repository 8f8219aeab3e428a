"""The path guard of shared mode: resolved paths must stay inside the data roots, whatever the spelling."""

from __future__ import annotations

import os

import pytest

from mmexplore.pathguard import NO_ROOTS, REFUSED, PathRefused, guard_paths, inside_roots, list_inside, resolve_user_path


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "class").mkdir(parents=True)
    (root / "class" / "pairs.csv").write_text("image,text\na.png,a circle\n")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "pairs.csv").write_text("image,text\nx.png,TOP SECRET\n")
    os.symlink(outside / "pairs.csv", root / "link.csv")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "class" / "pairs.csv", root / "inner-link.csv")
    return root, outside


def refused(raw, roots):
    with pytest.raises(PathRefused) as info:
        resolve_user_path(raw, shared=True, roots=roots)
    return str(info.value)


def test_inside_paths_are_resolved(tree):
    root, _ = tree
    assert resolve_user_path(str(root / "class" / "pairs.csv"), shared=True, roots=[root]) == root / "class" / "pairs.csv"
    # relative to the root, with a harmless ".." that stays inside, and a symlink that stays inside
    assert resolve_user_path("class/../class/pairs.csv", shared=True, roots=[root]) == root / "class" / "pairs.csv"
    assert resolve_user_path("inner-link.csv", shared=True, roots=[root]) == root / "class" / "pairs.csv"
    # "~" is a name inside the root, never the server user's home
    assert resolve_user_path("~/.bashrc", shared=True, roots=[root]) == root / "~" / ".bashrc"


@pytest.mark.parametrize("raw", ["/proc/self/environ", "/etc", "/etc/passwd", "/", "..", "../secret/pairs.csv",
                                 "class/../../secret/pairs.csv", "link.csv", "linkdir/pairs.csv", "linkdir", "", "   ",
                                 "a\x00b", "/etc/definitely-missing-file"])
def test_outside_paths_are_refused_with_one_message(tree, raw):
    root, _ = tree
    assert refused(raw, [root]) == REFUSED  # the same words whether or not the path exists


def test_missing_and_existing_outside_paths_read_the_same(tree):
    root, outside = tree
    assert refused(str(outside / "pairs.csv"), [root]) == refused(str(outside / "nothing.csv"), [root])


def test_no_roots_refuses_everything_and_local_mode_allows_anything(tree):
    root, outside = tree
    assert refused(str(root / "class" / "pairs.csv"), []) == NO_ROOTS
    assert resolve_user_path(str(outside / "pairs.csv"), shared=False) == outside / "pairs.csv"


def test_guard_paths_counts_without_naming(tree):
    root, _ = tree
    guard_paths([root / "class" / "pairs.csv"], shared=True, roots=[root])
    guard_paths(["/etc/passwd"], shared=False)
    with pytest.raises(PathRefused) as info:
        guard_paths(["/etc/passwd", root / "link.csv", root / "class" / "pairs.csv"], shared=True, roots=[root],
                    what="image path")
    assert "2 image path(s)" in str(info.value) and "passwd" not in str(info.value)


def test_list_inside_leaves_out_links_that_leave(tree):
    root, _ = tree
    files = list_inside([root], suffixes=(".csv",))
    assert root / "class" / "pairs.csv" in files and root / "inner-link.csv" in files
    assert root / "link.csv" not in files
    assert root / "linkdir" not in list_inside([root], folders=True)
    assert not inside_roots("/proc/self/environ", [root])
