"""Loading a spec file, with errors that name the file, the key path and (YAML) the line."""
from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from alarms.spec.expand import expand_one
from alarms.spec.requests import AlarmLimitError, to_put_metric_alarm
from alarms.spec.schema import SpecFile
from alarms.spec.verdicts import verdict_alarms
from pipelines import cloudwatch_rules
from pipelines.comparison.config import MAX_PER_ENDPOINT, METRICS


class SpecError(ValueError):
    """A spec file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def load_spec(path: str | Path) -> SpecFile:
    """Read and validate a spec file (.yaml, .yml or .toml); raises SpecError naming file, key path and line."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise SpecError([f"{p}: unsupported spec file extension {p.suffix!r}; use .yaml, .yml or .toml"])
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{p}: cannot read spec file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError([f"{p}: spec file is not UTF-8: {exc.reason}"]) from exc
    return parse_spec(text, source=str(p), fmt="toml" if suffix == ".toml" else "yaml")


def parse_spec(text: str, source: str = "<spec>", fmt: Literal["yaml", "toml"] = "yaml") -> SpecFile:
    """Validate spec text; ``source`` names it in errors. Raises SpecError."""
    lines: dict[tuple[str | int, ...], int] = {}
    data: Any
    if fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError([f"{source}: invalid TOML: {exc}"]) from exc
    else:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            if node is not None:
                _yaml_lines(node, (), lines, source)
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{source}:{mark.line + 1}" if mark else source
            raise SpecError([f"{where}: invalid YAML: {exc.problem or exc.context}"]) from exc
        except yaml.YAMLError as exc:
            raise SpecError([f"{source}: invalid YAML: {exc}"]) from exc
    if not isinstance(data, Mapping):
        raise SpecError([
            f"{source}: the spec must be a mapping with keys name, endpoints and/or comparisons (and optional version, defaults)"
        ])
    try:
        spec = SpecFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_format_error(source, lines, err) for err in exc.errors()]) from exc
    problems = _cross_checks(spec, source, lines)
    if problems:
        raise SpecError(problems)
    return spec


def _yaml_lines(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int], source: str
) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                # PyYAML would silently keep the last one; a repeated key is nearly always a mistake
                raise SpecError([f"{source}:{key_node.start_mark.line + 1}: {_path_text(path + (key,))}: duplicate key"])
            seen.add(key)
            out[path + (key,)] = key_node.start_mark.line + 1
            _yaml_lines(value_node, path + (key,), out, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, path + (i,), out, source)


def _path_text(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _where(source: str, lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> str:
    line = _line_of(lines, path) if lines else None
    return f"{source}:{line}" if line is not None else source


def _format_error(source: str, lines: Mapping[tuple[str | int, ...], int], err: Any) -> str:
    path = tuple(err["loc"])
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden" and len(path) == 4 and path[0] == "comparisons" and path[2] == "metrics":
        msg = f"unknown comparison metric {path[-1]!r}; allowed: {', '.join(METRICS)}"
    elif kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        msg = f"unknown key {path[-1]!r}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        msg = "required key is missing"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    else:
        value = err.get("input")
        if isinstance(value, (str, int, float, bool)) or value is None:
            msg = f"{msg}; got {value!r}"
    return f"{_where(source, lines, path)}: {_path_text(path)}: {msg}"


def _allowed_keys(path: Sequence[str | int]) -> list[str]:
    """The keys of the model found at ``path`` in SpecFile (for 'unknown key' messages)."""
    model: Any = SpecFile
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        # the class's own keys first (name, metric, ...), then inherited tuning keys
        own = [k for k in model.model_fields if k in vars(model).get("__annotations__", {})]
        return own + [k for k in model.model_fields if k not in own]
    return []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _cross_checks(spec: SpecFile, source: str, lines: Mapping[tuple[str | int, ...], int]) -> list[str]:
    """Checks that need the expanded alarms: name length and uniqueness, and the final request limits;
    and across comparisons: unique names, at most MAX_PER_ENDPOINT per endpoint, their verdict alarms."""
    problems: list[str] = []
    first_use: dict[str, tuple[str | int, ...]] = {}
    for ei, ep in enumerate(spec.endpoints):
        for ai, alarm_spec in enumerate(ep.alarms):
            path: tuple[str | int, ...] = ("endpoints", ei, "alarms", ai)
            for alarm in expand_one(spec, ep, alarm_spec):
                if len(alarm.name) > cloudwatch_rules.MAX_ALARM_NAME:
                    problems.append(
                        f"{_where(source, lines, path)}: {_path_text(path + ('name',))}: alarm name "
                        f"{alarm.name[:60]}... is {len(alarm.name)} characters, over CloudWatch's "
                        f"{cloudwatch_rules.MAX_ALARM_NAME}; shorten the alarm, variant or model_version name"
                    )
                    continue
                if alarm.name in first_use:
                    problems.append(
                        f"{_where(source, lines, path)}: {_path_text(path + ('name',))}: alarm name "
                        f"{alarm.name} is also produced by {_path_text(first_use[alarm.name])}; rename one"
                    )
                    continue
                first_use[alarm.name] = path
                try:
                    to_put_metric_alarm(alarm, "Rollguard")
                except AlarmLimitError as exc:
                    problems += [f"{_where(source, lines, path)}: {_path_text(path)}: {p}" for p in exc.problems]
    return problems + _comparison_checks(spec, source, lines, first_use)


def _comparison_checks(
    spec: SpecFile, source: str, lines: Mapping[tuple[str | int, ...], int], first_use: dict[str, tuple[str | int, ...]]
) -> list[str]:
    problems: list[str] = []
    named: dict[str, int] = {}
    per_endpoint: dict[str, int] = {}
    for ci, verdict in enumerate(verdict_alarms(spec)):
        path: tuple[str | int, ...] = ("comparisons", ci)
        name, endpoint = verdict.comparison.name, verdict.endpoint

        def problem(key: str, text: str) -> None:
            problems.append(f"{_where(source, lines, path + (key,))}: {_path_text(path + (key,))}: {text}")

        if name in named:
            problem("name", f"comparison name {name!r} is also used by comparisons[{named[name]}]; "
                            "names must be unique in the spec (gate and watch find a comparison by name)")
            continue
        named[name] = ci
        per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + 1
        if per_endpoint[endpoint] == MAX_PER_ENDPOINT + 1:
            problem("endpoint", f"endpoint {endpoint} has more than {MAX_PER_ENDPOINT} comparisons, the most one "
                                "endpoint may carry (each takes one bit of every pending capture)")
        if verdict.name in first_use:
            problem("name", f"verdict alarm name {verdict.name} is also produced by "
                            f"{_path_text(first_use[verdict.name])}; rename one")
            continue
        first_use[verdict.name] = path
        try:
            to_put_metric_alarm(verdict, "Rollguard")
        except AlarmLimitError as exc:
            problems += [f"{_where(source, lines, path)}: {_path_text(path)}: {p}" for p in exc.problems]
    return problems
