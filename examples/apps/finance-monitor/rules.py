"""The monitor's decisions, as pure functions: a company's rolling sentiment and when to alert.

A company's state is a plain dict (it goes into the JSON state file as it is): its latest scores
and, per rule, whether an episode is open and how many there were. An alert fires when a rule's
condition starts to hold and the rule's episode is not already open; the episode closes only
once the company has clearly recovered (a lower bar than the one that fired: hysteresis), so a
value wobbling around a threshold alerts once, not on every headline.
"""

from __future__ import annotations

from dataclasses import dataclass

SCORE = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
RULES = ("level", "drop", "burst")


@dataclass(frozen=True)
class Rules:
    window: int = 20            # a company's last headlines that make its rolling sentiment
    min_items: int = 8          # no level or drop alert before a company has this many
    level_below: float = -0.3   # level: the rolling sentiment (-1..1) falls below this
    level_clear: float = -0.1   # ... and its episode ends once it is back at or above this
    drop_recent: int = 5        # drop: the mean of the last 5 headlines ...
    drop_by: float = 0.9        # ... is this much below the mean of the window before them
    drop_clear: float = 0.3     # ... and its episode ends when the gap is back under this
    burst_last: int = 6         # burst: among a company's last 6 headlines ...
    burst_negatives: int = 4    # ... at least 4 are negative
    burst_clear: int = 1        # ... and its episode ends when at most 1 is


def new_company() -> dict:
    return {"scores": [], "open": {r: False for r in RULES}, "episodes": {r: 0 for r in RULES}}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def level(scores: list[float], rules: Rules) -> float:
    """The rolling sentiment: the mean score of the last `window` headlines (0.0 with none)."""
    return _mean(scores[-rules.window:])


def measures(scores: list[float], rules: Rules) -> dict[str, float | None]:
    """Each rule's value on these scores, or None while there are too few to judge."""
    enough = len(scores) >= rules.min_items
    before = scores[-(rules.window + rules.drop_recent):-rules.drop_recent]
    return {
        "level": level(scores, rules) if enough else None,
        "drop": (_mean(before) - _mean(scores[-rules.drop_recent:])
                 if enough and len(before) >= rules.min_items else None),
        "burst": float(sum(s == SCORE["negative"] for s in scores[-rules.burst_last:])),
    }


def fires(rule: str, value: float, rules: Rules) -> bool:
    return {"level": value < rules.level_below, "drop": value >= rules.drop_by,
            "burst": value >= rules.burst_negatives}[rule]


def clears(rule: str, value: float, rules: Rules) -> bool:
    return {"level": value >= rules.level_clear, "drop": value < rules.drop_clear,
            "burst": value <= rules.burst_clear}[rule]


def step(state: dict, company: str, item: dict, rules: Rules) -> tuple[dict, list[dict]]:
    """A company's new state after one labelled headline, and the alerts it fires (at most one per rule).

    `item` has the headline's `id` and `label`; the alert names it, so a reader can find the
    headline that tipped the rule."""
    scores = (state["scores"] + [SCORE[item["label"]]])[-(rules.window + rules.drop_recent):]
    opened, episodes, alerts = dict(state["open"]), dict(state["episodes"]), []
    for rule, value in measures(scores, rules).items():
        if value is None:
            continue
        if not opened[rule] and fires(rule, value, rules):
            opened[rule], episodes[rule] = True, episodes[rule] + 1
            alerts.append({"id": f"{company}/{rule}/{episodes[rule]}", "company": company, "rule": rule,
                           "episode": episodes[rule], "value": round(value, 3), "headline": item["id"]})
        elif opened[rule] and clears(rule, value, rules):
            opened[rule] = False
    return {"scores": scores, "open": opened, "episodes": episodes}, alerts


def replay(items: list[dict], rules: Rules) -> list[dict]:
    """Every alert a stream of labelled headlines ({id, company, label}) fires, in order."""
    companies: dict[str, dict] = {}
    alerts = []
    for item in items:
        company = item["company"]
        companies[company], fired = step(companies.get(company, new_company()), company, item, rules)
        alerts += fired
    return alerts
