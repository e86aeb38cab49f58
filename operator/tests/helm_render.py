"""Renders and lints the operator's Helm chart with the real Helm library, for tests/chart.rs.

helm-python-sdk binds Helm v4's Go SDK (no helm binary needed). This script only talks to Helm
and prints what Helm said as one JSON object on stdout; the assertions are in the Rust test.

Reads one JSON request on stdin:
    {"action": "render" | "lint" | "inspect", "chart": DIR, "values": {...},
     "name": RELEASE, "namespace": NS, "kube_version": "v1.32.0"}
and prints:
    render  -> {"ok": true, "manifests": {template path: text}} or {"ok": false, "error": msg}
               (values that values.schema.json rejects are an error, as in `helm install`)
    lint    -> {"ok": true, "report": {"messages": [...], "errors": [...], ...}}
    inspect -> {"ok": true, "values": defaults, "schema": values.schema.json, "metadata": Chart.yaml}
Exits 3 when helm-python-sdk cannot be imported (the venv lacks it: run .ci/run).
"""

import json
import sys

try:
    import helm_python as helm
except ImportError as e:  # the test turns this into a failure telling to run .ci/run
    print(f"helm-python-sdk is not importable ({e}): run .ci/run to install it", file=sys.stderr)
    sys.exit(3)


def main() -> None:
    request = json.load(sys.stdin)
    action = request["action"]
    chart_dir = request["chart"]
    values = request.get("values")
    out: dict
    if action == "lint":
        report = helm.lint(
            chart_dir,
            values,
            strict=True,
            namespace=request.get("namespace", "shinken-system"),
            kube_version=request.get("kube_version"),
        )
        out = {"ok": True, "report": report}
    elif action == "inspect":
        with helm.Chart.load(chart_dir) as chart:
            out = {"ok": True, "values": chart.values, "schema": chart.schema, "metadata": chart.metadata}
    elif action == "render":
        with helm.Chart.load(chart_dir) as chart:
            try:
                # Like `helm install`, the render coalesces the defaults with the given values
                # and validates them against values.schema.json first.
                manifests = chart.render(
                    values or {},
                    name=request.get("name", "shinken-operator"),
                    namespace=request.get("namespace", "shinken-system"),
                    is_install=True,
                )
                out = {"ok": True, "manifests": manifests}
            except helm.HelmError as e:
                out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    else:
        raise SystemExit(f"unknown action {action!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
