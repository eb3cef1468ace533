"""The entry point that reads any diffusers checkpoint: a folder, a hub id or a converted file."""

from __future__ import annotations

from typing import Optional

from .loading import is_converted_checkpoint


def load_diffusers_prior(model: str, *, subfolder=None, revision=None, variant=None, dtype: str = "fp32",
                         device: str = "cpu", class_label: Optional[int] = None, gradient_checkpointing: bool = False,
                         meta_only: bool = False):
    """A :class:`DiffusersPrior` from a folder, hub id or converted checkpoint.

    With ``meta_only`` the network is built on the meta device (no weights read, nothing
    run): enough for shapes and parameter counts.
    """
    if is_converted_checkpoint(model):
        from .converted import load_converted

        return load_converted(model, dtype=dtype, device=device, class_label=class_label,
                              gradient_checkpointing=gradient_checkpointing, meta_only=meta_only)
    from .loading import load_folder_prior

    return load_folder_prior(model, subfolder=subfolder, revision=revision, variant=variant, dtype=dtype,
                             device=device, class_label=class_label, gradient_checkpointing=gradient_checkpointing,
                             meta_only=meta_only)
