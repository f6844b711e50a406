import json

import torch

from model.corpus import (
    Entity,
    EntityCorpus,
    build_corpus,
    entities_from_labels,
    label_entity_targets,
    merge_entities,
    read_entity_file,
)


def test_noun_phrases_from_labels():
    names = [
        e.name
        for e in entities_from_labels(
            ["kicking a ball", "drinking from a cup", "playing guitar", "lifting a red box"]
        )
    ]
    assert names == ["ball", "cup", "guitar", "red box"]


def test_label_entity_targets_share_over_the_entities_a_label_names_as_words():
    names = ["arm", "hand", "ball", "box", "red box"]
    labels = ["kicking a ball", "raising both arms", "handball", "waving", "lifting a red box"]
    targets = label_entity_targets(labels, names)
    expected = torch.zeros(5, 5)
    expected[0, 2] = 1.0  # ball
    expected[1, 0] = 1.0  # arms -> arm
    # "handball" is neither a hand nor a ball; "waving" names nothing.
    expected[4, 3] = expected[4, 4] = 0.5  # "box" and "red box" are both named
    torch.testing.assert_close(targets, expected)


def test_entity_files_json_and_text(tmp_path):
    (tmp_path / "e.json").write_text(
        json.dumps(["ball", {"name": "cup", "description": "a mug", "kind": "object"}])
    )
    (tmp_path / "e.txt").write_text("# comment\nball\ncup: a mug\n\n")
    assert read_entity_file(tmp_path / "e.json") == [
        Entity("ball"),
        Entity("cup", "a mug", "object"),
    ]
    assert read_entity_file(tmp_path / "e.txt") == [Entity("ball"), Entity("cup", "a mug")]


def test_merge_keeps_first_description():
    merged = merge_entities([Entity("cup", "a mug")], [Entity("cup"), Entity("ball")])
    assert merged == [Entity("cup", "a mug"), Entity("ball")]


def test_build_save_load(tmp_path, tiny_bundle):
    model, _ = tiny_bundle
    entities = [Entity("ball"), Entity("cup"), Entity("cup holder", "a holder for a cup")]
    corpus = build_corpus(entities, model.encode_strings, ["a photo of {}."])
    torch.testing.assert_close(corpus.embeddings.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.encode_strings(["a photo of ball."]), dim=-1)[
            0
        ]
    torch.testing.assert_close(corpus.embeddings[0], direct)
    corpus.save(tmp_path)
    loaded = EntityCorpus.load(tmp_path)
    assert loaded.entities == corpus.entities
    assert torch.equal(loaded.embeddings, corpus.embeddings)
