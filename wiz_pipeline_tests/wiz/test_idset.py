"""The compact set of ids a window has seen."""

from __future__ import annotations

from wiz_pipeline.collect.idset import IdSet, fingerprints


def test_membership_survives_merges_into_the_arrays(monkeypatch):
    monkeypatch.setattr(IdSet, "MERGE_AT", 100)
    seen = IdSet()
    ids = [f"id-{i}" for i in range(1000)]
    for start in range(0, 1000, 50):
        page = fingerprints(ids[start : start + 50])
        assert seen.isdisjoint(page)
        seen.update(page)
    assert len(seen) == 1000
    assert all(fp in seen for fp in fingerprints(ids))
    assert not any(fp in seen for fp in fingerprints(f"other-{i}" for i in range(1000)))
    assert not seen.isdisjoint(fingerprints(["new", "id-999"]))
    assert not seen.isdisjoint(fingerprints(["id-0"]))  # in the merged arrays
    assert seen.isdisjoint(fingerprints(["new", "newer"]))


def test_equality_and_copies_are_by_content(monkeypatch):
    monkeypatch.setattr(IdSet, "MERGE_AT", 7)
    a, b = IdSet(), IdSet()
    a.update(fingerprints(str(i) for i in range(20)))
    for i in reversed(range(20)):
        b.add(fingerprints([str(i)])[0])
    assert a == b
    c = a.copy()
    a.add(fingerprints(["20"])[0])
    assert a != c and c == b


def test_an_id_added_again_after_a_merge_is_held_once(monkeypatch):
    monkeypatch.setattr(IdSet, "MERGE_AT", 4)
    a, b = IdSet(), IdSet()
    fps = fingerprints(str(i) for i in range(8))
    a.update(fps)
    b.update(fps)
    b.add(fps[0])  # already merged into the arrays: the issue re-read's slow path does this
    assert len(b) == 8 and a == b
