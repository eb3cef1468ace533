"""``diffprior check-plugin DIST``: the conformance kit (:mod:`diffprior.testing`) run against
an installed distribution, without writing tests.

Rows of the printed table, in order:

- ``loads strictly``: :func:`~diffprior.testing.check_plugin` (the distribution alone with the
  core, strict mode: import errors, bad hooks, name clashes and hook typos fail);
- ``light hook import``: :func:`~diffprior.testing.check_lazy_import` of each entry point's module;
- per registered type: ``config`` (:func:`~diffprior.testing.check_config`), then for a term
  each part of :func:`~diffprior.testing.check_term` (:data:`~diffprior.testing.TERM_CHECKS`,
  per-sample independence included), for a prior, variable or schedule its ``check_*``.

Types are checked with their default params, or with ``--params TYPE=JSON``; a type whose
config needs params it was not given is reported as ``skipped``. Exit code 1 when a check
fails, 2 for a distribution that is not installed.
"""

from __future__ import annotations

import json
import traceback
import warnings

from diffprior.errors import UsageError

OK, FAILED, SKIPPED, NOT_RUN = "ok", "FAILED", "skipped", "not run"


def configure_parser(parser) -> None:
    parser.add_argument("distribution", help="an installed plugin distribution, e.g. diffprior-edges")
    parser.add_argument("--params", action="append", default=[], metavar="TYPE=JSON",
                        help="the params a type is checked with (default: its defaults), "
                             "e.g. --params 'edges={\"target\": \"square\"}'; repeatable")


def _parse_params(items: list[str]) -> dict[str, dict]:
    params = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--params {item!r}: expected TYPE=JSON, e.g. --params 'tv={{\"epsilon\": 0.1}}'")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--params {item!r}: the value is not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise UsageError(f"--params {item!r}: the value must be a JSON object of the type's fields")
        params[name.strip()] = value
    return params


def _installed_distribution(name: str) -> str:
    import difflib

    from diffprior.plugins import registry as plugins

    dist = plugins.normalise_name(name)
    installed = list(plugins.installed_entry_points())
    if dist in installed:
        return dist
    close = difflib.get_close_matches(dist, installed, n=1, cutoff=0.6)
    if not close and f"diffprior-{dist}" in installed:
        close = [f"diffprior-{dist}"]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"no installed plugin distribution {name!r}{hint}; installed: {', '.join(installed)}")


def _error_text(exc: BaseException) -> str:
    from diffprior.testing import ConformanceError

    if isinstance(exc, ConformanceError):
        return str(exc)
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


class Report:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []  # (check, type, result)
        self.details: list[str] = []

    def add(self, check: str, type_name: str, result: str, detail: str | None = None) -> None:
        self.rows.append((check, type_name, result))
        if detail:
            self.details.append(f"{check} ({type_name}): {detail}")

    def run(self, check: str, type_name: str, call) -> bool:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is a row of the report
            self.add(check, type_name, FAILED, _error_text(exc))
            return False
        self.add(check, type_name, OK)
        return True

    @property
    def failed(self) -> bool:
        return any(result == FAILED for _, _, result in self.rows)

    def print(self) -> None:
        header = ("check", "type", "result")
        widths = [max(len(row[i]) for row in [header, *self.rows]) for i in range(3)]
        for row in [header, tuple("-" * w for w in widths), *self.rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        for detail in self.details:
            print(f"\n{detail}")


def _check_term(report: Report, name: str, cls, params: dict | None) -> None:
    from diffprior.testing import TERM_CHECKS, ConformanceError, check_term

    try:
        check_term(cls, params)
    except Exception as exc:  # noqa: BLE001
        failed = exc.check if isinstance(exc, ConformanceError) and exc.check in TERM_CHECKS else TERM_CHECKS[0]
        at = TERM_CHECKS.index(failed)
        for i, check in enumerate(TERM_CHECKS):
            if i < at:
                report.add(check, name, OK)
            elif i == at:
                report.add(check, name, FAILED, _error_text(exc))
            else:
                report.add(check, name, NOT_RUN)
        return
    for check in TERM_CHECKS:
        report.add(check, name, OK)


def check_distribution(distribution: str, params: dict[str, dict] | None = None) -> Report:
    """Run the conformance kit against the installed ``distribution``; the report of every check."""
    from diffprior.plugins import registry as plugins
    from diffprior import testing

    dist = _installed_distribution(distribution)
    params = params or {}
    report = Report()
    with warnings.catch_warnings():  # problems become rows (strict mode), not warnings
        warnings.simplefilter("ignore", plugins.PluginWarning)
        if not report.run("loads strictly", "-", lambda: testing.check_plugin(dist)):
            return report
        registry = plugins.load(plugins.PluginSettings(only={dist}))
    for ep in plugins.installed_entry_points()[dist]:
        module = ep.value.split(":")[0].strip()
        report.run("light hook import", module, lambda: testing.check_lazy_import(module))
    info = registry.plugins[dist]
    unused = set(params) - {n for names in info.registers.values() for n in names}
    if unused:
        raise UsageError(f"--params names {', '.join(sorted(unused))}, which {dist} does not register; "
                         f"it registers {', '.join(n for names in info.registers.values() for n in names)}")
    checks = {"prior": testing.check_prior, "variable": testing.check_variable, "schedule": testing.check_schedule}
    for kind in ("prior", "variable", "term", "schedule"):
        for name in info.registers.get(kind, []):
            cls, given = registry.get(kind, name), params.get(name)
            try:
                testing.check_config(cls, given)
            except testing.ConformanceError as exc:
                if exc.check == "params" and given is None:
                    report.add("config", name, SKIPPED, f"needs params: pass --params '{name}={{...}}' ({exc})")
                    continue
                report.add("config", name, FAILED, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001
                report.add("config", name, FAILED, _error_text(exc))
                continue
            report.add("config", name, OK)
            if kind == "term":
                _check_term(report, name, cls, given)
            else:
                report.run(f"{kind} contract", name, lambda: checks[kind](cls, given))
    return report


def run_command(args) -> int:
    report = check_distribution(args.distribution, _parse_params(args.params))
    report.print()
    failures = sum(result == FAILED for _, _, result in report.rows)
    print(f"\n{_installed_distribution(args.distribution)}: "
          + (f"{failures} check(s) failed" if failures else "every check passed"))
    return 1 if failures else 0
