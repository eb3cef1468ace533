"""Land cover as naming colour clusters: how far it could go, and whether the label-map prior can
do the naming. A diagnostic experiment on validation scenes (docs/tutorials/landcover.md).

Each scene's pixels are split into k colour clusters (k-means on RGB, as the k-means baseline of
benchmarks/landcover.py); a label map is then a class per cluster. Printed per method: mIoU,
pixel accuracy and per-class IoU against the true labels.

  oracle   each cluster named by the true class of most of its pixels: the ceiling of any
           method that names whole clusters
  vote     each cluster named by the coarse map's class of most of its pixels (the baseline)
  search   coordinate descent from the vote (or from --names-from: each cluster's majority class in
           another method's maps): each cluster in turn (largest first) takes the class that
           lowers  E = w_prior·1000·L_prior + w_kl·KL − w_nmi·NMI  the most, for --sweeps passes
           (--sweeps 0: the starting names themselves).
           L_prior is the prior's denoising loss ‖ε_θ(x_t, t) − ε‖² of the one-hot map at the
           timesteps --timesteps (--noises draws each, the same draws for every candidate),
           KL the lowres-kl term's (labels-to-prior, synthetic-world table) and NMI the
           whole-image NMI between the labels and the clusters. --prior-weight 0 is the same
           search without the prior. --search-classes road,building lets a cluster keep its
           starting name or take one of those classes only (the thin and small classes that no
           coarse block is labelled with): the prior then only judges whether a cluster's shape
           is a road or a building.

  readout  the prior asked what each cluster is: the cluster's pixels are set to "unknown" (every
           class 1/K) in the starting names' map, noised to --readout-timesteps, and named by the class
           of the prior's predicted clean map averaged over those pixels (and --noises draws),
           plus --readout-vote times the vote's class shares of the cluster.

With --energies it prints, per scene, L_prior, KL and NMI of the true map, the oracle, the vote
and the upsampled coarse map instead.

  OMP_NUM_THREADS=1 python benchmarks/landcover_cluster_naming.py --count 8 --prior-weight 1 --timesteps 500,700

It ends with paired bootstrap intervals (over scenes) of the search's mIoU against the vote
and against each --against NAME=PREDICTIONS.npy (e.g. a method's maps saved by
benchmarks/landcover.py --out DIR, in DIR/preds/).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from landcover import (bootstrap_difference, class_shares, coarse_nearest, confusions, kmeans_labels,  # noqa: E402
                       majority_names, picture_grid, scores)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("validation", "test"), default="validation")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--k", type=int, default=12, help="colour clusters per scene")
    p.add_argument("--prior-weight", type=float, default=1.0)
    p.add_argument("--kl-weight", type=float, default=1.0)
    p.add_argument("--nmi-weight", type=float, default=10.0)
    p.add_argument("--timesteps", default="500,700", help="timesteps of the prior's denoising loss")
    p.add_argument("--noises", type=int, default=4, help="noise draws per timestep")
    p.add_argument("--sweeps", type=int, default=2)
    p.add_argument("--search-classes", default="all",
                   help="the names the search may give a cluster besides its starting one: 'all' or e.g. 'road,building'")
    p.add_argument("--readout-timesteps", default="200,400", help="timesteps of the readout's noised maps")
    p.add_argument("--readout-vote", type=float, default=0.0, help="weight of the vote's class shares in the readout")
    p.add_argument("--checkpoint", default="landcover", help="label-map prior: bundled name or .safetensors path")
    p.add_argument("--save", type=Path, default=None,
                   help="folder: write each method's label maps as METHOD.npy (e.g. for landcover.py --start) and grid.png")
    p.add_argument("--names-from", type=Path, default=None, metavar="PREDICTIONS.npy",
                   help="start the search from each cluster's majority class in these maps instead of the vote")
    p.add_argument("--against", action="append", default=[], metavar="NAME=PREDICTIONS.npy",
                   help="another method's label maps [N, 64, 64] of the same scenes, for a paired interval")
    p.add_argument("--energies", action="store_true", help="print each scene's energy terms for truth, oracle, vote, coarse")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from diffprior_landcover.scenes import synthetic_world_table
    from diffprior_landcover.terms import nmi
    from diffprior_landcover.world import CLASSES, NUM_CLASSES, scene, split_seeds
    from diffprior_unet.checkpoints import load_prior

    K = NUM_CLASSES
    checkpoint = args.checkpoint
    if checkpoint == "landcover":
        import diffprior_landcover

        checkpoint = Path(diffprior_landcover.__file__).parent / "weights" / "landcover.safetensors"
    prior = load_prior(checkpoint)
    table = synthetic_world_table(16)
    table = table / table.sum(1, keepdim=True)
    ts = [int(t) for t in args.timesteps.split(",")]
    noises = torch.randn(len(ts) * args.noises, K, 64, 64, generator=torch.Generator().manual_seed(0))
    tvec = torch.tensor([t for t in ts for _ in range(args.noises)])

    @torch.no_grad()
    def prior_loss(maps):  # [N, H, W] class indices → [N]
        x0 = F.one_hot(maps, K).permute(0, 3, 1, 2).float() * 2 - 1
        N, M = len(maps), len(tvec)
        t, e = tvec.repeat(N), noises.repeat(N, 1, 1, 1)
        xt = prior.q_sample(x0.repeat_interleave(M, 0), t, e)
        losses = [(prior.eps(xt[s:s + 96], t[s:s + 96]) - e[s:s + 96]).pow(2).mean((1, 2, 3)) for s in range(0, len(xt), 96)]
        return torch.cat(losses).view(N, M).mean(1)

    readout_ts = [int(t) for t in args.readout_timesteps.split(",")]
    readout_t = torch.tensor([t for t in readout_ts for _ in range(args.noises)])
    readout_noise = torch.randn(len(readout_t), K, 64, 64, generator=torch.Generator().manual_seed(1))

    @torch.no_grad()
    def readout(names, clusters, members):  # the prior's class scores [k, K] of each cluster left unknown
        base = F.one_hot(torch.as_tensor(names[clusters]).long(), K).permute(2, 0, 1).float() * 2 - 1
        out = torch.zeros(len(members), K)
        for j, member in enumerate(members):
            if not member.any():
                continue
            mask = torch.as_tensor(member)
            x0 = base.clone()
            x0[:, mask] = 2 / K - 1
            xt = prior.q_sample(x0.expand(len(readout_t), -1, -1, -1), readout_t, readout_noise)
            x0_hat = prior.predict_x0(xt, readout_t)
            out[j] = x0_hat[:, :, mask].mean((0, 2))
        return out

    def terms(maps, pi, clusters):
        onehot = F.one_hot(maps, K).permute(0, 3, 1, 2).float()
        q = F.avg_pool2d(onehot, 16).clamp_min(1e-4)
        q = q / q.sum(1, keepdim=True)
        kl = (q * (q.log() - pi.log())).sum(1).mean((1, 2))
        return kl, nmi(onehot.flatten(2).transpose(1, 2), clusters.expand(len(maps), -1, -1))

    def energy(maps, pi, clusters):
        kl, n = terms(maps, pi, clusters)
        e = args.kl_weight * kl - args.nmi_weight * n
        return e + args.prior_weight * 1000 * prior_loss(maps) if args.prior_weight else e

    wanted = [] if args.search_classes == "all" else [c.strip() for c in args.search_classes.split(",")]
    if set(wanted) - set(CLASSES):
        p.error(f"--search-classes: unknown {sorted(set(wanted) - set(CLASSES))}; the classes are {', '.join(CLASSES)}")
    allowed = np.array(sorted(CLASSES.index(c) for c in wanted)) if wanted else None
    scenes = [scene(s) for s in split_seeds(args.split, args.count, args.offset)]
    start_maps = None if args.names_from is None else np.load(args.names_from)[:len(scenes)].astype(np.int64)
    found = {"oracle": [], "vote": [], "readout": [], "search": []}
    start = time.perf_counter()
    for i, sc in enumerate(scenes):
        clusters = kmeans_labels(sc.image.transpose(2, 0, 1).astype(np.float64) / 255, args.k, seed=i)
        members = [clusters == j for j in range(args.k)]
        up = coarse_nearest(sc.coarse[None], 64)[0]

        names, oracle = majority_names(clusters, up, args.k, K), majority_names(clusters, sc.labels, args.k, K)
        pi = table[torch.as_tensor(sc.coarse).long()].permute(2, 0, 1)[None]
        one_hot_clusters = F.one_hot(torch.as_tensor(clusters).flatten(), args.k).float()[None]
        if args.energies:
            maps = torch.as_tensor(np.stack([sc.labels, oracle[clusters], names[clusters], up])).long()
            kl, n = terms(maps, pi, one_hot_clusters)
            fmt = lambda v: " ".join(f"{float(x):6.2f}" for x in v)  # noqa: E731
            print(f"scene {i}: (truth, oracle, vote, coarse)  1000·L_prior {fmt(1000 * prior_loss(maps))} | "
                  f"KL {fmt(kl)} | NMI {fmt(n)}")
            continue
        found["oracle"].append(oracle[clusters])
        found["vote"].append(names[clusters])
        if start_maps is not None:
            names = majority_names(clusters, start_maps[i], args.k, K)
        start_names = names.copy()
        shares = class_shares(clusters, up, args.k, K)
        scores_readout = readout(names, clusters, members).numpy() + args.readout_vote * shares
        found["readout"].append(scores_readout.argmax(1)[clusters])
        for _ in range(args.sweeps):
            changed = 0
            for j in np.argsort([-m.sum() for m in members]):
                if not members[j].any():
                    continue
                options = np.arange(K) if allowed is None else np.union1d(allowed, [start_names[j]])
                candidates = np.repeat(names[None], len(options), 0)
                candidates[:, j] = options
                maps = torch.as_tensor(np.stack([c[clusters] for c in candidates])).long()
                best = int(options[int(energy(maps, pi, one_hot_clusters).argmin())])
                changed += best != names[j]
                names[j] = best
            if not changed:
                break
        found["search"].append(names[clusters])
    if args.energies:
        return 0
    truth = np.stack([s.labels for s in scenes])
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for name, preds in found.items():
            np.save(args.save / f"{name}.npy", np.stack(preds).astype(np.uint8))
    print(f"{args.split} scenes {args.offset}..{args.offset + args.count - 1}, k = {args.k}, prior weight {args.prior_weight}, "
          f"kl {args.kl_weight}, nmi {args.nmi_weight}, t {ts} × {args.noises}: {time.perf_counter() - start:.0f} s")
    print("| method | mIoU | pixel acc. | " + " | ".join(CLASSES) + " |")
    print("|" + "---|" * (len(CLASSES) + 3))
    others = {}
    for spec in args.against:
        name, _, path = spec.partition("=")
        others[name] = np.load(path)[:len(scenes)].astype(np.int64)
        if others[name].shape != truth.shape:
            raise SystemExit(f"--against {spec}: maps of shape {others[name].shape}, the scenes are {truth.shape}")
    confs = {name: confusions(np.stack(preds), truth, K) for name, preds in {**found, **others}.items()}
    for name, conf in confs.items():
        s = scores(conf)
        print(f"| {name} | {100 * s['miou']:.1f} | {100 * s['accuracy']:.1f} | " + " | ".join(f"{100 * v:.1f}" for v in s["iou"]) + " |")
    if args.save:  # the first 8 scenes: image, coarse, each method, truth
        columns = {"vote": np.stack(found["vote"]), **others, "search": np.stack(found["search"])}
        picture_grid(scenes, columns, args.save / "grid.png")
    for name in ["vote", *others]:
        mean, low, high = bootstrap_difference(confs["search"], confs[name])
        print(f"search − {name}: {100 * mean:+.1f} mIoU points, 95% paired bootstrap interval [{100 * low:+.1f}, {100 * high:+.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
