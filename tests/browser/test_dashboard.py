"""The dashboard in a real headless Chromium against a real daemon: log in with a token, watch a job
submitted from the CLI appear and finish, follow live logs, cancel as a developer, be refused as a
viewer, read the audit log as an admin, and browse a model's lineage and Pareto plot."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Plane, shot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def login(chromium: Any, plane: Plane, who: str) -> Any:
    from playwright.sync_api import expect

    context = chromium.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the cancel button asks "Cancel job N?"
    page.goto(f"{plane.url}/ui/")
    expect(page).to_have_url(f"{plane.url}/ui/login?next=%2Fui%2Fjobs")
    page.fill("#token", plane.tokens[who])
    page.click("#login")
    expect(page).to_have_url(f"{plane.url}/ui/jobs")
    expect(page.locator("#whoami")).to_contain_text(who)
    return page


@pytest.fixture(scope="module")
def family(plane: Plane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[None]]:
    """Registers the models in the daemon's registry in a thread while the first tests run: a new
    MLflow store and three registrations take half a minute on a busy 2-core machine."""
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(_register_family, tmp_path_factory.mktemp("models"), f"sqlite:///{plane.home / 'mlflow.db'}")


def test_developer_watches_a_cli_job_and_cancels_another(chromium: Any, plane: Plane, family: Future[None]) -> None:
    from playwright.sync_api import expect

    anon = chromium.new_context(viewport={"width": 1280, "height": 560}).new_page()
    anon.goto(f"{plane.url}/ui/jobs")
    anon.fill("#token", "llmos_not-a-token")
    anon.click("#login")
    expect(anon.locator("#login-error")).to_contain_text("not known")
    shot(anon, "login")
    anon.context.close()

    page = login(chromium, plane, "dev")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "llmos_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert plane.tokens["dev"] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # no script can read the session

    quick = plane.submit("dev", "quick", "print('hello from quick'); import time; time.sleep(2)")
    row = page.locator(f"#job-{quick}")
    expect(row).to_be_visible(timeout=15_000)  # the table polls: no reload
    expect(row).to_contain_text("dev")
    expect(row.locator(".state")).to_have_text("SUCCEEDED", timeout=60_000)

    slow = plane.submit("dev", "slow", "print('still working', flush=True); import time; time.sleep(300)")
    expect(page.locator(f"#job-{slow} .state")).to_have_text("RUNNING", timeout=30_000)
    shot(page, "jobs")
    page.click(f"#job-{slow} a >> nth=0")
    expect(page.locator("#job-state")).to_have_text("RUNNING")
    expect(page.locator("pre.log").first).to_contain_text("still working", timeout=15_000)
    shot(page, "job")

    page.click("a[href='/ui/nodes']")
    expect(page.locator(f"a[href='/ui/jobs/{slow}']").first).to_be_visible()
    shot(page, "nodes")

    page.goto(f"{plane.url}/ui/jobs/{slow}")
    page.click("#cancel")
    expect(page.locator("#job-state")).to_have_text("CANCELLED", timeout=15_000)
    assert plane.job(slow)["state"] == "CANCELLED"
    page.context.close()


def test_viewer_is_refused_and_the_admin_sees_it_in_the_audit_log(chromium: Any, plane: Plane) -> None:
    from playwright.sync_api import expect

    job = plane.submit("dev", "busy", "import time; time.sleep(300)")
    page = login(chromium, plane, "viv")
    page.goto(f"{plane.url}/ui/jobs/{job}")
    expect(page.locator("#job-state")).to_have_text("RUNNING", timeout=30_000)
    assert page.locator("#cancel").count() == 0  # hidden, and also refused on the server:
    # the viewer's browser posts the cancel form anyway, with its own session's CSRF token.
    page.evaluate("""id => {
        const form = Object.assign(document.createElement("form"), {method: "post", action: `/ui/jobs/${id}/cancel`});
        form.append(document.querySelector("input[name=csrf]").cloneNode());
        document.body.append(form);
        form.submit();
    }""", job)
    expect(page.locator("#error-message")).to_contain_text("viv (viewer) may not cancel jobs")
    shot(page, "viewer-refused")
    assert plane.job(job)["state"] == "RUNNING"
    assert page.goto(f"{plane.url}/ui/audit").status == 403
    page.context.close()

    admin = login(chromium, plane, "admin")
    everything = admin.goto(f"{plane.url}/ui/audit").text()
    assert "favicon" not in everything  # browsing leaves no 404 noise in the audit log
    admin.goto(f"{plane.url}/ui/audit?actor=viv")
    refused = admin.locator("tr.refused", has_text=f"job {job}")
    expect(refused).to_contain_text("cancel")
    expect(refused).to_contain_text("403")
    shot(admin, "audit")
    plane.api("POST", f"/v1/jobs/{job}/cancel")
    admin.context.close()


def test_models_lineage_and_pareto_plot(chromium: Any, plane: Plane, family: Future[None]) -> None:
    from playwright.sync_api import expect

    family.result(timeout=180)
    page = login(chromium, plane, "viv")
    page.click("a[href='/ui/models']")
    expect(page.locator("a[href='/ui/models/sentiment-small']")).to_be_visible()
    page.click("a[href='/ui/models/sentiment-small']")
    svg = page.locator("svg.lineage")
    expect(svg).to_contain_text("sentiment/1")
    expect(svg).to_contain_text("sentiment-small/2")
    expect(svg).to_contain_text("minilm-l6")  # the parent's own lineage, from the other model
    expect(svg).to_contain_text("production")
    assert svg.locator("line").count() == 3
    expect(page.locator("table.report")).to_contain_text("int8-dynamic")
    plot = page.locator("img.pareto")
    expect(plot).to_be_visible()
    page.wait_for_load_state("networkidle")  # (wait_for_function would eval a string: the page's CSP refuses)
    assert plot.evaluate("img => img.naturalWidth") > 300  # the PNG came from the run's artifacts
    shot(page, "model")
    page.click("svg.lineage a[href='/ui/models/sentiment']")  # the parent's page lists its children too
    expect(page.locator("svg.lineage")).to_contain_text("sentiment-small/2")
    page.context.close()


def _register_family(tmp: Path, uri: str) -> None:
    """A fine-tuned model and two compressed children of it, registered as the pipelines would."""
    from llmos.compress._report import plot_pareto
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    def folder(i: int) -> Path:
        path = tmp / f"model{i}"
        (path / "tokenizer").mkdir(parents=True)
        (path / "config.json").write_text('{"model_type": "bert"}')
        (path / "model.safetensors").write_bytes(bytes([i]) * 256)
        (path / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
        return path

    tracking = TrackingSpec(uri=uri, system_metrics=False)
    with start_run(tracking, run_name="finetune", job={}, tags={}) as run:
        run.log_metrics({"eval/accuracy": 0.91}, step=1)
        model = run.log_model_dir(folder(0))
    register_model(name="sentiment", run_id=run.run_id, artifact_uri=model, alias="production",
                   tags={"base_model": "minilm-l6", "recipe": "finetune"}, tracking_uri=uri)
    children = [("int8-dynamic", 0.4, 2.1, 0.30, True), ("prune-50", 2.9, 1.4, 0.55, False)]
    report = {"metric": "accuracy", "metric_points_per_unit": 100, "higher_is_better": True, "task": "classification",
              "settings": {"batch_size": 32},
              "parent": {"label": "parent", "measured": {"throughput": 100.0, "metrics": {"accuracy": 0.91},
                                                         "size_mb": 90.0}},
              "children": [{"label": label, "gate": {"passed": passed},
                            "measured": {"throughput": 100 * speed, "metrics": {"accuracy": 0.91 - drop / 100},
                                         "size_mb": 90 * size}} for label, drop, speed, size, passed in children]}
    with start_run(tracking, run_name="compress", job={}, tags={}) as run:
        plot = plot_pareto(report, tmp / "pareto.png")
        run.log_artifact(plot, "report")
        for i, (label, drop, speed, size, passed) in enumerate(children, start=1):
            model = run.log_model_dir(folder(i), f"children/{label}")
            register_model(name="sentiment-small", run_id=run.run_id, artifact_uri=model, alias=None,
                           tracking_uri=uri, tags={
                "recipe_label": label, "parent_name": "sentiment", "parent_version": "1",
                "gate": "passed" if passed else "failed", "gate_reason": "" if passed else "accuracy dropped",
                "metric_drop": f"{drop:.3f}", "speedup": f"{speed:.3f}", "latency_ratio": "0.600",
                "size_ratio": f"{size:.3f}"})
