"""The recommender's figures as a table: what recommender.py prints and the README shows."""

from __future__ import annotations


def table(r: dict) -> str:
    k, s = r["k"], r["sizes"]
    lines = [f"recommender ({r['model']}): {s['test_interactions']} held-out interactions of {s['users']} users, "
             f"{s['items']} items in {s['categories']} categories",
             f"| method | recall@{k} | NDCG@{k} |", "|---|---:|---:|"]
    for name, m in r["methods"].items():
        lines.append(f"| {name} | {m[f'recall_at_{k}']:.3f} | {m[f'ndcg_at_{k}']:.3f} |")
    route = r["route"]["answer"]
    lines += ["", f"GET /recommend?user={route['user']}&k=5 (history: {'; '.join(route['history'][-3:])}):"]
    lines += [f"  {i['id']}  {i['title']}  ({i['category']}, ranker {i['score']:.2f})" for i in route["items"]]
    return "\n".join(lines)
