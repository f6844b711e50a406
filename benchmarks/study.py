"""ALT against the mean-pooling baseline over several world seeds, with paired intervals.

    python -m benchmarks.study --out runs/study                # seeds 1-5, the study budget
    python -m benchmarks.study --out runs/study --summary      # the tables, from what ran

One tiny CLIP is pretrained once, on a world of seed 0. Per seed: a fresh world (its clips
drawn from the seed), then ALT and the baseline trained from that CLIP on the same clips
with the same recipe (`training.pipeline.Budget`, reduced); both are scored on the same
clips. Few-shot runs start from the same CLIP with K examples of each held-out action.
After every seed's comparison, the baseline is trained again without its augmentations
(the ablation). Every seed's result is one JSON file (`seed-<n>.json`, per-clip hits
included), written when the seed (or an ablated run) is done: a study that stops resumes
where it was.

Splits: choices are made on `val` (seen actions) and `heldval` (held-out actions); `test`
and `zeroshot` are scored for the final configuration and reported; seed 0's test clips
chose the shipped recipe, so the study starts at seed 1.

Intervals: a paired two-level bootstrap. Each draw takes seeds with replacement, then
within each seed its test clips with replacement, and averages ALT's top-1 minus the
baseline's over them: it holds both the variation between trainings and the finite test
set. The decision rule below was written before the study ran.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from model import preset
from model.corpus import label_entity_targets
from training.data import few_shot, read_csv
from training.evaluate import evaluate_views
from training.generate import generate_world
from training.pipeline import Budget, _dataset, _eval, _masks, _models, world_entities
from training.pretrain import ClipPretraining, pretrain_clip
from training.train import TrainConfig
from training.trainer import train
from training.video_data import Augment
from training.world import ENTITY_NAMES

DECISION_RULE = """\
Decided before the study ran. Differences are ALT minus the baseline in top-1 points, the
mean over seeds, with the paired two-level bootstrap's 95% interval.
- Zero-shot: ALT's claim holds when the difference is at least +5 and the interval lies
  above 0; "ahead, not shown" when the mean is above 0 but the interval reaches 0;
  "behind" when the interval lies below 0; otherwise "no difference shown".
- Few-shot: ALT is ahead at K when the interval lies above 0; the claim holds when it is
  ahead at every K = 2, 4, 8, 16.
- Seen: within 2 points when the mean difference is at least -2.
- The verdicts are read from the test splits once per configuration; every choice before
  that is read from the validation splits (val, heldval)."""

STUDY = Budget(
    per_class={"train": 64, "val": 4, "test": 8, "fewshot": 16, "zeroshot": 16, "heldval": 8},
    clip=ClipPretraining(steps=1000, batch_size=96),
    train=TrainConfig(
        epochs=6, batch_size=16, backbone_lr_scale=0.3, region_weight=1.0,
        label_map_steps=300, label_map_entity_weight=0.05, label_map_clips=32, workers=1,
        progress=False,
    ),
    fewshot_steps=40,
    shots=(2, 4, 8, 16),
)  # fmt: skip

TINY = Budget(
    per_class={"train": 2, "val": 1, "test": 2, "fewshot": 2, "zeroshot": 2, "heldval": 1},
    clip=ClipPretraining(steps=3, batch_size=16),
    train=TrainConfig(
        epochs=1, batch_size=8, backbone_lr_scale=0.3, region_weight=1.0,
        label_map_steps=2, label_map_entity_weight=0.05, workers=1, progress=False,
    ),
    fewshot_steps=2,
    shots=(2,),
)  # fmt: skip

BUDGETS = {"study": STUDY, "tiny": TINY}

# The baseline without the streaming loader's augmentations (the study trains with
# mirroring and per-item temporal jitter, as the default build does; crops would move the
# entity masks, so neither uses them). Run after every seed's main comparison, in this
# order. Each variant is one more baseline run per seed (~9 min here); one splitting the
# two (mirroring alone off) is worth adding only where "neither" shows a difference.
ABLATION = {
    "neither": Augment(flip=False, jitter=False),
}

SCORED = ("seen", "zero_shot", "val", "heldval")
SPLIT_OF = {"seen": "test", "zero_shot": "zeroshot", "val": "val", "heldval": "heldval"}


def shared_clip(out: Path, budget: Budget, log=print) -> Path:
    """The one CLIP every seed starts from, pretrained on a world of seed 0 (whose clips no
    seed of the study draws): ALT and the baseline of a seed start from the same weights."""
    folder = out / "clip"
    path = folder / "clip.pt"
    if not path.is_file():
        t0 = time.time()
        world = folder / "world"
        if not (world / "world.json").is_file():
            sizes = {split: 1 for split in budget.per_class} | {"train": budget.per_class["train"]}
            generate_world(world, sizes, seed=0)
        pretrain_clip(
            "ALT-demo", world, path, budget.clip, seed=0, entities=world_entities(),
            entity_templates=preset("demo").entity_templates, cache={},
        )  # fmt: skip
        log(f"CLIP pretrained in {time.time() - t0:.0f}s")
    return path


class Seed:
    """One seed's world, its scored splits and how a model trains and is scored on it."""

    def __init__(self, seed: int, work: Path, budget: Budget, clip_path: Path, log=print):
        self.seed, self.budget, self.clip_path, self.log = seed, budget, clip_path, log
        self.t0 = time.time()
        self.world = world = work / "world"
        if not (world / "world.json").is_file():
            generate_world(world, budget.per_class, seed=seed)
        meta = json.loads((world / "world.json").read_text())
        self.seen, self.held = meta["seen"], meta["held_out"]
        self.labels = {"seen": self.seen, "zero_shot": self.held, "val": self.seen,
                       "heldval": self.held}  # fmt: skip
        self.sets = {k: _dataset(world, SPLIT_OF[k], self.labels[k], False, seed) for k in SCORED}
        self.train_masks = _masks(world, "train")
        self.cfg = replace(budget.train, seed=seed)
        self.seen_entities = label_entity_targets(self.seen, ENTITY_NAMES)

    def models(self):
        return _models(self.clip_path, self.seed)

    def fit(self, module, augment: Augment, name: str) -> dict:
        ds = _dataset(self.world, "train", self.seen, True, self.seed, masks=self.train_masks,
                      augment=augment)  # fmt: skip
        with torch.no_grad():
            features = module.alt.label_features(self.seen)
        train(module, ds, features, self.cfg, self.seen_entities)
        scores = {k: _eval(module, self.sets[k], self.labels[k], hits=True) for k in SCORED}
        self.log(f"seed {self.seed} [{time.time() - self.t0:.0f}s] {name}: "
                 + ", ".join(f"{k} {v['top1']:.1f}" for k, v in scores.items()))  # fmt: skip
        return scores


def run_seed(seed: int, work: Path, budget: Budget, clip_path: Path, log=print) -> dict:
    """ALT and the baseline trained alike and scored on the same clips; few-shot per K."""
    s = Seed(seed, work, budget, clip_path, log)
    result: dict = {"seed": seed, "budget": asdict(budget), "seen": s.seen, "held_out": s.held}
    alt, base, _ = s.models()
    main = Augment(flip=True)
    result["alt"] = s.fit(alt, main, "alt")
    result["baseline"] = s.fit(base, main, "baseline")
    # Kept for scoring other label handling later without training again.
    torch.save({"alt": alt.state_dict(), "baseline": base.state_dict()}, work / "models.pt")

    pool = read_csv(s.world / "fewshot.csv")
    pool_masks = _masks(s.world, "fewshot")
    held_entities = label_entity_targets(s.held, ENTITY_NAMES)
    for name in ("alt", "baseline"):
        result[name]["few_shot"] = {}
    for k in budget.shots:
        fs_alt, fs_base, _ = s.models()
        subset = _dataset(s.world, "fewshot", s.held, True, seed, few_shot(pool, k, seed),
                          pool_masks)  # fmt: skip
        steps_per_epoch = max(1, len(subset) // s.cfg.batch_size)
        fs_cfg = replace(s.cfg, epochs=max(1, budget.fewshot_steps // steps_per_epoch))
        for name, module in (("alt", fs_alt), ("baseline", fs_base)):
            with torch.no_grad():
                features = module.alt.label_features(s.held)
            train(module, subset, features, fs_cfg, held_entities)
            result[name]["few_shot"][str(k)] = {
                split: _eval(module, s.sets[split], s.held, hits=True)
                for split in ("zero_shot", "heldval")
            }
        log(f"seed {seed} [{time.time() - s.t0:.0f}s] few-shot K={k}: "
            + ", ".join(f"{n} {result[n]['few_shot'][str(k)]['zero_shot']['top1']:.1f}"
                        for n in ("alt", "baseline")))  # fmt: skip
    result["seconds"] = round(time.time() - s.t0)
    result["ablation"] = {}
    return result


def ablate_seed(result: dict, work: Path, budget: Budget, clip_path: Path, variant: str) -> None:
    """The baseline of one seed trained again with an ablated augmentation (into `result`)."""
    s = Seed(result["seed"], work, budget, clip_path)
    _, module, _ = s.models()
    result["ablation"][variant] = s.fit(module, ABLATION[variant], f"baseline {variant}")
    result.setdefault("ablation_seconds", {})[variant] = round(time.time() - s.t0)


# ---- label-side levers, on the trained models ---------------------------------------------

# A held-out label also means the entities it names: its embedding plus `weight` times the
# mean of those entities' embeddings through the same label map (0: the label alone).
LEVERS = {"label alone": 0.0, "label + named entities x0.5": 0.5, "label + named entities x1": 1.0}


def label_embeddings(alt, labels: list[str], names: list[str], weight: float) -> torch.Tensor:
    with torch.no_grad():
        emb = alt.encode_labels(labels)
        if weight == 0:
            return emb
        named = label_entity_targets(labels, names)  # (L, E), rows sum to 1 or 0
        entities = alt.project_labels(alt.entities)
        return torch.nn.functional.normalize(emb + weight * named @ entities, dim=-1)


def score_levers(
    out: Path, seeds: list[int], splits: tuple[str, ...], chosen: dict[str, str] | None = None
) -> dict:
    """Per seed, lever and model: the hits on `splits` (labels as the study scored them);
    `chosen` (model -> lever): only that lever for each model."""
    found: dict = {}
    for seed in seeds:
        work = out / f"work-{seed}"
        if not (work / "models.pt").is_file():
            continue
        world = work / "world"
        meta = json.loads((world / "world.json").read_text())
        labels = {"seen": meta["seen"], "zero_shot": meta["held_out"], "val": meta["seen"],
                  "heldval": meta["held_out"]}  # fmt: skip
        alt, base, corpus = _models(out / "clip" / "clip.pt", seed)
        state = torch.load(work / "models.pt", weights_only=True)
        alt.load_state_dict(state["alt"])
        base.load_state_dict(state["baseline"])
        sets = {split: _dataset(world, SPLIT_OF[split], labels[split], False, seed)
                for split in splits}  # fmt: skip
        found[seed] = {}
        for lever, weight in LEVERS.items():
            found[seed][lever] = {}
            for name, module in (("alt", alt), ("baseline", base)):
                if chosen and chosen[name] != lever:
                    continue
                found[seed][lever][name] = {}
                for split in splits:
                    emb = label_embeddings(module.alt, labels[split], corpus.names, weight)
                    r = evaluate_views(module, sets[split], emb, hits=True, projected=True)
                    found[seed][lever][name][split] = {"hits": r["hits"], "top1": r["top1"]}
    return found


def lever_table(found: dict, split: str) -> str:
    lines = [f"| label embedding ({split}) | ALT | baseline | ALT - baseline [95%] |",
             "|---|---|---|---|"]  # fmt: skip
    for lever in LEVERS:
        a = [np.asarray(found[s][lever]["alt"][split]["hits"]) for s in found]
        b = [np.asarray(found[s][lever]["baseline"][split]["hits"]) for s in found]
        d = paired_bootstrap(a, b)
        lines.append(f"| {lever} | {_mean_sd(a)} | {_mean_sd(b)} | "
                     f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}] |")  # fmt: skip
    return "\n".join(lines)


# ---- statistics ---------------------------------------------------------------------------


def paired_bootstrap(
    a: list[np.ndarray], b: list[np.ndarray], draws: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Per seed, hits of two models on the same clips -> (mean difference in points, 2.5th
    and 97.5th percentiles) of the two-level bootstrap: seeds, then clips within each."""
    rng = np.random.default_rng(seed)
    diffs = [np.asarray(x, float) - np.asarray(y, float) for x, y in zip(a, b)]
    point = float(np.mean([d.mean() for d in diffs])) * 100
    n = len(diffs)
    totals = np.zeros(draws)
    for _ in range(n):  # each slot of a draw: a seed drawn, then its clips
        pick = rng.integers(0, n, draws)
        for s in range(n):
            rows = np.flatnonzero(pick == s)
            if rows.size == 0:
                continue
            d = diffs[s]
            clips = rng.integers(0, d.size, (rows.size, d.size))
            totals[rows] += d[clips].mean(axis=1)
    means = totals / n * 100
    lo, hi = np.percentile(means, [2.5, 97.5])
    return point, float(lo), float(hi)


def _hits(results: list[dict], path: tuple[str, ...]) -> list[np.ndarray]:
    out = []
    for r in results:
        node = r
        for key in path:
            node = node[key]
        out.append(np.asarray(node["hits"]))
    return out


def _mean_sd(hits: list[np.ndarray]) -> str:
    acc = [h.mean() * 100 for h in hits]
    return f"{np.mean(acc):.1f} ± {np.std(acc, ddof=1) if len(acc) > 1 else 0:.1f}"


def verdict_zero_shot(point: float, lo: float, hi: float) -> str:
    if point >= 5 and lo > 0:
        return "holds"
    if lo > 0:
        return "ahead, under 5 points"
    if hi < 0:
        return "behind"
    return "ahead, not shown" if point > 0 else "no difference shown"


def rows(results: list[dict], splits: dict[str, tuple[str, ...]]) -> list[dict]:
    """One row per metric: ALT and baseline mean ± sd over seeds, paired difference and CI."""
    out = []
    for name, path in splits.items():
        a, b = _hits(results, ("alt", *path)), _hits(results, ("baseline", *path))
        point, lo, hi = paired_bootstrap(a, b)
        out.append({"metric": name, "alt": _mean_sd(a), "baseline": _mean_sd(b),
                    "diff": point, "lo": lo, "hi": hi, "clips": int(sum(h.size for h in a))})  # fmt: skip
    return out


def summarize(results: list[dict], which: str = "test") -> str:
    shots = sorted({int(k) for r in results for k in r["alt"]["few_shot"]})
    metrics: dict[str, tuple[str, ...]]
    if which == "test":
        metrics = {"seen": ("seen",), "zero-shot": ("zero_shot",)}
        metrics |= {f"few-shot K={k}": ("few_shot", str(k), "zero_shot") for k in shots}
    else:
        metrics = {"seen (val)": ("val",), "held-out (heldval)": ("heldval",)}
        metrics |= {f"few-shot K={k} (heldval)": ("few_shot", str(k), "heldval") for k in shots}
    seeds = ", ".join(str(r["seed"]) for r in results)
    lines = [f"seeds {seeds}; top-1 %, mean ± sd over seeds; ALT - baseline with the paired "
             "two-level bootstrap 95% interval", "",
             "| metric | ALT | baseline | ALT - baseline | 95% interval | clips per model |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    table = rows(results, metrics)
    for r in table:
        lines.append(f"| {r['metric']} | {r['alt']} | {r['baseline']} | {r['diff']:+.1f} | "
                     f"[{r['lo']:+.1f}, {r['hi']:+.1f}] | {r['clips']} |")  # fmt: skip
    if which == "test":
        lines += ["", "Verdicts (the decision rule):"]
        by = {r["metric"]: r for r in table}
        z = by["zero-shot"]
        lines.append(f"- zero-shot: {verdict_zero_shot(z['diff'], z['lo'], z['hi'])}")
        ahead = [k for k in shots if by[f"few-shot K={k}"]["lo"] > 0]
        lines.append(f"- few-shot: ahead (interval above 0) at K = {ahead or 'none'} of {shots}; "
                     f"claim {'holds' if len(ahead) == len(shots) else 'does not hold'}")  # fmt: skip
        s = by["seen"]
        lines.append(f"- seen: {'within' if s['diff'] >= -2 else 'not within'} 2 points "
                     f"({s['diff']:+.1f})")  # fmt: skip
    variants = [v for v in ABLATION if all(v in r.get("ablation", {}) for r in results)]
    if which == "test" and variants:
        lines += ["", "Baseline ablation (each variant minus the baseline as trained, "
                  "paired bootstrap 95% interval):", "",
                  "| baseline trained | seen | zero-shot | heldval | seen diff | zero-shot diff |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        main = {k: _hits(results, ("baseline", k)) for k in ("seen", "zero_shot", "heldval")}
        lines.append(f"| mirroring + temporal jitter | {_mean_sd(main['seen'])} | "
                     f"{_mean_sd(main['zero_shot'])} | {_mean_sd(main['heldval'])} | | |")  # fmt: skip
        for variant in variants:
            got = {k: _hits(results, ("ablation", variant, k)) for k in main}
            ds = paired_bootstrap(got["seen"], main["seen"])
            dz = paired_bootstrap(got["zero_shot"], main["zero_shot"])
            lines.append(
                f"| {variant} | {_mean_sd(got['seen'])} | {_mean_sd(got['zero_shot'])} | "
                f"{_mean_sd(got['heldval'])} | {ds[0]:+.1f} [{ds[1]:+.1f}, {ds[2]:+.1f}] | "
                f"{dz[0]:+.1f} [{dz[1]:+.1f}, {dz[2]:+.1f}] |"
            )
    minutes = [r["seconds"] / 60 for r in results]
    if which == "test":  # once per printout
        lines += ["", f"Time per seed: {np.mean(minutes):.1f} min (min {min(minutes):.1f}, max "
                  f"{max(minutes):.1f}); {sum(minutes):.0f} min in all"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/study"))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="study")
    p.add_argument("--no-ablation", action="store_true")
    p.add_argument("--summary", action="store_true", help="only print the tables")
    p.add_argument("--validation", action="store_true", help="the validation tables only")
    p.add_argument(
        "--levers",
        action="store_true",
        help="label-side levers on the trained models, on the validation splits",
    )
    p.add_argument(
        "--levers-test", nargs=2, metavar=("ALT_LEVER", "BASELINE_LEVER"), choices=list(LEVERS),
        help="zero-shot on the test clips, once, with the levers chosen on heldval (names "
        "as --levers prints them)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.levers:
        found = score_levers(args.out, args.seeds, ("heldval",))
        (args.out / "levers-heldval.json").write_text(json.dumps(found) + "\n")
        print(lever_table(found, "heldval"))
        return
    if args.levers_test:  # once: each model with the lever chosen on heldval
        chosen = dict(zip(("alt", "baseline"), args.levers_test))
        found = score_levers(args.out, args.seeds, ("zero_shot",), chosen)
        (args.out / "levers-zero_shot.json").write_text(json.dumps(found) + "\n")
        a = [np.asarray(found[s][chosen["alt"]]["alt"]["zero_shot"]["hits"]) for s in found]
        b = [np.asarray(found[s][chosen["baseline"]]["baseline"]["zero_shot"]["hits"])
             for s in found]  # fmt: skip
        d = paired_bootstrap(a, b)
        print(f"zero-shot, ALT ({chosen['alt']}) {_mean_sd(a)}, baseline "
              f"({chosen['baseline']}) {_mean_sd(b)}: {d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"
              f" -> {verdict_zero_shot(*d)}")  # fmt: skip
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    args.out.mkdir(parents=True, exist_ok=True)
    budget = BUDGETS[args.budget]
    paths = {seed: args.out / f"seed-{seed}.json" for seed in args.seeds}
    if not args.summary:
        clip_path = shared_clip(args.out, budget)
        for seed, path in paths.items():  # every seed's comparison first
            if not path.is_file():
                result = run_seed(seed, args.out / f"work-{seed}", budget, clip_path)
                path.write_text(json.dumps(result) + "\n")
        for variant in [] if args.no_ablation else list(ABLATION):  # then the ablation
            for seed, path in paths.items():
                result = json.loads(path.read_text())
                if variant not in result["ablation"]:
                    ablate_seed(result, args.out / f"work-{seed}", budget, clip_path, variant)
                    path.write_text(json.dumps(result) + "\n")
    results = [json.loads(p.read_text()) for p in paths.values() if p.is_file()]
    if not results:
        raise SystemExit("no seed has run yet")
    print(DECISION_RULE, end="\n\n")
    print(summarize(results, "validation"))
    if not args.validation:
        print()
        print(summarize(results, "test"))


if __name__ == "__main__":
    main()
