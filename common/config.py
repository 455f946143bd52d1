"""Declared settings: what each field of a config may hold, said once, and one validator.

A config class (a frozen dataclass) declares its fields with `setting(default, ...)`: the kind
of value (a number, an integer, a path ...), the allowed choices or numeric bounds, whether None
is allowed, a normaliser and a custom check. Its cross-field rules are a tuple of named `Rule`s
(a predicate and the message said when it does not hold). `__post_init__` calls `validate`:
each declared field is normalised and checked in declaration order, then each rule, and the first
problem is one `UsageError` line naming the field, the value found and what is allowed:

    config key 'lr': got 2.0; expected a number in (0, 1]
    task sst2: key 'kind': got 'span2'; expected one of ['classification', 'regression', 'span']
    config: pred_loss 'none', inter_loss 'none' and w_gold 0 leave nothing to learn from; ...

Validation reads no file and touches no device: a check that needs I/O (a task file's contents,
a directory's existence) is an explicit step of the command that uses it. Mappings that are not
dataclasses (a search-space file) are checked with `take` and `check_rules` the same way.

Standard library only, like the rest of the common floor.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import types
from typing import Any, Callable, Collection, Iterable, Mapping, Optional, Tuple, Union

from .errors import UsageError

__all__ = ["Allowed", "Rule", "Wording", "setting", "validate", "check_fields", "check_rules",
           "take", "refuse_unknown", "ALLOWED"]

ALLOWED = "allowed"   # the key of a field's declaration in its dataclass metadata


class _Refused(Exception):
    """Raised by a kind's converter for a value it cannot take."""


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Refused
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _Refused
    return value


def _number(value: Any) -> Any:
    """A real number, kept as given (an int stays an int: fingerprints and JSON keep it)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise _Refused
    return value


def _float(value: Any) -> float:
    """A real number or a numeric string (PyYAML reads ``5e-5`` as text), as a float."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise _Refused
    try:
        out = float(value)
    except (ValueError, OverflowError):
        raise _Refused from None
    if not math.isfinite(out):
        raise _Refused
    return out


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused
    return value


def _path(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return _str(value)


def _mapping(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _Refused
    return value


def _list(value: Any) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _Refused
    return tuple(value)


# kind -> (what it is, as an error message says it; its converter)
KINDS = {
    "any": ("anything", lambda v: v),
    "bool": ("true or false", _bool),
    "int": ("an integer", _int),
    "number": ("a number", _number),
    "float": ("a number", _float),
    "str": ("a string", _str),
    "path": ("a path", _path),
    "mapping": ("a mapping", _mapping),
    "list": ("a list", _list),
}
_NUMERIC = ("int", "number", "float")


@dataclasses.dataclass(frozen=True)
class Allowed:
    """What one field (or one value of a table) may hold.

    kind: a key of KINDS; "float" also takes numeric strings and stores floats, "number" keeps
    the number as given, "path" takes os.PathLike and stores a str, "list" stores a tuple.
    choices: the values allowed. low/high: numeric bounds (open where low_open/high_open).
    optional: None is allowed (and skips every other check). several: one value or a non-empty
    list of them (a list of one is stored as the one, several as a tuple). each: what every item
    of a "list" must be (an error shows the item, or the whole list when `what` describes it).
    convert: a normaliser run after the kind's converter (a ValueError or TypeError from it
    refuses the value; a UsageError from it is raised as it is). check: a custom rule, the
    problem as text or None.
    what: what is allowed, when the generated words ("a number in [0, 1]") do not say it.
    """

    kind: str = "any"
    choices: Optional[Tuple[Any, ...]] = None
    low: Optional[float] = None
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    several: bool = False
    each: Optional["Allowed"] = None
    convert: Optional[Callable[[Any], Any]] = None
    check: Optional[Callable[[Any], Optional[str]]] = None
    what: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}: one of {list(KINDS)}")

    def describe(self) -> str:
        """What is allowed, as an error message ends: "expected a number in (0, 1]"."""
        if self.what is not None:
            text = self.what
        elif self.choices is not None:
            text = f"one of {list(self.choices)}"
        elif self.kind in _NUMERIC and (self.low is not None or self.high != math.inf):
            text = _bounds(self.kind == "int", self.low, self.high, self.low_open,
                           self.high_open)
        else:
            text = KINDS[self.kind][0]
        if self.several:
            text += " or a list of them"
        return f"expected {text}" + (" or null" if self.optional else "")

    def problem(self, value: Any) -> Optional[str]:
        """None when `value` is allowed as it is, else `describe()` (tables use this)."""
        try:
            self.normalise(value)
        except _Refused as refused:
            return refused.args[0] if refused.args else self.describe()
        except _RefusedItem as item:
            return item.problem
        return None

    def normalise(self, value: Any) -> Any:
        """The value as stored; raises _Refused (or _RefusedItem) when it is not allowed."""
        if value is None and self.optional:
            return None
        if self.several and isinstance(value, (list, tuple)):
            if not value:
                raise _Refused
            items = tuple(self._one(v) for v in value)
            return items[0] if len(items) == 1 else items
        return self._one(value)

    def _one(self, value: Any) -> Any:
        value = KINDS[self.kind][1](value)
        if self.convert is not None:
            try:
                value = self.convert(value)
            except UsageError:
                raise   # the normaliser's own one line (an unknown task name says which exist)
            except (ValueError, TypeError):
                raise _Refused from None
        if self.each is not None:
            for item in value:   # a list described as a whole is shown whole, else the item
                problem = self.each.problem(item)
                if problem is not None:
                    raise _Refused if self.what is not None else _RefusedItem(item, problem)
            value = tuple(self.each.normalise(item) for item in value)
        if self.choices is not None and value not in self.choices:
            raise _Refused
        if self.kind in _NUMERIC and not _within(value, self):
            raise _Refused
        problem = self.check(value) if self.check is not None else None
        if problem is not None:
            raise _Refused(problem)
        return value


class _RefusedItem(Exception):
    """One item of a list value is not allowed: the message shows the item and its problem."""

    def __init__(self, item: Any, problem: str):
        super().__init__(item)
        self.item, self.problem = item, problem


def _within(value: Any, a: Allowed) -> bool:
    if a.low is not None and (value <= a.low if a.low_open else value < a.low):
        return False
    return not (value >= a.high if a.high_open else value > a.high)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _bounds(integer: bool, low: Optional[float], high: float, low_open: bool,
            high_open: bool) -> str:
    """ "a positive integer", "a number >= 0", "a number in (0, 1]" ..."""
    noun = "an integer" if integer else "a number"
    if high == math.inf:
        if (low == 0 and low_open) or (integer and low == 1 and not low_open):
            return "a positive integer" if integer else "a positive number"
        return f"{noun} {'>' if low_open else '>='} {_num(low)}"
    if low is None:
        return f"{noun} {'<' if high_open else '<='} {_num(high)}"
    return (f"{noun} in {'(' if low_open else '['}{_num(low)}, {_num(high)}"
            f"{')' if high_open else ']'}")


def setting(default: Any = dataclasses.MISSING, allowed: Optional[Allowed] = None, *,
            default_factory: Any = dataclasses.MISSING, **declared: Any) -> Any:
    """A dataclass field with its declaration: ``lr: float = setting(5e-5, kind="float",
    low=0, high=1, low_open=True)``; `allowed` (e.g. from a table) with `declared` changes."""
    spec = allowed if allowed is not None else Allowed()
    if declared:
        spec = dataclasses.replace(spec, **declared)
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={ALLOWED: spec})


@dataclasses.dataclass(frozen=True)
class Rule:
    """A cross-field rule: `holds(config)` is True when the config is fine; `says` is what is
    wrong and what to do (a str formatted with ``self`` = the config, or a function of it).
    With `key`, the message names that field and (unless not `shows_value`: a long value) its
    value like a field's own error; without, it names the whole config."""

    name: str
    holds: Callable[[Any], Any]
    says: Union[str, Callable[[Any], str]]
    key: Optional[str] = None
    shows_value: bool = True

    def message(self, config: Any) -> str:
        return self.says(config) if callable(self.says) else self.says.format(self=config)


Namer = Union[str, Callable[[Any, str], str]]


@dataclasses.dataclass(frozen=True)
class Wording:
    """How a config's errors name a field and the whole config, and their type.

    field: a template formatted with ``key`` and ``self`` (the config), or a function of
    (config, key): "config key {key!r}" -> "config key 'lr'". whole: the same for a rule that
    names no field ("config"). error: the UsageError subclass raised."""

    field: Namer = "config key {key!r}"
    whole: Union[str, Callable[[Any], str]] = "config"
    error: type = UsageError

    def name(self, config: Any, key: str) -> str:
        if callable(self.field):
            return self.field(config, key)
        return self.field.format(key=key, self=config)

    def name_whole(self, config: Any) -> str:
        return self.whole(config) if callable(self.whole) else self.whole.format(self=config)


def take(allowed: Allowed, value: Any, subject: str, error: type = UsageError) -> Any:
    """`value` normalised as `allowed` says, or `error` "{subject}: got VALUE; expected ..."."""
    try:
        return allowed.normalise(value)
    except _RefusedItem as item:
        raise error(f"{subject}: got {item.item!r}; {item.problem}") from None
    except _Refused as refused:
        text = refused.args[0] if refused.args else allowed.describe()
        shown = value
        if allowed.kind == "float":   # a numeric string out of range is shown as its number
            try:
                shown = _float(value)
            except _Refused:
                pass
        raise error(f"{subject}: got {shown!r}; {text}") from None


def check_fields(config: Any, wording: Wording = Wording()) -> None:
    """Normalise and check every declared field of a dataclass instance, in field order; the
    normalised values are stored (frozen dataclasses too)."""
    for f in dataclasses.fields(config):
        spec = f.metadata.get(ALLOWED)
        if spec is None:
            continue
        value = take(spec, getattr(config, f.name), wording.name(config, f.name), wording.error)
        object.__setattr__(config, f.name, value)


def check_rules(config: Any, rules: Iterable[Rule], wording: Wording = Wording()) -> None:
    """Raise the first rule that does not hold; `config` is a dataclass instance or a mapping
    (its keys read as attributes)."""
    subject = types.SimpleNamespace(**config) if isinstance(config, Mapping) else config
    for rule in rules:
        if rule.holds(subject):
            continue
        text = rule.message(subject)
        if rule.key is None:
            raise wording.error(f"{wording.name_whole(subject)}: {text}")
        if not rule.shows_value:
            raise wording.error(f"{wording.name(subject, rule.key)}: {text}")
        raise wording.error(f"{wording.name(subject, rule.key)}: got "
                            f"{getattr(subject, rule.key)!r}; {text}")


def validate(config: Any, rules: Iterable[Rule] = (), wording: Wording = Wording()) -> None:
    """The fields (`check_fields`), then the rules (`check_rules`)."""
    check_fields(config, wording)
    check_rules(config, rules, wording)


def refuse_unknown(given: Iterable[str], known: Collection[str], *, what: str = "config keys",
                   listing: Optional[str] = None, error: type = UsageError,
                   note: str = "", where: str = "") -> None:
    """Refuse keys not in `known`, one line with a close match for each: "unknown config keys:
    'lrr' (did you mean 'lr'?); allowed keys are [...]". `listing` replaces the known keys'
    list (e.g. a shorter hint); `note` ends the line; `where` starts it ("space.yaml")."""
    unknown = sorted(str(k) for k in given if k not in known)
    if not unknown:
        return
    names = [str(k) for k in known]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, names, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    shown = listing if listing is not None else f"allowed keys are {names}"
    raise error(f"{where + ': ' if where else ''}unknown {what}: {', '.join(hints)}; "
                f"{shown}{note}")
