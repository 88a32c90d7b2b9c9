"""recommender: items for each user from their history, by models llmos fine-tunes and serves.

    python recommender.py            # MiniLM-L6 on the full generated data (minutes on a laptop CPU)
    python recommender.py --tiny     # the 2-layer test model on small data (a minute or two)
    python recommender.py --serve    # then keep serving GET /recommend?user=u001 on --port

It generates its data (data.py), fine-tunes and registers the retriever and the ranker with one
llmos pipeline (`llmos run`), serves the @production versions from the registry (`llmos.serve`),
and reports on the held-out interactions: recall@10 and NDCG@10 of a popularity baseline, the
untuned encoder, the fine-tuned retriever and the retriever + ranker; a table, results.json and
methods.png (the same figures as bars) in --out. The /recommend route is asked once in every run,
and its answer kept in results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import data
import httpx
import report
import yaml
from rank import by_popularity, mean_figures, popularity
from service import Recommender, create_app

import llmos

HERE = Path(__file__).resolve().parent
K = 10
# --tiny: the test preset, small data and enough steps to learn something; other names keep it apart.
TINY = {"model": {"name": "tiny-bert"}, "train": {"lr": 5.0e-3, "num_threads": 1},
        "tracking": {"system_metrics": False}}
TINY_EPOCHS = {"retriever": 12, "ranker": 4}


def pipeline_spec(tiny: bool) -> dict:
    """The shipped pipeline.yaml, patched for --tiny."""
    spec = yaml.safe_load((HERE / "pipeline.yaml").read_text(encoding="utf-8"))
    if not tiny:
        return spec
    spec["name"] = "recommender-tiny"
    for stage in spec["stages"]:
        if "train" in stage:
            body = stage["train"]
            for key, patch in TINY.items():
                body[key] = {**body.get(key, {}), **patch}
            if stage["name"] in TINY_EPOCHS:
                body["train"]["epochs"] = TINY_EPOCHS[stage["name"]]
            else:
                body["train"]["lr"] = 1.0e-12
            body["register"]["name"] = body["register"]["name"].replace("recommender-", "recommender-tiny-")
        if "evaluate" in stage:
            stage["evaluate"]["min"] = {}  # a random-init model has no bar to clear
    return spec


def refs(spec: dict) -> dict[str, str]:
    """The @production references of the three models."""
    names = {s["name"]: s["train"]["register"]["name"] for s in spec["stages"] if "train" in s}
    return {stage: f"{name}@production" for stage, name in names.items()}


def train(out: Path, spec: dict) -> dict[str, str]:
    """Run the pipeline in the foreground with the llmos CLI."""
    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    cli = shutil.which("llmos", path=str(Path(sys.executable).parent)) or shutil.which("llmos") or "llmos"
    done = subprocess.run([cli, "run", str(path), "--json"], stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    (out / "pipeline-result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if done.returncode != 0 or result.get("state") != "succeeded":
        failed = [f"{s['name']}: {s['reason']}" for s in result.get("stages", []) if s["state"] == "FAILED"]
        sys.exit(f"error: the pipeline failed: {'; '.join(failed) or 'see the output above'}\n"
                 f"hint: fix the stage named, then run this again; {out / 'pipeline-result.json'} has every stage")
    return refs(spec)


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def ask_route(recommender: Recommender, user: str) -> dict:
    """Start the web app on a free port, ask GET /recommend for `user` and an unknown user, stop it."""
    import uvicorn

    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(recommender), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        answer = httpx.get(f"{url}/recommend", params={"user": user, "k": 5}, timeout=60)
        unknown = httpx.get(f"{url}/recommend", params={"user": "nobody"}, timeout=60)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return {"status": answer.status_code, "answer": answer.json(),
            "unknown_user": {"status": unknown.status_code, "answer": unknown.json()}}


def measure(models: dict[str, str], d: dict, *, serve_port: int | None) -> dict:
    """Every figure of the report, from the served models; with serve_port, then serve /recommend."""
    items = {i.id: i for i in d["items"]}
    train_h, test = d["train"], d["test"]
    users = sorted(test)
    popular = popularity(train_h)
    rankings = {"popularity": {u: by_popularity(popular, items, train_h[u]) for u in users}}
    with llmos.serve(models["untuned"], server={"port": 0}) as untuned:
        base = Recommender(items, train_h, untuned)
        rankings["untuned encoder"] = {u: base.retrieve(u) for u in users}
    with llmos.serve(models["retriever"], server={"port": 0}) as retriever, \
            llmos.serve(models["ranker"], server={"port": 0}) as ranker:
        rec = Recommender(items, train_h, retriever, ranker)
        rankings["fine-tuned retriever"] = {u: rec.retrieve(u) for u in users}
        started = time.perf_counter()
        rankings["retriever + ranker"] = {u: [i for i, _ in rec.recommend(u, K)] for u in users}
        per_user_s = (time.perf_counter() - started) / len(users)
        route = ask_route(rec, users[0])
        if serve_port is not None:
            import uvicorn

            print(f"serving GET http://127.0.0.1:{serve_port}/recommend?user={users[0]} (Ctrl-C stops)")
            uvicorn.run(create_app(rec), host="127.0.0.1", port=serve_port, log_level="warning")
    return {"k": K, "methods": {name: mean_figures(r, test, K) for name, r in rankings.items()},
            "versions": models, "recommend_s_per_user": per_user_s, "route": route,
            "sizes": {"items": len(items), "users": len(users), "categories": len(data.CATEGORIES),
                      "train_interactions": sum(map(len, train_h.values())),
                      "test_interactions": sum(map(len, test.values())),
                      **{f"{name}_rows": len(rows) for name, rows in d["rows"].items()}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the 2-layer test model on small data")
    parser.add_argument("--out", type=Path, default=Path("recommender-out"), help="folder for data and results")
    parser.add_argument("--no-train", action="store_true",
                        help="measure the @production models of an earlier run instead of training")
    parser.add_argument("--serve", action="store_true", help="after the report, serve GET /recommend")
    parser.add_argument("--port", type=int, default=8080, help="port of --serve")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    d = data.generate(data.SMALL if args.tiny else data.FULL)
    data.write_all(out / "data", d)
    spec = pipeline_spec(args.tiny)
    models = refs(spec) if args.no_train else train(out, spec)
    results = measure(models, d, serve_port=args.port if args.serve else None)
    results["model"] = "tiny-bert" if args.tiny else "minilm-l6"
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    report.plot(results, out / "methods.png")
    print(report.table(results))
    print(f"wrote {out / 'results.json'} and {out / 'methods.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
