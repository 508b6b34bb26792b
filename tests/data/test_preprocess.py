"""Preprocessing transformers and the default Preprocessor, checked against hand computations."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer as SkIterativeImputer
from sklearn.impute import KNNImputer as SkKNNImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from loopml.data._columns import (
    DatetimeFeatures,
    Deduplicator,
    IQRClipper,
    Scaler,
    TypeCoercer,
    Winsorizer,
)
from loopml.data._encode import OneHotEncoder, OrdinalEncoder, TargetEncoder
from loopml.data._impute import Imputer, IterativeImputer, KNNImputer
from loopml.data._preprocessor import Preprocessor, read_profile
from loopml.errors import InvalidInput


@pytest.fixture
def mixed() -> pd.DataFrame:
    """A small frame with every kind of column, gaps included."""
    return pd.DataFrame(
        {
            "age": [25.0, np.nan, 40.0, 31.0, 58.0, 22.0],
            "income": [30.0, 52.0, np.nan, 41.0, 90.0, 28.0],
            "city": ["paris", "lyon", None, "paris", "nice", "lyon"],
            "vip": [True, False, True, False, False, True],
            "seen": pd.to_datetime(
                [
                    "2024-01-01 08:00",
                    "2024-02-29 13:30",
                    None,
                    "2024-07-14 23:59",
                    "2024-12-31 00:00",
                    "2024-03-03 06:00",
                ]
            ),
        }
    )


Y_MIXED = np.array([0, 1, 1, 0, 1, 0])

ALL_TRANSFORMERS: list[Any] = [
    Imputer(strategy="median", add_indicator=True),
    KNNImputer(n_neighbors=2),
    IterativeImputer(max_iter=5, tol=0.1),
    Winsorizer(lower=0.1, upper=0.9),
    IQRClipper(factor=1.0),
    OneHotEncoder(handle_unknown="infrequent", min_frequency=2),
    OrdinalEncoder(unknown_value=-5),
    TargetEncoder(smoothing=2.0, cv=2),
    Scaler(method="robust"),
    DatetimeFeatures(parts=("year", "hour"), drop=False),
    TypeCoercer(),
    Deduplicator(subset=["city"]),
]


def _ids(t: Any) -> str:
    return type(t).__name__


# -- scikit-learn contract ---------------------------------------------------------------------


@pytest.mark.parametrize("transformer", ALL_TRANSFORMERS, ids=_ids)
def test_clone_keeps_params_and_drops_fitted_state(transformer: Any, mixed: pd.DataFrame) -> None:
    fitted = clone(transformer).fit(mixed, Y_MIXED)
    twin = clone(fitted)
    assert type(twin) is type(transformer)
    assert twin.get_params() == transformer.get_params()
    assert not hasattr(twin, "feature_names_in_")
    assert twin.set_params(**transformer.get_params()).get_params() == transformer.get_params()


def test_constructors_only_store_arguments(mixed: pd.DataFrame) -> None:
    nonsense = Imputer(strategy="mode")  # type: ignore[arg-type]  # stored, checked at fit
    assert nonsense.get_params()["strategy"] == "mode"
    with pytest.raises(InvalidInput, match="strategy must be one of"):
        nonsense.fit(mixed)
    with pytest.raises(InvalidInput, match="lower < upper"):
        Winsorizer(lower=0.9, upper=0.1).fit(mixed)
    with pytest.raises(InvalidInput, match="method must be one of"):
        Scaler(method="zscore").fit(mixed)  # type: ignore[arg-type]


@pytest.mark.parametrize("transformer", ALL_TRANSFORMERS, ids=_ids)
def test_joblib_round_trip_gives_identical_output(
    transformer: Any, mixed: pd.DataFrame, tmp_path: Path
) -> None:
    fitted = clone(transformer).fit(mixed, Y_MIXED)
    joblib.dump(fitted, tmp_path / "t.joblib")
    loaded = joblib.load(tmp_path / "t.joblib")
    pd.testing.assert_frame_equal(loaded.transform(mixed), fitted.transform(mixed))
    assert list(loaded.get_feature_names_out()) == list(fitted.transform(mixed).columns)


@pytest.mark.parametrize("transformer", ALL_TRANSFORMERS, ids=_ids)
def test_missing_column_at_transform_is_invalid_input(
    transformer: Any, mixed: pd.DataFrame
) -> None:
    fitted = clone(transformer).fit(mixed, Y_MIXED)
    with pytest.raises(InvalidInput, match="column 'city' seen at fit is missing"):
        fitted.transform(mixed.drop(columns="city"))


@pytest.mark.parametrize("transformer", ALL_TRANSFORMERS, ids=_ids)
def test_output_columns_are_stable_and_ignore_extra_or_reordered_input(
    transformer: Any, mixed: pd.DataFrame
) -> None:
    fitted = clone(transformer).fit(mixed, Y_MIXED)
    shuffled = mixed[list(reversed(mixed.columns))].assign(extra=1)
    out = fitted.transform(shuffled)
    assert list(out.columns) == list(fitted.get_feature_names_out())
    pd.testing.assert_frame_equal(out, fitted.transform(mixed))


def test_set_output_and_column_transformer(mixed: pd.DataFrame) -> None:
    scaler = Scaler().set_output(transform="pandas").fit(mixed)
    assert isinstance(scaler.transform(mixed), pd.DataFrame)
    ct = ColumnTransformer(
        [("num", Scaler(), ["age", "income"]), ("cat", OneHotEncoder(), ["city"])],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    out = ct.fit_transform(mixed)
    assert list(out.columns) == ["age", "income", "city_lyon", "city_nice", "city_paris"]


def test_numpy_input_gets_generated_names() -> None:
    X = np.array([[1.0, 10.0], [3.0, 30.0]])
    scaler = Scaler().fit(X)
    assert list(scaler.feature_names_in_) == ["x0", "x1"]
    out = scaler.transform(X)
    assert list(out.columns) == ["x0", "x1"]
    np.testing.assert_allclose(out.to_numpy(), [[-1.0, -1.0], [1.0, 1.0]])
    with pytest.raises(InvalidInput, match="expected 2 columns as at fit, got 3"):
        scaler.transform(np.ones((2, 3)))


def test_transform_before_fit_is_not_fitted_error(mixed: pd.DataFrame) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Scaler().transform(mixed)


# -- imputation -----------------------------------------------------------------------------


def test_imputer_statistics_match_hand_computation(mixed: pd.DataFrame) -> None:
    age = [25.0, 40.0, 31.0, 58.0, 22.0]
    out = Imputer(strategy="mean").fit_transform(mixed)
    assert out.loc[1, "age"] == pytest.approx(sum(age) / 5)
    assert out["city"].isna().sum() == 1  # mean/median touch numeric columns only

    out = Imputer(strategy="median", add_indicator=True).fit_transform(mixed)
    assert out.loc[1, "age"] == 31.0
    assert out.loc[2, "income"] == 41.0
    assert out["age_missing"].tolist() == [0, 1, 0, 0, 0, 0]
    assert list(out.columns)[-2:] == ["age_missing", "income_missing"]

    out = Imputer(strategy="most_frequent").fit_transform(mixed)
    assert out.loc[2, "city"] == "lyon"  # lyon and paris tie: the smallest wins
    assert out.loc[2, "seen"] is pd.NaT  # datetimes are left alone unless asked for

    out = Imputer(strategy="constant", columns=["age", "city"]).fit_transform(mixed)
    assert out.loc[1, "age"] == 0 and out.loc[2, "city"] == "missing"
    assert np.isnan(out.loc[2, "income"])


def test_imputer_mean_output_is_float_even_without_gaps() -> None:
    imp = Imputer(strategy="median").fit(pd.DataFrame({"n": [1, 2, 3]}))
    assert imp.transform(pd.DataFrame({"n": [5, 6]}))["n"].dtype == "float64"


def test_imputer_rejects_all_missing_and_non_numeric_columns() -> None:
    with pytest.raises(InvalidInput, match="column 'a' has no observed values"):
        Imputer(strategy="median").fit(pd.DataFrame({"a": [np.nan, np.nan]}))
    with pytest.raises(InvalidInput, match="column 'c' must hold numbers; row 0 has 'x'"):
        Imputer(strategy="mean", columns=["c"]).fit(pd.DataFrame({"c": ["x", "1"]}))


def test_knn_and_iterative_imputers_match_scikit_learn() -> None:
    frame = pd.DataFrame(
        {
            "a": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "b": [2.0, np.nan, 6.1, 7.9, 10.2, 12.0],
            "label": list("uvwxyz"),
        }
    )
    matrix = frame[["a", "b"]].to_numpy()
    knn = KNNImputer(n_neighbors=2).fit_transform(frame)
    np.testing.assert_allclose(
        knn[["a", "b"]].to_numpy(), SkKNNImputer(n_neighbors=2).fit_transform(matrix)
    )
    assert knn["label"].tolist() == list("uvwxyz")
    it = IterativeImputer(max_iter=20).fit_transform(frame)
    expected = SkIterativeImputer(max_iter=20, random_state=0).fit_transform(matrix)
    np.testing.assert_allclose(it[["a", "b"]].to_numpy(), expected)


# -- outliers and scaling ---------------------------------------------------------------------


def test_winsorizer_clips_at_fitted_quantiles() -> None:
    values = np.arange(101, dtype=float)
    w = Winsorizer(lower=0.05, upper=0.9).fit(pd.DataFrame({"v": values}))
    assert w.lower_bounds_["v"] == np.quantile(values, 0.05)
    assert w.upper_bounds_["v"] == np.quantile(values, 0.9)
    out = w.transform(pd.DataFrame({"v": [-1000.0, 50.0, 1000.0, np.nan]}))
    assert out["v"].tolist()[:3] == [5.0, 50.0, 90.0]
    assert np.isnan(out["v"].iloc[3])


def test_iqr_clipper_uses_tukey_fences() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    c = IQRClipper(factor=1.5).fit(pd.DataFrame({"v": values}))
    q1, q3 = np.quantile(values, [0.25, 0.75])
    assert c.upper_bounds_["v"] == q3 + 1.5 * (q3 - q1)
    assert c.transform(pd.DataFrame({"v": [100.0]}))["v"].item() == q3 + 1.5 * (q3 - q1)


@pytest.mark.parametrize(
    ("method", "center", "scale"),
    [
        ("standard", lambda v: v.mean(), lambda v: v.std()),
        ("minmax", lambda v: v.min(), lambda v: v.max() - v.min()),
        (
            "robust",
            np.median,
            lambda v: np.subtract(*np.quantile(v, [0.75, 0.25])),
        ),
    ],
)
def test_scaler_matches_hand_computation(method: Any, center: Any, scale: Any) -> None:
    v = np.array([3.0, 7.0, 1.0, 12.0, 4.0])
    out = Scaler(method=method).fit_transform(pd.DataFrame({"v": v, "const": 5.0, "s": "x"}))
    np.testing.assert_allclose(out["v"], (v - center(v)) / scale(v))
    assert (out["const"] == 0.0).all()  # zero scale is treated as 1
    assert out["s"].tolist() == ["x"] * 5


# -- encoding -----------------------------------------------------------------------------------


def test_one_hot_encoder_unknown_handling(mixed: pd.DataFrame) -> None:
    new = pd.DataFrame({"city": ["nice", "berlin", None]})
    enc = OneHotEncoder(columns=["city"]).fit(mixed[["city"]])
    assert enc.transform(new).to_dict("list") == {
        "city_lyon": [0.0, 0.0, 0.0],
        "city_nice": [1.0, 0.0, 0.0],
        "city_paris": [0.0, 0.0, 0.0],
    }
    strict = OneHotEncoder(handle_unknown="error").fit(mixed[["city"]])
    with pytest.raises(InvalidInput, match="column 'city' has category 'berlin' unseen at fit"):
        strict.transform(new)
    bucket = OneHotEncoder(handle_unknown="infrequent").fit(mixed[["city"]])
    out = bucket.transform(new)
    assert out["city_infrequent"].tolist() == [0.0, 1.0, 0.0]


def test_one_hot_encoder_groups_infrequent_categories() -> None:
    frame = pd.DataFrame({"c": list("aaaabbbccd")})
    by_count = OneHotEncoder(min_frequency=3).fit(frame)
    assert by_count.categories_["c"] == ["a", "b"]
    assert by_count.infrequent_categories_["c"] == ["c", "d"]
    out = by_count.transform(pd.DataFrame({"c": ["d", "a", "zzz"]}))
    assert out.to_dict("list") == {
        "c_a": [0.0, 1.0, 0.0],
        "c_b": [0.0, 0.0, 0.0],
        "c_infrequent": [1.0, 0.0, 0.0],  # unseen "zzz" is ignored, not infrequent
    }
    by_fraction = OneHotEncoder(min_frequency=0.25).fit(frame)
    assert by_fraction.categories_["c"] == ["a", "b"]
    capped = OneHotEncoder(max_categories=2).fit(frame)
    assert list(capped.get_feature_names_out()) == ["c_a", "c_infrequent"]


def test_ordinal_encoder_codes_sorted_categories() -> None:
    enc = OrdinalEncoder().fit(pd.DataFrame({"c": ["b", "a", "c", "a"], "n": [1, 2, 3, 4]}))
    out = enc.transform(pd.DataFrame({"c": ["c", "a", "zzz", None], "n": [0, 0, 0, 0]}))
    assert out["c"].tolist() == [2, 0, -1, -1]
    assert out["c"].dtype == "int64" and out["n"].tolist() == [0, 0, 0, 0]
    with pytest.raises(InvalidInput, match="unknown_value=1 is a valid code"):
        OrdinalEncoder(unknown_value=1).fit(pd.DataFrame({"c": ["a", "b"]}))


def test_target_encoder_full_data_encoding_matches_formula() -> None:
    frame = pd.DataFrame({"c": ["a", "a", "a", "b", "b", "c"]})
    y = np.array([1.0, 2.0, 6.0, 4.0, 4.0, 10.0])
    prior = y.mean()
    enc = TargetEncoder(smoothing=2.0, cv=2).fit(frame, y)
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "c", "new", None]}))
    expected = [
        (9.0 + 2 * prior) / (3 + 2),
        (8.0 + 2 * prior) / (2 + 2),
        (10.0 + 2 * prior) / (1 + 2),
        prior,
        prior,
    ]
    np.testing.assert_allclose(out["c"], expected)


def test_target_encoder_auto_smoothing_matches_formula() -> None:
    frame = pd.DataFrame({"c": ["a", "a", "a", "b", "b", "b"]})
    y = np.array([1.0, 2.0, 6.0, 4.0, 4.0, 4.0])
    enc = TargetEncoder().fit(frame, y)
    a = np.array([1.0, 2.0, 6.0])
    m = a.var() / y.var()
    expected_a = (a.sum() + m * y.mean()) / (3 + m)
    np.testing.assert_allclose(enc.transform(frame)["c"], [expected_a] * 3 + [4.0] * 3)


def test_target_encoder_fit_transform_cross_fits() -> None:
    frame = pd.DataFrame({"c": list("abababab")})
    y = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0])
    enc = TargetEncoder(smoothing=1.0, cv=2, random_state=7)
    crossed = enc.fit_transform(frame, y)["c"].to_numpy()
    expected = np.empty(len(y))
    for train, test in KFold(2, shuffle=True, random_state=7).split(frame):
        prior = y[train].mean()
        for row in test:
            same = [i for i in train if frame["c"][i] == frame["c"][row]]
            expected[row] = (y[same].sum() + prior) / (len(same) + 1)
    np.testing.assert_allclose(crossed, expected)
    assert not np.allclose(crossed, enc.transform(frame)["c"])


def test_target_encoder_cross_fitting_prevents_leakage() -> None:
    rng = np.random.default_rng(42)
    n = 1000
    ids = pd.DataFrame({"id": [f"user-{i}" for i in range(n)]})
    y = rng.integers(0, 2, n)
    enc = TargetEncoder(cv=5)
    crossed = enc.fit_transform(ids, y)["id"]
    naive = enc.transform(ids)["id"]
    # Encoded with its own target, an id "predicts" perfectly; cross-fitted, it cannot.
    assert roc_auc_score(y, naive) > 0.99
    assert abs(roc_auc_score(y, crossed) - 0.5) < 0.05
    model = LogisticRegression().fit(crossed.to_frame(), y)
    assert model.score(crossed.to_frame(), y) < max(y.mean(), 1 - y.mean()) + 0.03


def test_target_encoder_cross_fitting_prevents_leakage_for_regression() -> None:
    rng = np.random.default_rng(43)
    n = 1000
    ids = pd.DataFrame({"id": [f"user-{i}" for i in range(n)]})
    y = rng.normal(50.0, 10.0, n)
    enc = TargetEncoder(cv=5)
    crossed = enc.fit_transform(ids, y)["id"].to_numpy()
    naive = enc.transform(ids)["id"].to_numpy()
    assert enc.target_type_ == "continuous"
    assert np.corrcoef(naive, y)[0, 1] > 0.99
    assert abs(np.corrcoef(crossed, y)[0, 1]) < 0.2


def test_target_encoder_binary_labels_and_multiclass() -> None:
    frame = pd.DataFrame({"c": ["a", "a", "b", "b"]})
    binary = TargetEncoder(smoothing=0.0, cv=2).fit(frame, ["no", "yes", "yes", "yes"])
    assert binary.classes_ is not None and list(binary.classes_) == ["no", "yes"]
    assert binary.transform(frame)["c"].tolist() == [0.5, 0.5, 1.0, 1.0]
    multi = TargetEncoder(smoothing=0.0, cv=2).fit(frame, ["x", "y", "z", "z"])
    out = multi.transform(frame)
    assert list(out.columns) == ["c_x", "c_y", "c_z"]
    assert out.iloc[0].tolist() == [0.5, 0.5, 0.0]
    with pytest.raises(InvalidInput, match="fit needs the target y"):
        TargetEncoder().fit(frame)
    with pytest.raises(InvalidInput, match="y has missing values"):
        TargetEncoder().fit(frame, [1.0, np.nan, 2.0, 3.0])


# -- dates, types, duplicates -------------------------------------------------------------------


def test_datetime_features_parts(mixed: pd.DataFrame) -> None:
    out = DatetimeFeatures(columns=["seen"]).fit_transform(mixed)
    parts = ["seen_year", "seen_month", "seen_day", "seen_dayofweek", "seen_hour"]
    assert list(out.columns) == ["age", "income", "city", "vip", *parts]
    assert out.loc[1, parts].tolist() == [2024, 2, 29, 3, 13]  # 2024-02-29 was a Thursday
    assert out.loc[2, parts].isna().all()
    assert all(out[p].dtype == "Int64" for p in parts)


def test_datetime_features_time_zones() -> None:
    paris = pd.DataFrame({"t": pd.to_datetime(["2024-07-01 12:00"]).tz_localize("Europe/Paris")})
    dt = DatetimeFeatures(parts=["hour"]).fit(paris)
    assert dt.transform(paris)["t_hour"].tolist() == [12]
    utc = pd.DataFrame({"t": pd.to_datetime(["2024-07-01 12:00"]).tz_localize("UTC")})
    assert dt.transform(utc)["t_hour"].tolist() == [14]  # converted to the fitted zone
    text = pd.DataFrame({"t": ["2024-07-01T12:00:00+00:00"]})
    assert dt.transform(text)["t_hour"].tolist() == [14]
    naive = DatetimeFeatures(parts=["hour"]).fit(pd.DataFrame({"t": pd.to_datetime(["2024"])}))
    assert naive.transform(paris)["t_hour"].tolist() == [10]  # aware → UTC for a naive fit
    with pytest.raises(InvalidInput, match="column 't' must hold timestamps; row 1 has 'soon'"):
        dt.transform(pd.DataFrame({"t": ["2024-07-01", "soon"]}))


def test_type_coercer_casts_back_to_fitted_dtypes() -> None:
    train = pd.DataFrame(
        {
            "age": [31, 42],
            "score": [0.5, 1.5],
            "vip": [True, False],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        }
    )
    coercer = TypeCoercer().fit(train)
    request = pd.DataFrame(
        {"age": ["42", "7"], "score": ["1", 2], "vip": ["yes", "0"], "when": ["2024-05-01", None]}
    )
    out = coercer.transform(request)
    assert out.dtypes.to_dict() == train.dtypes.to_dict()
    assert out["age"].tolist() == [42, 7]
    assert out["vip"].tolist() == [True, False]
    given = TypeCoercer(dtypes={"age": "float64"}).fit(train)
    assert given.dtypes_["age"] == "float64" and given.dtypes_["score"] == "float64"


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("age", ["42", "forty"], "column 'age' cannot be cast to int64: row 11 has 'forty'"),
        ("age", ["4.5", "7"], "column 'age' cannot be cast to int64: row 10 has '4.5'"),
        ("age", [1, None], "column 'age' cannot be cast to int64: row 11 is missing"),
        ("vip", ["maybe", "yes"], "column 'vip' cannot be cast to bool: row 10 has 'maybe'"),
    ],
)
def test_type_coercer_names_column_and_first_bad_value(
    column: str, values: list[Any], message: str
) -> None:
    coercer = TypeCoercer().fit(pd.DataFrame({"age": [1, 2], "vip": [True, False]}))
    request = pd.DataFrame({"age": [1, 2], "vip": [True, True]}, index=[10, 11])
    request[column] = pd.Series(values, index=[10, 11], dtype=object)
    with pytest.raises(InvalidInput, match=message):
        coercer.transform(request)


def test_type_coercer_rejects_unknown_dtype_names() -> None:
    with pytest.raises(InvalidInput, match="unknown dtype 'integer-ish' for column 'a'"):
        TypeCoercer(dtypes={"a": "integer-ish"}).fit(pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidInput, match="'b' in dtypes are not in X"):
        TypeCoercer(dtypes={"b": "int64"}).fit(pd.DataFrame({"a": [1]}))


def test_deduplicator_drops_rows_in_training_only() -> None:
    frame = pd.DataFrame({"k": [1, 1, 2, 2, 3], "v": ["a", "b", "c", "c", "d"]})
    dedup = Deduplicator()
    train = dedup.fit_transform(frame)
    assert train.index.tolist() == [0, 1, 2, 4]  # labels kept so y can follow
    assert dedup.n_duplicates_ == 1
    pd.testing.assert_frame_equal(dedup.transform(frame), frame)  # serving: one row per request
    by_key = Deduplicator(subset=["k"], keep="last").fit_transform(frame)
    assert by_key.index.tolist() == [1, 3, 4]
    assert Deduplicator(subset="k", keep=False).fit_transform(frame).index.tolist() == [4]
    with pytest.raises(InvalidInput, match="keep must be"):
        Deduplicator(keep="middle").fit(frame)  # type: ignore[arg-type]


# -- Preprocessor -------------------------------------------------------------------------------


def _customers(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 12, n)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    plan = rng.choice([f"plan-{i:02d}" for i in range(40)], n)
    vip = rng.random(n) < 0.3
    signup = pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 700 * 24, n), unit="h"
    )
    logit = 0.08 * (age - 45) + 1.5 * (city == "paris") + 1.0 * vip
    churned = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), name="churned")
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "age": np.where(rng.random(n) < 0.1, np.nan, age),
            "city": pd.Series(city).mask(rng.random(n) < 0.05),
            "plan": plan,
            "vip": vip,
            "signup": signup,
            "notes": ["free text"] * n,
        }
    )
    return frame, churned


PROFILE_JSON: dict[str, Any] = {
    "n_rows": 400,
    "columns": {
        "customer_id": {"kind": "identifier", "distinct": 400},
        "age": {"kind": "numeric", "distinct": 360, "missing": 40},
        "city": {"kind": "categorical", "distinct": 4},
        "plan": {"kind": "categorical", "distinct": 40},
        "vip": {"kind": "boolean", "distinct": 2},
        "signup": {"kind": "datetime"},
        "notes": {"kind": "text"},
        "churned": {"kind": "boolean", "distinct": 2},
    },
}
PLAIN_PROFILE = {name: info["kind"] for name, info in PROFILE_JSON["columns"].items()}


def test_pipeline_with_model_trains_and_serves_mixed_data() -> None:
    X, y = _customers(400, seed=1)
    pre = Preprocessor.from_profile(PROFILE_JSON, target="churned")
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)
    assert model.score(X, y) > 0.65

    serving, _ = _customers(5, seed=2)
    serving = serving.drop(columns=["customer_id", "notes"])  # dropped columns are not needed
    serving.loc[0, "city"] = "berlin"  # unseen level
    serving.loc[1, "age"] = np.nan
    serving.loc[2, "plan"] = "plan-99"  # unseen high-cardinality level
    assert model.predict(serving).shape == (5,)
    assert model.predict_proba(serving).shape == (5, 2)

    fitted = model.named_steps["pre"]
    train_out = fitted.transform(X)
    serve_out = fitted.transform(serving)
    assert list(serve_out.columns) == list(train_out.columns)
    assert list(train_out.columns) == list(fitted.get_feature_names_out())
    assert list(train_out.columns) == [
        "age",
        "city_lille",
        "city_lyon",
        "city_nice",
        "city_paris",
        "vip_False",
        "vip_True",
        "plan",
        "signup_year",
        "signup_month",
        "signup_day",
        "signup_dayofweek",
        "signup_hour",
    ]
    assert serve_out.loc[0, ["city_lille", "city_lyon", "city_nice", "city_paris"]].sum() == 0
    assert not serve_out.isna().any().any()
    assert fitted.dropped_ == {
        "customer_id": "an identifier",
        "notes": "free text",
    }


def test_preprocessor_fit_transform_cross_fits_target_encodings() -> None:
    X, y = _customers(300, seed=3)
    pre = Preprocessor.from_profile(PROFILE_JSON, target="churned", scale=False)
    training = pre.fit_transform(X, y)
    assert not np.allclose(training["plan"], pre.transform(X)["plan"])
    assert pre.fit(X, y).transform(X).shape == training.shape


def test_preprocessor_takes_y_from_the_target_column_and_drops_it() -> None:
    X, y = _customers(200, seed=4)
    pre = Preprocessor.from_profile(PLAIN_PROFILE, target="churned")
    out = pre.fit_transform(X.assign(churned=y))
    assert "churned" not in out.columns
    assert pre.dropped_["churned"] == "the target"
    assert list(pre.transform(X).columns) == list(out.columns)  # no target needed at serving


def test_preprocessor_clone_and_joblib(tmp_path: Path) -> None:
    X, y = _customers(200, seed=5)
    pre = Preprocessor.from_profile(PROFILE_JSON, target="churned", max_onehot=5)
    twin = clone(pre)
    assert twin.get_params() == pre.get_params()
    pre.fit(X, y)
    joblib.dump(pre, tmp_path / "pre.joblib")
    pd.testing.assert_frame_equal(
        joblib.load(tmp_path / "pre.joblib").transform(X), pre.transform(X)
    )


def test_preprocessor_missing_used_column_is_invalid_input() -> None:
    X, y = _customers(100, seed=6)
    pre = Preprocessor.from_profile(PROFILE_JSON, target="churned").fit(X, y)
    with pytest.raises(InvalidInput, match="column 'age' seen at fit is missing"):
        pre.transform(X.drop(columns="age"))
    with pytest.raises(InvalidInput, match=r"column\(s\) 'plan' of the profile are not in X"):
        Preprocessor.from_profile(PROFILE_JSON, target="churned").fit(X.drop(columns="plan"), y)


def test_from_profile_accepts_every_profile_form() -> None:
    forms = [PROFILE_JSON, PLAIN_PROFILE, SimpleNamespace(profile=PROFILE_JSON)]
    X, y = _customers(200, seed=7)
    outputs = [
        Preprocessor.from_profile(form, target="churned").fit_transform(X, y).columns.tolist()
        for form in forms
    ]
    assert outputs[0] == outputs[1] == outputs[2]
    assert read_profile(SimpleNamespace(profile=PLAIN_PROFILE)) == (PLAIN_PROFILE, {})
    with pytest.raises(InvalidInput, match="column 'age' has kind 'number'"):
        Preprocessor.from_profile({"age": "number"})
    with pytest.raises(InvalidInput, match="profile must be a mapping"):
        Preprocessor.from_profile(["age"])


def test_describe_before_and_after_fit() -> None:
    pre = Preprocessor.from_profile(PLAIN_PROFILE, target="churned", max_onehot=10)
    before = dict(line.split(": ", 1) for line in pre.describe())
    assert before["customer_id"] == "dropped (an identifier)"
    assert before["churned"] == "dropped (the target)"
    assert "one-hot encoding if it has at most 10 distinct values at fit" in before["city"]
    X, y = _customers(300, seed=8)
    after = dict(line.split(": ", 1) for line in pre.fit(X, y).describe())
    assert set(after) == set(X.columns)
    assert after["age"].startswith("numeric → median imputation, clipped")
    assert after["city"].startswith("categorical, 4 distinct → most-frequent imputation, one-hot")
    assert "target encoding against 'churned'" in after["plan"]
    assert after["signup"].startswith("datetime → integer year, month, day")
    assert after["notes"] == "dropped (free text)"


def test_preprocessor_without_profile_infers_kinds_and_uses_ordinal_without_target() -> None:
    X, y = _customers(200, seed=9)
    pre = Preprocessor(drop=["customer_id", "notes"], max_onehot=10).fit(X, y)
    assert pre.dropped_ == {"customer_id": "listed in drop", "notes": "listed in drop"}
    lines = dict(line.split(": ", 1) for line in pre.describe())
    assert "ordinal encoding" in lines["plan"]
    assert lines["vip"].startswith("boolean, 2 distinct")
    out = pre.transform(X)
    assert out["plan"].notna().all() and "plan" in out.columns


def test_preprocessor_drops_columns_without_values_and_refuses_empty_plans() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "empty": [np.nan] * 3})
    pre = Preprocessor().fit(frame)
    assert pre.dropped_ == {"empty": "no values at fit"}
    assert list(pre.transform(frame.drop(columns="empty")).columns) == ["a"]
    with pytest.raises(InvalidInput, match="every column was dropped"):
        Preprocessor(drop=["a"]).fit(frame)
    with pytest.raises(InvalidInput, match="target encoding of 'c' needs y"):
        Preprocessor(target="t", max_onehot=1).fit(pd.DataFrame({"c": list("abc")}))


@pytest.mark.parametrize("transformer", ALL_TRANSFORMERS, ids=_ids)
def test_transform_never_returns_or_modifies_the_input_frame(
    transformer: Any, mixed: pd.DataFrame
) -> None:
    before = mixed.copy()
    out = clone(transformer).fit(mixed, Y_MIXED).transform(mixed)
    assert out is not mixed
    out.iloc[0, 0] = None
    pd.testing.assert_frame_equal(mixed, before)
