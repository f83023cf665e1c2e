"""Check that a simulation carries learnable credit signal.

Simple per-application behaviour aggregates are computed from the landing zone with DuckDB,
strictly before each application's time (180-day window), then a cross-validated proxy model
is compared with the oracle (the simulator's ``true_pd``) on the same rows.  This is a sanity
check of the simulator, not the project's feature store.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

WINDOW_DAYS = 180
RISKY = "('7995', '6051', '5944')"

_APPS = """
    create or replace temp view apps as
    select application_id, product, applicant_id, ts as t, true_pd, defaulted
    from read_parquet('{truth}/applications.parquet')
"""
_VIEWS = {
    "pos": "pos_transactions",
    "pay": "payments",
    "mall": "mall_orders",
    "cust": "customers",
    "merch": "merchants",
    "sme": "smes",
}

_PERSONAL = f"""
with w as (
    select a.application_id, p.*, date_diff('day', p.ts, a.t) as age_d
    from apps a join pos p on p.customer_id = a.applicant_id
     and p.ts < a.t and p.ts >= a.t - interval {WINDOW_DAYS} day
    where a.product = 'personal'),
monthly as (
    select application_id, age_d // 30 as m, sum(amount) filter (status = 'approved') as s
    from w group by all),
pos_f as (
    select application_id,
        count(*) filter (status = 'approved') as pos_n,
        ln(1 + coalesce(sum(amount) filter (status = 'approved'), 0)) as pos_spend,
        avg((status = 'declined')::int) as pos_declined,
        avg((hour(ts) < 6)::int) as pos_night,
        avg((mcc in {RISKY})::int) as pos_risky,
        avg((status = 'refund')::int) as pos_refund,
        ln(1 + coalesce(sum(amount) filter (status = 'approved' and age_d < 60), 0))
          - ln(1 + coalesce(sum(amount) filter (status = 'approved' and age_d >= 60), 0) / 2)
          as pos_recent
    from w group by all),
vol as (select application_id, stddev(s) / nullif(avg(s), 0) as pos_cv
        from monthly group by all),
pw as (
    select a.application_id, y.*, date_diff('day', y.ts, a.t) as age_d
    from apps a join pay y on y.payer_id = a.applicant_id
     and y.ts < a.t and y.ts >= a.t - interval {WINDOW_DAYS} day
    where a.product = 'personal'),
pay_f as (
    select application_id,
        avg((ts::date > due_date)::int) filter (payment_type = 'bill') as bill_late,
        avg(greatest(date_diff('day', due_date, ts::date), 0)) filter (payment_type = 'bill')
          as bill_days_late,
        avg((status = 'failed')::int) as pay_failed,
        count(*) filter (payment_type = 'transfer_in') as salary_n,
        ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_in' and age_d < 60), 0))
          - ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_in' and age_d >= 60), 0)
            / 2)
          as salary_recent,
        stddev(amount) filter (payment_type = 'transfer_in')
          / nullif(avg(amount) filter (payment_type = 'transfer_in'), 0) as salary_cv,
        avg((hour(ts) < 6)::int) as pay_night
    from pw group by all),
mall_f as (
    select a.application_id,
        avg((o.payment_method = 'instalment')::int) as mall_instalment,
        avg((o.status = 'refunded')::int) as mall_refunded
    from apps a join mall o on o.buyer_id = a.applicant_id
     and o.ts < a.t and o.ts >= a.t - interval {WINDOW_DAYS} day
    where a.product = 'personal' group by all)
select a.application_id, a.true_pd, a.defaulted,
    list_position(['low', 'lower_mid', 'mid', 'upper_mid', 'high'], c.income_band) as income,
    (c.age_band = '18-24')::int as young,
    date_diff('day', c.opened_at, a.t) as tenure_days,
    pos_f.* exclude (application_id), vol.pos_cv, pay_f.* exclude (application_id),
    mall_f.* exclude (application_id)
from apps a
join cust c on c.customer_id = a.applicant_id
left join pos_f using (application_id) left join vol using (application_id)
left join pay_f using (application_id) left join mall_f using (application_id)
where a.product = 'personal'
"""

RECENT_DAYS = 90  # the state behind a PD is the last few months': recent windows show it


def _log_odds(hits: str, total: str) -> str:
    """SQL for a smoothed log-odds of a rate (linear in the latent state for rare events)."""
    return f"ln(({hits} + 0.5) / (greatest({total} - ({hits}), 0) + 0.5))"


_MERCHANT = f"""
with w as (
    select a.application_id, p.*, date_diff('day', p.ts, a.t) as age_d,
        case when p.status = 'approved' then p.amount when p.status = 'refund' then -p.amount
            else 0 end as net
    from apps a join pos p on p.merchant_id = a.applicant_id
     and p.ts < a.t and p.ts >= a.t - interval {WINDOW_DAYS} day
    where a.product = 'merchant'),
monthly as (
    select application_id, age_d // 30 as m, sum(net) as s from w group by all),
f as (
    select application_id,
        ln(1 + greatest(sum(net) filter (age_d < {RECENT_DAYS}), 0)) as turnover,
        ln(1 + greatest(sum(net) filter (age_d < {RECENT_DAYS}), 0))
          - ln(1 + greatest(sum(net) filter (age_d >= {RECENT_DAYS}), 0)) as turnover_trend,
        count(distinct ts::date) filter (age_d < {RECENT_DAYS}) as active_days,
        {
    _log_odds(
        "count(*) filter (status = 'refund' and age_d < 90)",
        "count(*) filter (status = 'approved' and age_d < 90)",
    )
} as refund_lo,
        {
    _log_odds(
        "count(*) filter (status = 'chargeback' and age_d < 90)",
        "count(*) filter (status = 'approved' and age_d < 90)",
    )
} as chargeback_lo,
        {
    _log_odds("count(*) filter (hour(ts) < 6 and age_d < 90)", "count(*) filter (age_d < 90)")
} as night_lo,
        ln(count(distinct card_token) filter (age_d < {RECENT_DAYS}) + 1)
          - ln(count(*) filter (age_d < {RECENT_DAYS}) + 1) as card_diversity,
        ln(avg(amount) filter (status = 'approved' and age_d < {RECENT_DAYS})) as log_ticket,
        avg((amount >= 1000 and amount % 1000 = 0)::int) as round_amounts
    from w group by all),
trend as (
    select application_id, stddev(s) / nullif(avg(s), 0) as turnover_cv
    from monthly group by all)
select a.application_id, a.true_pd, a.defaulted,
    date_diff('day', m.onboarded_at, a.t) as tenure_days,
    (m.mcc in {RISKY})::int as risky_mcc,
    f.* exclude (application_id), trend.* exclude (application_id)
from apps a join merch m on m.merchant_id = a.applicant_id
left join f using (application_id) left join trend using (application_id)
where a.product = 'merchant'
"""

_SME = f"""
with w as (
    select a.application_id, y.*, date_diff('day', y.ts, a.t) as age_d
    from apps a join pay y on y.payer_id = a.applicant_id
     and y.ts < a.t and y.ts >= a.t - interval {WINDOW_DAYS} day
    where a.product = 'sme'),
monthly as (
    select application_id, age_d // 30 as m,
        sum(amount) filter (payment_type = 'transfer_in') as s
    from w group by all),
clients as (
    select application_id, counterparty_id, count(*) as n
    from w where payment_type = 'transfer_in' and age_d < {RECENT_DAYS} group by all),
concentration as (
    select application_id, max(n) / sum(n) as top_client_share,
        ln(count(*) + 1) - ln(sum(n) + 1) as client_diversity
    from clients group by all),
f as (
    select application_id,
        ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_in'
            and age_d < {RECENT_DAYS}), 0)) as inflow,
        ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_in'
            and age_d < {RECENT_DAYS}), 0))
          - ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_in'
            and age_d >= {RECENT_DAYS}), 0)) as inflow_trend,
        ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_out'
            and age_d < {RECENT_DAYS}), 0))
          - ln(1 + coalesce(sum(amount) filter (payment_type = 'transfer_in'
            and age_d < {RECENT_DAYS}), 0)) as out_in_ratio,
        avg((ts::date > due_date)::int) filter (payment_type = 'bill') as bill_late,
        avg(greatest(date_diff('day', due_date, ts::date), 0))
          filter (payment_type = 'bill' and age_d < {RECENT_DAYS}) as bill_days_late,
        {
    _log_odds(
        "count(*) filter (status = 'failed' and payment_type = 'transfer_out')",
        "count(*) filter (payment_type = 'transfer_out')",
    )
} as out_failed_lo,
        avg((hour(ts) < 6)::int) filter (payment_type = 'transfer_out') as night
    from w group by all),
trend as (
    select application_id, stddev(s) / nullif(avg(s), 0) as inflow_cv
    from monthly group by all),
b2b as (
    select a.application_id,
        avg((o.payment_method = 'instalment')::int) as b2b_instalment,
        avg((o.status = 'refunded')::int) as b2b_refunded
    from apps a join mall o on o.buyer_id = a.applicant_id
     and o.ts < a.t and o.ts >= a.t - interval {WINDOW_DAYS} day
    where a.product = 'sme' group by all)
select a.application_id, a.true_pd, a.defaulted,
    date_diff('day', s.onboarded_at, a.t) as tenure_days,
    f.* exclude (application_id), trend.* exclude (application_id),
    concentration.* exclude (application_id), b2b.* exclude (application_id)
from apps a join sme s on s.sme_id = a.applicant_id
left join f using (application_id) left join trend using (application_id)
left join concentration using (application_id) left join b2b using (application_id)
where a.product = 'sme'
"""
QUERIES = {"personal": _PERSONAL, "merchant": _MERCHANT, "sme": _SME}


def applicant_behaviour(landing: Path | str, truth: Path | str) -> dict[str, pd.DataFrame]:
    """Per product: one row per application with ``true_pd``, ``defaulted`` and aggregates."""

    con = duckdb.connect()
    try:
        con.execute(_APPS.format(truth=truth))
        for view, source in _VIEWS.items():
            # every delivered file except the one malformed re-delivery
            files = [
                str(f)
                for f in sorted(Path(landing, source).glob("dt=*/part-*.parquet"))
                if not f.name.startswith("part-zz-")
            ]
            con.execute(
                f"create or replace temp table {view} as select * from read_parquet({files!r})"
            )
        return {product: con.execute(sql).df() for product, sql in QUERIES.items()}
    finally:
        con.close()


def expected_auc(score: np.ndarray, pd_true: np.ndarray) -> float:
    """AUC expected over the Bernoulli draws: each row is a bad with weight ``pd_true``.

    ``sum_i sum_j pd_i (1 - pd_j) [s_i > s_j] / (sum_i pd_i * sum_j (1 - pd_j))`` (ties
    half), a low-noise measure of ranking quality on small samples.
    """
    # heavy: scikit-learn
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(score)), np.zeros(len(score))]
    weights = np.r_[pd_true, 1 - pd_true]
    return float(roc_auc_score(labels, np.r_[score, score], sample_weight=weights))


def signal_report(
    landing: Path | str, truth: Path | str, seed: int = 0, use_lightgbm: bool = False
) -> dict[str, dict[str, float]]:
    """Per product: rows, bad rate, oracle and proxy AUCs (realised and expected).

    The proxy is cross-validated (5 folds): a logistic regression on ``defaulted`` (or
    LightGBM when ``use_lightgbm``), and a linear regression on ``logit(true_pd)`` whose
    rank correlation with ``true_pd`` measures how much of it behaviour recovers.

    Keys: ``oracle_auc`` / ``proxy_auc`` on the realised defaults (noisy with a hundred bads),
    ``oracle_expected_auc`` / ``proxy_model_expected_auc`` the same scores judged against
    ``true_pd`` (low noise), ``proxy_expected_auc`` the linear recovery of ``logit(true_pd)``.
    """
    # heavy: SciPy
    from scipy.stats import spearmanr
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    report: dict[str, dict[str, float]] = {}
    for product, frame in applicant_behaviour(landing, truth).items():
        y = frame["defaulted"].astype(int).to_numpy()
        pd_true = frame["true_pd"].to_numpy()
        raw = frame.drop(columns=["application_id", "true_pd", "defaulted"]).astype(float)
        x = raw.fillna(raw.median()).fillna(0.0).to_numpy()
        folds = KFold(5, shuffle=True, random_state=seed)
        logit = np.log(pd_true / (1 - pd_true))
        recovered = cross_val_predict(
            make_pipeline(StandardScaler(), LinearRegression()), x, logit, cv=folds
        )
        row = {
            "rows": float(len(frame)),
            "bad_rate": float(y.mean()),
            "mean_true_pd": float(pd_true.mean()),
            "spearman_recovered": float(spearmanr(recovered, pd_true).statistic),
            "oracle_expected_auc": expected_auc(pd_true, pd_true),
            "proxy_expected_auc": expected_auc(recovered, pd_true),
        }
        if 0 < y.sum() < len(y) and y.sum() >= 5:
            if use_lightgbm:
                # heavy: LightGBM
                import lightgbm as lgb

                # small trees, strong regularisation: a few hundred bads per product
                model = lgb.LGBMClassifier(
                    n_estimators=200, learning_rate=0.03, num_leaves=4, min_child_samples=60,
                    subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=5.0,
                    verbose=-1, random_state=seed,
                )  # fmt: skip
            else:
                model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=500))
            proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
            row["oracle_auc"] = float(roc_auc_score(y, pd_true))
            row["proxy_auc"] = float(roc_auc_score(y, proba))
            # the same model judged against true_pd: no Bernoulli noise in the evaluation
            row["proxy_model_expected_auc"] = expected_auc(proba, pd_true)
        report[product] = row
    return report
