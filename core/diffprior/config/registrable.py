"""The base of every config class a plugin registers (priors, variables, terms, schedules).

Kept apart so that schedules (which are registrable) and the term base (whose weight is a
schedule) both build on it without importing each other. No torch.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class PluginConfig(BaseModel):
    """Base of every registrable config: a literal ``type`` tag and forbidden extra keys.

    Numbers must be finite (``inf``/``nan`` are refused) and a boolean is not a number."""

    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True, allow_inf_nan=False)
    kind: ClassVar[str] = ""
    type: str

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        from diffprior.config.checks import reject_booleans

        return reject_booleans(cls, data)

    @classmethod
    def type_name(cls) -> str:
        field = cls.model_fields.get("type")
        if field is None or not isinstance(field.default, str):
            raise TypeError(f"{cls.__name__} needs a field like: type: Literal['name'] = 'name'")
        return field.default
