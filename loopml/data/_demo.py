"""A generated customer-churn dataset with a later period that drifts (for demos and tests).

Customers have a tenure, a monthly fee, support calls, a plan, a region and a payment
method; ``churned`` follows a logistic model of them. The ``after`` period is what a model
in production meets months later: fees went up, support calls doubled, the west region and
PayPal grew, and the reasons people leave changed (support calls and PayPal weigh more,
tenure less) — covariate drift and concept drift, so a retrained model does better.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput

PLANS = ("basic", "pro", "max")
REGIONS = ("north", "south", "east", "west")
PAYMENTS = ("card", "invoice", "paypal")


def demo_churn(
    rows: int = 4000, *, period: Literal["before", "after"] = "before", seed: int = 0
) -> pd.DataFrame:
    """``rows`` generated customers of one period, with timestamps and the ``churned`` label.

    Examples
    --------
    >>> frame = demo_churn(1000)
    >>> sorted(frame.columns)[:3], frame.churned.dtype.name
    (['customer_id', 'event_time', 'monthly_fee'], 'bool')
    """
    if period not in ("before", "after"):
        raise InvalidInput(f"period must be 'before' or 'after', got {period!r}")
    if rows < 1:
        raise InvalidInput(f"rows must be at least 1, got {rows}")
    after = period == "after"
    rng = np.random.default_rng(seed + (1_000_003 if after else 0))
    start = pd.Timestamp("2026-07-01" if after else "2026-01-01", tz="UTC")
    days = 92 if after else 181
    region_p = (0.2, 0.2, 0.2, 0.4) if after else (0.3, 0.3, 0.25, 0.15)
    payment_p = (0.35, 0.15, 0.5) if after else (0.6, 0.3, 0.1)
    plan = rng.choice(PLANS, rows, p=(0.5, 0.35, 0.15))
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{seed}{'a' if after else 'b'}{i:06d}" for i in range(rows)],
            "event_time": start + pd.to_timedelta(rng.uniform(0, days * 86400, rows), unit="s"),
            "tenure_months": rng.integers(1, 72, rows),
            "monthly_fee": np.round(
                rng.gamma(4.0, 12.0, rows) * (1.25 if after else 1.0)
                + np.select([plan == "pro", plan == "max"], [20.0, 45.0], 0.0),
                2,
            ),
            "support_calls": rng.poisson(2.4 if after else 1.2, rows),
            "plan": plan,
            "region": rng.choice(REGIONS, rows, p=region_p),
            "payment": rng.choice(PAYMENTS, rows, p=payment_p),
        }
    )
    paypal = (frame.payment == "paypal").to_numpy()
    calls = frame.support_calls.to_numpy()
    logit = (
        -1.2
        + 0.02 * (frame.monthly_fee.to_numpy() - 60)
        - (0.01 if after else 0.045) * frame.tenure_months.to_numpy()
        + (0.9 if after else 0.35) * (calls - (2.4 if after else 1.2))
        + (1.6 if after else 0.0) * paypal
        - 0.5 * (plan == "max")
    )
    frame["churned"] = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return frame
