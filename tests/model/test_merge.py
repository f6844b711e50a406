import pytest
import torch

from model.merge import bipartite_soft_matching, merge_tokens
from model.schedule import clip_r, parse_schedule, token_counts


def test_constant_schedule():
    assert parse_schedule(12, 8) == [8] * 12


def test_explicit_schedule_wins_and_is_checked():
    assert parse_schedule(3, 8, explicit=(1, 2, 3)) == [1, 2, 3]
    with pytest.raises(ValueError, match="3 entries for a 4-layer"):
        parse_schedule(4, 8, explicit=(1, 2, 3))


def test_token_counts_b16_r8():
    counts = token_counts(197, [8] * 12)
    assert counts[0] == 197 and counts[-1] == 101
    assert all(a - b == 8 for a, b in zip(counts, counts[1:]))


def test_at_most_half_the_patches_merge_per_layer():
    assert clip_r(11, 100) == 5
    assert token_counts(11, [100, 100, 100]) == [11, 6, 4, 3]


def reference_merge(x, size, metric, r):
    """Loop over tokens: match A (even patches) to B (odd patches), merge the r best links."""
    out_x, out_size, out_groups = [], [], []
    for bi in range(x.shape[0]):
        n = x.shape[1] - 1
        a_pos = list(range(1, n + 1, 2))
        b_pos = list(range(2, n + 1, 2))
        unit = metric[bi] / metric[bi].norm(dim=-1, keepdim=True)
        best = []
        for i in a_pos:
            sims = [float(unit[i] @ unit[j]) for j in b_pos]
            jbest = max(range(len(b_pos)), key=lambda j: sims[j])
            best.append((sims[jbest], i, b_pos[jbest]))
        best.sort(key=lambda t: -t[0])
        merged, kept = best[:r], best[r:]
        groups = {j: [j] for j in b_pos}
        for _, i, j in merged:
            groups[j].append(i)
        order = [[0]] + [[i] for _, i, _ in kept] + [groups[j] for j in b_pos]
        rows, sizes = [], []
        for g in order:
            s = sum(float(size[bi, k, 0]) for k in g)
            rows.append(sum(x[bi, k] * size[bi, k, 0] for k in g) / s)
            sizes.append(s)
        out_x.append(torch.stack(rows))
        out_size.append(torch.tensor(sizes, dtype=torch.float64))
        out_groups.append(order)
    return torch.stack(out_x), torch.stack(out_size), out_groups


@pytest.mark.parametrize("n,r", [(17, 3), (16, 7), (33, 1)])
def test_exportable_merge_equals_loop_reference(n, r):
    g = torch.Generator().manual_seed(n * 100 + r)
    x = torch.randn(3, n, 8, generator=g, dtype=torch.float64)
    metric = torch.randn(3, n, 5, generator=g, dtype=torch.float64)
    size = torch.randint(1, 5, (3, n, 1), generator=g).double()
    source = torch.eye(n, dtype=torch.float64).expand(3, -1, -1)
    m = bipartite_soft_matching(metric, r)
    got_x, got_size, got_source = merge_tokens(x, size, m, source)
    ref_x, ref_size, ref_groups = reference_merge(x, size, metric, r)
    assert got_x.shape == (3, n - r, 8)
    torch.testing.assert_close(got_x, ref_x, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_size[..., 0], ref_size, rtol=0, atol=0)
    for bi, order in enumerate(ref_groups):
        for row, group in enumerate(order):
            assert sorted(got_source[bi, row].nonzero().flatten().tolist()) == sorted(group)


def test_class_token_is_never_merged():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9, 4, generator=g)
    metric = x.clone()
    metric[:, 0] = metric[:, 1]  # the class token looks exactly like a patch
    m = bipartite_soft_matching(metric, 4)
    out, size, _ = merge_tokens(x, torch.ones(2, 9, 1), m)
    torch.testing.assert_close(out[:, 0], x[:, 0], rtol=0, atol=0)
    assert torch.all(size[:, 0] == 1)
