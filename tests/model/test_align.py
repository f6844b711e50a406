import torch
import torch.nn.functional as F

from model import align


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    regions = torch.randn(2, 3, 5, 16, generator=g, requires_grad=True)
    entities = torch.randn(7, 16, generator=g, requires_grad=True)
    sizes = torch.randint(1, 4, (2, 3, 5), generator=g).float()
    return regions, entities, sizes


def test_gumbel_forward_is_exactly_one_hot_and_gradients_flow():
    regions, entities, sizes = _inputs()
    logits = align.alignment_logits(regions, entities, tau=0.1)
    weights = align.gumbel_assign(logits, torch.Generator().manual_seed(0))
    assert set(weights.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(weights.detach().sum(-1), torch.ones(2, 3, 5))
    importance = align.importance_from_weights(weights, sizes)
    (importance * torch.arange(7.0)).sum().backward()
    assert regions.grad is not None and regions.grad.abs().sum() > 0
    assert entities.grad is not None and entities.grad.abs().sum() > 0


def test_gumbel_samples_differ_but_eval_is_deterministic():
    regions, entities, _ = _inputs(1)
    logits = align.alignment_logits(regions, entities, tau=1.0).detach()
    draws = {tuple(align.gumbel_assign(logits).argmax(-1).flatten().tolist()) for _ in range(10)}
    assert len(draws) > 1
    assert torch.equal(align.hard_assign(logits), align.hard_assign(logits.clone()))
    assert torch.equal(align.hard_assign(logits), logits.argmax(-1))


def test_importance_from_ids_matches_one_hot_weights_and_sums_to_one():
    regions, entities, sizes = _inputs(2)
    logits = align.alignment_logits(regions, entities, tau=0.1).detach()
    ids = align.hard_assign(logits)
    a = align.importance_from_ids(ids, sizes, 7)
    b = align.importance_from_weights(F.one_hot(ids, 7).float(), sizes)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.sum(1), torch.ones(2))
    scores, top = align.top_entities(a, 3)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    torch.testing.assert_close(scores, a.gather(1, top))


def test_top_entities_break_ties_toward_the_lower_id():
    importance = torch.tensor([[0.0, 0.25, 0.0, 0.25, 0.5, 0.0]])
    scores, ids = align.top_entities(importance, 5)
    assert ids.tolist() == [[4, 1, 3, 0, 2]]
    assert scores.tolist() == [[0.5, 0.25, 0.25, 0.0, 0.0]]
