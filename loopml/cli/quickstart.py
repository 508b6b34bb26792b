"""``loopml quickstart``: a first tour of the loop on a small dataset bundled with scikit-learn.

Creates (or reuses) a workspace, tunes a logistic regression over a few values of ``C`` as
nested runs, registers the best model, points the ``production`` alias at it, loads it back
through its URI and scores the held-out rows, then prints where to look next.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from loopml import api, data
from loopml.cli._common import console
from loopml.settings import CONFIG_FILE
from loopml.store import Workspace
from loopml.tracking import start_run

MODEL = "breast-cancer"
GRID_C = (0.01, 0.1, 1.0, 10.0)


def quickstart(
    directory: Path = typer.Option(Path("loopml-demo"), "--dir", help="Workspace folder."),
    seed: int = typer.Option(0, help="Random seed of the data split."),
) -> None:
    """Train, track, register and load a model in a demo workspace (a few seconds)."""
    # scikit-learn is imported here, not at the top, so that every other command starts fast
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    fresh = not (directory / CONFIG_FILE).is_file()
    ws = Workspace.init(directory) if fresh else Workspace.open(directory)
    with ws:
        console.print(f"[bold]1.[/] workspace {'created' if fresh else 'reused'}: {ws.home}")
        raw = load_breast_cancer(as_frame=True).frame
        dv = data.ingest(raw, name="breast-cancer", workspace=ws)
        frame = dv.to_pandas()
        X, y = frame.drop(columns=["target"]), frame["target"]
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=seed
        )
        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=0.25, stratify=y_train, random_state=seed
        )
        console.print(
            f"[bold]2.[/] data: ingested {dv.ref} ({dv.num_rows} rows x {X.shape[1]} "
            f"features, profiled); {len(X_train)} rows to train, {len(X_test)} held out"
        )

        with start_run("quickstart", name="tune-logreg", workspace=ws) as parent:
            parent.log_input(dv)
            parent.log_params(
                {
                    "dataset": dv.ref,
                    "seed": seed,
                    "grid.C": list(GRID_C),
                }
            )
            best: tuple[float, float, object] | None = None
            for c in GRID_C:
                with start_run("quickstart", name=f"C={c}", nested=True, workspace=ws) as trial:
                    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
                    model.fit(X_fit, y_fit)
                    proba = model.predict_proba(X_val)[:, 1]
                    auc = float(roc_auc_score(y_val, proba))
                    trial.log_params({"model": "logistic_regression", "C": c})
                    trial.log_metrics({"val_auc": auc, "val_log_loss": log_loss(y_val, proba)})
                    if best is None or auc > best[0]:
                        best = (auc, c, model)
            assert best is not None
            best_auc, best_c, _ = best
            console.print(
                f"[bold]3.[/] tuned C over {list(GRID_C)} as {len(GRID_C)} nested "
                f"runs: best C={best_c} (validation AUC {best_auc:.4f})"
            )

            final = make_pipeline(StandardScaler(), LogisticRegression(C=best_c, max_iter=500))
            final.fit(X_train, y_train)
            proba = final.predict_proba(X_test)[:, 1]
            parent.log_params({"best.C": best_c})
            parent.log_metrics(
                {
                    "test_auc": float(roc_auc_score(y_test, proba)),
                    "test_accuracy": float(accuracy_score(y_test, proba > 0.5)),
                }
            )
            mv = api.register_model(
                final, MODEL, run=parent, input_example=X_train.head(), workspace=ws
            )
        api.set_alias(MODEL, "production", mv.version, workspace=ws)
        console.print(
            f"[bold]4.[/] registered {mv.uri} from run {parent.id[:8]} and set alias "
            f"[bold]production[/] -> version {mv.version}"
        )

        served = api.load_model(f"models:/{MODEL}@production", workspace=ws)
        accuracy = accuracy_score(y_test, served.predict(X_test))
        console.print(
            f"[bold]5.[/] loaded models:/{MODEL}@production and scored "
            f"{len(X_test)} held-out rows: accuracy {accuracy:.4f}"
        )
        console.print("[bold]6.[/] lineage:")
        for edge in api.lineage(f"models:/{MODEL}@production", workspace=ws):
            console.print(f"     {edge}")

    console.print(f"\nDone in {time.perf_counter() - started:.1f} s. Look around:")
    for cmd in (
        "loopml data show breast-cancer",
        "loopml runs list",
        f"loopml runs show {parent.id[:8]}",
        "loopml models list",
        f"loopml models show {MODEL}@production",
    ):
        console.print(f"  cd {directory} && {cmd}")
