#!/usr/bin/env bash
# The README's curl walk-through, runnable: bash scripts/quickstart.sh  (against MAAS_URL, default :8000).
# Needs only curl and python3 (for pulling ids out of JSON). A test runs this script against a real server.
set -euo pipefail
URL=${MAAS_URL:-http://127.0.0.1:8000}
AUTH=()
if [ -n "${MAAS_API_KEY:-}" ]; then AUTH=(-H "Authorization: Bearer $MAAS_API_KEY"); fi
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "curl $URL/healthz"
curl -sf "$URL/healthz"; echo

say "register scikit-learn's iris as a dataset"
curl -sf "${AUTH[@]}" -X POST "$URL/datasets" -d '{"name": "iris", "builtin": "iris"}' | field '["schema"]'

say "upload your own CSV (a 'label' column is the target)"
csv=$(mktemp --suffix=.csv)
python3 - "$csv" <<'PY'
import random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    f.write("x1,x2,label\n")
    for _ in range(200):
        a, b = random.uniform(-1, 1), random.uniform(-1, 1)
        f.write(f"{a:.3f},{b:.3f},{'above' if a + b > 0 else 'below'}\n")
PY
curl -sf "${AUTH[@]}" -X POST "$URL/datasets" -F "file=@$csv" -F name=halfplane -F target=label | field '["schema"]'
rm -f "$csv"

say "train a model on iris (202 at once; the job runs in the background)"
job=$(curl -sf "${AUTH[@]}" -X POST "$URL/train" \
  -d '{"dataset": "iris", "hyperparameters": {"epochs": 40, "lr": 0.01}}' | field '["job_id"]')
echo "job $job"

say "follow its progress (Server-Sent Events until the job ends)"
curl -sfN "${AUTH[@]}" "$URL/jobs/$job/events" | grep --line-buffered '^event: end' -m1 -B2 | cut -c1-200
status=$(curl -sf "${AUTH[@]}" "$URL/jobs/$job" | field '["status"]')
echo "status: $status"
[ "$status" = succeeded ] || { curl -s "${AUTH[@]}" "$URL/jobs/$job"; exit 1; }

say "the registered version: test metrics, artifacts, lineage"
curl -sf "${AUTH[@]}" "$URL/models/iris/versions/1" | field '["metrics"]["accuracy"]'

say "promote it to production"
curl -sf "${AUTH[@]}" -X PUT "$URL/models/iris/aliases/production" -d '{"version": 1}' | field '["aliases"]'

say "the model's own batching settings (a GPU model wants larger batches)"
curl -sf "${AUTH[@]}" -X PUT "$URL/models/iris/serving" -d '{"max_batch_size": 256}' | field '["serving"]'

say "predict (rows of numbers, or dicts by feature name)"
curl -sf "${AUTH[@]}" -X POST "$URL/predict" \
  -d '{"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'; echo

say "the same through the KServe V2 protocol"
curl -sf "${AUTH[@]}" -X POST "$URL/v2/models/iris/infer" -H 'Content-Type: application/json' \
  -d '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'; echo

say "download the ONNX export"
curl -sf "${AUTH[@]}" -o /tmp/iris-v1.onnx "$URL/models/iris/versions/1/artifacts/onnx"
ls -l /tmp/iris-v1.onnx

say "Prometheus metrics"
curl -sf "$URL/metrics" | grep -E '^maas_(http_requests_total|registry_model_versions)' | head -5
echo; echo "quickstart: all steps succeeded"
