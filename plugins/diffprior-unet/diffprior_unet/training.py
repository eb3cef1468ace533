"""Training a U-Net prior: ``train(config, out_dir)`` (what ``diffprior train-prior`` runs).

L_simple (Ho et al.): MSE between ε and ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t), t uniform. AdamW with a
linear warm-up, gradient clipping, EMA weights (the EMA is what is exported as the prior),
bf16 autocast where the device runs it natively (CUDA, and CPUs whose oneDNN has bf16 kernels,
e.g. AVX512-BF16/AMX: 1.6-2.3x faster here). Every ``checkpoint_every`` steps (and at the end) it
writes ``state.safetensors`` (everything ``resume`` needs: weights, EMA, optimiser moments and
the random-generator state as tensors, the rest as JSON metadata; no pickle), the EMA prior
``NAME.safetensors`` + ``NAME.json`` and a grid of EMA samples ``samples/step-NNNNNN.png``.
The JSON records the budget spent over all sessions (steps, images seen, seconds).

Under ``torchrun`` (several processes, one per GPU or CPU share) the model is wrapped in
DistributedDataParallel: every rank draws the same global batch of ``train.batch_size``
(indices, t, ε, flips from the one seeded generator) and trains on its contiguous slice of it;
the gradients are averaged over the ranks, so a step is the single-process step on the same
global batch (up to float summation order; dropout masks differ). Rank 0 alone writes the
checkpoints, state and samples; ``--resume`` reads the same state on every rank.
"""

from __future__ import annotations

import copy
import csv
import signal
import threading
import time
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .config import UNetArchitecture


class NoiseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: Literal["linear", "cosine"] = "linear"
    T: int = Field(1000, gt=1)


class DataConfig(BaseModel):
    """Where the images come from and how they are fitted to the model's size."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["dataset", "bundled-digits", "mnist-idx", "image-folder", "tensors"] = Field(
        "bundled-digits", description="dataset: a registered dataset by name (diffprior plugins lists them); "
                                      "bundled-digits: the dataset 'digits'")
    path: Optional[Path] = Field(None, description="file or folder (relative to the config file)")
    key: Optional[str] = Field(None, description="tensor name inside a .npz/.pt/.safetensors file")
    dataset: str = Field("digits", description="the registered dataset of source = 'dataset'")
    split: str = Field("prior", description="the dataset's split (digits: prior, judge, heldout, all)")
    fit: Literal["pad", "resize", "center-crop"] = Field("pad", description="how images reach image_size")
    pad_value: float = Field(-1.0, description="value of padded pixels (in [-1, 1])")
    value_range: Optional[tuple[float, float]] = Field(None, description="raw range mapped to [-1, 1]")
    hflip: bool = Field(False, description="random horizontal flips")
    vflip: bool = Field(False, description="random vertical flips")
    transpose: bool = Field(False, description="random transposes (swap height and width); with both flips: "
                                               "all 8 symmetries of the square")

    @field_validator("path")
    @classmethod
    def _exists(cls, value, info: ValidationInfo):
        if value is None:
            return None
        from diffprior import resolve_path

        return resolve_path(value, info)

    @model_validator(mode="after")
    def _path_when_needed(self):
        if self.source not in ("dataset", "bundled-digits") and self.path is None:
            raise ValueError(f"data source {self.source!r} needs path = '...'")
        if self.value_range is not None and self.value_range[0] >= self.value_range[1]:
            raise ValueError(f"value_range must be [low, high] with low < high, got {list(self.value_range)}")
        return self


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(10000, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(200, ge=0)
    decay_start: Optional[int] = Field(
        None, ge=0, description="step at which the learning rate starts its linear cool-down to final_lr "
                                "(None: constant after the warm-up)")
    decay_steps: int = Field(0, ge=0, description="length of the cool-down in steps")
    final_lr: float = Field(0.0, ge=0, description="learning rate at the end of the cool-down and after it")
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA factor (ramped up from ~0.9 early on)")
    checkpoint_every: int = Field(500, gt=0)
    max_minutes: Optional[float] = Field(None, gt=0, description="stop (and save) after this wall time")
    sample_count: int = Field(16, ge=0, description="samples in each checkpoint's grid (0: none)")
    sample_steps: int = Field(50, gt=0, description="DDIM steps for the checkpoint grids")
    mixed_precision: Literal["auto", "bf16", "none"] = Field(
        "auto", description="auto: bf16 autocast on CUDA and on CPUs with native bf16 kernels; none: fp32")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    threads: Optional[int] = Field(None, gt=0, description="torch CPU threads")
    save_dtype: Literal["float16", "float32"] = "float16"

    @model_validator(mode="after")
    def _cooldown(self):
        if self.decay_start is not None and self.decay_steps == 0:
            raise ValueError(f"train.decay_start = {self.decay_start} needs train.decay_steps > 0 "
                             "(the length of the cool-down)")
        if self.final_lr > self.lr:
            raise ValueError(f"train.final_lr = {self.final_lr} is above train.lr = {self.lr}: "
                             "the cool-down only lowers the learning rate")
        return self


def learning_rate(step: int, train: OptimConfig) -> float:
    """The learning rate of step ``step`` (0-based): a linear warm-up over ``warmup_steps``, then
    constant, then (with ``decay_start``) a linear cool-down to ``final_lr`` over ``decay_steps``.
    A pure function of the step, so a run resumed with another cool-down continues exactly
    where it stopped and only the later steps change."""
    lr = train.lr * min(1.0, (step + 1) / max(train.warmup_steps, 1))
    if train.decay_start is not None and step >= train.decay_start:
        progress = min(1.0, (step - train.decay_start + 1) / train.decay_steps)
        lr = min(lr, train.lr + (train.final_lr - train.lr) * progress)
    return lr


class TrainConfig(BaseModel):
    """A training recipe (a TOML file for ``diffprior train-prior``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("prior", pattern=r"^[A-Za-z0-9_.-]+$", description="checkpoint file stem")
    seed: int = Field(0, ge=0)
    model: UNetArchitecture = Field(default_factory=UNetArchitecture)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: OptimConfig = Field(default_factory=OptimConfig)


def load_train_config(path: Path | str, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override (``train.steps=100``) and validate a training recipe; ConfigError on problems."""
    from diffprior import apply_overrides, read_config_file
    from diffprior import ConfigError
    from pydantic import ValidationError

    path = Path(path)
    data = apply_overrides(read_config_file(path), overrides or [])
    try:
        return TrainConfig.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {'unknown key' if err['type'] == 'extra_forbidden' else msg}")
        raise ConfigError(lines[0] if len(lines) == 1 else "\n  " + "\n  ".join(lines), source=str(path)) from None


def _device(name: str) -> str:
    import torch

    from diffprior import ConfigError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r}, but torch sees no CUDA device; use 'cpu' or 'auto'")
    return name


def train(config: TrainConfig, out_dir: Path | str, *, resume: bool = False, progress: bool = True,
          log=print) -> Path:
    """Train (or resume) a prior; returns the path of the exported EMA checkpoint."""
    trainer = _Trainer(config, Path(out_dir), progress, log)
    trainer.start(resume)
    return trainer.run()


class _Trainer:
    """One training session: the process's device and rank, the data, the model with its EMA
    and optimizer, and the one seeded generator that draws every batch (so a resumed run
    draws what an uninterrupted one would)."""

    def __init__(self, config: TrainConfig, out: Path, progress: bool, log):
        import torch
        from diffprior import ConfigError, NoiseSchedule, distributed

        from .data_sources import load_training_data

        self.config, self.cfg, self.out = config, config.train, out
        self.state_path = out / STATE_FILE
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.world, self.device = distributed.setup(_device(self.cfg.device))  # torchrun: cuda:LOCAL_RANK per rank
        B, world = self.cfg.batch_size, self.world
        if B % world.size:
            raise ConfigError(f"train.batch_size = {B} is the global batch: it must be a multiple of "
                              f"the {world.size} processes (each trains on an equal slice)")
        self.rows = slice(world.rank * B // world.size, (world.rank + 1) * B // world.size)
        self.progress, self.log = (progress, log) if world.is_main else (False, _silent)
        self.images = load_training_data(config.data, config.model.image_size, config.model.in_channels)
        self.noise = NoiseSchedule.named(config.noise.schedule, config.noise.T)
        self.alphas_cumprod = self.noise.alphas_cumprod.float().to(self.device)
        self._build_model()

    def _build_model(self) -> None:
        import torch

        from .model import UNet

        torch.manual_seed(self.config.seed)  # the initial weights
        self.model = UNet(self.config.model).to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.batches = torch.Generator().manual_seed(self.config.seed)  # data order, t and ε: resumable
        self.step = 0
        self.budget = {"steps": 0, "images_seen": 0, "seconds": 0.0, "sessions": 0}
        self.net = self.model  # the module itself: its state is saved and exported

    def start(self, resume: bool) -> None:
        """Reads the state to resume from (or refuses to overwrite a run), prepares the output
        folder and, under torchrun, wraps the model in DistributedDataParallel."""
        import torch
        from diffprior import ConfigError, distributed

        if resume:
            self._resume()
        elif self.state_path.exists() or (self.out / "state.pt").exists():
            raise ConfigError(f"{self.out} already holds a training run; pass --resume or choose another --out")
        distributed.barrier()  # every rank has read the state before rank 0 may write a new one
        if self.world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "samples").mkdir(exist_ok=True)
            _truncate_losses(self.out / "losses.csv", self.step)
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(self.model, device_ids=[torch.device(self.device).index]
                                                 if self.device.startswith("cuda") else None)
        self._log_setup()
        self.autocast = torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16,
                                       enabled=self.use_bf16)
        self.images = self.images.to(self.device)
        self.session_start_step = self.step

    def _resume(self) -> None:
        from diffprior import ConfigError

        config, state_path = self.config, self.state_path
        if not state_path.exists():
            raise ConfigError(f"--resume: no training state at {state_path}; run without --resume to start")
        tensors, meta = read_state(state_path)
        if meta["config"]["model"] != config.model.model_dump() or meta["config"]["noise"] != config.noise.model_dump():
            raise ConfigError(f"--resume: {state_path} was trained with another model or noise schedule than this config")
        self.model.load_state_dict(_prefixed(tensors, "model."))
        self.ema.load_state_dict(_prefixed(tensors, "ema."))
        self.optimizer.load_state_dict(_optimizer_state(tensors, meta["optimizer"], self.device))
        self.batches.set_state(tensors["generator"])
        self.step = int(meta["step"])
        self.budget = meta.get("budget", self.budget)
        self.log(f"resuming {config.name} at step {self.step} from {state_path}")

    def _log_setup(self) -> None:
        cfg, world, images = self.cfg, self.world, self.images
        n_params = sum(p.numel() for p in self.model.parameters())
        on = f" on {world.size} processes ({cfg.batch_size // world.size} images each)" if world.distributed else ""
        self.log(f"training {self.config.name}: {n_params / 1e6:.2f}M parameters, {len(images)} images "
                 f"{list(images.shape[1:])}, device {self.device}, {cfg.steps} steps of {cfg.batch_size}{on}")
        self.use_bf16 = cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and native_bf16(self.device))
        self.log(f"precision: {'bf16 autocast' if self.use_bf16 else 'fp32'} "
                 f"(train.mixed_precision = {cfg.mixed_precision!r})")

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> Path:
        """Steps until train.steps, max_minutes or a stop request; exports at every
        checkpoint_every and at the end. Returns the exported checkpoint's path."""
        cfg = self.cfg
        self.start_time = time.perf_counter()
        loss_log = _LossLog(self.out / "losses.csv", self.world.is_main, cfg.steps, self.step,
                            f"train {self.config.name}", self.progress)
        path = None
        self.model.train()
        with _StopRequests() as stop_requests:
            try:
                while self.step < cfg.steps:
                    loss = self.train_step()
                    value, stop = self._loss_and_stop(loss, stop_requests)
                    loss_log.record(self.step, value)
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or stop:
                        path = self.checkpoint(loss_log.losses)
                    if stop:
                        reason = (f"{stop_requests.name} received" if stop_requests.signal is not None
                                  else f"max_minutes = {cfg.max_minutes} reached")
                        self.log(f"stopping at step {self.step}: {reason}; saved {path} (resume with --resume)")
                        break
            except KeyboardInterrupt:  # a second Ctrl-C: the step in flight may be half done, so nothing is saved
                self.log(f"interrupted during step {self.step + 1}: state.safetensors holds the last checkpoint "
                         f"(resume with --resume)")
                raise
            finally:
                loss_log.close()
        if stop_requests.signal == signal.SIGINT:
            raise KeyboardInterrupt  # saved at a step boundary above; the command reports the interruption
        if path is None:  # resumed a finished run
            path = self.export(self.step, time.perf_counter() - self.start_time, loss_log.losses)
        self.log(f"saved the EMA prior {path} (+ .json), samples in {self.out / 'samples'}")
        return path

    def train_step(self):
        """One AdamW step of L_simple on this rank's slice of the next global batch, then the EMA."""
        import torch

        x0, t, eps = self._next_batch()
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.cfg)
        with self.autocast:
            loss = (self.model(x_t, t).float() - eps).pow(2).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.step}; lower train.lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        self._update_ema()
        return loss

    def _next_batch(self):
        """(x₀, t, ε) of this rank: every rank draws the same global batch from the generator."""
        import torch

        B, device, gen = self.cfg.batch_size, self.device, self.batches
        idx = torch.randint(len(self.images), (B,), generator=gen).to(device)
        t = torch.randint(self.noise.T, (B,), generator=gen).to(device)
        eps = torch.randn((B, *self.images.shape[1:]), generator=gen).to(device)
        if self.world.distributed:  # this rank's slice of the global batch (all ranks drew the same one)
            idx, t, eps = idx[self.rows], t[self.rows], eps[self.rows]
        return self._augment(self.images[idx]), t, eps

    def _augment(self, x0):
        import torch

        data = self.config.data
        if not (data.hflip or data.vflip or data.transpose):
            return x0
        # drawn only when some augmentation is on, so older recipes resume with the same stream
        flips = torch.rand(self.cfg.batch_size, 3 if data.transpose else 2,
                           generator=self.batches).to(self.device)[self.rows] < 0.5
        if data.hflip:
            x0 = torch.where(flips[:, 0, None, None, None], x0.flip(-1), x0)
        if data.vflip:
            x0 = torch.where(flips[:, 1, None, None, None], x0.flip(-2), x0)
        if data.transpose:
            x0 = torch.where(flips[:, 2, None, None, None], x0.transpose(-1, -2), x0)
        return x0

    def _update_ema(self) -> None:
        import torch

        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for p_ema, p in zip(self.ema.parameters(), self.net.parameters()):
                p_ema.lerp_(p, 1 - decay)

    def _loss_and_stop(self, loss, stop_requests: _StopRequests) -> tuple[float, bool]:
        """The step's loss (the global batch's under torchrun) and whether to stop now
        (max_minutes spent or a stop requested): one decision for all ranks."""
        from diffprior import distributed

        cfg = self.cfg
        out_of_time = cfg.max_minutes is not None and time.perf_counter() - self.start_time > 60 * cfg.max_minutes
        out_of_time = out_of_time or stop_requests.signal is not None
        if self.world.distributed:
            value, stop = distributed.all_sum([loss.item() / self.world.size, float(out_of_time)])
            return value, stop > 0
        return loss.item(), out_of_time

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self, losses: list[float]) -> Path:
        self.model.eval()
        path = self.export(self.step, time.perf_counter() - self.start_time, losses)
        self.model.train()
        return path

    def export(self, step_now: int, elapsed: float, losses: list[float]) -> Path:
        """The EMA prior (NAME.safetensors + NAME.json), the training state and a sample grid,
        written by rank 0; every rank returns the prior's path."""
        from diffprior import distributed, save_grid

        from .checkpoints import save_checkpoint
        from .prior import UNetPrior

        cfg, out, name = self.cfg, self.out, self.config.name
        info, total = self._training_record(step_now, elapsed, losses)
        path = out / f"{name}.safetensors"
        if self.world.is_main:  # rank 0 writes
            path = save_checkpoint(self.ema, out / name, noise=self.noise, training=info, dtype=cfg.save_dtype)
            write_state(self.state_path, self.net, self.ema, self.optimizer, self.batches,
                        {"step": step_now, "config": self.config.model_dump(mode="json"), "budget": total})
            if cfg.sample_count:
                prior = UNetPrior(self.ema, self.noise)
                x = prior.sample(cfg.sample_count, steps=cfg.sample_steps, method="ddim")
                save_grid(x, out / "samples" / f"step-{step_now:06d}.png", prior.data_range, scale=2)
        # every rank exports at this step: the others wait for rank 0 here, not in the next
        # step's gradient all-reduce, whose DIFFPRIOR_DIST_TIMEOUT a long sample grid could exceed
        distributed.wait_for_others()
        return path

    def _training_record(self, step_now: int, elapsed: float, losses: list[float]) -> tuple[dict, dict]:
        """(the checkpoint JSON's training record, the budget spent over all sessions)."""
        cfg, budget = self.cfg, self.budget
        done = step_now - self.session_start_step
        total = {"steps": step_now, "images_seen": budget["images_seen"] + done * cfg.batch_size,
                 "seconds": round(budget["seconds"] + elapsed, 3), "sessions": budget["sessions"] + 1}  # to the ms: a short session still counts
        info = {"steps": step_now, "batch_size": cfg.batch_size, "lr": cfg.lr,
                "lr_now": learning_rate(max(step_now - 1, 0), cfg), "ema_decay": cfg.ema_decay,
                "global_batch_size": cfg.batch_size, "processes": self.world.size,
                "images": len(self.images), "data": self.config.data.model_dump(mode="json"), "seed": self.config.seed,
                "seconds_this_session": round(elapsed, 1), "device": self.device,
                "precision": "bf16-autocast" if self.use_bf16 else "fp32", "budget": total,
                "final_loss": round(sum(losses[-100:]) / max(len(losses[-100:]), 1), 5)}
        return info, total


class _LossLog:
    """Each step's loss: kept for the checkpoint's final_loss, appended to losses.csv (rank 0)
    and shown, smoothed, on the progress bar."""

    def __init__(self, path: Path, is_main: bool, steps: int, step: int, label: str, progress: bool):
        from tqdm.auto import tqdm

        self.losses: list[float] = []
        self.file = path.open("a", newline="") if is_main else _NullFile()
        self.writer = csv.writer(self.file)
        self.bar = tqdm(total=steps, initial=step, desc=label, disable=not progress, dynamic_ncols=True)
        self.smoothed: float | None = None

    def record(self, step: int, value: float) -> None:
        self.losses.append(value)
        self.writer.writerow([step, f"{value:.5f}"])
        self.file.flush()  # `tail -f losses.csv` follows every step (and a crash loses no row)
        self.smoothed = value if self.smoothed is None else 0.98 * self.smoothed + 0.02 * value
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.smoothed:.4f}")

    def close(self) -> None:
        self.bar.close()
        self.file.close()


def _truncate_losses(path: Path, step: int) -> None:
    """Keep the loss log's first ``step`` rows: after a crash it may run past the last saved
    state, and the resumed steps would otherwise be logged twice."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    kept = [row for row in rows if row and int(row[0]) <= step]
    if len(kept) != len(rows):
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(kept)
        tmp.replace(path)


class _StopRequests:
    """SIGTERM (a scheduler's notice, ``kill``) and Ctrl-C end training at the next step boundary,
    after saving, instead of wherever they land: an interrupted optimizer step would leave
    weights and the saved step count out of step, and the resume inexact. A second Ctrl-C
    stops at once. Handlers are installed only on the main thread and restored afterwards."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, _frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(signum) is signal.SIG_IGN:
                    continue  # e.g. SIGINT in a background job: whoever started us chose to ignore it
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


def _silent(*_args, **_kwargs) -> None:
    """The log of ranks other than 0 (rank 0 speaks for all)."""


class _NullFile:
    """losses.csv on ranks other than 0."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------ training state
STATE_FILE = "state.safetensors"


def native_bf16(device: str) -> bool:
    """Whether bf16 autocast runs on native kernels here (CUDA, or a CPU whose oneDNN has bf16)."""
    import torch

    if device.startswith("cuda"):
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False


def write_state(path: Path, model, ema, optimizer, generator, meta: dict) -> None:
    """Everything ``--resume`` needs as one safetensors file (tensors + JSON metadata), written
    atomically (temp file + rename) so a crash mid-write keeps the previous state."""
    import json

    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in ema.state_dict().items()})
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{index}.{name}"] = value.detach().reshape(value.shape).contiguous()
    tensors["generator"] = generator.get_state()
    meta = dict(meta, optimizer=opt["param_groups"])
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp), metadata={"diffprior-train-state": json.dumps(meta)})
    tmp.replace(path)


def read_state(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a state file; ConfigError naming the file if it is not one."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from diffprior import ConfigError

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["diffprior-train-state"])
        return load_file(str(path)), meta
    except Exception as exc:  # a truncated, foreign or hand-edited file: say which and why
        raise ConfigError(f"not a diffprior training state ({type(exc).__name__}: {exc}); "
                          "start a new run without --resume", source=str(path)) from None


def _prefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optimizer_state(tensors: dict, param_groups: list, device: str) -> dict:
    state: dict = {}
    for key, value in _prefixed(tensors, "optimizer.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    return {"state": state, "param_groups": param_groups}
