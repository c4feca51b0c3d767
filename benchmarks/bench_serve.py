"""Serving benchmark on the embedded model over loopback (not a timed test).

Every figure is a ratio against a baseline measured in the same run:
  p11        tokens/s of N concurrent clients through `thinkscale serve` (HTTP, the official
             `openai` client, non-stream) / the same requests run in-process by the engine
             (same batch size, same budgets, greedy): the cost of the server around the engine.
  latency    p50 / p99 seconds per request of that run.
  staggered  requests arriving one every `--gap` seconds: mean latency with continuous batching
             (a request joins the running batch) / with a server that batches only when the
             previous batch is done (the same engine served in rounds).

    python benchmarks/bench_serve.py [--json] [--quick] [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_budget_forcing import stdout_to_stderr  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a smoke run (well under a minute)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--gap", type=float, default=0.5, help="staggered case: seconds between arrivals")
    args = ap.parse_args()
    if args.json:
        with stdout_to_stderr():
            results = run(args)
        print(json.dumps(results, indent=2))
    else:
        run(args)


def run(args) -> dict:
    import openai
    import uvicorn

    from thinkscale.infer.engines import Request, SamplingConfig
    from thinkscale.infer.forcing import Budget
    from thinkscale.infer.hf_engine import HFEngine
    from thinkscale.models import load_model
    from thinkscale.serve.app import Server, create_app
    from thinkscale.serve.config import ServeConfig
    from thinkscale.tasks import get_task

    clients = 4 if args.quick else args.clients
    cap, limit = (16, 24) if args.quick else (64, 96)
    model, tok = load_model()
    questions = [e.question for e in get_task("gsm8k").load(clients)]
    log = (lambda *a: None) if args.json else print
    results: dict = {"clients": clients, "thinking_budget": cap, "max_completion_tokens": limit}

    def serve(rounds: bool, port: int):
        server = Server(ServeConfig(max_batch=clients, compile=False), model=model, tokenizer=tok, rounds=rounds)
        srv = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        while not srv.started:
            time.sleep(0.02)
        return server, srv, thread

    def ask(c, q):
        t = time.perf_counter()
        r = c.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": q}], temperature=0,
                                      max_completion_tokens=limit, extra_body={"thinking_budget": cap})  # fmt: skip
        return time.perf_counter() - t, r.usage.completion_tokens

    # p11: all clients at once, through HTTP, vs the same requests in-process
    server, srv, thread = serve(False, 8931)
    c = openai.OpenAI(base_url="http://127.0.0.1:8931/v1", api_key="-", max_retries=0, timeout=600)
    ask(c, questions[0])  # warm-up
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(lambda q: ask(c, q), questions))
    t_http = time.perf_counter() - t0
    http_tokens = sum(n for _, n in done)
    lat = sorted(d for d, _ in done)
    srv.should_exit = True
    thread.join()
    server.close()
    ids = [tok.encode(server.fmt.render_chat(tok, [{"role": "user", "content": q}]), add_special_tokens=False)
           for q in questions]  # fmt: skip
    engine = HFEngine(model, server.tokens, clients, tok.pad_token_id)
    reqs = [Request(i, p, Budget(cap, max_answer_tokens=limit, max_tokens=limit)) for i, p in enumerate(ids)]
    t0 = time.perf_counter()
    fins = list(engine.run(reqs, SamplingConfig()))
    t_engine = time.perf_counter() - t0
    engine_tokens = sum(len(f.state.generated) for f in fins)
    results["p11"] = (http_tokens / t_http) / (engine_tokens / t_engine)
    results["p11_detail"] = {"server_tokens_per_s": http_tokens / t_http, "engine_tokens_per_s": engine_tokens / t_engine,
                             "server_tokens": http_tokens, "engine_tokens": engine_tokens}  # fmt: skip
    results["latency_s"] = {"p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))]}
    log(f"P11 server/in-process tokens/s: {results['p11']:.3f}  {results['p11_detail']}  latency {results['latency_s']}")

    # staggered arrivals: continuous batching vs batching only when the last batch is done
    gap = 0.1 if args.quick else args.gap
    for name, rounds, port in (("continuous", False, 8932), ("rounds", True, 8933)):
        server, srv, thread = serve(rounds, port)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0, timeout=600)
        ask(c, questions[0])
        with ThreadPoolExecutor(clients) as pool:
            futures = []
            for q in questions:
                futures.append(pool.submit(ask, c, q))
                time.sleep(gap)
            results[f"staggered_{name}_mean_s"] = statistics.mean(f.result()[0] for f in futures)
        srv.should_exit = True
        thread.join()
        server.close()
    results["staggered"] = results["staggered_continuous_mean_s"] / results["staggered_rounds_mean_s"]
    log(f"staggered (gap {gap}s) mean latency continuous/rounds: {results['staggered']:.3f}")
    return results


if __name__ == "__main__":
    main()
