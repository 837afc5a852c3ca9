"""OTLP ingest throughput: spans/s with 512-span exports (the SDK's default batch) over HTTP,
against gunicorn + PostgreSQL, compared with the REST batch path carrying the same data.

    .venv/bin/python bench/ingest_otlp.py
    .venv/bin/python bench/ingest_otlp.py --exports 40 --clients 3 --workers 4
    .venv/bin/python bench/ingest_otlp.py --workload langfuse        # or openinference

Every span is a chat span with content (system + user message in, assistant answer out, token
usage, gen_ai.conversation.id), built with the real opentelemetry-sdk and encoded by the OTLP
exporter's own encoder, so each becomes one turn and one LLM call. The REST comparison posts the
same turns (each with its LLM call) to /api/v1/ingest/turns in 512-turn batches.

`--workload langfuse` sends what the Langfuse SDK does instead (to /api/public/otel/v1/traces):
per turn an @observe root span (langfuse.observation.input/output JSON, session.id, user.id) and
a generation under it (model, messages, usage_details); `--workload openinference` a CHAIN span
(input.value/output.value) with an LLM span under it (llm.input_messages.N.…, token counts).
Two spans per turn there: a 512-span export holds 256 turns and 256 LLM calls. `--workload
langfuse2` posts langfuse 2.x ingestion batches (JSON, /api/public/ingestion) of the same size in
events: per turn a trace-create (input, output, sessionId, userId) and a generation-create
(model, messages, output, usage), so again 256 turns and 256 LLM calls per 512 events.

CPU-s per 1,000 spans is the gunicorn workers' user + system CPU time (from /proc, the server's
process group) over the measured requests, divided by the spans they carried: PostgreSQL's own
CPU is not in it. Under a shared machine it is the steadier figure; spans/s moves with the load.

Importable: `make_otlp_exports`, `make_rest_batches`, `run_exports` for bench/ingest.py.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time

from _server import (
    Gunicorn,
    bench_env,
    copy_limit_rows_per_s,
    database_recreate,
    django_setup,
    manage,
    post_bodies_wrk,
    postgres_backend_cpu_seconds,
)
from _server import post_bodies as run_exports  # noqa: F401 - kept under its old name for callers

WORDS = ["order", "refund", "shipping", "delivery", "account", "password", "card", "payment", "invoice", "return", "size", "colour", "discount", "warranty", "store", "hours", "contact", "support", "tracking", "label", "address", "change", "cancel"]
SYSTEM = "You are the shop's assistant. Answer briefly and politely."


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "?"


def _items(count: int, size: int, seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    return [[{
        "conversation": f"otel-{seed}-{b}-{i // 8}",
        "user": _sentence(rng, rng.randrange(6, 30)),
        "answer": _sentence(rng, rng.randrange(15, 80)),
        "input_tokens": rng.randrange(50, 800),
        "output_tokens": rng.randrange(20, 300),
        "duration_ns": rng.randrange(300, 4000) * 1_000_000,
    } for i in range(size)] for b in range(count)]


WORKLOADS = ("genai", "langfuse", "openinference", "langfuse2")
WORKLOAD_PATHS = {"genai": "/v1/traces", "langfuse": "/api/public/otel/v1/traces", "openinference": "/v1/traces",
                  "langfuse2": "/api/public/ingestion"}


def _convention_spans(tracer, item: dict, workload: str, start: int, end: int) -> None:
    """One turn as the Langfuse SDK or an OpenInference instrumentor writes it: root + LLM span."""
    from opentelemetry import trace

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": item["user"]}]
    if workload == "langfuse":
        root_attributes = {
            "langfuse.observation.type": "span", "langfuse.internal.is_app_root": True,
            "langfuse.observation.input": json.dumps({"args": [item["user"]], "kwargs": {}}),
            "langfuse.observation.output": json.dumps(item["answer"]),
            "session.id": item["conversation"], "user.id": f"user-{item['conversation']}",
        }
        llm_attributes = {
            "langfuse.observation.type": "generation", "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.input": json.dumps(messages),
            "langfuse.observation.output": json.dumps({"role": "assistant", "content": item["answer"]}),
            "langfuse.observation.usage_details": json.dumps({"input": item["input_tokens"],
                                                              "output": item["output_tokens"]}),
            "session.id": item["conversation"],
        }
    else:
        root_attributes = {"openinference.span.kind": "CHAIN", "input.value": item["user"],
                           "output.value": item["answer"], "session.id": item["conversation"]}
        llm_attributes = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.system": "openai",
                          "llm.token_count.prompt": item["input_tokens"],
                          "llm.token_count.completion": item["output_tokens"],
                          "llm.output_messages.0.message.role": "assistant",
                          "llm.output_messages.0.message.content": item["answer"]}
        for index, message in enumerate(messages):
            llm_attributes[f"llm.input_messages.{index}.message.role"] = message["role"]
            llm_attributes[f"llm.input_messages.{index}.message.content"] = message["content"]
    root = tracer.start_span("handle_message", start_time=start, attributes=root_attributes)
    child = tracer.start_span("answer", context=trace.set_span_in_context(root), start_time=start,
                              attributes=llm_attributes)
    child.end(end_time=end)
    root.end(end_time=end)


def process_group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of the live processes in process group `group` (Linux /proc)."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp is field 5 of stat, index 2 after the command name
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def make_otlp_exports(count: int, size: int = 512, *, seed: int = 1, workload: str = "genai") -> list[bytes]:
    """`count` ExportTraceServiceRequest bodies of `size` spans each (protobuf): GenAI chat spans,
    or for the langfuse / openinference workloads `size // 2` turns of two spans."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    def parts(role: str, text: str) -> dict:
        return {"role": role, "parts": [{"type": "text", "content": text}]}

    provider = TracerProvider(resource=Resource.create({"service.name": "bench-bot"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    bodies = []
    now = time.time_ns()
    for batch in _items(count, size if workload == "genai" else size // 2, seed):
        memory.clear()
        for item in batch:
            start = now - item["duration_ns"]
            if workload != "genai":
                _convention_spans(tracer, item, workload, start, now)
                continue
            span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, start_time=start, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": item["input_tokens"], "gen_ai.usage.output_tokens": item["output_tokens"],
                "gen_ai.conversation.id": item["conversation"],
                "gen_ai.input.messages": json.dumps([parts("system", SYSTEM), parts("user", item["user"])]),
                "gen_ai.output.messages": json.dumps([parts("assistant", item["answer"])]),
            })
            span.end(end_time=now)
        bodies.append(encode_spans(memory.get_finished_spans()).SerializeToString())
    provider.shutdown()
    return bodies


def make_langfuse2_batches(count: int, size: int = 512, *, seed: int = 1) -> list[bytes]:
    """`count` langfuse 2.x ingestion batches of `size` events: `size // 2` traces, each a
    trace-create and a generation-create."""
    from datetime import UTC, datetime

    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    bodies = []
    for b, batch in enumerate(_items(count, size // 2, seed)):
        events = []
        for i, item in enumerate(batch):
            trace_id = f"lf2-{seed}-{b}-{i}"
            events.append({"id": f"{trace_id}-e1", "type": "trace-create", "timestamp": at, "body": {
                "id": trace_id, "timestamp": at, "name": "chat", "sessionId": item["conversation"],
                "userId": f"user-{item['conversation']}", "input": {"question": item["user"]},
                "output": item["answer"]}})
            events.append({"id": f"{trace_id}-e2", "type": "generation-create", "timestamp": at, "body": {
                "id": f"{trace_id}-g", "traceId": trace_id, "name": "answer", "model": "gpt-4o-mini",
                "startTime": at, "endTime": at,
                "input": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": item["user"]}],
                "output": {"role": "assistant", "content": item["answer"]},
                "usage": {"input": item["input_tokens"], "output": item["output_tokens"]}}})
        bodies.append(json.dumps({"batch": events, "metadata": {"sdk_name": "bench"}}).encode())
    return bodies


def make_rest_batches(count: int, size: int = 512, *, seed: int = 2) -> list[bytes]:
    """The same turns through the REST batch API: each turn with its one LLM call."""
    bodies = []
    for b, batch in enumerate(_items(count, size, seed)):
        turns = [{
            "conversation_id": item["conversation"], "turn_id": f"rest-{seed}-{b}-{i}",
            "user_message": item["user"], "bot_response": item["answer"],
            "latency_ms": item["duration_ns"] // 1_000_000, "model": "gpt-4o-mini",
            "llm_calls": [{"call_id": f"rest-{seed}-{b}-{i}", "provider": "openai", "model": "gpt-4o-mini",
                           "function_name": "chat", "input_tokens": item["input_tokens"],
                           "output_tokens": item["output_tokens"], "duration_ms": item["duration_ns"] // 1_000_000,
                           "input": json.dumps([{"role": "system", "content": SYSTEM},
                                                {"role": "user", "content": item["user"]}]),
                           "output": item["answer"]}],
        } for i, item in enumerate(batch)]
        bodies.append(json.dumps({"turns": turns}).encode())
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/chatmon_bench_otel")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--exports", type=int, default=30, help="requests per path")
    parser.add_argument("--spans", type=int, default=512, help="spans (turns) per request")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (> 1: gthread)")
    parser.add_argument("--copy-rows", type=int, default=100_000, help="rows for copy_limit.py (0 skips)")
    parser.add_argument("--wrk-seconds", type=float, default=0,
                        help="send with wrk for this long instead of Python clients (--clients connections; "
                             "--exports bodies, each sent once)")
    parser.add_argument("--judge-sample-rate", type=float, default=0.1)
    parser.add_argument("--workload", choices=WORKLOADS, default="genai",
                        help="span shape: GenAI chat spans, the Langfuse SDK's, or OpenInference's")
    args = parser.parse_args()

    env = bench_env(args.database_url, args.redis_url)
    database_recreate(args.database_url)
    manage(env, "migrate", "--noinput")
    django_setup(env)
    from apps.chatbots.models import Chatbot
    from apps.chatbots.services import api_key_create
    from apps.conversations.models import LLMCall, Turn

    chatbot = Chatbot.objects.create(name="Bench OTLP", slug="bench-otlp", model="gpt-4o-mini",
                                     judge_sample_rate=args.judge_sample_rate)
    _, key = api_key_create(chatbot=chatbot, name="bench")
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    def make_bodies(count: int, seed: int) -> list[bytes]:
        if args.workload == "langfuse2":
            return make_langfuse2_batches(count, args.spans, seed=seed)
        return make_otlp_exports(count, args.spans, seed=seed, workload=args.workload)

    otlp = make_bodies(args.exports, 1)
    otlp_path = WORKLOAD_PATHS[args.workload]
    otlp_type, otlp_ok = (("application/json", 207) if args.workload == "langfuse2"
                          else ("application/x-protobuf", 200))
    rest = make_rest_batches(args.exports, args.spans, seed=2)
    print(f"machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; "
          f"gunicorn {args.workers} workers; PostgreSQL {args.database_url.rsplit('/', 1)[1]}; broker {args.redis_url}; "
          f"{args.clients} clients; judge sample rate {args.judge_sample_rate}; workload {args.workload}")
    print(f"request body: OTLP protobuf {sum(map(len, otlp)) // len(otlp) // 1024} KiB, "
          f"REST JSON {sum(map(len, rest)) // len(rest) // 1024} KiB per {args.spans} spans/turns")
    database = args.database_url.rsplit("/", 1)[1]
    copy_rate = copy_limit_rows_per_s(args.database_url, args.copy_rows) if args.copy_rows else None
    with Gunicorn(env, port=args.port, workers=args.workers, threads=args.threads) as server:
        # Warm-up both paths (imports, tiktoken, price cache) with data of their own.
        run_exports(args.port, key, make_bodies(2, 91), clients=1, path=otlp_path, content_type=otlp_type,
                    ok_status=otlp_ok)
        run_exports(args.port, key, make_rest_batches(2, args.spans, seed=92), clients=1,
                    path="/api/v1/ingest/turns", content_type="application/json", ok_status=207)
        figures = {}
        acknowledged: dict[str, int] = {}
        for name, bodies, path, content_type, ok in (
                (f"{'OTLP ' if otlp_ok == 200 else ''}{otlp_path} ({args.workload})", otlp, otlp_path, otlp_type,
                 otlp_ok),
                ("REST /api/v1/ingest/turns", rest, "/api/v1/ingest/turns", "application/json", 207)):
            web_before, db_before = server.cpu_seconds(), postgres_backend_cpu_seconds(database)
            if args.wrk_seconds:
                if path == "/api/v1/ingest/turns" and args.spans == 1:  # one turn per POST, as bots send it
                    bodies = [json.dumps(json.loads(body)["turns"][0]).encode() for body in bodies]
                load = post_bodies_wrk(args.port, key, bodies, path=path, content_type=content_type,
                                       seconds=args.wrk_seconds, connections=args.clients)
                if load["errors"] or load["wrapped"]:
                    raise SystemExit(f"{path}: {load['errors']} error answers, bodies ran out: {load['wrapped']}")
                acknowledged[name] = load["requests"]
                elapsed = load["requests"] / load["rps"]
                durations = [load["p50_ms"] / 1000, load["p99_ms"] / 1000]  # printed as p50, "max" (p99)
                sent = load["requests"]
            else:
                elapsed, durations = run_exports(args.port, key, bodies, clients=args.clients, path=path,
                                                 content_type=content_type, ok_status=ok)
                durations = [durations[len(durations) // 2], durations[-1]]
                sent = len(bodies)
            web = server.cpu_seconds() - web_before
            db = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in postgres_backend_cpu_seconds(database).items())
            count = sent * args.spans
            if args.wrk_seconds:
                print(f"{name} (wrk, {args.clients} connections): {load['rps']:,.0f} req/s, p50 {load['p50_ms']:.1f} ms, "
                      f"p90 {load['p90_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms")
            figures[name] = count / elapsed
            print(f"{name}: {count} spans in {elapsed:.2f} s = {count / elapsed:,.0f} spans/s; "
                  f"per {args.spans}-span request p50 {durations[0] * 1000:.0f} ms, "
                  f"{'p99' if args.wrk_seconds else 'max'} {durations[1] * 1000:.0f} ms; CPU-s per 1,000 spans: web {web / count * 1000:.3f}, "
                  f"PostgreSQL backends {db / count * 1000:.3f}"
                  + (f"; {count / elapsed / copy_rate:.1%} of PostgreSQL COPY ({copy_rate:,.0f} rows/s, same run)"
                     if copy_rate else ""))
        # Re-sending every export stores nothing: the replay path's speed.
        if args.wrk_seconds:
            otlp = otlp[:next(iter(acknowledged.values()))]  # the OTLP bodies wrk sent (acknowledged)
        elapsed, _ = run_exports(args.port, key, otlp, clients=args.clients, path=otlp_path,
                                 content_type=otlp_type, ok_status=otlp_ok)
        print(f"OTLP re-sent exports (all replays): {len(otlp) * args.spans / elapsed:,.0f} spans/s")
    otlp_name, rest_name = list(figures)
    print(f"OTLP / REST: {figures[otlp_name] / figures[rest_name]:.2f}")
    otlp_turns = args.spans if args.workload == "genai" else args.spans // 2
    if args.wrk_seconds:  # each acknowledged request stored; one in flight when wrk stopped may be too
        expected = (sum(acknowledged.values()) + 4) * args.spans
        print(f"stored: {Turn.objects.filter(chatbot=chatbot).count()} turns, "
              f"{LLMCall.objects.filter(chatbot=chatbot).count()} LLM calls (acknowledged {expected}; "
              f"requests in flight when wrk stopped, about one per connection, are stored too)")
        return
    expected = (args.exports + 2) * (otlp_turns + args.spans)
    print(f"stored: {Turn.objects.filter(chatbot=chatbot).count()} turns, "
          f"{LLMCall.objects.filter(chatbot=chatbot).count()} LLM calls (expected {expected} of each)")


if __name__ == "__main__":
    main()
