"""The service's own traces: exported by OTLP when configured, and only through its own provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Run in a process of its own: it sets OpenTelemetry's global tracer provider, which is once per process.
SCRIPT = r'''
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.app import create_app
from syncwatch.settings import Settings

received = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["content-length"])))
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            for scope in resource.scope_spans:
                for span in scope.spans:
                    status = {a.key: a.value.int_value for a in span.attributes}.get("http.response.status_code")
                    received.append([service, self.path, span.name, status])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
global_spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(global_spans))
trace.set_tracer_provider(provider)  # what a library in the same process might do

settings = Settings(data_dir=Path(sys.argv[1]), admin_token="admin-" + "x" * 32, reconcile_in_process=False,
                    self_traces_endpoint=f"http://127.0.0.1:{server.server_port}/v1/traces")
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/events", content=b"{}").status_code == 401
deadline = time.monotonic() + 20
while len(received) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"exported": received, "global": [s.name for s in global_spans.get_finished_spans()]}))
'''


def test_own_spans_are_exported_by_otlp_and_never_into_a_global_provider(tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "50"}  # the batch processor's export delay, in ms
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120,
                            env=env, cwd=Path(__file__).resolve().parents[2], check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    spans = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(map(tuple, spans["exported"])) == [
        ("syncwatch-collector", "/v1/traces", "GET /healthz", 200),
        ("syncwatch-collector", "/v1/traces", "POST /v1/events", 401),
    ]
    assert spans["global"] == []  # FastAPI's native telemetry is off: it would trace every request there
