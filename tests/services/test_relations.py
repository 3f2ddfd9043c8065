"""The relation graph: stored relations read back, and their reverses derived."""

from __future__ import annotations

import pytest

from livebase.services.relations import (
    RelationGraph,
    described,
    foreign_keys,
    junction_keys,
    stored_entry,
    stored_relation,
)
from livebase.storage.model import ForeignKey, OnDelete, Relation, RelationKind

AUTHOR = Relation(
    name="author",
    kind=RelationKind.M2O,
    collection="messages",
    target="users",
    on_delete=OnDelete.CASCADE,
    alias="messages",
    foreign_key="author_Id",
)
TAGS = Relation(
    name="tags",
    kind=RelationKind.M2M,
    collection="posts",
    target="tags",
    alias="posts",
    junction="posts_tags_junction",
    junction_source="posts_id",
    junction_target="tags_id",
)
PROFILE = Relation(
    name="profile",
    kind=RelationKind.O2O,
    collection="accounts",
    target="profiles",
    alias="account",
    foreign_key="profile_Id",
)


@pytest.mark.parametrize("relation", [AUTHOR, TAGS, PROFILE])
def test_a_stored_relation_reads_back_as_written(relation: Relation) -> None:
    entry = stored_entry(relation)
    assert stored_relation(relation.collection, relation.name, entry) == relation


def test_an_m2o_alias_is_an_o2m_from_the_target() -> None:
    graph = RelationGraph([AUTHOR])
    back = graph.find("users", "messages")
    assert back is not None
    assert (back.kind, back.target, back.foreign_key) == (RelationKind.O2M, "messages", "author_Id")
    assert not back.to_one and not back.key_here
    assert graph.find("messages", "author") == AUTHOR
    assert AUTHOR.key_here and AUTHOR.to_one


def test_an_o2o_reverse_is_to_one_with_the_key_over_there() -> None:
    back = RelationGraph([PROFILE]).find("profiles", "account")
    assert back is not None
    assert back.kind is RelationKind.O2O and back.to_one and not back.key_here


def test_an_m2m_reverse_swaps_the_junction_keys() -> None:
    back = RelationGraph([TAGS]).find("tags", "posts")
    assert back is not None
    assert (back.junction, back.junction_source, back.junction_target) == (
        "posts_tags_junction",
        "tags_id",
        "posts_id",
    )
    assert RelationGraph([TAGS]).junctions() == {"posts_tags_junction"}


def test_without_an_alias_there_is_no_way_back() -> None:
    one_way = Relation("author", RelationKind.M2O, "messages", "users", foreign_key="author_Id")
    graph = RelationGraph([one_way])
    assert graph.of("users") == {}
    assert graph.pointing_at("users") == [one_way]


def test_an_alias_clashing_with_a_stored_relation_keeps_the_stored_one() -> None:
    clash = Relation("messages", RelationKind.M2O, "users", "rooms", foreign_key="messages_Id")
    graph = RelationGraph([AUTHOR, clash])
    assert graph.find("users", "messages") == clash


def test_described_marks_derived_relations() -> None:
    back = AUTHOR.reverse()
    assert back is not None
    assert described(back) == {
        "name": "messages",
        "type": "O2M",
        "target": "messages",
        "alias": "author",
        "onDelete": "CASCADE",
        "foreignKey": "author_Id",
        "reverse": True,
    }


@pytest.mark.parametrize(
    "entry",
    [
        None,
        {"type": "X", "target": "users", "foreignKey": "a_Id"},
        {"type": "O2M", "target": "users"},
        {"type": "M2O", "foreignKey": "a_Id"},
        {"type": "M2O", "target": "users"},
        {"type": "M2O", "target": "users", "foreignKey": "a_Id", "onDelete": "NOPE"},
        {"type": "M2M", "target": "tags", "through": "j"},
    ],
)
def test_an_unusable_stored_entry_is_refused(entry: object) -> None:
    with pytest.raises(ValueError):
        stored_relation("messages", "a", entry)


def test_the_foreign_keys_of_a_schema_come_from_its_relations_and_junction_keys() -> None:
    messages = {
        "fields": {"author_Id": {"type": "UUID"}},
        "relationships": {"author": stored_entry(AUTHOR)},
    }
    assert foreign_keys("messages", messages) == (
        [ForeignKey("author_Id", "users", on_delete=OnDelete.CASCADE)],
        [],
    )
    junction = {
        "junction": {"posts_id": "posts", "tags_id": "tags"},
        "fields": {"posts_id": {"type": "UUID"}, "tags_id": {"type": "UUID"}},
    }
    assert junction_keys(junction) == {"posts_id": "posts", "tags_id": "tags"}
    assert foreign_keys("posts_tags_junction", junction) == (
        [
            ForeignKey("posts_id", "posts", on_delete=OnDelete.CASCADE),
            ForeignKey("tags_id", "tags", on_delete=OnDelete.CASCADE),
        ],
        [("posts_id", "tags_id")],
    )
    # A stored key naming a field the schema lacks is skipped, not a broken table.
    assert foreign_keys("messages", {**messages, "fields": {}}) == ([], [])
